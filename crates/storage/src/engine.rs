//! The write-ahead log engine: segments, records, group commit, recovery, compaction.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use bytes::{BufMut, Bytes};
use consensus::{Entry, HardState, LogIndex, Recovered, Snapshot, SnapshotMeta, Term};

use crate::snapshot;
use crate::{FsyncPolicy, StorageError};
use consensus::codec::{get_entry, get_hard_state, put_entry, put_hard_state, Reader};

const SEGMENT_MAGIC: &[u8; 8] = b"HAKVWAL\0";
const SEGMENT_VERSION: u8 = 1;
const SEGMENT_HEADER_BYTES: u64 = 8 + 1 + 8;
/// No record is larger (a command is bounded well below this by the engines).
const RECORD_BYTES_MAX: u32 = 256 << 20;
/// The first zero-filled segment after open is this large; each next one doubles, up
/// to `segment_bytes_max`, so that a node that writes little never zero-fills much.
const SPARE_BYTES_FIRST: u64 = 1 << 20;
/// A spare is zero-filled and flushed this much at a time.
const SPARE_PIECE_BYTES: usize = 256 << 10;

const KIND_ENTRIES: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
/// Entries up to (index, term) are covered by a snapshot; later entries stay.
const KIND_COMPACT: u8 = 3;
/// A snapshot from the leader replaced the whole log.
const KIND_INSTALL: u8 = 4;
/// The node no longer holds the group: everything recorded for it so far is void.
/// Records of the same group after this one belong to a new incarnation (a replica
/// added back later), which starts empty. Empty body.
const KIND_DROP: u8 = 5;

/// Engine tuning.
#[derive(Clone, Debug)]
pub struct Options {
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Start a new segment once the active one exceeds this size.
    pub segment_bytes_max: u64,
    /// Zero-fill each next segment ahead of time, on another thread (only with
    /// [`FsyncPolicy::Always`]). Writes into a file whose blocks are already written
    /// change no file-system metadata, so each group commit's fsync flushes only the
    /// data: on ext4 about half the time of an fsync that also commits the journal
    /// for a growing file.
    pub preallocate: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fsync: FsyncPolicy::Always,
            segment_bytes_max: 64 << 20,
            preallocate: true,
        }
    }
}

/// Counters for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// fsync calls made by `sync` (one per group commit).
    pub fsyncs: u64,
    /// Bytes written to the log.
    pub bytes_written: u64,
    /// Records written.
    pub records: u64,
    /// Live segment files.
    pub segments: usize,
    /// Torn tail bytes cut off at the last open.
    pub torn_bytes_truncated: u64,
    /// Segments started in a zero-filled file since open.
    pub segments_preallocated: u64,
}

#[derive(Clone, Debug, Default)]
struct GroupState {
    base_index: LogIndex,
    base_term: Term,
    last_index: LogIndex,
    hard_state: HardState,
    snapshot_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
struct Segment {
    path: PathBuf,
    /// Highest entry index written here, per group.
    max_index: BTreeMap<u64, LogIndex>,
}

/// A zero-filled file for the next segment, made on another thread.
struct Spare {
    /// Its temporary name (renamed to the segment's name when it is used).
    path: PathBuf,
    size: u64,
    made: mpsc::Receiver<io::Result<File>>,
    /// The file, once made.
    ready: Option<File>,
}

/// Makes a file of `size` zero bytes, durably: its blocks are allocated and written,
/// so that later writes into it need no metadata update.
fn make_spare(path: &Path, size: u64) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    // Written and flushed in small pieces, with pauses: one large flush would hold
    // the disk's queue for tens of milliseconds, and every group commit of the log
    // would wait behind it. Pausing three times as long as each piece took keeps this
    // to about a quarter of the disk's time; the log fills a segment far more slowly.
    let zeros = vec![0u8; SPARE_PIECE_BYTES];
    let mut left = size;
    while left > 0 {
        let started = std::time::Instant::now();
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        f.sync_data()?;
        left -= n as u64;
        if left > 0 {
            std::thread::sleep(started.elapsed() * 3);
        }
    }
    f.sync_all()?;
    Ok(f)
}

/// The log of every replication group on one node. Not thread-safe by itself: the
/// runtime owns it from one task and batches all groups' writes through it.
pub struct LogEngine {
    wal_dir: PathBuf,
    snap_dir: PathBuf,
    opts: Options,
    active: File,
    active_seq: u64,
    /// Bytes of the active segment written so far: where the next write goes.
    active_bytes: u64,
    /// Size of the active segment's zero-filled file (0: a plain file that grows
    /// with every write).
    active_prealloc: u64,
    /// The next segment's zero-filled file, being made or ready.
    spare: Option<Spare>,
    segments: BTreeMap<u64, Segment>,
    groups: BTreeMap<u64, GroupState>,
    pending: Vec<u8>,
    pending_records: u64,
    /// True while `rotate` syncs the new segment's checkpoint.
    rotating: bool,
    /// Snapshot files to delete once the records that make them unneeded (a newer
    /// snapshot, a drop) are durable: deleting first would let a crash leave a live
    /// group whose snapshot is gone.
    obsolete_snapshots: Vec<PathBuf>,
    /// A compaction, install or drop is buffered: once the next sync makes it
    /// durable, old segments may have become reclaimable.
    reclaim_after_sync: bool,
    failed: Option<String>,
    stats: EngineStats,
}

/// Writes snapshot files on any thread; from [`LogEngine::snapshot_writer`].
#[derive(Clone, Debug)]
pub struct SnapshotWriter {
    dir: PathBuf,
    sync: bool,
}

/// A snapshot file a [`SnapshotWriter`] wrote (durably, under its final name), to be
/// recorded by [`LogEngine::compact_written`].
#[derive(Debug)]
pub struct SnapshotFile {
    path: PathBuf,
    meta: SnapshotMeta,
}

impl SnapshotWriter {
    /// Writes `snap` of `group` atomically (temporary file, fsync, rename, directory
    /// fsync, as the engine does). Errors are the engine's: the caller should treat
    /// one as a storage failure.
    pub fn write(&self, group: u64, snap: &Snapshot) -> Result<SnapshotFile, StorageError> {
        let path = snapshot::write(&self.dir, group, snap, self.sync)?;
        Ok(SnapshotFile {
            path,
            meta: snap.meta.clone(),
        })
    }
}

/// What replaying the log found for one group.
#[derive(Default)]
struct Replay {
    state: GroupState,
    entries: Vec<Entry>,
    /// Entries up to here were in reclaimed segments: the base must reach it.
    gap_below: LogIndex,
}

fn corrupt(file: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        file: file.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// Whether `b` comes right after `a`. Indexes come from disk and callers, so
/// `LogIndex::next` (which overflows at `u64::MAX`) is not used on them.
fn follows(a: LogIndex, b: LogIndex) -> bool {
    a.0.checked_add(1) == Some(b.0)
}

/// Cuts segment `path` at `at` bytes, durably (a torn tail, or unused zeros).
fn truncate_segment(path: &Path, at: u64) -> Result<(), StorageError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io("open segment to truncate", path, e))?;
    f.set_len(at)
        .map_err(|e| StorageError::io("truncate segment", path, e))?;
    f.sync_all()
        .map_err(|e| StorageError::io("fsync truncated segment", path, e))
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

impl LogEngine {
    /// Opens (or creates) the engine in `dir` and recovers every group's durable state.
    /// A torn tail is truncated; any other damage is an error naming file and offset.
    pub fn open(
        dir: &Path,
        opts: Options,
    ) -> Result<(LogEngine, BTreeMap<u64, Recovered>), StorageError> {
        let wal_dir = dir.join("wal");
        let snap_dir = dir.join("snap");
        for d in [dir, &wal_dir, &snap_dir] {
            fs::create_dir_all(d).map_err(|e| StorageError::io("create directory", d, e))?;
        }
        let mut seqs = Vec::new();
        for ent in fs::read_dir(&wal_dir).map_err(|e| StorageError::io("list", &wal_dir, e))? {
            let ent = ent.map_err(|e| StorageError::io("list", &wal_dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if name.ends_with(".spare") {
                // A zero-filled file made ahead and never used (or half made).
                let _ = fs::remove_file(ent.path());
                continue;
            }
            if let Some(seq) = name
                .strip_suffix(".wal")
                .and_then(|s| s.parse::<u64>().ok())
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();

        let mut replay: BTreeMap<u64, Replay> = BTreeMap::new();
        let mut segments = BTreeMap::new();
        let mut torn = 0;
        for (i, &seq) in seqs.iter().enumerate() {
            let path = segment_path(&wal_dir, seq);
            let last = i + 1 == seqs.len();
            let seg =
                Self::replay_segment(&path, seq, last, &mut replay, &mut segments, &mut torn)?;
            segments.insert(seq, seg);
        }

        // Load the snapshot each group's base refers to.
        let mut recovered = BTreeMap::new();
        let mut groups = BTreeMap::new();
        let mut wanted = std::collections::BTreeSet::new();
        for (&g, r) in &mut replay {
            if r.gap_below > r.state.base_index {
                return Err(corrupt(
                    &wal_dir,
                    0,
                    format!(
                        "group {g}: entries up to {} are missing and no snapshot covers them",
                        r.gap_below.0
                    ),
                ));
            }
            let mut snap = None;
            if r.state.base_index > LogIndex(0) {
                let meta_name = snapshot::file_name(
                    g,
                    &consensus::SnapshotMeta {
                        index: r.state.base_index,
                        term: r.state.base_term,
                        membership: Default::default(),
                    },
                );
                let path = snap_dir.join(&meta_name);
                let (sg, s) = snapshot::read(&path)?;
                if sg != g || s.meta.index != r.state.base_index || s.meta.term != r.state.base_term
                {
                    return Err(corrupt(
                        &path,
                        0,
                        "snapshot does not match the log's record of it",
                    ));
                }
                wanted.insert(meta_name);
                r.state.snapshot_file = Some(path);
                snap = Some(s);
            }
            recovered.insert(
                g,
                Recovered {
                    hard_state: r.state.hard_state,
                    snapshot: snap,
                    entries: std::mem::take(&mut r.entries),
                },
            );
            groups.insert(g, r.state.clone());
        }
        // Leftovers of interrupted snapshot writes and superseded snapshots.
        if let Ok(list) = fs::read_dir(&snap_dir) {
            for ent in list.flatten() {
                let name = ent.file_name().to_string_lossy().into_owned();
                if name.ends_with(".tmp") || (name.ends_with(".snap") && !wanted.contains(&name)) {
                    let _ = fs::remove_file(ent.path());
                }
            }
        }

        let active_seq = seqs.last().copied().unwrap_or(0) + 1;
        let path = segment_path(&wal_dir, active_seq);
        let active = Self::create_segment(&path, active_seq, opts.fsync)?;
        let mut engine = LogEngine {
            wal_dir,
            snap_dir,
            opts,
            active,
            active_seq,
            active_bytes: SEGMENT_HEADER_BYTES,
            active_prealloc: 0,
            spare: None,
            segments,
            groups,
            pending: Vec::new(),
            pending_records: 0,
            rotating: false,
            obsolete_snapshots: Vec::new(),
            reclaim_after_sync: false,
            failed: None,
            stats: EngineStats {
                torn_bytes_truncated: torn,
                ..Default::default()
            },
        };
        engine.start_segment_bookkeeping(path);
        engine.sync()?;
        engine.collect_segments();
        // The segment opened here grows with every write; the log moves to a
        // zero-filled one as soon as it is ready.
        engine.start_spare();
        Ok((engine, recovered))
    }

    /// Starts making the next segment's zero-filled file on another thread, unless
    /// one is already being made or preallocation is off.
    fn start_spare(&mut self) {
        if !self.opts.preallocate || self.opts.fsync != FsyncPolicy::Always || self.spare.is_some()
        {
            return;
        }
        let made_before = self.stats.segments_preallocated.min(32) as u32;
        let size = (SPARE_BYTES_FIRST << made_before)
            .min(self.opts.segment_bytes_max)
            .max(SEGMENT_HEADER_BYTES);
        let path = self
            .wal_dir
            .join(format!("{:020}.spare", self.active_seq + 1));
        let (tx, made) = mpsc::channel();
        let p = path.clone();
        let spawned = std::thread::Builder::new()
            .name("wal-spare".into())
            .spawn(move || {
                let _ = tx.send(make_spare(&p, size));
            });
        if spawned.is_ok() {
            self.spare = Some(Spare {
                path,
                size,
                made,
                ready: None,
            });
        }
    }

    /// Whether the spare file is made (a failed one is forgotten: the next segment is
    /// a plain file, and another spare is tried after it).
    fn spare_ready(&mut self) -> bool {
        let Some(spare) = &mut self.spare else {
            return false;
        };
        if spare.ready.is_some() {
            return true;
        }
        match spare.made.try_recv() {
            Ok(Ok(f)) => {
                spare.ready = Some(f);
                true
            }
            Err(mpsc::TryRecvError::Empty) => false,
            Ok(Err(_)) | Err(mpsc::TryRecvError::Disconnected) => {
                // No space, most likely: the log goes on in plain files, which fail
                // only when a write itself finds no space.
                let _ = fs::remove_file(&spare.path);
                self.spare = None;
                false
            }
        }
    }

    /// Turns the ready spare into segment `seq` at `path`: header written and durable
    /// before the file takes the segment's name, so that a `.wal` file always starts
    /// with a valid header.
    fn use_spare(&mut self, seq: u64, path: &Path) -> Option<Result<(File, u64), StorageError>> {
        if !self.spare_ready() {
            return None;
        }
        let spare = self.spare.take()?;
        let f = spare.ready?;
        let mut header = Vec::with_capacity(SEGMENT_HEADER_BYTES as usize);
        header.extend_from_slice(SEGMENT_MAGIC);
        header.push(SEGMENT_VERSION);
        header.put_u64_le(seq);
        let done = f
            .write_all_at(&header, 0)
            .map_err(|e| StorageError::io("write segment header", &spare.path, e))
            .and_then(|()| {
                f.sync_data()
                    .map_err(|e| StorageError::io("fsync segment", &spare.path, e))
            })
            .and_then(|()| {
                fs::rename(&spare.path, path)
                    .map_err(|e| StorageError::io("rename spare segment", path, e))
            })
            .and_then(|()| snapshot::sync_dir(&self.wal_dir));
        Some(done.map(|()| (f, spare.size)))
    }

    fn create_segment(path: &Path, seq: u64, fsync: FsyncPolicy) -> Result<File, StorageError> {
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(path)
            .map_err(|e| StorageError::io("create segment", path, e))?;
        let mut header = Vec::with_capacity(SEGMENT_HEADER_BYTES as usize);
        header.extend_from_slice(SEGMENT_MAGIC);
        header.push(SEGMENT_VERSION);
        header.put_u64_le(seq);
        f.write_all(&header)
            .map_err(|e| StorageError::io("write segment header", path, e))?;
        if fsync == FsyncPolicy::Always {
            f.sync_all()
                .map_err(|e| StorageError::io("fsync segment", path, e))?;
            if let Some(dir) = path.parent() {
                snapshot::sync_dir(dir)?;
            }
        }
        Ok(f)
    }

    /// Records the new active segment and writes its checkpoint: every group's hard
    /// state and base, so that older segments can later be deleted.
    fn start_segment_bookkeeping(&mut self, path: PathBuf) {
        self.segments.insert(
            self.active_seq,
            Segment {
                path,
                max_index: BTreeMap::new(),
            },
        );
        let groups: Vec<(u64, GroupState)> =
            self.groups.iter().map(|(&g, s)| (g, s.clone())).collect();
        for (g, s) in groups {
            let mut body = Vec::new();
            body.put_u64_le(s.base_index.0);
            body.put_u64_le(s.base_term.0);
            self.push_record(KIND_COMPACT, g, &body);
            let mut body = Vec::new();
            put_hard_state(&mut body, &s.hard_state);
            self.push_record(KIND_HARD_STATE, g, &body);
        }
    }

    /// Replays one segment into `replay`; `earlier` are the segments replayed before
    /// it (a drop record releases their hold on the dropped group's entries).
    fn replay_segment(
        path: &Path,
        seq: u64,
        last: bool,
        replay: &mut BTreeMap<u64, Replay>,
        earlier: &mut BTreeMap<u64, Segment>,
        torn: &mut u64,
    ) -> Result<Segment, StorageError> {
        let raw = fs::read(path).map_err(|e| StorageError::io("read segment", path, e))?;
        let len = raw.len() as u64;
        let mut seg = Segment {
            path: path.to_path_buf(),
            max_index: BTreeMap::new(),
        };
        if len < SEGMENT_HEADER_BYTES || &raw[..8] != SEGMENT_MAGIC {
            if last && (len < SEGMENT_HEADER_BYTES || raw.iter().all(|&b| b == 0)) {
                // Created but the header never reached the disk: an empty segment.
                *torn += len;
                fs::remove_file(path)
                    .map_err(|e| StorageError::io("remove torn segment", path, e))?;
                return Ok(seg);
            }
            return Err(corrupt(path, 0, "bad segment header"));
        }
        if raw[8] != SEGMENT_VERSION {
            return Err(corrupt(
                path,
                8,
                format!("unsupported segment version {}", raw[8]),
            ));
        }
        if u64::from_le_bytes(raw[9..17].try_into().expect("8 bytes")) != seq {
            return Err(corrupt(path, 9, "segment number does not match its name"));
        }
        let mut off = SEGMENT_HEADER_BYTES;
        let zeros_from = |from: u64| raw[(from.min(len)) as usize..].iter().all(|&b| b == 0);
        while off < len {
            let rest = len - off;
            let o = off as usize;
            // A zero-filled (preallocated) segment's records end where its zeros
            // begin: no record starts with a zero length. The last segment's zeros
            // are cut off (it never takes writes again); elsewhere they are left.
            if raw[o..o + (rest.min(8) as usize)].iter().all(|&b| b == 0) && zeros_from(off) {
                if last {
                    truncate_segment(path, off)?;
                }
                break;
            }
            let bad = |reason: &str, end: u64| -> Result<Option<u64>, StorageError> {
                // The last record of the last segment may be torn by a crash (and be
                // followed by the zeros of a preallocated file); damage with intact
                // data after it is corruption.
                if last && (end >= len || zeros_from(end)) {
                    Ok(Some(off))
                } else {
                    Err(corrupt(path, off, reason))
                }
            };
            let verdict = if rest < 8 {
                bad("truncated record header", len)?
            } else {
                let rlen = u32::from_le_bytes(raw[o..o + 4].try_into().expect("4"));
                let crc = u32::from_le_bytes(raw[o + 4..o + 8].try_into().expect("4"));
                let end = off + 8 + rlen as u64;
                if !(9..=RECORD_BYTES_MAX).contains(&rlen) {
                    bad(
                        "implausible record length",
                        if rlen == 0 { len } else { end },
                    )?
                } else if end > len {
                    bad("record runs past the end of the segment", end)?
                } else if crc32c::crc32c(&raw[o + 8..end as usize]) != crc {
                    bad("checksum mismatch", end)?
                } else {
                    let body = Bytes::copy_from_slice(&raw[o + 8..end as usize]);
                    Self::apply_record(body, replay, earlier, &mut seg)
                        .map_err(|why| corrupt(path, off, why))?;
                    off = end;
                    None
                }
            };
            if let Some(cut) = verdict {
                *torn += len - cut;
                truncate_segment(path, cut)?;
                break;
            }
        }
        Ok(seg)
    }

    fn apply_record(
        body: Bytes,
        replay: &mut BTreeMap<u64, Replay>,
        earlier: &mut BTreeMap<u64, Segment>,
        seg: &mut Segment,
    ) -> Result<(), String> {
        let mut r = Reader::new(body);
        let kind = r.u8().map_err(|e| e.0.to_string())?;
        let group = r.u64().map_err(|e| e.0.to_string())?;
        if kind == KIND_DROP {
            if !r.is_empty() {
                return Err("trailing bytes in record".into());
            }
            // Forget the group as `drop_group` did: its state, its entries (including
            // any gap left by reclaimed segments, which no snapshot needs to cover now)
            // and its claim on the segments holding them. A later record of the group
            // starts a new incarnation from an empty state.
            replay.remove(&group);
            seg.max_index.remove(&group);
            for s in earlier.values_mut() {
                s.max_index.remove(&group);
            }
            return Ok(());
        }
        let g = replay.entry(group).or_default();
        match kind {
            KIND_ENTRIES => {
                let n = r.u32().map_err(|e| e.0.to_string())?;
                let mut entries = Vec::with_capacity(n.min(1 << 16) as usize);
                for _ in 0..n {
                    entries.push(get_entry(&mut r).map_err(|e| e.0.to_string())?);
                }
                if entries.is_empty() {
                    return Ok(());
                }
                for w in entries.windows(2) {
                    if !follows(w[0].index, w[1].index) {
                        return Err("entries in a record are not contiguous".into());
                    }
                }
                let last = entries.last().map(|e| e.index).expect("non-empty");
                // Entries at or below the base are covered by the snapshot.
                entries.retain(|e| e.index > g.state.base_index);
                if let Some(start) = entries.first().map(|e| e.index) {
                    if start.0 > g.state.last_index.0.saturating_add(1) {
                        // The entries before `start` lived in a reclaimed segment; a
                        // later compaction record must cover them (checked at the end).
                        g.entries.clear();
                        g.gap_below = g.gap_below.max(start.prev());
                    }
                    g.entries.retain(|e| e.index < start);
                    g.entries.extend(entries);
                    g.state.last_index = last;
                }
                let m = seg.max_index.entry(group).or_default();
                *m = (*m).max(last);
            }
            KIND_HARD_STATE => {
                g.state.hard_state = get_hard_state(&mut r).map_err(|e| e.0.to_string())?;
            }
            KIND_COMPACT | KIND_INSTALL => {
                let index = LogIndex(r.u64().map_err(|e| e.0.to_string())?);
                let term = Term(r.u64().map_err(|e| e.0.to_string())?);
                if kind == KIND_INSTALL {
                    g.entries.clear();
                    g.state.last_index = index;
                } else {
                    g.entries.retain(|e| e.index > index);
                    g.state.last_index = g.state.last_index.max(index);
                }
                if index >= g.state.base_index {
                    g.state.base_index = index;
                    g.state.base_term = term;
                }
            }
            k => return Err(format!("unknown record kind {k}")),
        }
        if !r.is_empty() {
            return Err("trailing bytes in record".into());
        }
        Ok(())
    }

    fn check(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(why) => Err(StorageError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: StorageError) -> StorageError {
        self.failed = Some(e.to_string());
        e
    }

    fn push_record(&mut self, kind: u8, group: u64, body: &[u8]) {
        let len = 1 + 8 + body.len();
        let start = self.pending.len();
        self.pending.put_u32_le(len as u32);
        self.pending.put_u32_le(0);
        self.pending.put_u8(kind);
        self.pending.put_u64_le(group);
        self.pending.put_slice(body);
        let crc = crc32c::crc32c(&self.pending[start + 8..]);
        self.pending[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.pending_records += 1;
    }

    fn group(&mut self, group: u64) -> &mut GroupState {
        self.groups.entry(group).or_default()
    }

    /// Buffers `entries` of `group` (contiguous; an entry at or below the group's last
    /// index replaces that suffix). Durable after the next [`LogEngine::sync`].
    pub fn append(&mut self, group: u64, entries: &[Entry]) -> Result<(), StorageError> {
        self.check()?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if entries.windows(2).any(|w| !follows(w[0].index, w[1].index)) {
            return Err(StorageError::Invalid("entries are not contiguous".into()));
        }
        let st = self.group(group);
        if first.index.0 > st.last_index.0.saturating_add(1) || first.index <= st.base_index {
            return Err(StorageError::Invalid(format!(
                "group {group}: append at {} but the log holds ({}, {}]",
                first.index.0, st.base_index.0, st.last_index.0
            )));
        }
        let last = entries.last().expect("non-empty").index;
        st.last_index = last;
        let mut body =
            Vec::with_capacity(entries.iter().map(|e| e.size_bytes()).sum::<usize>() + 4);
        body.put_u32_le(entries.len() as u32);
        for e in entries {
            put_entry(&mut body, e);
        }
        self.push_record(KIND_ENTRIES, group, &body);
        let seg = self
            .segments
            .get_mut(&self.active_seq)
            .expect("active segment");
        let m = seg.max_index.entry(group).or_default();
        *m = (*m).max(last);
        Ok(())
    }

    /// Buffers a group's hard state.
    pub fn set_hard_state(&mut self, group: u64, hs: HardState) -> Result<(), StorageError> {
        self.check()?;
        self.group(group).hard_state = hs;
        let mut body = Vec::with_capacity(24);
        put_hard_state(&mut body, &hs);
        self.push_record(KIND_HARD_STATE, group, &body);
        Ok(())
    }

    /// A snapshot received from the leader replaces the group's log. The snapshot
    /// file is written and fsynced now; the log record follows with the next sync.
    pub fn install_snapshot(&mut self, group: u64, snap: &Snapshot) -> Result<(), StorageError> {
        self.save_snapshot(group, snap, KIND_INSTALL)
    }

    /// The group's state machine was snapshotted at `snap.meta.index`: entries up to it
    /// are dropped once durable, and segments holding only such entries are deleted.
    pub fn compact(&mut self, group: u64, snap: &Snapshot) -> Result<(), StorageError> {
        self.save_snapshot(group, snap, KIND_COMPACT)
    }

    fn save_snapshot(&mut self, group: u64, snap: &Snapshot, kind: u8) -> Result<(), StorageError> {
        self.check()?;
        let st = self.groups.get(&group).cloned().unwrap_or_default();
        if snap.meta.index <= st.base_index {
            return Ok(()); // already covered
        }
        if kind == KIND_COMPACT && snap.meta.index > st.last_index {
            return Err(StorageError::Invalid(format!(
                "group {group}: compaction to {} beyond the last entry {}",
                snap.meta.index.0, st.last_index.0
            )));
        }
        let sync = self.opts.fsync == FsyncPolicy::Always;
        let path = snapshot::write(&self.snap_dir, group, snap, sync).map_err(|e| self.fail(e))?;
        self.record_snapshot(group, &snap.meta, path, kind);
        Ok(())
    }

    /// Points the group at its new snapshot file and queues the record that says so.
    fn record_snapshot(&mut self, group: u64, meta: &SnapshotMeta, path: PathBuf, kind: u8) {
        // A dropped earlier incarnation of this group may have left a snapshot of the
        // same name (same group, index and term: the same state) waiting for deletion;
        // it is now this incarnation's snapshot and must stay.
        self.obsolete_snapshots.retain(|old| *old != path);
        self.reclaim_after_sync = true;
        let st = self.group(group);
        if let Some(old) = st.snapshot_file.replace(path) {
            // Deleted only once the record naming the new one is durable.
            self.obsolete_snapshots.push(old);
        }
        let st = self.group(group);
        st.base_index = meta.index;
        st.base_term = meta.term;
        if kind == KIND_INSTALL {
            st.last_index = meta.index;
        }
        let mut body = Vec::with_capacity(16);
        body.put_u64_le(meta.index.0);
        body.put_u64_le(meta.term.0);
        self.push_record(kind, group, &body);
    }

    /// A writer of snapshot files for another thread: a large state is written and
    /// fsynced there while this engine keeps logging, and
    /// [`LogEngine::compact_written`] then records the compaction.
    pub fn snapshot_writer(&self) -> SnapshotWriter {
        SnapshotWriter {
            dir: self.snap_dir.clone(),
            sync: self.opts.fsync == FsyncPolicy::Always,
        }
    }

    /// Deletes a snapshot `file` a [`SnapshotWriter`] wrote that is not to be recorded
    /// (its group was dropped and perhaps added again since); never one the engine uses.
    pub fn discard_written(&mut self, file: SnapshotFile) {
        let in_use = self
            .groups
            .values()
            .any(|st| st.snapshot_file.as_ref() == Some(&file.path));
        if !in_use {
            let _ = fs::remove_file(&file.path);
        }
    }

    /// Records the compaction whose snapshot `file` a [`SnapshotWriter`] wrote, like
    /// [`LogEngine::compact`] (durable with the next `sync`). Until then the log keeps
    /// every entry the snapshot covers, so a crash in between recovers from the
    /// previous snapshot and the log (the unrecorded file is deleted at the next
    /// open). A file the group no longer needs (it was dropped, or a newer snapshot
    /// covers it) is deleted at once.
    pub fn compact_written(&mut self, group: u64, file: SnapshotFile) -> Result<(), StorageError> {
        self.check()?;
        let needed = self
            .groups
            .get(&group)
            .map(|st| file.meta.index > st.base_index && file.meta.index <= st.last_index);
        if needed != Some(true) {
            if self
                .groups
                .get(&group)
                .and_then(|st| st.snapshot_file.as_ref())
                != Some(&file.path)
            {
                let _ = fs::remove_file(&file.path);
            }
            return Ok(());
        }
        self.record_snapshot(group, &file.meta, file.path, KIND_COMPACT);
        Ok(())
    }

    /// Writes everything buffered and, under [`FsyncPolicy::Always`], fsyncs once:
    /// the group commit. Returns only when it is durable.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check()?;
        if !self.pending.is_empty() {
            let path = segment_path(&self.wal_dir, self.active_seq);
            // Positioned: a preallocated file is already as long as it will be.
            if let Err(e) = self.active.write_all_at(&self.pending, self.active_bytes) {
                return Err(self.fail(StorageError::io("write log", &path, e)));
            }
            self.active_bytes += self.pending.len() as u64;
            self.stats.bytes_written += self.pending.len() as u64;
            self.stats.records += self.pending_records;
            self.pending.clear();
            self.pending_records = 0;
            if self.opts.fsync == FsyncPolicy::Always {
                if let Err(e) = self.active.sync_data() {
                    return Err(self.fail(StorageError::io("fsync log", &path, e)));
                }
                self.stats.fsyncs += 1;
            }
        }
        // Everything buffered is durable now, so the files it made unneeded can go. A
        // failed deletion leaves a stray file that the next `open` removes.
        let reclaim = std::mem::take(&mut self.reclaim_after_sync);
        for old in std::mem::take(&mut self.obsolete_snapshots) {
            let _ = fs::remove_file(old);
        }
        // A fresh segment never rotates again from its own checkpoint (which can exceed
        // a tiny segment_bytes_max): that would recurse without bound. A plain segment
        // is left as soon as a zero-filled one is ready.
        let full = if self.active_prealloc > 0 {
            self.active_bytes >= self.active_prealloc
        } else {
            self.active_bytes >= self.opts.segment_bytes_max
        };
        if !self.rotating && (full || (self.active_prealloc == 0 && self.spare_ready())) {
            self.rotate()?;
        } else if reclaim {
            self.collect_segments();
        }
        Ok(())
    }

    /// Durably forgets `group`, once the next [`LogEngine::sync`] returns `Ok`. Like
    /// every other write it is only buffered here, so that one fsync per round still
    /// covers every group; **the caller must `sync`** before relying on it.
    ///
    /// Guarantees:
    /// - from now on the group is absent from [`LogEngine::groups`], and no later
    ///   segment checkpoint mentions it; a reopen after the sync recovers nothing of
    ///   it. A crash before the sync recovers it whole, as the last successful sync
    ///   left it, never partly;
    /// - its entries no longer hold back segment reclamation: once the drop is
    ///   durable, segments whose only un-compacted content belonged to it are deleted
    ///   like any other covered segment;
    /// - its snapshot file is deleted only after the drop is durable, so no crash
    ///   leaves a recoverable group whose snapshot is missing;
    /// - later writes for the same `group` start a new incarnation from an empty log
    ///   (e.g. a replica of a shard that moved away and back); recovery returns only
    ///   that incarnation.
    ///
    /// Dropping a group the engine holds nothing for is a no-op. Like every write, it
    /// is refused ([`StorageError::Failed`]) after an earlier write or fsync failed.
    pub fn drop_group(&mut self, group: u64) -> Result<(), StorageError> {
        self.check()?;
        let Some(st) = self.groups.remove(&group) else {
            return Ok(());
        };
        if let Some(path) = st.snapshot_file {
            self.obsolete_snapshots.push(path);
        }
        // No segment waits for this group's compaction any more. Deleting a segment
        // because of this is safe only once the drop record is durable, which holds:
        // segments are only collected right after a sync has written everything
        // buffered, and strictly oldest first, so the drop record's own segment
        // outlives every older one holding the group's records.
        for seg in self.segments.values_mut() {
            seg.max_index.remove(&group);
        }
        self.push_record(KIND_DROP, group, &[]);
        self.reclaim_after_sync = true;
        Ok(())
    }

    /// Starts a new segment (with a checkpoint) and deletes segments no longer needed.
    fn rotate(&mut self) -> Result<(), StorageError> {
        let seq = self.active_seq + 1;
        let path = segment_path(&self.wal_dir, seq);
        let (f, prealloc) = match self.use_spare(seq, &path) {
            Some(used) => used.map_err(|e| self.fail(e))?,
            // No spare ready (still being made, or no space for one): a plain file,
            // left again once a spare is ready.
            None => (
                Self::create_segment(&path, seq, self.opts.fsync).map_err(|e| self.fail(e))?,
                0,
            ),
        };
        if prealloc > 0 {
            self.stats.segments_preallocated += 1;
        }
        self.active = f;
        self.active_seq = seq;
        self.active_bytes = SEGMENT_HEADER_BYTES;
        self.active_prealloc = prealloc;
        self.start_segment_bookkeeping(path);
        self.rotating = true;
        let synced = self.sync();
        self.rotating = false;
        synced?;
        self.collect_segments();
        self.start_spare();
        Ok(())
    }

    /// Deletes the oldest segments while every entry in them is covered by its
    /// group's durable snapshot. Recovery then starts at the next segment, whose
    /// checkpoint restores each group's hard state and base.
    fn collect_segments(&mut self) {
        while self.segments.len() > 1 {
            let (&oldest, seg) = self.segments.iter().next().expect("non-empty");
            if oldest == self.active_seq {
                break;
            }
            let groups = &self.groups;
            let covered = seg
                .max_index
                .iter()
                .all(|(g, &max)| groups.get(g).is_some_and(|s| s.base_index >= max));
            if !covered {
                break;
            }
            let path = seg.path.clone();
            if fs::remove_file(&path).is_err() {
                break;
            }
            self.segments.remove(&oldest);
        }
        self.stats.segments = self.segments.len();
    }

    /// Counters since open.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            segments: self.segments.len(),
            ..self.stats
        }
    }

    /// The groups this engine holds state for, buffered writes and drops included
    /// (a dropped group is absent until written to again).
    pub fn groups(&self) -> impl Iterator<Item = u64> + '_ {
        self.groups.keys().copied()
    }
}
