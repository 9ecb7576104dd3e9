//! The Redis-protocol front: accepts client connections, parses pipelined RESP
//! requests, runs them against the replica, and answers in order.
//!
//! Data commands ([`data`]) become proposals or linearizable queries. One that reaches
//! a follower is forwarded one hop to the leader **over the peer transport** (group
//! [`FORWARD_GROUP`]): the leader plans and runs it as if its own client had sent it
//! and sends the reply frame back. Connection-level commands (PING, HELLO, CLIENT, ...)
//! are answered where they arrive.
//!
//! A connection's requests run in the order sent, as Redis runs them, with one
//! exception that keeps that order's effects: consecutive pipelined writes to one shard
//! led here are proposed together ([`Front::write_run`]), so a pipeline of N writes
//! costs one batch and one fsync, not N of each. The log applies them in the order
//! given. A read, a connection command or another shard's write waits for the run
//! before it. If leadership moved, the replica refuses the whole remainder of the run,
//! and it is retried one request at a time.
//!
//! Limits: bulk length, argument count and inline length come from [`resp::Limits`];
//! a client whose unparsed input exceeds [`FrontConfig::pending_bytes_max`] gets an
//! error and is disconnected, and replies are flushed every [`OUTPUT_FLUSH_BYTES`] so a
//! long pipeline cannot pile up output. A malformed frame gets an error and the
//! connection closes.

mod data;
pub mod route;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use resp::{CommandDecoder, Frame, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::replica::{now_ms, ClientError, Replica};
use crate::transport::{Incoming, Transport};
use consensus::NodeId;
use data::{err, ok, Plan};
use route::{Routing, Split};

/// The transport group that carries forwarded client requests and their replies.
pub const FORWARD_GROUP: u64 = u64::MAX;

/// How often a forwarded request checks that its leader is still the leader.
const LEADER_CHECK: Duration = Duration::from_millis(20);

/// How long a request waits for a group with no leader (an election, a transfer)
/// before the client gets TRYAGAIN.
const NO_LEADER_PATIENCE: Duration = Duration::from_secs(1);

/// Redirects followed before giving up (leadership moving while we chase it).
const REDIRECTS_MAX: usize = 3;

/// Replies are written to the socket whenever this much has accumulated.
pub const OUTPUT_FLUSH_BYTES: usize = 64 << 10;

/// Front configuration.
#[derive(Clone, Debug)]
pub struct FrontConfig {
    /// This node's id.
    pub node_id: u64,
    /// Protocol limits (bulk size, argument count, inline length).
    pub limits: Limits,
    /// Most bytes of a client's input buffered before a complete command arrives
    /// (Redis's `client-query-buffer-limit`); more disconnects the client.
    pub pending_bytes_max: usize,
    /// How long a forwarded request may wait for the leader's reply.
    pub forward_timeout: Duration,
    /// The cluster's layout line and founding nodes (`id=client/peer,...`), handed
    /// to a node that joins.
    pub layout: Option<(String, String)>,
}

impl FrontConfig {
    /// Redis's default limits, a 1 GiB query buffer, a 10 s forwarding timeout.
    pub fn new(node_id: u64) -> Self {
        FrontConfig {
            node_id,
            limits: Limits::default(),
            pending_bytes_max: 1 << 30,
            forward_timeout: Duration::from_secs(10),
            layout: None,
        }
    }
}

static CLIENT_IDS: AtomicU64 = AtomicU64::new(1);

/// One node's front: the shards it routes to, its transport for forwarding, and the
/// forwarded requests waiting for a leader's reply.
pub struct Front {
    routing: Arc<Routing>,
    transport: Arc<Transport>,
    cfg: FrontConfig,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_request: AtomicU64,
    /// Where forwarded requests are served: the runtime the front was made on, not
    /// the host's, where the router may run (see [`Front::route`]).
    spawner: tokio::runtime::Handle,
}

impl Front {
    /// A front routing requests by `routing`, forwarding through `transport`. Must be
    /// called on a runtime: requests forwarded from peers are served there.
    pub fn new(routing: Arc<Routing>, transport: Arc<Transport>, cfg: FrontConfig) -> Arc<Front> {
        Arc::new(Front {
            routing,
            transport,
            cfg,
            waiting: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            spawner: tokio::runtime::Handle::current(),
        })
    }

    /// Serves clients on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(self.clone().connection(stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Routes peer frames: forwarding traffic to this front, failure-detector traffic
    /// to `detector_tx` (dropped when its queue is full: probes are retried, and a
    /// busy node must not stall consensus for them), everything else to `host` (straight
    /// into the host thread's queue). Runs until `incoming` closes. A node spawns it on
    /// its host's runtime, beside the transport, so that a consensus frame goes from
    /// the socket to the host without waking another thread.
    pub async fn route(
        self: Arc<Self>,
        mut incoming: mpsc::Receiver<Incoming>,
        host: crate::host::PeerInbox,
        detector_tx: Option<mpsc::Sender<Incoming>>,
    ) {
        while let Some(m) = incoming.recv().await {
            if m.group == FORWARD_GROUP {
                self.on_forward_frame(m);
            } else if m.group == crate::detector::MEMBERSHIP_GROUP {
                if let Some(d) = &detector_tx {
                    let _ = d.try_send(m);
                }
            } else if !host.deliver(m).await {
                return;
            }
        }
    }

    async fn connection(self: Arc<Self>, mut stream: TcpStream) {
        let mut decoder = CommandDecoder::new(self.cfg.limits);
        let mut input = BytesMut::with_capacity(16 << 10);
        let mut output = BytesMut::with_capacity(16 << 10);
        let mut conn = Conn {
            id: CLIENT_IDS.fetch_add(1, Ordering::Relaxed),
            name: None,
            version: Version::Resp2,
        };
        let mut batch: Vec<Vec<Bytes>> = Vec::new();
        loop {
            // Answer every complete request in the buffer, in order, a batch at a time.
            loop {
                let mut damaged = None;
                batch.clear();
                while batch.len() < PIPELINE_BATCH_MAX {
                    match decoder.decode(&mut input) {
                        Ok(Some(args)) => batch.push(args),
                        Ok(None) => break,
                        Err(e) => {
                            damaged = Some(e);
                            break;
                        }
                    }
                }
                if batch.is_empty() && damaged.is_none() {
                    break;
                }
                let mut i = 0;
                while i < batch.len() {
                    // Consecutive writes to one shard held here go to its replica
                    // together: one submission, one batch, one fsync, instead of
                    // one round trip through the log each.
                    let run = if batch.len() - i >= 2 {
                        self.write_run(&batch[i..])
                    } else {
                        None
                    };
                    if let Some((replica, plans)) = run {
                        let n = plans.len();
                        let answered = write_run(&replica, plans, conn.version, &mut output).await;
                        // What the leader refused (it moved) runs one at a time below,
                        // in order, with the usual retries and forwarding.
                        i += answered;
                        let end = i + (n - answered);
                        while i < end {
                            let args = std::mem::take(&mut batch[i]);
                            self.execute_into(args, &mut conn, &mut output).await;
                            i += 1;
                        }
                    } else {
                        let args = std::mem::take(&mut batch[i]);
                        let close = self.execute_into(args, &mut conn, &mut output).await;
                        i += 1;
                        if close {
                            let _ = stream.write_all(&output).await;
                            return;
                        }
                    }
                    if output.len() >= OUTPUT_FLUSH_BYTES {
                        if stream.write_all(&output).await.is_err() {
                            return;
                        }
                        output.clear();
                    }
                }
                if let Some(e) = damaged {
                    resp::encode(&e.to_frame(), conn.version, &mut output);
                    let _ = stream.write_all(&output).await;
                    return;
                }
            }
            if input.len() > self.cfg.pending_bytes_max {
                let e = err(format!(
                    "ERR client query buffer exceeds the limit of {} bytes; closing",
                    self.cfg.pending_bytes_max
                ));
                resp::encode(&e, conn.version, &mut output);
                let _ = stream.write_all(&output).await;
                return;
            }
            if !output.is_empty() {
                if stream.write_all(&output).await.is_err() {
                    return;
                }
                output.clear();
            }
            match stream.read_buf(&mut input).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Runs one request and encodes its reply; returns whether to close the connection.
    async fn execute_into(&self, args: Vec<Bytes>, conn: &mut Conn, output: &mut BytesMut) -> bool {
        let (reply, close) = self.execute(args, conn).await;
        resp::encode(&reply, conn.version, output);
        close
    }

    /// The longest run (two or more) at the head of `requests` of writes to one shard
    /// that has a replica here, planned; `None` when the first request is not such a
    /// write or the run would be a single request.
    fn write_run(&self, requests: &[Vec<Bytes>]) -> Option<(Arc<Replica>, Vec<WritePlan>)> {
        let now = now_ms();
        let mut shard = None;
        let mut plans = Vec::new();
        for args in requests.iter().take(WRITE_RUN_MAX) {
            let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
            if CONNECTION_COMMANDS.contains(&name.as_str()) || name == MEMBERS_COMMAND {
                break;
            }
            let Ok(Split::One(s)) = route::split(&self.routing, &name, args) else {
                break;
            };
            if shard.is_some_and(|first| first != s) {
                break;
            }
            let Some(Ok(Plan::Write(cmds, shape))) = data::plan(&name, args, now) else {
                break;
            };
            shard = Some(s);
            plans.push((cmds, shape));
        }
        if plans.len() < 2 {
            return None;
        }
        Some((self.routing.local(shard?)?, plans))
    }

    /// Runs one request; returns the reply and whether to close the connection after it.
    async fn execute(&self, args: Vec<Bytes>, conn: &mut Conn) -> (Frame, bool) {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let a = &args[1..];
        let reply = match (name.as_str(), a.len()) {
            ("ping", 0) => Frame::simple("PONG"),
            ("ping", 1) => Frame::Bulk(a[0].clone()),
            ("echo", 1) => Frame::Bulk(a[0].clone()),
            ("quit", _) => return (ok(), true),
            ("hello", n) => hello(a, n, conn),
            ("select", 1) if &a[0][..] == b"0" => ok(),
            ("select", 1) => err("ERR DB index is out of range"),
            ("client", n) if n >= 1 => client(a, conn),
            ("command", _) => Frame::Array(Vec::new()),
            ("config", n) if n >= 1 && a[0].eq_ignore_ascii_case(b"get") => config_get(&a[1..]),
            ("info", _) => info(&self.routing, self.cfg.node_id).await,
            ("hakv", n) if n >= 1 => self.admin(a).await,
            ("ping" | "echo" | "select" | "config" | "client", _) => err(format!(
                "ERR wrong number of arguments for '{name}' command"
            )),
            _ => self.dispatch(&name, &args).await,
        };
        (reply, false)
    }

    /// Runs a data command on the shards it touches and merges their replies.
    async fn dispatch(&self, name: &str, args: &[Bytes]) -> Frame {
        match route::split(&self.routing, name, args) {
            Err(reply) => reply,
            Ok(Split::One(shard)) => self.on_shard(shard, name, args).await,
            Ok(Split::Scan(shard, sub)) => {
                let reply = self.on_shard(shard, name, &sub).await;
                route::scan_reply(&self.routing, shard, reply)
            }
            Ok(Split::Many { parts, merge, keys }) => {
                let replies = futures::future::join_all(
                    parts
                        .iter()
                        .map(|(shard, sub, _)| self.on_shard(*shard, name, sub)),
                )
                .await;
                let parts = parts
                    .into_iter()
                    .zip(replies)
                    .map(|((_, _, positions), reply)| (positions, reply))
                    .collect();
                route::merge(merge, keys, parts)
            }
        }
    }

    /// Cluster administration: `HAKV JOIN id client_addr peer_addr` records a new
    /// member in the meta group (and answers with the layout and founding nodes);
    /// `HAKV DRAIN id` marks a member draining, so its shards move elsewhere.
    async fn admin(&self, a: &[Bytes]) -> Frame {
        let sub = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
        let id = a
            .get(1)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|&n| n != 0);
        let addr = |i: usize| {
            a.get(i)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse::<std::net::SocketAddr>().ok())
        };
        let meta = match crate::cluster::read_meta(self).await {
            Ok(m) => m,
            Err(e) => return err(format!("TRYAGAIN cannot read the cluster map: {e}")),
        };
        let (pair, reply) = match (sub.as_str(), a.len(), id) {
            ("join", 4, Some(id)) => {
                let (Some(client), Some(peer), Some((layout, founders))) =
                    (addr(2), addr(3), self.cfg.layout.clone())
                else {
                    return err("ERR usage: HAKV JOIN id client_addr peer_addr");
                };
                if meta.is_dead(id) {
                    return err(format!("ERR node {id} was declared dead; give the new node another id"));
                }
                let founder = layout
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("nodes="))
                    .is_some_and(|nodes| nodes.split(',').any(|n| n == id.to_string()));
                if founder {
                    return err(format!(
                        "ERR node {id} is a founding member; restart it with --cluster, or give the new node another id"
                    ));
                }
                let record = crate::cluster::NodeRecord {
                    state: ring::NodeState::Active,
                    addrs: Some((client, peer)),
                };
                let reply = Frame::Array(vec![
                    Frame::Bulk(Bytes::from(layout)),
                    Frame::Bulk(Bytes::from(founders)),
                ]);
                ((crate::cluster::map::node_key(id), record.encode()), reply)
            }
            ("drain", 2, Some(id)) => {
                if meta.is_dead(id) {
                    return err(format!("ERR node {id} is dead; its shards have moved already"));
                }
                let record = crate::cluster::NodeRecord {
                    state: ring::NodeState::Draining,
                    addrs: meta.nodes.get(&id).and_then(|r| r.addrs),
                };
                ((crate::cluster::map::node_key(id), record.encode()), ok())
            }
            _ => {
                return err(
                    "ERR unknown HAKV subcommand or arguments; try HAKV JOIN id client peer | HAKV DRAIN id",
                )
            }
        };
        match crate::cluster::write_meta(self, &[pair]).await {
            Ok(()) => reply,
            Err(e) => err(format!("ERR cannot record the change: {e}")),
        }
    }

    /// Runs a data command (`args[0]` is its name) on `shard` — [`route::META_SHARD`]
    /// for the meta group — wherever that shard's leader is, as a client's request
    /// would be; for the node's own housekeeping (the cluster manager).
    pub async fn call(&self, shard: u32, args: &[Bytes]) -> Frame {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        self.on_shard(shard, &name, args).await
    }

    /// Runs a data command on `shard`: here if this node leads it, else forwarded one
    /// hop to its leader.
    async fn on_shard(&self, shard: u32, name: &str, args: &[Bytes]) -> Frame {
        let target = match self.routing.local(shard) {
            Some(replica) => {
                // A request refused while leadership moves (a transfer, an election)
                // was not taken: retry it for a moment rather than fail the client.
                let give_up = tokio::time::Instant::now() + NO_LEADER_PATIENCE;
                loop {
                    match run(&replica, name, args).await {
                        Err(ClientError::NotLeader { hint: Some(l) }) if l != self.cfg.node_id => {
                            break Some(l)
                        }
                        Err(e @ (ClientError::Transferring | ClientError::NotLeader { .. }))
                            if tokio::time::Instant::now() < give_up =>
                        {
                            let _ = e;
                            tokio::time::sleep(LEADER_CHECK).await;
                        }
                        // Still no leader known here: this replica may have been removed
                        // from its group, and then it never hears of a leader again.
                        // The other replicas may know one.
                        Err(ClientError::NotLeader { .. }) => break None,
                        Err(e) => return client_error(e),
                        Ok(frame) => return frame,
                    }
                }
            }
            None => None,
        };
        let target = match target {
            Some(t) => t,
            // Not held here (or held by a replica that knows no leader): its likely
            // leader, or any replica we can reach (which redirects us to the leader).
            None => {
                // The likely leader first, then the shard's replicas, then any node
                // at all as a last resort (each redirects to the leader it knows).
                let me = self.cfg.node_id;
                let usable = |n: NodeId| n != me && self.transport.is_up(n);
                let mut candidates: Vec<NodeId> = Vec::with_capacity(8);
                let likely = self.routing.leader_guess(shard).into_iter();
                for n in likely.chain(self.routing.replicas(shard)) {
                    if usable(n) && !candidates.contains(&n) {
                        candidates.push(n);
                    }
                }
                // Every other node only when no replica is reachable (after a restart,
                // the meta group may have moved away from the nodes this one knows):
                // listing them sorts every replica set, too much for every request.
                if candidates.is_empty() {
                    for n in self.routing.known_nodes() {
                        if usable(n) && candidates.len() < 8 {
                            candidates.push(n);
                        }
                    }
                }
                if candidates.is_empty() {
                    return err(format!(
                        "CLUSTERDOWN no replica of shard {shard} is reachable from node {}",
                        self.cfg.node_id
                    ));
                }
                return self.chase_any(&candidates, shard, args).await;
            }
        };
        self.chase(target, shard, args).await
    }

    /// Runs an internal request for `shard` starting at node `at` and following its
    /// redirects to the shard's leader (used when this node's own replica of the shard
    /// may be out of date, e.g. removed from its group without knowing it).
    pub async fn call_at(&self, at: NodeId, shard: u32, args: &[Bytes]) -> Frame {
        if at == self.cfg.node_id {
            return self.call(shard, args).await;
        }
        self.chase(at, shard, args).await
    }

    /// Forwards to `target`, following redirects, until a reply.
    async fn chase(&self, target: NodeId, shard: u32, args: &[Bytes]) -> Frame {
        self.chase_any(&[target], shard, args).await
    }

    /// Forwards to the first of `candidates`, following redirects, until a reply; a
    /// node that knows no leader passes the request to the next candidate (it may be
    /// a replica removed from the group, which never hears of a leader again). When
    /// none knows a leader (an election, a transfer), asks them all again shortly,
    /// for up to [`NO_LEADER_PATIENCE`].
    async fn chase_any(&self, candidates: &[NodeId], shard: u32, args: &[Bytes]) -> Frame {
        let give_up = tokio::time::Instant::now() + NO_LEADER_PATIENCE;
        let mut redirects = 0;
        loop {
            for &start in candidates {
                let mut target = start;
                loop {
                    match self.forward(target, shard, args).await {
                        Ok(frame) => return frame,
                        // This node knows no leader: try the next candidate.
                        Err(0) => break,
                        Err(_) if redirects >= REDIRECTS_MAX => {
                            return err(format!(
                                "TRYAGAIN the leader of shard {shard} kept moving; retry"
                            ))
                        }
                        Err(l) => {
                            redirects += 1;
                            self.routing.learn_leader(shard, l);
                            target = l;
                        }
                    }
                }
            }
            if tokio::time::Instant::now() >= give_up {
                return err(format!(
                    "TRYAGAIN no leader of shard {shard} known yet; retry shortly"
                ));
            }
            tokio::time::sleep(LEADER_CHECK).await;
        }
    }

    /// Sends the request to `leader` over the peer transport and waits for its reply;
    /// `Err(l)` is a redirect: `leader` does not lead `shard`, node `l` does (0: it
    /// knows no leader).
    async fn forward(&self, leader: u64, shard: u32, args: &[Bytes]) -> Result<Frame, u64> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let mut payload =
            BytesMut::with_capacity(20 + args.iter().map(|a| 4 + a.len()).sum::<usize>());
        payload.put_u8(FORWARD_REQUEST);
        payload.put_u64_le(id);
        payload.put_u32_le(shard);
        payload.put_u32_le(args.len() as u32);
        for a in args {
            payload.put_u32_le(a.len() as u32);
            payload.put_slice(a);
        }
        let (tx, mut rx) = oneshot::channel();
        self.waiting.lock().expect("not poisoned").insert(id, tx);
        self.transport.send(leader, FORWARD_GROUP, &payload);
        // Wait for the reply, but give up as soon as this node stops believing in that
        // leader (it died or was replaced): a dead leader never answers, and a client
        // is better served by a quick error it can retry elsewhere than by a hang.
        let local = self.routing.local(shard);
        // Our own replica says who leads; for a shard not held here, a lost
        // connection is the sign that the node died.
        let still_leader = || match &local {
            Some(r) => r.leader_hint() == Some(leader),
            None => self.transport.is_up(leader),
        };
        let deadline = tokio::time::Instant::now() + self.cfg.forward_timeout;
        let reply = loop {
            tokio::select! {
                r = &mut rx => break r.ok(),
                _ = tokio::time::sleep(LEADER_CHECK) => {
                    if !still_leader() || tokio::time::Instant::now() >= deadline {
                        break None;
                    }
                }
            }
        };
        self.waiting.lock().expect("not poisoned").remove(&id);
        if reply.is_none() {
            // Next time, start from another replica.
            self.routing.learn_leader(shard, 0);
        }
        match reply {
            Some(Reply::Frame(frame)) => Ok(frame),
            Some(Reply::Redirect(l)) if l != leader => Err(l),
            Some(Reply::Redirect(_)) => Ok(err(format!(
                "TRYAGAIN node {leader} says it leads shard {shard} but refused; retry"
            ))),
            None if !still_leader() => Ok(err(format!(
                "ERR leader {leader} was lost while it held this request; the outcome is unknown"
            ))),
            None => Ok(err(format!(
                "ERR no reply from node {leader} in time (unreachable?); the outcome is unknown"
            ))),
        }
    }

    fn on_forward_frame(self: &Arc<Self>, m: Incoming) {
        match decode_forward(m.payload) {
            Some(Forwarded::Request { id, shard, args }) => {
                let front = self.clone();
                let from = m.from;
                self.spawner.spawn(async move {
                    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
                    let mut payload = BytesMut::with_capacity(64);
                    let me = front.cfg.node_id;
                    let reply = match front.routing.local(shard) {
                        // Not held here (any more): point at the leader this node
                        // knows of, if that is neither itself nor the asker.
                        None => match front
                            .routing
                            .leader_guess(shard)
                            .filter(|&l| l != me && l != from)
                        {
                            Some(l) => Reply::Redirect(l),
                            None => Reply::Frame(err(format!(
                                "ERR node {me} holds no replica of shard {shard}"
                            ))),
                        },
                        Some(replica) => match run(&replica, &name, &args).await {
                            Ok(frame) => Reply::Frame(frame),
                            // One hop only: name the leader, the sender goes there.
                            Err(ClientError::NotLeader { hint }) => {
                                Reply::Redirect(hint.unwrap_or(0))
                            }
                            Err(ClientError::Transferring) => Reply::Redirect(0),
                            Err(e) => Reply::Frame(client_error(e)),
                        },
                    };
                    match reply {
                        Reply::Frame(frame) => {
                            payload.put_u8(FORWARD_REPLY);
                            payload.put_u64_le(id);
                            resp::encode(&frame, Version::Resp3, &mut payload);
                        }
                        Reply::Redirect(l) => {
                            payload.put_u8(FORWARD_REDIRECT);
                            payload.put_u64_le(id);
                            payload.put_u64_le(l);
                        }
                    }
                    front.transport.send(m.from, FORWARD_GROUP, &payload);
                });
            }
            Some(Forwarded::Reply { id, reply }) => {
                if let Some(tx) = self.waiting.lock().expect("not poisoned").remove(&id) {
                    let _ = tx.send(reply);
                }
            }
            None => tracing::warn!(from = m.from, "undecodable forwarding frame dropped"),
        }
    }
}

const FORWARD_REQUEST: u8 = 1;
const FORWARD_REPLY: u8 = 2;
const FORWARD_REDIRECT: u8 = 3;

/// What a forwarded request gets back.
enum Reply {
    /// The reply for the client.
    Frame(Frame),
    /// The receiver does not lead the shard; this node does (0: none known).
    Redirect(u64),
}

enum Forwarded {
    Request {
        id: u64,
        shard: u32,
        args: Vec<Bytes>,
    },
    Reply {
        id: u64,
        reply: Reply,
    },
}

/// The internal command that asks a shard's leader for the group's members (voters
/// then learners, as two arrays); used by the cluster manager, which routes it to
/// the leader like any request.
pub const MEMBERS_COMMAND: &str = "hakv.members";

/// A planned write: its commands and how to shape their responses into the reply.
type WritePlan = (Vec<kv::Command>, fn(Vec<kv::Response>) -> Frame);

/// Requests decoded from a connection's buffer before they are run.
const PIPELINE_BATCH_MAX: usize = 1024;

/// Writes submitted to a replica together (see [`Front::write_run`]).
const WRITE_RUN_MAX: usize = 1024;

/// Commands answered by the front itself ([`Front::execute`]), never by a shard.
const CONNECTION_COMMANDS: [&str; 10] = [
    "ping", "echo", "quit", "hello", "select", "client", "command", "config", "info", "hakv",
];

/// Proposes the commands of `plans` to `replica` as one submission and encodes each
/// plan's reply, in order. Returns how many plans were answered: the rest, from the
/// first one the replica refused for leadership, were not taken (see
/// [`Replica::propose_each`]) and are for the caller to run again.
async fn write_run(
    replica: &Replica,
    plans: Vec<WritePlan>,
    version: Version,
    output: &mut BytesMut,
) -> usize {
    let counts: Vec<usize> = plans.iter().map(|(cmds, _)| cmds.len()).collect();
    let total = plans.len();
    let mut shapes = Vec::with_capacity(plans.len());
    let mut all = Vec::with_capacity(counts.iter().sum());
    for (cmds, shape) in plans {
        all.extend(cmds);
        shapes.push(shape);
    }
    let Ok(results) = replica.propose_each(all).await else {
        return 0; // the replica stopped: nothing was submitted
    };
    let mut results = results.into_iter();
    for (k, (shape, n)) in shapes.into_iter().zip(counts).enumerate() {
        let outcome: Vec<Result<kv::Response, ClientError>> = results.by_ref().take(n).collect();
        if outcome.iter().any(|r| {
            matches!(
                r,
                Err(ClientError::NotLeader { .. } | ClientError::Transferring)
            )
        }) {
            return k;
        }
        let reply = match outcome.into_iter().collect::<Result<Vec<_>, _>>() {
            Ok(responses) => shape(responses),
            Err(e) => client_error(e),
        };
        resp::encode(&reply, version, output);
    }
    total
}

/// Plans and runs a data command against a local replica.
async fn run(replica: &Replica, name: &str, args: &[Bytes]) -> Result<Frame, ClientError> {
    if name == MEMBERS_COMMAND {
        let s = replica.status().await?;
        if s.role != consensus::Role::Leader {
            return Err(ClientError::NotLeader { hint: s.leader });
        }
        let ids = |set: &std::collections::BTreeSet<u64>| {
            Frame::Array(set.iter().map(|&n| Frame::Integer(n as i64)).collect())
        };
        let voters: std::collections::BTreeSet<u64> = s
            .membership
            .voters
            .union(&s.membership.voters_outgoing)
            .copied()
            .collect();
        return Ok(Frame::Array(vec![
            ids(&voters),
            ids(&s.membership.learners),
        ]));
    }
    let plan = match data::plan(name, args, now_ms()) {
        None => return Ok(unknown_command(args)),
        Some(Err(reply)) => return Ok(reply),
        Some(Ok(plan)) => plan,
    };
    match plan {
        Plan::Read(q, shape) => Ok(shape(replica.query(q).await?)),
        Plan::Write(cmds, shape) => Ok(shape(replica.propose_all(cmds).await?)),
    }
}

/// Decodes a forwarding frame; `None` for anything malformed (never panics).
fn decode_forward(mut p: Bytes) -> Option<Forwarded> {
    if p.remaining() < 9 {
        return None;
    }
    let tag = p.get_u8();
    let id = p.get_u64_le();
    match tag {
        FORWARD_REQUEST => {
            if p.remaining() < 8 {
                return None;
            }
            let shard = p.get_u32_le();
            let n = p.get_u32_le() as usize;
            let mut args = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                if p.remaining() < 4 {
                    return None;
                }
                let len = p.get_u32_le() as usize;
                if p.remaining() < len {
                    return None;
                }
                args.push(p.split_to(len));
            }
            (!args.is_empty() && !p.has_remaining()).then_some(Forwarded::Request {
                id,
                shard,
                args,
            })
        }
        FORWARD_REPLY => {
            let mut buf = BytesMut::from(&p[..]);
            match resp::parse_frame(&mut buf, &Limits::default()) {
                Ok(Some(frame)) if buf.is_empty() => Some(Forwarded::Reply {
                    id,
                    reply: Reply::Frame(frame),
                }),
                _ => None,
            }
        }
        FORWARD_REDIRECT if p.remaining() == 8 => Some(Forwarded::Reply {
            id,
            reply: Reply::Redirect(p.get_u64_le()),
        }),
        _ => None,
    }
}

struct Conn {
    id: u64,
    name: Option<Bytes>,
    version: Version,
}

fn bulk_or_null(v: Option<Bytes>) -> Frame {
    v.map(Frame::Bulk).unwrap_or(Frame::Null)
}

fn unknown_command(args: &[Bytes]) -> Frame {
    let mut preview = String::new();
    for x in args[1..].iter().take(3) {
        preview.push_str(&format!("'{}' ", String::from_utf8_lossy(x)));
    }
    err(format!(
        "ERR unknown command '{}', with args beginning with: {preview}",
        String::from_utf8_lossy(&args[0])
    ))
}

fn client_error(e: ClientError) -> Frame {
    match e {
        ClientError::NotLeader { hint: Some(l) } => err(format!(
            "TRYAGAIN node {l} leads but cannot be reached; retry"
        )),
        ClientError::NotLeader { hint: None } => {
            err("TRYAGAIN no leader elected yet; retry shortly")
        }
        ClientError::Transferring => err("TRYAGAIN leadership is moving; retry shortly"),
        other => err(format!("ERR {other}")),
    }
}

/// CONFIG GET for the parameters clients and tools probe (redis-benchmark asks for
/// `save` and `appendonly`): hakv persists every write through its own log.
fn config_get(patterns: &[Bytes]) -> Frame {
    const KNOWN: [(&str, &str); 3] = [
        ("save", ""),
        ("appendonly", "yes"),
        ("appendfsync", "always"),
    ];
    let mut out = Vec::new();
    for p in patterns {
        for (k, v) in KNOWN {
            if p.eq_ignore_ascii_case(k.as_bytes()) || &p[..] == b"*" {
                out.push(Frame::Bulk(Bytes::from_static(k.as_bytes())));
                out.push(Frame::Bulk(Bytes::from_static(v.as_bytes())));
            }
        }
    }
    Frame::Array(out)
}

fn hello(a: &[Bytes], n: usize, conn: &mut Conn) -> Frame {
    if n >= 1 {
        match &a[0][..] {
            b"2" => conn.version = Version::Resp2,
            b"3" => conn.version = Version::Resp3,
            _ => return err("NOPROTO unsupported protocol version"),
        }
    }
    let proto = if conn.version == Version::Resp3 { 3 } else { 2 };
    Frame::Map(vec![
        (
            Frame::simple("server"),
            Frame::Bulk(Bytes::from_static(b"hakv")),
        ),
        (
            Frame::simple("version"),
            Frame::Bulk(Bytes::from_static(env!("CARGO_PKG_VERSION").as_bytes())),
        ),
        (Frame::simple("proto"), Frame::Integer(proto)),
        (Frame::simple("id"), Frame::Integer(conn.id as i64)),
        (
            Frame::simple("mode"),
            Frame::Bulk(Bytes::from_static(b"cluster")),
        ),
        (
            Frame::simple("role"),
            Frame::Bulk(Bytes::from_static(b"master")),
        ),
        (Frame::simple("modules"), Frame::Array(Vec::new())),
    ])
}

fn client(a: &[Bytes], conn: &mut Conn) -> Frame {
    let sub = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
    match (sub.as_str(), a.len()) {
        ("setname", 2) => {
            conn.name = Some(a[1].clone());
            ok()
        }
        ("getname", 1) => bulk_or_null(conn.name.clone()),
        ("id", 1) => Frame::Integer(conn.id as i64),
        ("setinfo", 3) => ok(),
        _ => err(format!(
            "ERR unknown subcommand or wrong number of arguments for 'client|{sub}' command"
        )),
    }
}

async fn info(routing: &Routing, node_id: u64) -> Frame {
    let mut text = format!(
        "# Server\r\nredis_version:7.2.0\r\nhakv_version:{}\r\nhakv_node_id:{}\r\nprocess_id:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        node_id,
        std::process::id()
    );
    let locals: Vec<(u32, Arc<Replica>)> = routing
        .locals()
        .into_iter()
        .filter(|(s, _)| *s != route::META_SHARD)
        .collect();
    // The replication section describes the first shard held here (the only one in
    // an unsharded cluster), as Redis tools expect one role per node.
    if let Some((_, replica)) = locals.first() {
        if let Ok(s) = replica.status().await {
            let role = if s.role == consensus::Role::Leader {
                "master"
            } else {
                "slave"
            };
            text.push_str(&format!(
                "# Replication\r\nrole:{role}\r\nconsensus:{}\r\nraft_role:{:?}\r\nraft_term:{}\r\nraft_leader:{}\r\nraft_commit:{}\r\nraft_applied:{}\r\nraft_last_index:{}\r\n",
                replica.engine_name(),
                s.role,
                s.term.0,
                s.leader.unwrap_or(0),
                s.commit.0,
                s.applied.0,
                s.last_index.0
            ));
        }
    }
    let (mut led, mut voter) = (0, 0);
    for (_, r) in &locals {
        led += (r.leader_hint() == Some(node_id)) as usize;
        // A full member: a voter of the group's settled configuration (not a learner
        // still catching up, not a replica on its way out).
        if let Ok(s) = r.status().await {
            voter += (s.membership.voters.contains(&node_id) && !s.membership.is_joint()) as usize;
        }
    }
    text.push_str(&format!(
        "# Cluster\r\ncluster_enabled:0\r\nhakv_shards:{}\r\nhakv_shards_held:{}\r\nhakv_shards_led:{led}\r\nhakv_shards_voter:{voter}\r\n",
        routing.shards(),
        locals.len()
    ));
    Frame::Bulk(Bytes::from(text))
}
