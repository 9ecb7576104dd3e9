//! The replication-engine contract shared by hakv's consensus cores.
//!
//! Raft (crate `raft`) and Multi-Paxos (crate `paxos`) both implement [`Engine`], so the
//! state machine, storage, transport, simulator and benchmarks are written once. Every
//! engine is *sans-IO*: messages and ticks go in, a [`Ready`] of actions comes out, and
//! the shell that owns disks, sockets and clocks carries them out in the documented
//! order. What must be durable before which message may leave is part of the type
//! ([`Ready::messages_after_sync`]).

#![warn(missing_docs)]

pub mod codec;
mod engine;
mod membership;
mod rng;
mod types;

pub use engine::{
    CompactError, Engine, Outbound, PeerStatus, ProposeError, Proposed, ReadState, Ready,
    ReplicationState, Role, Status, StepError,
};
pub use membership::{ConfigChange, ConfigError, MemberChange, Membership, VoteResult};
pub use rng::Rng;
pub use types::{
    Entry, HardState, LogIndex, NodeId, Payload, Recovered, Snapshot, SnapshotMeta, Term,
};
