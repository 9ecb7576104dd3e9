//! A full disk (ENOSPC) is an error, never a panic, and never a damaged log: after a
//! failed write the engine refuses further work, and reopening it (once there is space
//! again) recovers exactly what `sync` acknowledged before the failure.
//!
//! Two honest sources of ENOSPC:
//! - `/dev/full` (no privileges needed): a snapshot file is created with a plain
//!   `create` (following symlinks) at a predictable temporary name, so a symlink there
//!   makes the snapshot write fail with ENOSPC. WAL segments cannot be redirected the
//!   same way: they are opened with `create_new` (O_EXCL), which refuses an existing
//!   path, symlink or not.
//! - a small tmpfs (needs root; skipped with a message otherwise): the WAL itself fills
//!   the file system, part-way through a record or while starting a new segment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use consensus::{
    Entry, HardState, LogIndex, Membership, Payload, Recovered, Snapshot, SnapshotMeta, Term,
};
use storage::{LogEngine, Options, StorageError};

const GROUP: u64 = 7;

fn ent(index: u64, bytes: usize) -> Entry {
    // Content derived from the index, so a recovered entry can be checked byte for byte.
    let data: Vec<u8> = (0..bytes)
        .map(|k| (index as usize * 31 + k) as u8)
        .collect();
    Entry {
        term: Term(1),
        index: LogIndex(index),
        payload: Payload::Command(Bytes::from(data)),
    }
}

fn hard_state(commit: u64) -> HardState {
    HardState {
        term: Term(1),
        vote: Some(1),
        commit: LogIndex(commit),
    }
}

fn snapshot(index: u64) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index: LogIndex(index),
            term: Term(1),
            membership: Membership::new([1, 2, 3]),
        },
        data: Bytes::from(vec![0xAB; 4096]),
    }
}

/// The temporary name the engine writes a snapshot under before renaming it.
fn snapshot_tmp_name(group: u64, index: u64, term: u64) -> String {
    format!("g{group:016x}-i{index:020}-t{term:020}.snap.tmp")
}

fn open(dir: &Path, opts: Options) -> (LogEngine, BTreeMap<u64, Recovered>) {
    match LogEngine::open(dir, opts) {
        Ok(x) => x,
        Err(e) => panic!("reopening {} failed: {e}", dir.display()),
    }
}

fn expect_refused(r: Result<(), StorageError>, what: &str) {
    match r {
        Err(StorageError::Failed(why)) => {
            assert!(
                why.contains("No space left on device"),
                "{what}: the refusal names the original failure: {why}"
            );
        }
        other => panic!("{what} after a failed write must be refused, got {other:?}"),
    }
}

/// Writes entries 1..=10 durably and 11..=12 without syncing, then takes a snapshot
/// (a compaction or a leader's snapshot) whose file lands on /dev/full.
fn snapshot_write_hits_a_full_disk(install: bool) {
    if !Path::new("/dev/full").exists() {
        println!("skipped: no /dev/full on this system");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let acked: Vec<Entry> = (1..=10).map(|i| ent(i, 100)).collect();
    {
        let (mut log, _) = open(dir.path(), Options::default());
        log.append(GROUP, &acked).unwrap();
        log.set_hard_state(GROUP, hard_state(10)).unwrap();
        log.sync().unwrap();
        log.append(GROUP, &[ent(11, 100), ent(12, 100)]).unwrap();
        log.set_hard_state(GROUP, hard_state(12)).unwrap();

        let index = if install { 20 } else { 5 };
        let tmp = dir
            .path()
            .join("snap")
            .join(snapshot_tmp_name(GROUP, index, 1));
        std::os::unix::fs::symlink("/dev/full", &tmp).unwrap();
        let r = if install {
            log.install_snapshot(GROUP, &snapshot(index))
        } else {
            log.compact(GROUP, &snapshot(index))
        };
        match &r {
            Err(e) if e.is_disk_full() => println!("snapshot write failed as it should: {e}"),
            other => panic!(
                "a snapshot written to a full disk must fail with ENOSPC, got {other:?} \
                 (did the snapshot file naming change? expected {})",
                tmp.display()
            ),
        }
        expect_refused(log.append(GROUP, &[ent(13, 100)]), "append");
        expect_refused(log.set_hard_state(GROUP, hard_state(13)), "set_hard_state");
        expect_refused(log.sync(), "sync");
        expect_refused(log.compact(GROUP, &snapshot(3)), "compact");
        expect_refused(log.drop_group(GROUP), "drop_group");
    }
    let (_, rec) = open(dir.path(), Options::default());
    let r = &rec[&GROUP];
    assert!(r.snapshot.is_none(), "the failed snapshot was not recorded");
    assert_eq!(r.hard_state, hard_state(10), "the last synced hard state");
    assert_eq!(r.entries, acked, "exactly the acknowledged entries");
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path().join("snap"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        leftovers.is_empty(),
        "leftover snapshot files: {leftovers:?}"
    );
    assert!(
        Path::new("/dev/full").exists(),
        "cleanup removed the link, not its target"
    );
}

#[test]
fn a_compaction_snapshot_on_a_full_disk_fails_cleanly_and_the_log_reopens_intact() {
    snapshot_write_hits_a_full_disk(false);
}

#[test]
fn a_leaders_snapshot_on_a_full_disk_fails_cleanly_and_the_log_reopens_intact() {
    snapshot_write_hits_a_full_disk(true);
}

/// A tmpfs mounted for one test, unmounted when dropped (even if the test fails).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// None (after saying why) unless running as root with a working `mount`.
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs {
                path: path.to_path_buf(),
            }),
            Ok(o) => {
                let _ = std::fs::remove_dir(path);
                println!(
                    "skipped: needs root for tmpfs (mount: {})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                let _ = std::fs::remove_dir(path);
                println!("skipped: needs root for tmpfs (cannot run mount: {e})");
                None
            }
        }
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "remount {} with size {size}",
            self.path.display()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// What filling the disk left behind.
struct Filled {
    /// Entries whose sync returned Ok.
    acked: Vec<Entry>,
    /// The batch whose sync failed.
    failed: Vec<Entry>,
    /// Whether that batch was nonetheless written and fsynced before the failure
    /// (which then came from starting the next segment), by the engine's counters.
    failed_batch_durable: bool,
    error: StorageError,
}

/// Fills a 1 MiB tmpfs through the WAL, one record (a batch of entries) per sync.
fn fill(dir: &Path, opts: Options) -> Filled {
    let (mut log, _) = open(dir, opts);
    log.set_hard_state(GROUP, hard_state(0)).unwrap();
    log.sync().unwrap();
    let mut acked = Vec::new();
    let mut next = 1;
    for batch in 0..10_000u64 {
        // Batches of 1-3 entries of varying size: failures land at varying offsets.
        let n = 1 + batch % 3;
        let entries: Vec<Entry> = (next..next + n)
            .map(|i| ent(i, 3_000 + (i as usize * 977) % 5_000))
            .collect();
        log.append(GROUP, &entries).unwrap();
        let fsyncs = log.stats().fsyncs;
        match log.sync() {
            Ok(()) => {
                next += n;
                acked.extend(entries);
            }
            Err(e) => {
                assert!(
                    e.is_disk_full(),
                    "the failure is reported as ENOSPC (is_disk_full): {e:?}"
                );
                expect_refused(log.append(GROUP, &[ent(next + n, 10)]), "append");
                let failed_batch_durable = log.stats().fsyncs > fsyncs;
                expect_refused(log.append(GROUP, &[ent(next + n, 10)]), "append");
                expect_refused(log.sync(), "sync");
                return Filled {
                    acked,
                    failed: entries,
                    failed_batch_durable,
                    error: e,
                };
            }
        }
    }
    panic!("a 1 MiB file system never filled up");
}

fn wal_on_a_full_tmpfs(tag: &str, opts: Options) {
    let mnt = std::env::temp_dir().join(format!("hakv-diskfull-{tag}-{}", std::process::id()));
    let Some(fs) = Tmpfs::mount(&mnt, "1m") else {
        return;
    };
    let dir = fs.path.join("data");
    let filled = fill(&dir, opts.clone());
    println!(
        "{tag}: {} entries acknowledged, then: {} (failed batch durable: {})",
        filled.acked.len(),
        filled.error,
        filled.failed_batch_durable
    );
    assert!(
        filled.acked.len() > 20,
        "the log held some data before filling up"
    );

    // Still full: reopening may fail (it starts a new segment), but only with an error.
    match LogEngine::open(&dir, opts.clone()) {
        Ok((_, rec)) => {
            println!("{tag}: reopened on the still-full disk");
            check_recovered(tag, &rec, &filled);
        }
        Err(e) => {
            println!("{tag}: reopening on the still-full disk failed: {e}");
            assert!(e.is_disk_full(), "{tag}: reopen fails with ENOSPC: {e:?}");
        }
    }

    // Space freed: the log reopens with exactly what was acknowledged, and works.
    fs.resize("8m");
    let (mut log, rec) = open(&dir, opts.clone());
    check_recovered(tag, &rec, &filled);
    let last = rec[&GROUP].entries.last().map_or(0, |e| e.index.0);
    log.append(GROUP, &[ent(last + 1, 100)]).unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, rec) = open(&dir, opts);
    assert_eq!(
        rec[&GROUP].entries.last().map(|e| e.index.0),
        Some(last + 1),
        "{tag}: writes work again once there is space"
    );
}

/// The recovered log is exactly the acknowledged entries — plus the failed batch only
/// if it was written and fsynced before the failure (which then came from starting
/// the next segment): durable, though its sync reported an error.
fn check_recovered(tag: &str, rec: &BTreeMap<u64, Recovered>, filled: &Filled) {
    let r = &rec[&GROUP];
    assert!(r.snapshot.is_none());
    assert_eq!(r.hard_state, hard_state(0));
    let mut expected = filled.acked.clone();
    if filled.failed_batch_durable {
        expected.extend(filled.failed.iter().cloned());
    }
    assert!(
        r.entries == expected,
        "{tag}: recovered {} entries (last {:?}), expected {} (last {:?}); failed batch {:?} \
         (durable: {}); error: {}",
        r.entries.len(),
        r.entries.last().map(|e| e.index.0),
        expected.len(),
        expected.last().map(|e| e.index.0),
        filled.failed.iter().map(|e| e.index.0).collect::<Vec<_>>(),
        filled.failed_batch_durable,
        filled.error,
    );
}

#[test]
fn a_wal_write_on_a_full_disk_fails_cleanly_and_the_log_reopens_with_exactly_the_acknowledged_entries(
) {
    wal_on_a_full_tmpfs("one-segment", Options::default());
}

/// Fills the rest of a file system with a filler file; returns its path.
fn fill_with_filler(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    path
}

#[test]
fn a_full_disk_while_starting_a_new_segment_fails_cleanly_and_loses_nothing_acknowledged() {
    let tag = "new-segment";
    let mnt = std::env::temp_dir().join(format!("hakv-diskfull-{tag}-{}", std::process::id()));
    let Some(fs) = Tmpfs::mount(&mnt, "1m") else {
        return;
    };
    let dir = fs.path.join("data");
    // A new segment after every sync of an entry, so each such sync ends by creating
    // one. (Not below a segment's header and checkpoint: see the report on rotate.)
    // Plain segments: a zero-filled one made before the disk filled would take the
    // next writes (its space is already reserved), and creating a file is what this
    // test is about.
    let opts = Options {
        segment_bytes_max: 1024,
        preallocate: false,
        ..Options::default()
    };
    let (mut log, _) = open(&dir, opts.clone());
    log.set_hard_state(GROUP, hard_state(0)).unwrap();
    log.sync().unwrap();
    let acked: Vec<Entry> = (1..=5).map(|i| ent(i, 2_000)).collect();
    for e in &acked {
        log.append(GROUP, std::slice::from_ref(e)).unwrap();
        log.sync().unwrap();
    }
    // Now the disk is full, but the active segment (a header and a checkpoint) has
    // room left in its last page: the next small record fits, its fsync succeeds, and
    // creating the next segment is what fails.
    let filler = fill_with_filler(&fs.path);
    let failed = vec![ent(6, 2_000)];
    log.append(GROUP, &failed).unwrap();
    let fsyncs = log.stats().fsyncs;
    let error = log.sync().expect_err("no space for a new segment");
    let failed_batch_durable = log.stats().fsyncs > fsyncs;
    println!("{tag}: {error} (the batch was written and fsynced first: {failed_batch_durable})");
    assert!(error.is_disk_full(), "{tag}: ENOSPC: {error:?}");
    assert!(
        matches!(error, StorageError::Io { what, .. } if what.contains("segment")),
        "{tag}: the failure came from starting the new segment: {error:?}"
    );
    assert!(failed_batch_durable, "{tag}: the record itself was written");
    expect_refused(log.append(GROUP, &[ent(7, 10)]), "append");
    expect_refused(log.sync(), "sync");
    drop(log);
    let filled = Filled {
        acked,
        failed,
        failed_batch_durable,
        error,
    };

    match LogEngine::open(&dir, opts.clone()) {
        Ok((_, rec)) => {
            println!("{tag}: reopened on the still-full disk");
            check_recovered(tag, &rec, &filled);
        }
        Err(e) => {
            println!("{tag}: reopening on the still-full disk failed: {e}");
            assert!(e.is_disk_full(), "{tag}: reopen fails with ENOSPC: {e:?}");
        }
    }
    // Free the space: the log holds the acknowledged entries and the durable batch.
    std::fs::remove_file(filler).unwrap();
    let (mut log, rec) = open(&dir, opts.clone());
    check_recovered(tag, &rec, &filled);
    log.append(GROUP, &[ent(7, 100)]).unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, rec) = open(&dir, opts);
    assert_eq!(rec[&GROUP].entries.len(), 7, "{tag}: writes work again");
}
