//! Reconfiguration: configuration values are commands in the log that take effect at
//! the next slot (α = 1). A leader proposes nothing after an unchosen change of voters,
//! and runs phase 1 again, in its own ballot, with the new voters before proposing under
//! them. Learners receive every value and never count.

mod harness;

use bytes::Bytes;
use consensus::{
    ConfigChange, ConfigError, Engine, MemberChange, Membership, ProposeError, ReplicationState,
    Role,
};
use harness::*;

fn apply(changes: &[MemberChange]) -> ConfigChange {
    ConfigChange::Apply(changes.to_vec())
}

#[test]
fn a_learner_catches_up_then_becomes_a_voter() {
    let mut net = Net::new(&[1, 2, 3], &[4]);
    net.elect(1);
    net.propose(1, "before");
    net.get_mut(1)
        .change_config(apply(&[MemberChange::AddLearner(4)]))
        .unwrap();
    net.tick(2);
    assert!(net.get(4).membership().is_learner(4));
    assert_eq!(
        net.applied_commands(4),
        vec!["before"],
        "a learner gets every value"
    );
    let promote = net
        .get_mut(1)
        .change_config(apply(&[MemberChange::AddVoter(4)]))
        .unwrap();
    // Until the change is chosen and node 4 has promised, nothing else is proposed.
    assert_eq!(
        net.get_mut(1).propose(Bytes::from_static(b"x")),
        Err(ProposeError::ConfigChangePending)
    );
    let prepares_before = net.count_delivered("Prepare");
    net.tick(2);
    assert!(net.get(1).commit_index() >= promote.index);
    assert!(
        net.count_delivered("Prepare") > prepares_before,
        "phase 1 ran again for the new voters"
    );
    assert_eq!(net.get(1).membership(), &Membership::new([1, 2, 3, 4]));
    net.propose(1, "after");
    net.tick(2);
    for id in [1, 2, 3, 4] {
        assert_eq!(
            net.applied_commands(id),
            vec!["before", "after"],
            "node {id}"
        );
        assert_eq!(net.get(id).membership(), &Membership::new([1, 2, 3, 4]));
    }
}

/// Catching up is bounded by round trips, not by how proposals are batched: with one
/// slot per accept and one accept in flight (`batch_slots_max = inflight_msgs_max = 1`),
/// a learner added 2,000 slots behind once needed 2,000 round trips — longer than the
/// simulator's drain after a heal (seed 26599). Chosen slots now travel up to
/// `catchup_slots_max` per accept, while new proposals still go one slot at a time.
#[test]
fn a_learner_far_behind_catches_up_in_a_few_round_trips_whatever_the_batch_size() {
    let mut net = Net::with_config(&[1, 2, 3], &[4], |c| {
        c.batch_slots_max = 1;
        c.inflight_msgs_max = 1;
    });
    net.elect(1);
    for i in 0..2000 {
        net.propose(1, &format!("c{i}"));
    }
    net.get_mut(1)
        .change_config(apply(&[MemberChange::AddLearner(4)]))
        .unwrap();
    let accepts_before = net.count_delivered("Accept");
    let mut rounds = 0;
    while net.applied_commands(4).len() < 2000 {
        net.round();
        rounds += 1;
        assert!(
            rounds <= 12,
            "after {rounds} round trips the learner has applied only {} of 2,000 commands",
            net.applied_commands(4).len()
        );
    }
    assert!(
        net.count_delivered("Accept") - accepts_before <= 20,
        "a few large accepts, not one per slot"
    );
    // New proposals are still batched as configured: one slot per accept.
    for i in 0..3 {
        net.get_mut(1)
            .propose(Bytes::from(format!("n{i}")))
            .unwrap();
    }
    let ready = net.take_ready(1);
    let accepts: Vec<usize> = all_messages(&ready)
        .into_iter()
        .filter_map(|(_, m)| match m.body {
            paxos::Body::Accept { values, .. } => Some(values.len()),
            _ => None,
        })
        .collect();
    assert!(
        !accepts.is_empty() && accepts.iter().all(|&n| n == 1),
        "{accepts:?}"
    );
    net.settle();
    net.tick(2);
    assert_eq!(net.applied_commands(4).len(), 2003);
}

#[test]
fn a_learner_that_missed_its_first_accepts_is_caught_up_from_its_heartbeat_acks() {
    // A node's runtime may create the learner's replica only after the leader has
    // added it: the accepts sent at once are lost, and no new slot is proposed after.
    let mut net = Net::new(&[1, 2, 3], &[4]);
    net.elect(1);
    for i in 0..5 {
        net.propose(1, &format!("c{i}"));
    }
    net.settle();
    net.isolate(4);
    net.get_mut(1)
        .change_config(apply(&[MemberChange::AddLearner(4)]))
        .unwrap();
    net.settle();
    net.heal();
    // Only heartbeats flow now; the learner must still get every slot.
    for _ in 0..20 {
        net.tick(1);
        net.settle();
    }
    assert_eq!(net.applied_commands(4).len(), 5, "the learner caught up");
}

#[test]
fn a_learner_that_caught_up_in_an_idle_group_is_reported_replicating() {
    // Found by the whole-cluster simulation: the meta group (idle between map
    // changes) re-added a node as learner; it caught up from heartbeat acks, but its
    // progress stayed in Probe, so the manager, which promotes only replicating
    // learners, waited for ever.
    let mut net = Net::new(&[1, 2, 3], &[4]);
    net.elect(1);
    for i in 0..5 {
        net.propose(1, &format!("c{i}"));
    }
    net.settle();
    // The learner gets every accept, but its Accepted replies are all lost: only its
    // heartbeat acks tell the leader that it holds everything.
    net.get_mut(1)
        .change_config(apply(&[MemberChange::AddLearner(4)]))
        .unwrap();
    let lost = |from: u64, _: u64, m: &paxos::Message| {
        from == 4 && matches!(m.body, paxos::Body::Accepted { .. })
    };
    for _ in 0..20 {
        for id in 1..=4 {
            net.get_mut(id).tick();
        }
        for _ in 0..100 {
            net.round();
            net.drop_where(lost);
            if net.queue.is_empty() {
                break;
            }
        }
    }
    assert_eq!(
        net.applied_commands(4).len(),
        5,
        "the learner has every slot"
    );
    let status = net.get(1).status();
    let learner = status.peers.iter().find(|p| p.id == 4).expect("tracked");
    assert_eq!(learner.matched, status.last_index, "caught up");
    assert_eq!(learner.state, ReplicationState::Replicate);
}

#[test]
fn a_removed_voter_is_no_longer_needed_for_a_quorum() {
    let mut net = Net::new(&[1, 2, 3, 4], &[]);
    net.elect(1);
    net.get_mut(1)
        .change_config(apply(&[MemberChange::Remove(4)]))
        .unwrap();
    net.tick(2);
    assert_eq!(net.get(1).membership(), &Membership::new([1, 2, 3]));
    // {1, 2} is a majority of three, not of four.
    net.isolate(3);
    net.isolate(4);
    net.cut.remove(&(1, 2));
    net.cut.remove(&(2, 1));
    let p = net.propose(1, "x");
    assert_eq!(net.get(1).commit_index(), p.index);
}

#[test]
fn voters_are_replaced_in_one_step_without_joint_consensus() {
    let mut net = Net::new(&[1, 2, 3], &[4]);
    net.elect(1);
    net.get_mut(1)
        .change_config(apply(&[MemberChange::AddLearner(4)]))
        .unwrap();
    net.tick(2);
    net.get_mut(1)
        .change_config(apply(&[MemberChange::AddVoter(4), MemberChange::Remove(3)]))
        .unwrap();
    net.tick(3);
    let m = net.get(1).membership().clone();
    assert_eq!(m, Membership::new([1, 2, 4]));
    assert!(!m.is_joint());
    // The old voter 3 gone and voter 2 cut off: {1, 4} is a quorum of {1, 2, 4}.
    net.crash(3);
    net.isolate(2);
    net.propose(1, "x");
    net.tick(1);
    assert_eq!(net.applied_commands(4), vec!["x"]);
}

/// A leader that removes itself keeps sending the commit index until a quorum of the
/// new voters knows the change is chosen, then hands over and never campaigns again.
#[test]
fn a_leader_that_removes_itself_hands_over() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.get_mut(1)
        .change_config(apply(&[MemberChange::Remove(1)]))
        .unwrap();
    net.tick(3);
    assert_eq!(net.get(1).role(), Role::Follower);
    let leader = net.leader().expect("a successor leads");
    assert!(leader == 2 || leader == 3);
    net.tick(40);
    assert_ne!(
        net.get(1).role(),
        Role::Candidate,
        "a non-voter never campaigns"
    );
    let p = net.propose(net.leader().unwrap(), "x");
    net.tick(1);
    assert!(net.get(2).commit_index() >= p.index);
    assert!(net.get(3).commit_index() >= p.index);
}

#[test]
fn changes_are_one_at_a_time_and_never_joint() {
    let mut net = Net::new(&[1, 2, 3], &[4, 5]);
    net.elect(1);
    assert_eq!(
        net.get_mut(1).change_config(ConfigChange::LeaveJoint),
        Err(ProposeError::Config(ConfigError::WrongStage(
            "Multi-Paxos never enters joint consensus"
        )))
    );
    assert!(matches!(
        net.get_mut(1)
            .change_config(apply(&[MemberChange::AddLearner(70_000)])),
        Err(ProposeError::Config(ConfigError::Invalid(_)))
    ));
    net.get_mut(1)
        .change_config(apply(&[MemberChange::AddLearner(4)]))
        .unwrap();
    assert_eq!(
        net.get_mut(1)
            .change_config(apply(&[MemberChange::AddLearner(5)])),
        Err(ProposeError::ConfigChangePending)
    );
    assert_eq!(
        net.get_mut(2)
            .change_config(apply(&[MemberChange::AddLearner(5)])),
        Err(ProposeError::NotLeader { hint: Some(1) })
    );
}

/// A change of voters proposed by a leader that then crashes is found by the next
/// leader's phase 1, completed, and followed by phase 1 with the new voters.
#[test]
fn a_change_interrupted_by_a_leader_crash_is_completed_by_the_next_leader() {
    let mut net = Net::with_config(&[1, 2, 3], &[4], |c| c.check_quorum = false);
    net.elect(1);
    net.get_mut(1)
        .change_config(apply(&[MemberChange::AddLearner(4)]))
        .unwrap();
    net.tick(2);
    net.cut.insert((1, 3));
    net.cut.insert((2, 1));
    let change = net
        .get_mut(1)
        .change_config(apply(&[MemberChange::AddVoter(4)]))
        .unwrap();
    net.settle();
    assert_eq!(
        net.get(1).commit_index(),
        change.index.prev(),
        "not known chosen"
    );
    net.crash(1);
    net.heal();
    net.elect(3);
    net.tick(3);
    assert_eq!(net.get(3).membership(), &Membership::new([1, 2, 3, 4]));
    // Voters {1, 2, 3, 4} with node 1 down: 3 of 4 is a quorum.
    let p = net.propose(3, "x");
    net.tick(1);
    for id in [2, 3, 4] {
        assert!(net.get(id).commit_index() >= p.index, "node {id}");
    }
    assert_eq!(net.applied_commands(4), vec!["x"]);
}
