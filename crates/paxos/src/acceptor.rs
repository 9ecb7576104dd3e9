//! The acceptor and learner roles: promising (phase 1b), accepting (phase 2b), learning
//! what is chosen, and installing a leader's snapshot — plus the routing of every
//! incoming message.
//!
//! The two rules that make Paxos safe live here (Lamport, "Paxos Made Simple", §2.2):
//! - **P1a**: an acceptor accepts a proposal numbered `b` unless it has promised a
//!   ballot above `b` — so a promise, once made, is never broken;
//! - a promise reports every value accepted after the proposer's chosen prefix, so the
//!   proposer can propose only values that keep whatever may be chosen chosen (P2c).
//!
//! Both leave only after they are durable (`send_after_sync`).

use bytes::BytesMut;

use consensus::{LogIndex, NodeId, Role, Snapshot, StepError};

use crate::ballot::Ballot;
use crate::durable;
use crate::message::{Accepted, Body, Message, Value};
use crate::paxos::Paxos;

impl Paxos {
    /// Routes a validated message. Errs only for input no correct peer sends.
    pub(crate) fn step_inner(&mut self, from: NodeId, msg: Message) -> Result<(), StepError> {
        let ballot = msg.ballot;
        if ballot.node != self.id {
            // Another proposer's ballot: ours must exceed it next time.
            self.round_seen = self.round_seen.max(ballot.round);
        }
        match msg.body {
            Body::Prepare { commit, transfer } => {
                self.on_prepare(from, ballot, commit, transfer);
                Ok(())
            }
            Body::PrePrepare { commit } => {
                // Answers what a Prepare would get, and changes nothing. A ballot that
                // is too low learns the promise it must beat.
                let promised = self.promised;
                let body = if ballot <= promised {
                    Body::Nack { promised }
                } else {
                    let granted = self.refusal(from, commit, false).is_none();
                    Body::PrePrepareAck { granted }
                };
                self.send(from, ballot, body);
                Ok(())
            }
            body @ (Body::Accept { .. }
            | Body::Heartbeat { .. }
            | Body::InstallSnapshot { .. }
            | Body::TimeoutNow) => {
                if ballot < self.promised {
                    // A deposed proposer learns why it is ignored and stops.
                    let promised = self.promised;
                    self.send(from, ballot, Body::Nack { promised });
                    return Ok(());
                }
                self.check_accept(ballot, &body)?;
                self.follow(from, ballot);
                self.step_from_leader(from, ballot, body);
                Ok(())
            }
            body => {
                if self.ballot == ballot && self.role != Role::Follower {
                    self.step_from_acceptor(from, body);
                }
                Ok(())
            }
        }
    }

    /// Refuses (before anything changes) an Accept that contradicts an acceptance this
    /// node already made in the same ballot: a correct leader proposes one value per
    /// slot per ballot, so this is a buggy or hostile peer.
    fn check_accept(&self, ballot: Ballot, body: &Body) -> Result<(), StepError> {
        let Body::Accept { first, values, .. } = body else {
            return Ok(());
        };
        let mut slot = *first;
        for v in values {
            if slot > self.log.committed() {
                if let Some(a) = self.log.get(slot) {
                    if a.ballot == ballot && a.value != *v {
                        return Err(StepError::Malformed(format!(
                            "two values for slot {slot} in ballot {ballot}"
                        )));
                    }
                }
            }
            slot = slot.next();
        }
        Ok(())
    }

    /// A proposer of `ballot ≥ promised` speaks: follow it. Raising the promise here is
    /// what accepting in `ballot` implies; it becomes durable with the acceptance.
    fn follow(&mut self, from: NodeId, ballot: Ballot) {
        if ballot > self.promised {
            self.promised = ballot;
        }
        if self.role != Role::Follower {
            self.become_follower(Some(from));
        }
        self.leader = Some(from);
        self.election_elapsed = 0;
    }

    /// Why a proposer `from` with chosen prefix `commit` gets no promise now, whatever
    /// its ballot (refusing is always safe):
    /// - stickiness (like Raft's check-quorum, thesis §4.2.3): while this node hears from
    ///   a live leader it helps nobody unseat it, so a node returning from a partition
    ///   cannot disrupt a healthy group;
    /// - slots compacted here are chosen but their values are gone, and slots forgotten
    ///   here (see `try_install`) may hide an acceptance: a proposer that does not know
    ///   them chosen could not learn them from this promise.
    fn refusal(&self, from: NodeId, commit: LogIndex, transfer: bool) -> Option<&'static str> {
        let sticky = self.cfg.check_quorum
            && !transfer
            && self.leader.is_some_and(|l| l != from)
            && (self.role == Role::Leader || self.election_elapsed < self.cfg.election_ticks);
        if sticky {
            Some("following a live leader")
        } else if self.log.snapshot_index().max(self.forgotten) > commit {
            Some("proposer lacks slots compacted or forgotten here")
        } else {
            None
        }
    }

    /// Phase 1b: promise `ballot` for every slot after `commit`, reporting what was
    /// accepted there — or refuse.
    fn on_prepare(&mut self, from: NodeId, ballot: Ballot, commit: LogIndex, transfer: bool) {
        let promised = self.promised;
        if ballot < promised || self.refusal(from, commit, transfer).is_some() {
            self.send(from, ballot, Body::Nack { promised });
            return;
        }
        let preempted = matches!(self.role, Role::Candidate | Role::Leader);
        if ballot > promised {
            self.promised = ballot;
            if self.role != Role::Follower || self.leader.is_some() {
                self.become_follower(None);
            }
            // Give the proposer a full timeout to finish before competing with it.
            self.reset_election_timer();
        }
        let body = Body::Promise {
            commit: self.log.committed(),
            accepted: self.log.reports_after(commit),
        };
        self.send_after_sync(from, ballot, body);
        if preempted && ballot > promised && self.cfg.knobs.retry_without_backoff {
            // The bug: outbid the rival at once, as it will outbid us.
            self.campaign(false);
        }
    }

    /// The leader-to-acceptor messages, once `ballot ≥ promised` is established.
    fn step_from_leader(&mut self, from: NodeId, ballot: Ballot, body: Body) {
        match body {
            Body::Accept {
                first,
                values,
                commit,
            } => self.on_accept(from, ballot, first, values, commit),
            Body::Heartbeat { commit, read_round } => {
                self.learn_commit(ballot, commit);
                let through = self.log.through(ballot).min(self.log.stable());
                // Counted by the leader like an `Accepted`: an acknowledgement too.
                self.acked_max = self.acked_max.max(through);
                let body = Body::HeartbeatAck {
                    read_round,
                    through,
                    commit: self.log.committed(),
                };
                self.send(from, ballot, body);
                self.try_install(from, ballot, commit);
            }
            Body::InstallSnapshot {
                meta,
                total_bytes,
                offset,
                chunk,
                commit,
            } => {
                let part = Snapshot { meta, data: chunk };
                self.on_snapshot_chunk(from, ballot, part, total_bytes, offset, commit);
            }
            Body::TimeoutNow if self.is_voter() => self.campaign(true),
            _ => {}
        }
    }

    /// Phase 2b for the contiguous slots from `first`, then learning the leader's
    /// commit index.
    fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        first: LogIndex,
        values: Vec<Value>,
        commit: LogIndex,
    ) {
        let last = first + values.len() as u64 - 1;
        let reach =
            self.log.last_index().max(self.log.committed()) + self.cfg.accept_ahead_slots_max;
        if first <= reach {
            let mut slot = first;
            for value in values {
                // Chosen slots keep their value (a leader of `ballot ≥ promised` can only
                // be proposing that same value there); compacted ones are gone.
                if slot > self.log.committed() && slot > self.log.snapshot_index() {
                    self.log.set(slot, Accepted { ballot, value });
                }
                slot = slot.next();
            }
        }
        self.learn_commit(ballot, commit);
        let through = self.log.through(ballot);
        self.acked_max = self.acked_max.max(through);
        let body = Body::Accepted {
            last,
            through,
            commit: self.log.committed(),
        };
        self.send_after_sync(from, ballot, body);
        self.try_install(from, ballot, commit);
    }

    /// Learning: every slot up to the leader's commit index that this node accepted in
    /// the leader's ballot holds the chosen value (the leader proposes one value per
    /// slot and only counts its own), so it is chosen here too.
    fn learn_commit(&mut self, ballot: Ballot, leader_commit: LogIndex) {
        let through = self.log.through(ballot);
        let c = leader_commit.min(through);
        self.commit_to(c);
    }

    fn on_snapshot_chunk(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        part: Snapshot,
        total: u64,
        offset: u64,
        leader_commit: LogIndex,
    ) {
        let meta = part.meta;
        if meta.index <= self.log.committed() {
            // Already hold it (or more): a retransmit after our final ack was lost.
            self.incoming_snapshot = None;
            self.ack_snapshot_held(from, ballot, leader_commit);
            return;
        }
        if self
            .assembled_snapshot
            .as_ref()
            .is_some_and(|s| s.meta == meta)
        {
            self.try_install(from, ballot, leader_commit);
            return;
        }
        let fresh = !matches!(&self.incoming_snapshot, Some((m, _)) if *m == meta);
        if fresh {
            if offset != 0 {
                let body = Body::SnapshotAck {
                    index: meta.index,
                    offset: 0,
                };
                self.send(from, ballot, body);
                return;
            }
            self.incoming_snapshot = Some((
                meta.clone(),
                BytesMut::with_capacity(total.min(1 << 26) as usize),
            ));
        }
        let Some((_, buf)) = self.incoming_snapshot.as_mut() else {
            return;
        };
        if offset == buf.len() as u64 {
            buf.extend_from_slice(&part.data);
        }
        let have = buf.len() as u64;
        if have < total {
            let body = Body::SnapshotAck {
                index: meta.index,
                offset: have,
            };
            self.send(from, ballot, body);
            return;
        }
        let Some((meta, buf)) = self.incoming_snapshot.take() else {
            return;
        };
        self.assembled_snapshot = Some(Snapshot {
            meta,
            data: buf.freeze(),
        });
        self.try_install(from, ballot, leader_commit);
    }

    /// Installs a fully received snapshot. Installing replaces the whole durable log (the
    /// shared contract), so every held slot after the snapshot is dropped — and a slot
    /// this node acknowledged may have helped choose a value. So when it holds
    /// acknowledged slots beyond the snapshot, it first makes durable that it forgets
    /// them (`forgotten`, which makes it refuse to promise any proposer that does not
    /// know them chosen), and installs only once that record is on disk
    /// (`finish_ready` calls back here).
    pub(crate) fn try_install(&mut self, from: NodeId, ballot: Ballot, leader_commit: LogIndex) {
        let Some(snap) = self.assembled_snapshot.take() else {
            return;
        };
        let index = snap.meta.index;
        // Already holding every slot it covers (chosen, or accepted in this ballot —
        // perhaps from accepts that overtook the snapshot): installing would only drop
        // slots this node acknowledged, which its leader will not send again (Raft §7:
        // "if existing log entry has same index and term as snapshot's last included
        // entry, retain log entries following it").
        if index <= self.log.committed() || self.log.through(ballot) >= index {
            self.ack_snapshot_held(from, ballot, leader_commit);
            return;
        }
        if self.acked_max > index {
            self.forgotten = self.forgotten.max(self.acked_max);
            if durable::forgotten(self.durable_hard_state()) < self.acked_max {
                self.assembled_snapshot = Some(snap);
                self.install_for = Some((from, ballot));
                return;
            }
        }
        self.membership = snap.meta.membership.clone();
        self.membership_base = self.membership.clone();
        self.membership_history.clear();
        self.log.restore(snap.clone());
        self.snapshot = Some(snap);
        self.acked_max = index;
        let body = Body::Accepted {
            last: index,
            through: index,
            commit: index,
        };
        self.send_after_sync(from, ballot, body);
    }

    /// Tells the leader this node already holds everything a snapshot covers.
    fn ack_snapshot_held(&mut self, from: NodeId, ballot: Ballot, leader_commit: LogIndex) {
        self.learn_commit(ballot, leader_commit);
        let through = self.log.through(ballot);
        self.acked_max = self.acked_max.max(through);
        let body = Body::Accepted {
            last: self.log.committed(),
            through,
            commit: self.log.committed(),
        };
        self.send_after_sync(from, ballot, body);
    }

    /// The acceptor-to-proposer messages answering this node's current ballot.
    fn step_from_acceptor(&mut self, from: NodeId, body: Body) {
        match body {
            Body::Promise { commit, accepted } => self.on_promise(from, commit, accepted),
            Body::Nack { promised } => self.on_nack(from, promised),
            Body::PrePrepareAck { granted } if self.role == Role::PreCandidate => {
                self.on_pre_prepare_ack(from, granted)
            }
            body @ (Body::Accepted { .. }
            | Body::HeartbeatAck { .. }
            | Body::SnapshotAck { .. })
                if self.role == Role::Leader =>
            {
                self.step_from_follower(from, body)
            }
            _ => {}
        }
    }
}
