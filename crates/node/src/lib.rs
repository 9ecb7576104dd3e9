//! hakv's node runtime: the thin shell that gives the sans-IO cores sockets, disks and
//! time. This crate grows with the node-runtime issue; today it holds the peer
//! transport.

#![warn(missing_docs)]

pub mod frame;
pub mod transport;
