//! Tuning and test-only fault knobs for one Multi-Paxos node.

use consensus::NodeId;

use crate::ballot::Ballot;

/// Protocol deviations for proving that the simulator's checks catch real bugs.
/// **Never enable outside tests**: each one breaks safety or liveness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultKnobs {
    /// A new leader ignores the accepted values its promises report and proposes its
    /// own log (and no-ops) instead: the classic Paxos bug that un-chooses a value.
    pub ignore_promised_values: bool,
    /// Send promises and acceptance acknowledgements before they are durable, and count
    /// the leader's own acceptance before its fsync: a crash then breaks a promise or
    /// forgets an acknowledged acceptance.
    pub skip_persist_barrier: bool,
    /// Serve reads at the local commit index with no quorum confirmation, on any node
    /// (a stale read whenever this node is partitioned away or lagging).
    pub read_without_quorum: bool,
    /// A preempted proposer re-prepares at once with a higher ballot instead of backing
    /// off for a randomized timeout: two such proposers can preempt each other forever
    /// (dueling proposers, a liveness bug).
    pub retry_without_backoff: bool,
}

/// Configuration of one Multi-Paxos node. `Config::new(id)` gives production defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id: non-zero and at most [`Ballot::NODE_MAX`] (it is part of every
    /// ballot this node proposes with).
    pub id: NodeId,
    /// Minimum failure-detection timeout in ticks; the actual one is drawn from
    /// `[election_ticks, 2 × election_ticks)` after every reset (the randomized
    /// back-off that lets dueling proposers converge).
    pub election_ticks: u32,
    /// Leader heartbeat interval in ticks; must be below `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Most slots not yet known chosen in one Accept message: how many new proposals
    /// share a message (1 disables batching).
    pub batch_slots_max: usize,
    /// Most slots already chosen in one Accept message, sent to an acceptor that is
    /// behind the commit index (a learner just added, a node back from a partition or a
    /// restart). Catching up is bounded by round trips, so it does not follow
    /// `batch_slots_max`: with one slot per message and one message in flight, an
    /// acceptor missing a few thousand slots would need as many round trips. The byte
    /// limit `batch_bytes_max` still applies.
    pub catchup_slots_max: usize,
    /// Most value bytes in one Accept message (at least one slot is always sent).
    pub batch_bytes_max: usize,
    /// Most Accept messages in flight to one acceptor (pipelining window).
    pub inflight_msgs_max: usize,
    /// Most value bytes in flight to one acceptor.
    pub inflight_bytes_max: usize,
    /// How far beyond the end of its log an acceptor accepts a slot. Bounds the holes a
    /// (buggy or hostile) leader can make it allocate; a correct leader never sends
    /// further ahead than its pipelining window.
    pub accept_ahead_slots_max: u64,
    /// Largest command accepted by `propose`.
    pub entry_bytes_max: usize,
    /// Most committed-entry bytes handed out in one `Ready` (at least one entry).
    pub apply_batch_bytes_max: usize,
    /// Snapshot chunk size.
    pub snapshot_chunk_bytes: usize,
    /// Pre-prepare: before choosing a new ballot, a node asks whether a quorum would
    /// promise it, changing no state anywhere. A node cut off from a quorum then never
    /// raises its ballot, and cannot depose a healthy leader when it returns (the idea
    /// of Raft's pre-vote, thesis §9.6).
    pub pre_prepare: bool,
    /// Leader stickiness: an acceptor that heard from its leader within
    /// `election_ticks` refuses to promise anyone else (unless a transfer asked), and
    /// a leader that has not heard from a quorum for that long steps down.
    pub check_quorum: bool,
    /// Seed of the node's private RNG (timeouts).
    pub seed: u64,
    /// Test-only protocol breakage.
    pub knobs: FaultKnobs,
}

impl Config {
    /// Production defaults: 10-tick failure detection, 2-tick heartbeats, pre-prepare
    /// and stickiness on, batching and pipelining on.
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 2,
            batch_slots_max: 1024,
            catchup_slots_max: 1024,
            batch_bytes_max: 1 << 20,
            inflight_msgs_max: 64,
            inflight_bytes_max: 16 << 20,
            accept_ahead_slots_max: 1 << 17,
            entry_bytes_max: 8 << 20,
            apply_batch_bytes_max: 16 << 20,
            snapshot_chunk_bytes: 1 << 20,
            pre_prepare: true,
            check_quorum: true,
            seed: id,
            knobs: FaultKnobs::default(),
        }
    }

    /// Checks the configuration; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.id == 0 || self.id > Ballot::NODE_MAX {
            return Err(format!(
                "node id {} must be in 1..={} (it is part of every ballot)",
                self.id,
                Ballot::NODE_MAX
            ));
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return Err(format!(
                "heartbeat_ticks ({}) must be in 1..election_ticks ({})",
                self.heartbeat_ticks, self.election_ticks
            ));
        }
        if self.batch_slots_max == 0 || self.catchup_slots_max == 0 || self.inflight_msgs_max == 0 {
            return Err(
                "batch_slots_max, catchup_slots_max and inflight_msgs_max must be positive".into(),
            );
        }
        if self.snapshot_chunk_bytes == 0 {
            return Err("snapshot_chunk_bytes must be positive".into());
        }
        if self.accept_ahead_slots_max == 0 {
            return Err("accept_ahead_slots_max must be positive".into());
        }
        Ok(())
    }
}
