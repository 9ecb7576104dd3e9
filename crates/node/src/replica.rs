//! A replication group as the rest of the node sees it: a [`Replica`] handle to
//! propose commands, run linearizable queries and read status, plus the errors a
//! client request can meet. The groups themselves run on a [`Host`]
//! (see [`crate::host`]): one thread, one log engine and one fsync per batch for every
//! group of the node. A failed write or fsync stops the host: every waiting and later
//! request gets the storage error, and nothing acknowledged is ever served from a log
//! whose durability is unknown.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use consensus::{NodeId, Status};
use kv::{Command, Query, QueryResult, Response};
use storage::{Options, StorageError};
use tokio::sync::{mpsc, oneshot};

use crate::engine::ReplicaEngine;
use crate::host::{GroupSpec, Host, HostConfig, HostCore, Input};
use crate::transport::{Incoming, Transport};

/// What a replica needs to start.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// The replication group.
    pub group: u64,
    /// Founding voters, used only when the data directory holds nothing for the group.
    pub bootstrap_voters: Vec<NodeId>,
    /// Where the log engine keeps its files.
    pub data_dir: PathBuf,
    /// Length of one engine tick.
    pub tick: Duration,
    /// Take a snapshot every this many applied entries.
    pub compact_every: u64,
    /// How long a client request may wait for its answer.
    pub request_timeout: Duration,
    /// Log engine options (fsync policy).
    pub storage: Options,
}

/// Why a client request failed; the operation did not take effect unless the variant
/// says its outcome is unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// Another node leads (if known): retry there.
    NotLeader {
        /// The leader this replica last heard of.
        hint: Option<NodeId>,
    },
    /// Leadership is being handed to another replica; the request was not taken:
    /// retry in a moment.
    Transferring,
    /// The proposal's log slot went to another entry: it did not take effect.
    Superseded,
    /// The engine refused the request (transfer in progress, too large, ...).
    Refused(String),
    /// Durable storage failed; the replica has stopped serving. The request did not
    /// take effect.
    Storage(String),
    /// Durable storage failed while the request was in flight. The entry may already
    /// have reached other replicas, which can still commit it: the outcome is unknown.
    StorageUnknown(String),
    /// The replica stopped before answering: the outcome is unknown.
    Stopped,
    /// No answer in time (no quorum reachable?): the outcome is unknown.
    Timeout,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotLeader { hint: Some(h) } => write!(f, "not the leader; node {h} leads"),
            ClientError::NotLeader { hint: None } => {
                write!(f, "not the leader; no leader known yet")
            }
            ClientError::Transferring => {
                write!(f, "leadership is being transferred; the request was not taken")
            }
            ClientError::Superseded => write!(
                f,
                "the write lost its log slot to a new leader; it did not take effect"
            ),
            ClientError::Refused(why) => write!(f, "{why}"),
            ClientError::Storage(why) => write!(f, "storage failure: {why}"),
            ClientError::StorageUnknown(why) => write!(
                f,
                "storage failure: {why}; the outcome is unknown (other replicas may still commit it)"
            ),
            ClientError::Stopped => write!(f, "the replica stopped; the outcome is unknown"),
            ClientError::Timeout => write!(
                f,
                "no answer in time (is a quorum reachable?); the outcome is unknown"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// A handle on one replication group of a running [`Host`]: proposals, linearizable
/// queries and status for that group. Handles are cheap to share; the host keeps
/// running while any handle (or the host itself) is held.
pub struct Replica {
    core: Arc<HostCore>,
    group: u64,
    /// The leader the group last knew of (0: none), published by the host thread.
    leader: Arc<AtomicU64>,
}

impl Replica {
    pub(crate) fn new(core: Arc<HostCore>, group: u64, leader: Arc<AtomicU64>) -> Replica {
        Replica {
            core,
            group,
            leader,
        }
    }

    /// Starts a host running the single group `cfg.group` (see [`Host::start`]) and
    /// returns its handle; dropping the handle stops the host.
    pub fn start<E: ReplicaEngine>(
        cfg: ReplicaConfig,
        engine_cfg: E::Config,
        transport: Arc<Transport>,
        incoming: mpsc::Receiver<Incoming>,
    ) -> Result<Replica, StorageError> {
        let host_cfg = HostConfig {
            data_dir: cfg.data_dir,
            tick: cfg.tick,
            compact_every: cfg.compact_every,
            request_timeout: cfg.request_timeout,
            storage: cfg.storage,
        };
        let spec = GroupSpec {
            group: cfg.group,
            voters: cfg.bootstrap_voters,
            preferred_leader: None,
        };
        let host = Host::start::<E>(host_cfg, engine_cfg, &[spec], transport, incoming)?;
        let handle = host.replica(cfg.group).expect("started with this group");
        drop(host);
        Ok(Replica::new(
            handle.core.clone(),
            cfg.group,
            handle.leader.clone(),
        ))
    }

    /// The replication group this handle reaches.
    pub fn group(&self) -> u64 {
        self.group
    }

    /// The replication engine's name ("raft", "paxos").
    pub fn engine_name(&self) -> &'static str {
        self.core.engine
    }

    /// The leader this replica last knew of, without a round trip to the host thread
    /// (may lag by one batch).
    pub fn leader_hint(&self) -> Option<NodeId> {
        match self.leader.load(Ordering::Relaxed) {
            0 => None,
            l => Some(l),
        }
    }

    /// Replicates `cmd` and returns the state machine's response once it is applied.
    pub async fn propose(&self, cmd: Command) -> Result<Response, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Propose(self.group, cmd, reply)).await?;
        self.answer(rx).await
    }

    /// Replicates `cmds` as independent proposals submitted together (one batch, one
    /// fsync) and returns their responses in order. Not atomic: a failure part-way may
    /// leave earlier commands applied; the first failure is returned.
    pub async fn propose_all(&self, cmds: Vec<Command>) -> Result<Vec<Response>, ClientError> {
        self.propose_each(cmds).await?.into_iter().collect()
    }

    /// Replicates `cmds` as independent proposals, taken in order as one input by the
    /// host, and returns each one's outcome. Because nothing comes between them on
    /// the host, a refusal for leadership ([`ClientError::NotLeader`],
    /// [`ClientError::Transferring`]) of one command means every later one was refused
    /// too: none of them took effect, and the caller may retry them in order.
    pub async fn propose_each(
        &self,
        cmds: Vec<Command>,
    ) -> Result<Vec<Result<Response, ClientError>>, ClientError> {
        let mut proposals = Vec::with_capacity(cmds.len());
        let mut waiting = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let (reply, rx) = oneshot::channel();
            proposals.push((cmd, reply));
            waiting.push(rx);
        }
        self.send(Input::ProposeMany(self.group, proposals)).await?;
        // One deadline for the lot: they were submitted together.
        let deadline = tokio::time::Instant::now() + self.core.request_timeout;
        let mut out = Vec::with_capacity(waiting.len());
        for rx in waiting {
            out.push(answer_by(rx, deadline).await);
        }
        Ok(out)
    }

    /// A linearizable read of `key` (ReadIndex: confirmed by a quorum, served once
    /// applied).
    pub async fn read(&self, key: Bytes) -> Result<Option<Bytes>, ClientError> {
        match self.query(Query::Get(key)).await? {
            QueryResult::Value(v) => Ok(v),
            other => Err(ClientError::Refused(format!(
                "internal: a GET was answered with {other:?}"
            ))),
        }
    }

    /// A linearizable query (ReadIndex: confirmed by a quorum, answered from local
    /// state once applied, at this node's clock for expiry).
    pub async fn query(&self, q: Query) -> Result<QueryResult, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Query(self.group, q, reply)).await?;
        self.answer(rx).await
    }

    /// The engine's status.
    pub async fn status(&self) -> Result<Status, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.send(Input::Status(self.group, reply)).await?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    /// Drops this handle; the host stops if nothing else holds it.
    pub fn stop(self) {}

    async fn send(&self, input: Input) -> Result<(), ClientError> {
        self.core
            .tx
            .send(input)
            .await
            .map_err(|_| ClientError::Stopped)
    }

    async fn answer<T>(
        &self,
        rx: oneshot::Receiver<Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        answer_by(rx, tokio::time::Instant::now() + self.core.request_timeout).await
    }
}

/// The host's answer on `rx`, or [`ClientError::Timeout`] at `deadline`.
async fn answer_by<T>(
    rx: oneshot::Receiver<Result<T, ClientError>>,
    deadline: tokio::time::Instant,
) -> Result<T, ClientError> {
    match tokio::time::timeout_at(deadline, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(ClientError::Stopped),
        Err(_) => Err(ClientError::Timeout),
    }
}

/// The wall clock in Unix milliseconds: stamped on proposals (expiry decisions) and
/// used to answer queries. Only the runtime reads it; the state machine gets it from
/// entries.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
