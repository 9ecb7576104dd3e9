//! Real processes killed with SIGKILL: acknowledged writes survive losing every node at
//! once, and killing the leader under load loses nothing and stays linearizable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod support;
use support::*;

use lincheck::kv::{KvInput, KvModel, KvOutput};
use lincheck::{Checker, History, Verdict};

fn acknowledged_writes_survive_sigkill_of_every_node(engine: &str) {
    let mut cluster = Cluster::with_engine(engine, "crash-all", 0, &[]);
    cluster.leader();
    let mut c = connect(cluster.port(2)).expect("node 2 answers");
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("v{i}"))
            .query(&mut c)
            .unwrap();
    }
    drop(c);
    for i in 1..=3 {
        cluster.kill(i);
    }
    for i in 1..=3 {
        cluster.start(i);
    }
    let l = cluster.leader();
    let mut c = connect(cluster.port(l)).unwrap();
    for i in 0..300 {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query(&mut c)
            .unwrap();
        if v.as_deref() != Some(format!("v{i}").as_str()) {
            dump_logs(&cluster.dir);
            panic!("acknowledged write k{i} lost: got {v:?}");
        }
    }
}

fn killing_the_leader_under_load_loses_nothing_and_stays_linearizable(engine: &str) {
    let mut cluster = Cluster::with_engine(engine, "crash-leader", 1, &[]);
    let first = cluster.leader();
    let ports: Vec<u16> = (1..=3).map(|i| cluster.port(i)).collect();
    let history: Arc<Mutex<History<KvInput, KvOutput>>> = Arc::new(Mutex::new(History::new()));
    let acked_at: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let now = move || epoch.elapsed().as_micros() as u64;
    let mut workers = Vec::new();
    for t in 0..4u64 {
        let (history, acked_at, stop, ports) = (
            history.clone(),
            acked_at.clone(),
            stop.clone(),
            ports.clone(),
        );
        workers.push(std::thread::spawn(move || {
            let mut n = 0u64;
            let mut target = t as usize % 3;
            let mut conn: Option<redis::Connection> = None;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let key = format!("k{}", n % 3);
                let write = !n.is_multiple_of(3);
                let value = format!("c{t}-{n}");
                let input = if write {
                    KvInput::put(&key, &value)
                } else {
                    KvInput::get(&key)
                };
                if conn.is_none() {
                    conn = connect(ports[target]);
                    if conn.is_none() {
                        target = (target + 1) % 3;
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                }
                let id = history.lock().unwrap().invoke(t, input, now());
                let invoked = Instant::now();
                let c = conn.as_mut().unwrap();
                let result = if write {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&value)
                        .query::<String>(c)
                        .map(|_| KvOutput::Ok)
                } else {
                    redis::cmd("GET")
                        .arg(&key)
                        .query::<Option<String>>(c)
                        .map(|v| KvOutput::Value(v.map(String::into_bytes)))
                };
                match result {
                    Ok(out) => {
                        history.lock().unwrap().complete(id, out, now());
                        if write {
                            acked_at.lock().unwrap().push((invoked, Instant::now()));
                        }
                    }
                    Err(_) => {
                        // Unknown outcome (the node died, or the cluster is electing):
                        // left indeterminate; move to another node.
                        conn = None;
                        target = (target + 1) % 3;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(1_500));
    let killed_at = Instant::now();
    cluster.kill(first);
    std::thread::sleep(Duration::from_millis(2_500));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let acks = acked_at.lock().unwrap().clone();
    let before = acks.iter().filter(|&&(_, a)| a < killed_at).count();
    // Resumed = the first write *invoked* after the kill is acknowledged (a write the
    // old leader committed just before dying may be acknowledged after it; it proves
    // nothing about failover).
    let resumed = acks
        .iter()
        .filter(|&&(i, _)| i > killed_at)
        .map(|&(_, a)| a)
        .min();
    let gap = resumed.map(|t| t - killed_at);
    println!("writes acknowledged before the kill: {before}; first new write acknowledged after: {gap:?}");
    assert!(before > 50, "the load was running");
    let gap = gap.expect("writes resumed after the leader died");
    // One election timeout to notice, one election; plus one more timeout for the
    // case Raft allows, where both survivors time out together and split the vote
    // (seen once in CI at 877 ms; alone the gap is 0.2-0.4 s). A client stuck on the
    // dead leader would wait its 10 s request timeout, far beyond this.
    assert!(
        gap <= 3 * ELECTION_TIMEOUT_MAX,
        "writes resumed only after {gap:?}"
    );
    let ops = std::mem::take(&mut *history.lock().unwrap()).into_ops();
    match Checker::new().check(&KvModel, &ops) {
        Verdict::Linearizable => {}
        other => {
            dump_logs(&cluster.dir);
            panic!("{} ops: {other}", ops.len());
        }
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_of_every_node_raft() {
    acknowledged_writes_survive_sigkill_of_every_node("raft");
}

#[test]
fn acknowledged_writes_survive_sigkill_of_every_node_paxos() {
    acknowledged_writes_survive_sigkill_of_every_node("paxos");
}

#[test]
fn killing_the_leader_under_load_loses_nothing_and_stays_linearizable_raft() {
    killing_the_leader_under_load_loses_nothing_and_stays_linearizable("raft");
}

#[test]
fn killing_the_leader_under_load_loses_nothing_and_stays_linearizable_paxos() {
    killing_the_leader_under_load_loses_nothing_and_stays_linearizable("paxos");
}
