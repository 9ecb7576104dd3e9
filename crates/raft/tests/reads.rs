//! Linearizable reads: ReadIndex (§8, thesis §6.4) and the leader lease.

mod harness;

use consensus::{Engine, LogIndex, ProposeError};
use harness::*;
use raft::ReadMode;

/// A ReadIndex read is released only after a heartbeat round started after the request
/// is acknowledged by a quorum, at the commit index of the request.
#[test]
fn a_read_waits_for_a_quorum_heartbeat_round() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.propose(1, "x");
    let commit = net.get(1).commit_index();
    let before = net.count_delivered("Heartbeat");
    net.get_mut(1).read_index(7).unwrap();
    net.settle();
    assert!(
        net.count_delivered("Heartbeat") > before,
        "a confirmation round was sent"
    );
    let rs = &net.read_states[&1];
    assert_eq!(rs.last().map(|r| (r.ctx, r.index)), Some((7, commit)));
}

/// Many reads waiting at once share one confirmation round (batching).
#[test]
fn concurrent_reads_share_one_round() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    let before = net.count_delivered("Heartbeat");
    for ctx in 0..10 {
        net.get_mut(1).read_index(ctx).unwrap();
    }
    net.settle();
    assert_eq!(
        net.count_delivered("Heartbeat") - before,
        2,
        "one round: one heartbeat per peer"
    );
    assert_eq!(net.read_states[&1].len(), 10);
}

/// A leader cut off from its quorum never confirms a read: it might be deposed.
#[test]
fn a_partitioned_leader_never_confirms_a_read() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.isolate(1);
    net.get_mut(1).read_index(1).unwrap();
    net.settle();
    for _ in 0..5 {
        net.get_mut(1).tick();
        net.settle();
    }
    assert!(net.read_states.get(&1).is_none_or(|v| v.is_empty()));
}

/// A follower forwards the read to the leader and serves it once applied.
#[test]
fn a_follower_read_is_confirmed_by_the_leader() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.propose(1, "x");
    net.get_mut(2).read_index(42).unwrap();
    net.settle();
    let rs = net.read_states[&2].last().copied().expect("released");
    assert_eq!(rs.ctx, 42);
    assert!(rs.index >= net.get(2).commit_index().min(rs.index));
    assert!(rs.index > LogIndex(1));
}

/// With no leader known, a follower refuses the read instead of guessing.
#[test]
fn a_read_without_a_leader_is_refused() {
    let mut r = node(1, &[1, 2, 3]);
    assert_eq!(r.read_index(1), Err(ProposeError::NotLeader { hint: None }));
}

/// Lease reads are served without a round trip while the lease holds, and need a
/// round again once it has expired.
#[test]
fn lease_reads_skip_the_round_trip_while_the_lease_holds() {
    let mut net = Net::with_config(&[1, 2, 3], |c| c.read_mode = ReadMode::Lease);
    // Lease mode refuses votes for an election timeout after start: let it pass.
    for _ in 0..10 {
        for n in net.nodes.values_mut() {
            n.tick();
        }
    }
    net.settle();
    let leader = net.leader().unwrap_or_else(|| {
        net.elect(1);
        1
    });
    net.tick(1); // one acknowledged heartbeat round starts the lease
    let before = net.count_delivered("Heartbeat");
    net.get_mut(leader).read_index(5).unwrap();
    assert_eq!(net.count_delivered("Heartbeat"), before);
    let ready = take_ready(net.get_mut(leader));
    assert_eq!(
        ready.read_states.len(),
        1,
        "served from the lease, no round trip"
    );
    // Cut off, the leader's lease runs out and reads stall.
    net.isolate(leader);
    for _ in 0..10 {
        net.get_mut(leader).tick();
        net.settle();
    }
    net.get_mut(leader).read_index(6).unwrap();
    net.settle();
    assert!(net
        .read_states
        .get(&leader)
        .is_none_or(|v| v.iter().all(|r| r.ctx != 6)));
}
