//! The simulated node runtime: starting and crashing nodes, carrying out each `Ready`
//! in the documented order (send, persist, fsync, send-after-sync, apply, advance), the
//! network, and the per-step invariant checks.

use consensus::{LogIndex, NodeId, Payload, Ready};

use crate::harness::SimEngine;
use crate::invariants::{applied_within_commit, election_safety, state_machine_safety, Violation};
use crate::node::Waiter;
use crate::world::{Event, Sim};

impl<E: SimEngine> Sim<E> {
    /// Boots a node from its disk (a fresh start or a restart).
    pub(crate) fn start_node(&mut self, id: NodeId) {
        let seed = self.rng.next_u64();
        let params = self.cfg.engine.clone();
        let n = self.nodes.get_mut(&id).expect("node exists");
        let engine = E::boot(id, seed, &params, n.disk.recover());
        n.engine = Some(engine);
        n.restore_state_machine();
        let (inc, period) = (n.incarnation, n.tick_us);
        state_machine_safety::forget_node(&mut self.obs, id);
        let phase = self.rng.range(0, period);
        self.schedule(phase, Event::Tick { node: id, inc });
        self.note(|| format!("node {id} started"));
    }

    /// Kills a node: its engine and everything not yet synced are gone, except a
    /// random prefix of an in-flight write (a torn write). Its clients learn nothing.
    pub(crate) fn crash_node(&mut self, id: NodeId) {
        let mut torn = false;
        let waiters = {
            let n = self.nodes.get_mut(&id).expect("node exists");
            if n.engine.take().is_none() {
                return;
            }
            n.incarnation += 1;
            if let Some(ready) = n.io.take() {
                // The unit a crash cannot split: each entry, or (for engines that need
                // it, as hakv's log engine provides) a ready's entries as one record.
                let entry_units = match (E::ATOMIC_ENTRIES, ready.entries.is_empty()) {
                    (_, true) => 0,
                    (true, false) => 1,
                    (false, false) => ready.entries.len() as u64,
                };
                let steps = ready.snapshot.is_some() as u64
                    + entry_units
                    + ready.hard_state.is_some() as u64;
                let mut budget = self.rng.range(0, steps + 1);
                torn = budget > 0;
                if let Some(s) = ready.snapshot {
                    if budget > 0 {
                        n.disk.install(s);
                        budget -= 1;
                    } else {
                        budget = 0;
                    }
                }
                if E::ATOMIC_ENTRIES && budget > 0 && !ready.entries.is_empty() {
                    n.disk.append(&ready.entries);
                    budget -= 1;
                }
                for e in ready.entries.iter().filter(|_| !E::ATOMIC_ENTRIES) {
                    if budget == 0 {
                        break;
                    }
                    n.disk.append(std::slice::from_ref(e));
                    budget -= 1;
                }
                if let (Some(hs), true) = (ready.hard_state, budget > 0) {
                    n.disk.hard_state = hs;
                }
            }
            n.drain_waiters()
        };
        self.stats.crashes += 1;
        self.stats.torn_writes += torn as u64;
        self.note(|| format!("node {id} CRASHED (torn write: {torn})"));
        for w in waiters {
            self.waiter_lost(w);
        }
    }

    /// Hands the engine's pending work to the "disk" and the "network" until it has
    /// none, or a write is in flight.
    pub(crate) fn drive(&mut self, id: NodeId) -> Result<(), String> {
        loop {
            let n = self.nodes.get_mut(&id).expect("node exists");
            if n.io.is_some() {
                return Ok(());
            }
            let Some(engine) = n.engine.as_mut() else {
                return Ok(());
            };
            if !engine.has_ready() {
                return Ok(());
            }
            let mut ready = engine.ready();
            E::check_persist(&mut self.obs, id, engine, &ready.entries)
                .map_err(|v| v.to_string())?;
            for out in std::mem::take(&mut ready.messages) {
                self.send(id, out.to, out.msg);
            }
            let writes =
                ready.snapshot.is_some() || !ready.entries.is_empty() || ready.hard_state.is_some();
            if writes {
                let mut latency = self.rng.range(50, 1_500);
                if self.faults_on && self.cfg.faults.slow_disk && self.rng.chance(0.02) {
                    latency += self.rng.range(10_000, 60_000);
                    self.stats.slow_fsyncs += 1;
                }
                let n = self.nodes.get_mut(&id).expect("node exists");
                let inc = n.incarnation;
                n.io = Some(ready);
                self.schedule(latency, Event::IoDone { node: id, inc });
                return Ok(());
            }
            self.complete_io(id, ready)?;
        }
    }

    /// The writes of `ready` are durable: record them, release the messages that
    /// waited for them, apply, and advance.
    pub(crate) fn complete_io(
        &mut self,
        id: NodeId,
        mut ready: Ready<E::Message>,
    ) -> Result<(), String> {
        let n = self.nodes.get_mut(&id).expect("node exists");
        if let Some(s) = ready.snapshot.take() {
            let index = s.meta.index;
            n.kv = kv::KvStore::restore(s.data.clone())
                .map_err(|e| format!("node {id}: snapshot at {index} does not decode: {e}"))?;
            n.applied = index;
            n.disk.install(s);
            self.stats.snapshots_installed += 1;
            // Proposals the snapshot covers: whether they won is unknown here.
            let covered: Vec<LogIndex> = n.proposals.range(..=index).map(|(&i, _)| i).collect();
            let mut lost = Vec::new();
            for i in covered {
                if let Some((_, w)) = n.proposals.remove(&i) {
                    lost.push(w);
                }
            }
            for w in lost {
                self.waiter_lost(w);
            }
            self.note(|| format!("node {id} installed snapshot at {index}"));
        }
        let n = self.nodes.get_mut(&id).expect("node exists");
        n.disk.append(&ready.entries);
        if let Some(hs) = ready.hard_state {
            n.disk.hard_state = hs;
        }
        let engine = n.engine.as_ref().expect("up");
        E::check_durable(&mut self.obs, id, engine, &ready.entries).map_err(|v| v.to_string())?;
        for out in std::mem::take(&mut ready.messages_after_sync) {
            self.send(id, out.to, out.msg);
        }
        for e in std::mem::take(&mut ready.committed_entries) {
            state_machine_safety::check_apply(&mut self.obs, id, &e).map_err(|v| v.to_string())?;
            let n = self.nodes.get_mut(&id).expect("node exists");
            if e.index != n.applied.next() {
                return Err(format!(
                    "node {id} was handed entry {} to apply after {}",
                    e.index, n.applied
                ));
            }
            n.applied = e.index;
            let response = match &e.payload {
                Payload::Command(cmd) => Some(n.kv.apply(cmd.clone())),
                Payload::Noop | Payload::Config(_) => None,
            };
            if let Some(r) = &response {
                let now = self.now;
                self.outcomes
                    .entry(e.index)
                    .or_insert_with(|| (e.term, crate::client::to_output(r), now));
            }
            let n = self.nodes.get_mut(&id).expect("node exists");
            if let Some((term, w)) = n.proposals.remove(&e.index) {
                if term == e.term {
                    let out = response.as_ref().and_then(to_output_checked);
                    self.complete_waiter(w, out);
                } else {
                    // Another entry holds our slot: ours can never commit.
                    self.discard_waiter(w);
                }
            }
            self.check_probe_applied(id, &e);
        }
        let n = self.nodes.get_mut(&id).expect("node exists");
        for rs in std::mem::take(&mut ready.read_states) {
            if let Some((w, key)) = n.reads.remove(&rs.ctx) {
                n.confirmed_reads.push((rs.index, w, key));
            }
        }
        let applied = n.applied;
        let (serve, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut n.confirmed_reads)
            .into_iter()
            .partition(|(i, _, _)| *i <= applied);
        n.confirmed_reads = wait;
        let values: Vec<(Waiter, Option<bytes::Bytes>)> = serve
            .into_iter()
            .map(|(_, w, key)| {
                let v = n.kv.get(&key).cloned();
                (w, v)
            })
            .collect();
        for (w, v) in values {
            self.complete_waiter(
                w,
                Some(lincheck::kv::KvOutput::Value(v.map(|b| b.to_vec()))),
            );
        }
        let n = self.nodes.get_mut(&id).expect("node exists");
        let engine = n.engine.as_mut().expect("up");
        engine.advance(ready.number);
        // Take a snapshot every `compact_every` applied entries.
        if n.applied - engine.snapshot_index() >= self.cfg.compact_every {
            let data = n.kv.snapshot();
            if engine.compact(n.applied, data).is_ok() {
                let snap = engine.latest_snapshot().expect("just taken").clone();
                n.disk.compact(snap);
                self.stats.snapshots_taken += 1;
            }
        }
        Ok(())
    }

    /// Puts a message on the (faulty) network, after the engine's checks have seen it
    /// leave (a violation is reported at the end of the event).
    pub(crate) fn send(&mut self, from: NodeId, to: NodeId, msg: E::Message) {
        if self.obs.pending.is_none() {
            let disk = &self.nodes[&from].disk;
            if let Err(v) = E::check_sent(&mut self.obs, from, &msg, disk) {
                self.obs.pending = Some(v);
            }
        }
        self.stats.messages += 1;
        let faults = self.faults_on;
        if self.blocked.contains(&(from, to)) || (faults && self.rng.chance(self.cfg.faults.loss)) {
            self.stats.dropped += 1;
            return;
        }
        let mut delay = self.rng.range(50, 500);
        if faults && self.rng.chance(self.cfg.faults.long_delay) {
            delay += self.rng.range(1_000, 50_000);
            self.stats.delayed += 1;
        }
        if faults && self.rng.chance(self.cfg.faults.duplicate) {
            let extra = self.rng.range(0, 5_000);
            self.stats.duplicated += 1;
            self.schedule(
                delay + extra,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
        self.schedule(delay, Event::Deliver { from, to, msg });
    }

    /// Every safety invariant, on every running node, after every event.
    pub(crate) fn check_invariants(&mut self) -> Result<(), Violation> {
        if let Some(v) = self.obs.pending.take() {
            return Err(v);
        }
        let mut new_leaders = Vec::new();
        for (&id, n) in &self.nodes {
            let Some(engine) = n.engine.as_ref() else {
                continue;
            };
            let before = self.obs.leaders.len();
            election_safety::check(&mut self.obs, id, engine)?;
            if self.obs.leaders.len() > before {
                self.stats.leaders += 1;
                new_leaders.push((id, engine.term()));
            }
            state_machine_safety::check_commit(&mut self.obs, id, engine)?;
            E::check_node(&mut self.obs, id, engine)?;
            applied_within_commit::check(id, n.applied, engine.commit_index())?;
        }
        // The fresh-leader nemesis: a leader killed within milliseconds of winning
        // leaves partly replicated suffixes from many terms behind — the ground on
        // which commitment bugs (Raft Figure 8) grow.
        for (node, term) in new_leaders {
            if self.faults_on && self.cfg.faults.crashes && self.rng.chance(0.25) {
                let delay = self.rng.range(0, 3_000);
                self.schedule(delay, Event::CrashLeader { node, term });
            }
        }
        Ok(())
    }
}

/// A response the model understands; `Invalid` means the command did not decode,
/// which cannot happen for commands the simulator encoded.
fn to_output_checked(r: &kv::Response) -> Option<lincheck::kv::KvOutput> {
    crate::client::to_output(r)
}
