//! Shared by the real-process tests: a cluster of `hakv server` processes on loopback
//! that is killed (SIGKILL) and removed when dropped, so a failing test never leaves
//! orphan nodes holding ports.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TICK_MS: u64 = 20;
/// Raft's longest randomized election timeout at the default 10 ticks.
pub const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(2 * 10 * TICK_MS);

pub struct Cluster {
    pub dir: PathBuf,
    pub base: u16,
    pub nodes: Vec<Option<Child>>,
    /// How many nodes the cluster has (ids 1..=n).
    pub n: u64,
    /// Extra flags for every `hakv server`.
    pub extra: Vec<String>,
}

impl Cluster {
    /// Starts three Raft nodes. `slot` (0..8) keeps the ports of tests in one binary
    /// apart.
    pub fn new(tag: &str, slot: u16, extra: &[&str]) -> Cluster {
        Cluster::with_engine("raft", tag, slot, extra)
    }

    /// Starts three nodes running `engine` ("raft" or "paxos").
    pub fn with_engine(engine: &str, tag: &str, slot: u16, extra: &[&str]) -> Cluster {
        Cluster::sized(engine, tag, slot, 3, extra)
    }

    /// Starts `n` nodes running `engine`; `slot * n + n` must stay within 24 (client
    /// ports of a test process's half block).
    pub fn sized(engine: &str, tag: &str, slot: u16, n: u64, extra: &[&str]) -> Cluster {
        let dir = std::env::temp_dir().join(format!("hakv-{tag}-{engine}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            (slot + 1) * n as u16 <= 24,
            "slot {slot} of {n} nodes is outside the block"
        );
        // Below the kernel's ephemeral range (32768..), so no outgoing connection can
        // hold a port a node is about to listen on; one 144-port block per test
        // process, half per engine so both engines' tests can run at once.
        let engine_offset = if engine == "paxos" { 72 } else { 0 };
        let base =
            10_000 + ((std::process::id() % 150) as u16) * 144 + engine_offset + slot * n as u16;
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        extra.extend(["--consensus".to_string(), engine.to_string()]);
        let mut c = Cluster {
            dir,
            base,
            nodes: (0..n).map(|_| None).collect(),
            n,
            extra,
        };
        for i in 1..=n {
            c.start(i);
        }
        c
    }

    pub fn port(&self, i: u64) -> u16 {
        self.base + i as u16 - 1
    }

    /// Node `i`'s peer port (in the block's second third).
    pub fn peer_port(&self, i: u64) -> u16 {
        self.port(i) + 24
    }

    /// A spare port for a helper process (e.g. a reference redis-server), per slot.
    pub fn spare_port(&self) -> u16 {
        self.base + 48
    }

    pub fn start(&mut self, i: u64) {
        let cluster: Vec<String> = (1..=self.n)
            .map(|j| {
                format!(
                    "{j}=127.0.0.1:{}/127.0.0.1:{}",
                    self.port(j),
                    self.peer_port(j)
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
            .args(["--peer-listen", &format!("127.0.0.1:{}", self.peer_port(i))])
            .args(["--cluster", &cluster.join(",")])
            .args(["--tick-ms", &TICK_MS.to_string()])
            .args(&self.extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.nodes[i as usize - 1] = Some(child);
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self, i: u64) {
        if let Some(mut c) = self.nodes[i as usize - 1].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            for i in 1..=self.n {
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
        for i in 1..=self.n {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn connect(port: u16) -> Option<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let conn = c
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(conn)
}

pub fn role(port: u16) -> Option<String> {
    let mut c = connect(port)?;
    let info: String = redis::cmd("INFO").arg("replication").query(&mut c).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("role:").map(|r| r.trim().to_string()))
}

pub fn dump_logs(dir: &Path) {
    // Whole logs are kept for a closer look: the test's own directory is removed.
    let keep = std::env::temp_dir().join("hakv-failed-logs").join(
        dir.file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default(),
    );
    let _ = std::fs::create_dir_all(&keep);
    for i in 1..=9 {
        let log = dir.join(format!("node-{i}.log"));
        let _ = std::fs::copy(&log, keep.join(format!("node-{i}.log")));
        if let Ok(s) = std::fs::read_to_string(&log) {
            eprintln!(
                "--- node {i} ---\n{}",
                s.lines().rev().take(20).collect::<Vec<_>>().join("\n")
            );
        }
    }
    eprintln!("whole logs kept in {}", keep.display());
}

/// Connects, retrying for up to 10 s (a node may still be starting).
pub fn connect_retry(port: u16) -> redis::Connection {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(c) = connect(port) {
            return c;
        }
        assert!(Instant::now() < deadline, "port {port} does not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
}
