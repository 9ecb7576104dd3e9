//! Failure detection and phase 1: who leads, with which ballot, and what a node must
//! have made durable before it says so.

mod harness;

use bytes::Bytes;
use consensus::{Engine, LogIndex, ProposeError, Role};
use harness::*;
use paxos::{Ballot, Body};

#[test]
fn a_single_node_leads_itself_and_commits() {
    let mut net = Net::new(&[1], &[]);
    net.elect(1);
    let p = net.propose(1, "x");
    assert_eq!(
        p.index,
        LogIndex(2),
        "slot 1 holds the founding configuration"
    );
    assert_eq!(net.get(1).commit_index(), LogIndex(2));
    assert_eq!(net.applied_commands(1), vec!["x"]);
}

#[test]
fn a_leader_is_elected_and_its_command_is_applied_everywhere() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    assert_eq!(net.get(1).promised(), Ballot::new(1, 1));
    for id in [2, 3] {
        assert_eq!(net.get(id).leader(), Some(1));
        assert_eq!(net.get(id).promised(), Ballot::new(1, 1));
    }
    let p = net.propose(1, "x");
    assert_eq!(
        p.term,
        Ballot::new(1, 1).to_term(),
        "proposals carry the leader's ballot"
    );
    net.tick(2); // heartbeats carry the commit index
    for id in [1, 2, 3] {
        assert_eq!(net.get(id).commit_index(), p.index, "node {id}");
        assert_eq!(net.applied_commands(id), vec!["x"], "node {id}");
        let applied = net.applied[&id].last().unwrap();
        assert_eq!((applied.index, applied.term), (p.index, p.term));
    }
}

#[test]
fn followers_refuse_proposals_and_name_the_leader() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    assert_eq!(
        net.get_mut(2).propose(Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader { hint: None }),
        "nobody leads yet"
    );
    net.elect(1);
    assert_eq!(
        net.get_mut(2).propose(Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader { hint: Some(1) })
    );
    assert_eq!(
        net.get_mut(3).read_index(7),
        Err(ProposeError::NotLeader { hint: Some(1) })
    );
}

/// "Paxos Made Simple" §2.2, P1a: the promise leaves only once it is durable, and the
/// candidate's own prepare only once its ballot is — so no crash can break a promise or
/// let a proposer reuse a ballot.
#[test]
fn promises_and_prepares_leave_only_after_the_fsync() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| c.pre_prepare = false);
    while net.get(1).role() != Role::Candidate {
        net.get_mut(1).tick();
    }
    let ready = net.take_ready(1);
    let ballot = Ballot::new(1, 1);
    assert!(ready.must_sync);
    assert_eq!(ready.hard_state.map(|h| h.term), Some(ballot.to_term()));
    assert!(
        ready.messages.is_empty(),
        "nothing leaves before the ballot is durable"
    );
    assert_eq!(ready.messages_after_sync.len(), 2);
    assert!(ready
        .messages_after_sync
        .iter()
        .all(|o| o.msg.ballot == ballot && matches!(o.msg.body, Body::Prepare { .. })));
    let (_, to, prepare) = net.queue.pop_front().unwrap();
    net.queue.clear();
    net.get_mut(to).step(1, prepare).unwrap();
    let answer = net.take_ready(to);
    assert!(answer.must_sync);
    assert_eq!(answer.hard_state.map(|h| h.term), Some(ballot.to_term()));
    assert!(answer.messages.is_empty());
    assert!(matches!(
        answer.messages_after_sync[0].msg.body,
        Body::Promise { .. }
    ));
}

#[test]
fn acceptances_are_acknowledged_only_after_the_fsync() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.get_mut(1).propose(Bytes::from_static(b"x")).unwrap();
    net.take_ready(1);
    let (_, to, accept) = net.queue.pop_front().unwrap();
    net.queue.clear();
    net.get_mut(to).step(1, accept).unwrap();
    let ready = net.take_ready(to);
    assert!(ready.must_sync);
    assert_eq!(ready.entries.len(), 1);
    assert_eq!(ready.entries[0].term, Ballot::new(1, 1).to_term());
    assert!(ready.messages.is_empty());
    assert!(matches!(
        ready.messages_after_sync[0].msg.body,
        Body::Accepted { through, .. } if through == LogIndex(2)
    ));
}

#[test]
fn a_prepare_below_the_promise_is_refused_with_the_promise() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| c.check_quorum = false);
    net.elect(1);
    net.elect(2);
    assert_eq!(net.get(2).promised(), Ballot::new(2, 2));
    // Node 3 left the leader node 1 behind; a stale prepare from ballot (1, 3) is refused.
    let stale = msg(
        1,
        3,
        Body::Prepare {
            commit: idx(1),
            transfer: false,
        },
    );
    net.get_mut(1).step(3, stale).unwrap();
    let ready = net.take_ready(1);
    let nack = &ready.messages[0].msg;
    assert_eq!(nack.ballot, Ballot::new(1, 3));
    assert_eq!(
        nack.body,
        Body::Nack {
            promised: Ballot::new(2, 2)
        }
    );
}

#[test]
fn a_higher_ballot_deposes_the_leader_which_learns_it_from_a_refusal() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| c.check_quorum = false);
    net.elect(1);
    net.isolate(1);
    net.elect(2);
    assert_eq!(
        net.get(1).role(),
        Role::Leader,
        "node 1 has heard nothing yet"
    );
    net.heal();
    net.get_mut(1)
        .propose(Bytes::from_static(b"stale"))
        .unwrap();
    net.settle();
    assert_eq!(
        net.get(1).role(),
        Role::Follower,
        "refused by the higher promise"
    );
    net.tick(3);
    assert_eq!(net.get(1).promised(), Ballot::new(2, 2));
    assert_eq!(net.leader(), Some(2));
    assert!(
        !net.applied_commands(3).contains(&"stale".to_string()),
        "a deposed leader's proposal is never chosen"
    );
}

/// Pre-prepare: a node cut off from a quorum asks, is refused, and never raises its
/// ballot — so when it returns, the leader's ballot is still good enough for it.
#[test]
fn a_node_back_from_a_partition_does_not_unseat_a_live_leader() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.isolate(3);
    for _ in 0..60 {
        net.get_mut(3).tick();
        net.settle();
    }
    assert_eq!(
        net.get(3).promised(),
        Ballot::new(1, 1),
        "no ballot inflation"
    );
    net.heal();
    net.tick(30);
    for id in [2, 3] {
        assert_eq!(net.get(id).leader(), Some(1), "node {id}");
        assert_eq!(net.get(id).promised(), Ballot::new(1, 1), "node {id}");
    }
}

/// Without pre-prepare the isolated node raises its ballot alone; on its return the
/// acceptors' stickiness still refuses it, but its refusals of the leader's lower
/// ballot depose the leader once — and the group converges on one leader again.
#[test]
fn without_pre_prepare_a_returning_node_costs_one_election() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| c.pre_prepare = false);
    net.elect(1);
    net.isolate(3);
    for _ in 0..60 {
        net.get_mut(3).tick();
        net.settle();
    }
    let inflated = net.get(3).promised();
    assert!(inflated > Ballot::new(1, 1));
    net.heal();
    net.tick(60);
    let leader = net.leader().expect("a leader again");
    let ballot = net.get(leader).promised();
    assert!(
        ballot > inflated,
        "the new leader's ballot beats the inflated one"
    );
    for id in [1, 2, 3] {
        assert_eq!(net.get(id).promised(), ballot, "node {id}");
    }
    let p = net.propose(leader, "after");
    net.tick(2);
    assert!(net.get(3).commit_index() >= p.index);
}

#[test]
fn a_leader_that_loses_its_quorum_steps_down() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.isolate(1);
    for _ in 0..25 {
        net.get_mut(1).tick();
        net.settle();
    }
    assert_eq!(net.get(1).role(), Role::Follower);
    assert_eq!(
        net.get_mut(1).propose(Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader { hint: None })
    );
}

/// Status names the role, the ballot (as its term encoding), the leader, the commit
/// index and, on the leader, every acceptor's progress.
#[test]
fn status_reports_the_ballot_and_the_progress_of_every_acceptor() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(2);
    let p = net.propose(2, "x");
    let s = net.get(2).status();
    assert_eq!(s.role, Role::Leader);
    assert_eq!(Ballot::from_term(s.term), Ballot::new(1, 2));
    assert_eq!(s.leader, Some(2));
    assert_eq!(s.commit, p.index);
    let peers: Vec<(u64, LogIndex)> = s.peers.iter().map(|p| (p.id, p.matched)).collect();
    assert_eq!(peers, vec![(1, p.index), (3, p.index)]);
    let f = net.get(3).status();
    assert_eq!(
        (f.role, f.leader, f.term),
        (Role::Follower, Some(2), s.term)
    );
    assert!(f.peers.is_empty());
}
