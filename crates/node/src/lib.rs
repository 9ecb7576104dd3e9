//! hakv's node runtime: the thin shell that gives the sans-IO cores sockets, disks and
//! time. This crate grows with the node-runtime issue; today it holds the peer
//! transport and the replica runtime that drives one replication group with real
//! storage and real sockets.

#![warn(missing_docs)]

pub mod engine;
pub mod frame;
pub mod front;
pub mod http;
pub mod replica;
pub mod transport;
