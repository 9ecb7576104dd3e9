//! Linearizable reads (Raft §8, thesis §6.4): ReadIndex confirmed by a heartbeat round,
//! or a leader lease.
//!
//! A read requested at the leader records the commit index and waits for a heartbeat
//! round *started after the request* to be acknowledged by a quorum: that proves no
//! other leader could have committed anything newer at that moment. All reads waiting
//! for the same round share it (batching). A new leader first commits its no-op, since
//! its commit index may lag the true one until an entry of its own term commits.

use std::collections::{BTreeMap, VecDeque};

use consensus::{LogIndex, NodeId, ProposeError, ReadState, Role};

use crate::config::ReadMode;
use crate::message::Body;
use crate::raft::Raft;

#[derive(Clone, Debug)]
struct PendingRead {
    ctx: u64,
    /// `None` for a read requested on this node, else the follower that asked.
    from: Option<NodeId>,
    index: LogIndex,
    /// The first round that can confirm it.
    round: u64,
}

/// The leader's bookkeeping of read confirmations and its lease.
#[derive(Clone, Debug, Default)]
pub(crate) struct ReadOnly {
    /// The last heartbeat round started.
    round: u64,
    /// A read waits for a round that has not started yet.
    round_wanted: bool,
    /// Rounds sent and the leader tick at which each was sent (for the lease).
    sent: VecDeque<(u64, u64)>,
    /// Highest round each peer acknowledged.
    acks: BTreeMap<NodeId, u64>,
    pending: VecDeque<PendingRead>,
    /// Reads that arrived before an entry of this term committed.
    waiting_commit: Vec<(u64, Option<NodeId>)>,
    committed_in_term: bool,
    /// Lease reads are allowed while the leader's tick count is below this.
    lease_until: u64,
}

impl ReadOnly {
    pub(crate) fn clear(&mut self) {
        let round = self.round;
        *self = ReadOnly::default();
        // Round numbers keep growing so that late acks of old rounds never confirm new
        // reads after a leadership change and back.
        self.round = round;
    }

    pub(crate) fn needs_round(&self) -> bool {
        self.round_wanted
    }

    /// Starts a new round sent at leader tick `now`; returns its number.
    pub(crate) fn start_round(&mut self, now: u64) -> u64 {
        self.round += 1;
        self.round_wanted = false;
        self.sent.push_back((self.round, now));
        if self.sent.len() > 64 {
            self.sent.pop_front();
        }
        self.round
    }

    /// Asks for a heartbeat round at the next ready.
    pub(crate) fn want_round(&mut self) {
        self.round_wanted = true;
    }

    pub(crate) fn first_commit_in_term(&mut self, own_term: bool) {
        if own_term {
            self.committed_in_term = true;
        }
    }
}

impl Raft {
    /// A read requested on this node.
    pub(crate) fn request_read(
        &mut self,
        ctx: u64,
        from: Option<NodeId>,
    ) -> Result<(), ProposeError> {
        if self.cfg.knobs.read_without_quorum {
            let index = self.log.committed();
            self.release_read(ctx, from, index);
            return Ok(());
        }
        if self.role != Role::Leader {
            return match self.leader {
                Some(leader) if from.is_none() => {
                    self.send(leader, Body::ReadIndex { ctx });
                    Ok(())
                }
                hint => Err(ProposeError::NotLeader { hint }),
            };
        }
        if !self.reads.committed_in_term {
            self.reads.waiting_commit.push((ctx, from));
            return Ok(());
        }
        let index = self.log.committed();
        if self.cfg.read_mode == ReadMode::Lease
            && self.ticks < self.reads.lease_until
            && self.lease_void_term != Some(self.term)
        {
            self.release_read(ctx, from, index);
            return Ok(());
        }
        let round = self.reads.round + 1;
        self.reads.round_wanted = true;
        self.reads.pending.push_back(PendingRead {
            ctx,
            from,
            index,
            round,
        });
        Ok(())
    }

    /// A follower forwarded a read; answered only if we lead.
    pub(crate) fn request_read_from_peer(&mut self, from: NodeId, ctx: u64) {
        if self.role == Role::Leader {
            let _ = self.request_read(ctx, Some(from));
        }
    }

    /// The leader answered a forwarded read.
    pub(crate) fn read_index_answered(&mut self, ctx: u64, index: LogIndex) {
        self.read_states.push(ReadState { ctx, index });
    }

    fn release_read(&mut self, ctx: u64, from: Option<NodeId>, index: LogIndex) {
        match from {
            None => self.read_states.push(ReadState { ctx, index }),
            Some(peer) => self.send(peer, Body::ReadIndexResponse { ctx, index }),
        }
    }

    /// Called when the first entry of this term commits: queued reads may proceed.
    pub(crate) fn release_reads_after_commit(&mut self) {
        if !self.reads.committed_in_term || self.reads.waiting_commit.is_empty() {
            return;
        }
        for (ctx, from) in std::mem::take(&mut self.reads.waiting_commit) {
            let _ = self.request_read(ctx, from);
        }
    }

    /// `from` acknowledged heartbeat round `round`.
    pub(crate) fn read_round_acked(&mut self, from: NodeId, round: u64) {
        if self.role != Role::Leader {
            return;
        }
        let acked = self.reads.acks.entry(from).or_insert(0);
        *acked = (*acked).max(round);
        if self.removal_commit.is_some() {
            self.maybe_finish_removal();
            if self.role != Role::Leader {
                return;
            }
        }
        let own = self.reads.round;
        let acks = &self.reads.acks;
        let id = self.id;
        let confirmed = self
            .membership
            .committed_index(|p| {
                LogIndex(if p == id {
                    own
                } else {
                    acks.get(&p).copied().unwrap_or(0)
                })
            })
            .0;
        if let Some(&(_, sent_at)) = self.reads.sent.iter().rev().find(|(r, _)| *r <= confirmed) {
            self.reads.lease_until = self.reads.lease_until.max(sent_at + self.cfg.lease_ticks());
        }
        self.reads.sent.retain(|(r, _)| *r >= confirmed);
        while self
            .reads
            .pending
            .front()
            .is_some_and(|r| r.round <= confirmed)
        {
            let r = self.reads.pending.pop_front().expect("front exists");
            self.release_read(r.ctx, r.from, r.index);
        }
    }
}

impl Raft {
    /// A removed leader steps down once a quorum of the new voters acknowledged a
    /// heartbeat that carried the commit index of its removal.
    fn maybe_finish_removal(&mut self) {
        let rounds = &self.removal_rounds;
        let acks = &self.reads.acks;
        let learned = |p: NodeId| {
            rounds
                .get(&p)
                .is_some_and(|&r| acks.get(&p).is_some_and(|&a| a >= r))
        };
        if self.membership.has_quorum(learned) {
            self.become_follower(self.term, None);
        }
    }
}
