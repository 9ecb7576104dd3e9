//! The whole control plane of a sharded hakv cluster in a seeded, deterministic world.
//!
//! Five founders hold six shards, three replicas each, and the meta group; every node
//! runs the real pieces, unchanged: Raft or Multi-Paxos for every group, the SWIM/φ
//! failure detector (`membership`), and the cluster manager's decisions
//! (`node::cluster::policy`: the meta leader's `decide`, every node's `follow`, the
//! leaders' `next_change`, leader balancing). Only the shell is simulated: a network
//! that loses, duplicates, delays and reorders messages and can isolate a node; a
//! clock; instant storage; crashes (SIGKILL: the node stops for good).
//!
//! ```text
//!  t ≈ 2–4 s    one node isolated for 1.5 s    ─▶ nothing may be declared or moved
//!  t ≈ 6–8 s    a founder crashes               ─▶ declared dead after down-after, every
//!                                                  shard back to 3 replicas on live nodes
//!  healed + 1 s a second founder crashes         ─▶ healed again (3 live = 3 replicas)
//!  healed       node 6 joins (node/6 = active)   ─▶ it takes its share of the replicas
//!  healed       a live founder is drained        ─▶ it ends up holding nothing
//! ```
//!
//! A client load runs throughout: unique-key writes (none acknowledged may be lost)
//! and puts and linearizable reads of a few registers per shard (the history is checked
//! with `lincheck`). Checked on every step: at most one leader per group and term, and
//! every replica of a group applies the same sequence (a running digest per applied
//! count). Checked at the end: the map is the ring's placement of the live members,
//! every group's membership is exactly its map entry, every replica has the same state,
//! every acknowledged write is there, the register history is linearizable, and no
//! node was declared dead that did not crash. Same seed, same run; a failure names its
//! seed. Knobs break the world on purpose to show each check can fail.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use consensus::{LogIndex, NodeId, Payload, Recovered, Rng, Role, Status};
use lincheck::kv::{KvInput, KvModel, KvOutput};
use lincheck::{Checker, History, OpId, Verdict};
use membership::{Detector, State as Health};
use node::cluster::map::{node_key, MetaMap, NodeRecord};
use node::cluster::policy::{self, Action, LocalReplica, ManagerConfig};
use node::engine::ReplicaEngine;
use node::front::route::{group_of, META_GROUP};

/// The meta group's key in a node's groups.
const META: u32 = u32::MAX;
/// Engine tick, as `hakv server --tick-ms` (election 10 ticks, heartbeat 2).
const TICK_MS: u64 = 20;
/// How often each node's manager looks at the map (as in the product).
const MANAGER_MS: u64 = 500;
/// Leader balancing looks this often (host: every 50 ticks).
const BALANCE_MS: u64 = 50 * TICK_MS;
/// Entries between snapshots, so that new replicas catch up by snapshot.
const COMPACT_EVERY: u64 = 64;
const FOUNDERS: [NodeId; 5] = [1, 2, 3, 4, 5];
const JOINER: NodeId = 6;
const SHARDS: u32 = 6;
const REPLICAS: u32 = 3;
/// Shorter than the product's 30 s default, to keep runs short; long enough that the
/// 1.5 s isolation (and its refutation) never reaches it.
const DOWN_AFTER_MS: u64 = 3_000;
/// Everything must have happened by then.
const DEADLINE_MS: u64 = 180_000;
/// Registers per shard in the linearizability history.
const REGISTERS: u64 = 2;

/// Deliberately broken worlds, to show the checks fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Knob {
    None,
    /// The meta leader declares a node dead as soon as its detector suspects it.
    DeclareOnSuspicion,
    /// The meta leader never declares anyone dead: nothing heals.
    NeverDeclare,
    /// A replica started by the manager skips one command it applies.
    SkipAnApplyOnNewReplicas,
}

/// A replica's state machine: keys and values, plus a digest of every command applied
/// in order (two replicas with equal digests at equal counts applied the same sequence).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct State {
    kv: BTreeMap<Bytes, Bytes>,
    commands: u64,
    digest: u64,
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl State {
    /// A command is `key=value` pairs separated by newlines.
    fn apply(&mut self, cmd: &[u8]) {
        self.commands += 1;
        self.digest = fnv(self.digest ^ 0xcbf2_9ce4_8422_2325, cmd);
        for pair in cmd.split(|&b| b == b'\n') {
            if let Some(i) = pair.iter().position(|&b| b == b'=') {
                self.kv.insert(
                    Bytes::copy_from_slice(&pair[..i]),
                    Bytes::copy_from_slice(&pair[i + 1..]),
                );
            }
        }
    }

    fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        out.extend_from_slice(&self.commands.to_le_bytes());
        out.extend_from_slice(&self.digest.to_le_bytes());
        for (k, v) in &self.kv {
            for part in [k, v] {
                out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                out.extend_from_slice(part);
            }
        }
        out.into()
    }

    fn decode(b: &[u8]) -> State {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        let mut s = State {
            kv: BTreeMap::new(),
            commands: u64_at(0),
            digest: u64_at(8),
        };
        let mut i = 16;
        let take = |i: &mut usize| {
            let n = u32::from_le_bytes(b[*i..*i + 4].try_into().unwrap()) as usize;
            let part = Bytes::copy_from_slice(&b[*i + 4..*i + 4 + n]);
            *i += 4 + n;
            part
        };
        while i < b.len() {
            let k = take(&mut i);
            let v = take(&mut i);
            s.kv.insert(k, v);
        }
        s
    }
}

fn encode_pairs(pairs: &[(String, String)]) -> Bytes {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
        .into()
}

struct Replica<E> {
    engine: E,
    state: State,
    applied: LogIndex,
    /// Reads whose index is fixed, waiting for `applied` to reach it.
    reads: Vec<consensus::ReadState>,
    /// Started by the manager (empty), rather than founded.
    started_empty: bool,
    /// Whether [`Knob::SkipAnApplyOnNewReplicas`] has struck here.
    skipped: bool,
}

struct SimNode<E> {
    /// Booted (founders at 0, the joiner when it joins) and not crashed.
    up: bool,
    groups: BTreeMap<u32, Replica<E>>,
    detector: Detector,
    preferred: BTreeMap<u32, NodeId>,
    /// Offset of this node's manager rounds (nodes do not look at the same instant).
    phase: u64,
}

#[derive(Clone)]
enum Msg<M> {
    Group(u32, M),
    Detector(membership::Message),
}

/// Messages in flight by (delivery time, sequence): (from, to, message).
type InFlight<M> = BTreeMap<(u64, u64), (NodeId, NodeId, Msg<M>)>;

/// Why a write was proposed.
#[derive(Clone, Debug)]
enum Write {
    Unique(u32, Bytes),
    Register(OpId),
    Meta,
}

/// Who waits for a read.
#[derive(Clone, Debug)]
enum Read {
    Map { requester: NodeId },
    Register { op: OpId, key: Bytes },
}

struct World<E: ReplicaEngine> {
    knob: Knob,
    now: u64,
    rng: Rng,
    loss: f64,
    cfg: Box<dyn Fn(NodeId) -> E::Config>,
    placement: ring::Placement,
    nodes: BTreeMap<NodeId, SimNode<E>>,
    crashed: BTreeSet<NodeId>,
    isolated: Option<(NodeId, u64)>,
    net: InFlight<E::Message>,
    seq: u64,
    /// Proposals waiting to be applied at the node that proposed them:
    /// (node, group key, index) → (term, command, why).
    writes: BTreeMap<(NodeId, u32, u64), (u64, Bytes, Write)>,
    /// Reads waiting for their read state: ctx → (node, group key, who).
    reads: BTreeMap<u64, (NodeId, u32, Read)>,
    next_ctx: u64,
    next_key: u64,
    history: History<KvInput, KvOutput>,
    acked: Vec<(u32, Bytes)>,
    /// Per group: the digest every replica must have after applying n commands.
    digests: BTreeMap<u32, BTreeMap<u64, u64>>,
    /// (group key, term) → the node that led it.
    leaders: BTreeMap<(u32, u64), NodeId>,
    /// Manager actions carried out, for the report.
    started: usize,
    stopped: usize,
    changes: usize,
    snapshots_installed: usize,
    /// A safety violation seen during the run.
    violation: Option<String>,
    trace: Vec<String>,
}

impl<E: ReplicaEngine> World<E>
where
    E::Message: Clone,
{
    fn new(seed: u64, knob: Knob, cfg: Box<dyn Fn(NodeId) -> E::Config>) -> World<E> {
        let mut rng = Rng::new(seed);
        let loss = [0.0, 0.02, 0.1][rng.range(0, 3) as usize];
        let keyspace = ring::Keyspace::new(SHARDS, ring::HashTags::Redis).unwrap();
        let placement = ring::Placement::new(
            keyspace,
            REPLICAS,
            ring::Placement::VNODES_PER_WEIGHT_DEFAULT,
        )
        .unwrap();
        let members = ring::Members::new(FOUNDERS.iter().map(|&n| ring::Node::new(n))).unwrap();
        let founding = placement.compute(&members).unwrap();
        let mut w = World {
            knob,
            now: 0,
            rng,
            loss,
            cfg,
            placement,
            nodes: BTreeMap::new(),
            crashed: BTreeSet::new(),
            isolated: None,
            net: BTreeMap::new(),
            seq: 0,
            writes: BTreeMap::new(),
            reads: BTreeMap::new(),
            next_ctx: 1,
            next_key: 0,
            history: History::new(),
            acked: Vec::new(),
            digests: BTreeMap::new(),
            leaders: BTreeMap::new(),
            started: 0,
            stopped: 0,
            changes: 0,
            snapshots_installed: 0,
            violation: None,
            trace: Vec::new(),
        };
        for id in FOUNDERS.into_iter().chain([JOINER]) {
            let mut dcfg = node::detector::production_config(id);
            dcfg.seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id;
            let known: Vec<NodeId> = if id == JOINER {
                vec![JOINER]
            } else {
                FOUNDERS.to_vec()
            };
            let detector = Detector::new(dcfg, 0, &known).unwrap();
            let phase = w.rng.range(0, MANAGER_MS);
            w.nodes.insert(
                id,
                SimNode {
                    up: id != JOINER,
                    groups: BTreeMap::new(),
                    detector,
                    preferred: BTreeMap::new(),
                    phase,
                },
            );
        }
        for &id in &FOUNDERS {
            for shard in founding.shards_on(ring::NodeId(id)) {
                let voters: Vec<NodeId> = founding
                    .replicas(shard)
                    .unwrap()
                    .iter()
                    .map(|n| n.0)
                    .collect();
                w.boot_group(id, shard.0, E::bootstrap(&voters), false);
                w.nodes
                    .get_mut(&id)
                    .unwrap()
                    .preferred
                    .insert(shard.0, voters[0]);
            }
            w.boot_group(id, META, E::bootstrap(&FOUNDERS), false);
        }
        w
    }

    fn boot_group(&mut self, id: NodeId, key: u32, rec: Recovered, empty: bool) {
        let mut cfg = (self.cfg)(id);
        E::salt_seed(
            &mut cfg,
            if key == META {
                META_GROUP
            } else {
                group_of(key)
            },
        );
        let engine = E::boot(cfg, rec).expect("boots");
        self.nodes.get_mut(&id).unwrap().groups.insert(
            key,
            Replica {
                engine,
                state: State::default(),
                applied: LogIndex(0),
                reads: Vec::new(),
                started_empty: empty,
                skipped: false,
            },
        );
    }

    fn note(&mut self, what: String) {
        self.trace.push(format!("{:>7} ms  {what}", self.now));
    }

    fn fail(&mut self, what: String) {
        if self.violation.is_none() {
            self.violation = Some(format!("at {} ms: {what}", self.now));
        }
    }

    fn live(&self, id: NodeId) -> bool {
        self.nodes[&id].up && !self.crashed.contains(&id)
    }

    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        self.live(a)
            && self.live(b)
            && !self
                .isolated
                .is_some_and(|(n, until)| self.now < until && (n == a || n == b) && a != b)
    }

    /// The leader of a group as a client would find it from `from`: a live, reachable
    /// replica that believes it leads, at the highest term.
    fn leader_of(&self, key: u32, from: NodeId) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(&id, _)| self.reachable(from, id))
            .filter_map(|(&id, n)| {
                let r = n.groups.get(&key)?;
                (r.engine.role() == Role::Leader).then(|| (r.engine.term().0, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: Msg<E::Message>) {
        if self.rng.chance(self.loss) {
            return;
        }
        let copies = if self.rng.chance(0.01) { 2 } else { 1 };
        for _ in 0..copies {
            // Mostly a LAN's few milliseconds; now and then a long stall, which
            // reorders a message behind many later ones.
            let delay = if self.rng.chance(0.02) {
                self.rng.range(20, 200)
            } else {
                self.rng.range(1, 5)
            };
            let at = self.now + delay;
            self.seq += 1;
            self.net.insert((at, self.seq), (from, to, msg.clone()));
        }
    }

    /// Carries out everything the group's engine asks (storage is instant).
    fn drain(&mut self, id: NodeId, key: u32) {
        loop {
            let Some(r) = self.nodes.get_mut(&id).and_then(|n| n.groups.get_mut(&key)) else {
                return;
            };
            if !r.engine.has_ready() {
                break;
            }
            let mut ready = r.engine.ready();
            if let Some(snap) = ready.snapshot.take() {
                r.state = State::decode(&snap.data);
                r.applied = snap.meta.index;
                self.snapshots_installed += 1;
            }
            let mut applied_cmds = Vec::new();
            for e in ready.committed_entries.drain(..) {
                if let Payload::Command(c) = &e.payload {
                    let skip = self.knob == Knob::SkipAnApplyOnNewReplicas
                        && r.started_empty
                        && !r.skipped;
                    if skip {
                        r.skipped = true;
                        r.state.commands += 1;
                    } else {
                        r.state.apply(c);
                    }
                    applied_cmds.push((
                        e.index.0,
                        e.term.0,
                        c.clone(),
                        r.state.commands,
                        r.state.digest,
                    ));
                }
                r.applied = e.index;
            }
            let read_states = std::mem::take(&mut ready.read_states);
            r.reads.extend(read_states);
            let number = ready.number;
            let messages: Vec<_> = ready
                .messages
                .drain(..)
                .chain(ready.messages_after_sync.drain(..))
                .collect();
            r.engine.advance(number);
            for m in messages {
                self.send(id, m.to, Msg::Group(key, m.msg));
            }
            for (index, term, cmd, count, digest) in applied_cmds {
                let expected = *self
                    .digests
                    .entry(key)
                    .or_default()
                    .entry(count)
                    .or_insert(digest);
                if expected != digest {
                    self.fail(format!(
                        "node {id} group {key}: command #{count} differs from another replica's"
                    ));
                }
                if let Some((t, c, why)) = self.writes.remove(&(id, key, index)) {
                    if t == term && c == cmd {
                        match why {
                            Write::Unique(shard, k) => self.acked.push((shard, k)),
                            Write::Register(op) => {
                                self.history.complete(op, KvOutput::Ok, self.now)
                            }
                            Write::Meta => {}
                        }
                    }
                }
            }
        }
        self.serve_reads(id, key);
        self.maybe_compact(id, key);
    }

    fn serve_reads(&mut self, id: NodeId, key: u32) {
        let r = self
            .nodes
            .get_mut(&id)
            .unwrap()
            .groups
            .get_mut(&key)
            .unwrap();
        let applied = r.applied;
        let (ready, wait): (Vec<_>, Vec<_>) = r.reads.drain(..).partition(|rs| rs.index <= applied);
        r.reads = wait;
        for rs in ready {
            let Some((at, k, who)) = self.reads.remove(&rs.ctx) else {
                continue;
            };
            debug_assert_eq!((at, k), (id, key));
            let state = &self.nodes[&id].groups[&key].state;
            match who {
                Read::Register { op, key: reg } => {
                    let out = KvOutput::Value(state.kv.get(&reg).map(|v| v.to_vec()));
                    self.history.complete(op, out, self.now);
                }
                Read::Map { requester } => {
                    let map =
                        MetaMap::from_pairs(state.kv.iter().map(|(k, v)| (k.clone(), v.clone())));
                    if self.live(requester) {
                        self.manage(requester, &map);
                    }
                }
            }
        }
    }

    fn maybe_compact(&mut self, id: NodeId, key: u32) {
        let r = self
            .nodes
            .get_mut(&id)
            .unwrap()
            .groups
            .get_mut(&key)
            .unwrap();
        if r.applied.0 >= r.engine.snapshot_index().0 + COMPACT_EVERY {
            let data = r.state.encode();
            let _ = r.engine.compact(r.applied, data);
        }
    }

    fn check_leaders(&mut self, id: NodeId) {
        let mut seen = Vec::new();
        for (&key, r) in &self.nodes[&id].groups {
            if r.engine.role() == Role::Leader {
                seen.push((key, r.engine.term().0));
            }
        }
        for (key, term) in seen {
            let other = *self.leaders.entry((key, term)).or_insert(id);
            if other != id {
                self.fail(format!(
                    "group {key} has two leaders in term {term}: {other} and {id}"
                ));
            }
        }
    }

    /// How long node `at`'s detector has seen `n` dead (or, with the knob, suspected).
    fn dead_for(&self, at: NodeId, n: NodeId) -> Option<Duration> {
        let v = self.nodes[&at].detector.member(n)?;
        let counts = match self.knob {
            Knob::DeclareOnSuspicion => v.state != Health::Alive,
            Knob::NeverDeclare => false,
            _ => v.state == Health::Dead,
        };
        if !counts {
            return None;
        }
        if self.knob == Knob::DeclareOnSuspicion {
            return Some(Duration::from_secs(3600));
        }
        Some(Duration::from_millis(self.now.saturating_sub(v.since_ms)))
    }

    fn manager_config(&self, id: NodeId) -> ManagerConfig {
        ManagerConfig {
            node_id: id,
            nodes: FOUNDERS.to_vec(),
            down_after: Duration::from_millis(DOWN_AFTER_MS),
            interval: Duration::from_millis(MANAGER_MS),
            placement: self.placement,
            catching_up_max: 2,
            balance_leaders: true,
        }
    }

    /// One manager round of node `id`, with the map it just read.
    fn manage(&mut self, id: NodeId, map: &MetaMap) {
        let cfg = self.manager_config(id);
        let leads_meta = self.nodes[&id]
            .groups
            .get(&META)
            .is_some_and(|r| r.engine.role() == Role::Leader);
        if leads_meta {
            let decision = policy::decide(&cfg, map, |n| self.dead_for(id, n));
            match decision {
                Ok(d) if !d.writes.is_empty() => {
                    self.note(format!(
                        "node {id} (meta leader) writes {:?} (dead: {:?})",
                        d.writes, d.newly_dead
                    ));
                    self.propose(id, META, encode_pairs(&d.writes), Write::Meta);
                }
                Ok(_) => {}
                Err(e) => self.fail(format!("decide failed: {e}")),
            }
        }
        if map.shards.is_empty() {
            return;
        }
        let held: BTreeSet<u32> = self.nodes[&id].groups.keys().copied().collect();
        let mut locals = Vec::new();
        for (&shard, r) in &self.nodes[&id].groups {
            let status = r.engine.status();
            let removed_by_leader = policy::must_ask_leader(&cfg, map, shard, &status)
                && self.removed_by_leader(id, shard, map);
            locals.push(LocalReplica {
                shard,
                status,
                removed_by_leader,
            });
        }
        for action in policy::follow(&cfg, map, &held, &locals) {
            match action {
                Action::Start(shard) => {
                    self.note(format!(
                        "node {id} starts an empty replica of shard {shard}"
                    ));
                    self.started += 1;
                    self.boot_group(id, shard, Recovered::default(), true);
                }
                Action::Stop(shard) => {
                    self.note(format!("node {id} stops its replica of shard {shard}"));
                    self.stopped += 1;
                    // The group must really not count it: ask every live leader.
                    let counted = self.nodes.iter().any(|(&n, node)| {
                        self.live(n)
                            && node.groups.get(&shard).is_some_and(|r| {
                                let s = r.engine.status();
                                s.role == Role::Leader && counts(&s, id)
                            })
                    });
                    if counted {
                        self.fail(format!(
                            "node {id} stopped its replica of shard {shard} while a leader still counts it"
                        ));
                    }
                    let n = self.nodes.get_mut(&id).unwrap();
                    n.groups.remove(&shard);
                    n.preferred.remove(&shard);
                }
                Action::PreferLeader(shard, Some(to)) => {
                    self.nodes.get_mut(&id).unwrap().preferred.insert(shard, to);
                }
                Action::PreferLeader(shard, None) => {
                    self.nodes.get_mut(&id).unwrap().preferred.remove(&shard);
                }
                Action::Change(shard, c) => {
                    let r = self
                        .nodes
                        .get_mut(&id)
                        .unwrap()
                        .groups
                        .get_mut(&shard)
                        .unwrap();
                    if r.engine.change_config(c.clone()).is_ok() {
                        self.changes += 1;
                        self.note(format!("node {id} changes shard {shard}: {c:?}"));
                    }
                    self.drain(id, shard);
                }
                Action::Transfer(shard, to) => {
                    let r = self
                        .nodes
                        .get_mut(&id)
                        .unwrap()
                        .groups
                        .get_mut(&shard)
                        .unwrap();
                    let _ = r.engine.transfer_leadership(to);
                    self.drain(id, shard);
                }
            }
        }
    }

    /// What `MEMBERS` asked of the shard's leader says: it counts `id` no more.
    fn removed_by_leader(&self, id: NodeId, shard: u32, map: &MetaMap) -> bool {
        let target = map.replicas_of(shard, &FOUNDERS).unwrap_or_default();
        let Some(at) = target.iter().copied().find(|&n| n != id) else {
            return false;
        };
        let Some(leader) = self.leader_of(shard, at) else {
            return false;
        };
        if !self.reachable(id, at) {
            return false;
        }
        !counts(&self.nodes[&leader].groups[&shard].engine.status(), id)
    }

    fn propose(&mut self, id: NodeId, key: u32, cmd: Bytes, why: Write) -> bool {
        let r = self
            .nodes
            .get_mut(&id)
            .unwrap()
            .groups
            .get_mut(&key)
            .unwrap();
        let ok = match r.engine.propose(cmd.clone()) {
            Ok(p) => {
                self.writes
                    .insert((id, key, p.index.0), (p.term.0, cmd, why));
                true
            }
            Err(_) => false,
        };
        self.drain(id, key);
        ok
    }

    fn read(&mut self, id: NodeId, key: u32, who: Read) -> bool {
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        let r = self
            .nodes
            .get_mut(&id)
            .unwrap()
            .groups
            .get_mut(&key)
            .unwrap();
        if r.engine.read_index(ctx).is_err() {
            return false;
        }
        self.reads.insert(ctx, (id, key, who));
        self.drain(id, key);
        true
    }

    /// The client: a unique-key write, or a register put or read, through a leader.
    fn client_op(&mut self) {
        let shard = self.rng.range(0, u64::from(SHARDS)) as u32;
        let from = *self.rng.pick(&FOUNDERS).unwrap();
        if !self.live(from) {
            return;
        }
        let Some(leader) = self.leader_of(shard, from) else {
            return;
        };
        self.next_key += 1;
        let n = self.next_key;
        let dice = self.rng.range(0, 10);
        if dice < 6 {
            let key = Bytes::from(format!("s{shard}/u{n}"));
            let cmd = Bytes::from(format!("s{shard}/u{n}=v{n}"));
            self.propose(leader, shard, cmd, Write::Unique(shard, key));
            return;
        }
        let reg = format!("s{shard}/r{}", self.rng.range(0, REGISTERS));
        if dice < 8 {
            let value = format!("w{n}");
            let op = self.history.invoke(n, KvInput::put(&reg, &value), self.now);
            // A refused proposal never takes effect: indeterminate is the honest record.
            if !self.propose(
                leader,
                shard,
                Bytes::from(format!("{reg}={value}")),
                Write::Register(op),
            ) {
                self.history.indeterminate(op);
            }
        } else {
            let op = self.history.invoke(n, KvInput::get(&reg), self.now);
            let who = Read::Register {
                op,
                key: Bytes::from(reg),
            };
            if !self.read(leader, shard, who) {
                self.history.indeterminate(op);
            }
        }
    }

    /// One millisecond.
    fn step(&mut self, load: bool) {
        self.now += 1;
        // Deliver what is due.
        while let Some((&(at, seq), _)) = self.net.first_key_value() {
            if at > self.now {
                break;
            }
            let (from, to, msg) = self.net.remove(&(at, seq)).unwrap();
            if !self.reachable(from, to) {
                continue;
            }
            match msg {
                Msg::Group(key, m) => {
                    let Some(r) = self.nodes.get_mut(&to).unwrap().groups.get_mut(&key) else {
                        continue; // no such replica here (yet, or any more)
                    };
                    let _ = r.engine.step(from, m);
                    self.drain(to, key);
                    self.check_leaders(to);
                }
                Msg::Detector(m) => {
                    let now = self.now;
                    let d = &mut self.nodes.get_mut(&to).unwrap().detector;
                    let _ = d.step(now, from, m);
                    self.detector_actions(to);
                }
            }
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            if !self.live(id) {
                continue;
            }
            let now = self.now;
            if self.nodes[&id].detector.poll_at() <= now {
                self.nodes.get_mut(&id).unwrap().detector.tick(now);
                self.detector_actions(id);
            }
            if now.is_multiple_of(TICK_MS) {
                let keys: Vec<u32> = self.nodes[&id].groups.keys().copied().collect();
                for key in keys {
                    self.nodes
                        .get_mut(&id)
                        .unwrap()
                        .groups
                        .get_mut(&key)
                        .unwrap()
                        .engine
                        .tick();
                    self.drain(id, key);
                }
                self.check_leaders(id);
            }
            if now % BALANCE_MS == id * TICK_MS {
                self.balance(id);
            }
            if now % MANAGER_MS == self.nodes[&id].phase {
                self.read_map(id);
            }
        }
        if load && self.now.is_multiple_of(3) {
            self.client_op();
        }
    }

    fn detector_actions(&mut self, id: NodeId) {
        let actions = self.nodes.get_mut(&id).unwrap().detector.take_actions();
        for a in actions {
            match a {
                membership::Action::Send { to, msg } => self.send(id, to, Msg::Detector(msg)),
                membership::Action::Event(e) => {
                    if matches!(e, membership::Event::Dead { .. }) {
                        self.note(format!("node {id} sees {e:?}"));
                    }
                }
            }
        }
    }

    /// The host's leader balancing: hand each led group to its preferred leader.
    fn balance(&mut self, id: NodeId) {
        let preferred: Vec<(u32, NodeId)> = self.nodes[&id]
            .preferred
            .iter()
            .map(|(&k, &v)| (k, v))
            .collect();
        for (key, to) in preferred {
            let Some(r) = self.nodes.get_mut(&id).unwrap().groups.get_mut(&key) else {
                continue;
            };
            if policy::ready_to_hand_over(&r.engine.status(), to) {
                let _ = r.engine.transfer_leadership(to);
                self.drain(id, key);
            }
        }
    }

    /// Starts a manager round: a linearizable read of the map at the meta leader.
    fn read_map(&mut self, id: NodeId) {
        if let Some(leader) = self.leader_of(META, id) {
            self.read(leader, META, Read::Map { requester: id });
        }
    }

    /// The leader of a group as an observer outside the network sees it: the live
    /// replica that believes it leads, at the highest term.
    fn leader(&self, key: u32) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(&id, _)| self.live(id))
            .filter_map(|(&id, n)| {
                let r = n.groups.get(&key)?;
                (r.engine.role() == Role::Leader).then(|| (r.engine.term().0, id))
            })
            .max()
            .map(|(_, id)| id)
    }

    /// The meta group's map, as its leader has applied it.
    fn map(&self) -> Option<MetaMap> {
        let l = self.leader(META)?;
        let s = &self.nodes[&l].groups[&META].state;
        Some(MetaMap::from_pairs(
            s.kv.iter().map(|(k, v)| (k.clone(), v.clone())),
        ))
    }

    /// Healed: the map is the ring's placement of its members (the meta leader would
    /// write nothing), no shard is on a crashed node, and every shard's group is
    /// exactly its map entry and has caught every live replica up.
    fn healed(&self) -> bool {
        let Some(map) = self.map() else { return false };
        if map.shards.len() != SHARDS as usize {
            return false;
        }
        let cfg = self.manager_config(1);
        match policy::decide(&cfg, &map, |_| None) {
            Ok(d) if d.writes.is_empty() => {}
            _ => return false,
        }
        // The meta group heals like a shard, toward the map's `meta` entry.
        let meta = map.meta_replicas(&FOUNDERS);
        for (&shard, target) in map.shards.iter().chain([(&META, &meta)]) {
            if target
                .iter()
                .any(|n| self.crashed.contains(n) || map.is_dead(*n))
            {
                return false;
            }
            let Some(l) = self.leader(shard) else {
                return false;
            };
            let s = self.nodes[&l].groups[&shard].engine.status();
            let want: BTreeSet<NodeId> = target.iter().copied().collect();
            if s.membership.voters != want
                || s.membership.is_joint()
                || !s.membership.learners.is_empty()
            {
                return false;
            }
            for &n in target {
                if !self.nodes[&n].groups.contains_key(&shard) {
                    return false;
                }
            }
            // No replica left over on a node outside the target.
            if self.nodes.iter().any(|(&n, node)| {
                self.live(n) && !want.contains(&n) && node.groups.contains_key(&shard)
            }) {
                return false;
            }
        }
        true
    }

    /// Every group's state as its replicas see it, for a failure report.
    fn diagnose(&self) -> String {
        let mut out = String::new();
        let keys: BTreeSet<u32> = self
            .nodes
            .values()
            .flat_map(|n| n.groups.keys().copied())
            .collect();
        for key in keys {
            for (&id, n) in &self.nodes {
                let Some(r) = n.groups.get(&key) else {
                    continue;
                };
                let s = r.engine.status();
                out.push_str(&format!(
                    "  group {key} node {id}{}: {:?} term {} leader {:?} commit {} applied {} last {} first {} voters {:?}/{:?} learners {:?} peers {:?}\n",
                    if self.live(id) { "" } else { " (down)" },
                    s.role, s.term.0, s.leader, s.commit.0, s.applied.0, s.last_index.0, s.first_index.0,
                    s.membership.voters, s.membership.voters_outgoing, s.membership.learners,
                    s.peers.iter().map(|p| (p.id, p.matched.0, p.next.0, format!("{:?}", p.state), p.recent_active)).collect::<Vec<_>>()
                ));
            }
        }
        out
    }

    fn crash(&mut self, id: NodeId) {
        self.note(format!("node {id} crashes"));
        self.crashed.insert(id);
        self.net.retain(|_, (f, t, _)| *f != id && *t != id);
    }

    /// Writes `node/<id> = state` through the meta leader, as `HAKV JOIN|DRAIN` does.
    fn record_node(&mut self, id: NodeId, state: ring::NodeState) -> bool {
        let Some(l) = self.leader(META) else {
            return false;
        };
        let rec = NodeRecord { state, addrs: None };
        self.propose(
            l,
            META,
            encode_pairs(&[(node_key(id), rec.encode())]),
            Write::Meta,
        )
    }

    fn node_state(&self, id: NodeId) -> Option<ring::NodeState> {
        self.map()?.nodes.get(&id).map(|r| r.state)
    }
}

/// Whether a group's status counts `id` as a voter (either side of a joint
/// configuration) or a learner.
fn counts(s: &Status, id: NodeId) -> bool {
    s.membership.voters.contains(&id)
        || s.membership.voters_outgoing.contains(&id)
        || s.membership.learners.contains(&id)
}

/// What a run showed, for the report.
#[derive(Debug, Default)]
struct Report {
    healed_ms: Vec<u64>,
    joiner_replicas: usize,
    acked: usize,
    ops: usize,
    started: usize,
    snapshots: usize,
    changes: usize,
    /// Map writes that moved the meta group.
    meta_moves: usize,
    /// A digest of every event noted, to compare two runs of one seed.
    trace: u64,
}

fn run<E: ReplicaEngine>(
    seed: u64,
    knob: Knob,
    cfg: impl Fn(NodeId, u64) -> E::Config + 'static,
) -> Result<Report, String>
where
    E::Message: Clone,
{
    let mut w = World::<E>::new(seed, knob, Box::new(move |id| cfg(id, seed)));
    let result = scenario(&mut w);
    result.map_err(|e| {
        // HAKV_SIM_TRACE=N shows the last N events instead of 25.
        let shown = std::env::var("HAKV_SIM_TRACE")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(25);
        let tail: Vec<&String> = w.trace.iter().rev().take(shown).collect();
        let tail: Vec<&str> = tail.into_iter().rev().map(|s| s.as_str()).collect();
        format!(
            "seed {seed} ({:?}, {} loss): {e}\n  last events:\n    {}",
            knob,
            w.loss,
            tail.join("\n    ")
        )
    })
}

/// Runs until `done` holds (checked every 100 ms), failing on a violation or at the
/// deadline.
fn until<E: ReplicaEngine>(
    w: &mut World<E>,
    what: &str,
    load: bool,
    mut done: impl FnMut(&mut World<E>) -> bool,
) -> Result<u64, String>
where
    E::Message: Clone,
{
    let start = w.now;
    loop {
        w.step(load);
        if let Some(v) = &w.violation {
            return Err(v.clone());
        }
        if w.now.is_multiple_of(100) && done(w) {
            return Ok(w.now - start);
        }
        if w.now > DEADLINE_MS {
            return Err(format!("timed out waiting for: {what}\n{}", w.diagnose()));
        }
    }
}

fn scenario<E: ReplicaEngine>(w: &mut World<E>) -> Result<Report, String>
where
    E::Message: Clone,
{
    let mut report = Report::default();
    // The founding map is written; leaders settle.
    until(w, "the founding map", true, |w| w.healed())?;
    // A short isolation of one node that does not lead the meta group.
    let isolate_at = 2_000 + w.rng.range(0, 2_000);
    until(w, "the isolation", true, |w| w.now >= isolate_at)?;
    let meta_leader = w.leader(META);
    let candidates: Vec<NodeId> = FOUNDERS
        .iter()
        .copied()
        .filter(|&n| Some(n) != meta_leader)
        .collect();
    let victim = *w.rng.pick(&candidates).unwrap();
    w.note(format!("node {victim} isolated for 1.5 s"));
    w.isolated = Some((victim, w.now + 1_500));
    until(
        w,
        "the end of the isolation and its refutation",
        true,
        |w| w.now >= isolate_at + 1_500 + DOWN_AFTER_MS + 2_000,
    )?;
    if let Some(map) = w.map() {
        if let Some(n) = map
            .nodes
            .iter()
            .find(|(_, r)| r.state == ring::NodeState::Dead)
        {
            return Err(format!("node {} was declared dead but never crashed", n.0));
        }
    }
    // First crash.
    let first = *w.rng.pick(&FOUNDERS).unwrap();
    w.crash(first);
    report
        .healed_ms
        .push(until(w, "healing after the first crash", true, |w| {
            w.node_state(first) == Some(ring::NodeState::Dead) && w.healed()
        })?);
    // Second crash, after a second of calm.
    let second_at = w.now + 1_000;
    until(w, "calm", true, |w| w.now >= second_at)?;
    let live: Vec<NodeId> = FOUNDERS.iter().copied().filter(|&n| w.live(n)).collect();
    let second = *w.rng.pick(&live).unwrap();
    w.crash(second);
    report
        .healed_ms
        .push(until(w, "healing after the second crash", true, |w| {
            w.node_state(second) == Some(ring::NodeState::Dead) && w.healed()
        })?);
    // Node 6 joins.
    w.note(format!("node {JOINER} joins"));
    w.nodes.get_mut(&JOINER).unwrap().up = true;
    let seeds: Vec<NodeId> = FOUNDERS.iter().copied().filter(|&n| w.live(n)).collect();
    let now = w.now;
    w.nodes.get_mut(&JOINER).unwrap().detector.join(now, &seeds);
    w.detector_actions(JOINER);
    until(w, "the join recorded", true, |w| {
        if w.node_state(JOINER) == Some(ring::NodeState::Active) {
            return true;
        }
        if w.now.is_multiple_of(500) {
            w.record_node(JOINER, ring::NodeState::Active);
        }
        false
    })?;
    report
        .healed_ms
        .push(until(w, "rebalancing after the join", true, |w| {
            w.healed()
        })?);
    let map = w.map().ok_or("no map")?;
    report.joiner_replicas = map.shards.values().filter(|s| s.contains(&JOINER)).count();
    if report.joiner_replicas == 0 {
        return Err("the joiner holds no replica".into());
    }
    // Drain a live founder.
    let live: Vec<NodeId> = FOUNDERS.iter().copied().filter(|&n| w.live(n)).collect();
    let drained = *w.rng.pick(&live).unwrap();
    w.note(format!("node {drained} drained"));
    until(w, "the drain recorded", true, |w| {
        if w.node_state(drained) == Some(ring::NodeState::Draining) {
            return true;
        }
        if w.now.is_multiple_of(500) {
            w.record_node(drained, ring::NodeState::Draining);
        }
        false
    })?;
    report.healed_ms.push(until(w, "the drain", true, |w| {
        w.healed() && w.nodes[&drained].groups.is_empty()
    })?);
    // Quiet: let every replica catch up, then compare.
    let quiet_until = w.now + 3_000;
    until(w, "quiet", false, |w| w.now >= quiet_until)?;
    report.acked = w.acked.len();
    report.ops = w.history.len();
    report.started = w.started;
    report.snapshots = w.snapshots_installed;
    report.changes = w.changes;
    report.meta_moves = w.trace.iter().filter(|l| l.contains("(\"meta\", ")).count();
    report.trace = w.trace.iter().fold(0, |h, line| fnv(h, line.as_bytes()));
    check_end(w)?;
    Ok(report)
}

fn check_end<E: ReplicaEngine>(w: &mut World<E>) -> Result<(), String>
where
    E::Message: Clone,
{
    if !w.healed() {
        return Err("not healed at the end".into());
    }
    let map = w.map().ok_or("no map at the end")?;
    for (n, r) in &map.nodes {
        if r.state == ring::NodeState::Dead && !w.crashed.contains(n) {
            return Err(format!("node {n} was declared dead but never crashed"));
        }
    }
    for (&shard, target) in &map.shards {
        let states: Vec<(NodeId, &State)> = target
            .iter()
            .map(|n| (*n, &w.nodes[n].groups[&shard].state))
            .collect();
        for (n, s) in &states[1..] {
            if *s != states[0].1 {
                return Err(format!(
                    "shard {shard}: node {n} has {} commands (digest {:x}), node {} has {} ({:x})",
                    s.commands, s.digest, states[0].0, states[0].1.commands, states[0].1.digest
                ));
            }
        }
    }
    for (shard, key) in &w.acked {
        let target = &map.shards[shard];
        if !w.nodes[&target[0]].groups[shard].state.kv.contains_key(key) {
            return Err(format!("acknowledged write {key:?} of shard {shard} lost"));
        }
    }
    if w.acked.len() < 1_000 {
        return Err(format!("only {} writes acknowledged", w.acked.len()));
    }
    // Operations still pending (their leader crashed or lost its term) are indeterminate.
    let ops = std::mem::take(&mut w.history).into_ops();
    match Checker::new().check(&KvModel, &ops) {
        Verdict::Linearizable => Ok(()),
        other => Err(format!(
            "register history of {} operations: {other:?}",
            ops.len()
        )),
    }
}

fn campaign<E: ReplicaEngine>(
    name: &str,
    seeds: std::ops::Range<u64>,
    cfg: impl Fn(NodeId, u64) -> E::Config + Copy + 'static,
) where
    E::Message: Clone,
{
    for seed in seeds {
        let started = std::time::Instant::now();
        match run::<E>(seed, Knob::None, cfg) {
            Ok(r) => println!(
                "{name} seed {seed}: healed in {:?} ms; joiner holds {} of {} replicas; {} replicas started, {} snapshots installed, {} membership changes, {} meta group moves; {} writes acknowledged, {} register ops linearizable ({:.1?})",
                r.healed_ms,
                r.joiner_replicas,
                SHARDS * REPLICAS,
                r.started,
                r.snapshots,
                r.changes,
                r.meta_moves,
                r.acked,
                r.ops,
                started.elapsed()
            ),
            Err(e) => panic!("{name} {e}"),
        }
    }
}

fn raft_config(id: NodeId, seed: u64) -> raft::Config {
    let mut c = raft::Config::new(id);
    c.seed = seed.wrapping_mul(31).wrapping_add(id);
    c
}

fn paxos_config(id: NodeId, seed: u64) -> paxos::Config {
    let mut c = paxos::Config::new(id);
    c.seed = seed.wrapping_mul(31).wrapping_add(id);
    c
}

/// Seeds per engine: `HAKV_SIM_SEEDS=first..end` for a longer campaign (in release).
fn seeds() -> std::ops::Range<u64> {
    std::env::var("HAKV_SIM_SEEDS")
        .ok()
        .and_then(|s| {
            let (a, b) = s.split_once("..")?;
            Some(a.parse().ok()?..b.parse().ok()?)
        })
        .unwrap_or(0..40)
}

#[test]
fn raft_cluster_heals_crashes_takes_a_joiner_and_drains_on_every_seed() {
    campaign::<raft::Raft>("raft", seeds(), raft_config);
}

#[test]
fn paxos_cluster_heals_crashes_takes_a_joiner_and_drains_on_every_seed() {
    campaign::<paxos::Paxos>("paxos", seeds(), paxos_config);
}

#[test]
fn the_checks_catch_a_meta_leader_that_declares_a_suspect_dead() {
    let e = run::<raft::Raft>(1, Knob::DeclareOnSuspicion, raft_config).unwrap_err();
    assert!(e.contains("declared dead but never crashed"), "{e}");
}

#[test]
fn the_checks_catch_a_cluster_that_never_declares_the_dead() {
    let e = run::<raft::Raft>(1, Knob::NeverDeclare, raft_config).unwrap_err();
    assert!(
        e.contains("timed out waiting for: healing after the first crash"),
        "{e}"
    );
}

#[test]
fn the_checks_catch_a_new_replica_that_skips_a_command() {
    let e = run::<raft::Raft>(1, Knob::SkipAnApplyOnNewReplicas, raft_config).unwrap_err();
    assert!(e.contains("differs from another replica"), "{e}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run::<raft::Raft>(5, Knob::None, raft_config).unwrap();
    let b = run::<raft::Raft>(5, Knob::None, raft_config).unwrap();
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    let c = run::<paxos::Paxos>(5, Knob::None, paxos_config).unwrap();
    let d = run::<paxos::Paxos>(5, Knob::None, paxos_config).unwrap();
    assert_eq!(format!("{c:?}"), format!("{d:?}"));
}
