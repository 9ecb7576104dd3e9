//! The node's HTTP endpoint for operators: `/health`, `/status` (JSON) and
//! `/metrics` (Prometheus text). Deliberately tiny: GET only, one request per
//! connection, no keep-alive.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use consensus::{ReplicationState, Role, Status};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::front::route::{group_of, Routing, META_SHARD};
use crate::transport::Transport;

/// What the endpoint reports on.
pub struct Observed {
    /// This node.
    pub node_id: u64,
    /// The replication engine's name.
    pub engine: &'static str,
    /// The shards, and the replicas of them this node holds.
    pub routing: Arc<Routing>,
    /// The peer transport.
    pub transport: Arc<Transport>,
    /// The failure detector, whose view of the other nodes `/status` reports.
    pub detector: Option<Arc<crate::detector::DetectorHandle>>,
    /// The log engine's counters.
    pub storage: Option<Arc<crate::host::StorageCounters>>,
}

/// Every shard held here with its status, in shard order; a shard whose host has
/// stopped answers with the error.
async fn local_statuses(o: &Observed) -> Vec<(u32, Result<Status, String>)> {
    let locals = o.routing.locals();
    let mut out = Vec::with_capacity(locals.len());
    for (shard, r) in locals {
        out.push((shard, r.status().await.map_err(|e| e.to_string())));
    }
    out
}

/// Serves HTTP on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, observed: Arc<Observed>) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(handle(stream, observed.clone()));
        }
    }
}

async fn handle(mut stream: TcpStream, o: Arc<Observed>) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // Read the request head (bounded: 8 KiB, 2 s).
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(2), read).await,
        Ok(true)
    ) {
        return;
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (code, ctype, body) = if method != "GET" {
        (405, "text/plain", "only GET is supported\n".to_string())
    } else {
        match path {
            "/health" => {
                let statuses = local_statuses(&o).await;
                let failed: Vec<String> = statuses
                    .iter()
                    .filter_map(|(shard, s)| {
                        s.as_ref().err().map(|e| format!("shard {shard}: {e}"))
                    })
                    .collect();
                // The data shards (the meta group is housekeeping: an unsharded
                // cluster's node still reports its one shard's role).
                let data: Vec<&(u32, Result<Status, String>)> = statuses
                    .iter()
                    .filter(|(shard, _)| *shard != META_SHARD)
                    .collect();
                let led = data
                    .iter()
                    .filter(|(_, s)| matches!(s, Ok(s) if s.role == Role::Leader))
                    .count();
                let leaderless = data
                    .iter()
                    .filter(|(_, s)| matches!(s, Ok(s) if s.leader.is_none()))
                    .count();
                match (failed.is_empty(), data.first()) {
                    (false, _) => (503, "text/plain", format!("unhealthy: {}\n", failed.join("; "))),
                    (true, Some((_, Ok(first)))) if data.len() == 1 => (
                        200,
                        "text/plain",
                        format!(
                            "ok node={} role={:?} leader={}\n",
                            o.node_id,
                            first.role,
                            first.leader.unwrap_or(0)
                        ),
                    ),
                    _ => (
                        200,
                        "text/plain",
                        format!(
                            "ok node={} shards_held={} shards_led={led} shards_without_leader={leaderless}\n",
                            o.node_id,
                            data.len()
                        ),
                    ),
                }
            }
            "/status" => {
                let statuses = local_statuses(&o).await;
                match statuses.iter().find_map(|(_, s)| s.as_ref().err()) {
                    Some(e) => (
                        503,
                        "application/json",
                        serde_json::json!({ "error": e }).to_string(),
                    ),
                    None => (
                        200,
                        "application/json",
                        node_json(&o, &statuses).to_string(),
                    ),
                }
            }
            "/metrics" => (200, "text/plain; version=0.0.4", metrics(&o).await),
            _ => (
                404,
                "text/plain",
                "not found: try /health, /status or /metrics\n".to_string(),
            ),
        }
    };
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let resp = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
}

/// The node's `/status` (what `hakv ctl status` reads): the first shard's status at
/// the top level (the whole story in an unsharded cluster) and every shard held here
/// under `shards`.
fn node_json(o: &Observed, statuses: &[(u32, Result<Status, String>)]) -> serde_json::Value {
    let shards: Vec<serde_json::Value> = statuses
        .iter()
        .filter_map(|(shard, s)| {
            let mut j = status_json(o.node_id, o.engine, s.as_ref().ok()?);
            j["shard"] = if *shard == META_SHARD {
                "meta".into()
            } else {
                (*shard).into()
            };
            j["group"] = group_of(*shard).into();
            j["replicas"] = o.routing.replicas(*shard).into();
            Some(j)
        })
        .collect();
    let mut top = shards.first().cloned().unwrap_or_else(
        || serde_json::json!({ "node": o.node_id, "engine": o.engine, "role": "none" }),
    );
    top["shard_count"] = o.routing.shards().into();
    top["shards_held"] = statuses
        .iter()
        .filter(|(shard, _)| *shard != META_SHARD)
        .count()
        .into();
    top["shards_led"] = statuses
        .iter()
        .filter(|(shard, s)| *shard != META_SHARD && matches!(s, Ok(s) if s.role == Role::Leader))
        .count()
        .into();
    top["shards"] = shards.into();
    if let Some(d) = &o.detector {
        let health: Vec<serde_json::Value> = d
            .view()
            .iter()
            .map(|h| {
                serde_json::json!({
                    "id": h.id,
                    "state": format!("{:?}", h.state).to_lowercase(),
                    "for_ms": h.since.elapsed().as_millis() as u64,
                    "phi": h.phi,
                    "incarnation": h.incarnation,
                })
            })
            .collect();
        top["health"] = health.into();
    }
    top
}

/// The JSON form of one group's status.
pub fn status_json(node_id: u64, engine: &str, s: &Status) -> serde_json::Value {
    let peers: Vec<serde_json::Value> = s
        .peers
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id,
                "matched": p.matched.0,
                "next": p.next.0,
                "state": match p.state {
                    ReplicationState::Probe => "probe",
                    ReplicationState::Replicate => "replicate",
                    ReplicationState::Snapshot => "snapshot",
                },
                "recently_active": p.recent_active,
            })
        })
        .collect();
    serde_json::json!({
        "node": node_id,
        "engine": engine,
        // Multi-Paxos reports its ballot as a term (round << 16 | node): show both.
        "ballot": (engine == "paxos").then(|| {
            let b = paxos::Ballot::from_term(s.term);
            serde_json::json!({ "round": b.round, "node": b.node })
        }),
        "role": format!("{:?}", s.role).to_lowercase(),
        "term": s.term.0,
        "leader": s.leader,
        "commit": s.commit.0,
        "applied": s.applied.0,
        "first_index": s.first_index.0,
        "last_index": s.last_index.0,
        "voters": s.membership.voters,
        "learners": s.membership.learners,
        "joint": s.membership.is_joint(),
        "peers": peers,
    })
}

/// Appends one metric in the Prometheus text format.
fn metric(out: &mut String, kind: &str, name: &str, help: &str, labels: &str, v: u64) {
    out.push_str(&format!(
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{labels}}} {v}\n"
    ));
}

async fn metrics(o: &Observed) -> String {
    let mut out = String::new();
    let statuses = local_statuses(o).await;
    type Gauge = (&'static str, &'static str, fn(&Status) -> u64);
    let gauges: [Gauge; 6] = [
        (
            "hakv_raft_term",
            "Current term (Raft) or ballot (Multi-Paxos).",
            |s| s.term.0,
        ),
        (
            "hakv_raft_is_leader",
            "1 if this node leads the group.",
            |s| (s.role == Role::Leader) as u64,
        ),
        (
            "hakv_raft_commit_index",
            "Highest log index known committed.",
            |s| s.commit.0,
        ),
        (
            "hakv_raft_applied_index",
            "Highest log index applied to the state machine.",
            |s| s.applied.0,
        ),
        ("hakv_raft_last_index", "Last log index.", |s| {
            s.last_index.0
        }),
        (
            "hakv_raft_log_entries",
            "Entries in the log after the snapshot.",
            |s| s.last_index.0 + 1 - s.first_index.0,
        ),
    ];
    for (name, help, f) in gauges {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (shard, s) in &statuses {
            if let Ok(s) = s {
                let label = if *shard == META_SHARD {
                    "meta".to_string()
                } else {
                    shard.to_string()
                };
                out.push_str(&format!(
                    "{name}{{node=\"{}\",group=\"{}\",shard=\"{label}\"}} {}\n",
                    o.node_id,
                    group_of(*shard),
                    f(s)
                ));
            }
        }
    }
    let t = o.transport.stats();
    let node = format!("node=\"{}\"", o.node_id);
    for (name, help, c) in [
        (
            "hakv_transport_frames_sent_total",
            "Peer frames written to sockets.",
            &t.frames_sent,
        ),
        (
            "hakv_transport_frames_received_total",
            "Peer frames received.",
            &t.frames_received,
        ),
        (
            "hakv_transport_frames_dropped_total",
            "Peer frames dropped (full queue, unknown or broken peer).",
            &t.frames_dropped,
        ),
        (
            "hakv_transport_connects_total",
            "Peer connections established.",
            &t.connects,
        ),
        (
            "hakv_transport_bad_frames_total",
            "Connections closed for a damaged frame.",
            &t.bad_frames,
        ),
        (
            "hakv_transport_writes_total",
            "Socket writes (batches of frames).",
            &t.writes,
        ),
    ] {
        metric(
            &mut out,
            "counter",
            name,
            help,
            &node,
            c.load(Ordering::Relaxed),
        );
    }
    if let Some(st) = &o.storage {
        for (kind, name, help, c) in [
            (
                "counter",
                "hakv_storage_fsyncs_total",
                "fsyncs of the write-ahead log (one per group commit).",
                &st.fsyncs,
            ),
            (
                "counter",
                "hakv_storage_bytes_written_total",
                "Bytes written to the write-ahead log.",
                &st.bytes_written,
            ),
            (
                "gauge",
                "hakv_storage_segments",
                "Live write-ahead log segment files.",
                &st.segments,
            ),
            (
                "counter",
                "hakv_storage_segments_preallocated_total",
                "Log segments started in a file zero-filled ahead.",
                &st.segments_preallocated,
            ),
        ] {
            metric(&mut out, kind, name, help, &node, c.load(Ordering::Relaxed));
        }
    }
    out
}
