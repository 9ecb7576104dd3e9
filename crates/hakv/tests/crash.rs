//! Real processes killed with SIGKILL: acknowledged writes survive losing every node at
//! once, and killing the leader under load loses nothing and stays linearizable.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lincheck::kv::{KvInput, KvModel, KvOutput};
use lincheck::{Checker, History, Verdict};

const TICK_MS: u64 = 20;
/// Raft's longest randomized election timeout at the default 10 ticks.
const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(2 * 10 * TICK_MS);

struct Cluster {
    dir: PathBuf,
    base: u16,
    nodes: Vec<Option<Child>>,
}

impl Cluster {
    fn new(tag: &str) -> Cluster {
        let dir = std::env::temp_dir().join(format!("hakv-crash-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let salt = if tag == "all" { 0 } else { 1 };
        let base = 30_000 + ((std::process::id() % 2_000) as u16) * 6 + salt * 3;
        let mut c = Cluster {
            dir,
            base,
            nodes: vec![None, None, None],
        };
        for i in 1..=3 {
            c.start(i);
        }
        c
    }

    fn port(&self, i: u64) -> u16 {
        self.base + i as u16 - 1
    }

    fn start(&mut self, i: u64) {
        let cluster: Vec<String> = (1..=3)
            .map(|j| {
                format!(
                    "{j}=127.0.0.1:{}/127.0.0.1:{}",
                    self.port(j),
                    self.port(j) + 10_000
                )
            })
            .collect();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node-{i}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hakv"))
            .arg("server")
            .args(["--id", &i.to_string()])
            .arg("--data-dir")
            .arg(self.dir.join(format!("node-{i}")))
            .args(["--listen", &format!("127.0.0.1:{}", self.port(i))])
            .args([
                "--peer-listen",
                &format!("127.0.0.1:{}", self.port(i) + 10_000),
            ])
            .args(["--cluster", &cluster.join(",")])
            .args(["--tick-ms", &TICK_MS.to_string()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.nodes[i as usize - 1] = Some(child);
    }

    /// SIGKILL: no chance to flush anything.
    fn kill(&mut self, i: u64) {
        if let Some(mut c) = self.nodes[i as usize - 1].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            for i in 1..=3u64 {
                if self.nodes[i as usize - 1].is_some()
                    && role(self.port(i)).as_deref() == Some("master")
                {
                    return i;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no leader within 30 s; logs in {}", self.dir.display());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 1..=3 {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn connect(port: u16) -> Option<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let conn = c
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(conn)
}

fn role(port: u16) -> Option<String> {
    let mut c = connect(port)?;
    let info: String = redis::cmd("INFO").arg("replication").query(&mut c).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("role:").map(|r| r.trim().to_string()))
}

fn dump_logs(dir: &Path) {
    for i in 1..=3 {
        if let Ok(s) = std::fs::read_to_string(dir.join(format!("node-{i}.log"))) {
            eprintln!(
                "--- node {i} ---\n{}",
                s.lines().rev().take(20).collect::<Vec<_>>().join("\n")
            );
        }
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_of_every_node() {
    let mut cluster = Cluster::new("all");
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

#[test]
fn killing_the_leader_under_load_loses_nothing_and_stays_linearizable() {
    let mut cluster = Cluster::new("leader");
    let first = cluster.leader();
    let ports: Vec<u16> = (1..=3).map(|i| cluster.port(i)).collect();
    let history: Arc<Mutex<History<KvInput, KvOutput>>> = Arc::new(Mutex::new(History::new()));
    let acked_at: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
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
                            acked_at.lock().unwrap().push(Instant::now());
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
    let before = acks.iter().filter(|&&t| t < killed_at).count();
    let resumed = acks.iter().find(|&&t| t > killed_at).copied();
    let gap = resumed.map(|t| t - killed_at);
    println!("writes acknowledged before the kill: {before}; first after it: {gap:?}");
    assert!(before > 50, "the load was running");
    let gap = gap.expect("writes resumed after the leader died");
    assert!(
        gap <= 2 * ELECTION_TIMEOUT_MAX,
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
