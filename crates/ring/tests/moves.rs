//! From the current map to the target: one test per rule of `moves_to` and `apply`.

mod support;

use ring::{
    Error, HashTags, Keyspace, Members, Move, MoveReason, Node, NodeId, NodeState, ShardId,
    ShardMap,
};
use support::{ids, nodes, placement};

fn map(shards: &[&[u64]]) -> ShardMap {
    ShardMap::new(
        Keyspace::new(shards.len() as u32, HashTags::Redis).unwrap(),
        shards.iter().map(|set| ids(set)).collect(),
    )
    .unwrap()
}

fn mv(shard: u32, from: Option<u64>, to: Option<u64>, reason: MoveReason) -> Move {
    Move {
        shard: ShardId(shard),
        from: from.map(NodeId),
        to: to.map(NodeId),
        reason,
    }
}

#[test]
fn a_map_at_its_target_needs_no_moves() {
    let members = nodes(5);
    let p = placement(256, 3, 16);
    let target = p.compute(&members).unwrap();
    assert_eq!(p.plan(&target, &members).unwrap().moves, vec![]);
}

#[test]
fn a_joining_node_receives_its_share_and_little_else_moves() {
    let p = placement(1024, 3, 64);
    let before = nodes(6);
    let current = p.compute(&before).unwrap();
    let mut after = before.clone();
    after.upsert(Node::new(7)).unwrap();
    let plan = p.plan(&current, &after).unwrap();
    assert!(plan.moves.iter().all(|m| m.reason == MoveReason::Rebalance));
    assert!(plan
        .moves
        .iter()
        .all(|m| m.from.is_some() && m.to.is_some()));
    let share = plan.target.load()[&NodeId(7)] as usize;
    let to_newcomer = plan
        .moves
        .iter()
        .filter(|m| m.to == Some(NodeId(7)))
        .count();
    assert_eq!(to_newcomer, share);
    // Caps shrink when a node joins, so a few shards may also move between old nodes
    // (bounded loads' cascade); here none did.
    assert!(
        plan.moves.len() <= share + share / 10,
        "{} moves",
        plan.moves.len()
    );
}

#[test]
fn a_dead_nodes_replicas_are_repaired_one_per_shard_first() {
    let p = placement(1024, 3, 64);
    let before = nodes(6);
    let current = p.compute(&before).unwrap();
    let mut after = before.clone();
    after.set_state(NodeId(3), NodeState::Dead).unwrap();
    let plan = p.plan(&current, &after).unwrap();
    let held = current.shards_on(NodeId(3));
    let (repairs, rest) = plan.moves.split_at(held.len());
    assert!(repairs
        .iter()
        .all(|m| m.from == Some(NodeId(3)) && m.to.is_some() && m.reason == MoveReason::Repair));
    let shards: Vec<ShardId> = repairs.iter().map(|m| m.shard).collect();
    assert_eq!(shards, held, "one repair per shard, in shard order");
    // The survivors' caps grew, so a few others may rebalance afterwards; here none.
    assert!(rest.iter().all(|m| m.reason == MoveReason::Rebalance));
    assert!(rest.len() <= held.len() / 10, "{} more moves", rest.len());
}

#[test]
fn a_draining_nodes_replicas_drain_before_anything_rebalances() {
    let p = placement(512, 3, 32);
    let before = nodes(5);
    let current = p.compute(&before).unwrap();
    let mut after = before.clone();
    after.set_state(NodeId(2), NodeState::Draining).unwrap();
    let plan = p.plan(&current, &after).unwrap();
    let held = current.load()[&NodeId(2)] as usize;
    let (drains, rest) = plan.moves.split_at(held);
    assert!(drains
        .iter()
        .all(|m| m.from == Some(NodeId(2)) && m.reason == MoveReason::Drain));
    assert!(rest.iter().all(|m| m.reason == MoveReason::Rebalance));
    // Measured: 23 rebalances after the 294 drains, shards re-routed because caps grew.
    assert!(rest.len() <= held / 10, "{} more moves", rest.len());
}

#[test]
fn moves_come_most_urgent_first() {
    // Node 9 is dead, node 8 draining, node 7 gone from the membership.
    let members = Members::new([
        Node::new(1),
        Node::new(2),
        Node::new(3),
        Node::new(4),
        Node::new(8).with_state(NodeState::Draining),
        Node::new(9).with_state(NodeState::Dead),
    ])
    .unwrap();
    let current = map(&[
        &[1, 2, 4],
        &[1, 2, 8],
        &[1, 2, 9],
        &[1, 2],
        &[1, 2, 7],
        &[1, 2, 3, 4],
    ]);
    let target = map(&[
        &[1, 2, 3],
        &[1, 2, 3],
        &[1, 2, 3],
        &[1, 2, 3],
        &[1, 2, 3],
        &[1, 2, 3],
    ]);
    assert_eq!(
        current.moves_to(&target, &members).unwrap(),
        vec![
            mv(2, Some(9), Some(3), MoveReason::Repair),
            mv(3, None, Some(3), MoveReason::Repair),
            mv(4, Some(7), Some(3), MoveReason::Repair),
            mv(1, Some(8), Some(3), MoveReason::Drain),
            mv(0, Some(4), Some(3), MoveReason::Rebalance),
            mv(5, Some(4), None, MoveReason::Trim),
        ]
    );
}

#[test]
fn within_a_shard_the_dead_replica_is_replaced_first() {
    // Nodes 5 (healthy, no longer wanted) and 6 (dead) both leave shard 0; the target's
    // most preferred newcomer, 3, replaces the dead one.
    let members = Members::new((1..=6).map(|i| {
        let node = Node::new(i);
        if i == 6 {
            node.with_state(NodeState::Dead)
        } else {
            node
        }
    }))
    .unwrap();
    let current = map(&[&[5, 1, 6]]);
    let target = map(&[&[3, 1, 4]]);
    assert_eq!(
        current.moves_to(&target, &members).unwrap(),
        vec![
            mv(0, Some(6), Some(3), MoveReason::Repair),
            mv(0, Some(5), Some(4), MoveReason::Rebalance)
        ]
    );
}

#[test]
fn a_new_preferred_leader_is_not_a_move() {
    let members = nodes(3);
    assert_eq!(
        map(&[&[1, 2, 3]])
            .moves_to(&map(&[&[3, 1, 2]]), &members)
            .unwrap(),
        vec![]
    );
    assert!(map(&[&[1, 2, 3]]).converged_to(&map(&[&[3, 1, 2]])));
}

#[test]
fn applying_a_replacement_keeps_the_other_replicas_in_place() {
    let mut m = map(&[&[1, 2, 3]]);
    m.apply(&mv(0, Some(2), Some(7), MoveReason::Rebalance))
        .unwrap();
    assert_eq!(m.replicas(ShardId(0)).unwrap(), ids(&[1, 7, 3]).as_slice());
    m.apply(&mv(0, None, Some(4), MoveReason::Repair)).unwrap();
    assert_eq!(
        m.replicas(ShardId(0)).unwrap(),
        ids(&[1, 7, 3, 4]).as_slice()
    );
    m.apply(&mv(0, Some(1), None, MoveReason::Trim)).unwrap();
    assert_eq!(m.replicas(ShardId(0)).unwrap(), ids(&[7, 3, 4]).as_slice());
}

#[test]
fn a_move_that_does_not_fit_is_refused_and_changes_nothing() {
    let original = map(&[&[1, 2, 3]]);
    let mut m = original.clone();
    for stale in [
        mv(0, Some(9), Some(4), MoveReason::Rebalance), // from is not a replica
        mv(0, Some(1), Some(2), MoveReason::Rebalance), // to already is
        mv(0, None, Some(3), MoveReason::Repair),       // to already is
        mv(0, None, None, MoveReason::Trim),            // names neither
    ] {
        assert_eq!(m.apply(&stale), Err(Error::MoveDoesNotApply(stale)));
    }
    let outside = mv(1, Some(1), Some(4), MoveReason::Rebalance);
    assert_eq!(m.apply(&outside), Err(Error::UnknownShard(ShardId(1))));
    assert_eq!(m, original);
}

#[test]
fn applying_every_move_reaches_the_target() {
    let p = placement(512, 3, 32);
    let mut members =
        Members::new((1..=8).map(|i| Node::new(i).with_zone(["a", "b", "c"][i as usize % 3])))
            .unwrap();
    let mut current = p.compute(&members).unwrap();
    members.set_state(NodeId(1), NodeState::Dead).unwrap();
    members.set_state(NodeId(2), NodeState::Draining).unwrap();
    members.upsert(Node::new(9).with_zone("c")).unwrap();
    members
        .upsert(Node::new(10).with_zone("a").with_weight(2))
        .unwrap();
    let plan = p.plan(&current, &members).unwrap();
    for m in &plan.moves {
        current.apply(m).unwrap();
    }
    assert!(current.converged_to(&plan.target));
}

#[test]
fn maps_of_different_keyspaces_cannot_be_compared() {
    let members = nodes(3);
    assert_eq!(
        map(&[&[1]]).moves_to(&map(&[&[1], &[2]]), &members),
        Err(Error::KeyspaceMismatch)
    );
    let p = placement(4, 1, 8);
    assert_eq!(
        p.plan(&map(&[&[1]]), &members).err(),
        Some(Error::KeyspaceMismatch)
    );
}

#[test]
fn moves_read_plainly() {
    assert_eq!(
        mv(7, Some(3), Some(5), MoveReason::Rebalance).to_string(),
        "shard 7: 3 -> 5 (rebalance)"
    );
    assert_eq!(
        mv(7, None, Some(5), MoveReason::Repair).to_string(),
        "shard 7: +5 (repair)"
    );
    assert_eq!(
        mv(7, Some(3), None, MoveReason::Trim).to_string(),
        "shard 7: -3 (trim)"
    );
}
