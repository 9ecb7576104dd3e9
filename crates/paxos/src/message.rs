//! Multi-Paxos wire messages. The sender's id travels outside the message (the
//! transport authenticates it). Every message names one ballot; what that ballot means
//! depends on the direction:
//!
//! | kind | sent by | `ballot` is |
//! |---|---|---|
//! | `PrePrepare`, `Prepare`, `Accept`, `Heartbeat`, `InstallSnapshot`, `TimeoutNow` | a proposer | its own ballot (its node is the sender) |
//! | `PrePrepareAck`, `Promise`, `Accepted`, `HeartbeatAck`, `SnapshotAck`, `Nack` | an acceptor | the proposer's ballot it answers |

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use consensus::{Entry, LogIndex, Payload, SnapshotMeta};

use crate::ballot::Ballot;

/// A value proposed for a slot: the payload and the ballot of the leader that first
/// proposed it there. A leader that re-proposes a value it learned from promises keeps
/// its origin, so `(slot, origin)` names one proposal across re-proposals, crashes and
/// nodes — which is what [`consensus::Proposed`] promises the shell.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Value {
    /// The ballot of the leader that first proposed this value in its slot.
    pub origin: Ballot,
    /// What the value carries.
    pub payload: Payload,
}

impl Value {
    /// Approximate encoded size in bytes (flow control and batching limits).
    pub fn size_bytes(&self) -> usize {
        8 + self.payload.size_bytes()
    }

    /// The value as the shell sees it once chosen in `slot`: an entry whose term is the
    /// encoded origin ballot (see [`Ballot::to_term`]).
    pub fn to_entry(&self, slot: LogIndex) -> Entry {
        Entry {
            term: self.origin.to_term(),
            index: slot,
            payload: self.payload.clone(),
        }
    }
}

/// An acceptor's acceptance: `value` accepted in `ballot`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Accepted {
    /// The ballot in which the value was accepted (≥ `value.origin`).
    pub ballot: Ballot,
    /// The value.
    pub value: Value,
}

/// One slot of a promise: what the acceptor accepted there.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Report {
    /// The slot.
    pub slot: LogIndex,
    /// The acceptance.
    pub accepted: Accepted,
}

/// A Multi-Paxos message: a ballot (see the module table) and what it says.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// The ballot this message is about.
    pub ballot: Ballot,
    /// The content.
    pub body: Body,
}

/// The kinds of Multi-Paxos message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Body {
    /// Would you promise this ballot (for every slot after `commit`)? Changes no state
    /// on the receiver; the ballot is the one the sender would campaign with.
    PrePrepare {
        /// The sender's chosen prefix.
        commit: LogIndex,
    },
    /// Answer to `PrePrepare`.
    PrePrepareAck {
        /// Whether the promise would be made.
        granted: bool,
    },
    /// Phase 1a, for every slot after `commit` at once: "promise to ignore ballots below
    /// mine and tell me what you accepted after `commit`".
    Prepare {
        /// The proposer's chosen prefix: it needs reports only for later slots.
        commit: LogIndex,
        /// Sent because the leader handed over (`TimeoutNow`): overrides stickiness.
        transfer: bool,
    },
    /// Phase 1b; leaves only once the promise is durable.
    Promise {
        /// The acceptor's chosen prefix (every slot up to it holds the chosen value).
        commit: LogIndex,
        /// Every acceptance after the proposer's `commit`, in slot order.
        accepted: Vec<Report>,
    },
    /// Phase 2a for the contiguous slots `first, first + 1, …` (many slots per message),
    /// plus the leader's chosen prefix.
    Accept {
        /// Slot of `values[0]`.
        first: LogIndex,
        /// The proposals.
        values: Vec<Value>,
        /// The leader's commit index.
        commit: LogIndex,
    },
    /// Phase 2b; leaves only once the acceptances are durable.
    Accepted {
        /// The last slot of the `Accept` answered (frees the leader's window).
        last: LogIndex,
        /// Every slot up to here is chosen (and held) or accepted in this ballot: the
        /// acceptor's contiguous acknowledgement, which the leader counts.
        through: LogIndex,
        /// The acceptor's commit index.
        commit: LogIndex,
    },
    /// A refusal: the acceptor promised `promised`. If that is above the message's
    /// ballot the proposer was preempted; otherwise it was refused for now (the acceptor
    /// follows a live leader, or has compacted slots the proposer lacks).
    Nack {
        /// The acceptor's promised ballot.
        promised: Ballot,
    },
    /// Leader liveness and commit propagation; `read_round` numbers it for reads.
    Heartbeat {
        /// The leader's commit index.
        commit: LogIndex,
        /// The read-confirmation round this heartbeat belongs to.
        read_round: u64,
    },
    /// Answer to `Heartbeat`. Promises nothing about durability; `through` is limited
    /// to what is already durable.
    HeartbeatAck {
        /// The round being acknowledged.
        read_round: u64,
        /// As in `Accepted`, but counting only durable slots.
        through: LogIndex,
        /// The acceptor's commit index.
        commit: LogIndex,
    },
    /// One chunk of the leader's snapshot, sent in order.
    InstallSnapshot {
        /// Which snapshot.
        meta: SnapshotMeta,
        /// Its total size in bytes.
        total_bytes: u64,
        /// Byte offset of `chunk`.
        offset: u64,
        /// The bytes.
        chunk: Bytes,
        /// The leader's commit index (decides when the snapshot may be installed).
        commit: LogIndex,
    },
    /// Acknowledges snapshot chunks: the acceptor expects `offset` next.
    SnapshotAck {
        /// Which snapshot (by last index).
        index: LogIndex,
        /// Next byte expected.
        offset: u64,
    },
    /// Campaign now, overriding stickiness: leadership is being handed to you.
    TimeoutNow,
}

impl Body {
    /// A short name for traces and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::PrePrepare { .. } => "PrePrepare",
            Body::PrePrepareAck { .. } => "PrePrepareAck",
            Body::Prepare { .. } => "Prepare",
            Body::Promise { .. } => "Promise",
            Body::Accept { .. } => "Accept",
            Body::Accepted { .. } => "Accepted",
            Body::Nack { .. } => "Nack",
            Body::Heartbeat { .. } => "Heartbeat",
            Body::HeartbeatAck { .. } => "HeartbeatAck",
            Body::InstallSnapshot { .. } => "InstallSnapshot",
            Body::SnapshotAck { .. } => "SnapshotAck",
            Body::TimeoutNow => "TimeoutNow",
        }
    }
}
