//! hakv's Multi-Paxos core: a sans-IO, deterministic implementation of Multi-Paxos with a
//! distinguished proposer (Lamport, "Paxos Made Simple" 2001; van Renesse & Altinbuken,
//! "Paxos Made Moderately Complex" 2015) behind the [`consensus::Engine`] contract — the
//! same contract as the `raft` crate, so one shell, one simulator and one set of checks
//! serve both.
//!
//! # The protocol
//!
//! Every node is an acceptor and a learner; at most one at a time acts as the leader
//! (the distinguished proposer).
//!
//! - **Ballots** are `(round, node)` pairs ([`Ballot`]), totally ordered; a node only
//!   proposes with its own id, so no two proposers share a ballot.
//! - **Phase 1 runs once for every open slot.** A node that suspects the leader (no
//!   heartbeat for a randomized timeout) first asks a quorum whether it *would* be
//!   promised (a pre-prepare, which changes no state), then sends `Prepare(b, commit)`:
//!   each acceptor promises `b` and reports every value it accepted after the
//!   proposer's chosen prefix `commit`. In each such slot the new leader re-proposes the
//!   value of the highest accepted ballot among a quorum's reports — keeping the value's
//!   *origin*, the ballot that first proposed it — and proposes a no-op in every slot no
//!   report mentions, so that later commands are not held up by a hole.
//! - **Phase 2 per slot, batched and pipelined.** The leader sends `Accept(b, first,
//!   values, commit)` for runs of consecutive slots, many messages in flight per
//!   acceptor. Acceptors accept out of order (holes allowed) and acknowledge the longest
//!   prefix they hold as chosen or accepted in `b` (`through`), which the leader counts;
//!   a slot is chosen once a quorum's `through` covers it.
//! - **Learning and applying.** The leader's commit index (every slot up to it chosen)
//!   rides on accepts and heartbeats; an acceptor learns a slot chosen once it holds it in
//!   the leader's ballot. Values are handed to the state machine strictly in slot order.
//! - **Failure detection** is by heartbeats. A proposer that is preempted (a higher
//!   ballot refuses or overtakes it) backs off for a fresh randomized timeout, so two
//!   dueling proposers stop preempting each other. **Stickiness**: an acceptor that hears
//!   from a live leader promises nobody else, and a leader that does not hear from a
//!   quorum for a timeout steps down (as Raft's check-quorum).
//!
//! # Durability
//!
//! Promises and acceptances are durable before anyone hears of them: they travel in
//! [`consensus::Ready::messages_after_sync`], and so does a candidate's `Prepare`, so
//! that no crash lets it reuse a ballot. How the acceptor state maps onto the shared,
//! Raft-shaped records (`HardState.term` = promised ballot, `Entry{index: slot, term:
//! accepted ballot, payload: record(origin, value)}`, holes as `term 0` no-ops) is in
//! [`durable`], with why a torn write can lose only what nobody was told. A value's
//! origin is what the shell sees as its term: a proposal `(index, term)` is chosen iff
//! the entry applied at `index` has that term, across re-proposals and crashes. The
//! engine needs the shell to persist a ready's `entries` all or none, as hakv's log
//! engine does; [`durable`] explains why no Paxos acceptor can do without it.
//!
//! # Reconfiguration: configuration commands with α = 1
//!
//! A membership change is a value in the log; the change chosen in slot `k` decides the
//! acceptors of every slot after `k` (Lamport's α-reconfiguration with α = 1). There is
//! no joint consensus: each slot has exactly one configuration, and quorums of different
//! configurations never need to intersect because phase 1 and phase 2 of a slot always
//! use that slot's configuration. Two rules keep it so:
//! 1. the leader proposes nothing after an unchosen change of voters (it only knows the
//!    acceptors of later slots once the change is chosen) — a pipeline stall of about a
//!    round trip, during which proposals get `ConfigChangePending`;
//! 2. once such a change is chosen, the leader runs phase 1 again, in its own ballot,
//!    with a quorum of the *new* voters for every later slot before proposing there —
//!    the insight of Vertical Paxos that a configuration must be activated by a phase 1
//!    of its own, since an earlier leader may have had values accepted under it that no
//!    old quorum saw. A new leader likewise stops adopting reported values at the first
//!    change of voters and continues under the new configuration after that phase 1.
//!
//! One change at a time; a leader removed from the voters proposes nothing more, keeps
//! sending the commit index until a quorum of the new voters knows the change is chosen,
//! then hands over with `TimeoutNow`. Learners receive every value and never count.
//! Why not stop-sign Paxos or joint consensus: α = 1 needs no special "stopped" state and
//! keeps every quorum rule one line long; the stall is paid only by voter changes.
//!
//! # Reads: a quorum read barrier
//!
//! `read_index` is answered at the leader's commit index once a heartbeat round started
//! after the request is acknowledged by a quorum in the leader's ballot (an acceptor
//! acknowledges only while it has promised nothing higher, so no other leader could have
//! chosen anything newer). A new leader first gets every value it re-proposed chosen. No
//! leader lease: reads never rest on a clock assumption. Followers answer `NotLeader`.
//!
//! # Snapshots
//!
//! The shell's snapshot replaces a chosen prefix; an acceptor whose next slot the leader
//! has compacted receives the leader's snapshot in chunks. An acceptor that already holds
//! everything a snapshot covers does not install it (Raft §7). Installing replaces the
//! whole durable log, so an acceptor holding acknowledged slots beyond the snapshot first
//! records durably that it forgot them, and from then on promises only proposers that
//! know those slots chosen — as it refuses, always, a proposer that lacks slots it has
//! compacted (it could not report them). An acknowledged acceptance is thus never
//! silently forgotten, and no acceptor waits on the leader to install.
//!
//! Layout: `paxos.rs` (state, `Engine`, ready/advance, invariants), `acceptor.rs`,
//! `proposer.rs`, `replication.rs`, `read.rs`, `log.rs`, `progress.rs`, `durable.rs`,
//! `message.rs`, [`wire`], `validate.rs`. Nothing here reads a clock, a socket, a disk or
//! global randomness.

#![warn(missing_docs)]

mod acceptor;
mod ballot;
mod config;
pub mod durable;
mod log;
mod message;
mod paxos;
mod progress;
mod proposer;
mod read;
mod replication;
mod validate;
pub mod wire;

pub use ballot::Ballot;
pub use config::{Config, FaultKnobs};
pub use message::{Accepted, Body, Message, Report, Value};
pub use paxos::Paxos;
