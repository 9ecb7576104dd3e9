//! `LogEngine::drop_group`, specified by what survives a reopen: a dropped group is
//! gone (state, entries, snapshot file, its hold on old segments) once the next sync
//! returns, whole until then, and the same group id written again later is a new
//! incarnation that starts empty.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use consensus::{
    Entry, HardState, LogIndex, Membership, Payload, Recovered, Snapshot, SnapshotMeta, Term,
};
use proptest::prelude::*;
use storage::{FsyncPolicy, LogEngine, Options};

fn ent(index: u64, term: u64, data: &str) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Command(Bytes::copy_from_slice(data.as_bytes())),
    }
}

fn ents(indexes: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    indexes.map(|i| ent(i, term, "v")).collect()
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

/// Plain (not zero-filled) segments: the crash tests cut files by length.
fn open(dir: &Path) -> (LogEngine, BTreeMap<u64, Recovered>) {
    let opts = Options {
        preallocate: false,
        ..Options::default()
    };
    LogEngine::open(dir, opts).expect("opens")
}

fn indexes(r: &Recovered) -> Vec<(u64, u64)> {
    r.entries.iter().map(|e| (e.index.0, e.term.0)).collect()
}

fn snapshot_index(r: &Recovered) -> Option<u64> {
    r.snapshot.as_ref().map(|s| s.meta.index.0)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The snapshot files of `group` (named `g<group as 16 hex digits>-…`).
fn snapshot_files(dir: &Path, group: u64) -> Vec<PathBuf> {
    let prefix = format!("g{group:016x}-");
    files(&dir.join("snap"))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".snap")
        })
        .collect()
}

/// The groups named by the records of a segment file
/// (`len u32 | crc u32 | kind u8 | group u64 | body`, after a 17-byte header).
fn groups_in_segment(path: &Path) -> BTreeSet<u64> {
    let raw = fs::read(path).unwrap();
    let mut groups = BTreeSet::new();
    let mut off = 17;
    while off + 8 + 9 <= raw.len() {
        let len = u32::from_le_bytes(raw[off..off + 4].try_into().unwrap()) as usize;
        groups.insert(u64::from_le_bytes(
            raw[off + 9..off + 17].try_into().unwrap(),
        ));
        off += 8 + len;
    }
    groups
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for ent in fs::read_dir(from).unwrap() {
        let ent = ent.unwrap();
        let target = to.join(ent.file_name());
        if ent.file_type().unwrap().is_dir() {
            copy_dir(&ent.path(), &target);
        } else {
            fs::copy(ent.path(), target).unwrap();
        }
    }
}

/// Three groups with entries and hard states; group 2 also has a snapshot.
fn three_groups(e: &mut LogEngine) {
    for g in 1..=3 {
        e.append(g, &ents(1..=5, 1)).unwrap();
        e.set_hard_state(g, hs(1, Some(g), 5)).unwrap();
    }
    e.compact(2, &snap(3, 1, "image of 2")).unwrap();
    e.sync().unwrap();
}

#[test]
fn a_dropped_group_is_not_recovered_and_the_others_are_intact() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = open(dir.path());
        three_groups(&mut e);
        e.drop_group(2).unwrap();
        assert_eq!(e.groups().collect::<Vec<_>>(), vec![1, 3]);
        e.sync().unwrap();
    }
    for _ in 0..2 {
        // Twice: the second open replays what the first one left.
        let (e, rec) = open(dir.path());
        assert_eq!(rec.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(e.groups().collect::<Vec<_>>(), vec![1, 3]);
        for g in [1, 3] {
            assert_eq!(
                indexes(&rec[&g]),
                (1..=5).map(|i| (i, 1)).collect::<Vec<_>>()
            );
            assert_eq!(rec[&g].hard_state, hs(1, Some(g), 5));
            assert!(rec[&g].snapshot.is_none());
        }
        assert!(snapshot_files(dir.path(), 2).is_empty());
    }
}

#[test]
fn a_drop_is_buffered_until_sync_and_a_crash_before_it_keeps_the_group_whole() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = open(dir.path());
        three_groups(&mut e);
        e.drop_group(2).unwrap();
        assert!(
            !e.groups().any(|g| g == 2),
            "gone from the engine's view at once"
        );
        assert_eq!(
            snapshot_files(dir.path(), 2).len(),
            1,
            "the snapshot file stays until the drop is durable"
        );
        // dropped without sync: a crash before the group commit
    }
    {
        let (mut e, rec) = open(dir.path());
        let r = &rec[&2];
        assert_eq!(snapshot_index(r), Some(3));
        assert_eq!(&r.snapshot.as_ref().unwrap().data[..], b"image of 2");
        assert_eq!(indexes(r), vec![(4, 1), (5, 1)]);
        assert_eq!(r.hard_state, hs(1, Some(2), 5));

        e.drop_group(2).unwrap();
        e.sync().unwrap();
        assert!(
            snapshot_files(dir.path(), 2).is_empty(),
            "deleted once sync returns"
        );
    }
    let (_, rec) = open(dir.path());
    assert!(!rec.contains_key(&2));
}

#[test]
fn dropping_a_group_the_engine_does_not_hold_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, _) = open(dir.path());
    three_groups(&mut e);
    let records = e.stats().records;
    e.drop_group(99).unwrap();
    e.sync().unwrap();
    assert_eq!(e.stats().records, records, "nothing written for group 99");

    e.drop_group(1).unwrap();
    e.drop_group(1).unwrap();
    e.sync().unwrap();
    assert_eq!(
        e.stats().records,
        records + 1,
        "the second drop of group 1 wrote nothing"
    );
    drop(e);
    let (_, rec) = open(dir.path());
    assert_eq!(rec.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
}

/// When the old incarnation's drop and the new incarnation's first writes become
/// durable: together, in consecutive syncs, or across a restart.
#[derive(Clone, Copy, Debug)]
enum Between {
    Nothing,
    Sync,
    Reopen,
}

#[test]
fn a_group_added_back_after_a_drop_recovers_only_the_new_incarnation() {
    for between in [Between::Nothing, Between::Sync, Between::Reopen] {
        let dir = tempfile::tempdir().unwrap();
        let (mut e, _) = open(dir.path());
        // The old incarnation: entries 1..=8 in term 1, a snapshot at 5, a vote.
        e.append(1, &ents(1..=8, 1)).unwrap();
        e.set_hard_state(1, hs(1, Some(1), 8)).unwrap();
        e.compact(1, &snap(5, 1, "old image")).unwrap();
        e.append(2, &ents(1..=3, 1)).unwrap();
        e.sync().unwrap();

        e.drop_group(1).unwrap();
        match between {
            Between::Nothing => {}
            Between::Sync => e.sync().unwrap(),
            Between::Reopen => {
                e.sync().unwrap();
                drop(e);
                let (e2, rec) = open(dir.path());
                assert!(!rec.contains_key(&1), "{between:?}");
                e = e2;
            }
        }
        // The new incarnation starts from an empty log: its first entry is index 1.
        e.append(1, &ents(1..=2, 4)).unwrap();
        e.set_hard_state(1, hs(4, None, 1)).unwrap();
        e.sync().unwrap();
        drop(e);

        let (_, rec) = open(dir.path());
        let r = &rec[&1];
        assert_eq!(indexes(r), vec![(1, 4), (2, 4)], "{between:?}");
        assert_eq!(r.hard_state, hs(4, None, 1), "{between:?}");
        assert!(r.snapshot.is_none(), "{between:?}");
        assert_eq!(indexes(&rec[&2]), vec![(1, 1), (2, 1), (3, 1)]);
        assert!(
            snapshot_files(dir.path(), 1).is_empty(),
            "{between:?}: the old incarnation's snapshot is deleted"
        );
    }
}

/// A replica that moves away and back may be sent the very snapshot it held before:
/// the same file name. Deleting the old incarnation's file must not delete the new
/// incarnation's.
#[test]
fn a_new_incarnation_may_install_a_snapshot_of_the_same_name_as_the_dropped_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut e, _) = open(dir.path());
        e.install_snapshot(1, &snap(50, 3, "image@50")).unwrap();
        e.sync().unwrap();
        e.drop_group(1).unwrap();
        e.install_snapshot(1, &snap(50, 3, "image@50")).unwrap();
        e.append(1, &[ent(51, 3, "after")]).unwrap();
        e.sync().unwrap();
        assert_eq!(snapshot_files(dir.path(), 1).len(), 1);
    }
    let (_, rec) = open(dir.path());
    assert_eq!(snapshot_index(&rec[&1]), Some(50));
    assert_eq!(indexes(&rec[&1]), vec![(51, 3)]);
}

const PAYLOAD: &str = "0123456789abcdef0123456789abcdef";

fn small_segments() -> Options {
    Options {
        fsync: FsyncPolicy::Always,
        segment_bytes_max: 4096,
        ..Options::default()
    }
}

/// Group 2 writes one entry and its hard state per sync, for each index in `rounds`;
/// with `compact`, it snapshots ten entries behind every fiftieth index.
fn group_2_writes(e: &mut LogEngine, rounds: std::ops::RangeInclusive<u64>, compact: bool) {
    for i in rounds {
        e.append(2, &[ent(i, 1, PAYLOAD)]).unwrap();
        e.set_hard_state(2, hs(1, Some(2), i)).unwrap();
        e.sync().unwrap();
        if compact && i % 50 == 0 {
            e.compact(2, &snap(i - 10, 1, "image of 2")).unwrap();
            e.sync().unwrap();
        }
    }
}

/// Group 1 writes entries 1..=20 (with a snapshot at 10 if `snapshot_1`) and falls
/// silent, as a replica moved away does; group 2 then writes 300 entries. Group 1's
/// entries pin the oldest segment, so the log grows. Returns the engine and its
/// number of segments.
fn group_1_pins_the_log(dir: &Path, snapshot_1: bool, compact_2: bool) -> (LogEngine, usize) {
    let (mut e, _) = LogEngine::open(dir, small_segments()).unwrap();
    e.append(1, &(1..=20).map(|i| ent(i, 1, PAYLOAD)).collect::<Vec<_>>())
        .unwrap();
    if snapshot_1 {
        e.compact(1, &snap(10, 1, "image of 1")).unwrap();
    }
    e.sync().unwrap();
    group_2_writes(&mut e, 1..=300, compact_2);
    let segments = e.stats().segments;
    assert!(
        segments >= 8,
        "group 1 holds back reclamation while it lives: {segments} segments"
    );
    (e, segments)
}

#[test]
fn segments_held_only_by_a_dropped_group_are_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut e, pinned) = group_1_pins_the_log(dir.path(), true, true);
    e.drop_group(1).unwrap();
    e.sync().unwrap();
    assert!(snapshot_files(dir.path(), 1).is_empty());
    group_2_writes(&mut e, 301..=400, true);
    assert!(
        e.stats().segments <= 4,
        "segments were not reclaimed after the drop: {} (before: {pinned})",
        e.stats().segments
    );
    // Reclaimed segments took group 1's records with them, and no checkpoint since
    // the drop mentions it.
    for seg in files(&dir.path().join("wal")) {
        assert!(
            !groups_in_segment(&seg).contains(&1),
            "{} still holds a record of group 1",
            seg.display()
        );
    }
    drop(e);

    let (_, rec) = LogEngine::open(dir.path(), small_segments()).unwrap();
    assert_eq!(rec.keys().copied().collect::<Vec<_>>(), vec![2]);
    assert_eq!(snapshot_index(&rec[&2]), Some(390));
    assert_eq!(
        indexes(&rec[&2]),
        (391..=400).map(|i| (i, 1)).collect::<Vec<_>>()
    );
    assert_eq!(rec[&2].hard_state, hs(1, Some(2), 400));
}

#[test]
fn the_sync_that_makes_a_drop_durable_reclaims_the_segments_it_held() {
    let dir = tempfile::tempdir().unwrap();
    // No snapshot of group 1: no snapshot file to delete either, only segments.
    let (mut e, pinned) = group_1_pins_the_log(dir.path(), false, true);
    e.drop_group(1).unwrap();
    assert_eq!(
        e.stats().segments,
        pinned,
        "nothing reclaimed before the sync"
    );
    e.sync().unwrap();
    assert!(
        e.stats().segments <= 3,
        "no further compaction or rotation needed: {} segments (before: {pinned})",
        e.stats().segments
    );
}

/// Recovery forgets a dropped group's hold on segments as the running engine did,
/// including on the segment that holds the drop record itself.
#[test]
fn a_drop_recovered_after_a_restart_still_releases_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Group 2 does not compact: nothing is reclaimable before the restart.
        let (mut e, _) = group_1_pins_the_log(dir.path(), false, false);
        // A last write of group 1 in the segment that then records its drop.
        e.append(1, &[ent(21, 1, "late")]).unwrap();
        e.drop_group(1).unwrap();
        e.sync().unwrap();
    }
    let (mut e, rec) = LogEngine::open(dir.path(), small_segments()).unwrap();
    assert_eq!(rec.keys().copied().collect::<Vec<_>>(), vec![2]);
    e.compact(2, &snap(300, 1, "image of 2")).unwrap();
    e.sync().unwrap();
    assert_eq!(
        e.stats().segments,
        1,
        "every segment but the active one is covered by group 2's snapshot"
    );
}

/// A crash while the round holding the drop is being written cuts the last segment
/// anywhere in the new records (a torn tail). Whatever the cut, the dropped group is
/// recovered either exactly as it was or not at all, and the other group's entry,
/// written after the drop in the same round, is never recovered without the drop.
#[test]
fn a_crash_mid_write_recovers_the_dropped_group_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let before = tempfile::tempdir().unwrap();
    let (mut e, _) = open(dir.path());
    three_groups(&mut e);
    // The data directory as the crash finds it: the snapshot file is only deleted after
    // the round is durable, so it is still there.
    copy_dir(dir.path(), before.path());
    let active = files(&dir.path().join("wal")).pop().unwrap();
    let synced_len = fs::metadata(&active).unwrap().len() as usize;
    e.drop_group(2).unwrap();
    e.append(3, &[ent(6, 1, "after the drop")]).unwrap();
    e.sync().unwrap();
    drop(e);
    let written = fs::read(&active).unwrap();
    let name = active.file_name().unwrap();

    let mut outcomes = BTreeSet::new();
    for cut in synced_len..=written.len() {
        let crashed = tempfile::tempdir().unwrap();
        copy_dir(before.path(), crashed.path());
        fs::write(crashed.path().join("wal").join(name), &written[..cut]).unwrap();
        let (_, rec) = open(crashed.path());
        let dropped = match rec.get(&2) {
            None => true,
            Some(r) => {
                assert_eq!(snapshot_index(r), Some(3), "cut at {cut}");
                assert_eq!(indexes(r), vec![(4, 1), (5, 1)], "cut at {cut}");
                assert_eq!(r.hard_state, hs(1, Some(2), 5), "cut at {cut}");
                false
            }
        };
        let later_entry = indexes(&rec[&3]).len() == 6;
        assert!(
            dropped || !later_entry,
            "cut at {cut}: a later write survived without the drop"
        );
        assert_eq!(indexes(&rec[&1]).len(), 5, "cut at {cut}");
        outcomes.insert((dropped, later_entry));
    }
    assert_eq!(
        outcomes,
        BTreeSet::from([(false, false), (true, false), (true, true)]),
        "every crash point was exercised"
    );
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
        group: u64,
        from_back: u64,
        count: u64,
    },
    HardState {
        group: u64,
        commit: u64,
    },
    Compact {
        group: u64,
        keep: u64,
    },
    Drop {
        group: u64,
    },
    Sync,
    Reopen,
}

fn arb_op() -> impl Strategy<Value = Op> {
    let group = 1u64..=3;
    prop_oneof![
        4 => (group.clone(), 0u64..4, 1u64..5)
            .prop_map(|(group, from_back, count)| Op::Append { group, from_back, count }),
        1 => (group.clone(), 0u64..100).prop_map(|(group, commit)| Op::HardState { group, commit }),
        1 => (group.clone(), 0u64..4).prop_map(|(group, keep)| Op::Compact { group, keep }),
        1 => group.prop_map(|group| Op::Drop { group }),
        3 => Just(Op::Sync),
        1 => Just(Op::Reopen),
    ]
}

fn recovered_models(rec: &BTreeMap<u64, Recovered>) -> BTreeMap<u64, Model> {
    rec.iter()
        .map(|(&g, r)| {
            let model = Model {
                base: snapshot_index(r).unwrap_or(0),
                entries: indexes(r),
                hs: (r.hard_state != HardState::default()).then_some(r.hard_state),
            };
            (g, model)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever was synced is exactly what a reopen recovers, against a naive model in
    /// which a drop removes the group and a later write starts it again from empty.
    /// Tiny segments force rotation and reclamation along the way.
    #[test]
    fn recovery_with_drops_matches_a_naive_model(ops in proptest::collection::vec(arb_op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options { fsync: FsyncPolicy::Never, segment_bytes_max: 512, ..Options::default() };
        let (mut e, _) = LogEngine::open(dir.path(), opts.clone()).unwrap();
        let mut live: BTreeMap<u64, Model> = BTreeMap::new();
        let mut durable = live.clone();
        let mut term = 1;
        for op in ops {
            match op {
                Op::Append { group, from_back, count } => {
                    let m = live.entry(group).or_default();
                    let last = m.entries.last().map(|x| x.0).unwrap_or(m.base);
                    let start = (last + 1).saturating_sub(from_back).max(m.base + 1);
                    term += 1;
                    let new: Vec<Entry> = (start..start + count).map(|i| ent(i, term, "v")).collect();
                    e.append(group, &new).unwrap();
                    m.entries.retain(|x| x.0 < start);
                    m.entries.extend(new.iter().map(|x| (x.index.0, x.term.0)));
                }
                Op::HardState { group, commit } => {
                    let h = hs(term, None, commit);
                    e.set_hard_state(group, h).unwrap();
                    live.entry(group).or_default().hs = Some(h);
                }
                Op::Compact { group, keep } => {
                    if let Some(m) = live.get_mut(&group) {
                        let last = m.entries.last().map(|x| x.0).unwrap_or(m.base);
                        let to = last.saturating_sub(keep);
                        if to > m.base {
                            let t = m.entries.iter().find(|x| x.0 == to).map(|x| x.1).unwrap();
                            e.compact(group, &snap(to, t, "img")).unwrap();
                            m.base = to;
                            m.entries.retain(|x| x.0 > to);
                        }
                    }
                }
                Op::Drop { group } => {
                    e.drop_group(group).unwrap();
                    live.remove(&group);
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
                    prop_assert_eq!(recovered_models(&rec), durable.clone());
                }
            }
            prop_assert_eq!(
                e.groups().collect::<Vec<_>>(),
                live.keys().copied().collect::<Vec<_>>()
            );
        }
        e.sync().unwrap();
        drop(e);
        let (_, rec) = LogEngine::open(dir.path(), opts).unwrap();
        prop_assert_eq!(recovered_models(&rec), live.clone());
        // No snapshot file outlives its group.
        for ent in fs::read_dir(dir.path().join("snap")).unwrap() {
            let name = ent.unwrap().file_name().to_string_lossy().into_owned();
            let group = u64::from_str_radix(&name[1..17], 16).unwrap();
            prop_assert!(live.get(&group).is_some_and(|m| m.base > 0), "stray snapshot {}", name);
        }
    }
}
