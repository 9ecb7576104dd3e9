//! Safety invariants, asserted after every simulator step. One property per file, each
//! citing its source. They observe engines only through [`SimEngine`]'s read-only views,
//! the messages they send and what they persist, plus a shared record of what has been
//! seen. Every engine is held to the shared ones (state machine safety, election safety,
//! applied ≤ committed); each adds its paper's own (Raft: log matching, leader
//! completeness; Multi-Paxos: promises kept, one value chosen per slot, chosen values
//! never change), wired in by its [`SimEngine`] implementation.
//!
//! [`SimEngine`]: crate::harness::SimEngine

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use consensus::{ConfigChange, Entry, LogIndex, Membership, NodeId, Term};

pub mod applied_within_commit;
pub mod election_safety;
pub mod leader_completeness;
pub mod log_matching;
pub mod paxos_chosen;
pub mod paxos_promises;
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
    /// The founding voters (each slot's configuration derives from them).
    pub founders: Membership,
    /// Every configuration value known committed, by index.
    pub configs: BTreeMap<LogIndex, ConfigChange>,
    /// Multi-Paxos: per node, the highest ballot it has told anyone it promised (or
    /// accepted in, which implies the promise).
    pub promises: BTreeMap<NodeId, Term>,
    /// Multi-Paxos: acknowledged acceptances, per slot and ballot: the value's hash and
    /// the acceptors.
    pub acceptances: BTreeMap<LogIndex, BTreeMap<Term, (u64, BTreeSet<NodeId>)>>,
    /// Multi-Paxos: per slot, the lowest ballot a quorum is seen to have accepted a value
    /// in, and that value's hash.
    pub paxos_chosen: BTreeMap<LogIndex, (Term, u64)>,
    /// Multi-Paxos: per node, how far its acknowledgements in a ballot were recorded.
    pub acks_recorded: BTreeMap<NodeId, (Term, LogIndex)>,
    /// Multi-Paxos: per node, up to which index its learned values were compared with
    /// what a quorum chose.
    pub learned_checked: BTreeMap<NodeId, LogIndex>,
    /// A violation found while a message was sent, reported after the event.
    pub pending: Option<Violation>,
}

impl Observations {
    /// The voters deciding index `slot`: the founders, changed by every configuration
    /// value committed before it (the Multi-Paxos rule: a change chosen in slot `k`
    /// governs the slots after `k`).
    pub fn voters_at(&self, slot: LogIndex) -> BTreeSet<NodeId> {
        let mut m = self.founders.clone();
        for change in self.configs.range(..slot).map(|(_, c)| c) {
            if let Ok(mut next) = m.apply(change) {
                next.voters_outgoing.clear();
                m = next;
            }
        }
        m.voters
    }
}

/// A stable hash of an entry's content (index, term and payload).
pub fn entry_hash(e: &Entry) -> u64 {
    let mut h = DefaultHasher::new();
    e.hash(&mut h);
    h.finish()
}
