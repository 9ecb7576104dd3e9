//! Identifiers and log records shared by every replication engine.

use std::fmt;
use std::ops::{Add, Sub};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::membership::{ConfigChange, Membership};

/// A node's identity inside one replication group. `0` is reserved to mean "nobody".
pub type NodeId = u64;

/// A Raft term (or, for Multi-Paxos, a ballot round). Terms only grow on a node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// A position in the replicated log. Index 0 is the empty prefix; the first entry is 1.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

impl Term {
    /// The term after this one.
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}

impl LogIndex {
    /// The index after this one.
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }
    /// The index before this one, saturating at 0.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl Add<u64> for LogIndex {
    type Output = LogIndex;
    fn add(self, rhs: u64) -> LogIndex {
        LogIndex(self.0 + rhs)
    }
}

impl Sub<u64> for LogIndex {
    type Output = LogIndex;
    fn sub(self, rhs: u64) -> LogIndex {
        LogIndex(self.0.saturating_sub(rhs))
    }
}

impl Sub<LogIndex> for LogIndex {
    type Output = u64;
    /// The distance between two indexes, saturating at 0.
    fn sub(self, rhs: LogIndex) -> u64 {
        self.0.saturating_sub(rhs.0)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

/// What a log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader so that it can commit an entry of its own term
    /// (Raft §5.4.2, §8) and then serve linearizable reads.
    Noop,
    /// An opaque command for the replicated state machine.
    Command(Bytes),
    /// A membership change; it takes effect when committed.
    Config(ConfigChange),
}

impl Payload {
    /// Approximate encoded size in bytes, used for flow control and batching limits.
    pub fn size_bytes(&self) -> usize {
        match self {
            Payload::Noop => 1,
            Payload::Command(b) => b.len() + 5,
            Payload::Config(c) => 8 + 9 * c.len(),
        }
    }
}

/// One record of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created this entry.
    pub term: Term,
    /// The entry's position; unique together with `term` (Log Matching, Raft §5.3).
    pub index: LogIndex,
    /// What the entry carries.
    pub payload: Payload,
}

impl Entry {
    /// Approximate encoded size in bytes.
    pub fn size_bytes(&self) -> usize {
        16 + self.payload.size_bytes()
    }
}

/// The state a node must keep durable across crashes before acting on it.
///
/// `term` and `vote` must be durable before any vote is granted or any message of the
/// new term that depends on them leaves (see [`crate::Ready::messages_after_sync`]).
/// `commit` is stored for faster recovery only: losing it is safe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Whom this node voted for in `term`, if anybody.
    pub vote: Option<NodeId>,
    /// The highest index known committed when this hard state was produced.
    pub commit: LogIndex,
}

/// Describes the log prefix a snapshot replaces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last log index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    /// The membership in effect at `index`.
    pub membership: Membership,
}

/// A state-machine image covering the log up to `meta.index`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    /// Which prefix of the log this snapshot replaces.
    pub meta: SnapshotMeta,
    /// The state machine's own encoding of its state; opaque to the engine.
    pub data: Bytes,
}

/// What a node recovered from disk when it restarts; `Default` is a brand-new node.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The last durable snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Durable entries after the snapshot, contiguous, in index order.
    pub entries: Vec<Entry>,
}
