//! The replica runtime: one replication group on one node, driven by a dedicated
//! thread that owns the engine, the log engine and the state machine.
//!
//! ```text
//!  ticker ─┐
//!  peers ──┼─▶ [bounded input queue] ─▶ replica thread: drain a batch of inputs, then
//!  clients ┘                              for each Ready: send ─▶ persist + ONE fsync ─▶
//!                                         send-after-sync ─▶ apply ─▶ reply ─▶ advance
//! ```
//! Draining every queued input before taking a `Ready` is what batches proposals into
//! one append and one fsync (group commit). A failed write or fsync stops the replica:
//! every waiting and later request gets the storage error, and nothing acknowledged
//! is ever served from a log whose durability is unknown.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use consensus::{LogIndex, NodeId, Payload, ProposeError, Ready, Status, Term};
use kv::{Command, KvStore, Query, QueryResult, Response};
use storage::{LogEngine, Options, StorageError};
use tokio::sync::{mpsc, oneshot};

use crate::engine::ReplicaEngine;
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

enum Input {
    Tick,
    Peer(Incoming),
    Propose(Command, oneshot::Sender<Result<Response, ClientError>>),
    Query(Query, QueryReply),
    Status(oneshot::Sender<Status>),
    Stop,
}

/// A running replica. Dropping it stops the replica thread.
pub struct Replica {
    tx: mpsc::Sender<Input>,
    /// The leader the replica last knew of (0: none), published after every batch so
    /// that callers can notice a leadership change without asking the thread.
    leader: Arc<AtomicU64>,
    engine: &'static str,
    request_timeout: Duration,
    thread: Option<JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

const INPUT_QUEUE: usize = 16_384;
const BATCH_INPUTS_MAX: usize = 4096;

impl Replica {
    /// Opens the group's durable state (bootstrapping it if empty) and starts the
    /// replica thread, a ticker, and the forwarding of `incoming` peer frames.
    pub fn start<E: ReplicaEngine>(
        cfg: ReplicaConfig,
        engine_cfg: E::Config,
        transport: Arc<Transport>,
        mut incoming: mpsc::Receiver<Incoming>,
    ) -> Result<Replica, StorageError> {
        let (mut log, mut recovered) = LogEngine::open(&cfg.data_dir, cfg.storage.clone())?;
        let group = cfg.group;
        let recovered = match recovered.remove(&group) {
            Some(r) => r,
            None => {
                let boot = E::bootstrap(&cfg.bootstrap_voters);
                log.append(group, &boot.entries)?;
                log.set_hard_state(group, boot.hard_state)?;
                log.sync()?;
                boot
            }
        };
        let kv = match &recovered.snapshot {
            Some(s) => KvStore::restore(s.data.clone()).map_err(|e| StorageError::Corrupt {
                file: cfg.data_dir.clone(),
                offset: 0,
                reason: format!("snapshot of group {group} does not decode: {e}"),
            })?,
            None => KvStore::new(),
        };
        let applied = recovered
            .snapshot
            .as_ref()
            .map(|s| s.meta.index)
            .unwrap_or_default();
        let engine = E::boot(engine_cfg, recovered).map_err(StorageError::Invalid)?;
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);

        let ticker_tx = tx.clone();
        let tick = cfg.tick;
        let ticker = tokio::spawn(async move {
            let mut iv = tokio::time::interval(tick);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                // A full queue means the replica is busy: skipping a tick is harmless.
                if let Err(mpsc::error::TrySendError::Closed(_)) = ticker_tx.try_send(Input::Tick) {
                    return;
                }
            }
        });
        let peer_tx = tx.clone();
        let forward = tokio::spawn(async move {
            while let Some(m) = incoming.recv().await {
                if peer_tx.send(Input::Peer(m)).await.is_err() {
                    return;
                }
            }
        });
        let leader = Arc::new(AtomicU64::new(0));
        let mut state = Loop {
            leader: leader.clone(),
            group,
            engine,
            log,
            kv,
            applied,
            transport,
            compact_every: cfg.compact_every,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            confirmed: Vec::new(),
            next_ctx: 0,
            purging: None,
            failed: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("replica-{group}"))
            .spawn(move || state.run(rx))
            .map_err(|e| StorageError::Io {
                what: "spawn replica thread",
                path: cfg.data_dir.clone(),
                source: e,
            })?;
        Ok(Replica {
            tx,
            request_timeout: cfg.request_timeout,
            thread: Some(thread),
            tasks: vec![ticker, forward],
            leader,
            engine: E::NAME,
        })
    }

    /// The replication engine's name ("raft", "paxos").
    pub fn engine_name(&self) -> &'static str {
        self.engine
    }

    /// The leader this replica last knew of, without a round trip to its thread (may
    /// lag by one batch).
    pub fn leader_hint(&self) -> Option<NodeId> {
        match self.leader.load(Ordering::Relaxed) {
            0 => None,
            l => Some(l),
        }
    }

    /// Replicates `cmd` and returns the state machine's response once it is applied.
    pub async fn propose(&self, cmd: Command) -> Result<Response, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Propose(cmd, reply))
            .await
            .map_err(|_| ClientError::Stopped)?;
        self.answer(rx).await
    }

    /// Replicates `cmds` as independent proposals submitted together (one batch, one
    /// fsync) and returns their responses in order. Not atomic: a failure part-way may
    /// leave earlier commands applied; the first failure is returned.
    pub async fn propose_all(&self, cmds: Vec<Command>) -> Result<Vec<Response>, ClientError> {
        let mut waiting = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Input::Propose(cmd, reply))
                .await
                .map_err(|_| ClientError::Stopped)?;
            waiting.push(rx);
        }
        let mut out = Vec::with_capacity(waiting.len());
        for rx in waiting {
            out.push(self.answer(rx).await?);
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
        self.tx
            .send(Input::Query(q, reply))
            .await
            .map_err(|_| ClientError::Stopped)?;
        self.answer(rx).await
    }

    async fn answer<T>(
        &self,
        rx: oneshot::Receiver<Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Stopped),
            Err(_) => Err(ClientError::Timeout),
        }
    }

    /// The engine's status.
    pub async fn status(&self) -> Result<Status, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Input::Status(reply))
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)
    }

    /// Stops the replica and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.tx.try_send(Input::Stop);
        if let Some(t) = self.thread.take() {
            // The thread ends at Stop or when every sender is gone.
            let _ = t.join();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shutdown();
    }
}

type ProposalReply = oneshot::Sender<Result<Response, ClientError>>;
type QueryReply = oneshot::Sender<Result<QueryResult, ClientError>>;

/// The replica thread's state.
struct Loop<E: ReplicaEngine> {
    leader: Arc<AtomicU64>,
    group: u64,
    engine: E,
    log: LogEngine,
    kv: KvStore,
    applied: LogIndex,
    transport: Arc<Transport>,
    compact_every: u64,
    proposals: BTreeMap<LogIndex, (Term, ProposalReply)>,
    /// Reads awaiting confirmation, with the term they were requested in.
    reads: BTreeMap<u64, (Query, QueryReply, Term)>,
    confirmed: Vec<(LogIndex, Query, QueryReply)>,
    /// The index of the active-expiry purge in flight, if any (one at a time).
    purging: Option<LogIndex>,
    next_ctx: u64,
    failed: Option<String>,
}

impl<E: ReplicaEngine> Loop<E> {
    fn run(&mut self, mut rx: mpsc::Receiver<Input>) {
        while let Some(first) = rx.blocking_recv() {
            if !self.handle(first) {
                return;
            }
            for _ in 0..BATCH_INPUTS_MAX {
                match rx.try_recv() {
                    Ok(input) => {
                        if !self.handle(input) {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            while self.failed.is_none() && self.engine.has_ready() {
                let ready = self.engine.ready();
                if let Err(e) = self.process(ready) {
                    self.fail(e.to_string());
                }
            }
            let leader = if self.failed.is_some() {
                0
            } else {
                self.engine.leader().unwrap_or(0)
            };
            self.leader.store(leader, Ordering::Relaxed);
        }
    }

    /// Handles one input; false means stop.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Stop => return false,
            Input::Tick => {
                if self.failed.is_none() {
                    self.engine.tick();
                    self.maybe_purge();
                }
            }
            Input::Peer(m) => match E::decode_message(m.payload) {
                Ok(msg) if self.failed.is_none() => {
                    if let Err(e) = self.engine.step(m.from, msg) {
                        tracing::warn!(group = self.group, from = m.from, error = %e, "refused a peer message");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(group = self.group, from = m.from, error = %e, "undecodable peer message")
                }
            },
            Input::Propose(cmd, reply) => {
                if let Some(why) = &self.failed {
                    let _ = reply.send(Err(ClientError::Storage(why.clone())));
                } else {
                    match self.engine.propose(cmd.encode_at(now_ms())) {
                        Ok(p) => {
                            self.proposals.insert(p.index, (p.term, reply));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(refusal(e)));
                        }
                    }
                }
            }
            Input::Query(q, reply) => {
                if let Some(why) = &self.failed {
                    let _ = reply.send(Err(ClientError::Storage(why.clone())));
                } else {
                    self.next_ctx += 1;
                    match self.engine.read_index(self.next_ctx) {
                        Ok(()) => {
                            let term = self.engine.term();
                            self.reads.insert(self.next_ctx, (q, reply, term));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(refusal(e)));
                        }
                    }
                }
            }
            Input::Status(reply) => {
                let mut status = self.engine.status();
                if self.failed.is_some() {
                    // The engine is frozen at its last state; a failed replica leads
                    // nothing and follows no one, whatever it last believed.
                    status.role = consensus::Role::Follower;
                    status.leader = None;
                }
                let _ = reply.send(status);
            }
        }
        true
    }

    fn process(&mut self, mut ready: Ready<E::Message>) -> Result<(), StorageError> {
        for out in std::mem::take(&mut ready.messages) {
            self.send(out.to, &out.msg);
        }
        let mut wrote = false;
        if let Some(snap) = ready.snapshot.take() {
            self.log.install_snapshot(self.group, &snap)?;
            self.kv = KvStore::restore(snap.data.clone()).map_err(|e| StorageError::Corrupt {
                file: PathBuf::from("<snapshot from leader>"),
                offset: 0,
                reason: e.to_string(),
            })?;
            self.applied = snap.meta.index;
            tracing::info!(
                group = self.group,
                index = snap.meta.index.0,
                term = snap.meta.term.0,
                bytes = snap.data.len(),
                "installed a snapshot from the leader"
            );
            wrote = true;
        }
        if !ready.entries.is_empty() {
            self.log.append(self.group, &ready.entries)?;
            wrote = true;
        }
        if let Some(hs) = ready.hard_state {
            self.log.set_hard_state(self.group, hs)?;
            wrote = true;
        }
        if wrote {
            self.log.sync()?; // the group commit: one fsync for this whole batch
        }
        for out in std::mem::take(&mut ready.messages_after_sync) {
            self.send(out.to, &out.msg);
        }
        for e in std::mem::take(&mut ready.committed_entries) {
            self.applied = e.index;
            let response = match &e.payload {
                Payload::Command(cmd) => Some(self.kv.apply(cmd.clone())),
                Payload::Noop | Payload::Config(_) => None,
            };
            if let Some((term, reply)) = self.proposals.remove(&e.index) {
                let result = match response {
                    Some(r) if term == e.term => Ok(r),
                    _ => Err(ClientError::Superseded),
                };
                let _ = reply.send(result);
            }
        }
        // Proposals below the applied index that were never applied here (a snapshot
        // covered them) have an unknown outcome.
        let stale: Vec<LogIndex> = self
            .proposals
            .range(..=self.applied)
            .map(|(&i, _)| i)
            .collect();
        for i in stale {
            if let Some((_, reply)) = self.proposals.remove(&i) {
                let _ = reply.send(Err(ClientError::Stopped));
            }
        }
        for rs in std::mem::take(&mut ready.read_states) {
            if let Some((q, reply, _)) = self.reads.remove(&rs.ctx) {
                self.confirmed.push((rs.index, q, reply));
            }
        }
        let applied = self.applied;
        let (serve, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(i, _, _)| *i <= applied);
        self.confirmed = wait;
        if !serve.is_empty() {
            let now = now_ms();
            for (_, q, reply) in serve {
                let _ = reply.send(Ok(self.kv.query(&q, now)));
            }
        }
        if self.purging.is_some_and(|i| i <= self.applied) {
            self.purging = None;
        }
        self.engine.advance(ready.number);
        // A read requested in an earlier term will never be confirmed: the leader it
        // waited on (this node or another) has lost its term.
        let term = self.engine.term();
        if self.reads.values().any(|(_, _, t)| *t != term) {
            let hint = self.engine.leader();
            let (old, keep): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.reads)
                .into_iter()
                .partition(|(_, (_, _, t))| *t != term);
            self.reads = keep;
            for (_, (_, reply, _)) in old {
                let _ = reply.send(Err(ClientError::NotLeader { hint }));
            }
        }
        if self.applied - self.engine.snapshot_index() >= self.compact_every
            && self
                .engine
                .compact(self.applied, self.kv.snapshot())
                .is_ok()
        {
            let snap = self.engine.snapshot().expect("just taken").clone();
            self.log.compact(self.group, &snap)?;
            self.log.sync()?;
        }
        Ok(())
    }

    fn send(&self, to: NodeId, msg: &E::Message) {
        let mut buf = Vec::with_capacity(64);
        E::encode_message(msg, &mut buf);
        self.transport.send(to, self.group, &buf);
    }

    /// Storage failed: refuse everything from now on, answering every waiter.
    fn fail(&mut self, why: String) {
        tracing::error!(group = self.group, error = %why, "storage failed; this replica stops serving");
        // Entries are sent to followers before the leader's own fsync, so a proposal in
        // flight may still commit elsewhere: its outcome is unknown, not refused.
        for (_, (_, reply)) in std::mem::take(&mut self.proposals) {
            let _ = reply.send(Err(ClientError::StorageUnknown(why.clone())));
        }
        for (_, (_, reply, _)) in std::mem::take(&mut self.reads) {
            let _ = reply.send(Err(ClientError::Storage(why.clone())));
        }
        for (_, _, reply) in std::mem::take(&mut self.confirmed) {
            let _ = reply.send(Err(ClientError::Storage(why.clone())));
        }
        self.failed = Some(why);
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

/// Keys purged per active-expiry entry: bounds the entry and the apply pause.
const PURGE_BATCH: u32 = 1000;

impl<E: ReplicaEngine> Loop<E> {
    /// Active expiry: the leader proposes a purge when some key's deadline has passed,
    /// so expired keys leave memory on every replica even if nobody touches them.
    fn maybe_purge(&mut self) {
        if self.purging.is_some() || self.engine.role() != consensus::Role::Leader {
            return;
        }
        if self.kv.next_deadline().is_some_and(|t| t <= now_ms()) {
            let purge = Command::Purge { limit: PURGE_BATCH };
            if let Ok(p) = self.engine.propose(purge.encode_at(now_ms())) {
                self.purging = Some(p.index);
            }
        }
    }
}

fn refusal(e: ProposeError) -> ClientError {
    match e {
        ProposeError::NotLeader { hint } => ClientError::NotLeader { hint },
        other => ClientError::Refused(other.to_string()),
    }
}
