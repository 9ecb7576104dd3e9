//! Member states, incarnations, and the one rule that orders everything said about a
//! member.
//!
//! SWIM's incarnation numbers make membership a join-semilattice: every claim about a
//! member is a pair (incarnation, state), and a node keeps the *greatest* claim it has
//! heard under the lexicographic order
//!
//! ```text
//!   (i, Alive) < (i, Suspect) < (i, Dead) < (i, Left) < (i + 1, Alive) < ...
//! ```
//!
//! Keeping a maximum is commutative, associative and idempotent, so nodes that hear the
//! same claims in any order, any number of times, end in the same state — gossip may
//! reorder and duplicate freely. What the order encodes:
//!
//! * at one incarnation, bad news wins: a suspicion overrides "alive", a death overrides
//!   a suspicion, and a graceful leave is the final word;
//! * only the member itself raises its incarnation (to refute a suspicion, or to come
//!   back after being declared dead or leaving), so "alive" at a higher incarnation
//!   overrides everything older — and a stale "alive" never resurrects a dead member
//!   (no *resurrection by stale gossip*).
//!
//! A suspicion at the same incarnation from a new accuser is not a new state but a
//! *confirmation* (Lifeguard): it shortens the suspicion timeout.

use consensus::NodeId;

/// No real incarnation comes near this: a node refuting once per second would take 8.9
/// million years. Larger values in a message are refused, which keeps `+ 1` safe.
pub const INCARNATION_MAX: u64 = 1 << 48;

/// A member's incarnation number: raised only by the member itself, to refute a
/// suspicion or to rejoin. Claims about older incarnations are stale.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Incarnation(pub u64);

impl Incarnation {
    /// The incarnation after this one, saturating at [`INCARNATION_MAX`].
    pub fn next(self) -> Incarnation {
        Incarnation((self.0 + 1).min(INCARNATION_MAX))
    }
}

impl std::fmt::Display for Incarnation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a member is believed to be. The declaration order is the precedence at equal
/// incarnation (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// Answering, directly or through indirect probes.
    Alive,
    /// A monitor's direct and indirect probes both failed; the member has until the
    /// suspicion timeout to refute by raising its incarnation.
    Suspect,
    /// The suspicion timed out unrefuted. The member stays remembered (a tombstone) so
    /// stale gossip cannot bring it back; it returns only at a higher incarnation.
    Dead,
    /// The member announced a graceful departure.
    Left,
}

impl State {
    /// Alive and Suspect members are *live*: they are on the monitoring ring and receive
    /// gossip. Dead and Left members are not.
    pub fn is_live(self) -> bool {
        matches!(self, State::Alive | State::Suspect)
    }

    /// The wire tag.
    pub(crate) fn tag(self) -> u8 {
        self as u8
    }

    /// The state for a wire tag.
    pub(crate) fn from_tag(tag: u8) -> Option<State> {
        Some(match tag {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Dead,
            3 => State::Left,
            _ => return None,
        })
    }
}

/// One claim about a member, as gossiped: `id` is at `incarnation` in `state`, according
/// to `by` — the accuser for Suspect, the declarer for Dead, the member itself for Alive
/// and Left (only a member speaks for its own life).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Update {
    /// The member the claim is about (never 0).
    pub id: NodeId,
    /// The member's incarnation the claim refers to.
    pub incarnation: Incarnation,
    /// The claimed state.
    pub state: State,
    /// Who originated the claim.
    pub by: NodeId,
}

impl Update {
    /// The position of this claim in the semilattice order.
    pub fn rank(&self) -> (Incarnation, State) {
        (self.incarnation, self.state)
    }

    /// Why this claim is malformed, if it is: id or originator 0, an incarnation beyond
    /// [`INCARNATION_MAX`], a member speaking for someone else's life, or a member
    /// accusing itself.
    pub fn defect(&self) -> Option<&'static str> {
        if self.id == 0 || self.by == 0 {
            return Some("node id 0 in an update");
        }
        if self.incarnation.0 > INCARNATION_MAX {
            return Some("incarnation impossibly large");
        }
        match self.state {
            State::Alive | State::Left if self.by != self.id => {
                Some("alive or left claimed by someone other than the member")
            }
            State::Suspect | State::Dead if self.by == self.id => Some("a member accusing itself"),
            _ => None,
        }
    }
}

/// How a claim relates to what is already known about its member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The claim is greater: adopt it and pass it on.
    Newer,
    /// The same suspicion (same incarnation) from a possibly new accuser.
    Confirmation,
    /// The claim is older or equal: ignore it.
    Stale,
}

/// Compares a claim with the current knowledge `(incarnation, state)` of its member
/// (`None`: never heard of it).
pub fn merge(current: Option<(Incarnation, State)>, claim: &Update) -> Merge {
    match current {
        None => Merge::Newer,
        Some(cur) if claim.rank() > cur => Merge::Newer,
        Some(cur) if claim.rank() == cur && claim.state == State::Suspect => Merge::Confirmation,
        Some(_) => Merge::Stale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim(incarnation: u64, state: State) -> Update {
        let by = if matches!(state, State::Alive | State::Left) {
            7
        } else {
            1
        };
        Update {
            id: 7,
            incarnation: Incarnation(incarnation),
            state,
            by,
        }
    }

    fn known(incarnation: u64, state: State) -> Option<(Incarnation, State)> {
        Some((Incarnation(incarnation), state))
    }

    #[test]
    fn at_one_incarnation_bad_news_wins() {
        use State::*;
        assert_eq!(merge(known(3, Alive), &claim(3, Suspect)), Merge::Newer);
        assert_eq!(merge(known(3, Suspect), &claim(3, Dead)), Merge::Newer);
        assert_eq!(merge(known(3, Alive), &claim(3, Dead)), Merge::Newer);
        assert_eq!(merge(known(3, Dead), &claim(3, Left)), Merge::Newer);
        assert_eq!(merge(known(3, Suspect), &claim(3, Alive)), Merge::Stale);
        assert_eq!(merge(known(3, Dead), &claim(3, Suspect)), Merge::Stale);
    }

    #[test]
    fn only_a_higher_incarnation_refutes_or_resurrects() {
        use State::*;
        assert_eq!(merge(known(3, Suspect), &claim(4, Alive)), Merge::Newer);
        assert_eq!(merge(known(3, Dead), &claim(4, Alive)), Merge::Newer);
        assert_eq!(merge(known(3, Left), &claim(4, Alive)), Merge::Newer);
        // Stale gossip: "alive" at the incarnation that died, or older.
        assert_eq!(merge(known(3, Dead), &claim(3, Alive)), Merge::Stale);
        assert_eq!(merge(known(3, Dead), &claim(2, Alive)), Merge::Stale);
        assert_eq!(merge(known(3, Alive), &claim(2, Dead)), Merge::Stale);
    }

    #[test]
    fn a_repeated_suspicion_is_a_confirmation() {
        assert_eq!(
            merge(known(3, State::Suspect), &claim(3, State::Suspect)),
            Merge::Confirmation
        );
        assert_eq!(
            merge(known(3, State::Dead), &claim(3, State::Dead)),
            Merge::Stale
        );
    }

    #[test]
    fn malformed_claims_are_named() {
        let ok = claim(1, State::Suspect);
        assert_eq!(ok.defect(), None);
        assert!(Update { id: 0, ..ok }.defect().is_some());
        assert!(Update { by: 0, ..ok }.defect().is_some());
        assert!(Update { by: 7, ..ok }.defect().is_some(), "self-accusation");
        assert!(
            Update {
                state: State::Alive,
                ..ok
            }
            .defect()
            .is_some(),
            "alive said by another"
        );
        assert!(Update {
            incarnation: Incarnation(INCARNATION_MAX + 1),
            ..ok
        }
        .defect()
        .is_some());
        assert_eq!(
            Incarnation(INCARNATION_MAX).next(),
            Incarnation(INCARNATION_MAX)
        );
    }

    fn arb_claim() -> impl Strategy<Value = Update> {
        (0u64..4, 0u8..4).prop_map(|(i, s)| claim(i, State::from_tag(s).unwrap()))
    }

    fn fold(claims: &[Update]) -> Option<(Incarnation, State)> {
        let mut cur = None;
        for c in claims {
            if merge(cur, c) == Merge::Newer {
                cur = Some(c.rank());
            }
        }
        cur
    }

    proptest! {
        /// Any order of delivery, with duplicates, ends in the same state: the maximum.
        #[test]
        fn merging_is_order_independent(mut claims in proptest::collection::vec(arb_claim(), 1..12), seed in any::<u64>()) {
            let forward = fold(&claims);
            let mut rng = consensus::Rng::new(seed);
            for i in (1..claims.len()).rev() {
                let j = rng.range(0, i as u64 + 1) as usize;
                claims.swap(i, j);
            }
            let dup: Vec<Update> = claims.iter().chain(claims.iter()).copied().collect();
            prop_assert_eq!(fold(&claims), forward);
            prop_assert_eq!(fold(&dup), forward);
            prop_assert_eq!(forward, claims.iter().map(|c| c.rank()).max());
        }
    }
}
