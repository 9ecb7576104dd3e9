//! Tuning and test-only fault knobs for one Raft node.

use consensus::NodeId;

/// How linearizable reads are confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// ReadIndex: each batch of reads waits for one heartbeat round acknowledged by a
    /// quorum. Safe under any clock behaviour.
    Safe,
    /// Leader lease: reads are served at the commit index without a round trip while
    /// the lease holds. **Clock assumption:** no node's tick rate differs from another's
    /// by more than `lease_drift_permille`/1000. The lease starts when a heartbeat round
    /// is *sent* and lasts `election_ticks × (1 − d)/(1 + d) − 1` leader ticks, during
    /// which every acknowledging follower refuses to vote for anyone else (check-quorum
    /// lease, also held for `election_ticks` after a restart). Requires `check_quorum`.
    Lease,
}

/// Protocol deviations for proving that the simulator's checks catch real bugs.
/// **Never enable outside tests**: each one breaks safety.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultKnobs {
    /// Grant votes without the §5.4.1 log up-to-date check.
    pub vote_without_log_check: bool,
    /// Commit entries of earlier terms by counting replicas (the §5.4.2 / Figure 8 bug).
    pub commit_any_term: bool,
    /// Send vote grants and append acknowledgements before they are durable, and count
    /// the leader's own entries before its fsync.
    pub skip_persist_barrier: bool,
    /// Serve reads at the local commit index with no quorum confirmation, on any node
    /// (a stale read whenever this node is partitioned away or lagging).
    pub read_without_quorum: bool,
}

/// Configuration of one Raft node. `Config::new(id)` gives production defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// Minimum election timeout in ticks; the actual one is drawn from
    /// `[election_ticks, 2 × election_ticks)` after every reset.
    pub election_ticks: u32,
    /// Leader heartbeat interval in ticks; must be below `election_ticks`.
    pub heartbeat_ticks: u32,
    /// Most entries in one append message (1 disables batching).
    pub batch_entries_max: usize,
    /// Most entry bytes in one append message (at least one entry is always sent).
    pub batch_bytes_max: usize,
    /// Most appends in flight to one follower in the Replicate state.
    pub inflight_msgs_max: usize,
    /// Most entry bytes in flight to one follower.
    pub inflight_bytes_max: usize,
    /// Largest command accepted by `propose`.
    pub entry_bytes_max: usize,
    /// Most committed-entry bytes handed out in one `Ready` (at least one entry).
    pub apply_batch_bytes_max: usize,
    /// Snapshot chunk size for InstallSnapshot.
    pub snapshot_chunk_bytes: usize,
    /// Pre-vote (thesis §9.6): a node must be able to win before it bumps the term.
    pub pre_vote: bool,
    /// Check-quorum: a leader that has not heard from a quorum within an election
    /// timeout steps down, and followers ignore votes while they hear from a leader.
    pub check_quorum: bool,
    /// How reads are confirmed.
    pub read_mode: ReadMode,
    /// Bound on relative tick-rate drift between nodes, in thousandths (lease reads).
    pub lease_drift_permille: u32,
    /// Seed of the node's private RNG (election timeouts).
    pub seed: u64,
    /// Test-only protocol breakage.
    pub knobs: FaultKnobs,
}

impl Config {
    /// Production defaults: 10-tick election timeout, 2-tick heartbeat, pre-vote and
    /// check-quorum on, ReadIndex reads, batching and pipelining on.
    pub fn new(id: NodeId) -> Self {
        Config {
            id,
            election_ticks: 10,
            heartbeat_ticks: 2,
            batch_entries_max: 1024,
            batch_bytes_max: 1 << 20,
            inflight_msgs_max: 64,
            inflight_bytes_max: 16 << 20,
            entry_bytes_max: 8 << 20,
            apply_batch_bytes_max: 16 << 20,
            snapshot_chunk_bytes: 1 << 20,
            pre_vote: true,
            check_quorum: true,
            read_mode: ReadMode::Safe,
            lease_drift_permille: 100,
            seed: id,
            knobs: FaultKnobs::default(),
        }
    }

    /// Checks the configuration; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("node id 0 is reserved".into());
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return Err(format!(
                "heartbeat_ticks ({}) must be in 1..election_ticks ({})",
                self.heartbeat_ticks, self.election_ticks
            ));
        }
        if self.batch_entries_max == 0 || self.inflight_msgs_max == 0 {
            return Err("batch_entries_max and inflight_msgs_max must be positive".into());
        }
        if self.snapshot_chunk_bytes == 0 {
            return Err("snapshot_chunk_bytes must be positive".into());
        }
        if self.read_mode == ReadMode::Lease {
            if !self.check_quorum {
                return Err("lease reads need check_quorum".into());
            }
            if self.lease_ticks() == 0 {
                return Err("election_ticks too small for a lease at this drift bound".into());
            }
        }
        Ok(())
    }

    /// How many of its own ticks a leader may serve lease reads after sending a
    /// heartbeat round that a quorum acknowledged (see [`ReadMode::Lease`]).
    pub fn lease_ticks(&self) -> u64 {
        let d = self.lease_drift_permille.min(999) as u64;
        (self.election_ticks as u64 * (1000 - d) / (1000 + d)).saturating_sub(1)
    }
}
