//! Dueling proposers: two proposers that each answer being preempted by immediately
//! preparing a higher ballot can preempt each other forever, and nothing is ever chosen
//! (Lamport, "Paxos Made Simple" §2.4: progress needs a distinguished proposer). The
//! randomized back-off makes the loser wait while the winner finishes, so they converge.

mod harness;

use bytes::Bytes;
use consensus::{Engine, LogIndex};
use harness::*;

/// Three nodes time out in the same tick and run in lockstep rounds; whoever leads is
/// offered a command every round. Returns the highest commit index reached and the
/// highest ballot round any node promised.
fn duel(retry_without_backoff: bool, rounds: usize) -> (LogIndex, u64) {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| {
        // Neither stickiness nor pre-prepare: the back-off alone must break the tie.
        c.check_quorum = false;
        c.pre_prepare = false;
        c.knobs.retry_without_backoff = retry_without_backoff;
    });
    // Everyone's first timeout is drawn from its seed; line them up instead.
    for id in [1, 2, 3] {
        while net.get(id).role() == consensus::Role::Follower {
            net.get_mut(id).tick();
        }
    }
    for _ in 0..rounds {
        for id in [1, 2, 3] {
            net.get_mut(id).tick();
        }
        if let Some(l) = net.leader() {
            let _ = net.get_mut(l).propose(Bytes::from_static(b"cmd"));
        }
        net.round();
    }
    let commit = [1, 2, 3]
        .iter()
        .map(|&id| net.get(id).commit_index())
        .max()
        .unwrap();
    let round = [1, 2, 3]
        .iter()
        .map(|&id| net.get(id).promised().round)
        .max()
        .unwrap();
    (commit, round)
}

#[test]
fn proposers_that_retry_without_back_off_livelock() {
    let (commit, leaders) = duel(true, 300);
    assert_eq!(
        commit,
        LogIndex(1),
        "nothing but the founding slot is ever chosen"
    );
    assert!(
        leaders > 50,
        "leadership kept changing hands ({leaders} ballots)"
    );
}

#[test]
fn randomized_back_off_lets_dueling_proposers_converge() {
    let (commit, leaders) = duel(false, 300);
    assert!(
        commit > LogIndex(100),
        "commands were chosen (commit {commit})"
    );
    assert!(
        leaders <= 3,
        "one leader soon prevailed ({leaders} ballots)"
    );
}
