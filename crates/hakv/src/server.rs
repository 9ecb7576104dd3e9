//! `hakv server`: one node — peer transport, replica, Redis-protocol front.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use node::cluster::ManagerConfig;
use node::detector::DetectorHandle;
use node::front::route::{group_of, Routing, META_GROUP};
use node::front::{Front, FrontConfig};
use node::host::{GroupSpec, Host, HostConfig, HostRuntime};
use node::transport::{Transport, TransportConfig};

/// Flags of `hakv server`.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// This node's id (non-zero, listed in --cluster).
    #[arg(long)]
    pub id: u64,
    /// Directory for the log and snapshots.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Address for Redis clients.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Address for peer traffic.
    #[arg(long)]
    pub peer_listen: SocketAddr,
    /// Every founding node: `id=client_addr/peer_addr`, comma-separated. Not needed
    /// with --join.
    #[arg(long, value_parser = parse_cluster, required_unless_present = "join")]
    pub cluster: Option<BTreeMap<u64, (SocketAddr, SocketAddr)>>,
    /// Join a running cluster through any member's client address (instead of
    /// founding one): the node is added to the membership and, over time, receives
    /// its share of the shards (≈ 1/N) from the others.
    #[arg(long, conflicts_with = "cluster")]
    pub join: Option<SocketAddr>,
    /// Address for the operator HTTP endpoint (/health, /status, /metrics).
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// The replication engine: `raft` or `paxos` (Multi-Paxos). Every node of a
    /// cluster must run the same one, and a data directory keeps the engine that
    /// created it.
    #[arg(long, value_enum, default_value_t = Consensus::Raft)]
    pub consensus: Consensus,
    /// Milliseconds per consensus tick (election timeout is 10 ticks, heartbeat 2).
    #[arg(long, default_value_t = 20)]
    pub tick_ms: u64,
    /// DANGEROUS: never fsync. Acknowledged writes can be lost on power failure and
    /// Raft's safety no longer holds. For throwaway benchmarks only.
    #[arg(long)]
    pub unsafe_no_fsync: bool,
    /// Take a snapshot and compact the log every this many applied entries. A follower
    /// further behind than the retained log catches up by snapshot.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub compact_every: u64,
    /// Shards of the keyspace (fixed when the cluster is created; every node must be
    /// given the same number). Each shard is one replication group.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub shards: u32,
    /// Replicas of each shard, on distinct nodes chosen by the consistent-hash ring
    /// (at most the number of nodes).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=7))]
    pub replicas: u32,
    /// How long a node must look dead (to the failure detector of the meta group's
    /// leader) before its replicas are re-created on other nodes.
    #[arg(long, default_value_t = 30_000)]
    pub down_after_ms: u64,
    /// Largest bulk string a client may send, in bytes (Redis's proto-max-bulk-len).
    #[arg(long, default_value_t = 512 << 20)]
    pub max_bulk_bytes: usize,
    /// Most arguments in one client command.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_args: usize,
    /// Most bytes a client may have sent before its command is complete (Redis's
    /// client-query-buffer-limit); beyond it the client gets an error and is closed.
    #[arg(long, default_value_t = 1 << 30)]
    pub max_pending_bytes: usize,
    /// Threads of the node's async runtime (client connections, peer links, the
    /// HTTP endpoint). The consensus host and the snapshot writer have a thread
    /// each besides.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub worker_threads: u32,
}

/// The replication engines hakv can run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consensus {
    /// Raft (the default).
    Raft,
    /// Multi-Paxos with a distinguished proposer.
    Paxos,
}

/// Parses `1=127.0.0.1:7001/127.0.0.1:17001,2=…`.
pub fn parse_cluster(s: &str) -> Result<BTreeMap<u64, (SocketAddr, SocketAddr)>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (id, addrs) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}': expected id=client_addr/peer_addr"))?;
        let id: u64 = id.parse().map_err(|_| format!("'{id}' is not a node id"))?;
        if id == 0 {
            return Err("node id 0 is reserved".into());
        }
        let (c, p) = addrs
            .split_once('/')
            .ok_or_else(|| format!("'{addrs}': expected client_addr/peer_addr"))?;
        let c = c.parse().map_err(|e| format!("'{c}': {e}"))?;
        let p = p.parse().map_err(|e| format!("'{p}': {e}"))?;
        if out.insert(id, (c, p)).is_some() {
            return Err(format!("node {id} listed twice"));
        }
    }
    if out.is_empty() {
        return Err("the cluster lists no nodes".into());
    }
    Ok(out)
}

/// Runs the node until SIGINT or SIGTERM; returns the exit code.
pub fn run(args: ServerArgs) -> i32 {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads as usize)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(serve(args))
}

impl ServerArgs {
    /// The founding nodes (resolved from --join before use).
    fn cluster(&self) -> &BTreeMap<u64, (SocketAddr, SocketAddr)> {
        static EMPTY: BTreeMap<u64, (SocketAddr, SocketAddr)> = BTreeMap::new();
        self.cluster.as_ref().unwrap_or(&EMPTY)
    }
}

async fn serve(mut args: ServerArgs) -> i32 {
    let node = args.id;
    if let Some(seed) = args.join {
        match join(seed, &args).await {
            Ok((cluster, shards, replicas)) => {
                tracing::info!(node, via = %seed, founders = cluster.len(), shards, "joined the cluster");
                args.cluster = Some(cluster);
                args.shards = shards;
                args.replicas = replicas;
            }
            Err(e) => {
                eprintln!("error: cannot join the cluster through {seed}: {e}");
                return 1;
            }
        }
        if args.cluster().contains_key(&node) {
            eprintln!(
                "error: node {node} is a founding member; start it with --cluster, not --join"
            );
            return 2;
        }
    } else if !args.cluster().contains_key(&node) {
        eprintln!("error: node {node} is not listed in --cluster");
        return 2;
    }
    // The peer links run on the host thread (see `HostRuntime`).
    let host_rt = match HostRuntime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the host runtime: {e}");
            return 1;
        }
    };
    let (transport, incoming) = match Transport::bind_on(
        host_rt.handle(),
        TransportConfig::new(node),
        args.peer_listen,
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "error: cannot listen for peers on {}: {e}",
                args.peer_listen
            );
            return 1;
        }
    };
    for (&id, &(_, peer)) in args.cluster() {
        if id != node {
            transport.add_peer(id, peer);
        }
    }
    let transport = Arc::new(transport);
    let seed = node ^ std::process::id() as u64;
    if let Err(e) = claim_engine(&args.data_dir, args.consensus) {
        eprintln!("error: {e}");
        return 1;
    }
    if let Err(e) = claim_layout(&args.data_dir, &layout(&args)) {
        eprintln!("error: {e}");
        return 1;
    }
    // Every node computes the same placement from the same founding members.
    let map = match placement(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: cannot place {} shards: {e}", args.shards);
            return 2;
        }
    };
    // The meta group (shard map, dead nodes) lives on the first five founders.
    // (The manager moves it when founders die or drain; see node::cluster.)
    let founders: Vec<u64> = args.cluster().keys().copied().collect();
    let meta_replicas = node::cluster::map::founding_meta(&founders);
    let mut specs: Vec<GroupSpec> = map
        .shards_on(ring::NodeId(node))
        .into_iter()
        .map(|shard| {
            let voters: Vec<u64> = map
                .replicas(shard)
                .unwrap_or_default()
                .iter()
                .map(|n| n.0)
                .collect();
            GroupSpec {
                group: group_of(shard.0),
                // The ring's first choice leads: the placement spreads first choices
                // evenly, so leadership (and the write load) spreads too.
                preferred_leader: (args.shards > 1).then(|| voters[0]),
                voters,
            }
        })
        .collect();
    if meta_replicas.contains(&node) {
        specs.push(GroupSpec {
            group: META_GROUP,
            voters: meta_replicas.clone(),
            preferred_leader: None,
        });
    }
    let cfg = HostConfig {
        data_dir: args.data_dir.clone(),
        tick: Duration::from_millis(args.tick_ms),
        compact_every: args.compact_every,
        request_timeout: Duration::from_secs(10),
        storage: storage::Options {
            fsync: if args.unsafe_no_fsync {
                storage::FsyncPolicy::Never
            } else {
                storage::FsyncPolicy::Always
            },
            ..Default::default()
        },
    };
    // Peer frames pass through the front's router: forwarded client requests go to the
    // front, consensus traffic straight into the host's queue (`Host::peer_inbox`), so
    // the host's own intake channel stays unused.
    let (_, host_rx) = tokio::sync::mpsc::channel(1);
    let started = match args.consensus {
        Consensus::Raft => {
            let mut raft = raft::Config::new(node);
            raft.seed = seed;
            Host::start_on::<raft::Raft>(host_rt, cfg, raft, &specs, transport.clone(), host_rx)
        }
        Consensus::Paxos => {
            let mut paxos = paxos::Config::new(node);
            paxos.seed = seed;
            Host::start_on::<paxos::Paxos>(host_rt, cfg, paxos, &specs, transport.clone(), host_rx)
        }
    };
    let host = match started {
        Ok(h) => Arc::new(h),
        Err(e) => {
            eprintln!(
                "error: node {node} cannot open its data in {}: {e}",
                args.data_dir.display()
            );
            return 1;
        }
    };
    let local = host
        .replicas()
        .into_iter()
        .map(|(group, r)| ((group - 1) as u32, r))
        .collect();
    let routing = Arc::new(Routing::new(&map, local, meta_replicas));
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen for clients on {}: {e}", args.listen);
            return 1;
        }
    };
    let front_cfg = FrontConfig {
        limits: resp::Limits {
            bulk_bytes_max: args.max_bulk_bytes,
            args_max: args.max_args,
            ..resp::Limits::default()
        },
        pending_bytes_max: args.max_pending_bytes,
        layout: Some((layout(&args), cluster_string(args.cluster()))),
        ..FrontConfig::new(node)
    };
    let front = Front::new(routing.clone(), transport.clone(), front_cfg);
    let (detector_tx, detector_rx) = tokio::sync::mpsc::channel(4096);
    let detector = Arc::new(DetectorHandle::start(
        node,
        args.cluster().keys().copied().chain([node]).collect(),
        node::detector::production_config(node),
        transport.clone(),
        detector_rx,
    ));
    let router = host.runtime().spawn(front.clone().route(
        incoming,
        host.peer_inbox(),
        Some(detector_tx),
    ));
    let manager = tokio::spawn(node::cluster::run(
        ManagerConfig {
            node_id: node,
            nodes: args.cluster().keys().copied().collect(),
            down_after: Duration::from_millis(args.down_after_ms),
            interval: Duration::from_millis(500),
            placement: placement_of(&args).expect("placed above"),
            catching_up_max: 2,
            balance_leaders: args.shards > 1,
        },
        front.clone(),
        host.clone(),
        routing.clone(),
        detector.clone(),
        transport.clone(),
    ));
    let http = match args.http {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                let observed = Arc::new(node::http::Observed {
                    node_id: node,
                    engine: host.engine_name(),
                    routing: routing.clone(),
                    transport: transport.clone(),
                    detector: Some(detector.clone()),
                    storage: Some(host.storage_counters()),
                });
                Some(tokio::spawn(node::http::serve(l, observed)))
            }
            Err(e) => {
                eprintln!("error: cannot listen for HTTP on {addr}: {e}");
                return 1;
            }
        },
        None => None,
    };
    tracing::info!(
        node,
        clients = %args.listen,
        peers = %args.peer_listen,
        http = ?args.http,
        shards = args.shards,
        held = specs.len(),
        "node started"
    );
    let front = tokio::spawn(front.serve(listener));
    wait_for_signal().await;
    tracing::info!(node, "stopping");
    front.abort();
    manager.abort();
    router.abort();
    if let Some(h) = http {
        h.abort();
    }
    drop(routing);
    drop(detector);
    match Arc::try_unwrap(host) {
        Ok(host) => host.stop(),
        Err(host) => drop(host),
    }
    0
}

/// The founding placement: the shards of a keyspace of `--shards` on the `--cluster`
/// nodes, `--replicas` each, by the consistent-hash ring.
fn placement(args: &ServerArgs) -> Result<ring::ShardMap, ring::Error> {
    let members = ring::Members::new(args.cluster().keys().map(|&id| ring::Node::new(id)))?;
    placement_of(args)?.compute(&members)
}

/// The cluster's placement rules: its keyspace and replicas per shard.
fn placement_of(args: &ServerArgs) -> Result<ring::Placement, ring::Error> {
    let keyspace = ring::Keyspace::new(args.shards, ring::HashTags::Redis)?;
    let replicas = args.replicas.min(args.cluster().len() as u32);
    ring::Placement::new(
        keyspace,
        replicas,
        ring::Placement::VNODES_PER_WEIGHT_DEFAULT,
    )
}

/// `id=client/peer,...`, the form of --cluster.
fn cluster_string(c: &BTreeMap<u64, (SocketAddr, SocketAddr)>) -> String {
    c.iter()
        .map(|(id, (client, peer))| format!("{id}={client}/{peer}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Asks a member (at its client address) to add this node; returns the founding
/// nodes and the keyspace layout.
async fn join(
    seed: SocketAddr,
    args: &ServerArgs,
) -> Result<(BTreeMap<u64, (SocketAddr, SocketAddr)>, u32, u32), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let parts = [
        "HAKV".to_string(),
        "JOIN".to_string(),
        args.id.to_string(),
        args.listen.to_string(),
        args.peer_listen.to_string(),
    ];
    let mut req = format!("*{}\r\n", parts.len());
    for p in &parts {
        req.push_str(&format!("${}\r\n{p}\r\n", p.len()));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let reply = loop {
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect(seed)
                .await
                .map_err(|e| e.to_string())?;
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = bytes::BytesMut::new();
            loop {
                if let Some(f) = resp::parse_frame(&mut buf, &resp::Limits::default())
                    .map_err(|e| e.to_string())?
                {
                    return Ok::<resp::Frame, String>(f);
                }
                if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                    return Err("connection closed".to_string());
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Ok(resp::Frame::Error(e))) if !e.starts_with(b"TRYAGAIN") => {
                return Err(String::from_utf8_lossy(&e).into_owned())
            }
            Ok(Ok(f @ resp::Frame::Array(_))) => break f,
            other if std::time::Instant::now() > deadline => {
                return Err(format!("no usable answer: {other:?}"))
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let resp::Frame::Array(items) = reply else {
        unreachable!("matched above")
    };
    let text = |i: usize| match items.get(i) {
        Some(resp::Frame::Bulk(b)) => Ok(String::from_utf8_lossy(b).into_owned()),
        _ => Err("malformed join reply".to_string()),
    };
    let layout = text(0)?;
    let cluster = parse_cluster(&text(1)?)?;
    let field = |k: &str| {
        layout
            .split_whitespace()
            .find_map(|f| f.strip_prefix(k))
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| format!("malformed layout {layout:?}"))
    };
    Ok((cluster, field("shards=")?, field("replicas=")?))
}

/// The founding layout of a cluster, as recorded in each data directory: the shard
/// count, replicas per shard and founding nodes together decide the placement.
fn layout(args: &ServerArgs) -> String {
    let nodes: Vec<String> = args.cluster().keys().map(|n| n.to_string()).collect();
    format!(
        "shards={} replicas={} nodes={}\n",
        args.shards,
        args.replicas.min(args.cluster().len() as u32),
        nodes.join(",")
    )
}

/// Records the layout a data directory was created with and refuses another: a
/// different shard count would route keys to shards that do not hold them, and a
/// different replica count or founding node set would place shards on other nodes.
fn claim_layout(dir: &std::path::Path, want: &str) -> Result<(), String> {
    let marker = dir.join("LAYOUT");
    match std::fs::read_to_string(&marker) {
        Ok(found) if found == want => Ok(()),
        Ok(found) => Err(format!(
            "{} was created with layout `{}`; it cannot be opened with `{}` (shards, replicas and founding nodes are fixed when a cluster is created)",
            dir.display(),
            found.trim(),
            want.trim()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Directories from before the marker hold one shard (group 1).
            if dir.join("wal").exists() && !want.starts_with("shards=1 ") {
                return Err(format!(
                    "{} holds an unsharded store; it cannot be opened with `{}`",
                    dir.display(),
                    want.trim()
                ));
            }
            std::fs::create_dir_all(dir)
                .and_then(|()| node::host::write_durably(&marker, want.as_bytes()))
                .map_err(|e| format!("cannot write {}: {e}", marker.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", marker.display())),
    }
}

/// Records which engine owns a data directory, and refuses to open it with the other:
/// Raft and Multi-Paxos store different things in the same records (a term is not a
/// ballot), so reading one's state as the other's would be silent corruption.
fn claim_engine(dir: &std::path::Path, engine: Consensus) -> Result<(), String> {
    let name = match engine {
        Consensus::Raft => "raft",
        Consensus::Paxos => "paxos",
    };
    let marker = dir.join("ENGINE");
    match std::fs::read_to_string(&marker) {
        Ok(found) if found.trim() == name => Ok(()),
        Ok(found) => Err(format!(
            "{} was created by the {} engine; it cannot be opened with --consensus {name}",
            dir.display(),
            found.trim()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Directories from before the marker existed hold Raft state.
            if dir.join("wal").exists() && engine != Consensus::Raft {
                return Err(format!(
                    "{} holds Raft state (no ENGINE marker); it cannot be opened with --consensus {name}",
                    dir.display()
                ));
            }
            std::fs::create_dir_all(dir)
                .and_then(|()| node::host::write_durably(&marker, format!("{name}\n").as_bytes()))
                .map_err(|e| format!("cannot write {}: {e}", marker.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", marker.display())),
    }
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{claim_engine, parse_cluster, Consensus};

    #[test]
    fn a_data_directory_is_opened_only_by_the_engine_that_created_it() {
        let dir = std::env::temp_dir().join(format!("hakv-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        claim_engine(&dir, Consensus::Paxos).unwrap();
        // Written whole, under its final name only (through a temporary file).
        assert_eq!(
            std::fs::read_to_string(dir.join("ENGINE")).unwrap(),
            "paxos\n"
        );
        assert!(!dir.join("ENGINE.tmp").exists());
        claim_engine(&dir, Consensus::Paxos).unwrap();
        let e = claim_engine(&dir, Consensus::Raft).unwrap_err();
        assert!(e.contains("created by the paxos engine"), "{e}");
        // A directory from before the marker holds Raft state.
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(dir.join("wal")).unwrap();
        assert!(claim_engine(&dir, Consensus::Paxos)
            .unwrap_err()
            .contains("holds Raft state"));
        claim_engine(&dir, Consensus::Raft).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cluster_flags_parse_and_bad_ones_say_why() {
        let c = parse_cluster("1=127.0.0.1:7001/127.0.0.1:17001,2=127.0.0.1:7002/127.0.0.1:17002")
            .unwrap();
        assert_eq!(c.len(), 2);
        assert!(parse_cluster("").unwrap_err().contains("no nodes"));
        assert!(parse_cluster("x=1/2")
            .unwrap_err()
            .contains("not a node id"));
        assert!(parse_cluster("1=127.0.0.1:1")
            .unwrap_err()
            .contains("client_addr/peer_addr"));
        assert!(parse_cluster("1=a/b").is_err());
        assert!(parse_cluster("0=127.0.0.1:1/127.0.0.1:2")
            .unwrap_err()
            .contains("reserved"));
    }
}
