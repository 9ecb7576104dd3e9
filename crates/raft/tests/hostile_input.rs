//! Input from the network is untrusted: a message from an unknown node, with a stale
//! or huge term, an index far in the future, garbage entries or a malformed snapshot
//! is either handled by the protocol or refused with an error — never a panic — and a
//! refused message changes nothing.

mod harness;

use bytes::Bytes;
use consensus::{
    ConfigChange, Engine, Entry, LogIndex, MemberChange, Membership, Payload, SnapshotMeta, Term,
};
use harness::*;
use proptest::prelude::*;
use raft::{Body, Message};

fn arb_index() -> impl Strategy<Value = LogIndex> {
    prop_oneof![0u64..20, Just(u64::MAX - 1), Just(u64::MAX), any::<u64>()].prop_map(LogIndex)
}

fn arb_term() -> impl Strategy<Value = Term> {
    prop_oneof![0u64..6, Just(u64::MAX), any::<u64>()].prop_map(Term)
}

fn arb_entry() -> impl Strategy<Value = Entry> {
    let payload = prop_oneof![
        Just(Payload::Noop),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(|v| Payload::Command(Bytes::from(v))),
        (0u64..8)
            .prop_map(|id| Payload::Config(ConfigChange::Apply(vec![MemberChange::AddVoter(id)]))),
        Just(Payload::Config(ConfigChange::LeaveJoint)),
    ];
    (arb_term(), arb_index(), payload).prop_map(|(term, index, payload)| Entry {
        term,
        index,
        payload,
    })
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (arb_index(), arb_term()).prop_map(|(last_index, last_term)| Body::PreVote {
            last_index,
            last_term
        }),
        any::<bool>().prop_map(|granted| Body::PreVoteResponse { granted }),
        (arb_index(), arb_term(), any::<bool>()).prop_map(|(last_index, last_term, transfer)| {
            Body::Vote {
                last_index,
                last_term,
                transfer,
            }
        }),
        any::<bool>().prop_map(|granted| Body::VoteResponse { granted }),
        (
            arb_index(),
            arb_term(),
            proptest::collection::vec(arb_entry(), 0..4),
            arb_index()
        )
            .prop_map(|(prev_index, prev_term, entries, commit)| Body::Append {
                prev_index,
                prev_term,
                entries,
                commit
            }),
        (any::<bool>(), arb_index(), arb_index(), arb_term()).prop_map(
            |(success, index, hint_index, hint_term)| {
                Body::AppendResponse {
                    success,
                    index,
                    hint_index,
                    hint_term,
                }
            }
        ),
        (arb_index(), any::<u64>())
            .prop_map(|(commit, read_round)| Body::Heartbeat { commit, read_round }),
        any::<u64>().prop_map(|read_round| Body::HeartbeatResponse { read_round }),
        (
            arb_index(),
            arb_term(),
            proptest::collection::vec(0u64..6, 0..4),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(index, term, voters, total_bytes, offset, chunk)| {
                Body::InstallSnapshot {
                    meta: SnapshotMeta {
                        index,
                        term,
                        membership: Membership::new(voters),
                    },
                    total_bytes,
                    offset,
                    chunk: Bytes::from(chunk),
                }
            }),
        (arb_index(), any::<u64>())
            .prop_map(|(index, offset)| Body::SnapshotResponse { index, offset }),
        Just(Body::TimeoutNow),
        any::<u64>().prop_map(|ctx| Body::ReadIndex { ctx }),
        (any::<u64>(), arb_index()).prop_map(|(ctx, index)| Body::ReadIndexResponse { ctx, index }),
    ]
}

fn arb_message() -> impl Strategy<Value = (u64, Message)> {
    (0u64..9, arb_term(), arb_body()).prop_map(|(from, term, body)| (from, Message { term, body }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any sequence of hostile messages, to a follower or to a leader, never panics,
    /// and the node's own invariants (checked inside every step) keep holding.
    #[test]
    fn hostile_messages_never_panic(msgs in proptest::collection::vec(arb_message(), 1..24), lead in any::<bool>()) {
        let mut net = Net::new(&[1, 2, 3], &[]);
        if lead {
            net.elect(1);
            net.propose(1, "x");
        }
        let r = net.get_mut(1);
        for (from, m) in msgs {
            let _ = r.step(from, m);
            if r.has_ready() {
                let _ = take_ready(r);
            }
            r.tick();
        }
    }

    /// Every message survives the wire encoding unchanged.
    #[test]
    fn the_wire_encoding_round_trips((_, m) in arb_message()) {
        let mut buf = Vec::new();
        raft::wire::encode(&m, &mut buf);
        prop_assert_eq!(raft::wire::decode(Bytes::from(buf)), Ok(m));
    }

    /// Arbitrary or mutated bytes never panic the decoder.
    #[test]
    fn garbage_on_the_wire_never_panics((_, m) in arb_message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4), cut in any::<usize>()) {
        let mut buf = Vec::new();
        raft::wire::encode(&m, &mut buf);
        for (at, x) in flips {
            let n = buf.len();
            buf[at % n] ^= x;
        }
        buf.truncate(cut % (buf.len() + 1));
        let _ = raft::wire::decode(Bytes::from(buf));
    }

    /// A refused message leaves the node exactly as it was.
    #[test]
    fn a_refused_message_changes_nothing((from, m) in arb_message()) {
        let mut net = Net::new(&[1, 2, 3], &[]);
        net.elect(2);
        let r = net.get_mut(1);
        let before = r.status();
        if r.step(from, m).is_err() {
            prop_assert_eq!(r.status(), before);
            prop_assert!(!r.has_ready());
        }
    }
}

#[test]
fn a_message_from_itself_or_from_node_zero_is_refused() {
    let mut r = node(1, &[1, 2, 3]);
    let m = msg(5, Body::TimeoutNow);
    assert!(r.step(1, m.clone()).is_err());
    assert!(r.step(0, m).is_err());
}

#[test]
fn entries_that_are_not_contiguous_are_refused() {
    let mut r = node(2, &[1, 2, 3]);
    let e = |i, t| Entry {
        term: Term(t),
        index: LogIndex(i),
        payload: Payload::Noop,
    };
    let bad = msg(
        2,
        Body::Append {
            prev_index: idx(1),
            prev_term: Term(1),
            entries: vec![e(2, 2), e(4, 2)],
            commit: idx(0),
        },
    );
    assert!(matches!(
        r.step(1, bad),
        Err(consensus::StepError::Malformed(_))
    ));
    let future_term = msg(
        2,
        Body::Append {
            prev_index: idx(1),
            prev_term: Term(1),
            entries: vec![e(2, 7)],
            commit: idx(0),
        },
    );
    assert!(r.step(1, future_term).is_err());
    assert_eq!(r.last_index(), LogIndex(1));
}

#[test]
fn a_snapshot_chunk_overrunning_its_size_is_refused() {
    let mut r = node(2, &[1, 2, 3]);
    let m = msg(
        3,
        Body::InstallSnapshot {
            meta: SnapshotMeta {
                index: idx(10),
                term: Term(2),
                membership: Membership::new([1, 2, 3]),
            },
            total_bytes: 4,
            offset: 2,
            chunk: Bytes::from_static(b"abcd"),
        },
    );
    assert!(r.step(1, m).is_err());
    assert_eq!(
        r.term(),
        Term(1),
        "a refused message does not even move the term"
    );
}
