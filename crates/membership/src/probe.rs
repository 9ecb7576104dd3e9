//! Monitoring the ring successors: periodic pings whose acks feed φ, probe rounds when
//! φ crosses the threshold, and accusations when a round fails.
//!
//! ```text
//!  every probe_interval ─▶ Ping each successor ─▶ Ack ─▶ φ.heartbeat
//!
//!  φ(B) ≥ phi_suspect, no round in flight, not already accused by us:
//!      attempt: Ping B directly once more, PingReq{B} to m random live members
//!      ├─ Ack from B, or IndirectAck{B} from a helper we asked ─▶ round succeeds
//!      │     (a relayed ack restarts φ's clock without a sample)
//!      ├─ nothing by indirect_timeout, attempts left ─▶ another attempt
//!      └─ nothing after the last attempt ─▶ accuse B: Suspect (gossiped), or a
//!            confirmation if B is already suspected by others
//! ```
//!
//! The indirect round is what keeps one bad link (A cannot reach B, everyone else can)
//! from evicting B: A's φ for B keeps crossing the threshold, but every round is rescued
//! by a helper, so A never accuses.

use consensus::NodeId;

use crate::detector::{next_period, Detector, Pending, PingPurpose, Probe};
use crate::member::{State, Update};
use crate::message::Body;

/// Most pings outstanding on behalf of other members' probe rounds. Anyone may send a
/// PingReq, so this bounds what a flood of them can make this node do or remember.
pub const RELAYS_MAX: usize = 256;

impl Detector {
    /// The periodic half of monitoring, run by `tick`.
    pub(crate) fn probe_tick(&mut self) {
        if self.now_ms >= self.next_probe_ms {
            let targets: Vec<NodeId> = self.monitors.keys().copied().collect();
            for t in targets {
                self.send_ping(t, PingPurpose::Monitor, self.monitor_ping_lifetime_ms());
            }
            self.next_probe_ms =
                next_period(self.next_probe_ms, self.cfg.probe_interval_ms, self.now_ms);
        }
        let timed_out: Vec<NodeId> = self
            .probes
            .iter()
            .filter(|(_, p)| p.deadline_ms <= self.now_ms)
            .map(|(&t, _)| t)
            .collect();
        for t in timed_out {
            if self.probes[&t].attempts_left > 0 {
                self.attempt(t);
            } else {
                self.probes.remove(&t);
                self.stats.probe_rounds_failed += 1;
                self.accuse(t);
            }
        }
        let due: Vec<NodeId> = self
            .monitors
            .keys()
            .copied()
            .filter(|&t| self.round_due_at(t).is_some_and(|at| at <= self.now_ms))
            .collect();
        for t in due {
            self.start_round(t);
        }
    }

    /// When a probe round for monitored `target` becomes due: when its φ crosses the
    /// threshold, unless a round is already in flight or this node already accused the
    /// target's current incarnation. `None`: no round will be due without new input.
    pub(crate) fn round_due_at(&self, target: NodeId) -> Option<u64> {
        let monitor = self.monitors.get(&target)?;
        if self.probes.contains_key(&target) {
            return None;
        }
        match self.members.get(&target)?.state {
            State::Alive => {}
            State::Suspect if !self.suspicions.get(&target)?.by_self() => {}
            _ => return None,
        }
        Some(monitor.suspicious_at_ms)
    }

    /// φ crossed the threshold for `target`: start a probe round with its first attempt.
    fn start_round(&mut self, target: NodeId) {
        self.stats.probe_rounds += 1;
        if self.cfg.knobs.skip_indirect_probes {
            return self.accuse(target);
        }
        self.probes.insert(
            target,
            Probe {
                asked: Vec::new(),
                deadline_ms: self.now_ms,
                attempts_left: self.cfg.indirect_attempts,
            },
        );
        self.attempt(target);
    }

    /// One attempt of the round for `target`: one more direct ping, and up to
    /// `indirect_probes` other live members (Alive ones first, drawn afresh each
    /// attempt) asked to reach it.
    fn attempt(&mut self, target: NodeId) {
        self.send_ping(
            target,
            PingPurpose::Monitor,
            self.monitor_ping_lifetime_ms(),
        );
        let (alive, suspect): (Vec<NodeId>, Vec<NodeId>) = self
            .live_others
            .iter()
            .copied()
            .filter(|&id| id != target)
            .partition(|id| self.members[id].state == State::Alive);
        let mut helpers = self.pick(&alive, self.cfg.indirect_probes);
        let more = self.cfg.indirect_probes - helpers.len();
        helpers.extend(self.pick(&suspect, more));
        let mut asked = Vec::with_capacity(helpers.len());
        for h in helpers {
            let seq = self.next_seq();
            self.send(h, Body::PingReq { seq, target });
            asked.push((seq, h));
        }
        let deadline_ms = self.now_ms + self.cfg.indirect_timeout_ms;
        let probe = self
            .probes
            .get_mut(&target)
            .expect("attempts belong to a round");
        probe.asked.extend(asked);
        probe.deadline_ms = deadline_ms;
        probe.attempts_left -= 1;
    }

    /// A probe round for `target` failed: suspect it (or, if others already do, add our
    /// accusation as a confirmation).
    fn accuse(&mut self, target: NodeId) {
        let Some(claim) = self.claim_of(target) else {
            return;
        };
        if !claim.state.is_live() {
            return;
        }
        if self.cfg.knobs.skip_suspicion {
            return self.adopt(Update {
                state: State::Dead,
                by: self.id,
                ..claim
            });
        }
        let ours = Update {
            state: State::Suspect,
            by: self.id,
            ..claim
        };
        if claim.state == State::Alive {
            self.adopt(ours);
        } else if self
            .suspicions
            .get_mut(&target)
            .is_some_and(|s| s.confirm(self.id, self.id))
        {
            self.queue.push(ours);
        }
    }

    /// Sends a ping to `target` and remembers why, for `lifetime_ms`.
    pub(crate) fn send_ping(&mut self, target: NodeId, purpose: PingPurpose, lifetime_ms: u64) {
        let seq = self.next_seq();
        if matches!(purpose, PingPurpose::Relay { .. }) {
            self.relays += 1;
            self.stats.relays += 1;
        }
        self.pings.insert(
            seq,
            Pending {
                target,
                purpose,
                expires_ms: self.now_ms.saturating_add(lifetime_ms),
            },
        );
        self.send(target, Body::Ping { seq });
    }

    /// How long an ack to a monitoring ping still counts as a heartbeat: a few periods,
    /// so a slow answer is late rather than lost.
    fn monitor_ping_lifetime_ms(&self) -> u64 {
        (4 * self.cfg.probe_interval_ms).max(self.cfg.indirect_timeout_ms)
    }

    /// An Ack: a heartbeat from a monitored peer (which also settles its probe round),
    /// or an answer to a ping we sent for someone else's round, to be relayed.
    pub(crate) fn on_ack(&mut self, from: NodeId, seq: u64) {
        match self.pings.get(&seq) {
            Some(p) if p.target == from => {}
            _ => return, // unknown, expired, or from the wrong node: ignore
        }
        let p = self.pings.remove(&seq).expect("checked above");
        match p.purpose {
            PingPurpose::Monitor => {
                let params = self.cfg.phi_params();
                if let Some(m) = self.monitors.get_mut(&from) {
                    m.heartbeat(self.now_ms, &params, self.z_suspect);
                }
                self.probes.remove(&from);
            }
            PingPurpose::Relay { origin, origin_seq } => {
                self.relays -= 1;
                self.send(
                    origin,
                    Body::IndirectAck {
                        seq: origin_seq,
                        target: from,
                    },
                );
            }
        }
    }

    /// A PingReq: ping `target` on `from`'s behalf (bounded by [`RELAYS_MAX`]). Asked to
    /// reach ourselves, we answer at once: we are evidently reachable from here.
    pub(crate) fn on_ping_req(&mut self, from: NodeId, seq: u64, target: NodeId) {
        if target == self.id {
            return self.send(from, Body::IndirectAck { seq, target });
        }
        if self.relays >= RELAYS_MAX {
            return;
        }
        let purpose = PingPurpose::Relay {
            origin: from,
            origin_seq: seq,
        };
        self.send_ping(target, purpose, self.cfg.indirect_timeout_ms);
    }

    /// An IndirectAck: if it answers one of our PingReqs in the round for `target`, the
    /// round succeeds and φ's clock restarts (without a sample: the direct path is what
    /// φ models, and it is still silent).
    pub(crate) fn on_indirect_ack(&mut self, from: NodeId, seq: u64, target: NodeId) {
        let ours = self
            .probes
            .get(&target)
            .is_some_and(|p| p.asked.contains(&(seq, from)));
        if !ours {
            return;
        }
        self.probes.remove(&target);
        let params = self.cfg.phi_params();
        if let Some(m) = self.monitors.get_mut(&target) {
            m.touch(self.now_ms, &params, self.z_suspect);
        }
    }

    /// Forgets pings nobody answered in time.
    pub(crate) fn expire_pings(&mut self) {
        let now = self.now_ms;
        let mut relays_expired = 0;
        self.pings.retain(|_, p| {
            let keep = p.expires_ms > now;
            if !keep && matches!(p.purpose, PingPurpose::Relay { .. }) {
                relays_expired += 1;
            }
            keep
        });
        self.relays -= relays_expired;
    }

    /// Up to `n` distinct members drawn uniformly from `from` (partial Fisher–Yates).
    pub(crate) fn pick(&mut self, from: &[NodeId], n: usize) -> Vec<NodeId> {
        let mut pool = from.to_vec();
        let n = n.min(pool.len());
        for i in 0..n {
            let j = self.rng.range(i as u64, pool.len() as u64) as usize;
            pool.swap(i, j);
        }
        pool.truncate(n);
        pool
    }
}
