//! The recovery policy of the cluster manager ([`node::cluster::next_change`]) driving
//! real engines in a seeded, deterministic world: one shard's group of voters {1, 2, 3}
//! under a client load, messages lost, duplicated and reordered; node 3 crashes and the
//! map replaces it with node 4 (an empty replica). Every seed must converge to voters
//! {1, 2, 4} and, on every live replica, apply the same sequence of commands, with every
//! acknowledged command in it. Same seed, same run; each failure prints its seed.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use consensus::{NodeId, Payload, Recovered, Rng, Role};
use node::cluster::{next_change, Step};
use node::engine::ReplicaEngine;

struct Node<E> {
    engine: E,
    applied: Vec<Bytes>,
}

/// Deliberately broken worlds, to show the checks can fail.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Knob {
    None,
    /// The manager never gets a catch-up slot: the dead voter is never replaced.
    NoCatchUpBudget,
    /// Node 4 silently skips one committed command.
    SkipAnApply,
}

struct World<E: ReplicaEngine> {
    knob: Knob,
    nodes: BTreeMap<NodeId, Node<E>>,
    crashed: BTreeSet<NodeId>,
    net: Vec<(NodeId, NodeId, E::Message)>,
    rng: Rng,
    /// Commands the leader reported applied at the term it proposed them in.
    acked: Vec<Bytes>,
    proposed: BTreeMap<(NodeId, u64), (u64, Bytes)>,
    loss: f64,
}

impl<E: ReplicaEngine> World<E>
where
    E::Message: Clone,
{
    fn new(seed: u64, cfg: impl Fn(NodeId) -> E::Config) -> World<E> {
        let mut nodes = BTreeMap::new();
        for id in 1..=4 {
            let rec = if id <= 3 {
                E::bootstrap(&[1, 2, 3])
            } else {
                Recovered::default()
            };
            let engine = E::boot(cfg(id), rec).expect("boots");
            nodes.insert(
                id,
                Node {
                    engine,
                    applied: Vec::new(),
                },
            );
        }
        let mut rng = Rng::new(seed);
        let loss = [0.0, 0.02, 0.1][rng.range(0, 3) as usize];
        World {
            knob: Knob::None,
            nodes,
            crashed: BTreeSet::new(),
            net: Vec::new(),
            rng,
            acked: Vec::new(),
            proposed: BTreeMap::new(),
            loss,
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .find(|(id, n)| !self.crashed.contains(id) && n.engine.role() == Role::Leader)
            .map(|(id, _)| *id)
    }

    /// Processes every Ready of `id` (persistence is instant: nobody restarts here).
    fn drain(&mut self, id: NodeId) {
        loop {
            let n = self.nodes.get_mut(&id).expect("node");
            if !n.engine.has_ready() {
                return;
            }
            let mut ready = n.engine.ready();
            for out in ready
                .messages
                .drain(..)
                .chain(ready.messages_after_sync.drain(..))
            {
                self.net.push((id, out.to, out.msg));
            }
            for e in ready.committed_entries.drain(..) {
                if let Payload::Command(c) = &e.payload {
                    if self.knob == Knob::SkipAnApply && id == 4 && e.index.0 == 20 {
                        continue;
                    }
                    n.applied.push(c.clone());
                    if let Some((term, cmd)) = self.proposed.remove(&(id, e.index.0)) {
                        if term == e.term.0 && cmd == *c {
                            self.acked.push(cmd);
                        }
                    }
                }
            }
            n.engine.advance(ready.number);
        }
    }

    /// One step: deliver (or lose, or duplicate) a random message, sometimes tick.
    fn step(&mut self, tick: bool) {
        if tick {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                if !self.crashed.contains(&id) {
                    self.nodes.get_mut(&id).unwrap().engine.tick();
                    self.drain(id);
                }
            }
        }
        if self.net.is_empty() {
            return;
        }
        let i = self.rng.range(0, self.net.len() as u64) as usize;
        let (from, to, msg) = self.net.swap_remove(i);
        if self.crashed.contains(&to) || self.rng.chance(self.loss) {
            return;
        }
        if self.rng.chance(0.01) {
            self.net.push((from, to, msg.clone()));
        }
        let _ = self.nodes.get_mut(&to).unwrap().engine.step(from, msg);
        self.drain(to);
    }

    fn propose(&mut self, n: u64) {
        if let Some(l) = self.leader() {
            let cmd = Bytes::from(format!("c{n}"));
            if let Ok(p) = self.nodes.get_mut(&l).unwrap().engine.propose(cmd.clone()) {
                self.proposed.insert((l, p.index.0), (p.term.0, cmd));
            }
            self.drain(l);
        }
    }

    /// The manager's round at the current leader: one step toward `target`.
    fn manage(&mut self, target: &[NodeId]) {
        let Some(l) = self.leader() else { return };
        let status = self.nodes[&l].engine.status();
        let (mut budget, max) = match self.knob {
            Knob::NoCatchUpBudget => (0, 0),
            _ => (0, 2),
        };
        match next_change(l, target, &status, &mut budget, max) {
            Some(Step::Change(c)) => {
                let _ = self.nodes.get_mut(&l).unwrap().engine.change_config(c);
            }
            Some(Step::Transfer(to)) => {
                let _ = self
                    .nodes
                    .get_mut(&l)
                    .unwrap()
                    .engine
                    .transfer_leadership(to);
            }
            None => {}
        }
        self.drain(l);
    }
}

fn run<E: ReplicaEngine>(
    seed: u64,
    knob: Knob,
    cfg: impl Fn(NodeId) -> E::Config,
) -> Result<(), String>
where
    E::Message: Clone,
{
    let mut w = World::<E>::new(seed, cfg);
    w.knob = knob;
    let target = [1, 2, 4];
    let crash_at = 2_000 + w.rng.range(0, 3_000);
    let mut n = 0;
    for step in 0..200_000u64 {
        w.step(step % 20 == 0);
        if step % 37 == 0 && step < 60_000 {
            n += 1;
            w.propose(n);
        }
        if step == crash_at {
            // The map's decision: 3 is dead, 4 replaces it.
            w.crashed.insert(3);
            w.net.retain(|(f, t, _)| *f != 3 && *t != 3);
        }
        if step > crash_at && step % 500 == 0 {
            w.manage(&target);
        }
        if step > 60_000 && step % 1_000 == 0 {
            let Some(l) = w.leader() else { continue };
            let s = w.nodes[&l].engine.status();
            let settled = s.membership.voters == target.iter().copied().collect()
                && !s.membership.is_joint()
                && s.membership.learners.is_empty();
            let caught_up = [1, 2, 4]
                .iter()
                .all(|id| w.nodes[id].applied.len() == w.nodes[&l].applied.len());
            if settled && caught_up && w.net.is_empty() {
                break;
            }
        }
    }
    let l = w.leader().ok_or("no leader at the end")?;
    let s = w.nodes[&l].engine.status();
    if s.membership.voters != target.iter().copied().collect() || s.membership.is_joint() {
        return Err(format!(
            "did not converge: voters {:?} outgoing {:?} learners {:?}",
            s.membership.voters, s.membership.voters_outgoing, s.membership.learners
        ));
    }
    let reference = &w.nodes[&l].applied;
    for id in [1, 2, 4] {
        let a = &w.nodes[&id].applied;
        if a != reference {
            return Err(format!(
                "node {id} applied {} commands, the leader {}; or in another order",
                a.len(),
                reference.len()
            ));
        }
    }
    let applied: BTreeSet<&Bytes> = reference.iter().collect();
    if let Some(lost) = w.acked.iter().find(|c| !applied.contains(c)) {
        return Err(format!("acknowledged command {lost:?} lost"));
    }
    if w.acked.len() < 100 {
        return Err(format!("only {} commands acknowledged", w.acked.len()));
    }
    Ok(())
}

fn campaign<E: ReplicaEngine>(
    name: &str,
    seeds: std::ops::Range<u64>,
    cfg: impl Fn(NodeId, u64) -> E::Config,
) where
    E::Message: Clone,
{
    for seed in seeds {
        if let Err(e) = run::<E>(seed, Knob::None, |id| cfg(id, seed)) {
            panic!("{name} seed {seed}: {e}");
        }
    }
}

#[test]
fn raft_replaces_a_crashed_voter_under_faults_on_every_seed() {
    campaign::<raft::Raft>("raft", 0..300, |id, seed| {
        let mut c = raft::Config::new(id);
        c.seed = seed * 31 + id;
        c
    });
}

#[test]
fn paxos_replaces_a_crashed_voter_under_faults_on_every_seed() {
    campaign::<paxos::Paxos>("paxos", 0..300, |id, seed| {
        let mut c = paxos::Config::new(id);
        c.seed = seed * 31 + id;
        c
    });
}

fn raft_config(id: NodeId) -> raft::Config {
    raft::Config::new(id)
}

#[test]
fn the_checks_catch_a_dead_voter_that_is_never_replaced() {
    let e = run::<raft::Raft>(7, Knob::NoCatchUpBudget, raft_config).unwrap_err();
    assert!(e.contains("did not converge"), "{e}");
}

#[test]
fn the_checks_catch_a_replica_that_skips_a_command() {
    let e = run::<raft::Raft>(7, Knob::SkipAnApply, raft_config).unwrap_err();
    assert!(e.contains("node 4 applied"), "{e}");
}
