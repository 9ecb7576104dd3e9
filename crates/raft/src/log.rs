//! The in-memory replicated log: a snapshot base followed by entries.
//!
//! ```text
//!   snapshot ─┐ first                 applied   committed   stable   handed   last
//!   ──────────┴───┬───────┬──── ... ──────┼──────────┼─────────┼────────┼──────┤
//!                 entries[0]                                                entries[n-1]
//! ```
//! Invariants (checked by [`RaftLog::check_invariants`]):
//! - `entries[k].index == snap_index + 1 + k`, terms never decrease along the log;
//! - `snap_index ≤ applied ≤ committed ≤ last_index`;
//! - `stable ≤ handed ≤ last_index`: entries up to `stable` are durable, entries up to
//!   `handed` were given to the shell in a `Ready` and are being written.
//!
//! Only durable entries are handed out for applying (`applied ≤ stable` at hand-out),
//! so that a restart never has to "un-apply" something the disk forgot.

use consensus::{Entry, LogIndex, Snapshot, Term};

/// Why entries could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LogError {
    /// The range starts at or below the snapshot: send the snapshot instead.
    Compacted,
}

/// The log of one Raft node.
#[derive(Debug)]
pub(crate) struct RaftLog {
    snap_index: LogIndex,
    snap_term: Term,
    entries: Vec<Entry>,
    committed: LogIndex,
    applied: LogIndex,
    stable: LogIndex,
    handed: LogIndex,
    /// A snapshot received from the leader, not yet handed to the shell.
    pending_snapshot: Option<Snapshot>,
}

impl RaftLog {
    /// A log recovered from a durable snapshot and entries (both may be empty).
    pub(crate) fn recover(
        snapshot: Option<&Snapshot>,
        entries: Vec<Entry>,
        commit: LogIndex,
    ) -> Self {
        let (snap_index, snap_term) = snapshot
            .map(|s| (s.meta.index, s.meta.term))
            .unwrap_or_default();
        let mut log = RaftLog {
            snap_index,
            snap_term,
            entries: Vec::new(),
            committed: snap_index,
            applied: snap_index,
            stable: snap_index,
            handed: snap_index,
            pending_snapshot: None,
        };
        // Recovered entries must continue the snapshot; anything else is ignored (a
        // shell bug would show up as a missing suffix, not as a corrupt log).
        for e in entries {
            if e.index == log.last_index().next() && e.term >= log.last_term() {
                log.entries.push(e);
            } else if e.index > log.snap_index {
                break;
            }
        }
        log.stable = log.last_index();
        log.handed = log.stable;
        log.committed = commit.clamp(snap_index, log.last_index());
        log
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        self.snap_index.next()
    }

    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snap_index
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.snap_index + self.entries.len() as u64
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries
            .last()
            .map(|e| e.term)
            .unwrap_or(self.snap_term)
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

    /// The term of the entry at `index`, if it is in the log or is the snapshot's last.
    pub(crate) fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snap_index {
            return Some(self.snap_term);
        }
        if index < self.snap_index || index > self.last_index() {
            return None;
        }
        Some(self.entries[(index - self.snap_index - 1) as usize].term)
    }

    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.snap_index || index > self.last_index() {
            return None;
        }
        Some(&self.entries[(index - self.snap_index - 1) as usize])
    }

    pub(crate) fn match_term(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft §5.4.1: a candidate's log is at least as up-to-date as ours if its last
    /// term is higher, or equal with an index at least as high.
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// The follower side of AppendEntries (Raft §5.3). Returns the index of the last
    /// entry now known to match the leader, or `None` if `prev` does not match.
    /// Errs (changing nothing) if the entries would overwrite a committed entry: no
    /// legitimate leader sends that.
    pub(crate) fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        leader_commit: LogIndex,
        entries: &[Entry],
    ) -> Result<Option<LogIndex>, String> {
        if !self.match_term(prev_index, prev_term) {
            // Below the snapshot everything matches by definition (it is committed);
            // the caller answers with our commit index.
            return Ok(None);
        }
        let last_new = prev_index + entries.len() as u64;
        if let Some(conflict) = self.find_conflict(entries) {
            if conflict <= self.committed {
                return Err(format!(
                    "entry at {conflict} conflicts with committed prefix up to {}",
                    self.committed
                ));
            }
            let start = (conflict - prev_index - 1) as usize;
            self.append(&entries[start..]);
        }
        self.commit_to(leader_commit.min(last_new));
        Ok(Some(last_new))
    }

    /// The first index among `entries` whose term differs from ours or that we lack.
    /// Entries at or below the snapshot are skipped (they match, being committed).
    fn find_conflict(&self, entries: &[Entry]) -> Option<LogIndex> {
        entries
            .iter()
            .find(|e| e.index > self.snap_index && !self.match_term(e.index, e.term))
            .map(|e| e.index)
    }

    /// Appends `entries`, first truncating any suffix starting at `entries[0].index`.
    /// Precondition: `committed < entries[0].index ≤ last_index + 1`.
    pub(crate) fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        assert!(
            first.index > self.committed && first.index <= self.last_index().next(),
            "append at {} with committed {} last {}",
            first.index,
            self.committed,
            self.last_index()
        );
        let keep = (first.index - self.snap_index - 1) as usize;
        self.entries.truncate(keep);
        let before_term = self.last_term();
        assert!(
            entries
                .windows(2)
                .all(|w| w[1].index == w[0].index.next() && w[0].term <= w[1].term)
                && first.term >= before_term,
            "appended entries must be contiguous with non-decreasing terms"
        );
        self.entries.extend_from_slice(entries);
        let before = first.index.prev();
        self.stable = self.stable.min(before);
        self.handed = self.handed.min(before);
    }

    /// Raises the commit index; never lowers it.
    pub(crate) fn commit_to(&mut self, index: LogIndex) -> bool {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} beyond last {}",
                self.last_index()
            );
            self.committed = index;
            true
        } else {
            false
        }
    }

    /// For fast backtracking: the largest index ≤ `index` whose term is ≤ `term`, with
    /// its term. Everything after it is known not to match a log whose entry at `index`
    /// has `term` (etcd's `findConflictByTerm`).
    pub(crate) fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut i = index.min(self.last_index());
        loop {
            match self.term(i) {
                Some(t) if t > term => i = i.prev(),
                Some(t) => return (i, t),
                None => return (i, Term(0)),
            }
        }
    }

    /// Entries from `lo` on, at most `max_count` of them and at most `max_bytes` (but
    /// always at least one if any exist).
    pub(crate) fn entries_from(
        &self,
        lo: LogIndex,
        max_count: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, LogError> {
        if lo <= self.snap_index {
            return Err(LogError::Compacted);
        }
        if lo > self.last_index() {
            return Ok(Vec::new());
        }
        let start = (lo - self.snap_index - 1) as usize;
        let mut size = 0;
        let mut out = Vec::new();
        for e in self.entries[start..].iter().take(max_count.max(1)) {
            size += e.size_bytes();
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    /// Entries not yet handed to the shell for persisting; marks them handed.
    pub(crate) fn take_unpersisted(&mut self) -> Vec<Entry> {
        let from = (self.handed - self.snap_index) as usize;
        let out = self.entries[from..].to_vec();
        self.handed = self.last_index();
        out
    }

    pub(crate) fn has_unpersisted(&self) -> bool {
        self.handed < self.last_index()
    }

    /// The shell made entries up to `(index, term)` durable. Ignored if that entry has
    /// since been replaced (the replacement will come in a later ready).
    pub(crate) fn stable_to(&mut self, index: LogIndex, term: Term) {
        if index > self.stable && self.match_term(index, term) {
            self.stable = index;
        }
    }

    /// Committed, durable entries not yet handed out for applying; marks them applied.
    pub(crate) fn take_committed(&mut self, max_bytes: usize) -> Vec<Entry> {
        let hi = self.committed.min(self.stable);
        if hi <= self.applied || self.pending_snapshot.is_some() {
            return Vec::new();
        }
        let count = (hi - self.applied) as usize;
        let out = self
            .entries_from(self.applied.next(), count, max_bytes)
            .expect("applied ≥ snapshot index");
        if let Some(last) = out.last() {
            self.applied = last.index;
        }
        out
    }

    pub(crate) fn has_committed_to_apply(&self) -> bool {
        self.pending_snapshot.is_none() && self.committed.min(self.stable) > self.applied
    }

    /// Replaces the whole log with a snapshot from the leader (Raft §7).
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.snap_index = snapshot.meta.index;
        self.snap_term = snapshot.meta.term;
        self.entries.clear();
        self.committed = self.snap_index;
        self.applied = self.snap_index;
        // Nothing after the snapshot is left; the snapshot itself is durable only once
        // the shell persists it, which the ready carrying it is for.
        self.stable = self.snap_index;
        self.handed = self.snap_index;
        self.pending_snapshot = Some(snapshot);
    }

    pub(crate) fn take_pending_snapshot(&mut self) -> Option<Snapshot> {
        self.pending_snapshot.take()
    }

    pub(crate) fn has_pending_snapshot(&self) -> bool {
        self.pending_snapshot.is_some()
    }

    /// Drops entries up to `index` (which the shell has snapshotted).
    pub(crate) fn compact(&mut self, index: LogIndex) {
        assert!(index > self.snap_index && index <= self.applied);
        let term = self.term(index).expect("index within the log");
        let n = (index - self.snap_index) as usize;
        self.entries.drain(..n);
        self.snap_index = index;
        self.snap_term = term;
    }

    /// Panics with context if a structural invariant is broken. O(1): contiguity and
    /// term order are established where entries enter (`append`), and checked here at
    /// the ends, so this can run after every step.
    pub(crate) fn check_invariants(&self) {
        if let (Some(first), Some(last)) = (self.entries.first(), self.entries.last()) {
            assert_eq!(
                first.index,
                self.snap_index.next(),
                "log does not start after the snapshot"
            );
            assert_eq!(last.index, self.last_index(), "log indexes not contiguous");
            assert!(
                first.term >= self.snap_term,
                "first entry older than snapshot"
            );
            assert!(first.term <= last.term, "log terms decrease");
        }
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
        assert!(self.stable <= self.handed && self.handed <= self.last_index());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus::Payload;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            payload: Payload::Noop,
        }
    }

    fn log_of(terms: &[u64]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| ent(i as u64 + 1, t))
            .collect();
        RaftLog::recover(None, entries, LogIndex(0))
    }

    #[test]
    fn append_truncates_a_conflicting_suffix() {
        let mut log = log_of(&[1, 1, 2, 2]);
        let r = log.maybe_append(LogIndex(2), Term(1), LogIndex(0), &[ent(3, 3)]);
        assert_eq!(r, Ok(Some(LogIndex(3))));
        assert_eq!(log.last_index(), LogIndex(3));
        assert_eq!(log.term(LogIndex(3)), Some(Term(3)));
        // The replaced entries are no longer stable: the shell must rewrite from 3.
        assert_eq!(log.stable(), LogIndex(2));
    }

    #[test]
    fn a_matching_duplicate_append_changes_nothing() {
        let mut log = log_of(&[1, 1, 2]);
        let r = log.maybe_append(LogIndex(1), Term(1), LogIndex(0), &[ent(2, 1)]);
        assert_eq!(r, Ok(Some(LogIndex(2))));
        assert_eq!(
            log.last_index(),
            LogIndex(3),
            "a stale append must not truncate"
        );
    }

    #[test]
    fn mismatched_prev_is_rejected() {
        let mut log = log_of(&[1, 1]);
        assert_eq!(
            log.maybe_append(LogIndex(2), Term(2), LogIndex(0), &[]),
            Ok(None)
        );
        assert_eq!(
            log.maybe_append(LogIndex(5), Term(1), LogIndex(0), &[]),
            Ok(None)
        );
    }

    #[test]
    fn overwriting_a_committed_entry_is_refused() {
        let mut log = log_of(&[1, 1, 1]);
        log.commit_to(LogIndex(2));
        let r = log.maybe_append(LogIndex(1), Term(1), LogIndex(0), &[ent(2, 2)]);
        assert!(r.is_err());
        assert_eq!(log.term(LogIndex(2)), Some(Term(1)));
    }

    #[test]
    fn conflict_by_term_skips_a_whole_term() {
        let log = log_of(&[1, 1, 2, 2, 2, 5, 5]);
        assert_eq!(
            log.find_conflict_by_term(LogIndex(7), Term(3)),
            (LogIndex(5), Term(2))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(4), Term(1)),
            (LogIndex(2), Term(1))
        );
        assert_eq!(
            log.find_conflict_by_term(LogIndex(20), Term(9)),
            (LogIndex(7), Term(5))
        );
    }

    #[test]
    fn only_durable_committed_entries_are_applied() {
        let mut log = log_of(&[1]);
        log.append(&[ent(2, 1), ent(3, 1)]);
        log.commit_to(LogIndex(3));
        assert_eq!(
            log.take_committed(usize::MAX).len(),
            1,
            "entries 2, 3 are not durable"
        );
        let unpersisted = log.take_unpersisted();
        assert_eq!(unpersisted.len(), 2);
        log.stable_to(LogIndex(3), Term(1));
        assert_eq!(log.take_committed(usize::MAX).len(), 2);
        log.check_invariants();
    }
}
