//! Safety invariants, asserted after every simulator step. One property per file, each
//! citing its source. They observe engines only through [`SimEngine`]'s read-only views
//! and a shared record of what has been seen, so they hold every engine to the same rules.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use consensus::{Entry, LogIndex, NodeId, Term};

pub mod applied_within_commit;
pub mod election_safety;
pub mod leader_completeness;
pub mod log_matching;
pub mod state_machine_safety;

/// A broken invariant: which one and the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name.
    pub invariant: &'static str,
    /// What was observed.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.invariant, self.detail)
    }
}

/// What the checkers have seen so far in a run, across crashes.
#[derive(Debug, Default)]
pub struct Observations {
    /// The leader of each term ever observed.
    pub leaders: BTreeMap<Term, NodeId>,
    /// Every entry ever persisted: (index, term) → (content hash, previous entry's term).
    pub entries: HashMap<(LogIndex, Term), (u64, Option<Term>)>,
    /// Every entry known committed: index → (term, content hash).
    pub chosen: BTreeMap<LogIndex, (Term, u64)>,
    /// Per node, the commit index up to which its log was compared with `chosen`.
    pub commit_checked: BTreeMap<NodeId, LogIndex>,
    /// Per node, the term in which it was last seen leading.
    pub leading: BTreeMap<NodeId, Term>,
}

/// A stable hash of an entry's content (index, term and payload).
pub fn entry_hash(e: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    e.hash(&mut h);
    h.finish()
}
