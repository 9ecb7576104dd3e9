//! Raft §5.4.2, Figure 8, as a script: why a leader must not commit an entry of an
//! earlier term by counting replicas. The same schedule runs against the correct
//! protocol and against the `commit_any_term` knob; only the knob ends with two nodes
//! applying different entries at the same index.

mod harness;

use consensus::{Engine, Entry, LogIndex, Payload, Role, Term};
use harness::*;

/// Runs Figure 8's schedule on 5 nodes; returns what nodes 1 and 3 applied at index 3.
fn figure8(commit_any_term: bool) -> (Option<Entry>, Option<Entry>) {
    let mut net = Net::with_config(&[1, 2, 3, 4, 5], |c| {
        c.pre_vote = false;
        c.check_quorum = false;
        c.batch_entries_max = 1;
        c.knobs.commit_any_term = commit_any_term;
    });
    // (a) S1 leads term 2 and replicates X at index 3 to S2 only.
    net.elect(1);
    assert_eq!(net.get(1).term(), Term(2));
    for n in [3, 4, 5] {
        net.cut_between(1, n);
    }
    net.propose(1, "X");
    assert_eq!(net.get(2).term_at(LogIndex(3)), Some(Term(2)));
    // (b) S1 goes down; S5 wins term 3 with S3 and S4, appends its no-op at index 3,
    //     and goes down before sending it anywhere.
    net.isolate(1);
    net.cut_between(5, 2);
    while net.get(5).role() != Role::Candidate {
        net.get_mut(5).tick();
    }
    net.round(); // votes requested
    net.cut.insert((5, 3));
    net.cut.insert((5, 4));
    net.round(); // grants arrive; S5 leads term 3; its appends are lost
    assert_eq!(net.get(5).role(), Role::Leader);
    assert_eq!(net.get(5).term_at(LogIndex(3)), Some(Term(3)));
    net.isolate(5);
    // (c) S1 returns, learns of term 3 from S3/S4 and wins term 4 (they voted in 3).
    net.heal();
    net.isolate(5);
    for _ in 0..200 {
        if net.get(1).role() == Role::Leader && net.get(1).term() >= Term(4) {
            break;
        }
        net.get_mut(1).tick();
        net.round();
    }
    assert_eq!(net.get(1).role(), Role::Leader);
    assert_eq!(net.get(1).term(), Term(4));
    // Round by round, S1 brings S3 and S4 up to X (one entry per append) until a
    // majority holds X but only S2 holds S1's term-4 no-op; then S1 goes down.
    for _ in 0..10 {
        let r3 = net.get(3).term_at(LogIndex(3));
        if r3 == Some(Term(2)) && net.get(3).last_index() == LogIndex(3) {
            break;
        }
        net.round();
    }
    net.round(); // S1 hears S3 and S4 acknowledge X
    net.isolate(1);
    net.round();
    // (d) S5 returns, learns the higher term, and wins term 5 with S3 and S4 (its last
    //     entry, term 3, beats their term 2); it overwrites index 3 with its no-op.
    net.heal();
    net.isolate(1);
    net.cut_between(5, 2);
    for _ in 0..200 {
        if net.get(5).role() == Role::Leader && net.get(5).term() >= Term(5) {
            break;
        }
        net.get_mut(5).tick();
        net.round();
    }
    assert_eq!(net.get(5).role(), Role::Leader, "S5 must win term 5");
    net.settle();
    let at3 = |id: u64| {
        net.applied
            .get(&id)
            .and_then(|v| v.iter().find(|e| e.index == LogIndex(3)).cloned())
    };
    (at3(1), at3(3))
}

#[test]
fn the_correct_rule_never_applies_two_entries_at_one_index() {
    let (s1, s3) = figure8(false);
    assert_eq!(
        s1, None,
        "S1 must not have committed X: it was never on a majority with a term-4 entry"
    );
    let s3 = s3.expect("S3 applies S5's entry");
    assert_eq!(s3.payload, Payload::Noop);
    assert_eq!(s3.term, Term(3));
}

#[test]
fn counting_old_term_replicas_applies_an_entry_that_is_later_overwritten() {
    let (s1, s3) = figure8(true);
    let s1 = s1.expect("the broken rule commits X on S1");
    let s3 = s3.expect("S3 applies S5's entry at the same index");
    assert_eq!(
        s1.payload,
        Payload::Command(bytes::Bytes::from_static(b"X"))
    );
    assert_ne!(
        s1, s3,
        "state machine safety is broken: two different entries applied at index 3"
    );
}
