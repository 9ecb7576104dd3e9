//! The cluster manager: keeps the shard map in the meta group, declares dead nodes
//! and moves their replicas, and makes each node's groups follow the map.
//!
//! ```text
//!  meta group (replicated like any shard)     every node, every `interval`:
//!    shard/00007 = "5,1,4"                       read the map ─▶ routing follows it
//!    node/3      = "dead"                        hold a shard of the map? start it (empty,
//!                                                  as a learner to be) ─▶ snapshot from leader
//!  meta leader only:                              lead a shard? drive its membership:
//!    a node dead ≥ down-after ─▶ node/N=dead        add missing replicas as learners (≤ N
//!    ring plan (minimal moves) ─▶ shard/* =          catching up at once) ─▶ caught up? promote
//!      new replica sets                              and remove the leaving replica (joint
//!                                                    consensus) ─▶ removed here? stop it
//! ```
//!
//! Why this split: only the meta leader decides (one writer, so two nodes can never
//! place a shard differently), and only a shard's own leader changes that shard's
//! membership (its log orders the change with the writes, so no acknowledged write is
//! lost). Everything is re-derived from the meta map each round, so a manager that
//! crashes half-way — or a meta leader that changes — simply picks up where the map
//! and the groups stand.
//!
//! The failure detector's view decides deaths: a node must look dead to the meta
//! leader's detector (after SWIM's indirect probes, so one bad link is not enough)
//! for `down_after` before anything moves. A dead node stays dead in the map: if it
//! comes back, its old replicas have been replaced and it holds nothing new.

//!
//! The decisions themselves are pure functions in [`policy`] (map and status in,
//! actions out), run unchanged by the seeded whole-cluster simulation
//! (`tests/cluster_sim.rs`); this module is the shell that reads the map, asks the
//! groups, and carries the actions out.

pub mod map;
pub mod policy;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use consensus::NodeId;
use resp::Frame;

pub use map::{MetaMap, NodeRecord};
pub use policy::{next_change, Action, Decision, LocalReplica, ManagerConfig, Step};

use crate::detector::DetectorHandle;
use crate::front::route::{group_of, Routing, META_SHARD};
use crate::front::Front;
use crate::host::{GroupSpec, Host};
use crate::transport::Transport;

fn bulk(s: impl Into<Bytes>) -> Bytes {
    s.into()
}

fn cmd(parts: &[&str]) -> Vec<Bytes> {
    parts.iter().map(|p| bulk(p.to_string())).collect()
}

/// Reads the whole map from the meta group (a linearizable read at its leader).
pub async fn read_meta(front: &Front) -> Result<MetaMap, String> {
    let keys = match front.call(META_SHARD, &cmd(&["KEYS", "*"])).await {
        Frame::Array(items) => items
            .into_iter()
            .filter_map(|f| match f {
                Frame::Bulk(b) => Some(b),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Frame::Error(e) => return Err(String::from_utf8_lossy(&e).into_owned()),
        other => return Err(format!("unexpected meta reply {other:?}")),
    };
    if keys.is_empty() {
        return Ok(MetaMap::default());
    }
    let mut args = vec![bulk("MGET")];
    args.extend(keys.iter().cloned());
    let values = match front.call(META_SHARD, &args).await {
        Frame::Array(v) if v.len() == keys.len() => v,
        Frame::Error(e) => return Err(String::from_utf8_lossy(&e).into_owned()),
        other => return Err(format!("unexpected meta reply {other:?}")),
    };
    Ok(MetaMap::from_pairs(keys.iter().zip(values).filter_map(
        |(k, v)| match v {
            Frame::Bulk(v) => Some((k.clone(), v)),
            _ => None,
        },
    )))
}

/// Set once the "cannot re-create replicas" warning was logged (it would otherwise
/// repeat every round for as long as the node stays dead).
static TOO_FEW_WARNED: AtomicBool = AtomicBool::new(false);

/// Writes `pairs` to the meta group in one MSET (one entry, so atomic).
pub async fn write_meta(front: &Front, pairs: &[(String, String)]) -> Result<(), String> {
    let mut args = vec![bulk("MSET")];
    for (k, v) in pairs {
        args.push(bulk(k.clone()));
        args.push(bulk(v.clone()));
    }
    match front.call(META_SHARD, &args).await {
        Frame::SimpleString(_) => Ok(()),
        Frame::Error(e) => Err(String::from_utf8_lossy(&e).into_owned()),
        other => Err(format!("unexpected meta reply {other:?}")),
    }
}

/// Runs the manager until the task is dropped.
pub async fn run(
    cfg: ManagerConfig,
    front: Arc<Front>,
    host: Arc<Host>,
    routing: Arc<Routing>,
    detector: Arc<DetectorHandle>,
    transport: Arc<Transport>,
) {
    let mut known_peers: BTreeSet<NodeId> = cfg.nodes.iter().copied().collect();
    let mut iv = tokio::time::interval(cfg.interval);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        let map = match read_meta(&front).await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the shard map yet");
                continue;
            }
        };
        let leads_meta = routing
            .local(META_SHARD)
            .is_some_and(|r| r.leader_hint() == Some(cfg.node_id));
        if leads_meta {
            if let Err(e) = decide(&cfg, &front, &detector, &map).await {
                tracing::warn!(error = %e, "the meta leader could not update the shard map");
            }
        }
        // Nodes that joined: talk to them.
        for (&n, r) in &map.nodes {
            if let (Some((_, peer)), true) = (r.addrs, n != cfg.node_id) {
                if known_peers.insert(n) {
                    tracing::info!(node = n, %peer, "a new member joined");
                    transport.add_peer(n, peer);
                }
            }
        }
        if map.shards.is_empty() {
            continue;
        }
        follow(&cfg, &front, &host, &routing, &map).await;
    }
}

/// The meta leader's round: [`policy::decide`] on this node's detector view, then one
/// atomic write of what it decided.
async fn decide(
    cfg: &ManagerConfig,
    front: &Front,
    detector: &DetectorHandle,
    map: &MetaMap,
) -> Result<(), String> {
    let d = policy::decide(cfg, map, |n| detector.dead_for(n))?;
    if let Some(why) = &d.blocked {
        if !TOO_FEW_WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(error = %why, "a node is dead but its replicas cannot be re-created elsewhere");
        }
    }
    if d.writes.is_empty() {
        return Ok(());
    }
    for n in &d.newly_dead {
        tracing::warn!(node = n, down_after = ?cfg.down_after, "node declared dead; moving its replicas");
    }
    write_meta(front, &d.writes).await?;
    if d.founding {
        tracing::info!(shards = d.moved, "recorded the founding shard map");
    } else {
        tracing::info!(shards = d.moved, "shard map updated");
    }
    Ok(())
}

/// Whether `shard`'s leader (asked wherever it is) counts `me` neither as voter nor
/// as learner. False when it cannot be asked.
async fn removed_by_leader(front: &Front, shard: u32, me: NodeId, target: &[NodeId]) -> bool {
    let args = [bulk(crate::front::MEMBERS_COMMAND)];
    // Ask the replicas that stay (they redirect to the leader), not our own replica,
    // whose idea of the leader is what may be stale.
    let Some(&at) = target.iter().find(|&&n| n != me) else {
        return false;
    };
    match front.call_at(at, shard, &args).await {
        Frame::Array(sets) if sets.len() == 2 => !sets.iter().any(
            |set| matches!(set, Frame::Array(ids) if ids.contains(&Frame::Integer(me as i64))),
        ),
        _ => false,
    }
}

/// Makes this node's groups follow the map: gathers what [`policy::follow`] needs
/// (the local groups' status, and the leader's word on replicas moved away), then
/// carries out its actions.
async fn follow(cfg: &ManagerConfig, front: &Front, host: &Host, routing: &Routing, map: &MetaMap) {
    let me = cfg.node_id;
    for (&shard, target) in &map.shards {
        routing.set_replicas(shard, target.clone());
    }
    routing.set_replicas(META_SHARD, map.meta_replicas(&cfg.nodes));
    let mut held = BTreeSet::new();
    let mut locals = Vec::new();
    for (shard, replica) in routing.locals() {
        held.insert(shard);
        let Ok(status) = replica.status().await else {
            continue;
        };
        let removed_by_leader = policy::must_ask_leader(cfg, map, shard, &status)
            && removed_by_leader(
                front,
                shard,
                me,
                &map.replicas_of(shard, &cfg.nodes).unwrap_or_default(),
            )
            .await;
        locals.push(LocalReplica {
            shard,
            status,
            removed_by_leader,
        });
    }
    for action in policy::follow(cfg, map, &held, &locals) {
        match action {
            Action::Start(shard) => {
                let spec = GroupSpec {
                    group: group_of(shard),
                    voters: Vec::new(),
                    preferred_leader: None,
                };
                match host.add_group(spec).await {
                    Ok(r) => {
                        tracing::info!(
                            shard,
                            "holding a new replica; waiting for the leader's snapshot"
                        );
                        routing.set_local(shard, Some(r));
                    }
                    Err(e) => tracing::warn!(shard, error = %e, "cannot start a new replica"),
                }
            }
            Action::Stop(shard) => {
                tracing::info!(
                    shard,
                    "this replica was removed from its group; stopping it"
                );
                routing.set_local(shard, None);
                host.remove_group(group_of(shard)).await;
            }
            Action::PreferLeader(shard, node) => {
                host.prefer_leader(group_of(shard), node).await;
            }
            Action::Change(shard, c) => {
                tracing::info!(shard, change = ?c, "changing the shard's replicas");
                if let Err(e) = host.change_config(group_of(shard), c).await {
                    tracing::debug!(shard, error = %e, "membership change refused for now");
                }
            }
            Action::Transfer(shard, to) => {
                tracing::info!(
                    shard,
                    to,
                    "handing leadership over before leaving the shard"
                );
                host.transfer_leadership(group_of(shard), to).await;
            }
        }
    }
}
