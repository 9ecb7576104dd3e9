//! The Redis-protocol front: accepts client connections, parses pipelined RESP
//! requests, runs them against the replica, and answers in order. A request that
//! reaches a follower is forwarded one hop to the leader's front.
//!
//! Supported so far (the node-runtime issue tracks the rest): PING, ECHO, QUIT, HELLO,
//! SELECT 0, CLIENT SETNAME/GETNAME/ID, COMMAND, CONFIG GET, INFO, GET, SET (with NX),
//! SETNX, DEL, EXISTS, MGET, MSET. Errors use Redis's wording; a malformed frame gets
//! an error and the connection closes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kv::{Command, Response};
use resp::{CommandDecoder, Frame, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::replica::{ClientError, Replica};

/// Front configuration.
#[derive(Clone, Debug)]
pub struct FrontConfig {
    /// This node's id.
    pub node_id: u64,
    /// Every node's client address, for forwarding to the leader.
    pub fronts: BTreeMap<u64, SocketAddr>,
    /// Protocol limits (bulk size, argument count, inline length).
    pub limits: Limits,
}

static CLIENT_IDS: AtomicU64 = AtomicU64::new(1);

/// Serves clients on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, replica: Arc<Replica>, cfg: Arc<FrontConfig>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, replica.clone(), cfg.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

struct Conn {
    id: u64,
    name: Option<Bytes>,
    version: Version,
    /// A connection to the leader's front, reused for forwarded requests.
    upstream: Option<(u64, TcpStream, BytesMut)>,
}

async fn connection(mut stream: TcpStream, replica: Arc<Replica>, cfg: Arc<FrontConfig>) {
    let mut decoder = CommandDecoder::new(cfg.limits);
    let mut input = BytesMut::with_capacity(16 << 10);
    let mut output = BytesMut::with_capacity(16 << 10);
    let mut conn = Conn {
        id: CLIENT_IDS.fetch_add(1, Ordering::Relaxed),
        name: None,
        version: Version::Resp2,
        upstream: None,
    };
    loop {
        // Answer every complete request in the buffer, in order, then write once.
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(args)) => {
                    let (reply, close) = execute(args, &mut conn, &replica, &cfg).await;
                    resp::encode(&reply, conn.version, &mut output);
                    if close {
                        let _ = stream.write_all(&output).await;
                        return;
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

fn err(text: String) -> Frame {
    Frame::Error(Bytes::from(text))
}

fn arity(name: &str) -> Frame {
    err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn ok() -> Frame {
    Frame::simple("OK")
}

fn bulk_or_null(v: Option<Bytes>) -> Frame {
    v.map(Frame::Bulk).unwrap_or(Frame::Null)
}

/// Runs one request; returns the reply and whether to close the connection after it.
async fn execute(
    args: Vec<Bytes>,
    conn: &mut Conn,
    replica: &Replica,
    cfg: &FrontConfig,
) -> (Frame, bool) {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let a = &args[1..];
    let reply = match (name.as_str(), a.len()) {
        ("ping", 0) => Frame::simple("PONG"),
        ("ping", 1) => Frame::Bulk(a[0].clone()),
        ("ping", _) => arity("ping"),
        ("echo", 1) => Frame::Bulk(a[0].clone()),
        ("echo", _) => arity("echo"),
        ("quit", _) => return (ok(), true),
        ("hello", n) => hello(a, n, conn),
        ("select", 1) if &a[0][..] == b"0" => ok(),
        ("select", 1) => err("ERR DB index is out of range".into()),
        ("select", _) => arity("select"),
        ("client", n) if n >= 1 => client(a, conn),
        ("command", _) => Frame::Array(Vec::new()),
        ("config", n) if n >= 1 && a[0].eq_ignore_ascii_case(b"get") => config_get(&a[1..]),
        ("info", _) => info(replica, cfg).await,
        ("get", 1) => match replica.read(a[0].clone()).await {
            Ok(v) => bulk_or_null(v),
            Err(e) => return (failure(e, &args, conn, cfg).await, false),
        },
        ("get", _) => arity("get"),
        ("set", n) if n >= 2 => set(a, replica).await.unwrap_or_else(|e| e),
        ("set", _) => arity("set"),
        ("setnx", 2) => match propose(
            replica,
            Command::Cas {
                key: a[0].clone(),
                expected: None,
                new: a[1].clone(),
            },
        )
        .await
        {
            Ok(Response::Cas(b)) => Frame::Integer(b as i64),
            Ok(other) => unexpected(other),
            Err(e) => e,
        },
        ("setnx", _) => arity("setnx"),
        ("del", n) if n >= 1 => delete(a, replica).await,
        ("del", _) => arity("del"),
        ("exists", n) if n >= 1 => {
            let mut found = 0;
            for k in a {
                match replica.read(k.clone()).await {
                    Ok(Some(_)) => found += 1,
                    Ok(None) => {}
                    Err(e) => return (failure(e, &args, conn, cfg).await, false),
                }
            }
            Frame::Integer(found)
        }
        ("exists", _) => arity("exists"),
        ("mget", n) if n >= 1 => {
            let mut out = Vec::with_capacity(n);
            for k in a {
                match replica.read(k.clone()).await {
                    Ok(v) => out.push(bulk_or_null(v)),
                    Err(e) => return (failure(e, &args, conn, cfg).await, false),
                }
            }
            Frame::Array(out)
        }
        ("mget", _) => arity("mget"),
        ("mset", n) if n >= 2 && n % 2 == 0 => mset(a, replica).await,
        ("mset", _) => arity("mset"),
        _ => {
            let mut preview = String::new();
            for x in a.iter().take(3) {
                preview.push_str(&format!("'{}' ", String::from_utf8_lossy(x)));
            }
            err(format!(
                "ERR unknown command '{}', with args beginning with: {preview}",
                String::from_utf8_lossy(&args[0])
            ))
        }
    };
    // Writes that reached a follower come back as NOTLEADER errors: forward them.
    if let Frame::Error(e) = &reply {
        if let Some(rest) = e.strip_prefix(b"NOTLEADER ") {
            let leader = std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            if let Some(l) = leader {
                return (forward(l, &args, conn, cfg).await, false);
            }
        }
    }
    (reply, false)
}

/// DEL: one proposal per key (not atomic across keys, like Redis Cluster).
async fn delete(keys: &[Bytes], replica: &Replica) -> Frame {
    let mut removed = 0;
    for k in keys {
        match propose(replica, Command::Delete { key: k.clone() }).await {
            Ok(Response::Deleted(true)) => removed += 1,
            Ok(_) => {}
            Err(e) => return e,
        }
    }
    Frame::Integer(removed)
}

/// MSET: one proposal per pair; a failure part-way leaves the earlier pairs written
/// (atomic multi-key writes come with cross-shard transactions).
async fn mset(pairs: &[Bytes], replica: &Replica) -> Frame {
    for kv in pairs.chunks(2) {
        if let Err(e) = propose(
            replica,
            Command::Put {
                key: kv[0].clone(),
                value: kv[1].clone(),
            },
        )
        .await
        {
            return e;
        }
    }
    ok()
}

fn unexpected(r: Response) -> Frame {
    err(format!(
        "ERR internal: unexpected state machine response {r:?}"
    ))
}

/// Proposes a write; a refusal comes back as the reply to send.
async fn propose(replica: &Replica, cmd: Command) -> Result<Response, Frame> {
    replica.propose(cmd).await.map_err(client_error)
}

fn client_error(e: ClientError) -> Frame {
    match e {
        ClientError::NotLeader { hint: Some(l) } => err(format!("NOTLEADER {l}")),
        ClientError::NotLeader { hint: None } => {
            err("TRYAGAIN no leader elected yet; retry shortly".into())
        }
        other => err(format!("ERR {other}")),
    }
}

/// A read refused by a follower is forwarded too.
async fn failure(e: ClientError, args: &[Bytes], conn: &mut Conn, cfg: &FrontConfig) -> Frame {
    match e {
        ClientError::NotLeader { hint: Some(l) } if l != cfg.node_id => {
            forward(l, args, conn, cfg).await
        }
        other => client_error(other),
    }
}

async fn set(a: &[Bytes], replica: &Replica) -> Result<Frame, Frame> {
    let (key, value) = (a[0].clone(), a[1].clone());
    let mut nx = false;
    for opt in &a[2..] {
        if opt.eq_ignore_ascii_case(b"nx") {
            nx = true;
        } else {
            return Err(err(format!(
                "ERR SET option '{}' is not supported yet",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if nx {
        return match propose(
            replica,
            Command::Cas {
                key,
                expected: None,
                new: value,
            },
        )
        .await?
        {
            Response::Cas(true) => Ok(ok()),
            Response::Cas(false) => Ok(Frame::Null),
            other => Ok(unexpected(other)),
        };
    }
    match propose(replica, Command::Put { key, value }).await? {
        Response::Ok => Ok(ok()),
        other => Ok(unexpected(other)),
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
            _ => return err("NOPROTO unsupported protocol version".into()),
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

async fn info(replica: &Replica, cfg: &FrontConfig) -> Frame {
    let mut text = format!(
        "# Server\r\nredis_version:7.2.0\r\nhakv_version:{}\r\nhakv_node_id:{}\r\nprocess_id:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        cfg.node_id,
        std::process::id()
    );
    if let Ok(s) = replica.status().await {
        let role = if s.role == consensus::Role::Leader {
            "master"
        } else {
            "slave"
        };
        text.push_str(&format!(
            "# Replication\r\nrole:{role}\r\nraft_role:{:?}\r\nraft_term:{}\r\nraft_leader:{}\r\nraft_commit:{}\r\nraft_applied:{}\r\nraft_last_index:{}\r\n",
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

/// Sends the request to the leader's front and relays its reply (one hop only: the
/// leader never forwards again).
async fn forward(leader: u64, args: &[Bytes], conn: &mut Conn, cfg: &FrontConfig) -> Frame {
    let Some(&addr) = cfg.fronts.get(&leader) else {
        return err(format!(
            "TRYAGAIN leader {leader} has no known client address"
        ));
    };
    if conn
        .upstream
        .as_ref()
        .is_none_or(|(id, _, _)| *id != leader)
    {
        match TcpStream::connect(addr).await {
            Ok(s) => conn.upstream = Some((leader, s, BytesMut::new())),
            Err(e) => {
                return err(format!(
                    "TRYAGAIN cannot reach leader {leader} at {addr}: {e}"
                ))
            }
        }
    }
    let (_, stream, buf) = conn.upstream.as_mut().expect("just set");
    let mut req = BytesMut::new();
    resp::encode(
        &Frame::Array(args.iter().cloned().map(Frame::Bulk).collect()),
        Version::Resp2,
        &mut req,
    );
    if stream.write_all(&req).await.is_err() {
        conn.upstream = None;
        return err("TRYAGAIN lost the connection to the leader".into());
    }
    loop {
        match resp::parse_frame(buf, &Limits::default()) {
            // Leadership moved again while forwarding: the client retries.
            Ok(Some(Frame::Error(e))) if e.starts_with(b"NOTLEADER") => {
                return err("TRYAGAIN leadership is changing; retry".into());
            }
            Ok(Some(frame)) => return frame,
            Ok(None) => {}
            Err(e) => {
                conn.upstream = None;
                return err(format!("ERR bad reply from leader: {e}"));
            }
        }
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => {
                conn.upstream = None;
                return err("TRYAGAIN lost the connection to the leader".into());
            }
            Ok(_) => {}
        }
    }
}
