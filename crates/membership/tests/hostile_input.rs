//! Input from the network is untrusted: garbage bytes never panic the decoder, every
//! message that decodes re-encodes to the same bytes, and any message — unknown
//! senders, absurd incarnations, huge lists, ids of 0 — is either handled by the
//! protocol or refused, and a refused message changes nothing. Whatever arrives, the
//! detector's invariants (checked after every input in debug builds) hold and what it
//! stores stays bounded.

use bytes::Bytes;
use membership::member::INCARNATION_MAX;
use membership::message::{Body, SYNC_MEMBERS_MAX, UPDATES_MAX};
use membership::{wire, Config, Detector, Incarnation, Message, NodeId, State, Update};
use proptest::prelude::*;

fn arb_id() -> impl Strategy<Value = NodeId> {
    prop_oneof![4 => 0u64..10, 1 => Just(u64::MAX), 1 => any::<u64>()]
}

fn arb_incarnation() -> impl Strategy<Value = Incarnation> {
    prop_oneof![
        4 => 0u64..4,
        1 => Just(INCARNATION_MAX),
        1 => Just(INCARNATION_MAX + 1),
        1 => Just(u64::MAX),
    ]
    .prop_map(Incarnation)
}

fn arb_state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::Alive),
        Just(State::Suspect),
        Just(State::Dead),
        Just(State::Left)
    ]
}

/// Anything at all, mostly malformed.
fn wild_update() -> impl Strategy<Value = Update> {
    (arb_id(), arb_incarnation(), arb_state(), arb_id()).prop_map(|(id, incarnation, state, by)| {
        Update {
            id,
            incarnation,
            state,
            by,
        }
    })
}

/// Well-formed claims about a small id space (this node is 1), so that most messages
/// are accepted and exercise the protocol rather than the refusal path.
fn plausible_update() -> impl Strategy<Value = Update> {
    (1u64..9, 0u64..4, arb_state(), 1u64..9).prop_map(|(id, incarnation, state, by)| {
        let by = match state {
            State::Alive | State::Left => id,
            State::Suspect | State::Dead if by == id => id % 8 + 1,
            _ => by,
        };
        Update {
            id,
            incarnation: Incarnation(incarnation),
            state,
            by,
        }
    })
}

fn arb_update() -> impl Strategy<Value = Update> {
    prop_oneof![9 => plausible_update(), 1 => wild_update()]
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        any::<u64>().prop_map(|seq| Body::Ping { seq }),
        any::<u64>().prop_map(|seq| Body::Ack { seq }),
        (any::<u64>(), arb_id()).prop_map(|(seq, target)| Body::PingReq { seq, target }),
        (any::<u64>(), arb_id()).prop_map(|(seq, target)| Body::IndirectAck { seq, target }),
        Just(Body::Gossip),
        (
            any::<bool>(),
            proptest::collection::vec(arb_update(), 0..12)
        )
            .prop_map(|(reply, members)| Body::Sync { reply, members }),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (arb_body(), proptest::collection::vec(arb_update(), 0..8))
        .prop_map(|(body, updates)| Message { body, updates })
}

fn detector() -> Detector {
    let mut d = Detector::new(
        Config {
            members_max: 12,
            ..Config::new(1)
        },
        0,
        &[2, 3, 4, 5],
    )
    .unwrap();
    d.take_actions();
    d
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbage_never_panics_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(msg) = wire::decode(Bytes::from(bytes.clone())) {
            // What decodes re-encodes to exactly the input.
            prop_assert_eq!(wire::to_bytes(&msg).to_vec(), bytes);
        }
    }

    #[test]
    fn mutated_messages_never_panic_the_decoder(msg in arb_message(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut bytes = wire::to_bytes(&msg).to_vec();
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        let _ = wire::decode(Bytes::from(bytes));
    }

    #[test]
    fn every_message_round_trips(msg in arb_message()) {
        let bytes = wire::to_bytes(&msg);
        prop_assert_eq!(wire::decode(bytes).unwrap(), msg);
    }

    #[test]
    fn any_message_is_handled_or_refused_without_effect(
        script in proptest::collection::vec((prop_oneof![9 => 2u64..9, 1 => arb_id()], arb_message(), 0u64..3_000), 1..40)
    ) {
        let mut d = detector();
        let mut now = 0;
        for (from, msg, dt) in script {
            now += dt;
            d.tick(now);
            d.take_actions();
            let members = d.members();
            let stats = d.stats();
            match d.step(now, from, msg) {
                Ok(()) => {}
                Err(_) => {
                    prop_assert!(d.take_actions().is_empty());
                    prop_assert_eq!(d.members(), members);
                    prop_assert_eq!(d.stats().messages_received, stats.messages_received);
                }
            }
            prop_assert!(d.members().len() <= 12);
            prop_assert!(d.incarnation().0 <= INCARNATION_MAX);
            // Whatever was said, this node still speaks for itself.
            prop_assert_eq!(d.member(1).unwrap().state, State::Alive);
            for a in d.take_actions() {
                if let membership::Action::Send { msg, .. } = a {
                    prop_assert!(msg.updates.len() <= d.config().updates_per_message_max);
                    let _ = wire::to_bytes(&msg); // encodable: within every bound
                }
            }
        }
    }
}

#[test]
fn oversized_lists_are_rejected_by_the_decoder() {
    let mut bytes = vec![wire::WIRE_VERSION, 4];
    bytes.extend_from_slice(&((UPDATES_MAX + 1) as u16).to_le_bytes());
    assert!(wire::decode(Bytes::from(bytes)).is_err());
    let mut bytes = vec![wire::WIRE_VERSION, 5, 0];
    bytes.extend_from_slice(&((SYNC_MEMBERS_MAX + 1) as u32).to_le_bytes());
    assert!(wire::decode(Bytes::from(bytes)).is_err());
    // A count the input cannot satisfy fails without reserving memory for it.
    let mut bytes = vec![wire::WIRE_VERSION, 5, 0];
    bytes.extend_from_slice(&(SYNC_MEMBERS_MAX as u32).to_le_bytes());
    assert!(wire::decode(Bytes::from(bytes)).is_err());
}

#[test]
fn an_accusation_at_the_largest_incarnation_is_refuted_without_overflow() {
    let mut d = detector();
    let slander = Message {
        body: Body::Gossip,
        updates: vec![Update {
            id: 1,
            incarnation: Incarnation(INCARNATION_MAX),
            state: State::Dead,
            by: 2,
        }],
    };
    d.step(10, 2, slander.clone()).unwrap();
    assert_eq!(d.incarnation(), Incarnation(INCARNATION_MAX));
    d.step(20, 2, slander).unwrap();
    assert_eq!(d.incarnation(), Incarnation(INCARNATION_MAX));
}

#[test]
fn wire_version_is_checked() {
    let mut bytes = wire::to_bytes(&Message::bare(Body::Ping { seq: 1 })).to_vec();
    bytes[0] = wire::WIRE_VERSION + 1;
    assert!(wire::decode(Bytes::from(bytes)).is_err());
}
