//! `hakv ctl`: operator commands against a running cluster.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

/// Flags of `hakv ctl`.
#[derive(Args, Debug, Clone)]
pub struct CtlArgs {
    #[command(subcommand)]
    cmd: CtlCmd,
}

#[derive(Subcommand, Debug, Clone)]
enum CtlCmd {
    /// Every node's role, term, leader, commit and applied index, and log size.
    Status {
        /// The directory of a `hakv up` cluster (reads its cluster.json).
        #[arg(long, default_value = "./hakv-data")]
        dir: PathBuf,
        /// Or: the nodes' HTTP addresses, comma-separated.
        #[arg(long, value_delimiter = ',')]
        http: Vec<SocketAddr>,
    },
    /// Move every shard replica off node N (to nodes the ring chooses), a few at a
    /// time, so that N can be stopped without losing redundancy.
    Drain {
        /// The node to drain.
        node: u64,
        /// The directory of a `hakv up` cluster (reads its cluster.json).
        #[arg(long, default_value = "./hakv-data")]
        dir: PathBuf,
        /// Or: any node's client (RESP) address, comma-separated.
        #[arg(long, value_delimiter = ',')]
        resp: Vec<SocketAddr>,
    },
}

/// Runs the command; returns the exit code.
pub fn run(a: CtlArgs) -> i32 {
    match a.cmd {
        CtlCmd::Status { dir, http } => status(dir, http),
        CtlCmd::Drain { node, dir, resp } => drain(node, dir, resp),
    }
}

/// Marks `node` draining in the meta group; its shards then move to other nodes
/// (a few at a time), after which it holds nothing and can be stopped.
fn drain(node: u64, dir: PathBuf, resp: Vec<SocketAddr>) -> i32 {
    let targets: Vec<SocketAddr> = if !resp.is_empty() {
        resp
    } else {
        match cluster_json(&dir) {
            Ok(j) => j["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| n["resp"].as_str()?.parse().ok())
                .collect(),
            Err(e) => {
                eprintln!("error: {e} (is a cluster running? try --resp)");
                return 2;
            }
        }
    };
    let req = format!(
        "*3\r\n$4\r\nHAKV\r\n$5\r\nDRAIN\r\n${}\r\n{node}\r\n",
        node.to_string().len()
    );
    for addr in targets {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
        if s.write_all(req.as_bytes()).is_err() {
            continue;
        }
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        let reply = String::from_utf8_lossy(&buf[..n]);
        if reply.starts_with("+OK") {
            println!(
                "node {node} is draining: its shards move to other nodes; watch `hakv ctl status`"
            );
            return 0;
        }
        eprintln!("error: {addr} answered {}", reply.trim());
        return 1;
    }
    eprintln!("error: no node answered");
    1
}

fn cluster_json(dir: &std::path::Path) -> Result<serde_json::Value, String> {
    let path = dir.join("cluster.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
}

fn status(dir: PathBuf, http: Vec<SocketAddr>) -> i32 {
    let targets: Vec<(String, SocketAddr)> = if !http.is_empty() {
        http.iter().map(|a| (a.to_string(), *a)).collect()
    } else {
        let path = dir.join("cluster.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "error: cannot read {}: {e} (is a cluster running? try --http)",
                    path.display()
                );
                return 2;
            }
        };
        let json: serde_json::Value = match serde_json::from_str(&text) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("error: {} is not valid JSON: {e}", path.display());
                return 2;
            }
        };
        json["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| Some((n["id"].to_string(), n["http"].as_str()?.parse().ok()?)))
            .collect()
    };
    let mut answers = Vec::new();
    let mut unreachable = Vec::new();
    for (name, addr) in targets {
        match get_json(addr, "/status") {
            Ok(s) => answers.push(s),
            Err(e) => unreachable.push(format!("{name:<6} unreachable at {addr}: {e}")),
        }
    }
    let sharded = answers
        .iter()
        .any(|s| s["shard_count"].as_u64().is_some_and(|n| n > 1));
    if sharded {
        print_nodes(&answers);
        for u in &unreachable {
            println!("{u}");
        }
        println!();
        print_shards(&answers);
    } else {
        print_replication(&answers);
        for u in &unreachable {
            println!("{u}");
        }
    }
    if unreachable.is_empty() {
        0
    } else {
        1
    }
}

fn num(s: &serde_json::Value, k: &str) -> String {
    s[k].as_u64()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into())
}

/// A term, or a Multi-Paxos ballot as round.node.
fn term(s: &serde_json::Value) -> String {
    match (s["ballot"]["round"].as_u64(), s["ballot"]["node"].as_u64()) {
        (Some(r), Some(n)) => format!("{r}.{n}"),
        _ => num(s, "term"),
    }
}

/// One group per node: each node's role, term, leader, indexes and its followers.
fn print_replication(answers: &[serde_json::Value]) {
    println!(
        "{:<6} {:<7} {:<11} {:>6} {:>7} {:>10} {:>10} {:>9}  replication",
        "node", "engine", "role", "term", "leader", "commit", "applied", "log"
    );
    for s in answers {
        let peers: Vec<String> = s["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}:{}@{}{}",
                    p["id"],
                    p["state"].as_str().unwrap_or("?"),
                    p["matched"],
                    if p["recently_active"].as_bool() == Some(true) {
                        ""
                    } else {
                        " (silent)"
                    }
                )
            })
            .collect();
        let log = (s["last_index"].as_u64().unwrap_or(0) + 1)
            .saturating_sub(s["first_index"].as_u64().unwrap_or(1));
        println!(
            "{:<6} {:<7} {:<11} {:>6} {:>7} {:>10} {:>10} {:>9}  {}",
            num(s, "node"),
            s["engine"].as_str().unwrap_or("?"),
            s["role"].as_str().unwrap_or("?"),
            term(s),
            num(s, "leader"),
            num(s, "commit"),
            num(s, "applied"),
            log,
            peers.join(" ")
        );
    }
}

/// Sharded: one line per node (what it holds and leads, and how it sees the others).
fn print_nodes(answers: &[serde_json::Value]) {
    println!(
        "{:<6} {:<7} {:>7} {:>5} {:>5}  sees",
        "node", "engine", "shards", "held", "led"
    );
    for s in answers {
        let unwell: Vec<String> = s["health"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["state"] != "alive")
            .map(|h| {
                format!(
                    "{} {} for {:.1} s",
                    h["id"],
                    h["state"].as_str().unwrap_or("?"),
                    h["for_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
                )
            })
            .collect();
        let sees = match (s["health"].as_array(), unwell.is_empty()) {
            (None, _) => "-".to_string(),
            (Some(_), true) => "every other node alive".to_string(),
            (Some(_), false) => unwell.join(", "),
        };
        println!(
            "{:<6} {:<7} {:>7} {:>5} {:>5}  {sees}",
            num(s, "node"),
            s["engine"].as_str().unwrap_or("?"),
            num(s, "shard_count"),
            num(s, "shards_held"),
            num(s, "shards_led"),
        );
    }
}

/// Sharded: one line per shard, assembled from every replica's report.
fn print_shards(answers: &[serde_json::Value]) {
    use std::collections::BTreeMap;
    // The meta group sorts first (as shard -1), then the shards in order.
    let mut shards: BTreeMap<i64, Vec<&serde_json::Value>> = BTreeMap::new();
    for s in answers {
        for sh in s["shards"].as_array().into_iter().flatten() {
            let id = match (&sh["shard"], sh["shard"].as_i64()) {
                (_, Some(id)) => id,
                (serde_json::Value::String(m), _) if m == "meta" => -1,
                _ => continue,
            };
            shards.entry(id).or_default().push(sh);
        }
    }
    println!(
        "{:<6} {:<12} {:>7} {:>6} {:>10}  {:<28} health",
        "shard", "replicas", "leader", "term", "commit", "applied by replica"
    );
    for (id, reports) in shards {
        let replicas: Vec<String> = reports[0]["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n.to_string())
            .collect();
        let leader = reports.iter().find(|r| r["role"] == "leader");
        let applied: Vec<String> = reports
            .iter()
            .map(|r| format!("{}:{}", num(r, "node"), num(r, "applied")))
            .collect();
        let commit = reports.iter().filter_map(|r| r["commit"].as_u64()).max();
        let health = match leader {
            None => "NO LEADER".to_string(),
            Some(_) if reports.len() < replicas.len() => {
                format!("{} of {} replicas answering", reports.len(), replicas.len())
            }
            Some(_) => "ok".to_string(),
        };
        println!(
            "{:<6} {:<12} {:>7} {:>6} {:>10}  {:<28} {health}",
            if id < 0 {
                "meta".to_string()
            } else {
                id.to_string()
            },
            replicas.join(","),
            leader.map_or("-".to_string(), |l| num(l, "node")),
            leader.map_or("-".to_string(), |l| term(l)),
            commit.map_or("-".to_string(), |c| c.to_string()),
            applied.join(" "),
        );
    }
}

/// GET `path` from a node's HTTP endpoint and parse the JSON body.
fn get_json(addr: SocketAddr, path: &str) -> Result<serde_json::Value, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or("malformed HTTP response")?;
    serde_json::from_str(body).map_err(|e| format!("bad JSON: {e}"))
}
