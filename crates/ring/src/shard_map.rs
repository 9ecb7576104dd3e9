//! The shard map: for each shard of a keyspace, the nodes holding its replicas.
//!
//! A map is either a *target* — computed by [`crate::Placement::compute`] from the
//! membership, preferred leader first — or the *current* map the meta group
//! stores, which [`ShardMap::apply`] edits one [`crate::Move`] at a time while a
//! migration is under way. Both are the same type so they can be compared, diffed
//! ([`ShardMap::moves_to`]) and cached by every node for routing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::keyspace::{Keyspace, ShardId};
use crate::members::NodeId;

/// For each shard of a keyspace, the nodes holding its replicas.
///
/// Invariants (checked on construction and on deserialization): exactly one replica
/// list per shard; no node twice in a list. A list may be shorter or longer than the
/// placement's replica count, or empty — a current map in the middle of a repair is —
/// but never names a node twice.
///
/// In a map from [`crate::Placement::compute`] each list starts with the shard's
/// preferred leader (chosen among its replicas to spread leadership), followed by the
/// other replicas in ring preference order; [`ShardMap::apply`] keeps the order of the
/// nodes it does not touch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ShardMapFields")]
pub struct ShardMap {
    keyspace: Keyspace,
    /// Indexed by shard id; `replicas.len() == keyspace.shards()`.
    replicas: Vec<Vec<NodeId>>,
}

/// The wire form of a [`ShardMap`], checked by [`ShardMap::new`] on the way in.
#[derive(Deserialize)]
struct ShardMapFields {
    keyspace: Keyspace,
    replicas: Vec<Vec<NodeId>>,
}

impl TryFrom<ShardMapFields> for ShardMap {
    type Error = Error;
    fn try_from(fields: ShardMapFields) -> Result<ShardMap, Error> {
        ShardMap::new(fields.keyspace, fields.replicas)
    }
}

impl ShardMap {
    /// A map giving shard `i` the replicas `replicas[i]`.
    ///
    /// Errors: `WrongShardCount` unless there is one list per shard, `DuplicateReplica`
    /// if a list names a node twice.
    pub fn new(keyspace: Keyspace, replicas: Vec<Vec<NodeId>>) -> Result<ShardMap, Error> {
        if replicas.len() != keyspace.shards() as usize {
            return Err(Error::WrongShardCount {
                expected: keyspace.shards(),
                found: replicas.len(),
            });
        }
        for (shard, set) in replicas.iter().enumerate() {
            for (i, node) in set.iter().enumerate() {
                if set[..i].contains(node) {
                    return Err(Error::DuplicateReplica {
                        shard: ShardId(shard as u32),
                        node: *node,
                    });
                }
            }
        }
        Ok(ShardMap { keyspace, replicas })
    }

    /// Builds a map from lists already known to be valid (one per shard, no duplicates).
    pub(crate) fn from_valid(keyspace: Keyspace, replicas: Vec<Vec<NodeId>>) -> ShardMap {
        debug_assert_eq!(replicas.len(), keyspace.shards() as usize);
        ShardMap { keyspace, replicas }
    }

    /// The keyspace the map covers.
    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// The replicas of `shard`, or `None` for a shard outside the keyspace.
    pub fn replicas(&self, shard: ShardId) -> Option<&[NodeId]> {
        self.replicas.get(shard.0 as usize).map(Vec::as_slice)
    }

    /// The shard that owns `key` and its replicas: what a router needs.
    pub fn route(&self, key: &[u8]) -> (ShardId, &[NodeId]) {
        let shard = self.keyspace.shard_of(key);
        // shard_of is always below the shard count, and there is one list per shard.
        (shard, &self.replicas[shard.0 as usize])
    }

    /// Every shard with its replicas, in shard order.
    pub fn iter(&self) -> impl Iterator<Item = (ShardId, &[NodeId])> {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, set)| (ShardId(i as u32), set.as_slice()))
    }

    /// The shards with a replica on `node`, in shard order.
    pub fn shards_on(&self, node: NodeId) -> Vec<ShardId> {
        self.iter()
            .filter(|(_, set)| set.contains(&node))
            .map(|(shard, _)| shard)
            .collect()
    }

    /// How many replicas each node holds. Nodes holding none are absent.
    pub fn load(&self) -> BTreeMap<NodeId, u32> {
        let mut load = BTreeMap::new();
        for node in self.replicas.iter().flatten() {
            *load.entry(*node).or_insert(0) += 1;
        }
        load
    }

    /// How many shards list each node first (its preferred-leader count). Nodes listed
    /// first nowhere are absent.
    pub fn leaders(&self) -> BTreeMap<NodeId, u32> {
        let mut leaders = BTreeMap::new();
        for node in self.replicas.iter().filter_map(|set| set.first()) {
            *leaders.entry(*node).or_insert(0) += 1;
        }
        leaders
    }

    /// Whether every shard is held by the same set of nodes in both maps (order aside),
    /// over the same keyspace: a migration toward `target` is finished.
    pub fn converged_to(&self, target: &ShardMap) -> bool {
        self.keyspace == target.keyspace
            && self
                .replicas
                .iter()
                .zip(&target.replicas)
                .all(|(a, b)| a.len() == b.len() && a.iter().all(|node| b.contains(node)))
    }

    pub(crate) fn sets(&self) -> &[Vec<NodeId>] {
        &self.replicas
    }

    pub(crate) fn set_mut(&mut self, shard: ShardId) -> Option<&mut Vec<NodeId>> {
        self.replicas.get_mut(shard.0 as usize)
    }
}
