//! Properties of placement and moves over random memberships, checked against a naive
//! re-implementation of the rules.
//!
//! What is asserted, and why it holds:
//!
//! * **Reference** — `Placement::compute` equals `naive_placement`: a linear scan for the
//!   first virtual node at or after the shard's position, a walk of the whole ring
//!   listing distinct nodes, ranks within zones, sort by (rank, order), take R. The real
//!   walk stops early; this checks that stopping early never changes the answer.
//! * **Determinism** — the map depends on the set of nodes, not the order given.
//! * **Distinctness** — R distinct active nodes per shard over `min(R, zones)` zones, and
//!   at most `⌈R / zones⌉` per zone when every zone has that many active nodes: rank-1
//!   keys (one per zone) sort before rank-2 keys, and so on.
//! * **Minimal movement, exactly** — adding node x (or raising its weight) changes each
//!   shard by at most one replica, and the newcomer is always x; removing, draining or
//!   killing x (or lowering its weight) changes each shard by at most one replica, and
//!   the one leaving is always x. So moves = x's new load (join) or x's old load
//!   (departure) — the least any placement giving x that load could move. (Inserting x
//!   into a preference list only lowers the keys of x's zone, each to at most the old
//!   key of the next lower rank, so at most one more node of that zone enters the top R
//!   — and it must be x; the other zones' keys and order do not change.)
//! * **Minimal movement, in size** — with equal weights and no zones, x's load is near
//!   R·S/N, so one join or departure moves at most 2·R·S/N replicas (the measured ratio is
//!   within about ±20% of 1 at 64+ virtual nodes: see `balance.rs` and the README).
//! * **Plans** — from any current map, moves touch only shards whose node set differs,
//!   are `max(leaving, arriving)` per shard, never name neither node, apply in any order
//!   and any subset, and all together converge to the target.
//! * **Robustness** — arbitrary (invalid) input gives `Err`, never a panic.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::Index;
use ring::{
    vnode_position, Error, HashTags, Keyspace, Members, Move, MoveReason, Node, NodeId, NodeState,
    Placement, ShardId, ShardMap,
};
use support::replicas_gained;

// ---------------------------------------------------------------------------------------
// The naive reference.

/// A node's failure domain: its zone label, or itself.
fn domain(node: &Node) -> (Option<String>, NodeId) {
    match &node.zone {
        Some(zone) => (Some(zone.clone()), NodeId(0)),
        None => (None, node.id),
    }
}

fn naive_placement(members: &Members, p: &Placement) -> Result<Vec<Vec<NodeId>>, Error> {
    let active: Vec<&Node> = members.eligible().collect();
    if active.is_empty() {
        return Err(Error::NoActiveNodes);
    }
    if active.len() < p.replicas() as usize {
        return Err(Error::TooFewActiveNodes {
            active: active.len(),
            replicas: p.replicas(),
        });
    }
    let mut points: Vec<(u64, NodeId)> = Vec::new();
    for node in &active {
        for i in 0..node.weight * p.vnodes_per_weight() {
            points.push((vnode_position(node.id, i), node.id));
        }
    }
    points.sort();
    let mut map = Vec::new();
    for shard in p.keyspace().shard_ids() {
        let position = *p.keyspace().hash_range(shard).unwrap().start();
        let start = points
            .iter()
            .position(|(at, _)| *at >= position)
            .unwrap_or(0);
        let mut list: Vec<NodeId> = Vec::new();
        for step in 0..points.len() {
            let node = points[(start + step) % points.len()].1;
            if !list.contains(&node) {
                list.push(node);
            }
        }
        let mut met: BTreeMap<(Option<String>, NodeId), usize> = BTreeMap::new();
        let mut keyed: Vec<(usize, usize, NodeId)> = Vec::new();
        for (order, node) in list.iter().enumerate() {
            let rank = met.entry(domain(members.get(*node).unwrap())).or_default();
            *rank += 1;
            keyed.push((*rank, order, *node));
        }
        keyed.sort();
        keyed.truncate(p.replicas() as usize);
        keyed.sort_by_key(|(_, order, _)| *order);
        map.push(keyed.into_iter().map(|(_, _, node)| node).collect());
    }
    Ok(map)
}

// ---------------------------------------------------------------------------------------
// Strategies.

fn state() -> impl Strategy<Value = NodeState> {
    prop_oneof![8 => Just(NodeState::Active), 1 => Just(NodeState::Draining), 1 => Just(NodeState::Dead)]
}

/// A valid membership of 1..=24 nodes with random ids, weights 1..=3, and — in clusters
/// with zones — 80% of nodes labelled with one of `zones` zones.
fn members() -> impl Strategy<Value = Members> {
    (0u8..=5).prop_flat_map(|zones| {
        let zone = if zones == 0 {
            Just(None).boxed()
        } else {
            prop::option::weighted(0.8, (0..zones).prop_map(|z| format!("z{z}"))).boxed()
        };
        prop::collection::btree_map(any::<u64>(), (1u32..=3, zone, state()), 1..=24).prop_map(
            |nodes| {
                Members::new(nodes.into_iter().map(|(id, (weight, zone, state))| Node {
                    id: NodeId(id),
                    weight,
                    zone,
                    state,
                }))
                .unwrap()
            },
        )
    })
}

fn placement() -> impl Strategy<Value = Placement> {
    (1u32..=128, 1u32..=5, 1u32..=32, any::<bool>()).prop_map(|(shards, replicas, vnodes, tags)| {
        let tags = if tags { HashTags::Redis } else { HashTags::Off };
        Placement::new(Keyspace::new(shards, tags).unwrap(), replicas, vnodes).unwrap()
    })
}

/// A membership and placement with enough active nodes to place.
fn placeable() -> impl Strategy<Value = (Members, Placement)> {
    (members(), placement()).prop_filter("enough active nodes", |(m, p)| {
        m.eligible().count() >= p.replicas() as usize
    })
}

/// As `placeable`, with at least one active node more than the replicas, so that one
/// can leave.
fn placeable_with_spare() -> impl Strategy<Value = (Members, Placement)> {
    placeable().prop_filter("an active node to spare", |(m, p)| {
        m.eligible().count() > p.replicas() as usize
    })
}

/// A Fisher–Yates shuffle driven by `seed` (a 64-bit LCG), so a failing case replays.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
}

fn active_ids(members: &Members) -> Vec<NodeId> {
    members.eligible().map(|n| n.id).collect()
}

/// Asserts the exact minimal-movement shape of a change that concerns only node `x`:
/// every changed shard swaps one replica, and `x` is the one arriving (`x_arrives`) or
/// leaving. Returns the number of replicas moved.
fn assert_only_x_moves(
    before: &ShardMap,
    after: &ShardMap,
    x: NodeId,
    x_arrives: bool,
) -> Result<usize, TestCaseError> {
    let mut moved = 0;
    for ((shard, old), (_, new)) in before.iter().zip(after.iter()) {
        let gained: Vec<NodeId> = new.iter().copied().filter(|n| !old.contains(n)).collect();
        let lost: Vec<NodeId> = old.iter().copied().filter(|n| !new.contains(n)).collect();
        prop_assert!(
            gained.len() <= 1 && gained.len() == lost.len(),
            "shard {}: {:?} -> {:?}",
            shard,
            old,
            new
        );
        if let (Some(&g), Some(&l)) = (gained.first(), lost.first()) {
            if x_arrives {
                prop_assert_eq!(g, x, "shard {}: {:?} -> {:?}", shard, old, new);
            } else {
                prop_assert_eq!(l, x, "shard {}: {:?} -> {:?}", shard, old, new);
            }
            moved += 1;
        }
    }
    Ok(moved)
}

proptest! {
    #[test]
    fn placement_equals_the_naive_reference((members, p) in (members(), placement())) {
        let fast = p.compute(&members).map(|map| map.iter().map(|(_, set)| set.to_vec()).collect::<Vec<_>>());
        prop_assert_eq!(fast, naive_placement(&members, &p));
    }

    #[test]
    fn placement_does_not_depend_on_the_order_nodes_are_given((members, p) in placeable(), seed: u64) {
        let mut nodes: Vec<Node> = members.iter().cloned().collect();
        shuffle(&mut nodes, seed);
        let shuffled = Members::new(nodes).unwrap();
        prop_assert_eq!(p.compute(&members).unwrap(), p.compute(&shuffled).unwrap());
    }

    #[test]
    fn replicas_are_distinct_active_nodes_spread_over_zones((members, p) in placeable()) {
        let map = p.compute(&members).unwrap();
        let r = p.replicas() as usize;
        let mut zone_sizes: BTreeMap<(Option<String>, NodeId), usize> = BTreeMap::new();
        for node in members.eligible() {
            *zone_sizes.entry(domain(node)).or_default() += 1;
        }
        let zones = zone_sizes.len();
        let cap = r.div_ceil(zones);
        let every_zone_big_enough = zone_sizes.values().all(|&size| size >= cap);
        for (shard, set) in map.iter() {
            prop_assert_eq!(set.len(), r);
            prop_assert_eq!(set.iter().collect::<BTreeSet<_>>().len(), r, "shard {}: {:?}", shard, set);
            let mut per_zone: BTreeMap<(Option<String>, NodeId), usize> = BTreeMap::new();
            for id in set {
                let node = members.get(*id).unwrap();
                prop_assert_eq!(node.state, NodeState::Active);
                *per_zone.entry(domain(node)).or_default() += 1;
            }
            prop_assert_eq!(per_zone.len(), r.min(zones), "shard {}: {:?}", shard, set);
            if every_zone_big_enough {
                prop_assert!(per_zone.values().all(|&n| n <= cap), "shard {}: {:?}", shard, per_zone);
            }
        }
    }

    #[test]
    fn a_join_moves_replicas_only_onto_the_newcomer_and_only_its_share(
        (members, p) in placeable(), id: u64, weight in 1u32..=3, zone in prop::option::of(0u8..6),
    ) {
        prop_assume!(members.get(NodeId(id)).is_none());
        let before = p.compute(&members).unwrap();
        let mut joined = members.clone();
        let zone = zone.map(|z| format!("z{z}"));
        joined.upsert(Node { id: NodeId(id), weight, zone, state: NodeState::Active }).unwrap();
        let after = p.compute(&joined).unwrap();
        let moved = assert_only_x_moves(&before, &after, NodeId(id), true)?;
        prop_assert_eq!(moved as u32, after.load().get(&NodeId(id)).copied().unwrap_or(0));
        let planned = before.moves_to(&after, &joined).unwrap();
        prop_assert_eq!(planned.len(), moved);
    }

    #[test]
    fn a_departure_moves_only_the_replicas_the_node_held(
        (members, p) in placeable_with_spare(), which: Index, how in 0u8..3,
    ) {
        let x = which.get(&active_ids(&members)).to_owned();
        let before = p.compute(&members).unwrap();
        let mut changed = members.clone();
        match how {
            0 => { changed.remove(x); }
            1 => changed.set_state(x, NodeState::Draining).unwrap(),
            _ => changed.set_state(x, NodeState::Dead).unwrap(),
        }
        let after = p.compute(&changed).unwrap();
        let moved = assert_only_x_moves(&before, &after, x, false)?;
        prop_assert_eq!(moved as u32, before.load().get(&x).copied().unwrap_or(0));
    }

    #[test]
    fn a_weight_change_moves_replicas_only_to_or_from_that_node(
        (members, p) in placeable(), which: Index, weight in 1u32..=6,
    ) {
        let x = which.get(&active_ids(&members)).to_owned();
        let old = members.get(x).unwrap().clone();
        let mut changed = members.clone();
        changed.upsert(Node { weight, ..old.clone() }).unwrap();
        let before = p.compute(&members).unwrap();
        let after = p.compute(&changed).unwrap();
        assert_only_x_moves(&before, &after, x, weight >= old.weight)?;
    }

    #[test]
    fn one_join_or_departure_of_n_equal_nodes_moves_at_most_2_r_s_over_n(
        n in 4u64..=40, replicas in 1u32..=3, vnodes in prop::sample::select(vec![64u32, 128, 256]),
        first_id: u64, which: Index,
    ) {
        let ids: Vec<u64> = (0..=n).map(|i| first_id.wrapping_add(i.wrapping_mul(0x9e37_79b9))).collect();
        let base = Members::new(ids[..n as usize].iter().map(|&id| Node::new(id))).unwrap();
        let p = Placement::new(Keyspace::new(1024, HashTags::Redis).unwrap(), replicas, vnodes).unwrap();
        let before = p.compute(&base).unwrap();
        let replica_slots = f64::from(replicas) * 1024.0;

        let mut joined = base.clone();
        joined.upsert(Node::new(ids[n as usize])).unwrap();
        let moved = replicas_gained(&before, &p.compute(&joined).unwrap()) as f64;
        prop_assert!(moved <= 2.0 * replica_slots / (n + 1) as f64, "join of 1 to {}: moved {}", n, moved);

        let mut left = base.clone();
        left.remove(NodeId(*which.get(&ids[..n as usize])));
        let moved = replicas_gained(&before, &p.compute(&left).unwrap()) as f64;
        prop_assert!(moved <= 2.0 * replica_slots / n as f64, "departure of 1 of {}: moved {}", n, moved);
    }

    #[test]
    fn any_current_map_converges_to_the_target_move_by_move(
        (members, p) in placeable(),
        picks in prop::collection::vec(prop::collection::vec(any::<Index>(), 0..6), 128),
        order_seed: u64,
    ) {
        // A current map drawn from the members plus two nodes that left long ago.
        let mut pool: Vec<NodeId> = members.iter().map(|n| n.id).collect();
        pool.extend([NodeId(u64::MAX), NodeId(u64::MAX - 1)]);
        let sets: Vec<Vec<NodeId>> = p.keyspace().shard_ids().map(|shard| {
            let mut set: Vec<NodeId> = Vec::new();
            for pick in &picks[shard.0 as usize % picks.len()] {
                let node = *pick.get(&pool);
                if !set.contains(&node) {
                    set.push(node);
                }
            }
            set
        }).collect();
        let mut current = ShardMap::new(*p.keyspace(), sets).unwrap();
        let plan = p.plan(&current, &members).unwrap();

        for (shard, set) in current.iter() {
            let wanted = plan.target.replicas(shard).unwrap();
            let leaving = set.iter().filter(|n| !wanted.contains(n)).count();
            let arriving = wanted.iter().filter(|n| !set.contains(n)).count();
            let moves = plan.moves.iter().filter(|m| m.shard == shard).count();
            prop_assert_eq!(moves, leaving.max(arriving), "shard {}", shard);
        }
        prop_assert!(plan.moves.iter().all(|m| m.from.is_some() || m.to.is_some()));
        prop_assert!(plan.moves.windows(2).all(|w| (w[0].reason, w[0].shard) <= (w[1].reason, w[1].shard)));

        // Any order works: apply them shuffled, each must fit.
        let mut moves = plan.moves.clone();
        shuffle(&mut moves, order_seed);
        for m in &moves {
            prop_assert_eq!(current.apply(m), Ok(()), "{}", m);
        }
        prop_assert!(current.converged_to(&plan.target));
        prop_assert_eq!(current.moves_to(&plan.target, &members).unwrap(), vec![]);
    }

    #[test]
    fn arbitrary_input_is_refused_or_placed_never_a_panic(
        raw in prop::collection::vec(
            (0u64..12, 0u32..4, prop::option::of(prop::sample::select(vec!["", "a", "b"])), state()),
            0..12,
        ),
        shards in 0u32..64, replicas in 0u32..6, vnodes in 0u32..8,
    ) {
        let nodes = raw.into_iter().map(|(id, weight, zone, state)| Node {
            id: NodeId(id), weight, zone: zone.map(str::to_owned), state,
        });
        let Ok(members) = Members::new(nodes) else { return Ok(()) };
        let Ok(keyspace) = Keyspace::new(shards, HashTags::Redis) else { return Ok(()) };
        let Ok(p) = Placement::new(keyspace, replicas, vnodes) else { return Ok(()) };
        if let Ok(map) = p.compute(&members) {
            prop_assert_eq!(map.iter().count(), shards as usize);
            prop_assert!(map.iter().all(|(_, set)| set.len() == replicas as usize));
        }
        // A stored map that is garbage for this membership still plans or refuses.
        let garbage = ShardMap::new(keyspace, (0..shards).map(|s| vec![NodeId(u64::from(s))]).collect()).unwrap();
        let _ = p.plan(&garbage, &members);
        let outside = Move { shard: ShardId(shards), from: None, to: Some(NodeId(1)), reason: MoveReason::Repair };
        prop_assert_eq!(garbage.clone().apply(&outside), Err(Error::UnknownShard(ShardId(shards))));
    }
}
