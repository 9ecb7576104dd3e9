//! The detector: its state, the entry points, how claims are merged, and the views.
//!
//! The protocol rules live in sibling files: `probe.rs` (monitoring the ring successors:
//! pings, φ, indirect probes, accusations) and `gossip.rs` (piggybacking, gossip rounds,
//! syncs, join and leave). A member's life as this node sees it:
//!
//! ```text
//!            probe round fails              suspicion times out
//!   Alive ──────────────────────▶ Suspect ────────────────────────▶ Dead
//!     ▲  ▲   (or a Suspect claim)    │        (or a Dead claim)      │
//!     │  └───────────────────────────┘                               │
//!     │        refuted: Alive at a higher incarnation                │
//!     └──────────────────────────────────────────────────────────────┘
//!              rejoined: Alive at a higher incarnation (also from Left)
//! ```

use std::collections::BTreeMap;

use consensus::{NodeId, Rng};

use crate::action::{Action, Event};
use crate::config::Config;
use crate::member::{merge, Incarnation, Merge, State, Update};
use crate::message::{validate, Body, Message, Refused};
use crate::phi::{z_for_phi, PhiAccrual, PhiParams};
use crate::queue::{retransmit_limit, BroadcastQueue};
use crate::ring;
use crate::suspicion::Suspicion;

/// What this node knows about one member.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub incarnation: Incarnation,
    pub state: State,
    /// Who originated the claim held (see [`Update::by`]).
    pub by: NodeId,
    /// When the member entered its current state, on this node's clock.
    pub since_ms: u64,
}

/// The φ detector of one monitored successor, with its cached crossing time.
#[derive(Clone, Debug)]
pub(crate) struct Monitor {
    pub phi: PhiAccrual,
    /// When φ reaches the threshold if no heartbeat arrives first.
    pub suspicious_at_ms: u64,
}

impl Monitor {
    pub fn new(now_ms: u64, cfg: &Config, z: f64) -> Monitor {
        let phi = PhiAccrual::new(now_ms, cfg.probe_interval_ms, cfg.phi_window);
        let suspicious_at_ms = phi.crossing_ms(z, &cfg.phi_params());
        Monitor {
            phi,
            suspicious_at_ms,
        }
    }

    pub fn heartbeat(&mut self, now_ms: u64, p: &PhiParams, z: f64) {
        self.phi.heartbeat(now_ms);
        self.suspicious_at_ms = self.phi.crossing_ms(z, p);
    }

    pub fn touch(&mut self, now_ms: u64, p: &PhiParams, z: f64) {
        self.phi.touch(now_ms);
        self.suspicious_at_ms = self.phi.crossing_ms(z, p);
    }
}

/// Why a ping of ours is outstanding.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PingPurpose {
    /// Monitoring a successor: its ack is a heartbeat.
    Monitor,
    /// On behalf of `origin`'s probe round: its ack is relayed as an IndirectAck.
    Relay { origin: NodeId, origin_seq: u64 },
}

/// An outstanding ping.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    pub target: NodeId,
    pub purpose: PingPurpose,
    pub expires_ms: u64,
}

/// A probe round in flight: the (seq, helper) pairs asked to reach the target, over
/// all of the round's attempts (a late relay from an earlier attempt still counts).
#[derive(Clone, Debug)]
pub(crate) struct Probe {
    pub asked: Vec<(u64, NodeId)>,
    /// When the current attempt gives up.
    pub deadline_ms: u64,
    /// Attempts still to make after the current one.
    pub attempts_left: u32,
}

/// A join in progress.
#[derive(Clone, Debug)]
pub(crate) struct Join {
    pub seeds: Vec<NodeId>,
    pub retry_at_ms: u64,
}

/// One member as this node sees it (for `hakv ctl status`, the router and tests).
#[derive(Clone, Debug, PartialEq)]
pub struct MemberView {
    /// The member.
    pub id: NodeId,
    /// Its state in this node's view.
    pub state: State,
    /// Its incarnation in this node's view.
    pub incarnation: Incarnation,
    /// Who originated the claim held: the accuser of a suspicion, the declarer of a
    /// death, the member itself otherwise.
    pub by: NodeId,
    /// When it entered that state, on this node's clock (milliseconds).
    pub since_ms: u64,
    /// φ now, if this node monitors it directly.
    pub phi: Option<f64>,
}

/// Counters since the detector started, for metrics and the simulator's reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages handed to the shell.
    pub messages_sent: u64,
    /// Claims piggybacked on them (sync lists not included).
    pub updates_sent: u64,
    /// Messages stepped without refusal.
    pub messages_received: u64,
    /// Messages refused as malformed.
    pub messages_refused: u64,
    /// Probe rounds started (φ crossed the threshold).
    pub probe_rounds: u64,
    /// Probe rounds that ended without any ack (an accusation followed).
    pub probe_rounds_failed: u64,
    /// Pings sent on behalf of another member's probe round.
    pub relays: u64,
    /// Times this node refuted its own suspicion or death.
    pub refutations: u64,
    /// Full member lists sent (joins, anti-entropy, replies).
    pub syncs_sent: u64,
}

/// hakv's failure detector and membership gossip for one node: a pure state machine.
///
/// Inputs: [`Detector::tick`] (time passes), [`Detector::step`] (a message arrived),
/// [`Detector::join`], [`Detector::leave`]. Outputs: [`Detector::take_actions`] —
/// messages to send and membership events. It reads no clock (every input carries the
/// caller's monotonic time in milliseconds; time going backwards is treated as no time
/// passing), owns its randomness (a seeded [`Rng`]), and does no I/O, so the same seed
/// and the same inputs always give the same outputs. [`Detector::poll_at`] says when
/// it next needs a tick.
#[derive(Debug)]
pub struct Detector {
    pub(crate) cfg: Config,
    pub(crate) id: NodeId,
    pub(crate) incarnation: Incarnation,
    /// `leave()` was called: this node says Left, and stops probing and syncing.
    pub(crate) leaving: bool,
    pub(crate) now_ms: u64,
    pub(crate) rng: Rng,
    /// Every member known, this node included. Invariant: the entry for this node holds
    /// `incarnation` and is Alive, or Left once leaving.
    pub(crate) members: BTreeMap<NodeId, Member>,
    /// Live members other than this node, ascending; rebuilt when the live set changes.
    pub(crate) live_others: Vec<NodeId>,
    /// The ring successors monitored directly. Invariant: a subset of `live_others`, at
    /// most `monitored_successors` of them, empty while leaving.
    pub(crate) monitors: BTreeMap<NodeId, Monitor>,
    /// Outstanding pings by sequence number.
    pub(crate) pings: BTreeMap<u64, Pending>,
    /// How many of `pings` are relays (bounded, since anyone can ask for them).
    pub(crate) relays: usize,
    /// Probe rounds in flight, by target. Invariant: targets are monitored.
    pub(crate) probes: BTreeMap<NodeId, Probe>,
    /// Running suspicions. Invariant: exactly the Suspect members, at their incarnation.
    pub(crate) suspicions: BTreeMap<NodeId, Suspicion>,
    pub(crate) queue: BroadcastQueue,
    pub(crate) seq: u64,
    pub(crate) next_probe_ms: u64,
    pub(crate) next_gossip_ms: u64,
    pub(crate) next_sync_ms: u64,
    pub(crate) join: Option<Join>,
    /// The z-score at which φ reaches `phi_suspect`, computed once.
    pub(crate) z_suspect: f64,
    pub(crate) actions: Vec<Action>,
    pub(crate) stats: Stats,
}

impl Detector {
    /// A detector for `cfg.id` starting at `now_ms`, knowing `known` members as alive at
    /// incarnation 0 (the founding members of a new cluster; empty for a node that will
    /// [`Detector::join`]). Announces itself to whoever it talks to first. Fails on an
    /// invalid configuration.
    pub fn new(cfg: Config, now_ms: u64, known: &[NodeId]) -> Result<Detector, String> {
        cfg.validate()?;
        let mut rng = Rng::new(cfg.seed);
        // Nodes started together should not probe, gossip or sync in lockstep: in
        // lockstep, every sync in the cluster happens in the same instant, and a healed
        // partition waits for that instant.
        let probe_phase_ms = rng.range(0, cfg.probe_interval_ms);
        let gossip_phase_ms = rng.range(0, cfg.gossip_interval_ms);
        let sync_phase_ms = rng.range(0, cfg.sync_interval_ms);
        let mut d = Detector {
            id: cfg.id,
            incarnation: cfg.incarnation,
            leaving: false,
            now_ms,
            rng,
            members: BTreeMap::new(),
            live_others: Vec::new(),
            monitors: BTreeMap::new(),
            pings: BTreeMap::new(),
            relays: 0,
            probes: BTreeMap::new(),
            suspicions: BTreeMap::new(),
            queue: BroadcastQueue::default(),
            seq: 0,
            next_probe_ms: now_ms + probe_phase_ms,
            next_gossip_ms: now_ms + gossip_phase_ms + 1,
            next_sync_ms: now_ms + sync_phase_ms + 1,
            join: None,
            z_suspect: z_for_phi(cfg.phi_suspect),
            actions: Vec::new(),
            stats: Stats::default(),
            cfg,
        };
        d.members.insert(
            d.id,
            Member {
                incarnation: d.incarnation,
                state: State::Alive,
                by: d.id,
                since_ms: now_ms,
            },
        );
        d.queue.push(d.self_claim());
        for &id in known {
            if id != 0
                && id != d.id
                && !d.members.contains_key(&id)
                && d.members.len() < d.cfg.members_max
            {
                d.members.insert(
                    id,
                    Member {
                        incarnation: Incarnation(0),
                        state: State::Alive,
                        by: id,
                        since_ms: now_ms,
                    },
                );
                d.emit(Event::MemberUp {
                    id,
                    incarnation: Incarnation(0),
                });
            }
        }
        d.membership_changed();
        d.check_invariants();
        Ok(d)
    }

    /// Time has reached `now_ms`: sends the periodic pings, starts probe rounds for
    /// peers whose φ crossed the threshold, accuses peers whose rounds failed, declares
    /// dead the suspects whose timeout passed, gossips pending news, and syncs. Call it
    /// at [`Detector::poll_at`] (or more often; extra ticks are harmless).
    pub fn tick(&mut self, now_ms: u64) {
        self.advance(now_ms);
        if !self.leaving {
            self.probe_tick();
        }
        self.expire_suspicions();
        self.gossip_tick();
        if !self.leaving {
            self.sync_tick();
            self.join_tick();
        }
        self.expire_pings();
        self.check_invariants();
        debug_assert!(self.poll_at() > self.now_ms, "tick left a deadline due");
    }

    /// A message from node `from` arrived at `now_ms`. Its piggybacked claims are merged
    /// first, then it is answered or acted on. A malformed message (see
    /// [`crate::message::validate`]) or one claiming to come from this node is refused
    /// and changes nothing. Messages from unknown senders are answered like any other:
    /// a new node may ping before its join has spread.
    pub fn step(&mut self, now_ms: u64, from: NodeId, msg: Message) -> Result<(), Refused> {
        let checked = validate(from, &msg).and_then(|()| {
            if from == self.id {
                Err(Refused("a message from this node's own id".into()))
            } else {
                Ok(())
            }
        });
        if let Err(e) = checked {
            self.stats.messages_refused += 1;
            return Err(e);
        }
        self.advance(now_ms);
        self.stats.messages_received += 1;
        for u in msg.updates {
            self.apply(u);
        }
        match msg.body {
            Body::Ping { seq } => self.send(from, Body::Ack { seq }),
            Body::Ack { seq } => self.on_ack(from, seq),
            Body::PingReq { seq, target } => self.on_ping_req(from, seq, target),
            Body::IndirectAck { seq, target } => self.on_indirect_ack(from, seq, target),
            Body::Gossip => {}
            Body::Sync { reply, members } => self.on_sync(from, reply, members),
        }
        self.check_invariants();
        Ok(())
    }

    /// Everything the detector asked for since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The earliest time at which [`Detector::tick`] has work to do (possibly already
    /// past, meaning "now"). Between inputs nothing changes before this time, so an
    /// event-driven shell or simulator may sleep until then.
    pub fn poll_at(&self) -> u64 {
        let mut at = u64::MAX;
        if !self.leaving {
            at = at.min(self.next_probe_ms).min(self.next_sync_ms);
            for &id in self.monitors.keys() {
                if let Some(t) = self.round_due_at(id) {
                    at = at.min(t);
                }
            }
            for p in self.probes.values() {
                at = at.min(p.deadline_ms);
            }
            if let Some(j) = &self.join {
                at = at.min(j.retry_at_ms);
            }
        }
        for s in self.suspicions.values() {
            at = at.min(s.deadline_ms());
        }
        if !self.queue.is_empty() {
            at = at.min(self.next_gossip_ms);
        }
        at
    }

    /// Forgets a dead or departed member (an operator removed it for good), so it no
    /// longer appears in [`Detector::members`]. Its tombstone is gone, so a stale
    /// "alive" claim could re-add it; forget only members that will not return. False
    /// if the member is unknown, live, or this node.
    pub fn forget(&mut self, id: NodeId) -> bool {
        let tombstone = id != self.id && self.members.get(&id).is_some_and(|m| !m.state.is_live());
        if tombstone {
            self.members.remove(&id);
            self.queue.remove(id);
        }
        tombstone
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's current incarnation (raised by refutations and by leaving).
    pub fn incarnation(&self) -> Incarnation {
        self.incarnation
    }

    /// The configuration this detector runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The latest time this detector has been given.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// True while a join has not yet been answered by any sync.
    pub fn is_joining(&self) -> bool {
        self.join.is_some()
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Every known member, this node and tombstones included, by id.
    pub fn members(&self) -> Vec<MemberView> {
        self.members
            .keys()
            .filter_map(|&id| self.member(id))
            .collect()
    }

    /// One member's view, if known.
    pub fn member(&self, id: NodeId) -> Option<MemberView> {
        let m = self.members.get(&id)?;
        let params = self.cfg.phi_params();
        Some(MemberView {
            id,
            state: m.state,
            incarnation: m.incarnation,
            by: m.by,
            since_ms: m.since_ms,
            phi: self
                .monitors
                .get(&id)
                .map(|mon| mon.phi.phi(self.now_ms, &params)),
        })
    }

    /// Live members (Alive or Suspect) other than this node, ascending.
    pub fn live_members(&self) -> &[NodeId] {
        &self.live_others
    }

    /// The ring successors this node monitors directly, ascending by id.
    pub fn monitored(&self) -> Vec<NodeId> {
        self.monitors.keys().copied().collect()
    }

    // ----- merging claims -------------------------------------------------------------

    /// Merges one claim heard from the network.
    pub(crate) fn apply(&mut self, u: Update) {
        if u.id == self.id {
            return self.hear_about_self(u);
        }
        let current = self.members.get(&u.id).map(|m| (m.incarnation, m.state));
        match merge(current, &u) {
            Merge::Newer => self.adopt(u),
            Merge::Confirmation => {
                let fresh = self
                    .suspicions
                    .get_mut(&u.id)
                    .is_some_and(|s| s.confirm(u.by, self.id));
                if fresh {
                    // Pass the confirmation on: others count accusers too.
                    self.queue.push(u);
                }
            }
            Merge::Stale => {}
        }
    }

    /// Makes `u` (about another member, greater than what is known) this node's view,
    /// reports the transition, and passes the claim on.
    pub(crate) fn adopt(&mut self, u: Update) {
        debug_assert_ne!(u.id, self.id);
        let old = self.members.get(&u.id).map(|m| (m.state, m.since_ms));
        if old.is_none() && !self.make_room() {
            return;
        }
        let old_state = old.map(|(s, _)| s);
        let since_ms = match old {
            Some((s, since)) if s == u.state => since,
            _ => self.now_ms,
        };
        self.members.insert(
            u.id,
            Member {
                incarnation: u.incarnation,
                state: u.state,
                by: u.by,
                since_ms,
            },
        );
        self.report(old_state, &u);
        self.suspicions.remove(&u.id);
        if u.state == State::Suspect {
            let live = self.live_others.len() + 1;
            let expected = (self.cfg.monitored_successors.min(live - 1) as u32).saturating_sub(1);
            let s = Suspicion::new(
                u.incarnation,
                self.now_ms,
                u.by,
                self.id,
                self.cfg.suspicion_bounds_ms(live),
                expected,
            );
            self.suspicions.insert(u.id, s);
        } else {
            // A round for an earlier view of the member is moot.
            self.probes.remove(&u.id);
        }
        if u.state == State::Alive && old_state.is_some_and(|s| s != State::Alive) {
            // Back from suspicion or death at a new incarnation: its old silence says
            // nothing about its future, so its heartbeat history starts afresh.
            if let Some(m) = self.monitors.get_mut(&u.id) {
                *m = Monitor::new(self.now_ms, &self.cfg, self.z_suspect);
            }
        }
        self.queue.push(u);
        if old_state.map(State::is_live) != Some(u.state.is_live()) {
            self.membership_changed();
        }
    }

    /// The events for one member's transition from `old` to `u.state`.
    fn report(&mut self, old: Option<State>, u: &Update) {
        use State::*;
        let (id, incarnation) = (u.id, u.incarnation);
        let was_live = old.is_some_and(State::is_live);
        match u.state {
            Alive | Suspect if !was_live => self.emit(Event::MemberUp { id, incarnation }),
            Alive if old == Some(Suspect) => self.emit(Event::Alive { id, incarnation }),
            _ => {}
        }
        match u.state {
            Suspect => self.emit(Event::Suspect {
                id,
                incarnation,
                by: u.by,
            }),
            // A tombstone for a member never seen live is remembered silently.
            Dead if old.is_some() && old != Some(Dead) => self.emit(Event::Dead {
                id,
                incarnation,
                by: u.by,
            }),
            Left if old.is_some() && old != Some(Left) => {
                self.emit(Event::Left { id, incarnation })
            }
            _ => {}
        }
    }

    /// A claim about this node. SWIM's refutation: a suspicion or death at our current
    /// incarnation (or above) is answered by moving to a higher incarnation and
    /// spreading "alive" at it, which outranks the accusation everywhere. An "alive" at
    /// a higher incarnation than ours comes from an earlier life of this node (a
    /// restart that forgot its incarnation): we move above it too. Bad news about an
    /// *older* incarnation means the sender missed our refutation (a rumour is only
    /// gossiped λ·log N times): our claim is queued again, so our next messages — to
    /// that sender among others — carry it. A leaving node lets its Left stand.
    fn hear_about_self(&mut self, u: Update) {
        if self.leaving {
            return;
        }
        let accused = u.state != State::Alive && u.incarnation >= self.incarnation;
        let outdated = u.state == State::Alive && u.incarnation > self.incarnation;
        if !(accused || outdated) {
            if u.state != State::Alive && self.queue.get(self.id) != Some(&self.self_claim()) {
                self.queue.push(self.self_claim());
            }
            return;
        }
        self.incarnation = u.incarnation.next();
        let me = self.members.get_mut(&self.id).expect("self is a member");
        me.incarnation = self.incarnation;
        self.queue.push(self.self_claim());
        self.stats.refutations += 1;
        self.emit(Event::Refuted {
            incarnation: self.incarnation,
        });
    }

    /// This node's own claim: alive (or left) at its incarnation.
    pub(crate) fn self_claim(&self) -> Update {
        Update {
            id: self.id,
            incarnation: self.incarnation,
            state: if self.leaving {
                State::Left
            } else {
                State::Alive
            },
            by: self.id,
        }
    }

    /// The claim this node holds about `id`.
    pub(crate) fn claim_of(&self, id: NodeId) -> Option<Update> {
        let m = self.members.get(&id)?;
        Some(Update {
            id,
            incarnation: m.incarnation,
            state: m.state,
            by: m.by,
        })
    }

    /// Ensures there is space for one more member: forgets the oldest tombstone if the
    /// list is full. False if full of live members.
    fn make_room(&mut self) -> bool {
        if self.members.len() < self.cfg.members_max {
            return true;
        }
        let oldest = self
            .members
            .iter()
            .filter(|(_, m)| !m.state.is_live())
            .min_by_key(|(&id, m)| (m.since_ms, id))
            .map(|(&id, _)| id);
        match oldest {
            Some(id) => self.forget(id),
            None => false,
        }
    }

    /// The live set changed: rebuilds `live_others` and re-derives the monitored
    /// successors (new ones start with a fresh φ history as of now; dropped ones lose
    /// their probe rounds).
    pub(crate) fn membership_changed(&mut self) {
        self.live_others = self
            .members
            .iter()
            .filter(|(&id, m)| id != self.id && m.state.is_live())
            .map(|(&id, _)| id)
            .collect();
        let targets = if self.leaving {
            Vec::new()
        } else {
            ring::successors(
                self.live_others.iter().copied(),
                self.id,
                self.cfg.monitored_successors,
            )
        };
        self.monitors.retain(|id, _| targets.contains(id));
        self.probes.retain(|id, _| targets.contains(id));
        for t in targets {
            if !self.monitors.contains_key(&t) {
                self.monitors
                    .insert(t, Monitor::new(self.now_ms, &self.cfg, self.z_suspect));
            }
        }
    }

    /// How many times each claim is sent, for the current cluster size.
    pub(crate) fn transmit_limit(&self) -> u32 {
        retransmit_limit(self.cfg.retransmit_mult, self.live_others.len() + 1)
    }

    pub(crate) fn emit(&mut self, e: Event) {
        self.actions.push(Action::Event(e));
    }

    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn advance(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Declares dead every suspect whose timeout has passed.
    fn expire_suspicions(&mut self) {
        let due: Vec<(NodeId, Incarnation)> = self
            .suspicions
            .iter()
            .filter(|(_, s)| s.deadline_ms() <= self.now_ms)
            .map(|(&id, s)| (id, s.incarnation))
            .collect();
        for (id, incarnation) in due {
            self.adopt(Update {
                id,
                incarnation,
                state: State::Dead,
                by: self.id,
            });
        }
    }

    /// Checks the structural invariants; on in debug builds (every test and simulation).
    pub(crate) fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let me = &self.members[&self.id];
        assert_eq!(me.incarnation, self.incarnation, "self incarnation");
        let want = if self.leaving {
            State::Left
        } else {
            State::Alive
        };
        assert_eq!(me.state, want, "self state");
        assert!(self.members.len() <= self.cfg.members_max, "member cap");
        let live: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(&id, m)| id != self.id && m.state.is_live())
            .map(|(&id, _)| id)
            .collect();
        assert_eq!(live, self.live_others, "live set cache");
        assert!(self.monitors.len() <= self.cfg.monitored_successors);
        assert!(!self.leaving || self.monitors.is_empty());
        for id in self.monitors.keys() {
            assert!(
                self.live_others.binary_search(id).is_ok(),
                "monitoring {id}, not live"
            );
        }
        for id in self.probes.keys() {
            assert!(
                self.monitors.contains_key(id),
                "probe round for unmonitored {id}"
            );
        }
        for (id, m) in &self.members {
            let s = self.suspicions.get(id);
            assert_eq!(
                m.state == State::Suspect,
                s.is_some(),
                "suspicion timer for {id}"
            );
            if let Some(s) = s {
                assert_eq!(s.incarnation, m.incarnation, "suspicion of {id}");
            }
        }
        assert!(self
            .suspicions
            .keys()
            .all(|id| self.members.contains_key(id)));
        assert!(self.relays <= crate::probe::RELAYS_MAX);
    }
}

/// The next firing of a periodic timer that was due at `due_ms`: one period later, or
/// one period from `now_ms` if the caller was not ticked for a while (missed periods
/// are skipped, not replayed in a burst).
pub(crate) fn next_period(due_ms: u64, period_ms: u64, now_ms: u64) -> u64 {
    let next = due_ms.saturating_add(period_ms);
    if next > now_ms {
        next
    } else {
        now_ms.saturating_add(period_ms)
    }
}

impl Message {
    /// A message with no piggybacked claims.
    pub fn bare(body: Body) -> Message {
        Message {
            body,
            updates: Vec::new(),
        }
    }
}
