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

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use consensus::{ConfigChange, MemberChange, NodeId, Role};
use resp::Frame;

use crate::detector::DetectorHandle;
use crate::front::route::{group_of, Routing, META_SHARD};
use crate::front::Front;
use crate::host::{GroupSpec, Host};
use crate::transport::Transport;

/// How the manager behaves.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// This node.
    pub node_id: NodeId,
    /// The founding members (every node the cluster knows).
    pub nodes: Vec<NodeId>,
    /// How long a node must look dead before its replicas are moved.
    pub down_after: Duration,
    /// How often the manager looks at the map and the groups.
    pub interval: Duration,
    /// The placement that founded the cluster (keyspace, replicas per shard).
    pub placement: ring::Placement,
    /// Most new replicas a node's leaders let catch up at once (recovery must not
    /// starve client traffic).
    pub catching_up_max: usize,
    /// Whether shard leadership follows each shard's first replica in the map.
    pub balance_leaders: bool,
}

/// A node's record in the meta group (`node/<id>`): its state and, for nodes that
/// joined after the founding, its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// active, draining or dead.
    pub state: ring::NodeState,
    /// Client (RESP) and peer addresses, for nodes that joined.
    pub addrs: Option<(SocketAddr, SocketAddr)>,
}

impl NodeRecord {
    /// The stored form: `active|draining|dead [client peer]`.
    pub fn encode(&self) -> String {
        let state = match self.state {
            ring::NodeState::Active => "active",
            ring::NodeState::Draining => "draining",
            ring::NodeState::Dead => "dead",
        };
        match self.addrs {
            Some((c, p)) => format!("{state} {c} {p}"),
            None => state.to_string(),
        }
    }

    /// Parses the stored form; `None` for anything else.
    pub fn decode(b: &[u8]) -> Option<NodeRecord> {
        let text = std::str::from_utf8(b).ok()?;
        let mut parts = text.split(' ');
        let state = match parts.next()? {
            "active" => ring::NodeState::Active,
            "draining" => ring::NodeState::Draining,
            "dead" => ring::NodeState::Dead,
            _ => return None,
        };
        let addrs = match (parts.next(), parts.next()) {
            (Some(c), Some(p)) => Some((c.parse().ok()?, p.parse().ok()?)),
            _ => None,
        };
        Some(NodeRecord { state, addrs })
    }
}

/// The shard map and node records as the meta group holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaMap {
    /// Replica set of each shard.
    pub shards: BTreeMap<u32, Vec<NodeId>>,
    /// Node records (founders appear only once something was recorded about them).
    pub nodes: BTreeMap<NodeId, NodeRecord>,
}

impl MetaMap {
    /// Whether `n` was declared dead.
    pub fn is_dead(&self, n: NodeId) -> bool {
        self.nodes
            .get(&n)
            .is_some_and(|r| r.state == ring::NodeState::Dead)
    }

    /// Every member: the founders and the nodes that joined.
    pub fn members(&self, founders: &[NodeId]) -> BTreeSet<NodeId> {
        founders
            .iter()
            .copied()
            .chain(self.nodes.keys().copied())
            .collect()
    }
}

fn shard_key(shard: u32) -> String {
    format!("shard/{shard:05}")
}

fn encode_set(nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_set(b: &[u8]) -> Option<Vec<NodeId>> {
    std::str::from_utf8(b)
        .ok()?
        .split(',')
        .map(|n| n.parse().ok())
        .collect()
}

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
    let mut map = MetaMap::default();
    if keys.is_empty() {
        return Ok(map);
    }
    let mut args = vec![bulk("MGET")];
    args.extend(keys.iter().cloned());
    let values = match front.call(META_SHARD, &args).await {
        Frame::Array(v) if v.len() == keys.len() => v,
        Frame::Error(e) => return Err(String::from_utf8_lossy(&e).into_owned()),
        other => return Err(format!("unexpected meta reply {other:?}")),
    };
    for (k, v) in keys.iter().zip(values) {
        let Frame::Bulk(v) = v else { continue };
        let k = String::from_utf8_lossy(k);
        if let Some(s) = k.strip_prefix("shard/").and_then(|s| s.parse::<u32>().ok()) {
            if let Some(set) = parse_set(&v) {
                map.shards.insert(s, set);
            }
        } else if let Some(n) = k.strip_prefix("node/").and_then(|n| n.parse::<u64>().ok()) {
            if let Some(r) = NodeRecord::decode(&v) {
                map.nodes.insert(n, r);
            }
        }
    }
    Ok(map)
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

/// The meta leader's decisions: found the map, declare the dead, move their replicas.
async fn decide(
    cfg: &ManagerConfig,
    front: &Front,
    detector: &DetectorHandle,
    map: &MetaMap,
) -> Result<(), String> {
    let keyspace = *cfg.placement.keyspace();
    if map.shards.is_empty() {
        // A new cluster: record the founding placement (what every node started with).
        let members = ring::Members::new(cfg.nodes.iter().map(|&n| ring::Node::new(n)))
            .map_err(|e| e.to_string())?;
        let founding = cfg.placement.compute(&members).map_err(|e| e.to_string())?;
        let pairs: Vec<(String, String)> = founding
            .iter()
            .map(|(s, r)| {
                let nodes: Vec<NodeId> = r.iter().map(|n| n.0).collect();
                (shard_key(s.0), encode_set(&nodes))
            })
            .collect();
        write_meta(front, &pairs).await?;
        tracing::info!(shards = pairs.len(), "recorded the founding shard map");
        return Ok(());
    }
    let all = map.members(&cfg.nodes);
    let newly_dead: Vec<NodeId> = all
        .iter()
        .copied()
        .filter(|&n| n != cfg.node_id && !map.is_dead(n))
        .filter(|&n| detector.dead_for(n).is_some_and(|d| d >= cfg.down_after))
        .collect();
    let members = ring::Members::new(all.iter().map(|&n| {
        let state = if newly_dead.contains(&n) {
            ring::NodeState::Dead
        } else {
            map.nodes
                .get(&n)
                .map_or(ring::NodeState::Active, |r| r.state)
        };
        ring::Node::new(n).with_state(state)
    }))
    .map_err(|e| e.to_string())?;
    let current = ring::ShardMap::new(
        keyspace,
        (0..keyspace.shards())
            .map(|s| {
                map.shards
                    .get(&s)
                    .map(|r| r.iter().map(|&n| ring::NodeId(n)).collect())
                    .unwrap_or_default()
            })
            .collect(),
    )
    .map_err(|e| e.to_string())?;
    let plan = match cfg.placement.plan(&current, &members) {
        Ok(p) => p,
        // Too few live nodes to hold every replica elsewhere (3 nodes, 3 replicas, one
        // dead): nothing can be moved, so nothing is declared; the shards keep serving
        // on the survivors and the node keeps its replicas if it comes back.
        Err(e @ ring::Error::TooFewActiveNodes { .. }) => {
            if !newly_dead.is_empty() && !TOO_FEW_WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(dead = ?newly_dead, error = %e, "a node is dead but its replicas cannot be re-created elsewhere");
            }
            return Ok(());
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut pairs: Vec<(String, String)> = newly_dead
        .iter()
        .map(|n| {
            let record = NodeRecord {
                state: ring::NodeState::Dead,
                addrs: map.nodes.get(n).and_then(|r| r.addrs),
            };
            (format!("node/{n}"), record.encode())
        })
        .collect();
    for (s, target) in plan.target.iter() {
        let target: Vec<NodeId> = target.iter().map(|n| n.0).collect();
        if map.shards.get(&s.0) != Some(&target) {
            pairs.push((shard_key(s.0), encode_set(&target)));
        }
    }
    if pairs.is_empty() {
        return Ok(());
    }
    for n in &newly_dead {
        tracing::warn!(node = n, down_after = ?cfg.down_after, "node declared dead; moving its replicas");
    }
    let moved = pairs.len() - newly_dead.len();
    write_meta(front, &pairs).await?;
    tracing::info!(shards = moved, "shard map updated");
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

/// Makes this node's groups follow the map: start the replicas it should hold, drive
/// the membership of the shards it leads, stop the replicas it no longer holds.
async fn follow(cfg: &ManagerConfig, front: &Front, host: &Host, routing: &Routing, map: &MetaMap) {
    let me = cfg.node_id;
    for (&shard, target) in &map.shards {
        routing.set_replicas(shard, target.clone());
        if target.contains(&me) && routing.local(shard).is_none() {
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
    }
    // Catch-up budget: new replicas already being fed by leaders on this node.
    let mut catching_up = 0;
    let mut led = Vec::new();
    for (shard, replica) in routing.locals() {
        if shard == META_SHARD {
            continue;
        }
        let Ok(status) = replica.status().await else {
            continue;
        };
        let target = map.shards.get(&shard);
        // Moved away by the map: stop once the group's leader confirms it no longer
        // counts this replica. (A removed replica may never see its own removal: the
        // leader stops sending to it once the change commits.)
        if status.role != Role::Leader
            && target.is_some_and(|t| !t.contains(&me))
            && removed_by_leader(front, shard, me, target.map_or(&[], |t| &t[..])).await
        {
            // The group removed this replica: stop it.
            tracing::info!(
                shard,
                "this replica was removed from its group; stopping it"
            );
            routing.set_local(shard, None);
            host.remove_group(group_of(shard)).await;
            continue;
        }
        if status.role == Role::Leader {
            catching_up += status.membership.learners.len();
            // Leadership follows the map's first choice (the ring spreads first
            // choices evenly); the host hands over once that replica is caught up.
            if cfg.balance_leaders {
                let first = target.and_then(|t| t.first().copied());
                host.prefer_leader(group_of(shard), first).await;
            }
            led.push((shard, status));
        }
    }
    for (shard, status) in led {
        let Some(target) = map.shards.get(&shard) else {
            continue;
        };
        if let Some(change) =
            next_change(me, target, &status, &mut catching_up, cfg.catching_up_max)
        {
            match change {
                Step::Change(c) => {
                    tracing::info!(shard, change = ?c, "changing the shard's replicas");
                    if let Err(e) = host.change_config(group_of(shard), c).await {
                        tracing::debug!(shard, error = %e, "membership change refused for now");
                    }
                }
                Step::Transfer(to) => {
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
}

/// Entries a replica may trail the commit index by and still count as caught up.
const CAUGHT_UP_SLACK: u64 = 64;

/// What a shard's leader does next to move its group toward `target`.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Propose this membership change.
    Change(ConfigChange),
    /// Hand leadership to this (caught-up) replica first: this node is leaving.
    Transfer(NodeId),
}

/// The next membership step for a group led by `me` with `status`, toward `target`;
/// `None` when there is nothing to do (or it must wait: a change in flight, a joint
/// configuration, a learner still catching up, no catch-up budget).
pub fn next_change(
    me: NodeId,
    target: &[NodeId],
    status: &consensus::Status,
    catching_up: &mut usize,
    catching_up_max: usize,
) -> Option<Step> {
    let m = &status.membership;
    if m.is_joint() {
        return None; // the engine leaves joint consensus by itself
    }
    // Close enough to the commit index that promoting it will not stall writes (under
    // load a healthy follower always trails by what is in flight). A change proposed
    // while another is still uncommitted is refused by the engine and retried later.
    let caught_up = |n: NodeId| {
        status.peers.iter().any(|p| {
            p.id == n
                && p.state == consensus::ReplicationState::Replicate
                && p.matched.0 + CAUGHT_UP_SLACK >= status.commit.0
        })
    };
    if !target.contains(&me) {
        // Leaving: hand over to a caught-up voter that stays.
        return target
            .iter()
            .copied()
            .find(|&n| m.voters.contains(&n) && caught_up(n))
            .map(Step::Transfer);
    }
    // Learners nobody wants any more.
    if let Some(&l) = m.learners.iter().find(|l| !target.contains(l)) {
        return Some(Step::Change(ConfigChange::Apply(vec![
            MemberChange::Remove(l),
        ])));
    }
    // Caught-up learners become voters, replacing voters that leave, in one joint step.
    let ready: Vec<NodeId> = m
        .learners
        .iter()
        .copied()
        .filter(|&l| caught_up(l))
        .collect();
    let leaving: Vec<NodeId> = m
        .voters
        .iter()
        .copied()
        .filter(|v| !target.contains(v))
        .collect();
    if !ready.is_empty() {
        let mut changes: Vec<MemberChange> =
            ready.iter().map(|&l| MemberChange::AddVoter(l)).collect();
        changes.extend(
            leaving
                .iter()
                .take(ready.len())
                .map(|&v| MemberChange::Remove(v)),
        );
        return Some(Step::Change(ConfigChange::Apply(changes)));
    }
    // New replicas start as learners (caught up by snapshot before they vote).
    if let Some(&n) = target
        .iter()
        .find(|n| !m.voters.contains(n) && !m.learners.contains(n))
    {
        if *catching_up >= catching_up_max {
            return None;
        }
        *catching_up += 1;
        return Some(Step::Change(ConfigChange::Apply(vec![
            MemberChange::AddLearner(n),
        ])));
    }
    // Nothing to add: drop voters the target no longer has (a drain).
    if !leaving.is_empty() && m.learners.is_empty() {
        return Some(Step::Change(ConfigChange::Apply(vec![
            MemberChange::Remove(leaving[0]),
        ])));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus::{LogIndex, Membership, PeerStatus, ReplicationState, Status, Term};

    fn status(voters: &[u64], learners: &[u64], matched: &[(u64, u64)]) -> Status {
        Status {
            id: 1,
            role: Role::Leader,
            term: Term(2),
            leader: Some(1),
            commit: LogIndex(10),
            applied: LogIndex(10),
            first_index: LogIndex(1),
            last_index: LogIndex(10),
            membership: Membership {
                voters: voters.iter().copied().collect(),
                voters_outgoing: Default::default(),
                learners: learners.iter().copied().collect(),
            },
            peers: matched
                .iter()
                .map(|&(id, m)| PeerStatus {
                    id,
                    matched: LogIndex(m),
                    next: LogIndex(m + 1),
                    state: ReplicationState::Replicate,
                    recent_active: true,
                })
                .collect(),
        }
    }

    #[test]
    fn a_replacement_joins_as_learner_then_replaces_the_dead_voter_in_one_step() {
        let mut budget = 0;
        // Node 3 died; the map says 4 replaces it.
        let s = status(&[1, 2, 3], &[], &[(1, 10), (2, 10), (3, 4)]);
        assert_eq!(
            next_change(1, &[1, 2, 4], &s, &mut budget, 2),
            Some(Step::Change(ConfigChange::Apply(vec![
                MemberChange::AddLearner(4)
            ])))
        );
        assert_eq!(budget, 1);
        // Still far behind (a snapshot on its way): wait.
        let mut s = status(&[1, 2, 3], &[4], &[(1, 10), (2, 10), (3, 4), (4, 0)]);
        s.commit = LogIndex(1000);
        s.last_index = LogIndex(1000);
        assert_eq!(next_change(1, &[1, 2, 4], &s, &mut budget, 2), None);
        // Caught up: promote and remove the dead voter together (joint consensus).
        let s = status(&[1, 2, 3], &[4], &[(1, 10), (2, 10), (3, 4), (4, 10)]);
        assert_eq!(
            next_change(1, &[1, 2, 4], &s, &mut budget, 2),
            Some(Step::Change(ConfigChange::Apply(vec![
                MemberChange::AddVoter(4),
                MemberChange::Remove(3)
            ])))
        );
    }

    #[test]
    fn recovery_is_throttled_by_the_catch_up_budget() {
        let mut budget = 2;
        let s = status(&[1, 2, 3], &[], &[(1, 10), (2, 10), (3, 4)]);
        assert_eq!(next_change(1, &[1, 2, 4], &s, &mut budget, 2), None);
    }

    #[test]
    fn a_leader_that_leaves_hands_over_first() {
        let mut budget = 0;
        let s = status(&[1, 2, 3], &[4], &[(1, 10), (2, 10), (3, 10), (4, 10)]);
        assert_eq!(
            next_change(1, &[2, 3, 4], &s, &mut budget, 2),
            Some(Step::Transfer(2))
        );
    }

    #[test]
    fn nothing_happens_while_the_group_is_joint() {
        let mut budget = 0;
        let mut s = status(&[1, 2, 4], &[], &[(1, 10), (2, 10), (4, 10)]);
        s.membership.voters_outgoing = [1, 2, 3].into_iter().collect();
        assert_eq!(next_change(1, &[1, 2, 4], &s, &mut budget, 2), None);
    }

    #[test]
    fn a_map_value_round_trips_and_garbage_is_ignored() {
        assert_eq!(
            parse_set(encode_set(&[5, 1, 4]).as_bytes()),
            Some(vec![5, 1, 4])
        );
        assert_eq!(parse_set(b"1,x"), None);
    }
}
