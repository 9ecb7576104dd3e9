//! hakv's durable log engine.
//!
//! One write-ahead log serves every replication group on a node, so that one fsync
//! makes the entries and hard states of all groups durable at once (**group commit**).
//!
//! ```text
//!  dir/
//!    wal/00000000000000000001.wal   segment: header, then records
//!    wal/00000000000000000002.wal   (each segment opens with a checkpoint of every group)
//!    wal/00000000000000000003.spare the next segment, zero-filled ahead on another thread
//!    snap/g…-i…-t….snap             snapshot files, written atomically
//!
//!  record = len u32 | crc32c u32 | kind u8 | group u64 | body        (crc covers kind..body)
//!  a zero-filled segment's records end where its zeros begin (no record has length 0)
//!  kinds: entries | hard state | compact (snapshot taken) | install (leader's snapshot)
//!         | drop (the node no longer holds the group)
//! ```
//!
//! Guarantees:
//! - after [`LogEngine::sync`] returns `Ok`, everything appended before it survives a
//!   crash (with [`FsyncPolicy::Always`], the default);
//! - recovery replays records in order and yields, per group, the last hard state, the
//!   latest snapshot and the entries after it — conflicting suffixes truncated exactly
//!   as they were written;
//! - a group forgotten with [`LogEngine::drop_group`] is, once the next sync returns,
//!   gone for good: not recovered, not in checkpoints, its snapshot deleted and its
//!   segments reclaimable; a crash before that sync recovers it whole. The same group
//!   written again later is a new incarnation, recovered from empty;
//! - a torn tail (a crash mid-write) is detected by length and CRC and cut off, also
//!   when zeros of a preallocated segment follow it;
//!   corruption anywhere else is reported ([`StorageError::Corrupt`]) and nothing is
//!   silently skipped;
//! - once a write or fsync fails, the engine refuses all further work
//!   ([`StorageError::Failed`]): after a failed fsync the file's contents are unknown,
//!   and pretending otherwise is how acknowledged writes get lost.

#![warn(missing_docs)]

mod engine;
mod snapshot;

use std::fmt;
use std::path::{Path, PathBuf};

pub use engine::{EngineStats, LogEngine, Options, SnapshotFile, SnapshotWriter};

/// When to call fsync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync on every [`LogEngine::sync`]: acknowledged writes survive power loss.
    Always,
    /// **Never fsync.** Writes reach the OS page cache only; a machine crash or power
    /// loss can lose acknowledged writes and break Raft's safety (a node may vote
    /// twice or forget entries it acknowledged). For throwaway benchmarks and tests
    /// only — never for data you want to keep.
    Never,
}

/// What went wrong, with enough context to act on.
#[derive(Debug)]
pub enum StorageError {
    /// An operating-system error (including a full disk: `ENOSPC`).
    Io {
        /// What the engine was doing.
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Data on disk is damaged somewhere other than a torn tail.
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damaged record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write or fsync failed; the engine refuses work until reopened.
    Failed(String),
    /// The caller broke the API contract (e.g. entries not contiguous).
    Invalid(String),
}

impl StorageError {
    pub(crate) fn io(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        StorageError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    /// True if the error means the disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StorageError::Io { source, .. } if source.raw_os_error() == Some(28))
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { what, path, source } => {
                write!(f, "{what} {}: {source}", path.display())
            }
            StorageError::Corrupt {
                file,
                offset,
                reason,
            } => write!(
                f,
                "corrupt data in {} at byte {offset}: {reason}; refusing to serve from it \
                 (recover this node from its peers)",
                file.display()
            ),
            StorageError::Failed(why) => {
                write!(f, "storage failed earlier and refuses work: {why}")
            }
            StorageError::Invalid(why) => write!(f, "invalid storage request: {why}"),
        }
    }
}

impl std::error::Error for StorageError {}
