//! Linearizable reads by a quorum read barrier (the ReadIndex idea of Raft §8 applied to
//! Multi-Paxos).
//!
//! A read requested at the leader records the commit index and waits for a heartbeat
//! round *started after the request* to be acknowledged by a quorum of the current
//! voters in the leader's ballot. An acceptor acknowledges only while it has promised
//! nothing higher, so at that moment no higher ballot had a quorum of promises, and no
//! other leader could have chosen anything the commit index misses. All reads waiting
//! for the same round share it (batching).
//!
//! A new leader's commit index may lag what earlier leaders chose, so reads first wait
//! until every slot it re-proposed when taking over is chosen (`takeover_end`); while a
//! configuration refresh runs they wait too.
//!
//! No leases: reads never rest on a clock assumption.

use std::collections::{BTreeMap, VecDeque};

use consensus::{LogIndex, NodeId, ProposeError, ReadState, Role};

use crate::paxos::Paxos;

#[derive(Clone, Debug)]
struct PendingRead {
    ctx: u64,
    index: LogIndex,
    /// The first round that can confirm it.
    round: u64,
}

/// The leader's bookkeeping of read confirmations.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reads {
    /// The last heartbeat round started.
    round: u64,
    /// A read waits for a round that has not started yet.
    round_wanted: bool,
    /// Highest round each acceptor acknowledged.
    acks: BTreeMap<NodeId, u64>,
    pending: VecDeque<PendingRead>,
    /// Reads that arrived before the leader was ready to fix a read index.
    waiting: Vec<u64>,
}

impl Reads {
    /// Forgets every pending read (leadership lost: their callers time out and retry).
    pub(crate) fn clear(&mut self) {
        let round = self.round;
        *self = Reads::default();
        // Rounds keep growing so that late acks of old rounds never confirm new reads
        // after a leadership change and back.
        self.round = round;
    }

    pub(crate) fn needs_round(&self) -> bool {
        self.round_wanted
    }

    /// Starts a new round; returns its number.
    pub(crate) fn start_round(&mut self) -> u64 {
        self.round += 1;
        self.round_wanted = false;
        self.round
    }
}

impl Paxos {
    /// Whether this leader can fix read indexes: its takeover values are chosen and no
    /// configuration refresh is running.
    fn reads_ready(&self) -> bool {
        self.role == Role::Leader
            && self.phase1.is_none()
            && self.removal.is_none()
            && self.log.committed() >= self.takeover_end
    }

    /// A read requested on this node.
    pub(crate) fn request_read(&mut self, ctx: u64) -> Result<(), ProposeError> {
        if self.cfg.knobs.read_without_quorum {
            let index = self.log.committed();
            self.read_states.push(ReadState { ctx, index });
            return Ok(());
        }
        if self.role != Role::Leader || self.removal.is_some() {
            let hint = self.leader.filter(|&l| l != self.id);
            return Err(ProposeError::NotLeader { hint });
        }
        if !self.reads_ready() {
            self.reads.waiting.push(ctx);
            return Ok(());
        }
        let round = self.reads.round + 1;
        self.reads.round_wanted = true;
        self.reads.pending.push_back(PendingRead {
            ctx,
            index: self.log.committed(),
            round,
        });
        Ok(())
    }

    /// The leader became able to fix read indexes: queued reads proceed.
    pub(crate) fn release_reads_after_commit(&mut self) {
        if !self.reads_ready() || self.reads.waiting.is_empty() {
            return;
        }
        for ctx in std::mem::take(&mut self.reads.waiting) {
            let _ = self.request_read(ctx);
        }
    }

    /// `from` acknowledged heartbeat round `round`.
    pub(crate) fn read_round_acked(&mut self, from: NodeId, round: u64) {
        if self.role != Role::Leader {
            return;
        }
        let acked = self.reads.acks.entry(from).or_insert(0);
        *acked = (*acked).max(round);
        let (me, own, acks) = (self.id, self.reads.round, &self.reads.acks);
        let confirmed = self
            .membership
            .committed_index(|p| {
                LogIndex(if p == me {
                    own
                } else {
                    acks.get(&p).copied().unwrap_or(0)
                })
            })
            .0;
        while self
            .reads
            .pending
            .front()
            .is_some_and(|r| r.round <= confirmed)
        {
            let r = self.reads.pending.pop_front().expect("front exists");
            self.read_states.push(ReadState {
                ctx: r.ctx,
                index: r.index,
            });
        }
    }
}
