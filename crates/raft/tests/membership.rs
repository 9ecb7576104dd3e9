//! Membership changes by joint consensus (§6, thesis §4.3) and learners.

mod harness;

use consensus::{ConfigChange, Engine, MemberChange, Membership, ProposeError, Role};
use harness::*;

fn change(net: &mut Net, leader: u64, changes: Vec<MemberChange>) {
    net.get_mut(leader)
        .change_config(ConfigChange::Apply(changes))
        .expect("accepted");
    net.settle();
    net.tick(2);
}

/// A learner receives the log but never votes or counts toward a quorum.
#[test]
fn a_learner_replicates_without_voting() {
    let mut net = Net::new(&[1, 2, 3], &[4]);
    net.elect(1);
    change(&mut net, 1, vec![MemberChange::AddLearner(4)]);
    net.propose(1, "x");
    assert_eq!(net.applied_commands(4), vec!["x"]);
    let m = net.get(1).membership().clone();
    assert!(m.is_learner(4) && !m.is_voter(4) && !m.is_joint());
    // With two voters down, the learner cannot help commit.
    net.isolate(2);
    net.isolate(3);
    let before = net.get(1).commit_index();
    net.get_mut(1)
        .propose(bytes::Bytes::from_static(b"y"))
        .unwrap();
    net.settle();
    assert_eq!(net.get(1).commit_index(), before);
    // And a learner never campaigns.
    for _ in 0..50 {
        net.get_mut(4).tick();
    }
    assert_eq!(net.get(4).role(), Role::Follower);
}

/// Adding voters goes through a joint configuration that the leader leaves on its own.
#[test]
fn replacing_voters_passes_through_joint_consensus_and_leaves_it() {
    let mut net = Net::new(&[1, 2, 3], &[4, 5]);
    net.elect(1);
    change(
        &mut net,
        1,
        vec![MemberChange::AddLearner(4), MemberChange::AddLearner(5)],
    );
    net.get_mut(1)
        .change_config(ConfigChange::Apply(vec![
            MemberChange::AddVoter(4),
            MemberChange::AddVoter(5),
            MemberChange::Remove(2),
            MemberChange::Remove(3),
        ]))
        .unwrap();
    // A second change is refused while one is in progress.
    assert_eq!(
        net.get_mut(1)
            .change_config(ConfigChange::Apply(vec![MemberChange::Remove(1)])),
        Err(ProposeError::ConfigChangePending)
    );
    net.settle();
    net.tick(3);
    for id in [1, 4, 5] {
        assert_eq!(
            net.get(id).membership(),
            &Membership::new([1, 4, 5]),
            "node {id}"
        );
    }
    net.propose(1, "after");
    assert_eq!(net.applied_commands(5), vec!["after"]);
}

/// Thesis §4.2.2: a leader removed from the group steps down once the removal commits,
/// and the remaining voters elect a new leader.
#[test]
fn a_removed_leader_steps_down() {
    let mut net = Net::new(&[1, 2, 3, 4], &[]);
    net.elect(1);
    change(&mut net, 1, vec![MemberChange::Remove(1)]);
    assert_ne!(net.get(1).role(), Role::Leader);
    net.nodes.remove(&1);
    net.tick(40);
    let leader = net.leader().expect("the rest elect a leader");
    assert!(leader != 1);
    assert_eq!(net.get(leader).membership(), &Membership::new([2, 3, 4]));
}

/// A new leader that inherits a committed joint configuration completes the change.
#[test]
fn a_new_leader_finishes_a_joint_change() {
    let mut net = Net::new(&[1, 2, 3], &[4]);
    net.elect(1);
    change(&mut net, 1, vec![MemberChange::AddLearner(4)]);
    net.get_mut(1)
        .change_config(ConfigChange::Apply(vec![MemberChange::AddVoter(4)]))
        .unwrap();
    // Deliver until the joint configuration commits on the leader, then cut it off
    // before the LeaveJoint entry reaches anyone.
    for _ in 0..1000 {
        for id in [1, 2, 3, 4] {
            while net.get(id).has_ready() {
                let rd = take_ready(net.get_mut(id));
                for (t, m) in all_messages(&rd) {
                    net.queue.push_back((id, t, m));
                }
            }
        }
        if net.get(1).membership().is_joint() {
            break;
        }
        let (from, to, m) = net.queue.pop_front().expect("messages until joint commits");
        net.get_mut(to).step(from, m).unwrap();
    }
    assert!(net.get(1).membership().is_joint());
    net.queue.clear();
    net.nodes.remove(&1);
    net.tick(60);
    let leader = net.leader().expect("new leader");
    assert_eq!(net.get(leader).membership(), &Membership::new([1, 2, 3, 4]));
}

/// Invalid changes are refused with a reason, and only the leader accepts changes.
#[test]
fn invalid_changes_are_refused() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    let r = net.get_mut(1);
    assert!(matches!(
        r.change_config(ConfigChange::Apply(vec![MemberChange::Remove(9)])),
        Err(ProposeError::Config(_))
    ));
    assert!(matches!(
        r.change_config(ConfigChange::LeaveJoint),
        Err(ProposeError::Config(_))
    ));
    assert!(matches!(
        net.get_mut(2)
            .change_config(ConfigChange::Apply(vec![MemberChange::AddLearner(9)])),
        Err(ProposeError::NotLeader { .. })
    ));
}
