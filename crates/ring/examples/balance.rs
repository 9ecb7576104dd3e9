//! Prints how evenly placement spreads replicas and preferred leaders, and how much one
//! join or departure moves, with bounded loads and with the ring alone.
//!
//! ```sh
//! cargo run -p ring --example balance --release            # 4,096 shards
//! cargo run -p ring --example balance --release -- 16      # another shard count
//! ```
//!
//! Nodes have ids 1..=N, weight 1, no zone (the zoned table puts them in 3 zones), 3
//! replicas. *ring* is the ring's own choice for every shard (`Ring::replicas`, what
//! `Placement::compute` returned before bounded loads); *bounded* is
//! `Placement::compute`. Replicas per node have mean R·S/N, leaders (first places) S/N;
//! max/mean and the relative std-dev are over the active nodes. *join* is node N+1
//! joining: replicas moved over the ideal R·S/(N+1), and how many of them did not go to
//! the newcomer (the cascade). *departure* is every node leaving in turn: the most moved
//! over R·S/N, and the cascade summed over all departures as a share of the replicas
//! the departing nodes held. *place ms* is computing the whole bounded map.

use std::time::Instant;

use ring::{HashTags, Keyspace, Members, Node, Placement, ShardMap};

const REPLICAS: u32 = 3;

fn replicas_gained(before: &ShardMap, after: &ShardMap) -> usize {
    before
        .iter()
        .zip(after.iter())
        .map(|((_, b), (_, a))| a.iter().filter(|n| !b.contains(n)).count())
        .sum()
}

/// The ring's own choice for every shard, in ring preference order.
fn ring_only(placement: &Placement, members: &Members) -> ShardMap {
    let ring = placement.ring(members).unwrap();
    let keyspace = *placement.keyspace();
    let sets = keyspace
        .shard_ids()
        .map(|shard| {
            let position = *keyspace.hash_range(shard).unwrap().start();
            ring.replicas(position, placement.replicas()).unwrap()
        })
        .collect();
    ShardMap::new(keyspace, sets).unwrap()
}

fn row(shards: u32, members: &Members, joiner: Node, vnodes: u32) {
    let placement = Placement::new(
        Keyspace::new(shards, HashTags::Redis).unwrap(),
        REPLICAS,
        vnodes,
    )
    .unwrap();
    let ring = ring_only(&placement, members);
    let ring_replicas = ring.replica_stats(members).unwrap();
    let ring_leaders = ring.leader_stats(members).unwrap();
    let started = Instant::now();
    let map = placement.compute(members).unwrap();
    let place_ms = started.elapsed().as_secs_f64() * 1e3;
    let replicas = map.replica_stats(members).unwrap();
    let leaders = map.leader_stats(members).unwrap();

    let n = members.len() as f64;
    let slots = f64::from(shards * REPLICAS);
    let joiner_id = joiner.id;
    let mut joined = members.clone();
    joined.upsert(joiner).unwrap();
    let after = placement.compute(&joined).unwrap();
    let join_moved = replicas_gained(&map, &after);
    let join_cascade = join_moved - after.load().get(&joiner_id).copied().unwrap_or(0) as usize;

    let departure = if members.len() > REPLICAS as usize {
        let load = map.load();
        let (mut worst, mut held_sum, mut cascade_sum) = (0usize, 0usize, 0usize);
        for node in members.iter() {
            let mut left = members.clone();
            left.remove(node.id);
            let moved = replicas_gained(&map, &placement.compute(&left).unwrap());
            let held = load.get(&node.id).copied().unwrap_or(0) as usize;
            worst = worst.max(moved);
            held_sum += held;
            cascade_sum += moved - held;
        }
        format!(
            "{:.2} | {:>4.1}%",
            worst as f64 / (slots / n),
            100.0 * cascade_sum as f64 / held_sum as f64
        )
    } else {
        "— | —".to_owned() // with N = R no node can leave
    };

    println!(
        "| {:>3} | {:>3} | {:>7.1} | {:.3} | {:>4.1}% | {:.3} | {:>5} | {:>5} | {:.3} | {:>4.1}% | {:.3} | {:.2} | {:>4} | {} | {:>5.2} |",
        members.len(),
        vnodes,
        replicas.mean,
        ring_replicas.max_over_mean(),
        100.0 * ring_replicas.relative_std_dev(),
        ring_leaders.max_over_mean(),
        replicas.min,
        replicas.max,
        replicas.max_over_mean(),
        100.0 * replicas.relative_std_dev(),
        leaders.max_over_mean(),
        join_moved as f64 / (slots / (n + 1.0)),
        join_cascade,
        departure,
        place_ms,
    );
}

fn header() {
    println!(
        "| N | V | replicas/node mean | ring max/mean | ring std-dev | ring leaders max/mean | min | max | max/mean | std-dev | leaders max/mean | join moved /ideal | join cascade | worst departure /ideal | departure cascade | place ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
}

fn main() {
    let shards: u32 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().expect("the argument is a shard count"),
        None => 4096,
    };
    println!("{shards} shards, {REPLICAS} replicas, equal weights, no zones\n");
    header();
    for n in [3u64, 4, 5, 6, 10, 20, 50, 100] {
        for vnodes in [16, 64, 256] {
            let members = Members::new((1..=n).map(Node::new)).unwrap();
            row(shards, &members, Node::new(n + 1), vnodes);
        }
    }

    println!("\n{shards} shards, {REPLICAS} replicas, equal weights, nodes spread over 3 zones\n");
    header();
    for n in [6u64, 9, 30, 99] {
        for vnodes in [64, 256] {
            let zone = |i: u64| ["a", "b", "c"][i as usize % 3];
            let members = Members::new((1..=n).map(|i| Node::new(i).with_zone(zone(i)))).unwrap();
            row(
                shards,
                &members,
                Node::new(n + 1).with_zone(zone(n + 1)),
                vnodes,
            );
        }
    }
}
