//! The Multi-Paxos node: state, the `Engine` entry points, ready/advance, membership
//! bookkeeping and invariants.
//!
//! The protocol rules live in sibling files, one concern each: `acceptor.rs` (promises,
//! acceptances, learning, snapshot installation), `proposer.rs` (ballots, phase 1,
//! taking over, configuration refresh, transfer), `replication.rs` (phase 2 as leader:
//! proposing, pipelining, counting, heartbeats, snapshots), `read.rs` (reads).
//!
//! ```text
//!  tick ──▶ Follower ──timeout──▶ Candidate ──quorum of promises──▶ Leader
//!             ▲  ▲   (new ballot)     │ preempted / refused           │ ┐ voters changed:
//!             │  └────────────────────┘                               │ ┘ phase 1 again
//!             └─ higher ballot seen / lost quorum (check-quorum) / removed ─┘
//! ```

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};

use consensus::{
    CompactError, ConfigChange, ConfigError, Engine, Entry, HardState, LogIndex, MemberChange,
    Membership, NodeId, Outbound, Payload, PeerStatus, ProposeError, Proposed, ReadState, Ready,
    Recovered, Rng, Role, Snapshot, SnapshotMeta, Status, StepError, Term,
};

use crate::ballot::Ballot;
use crate::config::Config;
use crate::durable;
use crate::log::PaxosLog;
use crate::message::{Accepted, Body, Message, Value};
use crate::progress::Progress;
use crate::read::Reads;

/// What a handed-out `Ready` promised to persist, remembered until `advance`.
#[derive(Debug)]
struct InProgress {
    number: u64,
    /// The log was handed to the shell up to here.
    upto: LogIndex,
    hard_state: HardState,
}

/// A phase 1 in progress: a candidate's, or a leader's for a new set of acceptors (or a
/// pre-candidate's probe, which only counts answers).
#[derive(Debug)]
pub(crate) struct Phase1 {
    /// Promises report the acceptances after this slot (the proposer's commit index).
    pub(crate) from: LogIndex,
    /// The configuration whose quorum must promise.
    pub(crate) membership: Membership,
    /// Acceptors that promised, with the commit index each reported.
    pub(crate) granted: BTreeMap<NodeId, LogIndex>,
    /// Acceptors that refused.
    pub(crate) refused: BTreeSet<NodeId>,
    /// Per slot, the acceptance with the highest ballot reported so far.
    pub(crate) merged: BTreeMap<LogIndex, Accepted>,
    /// This node's own promise is durable (and so counts).
    pub(crate) self_durable: bool,
}

/// One Multi-Paxos node. See the crate docs for the protocol and the module docs for
/// the layout.
#[derive(Debug)]
pub struct Paxos {
    pub(crate) cfg: Config,
    pub(crate) id: NodeId,
    pub(crate) rng: Rng,
    /// The highest ballot this node promised, accepted in or leads with. Durable
    /// (`HardState.term`) before any message that depends on it leaves.
    pub(crate) promised: Ballot,
    /// The highest round seen in any message, so that a new ballot exceeds it.
    pub(crate) round_seen: u64,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: PaxosLog,
    /// The membership in effect for the slot after the commit index: the snapshot's,
    /// then every chosen configuration value in slot order.
    pub(crate) membership: Membership,
    /// Memberships produced by chosen slots after the snapshot, by slot, so that a
    /// snapshot at any applied index can name its membership.
    pub(crate) membership_history: Vec<(LogIndex, Membership)>,
    /// The membership at the snapshot base.
    pub(crate) membership_base: Membership,
    /// Candidate or leader: the ballot it campaigns or leads with (== `promised`).
    /// Pre-candidate: the ballot it would campaign with (above `promised`).
    pub(crate) ballot: Ballot,
    pub(crate) phase1: Option<Phase1>,
    /// Leader: the last slot it proposed in its ballot; its log holds a value in every
    /// slot up to here.
    pub(crate) proposal_end: LogIndex,
    /// Leader: the slots it adopted from promises (taking over, or after a change of
    /// voters) end here; reads wait until they are chosen.
    pub(crate) takeover_end: LogIndex,
    /// Leader: a value changing the voters is proposed at this slot; nothing is proposed
    /// after it until it is chosen (the acceptors of later slots depend on it).
    pub(crate) barrier: Option<LogIndex>,
    /// Leader: slot of the last configuration value proposed; one change at a time.
    pub(crate) pending_config: LogIndex,
    /// Leader: per other member.
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Leader removed from the voters by the change chosen at this slot: it proposes
    /// nothing more and steps down once a quorum of the new voters knows.
    pub(crate) removal: Option<LogIndex>,
    pub(crate) transferee: Option<NodeId>,
    pub(crate) transfer_elapsed: u32,
    pub(crate) election_elapsed: u32,
    pub(crate) heartbeat_elapsed: u32,
    pub(crate) randomized_election_ticks: u32,
    pub(crate) reads: Reads,
    /// The latest snapshot, sent to acceptors that need compacted slots.
    pub(crate) snapshot: Option<Snapshot>,
    /// A snapshot being received, by meta, with the bytes so far.
    pub(crate) incoming_snapshot: Option<(SnapshotMeta, BytesMut)>,
    /// A snapshot received in full, waiting until installing it forgets nothing this
    /// node acknowledged (see `Paxos::try_install`).
    pub(crate) assembled_snapshot: Option<Snapshot>,
    /// The highest slot this node ever acknowledged as `through`, or counted for itself
    /// as a leader (all held slots after a restart, conservatively).
    pub(crate) acked_max: LogIndex,
    /// Acknowledged slots up to here may have been dropped by installing a snapshot:
    /// promise only proposers whose chosen prefix reaches it. Durable
    /// (`HardState.vote`); cleared once this node's own commit passes it.
    pub(crate) forgotten: LogIndex,
    /// The leader (and ballot) to answer once a waiting snapshot is installed.
    pub(crate) install_for: Option<(NodeId, Ballot)>,
    /// Leader: accepts must be sent at the next `ready()`.
    pub(crate) broadcast_pending: bool,
    pub(crate) msgs: Vec<Outbound<Message>>,
    pub(crate) msgs_after_sync: Vec<Outbound<Message>>,
    pub(crate) read_states: Vec<ReadState>,
    persisted_hard_state: HardState,
    ready_number: u64,
    in_progress: Option<InProgress>,
}

/// The membership after `change`, which Multi-Paxos applies directly — never joint:
/// each slot has exactly one configuration, and a leader runs phase 1 with the new one
/// before proposing under it (see the crate docs).
pub(crate) fn next_membership(
    m: &Membership,
    change: &ConfigChange,
) -> Result<Membership, ConfigError> {
    match change {
        ConfigChange::LeaveJoint => Err(ConfigError::WrongStage(
            "Multi-Paxos never enters joint consensus",
        )),
        ConfigChange::Apply(changes) => {
            for c in changes {
                if let MemberChange::AddVoter(id) | MemberChange::AddLearner(id) = *c {
                    if id > Ballot::NODE_MAX {
                        return Err(ConfigError::Invalid(format!(
                            "node id {id} does not fit a ballot (max {})",
                            Ballot::NODE_MAX
                        )));
                    }
                }
            }
            let mut next = m.apply(change)?;
            next.voters_outgoing.clear();
            Ok(next)
        }
    }
}

impl Paxos {
    /// A node restarted from `recovered` durable state (`Recovered::default()` for a
    /// node that will join an existing group). Fails on an invalid configuration or on
    /// durable state that Multi-Paxos did not write.
    pub fn new(cfg: Config, recovered: Recovered) -> Result<Paxos, String> {
        cfg.validate()?;
        let Recovered {
            hard_state,
            snapshot,
            entries,
        } = recovered;
        let log = PaxosLog::recover(snapshot.as_ref(), &entries, hard_state.commit)?;
        // Accepting in a ballot implies promising it. The hard state is written after the
        // entries, so a crash between them can leave acceptances newer than the promise;
        // none was acknowledged, but the promise must still cover what the disk holds.
        let promised = durable::promised(&hard_state).max(log.max_accepted_ballot());
        let membership_base = snapshot
            .as_ref()
            .map(|s| s.meta.membership.clone())
            .unwrap_or_default();
        let mut p = Paxos {
            id: cfg.id,
            rng: Rng::new(cfg.seed),
            promised,
            round_seen: promised.round,
            role: Role::Follower,
            leader: None,
            membership: membership_base.clone(),
            membership_history: Vec::new(),
            membership_base,
            ballot: Ballot::ZERO,
            phase1: None,
            proposal_end: LogIndex(0),
            takeover_end: LogIndex(0),
            barrier: None,
            pending_config: LogIndex(0),
            progress: BTreeMap::new(),
            removal: None,
            transferee: None,
            transfer_elapsed: 0,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_ticks: cfg.election_ticks,
            reads: Reads::default(),
            snapshot,
            incoming_snapshot: None,
            assembled_snapshot: None,
            // Whatever survived on disk may have been acknowledged before the crash.
            acked_max: log.last_index(),
            forgotten: durable::forgotten(&hard_state),
            install_for: None,
            broadcast_pending: false,
            msgs: Vec::new(),
            msgs_after_sync: Vec::new(),
            read_states: Vec::new(),
            persisted_hard_state: hard_state,
            ready_number: 0,
            in_progress: None,
            log,
            cfg,
        };
        p.apply_configs(p.log.snapshot_index(), p.log.committed());
        p.reset_election_timer();
        p.check_invariants();
        Ok(p)
    }

    /// The durable state every founding member of a new group starts from: slot 1
    /// holds, as chosen, the configuration naming `voters` (accepted in
    /// [`Ballot::ZERO`]). Identical on every founder; nodes added later learn it from
    /// the leader.
    pub fn bootstrap(voters: &[NodeId]) -> Recovered {
        let change = ConfigChange::Apply(
            voters
                .iter()
                .map(|&id| MemberChange::AddVoter(id))
                .collect(),
        );
        let genesis = Accepted {
            ballot: Ballot::ZERO,
            value: Value {
                origin: Ballot::ZERO,
                payload: Payload::Config(change),
            },
        };
        Recovered {
            hard_state: durable::hard_state(Ballot::ZERO, LogIndex(1), LogIndex(0)),
            snapshot: None,
            entries: vec![durable::to_entry(LogIndex(1), Some(&genesis))],
        }
    }

    /// The configuration this node runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The hard state last made durable.
    pub(crate) fn durable_hard_state(&self) -> &HardState {
        &self.persisted_hard_state
    }

    /// The durable state as it stands in memory (see [`durable`]).
    pub(crate) fn hard_state(&self) -> HardState {
        durable::hard_state(self.promised, self.log.committed(), self.forgotten)
    }

    pub(crate) fn is_voter(&self) -> bool {
        self.membership.is_voter(self.id)
    }

    /// Queues a message that promises nothing about durability.
    pub(crate) fn send(&mut self, to: NodeId, ballot: Ballot, body: Body) {
        self.msgs.push(Outbound {
            to,
            msg: Message { ballot, body },
        });
    }

    /// Queues a message that may leave only once everything now in memory is durable:
    /// promises, acceptances, and a candidate's prepares (its ballot must be durable so
    /// that a crash can never make it reuse the ballot with other values).
    pub(crate) fn send_after_sync(&mut self, to: NodeId, ballot: Ballot, body: Body) {
        let out = Outbound {
            to,
            msg: Message { ballot, body },
        };
        if self.cfg.knobs.skip_persist_barrier {
            self.msgs.push(out);
        } else {
            self.msgs_after_sync.push(out);
        }
    }

    /// Draws a new failure-detection timeout from `[election_ticks, 2 × election_ticks)`
    /// (exactly `election_ticks` under the `retry_without_backoff` knob).
    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let lo = self.cfg.election_ticks as u64;
        self.randomized_election_ticks = if self.cfg.knobs.retry_without_backoff {
            lo as u32
        } else {
            self.rng.range(lo, 2 * lo) as u32
        };
    }

    /// Stops proposing and follows `leader` (if known), with a fresh randomized
    /// timeout: the back-off that keeps a preempted proposer from immediately
    /// preempting its rival in turn.
    pub(crate) fn become_follower(&mut self, leader: Option<NodeId>) {
        self.role = Role::Follower;
        self.leader = leader;
        self.ballot = Ballot::ZERO;
        self.phase1 = None;
        self.barrier = None;
        self.removal = None;
        self.transferee = None;
        self.progress.clear();
        self.reads.clear();
        self.broadcast_pending = false;
        self.heartbeat_elapsed = 0;
        self.reset_election_timer();
    }

    /// Raises the commit index and applies newly chosen configuration values.
    pub(crate) fn commit_to(&mut self, index: LogIndex) {
        let before = self.log.committed();
        if !self.log.commit_to(index) {
            return;
        }
        if self.log.committed() >= self.forgotten {
            // Every forgotten slot is chosen and held again: it can be reported.
            self.forgotten = LogIndex(0);
        }
        self.apply_configs(before, index);
        if self.role == Role::Leader {
            self.broadcast_pending = true;
            self.release_reads_after_commit();
        }
    }

    /// Applies configuration values chosen in `(from, to]`, in slot order. Every node
    /// does this at the same slots, so all agree on the membership of every slot.
    pub(crate) fn apply_configs(&mut self, from: LogIndex, to: LogIndex) {
        let mut slot = from.next();
        while slot <= to {
            if let Some(Payload::Config(change)) = self.log.get(slot).map(|a| &a.value.payload) {
                // An invalid change is skipped identically by every node.
                if let Ok(next) = next_membership(&self.membership, &change.clone()) {
                    let voters_changed = next.voters != self.membership.voters;
                    self.membership = next;
                    self.membership_history
                        .push((slot, self.membership.clone()));
                    self.on_membership_changed(slot, voters_changed);
                }
            }
            slot = slot.next();
        }
    }

    pub(crate) fn membership_at(&self, index: LogIndex) -> Membership {
        self.membership_history
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| self.membership_base.clone())
    }

    fn take_ready(&mut self) -> Ready<Message> {
        assert!(
            self.in_progress.is_none(),
            "node {}: ready() called before advance() of the previous ready",
            self.id
        );
        self.flush();
        self.ready_number += 1;
        let snapshot = self.log.take_pending_snapshot();
        let entries = self.log.take_unpersisted();
        let hs = self.hard_state();
        let hard_state = (hs != self.persisted_hard_state).then_some(hs);
        // A commit-index change alone need not be synced: losing it is safe. Nor need
        // clearing the forgotten-slots marker (keeping it is conservative); raising it
        // must, because `finish_ready` installs a waiting snapshot on the strength of it.
        let promise_changed = hs.term != self.persisted_hard_state.term;
        let forgetting = durable::forgotten(&hs) > durable::forgotten(&self.persisted_hard_state);
        let must_sync = snapshot.is_some() || !entries.is_empty() || promise_changed || forgetting;
        let committed_entries = self.log.take_committed(self.cfg.apply_batch_bytes_max);
        self.in_progress = Some(InProgress {
            number: self.ready_number,
            upto: self.log.last_index(),
            hard_state: hs,
        });
        Ready {
            number: self.ready_number,
            messages: std::mem::take(&mut self.msgs),
            snapshot,
            entries,
            hard_state,
            must_sync,
            messages_after_sync: std::mem::take(&mut self.msgs_after_sync),
            committed_entries,
            read_states: std::mem::take(&mut self.read_states),
        }
    }

    fn finish_ready(&mut self, number: u64) {
        let ip = match self.in_progress.take() {
            Some(ip) if ip.number == number => ip,
            other => panic!(
                "node {}: advance({number}) does not match the outstanding ready {:?}",
                self.id,
                other.map(|ip| ip.number)
            ),
        };
        self.log.persisted(ip.upto);
        self.persisted_hard_state = ip.hard_state;
        // A candidate's own promise counts only once durable: otherwise a crash could
        // let it restart below its ballot and promise someone else in between.
        if self.role == Role::Candidate
            && Ballot::from_term(ip.hard_state.term) == self.ballot
            && self.phase1.as_ref().is_some_and(|p| !p.self_durable)
        {
            if let Some(p) = self.phase1.as_mut() {
                p.self_durable = true;
            }
            self.tally_promises();
        }
        if self.role == Role::Leader {
            self.maybe_commit();
        }
        // The record of what an install will forget is durable now: install.
        if let Some((from, ballot)) = self.install_for {
            if durable::forgotten(&self.persisted_hard_state) >= self.acked_max {
                self.install_for = None;
                self.try_install(from, ballot, LogIndex(0));
            }
        }
        self.check_invariants();
    }

    /// Panics with context if an invariant of this node is broken. Always on: these
    /// are cheap relative to a message and catch bugs where they happen.
    pub(crate) fn check_invariants(&self) {
        self.log.check_invariants();
        assert_eq!(
            self.role == Role::Leader,
            self.leader == Some(self.id),
            "node {} role {:?} leader {:?}",
            self.id,
            self.role,
            self.leader
        );
        assert!(
            Ballot::from_term(self.persisted_hard_state.term) <= self.promised,
            "node {}: promise {} below the durable one",
            self.id,
            self.promised
        );
        match self.role {
            Role::Leader | Role::Candidate => {
                assert_eq!(
                    self.ballot, self.promised,
                    "node {} proposes with {} but promised {}",
                    self.id, self.ballot, self.promised
                );
                assert_eq!(self.ballot.node, self.id);
            }
            Role::PreCandidate => {
                assert!(self.ballot > self.promised && self.ballot.node == self.id);
                assert!(self.phase1.is_some());
            }
            Role::Follower => assert!(self.phase1.is_none()),
        }
        if self.role == Role::Leader {
            assert!(self.proposal_end >= self.log.committed());
            assert!(self.proposal_end <= self.log.last_index());
            // Beyond its last proposal a leader may hold older acceptances only while
            // it may not propose there yet (or ever again, once removed).
            if self.barrier.is_none() && self.phase1.is_none() && self.removal.is_none() {
                assert_eq!(
                    self.log.last_index(),
                    self.proposal_end,
                    "leader {} holds slots it did not propose",
                    self.id
                );
            }
        }
    }

    fn status_now(&self) -> Status {
        let peers = if self.role == Role::Leader {
            self.progress
                .iter()
                .map(|(&id, pr)| PeerStatus {
                    id,
                    matched: pr.matched,
                    next: pr.next,
                    state: pr.state,
                    recent_active: pr.recent_active,
                })
                .collect()
        } else {
            Vec::new()
        };
        Status {
            id: self.id,
            role: self.role,
            term: self.promised.to_term(),
            leader: self.leader,
            commit: self.log.committed(),
            applied: self.log.applied(),
            first_index: self.log.first_index(),
            last_index: self.log.last_index(),
            membership: self.membership.clone(),
            peers,
        }
    }

    /// The current role (cheaper than [`Engine::status`]).
    pub fn role(&self) -> Role {
        self.role
    }

    /// The highest ballot this node has promised (while leading: its own ballot).
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// The promised ballot in its term encoding (what [`Status::term`] reports and what
    /// a leader's [`Proposed::term`] carries).
    pub fn term(&self) -> Term {
        self.promised.to_term()
    }

    /// The leader this node follows, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The commit index: every slot up to it is chosen and held here.
    pub fn commit_index(&self) -> LogIndex {
        self.log.committed()
    }

    /// The last slot held (accepted or chosen).
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// The last slot covered by the snapshot (0 if none).
    pub fn snapshot_index(&self) -> LogIndex {
        self.log.snapshot_index()
    }

    /// The highest slot durable here.
    pub fn stable_index(&self) -> LogIndex {
        self.log.stable()
    }

    /// What this node accepted in `slot`, and in which ballot (None for a hole or a
    /// slot not held).
    pub fn accepted(&self, slot: LogIndex) -> Option<&Accepted> {
        self.log.get(slot)
    }

    /// The value held at `slot` as the shell sees it once chosen (term = origin).
    pub fn entry(&self, slot: LogIndex) -> Option<Entry> {
        self.log.get(slot).map(|a| a.value.to_entry(slot))
    }

    /// The origin term of the value at `slot`, including the snapshot's last slot.
    pub fn term_at(&self, slot: LogIndex) -> Option<Term> {
        self.log.origin_term(slot)
    }

    /// The latest snapshot this node holds (its own or one installed from the leader).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The membership in effect for the next undecided slot.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
}

impl Engine for Paxos {
    type Message = Message;

    fn id(&self) -> NodeId {
        self.id
    }

    fn tick(&mut self) {
        if self.role == Role::Leader {
            self.tick_leader();
        } else {
            self.tick_election();
        }
        self.check_invariants();
    }

    fn step(&mut self, from: NodeId, msg: Message) -> Result<(), StepError> {
        if from == 0 || from == self.id {
            return Err(StepError::BadSender(from));
        }
        crate::validate::validate(self.id, from, &msg)?;
        let result = self.step_inner(from, msg);
        self.check_invariants();
        result
    }

    fn propose(&mut self, command: Bytes) -> Result<Proposed, ProposeError> {
        if command.len() > self.cfg.entry_bytes_max {
            return Err(ProposeError::TooLarge {
                size_bytes: command.len(),
                max_bytes: self.cfg.entry_bytes_max,
            });
        }
        self.propose_value(Payload::Command(command))
    }

    fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        self.request_read(ctx)
    }

    fn change_config(&mut self, change: ConfigChange) -> Result<Proposed, ProposeError> {
        self.propose_config(change)
    }

    fn transfer_leadership(&mut self, to: NodeId) -> Result<(), ProposeError> {
        self.start_transfer(to)
    }

    fn has_ready(&self) -> bool {
        self.in_progress.is_none()
            && (!self.msgs.is_empty()
                || !self.msgs_after_sync.is_empty()
                || !self.read_states.is_empty()
                || self.broadcast_pending
                || self.reads.needs_round()
                || self.log.has_unpersisted()
                || self.log.has_pending_snapshot()
                || self.log.has_committed_to_apply()
                || self.hard_state() != self.persisted_hard_state)
    }

    fn ready(&mut self) -> Ready<Message> {
        self.take_ready()
    }

    fn advance(&mut self, number: u64) {
        self.finish_ready(number);
    }

    fn compact(&mut self, index: LogIndex, data: Bytes) -> Result<(), CompactError> {
        if index <= self.log.snapshot_index() || index > self.log.applied() {
            return Err(CompactError::OutOfRange {
                index,
                first: self.log.snapshot_index(),
                applied: self.log.applied(),
            });
        }
        let term = self.log.origin_term(index).expect("applied slot is held");
        let membership = self.membership_at(index);
        self.log.compact(index);
        self.membership_base = membership.clone();
        self.membership_history.retain(|(i, _)| *i > index);
        self.snapshot = Some(Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                membership,
            },
            data,
        });
        Ok(())
    }

    fn status(&self) -> Status {
        self.status_now()
    }
}
