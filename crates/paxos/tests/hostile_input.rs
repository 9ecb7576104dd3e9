//! Input from the network is untrusted: a message from an unknown node, with a stale
//! or huge ballot, a slot far in the future, garbage values or a malformed snapshot is
//! either handled by the protocol or refused with an error — never a panic — and a
//! refused message changes nothing.

mod harness;

use bytes::Bytes;
use consensus::{
    ConfigChange, Engine, LogIndex, MemberChange, Membership, Payload, SnapshotMeta, StepError,
    Term,
};
use harness::*;
use paxos::{wire, Accepted, Ballot, Body, Message, Report, Value};
use proptest::prelude::*;

fn arb_index() -> impl Strategy<Value = LogIndex> {
    prop_oneof![0u64..12, Just(1 << 62), Just(u64::MAX), any::<u64>()].prop_map(LogIndex)
}

fn arb_ballot() -> impl Strategy<Value = Ballot> {
    prop_oneof![
        (0u64..5, 0u64..5).prop_map(|(r, n)| Ballot { round: r, node: n }),
        any::<u64>().prop_map(|t| Ballot::from_term(Term(t))),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    let payload = prop_oneof![
        Just(Payload::Noop),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(|v| Payload::Command(Bytes::from(v))),
        (0u64..8)
            .prop_map(|id| Payload::Config(ConfigChange::Apply(vec![MemberChange::AddVoter(id)]))),
        Just(Payload::Config(ConfigChange::LeaveJoint)),
    ];
    (arb_ballot(), payload).prop_map(|(origin, payload)| Value { origin, payload })
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        arb_index().prop_map(|commit| Body::PrePrepare { commit }),
        any::<bool>().prop_map(|granted| Body::PrePrepareAck { granted }),
        (arb_index(), any::<bool>())
            .prop_map(|(commit, transfer)| Body::Prepare { commit, transfer }),
        (
            arb_index(),
            proptest::collection::vec((arb_index(), arb_ballot(), arb_value()), 0..4)
        )
            .prop_map(|(commit, rs)| Body::Promise {
                commit,
                accepted: rs
                    .into_iter()
                    .map(|(slot, ballot, value)| Report {
                        slot,
                        accepted: Accepted { ballot, value }
                    })
                    .collect()
            }),
        (
            arb_index(),
            proptest::collection::vec(arb_value(), 0..4),
            arb_index()
        )
            .prop_map(|(first, values, commit)| Body::Accept {
                first,
                values,
                commit
            }),
        (arb_index(), arb_index(), arb_index()).prop_map(|(last, through, commit)| {
            Body::Accepted {
                last,
                through,
                commit,
            }
        }),
        arb_ballot().prop_map(|promised| Body::Nack { promised }),
        (arb_index(), any::<u64>())
            .prop_map(|(commit, read_round)| Body::Heartbeat { commit, read_round }),
        (any::<u64>(), arb_index(), arb_index()).prop_map(|(read_round, through, commit)| {
            Body::HeartbeatAck {
                read_round,
                through,
                commit,
            }
        }),
        (
            arb_index(),
            arb_ballot(),
            proptest::collection::vec(0u64..6, 0..4),
            proptest::collection::vec(any::<u8>(), 0..16),
            0u64..20,
            0u64..20,
            arb_index(),
        )
            .prop_map(|(index, b, voters, chunk, total, offset, commit)| {
                Body::InstallSnapshot {
                    meta: SnapshotMeta {
                        index,
                        term: b.to_term(),
                        membership: Membership::new(voters),
                    },
                    total_bytes: total,
                    offset,
                    chunk: Bytes::from(chunk),
                    commit,
                }
            }),
        (arb_index(), any::<u64>()).prop_map(|(index, offset)| Body::SnapshotAck { index, offset }),
        Just(Body::TimeoutNow),
    ]
}

/// A sender (0..=4, so sometimes itself or the reserved 0) and a message.
fn arb_message() -> impl Strategy<Value = (u64, Message)> {
    (0u64..5, arb_ballot(), arb_body())
        .prop_map(|(from, ballot, body)| (from, Message { ballot, body }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any sequence of hostile messages, to a follower or to a leader, is handled or
    /// refused; the node's own invariants (checked after every step) hold throughout.
    #[test]
    fn hostile_messages_never_panic(msgs in proptest::collection::vec(arb_message(), 1..24), lead in any::<bool>()) {
        let mut net = Net::new(&[1, 2, 3], &[]);
        if lead {
            net.elect(1);
        }
        for (from, m) in msgs {
            let _ = net.get_mut(1).step(from, m);
            net.take_ready(1);
            net.queue.clear();
            net.get_mut(1).tick();
            net.take_ready(1);
            net.queue.clear();
        }
    }

    #[test]
    fn the_wire_encoding_round_trips((_, m) in arb_message()) {
        let mut buf = Vec::new();
        wire::encode(&m, &mut buf);
        prop_assert_eq!(wire::decode(Bytes::from(buf)), Ok(m));
    }

    #[test]
    fn garbage_on_the_wire_never_panics((_, m) in arb_message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4), cut in any::<usize>()) {
        let mut buf = Vec::new();
        wire::encode(&m, &mut buf);
        for (at, x) in flips {
            let n = buf.len();
            buf[at % n] ^= x;
        }
        let cut = cut % (buf.len() + 1);
        let _ = wire::decode(Bytes::copy_from_slice(&buf[..cut]));
        let _ = wire::decode(Bytes::from(buf));
    }

    #[test]
    fn a_refused_message_changes_nothing((from, m) in arb_message(), lead in any::<bool>()) {
        let mut net = Net::new(&[1, 2, 3], &[]);
        if lead {
            net.elect(1);
        }
        let before = format!("{:?}", net.get(1));
        if net.get_mut(1).step(from, m).is_err() {
            prop_assert_eq!(before, format!("{:?}", net.get(1)));
        }
    }
}

#[test]
fn a_message_from_itself_or_from_node_zero_is_refused() {
    let mut p = Net::new(&[1, 2, 3], &[]);
    let hb = msg(
        1,
        2,
        Body::Heartbeat {
            commit: idx(0),
            read_round: 0,
        },
    );
    assert_eq!(
        p.get_mut(1).step(1, hb.clone()),
        Err(StepError::BadSender(1))
    );
    assert_eq!(p.get_mut(1).step(0, hb), Err(StepError::BadSender(0)));
}

/// A proposer only ever uses its own ballots; an acceptor only answers ours.
#[test]
fn ballots_owned_by_someone_else_are_refused() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let forged = msg(
        5,
        3,
        Body::Prepare {
            commit: idx(1),
            transfer: false,
        },
    );
    assert!(matches!(
        net.get_mut(1).step(2, forged),
        Err(StepError::Malformed(_))
    ));
    let misdirected = msg(
        5,
        3,
        Body::Nack {
            promised: Ballot::new(6, 2),
        },
    );
    assert!(net.get_mut(1).step(2, misdirected).is_err());
    assert_eq!(net.get(1).promised(), Ballot::ZERO);
}

#[test]
fn a_value_newer_than_its_ballot_is_refused() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let v = Value {
        origin: Ballot::new(9, 2),
        payload: Payload::Noop,
    };
    let accept = msg(
        3,
        2,
        Body::Accept {
            first: idx(2),
            values: vec![v],
            commit: idx(1),
        },
    );
    assert!(net.get_mut(1).step(2, accept).is_err());
    assert_eq!(net.get(1).last_index(), idx(1));
}

/// Two different values for one slot in one ballot: only a buggy or hostile leader
/// sends that, and the acceptor keeps its first acceptance.
#[test]
fn a_leader_equivocating_in_one_ballot_is_refused() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let value = |s: &'static str| Value {
        origin: Ballot::new(2, 2),
        payload: Payload::Command(Bytes::from_static(s.as_bytes())),
    };
    let first = msg(
        2,
        2,
        Body::Accept {
            first: idx(2),
            values: vec![value("a")],
            commit: idx(1),
        },
    );
    net.get_mut(1).step(2, first).unwrap();
    let second = msg(
        2,
        2,
        Body::Accept {
            first: idx(2),
            values: vec![value("b")],
            commit: idx(1),
        },
    );
    assert!(net.get_mut(1).step(2, second).is_err());
    assert_eq!(net.held(1, 2).as_deref(), Some("a"));
}

/// A slot absurdly far ahead is not accepted (no giant hole is allocated); the answer
/// tells the leader where to start instead.
#[test]
fn an_accept_far_beyond_the_log_is_not_taken() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let far = msg(
        2,
        2,
        Body::Accept {
            first: idx(1 << 40),
            values: vec![Value {
                origin: Ballot::new(2, 2),
                payload: Payload::Noop,
            }],
            commit: idx(1),
        },
    );
    net.get_mut(1).step(2, far).unwrap();
    assert_eq!(net.get(1).last_index(), idx(1));
    let ready = net.take_ready(1);
    assert!(matches!(
        ready.messages_after_sync[0].msg.body,
        Body::Accepted { through, .. } if through == idx(1)
    ));
}

#[test]
fn a_snapshot_chunk_overrunning_its_size_is_refused() {
    let mut net = Net::new(&[1, 2, 3], &[]);
    let m = msg(
        3,
        2,
        Body::InstallSnapshot {
            meta: SnapshotMeta {
                index: idx(10),
                term: Ballot::new(2, 2).to_term(),
                membership: Membership::new([1, 2, 3]),
            },
            total_bytes: 4,
            offset: 2,
            chunk: Bytes::from_static(b"abcd"),
            commit: idx(10),
        },
    );
    assert!(net.get_mut(1).step(2, m).is_err());
    assert_eq!(
        net.get(1).promised(),
        Ballot::ZERO,
        "not even the ballot moved"
    );
}
