//! hakv's consistent-hash ring: keys to shards, shards to replica sets.
//!
//! ```text
//!  key ──Keyspace::shard_of──▶ ShardId ──────────────┐
//!       (hash tag or whole key,                      │ the shard's position: the
//!        kv::key_hash, S equal slices)               │ start of its hash slice
//!                                                    ▼
//!  Members ──Ring::new──▶ Ring (w × V virtual nodes ──walk──▶ [n1, n2, n3]  distinct nodes,
//!  (id, weight, zone,      per active node, at hashed  passing  distinct zones first,
//!   Active/Draining/Dead)  positions)                  over     leader first
//!          ──quotas──▶ caps (~9/8 × fair share) ────── full nodes
//!
//!  Placement::compute(members) ──▶ target ShardMap ◀──moves_to── current ShardMap ──▶ [Move]
//! ```
//!
//! Two levels, as in Dynamo's fixed-partition scheme and Redis Cluster's slots: keys map
//! to a fixed number of shards by hash ([`Keyspace`]), and shards — not keys — are placed
//! on nodes by consistent hashing ([`Ring`], [`Placement`]). A shard is one replication
//! group, so placing shards decides which nodes run which groups; keys never move
//! between shards.
//!
//! The crate is pure: no IO, no clocks, no randomness. Every node computes the same
//! [`ShardMap`] from the same [`Members`], and the hash functions behind it are frozen
//! by tests, because a change would move data in running clusters. Invalid input is an
//! [`Error`], never a panic.
//!
//! Balance is bounded: each node holds at most `max(⌈9/8 × fair share⌉, ⌈fair share⌉ +
//! 1)` replicas while other nodes have room ([`Quota`]; consistent hashing with bounded
//! loads: walks pass over full nodes), and preferred leaders are spread the same way.
//! Movement is near-minimal: one join or departure moves the node's share plus a small
//! cascade of shards re-routed because caps changed (at most a few percent at thousands
//! of shards; see [`Placement`] and the README).
//! [`ShardMap::moves_to`] lists the moves so that the meta group can carry them out
//! gradually.
//!
//! ```
//! use ring::{HashTags, Keyspace, Members, Node, NodeId, NodeState, Placement};
//!
//! let keyspace = Keyspace::new(4096, HashTags::Redis)?;
//! let placement = Placement::new(keyspace, 3, Placement::VNODES_PER_WEIGHT_DEFAULT)?;
//! let zone = |id: u64| if id % 2 == 0 { "east" } else { "west" };
//! let mut members = Members::new((1..=6).map(|id| Node::new(id).with_zone(zone(id))))?;
//! let current = placement.compute(&members)?;
//!
//! // Routing: keys with one hash tag share a shard, hence a replica set.
//! let (shard, replicas) = current.route(b"{user1000}.following");
//! assert_eq!(current.route(b"{user1000}.followers").0, shard);
//! assert_eq!(replicas.len(), 3);
//!
//! // Node 4 dies: each of its replicas is repaired, most urgent first, and a few other
//! // shards rebalance because the survivors' caps grew.
//! members.set_state(NodeId(4), NodeState::Dead)?;
//! let plan = placement.plan(&current, &members)?;
//! let held = current.shards_on(NodeId(4)).len();
//! assert!(plan.moves[..held].iter().all(|m| m.from == Some(NodeId(4)) && m.to.is_some()));
//! assert!(plan.moves.len() <= held + held / 10);
//! # Ok::<(), ring::Error>(())
//! ```

#![warn(missing_docs)]

mod error;
mod hash;
mod keyspace;
mod load;
mod members;
mod moves;
mod placement;
mod quota;
mod ring;
mod shard_map;

pub use error::Error;
pub use hash::vnode_position;
pub use keyspace::{hash_tag, HashTags, Keyspace, ShardId};
pub use load::LoadStats;
pub use members::{Members, Node, NodeId, NodeState};
pub use moves::{Move, MoveReason};
pub use placement::{Placement, Plan};
pub use quota::Quota;
pub use ring::{PreferenceList, Ring};
pub use shard_map::ShardMap;
