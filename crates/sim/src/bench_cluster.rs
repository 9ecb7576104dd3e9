//! A fault-free, synchronous cluster for measuring an engine's own cost: messages are
//! delivered in order at once, every `Ready` is "persisted" instantly. What remains is
//! the protocol's CPU work and its batching behaviour, which is what the criterion
//! benchmarks compare (with batching on and off, and, later, Raft against Paxos).

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use consensus::{LogIndex, NodeId, Role};

use crate::harness::{EngineParams, SimEngine};

/// A cluster of `n` engines on a perfect network.
pub struct BenchCluster<E: SimEngine> {
    nodes: BTreeMap<NodeId, E>,
    queue: VecDeque<(NodeId, NodeId, E::Message)>,
    /// Messages delivered so far.
    pub messages: u64,
    /// Commands applied on the leader so far.
    pub applied: u64,
    leader: NodeId,
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
            leader: 1,
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
        for out in ready.messages.into_iter().chain(ready.messages_after_sync) {
            self.queue.push_back((id, out.to, out.msg));
        }
        if id == self.leader {
            self.applied += ready
                .committed_entries
                .iter()
                .filter(|e| matches!(e.payload, consensus::Payload::Command(_)))
                .count() as u64;
        }
        node.advance(ready.number);
        true
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
            match self.queue.pop_front() {
                Some((from, to, msg)) => {
                    self.messages += 1;
                    self.nodes
                        .get_mut(&to)
                        .expect("node")
                        .step(from, msg)
                        .expect("well-formed");
                }
                None if !busy => return,
                None => {}
            }
        }
    }
}
