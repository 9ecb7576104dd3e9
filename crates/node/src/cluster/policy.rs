//! The cluster manager's decisions, as pure functions: the map, the detector's view
//! and the local groups' status in, the changes to make out. No I/O, no clock, no
//! randomness, so the same functions run in the node ([`super::run`]) and, unchanged,
//! in the seeded simulation of a whole cluster (`tests/cluster_sim.rs`).
//!
//! ```text
//!  meta leader:  decide(map, dead_for)          ─▶ Decision { writes to the meta group }
//!  every node:   follow(map, held, local status) ─▶ [Action] (start, stop, prefer a
//!                                                     leader, change a group, transfer)
//!  a leader:     next_change(target, status)     ─▶ one membership step of one group
//!  host, on tick: ready_to_hand_over(status, preferred) ─▶ transfer leadership?
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use consensus::{ConfigChange, MemberChange, NodeId, Role, Status};

use super::map::{
    encode_set, node_key, shard_key, MetaMap, NodeRecord, META_KEY, META_REPLICAS_MAX,
};
use crate::front::route::META_SHARD;

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

/// What the meta leader writes after one look at the map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Keys and values to write to the meta group, in one MSET (one entry: atomic).
    pub writes: Vec<(String, String)>,
    /// Nodes these writes declare dead.
    pub newly_dead: Vec<NodeId>,
    /// Shards whose replica set the writes change.
    pub moved: usize,
    /// Whether the writes found the cluster (the map was empty).
    pub founding: bool,
    /// Why a node that looks dead cannot be replaced (too few live nodes); nothing is
    /// declared then, so a node that comes back keeps its replicas.
    pub blocked: Option<String>,
}

/// The meta leader's decisions: found the map, declare the dead, move their replicas
/// (and any other replica the ring wants elsewhere: joins, drains).
///
/// `dead_for(n)` is how long this node's failure detector has seen `n` dead (`None`
/// while it looks alive). A node is declared dead once that reaches `down_after`.
/// The target is the ring's placement of the members' states, so every meta leader,
/// whatever its history, converges on the same map.
pub fn decide(
    cfg: &ManagerConfig,
    map: &MetaMap,
    dead_for: impl Fn(NodeId) -> Option<Duration>,
) -> Result<Decision, String> {
    let keyspace = *cfg.placement.keyspace();
    if map.shards.is_empty() {
        // A new cluster: record the founding placement (what every node started with).
        let members = ring::Members::new(cfg.nodes.iter().map(|&n| ring::Node::new(n)))
            .map_err(|e| e.to_string())?;
        let founding = cfg.placement.compute(&members).map_err(|e| e.to_string())?;
        let writes: Vec<(String, String)> = founding
            .iter()
            .map(|(s, r)| {
                let nodes: Vec<NodeId> = r.iter().map(|n| n.0).collect();
                (shard_key(s.0), encode_set(&nodes))
            })
            .collect();
        return Ok(Decision {
            moved: writes.len(),
            writes,
            founding: true,
            ..Decision::default()
        });
    }
    let all = map.members(&cfg.nodes);
    let newly_dead: Vec<NodeId> = all
        .iter()
        .copied()
        .filter(|&n| n != cfg.node_id && !map.is_dead(n))
        .filter(|&n| dead_for(n).is_some_and(|d| d >= cfg.down_after))
        .collect();
    let states: BTreeMap<NodeId, ring::NodeState> = all
        .iter()
        .map(|&n| {
            let state = if newly_dead.contains(&n) {
                ring::NodeState::Dead
            } else {
                map.nodes
                    .get(&n)
                    .map_or(ring::NodeState::Active, |r| r.state)
            };
            (n, state)
        })
        .collect();
    let members = ring::Members::new(
        states
            .iter()
            .map(|(&n, &state)| ring::Node::new(n).with_state(state)),
    )
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
            return Ok(Decision {
                blocked: (!newly_dead.is_empty()).then(|| e.to_string()),
                ..Decision::default()
            });
        }
        Err(e) => return Err(e.to_string()),
    };
    let mut writes: Vec<(String, String)> = newly_dead
        .iter()
        .map(|&n| {
            let record = NodeRecord {
                state: ring::NodeState::Dead,
                addrs: map.nodes.get(&n).and_then(|r| r.addrs),
            };
            (node_key(n), record.encode())
        })
        .collect();
    let mut moved = 0;
    let meta = map.meta_replicas(&cfg.nodes);
    let meta_next = meta_target(&meta, &states);
    if meta_next != meta {
        writes.push((META_KEY.to_string(), encode_set(&meta_next)));
        moved += 1;
    }
    for (s, target) in plan.target.iter() {
        let target: Vec<NodeId> = target.iter().map(|n| n.0).collect();
        if map.shards.get(&s.0) != Some(&target) {
            writes.push((shard_key(s.0), encode_set(&target)));
            moved += 1;
        }
    }
    Ok(Decision {
        writes,
        newly_dead,
        moved,
        founding: false,
        blocked: None,
    })
}

/// The meta group's next replica set, from its `current` one and the members' states:
/// the current replicas still active (so nothing moves without a reason), topped up
/// with other active nodes by id, to the largest odd size up to five the active nodes
/// allow (an even size tolerates no more failures than the odd size below it, and
/// waits for one more acknowledgement). Never empty while `current` is not: with no
/// active node at all, nothing changes.
pub fn meta_target(current: &[NodeId], states: &BTreeMap<NodeId, ring::NodeState>) -> Vec<NodeId> {
    let active = |n: &NodeId| states.get(n) == Some(&ring::NodeState::Active);
    let n_active = states.keys().filter(|n| active(n)).count();
    let mut size = n_active.min(META_REPLICAS_MAX);
    if size % 2 == 0 {
        size = size.saturating_sub(1);
    }
    if size == 0 {
        return current.to_vec();
    }
    let mut target: Vec<NodeId> = current.iter().copied().filter(active).take(size).collect();
    for n in states.keys().copied().filter(active) {
        if target.len() >= size {
            break;
        }
        if !target.contains(&n) {
            target.push(n);
        }
    }
    target
}

/// One of this node's replicas, as [`follow`] sees it.
#[derive(Clone, Debug)]
pub struct LocalReplica {
    /// The shard.
    pub shard: u32,
    /// Its engine's status.
    pub status: Status,
    /// Whether the shard's leader (asked elsewhere) no longer counts this replica,
    /// neither as voter nor as learner. Asked only when [`must_ask_leader`] says so.
    pub removed_by_leader: bool,
}

/// Whether the shell must ask `shard`'s leader ([`META_SHARD`]: the meta group's) if
/// it still counts this replica before calling [`follow`]: the map moved the shard
/// away and this replica does not lead. (A removed replica may never see its own
/// removal: the leader stops sending to it once the change commits. So only the
/// leader can say.)
pub fn must_ask_leader(cfg: &ManagerConfig, map: &MetaMap, shard: u32, status: &Status) -> bool {
    status.role != Role::Leader
        && map
            .replicas_of(shard, &cfg.nodes)
            .is_some_and(|target| !target.contains(&cfg.node_id))
}

/// What a node does to follow the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start an empty replica of the shard; it learns everything from the leader.
    Start(u32),
    /// Stop the shard's replica and drop its state: the group removed it.
    Stop(u32),
    /// Leadership of the shard should go to this node (the map's first choice).
    PreferLeader(u32, Option<NodeId>),
    /// Propose this membership change in the shard's group (this node leads it).
    Change(u32, ConfigChange),
    /// Hand the shard's leadership to this node before leaving the shard.
    Transfer(u32, NodeId),
}

/// This node's next steps toward the map: start the replicas the map gives it and it
/// does not hold (`held`), stop those the group has removed, and, for each shard it
/// leads, one membership step ([`next_change`]) — new replicas are added as learners,
/// at most `catching_up_max` at once across the shards it leads. The meta group is
/// followed like a shard, under [`META_SHARD`], toward the map's `meta` entry.
///
/// `locals` are this node's replicas, the meta group's included, in any order.
pub fn follow(
    cfg: &ManagerConfig,
    map: &MetaMap,
    held: &BTreeSet<u32>,
    locals: &[LocalReplica],
) -> Vec<Action> {
    let me = cfg.node_id;
    let meta = map.meta_replicas(&cfg.nodes);
    let mut actions: Vec<Action> = map
        .shards
        .iter()
        .map(|(&s, target)| (s, target))
        .chain([(META_SHARD, &meta)])
        .filter(|(s, target)| target.contains(&me) && !held.contains(s))
        .map(|(s, _)| Action::Start(s))
        .collect();
    // Catch-up budget: new replicas already being fed by leaders on this node.
    let mut catching_up = 0;
    let mut led = Vec::new();
    for local in locals {
        let target = map.replicas_of(local.shard, &cfg.nodes);
        if must_ask_leader(cfg, map, local.shard, &local.status) && local.removed_by_leader {
            actions.push(Action::Stop(local.shard));
            continue;
        }
        if local.status.role == Role::Leader {
            catching_up += local.status.membership.learners.len();
            // Leadership follows the map's first choice (the ring spreads first
            // choices evenly); the host hands over once that replica is caught up.
            // The meta group has no preference: its load is small.
            if cfg.balance_leaders && local.shard != META_SHARD {
                let first = target.and_then(|t| t.first().copied());
                actions.push(Action::PreferLeader(local.shard, first));
            }
            led.push(local);
        }
    }
    for local in led {
        let Some(target) = map.replicas_of(local.shard, &cfg.nodes) else {
            continue;
        };
        let target = &target[..];
        match next_change(
            me,
            target,
            &local.status,
            &mut catching_up,
            cfg.catching_up_max,
        ) {
            Some(Step::Change(c)) => actions.push(Action::Change(local.shard, c)),
            Some(Step::Transfer(to)) => actions.push(Action::Transfer(local.shard, to)),
            None => {}
        }
    }
    actions
}

/// Whether a leader should hand leadership to `preferred` now: another replica, active
/// and holding every entry, so the transfer is quick and the group is not left
/// leaderless waiting for it.
pub fn ready_to_hand_over(status: &Status, preferred: NodeId) -> bool {
    status.role == Role::Leader
        && status.id != preferred
        && status
            .peers
            .iter()
            .any(|p| p.id == preferred && p.recent_active && p.matched >= status.last_index)
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
    status: &Status,
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
    use consensus::{LogIndex, Membership, PeerStatus, ReplicationState, Term};

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

    fn states(active: &[u64], dead: &[u64], draining: &[u64]) -> BTreeMap<NodeId, ring::NodeState> {
        let mut m = BTreeMap::new();
        for &n in active {
            m.insert(n, ring::NodeState::Active);
        }
        for &n in dead {
            m.insert(n, ring::NodeState::Dead);
        }
        for &n in draining {
            m.insert(n, ring::NodeState::Draining);
        }
        m
    }

    #[test]
    fn the_meta_group_replaces_a_dead_replica_with_the_next_active_node() {
        let s = states(&[1, 2, 4, 5, 6, 7], &[3], &[]);
        assert_eq!(meta_target(&[1, 2, 3, 4, 5], &s), vec![1, 2, 4, 5, 6]);
    }

    #[test]
    fn the_meta_group_shrinks_to_an_odd_size_when_too_few_nodes_are_active() {
        // Four active: three replicas (four would tolerate no more failures).
        let s = states(&[1, 2, 4, 5], &[3], &[]);
        assert_eq!(meta_target(&[1, 2, 3, 4, 5], &s), vec![1, 2, 4]);
        // The kept replicas are the current ones, whatever their ids.
        let s = states(&[2, 6, 7], &[1], &[5]);
        assert_eq!(meta_target(&[5, 1, 7, 6], &s), vec![7, 6, 2]);
    }

    #[test]
    fn a_draining_node_leaves_the_meta_group_and_a_healthy_one_stays_put() {
        let s = states(&[1, 2, 3, 4], &[], &[2]);
        assert_eq!(meta_target(&[1, 2, 3], &s), vec![1, 3, 4]);
        let s = states(&[1, 2, 3, 4, 5, 6], &[], &[]);
        assert_eq!(meta_target(&[6, 1, 2, 3, 4], &s), vec![6, 1, 2, 3, 4]);
    }

    #[test]
    fn with_no_active_node_the_meta_group_is_left_alone() {
        let s = states(&[], &[1, 2], &[3]);
        assert_eq!(meta_target(&[1, 2, 3], &s), vec![1, 2, 3]);
    }
}
