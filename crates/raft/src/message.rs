//! Raft's wire messages. The sender's id travels outside the message (the transport
//! authenticates it); every message carries the sender's term.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use consensus::{Entry, LogIndex, SnapshotMeta, Term};

/// A Raft message: the sender's term and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// The sender's term; for `PreVote` the term it would campaign in; for a granted
    /// `PreVoteResponse` the term of the request it grants.
    pub term: Term,
    /// The content.
    pub body: Body,
}

/// The kinds of Raft message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Body {
    /// Would you vote for me in `term`? Changes no state on the receiver (thesis §9.6).
    PreVote {
        /// Candidate's last log index.
        last_index: LogIndex,
        /// Candidate's last log term.
        last_term: Term,
    },
    /// Answer to `PreVote`.
    PreVoteResponse {
        /// Whether the vote would be granted.
        granted: bool,
    },
    /// RequestVote (Raft §5.2).
    Vote {
        /// Candidate's last log index.
        last_index: LogIndex,
        /// Candidate's last log term.
        last_term: Term,
        /// Sent because the old leader asked (TimeoutNow): overrides the leader lease.
        transfer: bool,
    },
    /// Answer to `Vote`; a grant is sent only once the vote is durable.
    VoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// AppendEntries (Raft §5.3).
    Append {
        /// Index of the entry before `entries`.
        prev_index: LogIndex,
        /// Its term.
        prev_term: Term,
        /// Entries to append (may be empty: a commit update or a probe).
        entries: Vec<Entry>,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// Answer to `Append` (and to a completed snapshot).
    AppendResponse {
        /// Whether the follower's log now matches up to `index`.
        success: bool,
        /// On success, the last index known to match; on rejection, the rejected
        /// `prev_index`.
        index: LogIndex,
        /// On rejection: the follower's best guess at where logs may match...
        hint_index: LogIndex,
        /// ...and the term of its entry there (0 if unknown), for skipping whole terms.
        hint_term: Term,
    },
    /// Leader heartbeat; `read_round` numbers it for ReadIndex and lease confirmation.
    Heartbeat {
        /// `min(leader commit, follower's matched index)`: never beyond what matches.
        commit: LogIndex,
        /// The confirmation round this heartbeat belongs to.
        read_round: u64,
    },
    /// Answer to `Heartbeat`.
    HeartbeatResponse {
        /// The round being acknowledged.
        read_round: u64,
    },
    /// One chunk of a snapshot (Raft §7), sent in order.
    InstallSnapshot {
        /// Which snapshot.
        meta: SnapshotMeta,
        /// Its total size in bytes.
        total_bytes: u64,
        /// Byte offset of `chunk`.
        offset: u64,
        /// The bytes.
        chunk: Bytes,
    },
    /// Acknowledges snapshot chunks: the follower expects `offset` next.
    SnapshotResponse {
        /// Which snapshot (by last index).
        index: LogIndex,
        /// Next byte expected.
        offset: u64,
    },
    /// Campaign now, skipping pre-vote and lease: leadership is being handed to you.
    TimeoutNow,
    /// A follower asks the leader to confirm a read point.
    ReadIndex {
        /// The follower's read id.
        ctx: u64,
    },
    /// The leader's answer to `ReadIndex`.
    ReadIndexResponse {
        /// The follower's read id.
        ctx: u64,
        /// Serve the read once applied ≥ this index.
        index: LogIndex,
    },
}

impl Body {
    /// A short name for traces and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::PreVote { .. } => "PreVote",
            Body::PreVoteResponse { .. } => "PreVoteResponse",
            Body::Vote { .. } => "Vote",
            Body::VoteResponse { .. } => "VoteResponse",
            Body::Append { .. } => "Append",
            Body::AppendResponse { .. } => "AppendResponse",
            Body::Heartbeat { .. } => "Heartbeat",
            Body::HeartbeatResponse { .. } => "HeartbeatResponse",
            Body::InstallSnapshot { .. } => "InstallSnapshot",
            Body::SnapshotResponse { .. } => "SnapshotResponse",
            Body::TimeoutNow => "TimeoutNow",
            Body::ReadIndex { .. } => "ReadIndex",
            Body::ReadIndexResponse { .. } => "ReadIndexResponse",
        }
    }
}
