//! The Redis-protocol front: accepts client connections, parses pipelined RESP
//! requests, runs them against the replica, and answers in order.
//!
//! Data commands ([`data`]) become proposals or linearizable queries. One that reaches
//! a follower is forwarded one hop to the leader **over the peer transport** (group
//! [`FORWARD_GROUP`]): the leader plans and runs it as if its own client had sent it
//! and sends the reply frame back. Connection-level commands (PING, HELLO, CLIENT, ...)
//! are answered where they arrive.
//!
//! Limits: bulk length, argument count and inline length come from [`resp::Limits`];
//! a client whose unparsed input exceeds [`FrontConfig::pending_bytes_max`] gets an
//! error and is disconnected, and replies are flushed every [`OUTPUT_FLUSH_BYTES`] so a
//! long pipeline cannot pile up output. A malformed frame gets an error and the
//! connection closes.

mod data;

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
use data::{err, ok, Plan};

/// The transport group that carries forwarded client requests and their replies.
pub const FORWARD_GROUP: u64 = u64::MAX;

/// How often a forwarded request checks that its leader is still the leader.
const LEADER_CHECK: Duration = Duration::from_millis(20);

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
}

impl FrontConfig {
    /// Redis's default limits, a 1 GiB query buffer, a 10 s forwarding timeout.
    pub fn new(node_id: u64) -> Self {
        FrontConfig {
            node_id,
            limits: Limits::default(),
            pending_bytes_max: 1 << 30,
            forward_timeout: Duration::from_secs(10),
        }
    }
}

static CLIENT_IDS: AtomicU64 = AtomicU64::new(1);

/// One node's front: its replica, its transport for forwarding, and the forwarded
/// requests waiting for a leader's reply.
pub struct Front {
    replica: Arc<Replica>,
    transport: Arc<Transport>,
    cfg: FrontConfig,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Frame>>>,
    next_request: AtomicU64,
}

impl Front {
    /// A front over `replica`, forwarding through `transport`.
    pub fn new(replica: Arc<Replica>, transport: Arc<Transport>, cfg: FrontConfig) -> Arc<Front> {
        Arc::new(Front {
            replica,
            transport,
            cfg,
            waiting: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
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

    /// Routes peer frames: forwarding traffic to this front, everything else to
    /// `replica_tx` (the replica's input). Runs until `incoming` closes.
    pub async fn route(
        self: Arc<Self>,
        mut incoming: mpsc::Receiver<Incoming>,
        replica_tx: mpsc::Sender<Incoming>,
    ) {
        while let Some(m) = incoming.recv().await {
            if m.group == FORWARD_GROUP {
                self.on_forward_frame(m);
            } else if replica_tx.send(m).await.is_err() {
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
        loop {
            // Answer every complete request in the buffer, in order.
            loop {
                match decoder.decode(&mut input) {
                    Ok(Some(args)) => {
                        let (reply, close) = self.execute(args, &mut conn).await;
                        resp::encode(&reply, conn.version, &mut output);
                        if close {
                            let _ = stream.write_all(&output).await;
                            return;
                        }
                        if output.len() >= OUTPUT_FLUSH_BYTES {
                            if stream.write_all(&output).await.is_err() {
                                return;
                            }
                            output.clear();
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        resp::encode(&e.to_frame(), conn.version, &mut output);
                        let _ = stream.write_all(&output).await;
                        return;
                    }
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
            ("info", _) => info(&self.replica, self.cfg.node_id).await,
            ("ping" | "echo" | "select" | "config" | "client", _) => err(format!(
                "ERR wrong number of arguments for '{name}' command"
            )),
            _ => match self.run(&name, &args).await {
                Err(ClientError::NotLeader { hint: Some(l) }) if l != self.cfg.node_id => {
                    self.forward(l, &args).await
                }
                Err(e) => client_error(e),
                Ok(frame) => frame,
            },
        };
        (reply, false)
    }

    /// Plans and runs a data command against the local replica.
    async fn run(&self, name: &str, args: &[Bytes]) -> Result<Frame, ClientError> {
        let plan = match data::plan(name, args, now_ms()) {
            None => return Ok(unknown_command(args)),
            Some(Err(reply)) => return Ok(reply),
            Some(Ok(plan)) => plan,
        };
        match plan {
            Plan::Read(q, shape) => Ok(shape(self.replica.query(q).await?)),
            Plan::Write(cmds, shape) => Ok(shape(self.replica.propose_all(cmds).await?)),
        }
    }

    /// Sends the request to the leader over the peer transport and waits for its reply
    /// (one hop: the leader never forwards again).
    async fn forward(&self, leader: u64, args: &[Bytes]) -> Frame {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let mut payload =
            BytesMut::with_capacity(16 + args.iter().map(|a| 4 + a.len()).sum::<usize>());
        payload.put_u8(FORWARD_REQUEST);
        payload.put_u64_le(id);
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
        let deadline = tokio::time::Instant::now() + self.cfg.forward_timeout;
        let reply = loop {
            tokio::select! {
                r = &mut rx => break r.ok(),
                _ = tokio::time::sleep(LEADER_CHECK) => {
                    if self.replica.leader_hint() != Some(leader)
                        || tokio::time::Instant::now() >= deadline
                    {
                        break None;
                    }
                }
            }
        };
        self.waiting.lock().expect("not poisoned").remove(&id);
        match reply {
            Some(frame) => frame,
            None if self.replica.leader_hint() != Some(leader) => err(format!(
                "ERR leader {leader} was lost while it held this request; the outcome is unknown"
            )),
            None => err(format!(
                "ERR no reply from leader {leader} in time (unreachable?); the outcome is unknown"
            )),
        }
    }

    fn on_forward_frame(self: &Arc<Self>, m: Incoming) {
        match decode_forward(m.payload) {
            Some(Forwarded::Request { id, args }) => {
                let front = self.clone();
                tokio::spawn(async move {
                    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
                    let frame = match front.run(&name, &args).await {
                        Ok(frame) => frame,
                        Err(ClientError::NotLeader { .. }) => {
                            err("TRYAGAIN leadership is changing; retry")
                        }
                        Err(e) => client_error(e),
                    };
                    let mut payload = BytesMut::with_capacity(64);
                    payload.put_u8(FORWARD_REPLY);
                    payload.put_u64_le(id);
                    resp::encode(&frame, Version::Resp3, &mut payload);
                    front.transport.send(m.from, FORWARD_GROUP, &payload);
                });
            }
            Some(Forwarded::Reply { id, frame }) => {
                if let Some(tx) = self.waiting.lock().expect("not poisoned").remove(&id) {
                    let _ = tx.send(frame);
                }
            }
            None => tracing::warn!(from = m.from, "undecodable forwarding frame dropped"),
        }
    }
}

const FORWARD_REQUEST: u8 = 1;
const FORWARD_REPLY: u8 = 2;

enum Forwarded {
    Request { id: u64, args: Vec<Bytes> },
    Reply { id: u64, frame: Frame },
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
            if p.remaining() < 4 {
                return None;
            }
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
            (!args.is_empty() && !p.has_remaining()).then_some(Forwarded::Request { id, args })
        }
        FORWARD_REPLY => {
            let mut buf = BytesMut::from(&p[..]);
            match resp::parse_frame(&mut buf, &Limits::default()) {
                Ok(Some(frame)) if buf.is_empty() => Some(Forwarded::Reply { id, frame }),
                _ => None,
            }
        }
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

async fn info(replica: &Replica, node_id: u64) -> Frame {
    let mut text = format!(
        "# Server\r\nredis_version:7.2.0\r\nhakv_version:{}\r\nhakv_node_id:{}\r\nprocess_id:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        node_id,
        std::process::id()
    );
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
    Frame::Bulk(Bytes::from(text))
}
