//! `hakv up` as a user meets it: real processes, real TCP, a real Redis client.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `hakv up` and waits for its "ready" line.
fn up(engine: &str, dir: &std::path::Path, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hakv"))
        .args(["up", "--nodes", "3", "--port", &port.to_string()])
        .args(["--consensus", engine])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("hakv up starts");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            println!("up: {line}");
            if line.starts_with("ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("cluster ready within 60 s");
    child
}

fn stop(mut child: Child) {
    // SAFETY: signalling our own child process.
    unsafe {
        libc_kill(child.id() as i32, 15);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "hakv up exits cleanly on SIGTERM: {status}"
            );
            return;
        }
        assert!(Instant::now() < deadline, "hakv up did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn client(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connects")
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("HTTP port answers");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn base_port(engine: &str) -> u16 {
    // Client, peer (+10000) and HTTP (+20000) ports all stay below the ephemeral range
    // (32768..); each engine has its own range so both tests can run at once.
    let offset = if engine == "paxos" { 2_700 } else { 0 };
    7_000 + offset + (std::process::id() % 900) as u16 * 3
}

fn a_local_cluster_serves_redis_clients_and_keeps_data_across_restarts(engine: &str) {
    let dir = std::env::temp_dir().join(format!("hakv-up-test-{engine}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = base_port(engine);
    let cluster = up(engine, &dir, port);
    let json = std::fs::read_to_string(dir.join("cluster.json")).unwrap();
    assert_eq!(
        json.matches("\"pid\"").count(),
        3,
        "cluster.json lists every node: {json}"
    );

    // Every node accepts writes (followers forward one hop) and serves linearizable reads.
    for (i, p) in [port, port + 1, port + 2].into_iter().enumerate() {
        let mut c = client(p);
        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
        let _: () = redis::cmd("SET")
            .arg(format!("key{i}"))
            .arg(format!("value{i}"))
            .query(&mut c)
            .unwrap();
    }
    for p in [port, port + 1, port + 2] {
        let mut c = client(p);
        let vals: Vec<Option<String>> = redis::cmd("MGET")
            .arg("key0")
            .arg("key1")
            .arg("key2")
            .arg("missing")
            .query(&mut c)
            .unwrap();
        assert_eq!(
            vals,
            vec![
                Some("value0".into()),
                Some("value1".into()),
                Some("value2".into()),
                None
            ]
        );
    }
    let mut c = client(port + 1);
    let first: bool = redis::cmd("SETNX")
        .arg("once")
        .arg("a")
        .query(&mut c)
        .unwrap();
    let second: bool = redis::cmd("SETNX")
        .arg("once")
        .arg("b")
        .query(&mut c)
        .unwrap();
    assert!(first && !second);
    let deleted: i64 = redis::cmd("DEL")
        .arg("key0")
        .arg("nope")
        .query(&mut c)
        .unwrap();
    assert_eq!(deleted, 1);
    let err = redis::cmd("NOSUCHCOMMAND")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("unknown command"), "{err}");
    drop(c);

    // The operator view: every node reachable, exactly one leader.
    let out = Command::new(env!("CARGO_BIN_EXE_hakv"))
        .args(["ctl", "status", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}");
    // Columns: node, engine, role, ...
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let roles: Vec<&str> = rows.iter().filter_map(|r| r.get(2).copied()).collect();
    let ok = out.status.success()
        && rows.iter().all(|r| r.get(1) == Some(&engine))
        // The term column: a Raft term, or a Paxos ballot shown as round.node.
        && rows.iter().all(|r| {
            r.get(3).is_some_and(|t| match engine {
                "paxos" => t
                    .split_once('.')
                    .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok()),
                _ => t.parse::<u64>().is_ok(),
            })
        })
        && roles.iter().filter(|&&r| r == "leader").count() == 1
        && roles.iter().filter(|&&r| r == "follower").count() == 2;
    // Starting a second cluster on the same ports is refused, not silently confused.
    let clash = Command::new(env!("CARGO_BIN_EXE_hakv"))
        .args(["up", "--port", &port.to_string(), "--dir"])
        .arg(dir.join("other"))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let refused =
        !clash.status.success() && String::from_utf8_lossy(&clash.stderr).contains("not free");
    // Prometheus metrics from node 1's HTTP port (client port + 20000).
    let metrics = http_get(port + 20_000, "/metrics");
    // One `is_leader` line per group this node holds: the data shard and the
    // meta group. Node 1 may lead both (or neither), so each line is 0 or 1.
    let leader_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("hakv_raft_is_leader{"))
        .collect();
    let has_metrics = metrics.contains("hakv_raft_commit_index{")
        && leader_lines.len() == 2
        && leader_lines.iter().any(|l| l.contains("shard=\"0\""))
        && leader_lines.iter().any(|l| l.contains("shard=\"meta\""))
        && leader_lines
            .iter()
            .all(|l| l.ends_with(" 0") || l.ends_with(" 1"));
    // /health names the one data shard's role (tools such as bench/compare.sh find
    // the leader by it), whatever the meta group does on this node.
    let health = http_get(port + 20_000, "/health");
    let has_metrics = has_metrics && health.contains("ok node=1 role=");
    // The log's counters: this node has written and fsynced (the founding, the writes).
    let fsyncs = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hakv_storage_fsyncs_total{node=\"1\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    let has_metrics = has_metrics && fsyncs.is_some_and(|n| n > 0);
    if !ok || !refused || !has_metrics {
        stop(cluster);
        panic!(
            "ctl status ok: {ok} ({text}); second cluster refused: {refused}; health: {health}; metrics: {metrics}"
        );
    }

    // Stop everything; start again on the same directory: the data is back.
    stop(cluster);
    let cluster = up(engine, &dir, port);
    let mut c = client(port + 2);
    let once: String = redis::cmd("GET").arg("once").query(&mut c).unwrap();
    assert_eq!(once, "a");
    let gone: Option<String> = redis::cmd("GET").arg("key0").query(&mut c).unwrap();
    assert_eq!(gone, None);
    let kept: String = redis::cmd("GET").arg("key2").query(&mut c).unwrap();
    assert_eq!(kept, "value2");
    stop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_local_cluster_serves_redis_clients_and_keeps_data_across_restarts_raft() {
    a_local_cluster_serves_redis_clients_and_keeps_data_across_restarts("raft");
}

#[test]
fn a_local_cluster_serves_redis_clients_and_keeps_data_across_restarts_paxos() {
    a_local_cluster_serves_redis_clients_and_keeps_data_across_restarts("paxos");
}
