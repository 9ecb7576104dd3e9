//! hakv's failure detector and membership dissemination, sans-IO.
//!
//! Every node runs one [`Detector`]. It monitors its `k` successors on a ring of the
//! live members ([`ring`]) with periodic pings; the acks are heartbeats feeding a
//! φ-accrual detector per successor ([`phi`]). When φ crosses the threshold, the
//! detector does not yet accuse: it asks `m` other members to ping the peer for it
//! (SWIM's indirect probe), so one bad link cannot evict a healthy node. Only when no
//! ack, direct or relayed, arrives in time does it mark the peer *Suspect* and gossip
//! the suspicion. The suspect — told first thing in its monitors' next pings —
//! refutes by raising its incarnation; otherwise, after a timeout that grows with
//! log N and shrinks as other monitors confirm ([`suspicion`], after Lifeguard), it is
//! declared *Dead*. Claims about members ride on every message, each passed on about
//! λ·log N times ([`queue`]); claims are ordered so that merging them in any order
//! converges ([`member`]), and dead members are remembered so stale gossip cannot
//! bring them back.
//!
//! ```text
//!        tick(now_ms)          step(now_ms, from, msg)      join / leave
//!             │                          │                        │
//!   ┌─────────▼──────────────────────────▼────────────────────────▼──────┐
//!   │ Detector                                                          │
//!   │   probe.rs   ping k successors ─ acks ─▶ φ ─ ≥ threshold ─▶ ping-req│
//!   │              to m helpers ─ no ack in time ─▶ Suspect               │
//!   │   detector.rs merge claims (incarnation, state) by max; refute own  │
//!   │              suspicion; Suspect ─ timeout(N, confirmations) ─▶ Dead │
//!   │   gossip.rs  piggyback on every message, gossip to random members, │
//!   │              whole-list sync to join and for anti-entropy           │
//!   └──────────────────────────────┬─────────────────────────────────────┘
//!                                  ▼
//!      take_actions(): Send { to, msg } | Event(MemberUp | Suspect | Alive | Dead | Left | Refuted)
//!      poll_at(): when to tick next          members(): state, incarnation, φ
//! ```
//!
//! No clock, socket, thread or global randomness: time is the caller's monotonic
//! milliseconds, randomness a seeded [`consensus::Rng`], so a run replays exactly from
//! its inputs — which [`sim`], the deterministic simulator in this crate, relies on.
//! Messages have a versioned binary encoding ([`wire`]) whose decoder never panics;
//! malformed messages are refused before they change anything, and everything a peer
//! can make this node store is bounded.
//!
//! Trust model: peers are authenticated by the transport and not malicious. A buggy
//! peer cannot crash a node or grow its memory without bound, but a lying one can
//! slander a member (as in every SWIM derivative).

#![warn(missing_docs)]

mod action;
pub mod config;
mod detector;
mod gossip;
pub mod member;
pub mod message;
pub mod phi;
mod probe;
pub mod queue;
pub mod ring;
pub mod sim;
pub mod suspicion;
pub mod wire;

pub use action::{Action, Event};
pub use config::{Config, FaultKnobs};
pub use consensus::NodeId;
pub use detector::{Detector, MemberView, Stats};
pub use member::{Incarnation, State, Update};
pub use message::{Body, Message, Refused};
pub use probe::RELAYS_MAX;
