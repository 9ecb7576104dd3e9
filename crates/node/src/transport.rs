//! The peer transport: one outbound TCP connection per peer, carrying the frames of
//! every replication group, with reconnect and capped exponential backoff, bounded
//! queues, and batched writes.
//!
//! ```text
//!  send(to, group, payload) ─▶ [bounded queue per peer] ─▶ writer task ─▶ TCP ─▶ reader task ─▶ incoming channel
//!                               full? drop + count           batches frames      CRC-checked frames
//! ```
//! Guarantees and non-guarantees, chosen for consensus traffic:
//! - messages to one peer arrive in send order on one connection, but any may be lost
//!   (full queue, broken connection): Raft and Paxos tolerate loss and retransmit;
//! - a dead or slow peer costs at most `queue_frames_max` frames of memory;
//! - reconnects back off exponentially while a peer is down, but a peer that connects
//!   to this node (it restarted) is dialled back at once;
//! - a damaged frame (bad CRC, bad length, unknown version) closes that connection;
//!   nothing of it is delivered;
//! - the first frame on a connection names the sending node (authentication of that
//!   claim is TLS's job, in a later layer).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::frame;

/// The reserved group id of the hello frame that opens every connection.
const HELLO_GROUP: u64 = u64::MAX;

/// Transport tuning.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node's id, announced to peers.
    pub id: u64,
    /// Frames queued per peer before new ones are dropped.
    pub queue_frames_max: usize,
    /// Largest frame accepted (bigger snapshots are sent in chunks).
    pub frame_bytes_max: usize,
    /// Most bytes gathered into one socket write.
    pub batch_bytes_max: usize,
    /// First reconnect delay; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Frames buffered towards the node before readers wait (backpressure).
    pub incoming_frames_max: usize,
}

impl TransportConfig {
    /// Defaults for node `id`.
    pub fn new(id: u64) -> Self {
        TransportConfig {
            id,
            queue_frames_max: 4096,
            frame_bytes_max: 64 << 20,
            batch_bytes_max: 1 << 20,
            backoff_min: Duration::from_millis(20),
            backoff_max: Duration::from_secs(2),
            incoming_frames_max: 16_384,
        }
    }
}

/// A frame received from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The sending node, as it announced itself.
    pub from: u64,
    /// The replication group.
    pub group: u64,
    /// The message bytes.
    pub payload: Bytes,
}

/// Counters, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Frames handed to a socket.
    pub frames_sent: AtomicU64,
    /// Frames dropped because a peer's queue was full or the peer is unknown.
    pub frames_dropped: AtomicU64,
    /// Frames received and delivered.
    pub frames_received: AtomicU64,
    /// Successful (re)connections.
    pub connects: AtomicU64,
    /// Connections closed because of a damaged frame.
    pub bad_frames: AtomicU64,
    /// Socket writes (each carries a batch of frames).
    pub writes: AtomicU64,
}

struct Peer {
    queue: mpsc::Sender<Bytes>,
    task: JoinHandle<()>,
    /// Cuts short the writer's reconnect backoff: the peer just connected to us, so it
    /// is up again (see [`reader`]).
    kick: Arc<Notify>,
    /// Whether the outbound connection is established (false while connecting or
    /// after a write failed).
    up: Arc<AtomicBool>,
}

/// The peer transport of one node. Dropping it stops every task it started.
pub struct Transport {
    cfg: TransportConfig,
    /// Where the connections run.
    rt: tokio::runtime::Handle,
    peers: Arc<Mutex<HashMap<u64, Peer>>>,
    stats: Arc<TransportStats>,
    listener: JoinHandle<()>,
    local_addr: SocketAddr,
}

impl Transport {
    /// Listens on `addr` (port 0 picks a free one) and returns the transport and the
    /// channel on which frames from peers arrive. Its connections run on the current
    /// runtime.
    pub async fn bind(
        cfg: TransportConfig,
        addr: SocketAddr,
    ) -> io::Result<(Transport, mpsc::Receiver<Incoming>)> {
        Transport::bind_on(&tokio::runtime::Handle::current(), cfg, addr)
    }

    /// [`Transport::bind`], with every connection (and the listener) running on `rt`
    /// whichever thread calls [`Transport::send`] or [`Transport::add_peer`]. A node
    /// binds it on its host's runtime (`host::HostRuntime`), so that consensus
    /// traffic never changes threads between the socket and the host.
    pub fn bind_on(
        rt: &tokio::runtime::Handle,
        cfg: TransportConfig,
        addr: SocketAddr,
    ) -> io::Result<(Transport, mpsc::Receiver<Incoming>)> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As `TcpListener::bind` does: a restarted node gets its port back at once,
        // though connections of its previous life linger in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = {
            let _in_rt = rt.enter(); // the listener registers with `rt`'s reactor
            socket.listen(1024)?
        };
        let local_addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(cfg.incoming_frames_max);
        let stats = Arc::new(TransportStats::default());
        let peers = Arc::new(Mutex::new(HashMap::new()));
        let accept = rt.spawn(accept_loop(
            listener,
            tx,
            cfg.frame_bytes_max,
            stats.clone(),
            peers.clone(),
        ));
        Ok((
            Transport {
                cfg,
                rt: rt.clone(),
                peers,
                stats,
                listener: accept,
                local_addr,
            },
            rx,
        ))
    }

    /// The address actually listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts (or restarts, at a new address) the connection to peer `id`.
    pub fn add_peer(&self, id: u64, addr: SocketAddr) {
        let (queue, rx) = mpsc::channel(self.cfg.queue_frames_max);
        let up = Arc::new(AtomicBool::new(false));
        let kick = Arc::new(Notify::new());
        let task = self.rt.spawn(writer(
            self.cfg.clone(),
            addr,
            rx,
            self.stats.clone(),
            up.clone(),
            kick.clone(),
        ));
        let old = self.peers.lock().expect("peer map lock").insert(
            id,
            Peer {
                queue,
                task,
                up,
                kick,
            },
        );
        if let Some(old) = old {
            old.task.abort();
        }
    }

    /// Whether the connection to peer `id` is established right now. A peer that
    /// crashed shows as down within one failed write or connect attempt; a peer that
    /// hangs with its socket open still shows as up.
    pub fn is_up(&self, id: u64) -> bool {
        self.peers
            .lock()
            .expect("peer map lock")
            .get(&id)
            .is_some_and(|p| p.up.load(Ordering::Relaxed))
    }

    /// Stops talking to peer `id`.
    pub fn remove_peer(&self, id: u64) {
        if let Some(p) = self.peers.lock().expect("peer map lock").remove(&id) {
            p.task.abort();
        }
    }

    /// Queues `payload` for `group` on peer `to`. Never blocks: returns false (and
    /// counts a drop) if the peer is unknown or its queue is full.
    pub fn send(&self, to: u64, group: u64, payload: &[u8]) -> bool {
        let mut buf = BytesMut::with_capacity(frame::FRAME_HEADER_BYTES + payload.len());
        frame::encode(group, payload, &mut buf);
        let ok = self
            .peers
            .lock()
            .expect("peer map lock")
            .get(&to)
            .is_some_and(|p| p.queue.try_send(buf.freeze()).is_ok());
        if !ok {
            self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Live counters.
    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.listener.abort();
        for p in self.peers.lock().expect("peer map lock").values() {
            p.task.abort();
        }
    }
}

/// Keeps one connection to `addr` alive and drains the queue into it in batches.
async fn writer(
    cfg: TransportConfig,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<Bytes>,
    stats: Arc<TransportStats>,
    up: Arc<AtomicBool>,
    kick: Arc<Notify>,
) {
    let mut backoff = cfg.backoff_min;
    let mut hello = BytesMut::new();
    frame::encode(HELLO_GROUP, &cfg.id.to_le_bytes(), &mut hello);
    let hello = hello.freeze();
    let mut batch = BytesMut::with_capacity(cfg.batch_bytes_max.min(1 << 20));
    loop {
        let mut stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                up.store(false, Ordering::Relaxed);
                tracing::debug!(peer = %addr, error = %e, "connect failed; retrying in {:?}", backoff);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {
                        backoff = (backoff * 2).min(cfg.backoff_max);
                    }
                    // The peer connected to us: it is back, so try now rather than
                    // at the end of a backoff that grew while it was down (a
                    // restarted node would otherwise hear nothing for seconds).
                    _ = kick.notified() => backoff = cfg.backoff_min,
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if stream.write_all(&hello).await.is_err() {
            continue;
        }
        stats.connects.fetch_add(1, Ordering::Relaxed);
        up.store(true, Ordering::Relaxed);
        backoff = cfg.backoff_min;
        let mut probe = [0u8; 64];
        loop {
            // Peers never write on a connection they accepted, so anything readable
            // here is its end: a crashed or restarted peer is noticed at once, not at
            // the next failed write (which could be long away on a quiet link).
            let first = tokio::select! {
                f = queue.recv() => match f {
                    Some(f) => f,
                    None => return,
                },
                r = stream.read(&mut probe) => {
                    if matches!(r, Ok(0) | Err(_)) {
                        up.store(false, Ordering::Relaxed);
                        tracing::debug!(peer = %addr, "peer closed the connection; reconnecting");
                        break;
                    }
                    continue;
                }
            };
            batch.clear();
            batch.extend_from_slice(&first);
            let mut frames = 1;
            while batch.len() < cfg.batch_bytes_max {
                match queue.try_recv() {
                    Ok(f) => {
                        batch.extend_from_slice(&f);
                        frames += 1;
                    }
                    Err(_) => break,
                }
            }
            if let Err(e) = stream.write_all(&batch).await {
                // The batch is lost with the connection; consensus retransmits.
                up.store(false, Ordering::Relaxed);
                tracing::debug!(peer = %addr, error = %e, "write failed; reconnecting");
                stats.frames_dropped.fetch_add(frames, Ordering::Relaxed);
                break;
            }
            stats.frames_sent.fetch_add(frames, Ordering::Relaxed);
            stats.writes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tx: mpsc::Sender<Incoming>,
    frame_bytes_max: usize,
    stats: Arc<TransportStats>,
    peers: Arc<Mutex<HashMap<u64, Peer>>>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(reader(
                    stream,
                    tx.clone(),
                    frame_bytes_max,
                    stats.clone(),
                    peers.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Reads frames from one connection until it closes or sends something damaged. The
/// hello that names the peer also wakes this node's own connection to it, if that is
/// waiting out a reconnect backoff.
async fn reader(
    mut stream: TcpStream,
    tx: mpsc::Sender<Incoming>,
    frame_bytes_max: usize,
    stats: Arc<TransportStats>,
    peers: Arc<Mutex<HashMap<u64, Peer>>>,
) {
    let mut buf = BytesMut::with_capacity(64 << 10);
    let mut from: Option<u64> = None;
    loop {
        loop {
            match frame::decode(&mut buf, frame_bytes_max) {
                Ok(Some((group, payload))) => match from {
                    None if group == HELLO_GROUP && payload.len() == 8 => {
                        let id = u64::from_le_bytes(payload[..].try_into().expect("8 bytes"));
                        if let Some(p) = peers.lock().expect("peer map lock").get(&id) {
                            p.kick.notify_one();
                        }
                        from = Some(id);
                    }
                    None => {
                        tracing::warn!("peer connection did not start with a hello; closing");
                        stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Some(from) => {
                        stats.frames_received.fetch_add(1, Ordering::Relaxed);
                        if tx
                            .send(Incoming {
                                from,
                                group,
                                payload,
                            })
                            .await
                            .is_err()
                        {
                            return; // the node is shutting down
                        }
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "damaged frame from peer {:?}; closing connection", from);
                    stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
