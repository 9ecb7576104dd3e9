//! hakv's node runtime: the thin shell that gives the sans-IO cores sockets, disks and
//! time: the peer transport, the host that drives every replication group of a node
//! over one log engine, the Redis-protocol front and the operator HTTP endpoint.

#![warn(missing_docs)]

pub mod cluster;
pub mod detector;
pub mod engine;
pub mod frame;
pub mod front;
pub mod host;
pub mod http;
pub mod replica;
pub mod transport;
