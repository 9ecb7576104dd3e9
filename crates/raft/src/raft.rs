//! The Raft node: state, the `Engine` entry points, ready/advance and invariants.
//!
//! The protocol rules live in sibling files, one concern each: `election.rs` (pre-vote,
//! votes, leader lease), `replication.rs` (appends, commit, snapshots, membership),
//! `read.rs` (ReadIndex and lease reads), `transfer` is in `election.rs`.
//!
//! ```text
//!  tick ──▶ Follower ──timeout──▶ PreCandidate ──quorum──▶ Candidate ──quorum──▶ Leader
//!             ▲  ▲                     │ lost / higher term   │                  │
//!             │  └─────────────────────┴──────────────────────┘                  │
//!             └──────── higher term / lost quorum (check-quorum) / removed ──────┘
//! ```

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use consensus::{
    CompactError, ConfigChange, Engine, HardState, LogIndex, Membership, NodeId, Outbound, Payload,
    PeerStatus, ProposeError, Proposed, ReadState, Ready, Recovered, Rng, Role, Snapshot,
    SnapshotMeta, Status, StepError, Term,
};

use crate::config::Config;
use crate::log::RaftLog;
use crate::message::{Body, Message};
use crate::progress::Progress;
use crate::read::ReadOnly;

/// What a handed-out `Ready` promised to persist, remembered until `advance`.
#[derive(Debug)]
struct InProgress {
    number: u64,
    last_entry: Option<(LogIndex, Term)>,
    hard_state: HardState,
}

/// One Raft node. See the crate docs for the protocol and the module docs for layout.
#[derive(Debug)]
pub struct Raft {
    pub(crate) cfg: Config,
    pub(crate) id: NodeId,
    pub(crate) rng: Rng,
    pub(crate) term: Term,
    pub(crate) vote: Option<NodeId>,
    pub(crate) role: Role,
    pub(crate) leader: Option<NodeId>,
    pub(crate) log: RaftLog,
    /// The membership in effect: the snapshot's, then every committed config entry.
    pub(crate) membership: Membership,
    /// Committed memberships after the snapshot, by the index that produced them, so
    /// that a snapshot at any applied index can name its membership.
    pub(crate) membership_history: Vec<(LogIndex, Membership)>,
    /// The membership at the snapshot base.
    pub(crate) membership_base: Membership,
    /// Leader: index of the last config entry it appended; no new change until committed.
    pub(crate) pending_config_index: LogIndex,
    /// Leader: per member (self included).
    pub(crate) progress: BTreeMap<NodeId, Progress>,
    /// Candidate / pre-candidate: answers so far.
    pub(crate) votes: BTreeMap<NodeId, bool>,
    /// Candidate: the term whose self-vote is waiting to be durable.
    pub(crate) self_vote_pending: Option<Term>,
    pub(crate) election_elapsed: u32,
    pub(crate) heartbeat_elapsed: u32,
    pub(crate) randomized_election_ticks: u32,
    /// Ticks since this node started: votes are refused for one election timeout after
    /// a (re)start so that leases granted before a crash still hold.
    pub(crate) ticks: u64,
    pub(crate) transferee: Option<NodeId>,
    pub(crate) transfer_elapsed: u32,
    /// The term in which this leader sent TimeoutNow: its lease is void for the term.
    pub(crate) lease_void_term: Option<Term>,
    /// Leader removed by a committed change: the commit index that must reach the new
    /// voters before it steps down, and per peer the first heartbeat round carrying it.
    pub(crate) removal_commit: Option<LogIndex>,
    pub(crate) removal_rounds: BTreeMap<NodeId, u64>,
    pub(crate) reads: ReadOnly,
    /// The latest snapshot, sent to peers that need entries already compacted.
    pub(crate) snapshot: Option<Snapshot>,
    /// Follower: a snapshot being received, by meta, with the bytes so far.
    pub(crate) incoming_snapshot: Option<(SnapshotMeta, BytesMut)>,
    /// Leader: appends must be sent at the next `ready()`.
    pub(crate) broadcast_pending: bool,
    pub(crate) msgs: Vec<Outbound<Message>>,
    pub(crate) msgs_after_sync: Vec<Outbound<Message>>,
    pub(crate) read_states: Vec<ReadState>,
    persisted_hard_state: HardState,
    ready_number: u64,
    in_progress: Option<InProgress>,
}

impl Raft {
    /// A node restarted from `recovered` durable state (`Recovered::default()` for a
    /// node that will join an existing group). Fails on an invalid configuration.
    pub fn new(cfg: Config, recovered: Recovered) -> Result<Raft, String> {
        cfg.validate()?;
        let Recovered {
            hard_state,
            snapshot,
            entries,
        } = recovered;
        let log = RaftLog::recover(snapshot.as_ref(), entries, hard_state.commit);
        let membership_base = snapshot
            .as_ref()
            .map(|s| s.meta.membership.clone())
            .unwrap_or_default();
        let mut raft = Raft {
            id: cfg.id,
            rng: Rng::new(cfg.seed),
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            membership: membership_base.clone(),
            membership_history: Vec::new(),
            membership_base,
            pending_config_index: LogIndex(0),
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            self_vote_pending: None,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_ticks: cfg.election_ticks,
            ticks: 0,
            transferee: None,
            transfer_elapsed: 0,
            lease_void_term: None,
            removal_commit: None,
            removal_rounds: BTreeMap::new(),
            reads: ReadOnly::default(),
            snapshot,
            incoming_snapshot: None,
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
        raft.apply_configs(raft.log.snapshot_index(), raft.log.committed());
        raft.reset_election_timer();
        raft.check_invariants();
        Ok(raft)
    }

    /// The durable state every founding member of a new group starts from: one
    /// committed configuration entry at index 1, term 1, naming `voters`. Identical on
    /// every founder, so their logs match; nodes added later receive it by replication.
    pub fn bootstrap(voters: &[NodeId]) -> Recovered {
        let change = ConfigChange::Apply(
            voters
                .iter()
                .map(|&id| consensus::MemberChange::AddVoter(id))
                .collect(),
        );
        Recovered {
            hard_state: HardState {
                term: Term(1),
                vote: None,
                commit: LogIndex(1),
            },
            snapshot: None,
            entries: vec![consensus::Entry {
                term: Term(1),
                index: LogIndex(1),
                payload: Payload::Config(change),
            }],
        }
    }

    /// The configuration this node runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub(crate) fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    pub(crate) fn is_voter(&self) -> bool {
        self.membership.is_voter(self.id)
    }

    /// Queues a message that promises nothing about durability.
    pub(crate) fn send(&mut self, to: NodeId, body: Body) {
        let msg = Message {
            term: self.term,
            body,
        };
        self.msgs.push(Outbound { to, msg });
    }

    /// Queues a message that may leave only once everything now in memory is durable.
    pub(crate) fn send_after_sync(&mut self, to: NodeId, msg: Message) {
        if self.cfg.knobs.skip_persist_barrier {
            self.msgs.push(Outbound { to, msg });
        } else {
            self.msgs_after_sync.push(Outbound { to, msg });
        }
    }

    pub(crate) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let lo = self.cfg.election_ticks as u64;
        self.randomized_election_ticks = self.rng.range(lo, 2 * lo) as u32;
    }

    /// Moves to `term` (if higher) as a follower of `leader`.
    pub(crate) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.term = term;
            self.vote = None;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.self_vote_pending = None;
        self.transferee = None;
        self.removal_commit = None;
        self.removal_rounds.clear();
        self.progress.clear();
        self.reads.clear();
        self.broadcast_pending = false;
        self.heartbeat_elapsed = 0;
        self.reset_election_timer();
    }

    /// Applies configuration entries committed in `(from, to]`, in order. Every node
    /// does this at the same log positions, so all agree on the membership at each index.
    pub(crate) fn apply_configs(&mut self, from: LogIndex, to: LogIndex) {
        let mut i = from.next();
        while i <= to {
            let change = match self.log.entry(i).map(|e| &e.payload) {
                Some(Payload::Config(c)) => c.clone(),
                _ => {
                    i = i.next();
                    continue;
                }
            };
            // An invalid change is skipped identically by every node.
            if let Ok(next) = self.membership.apply(&change) {
                self.membership = next;
                self.membership_history.push((i, self.membership.clone()));
                self.on_membership_changed();
            }
            i = i.next();
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
        let vote_changed =
            hs.term != self.persisted_hard_state.term || hs.vote != self.persisted_hard_state.vote;
        let must_sync = snapshot.is_some() || !entries.is_empty() || vote_changed;
        let committed_entries = self.log.take_committed(self.cfg.apply_batch_bytes_max);
        self.in_progress = Some(InProgress {
            number: self.ready_number,
            last_entry: entries.last().map(|e| (e.index, e.term)),
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
        if let Some((index, term)) = ip.last_entry {
            self.log.stable_to(index, term);
        }
        self.persisted_hard_state = ip.hard_state;
        // A candidate's own vote counts only once it is durable: otherwise a crash
        // could let it win a term in which it then votes for someone else.
        if self.role == Role::Candidate
            && self.self_vote_pending == Some(self.term)
            && ip.hard_state.term == self.term
            && ip.hard_state.vote == Some(self.id)
        {
            self.self_vote_pending = None;
            self.record_vote(self.id, true);
        }
        if self.role == Role::Leader {
            let stable = self.log.stable();
            self.self_acked(stable);
        }
        self.check_invariants();
    }

    /// The leader's own log is durable up to `index`.
    pub(crate) fn self_acked(&mut self, index: LogIndex) {
        let id = self.id;
        if let Some(pr) = self.progress.get_mut(&id) {
            if pr.maybe_update(index) {
                self.maybe_commit();
            }
        }
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
        if self.role == Role::Leader {
            assert!(
                self.vote == Some(self.id),
                "leader {} did not vote for itself",
                self.id
            );
            let m = &self.membership;
            for &id in m.voters.iter().chain(&m.voters_outgoing).chain(&m.learners) {
                assert!(
                    self.progress.contains_key(&id),
                    "leader {} lacks progress for {id}",
                    self.id
                );
            }
        }
        assert!(self.persisted_hard_state.term <= self.term);
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
            term: self.term,
            leader: self.leader,
            commit: self.log.committed(),
            applied: self.log.applied(),
            first_index: self.log.first_index(),
            last_index: self.log.last_index(),
            membership: self.membership.clone(),
            peers,
        }
    }

    /// The highest index durable on this node.
    pub fn stable_index(&self) -> LogIndex {
        self.log.stable()
    }

    /// The term of the entry at `index` if it is still in the log (or is the
    /// snapshot's last index).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term(index)
    }

    /// The entry at `index`, if it is still in the log.
    pub fn entry(&self, index: LogIndex) -> Option<&consensus::Entry> {
        self.log.entry(index)
    }

    /// The current role (cheaper than [`Engine::status`]).
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.term
    }

    /// The leader this node follows, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The commit index.
    pub fn commit_index(&self) -> LogIndex {
        self.log.committed()
    }

    /// The last log index.
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// The index of the last entry covered by the snapshot (0 if none).
    pub fn snapshot_index(&self) -> LogIndex {
        self.log.snapshot_index()
    }

    /// The latest snapshot this node holds (its own or one installed from the leader).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The membership in effect.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
}

impl Engine for Raft {
    type Message = Message;

    fn id(&self) -> NodeId {
        self.id
    }

    fn tick(&mut self) {
        self.ticks += 1;
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
        crate::validate::validate(&msg)?;
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
        self.append_as_leader(Payload::Command(command))
    }

    fn read_index(&mut self, ctx: u64) -> Result<(), ProposeError> {
        self.request_read(ctx, None)
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
        let term = self.log.term(index).expect("applied index is in the log");
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
