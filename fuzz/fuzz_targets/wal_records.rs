//! Recovery of the write-ahead log (`storage::LogEngine::open`) from arbitrary segment
//! files, as a crash, a bad disk or a hand-edited data directory leave them. The input
//! becomes one or two segment files (and optionally a snapshot file) in a fresh data
//! directory, and the real open path reads them: it must return `Ok` or an `Err`,
//! never panic, hang or allocate beyond the file sizes (libFuzzer's -rss_limit_mb and
//! -malloc_limit_mb catch that). When it opens, opening the same directory again must
//! recover exactly the same state: recovery is idempotent.
//!
//! Input: `flags u8 | [split u16] | [snap_len u16 | snapshot] | wal bytes`
//! (little-endian). Flags:
//! - bit 0: prepend a valid segment header to each segment (magic, version, number);
//! - bit 1: rewrite each record's CRC32C to match its bytes, so that the fuzzer gets
//!   past the checksums and reaches the record decoder;
//! - bit 2: `split` is present; the wal bytes are split there into two segments;
//! - bit 3: `snap_len` and a snapshot are present; it is written (its trailing CRC32C
//!   fixed if bit 1 is set) under the name of every snapshot the log's compaction
//!   and install records refer to, so that recovery reads it.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use storage::{FsyncPolicy, LogEngine, Options};

const HEADER_BYTES: usize = 8 + 1 + 8;
const RECORD_HEADER_BYTES: usize = 4 + 4;
const KIND_COMPACT: u8 = 3;
const KIND_INSTALL: u8 = 4;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.u8();
    let split = (flags & 4 != 0).then(|| input.u16());
    let snap = (flags & 8 != 0).then(|| {
        let n = input.u16();
        input.take(n).to_vec()
    });
    let wal = input.0;
    let parts: Vec<&[u8]> = match split {
        Some(at) => {
            let (a, b) = wal.split_at(at.min(wal.len()));
            vec![a, b]
        }
        None => vec![wal],
    };

    let dir = fresh_dir();
    let wal_dir = dir.join("wal");
    let snap_dir = dir.join("snap");
    fs::create_dir_all(&wal_dir).unwrap();
    fs::create_dir_all(&snap_dir).unwrap();
    let mut snapshot_names = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let seq = i as u64 + 1;
        let mut file = Vec::with_capacity(HEADER_BYTES + part.len());
        if flags & 1 != 0 {
            file.extend_from_slice(b"HAKVWAL\0");
            file.push(1);
            file.extend_from_slice(&seq.to_le_bytes());
        }
        file.extend_from_slice(part);
        walk_records(&mut file, flags & 2 != 0, &mut snapshot_names);
        fs::write(wal_dir.join(format!("{seq:020}.wal")), &file).unwrap();
    }
    if let Some(mut snap) = snap {
        if flags & 2 != 0 && snap.len() >= 4 {
            let body = snap.len() - 4;
            let crc = crc32c::crc32c(&snap[..body]);
            snap[body..].copy_from_slice(&crc.to_le_bytes());
        }
        for name in &snapshot_names {
            fs::write(snap_dir.join(name), &snap).unwrap();
        }
    }

    // The recovery path does not depend on the fsync policy; `Never` keeps the fuzzer
    // fast on a disk-backed temporary directory.
    let opts = Options {
        fsync: FsyncPolicy::Never,
        ..Options::default()
    };
    let Ok((engine, first)) = LogEngine::open(&dir, opts.clone()) else {
        return;
    };
    drop(engine);
    let (_engine, second) = LogEngine::open(&dir, opts)
        .unwrap_or_else(|e| panic!("a log that opened once fails to reopen: {e}"));
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "reopening recovered a different state"
    );
});

/// Walks the records of a segment file as the engine frames them
/// (`len u32 | crc32c u32 | kind u8 | group u64 | body`), from after the header:
/// optionally fixes each CRC, and notes the snapshot file named by each compaction or
/// install record (`kind | group | index u64 | term u64`).
fn walk_records(file: &mut [u8], fix_crc: bool, snapshots: &mut Vec<String>) {
    let mut off = HEADER_BYTES;
    while off + RECORD_HEADER_BYTES <= file.len() {
        let len = u32::from_le_bytes(file[off..off + 4].try_into().unwrap()) as usize;
        let body = off + RECORD_HEADER_BYTES;
        let Some(end) = body.checked_add(len).filter(|&end| end <= file.len()) else {
            break;
        };
        if fix_crc {
            let crc = crc32c::crc32c(&file[body..end]);
            file[off + 4..off + 8].copy_from_slice(&crc.to_le_bytes());
        }
        let rec = &file[body..end];
        if rec.len() >= 1 + 8 + 16 && (rec[0] == KIND_COMPACT || rec[0] == KIND_INSTALL) {
            let u64_at = |i: usize| u64::from_le_bytes(rec[i..i + 8].try_into().unwrap());
            let (group, index, term) = (u64_at(1), u64_at(9), u64_at(17));
            // The engine's snapshot file name (crates/storage/src/snapshot.rs).
            let name = format!("g{group:016x}-i{index:020}-t{term:020}.snap");
            if snapshots.len() < 8 && !snapshots.contains(&name) {
                snapshots.push(name);
            }
        }
        if len == 0 {
            break;
        }
        off = end;
    }
}

/// An empty data directory, the same one for every input of this process.
fn fresh_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR
        .get_or_init(|| std::env::temp_dir().join(format!("hakv-fuzz-wal-{}", std::process::id())));
    clear(dir);
    dir.clone()
}

fn clear(dir: &Path) {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot clear {}: {e}", dir.display()),
    }
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
