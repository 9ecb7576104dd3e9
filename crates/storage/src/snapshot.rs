//! Snapshot files, written atomically: a temporary file is written and fsynced, renamed
//! into place, and the directory fsynced, so a crash leaves either the old snapshot or
//! the complete new one — never a torn one under the final name.
//!
//! Format: `"HAKVSNAP" | version u8 | group u64 | meta | data (u32-prefixed) | crc32c`.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use consensus::{Snapshot, SnapshotMeta};

use crate::StorageError;
use consensus::codec::{get_snapshot_meta, put_snapshot_meta, Reader};

const MAGIC: &[u8; 8] = b"HAKVSNAP";
const VERSION: u8 = 1;

/// The file name of a group's snapshot at `meta.index`.
pub(crate) fn file_name(group: u64, meta: &SnapshotMeta) -> String {
    format!(
        "g{group:016x}-i{:020}-t{:020}.snap",
        meta.index.0, meta.term.0
    )
}

/// Writes `snap` for `group` into `dir` atomically; returns its path.
pub(crate) fn write(
    dir: &Path,
    group: u64,
    snap: &Snapshot,
    sync: bool,
) -> Result<PathBuf, StorageError> {
    // The header is small; the data (possibly many megabytes) is written from where it
    // is, not copied, and the checksum covers both.
    let mut header = Vec::with_capacity(64);
    header.extend_from_slice(MAGIC);
    header.push(VERSION);
    header.extend_from_slice(&group.to_le_bytes());
    put_snapshot_meta(&mut header, &snap.meta);
    header.extend_from_slice(&(snap.data.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header), &snap.data);

    let name = file_name(group, &snap.meta);
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(&name);
    let io = |what: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |e| StorageError::io(what, &p, e)
    };
    let mut f = File::create(&tmp).map_err(io("create snapshot", &tmp))?;
    f.write_all(&header)
        .and_then(|()| f.write_all(&snap.data))
        .and_then(|()| f.write_all(&crc.to_le_bytes()))
        .map_err(io("write snapshot", &tmp))?;
    if sync {
        f.sync_all().map_err(io("fsync snapshot", &tmp))?;
    }
    drop(f);
    fs::rename(&tmp, &path).map_err(io("rename snapshot", &path))?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(path)
}

/// Reads and verifies a snapshot file; returns its group and content.
pub(crate) fn read(path: &Path) -> Result<(u64, Snapshot), StorageError> {
    let raw = fs::read(path).map_err(|e| StorageError::io("read snapshot", path, e))?;
    let corrupt = |why: &str| StorageError::Corrupt {
        file: path.to_path_buf(),
        offset: 0,
        reason: why.to_string(),
    };
    if raw.len() < MAGIC.len() + 1 + 8 + 4 || &raw[..8] != MAGIC {
        return Err(corrupt("not a snapshot file"));
    }
    let (body, crc) = raw.split_at(raw.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(corrupt("checksum mismatch"));
    }
    if body[8] != VERSION {
        return Err(corrupt("unsupported snapshot version"));
    }
    let mut r = Reader::new(Bytes::copy_from_slice(&body[9..]));
    let group = r.u64().map_err(|e| corrupt(e.0))?;
    let meta = get_snapshot_meta(&mut r).map_err(|e| corrupt(e.0))?;
    let data = r.bytes().map_err(|e| corrupt(e.0))?;
    if !r.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok((group, Snapshot { meta, data }))
}

/// fsyncs a directory so that a rename or a new file in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}
