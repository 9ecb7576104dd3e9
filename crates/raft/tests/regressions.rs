//! Regression tests from the consensus review: each failed before its fix. The doc
//! comment of each names the interleaving that broke the property.

mod harness;

use bytes::Bytes;
use consensus::{ConfigChange, Engine, MemberChange, Membership, Role};
use harness::*;
use raft::{Body, ReadMode};

/// Finding: a removed leader steps down inside `commit_to` (via `apply_configs` →
/// `on_membership_changed` → `become_follower`), which clears `broadcast_pending`, so
/// the commit of its LeaveJoint entry is never sent to anyone. The remaining voters
/// stay in the joint configuration, whose outgoing half still needs the removed node.
/// Here {1,2} → {2}: once node 1 is shut down (the normal thing to do after removing
/// it), node 2 needs a vote from node 1 forever and the group never elects again.
#[test]
fn remaining_voters_learn_the_removal_of_their_leader() {
    let mut net = Net::new(&[1, 2], &[]);
    net.elect(1);
    net.propose(1, "x");
    net.get_mut(1)
        .change_config(ConfigChange::Apply(vec![MemberChange::Remove(1)]))
        .expect("accepted");
    net.settle();
    net.tick(2);
    assert_ne!(
        net.get(1).role(),
        Role::Leader,
        "the removed leader stepped down"
    );
    assert_eq!(
        net.get(1).membership(),
        &Membership::new([2]),
        "the removal is committed on the old leader"
    );
    // The operator decommissions the removed node.
    net.nodes.remove(&1);
    net.tick(100);
    assert_eq!(
        net.get(2).membership(),
        &Membership::new([2]),
        "node 2 never learned that LeaveJoint committed"
    );
    assert_eq!(
        net.leader(),
        Some(2),
        "the remaining voter cannot elect itself"
    );
}

/// Same finding with three voters being replaced by a majority of new ones
/// ({1,2,3} → {3,4}): the survivors stay joint and need a vote of 1 or 2.
#[test]
fn replacing_a_majority_including_the_leader_stays_live() {
    let mut net = Net::new(&[1, 2, 3], &[4]);
    net.elect(1);
    net.get_mut(1)
        .change_config(ConfigChange::Apply(vec![MemberChange::AddLearner(4)]))
        .unwrap();
    net.settle();
    net.tick(2);
    net.get_mut(1)
        .change_config(ConfigChange::Apply(vec![
            MemberChange::Remove(1),
            MemberChange::Remove(2),
            MemberChange::AddVoter(4),
        ]))
        .unwrap();
    net.settle();
    net.tick(2);
    assert_eq!(net.get(1).membership(), &Membership::new([3, 4]));
    net.nodes.remove(&1);
    net.nodes.remove(&2);
    net.tick(100);
    let leader = net.leader().expect("3 and 4 elect a leader");
    assert_eq!(net.get(leader).membership(), &Membership::new([3, 4]));
}

/// Finding: lease reads ignore leadership transfer. A transfer vote (`transfer: true`)
/// overrides every follower's lease by design, so once TimeoutNow has left, another
/// node can win a higher term while the old leader still believes its lease holds and
/// serves reads at its old commit index without any round trip: a stale read.
#[test]
fn a_lease_is_not_used_after_handing_leadership_away() {
    let mut net = Net::with_config(&[1, 2, 3], |c| c.read_mode = ReadMode::Lease);
    // Let the start-up vote guard of lease mode pass.
    for _ in 0..10 {
        for n in net.nodes.values_mut() {
            n.tick();
        }
    }
    net.settle();
    if net.leader() != Some(1) {
        net.elect(1);
    }
    net.tick(1); // an acknowledged heartbeat round: node 1 holds a lease
    net.propose(1, "before");
    let old_commit = net.get(1).commit_index();

    // Hand leadership to 3; TimeoutNow leaves at once (3 is caught up).
    net.get_mut(1).transfer_leadership(3).unwrap();
    let ready = take_ready(net.get_mut(1));
    let mut timeout_now = None;
    for (to, m) in all_messages(&ready) {
        if to == 3 && matches!(m.body, Body::TimeoutNow) {
            timeout_now = Some(m);
        }
    }
    let timeout_now = timeout_now.expect("TimeoutNow sent to the caught-up target");
    // Node 1 is cut off right after TimeoutNow left.
    net.isolate(1);
    net.get_mut(3).step(1, timeout_now).unwrap();
    net.settle();
    assert_eq!(
        net.get(3).role(),
        Role::Leader,
        "3 won with 2's transfer vote"
    );
    let w = net.propose(3, "w");
    assert!(
        net.get(3).commit_index() >= w.index,
        "the write committed on {{2,3}}"
    );

    // Node 1 still believes it leads, and its lease has not expired on its clock.
    assert_eq!(net.get(1).role(), Role::Leader);
    net.get_mut(1).read_index(99).unwrap();
    let ready = take_ready(net.get_mut(1));
    let served: Vec<_> = ready.read_states.iter().filter(|r| r.ctx == 99).collect();
    assert!(
        served.is_empty(),
        "old leader served read at {:?} (its commit {old_commit:?}) after write at {:?} \
         committed under the new leader: stale read",
        served,
        w.index
    );
}

/// Finding (minor liveness): `transfer_elapsed` is set in `start_transfer` but never
/// incremented; a transfer is abandoned at the next check-quorum boundary of
/// `tick_leader` (`election_elapsed >= election_ticks`), which may be one tick after it
/// started rather than an election timeout later. A transfer to a peer that needs a
/// few ticks to catch up can thus be dropped almost at once.
#[test]
fn a_transfer_is_given_an_election_timeout_before_it_is_abandoned() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    // Nine leader ticks: node 1's election_elapsed is now one short of the boundary.
    net.tick(9);
    assert_eq!(net.leader(), Some(1));
    // Target 3 is briefly unreachable, so the transfer waits for it to catch up.
    net.isolate(3);
    net.propose(1, "lagging");
    net.get_mut(1).transfer_leadership(3).unwrap();
    net.settle();
    net.get_mut(1).tick();
    net.settle();
    assert_eq!(
        net.get_mut(1).propose(Bytes::from_static(b"during")),
        Err(consensus::ProposeError::TransferInProgress),
        "the transfer was abandoned one tick after it started"
    );
}
