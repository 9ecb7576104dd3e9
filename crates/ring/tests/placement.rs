//! Shards to replica sets: one test per placement rule.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use ring::{
    Error, HashTags, Keyspace, Members, Node, NodeId, NodeState, Placement, Quota, Ring, ShardId,
    ShardMap,
};
use support::{ids, nodes, placement, replicas_gained, zoned};

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

fn quota(p: &Placement, members: &Members, id: u64) -> Quota {
    p.quotas(members)
        .unwrap()
        .into_iter()
        .find(|q| q.node == NodeId(id))
        .unwrap()
}

/// Asserts that no node holds more replicas, or leads more shards, than its caps.
fn assert_within_caps(p: &Placement, members: &Members, map: &ShardMap) {
    let (load, leaders) = (map.load(), map.leaders());
    for q in p.quotas(members).unwrap() {
        let held = load.get(&q.node).copied().unwrap_or(0);
        let led = leaders.get(&q.node).copied().unwrap_or(0);
        assert!(held <= q.replicas_max, "{q:?} holds {held}");
        assert!(led <= q.leaders_max, "{q:?} leads {led}");
    }
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
fn without_zones_the_rings_own_choice_is_the_first_r_nodes_clockwise() {
    // Dynamo §4.3: the preference list is the first N distinct nodes met walking clockwise.
    let members = nodes(9);
    let p = placement(256, 3, 32);
    let ring = p.ring(&members).unwrap();
    for shard in 0..256 {
        let first: Vec<NodeId> = ring.preference_list(position(&p, shard)).take(3).collect();
        assert_eq!(ring.replicas(position(&p, shard), 3).unwrap(), first);
    }
}

#[test]
fn without_zones_each_shard_takes_the_first_r_nodes_clockwise_that_are_not_full() {
    // Bounded loads (Mirrokni, Thorup, Zadimoghaddam 2017): shards are placed one by one,
    // in bit-reversed id order, and a node that holds its cap is passed over. With
    // 30 ≥ 9·R nodes some R always have room, so no full node is ever needed.
    let members = nodes(30);
    let p = placement(256, 3, 32);
    let ring = p.ring(&members).unwrap();
    let map = p.compute(&members).unwrap();
    let caps: BTreeMap<NodeId, u32> = p
        .quotas(&members)
        .unwrap()
        .iter()
        .map(|q| (q.node, q.replicas_max))
        .collect();
    let mut held: BTreeMap<NodeId, u32> = BTreeMap::new();
    let mut passed_over_full = 0;
    for step in 0..256u32 {
        let shard = step.reverse_bits() >> 24; // 8 bits for 256 shards
        let list: Vec<NodeId> = ring.preference_list(position(&p, shard)).collect();
        let with_room: Vec<NodeId> = list
            .iter()
            .copied()
            .filter(|n| held.get(n).copied().unwrap_or(0) < caps[n])
            .take(3)
            .collect();
        passed_over_full += usize::from(with_room[..] != list[..3]);
        let got = map.replicas(ShardId(shard)).unwrap();
        // The leader may be any of them; the others keep their clockwise order.
        let (leader, rest) = got.split_first().unwrap();
        let expected_rest: Vec<NodeId> =
            with_room.iter().copied().filter(|n| n != leader).collect();
        assert!(
            with_room.contains(leader),
            "shard {shard}: {got:?}, want {with_room:?}"
        );
        assert_eq!(rest, expected_rest.as_slice(), "shard {shard}");
        for node in got {
            *held.entry(*node).or_default() += 1;
        }
    }
    assert!(passed_over_full > 0, "the caps took effect in this example");
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
    // 12 nodes over 4 zones, 3 replicas: three distinct zones, full nodes or not.
    let members = zoned(12, &["a", "b", "c", "d"]);
    let p = placement(512, 3, 32);
    let map = p.compute(&members).unwrap();
    for (shard, set) in map.iter() {
        let zones: BTreeSet<String> = set.iter().map(|n| zone_of(&members, *n)).collect();
        assert_eq!(zones.len(), 3, "shard {shard}: {set:?}");
    }
}

#[test]
fn with_enough_zones_the_rings_own_choice_is_the_first_node_of_each_of_the_first_r_zones() {
    let members = zoned(12, &["a", "b", "c", "d"]);
    let p = placement(512, 3, 32);
    let ring = p.ring(&members).unwrap();
    for shard in 0..512 {
        let mut expected = Vec::new();
        let mut seen_zones = BTreeSet::new();
        for node in ring.preference_list(position(&p, shard)) {
            if seen_zones.insert(zone_of(&members, node)) {
                expected.push(node);
            }
        }
        expected.truncate(3);
        assert_eq!(ring.replicas(position(&p, shard), 3).unwrap(), expected);
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
fn in_the_rings_own_choice_a_dead_nodes_place_goes_to_the_next_node_of_the_walk() {
    let before_members = nodes(10);
    let p = placement(256, 3, 32);
    let before = p.ring(&before_members).unwrap();
    let mut after_members = before_members.clone();
    after_members.set_state(NodeId(7), NodeState::Dead).unwrap();
    let after = p.ring(&after_members).unwrap();
    for shard in 0..256 {
        let at = position(&p, shard);
        let (old, new) = (
            before.replicas(at, 3).unwrap(),
            after.replicas(at, 3).unwrap(),
        );
        if !old.contains(&NodeId(7)) {
            assert_eq!(new, old, "shard {shard} did not hold the dead node");
            continue;
        }
        // The survivors stay; the newcomer is the fourth node of the old walk.
        let next = before.preference_list(at).nth(3).unwrap();
        let survivors: Vec<NodeId> = old.iter().copied().filter(|n| *n != NodeId(7)).collect();
        assert!(survivors.iter().all(|n| new.contains(n)), "shard {shard}");
        assert!(new.contains(&next), "shard {shard}: {new:?} lacks {next}");
    }
}

#[test]
fn sixteen_shards_on_five_nodes_stay_within_caps_and_a_sixth_node_takes_a_fair_share() {
    // The product's `hakv up --nodes 5 --shards 16`, then one more node. With the ring
    // alone node 5 held 13 of the 48 replicas and the newcomer got 4 (fair: 8).
    let p = placement(16, 3, Placement::VNODES_PER_WEIGHT_DEFAULT);
    let five = nodes(5);
    let before = p.compute(&five).unwrap();
    assert_within_caps(&p, &five, &before);
    assert_eq!(quota(&p, &five, 1).replicas_max, 11, "⌈9/8 × 9.6⌉");

    let six = nodes(6);
    let after = p.compute(&six).unwrap();
    assert_within_caps(&p, &six, &after);
    assert_eq!(quota(&p, &six, 6).replicas_max, 9, "⌈9/8 × 8⌉");
    let joiner = after.load()[&NodeId(6)];
    assert!((7..=9).contains(&joiner), "the newcomer holds {joiner}");
    // Measured: 8 replicas moved to the newcomer, and 1 more between the others.
    let moved = replicas_gained(&before, &after);
    assert!(moved <= joiner as usize + 3, "moved {moved}");
}

#[test]
fn a_fair_share_follows_weight_but_stops_at_one_replica_per_shard() {
    // Weights 3, 1, 1, 2, 1: node 1's part of 3 × 4096 would be 4608, more than one
    // replica of each of the 4,096 shards, so it holds one of each and the rest is split
    // by weight: 8192 / 5 = 1638.4 per unit.
    let members = Members::new([
        Node::new(1).with_weight(3),
        Node::new(2),
        Node::new(3),
        Node::new(4).with_weight(2),
        Node::new(5),
    ])
    .unwrap();
    let p = placement(4096, 3, 256);
    let fair: Vec<(f64, u32, u32)> = p
        .quotas(&members)
        .unwrap()
        .iter()
        .map(|q| (q.replicas_fair, q.replicas_max, q.leaders_max))
        .collect();
    assert_eq!(
        fair,
        vec![
            (4096.0, 4096, 1536),
            (1638.4, 1844, 615),
            (1638.4, 1844, 615),
            (3276.8, 3687, 1229),
            (1638.4, 1844, 615),
        ]
    );
}

#[test]
fn each_zone_takes_its_share_of_every_shard_and_splits_it_among_its_nodes() {
    // 3 replicas over 3 zones: every zone holds one replica of each of the 64 shards,
    // whatever its size, so each of zone b's three nodes should hold 64/3 and each node
    // of zones a and c 32 — not 3 × 64 / 7 each, which the zone rule cannot give.
    let members = zoned(7, &["a", "b", "c"]); // b: 1, 4, 7; c: 2, 5; a: 3, 6
    let p = placement(64, 3, 64);
    for q in p.quotas(&members).unwrap() {
        let expected = if q.node.0 % 3 == 1 { 64.0 / 3.0 } else { 32.0 };
        assert!((q.replicas_fair - expected).abs() < 1e-9, "{q:?}");
    }
    assert_within_caps(&p, &members, &p.compute(&members).unwrap());
}

#[test]
fn a_cap_leaves_at_least_one_replica_of_slack_over_the_fair_share() {
    // 21 shards, 1 replica: a fair share of 21/23 or 21/24 of a shard. ⌈9/8 × share⌉
    // would be 2 and then 1, every node would be full at 1, and a join would reshuffle
    // most shards; the cap is never below ⌈share⌉ + 1.
    let p = placement(21, 1, 64);
    assert_eq!(quota(&p, &nodes(23), 1).replicas_max, 2);
    assert_eq!(quota(&p, &nodes(24), 1).replicas_max, 2);
    // At larger shares the 9/8 takes over: 12,288 / 100 = 122.88, cap ⌈138.24⌉.
    assert_eq!(
        quota(&placement(4096, 3, 64), &nodes(100), 1).replicas_max,
        139
    );
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
    // of the documented rules (vnode positions, shard positions, caps, bit-reversed
    // order, the rank rule with full nodes, leader caps).
    let p = placement(64, 3, 16);
    let map = p.compute(&members).unwrap();
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
        ids(&[3, 2, 6]).as_slice()
    );
    // Every shard's replica ids, one byte each, in shard and list order.
    let fingerprint: Vec<u8> = map
        .iter()
        .flat_map(|(_, set)| set.iter().map(|n| n.0 as u8))
        .collect();
    assert_eq!(kv::key_hash(&fingerprint), 0x2e92_19dc_559f_7825);
    // Zone a (nodes 1 and 2, weights 1 and 2) holds one replica per shard like the
    // others, split 1 : 2.
    let caps: Vec<(u32, u32)> = p
        .quotas(&members)
        .unwrap()
        .iter()
        .map(|q| (q.replicas_max, q.leaders_max))
        .collect();
    assert_eq!(
        caps,
        vec![(24, 8), (48, 16), (36, 12), (36, 12), (36, 12), (36, 12)]
    );
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
