//! hakv's Raft core: a sans-IO, deterministic implementation of the Raft consensus
//! protocol (Ongaro & Ousterhout 2014; Ongaro's thesis 2014) behind the
//! [`consensus::Engine`] contract.
//!
//! What is implemented, with the rule each file owns:
//! - leader election with randomized timeouts from a seeded RNG, **pre-vote** and
//!   **check-quorum** (`election.rs`);
//! - log replication with **batching**, **pipelining** under a count/bytes window, fast
//!   backtracking by conflict term, Probe/Replicate/Snapshot states (`replication.rs`,
//!   `progress.rs`);
//! - commitment only by counting replicas of current-term entries, a no-op per new
//!   leader;
//! - **snapshots and compaction**, InstallSnapshot in chunks;
//! - **membership changes by joint consensus** with learners and automatic leave;
//! - **leadership transfer** (TimeoutNow);
//! - **linearizable reads** by ReadIndex or a leader lease (`read.rs`);
//! - durability order in the types: grants and acks travel in
//!   [`consensus::Ready::messages_after_sync`].
//!
//! Nothing here reads a clock, a socket, a disk or global randomness.

#![warn(missing_docs)]

mod config;
mod election;
mod log;
mod message;
mod progress;
mod raft;
mod read;
mod replication;
mod validate;
pub mod wire;

pub use config::{Config, FaultKnobs, ReadMode};
pub use message::{Body, Message};
pub use raft::Raft;
