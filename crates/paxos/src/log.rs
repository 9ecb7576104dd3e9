//! The acceptor's log: a snapshot base followed by one slot per index, each holding the
//! value this node accepted there (and in which ballot) or nothing (a hole).
//!
//! ```text
//!   snapshot ─┐ first               applied   committed   stable   handed     last
//!   ──────────┴──┬─────┬──── ... ──────┼──────────┼──────────┼────────┼──────────┤
//!             slots[0]  (holes allowed above `committed`)                  slots[n-1]
//! ```
//! Invariants (checked by [`PaxosLog::check_invariants`] and where slots change):
//! - `slots[k]` is slot `snap_index + 1 + k`; the last slot is never a hole;
//! - `snap_index ≤ applied ≤ committed ≤ last_index`, and no slot up to `committed` is a
//!   hole: every one holds the value chosen there;
//! - `stable ≤ handed ≤ last_index`: slots up to `stable` are durable as they are in
//!   memory; slots up to `handed` were given to the shell and are being written.
//!   Changing a slot lowers both below it, because the shared log format replaces the
//!   whole stored suffix from the first slot rewritten.
//!
//! Only durable chosen slots are handed out for applying, so that a restart never has
//! to "un-apply" something the disk forgot.

use consensus::codec::DecodeError;
use consensus::{Entry, LogIndex, Snapshot, Term};

use crate::ballot::Ballot;
use crate::durable;
use crate::message::{Accepted, Report};

/// The log of one Multi-Paxos node.
#[derive(Debug)]
pub(crate) struct PaxosLog {
    snap_index: LogIndex,
    /// The origin (as a term) of the value chosen at `snap_index`.
    snap_term: Term,
    slots: Vec<Option<Accepted>>,
    committed: LogIndex,
    applied: LogIndex,
    stable: LogIndex,
    handed: LogIndex,
    /// A snapshot received from a leader, not yet handed to the shell.
    pending_snapshot: Option<Snapshot>,
    /// Cache for [`PaxosLog::through`]: every slot in `(committed, run.1]` was accepted
    /// in ballot `run.0`.
    run: (Ballot, LogIndex),
}

impl PaxosLog {
    /// A log recovered from a durable snapshot and entries (both may be empty). Entries
    /// must continue the snapshot contiguously; a suffix that does not is ignored (a
    /// torn write) but a record that does not decode is corruption.
    pub(crate) fn recover(
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        commit: LogIndex,
    ) -> Result<Self, String> {
        let (snap_index, snap_term) = snapshot
            .map(|s| (s.meta.index, s.meta.term))
            .unwrap_or_default();
        let mut slots = Vec::new();
        for e in entries.iter().filter(|e| e.index > snap_index) {
            if e.index != snap_index + slots.len() as u64 + 1 {
                break;
            }
            let accepted = durable::from_entry(e)
                .map_err(|DecodeError(why)| format!("slot {}: {why}", e.index))?;
            slots.push(accepted);
        }
        while slots.last().is_some_and(Option::is_none) {
            slots.pop();
        }
        let mut log = PaxosLog {
            snap_index,
            snap_term,
            slots,
            committed: snap_index,
            applied: snap_index,
            stable: snap_index,
            handed: snap_index,
            pending_snapshot: None,
            run: (Ballot::ZERO, LogIndex(0)),
        };
        log.stable = log.last_index();
        log.handed = log.stable;
        // The stored commit index is a hint written after the slots it covers; never
        // trust it past a hole or the end.
        let mut c = snap_index;
        while c < commit.min(log.last_index()) && log.get(c.next()).is_some() {
            c = c.next();
        }
        log.committed = c;
        Ok(log)
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        self.snap_index.next()
    }

    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snap_index
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.snap_index + self.slots.len() as u64
    }

    pub(crate) fn committed(&self) -> LogIndex {
        self.committed
    }

    pub(crate) fn applied(&self) -> LogIndex {
        self.applied
    }

    pub(crate) fn stable(&self) -> LogIndex {
        self.stable
    }

    /// The highest ballot any held slot was accepted in.
    pub(crate) fn max_accepted_ballot(&self) -> Ballot {
        self.slots
            .iter()
            .flatten()
            .map(|a| a.ballot)
            .max()
            .unwrap_or(Ballot::ZERO)
    }

    /// What this node accepted at `slot`, if it holds the slot and it is not a hole.
    pub(crate) fn get(&self, slot: LogIndex) -> Option<&Accepted> {
        if slot <= self.snap_index || slot > self.last_index() {
            return None;
        }
        self.slots[(slot - self.snap_index - 1) as usize].as_ref()
    }

    /// The origin (as a term) of the value at `slot`, including the snapshot's last.
    pub(crate) fn origin_term(&self, slot: LogIndex) -> Option<Term> {
        if slot == self.snap_index {
            return Some(self.snap_term);
        }
        self.get(slot).map(|a| a.value.origin.to_term())
    }

    /// Records that this node accepted `accepted` at `slot`, extending the log with
    /// holes if needed. Returns whether anything changed.
    ///
    /// # Panics
    /// If `slot` is at or below the commit index: a chosen slot never changes.
    pub(crate) fn set(&mut self, slot: LogIndex, accepted: Accepted) -> bool {
        assert!(
            slot > self.committed,
            "slot {slot} is chosen (commit {}); it cannot be re-accepted",
            self.committed
        );
        if self.get(slot) == Some(&accepted) {
            return false;
        }
        let k = (slot - self.snap_index - 1) as usize;
        if k >= self.slots.len() {
            self.slots.resize(k + 1, None);
        }
        self.slots[k] = Some(accepted);
        let before = slot.prev();
        self.stable = self.stable.min(before);
        self.handed = self.handed.min(before);
        if self.run.1 >= slot {
            self.run.1 = before;
        }
        true
    }

    /// The largest `t` such that every slot up to `t` is chosen (and held) or accepted
    /// in `ballot`: what an acceptor acknowledges to the leader of `ballot`. Amortized
    /// O(1) per new slot thanks to the cached run.
    pub(crate) fn through(&mut self, ballot: Ballot) -> LogIndex {
        let mut end = self.committed;
        if self.run.0 == ballot && self.run.1 > end {
            end = self.run.1;
        }
        while self.get(end.next()).is_some_and(|a| a.ballot == ballot) {
            end = end.next();
        }
        self.run = (ballot, end);
        end
    }

    /// Raises the commit index; never lowers it.
    ///
    /// # Panics
    /// If a slot in the new range is a hole or beyond the log: only held values can be
    /// known chosen.
    pub(crate) fn commit_to(&mut self, index: LogIndex) -> bool {
        if index <= self.committed {
            return false;
        }
        let mut i = self.committed.next();
        while i <= index {
            assert!(self.get(i).is_some(), "commit {index} over a hole at {i}");
            i = i.next();
        }
        self.committed = index;
        true
    }

    /// Acceptances after slot `from`, for a promise.
    pub(crate) fn reports_after(&self, from: LogIndex) -> Vec<Report> {
        let start = from.max(self.snap_index).next();
        let mut out = Vec::new();
        let mut slot = start;
        while slot <= self.last_index() {
            if let Some(a) = self.get(slot) {
                out.push(Report {
                    slot,
                    accepted: a.clone(),
                });
            }
            slot = slot.next();
        }
        out
    }

    /// Slots not yet handed to the shell, in persisted form; marks them handed.
    pub(crate) fn take_unpersisted(&mut self) -> Vec<Entry> {
        let mut out = Vec::with_capacity((self.last_index() - self.handed) as usize);
        let mut slot = self.handed.next();
        while slot <= self.last_index() {
            out.push(durable::to_entry(slot, self.get(slot)));
            slot = slot.next();
        }
        self.handed = self.last_index();
        out
    }

    pub(crate) fn has_unpersisted(&self) -> bool {
        self.handed < self.last_index()
    }

    /// The shell made the slots of a ready durable, up to `upto`. Slots rewritten since
    /// that ready was taken (below `handed` now) stay unstable.
    pub(crate) fn persisted(&mut self, upto: LogIndex) {
        self.stable = self.stable.max(upto.min(self.handed));
    }

    /// Chosen, durable values not yet handed out for applying, as the shell sees them
    /// (see [`crate::Value::to_entry`]); marks them applied.
    pub(crate) fn take_committed(&mut self, max_bytes: usize) -> Vec<Entry> {
        let hi = self.committed.min(self.stable);
        if hi <= self.applied || self.pending_snapshot.is_some() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut size = 0;
        let mut slot = self.applied.next();
        while slot <= hi {
            let e = self
                .get(slot)
                .expect("no holes up to commit")
                .value
                .to_entry(slot);
            size += e.size_bytes();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e);
            self.applied = slot;
            slot = slot.next();
        }
        out
    }

    pub(crate) fn has_committed_to_apply(&self) -> bool {
        self.pending_snapshot.is_none() && self.committed.min(self.stable) > self.applied
    }

    /// Replaces the whole log with a snapshot from the leader. The caller has checked
    /// that nothing held beyond it is still needed (`Paxos::may_install`).
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.snap_index = snapshot.meta.index;
        self.snap_term = snapshot.meta.term;
        self.slots.clear();
        self.committed = self.snap_index;
        self.applied = self.snap_index;
        self.stable = self.snap_index;
        self.handed = self.snap_index;
        self.run = (Ballot::ZERO, LogIndex(0));
        self.pending_snapshot = Some(snapshot);
    }

    pub(crate) fn take_pending_snapshot(&mut self) -> Option<Snapshot> {
        self.pending_snapshot.take()
    }

    pub(crate) fn has_pending_snapshot(&self) -> bool {
        self.pending_snapshot.is_some()
    }

    /// Drops slots up to `index` (which the shell has snapshotted).
    pub(crate) fn compact(&mut self, index: LogIndex) {
        assert!(index > self.snap_index && index <= self.applied);
        let term = self.origin_term(index).expect("applied slot is held");
        let n = (index - self.snap_index) as usize;
        self.slots.drain(..n);
        self.snap_index = index;
        self.snap_term = term;
    }

    /// Panics with context if a structural invariant is broken. O(1): hole-freedom up
    /// to `committed` is established by `commit_to` and kept by `set`'s precondition.
    pub(crate) fn check_invariants(&self) {
        assert!(
            self.snap_index <= self.applied
                && self.applied <= self.committed
                && self.committed <= self.last_index(),
            "snap {} applied {} committed {} last {}",
            self.snap_index,
            self.applied,
            self.committed,
            self.last_index()
        );
        assert!(
            self.slots.last().is_none_or(Option::is_some),
            "the log ends with a hole"
        );
        assert!(
            self.committed == self.snap_index || self.get(self.committed).is_some(),
            "hole at the commit index {}",
            self.committed
        );
        assert!(self.stable <= self.handed && self.handed <= self.last_index());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Value;
    use consensus::Payload;

    fn acc(ballot: u64, origin: u64) -> Accepted {
        Accepted {
            ballot: Ballot::new(ballot, 1),
            value: Value {
                origin: Ballot::new(origin, 1),
                payload: Payload::Noop,
            },
        }
    }

    #[test]
    fn accepting_out_of_order_leaves_holes_that_are_persisted_as_such() {
        let mut log = PaxosLog::recover(None, &[], LogIndex(0)).unwrap();
        assert!(log.set(LogIndex(3), acc(1, 1)));
        assert_eq!(log.last_index(), LogIndex(3));
        assert!(log.get(LogIndex(1)).is_none() && log.get(LogIndex(2)).is_none());
        let written = log.take_unpersisted();
        assert_eq!(written.len(), 3);
        let back = PaxosLog::recover(None, &written, LogIndex(0)).unwrap();
        assert_eq!(back.get(LogIndex(3)), Some(&acc(1, 1)));
        assert!(back.get(LogIndex(2)).is_none());
    }

    #[test]
    fn rewriting_a_slot_makes_the_suffix_from_it_unstable() {
        let mut log = PaxosLog::recover(None, &[], LogIndex(0)).unwrap();
        for s in 1..=4 {
            log.set(LogIndex(s), acc(1, 1));
        }
        log.take_unpersisted();
        log.persisted(LogIndex(4));
        assert_eq!(log.stable(), LogIndex(4));
        log.set(LogIndex(2), acc(2, 1));
        assert_eq!(log.stable(), LogIndex(1));
        let rewritten: Vec<u64> = log.take_unpersisted().iter().map(|e| e.index.0).collect();
        assert_eq!(
            rewritten,
            vec![2, 3, 4],
            "the stored suffix from 2 is replaced"
        );
    }

    #[test]
    fn through_counts_the_contiguous_run_in_one_ballot_after_the_chosen_prefix() {
        let mut log = PaxosLog::recover(None, &[], LogIndex(0)).unwrap();
        log.set(LogIndex(1), acc(1, 1));
        log.set(LogIndex(2), acc(2, 2));
        log.set(LogIndex(3), acc(2, 2));
        log.set(LogIndex(5), acc(2, 2));
        assert_eq!(
            log.through(Ballot::new(2, 1)),
            LogIndex(0),
            "slot 1 is older"
        );
        log.commit_to(LogIndex(1));
        assert_eq!(log.through(Ballot::new(2, 1)), LogIndex(3), "hole at 4");
        log.set(LogIndex(4), acc(2, 2));
        assert_eq!(log.through(Ballot::new(2, 1)), LogIndex(5));
        log.set(LogIndex(3), acc(3, 2));
        assert_eq!(log.through(Ballot::new(2, 1)), LogIndex(2), "3 moved on");
    }

    #[test]
    fn a_stored_commit_index_is_never_trusted_past_a_hole() {
        let mut log = PaxosLog::recover(None, &[], LogIndex(0)).unwrap();
        log.set(LogIndex(1), acc(1, 1));
        log.set(LogIndex(3), acc(1, 1));
        let written = log.take_unpersisted();
        let back = PaxosLog::recover(None, &written, LogIndex(3)).unwrap();
        assert_eq!(back.committed(), LogIndex(1));
    }
}
