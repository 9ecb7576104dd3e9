//! Snapshots written off the log's thread (`LogEngine::snapshot_writer`), specified by
//! what a reopen finds: a recorded one replaces the entries it covers; one written but
//! never recorded changes nothing (the log still has every entry, and the stray file
//! is removed); one whose group went away is deleted, never recorded.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use consensus::{Entry, LogIndex, Membership, Payload, Recovered, Snapshot, SnapshotMeta, Term};
use storage::{LogEngine, Options};

fn ents(indexes: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    indexes
        .map(|i| Entry {
            term: Term(1),
            index: LogIndex(i),
            payload: Payload::Command(Bytes::from(format!("v{i}"))),
        })
        .collect()
}

fn snap(index: u64, data: &str) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(1),
            membership: Membership::new([1, 2, 3]),
        },
        data: Bytes::copy_from_slice(data.as_bytes()),
    }
}

fn open(dir: &Path) -> (LogEngine, BTreeMap<u64, Recovered>) {
    LogEngine::open(dir, Options::default()).expect("opens")
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir.join("snap"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn first_index(r: &Recovered) -> Option<u64> {
    r.entries.first().map(|e| e.index.0)
}

#[test]
fn a_recorded_snapshot_replaces_the_entries_it_covers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.append(7, &ents(1..=20)).unwrap();
    log.sync().unwrap();
    let file = log
        .snapshot_writer()
        .write(7, &snap(10, "state@10"))
        .unwrap();
    // Written on another thread in the node; the log keeps going meanwhile.
    log.append(7, &ents(21..=25)).unwrap();
    log.compact_written(7, file).unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, rec) = open(dir.path());
    let r = &rec[&7];
    let s = r.snapshot.as_ref().expect("the recorded snapshot");
    assert_eq!((s.meta.index.0, &s.data[..]), (10, &b"state@10"[..]));
    assert_eq!(first_index(r), Some(11));
    assert_eq!(r.entries.last().unwrap().index.0, 25);
}

#[test]
fn a_snapshot_written_but_never_recorded_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.append(7, &ents(1..=20)).unwrap();
    log.sync().unwrap();
    // A crash after the file is written and before the compaction is recorded.
    let _file = log
        .snapshot_writer()
        .write(7, &snap(10, "state@10"))
        .unwrap();
    assert_eq!(snapshot_files(dir.path()).len(), 1);
    drop(log);
    let (_, rec) = open(dir.path());
    let r = &rec[&7];
    assert!(r.snapshot.is_none(), "nothing recorded it");
    assert_eq!(first_index(r), Some(1), "every entry is still there");
    assert!(
        snapshot_files(dir.path()).is_empty(),
        "the stray file is removed"
    );
}

#[test]
fn a_snapshot_of_a_dropped_group_is_deleted_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.append(7, &ents(1..=20)).unwrap();
    log.sync().unwrap();
    let file = log
        .snapshot_writer()
        .write(7, &snap(10, "old life"))
        .unwrap();
    log.drop_group(7).unwrap();
    log.sync().unwrap();
    log.compact_written(7, file).unwrap();
    log.sync().unwrap();
    assert!(snapshot_files(dir.path()).is_empty());
    drop(log);
    let (_, rec) = open(dir.path());
    assert!(!rec.contains_key(&7));
}

#[test]
fn a_snapshot_overtaken_by_a_newer_one_is_deleted_and_the_newer_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.append(7, &ents(1..=20)).unwrap();
    log.sync().unwrap();
    let old = log
        .snapshot_writer()
        .write(7, &snap(10, "state@10"))
        .unwrap();
    // A snapshot from the leader lands first and covers more.
    log.install_snapshot(7, &snap(15, "state@15")).unwrap();
    log.sync().unwrap();
    log.compact_written(7, old).unwrap();
    log.sync().unwrap();
    assert_eq!(snapshot_files(dir.path()).len(), 1);
    drop(log);
    let (_, rec) = open(dir.path());
    let s = rec[&7].snapshot.as_ref().unwrap();
    assert_eq!((s.meta.index.0, &s.data[..]), (15, &b"state@15"[..]));
}

#[test]
fn a_discarded_snapshot_is_deleted_unless_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = open(dir.path());
    log.append(7, &ents(1..=20)).unwrap();
    log.sync().unwrap();
    let file = log
        .snapshot_writer()
        .write(7, &snap(10, "state@10"))
        .unwrap();
    log.discard_written(file);
    assert!(snapshot_files(dir.path()).is_empty());
    // The same snapshot recorded, then a second write of it discarded: kept.
    let file = log
        .snapshot_writer()
        .write(7, &snap(10, "state@10"))
        .unwrap();
    log.compact_written(7, file).unwrap();
    log.sync().unwrap();
    let again = log
        .snapshot_writer()
        .write(7, &snap(10, "state@10"))
        .unwrap();
    log.discard_written(again);
    assert_eq!(snapshot_files(dir.path()).len(), 1);
}
