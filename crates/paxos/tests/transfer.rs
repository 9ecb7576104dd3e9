//! Leadership transfer: the leader stops proposing, brings the target up to date, and
//! tells it to run phase 1 at once, overriding the acceptors' stickiness.

mod harness;

use bytes::Bytes;
use consensus::{Engine, ProposeError, Role};
use harness::*;

#[test]
fn leadership_moves_to_a_caught_up_voter() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.propose(1, "x");
    net.get_mut(1).transfer_leadership(3).unwrap();
    assert_eq!(
        net.get_mut(1).propose(Bytes::from_static(b"y")),
        Err(ProposeError::TransferInProgress)
    );
    net.settle();
    assert_eq!(net.get(3).role(), Role::Leader);
    assert_eq!(net.get(1).role(), Role::Follower);
    assert_eq!(net.get(1).promised(), net.get(3).promised());
    let p = net.propose(3, "y");
    net.tick(1);
    assert_eq!(net.applied_commands(1), vec!["x", "y"]);
    assert!(net.get(2).commit_index() >= p.index);
}

#[test]
fn a_transfer_to_an_unreachable_voter_is_abandoned() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.isolate(3);
    net.cut.remove(&(1, 2));
    net.cut.remove(&(2, 1));
    net.get_mut(1).transfer_leadership(3).unwrap();
    for _ in 0..12 {
        net.get_mut(1).tick();
        net.get_mut(2).tick();
        net.settle();
    }
    assert_eq!(net.get(1).role(), Role::Leader);
    net.propose(1, "served again");
}

#[test]
fn only_voters_can_receive_leadership() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    assert_eq!(
        net.get_mut(1).transfer_leadership(2),
        Err(ProposeError::NotLeader { hint: None })
    );
    net.elect(1);
    assert!(net.get_mut(1).transfer_leadership(9).is_err());
}
