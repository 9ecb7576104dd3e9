//! A sharded cluster of real `hakv server` processes: 5 nodes, 16 shards, 3 replicas
//! each, placed by the consistent-hash ring. Clients talk to any node and never learn
//! the placement: single-key commands reach their shard's leader, multi-key and
//! keyspace-wide commands are split over shards and merged, SCAN walks every shard,
//! and a node killed with SIGKILL leaves every shard serving (each keeps a quorum of
//! two) with no acknowledged write lost.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use lincheck::kv::{KvInput, KvModel, KvOutput};
use lincheck::{Checker, History, Verdict};
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

    // A pipeline through one node spans shards it leads, follows and does not hold:
    // runs of writes to one shard led here are proposed together, the others are
    // forwarded; every reply comes back in order, and writes to a key apply in order.
    for (n, conn) in conns.iter_mut().enumerate() {
        let mut pipe = redis::pipe();
        for i in 0..120 {
            let k = format!("pipe{n}:{}", i % 30);
            pipe.cmd("APPEND").arg(&k).arg(format!("{i},"));
            pipe.cmd("SET").arg(format!("pipe{n}:set{i}")).arg(i);
            if i % 13 == 0 {
                pipe.cmd("GET").arg(&k);
            }
        }
        let replies: Vec<redis::Value> = pipe.query(conn).unwrap();
        let mut replies = replies.into_iter();
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for i in 0..120 {
            let k = format!("pipe{n}:{}", i % 30);
            let v = values.entry(k.clone()).or_default();
            v.push_str(&format!("{i},"));
            assert_eq!(
                replies.next(),
                Some(redis::Value::Int(v.len() as i64)),
                "APPEND {i}"
            );
            assert_eq!(replies.next(), Some(redis::Value::Okay), "SET {i}");
            if i % 13 == 0 {
                let want = redis::Value::BulkString(v.clone().into_bytes());
                assert_eq!(replies.next(), Some(want), "GET {k} after APPEND {i}");
            }
        }
        assert_eq!(replies.next(), None);
        for (k, v) in &values {
            let got: String = conn.get(k).unwrap();
            assert_eq!(&got, v, "{k}");
        }
        let keys: Vec<String> = values
            .keys()
            .cloned()
            .chain((0..120).map(|i| format!("pipe{n}:set{i}")))
            .collect();
        let removed: usize = conn.del(&keys).unwrap();
        assert_eq!(removed, 150);
    }

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

/// Waits until the live nodes together are full voters of `3 × SHARDS` shard replicas
/// (each shard back to three replicas, none of them on a dead node).
fn wait_for_healing(c: &Cluster, live: &[u64], what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let voters: u32 = live
            .iter()
            .map(|&i| info_field(c.port(i), "hakv_shards_voter").unwrap_or(0))
            .sum();
        if voters == SHARDS * 3 {
            return started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(60) {
            dump_logs(&c.dir);
            panic!(
                "{what}: only {voters} of {} replicas healthy after 60 s",
                SHARDS * 3
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writers that keep writing unique keys through the live nodes and remember every
/// acknowledged write, and clients that write and read a few shared keys (spread over
/// shards) and record the history for the linearizability checker.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<(String, u64)>>>,
    registers: Vec<std::thread::JoinHandle<()>>,
    history: std::sync::Arc<std::sync::Mutex<History<KvInput, KvOutput>>>,
}

impl Load {
    fn start(ports: std::sync::Arc<std::sync::Mutex<Vec<u16>>>) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..3)
            .map(|t| {
                let stop = stop.clone();
                let ports = ports.clone();
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let port = {
                            let p = ports.lock().unwrap();
                            p[(i as usize + t) % p.len()]
                        };
                        let Some(mut conn) = support::connect(port) else {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        };
                        for _ in 0..20 {
                            let key = format!("w{t}-{i}");
                            i += 1;
                            match conn.set::<_, _, ()>(&key, i) {
                                Ok(()) => acked.push((key, i)),
                                // Unknown outcome or refused: not acknowledged.
                                Err(e) if e.is_io_error() || e.is_timeout() => break,
                                Err(_) => std::thread::sleep(Duration::from_millis(20)),
                            }
                        }
                    }
                    acked
                })
            })
            .collect();
        let history = std::sync::Arc::new(std::sync::Mutex::new(History::new()));
        let epoch = Instant::now();
        let registers = (0..3u64)
            .map(|t| {
                let (stop, ports, history) = (stop.clone(), ports.clone(), history.clone());
                std::thread::spawn(move || {
                    let now = || epoch.elapsed().as_micros() as u64;
                    let mut conn: Option<redis::Connection> = None;
                    let mut n = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        n += 1;
                        if conn.is_none() {
                            let port = {
                                let p = ports.lock().unwrap();
                                p[(n as usize + t as usize) % p.len()]
                            };
                            conn = support::connect(port);
                            if conn.is_none() {
                                std::thread::sleep(Duration::from_millis(20));
                                continue;
                            }
                        }
                        let key = format!("r{}", n % 6);
                        let value = format!("c{t}-{n}");
                        let write = n.is_multiple_of(2);
                        let input = if write {
                            KvInput::put(&key, &value)
                        } else {
                            KvInput::get(&key)
                        };
                        let id = history.lock().unwrap().invoke(t, input, now());
                        let c = conn.as_mut().unwrap();
                        let result = if write {
                            c.set::<_, _, ()>(&key, &value).map(|_| KvOutput::Ok)
                        } else {
                            c.get::<_, Option<String>>(&key)
                                .map(|v| KvOutput::Value(v.map(String::into_bytes)))
                        };
                        match result {
                            Ok(out) => history.lock().unwrap().complete(id, out, now()),
                            // Unknown outcome: left indeterminate; try another node.
                            Err(_) => {
                                conn = None;
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads,
            registers,
            history,
        }
    }

    /// Stops the load; returns the acknowledged unique writes, after checking that the
    /// shared keys' history is linearizable.
    fn stop(self, c: &Cluster) -> Vec<(String, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in self.registers {
            r.join().unwrap();
        }
        let ops = std::mem::take(&mut *self.history.lock().unwrap()).into_ops();
        match Checker::new().check(&KvModel, &ops) {
            Verdict::Linearizable => println!("{} register operations: linearizable", ops.len()),
            other => {
                dump_logs(&c.dir);
                panic!("{} ops: {other}", ops.len());
            }
        }
        self.threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }
}

fn assert_all_present(c: &Cluster, via: u64, acked: &[(String, u64)]) {
    let mut conn = connect_retry(c.port(via));
    for chunk in acked.chunks(200) {
        let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
        let got: Vec<Option<u64>> = conn.mget(&keys).unwrap();
        for ((k, v), g) in chunk.iter().zip(got) {
            assert_eq!(g, Some(*v), "acknowledged write {k}={v} lost");
        }
    }
}

fn dead_nodes_are_replaced_and_no_acknowledged_write_is_lost(engine: &str, slot: u16) {
    let shards = SHARDS.to_string();
    let mut c = Cluster::sized(
        engine,
        "shards-heal",
        slot,
        NODES,
        &["--shards", &shards, "--down-after-ms", "1500"],
    );
    wait_for_leaders(&c);
    wait_for_healing(&c, &[1, 2, 3, 4, 5], "at start");
    let ports = std::sync::Arc::new(std::sync::Mutex::new(
        (1..=NODES).map(|i| c.port(i)).collect::<Vec<u16>>(),
    ));
    let load = Load::start(ports.clone());
    std::thread::sleep(Duration::from_millis(800));

    // First death: every shard node 3 held gets a new replica elsewhere.
    ports.lock().unwrap().retain(|&p| p != c.port(3));
    c.kill(3);
    let took = wait_for_healing(&c, &[1, 2, 4, 5], "after node 3 died");
    println!("node 3 killed: every shard back to 3 replicas after {took:?} (down-after 1.5 s)");

    // Second death, after the first recovery: the three survivors hold everything.
    ports.lock().unwrap().retain(|&p| p != c.port(5));
    c.kill(5);
    let took = wait_for_healing(&c, &[1, 2, 4], "after node 5 died");
    println!("node 5 killed: every shard back to 3 replicas after {took:?}");
    std::thread::sleep(Duration::from_millis(300));
    let acked = load.stop(&c);
    assert!(
        acked.len() > 100,
        "the load made progress: {} writes",
        acked.len()
    );
    println!("{} acknowledged writes, all checked", acked.len());
    for via in [1, 2, 4] {
        assert_all_present(&c, via, &acked);
    }
}

#[test]
fn dead_nodes_are_replaced_and_no_acknowledged_write_is_lost_raft() {
    dead_nodes_are_replaced_and_no_acknowledged_write_is_lost("raft", 2);
}

#[test]
fn dead_nodes_are_replaced_and_no_acknowledged_write_is_lost_paxos() {
    dead_nodes_are_replaced_and_no_acknowledged_write_is_lost("paxos", 2);
}

/// A `hakv server` started by hand (a node joining), killed when dropped.
struct Joiner(std::process::Child);

impl Drop for Joiner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sum_info(c: &Cluster, ports: &[u16], field: &str) -> u32 {
    let _ = c;
    ports
        .iter()
        .map(|&p| info_field(p, field).unwrap_or(0))
        .sum()
}

fn wait_until(what: &str, c: &Cluster, mut ok: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !ok() {
        if started.elapsed() > Duration::from_secs(90) {
            dump_logs(&c.dir);
            panic!("{what}: not reached in 90 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    started.elapsed()
}

fn a_joining_node_takes_its_share_and_a_drained_node_gives_it_back(engine: &str, slot: u16) {
    let shards = SHARDS.to_string();
    let c = Cluster::sized(engine, "shards-join", slot, 4, &["--shards", &shards]);
    wait_for_leaders(&c);
    let founders: Vec<u16> = (1..=4).map(|i| c.port(i)).collect();
    wait_until("founding replicas", &c, || {
        sum_info(&c, &founders, "hakv_shards_voter") == SHARDS * 3
    });
    let mut conn = connect_retry(c.port(1));
    // Administrative mistakes are refused with a reason and change nothing.
    for (args, why) in [
        (
            vec!["JOIN", "2", "127.0.0.1:1", "127.0.0.1:2"],
            "founding member",
        ),
        (vec!["JOIN", "9", "not-an-address", "127.0.0.1:2"], "usage"),
        (vec!["SPLIT"], "unknown HAKV subcommand"),
    ] {
        let e = redis::cmd("HAKV")
            .arg(&args)
            .query::<redis::Value>(&mut conn)
            .unwrap_err();
        assert!(e.to_string().contains(why), "{args:?}: {e}");
    }
    let pairs: Vec<(String, String)> = (0..300)
        .map(|i| (format!("j{i}"), format!("v{i}")))
        .collect();
    let _: () = conn.mset(&pairs).unwrap();

    // Node 5 joins through node 2.
    let (port5, peer5) = (c.port(4) + 1, c.peer_port(4) + 1);
    let log = std::fs::File::create(c.dir.join("node-5.log")).unwrap();
    let _joiner = Joiner(
        std::process::Command::new(env!("CARGO_BIN_EXE_hakv"))
            .arg("server")
            .args(["--id", "5", "--tick-ms", "20"])
            .arg("--data-dir")
            .arg(c.dir.join("node-5"))
            .args(["--listen", &format!("127.0.0.1:{port5}")])
            .args(["--peer-listen", &format!("127.0.0.1:{peer5}")])
            .args(["--join", &format!("127.0.0.1:{}", c.port(2))])
            .args(["--consensus", engine])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let all: Vec<u16> = founders.iter().copied().chain([port5]).collect();
    let took = wait_until("node 5 takes its share", &c, || {
        info_field(port5, "hakv_shards_voter").unwrap_or(0) > 0
            && sum_info(&c, &all, "hakv_shards_voter") == SHARDS * 3
            && sum_info(&c, &all, "hakv_shards_held") == SHARDS * 3
    });
    let share = info_field(port5, "hakv_shards_voter").unwrap();
    println!(
        "node 5 joined and holds {share} of {} replicas after {took:?}",
        SHARDS * 3
    );
    // About 1/N of the replicas: the ring caps every node near its fair share
    // (bounded loads), so the newcomer fills up to within a replica or two of it.
    let fair = (SHARDS * 3) as f64 / 5.0;
    assert!(
        (share as f64) >= fair * 0.8 && (share as f64) <= fair * 1.2,
        "node 5 holds {share}, fair share {fair}"
    );
    let mut via5 = connect_retry(port5);
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    let got: Vec<String> = via5.mget(&keys).unwrap();
    assert_eq!(
        got,
        pairs.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()
    );

    // Draining node 5 moves everything back off it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hakv"))
        .args([
            "ctl",
            "drain",
            "5",
            "--resp",
            &format!("127.0.0.1:{}", c.port(1)),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = wait_until("node 5 drained", &c, || {
        info_field(port5, "hakv_shards_held") == Some(0)
            && sum_info(&c, &founders, "hakv_shards_voter") == SHARDS * 3
    });
    println!("node 5 drained after {took:?}");
    let got: Vec<String> = conn.mget(&keys).unwrap();
    assert_eq!(
        got,
        pairs.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()
    );
}

#[test]
fn a_joining_node_takes_its_share_and_a_drained_node_gives_it_back_raft() {
    a_joining_node_takes_its_share_and_a_drained_node_gives_it_back("raft", 4);
}

#[test]
fn a_joining_node_takes_its_share_and_a_drained_node_gives_it_back_paxos() {
    a_joining_node_takes_its_share_and_a_drained_node_gives_it_back("paxos", 4);
}
