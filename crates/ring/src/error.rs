//! Why a ring input was refused.
//!
//! Everything the ring is given — a membership, a keyspace, a placement configuration, a
//! stored shard map, a move — may come from an operator or from the wire, so every bad
//! value is an [`Error`] naming what is wrong, never a panic.

use std::fmt;

use crate::keyspace::ShardId;
use crate::members::NodeId;
use crate::moves::Move;

/// Why a ring input was refused. Each variant names the offending value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A keyspace must have at least one shard.
    NoShards,
    /// More shards than [`crate::Keyspace::SHARDS_MAX`].
    TooManyShards {
        /// The shard count asked for.
        shards: u32,
        /// The largest allowed.
        max: u32,
    },
    /// A placement must keep at least one replica of each shard.
    NoReplicas,
    /// A placement must give each unit of weight at least one virtual node.
    NoVnodes,
    /// Two nodes share an id.
    DuplicateNode(NodeId),
    /// A node's weight is zero; to take a node out of placement, drain it instead.
    ZeroWeight(NodeId),
    /// A node's zone label is the empty string; leave the zone out instead.
    EmptyZone(NodeId),
    /// The node is not a member.
    UnknownNode(NodeId),
    /// No member is active, so no shard can be placed.
    NoActiveNodes,
    /// Fewer active nodes than replicas: each replica must be on a distinct node.
    TooFewActiveNodes {
        /// Active members.
        active: usize,
        /// Replicas per shard asked for.
        replicas: u32,
    },
    /// The active nodes' weights ask for more virtual nodes than
    /// [`crate::Ring::VNODES_MAX`].
    TooManyVnodes {
        /// Virtual nodes asked for (the sum of weight × vnodes per weight).
        vnodes: u64,
        /// The largest allowed.
        max: u64,
    },
    /// Two shard maps (or a map and a placement) disagree on the keyspace.
    KeyspaceMismatch,
    /// A shard map lists a different number of shards than its keyspace has.
    WrongShardCount {
        /// Shards in the keyspace.
        expected: u32,
        /// Replica sets listed.
        found: usize,
    },
    /// A shard id at or past the keyspace's shard count.
    UnknownShard(ShardId),
    /// A replica set names the same node twice.
    DuplicateReplica {
        /// The shard.
        shard: ShardId,
        /// The node named twice.
        node: NodeId,
    },
    /// A move does not fit the map: its `from` is not a replica of the shard, its `to`
    /// already is, or it names neither.
    MoveDoesNotApply(Move),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoShards => write!(f, "a keyspace needs at least one shard"),
            Error::TooManyShards { shards, max } => {
                write!(f, "{shards} shards asked for, at most {max} allowed")
            }
            Error::NoReplicas => write!(f, "a placement needs at least one replica per shard"),
            Error::NoVnodes => write!(
                f,
                "a placement needs at least one virtual node per unit of weight"
            ),
            Error::DuplicateNode(id) => write!(f, "node {id} is listed twice"),
            Error::ZeroWeight(id) => {
                write!(
                    f,
                    "node {id} has weight 0 (drain the node to empty it instead)"
                )
            }
            Error::EmptyZone(id) => {
                write!(
                    f,
                    "node {id} has an empty zone label (leave the zone out instead)"
                )
            }
            Error::UnknownNode(id) => write!(f, "node {id} is not a member"),
            Error::NoActiveNodes => write!(f, "no active node to place shards on"),
            Error::TooFewActiveNodes { active, replicas } => write!(
                f,
                "{replicas} replicas per shard need {replicas} active nodes, only {active} active"
            ),
            Error::TooManyVnodes { vnodes, max } => {
                write!(f, "{vnodes} virtual nodes asked for, at most {max} allowed")
            }
            Error::KeyspaceMismatch => write!(f, "the shard maps have different keyspaces"),
            Error::WrongShardCount { expected, found } => {
                write!(f, "a shard map for {expected} shards lists {found}")
            }
            Error::UnknownShard(shard) => write!(f, "shard {shard} is not in the keyspace"),
            Error::DuplicateReplica { shard, node } => {
                write!(f, "shard {shard} lists node {node} twice")
            }
            Error::MoveDoesNotApply(m) => write!(f, "move {m} does not apply to the shard map"),
        }
    }
}

impl std::error::Error for Error {}
