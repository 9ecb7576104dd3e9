//! The cluster's metadata as the meta group stores it: plain keys and values, so the
//! meta group is an ordinary replicated KV store and `redis-cli` can read it.
//!
//! ```text
//!   meta        = "1,2,4"                 the meta group's own replicas (absent: the founding
//!                                         five, see [`founding_meta`])
//!   shard/00007 = "5,1,4"                 replica set, first choice first (preferred leader)
//!   node/3      = "dead"                  a founder's record, once something is known
//!   node/6      = "active 10.0.0.6:7379 10.0.0.6:7380"   a joiner, with its addresses
//! ```
//!
//! Values that do not parse are skipped, never trusted: a hand-edited or damaged key
//! costs that key, not the map.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use consensus::NodeId;

use crate::front::route::META_SHARD;

/// A node's record in the meta group (`node/<id>`): its state and, for nodes that
/// joined after the founding, its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// active, draining or dead.
    pub state: ring::NodeState,
    /// Client (RESP) and peer addresses, for nodes that joined.
    pub addrs: Option<(SocketAddr, SocketAddr)>,
}

impl NodeRecord {
    /// The stored form: `active|draining|dead [client peer]`.
    pub fn encode(&self) -> String {
        let state = match self.state {
            ring::NodeState::Active => "active",
            ring::NodeState::Draining => "draining",
            ring::NodeState::Dead => "dead",
        };
        match self.addrs {
            Some((c, p)) => format!("{state} {c} {p}"),
            None => state.to_string(),
        }
    }

    /// Parses the stored form; `None` for anything else.
    pub fn decode(b: &[u8]) -> Option<NodeRecord> {
        let text = std::str::from_utf8(b).ok()?;
        let mut parts = text.split(' ');
        let state = match parts.next()? {
            "active" => ring::NodeState::Active,
            "draining" => ring::NodeState::Draining,
            "dead" => ring::NodeState::Dead,
            _ => return None,
        };
        let addrs = match (parts.next(), parts.next()) {
            (Some(c), Some(p)) => Some((c.parse().ok()?, p.parse().ok()?)),
            _ => None,
        };
        Some(NodeRecord { state, addrs })
    }
}

/// The key of the meta group's replica set.
pub const META_KEY: &str = "meta";

/// Most replicas the meta group has: five survive two failures, and more would only
/// slow every map write.
pub const META_REPLICAS_MAX: usize = 5;

/// The meta group a cluster is founded with: its first five founders by id.
pub fn founding_meta(founders: &[NodeId]) -> Vec<NodeId> {
    let mut f = founders.to_vec();
    f.sort_unstable();
    f.dedup();
    f.truncate(META_REPLICAS_MAX);
    f
}

/// The shard map and node records as the meta group holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaMap {
    /// The meta group's replicas, once the manager has moved them.
    pub meta: Option<Vec<NodeId>>,
    /// Replica set of each shard.
    pub shards: BTreeMap<u32, Vec<NodeId>>,
    /// Node records (founders appear only once something was recorded about them).
    pub nodes: BTreeMap<NodeId, NodeRecord>,
}

impl MetaMap {
    /// The map held by the meta group's keys and values; keys of neither kind and
    /// values that do not parse are ignored.
    pub fn from_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> MetaMap {
        let mut map = MetaMap::default();
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            let Ok(k) = std::str::from_utf8(k) else {
                continue;
            };
            if k == META_KEY {
                map.meta = parse_set(v).filter(|set| !set.is_empty());
            } else if let Some(s) = k.strip_prefix("shard/").and_then(|s| s.parse::<u32>().ok()) {
                if let Some(set) = parse_set(v) {
                    map.shards.insert(s, set);
                }
            } else if let Some(n) = k.strip_prefix("node/").and_then(|n| n.parse::<u64>().ok()) {
                if let Some(r) = NodeRecord::decode(v) {
                    map.nodes.insert(n, r);
                }
            }
        }
        map
    }

    /// The meta group's replica set: as recorded, else the founding one.
    pub fn meta_replicas(&self, founders: &[NodeId]) -> Vec<NodeId> {
        self.meta.clone().unwrap_or_else(|| founding_meta(founders))
    }

    /// The replica set of `shard` ([`META_SHARD`] for the meta group's), if mapped.
    pub fn replicas_of(&self, shard: u32, founders: &[NodeId]) -> Option<Vec<NodeId>> {
        if shard == META_SHARD {
            return Some(self.meta_replicas(founders));
        }
        self.shards.get(&shard).cloned()
    }

    /// Whether `n` was declared dead.
    pub fn is_dead(&self, n: NodeId) -> bool {
        self.nodes
            .get(&n)
            .is_some_and(|r| r.state == ring::NodeState::Dead)
    }

    /// Every member: the founders and the nodes that joined.
    pub fn members(&self, founders: &[NodeId]) -> BTreeSet<NodeId> {
        founders
            .iter()
            .copied()
            .chain(self.nodes.keys().copied())
            .collect()
    }
}

/// The meta key of a shard's replica set (zero-padded, so KEYS lists shards in order).
pub fn shard_key(shard: u32) -> String {
    format!("shard/{shard:05}")
}

/// The meta key of a node's record.
pub fn node_key(node: NodeId) -> String {
    format!("node/{node}")
}

/// The stored form of a replica set: ids joined by commas, first choice first.
pub fn encode_set(nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_set(b: &[u8]) -> Option<Vec<NodeId>> {
    std::str::from_utf8(b)
        .ok()?
        .split(',')
        .map(|n| n.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_value_round_trips_and_garbage_is_ignored() {
        assert_eq!(
            parse_set(encode_set(&[5, 1, 4]).as_bytes()),
            Some(vec![5, 1, 4])
        );
        assert_eq!(parse_set(b"1,x"), None);
    }

    #[test]
    fn a_map_is_read_from_its_keys_and_skips_what_does_not_parse() {
        let map = MetaMap::from_pairs([
            (shard_key(7), "5,1,4".to_string()),
            (shard_key(8), "5,x".to_string()),
            (META_KEY.to_string(), "2,4,6".to_string()),
            (node_key(3), "dead".to_string()),
            (node_key(6), "active 127.0.0.1:1 127.0.0.1:2".to_string()),
            (node_key(9), "asleep".to_string()),
            ("other".to_string(), "1".to_string()),
        ]);
        assert_eq!(map.shards, BTreeMap::from([(7, vec![5, 1, 4])]));
        assert_eq!(map.meta_replicas(&[1, 2, 3]), vec![2, 4, 6]);
        assert_eq!(map.replicas_of(META_SHARD, &[1, 2, 3]), Some(vec![2, 4, 6]));
        assert_eq!(
            MetaMap::default().meta_replicas(&[7, 1, 2, 3, 4, 5, 6]),
            vec![1, 2, 3, 4, 5]
        );
        assert!(map.is_dead(3));
        assert!(!map.is_dead(6));
        assert_eq!(map.nodes.len(), 2);
        assert_eq!(
            map.members(&[1, 2, 3]),
            [1, 2, 3, 6].into_iter().collect::<BTreeSet<_>>()
        );
    }
}
