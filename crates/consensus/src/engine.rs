//! The contract between a replication engine (a pure state machine) and its shell.
//!
//! ```text
//!            tick() / step(from, msg) / propose(cmd) / read_index(ctx) / ...
//!   shell ───────────────────────────────────────────────────────────────▶ engine
//!     ▲                                                                       │
//!     │  ready(): Ready { entries, hard_state, snapshot  → persist           │
//!     │                   messages                       → send now           │
//!     │                   messages_after_sync            → send after fsync   │
//!     │                   committed_entries              → apply in order     │
//!     │                   read_states                    → serve reads }      │
//!     └───────────────────────────── advance(ready.number) ◀──────────────────┘
//! ```
//!
//! The shell owns time, disks and sockets; the engine owns the protocol. Between
//! `ready()` and `advance()` the shell may keep calling `step`/`tick`/`propose`; it must
//! not call `ready()` again before `advance()`.

use std::fmt;

use bytes::Bytes;

use crate::membership::{ConfigChange, ConfigError, Membership};
use crate::types::{Entry, HardState, LogIndex, NodeId, Snapshot, Term};

/// A message addressed to one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound<M> {
    /// The recipient.
    pub to: NodeId,
    /// The message.
    pub msg: M,
}

/// A linearizable read that may now be served: once the local state machine has applied
/// `index`, reading it reflects every write acknowledged before the read was requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadState {
    /// The caller's identifier from [`Engine::read_index`].
    pub ctx: u64,
    /// Serve the read once applied ≥ this index.
    pub index: LogIndex,
}

/// Work the shell must do, in this order:
/// 1. send `messages` (they depend on nothing unpersisted; sending them first overlaps
///    network and disk);
/// 2. install `snapshot` if any, append `entries` (truncating any stored suffix that
///    starts at or after `entries[0].index`), store `hard_state`; if `must_sync`, fsync;
/// 3. only then send `messages_after_sync`;
/// 4. apply `committed_entries` in order (after the snapshot) and serve `read_states`
///    once applied has reached their index;
/// 5. call [`Engine::advance`] with `number`.
#[derive(Clone, Debug, Default)]
pub struct Ready<M> {
    /// Identifies this batch for [`Engine::advance`].
    pub number: u64,
    /// Messages that may leave immediately.
    pub messages: Vec<Outbound<M>>,
    /// A snapshot to persist and to restore the state machine from.
    pub snapshot: Option<Snapshot>,
    /// Entries to append durably.
    pub entries: Vec<Entry>,
    /// Hard state to store, if it changed.
    pub hard_state: Option<HardState>,
    /// True if `entries`, `hard_state` or `snapshot` must be fsynced before
    /// `messages_after_sync` leave.
    pub must_sync: bool,
    /// Messages that promise durability (a granted vote, an acknowledged append): they
    /// must not leave before the writes above are durable. Sending them early is the bug
    /// that lets a crashed node vote twice or forget an entry it acknowledged.
    pub messages_after_sync: Vec<Outbound<M>>,
    /// Entries known committed, to apply in index order.
    pub committed_entries: Vec<Entry>,
    /// Reads whose linearization point is now fixed.
    pub read_states: Vec<ReadState>,
}

impl<M> Ready<M> {
    /// True if there is nothing to do but advance.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.hard_state.is_none()
            && self.messages_after_sync.is_empty()
            && self.committed_entries.is_empty()
            && self.read_states.is_empty()
    }
}

/// The position a proposal was given; it is committed iff the entry applied at `index`
/// has `term`. An entry applied at `index` with another term means it was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Proposed {
    /// The term of the proposing leader.
    pub term: Term,
    /// The slot the proposal was appended at.
    pub index: LogIndex,
}

/// Expected outcomes of a request the engine cannot carry out: typed, never a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProposeError {
    /// This node does not lead; `hint` is the leader it last heard of.
    NotLeader {
        /// The leader, if known.
        hint: Option<NodeId>,
    },
    /// A leadership transfer is under way; retry at the new leader.
    TransferInProgress,
    /// A previous configuration change has not finished.
    ConfigChangePending,
    /// The configuration change is not allowed.
    Config(ConfigError),
    /// The command exceeds the engine's maximum entry size.
    TooLarge {
        /// The command's size.
        size_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// The node cannot accept work (e.g. removed from the group).
    Unavailable(&'static str),
}

impl fmt::Display for ProposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProposeError::NotLeader { hint: Some(h) } => write!(f, "not the leader; try {h}"),
            ProposeError::NotLeader { hint: None } => write!(f, "not the leader; no leader known"),
            ProposeError::TransferInProgress => write!(f, "leadership transfer in progress"),
            ProposeError::ConfigChangePending => write!(f, "a configuration change is pending"),
            ProposeError::Config(e) => write!(f, "{e}"),
            ProposeError::TooLarge {
                size_bytes,
                max_bytes,
            } => write!(f, "proposal of {size_bytes} bytes exceeds {max_bytes}"),
            ProposeError::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

impl std::error::Error for ProposeError {}

/// A message the engine refused: malformed or impossible input from the network.
/// The engine's state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepError {
    /// The message breaks a structural rule (e.g. entries not contiguous).
    Malformed(String),
    /// The message came from this node itself or from the reserved id 0.
    BadSender(NodeId),
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Malformed(s) => write!(f, "malformed message: {s}"),
            StepError::BadSender(id) => write!(f, "message from impossible sender {id}"),
        }
    }
}

impl std::error::Error for StepError {}

/// Why a snapshot offered by the shell was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompactError {
    /// The index is not applied yet, or is already compacted.
    OutOfRange {
        /// The requested index.
        index: LogIndex,
        /// The lowest index that could be compacted to (exclusive).
        first: LogIndex,
        /// The highest (inclusive).
        applied: LogIndex,
    },
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompactError::OutOfRange {
                index,
                first,
                applied,
            } => write!(f, "cannot compact to {index}: outside ({first}, {applied}]"),
        }
    }
}

impl std::error::Error for CompactError {}

/// A node's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Probing whether an election could be won, without disturbing the term.
    PreCandidate,
    /// Campaigning in its own term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// How a follower is being replicated to, as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReplicationState {
    /// One append at a time, looking for the match point.
    Probe,
    /// Appends pipelined, bounded by the in-flight window.
    Replicate,
    /// A snapshot is being streamed.
    Snapshot,
}

/// The leader's view of one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerStatus {
    /// The peer.
    pub id: NodeId,
    /// Highest index known replicated on the peer.
    pub matched: LogIndex,
    /// Next index to send.
    pub next: LogIndex,
    /// Replication state.
    pub state: ReplicationState,
    /// Whether the peer was heard from within the last election timeout.
    pub recent_active: bool,
}

/// A snapshot of an engine's state for operators and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Current role.
    pub role: Role,
    /// Current term (or ballot round).
    pub term: Term,
    /// The leader this node follows, if known.
    pub leader: Option<NodeId>,
    /// Highest index known committed.
    pub commit: LogIndex,
    /// Highest index handed to the shell for applying.
    pub applied: LogIndex,
    /// Index of the first entry still in the log (after the snapshot).
    pub first_index: LogIndex,
    /// Index of the last entry.
    pub last_index: LogIndex,
    /// The membership in effect.
    pub membership: Membership,
    /// Per-peer progress; empty unless leader.
    pub peers: Vec<PeerStatus>,
}

/// The operations every replication engine offers. Implementations are deterministic:
/// the same calls in the same order produce the same outputs.
pub trait Engine {
    /// The engine's wire message.
    type Message: Clone + fmt::Debug;

    /// This node's id.
    fn id(&self) -> NodeId;
    /// Advance the logical clock by one tick.
    fn tick(&mut self);
    /// Handle a message from a peer. A malformed message is refused and changes nothing.
    fn step(&mut self, from: NodeId, msg: Self::Message) -> Result<(), StepError>;
    /// Append a command to the log (leader only).
    fn propose(&mut self, command: Bytes) -> Result<Proposed, ProposeError>;
    /// Request a linearizable read barrier; answered by a [`ReadState`] with `ctx`.
    fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError>;
    /// Propose a membership change (leader only; one at a time).
    fn change_config(&mut self, change: ConfigChange) -> Result<Proposed, ProposeError>;
    /// Hand leadership to `to` (leader only).
    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), ProposeError>;
    /// Whether [`Engine::ready`] has work.
    fn has_ready(&self) -> bool;
    /// Take the pending work. Panics if the previous ready was not advanced (a shell bug).
    fn ready(&mut self) -> Ready<Self::Message>;
    /// The shell finished the ready numbered `number`.
    fn advance(&mut self, number: u64);
    /// The shell took a snapshot of its state machine at `index` (≤ applied); the engine
    /// may drop log entries up to `index` and will send this image to lagging peers.
    fn compact(&mut self, index: LogIndex, data: Bytes) -> Result<(), CompactError>;
    /// The current state.
    fn status(&self) -> Status;
}
