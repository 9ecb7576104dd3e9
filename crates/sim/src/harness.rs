//! What the simulator needs from an engine beyond the [`Engine`] contract: a way to
//! boot it and read-only views for the invariant checkers. Implemented by every engine
//! the simulator drives, so each is held to the same checks.

use consensus::{Engine, Entry, LogIndex, Membership, NodeId, Recovered, Role, Snapshot, Term};

/// Engine tuning the simulator draws from its seed.
#[derive(Clone, Debug)]
pub struct EngineParams {
    /// Minimum election timeout in ticks.
    pub election_ticks: u32,
    /// Heartbeat interval in ticks.
    pub heartbeat_ticks: u32,
    /// Entries per append message.
    pub batch_entries_max: usize,
    /// Appends in flight per follower.
    pub inflight_msgs_max: usize,
    /// Snapshot chunk size (small values force multi-chunk transfers).
    pub snapshot_chunk_bytes: usize,
    /// Pre-vote on.
    pub pre_vote: bool,
    /// Check-quorum on.
    pub check_quorum: bool,
    /// Lease reads instead of ReadIndex rounds.
    pub lease_reads: bool,
    /// The drift bound the lease assumes, in thousandths.
    pub lease_drift_permille: u32,
    /// Raft's test-only protocol breakage.
    pub raft_knobs: raft::FaultKnobs,
}

impl Default for EngineParams {
    fn default() -> Self {
        EngineParams {
            election_ticks: 10,
            heartbeat_ticks: 2,
            batch_entries_max: 64,
            inflight_msgs_max: 8,
            snapshot_chunk_bytes: 1024,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            lease_drift_permille: 100,
            raft_knobs: raft::FaultKnobs::default(),
        }
    }
}

/// An engine the simulator can boot and inspect.
pub trait SimEngine: Engine + Sized {
    /// The engine's name in reports.
    const NAME: &'static str;
    /// A node restarted from `recovered` (or fresh with `Recovered::default()`).
    fn boot(id: NodeId, seed: u64, params: &EngineParams, recovered: Recovered) -> Self;
    /// The durable state of a founding member of a group of `voters`.
    fn bootstrap(voters: &[NodeId]) -> Recovered;
    /// Current role.
    fn role(&self) -> Role;
    /// Current term (ballot round).
    fn term(&self) -> Term;
    /// Commit index.
    fn commit_index(&self) -> LogIndex;
    /// Last log index.
    fn last_index(&self) -> LogIndex;
    /// Last index covered by the snapshot.
    fn snapshot_index(&self) -> LogIndex;
    /// The entry at `index` if still in the log.
    fn entry(&self, index: LogIndex) -> Option<&Entry>;
    /// The term at `index` if known (including the snapshot's last index).
    fn term_at(&self, index: LogIndex) -> Option<Term>;
    /// The latest snapshot held.
    fn latest_snapshot(&self) -> Option<&Snapshot>;
    /// The membership in effect.
    fn membership(&self) -> &Membership;
    /// A short name of a message for traces.
    fn message_kind(msg: &Self::Message) -> &'static str;
    /// A hash of a message's full content, for the determinism check.
    fn message_digest(msg: &Self::Message) -> u64;
}

impl SimEngine for raft::Raft {
    const NAME: &'static str = "raft";

    fn boot(id: NodeId, seed: u64, p: &EngineParams, recovered: Recovered) -> Self {
        let mut cfg = raft::Config::new(id);
        cfg.seed = seed;
        cfg.election_ticks = p.election_ticks;
        cfg.heartbeat_ticks = p.heartbeat_ticks;
        cfg.batch_entries_max = p.batch_entries_max;
        cfg.inflight_msgs_max = p.inflight_msgs_max;
        cfg.snapshot_chunk_bytes = p.snapshot_chunk_bytes;
        cfg.pre_vote = p.pre_vote;
        cfg.check_quorum = p.check_quorum;
        cfg.read_mode = if p.lease_reads {
            raft::ReadMode::Lease
        } else {
            raft::ReadMode::Safe
        };
        cfg.lease_drift_permille = p.lease_drift_permille;
        cfg.knobs = p.raft_knobs;
        raft::Raft::new(cfg, recovered).expect("simulator parameters are valid")
    }

    fn bootstrap(voters: &[NodeId]) -> Recovered {
        raft::Raft::bootstrap(voters)
    }

    fn role(&self) -> Role {
        raft::Raft::role(self)
    }

    fn term(&self) -> Term {
        raft::Raft::term(self)
    }

    fn commit_index(&self) -> LogIndex {
        raft::Raft::commit_index(self)
    }

    fn last_index(&self) -> LogIndex {
        raft::Raft::last_index(self)
    }

    fn snapshot_index(&self) -> LogIndex {
        raft::Raft::snapshot_index(self)
    }

    fn entry(&self, index: LogIndex) -> Option<&Entry> {
        raft::Raft::entry(self, index)
    }

    fn term_at(&self, index: LogIndex) -> Option<Term> {
        raft::Raft::term_at(self, index)
    }

    fn latest_snapshot(&self) -> Option<&Snapshot> {
        raft::Raft::snapshot(self)
    }

    fn membership(&self) -> &Membership {
        raft::Raft::membership(self)
    }

    fn message_kind(msg: &raft::Message) -> &'static str {
        msg.body.kind()
    }

    fn message_digest(msg: &raft::Message) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(msg, &mut h);
        std::hash::Hasher::finish(&h)
    }
}
