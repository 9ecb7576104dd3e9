//! The messages nodes exchange, and the structural checks applied before any of them
//! changes state.
//!
//! ```text
//!  prober A                helper C                 target B
//!     │── Ping{s} ─────────────────────────────────────▶│   every probe interval
//!     │◀──────────────────────────────────────── Ack{s} ─│   (a heartbeat for φ)
//!     │                                                  │
//!     │   φ(B) ≥ threshold:                              │
//!     │── PingReq{s2, B} ──▶│── Ping{s3} ───────────────▶│
//!     │                     │◀──────────────── Ack{s3} ──│
//!     │◀─ IndirectAck{s2,B} ─│                            │
//! ```
//!
//! Every message also carries a few membership claims ([`Update`]s) piggybacked from the
//! sender's dissemination queue; [`Body::Gossip`] exists only to carry them when there
//! is news and no probe traffic to ride on. [`Body::Sync`] exchanges whole member lists:
//! to join (sent to a seed) and for periodic anti-entropy, which also heals partitions.

use consensus::NodeId;

use crate::member::Update;

/// Most piggybacked claims a message may carry (the wire format's bound; a node sends
/// at most its configured `updates_per_message_max`).
pub const UPDATES_MAX: usize = 1024;

/// Most members a [`Body::Sync`] may list.
pub const SYNC_MEMBERS_MAX: usize = 65_536;

/// One message between two detectors. The transport supplies the sender's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// What the message asks or answers.
    pub body: Body,
    /// Membership claims piggybacked on it, most urgent first.
    pub updates: Vec<Update>,
}

/// The protocol part of a [`Message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// "Are you there?" Always answered with an [`Body::Ack`] carrying the same `seq`.
    Ping {
        /// Chosen by the sender, unique among its outstanding pings.
        seq: u64,
    },
    /// The answer to a [`Body::Ping`].
    Ack {
        /// The ping's `seq`.
        seq: u64,
    },
    /// "Please ping `target` for me and tell me if it answers" (SWIM's ping-req).
    PingReq {
        /// The prober's sequence number, echoed in the [`Body::IndirectAck`].
        seq: u64,
        /// The member the prober cannot reach directly.
        target: NodeId,
    },
    /// "`target` answered the ping I sent on your behalf."
    IndirectAck {
        /// The prober's `seq` from the [`Body::PingReq`].
        seq: u64,
        /// The member that answered.
        target: NodeId,
    },
    /// Carries piggybacked claims only.
    Gossip,
    /// The sender's whole member list, itself included. A sync that is not a reply is
    /// answered with the receiver's own list (`reply: true`).
    Sync {
        /// This sync answers one; do not answer it.
        reply: bool,
        /// One claim per member known to the sender.
        members: Vec<Update>,
    },
}

/// A message refused before it changed anything: malformed or impossible. The sender
/// is buggy or hostile; the reason says what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// Structural checks on a message from `from`: sender and target ids non-zero, list
/// sizes within the wire bounds, every claim well formed (see [`Update::defect`]).
pub fn validate(from: NodeId, msg: &Message) -> Result<(), Refused> {
    if from == 0 {
        return Err(Refused("sender id 0".into()));
    }
    if msg.updates.len() > UPDATES_MAX {
        return Err(Refused(format!(
            "{} piggybacked updates",
            msg.updates.len()
        )));
    }
    let listed: &[Update] = match &msg.body {
        Body::PingReq { target, .. } | Body::IndirectAck { target, .. } if *target == 0 => {
            return Err(Refused("target id 0".into()));
        }
        Body::Sync { members, .. } if members.len() > SYNC_MEMBERS_MAX => {
            return Err(Refused(format!("{} members in a sync", members.len())));
        }
        Body::Sync { members, .. } => members,
        _ => &[],
    };
    for u in msg.updates.iter().chain(listed) {
        if let Some(defect) = u.defect() {
            return Err(Refused(format!("{defect}: {u:?}")));
        }
    }
    Ok(())
}
