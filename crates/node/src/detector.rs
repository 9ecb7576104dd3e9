//! The runtime shell of the failure detector: one tokio task per node owns a
//! [`membership::Detector`], gives it time and the membership frames the transport
//! delivers, sends what it asks through the peer transport, and publishes the view.
//!
//! ```text
//!  Transport ─ Incoming{group: MEMBERSHIP_GROUP} ─▶ (caller's router) ─▶ mpsc ─┐
//!                                                                              ▼
//!   sleep_until(poll_at) ─▶ tick(now_ms) ┐                          ┌─ step(now_ms, from, decode(payload))
//!                                        ▼                          ▼
//!                                 ┌─────────────── Detector ───────────────┐
//!                                 └──┬─────────────────────────────────┬───┘
//!          Send{to, msg} ─ wire::to_bytes ─▶ Transport::send(to, MEMBERSHIP_GROUP, ..)
//!          Event(..) ─▶ tracing                                        │
//!                                          members() ─▶ watch channel ─▶ DetectorHandle::view / dead_for
//! ```
//!
//! Time is the task's own monotonic clock: milliseconds since [`DetectorHandle::start`].
//! Frames that do not decode, or that the detector refuses, are counted and logged at
//! debug level, never acted on: a buggy peer cannot stop this node's detector.
//!
//! [`production_config`] is the tuning a node runs with: a crash is declared dead
//! everywhere in about 2 s on a quiet LAN (derivation on the function).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use membership::{wire, Action, Config, Detector, Event, State, Stats};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::transport::{Incoming, Transport};

/// The transport group that carries failure-detector messages.
pub const MEMBERSHIP_GROUP: u64 = u64::MAX - 2;

/// At most this many frames already queued are stepped before the view is published
/// again, so a burst cannot delay a due tick for long.
const FRAMES_PER_ROUND: usize = 64;

/// The detector configuration a hakv node runs with, for node `id` (the seed is set by
/// [`DetectorHandle::start`]). It is [`Config::new`]'s protocol — φ-accrual on 3 ring
/// successors, 3 helpers × 2 attempts of indirect probes before any suspicion, Lifeguard
/// suspicion timeouts — on a faster clock, since hakv wants a crashed node noticed in
/// about two seconds, not five:
///
/// | parameter | here | default | why |
/// |---|---|---|---|
/// | `probe_interval_ms` | 200 | 500 | 3 pings and 3 acks of ~30 bytes per node per 200 ms is nothing on a LAN |
/// | `phi_acceptable_pause_ms` | 400 | 1000 | two missed acks (or a 400 ms stall) are never suspicious by themselves |
/// | `phi_min_std_dev_ms` | 50 | 100 | the prior's σ (a quarter of the interval); loopback/LAN jitter is far below it |
/// | `indirect_timeout_ms` | 200 | 500 | four one-way hops on a LAN take well under a millisecond; 200 ms leaves room for a busy event loop |
/// | `suspicion_mult` α, `suspicion_max_mult` β | 4, 6 | 4, 6 | unchanged; on the faster period: 800 ms confirmed (N ≤ 10), 4.8 s for a lone accuser |
///
/// What that gives, from a crash: φ (z = 5.61 at φ = 8) crosses `200 + 400 + 5.61 × 50
/// ≈ 880 ms` after the last ack, i.e. 0.7–0.9 s after the crash; the probe round adds
/// `2 × 200 ms`, so the first Suspect comes at about 1.1–1.3 s; the crashed node's
/// three monitors accuse within one period of each other, which shortens everyone's
/// suspicion to the 800 ms minimum: **dead everywhere at about 2–2.3 s**. The loss-free
/// worst case with no confirmation at all ([`Config::crash_detection_bound_ms`]) is
/// 7.9 s for 5 nodes and 10.2 s for 20 at 20 ms delays, far below hakv's 30 s
/// `down-after`. Measured on loopback (`tests/detector.rs`, 5 nodes, 2 shared cores):
/// first suspicion 1.1–1.3 s after the crash, dead on every node at 1.9–2.2 s.
///
/// Against false deaths: a live node is suspected only after ~1.3 s in which neither
/// its direct acks nor those relayed by 2 × 3 helpers arrive, and it then has 0.8–4.8 s
/// to hear of the suspicion (its monitors' next ping carries it) and refute. A broken
/// link between two nodes is bridged by the indirect probes and never accuses either.
pub fn production_config(id: u64) -> Config {
    Config {
        probe_interval_ms: 200,
        phi_acceptable_pause_ms: 400,
        phi_min_std_dev_ms: 50,
        indirect_timeout_ms: 200,
        indirect_attempts: 2,
        suspicion_mult: 4,
        suspicion_max_mult: 6,
        ..Config::new(id)
    }
}

/// A member's state as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Answering, directly or through indirect probes.
    Alive,
    /// Its probes failed; it has until the suspicion timeout to refute. Still live.
    Suspect,
    /// Its suspicion timed out unrefuted. It comes back only at a higher incarnation.
    Dead,
    /// It left gracefully.
    Left,
}

impl From<State> for PeerState {
    fn from(s: State) -> PeerState {
        match s {
            State::Alive => PeerState::Alive,
            State::Suspect => PeerState::Suspect,
            State::Dead => PeerState::Dead,
            State::Left => PeerState::Left,
        }
    }
}

/// One other member's health as this node sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    /// The member's node id.
    pub id: u64,
    /// Its state in this node's view.
    pub state: PeerState,
    /// When it entered this state, as seen here.
    pub since: Instant,
    /// φ at the last publication, if this node monitors it directly.
    pub phi: Option<f64>,
    /// Its incarnation in this node's view (raised each time it refutes or rejoins).
    pub incarnation: u64,
}

/// Counters of what the shell did not hand to the detector or the transport.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShellCounters {
    /// Frames whose payload did not decode as a membership message.
    pub undecodable: u64,
    /// Decoded messages the detector refused as malformed.
    pub refused: u64,
    /// Frames of another group routed here by mistake (dropped).
    pub wrong_group: u64,
    /// Messages the transport would not queue (unknown peer or full queue).
    pub send_dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    undecodable: AtomicU64,
    refused: AtomicU64,
    wrong_group: AtomicU64,
    send_dropped: AtomicU64,
}

/// What the task publishes after every input.
#[derive(Clone, Debug)]
struct Snapshot {
    members: Vec<Health>,
    stats: Stats,
}

/// A running failure detector. Dropping it stops the detector's task.
pub struct DetectorHandle {
    view: watch::Receiver<Arc<Snapshot>>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl DetectorHandle {
    /// Starts a tokio task that owns the detector of node `me`, founded with the
    /// members `known` (this node may be among them): it ticks the detector at its
    /// `poll_at` (monotonic milliseconds since this call), steps it with the frames
    /// received on `incoming` (the caller routes [`MEMBERSHIP_GROUP`] frames there),
    /// sends its messages through `transport` on [`MEMBERSHIP_GROUP`], and publishes the
    /// member view after every input. Suspect, Dead and Alive (refuted) events are
    /// logged with the node ids. The task stops when the handle is dropped or when
    /// `incoming` closes (the node is shutting down).
    ///
    /// `cfg.id` is set to `me` and `cfg.seed` to `me ^ pid`, so nodes started together,
    /// and the same node across restarts, do not share a random sequence.
    ///
    /// # Panics
    /// Outside a tokio runtime, or if `cfg` is invalid (`me` = 0, a zero period, ...):
    /// both are programming errors.
    pub fn start(
        me: u64,
        known: Vec<u64>,
        mut cfg: Config,
        transport: Arc<Transport>,
        incoming: mpsc::Receiver<Incoming>,
    ) -> DetectorHandle {
        cfg.id = me;
        cfg.seed = me ^ u64::from(std::process::id());
        let start = Instant::now();
        let detector = Detector::new(cfg, 0, &known)
            .unwrap_or_else(|e| panic!("invalid failure detector configuration: {e}"));
        let (tx, view) = watch::channel(Arc::new(snapshot(&detector, start)));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(
            detector,
            start,
            transport,
            incoming,
            tx,
            counters.clone(),
        ));
        DetectorHandle {
            view,
            counters,
            task,
        }
    }

    /// The current view of every other member, by id (dead and departed ones included).
    pub fn view(&self) -> Vec<Health> {
        self.view.borrow().members.clone()
    }

    /// One member's health in the current view, if known.
    pub fn health(&self, id: u64) -> Option<Health> {
        self.view
            .borrow()
            .members
            .iter()
            .find(|h| h.id == id)
            .cloned()
    }

    /// How long `id` has been Dead as seen here (None if not dead, or unknown).
    pub fn dead_for(&self, id: u64) -> Option<Duration> {
        self.health(id)
            .filter(|h| h.state == PeerState::Dead)
            .map(|h| Instant::now().saturating_duration_since(h.since))
    }

    /// The detector's own counters (messages, probe rounds, refutations) as of the last
    /// publication.
    pub fn stats(&self) -> Stats {
        self.view.borrow().stats
    }

    /// What the shell dropped: undecodable or refused frames, misrouted frames, sends
    /// the transport would not queue.
    pub fn counters(&self) -> ShellCounters {
        let c = &self.counters;
        ShellCounters {
            undecodable: c.undecodable.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            wrong_group: c.wrong_group.load(Ordering::Relaxed),
            send_dropped: c.send_dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for DetectorHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The detector's task: wait for the next deadline or frame, feed it in, carry out the
/// actions, publish.
async fn run(
    mut detector: Detector,
    start: Instant,
    transport: Arc<Transport>,
    mut incoming: mpsc::Receiver<Incoming>,
    view: watch::Sender<Arc<Snapshot>>,
    counters: Arc<Counters>,
) {
    let me = detector.id();
    let now_ms = || start.elapsed().as_millis() as u64;
    carry_out(&mut detector, &transport, &counters);
    loop {
        // poll_at is finite while running (the probe and sync timers are always set);
        // the cap only keeps the Instant arithmetic from overflowing.
        let at = detector.poll_at().min(now_ms().saturating_add(3_600_000));
        let deadline = start + Duration::from_millis(at);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => detector.tick(now_ms()),
            frame = incoming.recv() => {
                let Some(frame) = frame else {
                    tracing::info!(node = me, "membership channel closed; failure detector stopping");
                    return;
                };
                on_frame(&mut detector, now_ms(), frame, &counters);
                for _ in 1..FRAMES_PER_ROUND {
                    match incoming.try_recv() {
                        Ok(frame) => on_frame(&mut detector, now_ms(), frame, &counters),
                        Err(_) => break,
                    }
                }
            }
        }
        carry_out(&mut detector, &transport, &counters);
        view.send_replace(Arc::new(snapshot(&detector, start)));
    }
}

/// Decodes and steps one frame; anything wrong with it is counted and logged, never
/// fatal.
fn on_frame(detector: &mut Detector, now_ms: u64, frame: Incoming, counters: &Counters) {
    let me = detector.id();
    if frame.group != MEMBERSHIP_GROUP {
        counters.wrong_group.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            node = me,
            from = frame.from,
            group = frame.group,
            "frame of another group routed to the failure detector; dropped"
        );
        return;
    }
    let msg = match wire::decode(frame.payload) {
        Ok(msg) => msg,
        Err(e) => {
            counters.undecodable.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(node = me, from = frame.from, error = ?e, "undecodable membership frame; dropped");
            return;
        }
    };
    if let Err(e) = detector.step(now_ms, frame.from, msg) {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(node = me, from = frame.from, error = %e, "membership message refused");
    }
}

/// Sends every message the detector asked for and logs its events.
fn carry_out(detector: &mut Detector, transport: &Transport, counters: &Counters) {
    let me = detector.id();
    for action in detector.take_actions() {
        match action {
            Action::Send { to, msg } => {
                if !transport.send(to, MEMBERSHIP_GROUP, &wire::to_bytes(&msg)) {
                    counters.send_dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::trace!(node = me, to, "membership message not queued");
                }
            }
            Action::Event(e) => log_event(me, e),
        }
    }
}

fn log_event(me: u64, e: Event) {
    match e {
        Event::MemberUp { id, incarnation } => {
            tracing::info!(
                node = me,
                member = id,
                incarnation = incarnation.0,
                "member up"
            )
        }
        Event::Suspect {
            id,
            incarnation,
            by,
        } => tracing::warn!(
            node = me,
            member = id,
            incarnation = incarnation.0,
            by,
            "member suspected"
        ),
        Event::Alive { id, incarnation } => tracing::info!(
            node = me,
            member = id,
            incarnation = incarnation.0,
            "member refuted its suspicion; alive"
        ),
        Event::Dead {
            id,
            incarnation,
            by,
        } => tracing::warn!(
            node = me,
            member = id,
            incarnation = incarnation.0,
            by,
            "member declared dead"
        ),
        Event::Left { id, incarnation } => {
            tracing::info!(
                node = me,
                member = id,
                incarnation = incarnation.0,
                "member left"
            )
        }
        Event::Refuted { incarnation } => tracing::warn!(
            node = me,
            incarnation = incarnation.0,
            "this node was suspected or declared dead; refuted"
        ),
    }
}

/// Every other member's health, with the detector's millisecond clock mapped onto
/// `start`.
fn snapshot(detector: &Detector, start: Instant) -> Snapshot {
    let me = detector.id();
    let members = detector
        .members()
        .into_iter()
        .filter(|m| m.id != me)
        .map(|m| Health {
            id: m.id,
            state: m.state.into(),
            since: start + Duration::from_millis(m.since_ms),
            phi: m.phi,
            incarnation: m.incarnation.0,
        })
        .collect();
    Snapshot {
        members,
        stats: detector.stats(),
    }
}
