//! Prints how evenly the ring spreads replicas and how much one join or departure moves.
//!
//! ```sh
//! cargo run -p ring --example balance --release            # 4,096 shards
//! cargo run -p ring --example balance --release -- 16384   # another shard count
//! ```
//!
//! Nodes have ids 1..=N, weight 1, no zone (the zoned table puts them in 3 zones);
//! 4,096 shards (or the count given), 3 replicas. "replicas/node" is the number of shard replicas a node
//! holds (mean = R·S/N); "leaders" counts the shards that list the node first (its
//! preferred leaderships, mean = S/N). "join moves" is the number of replicas moved when
//! node N+1 joins, relative to the ideal R·S/(N+1); "worst departure" the most moved by
//! any single node leaving, relative to R·S/N (a departure moves exactly what the node
//! held, so this is also the replica max/mean). "place" is the time to compute the whole
//! map.

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

fn row(shards: u32, members: &Members, joiner: Node, vnodes: u32) {
    let placement = Placement::new(
        Keyspace::new(shards, HashTags::Redis).unwrap(),
        REPLICAS,
        vnodes,
    )
    .unwrap();
    let started = Instant::now();
    let map = placement.compute(members).unwrap();
    let place_ms = started.elapsed().as_secs_f64() * 1e3;
    let replicas = map.replica_stats(members).unwrap();
    let leaders = map.leader_stats(members).unwrap();

    let n = members.len() as f64;
    let slots = f64::from(shards * REPLICAS);
    let mut joined = members.clone();
    joined.upsert(joiner).unwrap();
    let join_moved = replicas_gained(&map, &placement.compute(&joined).unwrap());
    let worst_departure = if members.len() > REPLICAS as usize {
        format!("{:.2}", replicas.max / (slots / n))
    } else {
        "—".to_owned() // with N = R no node can leave
    };

    println!(
        "| {:>3} | {:>3} | {:>7.1} | {:>5} | {:>5} | {:>5.3} | {:>5.1} ({:>4.1}%) | {:>5.3} | {:>5} ({:>4.2}) | {:>4} | {:>6.2} |",
        members.len(),
        vnodes,
        replicas.mean,
        replicas.min,
        replicas.max,
        replicas.max_over_mean(),
        replicas.std_dev,
        100.0 * replicas.relative_std_dev(),
        leaders.max_over_mean(),
        join_moved,
        join_moved as f64 / (slots / (n + 1.0)),
        worst_departure,
        place_ms,
    );
}

fn header() {
    println!(
        "|   N |   V | replicas/node mean | min | max | max/mean | std-dev (rel) | leaders max/mean | join moves (/ideal) | worst departure /ideal | place ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
}

fn main() {
    let shards: u32 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().expect("the argument is a shard count"),
        None => 4096,
    };
    println!("{shards} shards, {REPLICAS} replicas, equal weights, no zones\n");
    header();
    for n in [3u64, 5, 10, 20, 50, 100] {
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
