//! Log replication, commitment, snapshots and flow control.

mod harness;

use bytes::Bytes;
use consensus::{Engine, LogIndex, Payload, ProposeError, ReplicationState, Role, Term};
use harness::*;
use raft::Body;

/// §5.3: proposals at a follower are refused with a hint naming the leader.
#[test]
fn a_follower_refuses_proposals_and_names_the_leader() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(2);
    assert_eq!(
        net.get_mut(1).propose(Bytes::from_static(b"x")),
        Err(ProposeError::NotLeader { hint: Some(2) })
    );
}

/// §5.4.2 / §8: a new leader appends a no-op of its own term, and committing it
/// commits everything before it.
#[test]
fn a_new_leader_commits_a_noop_of_its_term() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    let r = net.get(1);
    let last = r.last_index();
    assert_eq!(r.entry(last).map(|e| &e.payload), Some(&Payload::Noop));
    assert_eq!(r.term_at(last), Some(r.term()));
    assert_eq!(r.commit_index(), last);
}

/// §5.3: committed commands are applied by every node, in order, exactly once.
#[test]
fn committed_entries_are_applied_everywhere_in_order() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    for i in 0..5 {
        net.propose(1, &format!("c{i}"));
    }
    let want: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    for id in [1, 2, 3] {
        assert_eq!(net.applied_commands(id), want, "node {id}");
    }
}

/// A proposal reports the slot it was given; the entry applied there has its term.
#[test]
fn a_proposal_learns_its_index_and_term() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    let p = net.propose(1, "x");
    let applied = &net.applied[&2];
    let e = applied
        .iter()
        .find(|e| e.index == p.index)
        .expect("applied");
    assert_eq!(e.term, p.term);
}

/// Figure 8 in exact steps: a leader that holds an old-term entry on a majority does
/// not advance its commit index on that alone.
#[test]
fn replicas_of_an_old_term_entry_do_not_commit_it() {
    use consensus::{Entry, HardState, Recovered};
    // Node 1 was leader in term 2 and replicated entry 2 (term 2) to itself and node 2,
    // then crashed; it is now leader in term 4 after a campaign.
    let entries = vec![
        Entry {
            term: Term(1),
            index: LogIndex(1),
            payload: Raft::bootstrap(&[1, 2, 3]).entries[0].payload.clone(),
        },
        Entry {
            term: Term(2),
            index: LogIndex(2),
            payload: Payload::Command(Bytes::from_static(b"old")),
        },
    ];
    let recovered = Recovered {
        hard_state: HardState {
            term: Term(3),
            vote: None,
            commit: LogIndex(1),
        },
        snapshot: None,
        entries,
    };
    let mut c = config(1);
    c.pre_vote = false;
    let mut r = raft::Raft::new(c, recovered).unwrap();
    while r.role() != Role::Candidate {
        r.tick();
    }
    let rd = take_ready(&mut r);
    assert_eq!(r.term(), Term(4));
    let _ = rd;
    r.step(2, msg(4, Body::VoteResponse { granted: true }))
        .unwrap();
    assert_eq!(r.role(), Role::Leader);
    let _ = take_ready(&mut r); // no-op at index 3, term 4
                                // Node 2 acknowledges index 2 only (the old entry): a majority holds it, but it is
                                // from term 2, so nothing commits.
    r.step(
        2,
        msg(
            4,
            Body::AppendResponse {
                success: true,
                index: LogIndex(2),
                hint_index: LogIndex(0),
                hint_term: Term(0),
            },
        ),
    )
    .unwrap();
    assert_eq!(r.commit_index(), LogIndex(1));
    // Once node 2 holds the term-4 no-op, both commit.
    r.step(
        2,
        msg(
            4,
            Body::AppendResponse {
                success: true,
                index: LogIndex(3),
                hint_index: LogIndex(0),
                hint_term: Term(0),
            },
        ),
    )
    .unwrap();
    assert_eq!(r.commit_index(), LogIndex(3));
}

use raft::Raft;

/// §5.3: a follower rejects an append whose previous entry does not match, and hints
/// at the last index of the conflicting term so the leader can skip it in one step.
#[test]
fn a_mismatched_append_is_rejected_with_a_conflict_hint() {
    let mut r = node(2, &[1, 2, 3]);
    let _ = take_ready(&mut r);
    // Give the follower entries 2..4 of term 2.
    let ents: Vec<_> = (2..=4)
        .map(|i| consensus::Entry {
            term: Term(2),
            index: LogIndex(i),
            payload: Payload::Noop,
        })
        .collect();
    r.step(
        1,
        msg(
            2,
            Body::Append {
                prev_index: idx(1),
                prev_term: Term(1),
                entries: ents,
                commit: idx(1),
            },
        ),
    )
    .unwrap();
    let _ = take_ready(&mut r);
    // A term-3 leader probes at index 6 (beyond our log) claiming term 3.
    r.step(
        3,
        msg(
            3,
            Body::Append {
                prev_index: idx(6),
                prev_term: Term(3),
                entries: vec![],
                commit: idx(1),
            },
        ),
    )
    .unwrap();
    let ready = take_ready(&mut r);
    assert_eq!(
        all_messages(&ready),
        vec![(
            3,
            msg(
                3,
                Body::AppendResponse {
                    success: false,
                    index: idx(6),
                    hint_index: idx(4),
                    hint_term: Term(2)
                }
            )
        )]
    );
}

/// An append whose entries overlap the committed prefix changes nothing there: the
/// follower acknowledges its commit index and keeps its committed entries.
#[test]
fn an_append_below_the_commit_index_changes_nothing() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.propose(1, "a");
    let r = net.get_mut(2);
    let commit = r.commit_index();
    let term = r.term();
    let stale = consensus::Entry {
        term,
        index: commit,
        payload: Payload::Noop,
    };
    r.step(
        1,
        msg(
            term.0,
            Body::Append {
                prev_index: commit.prev(),
                prev_term: r.term_at(commit.prev()).unwrap(),
                entries: vec![stale],
                commit,
            },
        ),
    )
    .unwrap();
    assert!(matches!(
        r.entry(commit).map(|e| &e.payload),
        Some(Payload::Command(_))
    ));
    let ready = take_ready(r);
    assert_eq!(
        all_messages(&ready),
        vec![(
            1,
            msg(
                term.0,
                Body::AppendResponse {
                    success: true,
                    index: commit,
                    hint_index: idx(0),
                    hint_term: Term(0)
                }
            )
        )]
    );
}

/// A follower far behind is caught up; the leader backs off by whole terms.
#[test]
fn a_lagging_follower_catches_up() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.isolate(3);
    for i in 0..20 {
        net.propose(1, &format!("c{i}"));
    }
    net.heal();
    net.tick(3);
    assert_eq!(net.applied_commands(3).len(), 20);
    assert_eq!(net.get(3).last_index(), net.get(1).last_index());
}

/// Batching: proposals made between two readies travel in one append per follower.
#[test]
fn proposals_between_readies_share_one_append() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    let r = net.get_mut(1);
    for i in 0..10 {
        r.propose(Bytes::from(format!("c{i}"))).unwrap();
    }
    let ready = take_ready(r);
    let appends: Vec<_> = ready
        .messages
        .iter()
        .filter_map(|o| match &o.msg.body {
            Body::Append { entries, .. } => Some((o.to, entries.len())),
            _ => None,
        })
        .collect();
    assert_eq!(appends, vec![(2, 10), (3, 10)]);
    assert_eq!(
        ready.entries.len(),
        10,
        "one disk write for the whole batch"
    );
}

/// Pipelining: in Replicate, several appends are in flight to one follower at once,
/// up to the window; with `batch_entries_max = 1` each entry is its own message.
#[test]
fn appends_are_pipelined_up_to_the_window() {
    let mut net = Net::with_config(&[1, 2, 3], |c| {
        c.batch_entries_max = 1;
        c.inflight_msgs_max = 4;
    });
    net.elect(1);
    let r = net.get_mut(1);
    for i in 0..10 {
        r.propose(Bytes::from(format!("c{i}"))).unwrap();
    }
    let ready = take_ready(r);
    for (to, m) in all_messages(&ready) {
        net.queue.push_back((1, to, m));
    }
    let r = net.get_mut(1);
    let to_2 = ready
        .messages
        .iter()
        .filter(|o| o.to == 2 && matches!(o.msg.body, Body::Append { .. }))
        .count();
    assert_eq!(to_2, 4, "the window bounds appends in flight");
    let peer = r.status().peers.into_iter().find(|p| p.id == 2).unwrap();
    assert_eq!(peer.state, ReplicationState::Replicate);
    net.settle();
    assert_eq!(net.applied_commands(2).len(), 10, "acks reopen the window");
}

/// §7: a follower behind the leader's snapshot receives it in chunks, installs it,
/// and then continues from the log.
#[test]
fn a_follower_behind_the_snapshot_installs_it_in_chunks() {
    let mut net = Net::with_config(&[1, 2, 3], |c| c.snapshot_chunk_bytes = 4);
    net.elect(1);
    net.isolate(3);
    for i in 0..10 {
        net.propose(1, &format!("c{i}"));
    }
    let applied = net.get(1).commit_index();
    net.get_mut(1)
        .compact(applied, Bytes::from_static(b"state-machine-image"))
        .unwrap();
    assert_eq!(net.get(1).snapshot_index(), applied);
    net.heal();
    net.tick(5);
    let installed = net.get(3).snapshot().expect("snapshot installed");
    assert_eq!(installed.meta.index, applied);
    assert_eq!(&installed.data[..], b"state-machine-image");
    assert!(
        net.count_delivered("InstallSnapshot") >= 5,
        "19 bytes in 4-byte chunks"
    );
    net.propose(1, "after");
    assert_eq!(net.applied_commands(3), vec!["after"]);
}

/// Compaction is refused outside (snapshot, applied].
#[test]
fn compaction_beyond_applied_is_refused() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    let r = net.get_mut(1);
    let beyond = r.commit_index().next();
    assert!(r.compact(beyond, Bytes::new()).is_err());
    assert!(r.compact(LogIndex(0), Bytes::new()).is_err());
}

/// After a restart, a node recovers its log and hard state and re-applies committed
/// entries from its snapshot on.
#[test]
fn a_restarted_node_recovers_and_reapplies() {
    use consensus::Recovered;
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    net.propose(1, "a");
    net.propose(1, "b");
    let r = net.get(2);
    let entries: Vec<_> = (1..=r.last_index().0)
        .map(|i| r.entry(LogIndex(i)).unwrap().clone())
        .collect();
    let hs = consensus::HardState {
        term: r.term(),
        vote: None,
        commit: r.commit_index(),
    };
    let mut back = raft::Raft::new(
        config(2),
        Recovered {
            hard_state: hs,
            snapshot: None,
            entries,
        },
    )
    .unwrap();
    let ready = take_ready(&mut back);
    let cmds: Vec<_> = ready
        .committed_entries
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Command(b) => Some(b.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        cmds,
        vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
    );
    assert!(
        ready.entries.is_empty(),
        "recovered entries are already durable"
    );
}

/// A whole window of lost appends is recovered: the heartbeat answer frees the window
/// and the leader re-probes.
#[test]
fn a_lost_window_of_appends_is_recovered() {
    let mut net = Net::with_config(&[1, 2, 3], |c| {
        c.batch_entries_max = 1;
        c.inflight_msgs_max = 4;
    });
    net.elect(1);
    let r = net.get_mut(1);
    for i in 0..10 {
        r.propose(Bytes::from(format!("c{i}"))).unwrap();
    }
    let _lost = take_ready(r);
    net.settle();
    assert!(net.applied_commands(2).is_empty());
    net.tick(5);
    assert_eq!(net.applied_commands(2).len(), 10);
}
