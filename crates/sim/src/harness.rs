//! What the simulator needs from an engine beyond the [`Engine`] contract: a way to
//! boot it, read-only views for the invariant checkers, and the engine-specific checks.
//! Implemented by every engine the simulator drives; the shared checks (state machine
//! safety, election safety, applied ≤ committed, convergence, linearizability) hold every
//! engine to the same rules, and each engine adds the properties its paper states.

use consensus::{Engine, Entry, LogIndex, Membership, NodeId, Recovered, Role, Snapshot, Term};

use crate::invariants::{
    leader_completeness, log_matching, paxos_chosen, paxos_promises, Observations, Violation,
};
use crate::node::Disk;

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
    /// Multi-Paxos's test-only protocol breakage.
    pub paxos_knobs: paxos::FaultKnobs,
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
            paxos_knobs: paxos::FaultKnobs::default(),
        }
    }
}

/// An engine the simulator can boot and inspect.
pub trait SimEngine: Engine + Sized {
    /// The engine's name in reports.
    const NAME: &'static str;
    /// Whether the engine needs a ready's `entries` persisted all or none. hakv's log
    /// engine provides it (one checksummed record per append, a torn record dropped
    /// whole); when set, a simulated crash keeps all or none of them instead of any
    /// prefix. Raft does not need it (it only ever truncates uncommitted suffixes).
    const ATOMIC_ENTRIES: bool;
    /// A node restarted from `recovered` (or fresh with `Recovered::default()`).
    fn boot(id: NodeId, seed: u64, params: &EngineParams, recovered: Recovered) -> Self;
    /// The durable state of a founding member of a group of `voters`.
    fn bootstrap(voters: &[NodeId]) -> Recovered;
    /// Current role.
    fn role(&self) -> Role;
    /// Current term (for Multi-Paxos, the promised ballot in its term encoding); what a
    /// leader's [`consensus::Proposed::term`] carries.
    fn term(&self) -> Term;
    /// Commit index.
    fn commit_index(&self) -> LogIndex;
    /// Last log index.
    fn last_index(&self) -> LogIndex;
    /// Last index covered by the snapshot.
    fn snapshot_index(&self) -> LogIndex;
    /// The entry at `index` if still in the log, as it would be applied.
    fn entry(&self, index: LogIndex) -> Option<Entry>;
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
    /// The engine's own safety properties of one running node, after every event.
    fn check_node(obs: &mut Observations, id: NodeId, node: &Self) -> Result<(), Violation>;
    /// Checks `entries` that node `id` is about to persist.
    fn check_persist(
        obs: &mut Observations,
        id: NodeId,
        node: &Self,
        entries: &[Entry],
    ) -> Result<(), Violation>;
    /// Observes that `entries` of node `id` just became durable (a leader counts its own
    /// durable writes without telling anyone).
    fn check_durable(
        obs: &mut Observations,
        id: NodeId,
        node: &Self,
        entries: &[Entry],
    ) -> Result<(), Violation>;
    /// Observes `msg` as it leaves `from`, whose disk holds `disk` at that moment.
    fn check_sent(
        obs: &mut Observations,
        from: NodeId,
        msg: &Self::Message,
        disk: &Disk,
    ) -> Result<(), Violation>;
}

fn digest(msg: &impl std::hash::Hash) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    msg.hash(&mut h);
    std::hash::Hasher::finish(&h)
}

impl SimEngine for raft::Raft {
    const NAME: &'static str = "raft";
    const ATOMIC_ENTRIES: bool = false;

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

    fn entry(&self, index: LogIndex) -> Option<Entry> {
        raft::Raft::entry(self, index).cloned()
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
        digest(msg)
    }

    /// Leader Completeness (Raft §5.4).
    fn check_node(obs: &mut Observations, id: NodeId, node: &Self) -> Result<(), Violation> {
        leader_completeness::check(obs, id, node)
    }

    /// Log Matching (Raft §5.3).
    fn check_persist(
        obs: &mut Observations,
        id: NodeId,
        node: &Self,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let prev = node.term_at(first.index.prev());
        log_matching::check_persisted(obs, id, entries, prev)
    }

    fn check_durable(
        _obs: &mut Observations,
        _id: NodeId,
        _node: &Self,
        _entries: &[Entry],
    ) -> Result<(), Violation> {
        Ok(())
    }

    fn check_sent(
        _obs: &mut Observations,
        _from: NodeId,
        _msg: &raft::Message,
        _disk: &Disk,
    ) -> Result<(), Violation> {
        Ok(())
    }
}

impl SimEngine for paxos::Paxos {
    const NAME: &'static str = "paxos";
    /// An acceptor raising one slot's ballot rewrites every later slot it holds (the
    /// shared log replaces the stored suffix); only an all-or-none write keeps the
    /// acknowledged ones among them (see `paxos::durable`).
    const ATOMIC_ENTRIES: bool = true;

    /// Multi-Paxos reads always use the quorum barrier: `lease_reads` does not apply.
    fn boot(id: NodeId, seed: u64, p: &EngineParams, recovered: Recovered) -> Self {
        let mut cfg = paxos::Config::new(id);
        cfg.seed = seed;
        cfg.election_ticks = p.election_ticks;
        cfg.heartbeat_ticks = p.heartbeat_ticks;
        cfg.batch_slots_max = p.batch_entries_max;
        cfg.inflight_msgs_max = p.inflight_msgs_max;
        cfg.snapshot_chunk_bytes = p.snapshot_chunk_bytes;
        cfg.pre_prepare = p.pre_vote;
        cfg.check_quorum = p.check_quorum;
        cfg.knobs = p.paxos_knobs;
        paxos::Paxos::new(cfg, recovered).expect("simulator parameters are valid")
    }

    fn bootstrap(voters: &[NodeId]) -> Recovered {
        paxos::Paxos::bootstrap(voters)
    }

    fn role(&self) -> Role {
        paxos::Paxos::role(self)
    }

    fn term(&self) -> Term {
        paxos::Paxos::term(self)
    }

    fn commit_index(&self) -> LogIndex {
        paxos::Paxos::commit_index(self)
    }

    fn last_index(&self) -> LogIndex {
        paxos::Paxos::last_index(self)
    }

    fn snapshot_index(&self) -> LogIndex {
        paxos::Paxos::snapshot_index(self)
    }

    fn entry(&self, index: LogIndex) -> Option<Entry> {
        paxos::Paxos::entry(self, index)
    }

    fn term_at(&self, index: LogIndex) -> Option<Term> {
        paxos::Paxos::term_at(self, index)
    }

    fn latest_snapshot(&self) -> Option<&Snapshot> {
        paxos::Paxos::snapshot(self)
    }

    fn membership(&self) -> &Membership {
        paxos::Paxos::membership(self)
    }

    fn message_kind(msg: &paxos::Message) -> &'static str {
        msg.body.kind()
    }

    fn message_digest(msg: &paxos::Message) -> u64 {
        digest(msg)
    }

    /// A promise is never broken; every value a node learned chosen is the one a quorum
    /// chose.
    fn check_node(obs: &mut Observations, id: NodeId, node: &Self) -> Result<(), Violation> {
        paxos_promises::check_node(obs, id, node.promised())?;
        paxos_chosen::check_learned(obs, id, node)
    }

    fn check_persist(
        _obs: &mut Observations,
        _id: NodeId,
        _node: &Self,
        _entries: &[Entry],
    ) -> Result<(), Violation> {
        Ok(())
    }

    /// A leader's own acceptances, counted by it as soon as they are durable.
    fn check_durable(
        obs: &mut Observations,
        id: NodeId,
        node: &Self,
        entries: &[Entry],
    ) -> Result<(), Violation> {
        if node.role() != Role::Leader {
            return Ok(());
        }
        paxos_chosen::check_own_acceptances(obs, id, node.promised(), entries)
    }

    /// Promises and acknowledged acceptances, as they are told to others.
    fn check_sent(
        obs: &mut Observations,
        from: NodeId,
        msg: &paxos::Message,
        disk: &Disk,
    ) -> Result<(), Violation> {
        paxos_promises::check_sent(obs, from, msg, disk)?;
        paxos_chosen::check_sent(obs, from, msg, disk)
    }
}
