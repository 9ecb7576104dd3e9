//! A deterministic world of detectors: a virtual millisecond clock, a network with
//! per-message loss and delay jitter (so messages reorder), crashes, restarts,
//! one-way link failures and partitions. One seed and one script of faults replay
//! exactly. Every message goes through the real wire encoding.
//!
//! The world is event-driven: it jumps straight to the next message delivery or the
//! earliest [`Detector::poll_at`], so an hour of a 20-node cluster takes about a second.
//! It asserts, in every build, that a tick leaves no deadline due (a detector that asked
//! to be woken and then did nothing would otherwise spin forever).
//!
//! [`scenario`] builds the measurement campaign on top of it.

pub mod scenario;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use bytes::Bytes;
use consensus::{NodeId, Rng};

use crate::action::{Action, Event};
use crate::config::Config;
use crate::detector::{Detector, MemberView};
use crate::member::State;
use crate::wire;

/// How the simulated network treats every message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetConfig {
    /// Probability that a message is lost, independently per message.
    pub loss: f64,
    /// One-way delay, drawn uniformly from `[delay_ms_min, delay_ms_max]` per message.
    pub delay_ms_min: u64,
    /// See `delay_ms_min`.
    pub delay_ms_max: u64,
}

impl NetConfig {
    /// A LAN-like network (1–20 ms, so messages reorder) losing `loss` of messages.
    pub fn lan(loss: f64) -> NetConfig {
        NetConfig {
            loss,
            delay_ms_min: 1,
            delay_ms_max: 20,
        }
    }
}

/// An event reported by a node, with when and by whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Simulated time of the report.
    pub at_ms: u64,
    /// The node whose view changed.
    pub observer: NodeId,
    /// The change.
    pub event: Event,
}

struct InFlight {
    from: NodeId,
    to: NodeId,
    bytes: Bytes,
}

/// Builds each node's configuration (on start and on restart).
pub type ConfigFn = Box<dyn Fn(NodeId) -> Config>;

/// The simulated cluster.
pub struct World {
    now_ms: u64,
    /// Every node ever started; `None` while crashed.
    nodes: BTreeMap<NodeId, Option<Detector>>,
    net: NetConfig,
    rng: Rng,
    due: BinaryHeap<Reverse<(u64, u64)>>,
    in_flight: BTreeMap<u64, InFlight>,
    next_msg: u64,
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Partition sides; a message between nodes on different sides is lost. Empty: no
    /// partition.
    side: BTreeMap<NodeId, usize>,
    events: Vec<Observed>,
    config_for: ConfigFn,
    /// Messages handed to the network, and how many of them were lost.
    pub messages_sent: u64,
    /// See `messages_sent`.
    pub messages_lost: u64,
}

impl World {
    /// A cluster of `ids`, all started at time 0 knowing each other, with node
    /// configurations from `config_for` and the network's randomness from `seed`.
    pub fn new(ids: &[NodeId], net: NetConfig, seed: u64, config_for: ConfigFn) -> World {
        let mut nodes = BTreeMap::new();
        for &id in ids {
            let d = Detector::new(config_for(id), 0, ids).expect("valid simulated config");
            nodes.insert(id, Some(d));
        }
        let mut w = World {
            now_ms: 0,
            nodes,
            net,
            rng: Rng::new(seed),
            due: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            next_msg: 0,
            blocked: BTreeSet::new(),
            side: BTreeMap::new(),
            events: Vec::new(),
            config_for,
            messages_sent: 0,
            messages_lost: 0,
        };
        for &id in ids {
            w.collect(id);
        }
        w
    }

    /// A cluster of nodes `1..=n` with [`Config::new`] defaults (each seeded from
    /// `seed` and its id) on `net`.
    pub fn with_defaults(n: usize, net: NetConfig, seed: u64) -> World {
        let ids: Vec<NodeId> = (1..=n as NodeId).collect();
        World::new(
            &ids,
            net,
            seed,
            Box::new(move |id| Config {
                seed: seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ..Config::new(id)
            }),
        )
    }

    /// Simulated time now.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Runs every delivery and tick up to and including `until_ms`.
    pub fn run_until(&mut self, until_ms: u64) {
        loop {
            let next_msg = self.due.peek().map(|r| r.0 .0);
            let next_tick = self.nodes.values().flatten().map(Detector::poll_at).min();
            let Some(t) = next_msg.into_iter().chain(next_tick).min() else {
                break;
            };
            if t > until_ms {
                break;
            }
            self.now_ms = self.now_ms.max(t);
            while let Some(&Reverse((at, id))) = self.due.peek() {
                if at > self.now_ms {
                    break;
                }
                self.due.pop();
                self.deliver(id);
            }
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                let now = self.now_ms;
                let Some(d) = self.nodes.get_mut(&id).and_then(Option::as_mut) else {
                    continue;
                };
                if d.poll_at() <= now {
                    d.tick(now);
                    assert!(
                        d.poll_at() > now,
                        "node {id} left a deadline due at {now} ms"
                    );
                    self.collect(id);
                }
            }
        }
        self.now_ms = self.now_ms.max(until_ms);
    }

    /// Runs for `ms` more milliseconds.
    pub fn run_for(&mut self, ms: u64) {
        self.run_until(self.now_ms + ms);
    }

    /// Crashes `id`: it stops at once, and messages to it are lost until it restarts.
    pub fn crash(&mut self, id: NodeId) {
        if let Some(slot) = self.nodes.get_mut(&id) {
            *slot = None;
        }
    }

    /// Restarts `id` from scratch (incarnation from its config, knowing nobody) and
    /// joins it through `seeds`.
    pub fn restart(&mut self, id: NodeId, seeds: &[NodeId]) {
        let mut d =
            Detector::new((self.config_for)(id), self.now_ms, &[]).expect("valid simulated config");
        d.join(self.now_ms, seeds);
        self.nodes.insert(id, Some(d));
        self.collect(id);
    }

    /// Makes `id` leave gracefully.
    pub fn leave(&mut self, id: NodeId) {
        let now = self.now_ms;
        if let Some(d) = self.node_mut(id) {
            d.leave(now);
            self.collect(id);
        }
    }

    /// Loses every message from `from` to `to` (one direction only) until unblocked.
    pub fn block(&mut self, from: NodeId, to: NodeId) {
        self.blocked.insert((from, to));
    }

    /// Undoes [`World::block`].
    pub fn unblock(&mut self, from: NodeId, to: NodeId) {
        self.blocked.remove(&(from, to));
    }

    /// Splits the network: messages between different groups are lost (nodes in no
    /// group form one more group).
    pub fn partition(&mut self, groups: &[Vec<NodeId>]) {
        self.side.clear();
        for (i, g) in groups.iter().enumerate() {
            for &id in g {
                self.side.insert(id, i + 1);
            }
        }
    }

    /// Ends any partition.
    pub fn heal(&mut self) {
        self.side.clear();
    }

    /// The running detector of `id` (`None` while crashed).
    pub fn node(&self, id: NodeId) -> Option<&Detector> {
        self.nodes.get(&id).and_then(Option::as_ref)
    }

    /// The running detector of `id`, mutably (for scripted inputs in tests).
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Detector> {
        self.nodes.get_mut(&id).and_then(Option::as_mut)
    }

    /// Nodes currently running, ascending.
    pub fn up(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, d)| d.is_some())
            .map(|(&id, _)| id)
            .collect()
    }

    /// What `observer` believes about `of`.
    pub fn view(&self, observer: NodeId, of: NodeId) -> Option<MemberView> {
        self.node(observer)?.member(of)
    }

    /// True if every running node other than `of` holds `of` in `state`.
    pub fn all_see(&self, of: NodeId, state: State) -> bool {
        self.up()
            .into_iter()
            .filter(|&o| o != of)
            .all(|o| self.view(o, of).is_some_and(|v| v.state == state))
    }

    /// True if every running node sees every other running node Alive.
    pub fn converged(&self) -> bool {
        let up = self.up();
        up.iter().all(|&of| self.all_see(of, State::Alive))
    }

    /// Every event reported so far, in order.
    pub fn events(&self) -> &[Observed] {
        &self.events
    }

    /// Runs the world after `f` edits a node's inputs directly (tests).
    pub fn with_node(&mut self, id: NodeId, f: impl FnOnce(&mut Detector, u64)) {
        let now = self.now_ms;
        if let Some(d) = self.node_mut(id) {
            f(d, now);
            self.collect(id);
        }
    }

    fn deliver(&mut self, msg_id: u64) {
        let Some(m) = self.in_flight.remove(&msg_id) else {
            return;
        };
        let now = self.now_ms;
        let Some(d) = self.node_mut(m.to) else {
            self.messages_lost += 1;
            return;
        };
        let msg = wire::decode(m.bytes).expect("the detector's own encoding decodes");
        d.step(now, m.from, msg)
            .expect("the detector's own messages are valid");
        self.collect(m.to);
    }

    /// Takes `id`'s actions: messages into the network, events into the log.
    fn collect(&mut self, id: NodeId) {
        let Some(d) = self.node_mut(id) else { return };
        let actions = d.take_actions();
        for a in actions {
            match a {
                Action::Event(event) => self.events.push(Observed {
                    at_ms: self.now_ms,
                    observer: id,
                    event,
                }),
                Action::Send { to, msg } => {
                    self.messages_sent += 1;
                    let bytes = wire::to_bytes(&msg);
                    let cut = self.blocked.contains(&(id, to))
                        || self.side.get(&id).copied().unwrap_or(0)
                            != self.side.get(&to).copied().unwrap_or(0);
                    if cut || self.rng.chance(self.net.loss) {
                        self.messages_lost += 1;
                        continue;
                    }
                    let delay = self
                        .rng
                        .range(self.net.delay_ms_min, self.net.delay_ms_max + 1);
                    self.next_msg += 1;
                    self.in_flight.insert(
                        self.next_msg,
                        InFlight {
                            from: id,
                            to,
                            bytes,
                        },
                    );
                    self.due.push(Reverse((self.now_ms + delay, self.next_msg)));
                }
            }
        }
    }
}
