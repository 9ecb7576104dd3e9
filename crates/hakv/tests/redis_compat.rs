//! Every supported command, run against a 3-node hakv cluster (through the leader and
//! through both followers, which forward over the peer transport) and against a real
//! `redis-server`, must answer the same: values, nils, integers, and error texts.
//!
//! Needs `redis-server` on PATH (`.ci/run` installs Debian's package).

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Value;
use support::*;

struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is on PATH (apt-get install redis-server; .ci/run does)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while connect(port).is_none() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, port }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How two replies are compared.
#[derive(Clone, Copy)]
enum Cmp {
    Exact,
    /// Arrays compared as multisets (KEYS order is unspecified).
    Unordered,
    /// Integers within this much of each other (TTL/PTTL tick while we compare).
    Near(i64),
    /// A SCAN step: the keys must match; cursors are each store's own business.
    ScanKeys,
}

/// The script: `{}` in an argument is replaced by a per-run key prefix.
fn script() -> Vec<(Cmp, &'static str)> {
    use Cmp::*;
    vec![
        (Exact, "PING"),
        (Exact, "PING|hi"),
        (Exact, "ECHO|hello"),
        (Exact, "ECHO"),
        (Exact, "SET|{}a|1"),
        (Exact, "GET|{}a"),
        (Exact, "GET|{}missing"),
        (Exact, "SET|{}a|2|NX"),
        (Exact, "SET|{}a|3|XX"),
        (Exact, "SET|{}b|1|XX"),
        (Exact, "SET|{}a|4|GET"),
        (Exact, "SET|{}a|5|NX|GET"),
        (Exact, "SET|{}a|6|xx|get"),
        (Exact, "SET|{}c|v|EX|100"),
        (Near(1), "TTL|{}c"),
        (Near(1500), "PTTL|{}c"),
        (Exact, "SET|{}c|v2|KEEPTTL"),
        (Near(1), "TTL|{}c"),
        (Exact, "SET|{}c|v3"),
        (Exact, "TTL|{}c"),
        (Exact, "SET|{}c|v|PX|100000"),
        (Near(1), "TTL|{}c"),
        (Exact, "SET|{}a|v|EX|0"),
        (Exact, "SET|{}a|v|EX|-5"),
        (Exact, "SET|{}a|v|EX|abc"),
        (Exact, "SET|{}a|v|EX|9223372036854775807"),
        (Exact, "SET|{}a|v|NX|XX"),
        (Exact, "SET|{}a|v|EX|10|PX|10"),
        (Exact, "SET|{}a|v|EX|10|KEEPTTL"),
        (Exact, "SET|{}a|v|EX"),
        (Exact, "SET|{}a|v|BOGUS"),
        (Exact, "SET|{}a"),
        (Exact, "SET|{}d|v|PXAT|1"),
        (Exact, "GET|{}d"),
        (Exact, "SET|{}e|v|EXAT|4000000000"),
        (Exact, "SETNX|{}f|1"),
        (Exact, "SETNX|{}f|2"),
        (Exact, "SETNX|{}f"),
        (Exact, "GETSET|{}f|3"),
        (Exact, "GETSET|{}g|1"),
        (Exact, "GETDEL|{}f"),
        (Exact, "GETDEL|{}f"),
        (Exact, "DEL|{}a|{}b|{}g|{}none|{}a"),
        (Exact, "DEL"),
        (Exact, "EXISTS|{}c|{}c|{}none"),
        (Exact, "INCR|{}n"),
        (Exact, "INCRBY|{}n|10"),
        (Exact, "DECR|{}n"),
        (Exact, "DECRBY|{}n|5"),
        (Exact, "INCRBY|{}n|-20"),
        (Exact, "INCRBY|{}n|abc"),
        (Exact, "INCRBY|{}n|1.5"),
        (Exact, "DECRBY|{}n|-9223372036854775808"),
        (Exact, "SET|{}s|hello"),
        (Exact, "INCR|{}s"),
        (Exact, "SET|{}s| 1"),
        (Exact, "INCR|{}s"),
        (Exact, "SET|{}s|01"),
        (Exact, "INCR|{}s"),
        (Exact, "SET|{}s|+1"),
        (Exact, "INCR|{}s"),
        (Exact, "SET|{}max|9223372036854775807"),
        (Exact, "INCR|{}max"),
        (Exact, "SET|{}min|-9223372036854775808"),
        (Exact, "DECR|{}min"),
        (Exact, "GET|{}min"),
        (Exact, "SET|{}t|5|EX|1000"),
        (Exact, "INCR|{}t"),
        (Near(1), "TTL|{}t"),
        (Exact, "APPEND|{}ap|hello"),
        (Exact, "APPEND|{}ap| world"),
        (Exact, "STRLEN|{}ap"),
        (Exact, "STRLEN|{}none"),
        (Exact, "GET|{}ap"),
        (Exact, "MSET|{}m1|a|{}m2|b"),
        (Exact, "MGET|{}m1|{}none|{}m2"),
        (Exact, "MSET|{}m1"),
        (Exact, "MSET|{}m1|a|{}m2"),
        (Exact, "EXPIRE|{}m1|100"),
        (Near(1), "TTL|{}m1"),
        (Exact, "EXPIRE|{}m1|50|GT"),
        (Exact, "EXPIRE|{}m1|200|GT"),
        (Exact, "EXPIRE|{}m1|300|LT"),
        (Exact, "EXPIRE|{}m1|100|LT"),
        (Exact, "EXPIRE|{}m1|90|XX|LT"),
        (Exact, "EXPIRE|{}m2|100|XX"),
        (Exact, "EXPIRE|{}m2|100|GT"),
        (Exact, "EXPIRE|{}m2|100|NX"),
        (Exact, "EXPIRE|{}m2|100|NX"),
        (Exact, "EXPIRE|{}m2|10|NX|XX"),
        (Exact, "EXPIRE|{}m2|10|GT|LT"),
        (Exact, "EXPIRE|{}m2|10|FOO"),
        (Exact, "EXPIRE|{}none|10"),
        (Exact, "EXPIRE|{}m2|abc"),
        (Exact, "EXPIRE|{}m2|9223372036854775807"),
        (Exact, "PEXPIRE|{}m2|100000"),
        (Near(1500), "PTTL|{}m2"),
        (Exact, "PERSIST|{}m2"),
        (Exact, "PERSIST|{}m2"),
        (Exact, "PERSIST|{}none"),
        (Exact, "TTL|{}m2"),
        (Exact, "TTL|{}none"),
        (Exact, "PTTL|{}none"),
        (Exact, "EXPIREAT|{}m2|4000000000"),
        (Near(2), "TTL|{}m2"),
        (Exact, "PEXPIREAT|{}m2|1"),
        (Exact, "GET|{}m2"),
        (Exact, "EXPIRE|{}m1|-1"),
        (Exact, "EXISTS|{}m1"),
        (Exact, "TYPE|{}ap"),
        (Exact, "TYPE|{}none"),
        (Unordered, "KEYS|{}*"),
        (Unordered, "KEYS|{}m?"),
        (Unordered, "KEYS|{}[ac]*"),
        (Exact, "KEYS"),
        (Exact, "SCAN|notanumber"),
        (Exact, "SCAN|0|COUNT|0"),
        (Exact, "SCAN|0|COUNT|abc"),
        (Exact, "SCAN|0|MATCH"),
        (Exact, "SCAN|0|BOGUS|1"),
        (ScanKeys, "SCAN|0|MATCH|{}*|TYPE|hash"),
        (Exact, "SELECT|0"),
        (Exact, "SELECT|99"),
        (Exact, "NOSUCHCOMMAND|x|y"),
        (Exact, "GET"),
        (Exact, "GET|a|b"),
        (Exact, "INCR"),
        (Exact, "TTL"),
    ]
}

fn run(c: &mut redis::Connection, line: &str, prefix: &str) -> Result<Value, String> {
    let mut parts = line.split('|');
    let mut cmd = redis::cmd(parts.next().unwrap());
    for p in parts {
        cmd.arg(p.replace("{}", prefix));
    }
    cmd.query::<Value>(c).map_err(|e| e.to_string())
}

fn same(cmp: Cmp, a: &Result<Value, String>, b: &Result<Value, String>) -> bool {
    match (cmp, a, b) {
        (Cmp::Near(d), Ok(Value::Int(x)), Ok(Value::Int(y))) => (x - y).abs() <= d,
        (Cmp::Unordered, Ok(Value::Array(x)), Ok(Value::Array(y))) => {
            let norm = |v: &Vec<Value>| {
                let mut s: Vec<String> = v.iter().map(|e| format!("{e:?}")).collect();
                s.sort();
                s
            };
            norm(x) == norm(y)
        }
        (Cmp::ScanKeys, Ok(Value::Array(x)), Ok(Value::Array(y))) => {
            x.len() == 2 && y.len() == 2 && x[1] == y[1]
        }
        _ => a == b,
    }
}

/// Iterates SCAN to the end and returns every key seen.
fn scan_all(c: &mut redis::Connection, pattern: &str) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    for _ in 0..10_000 {
        let (next, batch): (String, Vec<String>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(3)
            .query(c)
            .unwrap();
        keys.extend(batch);
        if next == "0" {
            keys.sort();
            keys.dedup();
            return keys;
        }
        cursor = next;
    }
    panic!("SCAN did not finish");
}

fn every_command_answers_like_redis_through_leader_and_followers(engine: &str) {
    let cluster = Cluster::with_engine(engine, "compat", 3, &[]);
    let redis_port = cluster.spare_port();
    let real = RedisServer::start(redis_port);
    let mut theirs = connect(real.port).unwrap();
    let leader = cluster.leader();
    let mut mismatches = Vec::new();
    for node in 1..=3u64 {
        let role = if node == leader { "leader" } else { "follower" };
        let prefix = format!("n{node}:");
        let mut ours = connect_retry(cluster.port(node));
        for (cmp, line) in script() {
            let want = run(&mut theirs, line, &prefix);
            let got = run(&mut ours, line, &prefix);
            if !same(cmp, &got, &want) {
                mismatches.push(format!(
                    "node {node} ({role}) {line}\n   redis: {want:?}\n   hakv:  {got:?}"
                ));
            }
        }
        let pattern = format!("{prefix}*");
        assert_eq!(
            scan_all(&mut ours, &pattern),
            scan_all(&mut theirs, &pattern),
            "SCAN on node {node} ({role})"
        );
    }
    let dbsize = |c: &mut redis::Connection| redis::cmd("DBSIZE").query::<i64>(c).unwrap();
    let mut ours = connect(cluster.port(1)).unwrap();
    assert_eq!(dbsize(&mut ours), dbsize(&mut theirs), "DBSIZE");
    if !mismatches.is_empty() {
        dump_logs(&cluster.dir);
        panic!(
            "{} replies differ from Redis:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
    }
}

fn keys_expire_on_every_node_and_pipelines_answer_in_order(engine: &str) {
    let cluster = Cluster::with_engine(engine, "expiry", 4, &[]);
    let leader = cluster.leader();
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    let mut c = connect_retry(cluster.port(follower));
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET")
            .arg(format!("p{i}"))
            .arg(i)
            .arg("PX")
            .arg(2_000);
        pipe.cmd("INCR").arg("counter");
    }
    let replies: Vec<Value> = pipe.query(&mut c).unwrap();
    for (i, pair) in replies.chunks(2).enumerate() {
        assert_eq!(pair[0], Value::Okay);
        assert_eq!(pair[1], Value::Int(i as i64 + 1), "INCR replies in order");
    }
    let live: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(live, 201);
    // At the leader, runs of writes are proposed together; reads and the connection's
    // own commands between them keep their place.
    let mut l = connect_retry(cluster.port(leader));
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("SET").arg(format!("q{i}")).arg(i);
        pipe.cmd("INCR").arg("counter");
        pipe.cmd("APPEND").arg("log").arg(format!("{i},"));
        if i % 10 == 0 {
            pipe.cmd("GET").arg("counter");
            pipe.cmd("PING");
        }
    }
    let replies: Vec<Value> = pipe.query(&mut l).unwrap();
    let mut replies = replies.into_iter();
    let mut log_len = 0;
    for i in 0..100 {
        assert_eq!(replies.next(), Some(Value::Okay), "SET q{i}");
        assert_eq!(replies.next(), Some(Value::Int(201 + i)), "INCR {i}");
        log_len += format!("{i},").len() as i64;
        assert_eq!(replies.next(), Some(Value::Int(log_len)), "APPEND {i}");
        if i % 10 == 0 {
            let want = Value::BulkString((201 + i).to_string().into_bytes());
            assert_eq!(replies.next(), Some(want), "GET after write {i}");
            assert_eq!(replies.next(), Some(Value::SimpleString("PONG".into())));
        }
    }
    assert_eq!(replies.next(), None);
    let log: String = redis::cmd("GET").arg("log").query(&mut l).unwrap();
    let want: String = (0..100).map(|i| format!("{i},")).collect();
    assert_eq!(log, want, "appends applied in pipeline order");
    for i in 0..100 {
        let _: () = redis::cmd("DEL")
            .arg(format!("q{i}"))
            .query(&mut l)
            .unwrap();
    }
    let _: () = redis::cmd("DEL").arg("log").query(&mut l).unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    for node in 1..=3 {
        let mut c = connect_retry(cluster.port(node));
        let v: Option<String> = redis::cmd("GET").arg("p7").query(&mut c).unwrap();
        assert_eq!(v, None, "expired on node {node}");
        let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(n, 1, "only the counter is left (node {node})");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        assert_eq!(keys, vec!["counter".to_string()]);
    }
}

/// Sends raw bytes and returns everything the server answers before closing.
fn raw(port: u16, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn protocol_limits_answer_with_an_error_and_close_the_connection(engine: &str) {
    let cluster = Cluster::with_engine(
        engine,
        "limits",
        5,
        &[
            "--max-pending-bytes",
            "65536",
            "--max-bulk-bytes",
            "1048576",
            "--max-args",
            "16",
        ],
    );
    let port = cluster.port(cluster.leader());
    // A bulk longer than allowed.
    let out = raw(port, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
    assert!(
        out.starts_with("-ERR Protocol error: invalid bulk length"),
        "{out}"
    );
    // Too many arguments.
    let out = raw(port, b"*17\r\n");
    assert!(
        out.starts_with("-ERR Protocol error: invalid multibulk length"),
        "{out}"
    );
    // A legal bulk that is never finished, past the pending-bytes limit.
    let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 70_000));
    let out = raw(port, &req);
    assert!(
        out.contains("client query buffer exceeds the limit"),
        "{out}"
    );
    // Garbage.
    let out = raw(port, b"*1\r\n$x\r\n");
    assert!(out.starts_with("-ERR Protocol error"), "{out}");
    // The node is unharmed and the refused SET wrote nothing.
    let mut c = connect_retry(port);
    let v: Option<String> = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(v, None);
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("fine")
        .query(&mut c)
        .unwrap();
}

fn hello_3_switches_the_connection_to_resp3(engine: &str) {
    use std::io::{Read, Write};
    let cluster = Cluster::with_engine(engine, "resp3", 2, &[]);
    let leader = cluster.leader();
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    for node in [leader, follower] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", cluster.port(node))).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"HELLO 3\r\nGET nothing-here\r\nSET k v\r\nMGET k nothing\r\nQUIT\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out);
        // HELLO answers with a RESP3 map; nulls are `_`; forwarded replies keep RESP3.
        assert!(out.starts_with("%7\r\n"), "{out}");
        assert!(
            out.ends_with("_\r\n+OK\r\n*2\r\n$1\r\nv\r\n_\r\n+OK\r\n"),
            "node {node}: {out}"
        );
    }
}

#[test]
fn every_command_answers_like_redis_through_leader_and_followers_raft() {
    every_command_answers_like_redis_through_leader_and_followers("raft");
}

#[test]
fn every_command_answers_like_redis_through_leader_and_followers_paxos() {
    every_command_answers_like_redis_through_leader_and_followers("paxos");
}

#[test]
fn keys_expire_on_every_node_and_pipelines_answer_in_order_raft() {
    keys_expire_on_every_node_and_pipelines_answer_in_order("raft");
}

#[test]
fn keys_expire_on_every_node_and_pipelines_answer_in_order_paxos() {
    keys_expire_on_every_node_and_pipelines_answer_in_order("paxos");
}

#[test]
fn protocol_limits_answer_with_an_error_and_close_the_connection_raft() {
    protocol_limits_answer_with_an_error_and_close_the_connection("raft");
}

#[test]
fn protocol_limits_answer_with_an_error_and_close_the_connection_paxos() {
    protocol_limits_answer_with_an_error_and_close_the_connection("paxos");
}

#[test]
fn hello_3_switches_the_connection_to_resp3_raft() {
    hello_3_switches_the_connection_to_resp3("raft");
}

#[test]
fn hello_3_switches_the_connection_to_resp3_paxos() {
    hello_3_switches_the_connection_to_resp3("paxos");
}

/// A pipeline of writes to a leader is proposed as one batch, not one write (and one
/// fsync) at a time: 300 SETs on a single node, which needs an fsync for each commit,
/// cost a handful of fsyncs.
fn a_pipeline_of_writes_is_committed_together(engine: &str) {
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http_arg = format!("127.0.0.1:{http}");
    // One node (slot 0 of a 1-node layout: no 3-node cluster of this binary uses it).
    let cluster = Cluster::sized(engine, "batch", 0, 1, &["--http", &http_arg]);
    cluster.leader();
    let mut c = connect_retry(cluster.port(1));
    let fsyncs = || -> u64 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body.lines()
            .find_map(|l| l.strip_prefix("hakv_storage_fsyncs_total{node=\"1\"} "))
            .and_then(|v| v.trim().parse().ok())
            .expect("the fsync counter in /metrics")
    };
    let _: () = redis::cmd("SET")
        .arg("warm")
        .arg("up")
        .query(&mut c)
        .unwrap();
    let before = fsyncs();
    let mut pipe = redis::pipe();
    for i in 0..300 {
        pipe.cmd("SET").arg(format!("b{i}")).arg(i).ignore();
    }
    let _: () = pipe.query(&mut c).unwrap();
    let spent = fsyncs() - before;
    println!("300 pipelined SETs took {spent} fsyncs");
    assert!(spent <= 30, "300 pipelined SETs took {spent} fsyncs");
    let v: String = redis::cmd("GET").arg("b299").query(&mut c).unwrap();
    assert_eq!(v, "299");
}

#[test]
fn a_pipeline_of_writes_is_committed_together_raft() {
    a_pipeline_of_writes_is_committed_together("raft");
}

#[test]
fn a_pipeline_of_writes_is_committed_together_paxos() {
    a_pipeline_of_writes_is_committed_together("paxos");
}
