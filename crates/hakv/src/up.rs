//! `hakv up`: a local cluster, every node its own OS process on 127.0.0.1.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Args;

/// Flags of `hakv up`.
#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// How many nodes (each a voter).
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Where the nodes keep their data; running again on it brings the data back.
    #[arg(long, default_value = "./hakv-data")]
    pub dir: PathBuf,
    /// Client port of node 1; node i listens on port+i-1, its peer port is that
    /// +10000 and its HTTP port (/health, /status, /metrics) +20000.
    #[arg(long, default_value_t = 7001)]
    pub port: u16,
    /// Milliseconds per consensus tick.
    #[arg(long, default_value_t = 20)]
    pub tick_ms: u64,
    /// Shards of the keyspace, each its own replication group placed on the nodes by
    /// the consistent-hash ring.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub shards: u32,
    /// Replicas of each shard (at most --nodes).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=7))]
    pub replicas: u32,
    /// The replication engine every node runs: `raft` or `paxos`.
    #[arg(long, value_enum, default_value_t = crate::server::Consensus::Raft)]
    pub consensus: crate::server::Consensus,
    /// Flags passed to every `hakv server` (after `--`), e.g.
    /// `hakv up -- --compact-every 1000 --max-pending-bytes 65536`.
    #[arg(last = true)]
    pub server_args: Vec<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct NodeProc {
    id: u16,
    client: SocketAddr,
    child: Child,
    exited: bool,
}

/// Starts the cluster and supervises it until SIGINT/SIGTERM; returns the exit code.
pub fn run(a: UpArgs) -> i32 {
    if a.nodes == 0 || a.nodes > 99 {
        eprintln!("error: --nodes must be between 1 and 99");
        return 2;
    }
    if a.port as u32 + a.nodes as u32 + 20_000 > 65_535 || a.port == 0 {
        eprintln!(
            "error: --port {} leaves no room for {} client and peer ports",
            a.port, a.nodes
        );
        return 2;
    }
    if let Err(e) = fs::create_dir_all(&a.dir) {
        eprintln!("error: cannot create {}: {e}", a.dir.display());
        return 1;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find the hakv binary: {e}");
            return 1;
        }
    };
    let addr = |port: u32| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], port as u16)) };
    let ids: Vec<u16> = (1..=a.nodes).collect();
    let client = |i: u16| addr(a.port as u32 + i as u32 - 1);
    let peer = |i: u16| addr(a.port as u32 + i as u32 - 1 + 10_000);
    let http = |i: u16| addr(a.port as u32 + i as u32 - 1 + 20_000);
    // Refuse to start over another cluster: every port must be free now.
    for &i in &ids {
        for a in [client(i), peer(i), http(i)] {
            if let Err(e) = std::net::TcpListener::bind(a) {
                eprintln!(
                    "error: {a} is not free ({e}); is another cluster running? pick another --port"
                );
                return 1;
            }
        }
    }
    let cluster: Vec<String> = ids
        .iter()
        .map(|&i| format!("{i}={}/{}", client(i), peer(i)))
        .collect();
    let cluster = cluster.join(",");
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }

    let mut procs = Vec::new();
    for &i in &ids {
        let log_path = a.dir.join(format!("node-{i}.log"));
        let log = match File::options().create(true).append(true).open(&log_path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: cannot open {}: {e}", log_path.display());
                stop_all(&mut procs);
                return 1;
            }
        };
        let err_log = log.try_clone().expect("clone log handle");
        let child = Command::new(&exe)
            .arg("server")
            .args(["--id", &i.to_string()])
            .arg("--data-dir")
            .arg(a.dir.join(format!("node-{i}")))
            .args(["--listen", &client(i).to_string()])
            .args(["--peer-listen", &peer(i).to_string()])
            .args(["--http", &http(i).to_string()])
            .args(["--cluster", &cluster])
            .args(["--tick-ms", &a.tick_ms.to_string()])
            .args(["--consensus", consensus_name(a.consensus)])
            .args(["--shards", &a.shards.to_string()])
            .args(["--replicas", &a.replicas.to_string()])
            .args(&a.server_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn();
        match child {
            Ok(child) => procs.push(NodeProc {
                id: i,
                client: client(i),
                child,
                exited: false,
            }),
            Err(e) => {
                eprintln!("error: cannot start node {i}: {e}");
                stop_all(&mut procs);
                return 1;
            }
        }
    }
    if let Err(e) = write_cluster_json(&a, &procs, peer, http) {
        eprintln!(
            "error: cannot write {}: {e}",
            a.dir.join("cluster.json").display()
        );
        stop_all(&mut procs);
        return 1;
    }

    // Wait for every shard to have a leader, watching for nodes that die on the way.
    let started = Instant::now();
    let led = loop {
        if STOP.load(Ordering::SeqCst) {
            stop_all(&mut procs);
            return 130;
        }
        if reap(&mut procs, &a) == procs.len() {
            eprintln!(
                "error: every node exited; see the logs in {}",
                a.dir.display()
            );
            return 1;
        }
        // The answers must come from our own children, not from whatever owns a port.
        let led: Vec<(u16, u32)> = procs
            .iter()
            .filter(|p| !p.exited)
            .filter_map(|p| {
                let i = info(p.client)?;
                (i.pid == Some(p.child.id())).then_some((p.id, i.shards_led))
            })
            .collect();
        if led.iter().map(|(_, n)| n).sum::<u32>() >= a.shards {
            break led;
        }
        if started.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "error: not every shard has a leader after 30 s; see the logs in {}",
                a.dir.display()
            );
            stop_all(&mut procs);
            return 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let leaders: Vec<String> = led
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(id, n)| {
            if a.shards == 1 {
                format!("node {id} leads")
            } else {
                format!("node {id} leads {n}")
            }
        })
        .collect();
    println!(
        "hakv: {} nodes, {} shard{} up in {:.1} s; {}",
        procs.len(),
        a.shards,
        if a.shards == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64(),
        leaders.join(", ")
    );
    for p in &procs {
        println!(
            "  node {}: {}    redis-cli -p {}",
            p.id,
            p.client,
            p.client.port()
        );
    }
    println!(
        "  data and logs: {}    cluster map: {}",
        a.dir.display(),
        a.dir.join("cluster.json").display()
    );
    println!("ready (Ctrl-C stops every node)");
    let _ = std::io::stdout().flush();

    while !STOP.load(Ordering::SeqCst) {
        reap(&mut procs, &a);
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("hakv: stopping {} nodes", procs.len());
    stop_all(&mut procs);
    0
}

/// Reports nodes that exited since the last look; returns how many have exited.
fn reap(procs: &mut [NodeProc], a: &UpArgs) -> usize {
    for p in procs.iter_mut().filter(|p| !p.exited) {
        if let Ok(Some(status)) = p.child.try_wait() {
            p.exited = true;
            eprintln!(
                "hakv: node {} (pid {}) exited: {status}; see {}",
                p.id,
                p.child.id(),
                a.dir.join(format!("node-{}.log", p.id)).display()
            );
        }
    }
    procs.iter().filter(|p| p.exited).count()
}

/// SIGTERM every node (they shut down cleanly), then SIGKILL any still running after
/// five seconds.
fn stop_all(procs: &mut [NodeProc]) {
    for p in procs.iter() {
        if !p.exited {
            // SAFETY: sending a signal to a child process we started has no memory effects.
            unsafe {
                libc::kill(p.child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for p in procs.iter_mut() {
        while !p.exited {
            match p.child.try_wait() {
                Ok(Some(_)) | Err(_) => p.exited = true,
                Ok(None) if Instant::now() > deadline => {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    p.exited = true;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

fn write_cluster_json(
    a: &UpArgs,
    procs: &[NodeProc],
    peer: impl Fn(u16) -> SocketAddr,
    http: impl Fn(u16) -> SocketAddr,
) -> std::io::Result<()> {
    let nodes: Vec<serde_json::Value> = procs
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id,
                "pid": p.child.id(),
                "resp": p.client.to_string(),
                "peer": peer(p.id).to_string(),
                "http": http(p.id).to_string(),
                "data_dir": a.dir.join(format!("node-{}", p.id)),
                "log": a.dir.join(format!("node-{}.log", p.id)),
            })
        })
        .collect();
    let tmp = a.dir.join("cluster.json.tmp");
    fs::write(
        &tmp,
        serde_json::to_vec_pretty(&serde_json::json!({ "nodes": nodes }))?,
    )?;
    fs::rename(tmp, a.dir.join("cluster.json"))
}

struct Info {
    shards_led: u32,
    pid: Option<u32>,
}

/// How many shards a node leads and its `process_id:`, from its INFO, if it answers.
fn info(addr: SocketAddr) -> Option<Info> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(b"*1\r\n$4\r\nINFO\r\n").ok()?;
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(Some(resp::Frame::Bulk(text))) =
            resp::parse_frame(&mut buf, &resp::Limits::default())
        {
            let text = String::from_utf8_lossy(&text).into_owned();
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k).map(|r| r.trim().to_string()))
            };
            return Some(Info {
                shards_led: field("hakv_shards_led:")?.parse().ok()?,
                pid: field("process_id:").and_then(|p| p.parse().ok()),
            });
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn consensus_name(c: crate::server::Consensus) -> &'static str {
    match c {
        crate::server::Consensus::Raft => "raft",
        crate::server::Consensus::Paxos => "paxos",
    }
}
