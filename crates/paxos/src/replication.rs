//! Phase 2 from the leader's side: proposing (many slots per message, many messages in
//! flight), counting acknowledgements into the commit index, heartbeats, snapshots for
//! acceptors that fell behind the leader's compaction, and the leader's clock.

use consensus::{
    ConfigChange, LogIndex, NodeId, Payload, ProposeError, Proposed, ReplicationState, Role,
};

use crate::message::{Accepted, Body, Value};
use crate::paxos::{next_membership, Paxos};

impl Paxos {
    /// Proposes `payload` in the next slot (leader only).
    pub(crate) fn propose_value(&mut self, payload: Payload) -> Result<Proposed, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { hint: self.leader });
        }
        if self.removal.is_some() {
            return Err(ProposeError::NotLeader { hint: None });
        }
        if self.transferee.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        if self.phase1.is_some() || self.barrier.is_some() {
            // The acceptors of the next slot are not settled yet (see `barrier`).
            return Err(ProposeError::ConfigChangePending);
        }
        let slot = self.proposal_end.next();
        let ballot = self.ballot;
        let value = Value {
            origin: ballot,
            payload,
        };
        self.log.set(slot, Accepted { ballot, value });
        self.proposal_end = slot;
        self.broadcast_pending = true;
        if self.cfg.knobs.skip_persist_barrier {
            self.maybe_commit();
        }
        Ok(Proposed {
            term: ballot.to_term(),
            index: slot,
        })
    }

    /// Proposes a membership change (leader only, one at a time). A change of voters
    /// stalls further proposals until it is chosen and the new voters have promised.
    pub(crate) fn propose_config(
        &mut self,
        change: ConfigChange,
    ) -> Result<Proposed, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { hint: self.leader });
        }
        if self.pending_config > self.log.committed() {
            return Err(ProposeError::ConfigChangePending);
        }
        let next = next_membership(&self.membership, &change).map_err(ProposeError::Config)?;
        let voters_change = next.voters != self.membership.voters;
        let proposed = self.propose_value(Payload::Config(change))?;
        self.pending_config = proposed.index;
        if voters_change {
            self.barrier = Some(proposed.index);
        }
        Ok(proposed)
    }

    /// Leader clock: heartbeats, check-quorum, transfer timeout, snapshot retransmits.
    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let (me, progress) = (self.id, &self.progress);
                let active = self
                    .membership
                    .has_quorum(|p| p == me || progress.get(&p).is_some_and(|pr| pr.recent_active));
                if !active {
                    // A leader that cannot reach a quorum steps down, so that clients
                    // look for the real one and followers stop deferring to it.
                    self.become_follower(None);
                    return;
                }
                for pr in self.progress.values_mut() {
                    pr.recent_active = false;
                }
            }
        }
        if self.transferee.is_some() {
            self.transfer_elapsed += 1;
            if self.transfer_elapsed >= self.cfg.election_ticks {
                // Not done within a timeout: abort and serve again.
                self.transferee = None;
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
            self.resend_refresh();
        }
        let resend_after = self.cfg.heartbeat_ticks * 2;
        let stalled: Vec<NodeId> = self
            .progress
            .iter_mut()
            .filter(|(_, pr)| pr.state == ReplicationState::Snapshot)
            .filter_map(|(&id, pr)| {
                pr.snapshot_idle_ticks += 1;
                (pr.snapshot_idle_ticks >= resend_after).then_some(id)
            })
            .collect();
        for id in stalled {
            self.send_snapshot_chunk(id);
        }
    }

    /// Sends everything that became sendable since the last ready: accepts after new
    /// proposals or a commit advance (many proposals become one message: batching), and
    /// a heartbeat round for pending reads.
    pub(crate) fn flush(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        if self.broadcast_pending {
            self.broadcast_pending = false;
            let peers: Vec<NodeId> = self.progress.keys().copied().collect();
            for p in peers {
                self.send_accepts(p, true);
            }
            self.maybe_send_timeout_now();
        }
        if self.reads.needs_round() {
            self.bcast_heartbeat();
        }
    }

    /// Sends as many accepts to `to` as its window allows (pipelining in Replicate).
    /// With `allow_empty`, sends one even without new slots, to carry the commit index.
    pub(crate) fn send_accepts(&mut self, to: NodeId, allow_empty: bool) {
        let mut allow_empty = allow_empty;
        while self.send_accept(to, allow_empty) {
            allow_empty = false;
            if self
                .progress
                .get(&to)
                .is_none_or(|p| p.state != ReplicationState::Replicate)
            {
                break;
            }
        }
    }

    /// Sends one accept (or starts a snapshot). Returns whether slots were sent.
    fn send_accept(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let Some(pr) = self.progress.get(&to) else {
            return false;
        };
        if pr.is_paused(self.cfg.inflight_msgs_max, self.cfg.inflight_bytes_max) {
            return false;
        }
        let first = pr.next;
        if first <= self.log.snapshot_index() {
            self.start_snapshot(to);
            return false;
        }
        // Slots already chosen (an acceptor catching up) travel up to
        // `catchup_slots_max` per message, new proposals up to `batch_slots_max`.
        let commit = self.log.committed();
        let catchup_max = self.cfg.catchup_slots_max.max(self.cfg.batch_slots_max);
        let slots_max = |slot: LogIndex| {
            if slot <= commit {
                catchup_max
            } else {
                self.cfg.batch_slots_max
            }
        };
        let mut values = Vec::new();
        let mut bytes = 0;
        let mut slot = first;
        while slot <= self.proposal_end && values.len() < slots_max(slot) {
            let a = self
                .log
                .get(slot)
                .expect("a leader holds every slot it proposed");
            let size = a.value.size_bytes();
            if !values.is_empty() && bytes + size > self.cfg.batch_bytes_max {
                break;
            }
            bytes += size;
            values.push(a.value.clone());
            slot = slot.next();
        }
        let pr = self.progress.get_mut(&to).expect("checked above");
        if values.is_empty() && (!allow_empty || commit <= pr.commit_sent) {
            return false;
        }
        let sent_any = !values.is_empty();
        let last = first + values.len() as u64 - 1;
        if sent_any {
            pr.sent(last, bytes);
        }
        pr.commit_sent = pr.commit_sent.max(commit);
        let ballot = self.ballot;
        self.send(
            to,
            ballot,
            Body::Accept {
                first,
                values,
                commit,
            },
        );
        sent_any
    }

    fn start_snapshot(&mut self, to: NodeId) {
        let Some(index) = self.snapshot.as_ref().map(|s| s.meta.index) else {
            panic!(
                "node {}: slots for {to} compacted but no snapshot held",
                self.id
            );
        };
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.become_snapshot(index);
        }
        self.send_snapshot_chunk(to);
    }

    /// Sends the chunk of our snapshot at the acceptor's acknowledged offset.
    pub(crate) fn send_snapshot_chunk(&mut self, to: NodeId) {
        let Some(snap) = self.snapshot.as_ref() else {
            return;
        };
        let Some(pr) = self.progress.get_mut(&to) else {
            return;
        };
        if pr.state != ReplicationState::Snapshot || pr.snapshot_index != snap.meta.index {
            // Replaced by a newer snapshot: restart with it.
            pr.become_snapshot(snap.meta.index);
        }
        pr.snapshot_idle_ticks = 0;
        let total = snap.data.len() as u64;
        let offset = pr.snapshot_offset.min(total);
        let end = (offset + self.cfg.snapshot_chunk_bytes as u64).min(total);
        let body = Body::InstallSnapshot {
            meta: snap.meta.clone(),
            total_bytes: total,
            offset,
            chunk: snap.data.slice(offset as usize..end as usize),
            commit: self.log.committed(),
        };
        let ballot = self.ballot;
        self.send(to, ballot, body);
    }

    /// A heartbeat round to every other member, numbered for read confirmation.
    pub(crate) fn bcast_heartbeat(&mut self) {
        let round = self.reads.start_round();
        let commit = self.log.committed();
        let ballot = self.ballot;
        let peers: Vec<NodeId> = self.progress.keys().copied().collect();
        for p in peers {
            if let Some(pr) = self.progress.get_mut(&p) {
                pr.commit_sent = pr.commit_sent.max(commit);
            }
            self.send(
                p,
                ballot,
                Body::Heartbeat {
                    commit,
                    read_round: round,
                },
            );
        }
        // A lone voter confirms its own rounds.
        self.read_round_acked(self.id, round);
    }

    /// How far the leader itself has durably accepted (or holds chosen values).
    fn self_matched(&self) -> LogIndex {
        if self.cfg.knobs.skip_persist_barrier {
            self.proposal_end
        } else {
            self.log.stable().min(self.proposal_end)
        }
    }

    /// Advances the commit index to the highest slot a quorum has acknowledged. Every
    /// slot in `(commit, proposal_end]` belongs to the current configuration (the
    /// barrier sees to it), so one quorum rule covers them all.
    pub(crate) fn maybe_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let own = self.self_matched();
        // Counting its own acceptances is acknowledging them (see `acked_max`).
        self.acked_max = self.acked_max.max(own);
        let (me, progress) = (self.id, &self.progress);
        let quorum = self.membership.committed_index(|id| {
            if id == me {
                own
            } else {
                progress.get(&id).map(|p| p.matched).unwrap_or_default()
            }
        });
        let target = quorum.min(self.proposal_end);
        if target > self.log.committed() {
            self.commit_to(target);
        }
    }

    /// Leader side of Accepted, HeartbeatAck and SnapshotAck.
    pub(crate) fn step_from_follower(&mut self, from: NodeId, body: Body) {
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        match body {
            Body::Accepted {
                last,
                through,
                commit,
            } => {
                pr.commit = pr.commit.max(commit);
                pr.inflights.free_to(last);
                let current = through >= pr.matched;
                let updated = pr.maybe_update(through);
                match pr.state {
                    ReplicationState::Snapshot if pr.matched >= pr.snapshot_index => {
                        let next = pr.matched.next();
                        pr.become_probe(next);
                    }
                    ReplicationState::Snapshot => {}
                    // A gap: the acceptor lacks a slot before `last` (a lost or
                    // reordered accept, or it refused to run that far ahead).
                    _ if through < last && current => pr.become_probe(through.next()),
                    ReplicationState::Probe => pr.become_replicate(),
                    ReplicationState::Replicate => {}
                }
                if updated {
                    self.maybe_commit();
                    self.maybe_send_timeout_now();
                }
                self.maybe_finish_removal();
                if self.role == Role::Leader {
                    self.send_accepts(from, false);
                }
            }
            Body::HeartbeatAck {
                read_round,
                through,
                commit,
            } => {
                pr.commit = pr.commit.max(commit);
                let updated = pr.maybe_update(through);
                match pr.state {
                    // The acceptor lacks slots below the probe point (it joined empty
                    // and the accept that would have told us was lost): probe from its
                    // first missing slot, or nothing would ever be sent to it again
                    // while no new slots are proposed.
                    ReplicationState::Probe if through.next() < pr.next => {
                        let next = through.next();
                        pr.become_probe(next);
                    }
                    // It holds every slot proposed: nothing to probe for. Replicate
                    // from here on; otherwise a learner that caught up while nothing
                    // new was proposed would stay in Probe, and never look caught up
                    // to the manager waiting to promote it.
                    ReplicationState::Probe if through >= self.proposal_end => {
                        pr.become_replicate()
                    }
                    ReplicationState::Probe => pr.probe_sent = false,
                    ReplicationState::Replicate
                        if pr
                            .inflights
                            .is_full(self.cfg.inflight_msgs_max, self.cfg.inflight_bytes_max) =>
                    {
                        // A lost accept would otherwise block the window forever.
                        pr.inflights.free_first();
                    }
                    ReplicationState::Replicate
                        if pr.matched < self.proposal_end
                            && (pr.inflights.is_empty()
                                || pr.matched == pr.matched_at_heartbeat) =>
                    {
                        // Slots are missing there and either nothing is in flight or
                        // nothing arrived for a whole heartbeat interval: the tail of
                        // what was sent is lost. Start again from the first missing.
                        let next = pr.matched.next();
                        pr.become_probe(next);
                    }
                    _ => {}
                }
                pr.matched_at_heartbeat = pr.matched;
                if updated {
                    self.maybe_commit();
                }
                self.read_round_acked(from, read_round);
                self.maybe_finish_removal();
                if self.role == Role::Leader {
                    self.send_accepts(from, false);
                }
            }
            Body::SnapshotAck { index, offset }
                if pr.state == ReplicationState::Snapshot && pr.snapshot_index == index =>
            {
                pr.snapshot_offset = offset;
                self.send_snapshot_chunk(from);
            }
            _ => {}
        }
    }
}
