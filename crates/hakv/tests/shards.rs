//! A sharded cluster of real `hakv server` processes: 5 nodes, 16 shards, 3 replicas
//! each, placed by the consistent-hash ring. Clients talk to any node and never learn
//! the placement: single-key commands reach their shard's leader, multi-key and
//! keyspace-wide commands are split over shards and merged, SCAN walks every shard,
//! and a node killed with SIGKILL leaves every shard serving (each keeps a quorum of
//! two) with no acknowledged write lost.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use redis::Commands;
use support::{connect_retry, dump_logs, Cluster};

const NODES: u64 = 5;
const SHARDS: u32 = 16;

fn sharded(engine: &str, tag: &str, slot: u16) -> Cluster {
    let shards = SHARDS.to_string();
    let c = Cluster::sized(engine, tag, slot, NODES, &["--shards", &shards]);
    wait_for_leaders(&c);
    c
}

/// Waits until the nodes together lead every shard.
fn wait_for_leaders(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let led: u32 = (1..=c.n)
            .filter(|&i| c.nodes[i as usize - 1].is_some())
            .map(|i| info_field(c.port(i), "hakv_shards_led").unwrap_or(0))
            .sum();
        if led >= SHARDS {
            return;
        }
        if Instant::now() > deadline {
            dump_logs(&c.dir);
            panic!("only {led} of {SHARDS} shards have a leader after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn info_field(port: u16, field: &str) -> Option<u32> {
    let mut conn = support::connect(port)?;
    let info: String = redis::cmd("INFO").query(&mut conn).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
}

/// Every key SCAN returns, walking the whole keyspace with a small COUNT.
fn scan_all(conn: &mut redis::Connection, pattern: Option<&str>) -> (BTreeSet<String>, usize) {
    let mut cursor: u64 = 0;
    let mut seen = BTreeSet::new();
    let mut steps = 0;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("COUNT").arg(7);
        if let Some(p) = pattern {
            cmd.arg("MATCH").arg(p);
        }
        let (next, keys): (u64, Vec<String>) = cmd.query(conn).unwrap();
        seen.extend(keys);
        steps += 1;
        assert!(steps < 10_000, "SCAN does not terminate");
        if next == 0 {
            return (seen, steps);
        }
        cursor = next;
    }
}

fn every_command_works_across_shards(engine: &str, slot: u16) {
    let c = sharded(engine, "shards-commands", slot);
    let mut conns: Vec<redis::Connection> = (1..=NODES).map(|i| connect_retry(c.port(i))).collect();

    // Every node holds some shards; together they hold 3 replicas of each.
    let held: Vec<u32> = (1..=NODES)
        .map(|i| info_field(c.port(i), "hakv_shards_held").unwrap())
        .collect();
    assert_eq!(
        held.iter().sum::<u32>(),
        SHARDS * 3,
        "replicas held: {held:?}"
    );

    // MSET of 200 keys through one node spans every shard.
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let pairs: Vec<(String, String)> = (0..200)
        .map(|i| (format!("key:{i}"), format!("v{i}")))
        .collect();
    let _: () = conns[0].mset(&pairs).unwrap();
    model.extend(pairs.iter().cloned());

    // MGET through every node returns the values in request order.
    let keys: Vec<&String> = pairs.iter().map(|(k, _)| k).collect();
    for conn in conns.iter_mut() {
        let mut ask: Vec<String> = keys.iter().rev().map(|k| k.to_string()).collect();
        ask.insert(7, "missing".into());
        let got: Vec<Option<String>> = conn.mget(&ask).unwrap();
        let want: Vec<Option<String>> = ask.iter().map(|k| model.get(k).cloned()).collect();
        assert_eq!(got, want);
    }

    // Single-key commands on any node reach the key's shard.
    for (i, (k, _)) in pairs.iter().enumerate().take(40) {
        let conn = &mut conns[i % NODES as usize];
        let n: i64 = conn.append(k, "+").unwrap();
        model.get_mut(k).unwrap().push('+');
        assert_eq!(n as usize, model[k].len());
        let v: String = conns[(i + 1) % NODES as usize].get(k).unwrap();
        assert_eq!(v, model[k], "read of {k} through another node");
    }
    let n: i64 = conns[2].incr("counter", 5).unwrap();
    assert_eq!(n, 5);
    model.insert("counter".into(), "5".into());

    // Counting commands sum over shards.
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut conns[3]).unwrap();
    assert_eq!(dbsize, model.len());
    let exists: usize = redis::cmd("EXISTS")
        .arg(&["key:1", "key:2", "nope", "key:150", "key:1"])
        .query(&mut conns[4])
        .unwrap();
    assert_eq!(exists, 4, "EXISTS counts repeats, as Redis does");

    // KEYS and a full SCAN return every key exactly as the model has them.
    let mut all: Vec<String> = conns[1].keys("*").unwrap();
    all.sort();
    assert_eq!(all, model.keys().cloned().collect::<Vec<_>>());
    let (scanned, steps) = scan_all(&mut conns[2], None);
    assert_eq!(scanned, model.keys().cloned().collect::<BTreeSet<_>>());
    assert!(
        steps > SHARDS as usize,
        "COUNT 7 over {} keys takes many steps",
        model.len()
    );
    let (matched, _) = scan_all(&mut conns[0], Some("key:1*"));
    let want: BTreeSet<String> = model
        .keys()
        .filter(|k| k.starts_with("key:1"))
        .cloned()
        .collect();
    assert_eq!(matched, want);

    // DEL across shards counts what it removed.
    let del: Vec<String> = (0..50)
        .map(|i| format!("key:{i}"))
        .chain(["nope".to_string()])
        .collect();
    let removed: usize = conns[4].del(&del).unwrap();
    assert_eq!(removed, 50);
    for k in &del {
        model.remove(k);
    }
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut conns[0]).unwrap();
    assert_eq!(dbsize, model.len());

    // Keys with one hash tag share a shard: a multi-key write on them is one shard's.
    let _: () = conns[1]
        .mset(&[("{user7}.name", "ada"), ("{user7}.mail", "ada@x")])
        .unwrap();
    let got: Vec<String> = conns[3].mget(&["{user7}.name", "{user7}.mail"]).unwrap();
    assert_eq!(got, vec!["ada", "ada@x"]);

    // A bad cursor is refused with Redis's words.
    let e = redis::cmd("SCAN")
        .arg("notanumber")
        .query::<redis::Value>(&mut conns[0])
        .unwrap_err();
    assert!(e.to_string().contains("invalid cursor"), "{e}");
}

#[test]
fn every_command_works_across_shards_raft() {
    every_command_works_across_shards("raft", 0);
}

#[test]
fn every_command_works_across_shards_paxos() {
    every_command_works_across_shards("paxos", 0);
}

fn a_killed_node_leaves_every_shard_serving(engine: &str, slot: u16) {
    let mut c = sharded(engine, "shards-kill", slot);
    let mut conn = connect_retry(c.port(1));
    let keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    for k in &keys {
        let _: () = conn.set(k, "before").unwrap();
    }
    // Node 3 dies without a chance to flush: every shard it held keeps two replicas.
    c.kill(3);
    let started = Instant::now();
    let mut conns: Vec<(u64, redis::Connection)> = [1u64, 2, 4, 5]
        .iter()
        .map(|&i| (i, connect_retry(c.port(i))))
        .collect();
    for (n, k) in keys.iter().enumerate() {
        let (via, conn) = &mut conns[n % 4];
        // A shard that lost its leader elects another; clients may see TRYAGAIN briefly.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match conn.set::<_, _, ()>(k, "after") {
                Ok(()) => break,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("SET {k} via node {via}: {e}; retrying");
                    if e.is_io_error() || e.is_timeout() {
                        // A timed-out connection may still deliver the late reply.
                        *conn = connect_retry(c.port(*via));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    dump_logs(&c.dir);
                    panic!("SET {k} via node {via} still failing: {e}");
                }
            }
        }
    }
    println!(
        "every shard accepted writes {:?} after node 3 died",
        started.elapsed()
    );
    let got: Vec<String> = conns[0].1.mget(&keys).unwrap();
    assert!(got.iter().all(|v| v == "after"), "{got:?}");

    // The node comes back and catches up on what it missed.
    c.start(3);
    wait_for_leaders(&c);
    let mut back = connect_retry(c.port(3));
    let got: Vec<String> = back.mget(&keys).unwrap();
    assert!(got.iter().all(|v| v == "after"), "{got:?}");
}

#[test]
fn a_killed_node_leaves_every_shard_serving_raft() {
    a_killed_node_leaves_every_shard_serving("raft", 1);
}

#[test]
fn a_killed_node_leaves_every_shard_serving_paxos() {
    a_killed_node_leaves_every_shard_serving("paxos", 1);
}
