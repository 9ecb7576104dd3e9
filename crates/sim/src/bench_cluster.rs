//! A fault-free, synchronous cluster for measuring an engine's own cost: messages are
//! delivered in order at once, every `Ready` is "persisted" instantly. What remains is
//! the protocol's CPU work and its batching behaviour, which is what the criterion
//! benchmarks compare: with batching on and off, and Raft against Multi-Paxos under a
//! closed loop of clients ([`BenchCluster::closed_loop`]).

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use consensus::{LogIndex, NodeId, Payload, Role, Term};

use crate::harness::{EngineParams, SimEngine};

/// A cluster of `n` engines on a perfect network.
pub struct BenchCluster<E: SimEngine> {
    nodes: BTreeMap<NodeId, E>,
    queue: VecDeque<(NodeId, NodeId, E::Message)>,
    /// Messages delivered so far.
    pub messages: u64,
    /// Commands applied on the leader so far.
    pub applied: u64,
    /// Messages sent so far (delivered or still in flight).
    pub sent: u64,
    /// Readies that had to be made durable (`must_sync`), on every node: the fsyncs a
    /// real shell would do.
    pub syncs: u64,
    /// Set to count messages sent by kind in `kinds` (off by default: it costs a map
    /// update per message, which the timed benchmarks should not pay).
    pub count_kinds: bool,
    /// Messages sent by kind, while `count_kinds` is set.
    pub kinds: BTreeMap<&'static str, u64>,
    leader: NodeId,
    /// Closed loop: record the commands the leader applies in `leader_commits`.
    tracking: bool,
    leader_commits: Vec<(LogIndex, Term)>,
}

/// What [`BenchCluster::closed_loop`] measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Commands committed (applied on the leader).
    pub committed: u64,
    /// Messages sent during the loop.
    pub messages: u64,
    /// Readies made durable during the loop, summed over the nodes.
    pub syncs: u64,
    /// Network hops (rounds) the loop took.
    pub rounds: u64,
    /// Sum over committed commands of the hops from proposal to applied on the leader.
    pub latency_rounds: u64,
}

impl LoopStats {
    /// Messages sent per committed command.
    pub fn messages_per_command(&self) -> f64 {
        self.messages as f64 / self.committed as f64
    }

    /// Durable writes (on all nodes) per committed command.
    pub fn syncs_per_command(&self) -> f64 {
        self.syncs as f64 / self.committed as f64
    }

    /// Mean network hops from proposal to applied on the leader.
    pub fn mean_latency_rounds(&self) -> f64 {
        self.latency_rounds as f64 / self.committed as f64
    }

    /// Commands committed per network hop: throughput in simulated time.
    pub fn commands_per_round(&self) -> f64 {
        self.committed as f64 / self.rounds as f64
    }
}

impl<E: SimEngine> BenchCluster<E> {
    /// Boots `n` founding voters and elects node 1.
    pub fn new(n: u64, params: &EngineParams) -> Self {
        let voters: Vec<NodeId> = (1..=n).collect();
        let nodes = voters
            .iter()
            .map(|&id| (id, E::boot(id, id, params, E::bootstrap(&voters))))
            .collect();
        let mut c = BenchCluster {
            nodes,
            queue: VecDeque::new(),
            messages: 0,
            applied: 0,
            sent: 0,
            syncs: 0,
            count_kinds: false,
            kinds: BTreeMap::new(),
            leader: 1,
            tracking: false,
            leader_commits: Vec::new(),
        };
        for _ in 0..1000 {
            if c.nodes[&1].role() == Role::Leader {
                break;
            }
            c.nodes.get_mut(&1).expect("node 1").tick();
            c.run();
        }
        assert_eq!(
            c.nodes[&1].role(),
            Role::Leader,
            "node 1 must win an uncontested election"
        );
        c.applied = 0;
        c.messages = 0;
        c.sent = 0;
        c.syncs = 0;
        c
    }

    /// The leader's commit index.
    pub fn commit(&self) -> LogIndex {
        self.nodes[&self.leader].commit_index()
    }

    /// Proposes `count` commands of `size` bytes. With `ready_each`, the leader's ready
    /// is processed after every proposal (no batching); otherwise all proposals are
    /// made first and go out together.
    pub fn propose(&mut self, count: usize, size: usize, ready_each: bool) {
        let payload = Bytes::from(vec![b'x'; size]);
        for _ in 0..count {
            self.nodes
                .get_mut(&self.leader)
                .expect("leader")
                .propose(payload.clone())
                .expect("leader accepts");
            if ready_each {
                self.pump(self.leader);
            }
        }
    }

    /// Processes one node's ready: messages queued, writes "persisted", advanced.
    fn pump(&mut self, id: NodeId) -> bool {
        let node = self.nodes.get_mut(&id).expect("node");
        if !node.has_ready() {
            return false;
        }
        let ready = node.ready();
        if ready.must_sync {
            self.syncs += 1;
        }
        for out in ready.messages.into_iter().chain(ready.messages_after_sync) {
            self.sent += 1;
            if self.count_kinds {
                *self.kinds.entry(E::message_kind(&out.msg)).or_default() += 1;
            }
            self.queue.push_back((id, out.to, out.msg));
        }
        if id == self.leader {
            for e in &ready.committed_entries {
                if matches!(e.payload, Payload::Command(_)) {
                    self.applied += 1;
                    if self.tracking {
                        self.leader_commits.push((e.index, e.term));
                    }
                }
            }
        }
        node.advance(ready.number);
        true
    }

    /// Delivers one queued message; returns whether there was one.
    fn deliver_one(&mut self) -> bool {
        let Some((from, to, msg)) = self.queue.pop_front() else {
            return false;
        };
        self.messages += 1;
        self.nodes
            .get_mut(&to)
            .expect("node")
            .step(from, msg)
            .expect("well-formed");
        true
    }

    /// A closed loop of `clients`: each keeps one command of `size` bytes outstanding
    /// and submits the next as soon as the leader applies the previous one (as a client
    /// waiting for its reply would), until `commands` have committed.
    ///
    /// Time advances in rounds, one network hop each: every node handles its ready
    /// ("persisted" at once) — the leader's clients see their commands applied and
    /// submit new ones, which leave in the leader's next ready of the same round —
    /// then every message in flight is delivered. With no CPU or disk time modelled,
    /// a command commits in two hops (proposal out, acknowledgements back) at any load;
    /// what the load changes is how many commands share each message and each write.
    ///
    /// # Panics
    /// If the cluster stalls (nothing in flight before `commands` committed) or a
    /// command is applied at its index with another term (lost): neither may happen on
    /// a perfect network with a stable leader.
    pub fn closed_loop(&mut self, clients: usize, commands: u64, size: usize) -> LoopStats {
        let payload = Bytes::from(vec![b'x'; size]);
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let (sent0, syncs0) = (self.sent, self.syncs);
        self.tracking = true;
        self.leader_commits.clear();
        // Outstanding commands by index: (term, round proposed).
        let mut waiting: BTreeMap<LogIndex, (Term, u64)> = BTreeMap::new();
        let mut issued = 0;
        let mut stats = LoopStats::default();
        let mut round = 0;
        while issued < commands && (issued as usize) < clients {
            self.submit(&payload, round, &mut waiting);
            issued += 1;
        }
        while stats.committed < commands {
            loop {
                let mut busy = false;
                for &id in &ids {
                    while self.pump(id) {
                        busy = true;
                    }
                }
                for (index, term) in std::mem::take(&mut self.leader_commits) {
                    let Some((t, at)) = waiting.remove(&index) else {
                        continue;
                    };
                    assert_eq!(t, term, "command at {index} lost on a perfect network");
                    stats.committed += 1;
                    stats.latency_rounds += round - at;
                    if issued < commands {
                        self.submit(&payload, round, &mut waiting);
                        issued += 1;
                    }
                }
                if !busy {
                    break;
                }
            }
            if stats.committed >= commands {
                break;
            }
            let in_flight = self.queue.len();
            assert!(
                in_flight > 0,
                "stalled with {} commands outstanding",
                waiting.len()
            );
            for _ in 0..in_flight {
                self.deliver_one();
            }
            round += 1;
        }
        self.tracking = false;
        stats.rounds = round;
        stats.messages = self.sent - sent0;
        stats.syncs = self.syncs - syncs0;
        stats
    }

    fn submit(
        &mut self,
        payload: &Bytes,
        round: u64,
        waiting: &mut BTreeMap<LogIndex, (Term, u64)>,
    ) {
        let p = self
            .nodes
            .get_mut(&self.leader)
            .expect("leader")
            .propose(payload.clone())
            .expect("leader accepts");
        waiting.insert(p.index, (p.term, round));
    }

    /// Runs until no node has work and no message is in flight.
    pub fn run(&mut self) {
        loop {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            let mut busy = false;
            for id in ids {
                while self.pump(id) {
                    busy = true;
                }
            }
            if !self.deliver_one() && !busy {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_loop_commits_every_command<E: SimEngine>() {
        for clients in [1, 4, 64] {
            let mut c = BenchCluster::<E>::new(3, &EngineParams::default());
            let s = c.closed_loop(clients, 200, 16);
            assert_eq!(s.committed, 200, "{} with {clients} clients", E::NAME);
            // A perfect network: the proposal goes out and the acknowledgements come back.
            assert_eq!(s.mean_latency_rounds(), 2.0, "{}", E::NAME);
            // Every command is in one accept/append per follower, answered.
            assert!(s.messages >= 4 * 200 / clients as u64, "{}", E::NAME);
        }
    }

    #[test]
    fn raft_closed_loop_commits_every_command() {
        closed_loop_commits_every_command::<raft::Raft>();
    }

    #[test]
    fn paxos_closed_loop_commits_every_command() {
        closed_loop_commits_every_command::<paxos::Paxos>();
    }
}
