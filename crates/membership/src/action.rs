//! What a detector asks its shell to do, and what it reports.

use consensus::NodeId;

use crate::member::Incarnation;
use crate::message::Message;

/// One output of the detector, in the order produced. The shell sends every `Send`
/// (best effort: losing one is a case the protocol handles) and consumes every `Event`.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Deliver `msg` to node `to`.
    Send {
        /// The recipient.
        to: NodeId,
        /// The message.
        msg: Message,
    },
    /// This node's view of a member changed.
    Event(Event),
}

/// A change in this node's view of the membership. Each is reported once per change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A member is live: heard of for the first time, or back after being dead or
    /// having left (it rejoined at a higher incarnation).
    MemberUp {
        /// The member.
        id: NodeId,
        /// Its incarnation now.
        incarnation: Incarnation,
    },
    /// A member is suspected: a monitor's direct and indirect probes both failed. It
    /// is still live; it has until the suspicion timeout to refute.
    Suspect {
        /// The member.
        id: NodeId,
        /// The incarnation under suspicion.
        incarnation: Incarnation,
        /// The first accuser heard.
        by: NodeId,
    },
    /// A suspected member refuted the suspicion (it is alive at a higher incarnation).
    Alive {
        /// The member.
        id: NodeId,
        /// The incarnation it refuted with.
        incarnation: Incarnation,
    },
    /// A member was declared dead: its suspicion timed out unrefuted.
    Dead {
        /// The member.
        id: NodeId,
        /// The incarnation that died.
        incarnation: Incarnation,
        /// The member whose suspicion timer declared it.
        by: NodeId,
    },
    /// A member left gracefully.
    Left {
        /// The member.
        id: NodeId,
        /// The incarnation it left at.
        incarnation: Incarnation,
    },
    /// This node heard itself suspected or declared dead (or an older life of itself
    /// announced a higher incarnation) and raised its incarnation to refute it. The
    /// shell may persist `incarnation` so a restart starts above it.
    Refuted {
        /// The new incarnation.
        incarnation: Incarnation,
    },
}

impl Event {
    /// The member the event is about (`None` for this node's own [`Event::Refuted`]).
    pub fn member(&self) -> Option<NodeId> {
        match *self {
            Event::MemberUp { id, .. }
            | Event::Suspect { id, .. }
            | Event::Alive { id, .. }
            | Event::Dead { id, .. }
            | Event::Left { id, .. } => Some(id),
            Event::Refuted { .. } => None,
        }
    }
}
