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
}

/// Runs the command; returns the exit code.
pub fn run(a: CtlArgs) -> i32 {
    match a.cmd {
        CtlCmd::Status { dir, http } => status(dir, http),
    }
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
    println!(
        "{:<6} {:<7} {:<11} {:>6} {:>7} {:>10} {:>10} {:>9}  replication",
        "node", "engine", "role", "term", "leader", "commit", "applied", "log"
    );
    let mut unreachable = 0;
    for (name, addr) in targets {
        match get_json(addr, "/status") {
            Ok(s) => {
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
                let log = s["last_index"].as_u64().unwrap_or(0) + 1
                    - s["first_index"].as_u64().unwrap_or(1);
                let num = |k: &str| {
                    s[k].as_u64()
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into())
                };
                println!(
                    "{:<6} {:<7} {:<11} {:>6} {:>7} {:>10} {:>10} {:>9}  {}",
                    num("node"),
                    s["engine"].as_str().unwrap_or("?"),
                    s["role"].as_str().unwrap_or("?"),
                    match (s["ballot"]["round"].as_u64(), s["ballot"]["node"].as_u64()) {
                        (Some(r), Some(n)) => format!("{r}.{n}"),
                        _ => num("term"),
                    },
                    num("leader"),
                    num("commit"),
                    num("applied"),
                    log,
                    peers.join(" ")
                );
            }
            Err(e) => {
                unreachable += 1;
                println!("{name:<6} unreachable at {addr}: {e}");
            }
        }
    }
    if unreachable > 0 {
        1
    } else {
        0
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
