//! Compaction and catching up: a replica too far behind the leader's compaction point
//! receives its snapshot (in chunks) and continues from there; a snapshot never makes a
//! node forget an acceptance it acknowledged; a proposer that lacks compacted slots
//! cannot lead.

mod harness;

use bytes::Bytes;
use consensus::{Engine, LogIndex, Payload, Role};
use harness::*;
use paxos::{Ballot, Body, Message, Value};

fn cmd(s: &str) -> Value {
    Value {
        origin: Ballot::new(1, 1),
        payload: Payload::Command(Bytes::copy_from_slice(s.as_bytes())),
    }
}

/// Leader 1 (ballot round 1) sends slots 2..=6 with slot 1 chosen.
fn five_slot_accept() -> Message {
    let values: Vec<Value> = ["a", "b", "c", "d", "e"].iter().map(|s| cmd(s)).collect();
    msg(
        1,
        1,
        Body::Accept {
            first: idx(2),
            values,
            commit: idx(1),
        },
    )
}

/// A one-chunk snapshot through slot 4 (chosen in ballot (1, 1)), sent by `from` in
/// ballot round `round`.
fn snapshot_through_4(from: u64, round: u64) -> Message {
    msg(
        from,
        round,
        Body::InstallSnapshot {
            meta: consensus::SnapshotMeta {
                index: idx(4),
                term: Ballot::new(1, 1).to_term(),
                membership: consensus::Membership::new([1, 2, 3]),
            },
            total_bytes: 4,
            offset: 0,
            chunk: Bytes::from_static(b"snap"),
            commit: idx(4),
        },
    )
}

#[test]
fn a_lagging_replica_catches_up_from_the_leaders_snapshot_in_chunks() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| c.snapshot_chunk_bytes = 3);
    net.elect(1);
    net.isolate(3);
    for i in 0..10 {
        net.propose(1, &format!("c{i}"));
    }
    net.tick(1);
    net.compact(1);
    let snap = net.get(1).snapshot_index();
    assert_eq!(snap, LogIndex(11));
    net.heal();
    net.tick(5);
    assert!(net.count_delivered("InstallSnapshot") > 1, "sent in chunks");
    assert_eq!(net.get(3).snapshot_index(), snap);
    assert_eq!(
        net.get(3).snapshot().unwrap().data,
        Bytes::from("state@11"),
        "the leader's state machine image"
    );
    net.propose(1, "after");
    net.tick(2);
    assert_eq!(net.applied_commands(3), vec!["after"]);
    assert_eq!(net.get(3).commit_index(), net.get(1).commit_index());
}

/// Installing a snapshot replaces the whole durable log, dropping the slots after it.
/// Slots this node acknowledged may have helped choose a value, so before installing it
/// records durably that it forgot them; from then on it promises only proposers that
/// know those slots chosen, until its own commit index passes them.
#[test]
fn installing_a_snapshot_forgets_acknowledged_slots_only_after_saying_so_durably() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let accept = five_slot_accept();
    net.get_mut(3).step(1, accept).unwrap();
    let ready = net.take_ready(3);
    assert!(matches!(
        ready.messages_after_sync[0].msg.body,
        Body::Accepted { through, .. } if through == idx(6)
    ));
    // A later leader (2, 2) sends its snapshot at slot 4, knowing only 4 chosen.
    let meta = consensus::SnapshotMeta {
        index: idx(4),
        term: Ballot::new(1, 1).to_term(),
        membership: consensus::Membership::new([1, 2, 3]),
    };
    let chunk = msg(
        2,
        2,
        Body::InstallSnapshot {
            meta,
            total_bytes: 4,
            offset: 0,
            chunk: Bytes::from_static(b"snap"),
            commit: idx(4),
        },
    );
    net.get_mut(3).step(2, chunk).unwrap();
    let first = net.get_mut(3).ready();
    assert!(
        first.snapshot.is_none(),
        "not before the forgetting is durable"
    );
    assert_eq!(
        first.hard_state.and_then(|h| h.vote),
        Some(6),
        "slots up to 6"
    );
    net.disks.get_mut(&3).unwrap().write(&first);
    net.get_mut(3).advance(first.number);
    let second = net.take_ready(3);
    assert_eq!(second.snapshot.map(|s| s.meta.index), Some(idx(4)));
    assert_eq!(
        net.get(3).last_index(),
        idx(4),
        "the old acceptances are gone"
    );
    // A proposer that does not know slot 6 chosen gets no promise — even after a restart.
    net.crash(3);
    net.restart(3);
    let behind = msg(
        3,
        1,
        Body::Prepare {
            commit: idx(5),
            transfer: false,
        },
    );
    net.get_mut(3).step(1, behind).unwrap();
    let answer = net.take_ready(3);
    assert!(matches!(answer.messages[0].msg.body, Body::Nack { .. }));
    let informed = msg(
        3,
        1,
        Body::Prepare {
            commit: idx(6),
            transfer: false,
        },
    );
    net.get_mut(3).step(1, informed).unwrap();
    let answer = net.take_ready(3);
    assert!(matches!(
        answer.messages_after_sync[0].msg.body,
        Body::Promise { .. }
    ));
}

/// The record of forgotten slots must be fsynced, not only written: the install it
/// guards follows in the next ready. Here the promise does not change with it (the
/// snapshot's sender was promised earlier), so nothing else in that ready asks for a
/// sync.
#[test]
fn the_forgotten_slots_record_is_synced_even_when_the_promise_is_unchanged() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.get_mut(3).step(1, five_slot_accept()).unwrap();
    net.take_ready(3);
    let prepare = msg(
        2,
        2,
        Body::Prepare {
            commit: idx(4),
            transfer: true,
        },
    );
    net.get_mut(3).step(2, prepare).unwrap();
    let promised = net.take_ready(3);
    assert!(matches!(
        promised.messages_after_sync[0].msg.body,
        Body::Promise { .. }
    ));
    net.get_mut(3).step(2, snapshot_through_4(2, 2)).unwrap();
    let first = net.take_ready(3);
    assert!(first.snapshot.is_none());
    assert_eq!(first.hard_state.map(|h| h.vote), Some(Some(6)));
    assert!(
        first.must_sync,
        "the install waits on this record: it must be fsynced, not just written"
    );
    let second = net.take_ready(3);
    assert_eq!(second.snapshot.map(|s| s.meta.index), Some(idx(4)));
}

/// A proposer whose chosen prefix ends before an acceptor's compaction point could not
/// learn the compacted values from its promise: it is refused, and a node that knows
/// them leads instead.
#[test]
fn a_proposer_behind_the_compaction_point_cannot_lead() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| c.check_quorum = false);
    net.elect(1);
    net.isolate(3);
    for i in 0..5 {
        net.propose(1, &format!("c{i}"));
    }
    net.tick(1);
    net.compact(1);
    net.compact(2);
    net.crash(1);
    net.heal();
    net.isolate(2);
    net.cut.remove(&(2, 3));
    net.cut.remove(&(3, 2));
    net.campaign(3);
    assert_ne!(
        net.get(3).role(),
        Role::Leader,
        "node 2 refuses: 3 lacks slots 2..=6"
    );
    net.elect(2);
    net.tick(3);
    assert_eq!(net.get(3).snapshot_index(), net.get(2).snapshot_index());
    assert_eq!(net.get(3).commit_index(), net.get(2).commit_index());
}

#[test]
fn a_node_restarts_from_its_snapshot_and_the_slots_after_it() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    net.elect(1);
    for i in 0..4 {
        net.propose(1, &format!("c{i}"));
    }
    net.tick(1);
    net.compact(2);
    net.propose(1, "late");
    net.tick(1);
    let commit = net.get(2).commit_index();
    net.crash(2);
    net.restart(2);
    assert_eq!(net.get(2).snapshot_index(), idx(5));
    assert_eq!(
        net.get(2).commit_index(),
        commit,
        "the durable commit index is kept"
    );
    assert_eq!(net.applied_commands(2), Vec::<String>::new());
    net.tick(1);
    assert_eq!(
        net.applied_commands(2),
        vec!["late"],
        "re-applied after the snapshot"
    );
}

/// Regression (simulator seed 4947): accepts can overtake the snapshot the leader sent
/// when it believed this node far behind. A node that already holds every slot the
/// snapshot covers must not install it: that would drop slots it acknowledged, which
/// its leader will not send again.
#[test]
fn a_node_holding_what_a_snapshot_covers_does_not_install_it() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let accept = five_slot_accept();
    net.get_mut(3).step(1, accept).unwrap();
    net.take_ready(3);
    let late = snapshot_through_4(1, 1);
    net.get_mut(3).step(1, late).unwrap();
    let ready = net.take_ready(3);
    assert!(ready.snapshot.is_none());
    assert_eq!(net.get(3).last_index(), idx(6), "slots 5 and 6 are kept");
    assert_eq!(
        net.get(3).commit_index(),
        idx(4),
        "what the snapshot covers is learned"
    );
    assert!(matches!(
        ready.messages_after_sync[0].msg.body,
        Body::Accepted { through, .. } if through == idx(6)
    ));
}

/// Regression (simulator seeds 41687, 32842, 65342): a node that forgot acknowledged
/// slots by installing a snapshot refuses to promise proposers that do not know those
/// slots chosen — itself included. Campaigning with its own chosen prefix ending before
/// them, its own report would miss them, so its own promise counts as a refusal and it
/// cannot lead without a quorum of others.
#[test]
fn a_node_that_forgot_slots_does_not_count_its_own_promise() {
    let mut net = Net::with_config(&[1, 2, 3], &[], |c| {
        c.check_quorum = false;
        c.pre_prepare = false;
    });
    let accept = five_slot_accept();
    net.get_mut(3).step(1, accept).unwrap();
    net.take_ready(3);
    let snapshot = snapshot_through_4(2, 2);
    net.get_mut(3).step(2, snapshot).unwrap();
    net.take_ready(3);
    net.take_ready(3);
    net.queue.clear();
    assert_eq!(net.get(3).snapshot_index(), idx(4));
    // Node 3 (commit 4, slots up to 6 forgotten) campaigns; node 1 promises it, but
    // node 3's own promise cannot count: one promise of three is no quorum.
    net.cut_between(3, 2);
    net.campaign(3);
    assert_ne!(net.get(3).role(), Role::Leader);
}
