//! The leader's view of one acceptor: how far it has acknowledged, what to send next,
//! and the pipelining window.
//!
//! ```text
//!            ack covering everything sent          gap reported (through < last)
//!   Probe ──────────────────────────────▶ Replicate ────────────────────────────▶ Probe
//!     │ next falls below the leader's snapshot                                      ▲
//!     ▼                                                                             │
//!   Snapshot ─────────────── acknowledged through the snapshot ──────────────────────┘
//! ```

use std::collections::VecDeque;

use consensus::{LogIndex, ReplicationState};

/// Accept messages in flight to one acceptor: (last slot, bytes), oldest first.
#[derive(Clone, Debug, Default)]
pub(crate) struct Inflights {
    sent: VecDeque<(LogIndex, usize)>,
    bytes: usize,
}

impl Inflights {
    pub(crate) fn add(&mut self, last: LogIndex, bytes: usize) {
        self.sent.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every message whose last slot is at or below `last`.
    pub(crate) fn free_to(&mut self, last: LogIndex) {
        while let Some(&(l, b)) = self.sent.front() {
            if l > last {
                break;
            }
            self.sent.pop_front();
            self.bytes -= b;
        }
    }

    /// Frees the oldest message (presumed lost).
    pub(crate) fn free_first(&mut self) {
        if let Some((_, b)) = self.sent.pop_front() {
            self.bytes -= b;
        }
    }

    pub(crate) fn is_full(&self, msgs_max: usize, bytes_max: usize) -> bool {
        self.sent.len() >= msgs_max || self.bytes >= bytes_max
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.sent.clear();
        self.bytes = 0;
    }
}

/// One acceptor, as its leader sees it.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// The acceptor holds the chosen value, or has durably accepted this leader's, in
    /// every slot up to here. Only grows within a leadership.
    pub(crate) matched: LogIndex,
    /// Next slot to send.
    pub(crate) next: LogIndex,
    pub(crate) state: ReplicationState,
    /// Probe: a message is out; wait for an answer (or a heartbeat ack) before the next.
    pub(crate) probe_sent: bool,
    pub(crate) inflights: Inflights,
    /// Heard from within the current check-quorum period.
    pub(crate) recent_active: bool,
    /// The acceptor's own commit index, as last reported.
    pub(crate) commit: LogIndex,
    /// The highest commit index sent to it (no empty accept just to repeat it).
    pub(crate) commit_sent: LogIndex,
    /// `matched` at the previous heartbeat acknowledgement: no progress over a whole
    /// heartbeat interval while slots are outstanding means an accept was lost.
    pub(crate) matched_at_heartbeat: LogIndex,
    /// Snapshot being sent: its index, the acknowledged offset, ticks without progress.
    pub(crate) snapshot_index: LogIndex,
    pub(crate) snapshot_offset: u64,
    pub(crate) snapshot_idle_ticks: u32,
}

impl Progress {
    /// An acceptor known to hold chosen values up to `matched`.
    pub(crate) fn new(matched: LogIndex) -> Self {
        Progress {
            matched,
            next: matched.next(),
            state: ReplicationState::Probe,
            probe_sent: false,
            inflights: Inflights::default(),
            recent_active: false,
            commit: LogIndex(0),
            commit_sent: LogIndex(0),
            matched_at_heartbeat: LogIndex(0),
            snapshot_index: LogIndex(0),
            snapshot_offset: 0,
            snapshot_idle_ticks: 0,
        }
    }

    /// Raises `matched`; returns whether it moved.
    pub(crate) fn maybe_update(&mut self, through: LogIndex) -> bool {
        if through > self.matched {
            self.matched = through;
            if self.next <= through {
                self.next = through.next();
            }
            true
        } else {
            false
        }
    }

    pub(crate) fn become_probe(&mut self, next: LogIndex) {
        self.state = ReplicationState::Probe;
        self.next = next.max(self.matched.next());
        self.probe_sent = false;
        self.inflights.clear();
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.probe_sent = false;
    }

    pub(crate) fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ReplicationState::Snapshot;
        self.snapshot_index = index;
        self.snapshot_offset = 0;
        self.snapshot_idle_ticks = 0;
        self.inflights.clear();
    }

    /// Whether sending must wait.
    pub(crate) fn is_paused(&self, msgs_max: usize, bytes_max: usize) -> bool {
        match self.state {
            ReplicationState::Probe => self.probe_sent,
            ReplicationState::Replicate => self.inflights.is_full(msgs_max, bytes_max),
            ReplicationState::Snapshot => true,
        }
    }

    /// Records an Accept of slots up to `last` (`bytes` of values) just sent.
    pub(crate) fn sent(&mut self, last: LogIndex, bytes: usize) {
        match self.state {
            ReplicationState::Replicate => {
                self.next = last.next();
                self.inflights.add(last, bytes);
            }
            ReplicationState::Probe => self.probe_sent = true,
            ReplicationState::Snapshot => {}
        }
    }
}
