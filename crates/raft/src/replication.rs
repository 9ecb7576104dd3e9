//! Log replication (Raft §5.3), commitment (§5.4.2), snapshots (§7) and membership
//! changes by joint consensus (§6), from both the leader's and the follower's side.

use bytes::BytesMut;

use consensus::{
    ConfigChange, Entry, LogIndex, NodeId, Payload, ProposeError, Proposed, ReplicationState, Role,
    Snapshot, StepError, Term,
};

use crate::log::LogError;
use crate::message::{Body, Message};
use crate::progress::Progress;
use crate::raft::Raft;

impl Raft {
    pub(crate) fn become_leader(&mut self) {
        assert!(
            self.role == Role::Candidate,
            "only a candidate becomes leader"
        );
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.votes.clear();
        self.heartbeat_elapsed = 0;
        self.election_elapsed = 0;
        self.transferee = None;
        self.reads.clear();
        let next = self.log.last_index().next();
        self.progress = self
            .membership
            .members()
            .into_iter()
            .map(|id| (id, Progress::new(next)))
            .collect();
        let stable = self.log.stable();
        let id = self.id;
        if let Some(me) = self.progress.get_mut(&id) {
            me.matched = stable;
            me.recent_active = true;
            me.state = ReplicationState::Replicate;
        }
        // No configuration change until everything up to here is committed: an
        // uncommitted one from an earlier term may still be in the log (thesis §4.1).
        self.pending_config_index = self.log.last_index();
        // A no-op of our own term, so that earlier entries commit (§5.4.2) and reads
        // can be served once it does (§8).
        self.append_entry(Payload::Noop);
        self.maybe_leave_joint();
    }

    /// Appends one entry of the current term to the leader's own log.
    fn append_entry(&mut self, payload: Payload) -> Proposed {
        let index = self.log.last_index().next();
        let entry = Entry {
            term: self.term,
            index,
            payload,
        };
        self.log.append(&[entry]);
        self.broadcast_pending = true;
        // Normally the leader counts its own entry only once `advance` reports it
        // durable; the broken knob counts it at once.
        if self.cfg.knobs.skip_persist_barrier {
            self.self_acked(index);
        }
        Proposed {
            term: self.term,
            index,
        }
    }

    pub(crate) fn append_as_leader(&mut self, payload: Payload) -> Result<Proposed, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { hint: self.leader });
        }
        if self.removal_commit.is_some() {
            return Err(ProposeError::NotLeader { hint: None });
        }
        if self.transferee.is_some() {
            return Err(ProposeError::TransferInProgress);
        }
        Ok(self.append_entry(payload))
    }

    pub(crate) fn propose_config(
        &mut self,
        change: ConfigChange,
    ) -> Result<Proposed, ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader { hint: self.leader });
        }
        if self.pending_config_index > self.log.committed() {
            return Err(ProposeError::ConfigChangePending);
        }
        if matches!(change, ConfigChange::Apply(_)) && self.membership.is_joint() {
            // The automatic LeaveJoint has not committed yet.
            return Err(ProposeError::ConfigChangePending);
        }
        self.membership
            .apply(&change)
            .map_err(ProposeError::Config)?;
        let proposed = self.append_as_leader(Payload::Config(change))?;
        self.pending_config_index = proposed.index;
        Ok(proposed)
    }

    /// Leader clock: heartbeats, check-quorum, transfer timeout, snapshot retransmits.
    pub(crate) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.cfg.election_ticks {
            self.election_elapsed = 0;
            if self.cfg.check_quorum {
                let id = self.id;
                let progress = &self.progress;
                let active = self
                    .membership
                    .has_quorum(|p| p == id || progress.get(&p).is_some_and(|pr| pr.recent_active));
                if !active {
                    // Thesis §6.2: a leader that cannot reach a quorum steps down so
                    // that clients look for the real one.
                    self.become_follower(self.term, None);
                    return;
                }
                for (&p, pr) in self.progress.iter_mut() {
                    pr.recent_active = p == id;
                }
            }
        }
        if self.transferee.is_some() {
            self.transfer_elapsed += 1;
            if self.transfer_elapsed >= self.cfg.election_ticks {
                // The transfer did not complete within an election timeout: abort.
                self.transferee = None;
            }
        }
        if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.bcast_heartbeat();
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

    /// Sends everything that became sendable since the last ready: appends after new
    /// entries or a commit advance (many proposals become one message: batching), and
    /// a heartbeat round for pending reads.
    pub(crate) fn flush(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        if self.broadcast_pending {
            self.broadcast_pending = false;
            let peers: Vec<NodeId> = self
                .progress
                .keys()
                .copied()
                .filter(|&p| p != self.id)
                .collect();
            for p in peers {
                self.send_appends(p, true);
            }
            if let Some(to) = self.transferee {
                if self
                    .progress
                    .get(&to)
                    .is_some_and(|p| p.matched == self.log.last_index())
                {
                    self.send_timeout_now(to);
                }
            }
        }
        if self.reads.needs_round() {
            self.bcast_heartbeat();
        }
    }

    /// Sends as many appends to `to` as its flow-control window allows (pipelining in
    /// Replicate). With `allow_empty`, sends one even without new entries, to carry
    /// the commit index or to re-probe.
    pub(crate) fn send_appends(&mut self, to: NodeId, allow_empty: bool) {
        let mut allow_empty = allow_empty;
        while self.send_append(to, allow_empty) {
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

    /// Sends one append (or starts a snapshot). Returns whether entries were sent.
    fn send_append(&mut self, to: NodeId, allow_empty: bool) -> bool {
        let Some(pr) = self.progress.get(&to) else {
            return false;
        };
        if pr.is_paused(self.cfg.inflight_msgs_max, self.cfg.inflight_bytes_max) {
            return false;
        }
        let next = pr.next;
        let prev_index = next.prev();
        let prev_term = self.log.term(prev_index);
        let entries = match (
            prev_term,
            self.log
                .entries_from(next, self.cfg.batch_entries_max, self.cfg.batch_bytes_max),
        ) {
            (Some(_), Ok(entries)) => entries,
            (None, _) | (_, Err(LogError::Compacted)) => {
                self.start_snapshot(to);
                return false;
            }
        };
        let commit = self.log.committed();
        if entries.is_empty() && !allow_empty && commit <= pr.commit_sent {
            return false;
        }
        let last = entries.last().map(|e| e.index);
        let bytes: usize = entries.iter().map(Entry::size_bytes).sum();
        self.send(
            to,
            Body::Append {
                prev_index,
                prev_term: prev_term.unwrap_or_default(),
                entries,
                commit,
            },
        );
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.sent_entries(last, bytes);
            pr.commit_sent = pr.commit_sent.max(commit);
        }
        last.is_some()
    }

    fn start_snapshot(&mut self, to: NodeId) {
        let Some(index) = self.snapshot.as_ref().map(|s| s.meta.index) else {
            // Compaction always records a snapshot, so the log can only be missing
            // entries below one we hold.
            panic!(
                "node {}: entries for {to} compacted but no snapshot held",
                self.id
            );
        };
        if let Some(pr) = self.progress.get_mut(&to) {
            pr.become_snapshot(index);
        }
        self.send_snapshot_chunk(to);
    }

    /// Sends the chunk of our snapshot at the peer's acknowledged offset.
    pub(crate) fn send_snapshot_chunk(&mut self, to: NodeId) {
        let Some(snap) = self.snapshot.as_ref() else {
            return;
        };
        let Some(pr) = self.progress.get_mut(&to) else {
            return;
        };
        if pr.state != ReplicationState::Snapshot || pr.snapshot_index != snap.meta.index {
            // The snapshot was replaced by a newer one: restart with it.
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
        };
        self.send(to, body);
    }

    pub(crate) fn bcast_heartbeat(&mut self) {
        let round = self.reads.start_round(self.ticks);
        let peers: Vec<(NodeId, LogIndex)> = self
            .progress
            .iter()
            .filter(|(&p, _)| p != self.id)
            .map(|(&p, pr)| (p, pr.matched))
            .collect();
        for (p, matched) in peers {
            let commit = self.log.committed().min(matched);
            if let Some(pr) = self.progress.get_mut(&p) {
                pr.commit_sent = pr.commit_sent.max(commit);
            }
            if self.removal_commit.is_some_and(|c| commit >= c) {
                self.removal_rounds.entry(p).or_insert(round);
            }
            self.send(
                p,
                Body::Heartbeat {
                    commit,
                    read_round: round,
                },
            );
        }
        // A lone voter confirms its own rounds.
        self.read_round_acked(self.id, round);
    }

    /// Advances the commit index to what a quorum has durably replicated — but only by
    /// counting replicas of an entry of the current term (§5.4.2, Figure 8).
    pub(crate) fn maybe_commit(&mut self) -> bool {
        let progress = &self.progress;
        let quorum_index = self
            .membership
            .committed_index(|id| progress.get(&id).map(|p| p.matched).unwrap_or_default());
        if quorum_index <= self.log.committed() {
            return false;
        }
        if !self.cfg.knobs.commit_any_term && self.log.term(quorum_index) != Some(self.term) {
            return false;
        }
        self.commit_to(quorum_index);
        true
    }

    /// Raises the commit index and applies newly committed configuration entries.
    pub(crate) fn commit_to(&mut self, index: LogIndex) {
        let before = self.log.committed();
        if !self.log.commit_to(index) {
            return;
        }
        self.apply_configs(before, index);
        if self.role == Role::Leader {
            self.broadcast_pending = true;
            self.reads
                .first_commit_in_term(self.log.term(index) == Some(self.term));
            self.release_reads_after_commit();
        }
    }

    /// Called as each committed config entry takes effect.
    pub(crate) fn on_membership_changed(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let next = self.log.last_index().next();
        let members = self.membership.members();
        self.progress.retain(|id, _| members.contains(id));
        for id in members {
            self.progress.entry(id).or_insert_with(|| {
                let mut p = Progress::new(next);
                p.recent_active = true;
                p
            });
        }
        if !self.membership.is_voter(self.id) {
            // Thesis §4.2.2: a removed leader steps down — but only once a quorum of the
            // new voters has learned that the removal committed. Stepping down at once
            // would leave them joint (the change takes effect at commit), needing the
            // removed nodes' votes forever. Until then it refuses proposals and keeps
            // sending the commit index.
            if self.removal_commit.is_none() {
                self.removal_commit = Some(self.log.committed());
                self.reads.want_round();
            }
            return;
        }
        self.maybe_leave_joint();
    }

    /// A leader in a committed joint configuration proposes leaving it, unless a
    /// `LeaveJoint` is already in its uncommitted log. Called when the joint
    /// configuration commits and when a new leader takes over mid-change, so a change
    /// never stays joint because its leader died.
    pub(crate) fn maybe_leave_joint(&mut self) {
        if self.role != Role::Leader || !self.membership.is_joint() {
            return;
        }
        let mut i = self.log.committed().next();
        while i <= self.log.last_index() {
            if let Some(Payload::Config(ConfigChange::LeaveJoint)) =
                self.log.entry(i).map(|e| &e.payload)
            {
                return;
            }
            i = i.next();
        }
        let p = self.append_entry(Payload::Config(ConfigChange::LeaveJoint));
        self.pending_config_index = p.index;
    }

    /// Follower side of Append, Heartbeat and InstallSnapshot.
    pub(crate) fn step_from_leader(&mut self, from: NodeId, body: Body) -> Result<(), StepError> {
        match body {
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.handle_append(from, prev_index, prev_term, entries, commit),
            Body::Heartbeat { commit, read_round } => {
                let commit = commit.min(self.log.last_index());
                self.commit_to(commit);
                self.send(from, Body::HeartbeatResponse { read_round });
                Ok(())
            }
            Body::InstallSnapshot {
                meta,
                total_bytes,
                offset,
                chunk,
            } => {
                self.handle_snapshot_chunk(
                    from,
                    Snapshot { meta, data: chunk },
                    total_bytes,
                    offset,
                );
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: LogIndex,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: LogIndex,
    ) -> Result<(), StepError> {
        let committed = self.log.committed();
        if prev_index < committed {
            // Everything up to our commit index matches any leader's log; acknowledge
            // it so the leader can move on (the entries, if any, are re-sent later).
            let reply = self.append_ack(committed);
            self.send_after_sync(from, reply);
            return Ok(());
        }
        let before = self.log.committed();
        match self
            .log
            .maybe_append(prev_index, prev_term, commit, &entries)
            .map_err(StepError::Malformed)?
        {
            Some(last) => {
                let after = self.log.committed();
                if after > before {
                    self.apply_configs(before, after);
                }
                let reply = self.append_ack(last);
                self.send_after_sync(from, reply);
            }
            None => {
                let (hint_index, hint_term) = self
                    .log
                    .find_conflict_by_term(prev_index.min(self.log.last_index()), prev_term);
                self.send(
                    from,
                    Body::AppendResponse {
                        success: false,
                        index: prev_index,
                        hint_index,
                        hint_term,
                    },
                );
            }
        }
        Ok(())
    }

    fn append_ack(&self, index: LogIndex) -> Message {
        Message {
            term: self.term,
            body: Body::AppendResponse {
                success: true,
                index,
                hint_index: LogIndex(0),
                hint_term: Term(0),
            },
        }
    }

    fn handle_snapshot_chunk(&mut self, from: NodeId, part: Snapshot, total: u64, offset: u64) {
        let meta = part.meta;
        if meta.index <= self.log.committed() {
            // Already have it (or more): a retransmit after our final ack was lost.
            let reply = self.append_ack(self.log.committed());
            self.send_after_sync(from, reply);
            self.incoming_snapshot = None;
            return;
        }
        let fresh = !matches!(&self.incoming_snapshot, Some((m, _)) if *m == meta);
        if fresh {
            if offset != 0 {
                self.send(
                    from,
                    Body::SnapshotResponse {
                        index: meta.index,
                        offset: 0,
                    },
                );
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
            self.send(
                from,
                Body::SnapshotResponse {
                    index: meta.index,
                    offset: have,
                },
            );
            return;
        }
        let Some((meta, buf)) = self.incoming_snapshot.take() else {
            return;
        };
        let snapshot = Snapshot {
            meta,
            data: buf.freeze(),
        };
        self.install_snapshot(from, snapshot);
    }

    /// Raft §7: replace the log with the leader's snapshot unless we already hold the
    /// entry it ends with, in which case only the commit index moves.
    fn install_snapshot(&mut self, from: NodeId, snapshot: Snapshot) {
        let (index, term) = (snapshot.meta.index, snapshot.meta.term);
        if self.log.match_term(index, term) {
            self.commit_to(index);
            let reply = self.append_ack(index);
            self.send_after_sync(from, reply);
            return;
        }
        self.membership = snapshot.meta.membership.clone();
        self.membership_base = self.membership.clone();
        self.membership_history.clear();
        self.log.restore(snapshot.clone());
        self.snapshot = Some(snapshot);
        let reply = self.append_ack(index);
        self.send_after_sync(from, reply);
    }

    /// Leader side of AppendResponse, HeartbeatResponse and SnapshotResponse.
    pub(crate) fn step_from_follower(&mut self, from: NodeId, body: Body) {
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        match body {
            Body::AppendResponse {
                success: false,
                index,
                hint_index,
                hint_term,
            } => {
                let hint = if hint_term > Term(0) {
                    self.log.find_conflict_by_term(hint_index, hint_term).0
                } else {
                    hint_index
                };
                let pr = self.progress.get_mut(&from).expect("checked above");
                if pr.maybe_decr_to(index, hint) {
                    self.send_appends(from, true);
                }
            }
            Body::AppendResponse { index, .. } => {
                if index > self.log.last_index() {
                    return; // acknowledges entries we never had: not from this term's log
                }
                pr.inflights.free_to(index);
                let updated = pr.maybe_update(index);
                match pr.state {
                    ReplicationState::Probe if pr.matched == index => pr.become_replicate(),
                    ReplicationState::Snapshot if pr.matched >= pr.snapshot_index => {
                        pr.become_probe()
                    }
                    _ => {}
                }
                if updated {
                    self.maybe_commit();
                    if self.transferee == Some(from)
                        && self
                            .progress
                            .get(&from)
                            .is_some_and(|p| p.matched == self.log.last_index())
                    {
                        self.send_timeout_now(from);
                    }
                }
                self.send_appends(from, false);
            }
            Body::HeartbeatResponse { read_round } => {
                if pr.state == ReplicationState::Probe {
                    pr.probe_sent = false;
                } else if pr.state == ReplicationState::Replicate
                    && pr
                        .inflights
                        .is_full(self.cfg.inflight_msgs_max, self.cfg.inflight_bytes_max)
                {
                    // A lost append would otherwise block the window forever.
                    pr.inflights.free_first();
                }
                if pr.matched < self.log.last_index() {
                    self.send_appends(from, true);
                }
                self.read_round_acked(from, read_round);
            }
            Body::SnapshotResponse { index, offset }
                if pr.state == ReplicationState::Snapshot && pr.snapshot_index == index =>
            {
                pr.snapshot_offset = offset;
                self.send_snapshot_chunk(from);
            }
            _ => {}
        }
    }
}
