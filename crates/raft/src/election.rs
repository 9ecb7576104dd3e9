//! Elections (Raft §5.2, §5.4.1), pre-vote (thesis §9.6), check-quorum and the
//! follower-side lease (thesis §6.4, §9.6), and leadership transfer (thesis §3.10).

use consensus::{LogIndex, NodeId, ProposeError, Role, StepError, Term, VoteResult};

use crate::config::ReadMode;
use crate::message::{Body, Message};
use crate::raft::Raft;

impl Raft {
    /// Follower, pre-candidate and candidate clock.
    pub(crate) fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.is_voter() && self.election_elapsed >= self.randomized_election_ticks {
            self.campaign(false);
        }
    }

    /// True while this node must refuse to help anyone unseat the leader: it heard
    /// from a leader within the minimum election timeout (thesis §4.2.3), or — when
    /// leases are in use — it restarted less than an election timeout ago, so that a
    /// lease it granted before crashing still holds.
    fn in_lease(&self) -> bool {
        let heard_leader = self.leader.is_some() && self.election_elapsed < self.cfg.election_ticks;
        let restarting =
            self.cfg.read_mode == ReadMode::Lease && self.ticks < self.cfg.election_ticks as u64;
        self.cfg.check_quorum && (heard_leader || restarting)
    }

    /// Starts an election: a pre-vote round first unless `transfer` (or pre-vote is off).
    pub(crate) fn campaign(&mut self, transfer: bool) {
        if self.cfg.pre_vote && !transfer {
            self.become_pre_candidate();
        } else {
            self.become_candidate(transfer);
        }
    }

    fn become_pre_candidate(&mut self) {
        // Term and vote are untouched: a pre-vote that fails leaves no trace.
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        let term = self.term.next();
        for id in self.membership.all_voters() {
            if id != self.id {
                self.msgs.push(consensus::Outbound {
                    to: id,
                    msg: Message {
                        term,
                        body: Body::PreVote {
                            last_index,
                            last_term,
                        },
                    },
                });
            }
        }
        self.record_vote(self.id, true);
    }

    fn become_candidate(&mut self, transfer: bool) {
        self.term = self.term.next();
        self.vote = Some(self.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.reset_election_timer();
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        for id in self.membership.all_voters() {
            if id != self.id {
                self.send(
                    id,
                    Body::Vote {
                        last_index,
                        last_term,
                        transfer,
                    },
                );
            }
        }
        if self.cfg.knobs.skip_persist_barrier {
            self.record_vote(self.id, true);
        } else {
            // Counted in `advance` once term and vote are durable.
            self.self_vote_pending = Some(self.term);
        }
    }

    /// Records an answer and acts on the tally.
    pub(crate) fn record_vote(&mut self, from: NodeId, granted: bool) {
        self.votes.entry(from).or_insert(granted);
        let votes = &self.votes;
        match self.membership.vote_result(|id| votes.get(&id).copied()) {
            VoteResult::Won => {
                if self.role == Role::PreCandidate {
                    self.become_candidate(false);
                } else {
                    self.become_leader();
                }
            }
            VoteResult::Lost => self.become_follower(self.term, None),
            VoteResult::Pending => {}
        }
    }

    /// Term rules shared by every message (Raft §5.1 "If RPC request or response
    /// contains term T > currentTerm: set currentTerm = T, convert to follower"), with
    /// the pre-vote and lease exceptions. Returns false if the message is done with.
    fn handle_term(&mut self, from: NodeId, msg: &Message) -> bool {
        if msg.term > self.term {
            match &msg.body {
                Body::PreVote { .. }
                | Body::Vote {
                    transfer: false, ..
                } if self.in_lease() => {
                    // Thesis §4.2.3: a server that hears from a leader ignores votes,
                    // so a partitioned node coming back cannot disrupt a healthy leader.
                    return false;
                }
                _ => {}
            }
            match &msg.body {
                // A pre-vote does not change the receiver's term.
                Body::PreVote { .. } => {}
                // Nor does a granted pre-vote answer: it carries the future term.
                Body::PreVoteResponse { granted: true } => {}
                Body::Append { .. } | Body::Heartbeat { .. } | Body::InstallSnapshot { .. } => {
                    self.become_follower(msg.term, Some(from));
                }
                _ => self.become_follower(msg.term, None),
            }
        } else if msg.term < self.term {
            match &msg.body {
                // A stale leader learns our term and steps down; without this, a leader
                // partitioned away would never hear the news under check-quorum/pre-vote.
                Body::Append { .. } | Body::Heartbeat { .. } | Body::InstallSnapshot { .. } => {
                    self.send(
                        from,
                        Body::AppendResponse {
                            success: false,
                            index: LogIndex(0),
                            hint_index: LogIndex(0),
                            hint_term: Term(0),
                        },
                    );
                }
                Body::PreVote { .. } => {
                    self.send(from, Body::PreVoteResponse { granted: false });
                }
                _ => {}
            }
            return false;
        }
        true
    }

    /// Routes a validated message. Errs only for input no correct peer sends.
    pub(crate) fn step_inner(&mut self, from: NodeId, msg: Message) -> Result<(), StepError> {
        if !self.handle_term(from, &msg) {
            return Ok(());
        }
        let term = msg.term;
        match msg.body {
            Body::PreVote {
                last_index,
                last_term,
            } => {
                // Only for a higher term: at an equal term the lease check above was
                // skipped, and every voter of that term has voted already.
                let grant = term > self.term && self.log_ok(last_index, last_term);
                let reply = Message {
                    term: if grant { term } else { self.term },
                    body: Body::PreVoteResponse { granted: grant },
                };
                self.msgs.push(consensus::Outbound {
                    to: from,
                    msg: reply,
                });
            }
            Body::Vote {
                last_index,
                last_term,
                ..
            } => {
                let can_vote =
                    self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none());
                if can_vote && self.log_ok(last_index, last_term) {
                    self.vote = Some(from);
                    self.reset_election_timer();
                    let reply = Message {
                        term: self.term,
                        body: Body::VoteResponse { granted: true },
                    };
                    self.send_after_sync(from, reply);
                } else {
                    self.send(from, Body::VoteResponse { granted: false });
                }
            }
            Body::PreVoteResponse { granted } => {
                let expected = if granted { self.term.next() } else { self.term };
                if self.role == Role::PreCandidate && term == expected {
                    self.record_vote(from, granted);
                }
            }
            Body::VoteResponse { granted } => {
                if self.role == Role::Candidate {
                    self.record_vote(from, granted);
                }
            }
            Body::TimeoutNow => {
                if self.is_voter() && self.role != Role::Leader {
                    self.campaign(true);
                }
            }
            Body::ReadIndex { ctx } => self.request_read_from_peer(from, ctx),
            Body::ReadIndexResponse { ctx, index } => self.read_index_answered(ctx, index),
            body
            @ (Body::Append { .. } | Body::Heartbeat { .. } | Body::InstallSnapshot { .. }) => {
                if self.role != Role::Follower {
                    self.become_follower(term, Some(from));
                }
                self.leader = Some(from);
                self.election_elapsed = 0;
                return self.step_from_leader(from, body);
            }
            body @ (Body::AppendResponse { .. }
            | Body::HeartbeatResponse { .. }
            | Body::SnapshotResponse { .. }) => {
                if self.role == Role::Leader {
                    self.step_from_follower(from, body);
                }
            }
        }
        Ok(())
    }

    /// Raft §5.4.1, unless the test knob disables it.
    fn log_ok(&self, last_index: LogIndex, last_term: Term) -> bool {
        self.cfg.knobs.vote_without_log_check || self.log.is_up_to_date(last_index, last_term)
    }

    /// Tells `to` to campaign now. From here on this term's lease is void: the target's
    /// election overrides the followers' promise not to vote, so a lease granted by
    /// them no longer proves that nobody else leads (reads fall back to ReadIndex).
    pub(crate) fn send_timeout_now(&mut self, to: NodeId) {
        self.lease_void_term = Some(self.term);
        self.send(to, Body::TimeoutNow);
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
        if self
            .progress
            .get(&to)
            .is_some_and(|p| p.matched == self.log.last_index())
        {
            self.send_timeout_now(to);
        } else {
            self.broadcast_pending = true;
        }
        Ok(())
    }
}
