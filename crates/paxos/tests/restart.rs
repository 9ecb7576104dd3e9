//! Restarting from durable state: whatever a node promised or acknowledged survives a
//! crash, including one that tears the write in flight; what it never said may be lost.

mod harness;

use bytes::Bytes;
use consensus::{Engine, LogIndex, Recovered, Role};
use harness::*;
use paxos::{Ballot, Body, Paxos};

#[test]
fn a_promise_survives_a_restart() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let prepare = msg(
        4,
        3,
        Body::Prepare {
            commit: idx(1),
            transfer: false,
        },
    );
    net.get_mut(2).step(3, prepare).unwrap();
    net.take_ready(2);
    net.crash(2);
    net.restart(2);
    assert_eq!(net.get(2).promised(), Ballot::new(4, 3));
    let lower = msg(
        3,
        1,
        Body::Prepare {
            commit: idx(1),
            transfer: false,
        },
    );
    net.get_mut(2).step(1, lower).unwrap();
    let ready = net.take_ready(2);
    assert_eq!(
        ready.messages[0].msg.body,
        Body::Nack {
            promised: Ballot::new(4, 3)
        }
    );
}

/// A crash before the fsync loses the promise, and that is fine: the promise never left.
#[test]
fn a_promise_lost_before_its_fsync_was_never_sent() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let prepare = msg(
        4,
        3,
        Body::Prepare {
            commit: idx(1),
            transfer: false,
        },
    );
    net.get_mut(2).step(3, prepare).unwrap();
    let ready = net.get_mut(2).ready();
    assert!(ready.messages.is_empty(), "the promise waits for the fsync");
    net.crash(2); // the write never completes
    net.restart(2);
    assert_eq!(net.get(2).promised(), Ballot::ZERO);
}

#[test]
fn acknowledged_acceptances_survive_and_are_reported_after_a_restart() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| c.check_quorum = false);
    net.elect(1);
    net.cut.insert((1, 3));
    net.cut.insert((2, 1));
    net.propose(1, "x");
    net.crash(2);
    net.restart(2);
    assert_eq!(net.held(2, 2).as_deref(), Some("x"));
    net.crash(1);
    net.heal();
    net.elect(3);
    net.tick(2);
    assert_eq!(net.applied_commands(3), vec!["x"]);
}

#[test]
fn a_leader_never_reuses_its_ballot_after_a_restart() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    let first = net.get(1).promised();
    net.crash(1);
    net.restart(1);
    assert_eq!(net.get(1).promised(), first);
    assert_eq!(net.get(1).role(), Role::Follower);
    net.tick(40);
    let leader = net.leader().unwrap();
    assert!(net.get(leader).promised() > first);
}

#[test]
fn durable_state_not_written_by_multi_paxos_is_refused() {
    let raft_like = Recovered {
        entries: vec![consensus::Entry {
            term: consensus::Term(3),
            index: LogIndex(1),
            payload: consensus::Payload::Noop,
        }],
        ..Default::default()
    };
    assert!(Paxos::new(config(1), raft_like).is_err());
    let mut c = config(1);
    c.id = 70_000;
    assert!(
        Paxos::new(c, Recovered::default()).is_err(),
        "ids must fit a ballot"
    );
}

#[test]
fn a_whole_cluster_restart_keeps_every_chosen_command() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    for c in ["a", "b", "c"] {
        net.propose(1, c);
    }
    net.tick(1);
    for id in [1, 2, 3] {
        net.crash(id);
    }
    for id in [1, 2, 3] {
        net.restart(id);
    }
    net.tick(40);
    let leader = net.leader().unwrap();
    net.get_mut(leader)
        .propose(Bytes::from_static(b"d"))
        .unwrap();
    net.tick(2);
    for id in [1, 2, 3] {
        assert_eq!(
            net.applied_commands(id),
            vec!["a", "b", "c", "d"],
            "node {id}"
        );
    }
}
