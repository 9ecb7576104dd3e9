//! A small synchronous network for protocol tests: messages are queued and delivered in
//! order unless a link is cut; every `Ready` is carried out at once by a perfect shell
//! with a disk per node, so nodes can be crashed and restarted from what they persisted.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use consensus::{
    Engine, Entry, HardState, LogIndex, NodeId, Payload, Ready, Recovered, Role, Snapshot,
};
use paxos::{Ballot, Body, Config, Message, Paxos};

/// A test configuration: 10-tick failure detection, 1-tick heartbeats.
pub fn config(id: NodeId) -> Config {
    let mut c = Config::new(id);
    c.election_ticks = 10;
    c.heartbeat_ticks = 1;
    c.seed = id * 7919;
    c
}

/// What a node persisted, kept the way a shell keeps it.
#[derive(Clone, Debug, Default)]
pub struct Disk {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
}

impl Disk {
    /// Carries out the writes of `ready` in the documented order.
    pub fn write(&mut self, ready: &Ready<Message>) {
        if let Some(s) = &ready.snapshot {
            self.entries.clear();
            self.snapshot = Some(s.clone());
        }
        if let Some(first) = ready.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend_from_slice(&ready.entries);
        }
        if let Some(hs) = ready.hard_state {
            self.hard_state = hs;
        }
    }

    pub fn recover(&self) -> Recovered {
        Recovered {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
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
    pub nodes: BTreeMap<NodeId, Paxos>,
    pub configs: BTreeMap<NodeId, Config>,
    pub disks: BTreeMap<NodeId, Disk>,
    pub queue: VecDeque<(NodeId, NodeId, Message)>,
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Entries each node applied, in order (since its last restart).
    pub applied: BTreeMap<NodeId, Vec<Entry>>,
    pub read_states: BTreeMap<NodeId, Vec<consensus::ReadState>>,
    pub delivered: Vec<(NodeId, NodeId, &'static str)>,
}

impl Net {
    /// `voters` founding members, plus `others` started empty (to be added later).
    pub fn new(voters: &[NodeId], others: &[NodeId]) -> Net {
        Net::with_config(voters, others, |_| {})
    }

    /// Like [`Net::new`], with every node's configuration adjusted by `f`.
    pub fn with_config(voters: &[NodeId], others: &[NodeId], f: impl Fn(&mut Config)) -> Net {
        let mut net = Net {
            nodes: BTreeMap::new(),
            configs: BTreeMap::new(),
            disks: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            applied: BTreeMap::new(),
            read_states: BTreeMap::new(),
            delivered: Vec::new(),
        };
        let boot = Paxos::bootstrap(voters);
        for &id in voters.iter().chain(others) {
            let mut c = config(id);
            f(&mut c);
            let disk = if voters.contains(&id) {
                Disk {
                    hard_state: boot.hard_state,
                    snapshot: boot.snapshot.clone(),
                    entries: boot.entries.clone(),
                }
            } else {
                Disk::default()
            };
            net.nodes
                .insert(id, Paxos::new(c.clone(), disk.recover()).expect("valid"));
            net.configs.insert(id, c);
            net.disks.insert(id, disk);
        }
        net
    }

    pub fn get(&self, id: NodeId) -> &Paxos {
        &self.nodes[&id]
    }

    pub fn get_mut(&mut self, id: NodeId) -> &mut Paxos {
        self.nodes.get_mut(&id).expect("node is up")
    }

    /// Crashes `id`: its memory is gone, its disk stays; messages to it are dropped.
    pub fn crash(&mut self, id: NodeId) {
        self.nodes.remove(&id);
    }

    /// Restarts `id` from its disk.
    pub fn restart(&mut self, id: NodeId) {
        let disk = &self.disks[&id];
        let p = Paxos::new(self.configs[&id].clone(), disk.recover()).expect("recovers");
        self.nodes.insert(id, p);
        self.applied.remove(&id);
    }

    /// Cuts every link between `id` and the others, both ways.
    pub fn isolate(&mut self, id: NodeId) {
        let ids: Vec<NodeId> = self.configs.keys().copied().collect();
        for other in ids {
            if other != id {
                self.cut.insert((id, other));
                self.cut.insert((other, id));
            }
        }
    }

    /// Cuts the links between `a` and `b`, both ways.
    pub fn cut_between(&mut self, a: NodeId, b: NodeId) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Carries out one node's ready as a perfect shell would; returns it.
    pub fn take_ready(&mut self, id: NodeId) -> Ready<Message> {
        let ready = self.get_mut(id).ready();
        self.disks.get_mut(&id).expect("disk").write(&ready);
        for (to, msg) in all_messages(&ready) {
            self.queue.push_back((id, to, msg));
        }
        self.applied
            .entry(id)
            .or_default()
            .extend(ready.committed_entries.iter().cloned());
        self.read_states
            .entry(id)
            .or_default()
            .extend(ready.read_states.iter().cloned());
        let number = ready.number;
        self.get_mut(id).advance(number);
        ready
    }

    /// Processes every node's ready.
    fn flush_readies(&mut self) -> bool {
        let mut any = false;
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            while self.nodes[&id].has_ready() {
                any = true;
                self.take_ready(id);
            }
        }
        any
    }

    /// One synchronous round: flush every ready, then deliver exactly the messages
    /// queued at that moment (replies wait for the next round).
    pub fn round(&mut self) {
        self.flush_readies();
        let batch: Vec<_> = self.queue.drain(..).collect();
        for (from, to, msg) in batch {
            self.deliver(from, to, msg);
        }
        self.flush_readies();
    }

    /// Delivers one message unless its link is cut or its recipient is down.
    pub fn deliver(&mut self, from: NodeId, to: NodeId, msg: Message) {
        if self.cut.contains(&(from, to)) || !self.nodes.contains_key(&to) {
            return;
        }
        self.delivered.push((from, to, msg.body.kind()));
        self.get_mut(to)
            .step(from, msg)
            .expect("well-formed message");
    }

    /// Delivers messages until the network is quiet.
    pub fn settle(&mut self) {
        for _ in 0..200_000 {
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

    /// Ticks every running node `n` times, settling after each tick.
    pub fn tick(&mut self, n: usize) {
        for _ in 0..n {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                self.get_mut(id).tick();
            }
            self.settle();
        }
    }

    /// Ticks only `id` until it leads (or gives up after 60 ticks).
    pub fn campaign(&mut self, id: NodeId) {
        for _ in 0..60 {
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

    /// The leader of the highest ballot among running nodes.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, p)| p.role() == Role::Leader)
            .max_by_key(|(_, p)| p.promised())
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
                Payload::Command(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect()
    }

    /// The command held at `slot` by `id`, if any (a no-op is `"<noop>"`).
    pub fn held(&self, id: NodeId, slot: u64) -> Option<String> {
        self.get(id).entry(LogIndex(slot)).map(|e| match e.payload {
            Payload::Command(b) => String::from_utf8_lossy(&b).into_owned(),
            Payload::Noop => "<noop>".into(),
            Payload::Config(_) => "<config>".into(),
        })
    }

    /// Drops queued messages for which `f(from, to, message)` holds.
    pub fn drop_where(&mut self, f: impl Fn(NodeId, NodeId, &Message) -> bool) {
        self.queue.retain(|(from, to, m)| !f(*from, *to, m));
    }

    pub fn count_delivered(&self, kind: &str) -> usize {
        self.delivered.iter().filter(|(_, _, k)| *k == kind).count()
    }

    /// Takes a snapshot on `id` at its applied index (the data names the slot).
    pub fn compact(&mut self, id: NodeId) {
        let applied = self.get(id).status().applied;
        let data = Bytes::from(format!("state@{}", applied.0));
        self.get_mut(id).compact(applied, data).expect("compacts");
        let snap = self.get(id).snapshot().expect("just taken").clone();
        let disk = self.disks.get_mut(&id).expect("disk");
        disk.entries.retain(|e| e.index > snap.meta.index);
        disk.snapshot = Some(snap);
    }
}

/// A message of ballot `(round, node)` and body.
pub fn msg(round: u64, node: NodeId, body: Body) -> Message {
    Message {
        ballot: Ballot::new(round, node),
        body,
    }
}

pub fn idx(i: u64) -> LogIndex {
    LogIndex(i)
}
