//! The leader's replication state for one peer, and its flow-control window.
//!
//! ```text
//!            reject / heartbeat ack          snapshot needed
//!   Probe ──────────────────────────▶ Probe ───────────────▶ Snapshot
//!     │  ▲          accept                                       │
//!     │  └─────────── reject (conflict) ── Replicate ◀───────────┘ acked
//!     └────────────── accept ──────────────────▲
//! ```
//! In `Probe` one append is outstanding at a time while the match point is found. In
//! `Replicate`, appends are pipelined: `next` advances optimistically and the window
//! of in-flight appends is bounded by message count and bytes.

use std::collections::VecDeque;

use consensus::{LogIndex, ReplicationState};

/// A bounded window of in-flight appends, each remembered by its last index and size.
#[derive(Clone, Debug, Default)]
pub(crate) struct Inflights {
    queue: VecDeque<(LogIndex, usize)>,
    bytes: usize,
}

impl Inflights {
    pub(crate) fn add(&mut self, last: LogIndex, bytes: usize) {
        self.queue.push_back((last, bytes));
        self.bytes += bytes;
    }

    /// Frees every append whose last index is ≤ `index` (acknowledged).
    pub(crate) fn free_to(&mut self, index: LogIndex) {
        while let Some(&(last, bytes)) = self.queue.front() {
            if last > index {
                break;
            }
            self.queue.pop_front();
            self.bytes -= bytes;
        }
    }

    /// Frees the oldest in-flight append (used when a heartbeat proves the peer alive
    /// while the window is full, so a lost append cannot block it forever).
    pub(crate) fn free_first(&mut self) {
        if let Some((_, bytes)) = self.queue.pop_front() {
            self.bytes -= bytes;
        }
    }

    pub(crate) fn reset(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }

    pub(crate) fn is_full(&self, count_max: usize, bytes_max: usize) -> bool {
        self.queue.len() >= count_max || self.bytes >= bytes_max
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

/// What the leader knows about one follower or learner.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Highest index known to be replicated (and durable) on the peer.
    pub(crate) matched: LogIndex,
    /// Next index to send. Invariant: `matched < next`.
    pub(crate) next: LogIndex,
    pub(crate) state: ReplicationState,
    /// In `Probe`: an append is outstanding; wait for its answer or a heartbeat ack.
    pub(crate) probe_sent: bool,
    pub(crate) inflights: Inflights,
    /// Heard from since the last check-quorum round.
    pub(crate) recent_active: bool,
    /// In `Snapshot`: the snapshot being sent and how far the peer acknowledged it.
    pub(crate) snapshot_index: LogIndex,
    pub(crate) snapshot_offset: u64,
    /// Ticks since the last snapshot chunk was sent (for retransmission).
    pub(crate) snapshot_idle_ticks: u32,
    /// The highest commit index sent to the peer, so that a commit advance reaches it
    /// promptly even when no new entries follow.
    pub(crate) commit_sent: LogIndex,
}

impl Progress {
    pub(crate) fn new(next: LogIndex) -> Self {
        Progress {
            matched: LogIndex(0),
            next,
            state: ReplicationState::Probe,
            probe_sent: false,
            inflights: Inflights::default(),
            recent_active: false,
            snapshot_index: LogIndex(0),
            snapshot_offset: 0,
            snapshot_idle_ticks: 0,
            commit_sent: LogIndex(0),
        }
    }

    pub(crate) fn become_probe(&mut self) {
        // After a snapshot the peer has at least the snapshot.
        let floor = if self.state == ReplicationState::Snapshot {
            self.snapshot_index.max(self.matched)
        } else {
            self.matched
        };
        self.state = ReplicationState::Probe;
        self.next = floor.next();
        self.probe_sent = false;
        self.inflights.reset();
        self.snapshot_index = LogIndex(0);
        self.snapshot_offset = 0;
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.next = self.matched.next();
        self.probe_sent = false;
        self.inflights.reset();
    }

    pub(crate) fn become_snapshot(&mut self, index: LogIndex) {
        self.state = ReplicationState::Snapshot;
        self.snapshot_index = index;
        self.snapshot_offset = 0;
        self.snapshot_idle_ticks = 0;
        self.inflights.reset();
    }

    /// The peer acknowledged up to `index`. Returns whether `matched` advanced.
    pub(crate) fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index.next());
        updated
    }

    /// The peer rejected an append whose previous index was `rejected`; `hint` is where
    /// to try next. Returns false for a stale rejection (ignored).
    pub(crate) fn maybe_decr_to(&mut self, rejected: LogIndex, hint: LogIndex) -> bool {
        match self.state {
            // Rejections of appends we already know matched are stale; a fresh one
            // means the pipeline is broken: fall back to probing.
            ReplicationState::Replicate => {
                if rejected <= self.matched {
                    return false;
                }
                self.become_probe();
            }
            // In Probe only the answer to the outstanding probe counts; a rejection at
            // or below `matched` cannot come from a peer that keeps its promises, and
            // acting on it would resend the same probe forever.
            ReplicationState::Probe => {
                if self.next.prev() != rejected || rejected <= self.matched {
                    return false;
                }
            }
            ReplicationState::Snapshot => return false,
        }
        self.next = hint.next().min(rejected).max(self.matched.next());
        self.probe_sent = false;
        true
    }

    /// Whether sending to this peer must wait.
    pub(crate) fn is_paused(&self, count_max: usize, bytes_max: usize) -> bool {
        match self.state {
            ReplicationState::Probe => self.probe_sent,
            ReplicationState::Replicate => self.inflights.is_full(count_max, bytes_max),
            ReplicationState::Snapshot => true,
        }
    }

    /// Records an append of entries up to `last` (of `bytes` size) as sent.
    pub(crate) fn sent_entries(&mut self, last: Option<LogIndex>, bytes: usize) {
        match self.state {
            ReplicationState::Replicate => {
                if let Some(last) = last {
                    self.next = last.next();
                    self.inflights.add(last, bytes);
                }
            }
            ReplicationState::Probe => self.probe_sent = true,
            ReplicationState::Snapshot => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_fills_and_frees_by_count_and_bytes() {
        let mut w = Inflights::default();
        w.add(LogIndex(5), 100);
        w.add(LogIndex(9), 100);
        assert!(w.is_full(2, 1000));
        assert!(w.is_full(10, 200));
        w.free_to(LogIndex(5));
        assert_eq!(w.len(), 1);
        assert!(!w.is_full(2, 200));
    }

    #[test]
    fn probe_backs_off_to_the_hint_but_not_below_match() {
        let mut p = Progress::new(LogIndex(10));
        p.matched = LogIndex(3);
        assert!(p.maybe_decr_to(LogIndex(9), LogIndex(5)));
        assert_eq!(p.next, LogIndex(6));
        // A stale rejection of an earlier probe is ignored.
        assert!(!p.maybe_decr_to(LogIndex(9), LogIndex(1)));
        assert!(p.maybe_decr_to(LogIndex(5), LogIndex(0)));
        assert_eq!(p.next, LogIndex(4), "never below matched + 1");
    }

    #[test]
    fn replicate_falls_back_to_match_on_a_fresh_rejection() {
        let mut p = Progress::new(LogIndex(1));
        p.maybe_update(LogIndex(4));
        p.become_replicate();
        p.sent_entries(Some(LogIndex(8)), 10);
        assert_eq!(p.next, LogIndex(9));
        assert!(
            !p.maybe_decr_to(LogIndex(4), LogIndex(2)),
            "stale: 4 is matched"
        );
        assert!(p.maybe_decr_to(LogIndex(6), LogIndex(5)));
        assert_eq!(p.state, ReplicationState::Probe);
        assert_eq!(p.next, LogIndex(6));
    }
}
