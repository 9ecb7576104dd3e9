//! The simulated world: one seeded event loop driving N engines, a faulty network, a
//! disk per node that loses unsynced writes, clients, and a nemesis.
//!
//! ```text
//!   fault phase ── nemesis: partitions, crashes/restarts, membership, transfers;
//!   │              network: loss, duplication, long delays (reordering); skewed ticks
//!   ▼
//!   heal ── everything restarts, the network becomes reliable
//!   │
//!   ▼
//!   liveness ── a leader must commit a probe within a bounded number of ticks
//!   │
//!   ▼
//!   drain ── clients finish; replicas must converge; the history must be linearizable
//! ```
//! Every random choice comes from one [`Rng`] seeded by the run's seed, and events are
//! ordered by (time, sequence number), so a seed replays the same run exactly.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::hash::{DefaultHasher, Hasher};

use consensus::{LogIndex, NodeId, Rng};

use crate::client::{Client, Recorder};
use crate::config::SimConfig;
use crate::harness::SimEngine;
use crate::invariants::Observations;
use crate::node::{Disk, SimNode};

/// How long a client waits for an operation before giving up on it.
pub(crate) const CLIENT_OP_TIMEOUT_US: u64 = 1_000_000;
/// How long clients get to finish after the liveness probe commits.
pub(crate) const DRAIN_US: u64 = 2_000_000;
/// A run with more events than this is stuck in a storm or livelock (normal runs
/// process well under 1% of it).
const EVENTS_MAX: u64 = 3_000_000;
/// The key the liveness probe writes (outside the clients' key space).
pub(crate) const PROBE_KEY: &str = "__liveness_probe__";

/// Counters of what a run did, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events processed.
    pub events: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages dropped by loss or partitions.
    pub dropped: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Messages delayed long enough to reorder.
    pub delayed: u64,
    /// Partitions formed.
    pub partitions: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Node restarts.
    pub restarts: u64,
    /// Crashes that kept part of an unsynced write.
    pub torn_writes: u64,
    /// Slow fsyncs injected.
    pub slow_fsyncs: u64,
    /// Membership changes proposed and accepted.
    pub config_changes: u64,
    /// Leadership transfers started.
    pub transfers: u64,
    /// Snapshots taken by nodes.
    pub snapshots_taken: u64,
    /// Snapshots installed from a leader.
    pub snapshots_installed: u64,
    /// Client operations that completed.
    pub ops_completed: u64,
    /// Client operations with unknown outcome.
    pub ops_indeterminate: u64,
    /// Distinct terms with a leader.
    pub leaders: u64,
}

impl Stats {
    /// Adds another run's counters.
    pub fn add(&mut self, o: &Stats) {
        self.events += o.events;
        self.messages += o.messages;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.delayed += o.delayed;
        self.partitions += o.partitions;
        self.crashes += o.crashes;
        self.restarts += o.restarts;
        self.torn_writes += o.torn_writes;
        self.slow_fsyncs += o.slow_fsyncs;
        self.config_changes += o.config_changes;
        self.transfers += o.transfers;
        self.snapshots_taken += o.snapshots_taken;
        self.snapshots_installed += o.snapshots_installed;
        self.ops_completed += o.ops_completed;
        self.ops_indeterminate += o.ops_indeterminate;
        self.leaders += o.leaders;
    }
}

/// The result of a run that passed every check.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// A hash of every event in order: equal for equal seeds.
    pub trace_hash: u64,
    /// What happened.
    pub stats: Stats,
    /// Operations given to the linearizability checker.
    pub ops_checked: usize,
    /// The checker gave up on its budget (not a failure, but reported).
    pub lincheck_unknown: bool,
    /// Simulated microseconds from heal to the first commit.
    pub recovery_us: u64,
    /// The readable trace, if requested.
    pub trace: Vec<String>,
}

/// A run that broke a property.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The engine that failed.
    pub engine: &'static str,
    /// The seed that reproduces it.
    pub seed: u64,
    /// What broke.
    pub message: String,
    /// The configuration line.
    pub summary: String,
    /// The readable trace up to the failure, if requested.
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "simulation failed: {}", self.message)?;
        writeln!(f, "  {}", self.summary)?;
        write!(
            f,
            "  replay: cargo run -p sim --release -- --seed {} --trace --engine {}",
            self.seed, self.engine
        )
    }
}

pub(crate) enum Event<M> {
    Tick {
        node: NodeId,
        inc: u64,
    },
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: M,
    },
    IoDone {
        node: NodeId,
        inc: u64,
    },
    ClientStep {
        client: usize,
    },
    ClientTimeout {
        client: usize,
        op: u64,
    },
    Nemesis,
    Heal,
    Probe,
    /// Crash `node` if it still leads `term` (the fresh-leader nemesis).
    CrashLeader {
        node: NodeId,
        term: consensus::Term,
    },
    End,
}

pub(crate) struct Scheduled<M> {
    at: u64,
    seq: u64,
    event: Event<M>,
}

impl<M> PartialEq for Scheduled<M> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<M> Eq for Scheduled<M> {}
impl<M> PartialOrd for Scheduled<M> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<M> Ord for Scheduled<M> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Liveness probing after the heal.
#[derive(Default)]
pub(crate) struct Liveness {
    pub(crate) healed_at: Option<u64>,
    pub(crate) deadline: u64,
    pub(crate) probe: Option<(NodeId, LogIndex, consensus::Term)>,
    pub(crate) passed_at: Option<u64>,
}

/// One simulated run.
pub struct Sim<E: SimEngine> {
    pub(crate) cfg: SimConfig,
    pub(crate) rng: Rng,
    pub(crate) now: u64,
    pub(crate) seq: u64,
    pub(crate) queue: BinaryHeap<Reverse<Scheduled<E::Message>>>,
    pub(crate) nodes: BTreeMap<NodeId, SimNode<E>>,
    pub(crate) blocked: BTreeSet<(NodeId, NodeId)>,
    pub(crate) faults_on: bool,
    pub(crate) draining: bool,
    pub(crate) clients: Vec<Client>,
    pub(crate) history: Recorder,
    pub(crate) obs: Observations,
    pub(crate) stats: Stats,
    pub(crate) hasher: DefaultHasher,
    pub(crate) trace: Vec<String>,
    pub(crate) liveness: Liveness,
    pub(crate) next_ctx: u64,
    /// The response computed for each applied command and when it was first applied,
    /// by slot (the same on every replica); settles writes whose replies were lost.
    pub(crate) outcomes: BTreeMap<LogIndex, (consensus::Term, Option<lincheck::kv::KvOutput>, u64)>,
}

impl<E: SimEngine> Sim<E> {
    /// Builds the world for `cfg`; nothing runs until [`Sim::run`].
    pub fn new(cfg: SimConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let voters: Vec<NodeId> = (1..=cfg.voters as u64).collect();
        let boot = E::bootstrap(&voters);
        let mut nodes = BTreeMap::new();
        for id in 1..=(cfg.voters + cfg.spares) as u64 {
            let disk = if id <= cfg.voters as u64 {
                Disk {
                    hard_state: boot.hard_state,
                    snapshot: boot.snapshot.clone(),
                    entries: boot.entries.clone(),
                }
            } else {
                Disk::default()
            };
            let skew = cfg.faults.skew_permille as i64;
            let permille = 1000 + rng.range(0, (2 * skew + 1) as u64) as i64 - skew;
            let tick_us = cfg.tick_us * permille as u64 / 1000;
            nodes.insert(id, SimNode::new(id, disk, tick_us));
        }
        let clients = (0..cfg.clients)
            .map(|i| Client::new(i as u64 + 1))
            .collect();
        let obs = Observations {
            founders: consensus::Membership::new(voters.iter().copied()),
            ..Default::default()
        };
        Sim {
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            blocked: BTreeSet::new(),
            faults_on: true,
            draining: false,
            clients,
            history: Recorder::default(),
            obs,
            stats: Stats::default(),
            hasher: DefaultHasher::new(),
            trace: Vec::new(),
            liveness: Liveness::default(),
            next_ctx: 0,
            outcomes: BTreeMap::new(),
            cfg,
        }
    }

    /// The running engine of node `id`; panics if it is down (callers check first).
    pub(crate) fn engine_mut(&mut self, id: NodeId) -> &mut E {
        self.nodes
            .get_mut(&id)
            .and_then(|n| n.engine.as_mut())
            .expect("node is up")
    }

    pub(crate) fn schedule(&mut self, delay_us: u64, event: Event<E::Message>) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at: self.now + delay_us,
            seq: self.seq,
            event,
        }));
    }

    pub(crate) fn note(&mut self, line: impl FnOnce() -> String) {
        if self.cfg.trace {
            let l = format!("[{:>10.3}ms] {}", self.now as f64 / 1000.0, line());
            self.trace.push(l);
        }
    }

    pub(crate) fn fail(&self, message: String) -> Failure {
        Failure {
            engine: E::NAME,
            seed: self.cfg.seed,
            message,
            summary: self.cfg.summary(),
            trace: self.trace.clone(),
        }
    }

    /// Runs to the end and checks everything; `Err` names the first property broken.
    pub fn run(mut self) -> Result<Report, Failure> {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.start_node(id);
        }
        for c in 0..self.clients.len() {
            let d = self.rng.range(0, 50_000);
            self.schedule(d, Event::ClientStep { client: c });
        }
        let d = self.rng.range(20_000, 200_000);
        self.schedule(d, Event::Nemesis);
        let phase = self.cfg.fault_phase_us;
        self.schedule(phase, Event::Heal);
        while let Some(Reverse(s)) = self.queue.pop() {
            self.now = s.at;
            self.stats.events += 1;
            if self.stats.events > EVENTS_MAX {
                return Err(self.fail(format!(
                    "runaway: more than {EVENTS_MAX} events by {}µs (a message storm or livelock)",
                    self.now
                )));
            }
            let end = matches!(s.event, Event::End);
            self.handle(s.event).map_err(|m| self.fail(m))?;
            self.check_invariants()
                .map_err(|v| self.fail(v.to_string()))?;
            if end {
                break;
            }
        }
        self.finish()
    }

    fn handle(&mut self, event: Event<E::Message>) -> Result<(), String> {
        match event {
            Event::Tick { node, inc } => {
                self.hasher.write_u64(self.now ^ node);
                let Some(n) = self.nodes.get_mut(&node) else {
                    return Ok(());
                };
                if n.incarnation != inc || n.engine.is_none() {
                    return Ok(());
                }
                n.engine.as_mut().expect("up").tick();
                let period = n.tick_us;
                self.schedule(period, Event::Tick { node, inc });
                self.drive(node)
            }
            Event::Deliver { from, to, msg } => {
                self.hasher
                    .write_u64(E::message_digest(&msg) ^ (from << 32) ^ to);
                if self.blocked.contains(&(from, to)) {
                    self.stats.dropped += 1;
                    return Ok(());
                }
                if !self.nodes.get(&to).is_some_and(|n| n.is_up()) {
                    return Ok(());
                }
                if self.cfg.trace {
                    let line = format!("{from}→{to} {msg:?}");
                    self.note(|| line);
                }
                let engine = self.engine_mut(to);
                engine
                    .step(from, msg)
                    .map_err(|e| format!("node {to} refused a message from {from}: {e}"))?;
                self.drive(to)
            }
            Event::IoDone { node, inc } => {
                let Some(n) = self.nodes.get_mut(&node) else {
                    return Ok(());
                };
                if n.incarnation != inc || !n.is_up() {
                    return Ok(());
                }
                if let Some(ready) = n.io.take() {
                    self.complete_io(node, ready)?;
                }
                self.drive(node)
            }
            Event::ClientStep { client } => self.client_step(client),
            Event::ClientTimeout { client, op } => {
                self.client_gave_up(client, op);
                Ok(())
            }
            Event::Nemesis => {
                if self.faults_on {
                    self.nemesis()?;
                    let d = self.rng.range(20_000, 300_000);
                    self.schedule(d, Event::Nemesis);
                }
                Ok(())
            }
            Event::Heal => self.heal(),
            Event::Probe => self.probe(),
            Event::CrashLeader { node, term } => {
                let leads = self.nodes[&node]
                    .engine
                    .as_ref()
                    .is_some_and(|e| e.term() == term && e.role() == consensus::Role::Leader);
                if leads && self.faults_on {
                    self.note(|| format!("nemesis: crash fresh leader {node} of {term}"));
                    self.crash_node(node);
                }
                Ok(())
            }
            Event::End => Ok(()),
        }
    }
}
