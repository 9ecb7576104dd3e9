//! Group membership, joint consensus and quorum arithmetic.
//!
//! A membership is either *simple* (one voter set) or *joint* (an incoming and an
//! outgoing voter set, Raft §6 / thesis §4.3): while joint, every decision — an election,
//! a commit, a read confirmation — needs a majority of **both** sets. Learners receive the
//! log but never vote and never count toward a quorum.
//!
//! ```text
//!   simple(C_old) ──EnterJoint──▶ joint(C_new, C_old) ──LeaveJoint──▶ simple(C_new)
//! ```
//! Changes that touch only learners skip the joint stage: they cannot change any quorum.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::types::{LogIndex, NodeId};

/// One requested change to the member set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemberChange {
    /// Make `id` a voter (adding it, or promoting it from learner).
    AddVoter(NodeId),
    /// Make `id` a learner; it must not currently be a voter (remove it first).
    AddLearner(NodeId),
    /// Remove `id`, whether voter or learner.
    Remove(NodeId),
}

/// A configuration-change log payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConfigChange {
    /// Apply these changes; if they alter the voter set the group enters joint consensus.
    Apply(Vec<MemberChange>),
    /// Leave joint consensus, keeping only the incoming voter set. Proposed automatically
    /// by the leader once the joint configuration is committed.
    LeaveJoint,
}

impl ConfigChange {
    /// The number of member changes carried.
    pub fn len(&self) -> usize {
        match self {
            ConfigChange::Apply(c) => c.len(),
            ConfigChange::LeaveJoint => 0,
        }
    }

    /// True for `LeaveJoint` and for an empty `Apply`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a configuration change was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `LeaveJoint` was requested while not joint, or `Apply` while joint.
    WrongStage(&'static str),
    /// The change names a node in a way the current membership does not allow.
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::WrongStage(s) => write!(f, "configuration change in wrong stage: {s}"),
            ConfigError::Invalid(s) => write!(f, "invalid configuration change: {s}"),
        }
    }
}

/// The outcome of counting votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteResult {
    /// A quorum granted.
    Won,
    /// A quorum can no longer be reached.
    Lost,
    /// Neither yet.
    Pending,
}

/// The members of one replication group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The (incoming, while joint) voter set.
    pub voters: BTreeSet<NodeId>,
    /// The outgoing voter set; empty unless joint.
    pub voters_outgoing: BTreeSet<NodeId>,
    /// Non-voting members.
    pub learners: BTreeSet<NodeId>,
}

impl Membership {
    /// A simple membership of the given voters.
    pub fn new(voters: impl IntoIterator<Item = NodeId>) -> Self {
        Membership {
            voters: voters.into_iter().collect(),
            ..Default::default()
        }
    }

    /// True while in joint consensus.
    pub fn is_joint(&self) -> bool {
        !self.voters_outgoing.is_empty()
    }

    /// True if `id` votes in either half.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.voters_outgoing.contains(&id)
    }

    /// True if `id` is a learner.
    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    /// True if `id` belongs to the group in any role.
    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every member (voters of both halves and learners), sorted, without repeats.
    pub fn members(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(self.voters_outgoing.iter().copied());
        all.extend(self.learners.iter().copied());
        all
    }

    /// Every voter of either half.
    pub fn all_voters(&self) -> BTreeSet<NodeId> {
        let mut all = self.voters.clone();
        all.extend(self.voters_outgoing.iter().copied());
        all
    }

    /// The highest index acknowledged by a quorum, given each member's acknowledged index.
    /// While joint, the minimum over both halves. An empty voter set commits nothing.
    pub fn committed_index(&self, acked: impl Fn(NodeId) -> LogIndex) -> LogIndex {
        let incoming = majority_index(&self.voters, &acked);
        if self.is_joint() {
            incoming.min(majority_index(&self.voters_outgoing, &acked))
        } else {
            incoming
        }
    }

    /// Counts votes: `granted(id)` is `Some(true)` for a grant, `Some(false)` for a
    /// rejection and `None` for no answer yet.
    pub fn vote_result(&self, granted: impl Fn(NodeId) -> Option<bool>) -> VoteResult {
        let incoming = majority_vote(&self.voters, &granted);
        if !self.is_joint() {
            return incoming;
        }
        let outgoing = majority_vote(&self.voters_outgoing, &granted);
        match (incoming, outgoing) {
            (VoteResult::Won, VoteResult::Won) => VoteResult::Won,
            (VoteResult::Lost, _) | (_, VoteResult::Lost) => VoteResult::Lost,
            _ => VoteResult::Pending,
        }
    }

    /// True if the members for which `active` holds form a quorum.
    pub fn has_quorum(&self, active: impl Fn(NodeId) -> bool) -> bool {
        self.vote_result(|id| Some(active(id))) == VoteResult::Won
    }

    /// The membership after `change`, or why it is not allowed. Pure: `self` is unchanged.
    pub fn apply(&self, change: &ConfigChange) -> Result<Membership, ConfigError> {
        match change {
            ConfigChange::LeaveJoint => {
                if !self.is_joint() {
                    return Err(ConfigError::WrongStage("LeaveJoint while not joint"));
                }
                let mut next = self.clone();
                next.voters_outgoing.clear();
                Ok(next)
            }
            ConfigChange::Apply(changes) => {
                if self.is_joint() {
                    return Err(ConfigError::WrongStage("a change while joint"));
                }
                if changes.is_empty() {
                    return Err(ConfigError::Invalid("no changes".into()));
                }
                let mut next = self.clone();
                for c in changes {
                    match *c {
                        MemberChange::AddVoter(id) => {
                            if id == 0 {
                                return Err(ConfigError::Invalid("node id 0 is reserved".into()));
                            }
                            if next.voters.contains(&id) {
                                return Err(ConfigError::Invalid(format!("{id} is a voter")));
                            }
                            next.learners.remove(&id);
                            next.voters.insert(id);
                        }
                        MemberChange::AddLearner(id) => {
                            if id == 0 {
                                return Err(ConfigError::Invalid("node id 0 is reserved".into()));
                            }
                            if next.voters.contains(&id) || next.learners.contains(&id) {
                                return Err(ConfigError::Invalid(format!("{id} is a member")));
                            }
                            next.learners.insert(id);
                        }
                        MemberChange::Remove(id) => {
                            if !next.voters.remove(&id) && !next.learners.remove(&id) {
                                return Err(ConfigError::Invalid(format!("{id} is not a member")));
                            }
                        }
                    }
                }
                if next.voters.is_empty() {
                    return Err(ConfigError::Invalid("would remove every voter".into()));
                }
                if next.voters != self.voters {
                    next.voters_outgoing = self.voters.clone();
                }
                Ok(next)
            }
        }
    }
}

fn majority_index(voters: &BTreeSet<NodeId>, acked: &impl Fn(NodeId) -> LogIndex) -> LogIndex {
    if voters.is_empty() {
        return LogIndex(0);
    }
    let mut idx: Vec<LogIndex> = voters.iter().map(|&id| acked(id)).collect();
    idx.sort_unstable_by(|a, b| b.cmp(a));
    idx[voters.len() / 2]
}

fn majority_vote(
    voters: &BTreeSet<NodeId>,
    granted: &impl Fn(NodeId) -> Option<bool>,
) -> VoteResult {
    let quorum = voters.len() / 2 + 1;
    let (mut yes, mut missing) = (0, 0);
    for &id in voters {
        match granted(id) {
            Some(true) => yes += 1,
            Some(false) => {}
            None => missing += 1,
        }
    }
    if yes >= quorum {
        VoteResult::Won
    } else if yes + missing >= quorum {
        VoteResult::Pending
    } else {
        VoteResult::Lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn majority_of_three_commits_the_median() {
        let m = Membership::new([1, 2, 3]);
        let acked: BTreeMap<NodeId, LogIndex> =
            [(1, LogIndex(5)), (2, LogIndex(3)), (3, LogIndex(1))].into();
        assert_eq!(m.committed_index(|id| acked[&id]), LogIndex(3));
    }

    #[test]
    fn joint_consensus_needs_both_majorities() {
        let m = Membership::new([1, 2, 3])
            .apply(&ConfigChange::Apply(vec![
                MemberChange::Remove(3),
                MemberChange::AddVoter(4),
                MemberChange::AddVoter(5),
            ]))
            .unwrap();
        assert!(m.is_joint());
        // 1, 2 form a majority of the outgoing {1,2,3} but not of the incoming {1,2,4,5}.
        let votes = |id| Some(id == 1 || id == 2);
        assert_eq!(m.vote_result(votes), VoteResult::Lost);
        let votes = |id| Some(id == 1 || id == 2 || id == 4);
        assert_eq!(m.vote_result(votes), VoteResult::Won);
        let left = m.apply(&ConfigChange::LeaveJoint).unwrap();
        assert_eq!(left, Membership::new([1, 2, 4, 5]));
    }

    #[test]
    fn learner_changes_do_not_enter_joint() {
        let m = Membership::new([1, 2, 3])
            .apply(&ConfigChange::Apply(vec![MemberChange::AddLearner(4)]))
            .unwrap();
        assert!(!m.is_joint());
        assert!(m.is_learner(4) && !m.is_voter(4));
        let promoted = m
            .apply(&ConfigChange::Apply(vec![MemberChange::AddVoter(4)]))
            .unwrap();
        assert!(promoted.is_joint() && promoted.is_voter(4) && !promoted.is_learner(4));
    }

    #[test]
    fn invalid_changes_are_refused() {
        let m = Membership::new([1]);
        assert!(m
            .apply(&ConfigChange::Apply(vec![MemberChange::Remove(1)]))
            .is_err());
        assert!(m
            .apply(&ConfigChange::Apply(vec![MemberChange::Remove(7)]))
            .is_err());
        assert!(m
            .apply(&ConfigChange::Apply(vec![MemberChange::AddVoter(1)]))
            .is_err());
        assert!(m.apply(&ConfigChange::LeaveJoint).is_err());
        assert!(m.apply(&ConfigChange::Apply(vec![])).is_err());
    }

    proptest! {
        /// The quorum index equals a brute force: the largest index acknowledged by at
        /// least a majority of each voter set.
        #[test]
        fn committed_index_matches_brute_force(
            acks in proptest::collection::vec(0u64..20, 1..8),
            outgoing in proptest::collection::vec(any::<bool>(), 8),
        ) {
            let voters: BTreeSet<NodeId> = (1..=acks.len() as u64).collect();
            let out: BTreeSet<NodeId> = (1..=acks.len() as u64)
                .filter(|&i| outgoing[i as usize - 1]).collect();
            let m = Membership { voters: voters.clone(), voters_outgoing: out.clone(), learners: BTreeSet::new() };
            let acked = |id: NodeId| LogIndex(acks[id as usize - 1]);
            let brute = |set: &BTreeSet<NodeId>| -> u64 {
                if set.is_empty() { return u64::MAX; }
                (0..20u64).rev().find(|&i| set.iter().filter(|&&id| acked(id).0 >= i).count() > set.len() / 2).unwrap_or(0)
            };
            let expect = brute(&voters).min(brute(&out));
            prop_assert_eq!(m.committed_index(acked).0, expect);
        }
    }
}
