//! The key-value state machine's inputs, which arrive from the replicated log and from
//! snapshots (disk and network): `kv::KvStore::restore` on arbitrary snapshot bytes,
//! `kv::Command::decode_at` and `kv::KvStore::apply` on arbitrary entries. Checks: no
//! panic; every decoded command re-encodes to bytes that decode to the same command and
//! clock; after the entries are applied, the store's answers agree with each other
//! (DBSIZE counts exactly the live keys that KEYS and a full SCAN return) and a
//! snapshot restores to an equal store.
//!
//! Input: `flags u8 | snap_len u16 | snapshot | (len u16 | entry)*` (little-endian; a
//! short last entry takes what is left). Flag bit 0 rewrites the snapshot's trailing
//! CRC32C to match its body, so that the fuzzer gets past the checksum.
#![no_main]

use bytes::Bytes;
use kv::{Command, KvStore, Query, QueryResult};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.u8();
    let snap_len = input.u16();
    let mut snap = input.take(snap_len).to_vec();
    if flags & 1 != 0 && snap.len() >= 4 {
        let body = snap.len() - 4;
        let crc = crc32c::crc32c(&snap[..body]);
        snap[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let mut store = match KvStore::restore(Bytes::from(snap)) {
        Ok(store) => {
            check_consistent(&store, &[]);
            store
        }
        Err(_) => KvStore::new(),
    };

    let mut keys = Vec::new();
    while !input.0.is_empty() {
        let len = input.u16();
        let entry = Bytes::copy_from_slice(input.take(len));
        if let Ok((now, cmd)) = Command::decode_at(entry.clone()) {
            let again = Command::decode_at(cmd.encode_at(now)).expect("re-encoded command decodes");
            assert_eq!(
                again,
                (now, cmd.clone()),
                "re-encoded command decodes differently"
            );
            if let Some(k) = cmd.key() {
                keys.push(k.clone());
            }
        }
        let clock = store.clock();
        store.apply(entry);
        assert!(store.clock() >= clock, "the store's clock ran backwards");
    }
    check_consistent(&store, &keys);
});

/// The store's answers agree with each other, and a snapshot restores to an equal store.
fn check_consistent(store: &KvStore, keys: &[Bytes]) {
    for now in [store.clock(), store.clock().saturating_add(1000), u64::MAX] {
        let QueryResult::Integer(dbsize) = store.query(&Query::DbSize, now) else {
            panic!("DBSIZE answers an integer");
        };
        let QueryResult::Keys(all) = store.query(&Query::Keys(Bytes::from_static(b"*")), now)
        else {
            panic!("KEYS answers keys");
        };
        assert_eq!(dbsize, all.len() as i64, "DBSIZE disagrees with KEYS *");
        let mut scanned = 0;
        let mut cursor = 0;
        for _ in 0..=store.len() {
            let q = Query::Scan {
                cursor,
                pattern: None,
                count: 10,
                type_matches: true,
            };
            let QueryResult::Scan { cursor: next, keys } = store.query(&q, now) else {
                panic!("SCAN answers a scan step");
            };
            scanned += keys.len();
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(cursor, 0, "SCAN did not finish");
        assert_eq!(scanned, all.len(), "a full SCAN disagrees with KEYS *");
        for k in keys {
            let live = all.contains(k);
            let QueryResult::Integer(pttl) = store.query(&Query::Pttl(k.clone()), now) else {
                panic!("PTTL answers an integer");
            };
            assert_eq!(pttl != -2, live, "PTTL disagrees with KEYS *");
            let QueryResult::Value(v) = store.query(&Query::Get(k.clone()), now) else {
                panic!("GET answers a value");
            };
            assert_eq!(v.is_some(), live, "GET disagrees with KEYS *");
        }
    }
    let restored = KvStore::restore(store.snapshot()).expect("a snapshot restores");
    assert_eq!(&restored, store, "a snapshot restores to a different store");
}

/// Reads the fuzz input; reads past its end give zeros / empty slices.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        let b = self.0.first().copied().unwrap_or(0);
        self.0 = self.0.get(1..).unwrap_or_default();
        b
    }

    fn u16(&mut self) -> usize {
        usize::from(self.u8()) | usize::from(self.u8()) << 8
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}
