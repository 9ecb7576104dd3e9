//! The nemesis (fault phase), the heal, the liveness probe and the final checks.

use std::collections::BTreeSet;

use bytes::Bytes;
use consensus::{ConfigChange, Entry, LogIndex, MemberChange, NodeId, Payload, Role};
use kv::Command;
use lincheck::kv::KvModel;
use lincheck::{Checker, Verdict};

use crate::harness::SimEngine;
use crate::world::{Event, Failure, Report, Sim, DRAIN_US, PROBE_KEY};

impl<E: SimEngine> Sim<E> {
    fn up_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_up())
            .map(|(&id, _)| id)
            .collect()
    }

    fn leader_node(&self) -> Option<NodeId> {
        // The leader of the highest term, if several believe they lead.
        self.nodes
            .iter()
            .filter_map(|(&id, n)| n.engine.as_ref().map(|e| (id, e)))
            .filter(|(_, e)| e.role() == Role::Leader)
            .max_by_key(|(_, e)| e.term())
            .map(|(id, _)| id)
    }

    /// One random fault among those this seed enables.
    pub(crate) fn nemesis(&mut self) -> Result<(), String> {
        let f = self.cfg.faults.clone();
        let mut kinds = Vec::new();
        if f.partitions {
            kinds.extend(["partition", "partition", "heal-network"]);
        }
        if f.crashes {
            kinds.extend(["crash", "crash-leader", "restart", "restart"]);
        }
        if f.membership {
            kinds.push("membership");
        }
        if f.transfers {
            kinds.push("transfer");
        }
        let Some(&kind) = self.rng.pick(&kinds) else {
            return Ok(());
        };
        match kind {
            "partition" => self.partition(),
            "heal-network" => {
                self.blocked.clear();
                self.note(|| "network healed".into());
            }
            "crash" => {
                // Half the time, crash a node with a write in flight: the moment when
                // forgetting a durability rule does damage.
                let writing: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.is_up() && n.io.is_some())
                    .map(|(&id, _)| id)
                    .collect();
                let up = self.up_nodes();
                let pool = if !writing.is_empty() && self.rng.chance(0.5) {
                    writing
                } else {
                    up
                };
                if let Some(&id) = self.rng.pick(&pool) {
                    self.crash_node(id);
                }
            }
            "restart" => {
                let down: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| !n.is_up() && !n.retired)
                    .map(|(&id, _)| id)
                    .collect();
                if let Some(&id) = self.rng.pick(&down) {
                    self.stats.restarts += 1;
                    self.start_node(id);
                    self.drive(id)?;
                }
            }
            "crash-leader" => {
                if let Some(id) = self.leader_node() {
                    self.crash_node(id);
                }
            }
            "membership" => self.change_membership()?,
            _ => self.transfer()?,
        }
        Ok(())
    }

    /// Replaces the partition with a new one of a random shape.
    fn partition(&mut self) {
        let all: Vec<NodeId> = self.nodes.keys().copied().collect();
        let mut blocked = BTreeSet::new();
        let mut cut = |a: &[NodeId], b: &[NodeId], both: bool| {
            for &x in a {
                for &y in b {
                    if x != y {
                        blocked.insert((x, y));
                        if both {
                            blocked.insert((y, x));
                        }
                    }
                }
            }
        };
        let shape = self.rng.range(0, 5);
        let victim = match (shape, self.leader_node()) {
            (4, Some(l)) => l,
            _ => *self.rng.pick(&all).expect("nodes exist"),
        };
        let others: Vec<NodeId> = all.iter().copied().filter(|&x| x != victim).collect();
        let name = match shape {
            // One node (or the leader) alone.
            0 | 4 => {
                cut(&[victim], &others, true);
                "isolate"
            }
            // Two random sides, e.g. majority / minority.
            1 => {
                let side: Vec<NodeId> = all
                    .iter()
                    .copied()
                    .filter(|_| self.rng.chance(0.5))
                    .collect();
                let rest: Vec<NodeId> = all.iter().copied().filter(|x| !side.contains(x)).collect();
                cut(&side, &rest, true);
                "split"
            }
            // One-way: the victim can hear but not be heard (or the reverse).
            2 => {
                if self.rng.chance(0.5) {
                    cut(&[victim], &others, false);
                } else {
                    cut(&others, &[victim], false);
                }
                "one-way"
            }
            // A bridge: two sides that only the victim connects.
            _ => {
                let side: Vec<NodeId> = others
                    .iter()
                    .copied()
                    .filter(|_| self.rng.chance(0.5))
                    .collect();
                let rest: Vec<NodeId> = others
                    .iter()
                    .copied()
                    .filter(|x| !side.contains(x))
                    .collect();
                cut(&side, &rest, true);
                "bridge"
            }
        };
        self.blocked = blocked;
        self.stats.partitions += 1;
        let desc = format!("partition {name} around {victim}: {:?}", self.blocked);
        self.note(|| desc);
    }

    fn change_membership(&mut self) -> Result<(), String> {
        let Some(leader) = self.leader_node() else {
            return Ok(());
        };
        let m = self.nodes[&leader]
            .engine
            .as_ref()
            .expect("up")
            .membership()
            .clone();
        let outsiders: Vec<NodeId> = self
            .nodes
            .keys()
            .copied()
            .filter(|id| !m.contains(*id))
            .collect();
        let learners: Vec<NodeId> = m.learners.iter().copied().collect();
        let voters: Vec<NodeId> = m.voters.iter().copied().collect();
        let mut options: Vec<Vec<MemberChange>> = Vec::new();
        if let Some(&o) = self.rng.pick(&outsiders) {
            options.push(vec![MemberChange::AddLearner(o)]);
        }
        if let Some(&l) = self.rng.pick(&learners) {
            options.push(vec![MemberChange::AddVoter(l)]);
            if let Some(&v) = self.rng.pick(&voters) {
                options.push(vec![MemberChange::AddVoter(l), MemberChange::Remove(v)]);
            }
        }
        if voters.len() > 3 {
            if let Some(&v) = self.rng.pick(&voters) {
                options.push(vec![MemberChange::Remove(v)]);
            }
        }
        let Some(changes) = self.rng.pick(&options).cloned() else {
            return Ok(());
        };
        let engine = self.engine_mut(leader);
        if engine
            .change_config(ConfigChange::Apply(changes.clone()))
            .is_ok()
        {
            self.stats.config_changes += 1;
            self.note(|| format!("leader {leader} proposes {changes:?}"));
        }
        self.drive(leader)
    }

    fn transfer(&mut self) -> Result<(), String> {
        let Some(leader) = self.leader_node() else {
            return Ok(());
        };
        let voters: Vec<NodeId> = self.nodes[&leader]
            .engine
            .as_ref()
            .expect("up")
            .membership()
            .voters
            .iter()
            .copied()
            .filter(|&v| v != leader)
            .collect();
        let Some(&to) = self.rng.pick(&voters) else {
            return Ok(());
        };
        let engine = self.engine_mut(leader);
        if engine.transfer_leadership(to).is_ok() {
            self.stats.transfers += 1;
            self.note(|| format!("leader {leader} transfers to {to}"));
        }
        self.drive(leader)
    }

    /// Ends the fault phase: the network becomes reliable, nodes removed from the
    /// group are retired, every other node runs; then the liveness clock starts.
    pub(crate) fn heal(&mut self) -> Result<(), String> {
        self.faults_on = false;
        self.blocked.clear();
        // Restart everyone first, so that the latest committed membership — the one of
        // the node with the highest commit index, since membership is a function of
        // the committed prefix — is known; then retire nodes removed from the group.
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for &id in &ids {
            if !self.nodes[&id].is_up() && !self.nodes[&id].retired {
                self.stats.restarts += 1;
                self.start_node(id);
            }
        }
        let members = self
            .nodes
            .values()
            .filter_map(|n| n.engine.as_ref())
            .max_by_key(|e| e.commit_index())
            .map(|e| e.membership().members())
            .unwrap_or_default();
        for &id in &ids {
            if !members.contains(&id) {
                self.crash_node(id);
                self.nodes.get_mut(&id).expect("exists").retired = true;
            }
        }
        for &id in &ids {
            self.drive(id)?;
        }
        let e = &self.cfg.engine;
        let slowest_tick = self
            .nodes
            .values()
            .map(|n| n.tick_us)
            .max()
            .unwrap_or(self.cfg.tick_us);
        let bound = self.cfg.liveness_timeouts * e.election_ticks as u64 * slowest_tick;
        self.liveness.healed_at = Some(self.now);
        self.liveness.deadline = self.now + bound;
        self.note(|| format!("HEAL: liveness deadline in {bound}µs"));
        self.schedule(0, Event::Probe);
        Ok(())
    }

    /// Liveness: keep offering one probe command to the current leader until one commits.
    pub(crate) fn probe(&mut self) -> Result<(), String> {
        if self.liveness.passed_at.is_some() {
            return Ok(());
        }
        if self.now > self.liveness.deadline {
            let elapsed = self.now - self.liveness.healed_at.unwrap_or(0);
            return Err(format!(
                "liveness: no command committed within {elapsed}µs after healing"
            ));
        }
        let live_probe = self.liveness.probe.is_some_and(|(id, _, term)| {
            self.nodes[&id]
                .engine
                .as_ref()
                .is_some_and(|e| e.term() == term && e.role() == Role::Leader)
        });
        if !live_probe {
            if let Some(leader) = self.leader_node() {
                let cmd = Command::Put {
                    key: Bytes::from_static(PROBE_KEY.as_bytes()),
                    value: Bytes::from(self.now.to_string()),
                };
                let engine = self.engine_mut(leader);
                if let Ok(p) = engine.propose(cmd.encode()) {
                    self.liveness.probe = Some((leader, p.index, p.term));
                    self.drive(leader)?;
                }
            }
        }
        self.schedule(5_000, Event::Probe);
        Ok(())
    }

    /// Called for every applied entry: did the probe commit?
    pub(crate) fn check_probe_applied(&mut self, id: NodeId, e: &Entry) {
        let Some((pid, index, term)) = self.liveness.probe else {
            return;
        };
        if self.liveness.passed_at.is_none() && pid == id && e.index == index && e.term == term {
            debug_assert!(matches!(e.payload, Payload::Command(_)));
            self.liveness.passed_at = Some(self.now);
            self.draining = true;
            self.note(|| "liveness probe committed; draining".into());
            self.schedule(DRAIN_US, Event::End);
        }
    }

    /// Final checks: liveness held, replicas converged, the history is linearizable.
    pub(crate) fn finish(mut self) -> Result<Report, Failure> {
        let Some(passed) = self.liveness.passed_at else {
            return Err(self.fail("liveness: the run ended before a command committed".into()));
        };
        // Every running member must have applied the same prefix and hold the same data.
        // Membership by the node furthest ahead: a removed node may never learn it was.
        let members = self
            .nodes
            .values()
            .filter_map(|n| n.engine.as_ref())
            .max_by_key(|e| e.commit_index())
            .map(|e| e.membership().members())
            .unwrap_or_default();
        let running: Vec<(NodeId, LogIndex, &kv::KvStore)> = self
            .nodes
            .iter()
            .filter(|(id, n)| !n.retired && n.is_up() && members.contains(id))
            .map(|(&id, n)| (id, n.applied, &n.kv))
            .collect();
        if let Some(&(first, applied, kv)) = running.first() {
            for &(id, a, k) in &running[1..] {
                if a != applied || k != kv {
                    return Err(self.fail(format!(
                        "replicas did not converge: node {first} applied {applied}, node {id} applied {a}{}",
                        if a == applied { " with different data" } else { "" }
                    )));
                }
            }
        }
        let outcomes = &self.outcomes;
        self.history.settle_with(|i| outcomes.get(&i).cloned());
        let ops = self.history.operations();
        let verdict = Checker::new().check(&KvModel, &ops);
        let lincheck_unknown = match verdict {
            Verdict::Linearizable => false,
            Verdict::Unknown { .. } => true,
            Verdict::NotLinearizable(v) => {
                return Err(self.fail(format!("history not linearizable:\n{}", v.explanation)));
            }
        };
        Ok(Report {
            seed: self.cfg.seed,
            trace_hash: std::hash::Hasher::finish(&self.hasher),
            stats: self.stats.clone(),
            ops_checked: ops.len(),
            lincheck_unknown,
            recovery_us: passed - self.liveness.healed_at.unwrap_or(0),
            trace: self.trace.clone(),
        })
    }
}
