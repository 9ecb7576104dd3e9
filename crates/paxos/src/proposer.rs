//! The proposer role: failure detection, choosing ballots, phase 1 (once for every open
//! slot), taking over with the values phase 1 reports, running phase 1 again for a new
//! set of acceptors, leadership transfer and a removed leader's exit.
//!
//! Taking over ("Paxos Made Simple" §3; van Renesse, "Paxos Made Moderately Complex"):
//! a quorum's promises report every acceptance after the new leader's chosen prefix.
//! In each such slot the leader re-proposes the value of the highest ballot reported —
//! any value that may have been chosen is among them (P2c) — keeping its origin, and
//! fills every slot no promise mentions with a no-op, so that commands are applied in
//! slot order without waiting forever on a hole.

use std::collections::BTreeMap;

use consensus::{LogIndex, NodeId, Payload, ProposeError, Role, VoteResult};

use crate::ballot::Ballot;
use crate::message::{Accepted, Body, Report, Value};
use crate::paxos::{next_membership, Paxos, Phase1};
use crate::progress::Progress;

impl Paxos {
    /// Follower and candidate clock: campaign when the leader has been silent (or the
    /// campaign has stalled) for the randomized timeout.
    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.is_voter() && self.election_elapsed >= self.randomized_election_ticks {
            if self.cfg.pre_prepare {
                self.pre_campaign();
            } else {
                self.campaign(false);
            }
        }
    }

    /// Asks whether a quorum would promise the next ballot, without anybody (this node
    /// included) changing any state; campaigns for real only if so.
    fn pre_campaign(&mut self) {
        let round = self.promised.round.max(self.round_seen) + 1;
        let ballot = Ballot::new(round.min(Ballot::ROUND_MAX), self.id);
        self.become_follower(None);
        self.role = Role::PreCandidate;
        self.ballot = ballot;
        let commit = self.log.committed();
        self.phase1 = Some(Phase1 {
            from: commit,
            membership: self.membership.clone(),
            granted: Default::default(),
            refused: Default::default(),
            merged: Default::default(),
            self_durable: true,
        });
        for id in self.membership.voters.clone() {
            if id != self.id {
                self.send(id, ballot, Body::PrePrepare { commit });
            }
        }
        self.tally_promises();
    }

    /// An acceptor answered our pre-prepare.
    pub(crate) fn on_pre_prepare_ack(&mut self, from: NodeId, granted: bool) {
        let Some(p) = self.phase1.as_mut() else {
            return;
        };
        if !p.membership.is_voter(from)
            || p.granted.contains_key(&from)
            || p.refused.contains(&from)
        {
            return;
        }
        if granted {
            p.granted.insert(from, LogIndex(0));
        } else {
            p.refused.insert(from);
        }
        self.tally_promises();
    }

    /// Starts phase 1 with a ballot above every one seen. The ballot becomes this
    /// node's promise; the prepares leave only once it is durable, so that no crash can
    /// make this node reuse the ballot (and propose two values in it).
    pub(crate) fn campaign(&mut self, transfer: bool) {
        let round = self.promised.round.max(self.round_seen) + 1;
        let ballot = Ballot::new(round.min(Ballot::ROUND_MAX), self.id);
        self.become_follower(None);
        self.role = Role::Candidate;
        self.ballot = ballot;
        self.promised = ballot;
        self.round_seen = round;
        let commit = self.log.committed();
        let durable_now = self.cfg.knobs.skip_persist_barrier;
        self.phase1 = Some(Phase1 {
            from: commit,
            membership: self.membership.clone(),
            granted: Default::default(),
            refused: Default::default(),
            merged: Default::default(),
            self_durable: durable_now,
        });
        for id in self.membership.voters.clone() {
            if id != self.id {
                self.send_after_sync(id, ballot, Body::Prepare { commit, transfer });
            }
        }
        self.tally_promises();
    }

    /// An acceptor promised our ballot.
    pub(crate) fn on_promise(&mut self, from: NodeId, commit: LogIndex, accepted: Vec<Report>) {
        let Some(p) = self.phase1.as_mut() else {
            return;
        };
        if !p.membership.is_voter(from) || p.granted.contains_key(&from) {
            return;
        }
        for r in accepted.into_iter().filter(|r| r.slot > p.from) {
            match p.merged.get(&r.slot) {
                Some(known) if known.ballot >= r.accepted.ballot => {}
                _ => {
                    p.merged.insert(r.slot, r.accepted);
                }
            }
        }
        p.refused.remove(&from);
        p.granted.insert(from, commit);
        self.tally_promises();
    }

    /// An acceptor refused our ballot. Above it: we were preempted and back off (or,
    /// under the `retry_without_backoff` knob, re-prepare at once: dueling proposers).
    pub(crate) fn on_nack(&mut self, from: NodeId, promised: Ballot) {
        self.round_seen = self.round_seen.max(promised.round);
        if promised > self.ballot {
            if self.cfg.knobs.retry_without_backoff {
                self.campaign(false);
            } else {
                self.become_follower(None);
            }
            return;
        }
        if let Some(p) = self.phase1.as_mut() {
            if !p.granted.contains_key(&from) {
                p.refused.insert(from);
                self.tally_promises();
            }
        }
    }

    /// Counts promises: a quorum of the phase's configuration completes phase 1. This
    /// node's own promise counts once durable — and never while it has forgotten slots
    /// beyond the phase's chosen prefix: its own report would miss them, exactly as it
    /// would refuse anyone else's proposal (see `refusal`).
    pub(crate) fn tally_promises(&mut self) {
        let Some(p) = self.phase1.as_ref() else {
            return;
        };
        let me = self.id;
        let own = if self.forgotten.max(self.log.snapshot_index()) > p.from {
            Some(false)
        } else {
            p.self_durable.then_some(true)
        };
        let result = p.membership.vote_result(|id| {
            if id == me {
                own
            } else if p.granted.contains_key(&id) {
                Some(true)
            } else if p.refused.contains(&id) {
                Some(false)
            } else {
                None
            }
        });
        match result {
            VoteResult::Won if self.role == Role::PreCandidate => self.campaign(false),
            VoteResult::Won => self.complete_phase1(),
            VoteResult::Lost => self.become_follower(None),
            VoteResult::Pending => {}
        }
    }

    /// Phase 1 succeeded: adopt, in every slot after the chosen prefix, the value with
    /// the highest ballot any promise reported (no-ops in the gaps), as this ballot's
    /// proposals — up to and including the first one that changes the voters, since the
    /// acceptors of the slots after it are only known once it is chosen.
    fn complete_phase1(&mut self) {
        let Some(mut p) = self.phase1.take() else {
            return;
        };
        let taking_over = self.role == Role::Candidate;
        self.role = Role::Leader;
        self.leader = Some(self.id);
        let ballot = self.ballot;
        // This node's own acceptances count like any promiser's.
        for r in self.log.reports_after(p.from) {
            match p.merged.get(&r.slot) {
                Some(known) if known.ballot >= r.accepted.ballot => {}
                _ => {
                    p.merged.insert(r.slot, r.accepted);
                }
            }
        }
        if self.cfg.knobs.ignore_promised_values {
            // The bug: trust only what this node itself accepted.
            p.merged = self
                .log
                .reports_after(p.from)
                .into_iter()
                .map(|r| (r.slot, r.accepted))
                .collect();
        }
        let committed = self.log.committed();
        let last = p.merged.keys().next_back().copied().unwrap_or(committed);
        let mut voters = self.membership.clone();
        let mut end = committed;
        let mut slot = committed.next();
        while slot <= last {
            let value = match p.merged.remove(&slot) {
                Some(a) => a.value,
                None => Value {
                    origin: ballot,
                    payload: Payload::Noop,
                },
            };
            let change = match &value.payload {
                Payload::Config(c) => next_membership(&voters, c).ok(),
                _ => None,
            };
            let is_config = matches!(value.payload, Payload::Config(_));
            self.log.set(slot, Accepted { ballot, value });
            end = slot;
            if is_config {
                self.pending_config = slot;
            }
            if let Some(next) = change {
                if next.voters != voters.voters {
                    self.barrier = Some(slot);
                    break;
                }
                voters = next;
            }
            slot = slot.next();
        }
        self.proposal_end = end;
        // Reads wait until everything adopted from promises is chosen again — after a
        // refresh too: a value chosen after the voters changed may be among the slots
        // adopted only now, beyond the commit index.
        self.takeover_end = self.takeover_end.max(end);
        if taking_over {
            self.heartbeat_elapsed = 0;
            self.election_elapsed = 0;
        }
        self.sync_progress(&p.granted);
        self.broadcast_pending = true;
        self.maybe_commit();
        self.release_reads_after_commit();
    }

    /// Progress for every member, keeping what is known; acceptors that promised are
    /// known to hold chosen values up to the commit index they reported.
    pub(crate) fn sync_progress(&mut self, granted: &BTreeMap<NodeId, LogIndex>) {
        let members = self.membership.members();
        let me = self.id;
        self.progress
            .retain(|id, _| members.contains(id) && *id != me);
        let next = self.log.committed().next();
        for id in members {
            if id == me {
                continue;
            }
            let reported = granted.get(&id).copied().unwrap_or_default();
            let pr = self.progress.entry(id).or_insert_with(|| {
                let mut pr = Progress::new(LogIndex(0));
                pr.next = next;
                pr.recent_active = true;
                pr
            });
            pr.maybe_update(reported);
            pr.commit = pr.commit.max(reported);
        }
    }

    /// Called as each chosen configuration value takes effect at `slot`.
    pub(crate) fn on_membership_changed(&mut self, slot: LogIndex, voters_changed: bool) {
        if self.role != Role::Leader {
            return;
        }
        self.sync_progress(&Default::default());
        if self.barrier == Some(slot) {
            self.barrier = None;
        }
        if !self.membership.is_voter(self.id) {
            // Removed: propose nothing more; keep heartbeating the commit index until a
            // quorum of the new voters knows the change is chosen, then hand over.
            if self.removal.is_none() {
                self.removal = Some(slot);
                self.barrier = None;
                self.phase1 = None;
            }
            return;
        }
        if voters_changed {
            self.start_refresh();
        }
    }

    /// Phase 1 again, same ballot, with a quorum of the new voters for every slot after
    /// the change: an acceptor that joined may have accepted values that an earlier
    /// leader proposed under this configuration, which the old quorum never saw.
    /// Proposals wait until it completes.
    fn start_refresh(&mut self) {
        let commit = self.log.committed();
        let ballot = self.ballot;
        self.phase1 = Some(Phase1 {
            from: commit,
            membership: self.membership.clone(),
            granted: Default::default(),
            refused: Default::default(),
            merged: Default::default(),
            // Our promise of our own ballot is durable since we first led with it.
            self_durable: true,
        });
        for id in self.membership.voters.clone() {
            if id != self.id {
                self.send(
                    id,
                    ballot,
                    Body::Prepare {
                        commit,
                        transfer: false,
                    },
                );
            }
        }
        self.tally_promises();
    }

    /// Re-sends the prepares of a refresh that has not completed (they may be lost).
    pub(crate) fn resend_refresh(&mut self) {
        let Some(p) = self.phase1.as_ref() else {
            return;
        };
        let missing: Vec<NodeId> = p
            .membership
            .voters
            .iter()
            .copied()
            .filter(|id| *id != self.id && !p.granted.contains_key(id))
            .collect();
        let (ballot, commit) = (self.ballot, p.from);
        for id in missing {
            self.send(
                id,
                ballot,
                Body::Prepare {
                    commit,
                    transfer: false,
                },
            );
        }
    }

    /// A removed leader steps down once a quorum of the new voters has learned that the
    /// change is chosen (otherwise they would keep deciding with the old voters), handing
    /// over to the most up-to-date of them.
    pub(crate) fn maybe_finish_removal(&mut self) {
        let Some(slot) = self.removal else {
            return;
        };
        let progress = &self.progress;
        let knows = |p: NodeId| progress.get(&p).is_some_and(|pr| pr.commit >= slot);
        if !self.membership.has_quorum(knows) {
            return;
        }
        let successor = self
            .membership
            .voters
            .iter()
            .filter_map(|&id| self.progress.get(&id).map(|pr| (pr.matched, id)))
            .max()
            .map(|(_, id)| id);
        let ballot = self.ballot;
        if let Some(to) = successor {
            self.send(to, ballot, Body::TimeoutNow);
        }
        self.become_follower(None);
    }

    /// Starts handing leadership to `to`: catch it up, then send `TimeoutNow`.
    pub(crate) fn start_transfer(&mut self, to: NodeId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { hint: self.leader });
        }
        if to == self.id {
            return Ok(());
        }
        if !self.membership.voters.contains(&to) {
            return Err(ProposeError::Unavailable("transfer target is not a voter"));
        }
        self.transferee = Some(to);
        self.transfer_elapsed = 0;
        self.maybe_send_timeout_now();
        self.broadcast_pending = true;
        Ok(())
    }

    /// Sends `TimeoutNow` to the transfer target once it holds every proposal.
    pub(crate) fn maybe_send_timeout_now(&mut self) {
        let Some(to) = self.transferee else {
            return;
        };
        if self
            .progress
            .get(&to)
            .is_some_and(|p| p.matched >= self.proposal_end)
        {
            let ballot = self.ballot;
            self.send(to, ballot, Body::TimeoutNow);
        }
    }
}
