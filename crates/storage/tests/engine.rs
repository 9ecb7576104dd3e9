//! The log engine, specified by what survives a reopen: group commit, truncation,
//! torn tails, corruption, snapshots and segment reclamation.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use consensus::{
    Entry, HardState, LogIndex, Membership, Payload, Recovered, Snapshot, SnapshotMeta, Term,
};
use proptest::prelude::*;
use storage::{FsyncPolicy, LogEngine, Options, StorageError};

fn ent(index: u64, term: u64, data: &str) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Command(Bytes::copy_from_slice(data.as_bytes())),
    }
}

fn hs(term: u64, vote: Option<u64>, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        vote,
        commit: LogIndex(commit),
    }
}

fn snap(index: u64, term: u64, data: &str) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(term),
            membership: Membership::new([1, 2, 3]),
        },
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

fn open(dir: &Path) -> (LogEngine, BTreeMap<u64, Recovered>) {
    LogEngine::open(dir, Options::default()).expect("opens")
}

fn indexes(r: &Recovered) -> Vec<(u64, u64)> {
    r.entries.iter().map(|e| (e.index.0, e.term.0)).collect()
}

/// Segments that grow with every write (no zero-filled files made ahead), for tests
/// that cut or extend files by length.
fn plain() -> Options {
    Options {
        preallocate: false,
        ..Options::default()
    }
}

/// The segment files (not the zero-filled spares made ahead), oldest first.
fn wal_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

#[test]
fn one_sync_makes_every_groups_writes_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, rec) = open(dir.path());
        assert!(rec.is_empty());
        let before = e.stats().fsyncs;
        for g in 1..=10u64 {
            e.append(g, &[ent(1, 1, "a"), ent(2, 1, "b")]).unwrap();
            e.set_hard_state(g, hs(1, Some(g), 2)).unwrap();
        }
        e.sync().unwrap();
        assert_eq!(
            e.stats().fsyncs - before,
            1,
            "group commit: one fsync for ten groups"
        );
    }
    let (_, rec) = open(dir.path());
    assert_eq!(rec.len(), 10);
    for g in 1..=10u64 {
        assert_eq!(indexes(&rec[&g]), vec![(1, 1), (2, 1)]);
        assert_eq!(rec[&g].hard_state, hs(1, Some(g), 2));
    }
}

#[test]
fn writes_not_synced_may_be_lost_but_never_half_applied() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = open(dir.path());
        e.append(1, &[ent(1, 1, "a")]).unwrap();
        e.sync().unwrap();
        e.append(1, &[ent(2, 1, "b")]).unwrap();
        // dropped without sync: a crash before the group commit
    }
    let (_, rec) = open(dir.path());
    assert_eq!(indexes(&rec[&1]), vec![(1, 1)]);
}

#[test]
fn a_conflicting_suffix_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = open(dir.path());
        e.append(1, &(1..=5).map(|i| ent(i, 1, "x")).collect::<Vec<_>>())
            .unwrap();
        e.sync().unwrap();
        e.append(1, &[ent(3, 2, "y"), ent(4, 2, "z")]).unwrap();
        e.sync().unwrap();
    }
    let (_, rec) = open(dir.path());
    assert_eq!(indexes(&rec[&1]), vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
}

#[test]
fn appends_that_leave_a_gap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, _) = open(dir.path());
    e.append(1, &[ent(1, 1, "a")]).unwrap();
    assert!(matches!(
        e.append(1, &[ent(3, 1, "c")]),
        Err(StorageError::Invalid(_))
    ));
    assert!(matches!(
        e.append(1, &[ent(2, 1, "b"), ent(4, 1, "d")]),
        Err(StorageError::Invalid(_))
    ));
}

#[test]
fn a_torn_tail_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = LogEngine::open(dir.path(), plain()).unwrap();
        e.append(1, &[ent(1, 1, "a"), ent(2, 1, "b")]).unwrap();
        e.sync().unwrap();
    }
    // A crash mid-write: half a record at the end of the newest segment.
    let last = wal_files(dir.path()).pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&last).unwrap();
    f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 1, 9, 9]).unwrap();
    drop(f);
    let len_before = fs::metadata(&last).unwrap().len();
    let (e, rec) = LogEngine::open(dir.path(), plain()).unwrap();
    assert_eq!(indexes(&rec[&1]), vec![(1, 1), (2, 1)]);
    assert_eq!(e.stats().torn_bytes_truncated, 11);
    assert_eq!(fs::metadata(&last).unwrap().len(), len_before - 11);
}

#[test]
fn corruption_before_the_tail_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = open(dir.path());
        e.append(1, &[ent(1, 1, "first")]).unwrap();
        e.sync().unwrap();
        e.append(1, &[ent(2, 1, "second")]).unwrap();
        e.sync().unwrap();
    }
    let seg = wal_files(dir.path())
        .into_iter()
        .find(|p| fs::read(p).unwrap().windows(5).any(|w| w == b"first"))
        .unwrap();
    let mut raw = fs::read(&seg).unwrap();
    let pos = raw.windows(5).position(|w| w == b"first").unwrap();
    raw[pos] ^= 0x20;
    fs::write(&seg, raw).unwrap();
    match LogEngine::open(dir.path(), Options::default()) {
        Err(StorageError::Corrupt { offset, reason, .. }) => {
            assert!(offset > 0);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn compaction_keeps_later_entries_and_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = open(dir.path());
        e.append(7, &(1..=10).map(|i| ent(i, 1, "x")).collect::<Vec<_>>())
            .unwrap();
        e.sync().unwrap();
        e.compact(7, &snap(6, 1, "image@6")).unwrap();
        e.sync().unwrap();
    }
    let (_, rec) = open(dir.path());
    let r = &rec[&7];
    assert_eq!(r.snapshot.as_ref().unwrap().meta.index, LogIndex(6));
    assert_eq!(&r.snapshot.as_ref().unwrap().data[..], b"image@6");
    assert_eq!(indexes(r), (7..=10).map(|i| (i, 1)).collect::<Vec<_>>());
}

#[test]
fn an_installed_snapshot_replaces_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = open(dir.path());
        e.append(1, &[ent(1, 1, "a"), ent(2, 1, "b")]).unwrap();
        e.sync().unwrap();
        e.install_snapshot(1, &snap(50, 3, "leader image")).unwrap();
        e.append(1, &[ent(51, 3, "c")]).unwrap();
        e.sync().unwrap();
    }
    let (_, rec) = open(dir.path());
    assert_eq!(rec[&1].snapshot.as_ref().unwrap().meta.index, LogIndex(50));
    assert_eq!(indexes(&rec[&1]), vec![(51, 3)]);
    // Only the current snapshot file remains.
    assert_eq!(fs::read_dir(dir.path().join("snap")).unwrap().count(), 1);
}

#[test]
fn old_segments_are_deleted_once_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        fsync: FsyncPolicy::Always,
        segment_bytes_max: 4096,
        ..Options::default()
    };
    {
        let (mut e, _) = LogEngine::open(dir.path(), opts.clone()).unwrap();
        for i in 1..=400u64 {
            e.append(1, &[ent(i, 1, "0123456789abcdef0123456789abcdef")])
                .unwrap();
            e.set_hard_state(1, hs(1, Some(1), i)).unwrap();
            e.sync().unwrap();
            if i % 50 == 0 {
                e.compact(1, &snap(i - 10, 1, &format!("image@{}", i - 10)))
                    .unwrap();
                e.sync().unwrap();
            }
        }
        assert!(
            e.stats().segments <= 4,
            "segments were not reclaimed: {}",
            e.stats().segments
        );
    }
    let (_, rec) = LogEngine::open(dir.path(), opts).unwrap();
    let r = &rec[&1];
    assert_eq!(r.snapshot.as_ref().unwrap().meta.index, LogIndex(390));
    assert_eq!(indexes(r), (391..=400).map(|i| (i, 1)).collect::<Vec<_>>());
    assert_eq!(r.hard_state, hs(1, Some(1), 400));
}

#[test]
fn a_missing_snapshot_file_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = open(dir.path());
        e.append(1, &(1..=3).map(|i| ent(i, 1, "x")).collect::<Vec<_>>())
            .unwrap();
        e.compact(1, &snap(2, 1, "img")).unwrap();
        e.sync().unwrap();
    }
    for f in fs::read_dir(dir.path().join("snap")).unwrap() {
        fs::remove_file(f.unwrap().path()).unwrap();
    }
    assert!(LogEngine::open(dir.path(), Options::default()).is_err());
}

/// A naive model of one group's durable log.
#[derive(Default, Clone, Debug, PartialEq)]
struct Model {
    base: u64,
    entries: Vec<(u64, u64)>,
    hs: Option<HardState>,
}

#[derive(Clone, Debug)]
enum Op {
    Append {
        from_back: u64,
        count: u64,
        term: u64,
    },
    HardState(u64),
    Compact {
        keep: u64,
    },
    Sync,
    Reopen,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..4, 1u64..5, 1u64..4).prop_map(|(from_back, count, term)| Op::Append { from_back, count, term }),
        1 => (0u64..100).prop_map(Op::HardState),
        1 => (0u64..4).prop_map(|keep| Op::Compact { keep }),
        3 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever was synced is exactly what a reopen recovers, against a naive model;
    /// tiny segments force rotation and reclamation along the way.
    #[test]
    fn recovery_matches_a_naive_model(ops in proptest::collection::vec(arb_op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options { fsync: FsyncPolicy::Never, segment_bytes_max: 512, ..Options::default() };
        let (mut e, _) = LogEngine::open(dir.path(), opts.clone()).unwrap();
        let (mut live, mut durable) = (Model::default(), Model::default());
        let mut term_floor = 1;
        for op in ops {
            match op {
                Op::Append { from_back, count, term } => {
                    let last = live.entries.last().map(|x| x.0).unwrap_or(live.base);
                    let start = (last + 1).saturating_sub(from_back).max(live.base + 1);
                    term_floor = term_floor.max(term);
                    let new: Vec<Entry> = (start..start + count).map(|i| ent(i, term_floor, "v")).collect();
                    e.append(1, &new).unwrap();
                    live.entries.retain(|x| x.0 < start);
                    live.entries.extend(new.iter().map(|x| (x.index.0, x.term.0)));
                }
                Op::HardState(c) => {
                    let h = hs(term_floor, None, c);
                    e.set_hard_state(1, h).unwrap();
                    live.hs = Some(h);
                }
                Op::Compact { keep } => {
                    let last = live.entries.last().map(|x| x.0).unwrap_or(live.base);
                    let to = last.saturating_sub(keep);
                    if to > live.base {
                        let t = live.entries.iter().find(|x| x.0 == to).map(|x| x.1).unwrap();
                        e.compact(1, &snap(to, t, "img")).unwrap();
                        live.base = to;
                        live.entries.retain(|x| x.0 > to);
                    }
                }
                Op::Sync => {
                    e.sync().unwrap();
                    durable = live.clone();
                }
                Op::Reopen => {
                    drop(e);
                    let (e2, rec) = LogEngine::open(dir.path(), opts.clone()).unwrap();
                    e = e2;
                    live = durable.clone();
                    let got = rec.get(&1).map(|r| Model {
                        base: r.snapshot.as_ref().map(|s| s.meta.index.0).unwrap_or(0),
                        entries: indexes(r),
                        hs: if r.hard_state == HardState::default() { None } else { Some(r.hard_state) },
                    }).unwrap_or_default();
                    let want = Model { hs: durable.hs.filter(|h| *h != HardState::default()), ..durable.clone() };
                    prop_assert_eq!(got, want);
                }
            }
        }
    }

    /// Garbage in a segment file never panics the recovery.
    #[test]
    fn garbage_segments_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), keep_header in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("wal")).unwrap();
        let mut content = Vec::new();
        if keep_header {
            content.extend_from_slice(b"HAKVWAL\0\x01");
            content.extend_from_slice(&1u64.to_le_bytes());
        }
        content.extend_from_slice(&bytes);
        fs::write(dir.path().join("wal").join(format!("{:020}.wal", 1)), content).unwrap();
        let _ = LogEngine::open(dir.path(), Options::default());
    }
}

/// Regression: a segment limit smaller than a segment's own header and checkpoint made
/// `sync` rotate, and `rotate` sync, without end (257 files on a small disk, a stack
/// overflow on a large one).
#[test]
fn a_tiny_segment_limit_rotates_once_per_sync_not_forever() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = Options {
        fsync: FsyncPolicy::Never,
        segment_bytes_max: 1,
        ..Options::default()
    };
    let (mut log, _) = LogEngine::open(dir, opts.clone()).unwrap();
    log.append(1, &[ent(1, 1, "a")]).unwrap();
    log.sync().unwrap();
    let files = std::fs::read_dir(dir.join("wal")).unwrap().count();
    assert!(files <= 3, "{files} segment files");
    drop(log);
    let (_, recovered) = LogEngine::open(dir, opts).unwrap();
    assert_eq!(recovered[&1].entries.len(), 1);
}

/// A segment file holding `records` (kind, group, body), framed and checksummed as the
/// engine writes them.
fn segment_with(records: &[(u8, u64, Vec<u8>)]) -> Vec<u8> {
    let mut seg = b"HAKVWAL\0\x01".to_vec();
    seg.extend_from_slice(&1u64.to_le_bytes());
    for (kind, group, body) in records {
        let mut rec = vec![*kind];
        rec.extend_from_slice(&group.to_le_bytes());
        rec.extend_from_slice(body);
        seg.extend_from_slice(&(rec.len() as u32).to_le_bytes());
        seg.extend_from_slice(&crc32c::crc32c(&rec).to_le_bytes());
        seg.extend_from_slice(&rec);
    }
    seg
}

/// The body of an entries record of no-op entries at `indexes` (term 2).
fn noop_entries(indexes: &[u64]) -> Vec<u8> {
    let mut body = (indexes.len() as u32).to_le_bytes().to_vec();
    for &i in indexes {
        body.extend_from_slice(&2u64.to_le_bytes());
        body.extend_from_slice(&i.to_le_bytes());
        body.push(0); // Payload::Noop
    }
    body
}

/// Regression, found by the `wal_records` fuzz target: an entry index of u64::MAX in a
/// record (checksum intact) made recovery panic on `LogIndex::next` overflow (debug
/// builds) instead of reporting corruption.
#[test]
fn an_entry_index_at_u64_max_is_corruption_not_a_panic() {
    for records in [
        // Two entries in one record, the first at u64::MAX.
        vec![(1, 7, noop_entries(&[u64::MAX, 2]))],
        // A record ending at u64::MAX, then one starting lower.
        vec![
            (1, 7, noop_entries(&[u64::MAX])),
            (1, 7, noop_entries(&[5])),
        ],
    ] {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("wal")).unwrap();
        fs::write(
            tmp.path().join("wal").join(format!("{:020}.wal", 1)),
            segment_with(&records),
        )
        .unwrap();
        match LogEngine::open(tmp.path(), Options::default()) {
            Err(StorageError::Corrupt { .. }) => {}
            Err(e) => panic!("expected corruption, got {e}"),
            Ok(_) => panic!("expected corruption, the log opened"),
        }
    }
}

/// The kind byte of a drop record (`LogEngine::drop_group`); its body is empty.
const KIND_DROP: u8 = 5;

/// A drop record voids what came before it for its group, gaps included: entries whose
/// predecessors were reclaimed need no snapshot once their group is dropped. What
/// follows it is a new incarnation.
#[test]
fn a_drop_record_voids_its_groups_earlier_records_and_only_those() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("wal")).unwrap();
    let records = [
        // Group 7 from index 5: entries 1..=4 were in a reclaimed segment, and on its
        // own this is corruption (no snapshot covers them).
        (1, 7, noop_entries(&[5, 6])),
        (1, 8, noop_entries(&[1])),
        (KIND_DROP, 7, Vec::new()),
        (1, 7, noop_entries(&[1, 2])),
    ];
    fs::write(
        tmp.path().join("wal").join(format!("{:020}.wal", 1)),
        segment_with(&records),
    )
    .unwrap();
    let (_, rec) = open(tmp.path());
    assert_eq!(indexes(&rec[&7]), vec![(1, 2), (2, 2)]);
    assert_eq!(indexes(&rec[&8]), vec![(1, 2)]);
}

#[test]
fn a_drop_record_with_a_body_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("wal")).unwrap();
    let records = [
        (1, 7, noop_entries(&[1])),
        (KIND_DROP, 7, vec![0]),
        (1, 8, noop_entries(&[1])),
    ];
    fs::write(
        tmp.path().join("wal").join(format!("{:020}.wal", 1)),
        segment_with(&records),
    )
    .unwrap();
    match LogEngine::open(tmp.path(), Options::default()) {
        Err(StorageError::Corrupt { reason, .. }) => {
            assert!(reason.contains("trailing"), "{reason}")
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("expected corruption, the log opened"),
    }
}

// --- Zero-filled (preallocated) segments ---------------------------------------------

/// Small segments, preallocated: the first zero-filled file is the whole 64 KiB.
fn preallocated() -> Options {
    Options {
        segment_bytes_max: 64 << 10,
        ..Options::default()
    }
}

/// Appends one 1 KiB entry per sync until the log has started `n` segments in
/// zero-filled files (each is made on another thread, so this waits for them);
/// returns the last index written.
fn write_until_preallocated(e: &mut LogEngine, n: u64) -> u64 {
    let mut index = 0;
    let value = "v".repeat(1024);
    while e.stats().segments_preallocated < n {
        index += 1;
        e.append(1, &[ent(index, 1, &value)]).unwrap();
        e.sync().unwrap();
        assert!(index < 100_000, "no zero-filled segment was ever used");
        if index % 64 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    index
}

/// The point of preallocating: the active segment's file never grows while it takes
/// writes (so an fsync has no file-system metadata to commit), and everything written
/// into zero-filled files is recovered, with no torn bytes and no zeros left behind.
#[test]
fn zero_filled_segments_take_writes_without_growing_and_recover_whole() {
    let dir = tempfile::tempdir().unwrap();
    let last;
    {
        let (mut e, _) = LogEngine::open(dir.path(), preallocated()).unwrap();
        write_until_preallocated(&mut e, 2);
        let active = wal_files(dir.path()).pop().unwrap();
        assert_eq!(fs::metadata(&active).unwrap().len(), 64 << 10);
        let mut index = write_until_preallocated(&mut e, 2);
        // A few more writes into the same file: still the same size.
        let segments = e.stats().segments_preallocated;
        for _ in 0..10 {
            index += 1;
            e.append(1, &[ent(index, 1, "small")]).unwrap();
            e.sync().unwrap();
        }
        if e.stats().segments_preallocated == segments {
            let active = wal_files(dir.path()).pop().unwrap();
            assert_eq!(fs::metadata(&active).unwrap().len(), 64 << 10);
        }
        last = index;
    }
    let newest = wal_files(dir.path()).pop().unwrap();
    let (e, rec) = LogEngine::open(dir.path(), preallocated()).unwrap();
    let got = indexes(&rec[&1]);
    assert_eq!(got.len() as u64, last);
    assert_eq!(got.last(), Some(&(last, 1)));
    assert_eq!(
        e.stats().torn_bytes_truncated,
        0,
        "unused space is not a torn tail"
    );
    let len = fs::metadata(&newest).unwrap().len();
    assert!(
        len < 64 << 10,
        "the last segment's unused zeros are cut off at open: {len} bytes"
    );
    let raw = fs::read(&newest).unwrap();
    assert_ne!(
        raw.last(),
        Some(&0),
        "no zero padding is left after the records"
    );
}

/// A crash while writing into a zero-filled segment leaves a torn record followed by
/// zeros (not the end of the file): it is cut off like any torn tail, and every
/// record before it is recovered.
#[test]
fn a_torn_write_into_a_zero_filled_segment_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let last;
    {
        let (mut e, _) = LogEngine::open(dir.path(), preallocated()).unwrap();
        last = write_until_preallocated(&mut e, 1) + 3;
        for i in last - 2..=last {
            e.append(1, &[ent(i, 1, "tail")]).unwrap();
            e.sync().unwrap();
        }
    }
    let seg = wal_files(dir.path()).pop().unwrap();
    let mut raw = fs::read(&seg).unwrap();
    assert_eq!(raw.len(), 64 << 10, "the crash found a zero-filled segment");
    // The last record's final bytes never reached the disk.
    let end = raw.iter().rposition(|&b| b != 0).unwrap() + 1;
    raw[end - 4..end].fill(0);
    fs::write(&seg, &raw).unwrap();
    let (e, rec) = LogEngine::open(dir.path(), preallocated()).unwrap();
    assert_eq!(indexes(&rec[&1]).last(), Some(&(last - 1, 1)));
    assert!(e.stats().torn_bytes_truncated > 0);
}

/// Zeros never hide damage: a damaged record with intact records after it, in a
/// zero-filled segment, is corruption, not a torn tail.
#[test]
fn damage_before_intact_records_in_a_zero_filled_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = LogEngine::open(dir.path(), preallocated()).unwrap();
        let i = write_until_preallocated(&mut e, 1);
        e.append(1, &[ent(i + 1, 1, "damaged")]).unwrap();
        e.sync().unwrap();
        e.append(1, &[ent(i + 2, 1, "intact")]).unwrap();
        e.sync().unwrap();
    }
    let seg = wal_files(dir.path()).pop().unwrap();
    let mut raw = fs::read(&seg).unwrap();
    let pos = raw.windows(7).position(|w| w == b"damaged").unwrap();
    raw[pos] ^= 0x20;
    fs::write(&seg, raw).unwrap();
    match LogEngine::open(dir.path(), preallocated()) {
        Err(StorageError::Corrupt { reason, .. }) => {
            assert!(reason.contains("checksum"), "{reason}")
        }
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

/// A zero-filled file made ahead but never used (the node stopped first) is not a
/// segment: it is deleted at open and recovers nothing.
#[test]
fn an_unused_spare_file_is_deleted_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = open(dir.path());
        e.append(1, &[ent(1, 1, "a")]).unwrap();
        e.sync().unwrap();
    }
    let spare = dir.path().join("wal").join(format!("{:020}.spare", 999));
    fs::write(&spare, vec![0u8; 4096]).unwrap();
    let (_, rec) = open(dir.path());
    assert_eq!(indexes(&rec[&1]), vec![(1, 1)]);
    assert!(!spare.exists());
}
