//! A small synchronous network for protocol tests: messages are queued and delivered
//! in order unless a link is cut, and every `Ready` is persisted and advanced at once.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use consensus::{Engine, Entry, LogIndex, NodeId, Ready, Recovered, Role, Term};
use raft::{Body, Config, Message, Raft};

/// A test configuration: 10-tick elections, 1-tick heartbeats.
pub fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.election_ticks = 10;
    c.heartbeat_ticks = 1;
    c.seed = id * 7919;
    c
}

/// A founding member of a group of `voters`.
pub fn node(id: NodeId, voters: &[NodeId]) -> Raft {
    Raft::new(config(id), Raft::bootstrap(voters)).expect("valid config")
}

/// Drains a node's ready as a perfect shell would (persist, send, apply, advance) and
/// returns it for inspection.
pub fn take_ready(r: &mut Raft) -> Ready<Message> {
    let ready = r.ready();
    r.advance(ready.number);
    ready
}

/// Messages of a ready, in send order (immediate ones first).
pub fn all_messages(ready: &Ready<Message>) -> Vec<(NodeId, Message)> {
    ready
        .messages
        .iter()
        .chain(ready.messages_after_sync.iter())
        .map(|o| (o.to, o.msg.clone()))
        .collect()
}

/// A set of nodes joined by a lossless in-order network that can be cut.
pub struct Net {
    pub nodes: BTreeMap<NodeId, Raft>,
    pub queue: VecDeque<(NodeId, NodeId, Message)>,
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Entries each node has applied, in order.
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    pub read_states: BTreeMap<NodeId, Vec<consensus::ReadState>>,
    pub delivered: Vec<(NodeId, NodeId, &'static str)>,
}

impl Net {
    /// `voters` founding members, plus `others` started empty (to be added later).
    pub fn new(voters: &[NodeId], others: &[NodeId]) -> Net {
        let mut nodes = BTreeMap::new();
        for &id in voters {
            nodes.insert(id, node(id, voters));
        }
        for &id in others {
            nodes.insert(
                id,
                Raft::new(config(id), Recovered::default()).expect("valid"),
            );
        }
        Net {
            nodes,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            applied: BTreeMap::new(),
            read_states: BTreeMap::new(),
            delivered: Vec::new(),
        }
    }

    pub fn with_config(voters: &[NodeId], f: impl Fn(&mut Config)) -> Net {
        let mut net = Net::new(&[], &[]);
        for &id in voters {
            let mut c = config(id);
            f(&mut c);
            net.nodes
                .insert(id, Raft::new(c, Raft::bootstrap(voters)).expect("valid"));
        }
        net
    }

    pub fn get(&self, id: NodeId) -> &Raft {
        &self.nodes[&id]
    }

    pub fn get_mut(&mut self, id: NodeId) -> &mut Raft {
        self.nodes.get_mut(&id).expect("node exists")
    }

    /// Cuts every link between `id` and the others, both ways.
    pub fn isolate(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for other in ids {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Processes every node's ready (persist, send, apply, advance).
    fn flush_readies(&mut self) -> bool {
        let mut any = false;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            while self.nodes[&id].has_ready() {
                any = true;
                let ready = take_ready(self.get_mut(id));
                for (to, msg) in all_messages(&ready) {
                    self.queue.push_back((id, to, msg));
                }
                self.applied
                    .entry(id)
                    .or_default()
                    .extend(ready.committed_entries);
                self.read_states
                    .entry(id)
                    .or_default()
                    .extend(ready.read_states);
            }
        }
        any
    }

    /// One synchronous round: flush every ready, then deliver exactly the messages
    /// queued at that moment (replies wait for the next round). For scripted
    /// schedules that must stop between two steps of the protocol.
    pub fn round(&mut self) {
        self.flush_readies();
        let batch: Vec<_> = self.queue.drain(..).collect();
        for (from, to, msg) in batch {
            self.deliver(from, to, msg);
        }
        self.flush_readies();
    }

    /// Delivers one message unless its link is cut or its recipient is gone.
    fn deliver(&mut self, from: NodeId, to: NodeId, msg: Message) {
        if self.cut.contains(&(from, to)) || !self.nodes.contains_key(&to) {
            return;
        }
        self.delivered.push((from, to, msg.body.kind()));
        self.get_mut(to)
            .step(from, msg)
            .expect("well-formed message");
    }

    /// Cuts the links between `a` and `b`, both ways.
    pub fn cut_between(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Delivers messages until the network is quiet.
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            let progressed = self.flush_readies();
            let Some((from, to, msg)) = self.queue.pop_front() else {
                if !progressed {
                    return;
                }
                continue;
            };
            self.deliver(from, to, msg);
        }
        panic!("network did not settle");
    }

    /// Ticks every node `n` times, settling after each tick.
    pub fn tick(&mut self, n: usize) {
        for _ in 0..n {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.get_mut(id).tick();
            }
            self.settle();
        }
    }

    /// Ticks only `id` until it has campaigned and the network settled.
    pub fn campaign(&mut self, id: NodeId) {
        for _ in 0..40 {
            self.get_mut(id).tick();
            self.settle();
            if self.get(id).role() == Role::Leader {
                return;
            }
        }
    }

    /// Elects `id` (ticking only it) and asserts it won.
    pub fn elect(&mut self, id: NodeId) {
        self.campaign(id);
        assert_eq!(self.get(id).role(), Role::Leader, "node {id} did not win");
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, r)| r.role() == Role::Leader)
            .max_by_key(|(_, r)| r.term())
            .map(|(&id, _)| id)
    }

    pub fn propose(&mut self, id: NodeId, data: &str) -> consensus::Proposed {
        let p = self
            .get_mut(id)
            .propose(Bytes::copy_from_slice(data.as_bytes()))
            .expect("leader accepts");
        self.settle();
        p
    }

    /// The commands (not no-ops or configs) a node applied, as strings.
    pub fn applied_commands(&self, id: NodeId) -> Vec<String> {
        self.applied
            .get(&id)
            .into_iter()
            .flatten()
            .filter_map(|e| match &e.payload {
                consensus::Payload::Command(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect()
    }

    pub fn count_delivered(&self, kind: &str) -> usize {
        self.delivered.iter().filter(|(_, _, k)| *k == kind).count()
    }
}

/// A message of the given term and body.
pub fn msg(term: u64, body: Body) -> Message {
    Message {
        term: Term(term),
        body,
    }
}

pub fn idx(i: u64) -> LogIndex {
    LogIndex(i)
}
