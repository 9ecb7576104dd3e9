//! The multi-group host: every replication group a node holds, driven by ONE thread
//! over ONE log engine and ONE peer transport.
//!
//! ```text
//!  ticker (one for all groups) ─┐
//!  peers (batched frames) ──────┼─▶ [bounded input queue] ─▶ host thread: drain a batch of
//!  clients (group, request) ────┘                            inputs, then take a Ready from
//!        every group that has one ─▶ send ─▶ persist ALL ─▶ ONE fsync ─▶ send-after-sync ─▶
//!        apply ─▶ reply ─▶ advance; messages to the same peer leave as one frame
//! ```
//!
//! Why one thread and one log for many groups: the expensive things a replica does —
//! fsync, a socket write, a wake-up — do not grow with the number of groups when the
//! groups share them. A batch that touches 64 shards costs one fsync, not 64; a tick
//! wakes one thread, not 1,000; the heartbeats of every group led here to the same
//! peer travel in one frame ([`BATCH_GROUP`]), and one write syscall.
//!
//! The host thread also drives a single-threaded runtime ([`HostRuntime`]) between its
//! rounds: a node runs its peer connections and the router of their frames there, so
//! that consensus traffic goes from socket to host and from host to socket without
//! waking another thread. A round yields once between queueing the messages that need
//! nothing durable and its fsync, so a leader's appends are on the wire while its disk
//! works.
//!
//! Storage failure stops the whole host: every group shares the log whose durability
//! is now unknown, so every waiting and later request gets the storage error.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use consensus::{
    ConfigChange, LogIndex, NodeId, Payload, ProposeError, Ready, Recovered, Status, Term,
};
use kv::{Command, KvStore, Query, QueryResult, Response};
use storage::{LogEngine, Options, StorageError};
use tokio::sync::{mpsc, oneshot};

use crate::engine::ReplicaEngine;
use crate::replica::{now_ms, ClientError, Replica};
use crate::transport::{Incoming, Transport};

/// The transport group of a frame that carries messages of many groups to one peer:
/// `(group u64 | len u32 | message)*`.
pub const BATCH_GROUP: u64 = u64::MAX - 1;

/// Messages up to this size are coalesced into a peer's batch frame; bigger ones
/// (snapshot chunks, large appends) travel alone.
const COALESCE_MESSAGE_MAX: usize = 64 << 10;
/// A peer's batch frame is sent once it holds this much.
const COALESCE_FRAME_MAX: usize = 256 << 10;

/// What every group of a host shares.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// Where the log engine keeps its files.
    pub data_dir: PathBuf,
    /// Length of one engine tick (one timer for all groups).
    pub tick: Duration,
    /// Each group takes a snapshot every this many applied entries.
    pub compact_every: u64,
    /// How long a client request may wait for its answer.
    pub request_timeout: Duration,
    /// Log engine options (fsync policy).
    pub storage: Options,
}

/// One group a host runs from the start.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    /// The replication group id (never 0, [`BATCH_GROUP`] or `u64::MAX`).
    pub group: u64,
    /// Founding voters, used only when the data directory holds nothing for the group.
    pub voters: Vec<NodeId>,
    /// The node that should lead the group when it is up and caught up: a leader
    /// elsewhere hands leadership over to it, so that leadership (and with it the
    /// write load) spreads over the nodes as the placement intends.
    pub preferred_leader: Option<NodeId>,
}

/// A file in the data directory whose presence says the founding groups were made
/// durable (see [`Host::start`]).
const FOUNDED_MARKER: &str = "FOUNDED";

/// Writes `path` with `contents` whole or not at all, durably: through `path.tmp`,
/// fsync, rename, and an fsync of the directory. A crash leaves either no file or the
/// whole one, never an empty or half-written marker that the next start would misread.
pub fn write_durably(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Ticks a read passed by a follower to its leader may wait for confirmation (two
/// election timeouts at the default tuning; a healthy leader answers in one round trip).
const FOLLOWER_READ_TICKS: u64 = 20;

/// Ticks between two attempts of a group to hand leadership to its preferred leader.
const BALANCE_EVERY_TICKS: u32 = 50;

pub(crate) type ProposalReply = oneshot::Sender<Result<Response, ClientError>>;
pub(crate) type QueryReply = oneshot::Sender<Result<QueryResult, ClientError>>;

pub(crate) enum Input {
    Tick,
    Peer(Incoming),
    Propose(u64, Command, ProposalReply),
    /// Proposals handled as one input: no other input (a vote, a higher term) comes
    /// between them, so either the first is refused for leadership and so is every
    /// other, or all are taken in order.
    ProposeMany(u64, Vec<(Command, ProposalReply)>),
    Query(u64, Query, QueryReply),
    Status(u64, oneshot::Sender<Result<Status, ClientError>>),
    AddGroup(
        GroupSpec,
        oneshot::Sender<Result<Arc<AtomicU64>, ClientError>>,
    ),
    RemoveGroup(u64),
    /// The snapshot thread finished a job.
    SnapshotDone(SnapshotJobDone),
    ChangeConfig(u64, ConfigChange, oneshot::Sender<Result<(), ClientError>>),
    Transfer(u64, NodeId),
    Prefer(u64, Option<NodeId>),
    Stop,
}

/// Numbers the lives of groups on this node (see `Group::incarnation`).
static INCARNATIONS: AtomicU64 = AtomicU64::new(1);

/// Work for the snapshot thread, which keeps whole-state work off the host thread.
pub(crate) enum SnapshotJob {
    /// Encode `view`, the state of `group` at `index`.
    Encode {
        group: u64,
        /// Which life of the group on this node took it (a group id can come back).
        incarnation: u64,
        index: LogIndex,
        view: kv::KvView,
    },
    /// Write the snapshot's file (and fsync it).
    Write {
        group: u64,
        incarnation: u64,
        snap: consensus::Snapshot,
    },
}

/// What the snapshot thread reports back.
pub(crate) enum SnapshotJobDone {
    Encoded {
        group: u64,
        incarnation: u64,
        index: LogIndex,
        data: Bytes,
    },
    Written {
        group: u64,
        incarnation: u64,
        written: Result<storage::SnapshotFile, StorageError>,
    },
}

/// Runs snapshot jobs for the host thread, one at a time, and reports each back
/// through the host's input queue (held weakly, so it never keeps the host alive).
fn snapshot_thread(
    writer: storage::SnapshotWriter,
    jobs: std::sync::mpsc::Receiver<SnapshotJob>,
    done: mpsc::WeakSender<Input>,
) {
    while let Ok(job) = jobs.recv() {
        let report = match job {
            SnapshotJob::Encode {
                group,
                incarnation,
                index,
                view,
            } => SnapshotJobDone::Encoded {
                group,
                incarnation,
                index,
                data: view.encode(),
            },
            SnapshotJob::Write {
                group,
                incarnation,
                snap,
            } => SnapshotJobDone::Written {
                group,
                incarnation,
                written: writer.write(group, &snap),
            },
        };
        let Some(tx) = done.upgrade() else { return };
        if tx.blocking_send(Input::SnapshotDone(report)).is_err() {
            return;
        }
    }
}

/// Delivers peer frames to a host's thread (from [`Host::peer_inbox`]). Holds the
/// queue weakly, so it never keeps a stopped host alive.
#[derive(Clone)]
pub struct PeerInbox {
    tx: mpsc::WeakSender<Input>,
}

impl PeerInbox {
    /// Queues `m` for the host, waiting while its queue is full; false once the host
    /// has stopped.
    pub async fn deliver(&self, m: Incoming) -> bool {
        match self.tx.upgrade() {
            Some(tx) => tx.send(Input::Peer(m)).await.is_ok(),
            None => false,
        }
    }
}

/// The host's log engine as `/metrics` shows it: counters since the node started,
/// published by the host thread after every round.
#[derive(Debug, Default)]
pub struct StorageCounters {
    /// fsyncs of the log (one per group commit).
    pub fsyncs: AtomicU64,
    /// Bytes written to the log.
    pub bytes_written: AtomicU64,
    /// Live segment files.
    pub segments: AtomicU64,
    /// Segments started in a zero-filled file.
    pub segments_preallocated: AtomicU64,
}

/// The single-threaded runtime that a host's thread drives between its rounds.
///
/// Whatever is spawned on it — the peer transport's connections
/// ([`Transport::bind_on`]), the router of peer frames, the host's ticker — runs on
/// the host thread. A frame read from a peer then reaches the host, and a message
/// the host sends reaches its socket, without waking another thread. Each hop saved
/// is a thread wake-up of tens of microseconds on a write's path (the leader's
/// appends and the follower's acknowledgement went through four): with one write in
/// flight and fsync off, p50 fell from 0.33 to 0.24 ms on a 2-core VM.
///
/// Until [`Host::start_on`] hands it to the host thread nothing spawned on it runs
/// (sockets queue in the kernel meanwhile). Dropping it, on any thread, cancels its
/// tasks without waiting for them.
pub struct HostRuntime {
    rt: Option<tokio::runtime::Runtime>,
}

impl HostRuntime {
    /// A new runtime with I/O and timers, not yet driven by any thread.
    pub fn new() -> std::io::Result<HostRuntime> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(HostRuntime { rt: Some(rt) })
    }

    /// Where to spawn tasks (or register sockets) that should run on the host thread.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.as_ref().expect("present until dropped").handle()
    }

    /// Runs `f` to completion on this thread, along with every task spawned here (the
    /// host thread does this with its loop; tests may drive a runtime themselves).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("present until dropped").block_on(f)
    }
}

impl Drop for HostRuntime {
    fn drop(&mut self) {
        // A runtime dropped normally waits for its blocking work and may not be
        // dropped inside another runtime (where a failed `Host::start_on` leaves it).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The shared part of a running host: its input queue and thread. The thread stops
/// when the last holder (the [`Host`] or any [`Replica`] handle) is dropped.
pub(crate) struct HostCore {
    pub(crate) tx: mpsc::Sender<Input>,
    pub(crate) request_timeout: Duration,
    pub(crate) engine: &'static str,
    storage: Arc<StorageCounters>,
    /// The runtime the host thread drives.
    rt: tokio::runtime::Handle,
    thread: Mutex<Option<JoinHandle<()>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HostCore {
    fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.tx.try_send(Input::Stop);
        if let Some(t) = self.thread.lock().expect("not poisoned").take() {
            // The thread ends at Stop or when every sender is gone.
            let _ = t.join();
        }
    }
}

impl Drop for HostCore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A running host. Each of its groups is reached through a [`Replica`] handle; groups
/// can be added (a new replica that catches up from the group's leader) and removed
/// while it runs.
pub struct Host {
    core: Arc<HostCore>,
    replicas: Mutex<BTreeMap<u64, Arc<Replica>>>,
}

const INPUT_QUEUE: usize = 16_384;
const BATCH_INPUTS_MAX: usize = 4096;

impl Host {
    /// Opens the log engine in `cfg.data_dir`, recovers every group in `groups`
    /// (bootstrapping the ones the log does not hold) and starts the host thread, one
    /// ticker and the intake of `incoming` peer frames, on a [`HostRuntime`] of its
    /// own (see [`Host::start_on`] to share it with the transport).
    ///
    /// Each group's engine gets `engine_cfg` with its seed salted by the group id, so
    /// that groups on one node do not time out in lockstep.
    pub fn start<E: ReplicaEngine>(
        cfg: HostConfig,
        engine_cfg: E::Config,
        groups: &[GroupSpec],
        transport: Arc<Transport>,
        incoming: mpsc::Receiver<Incoming>,
    ) -> Result<Host, StorageError> {
        let rt = HostRuntime::new().map_err(|e| StorageError::Io {
            what: "start the host runtime",
            path: cfg.data_dir.clone(),
            source: e,
        })?;
        Host::start_on::<E>(rt, cfg, engine_cfg, groups, transport, incoming)
    }

    /// [`Host::start`], with the host thread driving `rt`: the tasks already spawned
    /// on it (the transport bound with [`Transport::bind_on`], the router of peer
    /// frames) run on the host thread from now on.
    pub fn start_on<E: ReplicaEngine>(
        rt: HostRuntime,
        cfg: HostConfig,
        engine_cfg: E::Config,
        groups: &[GroupSpec],
        transport: Arc<Transport>,
        mut incoming: mpsc::Receiver<Incoming>,
    ) -> Result<Host, StorageError> {
        let (mut log, mut recovered) = LogEngine::open(&cfg.data_dir, cfg.storage.clone())?;
        let mut states = HashMap::with_capacity(groups.len());
        let mut leaders = BTreeMap::new();
        let mut booted = false;
        // Founding groups are bootstrapped only until the founding is durable. After
        // that, a founding group missing from the log was dropped here (the cluster
        // moved it away): bootstrapping it again would resurrect a voter with an
        // empty log, which could help elect a leader that lacks acknowledged writes.
        let founded_marker = cfg.data_dir.join(FOUNDED_MARKER);
        let founded = founded_marker.exists();
        // The founding groups, then every other group the log holds (replicas this
        // node received after the cluster was founded).
        let mut specs: Vec<GroupSpec> = groups
            .iter()
            .filter(|s| !founded || recovered.contains_key(&s.group))
            .cloned()
            .collect();
        for s in groups
            .iter()
            .filter(|s| founded && !recovered.contains_key(&s.group))
        {
            tracing::info!(
                group = s.group,
                "not restarting a founding group this node dropped (it moved away)"
            );
        }
        for &group in recovered.keys() {
            if !specs.iter().any(|s| s.group == group) {
                specs.push(GroupSpec {
                    group,
                    voters: Vec::new(),
                    preferred_leader: None,
                });
            }
        }
        for spec in &specs {
            let group = spec.group;
            let rec = match recovered.remove(&group) {
                Some(r) => r,
                None => {
                    let boot = E::bootstrap(&spec.voters);
                    log.append(group, &boot.entries)?;
                    log.set_hard_state(group, boot.hard_state)?;
                    booted = true;
                    boot
                }
            };
            let g =
                Group::<E>::open(&engine_cfg, spec, rec).map_err(|why| StorageError::Corrupt {
                    file: cfg.data_dir.clone(),
                    offset: 0,
                    reason: why,
                })?;
            leaders.insert(group, g.leader.clone());
            states.insert(group, g);
        }
        if booted {
            log.sync()?;
        }
        if !founded {
            write_durably(
                &founded_marker,
                b"the founding groups of this node are in the log\n",
            )
            .map_err(|e| StorageError::Io {
                what: "recording that the founding groups are durable",
                path: founded_marker.clone(),
                source: e,
            })?;
        }
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);

        let ticker_tx = tx.clone();
        let tick = cfg.tick;
        let ticker = rt.handle().spawn(async move {
            let mut iv = tokio::time::interval(tick);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                // A full queue means the host is busy: skipping a tick is harmless.
                if let Err(mpsc::error::TrySendError::Closed(_)) = ticker_tx.try_send(Input::Tick) {
                    return;
                }
            }
        });
        let peer_tx = tx.clone();
        let intake = rt.handle().spawn(async move {
            while let Some(m) = incoming.recv().await {
                if peer_tx.send(Input::Peer(m)).await.is_err() {
                    return;
                }
            }
        });
        let (snapshot_jobs, jobs) = std::sync::mpsc::channel();
        let writer = log.snapshot_writer();
        let done = tx.downgrade();
        let snapshot_thread = std::thread::Builder::new()
            .name("snapshots".to_string())
            .spawn(move || snapshot_thread(writer, jobs, done))
            .map_err(|e| StorageError::Io {
                what: "spawn snapshot thread",
                path: cfg.data_dir.clone(),
                source: e,
            })?;
        let storage = Arc::new(StorageCounters::default());
        let mut state = Loop {
            engine_cfg,
            groups: states,
            log,
            counters: storage.clone(),
            transport,
            compact_every: cfg.compact_every,
            outbox: HashMap::new(),
            scratch: Vec::with_capacity(1024),
            failed: None,
            snapshot_jobs,
            snapshot_thread: Some(snapshot_thread),
        };
        let name = match &specs[..] {
            [one] => format!("replica-{}", one.group),
            _ => "host".to_string(),
        };
        let handle = rt.handle().clone();
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                rt.block_on(state.run(rx));
                state.stop_snapshots();
                drop(rt);
            })
            .map_err(|e| StorageError::Io {
                what: "spawn host thread",
                path: cfg.data_dir.clone(),
                source: e,
            })?;
        let core = Arc::new(HostCore {
            tx,
            request_timeout: cfg.request_timeout,
            engine: E::NAME,
            storage,
            rt: handle,
            thread: Mutex::new(Some(thread)),
            tasks: vec![ticker, intake],
        });
        let replicas = leaders
            .into_iter()
            .map(|(group, leader)| (group, Arc::new(Replica::new(core.clone(), group, leader))))
            .collect();
        Ok(Host {
            core,
            replicas: Mutex::new(replicas),
        })
    }

    /// Where the node's router hands this host its consensus frames: straight into
    /// the host thread's queue, one hop fewer than the `incoming` channel given to
    /// [`Host::start`] (which goes through a forwarding task).
    pub fn peer_inbox(&self) -> PeerInbox {
        PeerInbox {
            tx: self.core.tx.downgrade(),
        }
    }

    /// The runtime the host thread drives ([`HostRuntime`]): tasks spawned here run on
    /// the host thread, between its rounds.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.core.rt
    }

    /// The log engine's counters (for `/metrics`).
    pub fn storage_counters(&self) -> Arc<StorageCounters> {
        self.core.storage.clone()
    }

    /// The handle of `group`, if this host runs it.
    pub fn replica(&self, group: u64) -> Option<Arc<Replica>> {
        self.replicas
            .lock()
            .expect("not poisoned")
            .get(&group)
            .cloned()
    }

    /// Every group this host runs, with its handle.
    pub fn replicas(&self) -> BTreeMap<u64, Arc<Replica>> {
        self.replicas.lock().expect("not poisoned").clone()
    }

    /// Starts a replica of `spec.group` here. With no voters it starts empty and
    /// learns everything (the membership included) from the group's leader, which
    /// must have added this node as a learner. Returns the existing handle if the
    /// group already runs here.
    pub async fn add_group(&self, spec: GroupSpec) -> Result<Arc<Replica>, ClientError> {
        if let Some(r) = self.replica(spec.group) {
            return Ok(r);
        }
        let group = spec.group;
        let (reply, rx) = oneshot::channel();
        self.core
            .tx
            .send(Input::AddGroup(spec, reply))
            .await
            .map_err(|_| ClientError::Stopped)?;
        let leader = rx.await.map_err(|_| ClientError::Stopped)??;
        let r = Arc::new(Replica::new(self.core.clone(), group, leader));
        self.replicas
            .lock()
            .expect("not poisoned")
            .insert(group, r.clone());
        Ok(r)
    }

    /// Stops this node's replica of `group` (after the group removed it) and drops its
    /// durable state: a restart does not bring it back, and the WAL segments and
    /// snapshot files it held are reclaimed. Adding the group again later starts an
    /// empty replica, which must join as a learner (its promises are gone).
    pub async fn remove_group(&self, group: u64) {
        self.replicas.lock().expect("not poisoned").remove(&group);
        let _ = self.core.tx.send(Input::RemoveGroup(group)).await;
    }

    /// Proposes a membership change of `group` (this node must lead it); returns once
    /// proposed, not once committed.
    pub async fn change_config(&self, group: u64, change: ConfigChange) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        self.core
            .tx
            .send(Input::ChangeConfig(group, change, reply))
            .await
            .map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)?
    }

    /// Sets the node that should lead `group` (see [`GroupSpec::preferred_leader`]).
    pub async fn prefer_leader(&self, group: u64, node: Option<NodeId>) {
        let _ = self.core.tx.send(Input::Prefer(group, node)).await;
    }

    /// Asks this node's replica of `group`, if it leads, to hand leadership to `to`.
    pub async fn transfer_leadership(&self, group: u64, to: NodeId) {
        let _ = self.core.tx.send(Input::Transfer(group, to)).await;
    }

    /// The replication engine's name ("raft", "paxos").
    pub fn engine_name(&self) -> &'static str {
        self.core.engine
    }

    /// Stops the host thread and waits for it (handles still held by others answer
    /// [`ClientError::Stopped`] from now on).
    pub fn stop(self) {
        self.core.shutdown();
    }
}

/// One group's state on the host thread.
struct Group<E> {
    id: u64,
    engine: E,
    kv: KvStore,
    applied: LogIndex,
    /// Published after every batch that touched the group, so that callers notice a
    /// leadership change without asking the thread.
    leader: Arc<AtomicU64>,
    proposals: BTreeMap<LogIndex, (Term, ProposalReply)>,
    /// Reads awaiting confirmation, with the term they were requested in and, for a
    /// read a follower passed to its leader, the tick it gives up at.
    reads: BTreeMap<u64, (Query, QueryReply, Term, Option<u64>)>,
    /// Ticks since the group started here.
    ticks: u64,
    /// Bytes of commands applied since the last snapshot, and that snapshot's size.
    applied_bytes: u64,
    snapshot_bytes: u64,
    /// A snapshot file is being written for this group (one at a time).
    snapshot_writing: bool,
    /// Which life of this group id on this node (a group can be removed and come back).
    incarnation: u64,
    /// Confirmed reads waiting for `applied` to reach their index (with the tick a
    /// follower's read gives up at).
    confirmed: Vec<(LogIndex, Query, QueryReply, Option<u64>)>,
    /// The index of the active-expiry purge in flight, if any (one at a time).
    purging: Option<LogIndex>,
    next_ctx: u64,
    preferred_leader: Option<NodeId>,
    /// Ticks until the next leader-balancing check.
    balance_in: u32,
}

/// The host thread's state.
struct Loop<E: ReplicaEngine> {
    engine_cfg: E::Config,
    groups: HashMap<u64, Group<E>>,
    log: LogEngine,
    /// Where the log's counters are published.
    counters: Arc<StorageCounters>,
    transport: Arc<Transport>,
    compact_every: u64,
    /// Per peer: the batch frame being filled, and how many messages it holds.
    outbox: HashMap<NodeId, (BytesMut, usize)>,
    /// Reused encoding buffer (no allocation per message).
    scratch: Vec<u8>,
    failed: Option<String>,
    /// Snapshot files to write off this thread, and the thread writing them.
    snapshot_jobs: std::sync::mpsc::Sender<SnapshotJob>,
    snapshot_thread: Option<JoinHandle<()>>,
}

impl<E: ReplicaEngine> Loop<E> {
    /// The snapshot thread's report: an encoded state becomes the engine's snapshot
    /// and goes back to be written; a written file is recorded in the log.
    fn snapshot_done(&mut self, done: SnapshotJobDone) {
        let (group, incarnation) = match &done {
            SnapshotJobDone::Encoded {
                group, incarnation, ..
            }
            | SnapshotJobDone::Written {
                group, incarnation, ..
            } => (*group, *incarnation),
        };
        let current = self
            .groups
            .get_mut(&group)
            .filter(|g| g.incarnation == incarnation);
        match (current, done) {
            (
                _,
                SnapshotJobDone::Written {
                    written: Err(e), ..
                },
            ) => self.fail(e.to_string()),
            (None, SnapshotJobDone::Written { written: Ok(f), .. }) => self.log.discard_written(f),
            (None, SnapshotJobDone::Encoded { .. }) => {}
            (Some(g), SnapshotJobDone::Encoded { index, data, .. }) => {
                // Refused when a newer snapshot (from the leader) already covers it.
                if self.failed.is_some() || g.engine.compact(index, data).is_err() {
                    g.snapshot_writing = false;
                    return;
                }
                let snap = g.engine.snapshot().expect("just taken").clone();
                g.snapshot_bytes = snap.data.len() as u64;
                let job = SnapshotJob::Write {
                    group,
                    incarnation,
                    snap,
                };
                if self.snapshot_jobs.send(job).is_err() {
                    g.snapshot_writing = false;
                }
            }
            (Some(g), SnapshotJobDone::Written { written: Ok(f), .. }) => {
                g.snapshot_writing = false;
                if self.failed.is_none() {
                    if let Err(e) = self
                        .log
                        .compact_written(group, f)
                        .and_then(|()| self.log.sync())
                    {
                        self.fail(e.to_string());
                    }
                }
            }
        }
    }

    /// Stops the snapshot thread once it has finished the job in hand.
    fn stop_snapshots(&mut self) {
        self.snapshot_jobs = std::sync::mpsc::channel().0;
        if let Some(t) = self.snapshot_thread.take() {
            let _ = t.join();
        }
    }

    async fn run(&mut self, mut rx: mpsc::Receiver<Input>) {
        let mut touched: Vec<u64> = Vec::new();
        while let Some(first) = rx.recv().await {
            touched.clear();
            if !self.handle(first, &mut touched) {
                return;
            }
            for _ in 0..BATCH_INPUTS_MAX {
                match rx.try_recv() {
                    Ok(input) => {
                        if !self.handle(input, &mut touched) {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            touched.sort_unstable();
            touched.dedup();
            self.drive(&touched).await;
            // Let the peer connections (on this thread) write what the round queued
            // and read what arrived meanwhile, before the next batch of inputs.
            tokio::task::yield_now().await;
            self.publish_counters();
            for id in &touched {
                if let Some(g) = self.groups.get(id) {
                    let leader = if self.failed.is_some() {
                        0
                    } else {
                        g.engine.leader().unwrap_or(0)
                    };
                    g.leader.store(leader, Ordering::Relaxed);
                }
            }
        }
    }

    fn publish_counters(&self) {
        let st = self.log.stats();
        let c = &self.counters;
        c.fsyncs.store(st.fsyncs, Ordering::Relaxed);
        c.bytes_written.store(st.bytes_written, Ordering::Relaxed);
        c.segments.store(st.segments as u64, Ordering::Relaxed);
        c.segments_preallocated
            .store(st.segments_preallocated, Ordering::Relaxed);
    }

    /// Takes Readies from the touched groups until none has one: all of a round's
    /// writes are made durable by one fsync.
    async fn drive(&mut self, touched: &[u64]) {
        let mut pending: Vec<u64> = touched.to_vec();
        while self.failed.is_none() && !pending.is_empty() {
            let mut readies = Vec::new();
            for id in &pending {
                if let Some(g) = self.groups.get_mut(id) {
                    if g.engine.has_ready() {
                        readies.push((*id, g.engine.ready()));
                    }
                }
            }
            if readies.is_empty() {
                return;
            }
            if let Err(e) = self.round(&mut readies).await {
                self.fail(e.to_string());
                return;
            }
            pending = readies.into_iter().map(|(id, _)| id).collect();
        }
    }

    /// Proposes `cmd` to `group`'s engine; `reply` gets the outcome once applied, or
    /// the refusal now.
    fn propose(&mut self, group: u64, cmd: Command, reply: ProposalReply, touched: &mut Vec<u64>) {
        if let Some(why) = &self.failed {
            let _ = reply.send(Err(ClientError::Storage(why.clone())));
        } else if let Some(g) = self.groups.get_mut(&group) {
            match g.engine.propose(cmd.encode_at(now_ms())) {
                Ok(p) => {
                    g.proposals.insert(p.index, (p.term, reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(refusal(e)));
                }
            }
            touched.push(group);
        } else {
            let _ = reply.send(Err(no_such_group(group)));
        }
    }

    /// Handles one input, noting which groups it touched; false means stop.
    fn handle(&mut self, input: Input, touched: &mut Vec<u64>) -> bool {
        match input {
            Input::Stop => return false,
            Input::Tick => {
                if self.failed.is_none() {
                    for g in self.groups.values_mut() {
                        g.ticks += 1;
                        g.expire_follower_reads();
                        g.engine.tick();
                        g.maybe_purge();
                        g.maybe_hand_over();
                        touched.push(g.id);
                    }
                }
            }
            Input::Peer(m) if m.group == BATCH_GROUP => {
                let mut p = m.payload;
                while p.has_remaining() {
                    if p.remaining() < 12 {
                        tracing::warn!(from = m.from, "truncated batch frame dropped");
                        break;
                    }
                    let group = p.get_u64_le();
                    let len = p.get_u32_le() as usize;
                    if p.remaining() < len {
                        tracing::warn!(from = m.from, "truncated batch frame dropped");
                        break;
                    }
                    let msg = p.split_to(len);
                    self.deliver(m.from, group, msg, touched);
                }
            }
            Input::Peer(m) => self.deliver(m.from, m.group, m.payload, touched),
            Input::Propose(group, cmd, reply) => self.propose(group, cmd, reply, touched),
            Input::ProposeMany(group, proposals) => {
                for (cmd, reply) in proposals {
                    self.propose(group, cmd, reply, touched);
                }
            }
            Input::Query(group, q, reply) => {
                if let Some(why) = &self.failed {
                    let _ = reply.send(Err(ClientError::Storage(why.clone())));
                } else if let Some(g) = self.groups.get_mut(&group) {
                    g.next_ctx += 1;
                    let follower = g.engine.role() != consensus::Role::Leader;
                    match g.engine.read_index(g.next_ctx) {
                        Ok(()) => {
                            let term = g.engine.term();
                            let give_up = follower.then_some(g.ticks + FOLLOWER_READ_TICKS);
                            g.reads.insert(g.next_ctx, (q, reply, term, give_up));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(refusal(e)));
                        }
                    }
                    touched.push(group);
                } else {
                    let _ = reply.send(Err(no_such_group(group)));
                }
            }
            Input::AddGroup(spec, reply) => {
                let result = if let Some(why) = &self.failed {
                    Err(ClientError::Storage(why.clone()))
                } else if let Some(g) = self.groups.get(&spec.group) {
                    Ok(g.leader.clone())
                } else {
                    self.add_group(&spec)
                };
                let _ = reply.send(result);
            }
            Input::RemoveGroup(group) => {
                if let Some(mut g) = self.groups.remove(&group) {
                    tracing::info!(group, "replica removed from this node");
                    g.leader.store(0, Ordering::Relaxed);
                    for (_, (_, reply)) in std::mem::take(&mut g.proposals) {
                        let _ = reply.send(Err(ClientError::Stopped));
                    }
                    // Forget it on disk too: a restart must not bring back a replica
                    // its group removed, and its log must not pin WAL segments. (A
                    // removal is rare, so it gets its own fsync.)
                    if self.failed.is_none() {
                        if let Err(e) = self.log.drop_group(group).and_then(|()| self.log.sync()) {
                            self.fail(e.to_string());
                        }
                    }
                }
            }
            Input::SnapshotDone(done) => self.snapshot_done(done),
            Input::ChangeConfig(group, change, reply) => {
                let result = match self.groups.get_mut(&group) {
                    _ if self.failed.is_some() => Err(ClientError::Storage(
                        self.failed.clone().unwrap_or_default(),
                    )),
                    None => Err(no_such_group(group)),
                    Some(g) => {
                        touched.push(group);
                        g.engine.change_config(change).map(|_| ()).map_err(refusal)
                    }
                };
                let _ = reply.send(result);
            }
            Input::Prefer(group, node) => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.preferred_leader = node;
                }
            }
            Input::Transfer(group, to) => {
                if let Some(g) = self.groups.get_mut(&group) {
                    let _ = g.engine.transfer_leadership(to);
                    touched.push(group);
                }
            }
            Input::Status(group, reply) => {
                let status = match self.groups.get(&group) {
                    None => Err(no_such_group(group)),
                    Some(g) => {
                        let mut status = g.engine.status();
                        if self.failed.is_some() {
                            // The engine is frozen at its last state; a failed host
                            // leads nothing and follows no one, whatever it believed.
                            status.role = consensus::Role::Follower;
                            status.leader = None;
                        }
                        Ok(status)
                    }
                };
                let _ = reply.send(status);
            }
        }
        true
    }

    /// Creates a group at run time: founded here if `spec` names voters, else empty
    /// (it learns everything from the leader). Nothing is written until the engine
    /// asks: an empty replica that never hears from its group leaves no trace.
    fn add_group(&mut self, spec: &GroupSpec) -> Result<Arc<AtomicU64>, ClientError> {
        let rec = if spec.voters.is_empty() {
            Recovered::default()
        } else {
            let boot = E::bootstrap(&spec.voters);
            let written = self
                .log
                .append(spec.group, &boot.entries)
                .and_then(|()| self.log.set_hard_state(spec.group, boot.hard_state))
                .and_then(|()| self.log.sync());
            if let Err(e) = written {
                self.fail(e.to_string());
                return Err(ClientError::Storage(e.to_string()));
            }
            boot
        };
        let g = Group::<E>::open(&self.engine_cfg, spec, rec).map_err(ClientError::Refused)?;
        let leader = g.leader.clone();
        tracing::info!(
            group = spec.group,
            founded = !spec.voters.is_empty(),
            "replica added on this node"
        );
        self.groups.insert(spec.group, g);
        Ok(leader)
    }

    fn deliver(&mut self, from: NodeId, group: u64, payload: Bytes, touched: &mut Vec<u64>) {
        if self.failed.is_some() {
            return;
        }
        let Some(g) = self.groups.get_mut(&group) else {
            tracing::debug!(group, from, "message for a group this node does not hold");
            return;
        };
        match E::decode_message(payload) {
            Ok(msg) => {
                if let Err(e) = g.engine.step(from, msg) {
                    tracing::warn!(group, from, error = %e, "refused a peer message");
                }
                touched.push(group);
            }
            Err(e) => tracing::warn!(group, from, error = %e, "undecodable peer message"),
        }
    }

    /// One round of Readies from many groups: everything they must persist is written,
    /// then made durable by a single fsync, then applied and answered.
    async fn round(
        &mut self,
        readies: &mut [(u64, Ready<E::Message>)],
    ) -> Result<(), StorageError> {
        // Whether anything written must be durable before the round goes on: the
        // engines say (`Ready::must_sync`). A hard state that only moved the commit
        // index need not be (it is re-learned from the leader), so it rides along with
        // the next fsync instead of costing one of its own between a leader's commit
        // and its reply.
        let mut must_sync = false;
        for (id, ready) in readies.iter_mut() {
            for out in std::mem::take(&mut ready.messages) {
                self.queue(out.to, *id, &out.msg);
            }
            let g = self.groups.get_mut(id).expect("ready from a held group");
            if let Some(snap) = ready.snapshot.take() {
                self.log.install_snapshot(*id, &snap)?;
                g.kv = KvStore::restore(snap.data.clone()).map_err(|e| StorageError::Corrupt {
                    file: PathBuf::from("<snapshot from leader>"),
                    offset: 0,
                    reason: e.to_string(),
                })?;
                g.applied = snap.meta.index;
                g.snapshot_bytes = snap.data.len() as u64;
                g.applied_bytes = 0;
                tracing::info!(
                    group = *id,
                    index = snap.meta.index.0,
                    term = snap.meta.term.0,
                    bytes = snap.data.len(),
                    "installed a snapshot from the leader"
                );
            }
            if !ready.entries.is_empty() {
                self.log.append(*id, &ready.entries)?;
            }
            if let Some(hs) = ready.hard_state {
                self.log.set_hard_state(*id, hs)?;
            }
            must_sync |= ready.must_sync;
        }
        // Messages that need nothing durable leave before the fsync (a leader's appends
        // reach followers while its own disk works). The peer connections run on this
        // thread (`HostRuntime`): yield once so that they write before the disk blocks
        // it.
        if self.flush_outbox() && must_sync {
            tokio::task::yield_now().await;
        }
        // Committed entries are applied and answered before this round's fsync, not
        // after it: both engines hand out only entries that a quorum holds durably and
        // that this node made durable at an earlier `advance`, so this round's writes
        // add nothing to their safety. Waiting would hold every reply for the fsync of
        // the *next* batch, whose appends arrive with the acknowledgements that
        // committed this one: one more disk flush in every write's latency.
        for (id, ready) in readies.iter_mut() {
            let g = self.groups.get_mut(id).expect("ready from a held group");
            g.apply(ready);
        }
        if must_sync {
            self.log.sync()?; // the group commit: one fsync for every group's batch
        }
        for (id, ready) in readies.iter_mut() {
            for out in std::mem::take(&mut ready.messages_after_sync) {
                self.queue(out.to, *id, &out.msg);
            }
            let g = self.groups.get_mut(id).expect("ready from a held group");
            g.engine.advance(ready.number);
            g.fail_stale_reads();
            // A snapshot holds the whole state: take one only once the log since the
            // last one is at least as large, so that snapshots never cost more disk
            // and CPU than the writes they absorb (a large store under small writes
            // would otherwise rewrite itself every `compact_every` entries).
            if !g.snapshot_writing
                && g.applied - g.engine.snapshot_index() >= self.compact_every
                && g.applied_bytes >= g.snapshot_bytes
            {
                // Encoding and writing the whole state take tens of milliseconds for a
                // large store, which here would stall every group: they happen on the
                // snapshot thread, from a view that shares the values.
                g.snapshot_writing = true;
                g.applied_bytes = 0;
                let job = SnapshotJob::Encode {
                    group: *id,
                    incarnation: g.incarnation,
                    index: g.applied,
                    view: g.kv.view(),
                };
                if self.snapshot_jobs.send(job).is_err() {
                    g.snapshot_writing = false; // no snapshot thread: skip this one
                }
            }
        }
        self.flush_outbox();
        Ok(())
    }

    /// Queues `msg` for `to`: small messages join the peer's batch frame, big ones are
    /// sent alone (after the batch, to keep the peer's order).
    fn queue(&mut self, to: NodeId, group: u64, msg: &E::Message) {
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();
        E::encode_message(msg, &mut body);
        if body.len() > COALESCE_MESSAGE_MAX {
            self.flush_peer(to);
            self.transport.send(to, group, &body);
        } else {
            let (buf, count) = self
                .outbox
                .entry(to)
                .or_insert_with(|| (BytesMut::with_capacity(1024), 0));
            buf.put_u64_le(group);
            buf.put_u32_le(body.len() as u32);
            buf.put_slice(&body);
            *count += 1;
            if buf.len() >= COALESCE_FRAME_MAX {
                self.flush_peer(to);
            }
        }
        self.scratch = body;
    }

    fn flush_peer(&mut self, to: NodeId) {
        let Some((buf, count)) = self.outbox.get_mut(&to) else {
            return;
        };
        match *count {
            0 => {}
            // One message: send it as a plain frame of its group.
            1 => {
                let group = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
                self.transport.send(to, group, &buf[12..]);
            }
            _ => {
                self.transport.send(to, BATCH_GROUP, buf);
            }
        }
        buf.clear();
        *count = 0;
    }

    /// Sends every peer's batch frame; true if there was any.
    fn flush_outbox(&mut self) -> bool {
        let peers: Vec<NodeId> = self
            .outbox
            .iter()
            .filter(|(_, (_, n))| *n > 0)
            .map(|(p, _)| *p)
            .collect();
        for &p in &peers {
            self.flush_peer(p);
        }
        !peers.is_empty()
    }

    /// Storage failed: refuse everything from now on, answering every waiter.
    fn fail(&mut self, why: String) {
        tracing::error!(error = %why, "storage failed; every group on this node stops serving");
        for g in self.groups.values_mut() {
            // Entries are sent to followers before the leader's own fsync, so a
            // proposal in flight may still commit elsewhere: its outcome is unknown.
            for (_, (_, reply)) in std::mem::take(&mut g.proposals) {
                let _ = reply.send(Err(ClientError::StorageUnknown(why.clone())));
            }
            for (_, (_, reply, _, _)) in std::mem::take(&mut g.reads) {
                let _ = reply.send(Err(ClientError::Storage(why.clone())));
            }
            for (_, _, reply, _) in std::mem::take(&mut g.confirmed) {
                let _ = reply.send(Err(ClientError::Storage(why.clone())));
            }
            g.leader.store(0, Ordering::Relaxed);
        }
        self.failed = Some(why);
    }
}

/// Keys purged per active-expiry entry: bounds the entry and the apply pause.
const PURGE_BATCH: u32 = 1000;

impl<E: ReplicaEngine> Group<E> {
    /// A group's state from what the log recovered (or the founding state).
    fn open(engine_cfg: &E::Config, spec: &GroupSpec, rec: Recovered) -> Result<Group<E>, String> {
        let group = spec.group;
        let kv = match &rec.snapshot {
            Some(s) => KvStore::restore(s.data.clone())
                .map_err(|e| format!("snapshot of group {group} does not decode: {e}"))?,
            None => KvStore::new(),
        };
        let applied = rec
            .snapshot
            .as_ref()
            .map(|s| s.meta.index)
            .unwrap_or_default();
        let snapshot_bytes = rec.snapshot.as_ref().map_or(0, |s| s.data.len() as u64);
        let mut ecfg = engine_cfg.clone();
        E::salt_seed(&mut ecfg, group);
        let engine = E::boot(ecfg, rec)?;
        Ok(Group {
            id: group,
            engine,
            kv,
            applied,
            leader: Arc::new(AtomicU64::new(0)),
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            ticks: 0,
            applied_bytes: 0,
            snapshot_bytes,
            snapshot_writing: false,
            incarnation: INCARNATIONS.fetch_add(1, Ordering::Relaxed),
            confirmed: Vec::new(),
            purging: None,
            next_ctx: 0,
            preferred_leader: spec.preferred_leader,
            // Spread the first attempts over a period, not all on one tick.
            balance_in: BALANCE_EVERY_TICKS + (group % u64::from(BALANCE_EVERY_TICKS)) as u32,
        })
    }

    /// Applies committed entries, answers their proposers and the reads they unblock.
    fn apply(&mut self, ready: &mut Ready<E::Message>) {
        for e in std::mem::take(&mut ready.committed_entries) {
            self.applied = e.index;
            let response = match &e.payload {
                Payload::Command(cmd) => {
                    self.applied_bytes += cmd.len() as u64;
                    Some(self.kv.apply(cmd.clone()))
                }
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
        while let Some(entry) = self.proposals.first_entry() {
            if *entry.key() > self.applied {
                break;
            }
            let (_, reply) = entry.remove();
            let _ = reply.send(Err(ClientError::Stopped));
        }
        for rs in std::mem::take(&mut ready.read_states) {
            if let Some((q, reply, _, give_up)) = self.reads.remove(&rs.ctx) {
                self.confirmed.push((rs.index, q, reply, give_up));
            }
        }
        if !self.confirmed.is_empty() {
            let applied = self.applied;
            let (serve, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
                .into_iter()
                .partition(|(i, _, _, _)| *i <= applied);
            self.confirmed = wait;
            if !serve.is_empty() {
                let now = now_ms();
                for (_, q, reply, _) in serve {
                    let _ = reply.send(Ok(self.kv.query(&q, now)));
                }
            }
        }
        if self.purging.is_some_and(|i| i <= self.applied) {
            self.purging = None;
        }
    }

    /// A read requested in an earlier term will never be confirmed: the leader it
    /// waited on (this node or another) has lost its term.
    fn fail_stale_reads(&mut self) {
        let term = self.engine.term();
        if self.reads.values().any(|(_, _, t, _)| *t != term) {
            let hint = self.engine.leader();
            let (old, keep): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.reads)
                .into_iter()
                .partition(|(_, (_, _, t, _))| *t != term);
            self.reads = keep;
            for (_, (_, reply, _, _)) in old {
                let _ = reply.send(Err(ClientError::NotLeader { hint }));
            }
        }
    }

    /// A read this replica passed to its leader and that is still not served after
    /// [`FOLLOWER_READ_TICKS`] (unconfirmed, or confirmed at an index this replica
    /// has not applied) fails with the leader's name, so the caller asks the leader
    /// directly. Both steps normally take a round trip; a read stuck longer means this
    /// replica was removed from the group without hearing of it (the leader no longer
    /// answers it or sends it entries), and it would otherwise wait for the whole
    /// request timeout.
    fn expire_follower_reads(&mut self) {
        let now = self.ticks;
        let due = |g: &Option<u64>| g.is_some_and(|g| g <= now);
        let stuck = self.reads.values().any(|(_, _, _, g)| due(g))
            || self.confirmed.iter().any(|(_, _, _, g)| due(g));
        if !stuck {
            return;
        }
        let hint = self.engine.leader();
        let (old, keep): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.reads)
            .into_iter()
            .partition(|(_, (_, _, _, g))| due(g));
        self.reads = keep;
        let (old_confirmed, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.confirmed)
            .into_iter()
            .partition(|(_, _, _, g)| due(g));
        self.confirmed = waiting;
        let replies = old
            .into_values()
            .map(|(_, reply, _, _)| reply)
            .chain(old_confirmed.into_iter().map(|(_, _, reply, _)| reply));
        for reply in replies {
            let _ = reply.send(Err(ClientError::NotLeader { hint }));
        }
    }

    /// Leader balancing: a leader that is not its group's preferred leader transfers
    /// leadership to it once that replica is active and has every entry (so the
    /// transfer is quick and the group is not left leaderless waiting for it).
    fn maybe_hand_over(&mut self) {
        let Some(preferred) = self.preferred_leader else {
            return;
        };
        self.balance_in = self.balance_in.saturating_sub(1);
        if self.balance_in > 0 {
            return;
        }
        self.balance_in = BALANCE_EVERY_TICKS;
        if self.engine.role() != consensus::Role::Leader || self.engine.id() == preferred {
            return;
        }
        if !crate::cluster::policy::ready_to_hand_over(&self.engine.status(), preferred) {
            // Look again soon, off the beat of the engine's activity resets (a check
            // every N ticks could always land just after one).
            self.balance_in = 7;
            return;
        }
        match self.engine.transfer_leadership(preferred) {
            Ok(()) => {
                tracing::info!(
                    group = self.id,
                    to = preferred,
                    "handing leadership to the preferred leader"
                )
            }
            Err(e) => {
                tracing::debug!(group = self.id, to = preferred, error = %e, "cannot hand leadership over yet")
            }
        }
    }

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

fn no_such_group(group: u64) -> ClientError {
    ClientError::Refused(format!("this node holds no replica of group {group}"))
}

fn refusal(e: ProposeError) -> ClientError {
    match e {
        ProposeError::NotLeader { hint } => ClientError::NotLeader { hint },
        ProposeError::TransferInProgress => ClientError::Transferring,
        other => ClientError::Refused(other.to_string()),
    }
}
