//! Shards to replica sets: one test per placement rule.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use ring::{Error, HashTags, Keyspace, Members, Node, NodeId, NodeState, Placement, Ring, ShardId};
use support::{ids, nodes, placement, zoned};

fn zone_of(members: &Members, id: NodeId) -> String {
    members
        .get(id)
        .unwrap()
        .zone
        .clone()
        .unwrap_or_else(|| format!("own-{id}"))
}

/// The ring position of a shard: the start of its hash slice.
fn position(p: &Placement, shard: u32) -> u64 {
    *p.keyspace().hash_range(ShardId(shard)).unwrap().start()
}

#[test]
fn every_shard_gets_r_distinct_active_nodes() {
    let members = nodes(7);
    let map = placement(512, 3, 64).compute(&members).unwrap();
    for (shard, set) in map.iter() {
        assert_eq!(set.len(), 3, "shard {shard}");
        assert_eq!(
            set.iter().collect::<BTreeSet<_>>().len(),
            3,
            "shard {shard}: {set:?}"
        );
    }
}

#[test]
fn without_zones_the_replicas_are_the_first_r_nodes_clockwise() {
    // Dynamo §4.3: the preference list is the first N distinct nodes met walking clockwise.
    let members = nodes(9);
    let p = placement(256, 3, 32);
    let ring = p.ring(&members).unwrap();
    let map = p.compute(&members).unwrap();
    for (shard, set) in map.iter() {
        let first: Vec<NodeId> = ring
            .preference_list(position(&p, shard.0))
            .take(3)
            .collect();
        assert_eq!(set, first.as_slice(), "shard {shard}");
    }
}

#[test]
fn the_preference_list_names_every_active_node_once() {
    let mut members = nodes(10);
    members.set_state(NodeId(4), NodeState::Dead).unwrap();
    let ring = Ring::new(&members, 16).unwrap();
    let list: Vec<NodeId> = ring.preference_list(12345).collect();
    let expected: BTreeSet<NodeId> = members.eligible().map(|n| n.id).collect();
    assert_eq!(list.len(), 9);
    assert_eq!(list.iter().copied().collect::<BTreeSet<_>>(), expected);
}

#[test]
fn with_enough_zones_each_replica_is_in_a_different_zone() {
    // 12 nodes over 4 zones, 3 replicas: the first node of each of the first 3 zones met.
    let members = zoned(12, &["a", "b", "c", "d"]);
    let p = placement(512, 3, 32);
    let ring = p.ring(&members).unwrap();
    let map = p.compute(&members).unwrap();
    for (shard, set) in map.iter() {
        let zones: BTreeSet<String> = set.iter().map(|n| zone_of(&members, *n)).collect();
        assert_eq!(zones.len(), 3, "shard {shard}: {set:?}");
        let mut expected = Vec::new();
        let mut seen_zones = BTreeSet::new();
        for node in ring.preference_list(position(&p, shard.0)) {
            if seen_zones.insert(zone_of(&members, node)) {
                expected.push(node);
            }
        }
        expected.truncate(3);
        assert_eq!(set, expected.as_slice(), "shard {shard}");
    }
}

#[test]
fn with_fewer_zones_than_replicas_every_zone_holds_one_before_any_holds_two() {
    // 5 replicas over 3 zones: at most 2 per zone, so losing any one zone leaves at
    // least 3 of 5 replicas — a Raft majority.
    let members = zoned(9, &["a", "b", "c"]);
    let map = placement(512, 5, 32).compute(&members).unwrap();
    for (shard, set) in map.iter() {
        let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
        for node in set {
            *per_zone.entry(zone_of(&members, *node)).or_default() += 1;
        }
        assert_eq!(per_zone.len(), 3, "shard {shard}: all zones used");
        assert!(
            per_zone.values().all(|&n| n <= 2),
            "shard {shard}: {per_zone:?}"
        );
    }
}

#[test]
fn a_zone_too_small_for_its_share_runs_out_and_the_others_fill_in() {
    // Zone "solo" has one node, zone "big" five; 3 replicas: every shard takes the solo
    // node (a zone of its own) and two nodes of "big".
    let members = Members::new(
        std::iter::once(Node::new(1).with_zone("solo"))
            .chain((2..=6).map(|i| Node::new(i).with_zone("big"))),
    )
    .unwrap();
    let map = placement(256, 3, 32).compute(&members).unwrap();
    for (shard, set) in map.iter() {
        assert!(set.contains(&NodeId(1)), "shard {shard}: {set:?}");
        assert_eq!(set.len(), 3);
    }
}

#[test]
fn a_node_without_a_zone_is_a_zone_of_its_own() {
    // Two labelled nodes share zone "a"; node 3 has no label. With 2 replicas the two
    // "a" nodes are never chosen together while node 3 is available.
    let members = Members::new([
        Node::new(1).with_zone("a"),
        Node::new(2).with_zone("a"),
        Node::new(3),
    ])
    .unwrap();
    let map = placement(256, 2, 16).compute(&members).unwrap();
    for (shard, set) in map.iter() {
        assert!(set.contains(&NodeId(3)), "shard {shard}: {set:?}");
    }
}

#[test]
fn draining_and_dead_nodes_get_no_replicas() {
    let mut members = nodes(8);
    members.set_state(NodeId(2), NodeState::Draining).unwrap();
    members.set_state(NodeId(5), NodeState::Dead).unwrap();
    let map = placement(512, 3, 32).compute(&members).unwrap();
    let load = map.load();
    assert!(!load.contains_key(&NodeId(2)));
    assert!(!load.contains_key(&NodeId(5)));
    assert_eq!(load.len(), 6);
}

#[test]
fn a_dead_nodes_replica_goes_to_the_next_eligible_node_of_the_walk() {
    let before_members = nodes(10);
    let p = placement(256, 3, 32);
    let ring = p.ring(&before_members).unwrap();
    let before = p.compute(&before_members).unwrap();
    let mut after_members = before_members.clone();
    after_members.set_state(NodeId(7), NodeState::Dead).unwrap();
    let after = p.compute(&after_members).unwrap();
    for (shard, old) in before.iter() {
        let new = after.replicas(shard).unwrap();
        if !old.contains(&NodeId(7)) {
            assert_eq!(new, old, "shard {shard} did not hold the dead node");
            continue;
        }
        // The survivors stay; the newcomer is the fourth node of the old walk.
        let next = ring.preference_list(position(&p, shard.0)).nth(3).unwrap();
        let survivors: Vec<NodeId> = old.iter().copied().filter(|n| *n != NodeId(7)).collect();
        assert!(survivors.iter().all(|n| new.contains(n)), "shard {shard}");
        assert!(new.contains(&next), "shard {shard}: {new:?} lacks {next}");
    }
}

#[test]
fn weight_scales_a_nodes_share() {
    // Node 1 has weight 2 among eight weight-1 nodes: about twice their share.
    let members =
        Members::new(std::iter::once(Node::new(1).with_weight(2)).chain((2..=9).map(Node::new)))
            .unwrap();
    let map = placement(4096, 3, 256).compute(&members).unwrap();
    let load = map.load();
    let others = (2..=9).map(|i| f64::from(load[&NodeId(i)])).sum::<f64>() / 8.0;
    let ratio = f64::from(load[&NodeId(1)]) / others;
    assert!(
        (1.7..=2.3).contains(&ratio),
        "weight-2 node holds {ratio:.2}× a weight-1 node's share"
    );
    // Per unit of weight the map is balanced.
    let stats = map.replica_stats(&members).unwrap();
    assert!(stats.max_over_mean() < 1.3, "{stats:?}");
}

#[test]
fn a_node_never_holds_two_replicas_of_a_shard_however_heavy() {
    // A node with most of the weight still holds one replica per shard: its share is
    // capped at 1/R of the replicas.
    let members = Members::new([Node::new(1).with_weight(50), Node::new(2), Node::new(3)]).unwrap();
    let map = placement(256, 3, 8).compute(&members).unwrap();
    assert!(map.iter().all(|(_, set)| set.len() == 3));
    assert_eq!(map.load()[&NodeId(1)], 256);
}

#[test]
fn the_same_membership_in_any_order_gives_the_same_map() {
    let forward =
        Members::new((1..=12).map(|i| Node::new(i).with_zone(["x", "y", "z"][i as usize % 3])))
            .unwrap();
    let backward = Members::new(
        (1..=12)
            .rev()
            .map(|i| Node::new(i).with_zone(["x", "y", "z"][i as usize % 3])),
    )
    .unwrap();
    let p = placement(1024, 3, 64);
    assert_eq!(p.compute(&forward).unwrap(), p.compute(&backward).unwrap());
}

#[test]
fn the_placement_of_a_reference_cluster_is_frozen() {
    // Part of the cluster contract: a change here would move replicas in running
    // clusters on upgrade. Six nodes over three zones, one of weight 2.
    let members = Members::new([
        Node::new(1).with_zone("a"),
        Node::new(2).with_zone("a").with_weight(2),
        Node::new(3).with_zone("b"),
        Node::new(4).with_zone("b"),
        Node::new(5).with_zone("c"),
        Node::new(6).with_zone("c"),
    ])
    .unwrap();
    // The expected values come from tests/reference/frozen_values.py, a re-implementation
    // of the documented rules (vnode positions, shard positions, the rank rule).
    let map = placement(64, 3, 16).compute(&members).unwrap();
    assert_eq!(
        map.replicas(ShardId(0)).unwrap(),
        ids(&[4, 5, 1]).as_slice()
    );
    assert_eq!(
        map.replicas(ShardId(1)).unwrap(),
        ids(&[5, 1, 3]).as_slice()
    );
    assert_eq!(
        map.replicas(ShardId(63)).unwrap(),
        ids(&[2, 5, 4]).as_slice()
    );
    // Every shard's replica ids, one byte each, in shard and preference order.
    let fingerprint: Vec<u8> = map
        .iter()
        .flat_map(|(_, set)| set.iter().map(|n| n.0 as u8))
        .collect();
    assert_eq!(kv::key_hash(&fingerprint), 0x1b53_8038_955d_6779);
}

#[test]
fn invalid_memberships_are_refused_by_name() {
    assert_eq!(
        Members::new([Node::new(1), Node::new(1)]),
        Err(Error::DuplicateNode(NodeId(1)))
    );
    assert_eq!(
        Members::new([Node::new(3).with_weight(0)]),
        Err(Error::ZeroWeight(NodeId(3)))
    );
    assert_eq!(
        Members::new([Node::new(4).with_zone("")]),
        Err(Error::EmptyZone(NodeId(4)))
    );
    let mut members = nodes(3);
    assert_eq!(
        members.upsert(Node::new(9).with_weight(0)),
        Err(Error::ZeroWeight(NodeId(9)))
    );
    assert_eq!(
        members,
        nodes(3),
        "a refused change leaves the membership as it was"
    );
    assert_eq!(
        members.set_state(NodeId(9), NodeState::Dead),
        Err(Error::UnknownNode(NodeId(9)))
    );
}

#[test]
fn placing_on_too_few_nodes_is_refused_by_name() {
    let p = placement(64, 3, 16);
    assert_eq!(p.compute(&Members::default()), Err(Error::NoActiveNodes));
    assert_eq!(
        p.compute(&nodes(2)),
        Err(Error::TooFewActiveNodes {
            active: 2,
            replicas: 3
        })
    );
    let mut members = nodes(3);
    members.set_state(NodeId(1), NodeState::Draining).unwrap();
    assert_eq!(
        p.compute(&members),
        Err(Error::TooFewActiveNodes {
            active: 2,
            replicas: 3
        }),
        "a draining node does not count"
    );
    for id in 1..=3 {
        members.set_state(NodeId(id), NodeState::Dead).unwrap();
    }
    assert_eq!(p.compute(&members), Err(Error::NoActiveNodes));
}

#[test]
fn invalid_placements_are_refused_by_name() {
    let ks = Keyspace::new(64, HashTags::Redis).unwrap();
    assert_eq!(Placement::new(ks, 0, 16), Err(Error::NoReplicas));
    assert_eq!(Placement::new(ks, 3, 0), Err(Error::NoVnodes));
    let heavy = Members::new([Node::new(1).with_weight(u32::MAX)]).unwrap();
    assert_eq!(
        Ring::new(&heavy, 2).err(),
        Some(Error::TooManyVnodes {
            vnodes: 2 * u64::from(u32::MAX),
            max: Ring::VNODES_MAX
        })
    );
    assert_eq!(
        Ring::new(&nodes(3), 16).unwrap().replicas(0, 4),
        Err(Error::TooFewActiveNodes {
            active: 3,
            replicas: 4
        })
    );
    assert_eq!(
        Ring::new(&nodes(3), 16).unwrap().replicas(0, 0),
        Err(Error::NoReplicas)
    );
}

#[test]
fn errors_explain_themselves() {
    assert_eq!(
        Error::TooFewActiveNodes {
            active: 2,
            replicas: 3
        }
        .to_string(),
        "3 replicas per shard need 3 active nodes, only 2 active"
    );
    assert_eq!(
        Error::ZeroWeight(NodeId(7)).to_string(),
        "node 7 has weight 0 (drain the node to empty it instead)"
    );
}

#[test]
fn members_placements_and_maps_survive_serialization_and_are_checked_on_the_way_in() {
    let members = zoned(5, &["a", "b"]);
    let p = placement(32, 3, 8);
    let map = p.compute(&members).unwrap();
    let round = |s: String| s;
    let members_json = round(serde_json::to_string(&members).unwrap());
    assert_eq!(
        serde_json::from_str::<Members>(&members_json).unwrap(),
        members
    );
    let p_json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Placement>(&p_json).unwrap(), p);
    let map_json = serde_json::to_string(&map).unwrap();
    assert_eq!(
        serde_json::from_str::<ring::ShardMap>(&map_json).unwrap(),
        map
    );

    let duplicate = r#"[{"id":1,"weight":1,"zone":null,"state":"Active"},{"id":1,"weight":1,"zone":null,"state":"Dead"}]"#;
    assert!(serde_json::from_str::<Members>(duplicate).is_err());
    let zero_weight = r#"[{"id":1,"weight":0,"zone":null,"state":"Active"}]"#;
    assert!(serde_json::from_str::<Members>(zero_weight).is_err());
    let no_replicas =
        r#"{"keyspace":{"shards":4,"hash_tags":"Redis"},"replicas":0,"vnodes_per_weight":8}"#;
    assert!(serde_json::from_str::<Placement>(no_replicas).is_err());
    let short_map = r#"{"keyspace":{"shards":2,"hash_tags":"Redis"},"replicas":[[1,2]]}"#;
    assert!(serde_json::from_str::<ring::ShardMap>(short_map).is_err());
    let twice = r#"{"keyspace":{"shards":1,"hash_tags":"Redis"},"replicas":[[1,1]]}"#;
    assert!(serde_json::from_str::<ring::ShardMap>(twice).is_err());
}
