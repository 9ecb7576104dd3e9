//! hakv's replicated key-value state machine.
//!
//! A [`Command`] is what a client asks; it is encoded into a log entry by the proposer
//! (with the proposer's clock, so expiry is decided before proposing) and applied, in
//! log order, by every replica's [`KvStore`]. Applying is a pure function of the state
//! and the entry, so replicas that apply the same log hold the same data. Reads after a
//! read barrier are [`Query`]s answered from local state. Every encoding starts with a
//! version byte; snapshots end with a CRC32C. Decoding never panics: bad input is a
//! [`DecodeError`].
//!
//! Values are strings (byte strings), as in the Redis commands hakv serves; with one
//! type there is no WRONGTYPE case yet.

#![warn(missing_docs)]

use std::fmt;

mod command;
pub mod glob;
mod hash;
mod store;

pub use command::{Command, ExpireCond, Expiry, SetCond, COMMAND_VERSION};
pub use hash::key_hash;
pub use store::{
    parse_i64, KvError, KvStore, KvView, Query, QueryResult, Response, SNAPSHOT_VERSION, VALUE_MAX,
};

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The version byte is not one this build understands.
    Version(u8),
    /// The input ended early.
    Truncated,
    /// An unknown tag or flag.
    BadTag(u8),
    /// The checksum does not match.
    Checksum,
    /// Bytes left over after a complete value.
    Trailing,
    /// A snapshot holds the same key twice.
    DuplicateKey,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Version(v) => write!(f, "unsupported encoding version {v}"),
            DecodeError::Truncated => write!(f, "input truncated"),
            DecodeError::BadTag(t) => write!(f, "unknown tag {t}"),
            DecodeError::Checksum => write!(f, "checksum mismatch"),
            DecodeError::Trailing => write!(f, "trailing bytes"),
            DecodeError::DuplicateKey => write!(f, "duplicate key in snapshot"),
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn commands_apply_like_a_map() {
        let mut kv = KvStore::new();
        assert_eq!(
            kv.apply(Command::Get { key: b("k") }.encode()),
            Response::Value(None)
        );
        assert_eq!(
            kv.apply(
                Command::Append {
                    key: b("k"),
                    value: b("a")
                }
                .encode()
            ),
            Response::Integer(1)
        );
        assert_eq!(
            kv.apply(
                Command::Append {
                    key: b("k"),
                    value: b("b")
                }
                .encode()
            ),
            Response::Integer(2)
        );
        assert_eq!(kv.get(b"k"), Some(&b("ab")));
        let cas = |e: Option<&str>, n: &str| {
            Command::Cas {
                key: b("k"),
                expected: e.map(b),
                new: b(n),
            }
            .encode()
        };
        assert_eq!(kv.apply(cas(Some("x"), "y")), Response::Cas(false));
        assert_eq!(kv.apply(cas(Some("ab"), "y")), Response::Cas(true));
        assert_eq!(kv.apply(cas(None, "z")), Response::Cas(false));
        assert_eq!(
            kv.apply(Command::Delete { key: b("k") }.encode()),
            Response::Deleted(true)
        );
        assert_eq!(kv.apply(cas(None, "z")), Response::Cas(true));
    }

    #[test]
    fn garbage_is_an_invalid_response_not_a_panic() {
        let mut kv = KvStore::new();
        assert!(matches!(
            kv.apply(Bytes::from_static(&[9, 9])),
            Response::Invalid(_)
        ));
        assert!(matches!(kv.apply(Bytes::new()), Response::Invalid(_)));
    }

    #[test]
    fn a_corrupt_snapshot_is_refused() {
        let mut kv = KvStore::new();
        kv.apply(
            Command::Put {
                key: b("a"),
                value: b("1"),
            }
            .encode(),
        );
        let snap = kv.snapshot();
        assert_eq!(KvStore::restore(snap.clone()).unwrap(), kv);
        let mut bad = snap.to_vec();
        bad[10] ^= 1;
        assert_eq!(
            KvStore::restore(Bytes::from(bad)),
            Err(DecodeError::Checksum)
        );
        assert_eq!(
            KvStore::restore(snap.slice(..5)),
            Err(DecodeError::Truncated)
        );
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        let key = proptest::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from);
        let val = proptest::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from);
        prop_oneof![
            key.clone().prop_map(|key| Command::Get { key }),
            (key.clone(), val.clone()).prop_map(|(key, value)| Command::Put { key, value }),
            (key.clone(), val.clone()).prop_map(|(key, value)| Command::Append { key, value }),
            (key.clone(), proptest::option::of(val.clone()), val.clone())
                .prop_map(|(key, expected, new)| Command::Cas { key, expected, new }),
            key.clone().prop_map(|key| Command::Delete { key }),
            (
                key.clone(),
                val.clone(),
                0u8..3,
                prop_oneof![
                    Just(Expiry::Clear),
                    Just(Expiry::Keep),
                    (0u64..200).prop_map(Expiry::At)
                ]
            )
                .prop_map(|(key, value, c, expiry)| Command::Set {
                    key,
                    value,
                    cond: [SetCond::Always, SetCond::IfAbsent, SetCond::IfPresent][c as usize],
                    expiry,
                }),
            key.clone().prop_map(|key| Command::GetDel { key }),
            (key.clone(), -3i64..3).prop_map(|(key, delta)| Command::IncrBy { key, delta }),
            (key, proptest::option::of(0u64..200), 0u8..6).prop_map(|(key, at, c)| {
                Command::Expire {
                    key,
                    at,
                    cond: [
                        ExpireCond::Always,
                        ExpireCond::IfNone,
                        ExpireCond::IfSome,
                        ExpireCond::Later,
                        ExpireCond::Earlier,
                        ExpireCond::EarlierExisting,
                    ][c as usize],
                }
            }),
            (0u32..4).prop_map(|limit| Command::Purge { limit }),
        ]
    }

    /// Commands stamped with a clock that mostly moves forward and sometimes back
    /// (leaders' clocks disagree).
    fn arb_history() -> impl Strategy<Value = Vec<(u64, Command)>> {
        proptest::collection::vec((0u64..200, arb_command()), 0..60)
    }

    proptest! {
        #[test]
        fn commands_round_trip(cmd in arb_command(), now in any::<u64>()) {
            prop_assert_eq!(Command::decode_at(cmd.encode_at(now)), Ok((now, cmd)));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Command::decode(Bytes::from(bytes.clone()));
            let _ = KvStore::restore(Bytes::from(bytes));
        }

        #[test]
        fn snapshots_round_trip(cmds in proptest::collection::vec(arb_command(), 0..40)) {
            let mut kv = KvStore::new();
            for c in cmds { kv.apply(c.encode()); }
            prop_assert_eq!(KvStore::restore(kv.snapshot()), Ok(kv));
        }

        #[test]
        fn snapshots_with_deadlines_round_trip_and_replay_identically(h in arb_history()) {
            let mut a = KvStore::new();
            let mut b = KvStore::new();
            for (i, (now, c)) in h.iter().enumerate() {
                let e = c.encode_at(*now);
                prop_assert_eq!(a.apply(e.clone()), b.apply(e));
                if i % 7 == 3 {
                    b = KvStore::restore(b.snapshot()).unwrap();
                }
            }
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(KvStore::restore(a.snapshot()), Ok(a));
        }

        /// The store agrees with a naive model: a map of (value, deadline) read at the
        /// running maximum clock.
        #[test]
        fn the_store_agrees_with_a_naive_model(h in arb_history()) {
            let mut kv = KvStore::new();
            let mut model: std::collections::HashMap<Bytes, (Bytes, Option<u64>)> = Default::default();
            let mut clock = 0;
            for (now, c) in h {
                clock = clock.max(now);
                model.retain(|_, (_, e)| e.is_none_or(|t| t > clock));
                let purge = matches!(c, Command::Purge { .. });
                let got = kv.apply(c.encode_at(now));
                let want = model_apply(&mut model, clock, c);
                if !purge {
                    prop_assert_eq!(got, want);
                }
                prop_assert_eq!(
                    kv.query(&Query::DbSize, 0),
                    QueryResult::Integer(model.len() as i64)
                );
                for (k, (v, _)) in &model {
                    prop_assert_eq!(kv.get(k), Some(v));
                }
            }
        }

        /// SCAN returns every key present for the whole iteration, whatever is added
        /// and removed between steps, and ends.
        #[test]
        fn scan_returns_every_key_present_throughout(
            initial in proptest::collection::btree_set(0u16..500, 0..200),
            churn in proptest::collection::vec((any::<bool>(), 0u16..500), 0..200),
            count in 1usize..20,
        ) {
            let mut kv = KvStore::new();
            let key = |n: u16| Bytes::from(format!("k{n}"));
            for &n in &initial {
                kv.apply(Command::Put { key: key(n), value: b("v") }.encode());
            }
            let mut stable: std::collections::BTreeSet<u16> = initial.clone();
            let mut seen = std::collections::HashSet::new();
            let mut cursor = 0;
            let mut churn = churn.into_iter();
            for step in 0.. {
                prop_assert!(step < 10_000, "scan did not end");
                let q = Query::Scan { cursor, pattern: None, count, type_matches: true };
                let QueryResult::Scan { cursor: next, keys } = kv.query(&q, 0) else {
                    unreachable!()
                };
                seen.extend(keys);
                if next == 0 {
                    break;
                }
                cursor = next;
                if let Some((add, n)) = churn.next() {
                    stable.remove(&n);
                    if add {
                        kv.apply(Command::Put { key: key(n), value: b("w") }.encode());
                    } else {
                        kv.apply(Command::Delete { key: key(n) }.encode());
                    }
                }
            }
            for n in stable {
                prop_assert!(seen.contains(&key(n)), "k{} missed", n);
            }
        }
    }

    fn model_apply(
        m: &mut std::collections::HashMap<Bytes, (Bytes, Option<u64>)>,
        clock: u64,
        c: Command,
    ) -> Response {
        let put = |m: &mut std::collections::HashMap<Bytes, (Bytes, Option<u64>)>,
                   k: Bytes,
                   v: Bytes,
                   e: Option<u64>| {
            if e.is_some_and(|t| t <= clock) {
                m.remove(&k);
            } else {
                m.insert(k, (v, e));
            }
        };
        match c {
            Command::Get { key } => Response::Value(m.get(&key).map(|v| v.0.clone())),
            Command::Put { key, value } => {
                put(m, key, value, None);
                Response::Ok
            }
            Command::Append { key, value } => {
                let (old, e) = m.get(&key).cloned().unwrap_or((Bytes::new(), None));
                let next = Bytes::from([&old[..], &value[..]].concat());
                let n = next.len() as i64;
                put(m, key, next, e);
                Response::Integer(n)
            }
            Command::Cas { key, expected, new } => {
                if m.get(&key).map(|v| &v.0) == expected.as_ref() {
                    put(m, key, new, None);
                    Response::Cas(true)
                } else {
                    Response::Cas(false)
                }
            }
            Command::Delete { key } => Response::Deleted(m.remove(&key).is_some()),
            Command::Set {
                key,
                value,
                cond,
                expiry,
            } => {
                let old = m.get(&key).cloned();
                let written = match cond {
                    SetCond::Always => true,
                    SetCond::IfAbsent => old.is_none(),
                    SetCond::IfPresent => old.is_some(),
                };
                if written {
                    let e = match expiry {
                        Expiry::Clear => None,
                        Expiry::Keep => old.as_ref().and_then(|o| o.1),
                        Expiry::At(t) => Some(t),
                    };
                    put(m, key, value, e);
                }
                Response::Set {
                    written,
                    old: old.map(|o| o.0),
                }
            }
            Command::GetDel { key } => Response::Value(m.remove(&key).map(|v| v.0)),
            Command::IncrBy { key, delta } => {
                let (old, e) = m.get(&key).cloned().unwrap_or((Bytes::from("0"), None));
                let Some(n) = parse_i64(&old) else {
                    return Response::Error(KvError::NotInteger);
                };
                let Some(n) = n.checked_add(delta) else {
                    return Response::Error(KvError::Overflow);
                };
                put(m, key, Bytes::from(n.to_string()), e);
                Response::Integer(n)
            }
            Command::Expire { key, at, cond } => {
                let Some((v, e)) = m.get(&key).cloned() else {
                    return Response::Integer(0);
                };
                let ok = match (at, cond, e) {
                    (None, _, e) => e.is_some(),
                    (Some(_), ExpireCond::Always, _) => true,
                    (Some(_), ExpireCond::IfNone, e) => e.is_none(),
                    (Some(_), ExpireCond::IfSome, e) => e.is_some(),
                    (Some(t), ExpireCond::Later, e) => e.is_some_and(|e| t > e),
                    (Some(t), ExpireCond::Earlier, e) => e.is_none_or(|e| t < e),
                    (Some(t), ExpireCond::EarlierExisting, e) => e.is_some_and(|e| t < e),
                };
                if ok {
                    put(m, key, v, at);
                }
                Response::Integer(ok as i64)
            }
            Command::Purge { .. } => Response::Integer(-1), // compared loosely below
        }
    }
}

#[cfg(test)]
mod redis_semantics {
    //! The behaviours of Redis's string commands that clients depend on.
    use super::*;
    use bytes::Bytes;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn at(kv: &mut KvStore, now: u64, c: Command) -> Response {
        kv.apply(c.encode_at(now))
    }

    fn set(key: &str, value: &str, cond: SetCond, expiry: Expiry) -> Command {
        Command::Set {
            key: b(key),
            value: b(value),
            cond,
            expiry,
        }
    }

    #[test]
    fn a_key_expires_at_its_deadline_for_writes_and_reads() {
        let mut kv = KvStore::new();
        at(
            &mut kv,
            1000,
            set("k", "v", SetCond::Always, Expiry::At(1500)),
        );
        assert_eq!(
            kv.query(&Query::Pttl(b("k")), 1200),
            QueryResult::Integer(300)
        );
        assert_eq!(
            kv.query(&Query::Get(b("k")), 1499),
            QueryResult::Value(Some(b("v")))
        );
        // Reads use the caller's clock: gone at the deadline even before any entry.
        assert_eq!(
            kv.query(&Query::Get(b("k")), 1500),
            QueryResult::Value(None)
        );
        assert_eq!(kv.query(&Query::DbSize, 1500), QueryResult::Integer(0));
        assert_eq!(
            kv.query(&Query::Pttl(b("k")), 1500),
            QueryResult::Integer(-2)
        );
        // An entry stamped later than the deadline sees it absent (SET NX succeeds).
        assert_eq!(
            at(
                &mut kv,
                1600,
                set("k", "w", SetCond::IfAbsent, Expiry::Clear)
            ),
            Response::Set {
                written: true,
                old: None
            }
        );
        assert_eq!(
            kv.query(&Query::Pttl(b("k")), 1600),
            QueryResult::Integer(-1)
        );
    }

    #[test]
    fn the_clock_never_runs_backwards() {
        let mut kv = KvStore::new();
        at(
            &mut kv,
            1000,
            set("k", "v", SetCond::Always, Expiry::At(1500)),
        );
        at(&mut kv, 2000, Command::Get { key: b("x") });
        // A new leader whose clock is behind cannot resurrect the expired key.
        assert_eq!(
            at(&mut kv, 1200, Command::Get { key: b("k") }),
            Response::Value(None)
        );
        assert_eq!(kv.clock(), 2000);
    }

    #[test]
    fn set_options_follow_redis() {
        let mut kv = KvStore::new();
        assert_eq!(
            at(&mut kv, 1, set("k", "1", SetCond::IfPresent, Expiry::Clear)),
            Response::Set {
                written: false,
                old: None
            }
        );
        at(&mut kv, 1, set("k", "1", SetCond::Always, Expiry::At(100)));
        // KEEPTTL keeps the deadline; a plain SET clears it; GETSET-like old value.
        assert_eq!(
            at(&mut kv, 2, set("k", "2", SetCond::IfPresent, Expiry::Keep)),
            Response::Set {
                written: true,
                old: Some(b("1"))
            }
        );
        assert_eq!(kv.query(&Query::Pttl(b("k")), 2), QueryResult::Integer(98));
        at(&mut kv, 3, set("k", "3", SetCond::Always, Expiry::Clear));
        assert_eq!(kv.query(&Query::Pttl(b("k")), 3), QueryResult::Integer(-1));
        // A deadline already passed leaves the key absent.
        at(&mut kv, 10, set("k", "4", SetCond::Always, Expiry::At(5)));
        assert_eq!(kv.query(&Query::Get(b("k")), 10), QueryResult::Value(None));
    }

    #[test]
    fn counters_parse_strictly_keep_ttl_and_refuse_overflow() {
        let mut kv = KvStore::new();
        let incr = |d| Command::IncrBy {
            key: b("n"),
            delta: d,
        };
        assert_eq!(at(&mut kv, 1, incr(5)), Response::Integer(5));
        at(
            &mut kv,
            1,
            Command::Expire {
                key: b("n"),
                at: Some(100),
                cond: ExpireCond::Always,
            },
        );
        assert_eq!(at(&mut kv, 2, incr(-7)), Response::Integer(-2));
        assert_eq!(kv.query(&Query::Pttl(b("n")), 2), QueryResult::Integer(98));
        at(
            &mut kv,
            3,
            set("n", &i64::MAX.to_string(), SetCond::Always, Expiry::Clear),
        );
        assert_eq!(at(&mut kv, 3, incr(1)), Response::Error(KvError::Overflow));
        assert_eq!(kv.get(b"n"), Some(&Bytes::from(i64::MAX.to_string())));
        for bad in [
            "",
            " 1",
            "+1",
            "01",
            "-0",
            "1.5",
            "abc",
            "99999999999999999999",
        ] {
            at(&mut kv, 3, set("n", bad, SetCond::Always, Expiry::Clear));
            assert_eq!(
                at(&mut kv, 3, incr(1)),
                Response::Error(KvError::NotInteger),
                "{bad:?}"
            );
        }
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"0"), Some(0));
    }

    #[test]
    fn expire_conditions_follow_redis_7() {
        let mut kv = KvStore::new();
        let exp = |t, cond| Command::Expire {
            key: b("k"),
            at: Some(t),
            cond,
        };
        assert_eq!(
            at(&mut kv, 1, exp(50, ExpireCond::Always)),
            Response::Integer(0)
        );
        at(
            &mut kv,
            1,
            Command::Put {
                key: b("k"),
                value: b("v"),
            },
        );
        assert_eq!(
            at(&mut kv, 1, exp(50, ExpireCond::IfSome)),
            Response::Integer(0)
        );
        assert_eq!(
            at(&mut kv, 1, exp(50, ExpireCond::Later)),
            Response::Integer(0)
        );
        assert_eq!(
            at(&mut kv, 1, exp(50, ExpireCond::Earlier)),
            Response::Integer(1)
        );
        assert_eq!(
            at(&mut kv, 1, exp(60, ExpireCond::IfNone)),
            Response::Integer(0)
        );
        assert_eq!(
            at(&mut kv, 1, exp(40, ExpireCond::Later)),
            Response::Integer(0)
        );
        assert_eq!(
            at(&mut kv, 1, exp(60, ExpireCond::Later)),
            Response::Integer(1)
        );
        let persist = Command::Expire {
            key: b("k"),
            at: None,
            cond: ExpireCond::Always,
        };
        assert_eq!(at(&mut kv, 1, persist.clone()), Response::Integer(1));
        assert_eq!(at(&mut kv, 1, persist), Response::Integer(0));
        // A deadline in the past deletes the key and counts as set.
        assert_eq!(
            at(&mut kv, 100, exp(99, ExpireCond::Always)),
            Response::Integer(1)
        );
        assert_eq!(kv.get(b"k"), None);
    }

    #[test]
    fn purge_reclaims_expired_keys_in_deadline_order() {
        let mut kv = KvStore::new();
        for (i, t) in [30u64, 10, 20, 40].iter().enumerate() {
            at(
                &mut kv,
                1,
                set(&format!("k{i}"), "v", SetCond::Always, Expiry::At(*t)),
            );
        }
        at(
            &mut kv,
            1,
            Command::Put {
                key: b("p"),
                value: b("v"),
            },
        );
        assert_eq!(kv.next_deadline(), Some(10));
        assert_eq!(
            at(&mut kv, 35, Command::Purge { limit: 2 }),
            Response::Integer(2)
        );
        assert_eq!(kv.next_deadline(), Some(30));
        assert_eq!(
            at(&mut kv, 35, Command::Purge { limit: 10 }),
            Response::Integer(1)
        );
        assert_eq!(kv.len(), 2);
        assert_eq!(kv.query(&Query::DbSize, 35), QueryResult::Integer(2));
    }

    #[test]
    fn keys_and_scan_filter_by_pattern_and_type() {
        let mut kv = KvStore::new();
        for k in ["user:1", "user:2", "order:1"] {
            at(
                &mut kv,
                1,
                Command::Put {
                    key: b(k),
                    value: b("v"),
                },
            );
        }
        let QueryResult::Keys(mut keys) = kv.query(&Query::Keys(b("user:*")), 1) else {
            panic!()
        };
        keys.sort();
        assert_eq!(keys, vec![b("user:1"), b("user:2")]);
        let scan = |type_matches| Query::Scan {
            cursor: 0,
            pattern: Some(b("order:*")),
            count: 100,
            type_matches,
        };
        assert_eq!(
            kv.query(&scan(true), 1),
            QueryResult::Scan {
                cursor: 0,
                keys: vec![b("order:1")]
            }
        );
        assert_eq!(
            kv.query(&scan(false), 1),
            QueryResult::Scan {
                cursor: 0,
                keys: vec![]
            }
        );
    }

    #[test]
    fn append_refuses_to_grow_past_the_value_limit() {
        let mut kv = KvStore::new();
        let big = Bytes::from(vec![b'x'; VALUE_MAX]);
        at(
            &mut kv,
            1,
            Command::Put {
                key: b("k"),
                value: big,
            },
        );
        assert_eq!(
            at(
                &mut kv,
                1,
                Command::Append {
                    key: b("k"),
                    value: b("y")
                }
            ),
            Response::Error(KvError::TooLarge)
        );
        assert_eq!(kv.get(b"k").map(|v| v.len()), Some(VALUE_MAX));
    }

    #[test]
    fn version_1_entries_and_snapshots_still_decode() {
        // Written by the first release: version 1, tag 1 (Put), "k", "v".
        let entry = Bytes::from_static(&[1, 1, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v']);
        assert_eq!(
            Command::decode_at(entry),
            Ok((
                0,
                Command::Put {
                    key: b("k"),
                    value: b("v")
                }
            ))
        );
        let mut snap = vec![1u8];
        snap.extend_from_slice(&1u64.to_le_bytes());
        snap.extend_from_slice(&[1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v']);
        let crc = crc32c::crc32c(&snap);
        snap.extend_from_slice(&crc.to_le_bytes());
        let kv = KvStore::restore(Bytes::from(snap)).unwrap();
        assert_eq!(kv.get(b"k"), Some(&b("v")));
    }

    /// Found by the `kv_entry` fuzz target: at a clock of u64::MAX a key whose deadline
    /// is u64::MAX is gone for GET, PTTL and KEYS, but DBSIZE (counting deadlines below
    /// now + 1, saturated) still counted it.
    #[test]
    fn dbsize_agrees_with_keys_at_the_end_of_time() {
        let mut kv = KvStore::new();
        at(
            &mut kv,
            1000,
            set("a", "10", SetCond::Always, Expiry::At(u64::MAX)),
        );
        assert_eq!(
            kv.query(&Query::DbSize, u64::MAX - 1),
            QueryResult::Integer(1)
        );
        assert_eq!(
            kv.query(&Query::Get(b("a")), u64::MAX),
            QueryResult::Value(None)
        );
        assert_eq!(
            kv.query(&Query::Keys(b("*")), u64::MAX),
            QueryResult::Keys(vec![])
        );
        assert_eq!(kv.query(&Query::DbSize, u64::MAX), QueryResult::Integer(0));
    }

    /// Found by the `kv_entry` fuzz target: a snapshot (with a valid checksum) that
    /// holds key "b" twice, first expiring at 2000, then without a deadline, was
    /// restored with a stale expiry for "b": DBSIZE said 0 while GET and KEYS found it,
    /// and a later Purge would have deleted the live, non-expiring value.
    #[test]
    fn a_snapshot_with_a_duplicate_key_is_refused() {
        let mut snap = vec![2u8];
        snap.extend_from_slice(&1700u64.to_le_bytes()); // clock
        snap.extend_from_slice(&2u64.to_le_bytes()); // count
        snap.extend_from_slice(&[1, 0, 0, 0, b'b', 1, 0, 0, 0, b'7', 1]);
        snap.extend_from_slice(&2000u64.to_le_bytes()); // deadline
        snap.extend_from_slice(&[1, 0, 0, 0, b'b', 2, 0, 0, 0, b'x', b'y', 0]);
        let crc = crc32c::crc32c(&snap);
        snap.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            KvStore::restore(Bytes::from(snap)),
            Err(DecodeError::DuplicateKey)
        );
    }
}
