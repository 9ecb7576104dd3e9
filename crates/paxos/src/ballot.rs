//! Ballots: the totally ordered proposal numbers of Paxos, and their encoding into the
//! `u64` [`Term`] that the shared log records and wire formats carry.

use std::fmt;

use serde::{Deserialize, Serialize};

use consensus::{NodeId, Term};

/// A ballot `(round, node)`: ordered by round, then by node, so that two proposers
/// never share one (each only ever uses its own id) and any proposer can always pick a
/// ballot above every one it has seen.
///
/// [`Ballot::ZERO`] is below every real ballot; it is the "promised nothing" of a fresh
/// acceptor and the ballot of the founding configuration, which every founder holds as
/// chosen from the start.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// The round; a proposer's next round exceeds every round it has seen.
    pub round: u64,
    /// The proposer that owns this ballot.
    pub node: NodeId,
}

impl Ballot {
    /// Below every real ballot.
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };
    /// Bits of the encoded term given to the node id.
    pub const NODE_BITS: u32 = 16;
    /// The largest node id a ballot can name: Multi-Paxos groups refuse larger ids.
    pub const NODE_MAX: NodeId = (1 << Self::NODE_BITS) - 1;
    /// The largest round: keeps every encoded ballot below 2^62, the bound that message
    /// validation applies to every number (see `validate.rs`).
    pub const ROUND_MAX: u64 = (1 << (62 - Self::NODE_BITS)) - 1;

    /// The ballot `(round, node)`.
    ///
    /// # Panics
    /// If `node` exceeds [`Ballot::NODE_MAX`] or `round` exceeds [`Ballot::ROUND_MAX`]:
    /// configuration validation keeps both in range, so this is a programming error.
    pub fn new(round: u64, node: NodeId) -> Ballot {
        assert!(
            node <= Self::NODE_MAX,
            "node id {node} does not fit a ballot"
        );
        assert!(round <= Self::ROUND_MAX, "ballot round {round} overflows");
        Ballot { round, node }
    }

    /// The encoding used wherever a ballot travels as a [`Term`]: `round << 16 | node`.
    /// Order-preserving: `a < b` iff `a.to_term() < b.to_term()`.
    pub fn to_term(self) -> Term {
        Term((self.round << Self::NODE_BITS) | self.node)
    }

    /// Inverse of [`Ballot::to_term`]; total (every `u64` decodes to some ballot).
    pub fn from_term(term: Term) -> Ballot {
        Ballot {
            round: term.0 >> Self::NODE_BITS,
            node: term.0 & Self::NODE_MAX,
        }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b{}.{}", self.round, self.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The term encoding is a bijection on valid ballots and preserves their order,
        /// so comparing encoded terms (as the shared log and the simulator do) is
        /// comparing ballots.
        #[test]
        fn encoding_round_trips_and_preserves_order(
            r1 in 0..=Ballot::ROUND_MAX, n1 in 0..=Ballot::NODE_MAX,
            r2 in 0..=Ballot::ROUND_MAX, n2 in 0..=Ballot::NODE_MAX,
        ) {
            let (a, b) = (Ballot::new(r1, n1), Ballot::new(r2, n2));
            prop_assert_eq!(Ballot::from_term(a.to_term()), a);
            prop_assert_eq!(a.cmp(&b), a.to_term().cmp(&b.to_term()));
            prop_assert!(a.to_term().0 < 1 << 62);
        }
    }

    #[test]
    fn a_higher_round_beats_any_node_id() {
        assert!(Ballot::new(2, 1) > Ballot::new(1, Ballot::NODE_MAX));
        assert!(Ballot::new(1, 2) > Ballot::new(1, 1));
        assert!(Ballot::ZERO < Ballot::new(0, 1));
    }
}
