//! Linearizable reads by a quorum read barrier: the read index is the leader's commit
//! index, released once a heartbeat round started after the request is acknowledged by
//! a quorum in the leader's ballot — never on a clock.

mod harness;

use consensus::{Engine, LogIndex, ReadState};
use harness::*;

fn reads(net: &Net, id: u64) -> Vec<ReadState> {
    net.read_states.get(&id).cloned().unwrap_or_default()
}

#[test]
fn a_read_is_released_after_a_quorum_confirms_a_later_round() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    let p = net.propose(1, "x");
    net.get_mut(1).read_index(7).unwrap();
    net.take_ready(1);
    assert!(
        reads(&net, 1).is_empty(),
        "not before the round is acknowledged"
    );
    net.settle();
    assert_eq!(
        reads(&net, 1),
        vec![ReadState {
            ctx: 7,
            index: p.index
        }]
    );
}

#[test]
fn reads_share_a_round() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.settle();
    let before = net.count_delivered("Heartbeat");
    for ctx in 1..=5 {
        net.get_mut(1).read_index(ctx).unwrap();
    }
    net.settle();
    assert_eq!(reads(&net, 1).len(), 5);
    assert_eq!(
        net.count_delivered("Heartbeat") - before,
        2,
        "one round, two peers"
    );
}

#[test]
fn a_single_node_confirms_its_own_reads() {
    let mut net = Net::new(&[1], &[]);
    net.elect(1);
    net.get_mut(1).read_index(1).unwrap();
    net.settle();
    assert_eq!(reads(&net, 1).len(), 1);
}

/// A leader cut off from the quorum cannot confirm a read, while the other side elects
/// a new leader and commits a write the old one never saw.
#[test]
fn a_partitioned_leader_never_serves_a_stale_read() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| c.check_quorum = false);
    net.elect(1);
    net.isolate(1);
    net.get_mut(1).read_index(1).unwrap();
    net.elect(2);
    net.propose(2, "new");
    net.tick(5);
    assert!(reads(&net, 1).is_empty());
}

/// The `read_without_quorum` knob shows what the barrier prevents: the old leader
/// answers at once, at an index that misses the newer write.
#[test]
fn reading_without_a_quorum_is_stale() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| {
        c.check_quorum = false;
        c.knobs.read_without_quorum = true;
    });
    net.elect(1);
    net.isolate(1);
    net.elect(2);
    let p = net.propose(2, "new");
    net.get_mut(1).read_index(1).unwrap();
    net.settle();
    let r = reads(&net, 1);
    assert_eq!(r.len(), 1);
    assert!(
        r[0].index < p.index,
        "the write at {} is invisible",
        p.index
    );
}

/// A new leader's commit index may lag values earlier leaders chose: reads wait until
/// every value it re-proposed when taking over is chosen again.
#[test]
fn a_new_leader_reads_only_after_its_takeover_is_chosen() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| c.check_quorum = false);
    net.elect(1);
    net.cut.insert((1, 3));
    net.cut.insert((2, 1));
    let x = net.propose(1, "x");
    net.crash(1);
    net.heal();
    // Node 3 wins with node 2's promise, then is cut off before its accepts leave.
    while net.get(3).role() == consensus::Role::Follower {
        net.get_mut(3).tick();
    }
    while net.get(3).role() != consensus::Role::Leader {
        net.round();
    }
    net.isolate(3);
    net.queue.clear();
    assert_eq!(net.get(3).commit_index(), LogIndex(1));
    net.get_mut(3).read_index(9).unwrap();
    net.tick(3);
    assert!(
        reads(&net, 3).is_empty(),
        "x may be chosen: no read before it is"
    );
    net.heal();
    net.tick(2);
    let r = reads(&net, 3);
    assert_eq!(r.len(), 1);
    assert!(r[0].index >= x.index);
}

/// Regression (simulator seed 4476): a new leader whose takeover stops at a change of
/// voters adopts the values after it only in its second phase 1, with the new voters.
/// A value may already be chosen there, so reads must wait for those slots too — not
/// only for the ones adopted before the change.
#[test]
fn reads_wait_for_values_adopted_after_a_change_of_voters() {
    let mut net = Net::with_config(&[1, 2, 3], &[4], |c| c.check_quorum = false);
    net.elect(1);
    net.get_mut(1)
        .change_config(consensus::ConfigChange::Apply(vec![
            consensus::MemberChange::AddLearner(4),
        ]))
        .unwrap();
    net.tick(2);
    // Node 3 misses everything from here: the change of voters and x, chosen by
    // {1, 2, 4} under the new voters.
    net.isolate(3);
    let change = net
        .get_mut(1)
        .change_config(consensus::ConfigChange::Apply(vec![
            consensus::MemberChange::AddVoter(4),
        ]))
        .unwrap();
    net.tick(2);
    let x = net.propose(1, "x");
    net.tick(1);
    assert_eq!(x.index, change.index.next());
    assert!(net.get(2).commit_index() >= x.index);
    // Node 1 dies; node 3 (behind the change) takes over with node 2, and is asked for a
    // read the moment it leads.
    net.crash(1);
    net.heal();
    while net.get(3).role() == consensus::Role::Follower {
        net.get_mut(3).tick();
    }
    let mut asked = false;
    for _ in 0..40 {
        net.round();
        if !asked && net.get(3).role() == consensus::Role::Leader {
            net.get_mut(3).read_index(5).unwrap();
            asked = true;
        }
        if !reads(&net, 3).is_empty() {
            break;
        }
    }
    let r = reads(&net, 3);
    assert_eq!(r.len(), 1, "the read was released");
    assert!(
        r[0].index >= x.index,
        "read index {} misses x, chosen at {}",
        r[0].index,
        x.index
    );
}
