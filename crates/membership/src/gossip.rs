//! Spreading membership news: piggybacking on every message, gossip rounds to random
//! members, whole-list syncs (joins and anti-entropy), and graceful leave.
//!
//! ```text
//!  any message to X   = body + [what we believe about X, if it is bad news]
//!                            + least-sent queued claims (≤ updates_per_message_max)
//!  every gossip_interval, if news is queued: Gossip to gossip_fanout random live members
//!                        (only these count towards a claim's λ·log N transmissions;
//!                        pings and acks carry queued claims for free)
//!  every sync_interval:  Sync{our whole list} to one random member, live or dead
//!                        ──▶ merged, answered with Sync{reply, their whole list}
//!  join(seeds):          Sync to each seed, repeated every join_retry until answered
//! ```
//!
//! Probe traffic alone follows the ring, which would spread news in O(N/k) periods;
//! the random gossip rounds make it epidemic, O(log N) rounds.
//!
//! **Telling the accused** (Lifeguard's "buddy system", extended): whenever this node
//! sends anything to a member it believes suspect, dead or left, that belief goes first
//! in the message. A suspect hears of its suspicion from its own monitors' next ping; a
//! member wrongly declared dead learns it from the ack to its own next ping — even
//! though nobody gossips to the dead — and refutes at once.

use consensus::NodeId;

use crate::detector::{next_period, Detector, Join};
use crate::member::{State, Update};
use crate::message::{Body, Message};

/// Most seeds a join contacts.
const SEEDS_MAX: usize = 64;

impl Detector {
    /// Asks `seeds` for their member lists (each gets ours, this node included), and
    /// keeps asking every `join_retry_ms` until some node answers. Joining a cluster
    /// that declared an earlier life of this node dead or left is automatic: the
    /// answer carries the tombstone, and this node refutes above it.
    pub fn join(&mut self, now_ms: u64, seeds: &[NodeId]) {
        self.now_ms = self.now_ms.max(now_ms);
        let mut seeds: Vec<NodeId> = seeds
            .iter()
            .copied()
            .filter(|&s| s != 0 && s != self.id)
            .collect();
        seeds.sort_unstable();
        seeds.dedup();
        seeds.truncate(SEEDS_MAX);
        if seeds.is_empty() || self.leaving {
            return;
        }
        for &s in &seeds {
            self.send_sync(s, false);
        }
        self.join = Some(Join {
            seeds,
            retry_at_ms: self.now_ms + self.cfg.join_retry_ms,
        });
        self.check_invariants();
    }

    /// Leaves the cluster gracefully: moves to a new incarnation in state Left, tells
    /// every live member directly, keeps gossiping it, and stops probing. Members
    /// report [`crate::Event::Left`] rather than a death. The shell should keep
    /// delivering ticks and messages for a few gossip intervals before stopping, so the
    /// news survives a lost message. Idempotent.
    pub fn leave(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if self.leaving {
            return;
        }
        self.leaving = true;
        self.incarnation = self.incarnation.next();
        let claim = self.self_claim();
        let me = self.members.get_mut(&self.id).expect("self is a member");
        me.incarnation = claim.incarnation;
        me.state = State::Left;
        me.since_ms = self.now_ms;
        self.queue.push(claim);
        self.join = None;
        self.membership_changed(); // drops the monitors and their rounds
        self.pings.clear();
        self.relays = 0;
        for to in self.live_others.clone() {
            let msg = Message {
                body: Body::Gossip,
                updates: vec![claim],
            };
            self.push_send(to, msg);
        }
        self.check_invariants();
    }

    /// Sends `body` to `to` with piggybacked claims (none for a sync, which carries
    /// everything). A gossip message with nothing to carry is not sent.
    pub(crate) fn send(&mut self, to: NodeId, body: Body) {
        let updates = match body {
            Body::Sync { .. } => Vec::new(),
            Body::Gossip => self.piggyback(to, true),
            _ => self.piggyback(to, false),
        };
        if matches!(body, Body::Gossip) && updates.is_empty() {
            return;
        }
        self.push_send(to, Message { body, updates });
    }

    fn push_send(&mut self, to: NodeId, msg: Message) {
        self.stats.messages_sent += 1;
        self.stats.updates_sent += msg.updates.len() as u64;
        self.actions.push(crate::Action::Send { to, msg });
    }

    /// The claims to carry to `to`: our bad news about `to` itself first, then the
    /// least-sent queued claims (counted as transmissions if `counted`).
    fn piggyback(&mut self, to: NodeId, counted: bool) -> Vec<Update> {
        let limit = self.cfg.updates_per_message_max;
        let mut out = Vec::with_capacity(limit.min(8));
        let mut skip = None;
        if let Some(about_to) = self.claim_of(to).filter(|c| c.state != State::Alive) {
            out.push(about_to);
            skip = Some(to);
        }
        if counted {
            let transmit_limit = self.transmit_limit();
            out.extend(self.queue.select(limit - out.len(), transmit_limit, skip));
        } else {
            out.extend(self.queue.peek(limit - out.len(), skip));
        }
        out
    }

    /// Every `gossip_interval`, if news is queued: a Gossip to `gossip_fanout` random
    /// live members.
    pub(crate) fn gossip_tick(&mut self) {
        if self.now_ms < self.next_gossip_ms {
            return;
        }
        self.next_gossip_ms = next_period(
            self.next_gossip_ms,
            self.cfg.gossip_interval_ms,
            self.now_ms,
        );
        if self.queue.is_empty() {
            return;
        }
        let live = self.live_others.clone();
        for to in self.pick(&live, self.cfg.gossip_fanout) {
            self.send(to, Body::Gossip);
        }
    }

    /// Every `sync_interval`: our whole list to one random member that has not left —
    /// dead ones included, which is how the two sides of a healed partition find each
    /// other.
    pub(crate) fn sync_tick(&mut self) {
        if self.now_ms < self.next_sync_ms {
            return;
        }
        self.next_sync_ms = next_period(self.next_sync_ms, self.cfg.sync_interval_ms, self.now_ms);
        let candidates: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(&id, m)| id != self.id && m.state != State::Left)
            .map(|(&id, _)| id)
            .collect();
        if let Some(to) = self.pick(&candidates, 1).pop() {
            self.send_sync(to, false);
        }
    }

    /// Resends the join's syncs while no answer has come.
    pub(crate) fn join_tick(&mut self) {
        let Some(join) = &self.join else { return };
        if self.now_ms < join.retry_at_ms {
            return;
        }
        let seeds = join.seeds.clone();
        for s in seeds {
            self.send_sync(s, false);
        }
        if let Some(j) = &mut self.join {
            j.retry_at_ms = self.now_ms + self.cfg.join_retry_ms;
        }
    }

    fn send_sync(&mut self, to: NodeId, reply: bool) {
        let members: Vec<Update> = self
            .members
            .keys()
            .filter_map(|&id| self.claim_of(id))
            .collect();
        self.stats.syncs_sent += 1;
        self.send(to, Body::Sync { reply, members });
    }

    /// A whole list from `from`: merged claim by claim; answered with ours unless it was
    /// itself an answer. Any list completes a join.
    ///
    /// A death listed for a member this node holds live is merged as a *suspicion* by
    /// the same declarer (memberlist does the same in its push-pull merge). Gossiped
    /// deaths are fresh verdicts; a list carries every verdict its sender ever reached,
    /// and after a partition heals, each side's list declares the whole other side
    /// dead. Adopting those at once would make every receiver bury its own side; as
    /// suspicions they reach the accused through their monitors' pings and are
    /// refuted, while a member that really is dead still times out. Tombstones for
    /// members unknown here (a joining node learning the cluster's dead) are kept as
    /// they are.
    pub(crate) fn on_sync(&mut self, from: NodeId, reply: bool, members: Vec<Update>) {
        for mut u in members {
            let held_live = self.members.get(&u.id).is_some_and(|m| m.state.is_live());
            if u.state == State::Dead && u.id != self.id && held_live {
                u.state = State::Suspect;
            }
            self.apply(u);
        }
        self.join = None;
        if !reply && !self.leaving {
            self.send_sync(from, true);
        }
    }
}
