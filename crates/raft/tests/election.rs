//! Election rules, each test named for the rule it checks and citing the paper.

mod harness;

use consensus::{Engine, HardState, Role, Term};
use harness::*;
use raft::Body;

/// §5.2 + thesis §9.6: a follower whose election timer fires first asks for pre-votes
/// in term+1 without changing its own term or vote.
#[test]
fn an_election_timeout_starts_a_pre_vote_that_changes_no_durable_state() {
    let mut r = node(1, &[1, 2, 3]);
    let _ = take_ready(&mut r); // the bootstrap entry
    for _ in 0..20 {
        r.tick();
        if r.role() != Role::Follower {
            break;
        }
    }
    assert_eq!(r.role(), Role::PreCandidate);
    let ready = take_ready(&mut r);
    assert_eq!(
        ready.hard_state, None,
        "a pre-vote must not touch term or vote"
    );
    let sent: Vec<_> = all_messages(&ready);
    assert_eq!(
        sent,
        vec![
            (
                2,
                msg(
                    2,
                    Body::PreVote {
                        last_index: idx(1),
                        last_term: Term(1)
                    }
                )
            ),
            (
                3,
                msg(
                    2,
                    Body::PreVote {
                        last_index: idx(1),
                        last_term: Term(1)
                    }
                )
            ),
        ]
    );
    assert_eq!(r.term(), Term(1));
}

/// §5.2 with Figure 2's persistence rule: a vote is granted only once term and vote are
/// durable, so the grant travels in `messages_after_sync`.
#[test]
fn a_vote_is_granted_only_after_it_is_durable() {
    let mut r = node(2, &[1, 2, 3]);
    let _ = take_ready(&mut r);
    r.step(
        1,
        msg(
            2,
            Body::Vote {
                last_index: idx(1),
                last_term: Term(1),
                transfer: false,
            },
        ),
    )
    .unwrap();
    let ready = r.ready();
    assert_eq!(
        ready.hard_state,
        Some(HardState {
            term: Term(2),
            vote: Some(1),
            commit: idx(1)
        })
    );
    assert!(ready.must_sync);
    assert!(
        ready.messages.is_empty(),
        "nothing may leave before the fsync"
    );
    assert_eq!(ready.messages_after_sync.len(), 1);
    assert_eq!(ready.messages_after_sync[0].to, 1);
    assert_eq!(
        ready.messages_after_sync[0].msg,
        msg(2, Body::VoteResponse { granted: true })
    );
}

/// §5.2: "each server will vote for at most one candidate in a given term".
#[test]
fn a_node_votes_once_per_term() {
    let mut r = node(3, &[1, 2, 3]);
    let _ = take_ready(&mut r);
    let vote = |_: u64| {
        msg(
            2,
            Body::Vote {
                last_index: idx(1),
                last_term: Term(1),
                transfer: false,
            },
        )
    };
    r.step(1, vote(1)).unwrap();
    let _ = take_ready(&mut r);
    r.step(2, vote(2)).unwrap();
    let ready = take_ready(&mut r);
    assert_eq!(
        all_messages(&ready),
        vec![(2, msg(2, Body::VoteResponse { granted: false }))]
    );
    // The same candidate asking again (a retransmit) is granted again.
    r.step(1, vote(1)).unwrap();
    let ready = take_ready(&mut r);
    assert_eq!(
        all_messages(&ready),
        vec![(1, msg(2, Body::VoteResponse { granted: true }))]
    );
}

/// §5.4.1: "the voter denies its vote if its own log is more up-to-date than that of
/// the candidate."
#[test]
fn a_candidate_with_a_stale_log_is_refused() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.propose(1, "x");
    // Node 3's log now ends at index 3 term 2; a candidate ending at 1 is stale.
    let r = net.get_mut(3);
    r.step(
        2,
        msg(
            9,
            Body::Vote {
                last_index: idx(1),
                last_term: Term(1),
                transfer: true,
            },
        ),
    )
    .unwrap();
    let ready = take_ready(r);
    assert_eq!(
        all_messages(&ready),
        vec![(2, msg(9, Body::VoteResponse { granted: false }))]
    );
    assert_eq!(r.term(), Term(9), "the higher term is still adopted (§5.1)");
}

/// A candidate counts its own vote only once it is durable: before `advance`, even a
/// majority of other grants cannot make it leader with an unsynced self-vote.
#[test]
fn a_candidate_counts_its_own_vote_only_after_persisting_it() {
    let mut c = config(1);
    c.pre_vote = false;
    let mut r = raft::Raft::new(c, raft::Raft::bootstrap(&[1, 2, 3])).unwrap();
    let _ = take_ready(&mut r);
    while r.role() != Role::Candidate {
        r.tick();
    }
    let ready = r.ready(); // term 2 + self-vote handed to the disk, not yet durable
    r.step(2, msg(2, Body::VoteResponse { granted: true }))
        .unwrap();
    assert_eq!(
        r.role(),
        Role::Candidate,
        "one grant plus an unsynced self-vote is not a quorum"
    );
    r.advance(ready.number);
    assert_eq!(r.role(), Role::Leader);
}

/// §5.2: the winner sends heartbeats/appends; the others learn it as leader.
#[test]
fn a_majority_elects_and_everyone_follows() {
    let mut net = Net::new(&[1, 2, 3, 4, 5], &[]);
    net.elect(3);
    for id in [1, 2, 4, 5] {
        assert_eq!(net.get(id).role(), Role::Follower);
        assert_eq!(net.get(id).leader(), Some(3));
        assert_eq!(net.get(id).term(), net.get(3).term());
    }
}

/// A minority cannot elect: with two of five nodes cut off, the isolated side never
/// gets a leader, and (pre-vote) never raises its term.
#[test]
fn a_minority_never_elects_and_pre_vote_keeps_its_term() {
    let mut net = Net::new(&[1, 2, 3, 4, 5], &[]);
    net.elect(1);
    let term = net.get(1).term();
    net.isolate(4);
    net.isolate(5);
    for _ in 0..100 {
        net.get_mut(4).tick();
        net.get_mut(5).tick();
        net.settle();
    }
    assert_ne!(net.get(4).role(), Role::Leader);
    assert_eq!(
        net.get(4).term(),
        term,
        "pre-vote: a partitioned node does not inflate its term"
    );
}

/// Thesis §9.6 + §4.2.3: a node returning from a partition does not disrupt a healthy
/// leader — its pre-vote is ignored while the others hear from the leader.
#[test]
fn a_returning_node_does_not_disrupt_a_healthy_leader() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    let term = net.get(1).term();
    net.isolate(3);
    for _ in 0..60 {
        net.tick(1);
    }
    net.heal();
    net.tick(30);
    assert_eq!(net.leader(), Some(1));
    assert_eq!(net.get(1).term(), term);
    assert_eq!(net.get(3).leader(), Some(1));
}

/// Thesis §6.2 (check-quorum): a leader that has not heard from a quorum for an
/// election timeout steps down.
#[test]
fn a_leader_cut_off_from_its_quorum_steps_down() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.isolate(1);
    for _ in 0..25 {
        net.get_mut(1).tick();
        net.settle();
    }
    assert_eq!(net.get(1).role(), Role::Follower);
}

/// Without pre-vote or check-quorum, the classic protocol still elects (and a higher
/// term still deposes the old leader).
#[test]
fn plain_raft_without_pre_vote_or_check_quorum_elects() {
    let mut net = Net::with_config(&[1, 2, 3], |c| {
        c.pre_vote = false;
        c.check_quorum = false;
    });
    net.elect(2);
    net.elect(3);
    assert_eq!(net.get(2).role(), Role::Follower);
    assert_eq!(net.leader(), Some(3));
}

/// Thesis §3.10: leadership transfer catches the target up and sends TimeoutNow; the
/// target wins at once, overriding the lease; proposals are refused meanwhile.
#[test]
fn leadership_transfer_hands_over_to_the_target() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.propose(1, "before");
    net.get_mut(1).transfer_leadership(3).unwrap();
    assert_eq!(
        net.get_mut(1).propose(bytes::Bytes::from_static(b"during")),
        Err(consensus::ProposeError::TransferInProgress)
    );
    net.settle();
    assert_eq!(net.leader(), Some(3));
    assert_eq!(net.count_delivered("TimeoutNow"), 1);
    net.propose(3, "after");
    assert_eq!(net.applied_commands(2), vec!["before", "after"]);
}

/// A transfer that cannot complete (target unreachable) is abandoned after an
/// election timeout, and the leader serves again.
#[test]
fn a_stuck_transfer_is_abandoned() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.isolate(3);
    net.get_mut(1).transfer_leadership(3).unwrap();
    net.settle();
    for _ in 0..12 {
        net.get_mut(1).tick();
        net.get_mut(2).tick();
        net.settle();
    }
    assert_eq!(net.leader(), Some(1));
    assert!(net
        .get_mut(1)
        .propose(bytes::Bytes::from_static(b"x"))
        .is_ok());
}
