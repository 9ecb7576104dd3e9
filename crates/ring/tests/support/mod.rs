//! Helpers shared by the integration tests.
#![allow(dead_code)]

use ring::{HashTags, Keyspace, Members, Node, NodeId, Placement, ShardMap};

/// `n` active, unzoned, weight-1 nodes with ids 1..=n.
pub fn nodes(n: u64) -> Members {
    Members::new((1..=n).map(Node::new)).unwrap()
}

/// Nodes 1..=n, node i in zone `zones[i % zones.len()]`.
pub fn zoned(n: u64, zones: &[&str]) -> Members {
    Members::new((1..=n).map(|i| Node::new(i).with_zone(zones[i as usize % zones.len()]))).unwrap()
}

pub fn placement(shards: u32, replicas: u32, vnodes: u32) -> Placement {
    Placement::new(
        Keyspace::new(shards, HashTags::Redis).unwrap(),
        replicas,
        vnodes,
    )
    .unwrap()
}

/// The number of (shard, node) replica slots that differ between two maps: replicas
/// in `after` that `before` did not have.
pub fn replicas_gained(before: &ShardMap, after: &ShardMap) -> usize {
    before
        .iter()
        .zip(after.iter())
        .map(|((_, b), (_, a))| a.iter().filter(|n| !b.contains(n)).count())
        .sum()
}

pub fn ids(raw: &[u64]) -> Vec<NodeId> {
    raw.iter().copied().map(NodeId).collect()
}
