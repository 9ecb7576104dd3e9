//! Taking over: a new leader learns every possibly-chosen value from a quorum of
//! promises, re-proposes it with its origin, fills the gaps with no-ops, and commands are
//! applied strictly in slot order. ("Paxos Made Simple" §2.2–§3.)

mod harness;

use bytes::Bytes;
use consensus::{Engine, LogIndex, Role};
use harness::*;
use paxos::{Ballot, Body};

/// Scripted schedules: stickiness off so that any node can be elected on demand.
fn scripted(voters: &[u64]) -> Net {
    Net::with_config(voters, &[], |c| {
        c.check_quorum = false;
        c.batch_slots_max = 1;
    })
}

fn is_accept(m: &paxos::Message) -> bool {
    matches!(m.body, Body::Accept { .. })
}

/// P2c: a value a quorum may have accepted survives its leader. The new leader finds it
/// in a promise, proposes it again in its own ballot — keeping the value's origin, so
/// the shell of the original proposer still recognises its proposal as the one chosen.
#[test]
fn a_possibly_chosen_value_is_re_proposed_with_its_origin() {
    let mut net = scripted(&[1, 2, 3]);
    net.elect(1);
    // x reaches node 2 only, and node 2's acknowledgement never returns: x may be
    // chosen ({1, 2} is a quorum) but nobody knows.
    net.cut.insert((1, 3));
    net.cut.insert((2, 1));
    let proposed = net.propose(1, "x");
    assert_eq!(net.get(1).commit_index(), LogIndex(1));
    assert_eq!(net.held(2, 2).as_deref(), Some("x"));
    net.crash(1);
    net.heal();
    net.elect(3);
    net.tick(2);
    for id in [2, 3] {
        assert_eq!(net.applied_commands(id), vec!["x"], "node {id}");
        let e = net.applied[&id].last().unwrap();
        assert_eq!(
            (e.index, e.term),
            (proposed.index, proposed.term),
            "node {id} applied x as the proposal made by node 1's ballot"
        );
        assert_eq!(
            net.get(id).accepted(proposed.index).unwrap().ballot,
            net.get(3).promised(),
            "re-accepted in the new leader's ballot"
        );
    }
}

/// Slots that no promise mentions may still be empty everywhere (an accept lost in
/// flight): the new leader fills them with no-ops so that later slots can be applied.
#[test]
fn gaps_are_filled_with_no_ops() {
    let mut net = scripted(&[1, 2, 3]);
    net.elect(1);
    net.tick(1); // acceptors acknowledged the takeover: the leader pipelines now
    net.get_mut(1).propose(Bytes::from_static(b"a")).unwrap();
    net.take_ready(1);
    net.drop_where(|_, _, m| is_accept(m)); // slot 2 is lost on the way
    net.get_mut(1).propose(Bytes::from_static(b"b")).unwrap();
    net.take_ready(1);
    net.crash(1); // slot 3's accepts are already on the wire
    net.settle();
    assert_eq!(net.held(2, 3).as_deref(), Some("b"));
    assert_eq!(net.held(2, 2), None, "a hole at slot 2");
    net.elect(2);
    net.tick(2);
    for id in [2, 3] {
        assert_eq!(net.held(id, 2).as_deref(), Some("<noop>"), "node {id}");
        assert_eq!(net.applied_commands(id), vec!["b"], "node {id}");
    }
    // Node 1 returns with its unchosen a at slot 2; the no-op replaces it.
    net.restart(1);
    net.tick(3);
    assert_eq!(net.held(1, 2).as_deref(), Some("<noop>"));
    assert_eq!(net.applied_commands(1), vec!["b"]);
}

/// The rule is "the value of the highest *accepted* ballot", not of the highest origin:
/// v1 (proposed in b1) is chosen in b3 while v2 (proposed in b2 > b1) sits accepted at
/// one acceptor; a later leader that hears of both must pick v1.
#[test]
fn the_highest_accepted_ballot_wins_not_the_newest_proposal() {
    let mut net = scripted(&[1, 2, 3]);
    // b1: node 1 proposes v1; only node 1 accepts.
    net.elect(1);
    net.isolate(1);
    net.get_mut(1).propose(Bytes::from_static(b"v1")).unwrap();
    net.settle();
    net.crash(1);
    net.heal();
    // b2: node 2 (with 3) proposes v2 in slot 2; only node 2 accepts.
    net.elect(2);
    net.cut_between(2, 3);
    net.get_mut(2).propose(Bytes::from_static(b"v2")).unwrap();
    net.settle();
    assert_eq!(net.held(2, 2).as_deref(), Some("v2"));
    net.crash(2);
    net.heal();
    // b3: node 3 with node 1 learns v1 (accepted in b1) and gets it chosen in b3.
    net.restart(1);
    net.elect(3);
    net.tick(2);
    assert_eq!(net.applied_commands(3), vec!["v1"]);
    net.crash(3);
    // b4: node 2 returns and leads with node 1: it holds v2 from b2, node 1 reports v1
    // accepted in b3 — v1 wins, though v2 was proposed later than v1.
    net.restart(2);
    net.restart(3);
    net.isolate(3);
    net.elect(2);
    net.tick(2);
    assert_eq!(net.applied_commands(2), vec!["v1"]);
    assert_eq!(net.applied_commands(1), vec!["v1"]);
}

/// The `ignore_promised_values` knob is the textbook bug: a new leader that proposes
/// without regard to the reported values un-chooses a chosen value, and two replicas
/// apply different commands in one slot. The same schedule without the knob is safe.
#[test]
fn ignoring_promised_values_unchooses_a_chosen_value() {
    for broken in [false, true] {
        let mut net = Net::with_config(&[1, 2, 3], &[], |c| {
            c.check_quorum = false;
            c.knobs.ignore_promised_values = broken;
        });
        net.elect(1);
        // x is chosen by {1, 2} and applied by node 1; node 2 never hears the commit.
        net.cut.insert((1, 3));
        net.get_mut(1).propose(Bytes::from_static(b"x")).unwrap();
        net.round(); // the accept reaches node 2
        net.cut.insert((1, 2));
        net.settle(); // its acknowledgement returns; the commit does not go out
        net.tick(1);
        assert_eq!(net.applied_commands(1), vec!["x"]);
        assert_eq!(net.get(2).commit_index(), LogIndex(1));
        net.crash(1);
        net.heal();
        net.elect(3);
        net.propose(3, "y");
        net.tick(2);
        let two = net.applied_commands(2);
        if broken {
            assert_eq!(two, vec!["y"], "slot 2 was chosen again, with y");
        } else {
            assert_eq!(two, vec!["x", "y"]);
        }
    }
}

/// Commands take effect in slot order: an acceptor holding slot 3 but not slot 2 learns
/// neither as chosen until it holds both, then applies 2 before 3.
#[test]
fn commands_are_applied_strictly_in_slot_order() {
    let mut net = scripted(&[1, 2, 3]);
    net.elect(1);
    net.tick(1);
    net.get_mut(1).propose(Bytes::from_static(b"a")).unwrap();
    net.take_ready(1);
    net.drop_where(|_, to, m| to == 2 && is_accept(m));
    net.get_mut(1).propose(Bytes::from_static(b"b")).unwrap();
    net.take_ready(1);
    // Deliver only what is queued now: node 3 accepts both, node 2 only slot 3.
    let batch: Vec<_> = net.queue.drain(..).collect();
    for (from, to, m) in batch {
        net.deliver(from, to, m);
    }
    net.take_ready(2);
    net.take_ready(3);
    net.queue.retain(|(_, to, _)| *to == 1);
    let acks: Vec<_> = net.queue.drain(..).collect();
    for (from, to, m) in acks {
        net.deliver(from, to, m);
    }
    assert_eq!(net.get(1).commit_index(), LogIndex(3), "chosen by {{1, 3}}");
    net.take_ready(1);
    net.drop_where(|_, to, _| to != 2); // only node 2 hears the commit of 3
    let commit_news: Vec<_> = net
        .queue
        .drain(..)
        .filter(|(_, _, m)| {
            !is_accept(m) || { matches!(&m.body, Body::Accept { values, .. } if values.is_empty()) }
        })
        .collect();
    for (from, to, m) in commit_news {
        net.deliver(from, to, m);
    }
    net.take_ready(2);
    assert_eq!(
        net.get(2).commit_index(),
        LogIndex(1),
        "slot 2 is a hole at node 2"
    );
    assert!(net.applied_commands(2).is_empty());
    net.queue.clear();
    net.tick(3); // the leader repairs the hole
    assert_eq!(net.applied_commands(2), vec!["a", "b"]);
    assert_eq!(net.get(1).role(), Role::Leader);
    assert_eq!(net.get(1).promised(), Ballot::new(1, 1));
}
