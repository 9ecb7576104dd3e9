//! Writes the seed corpora in `fuzz/corpus/<target>/seed-*`: a few small, valid inputs
//! per target, made with the product's own encoders (the WAL by a real `LogEngine`), so
//! that each fuzzer starts from inputs that reach deep into its decoder.
//!
//! Run from `fuzz/` after a format change: `cargo run --example make_seeds`
//! (plain stable cargo; it is not a fuzz target).

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use consensus::{
    ConfigChange, Entry, HardState, LogIndex, MemberChange, Membership, Payload, Snapshot,
    SnapshotMeta, Term,
};
use kv::{Command, ExpireCond, Expiry, KvStore, SetCond};
use raft::{Body, Message};
use resp::{Frame, Version};
use storage::{FsyncPolicy, LogEngine, Options};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    resp_command(&root.join("resp_command"));
    resp_frame(&root.join("resp_frame"));
    raft_wire(&root.join("raft_wire"));
    kv_entry(&root.join("kv_entry"));
    wal_records(&root.join("wal_records"));
}

fn seeds(dir: &Path, seeds: &[(&str, Vec<u8>)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, bytes) in seeds {
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn resp_command(dir: &Path) {
    // First byte: the piece size for the resumable decoder.
    seeds(
        dir,
        &[
            ("array", b"\x03*2\r\n$3\r\nGET\r\n$1\r\nk\r\n".to_vec()),
            (
                "pipeline",
                b"\x07*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nPING\r\n*0\r\n*1\r\n$4\r\nQUIT\r\n"
                    .to_vec(),
            ),
            (
                "inline-quotes",
                b"\x01SET \"a b\\x41\\n\" 'c\\'d'\r\n\n  ECHO x\n".to_vec(),
            ),
            ("partial", b"\x00*2\r\n$3\r\nGET\r\n$10\r\nabc".to_vec()),
        ],
    );
}

fn resp_frame(dir: &Path) {
    let frames = [
        ("simple", Frame::SimpleString(b("OK"))),
        ("error", Frame::Error(b("ERR wrong number of arguments"))),
        (
            "array",
            Frame::Array(vec![Frame::Bulk(b("v")), Frame::Integer(-7), Frame::Null]),
        ),
        (
            "resp3",
            Frame::Map(vec![
                (Frame::Bulk(b("k")), Frame::Double(1.5)),
                (
                    Frame::Boolean(true),
                    Frame::Set(vec![Frame::BigNumber(b("123456789012345678901234"))]),
                ),
                (
                    Frame::Verbatim {
                        format: *b"txt",
                        text: b("hi"),
                    },
                    Frame::Push(vec![Frame::NullArray, Frame::Double(f64::INFINITY)]),
                ),
            ]),
        ),
    ];
    let mut out = Vec::new();
    for (name, frame) in &frames {
        let mut buf = BytesMut::new();
        resp::encode(frame, Version::Resp3, &mut buf);
        out.push((*name, buf.to_vec()));
    }
    let mut two = BytesMut::new();
    resp::encode(&frames[2].1, Version::Resp2, &mut two);
    resp::encode(&frames[3].1, Version::Resp2, &mut two);
    out.push(("resp2-pipeline", two.to_vec()));
    seeds(dir, &out);
}

fn entries() -> Vec<Entry> {
    vec![
        Entry {
            term: Term(2),
            index: LogIndex(5),
            payload: Payload::Noop,
        },
        Entry {
            term: Term(2),
            index: LogIndex(6),
            payload: Payload::Command(
                Command::Put {
                    key: b("k"),
                    value: b("v"),
                }
                .encode_at(9),
            ),
        },
        Entry {
            term: Term(2),
            index: LogIndex(7),
            payload: Payload::Config(ConfigChange::Apply(vec![
                MemberChange::AddLearner(4),
                MemberChange::Remove(2),
            ])),
        },
        Entry {
            term: Term(3),
            index: LogIndex(8),
            payload: Payload::Config(ConfigChange::LeaveJoint),
        },
    ]
}

/// [`entries`] renumbered from `first`.
fn entries_from(first: u64) -> Vec<Entry> {
    let mut es = entries();
    for (i, e) in es.iter_mut().enumerate() {
        e.index = LogIndex(first + i as u64);
    }
    es
}

fn raft_wire(dir: &Path) {
    let msgs = [
        (
            "append",
            Body::Append {
                prev_index: LogIndex(4),
                prev_term: Term(1),
                entries: entries(),
                commit: LogIndex(4),
            },
        ),
        (
            "vote",
            Body::Vote {
                last_index: LogIndex(9),
                last_term: Term(3),
                transfer: true,
            },
        ),
        (
            "snapshot",
            Body::InstallSnapshot {
                meta: SnapshotMeta {
                    index: LogIndex(10),
                    term: Term(3),
                    membership: Membership::new([1, 2, 3]),
                },
                total_bytes: 100,
                offset: 0,
                chunk: b("chunk"),
            },
        ),
        (
            "append-response",
            Body::AppendResponse {
                success: false,
                index: LogIndex(3),
                hint_index: LogIndex(2),
                hint_term: Term(1),
            },
        ),
        ("read-index", Body::ReadIndex { ctx: 42 }),
    ];
    let out: Vec<_> = msgs
        .into_iter()
        .map(|(name, body)| {
            let mut buf = Vec::new();
            raft::wire::encode(
                &Message {
                    term: Term(3),
                    body,
                },
                &mut buf,
            );
            (name, buf)
        })
        .collect();
    seeds(dir, &out);
}

fn kv_commands() -> Vec<Bytes> {
    vec![
        Command::Set {
            key: b("a"),
            value: b("10"),
            cond: SetCond::Always,
            expiry: Expiry::At(5_000),
        }
        .encode_at(1_000),
        Command::IncrBy {
            key: b("a"),
            delta: -3,
        }
        .encode_at(1_500),
        Command::Expire {
            key: b("a"),
            at: Some(2_000),
            cond: ExpireCond::Earlier,
        }
        .encode_at(1_600),
        Command::Append {
            key: b("b"),
            value: b("xy"),
        }
        .encode_at(1_700),
        Command::Cas {
            key: b("b"),
            expected: Some(b("xy")),
            new: b("z"),
        }
        .encode_at(1_800),
        Command::Purge { limit: 10 }.encode_at(3_000),
        Command::GetDel { key: b("b") }.encode_at(3_100),
    ]
}

/// `flags | snap_len u16 | snapshot | (len u16 | entry)*`
fn kv_input(flags: u8, snap: &[u8], entries: &[Bytes]) -> Vec<u8> {
    let mut out = vec![flags];
    out.extend_from_slice(&(snap.len() as u16).to_le_bytes());
    out.extend_from_slice(snap);
    for e in entries {
        out.extend_from_slice(&(e.len() as u16).to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

fn kv_entry(dir: &Path) {
    let commands = kv_commands();
    let mut store = KvStore::new();
    for c in &commands[..4] {
        store.apply(c.clone());
    }
    let snap = store.snapshot();
    seeds(
        dir,
        &[
            ("commands", kv_input(0, &[], &commands)),
            ("snapshot", kv_input(1, &snap, &commands[4..])),
        ],
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hakv-seeds-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn wal_records(out: &Path) {
    let opts = Options {
        fsync: FsyncPolicy::Never,
        ..Options::default()
    };
    let hs = HardState {
        term: Term(3),
        vote: Some(1),
        commit: LogIndex(6),
    };

    // One segment: two groups' entries and hard states, one group compacted.
    let dir = temp_dir("one");
    {
        let (mut engine, _) = LogEngine::open(&dir, opts.clone()).unwrap();
        engine.set_hard_state(1, hs).unwrap();
        let first = entries_from(1);
        engine.append(1, &first).unwrap();
        engine.append(7, &first[..2]).unwrap();
        engine.sync().unwrap();
        let snap = Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(2),
                term: Term(2),
                membership: Membership::new([1, 2, 3]),
            },
            data: b("state"),
        };
        engine.compact(1, &snap).unwrap();
        engine.sync().unwrap();
    }
    let wal = fs::read(dir.join("wal").join(format!("{:020}.wal", 1))).unwrap();
    let snap_file = fs::read_dir(dir.join("snap"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "snap"))
        .map(|p| fs::read(p).unwrap())
        .unwrap();
    fs::remove_dir_all(&dir).unwrap();

    // Flags: 2 = fix CRCs (they already match), 8 = snapshot present. Without the
    // snapshot file, recovery reports the compaction's snapshot missing.
    let mut plain = vec![2];
    plain.extend_from_slice(&wal);
    let mut with_snap = vec![2 | 8];
    with_snap.extend_from_slice(&(snap_file.len() as u16).to_le_bytes());
    with_snap.extend_from_slice(&snap_file);
    with_snap.extend_from_slice(&wal);
    // A torn tail: the last record cut short.
    let mut torn = plain.clone();
    torn.truncate(torn.len() - 5);

    // Two segments: a tiny segment size forces a rotation after each sync; the second
    // segment opens with a checkpoint. Flags: 2 | 4 = fix CRCs, split given.
    let dir = temp_dir("two");
    {
        let opts = Options {
            segment_bytes_max: 200,
            ..opts
        };
        let (mut engine, _) = LogEngine::open(&dir, opts).unwrap();
        engine.set_hard_state(1, hs).unwrap();
        engine.append(1, &entries_from(1)).unwrap();
        engine.sync().unwrap();
        engine.append(1, &entries_from(5)).unwrap();
        engine.sync().unwrap();
    }
    let mut segs: Vec<_> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segs.sort();
    assert!(segs.len() >= 2, "expected a rotation: {segs:?}");
    // The fuzz target names its segments 1 and 2: renumber the headers to match.
    let mut s1 = fs::read(&segs[segs.len() - 2]).unwrap();
    let mut s2 = fs::read(&segs[segs.len() - 1]).unwrap();
    s1[9..17].copy_from_slice(&1u64.to_le_bytes());
    s2[9..17].copy_from_slice(&2u64.to_le_bytes());
    fs::remove_dir_all(&dir).unwrap();
    let mut two = vec![2 | 4];
    two.extend_from_slice(&(s1.len() as u16).to_le_bytes());
    two.extend_from_slice(&s1);
    two.extend_from_slice(&s2);

    seeds(
        out,
        &[
            ("one-segment", plain),
            ("snapshot", with_snap),
            ("torn-tail", torn),
            ("two-segments", two),
        ],
    );
}
