//! The dissemination queue: membership claims waiting to be piggybacked on outgoing
//! messages, each sent a bounded number of times.
//!
//! Epidemic dissemination needs each claim to be passed on about λ·log N times for every
//! node to hear it with high probability (SWIM §4.1); passing it on forever would waste
//! every message's space. Each queued claim counts its transmissions to *random*
//! members (gossip messages, [`BroadcastQueue::select`]) and is dropped at
//! [`retransmit_limit`]; while queued it also rides free on probe traffic
//! ([`BroadcastQueue::peek`]). Only random sends count because probe traffic goes to
//! the same few ring neighbours every period: counting it, a claim used up its budget
//! on neighbours that already knew, and in a 20-node simulation one node in a few
//! hundred rumours missed a rejoin until the next anti-entropy sync. Messages carry the
//! least-transmitted claims first (newest first among equals), so fresh news travels
//! at once and old news yields the space.
//!
//! Only the latest claim per member is queued: a newer claim replaces an older one and
//! restarts its count, since the old one is now stale everywhere it would arrive.

use std::collections::BTreeMap;

use consensus::NodeId;

use crate::member::Update;

/// How many times each claim is sent in a cluster of `live` members:
/// `mult × ⌈log10(live + 1)⌉`, at least 1 (memberlist's rule; λ = `mult`).
pub fn retransmit_limit(mult: u32, live: usize) -> u32 {
    let scale = ((live as f64 + 1.0).log10().ceil() as u32).max(1);
    mult.saturating_mul(scale).max(1)
}

#[derive(Clone, Debug)]
struct Queued {
    update: Update,
    transmits: u32,
    /// Insertion order, for "newest first" among equally-sent claims.
    order: u64,
}

/// Claims waiting to be gossiped, at most one per member.
#[derive(Clone, Debug, Default)]
pub struct BroadcastQueue {
    entries: BTreeMap<NodeId, Queued>,
    next_order: u64,
}

impl BroadcastQueue {
    /// Queues `update`, replacing any queued claim about the same member.
    pub fn push(&mut self, update: Update) {
        self.next_order += 1;
        self.entries.insert(
            update.id,
            Queued {
                update,
                transmits: 0,
                order: self.next_order,
            },
        );
    }

    /// Takes up to `limit` claims for a gossip message to a random member — fewest
    /// transmissions first, then newest — skipping the claim about `skip` (already
    /// included by the caller). Each taken claim counts one transmission and leaves the
    /// queue at `transmit_limit`.
    pub fn select(
        &mut self,
        limit: usize,
        transmit_limit: u32,
        skip: Option<NodeId>,
    ) -> Vec<Update> {
        let picked = self.order(limit, skip);
        let mut out = Vec::with_capacity(picked.len());
        for id in picked {
            let Some(q) = self.entries.get_mut(&id) else {
                continue;
            };
            out.push(q.update);
            q.transmits += 1;
            if q.transmits >= transmit_limit {
                self.entries.remove(&id);
            }
        }
        out
    }

    /// The claims [`BroadcastQueue::select`] would take, without counting them: for
    /// probe traffic, which rides along for free.
    pub fn peek(&self, limit: usize, skip: Option<NodeId>) -> Vec<Update> {
        self.order(limit, skip)
            .into_iter()
            .filter_map(|id| self.entries.get(&id).map(|q| q.update))
            .collect()
    }

    fn order(&self, limit: usize, skip: Option<NodeId>) -> Vec<NodeId> {
        if limit == 0 {
            return Vec::new();
        }
        let mut picked: Vec<(u32, std::cmp::Reverse<u64>, NodeId)> = self
            .entries
            .iter()
            .filter(|(&id, _)| Some(id) != skip)
            .map(|(&id, q)| (q.transmits, std::cmp::Reverse(q.order), id))
            .collect();
        picked.sort_unstable();
        picked.truncate(limit);
        picked.into_iter().map(|(_, _, id)| id).collect()
    }

    /// The queued claim about `id`, if any.
    pub fn get(&self, id: NodeId) -> Option<&Update> {
        self.entries.get(&id).map(|q| &q.update)
    }

    /// Drops the queued claim about `id` (the member was forgotten).
    pub fn remove(&mut self, id: NodeId) {
        self.entries.remove(&id);
    }

    /// Number of queued claims.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing waits to be gossiped.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::{Incarnation, State};

    fn alive(id: NodeId, incarnation: u64) -> Update {
        Update {
            id,
            incarnation: Incarnation(incarnation),
            state: State::Alive,
            by: id,
        }
    }

    #[test]
    fn retransmissions_grow_with_log_n() {
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 20), 8);
        assert_eq!(retransmit_limit(4, 1000), 16);
        assert_eq!(retransmit_limit(0, 5), 1);
    }

    #[test]
    fn each_claim_is_sent_exactly_the_limit_times() {
        let mut q = BroadcastQueue::default();
        q.push(alive(1, 0));
        let mut sent = 0;
        while !q.is_empty() {
            sent += q.select(8, 3, None).len();
        }
        assert_eq!(sent, 3);
    }

    #[test]
    fn fresh_claims_go_first_and_old_ones_yield_the_space() {
        let mut q = BroadcastQueue::default();
        q.push(alive(1, 0));
        assert_eq!(q.select(1, 10, None), vec![alive(1, 0)]);
        q.push(alive(2, 0));
        q.push(alive(3, 0));
        // 2 and 3 are unsent (3 is newest) and go before 1, sent once already.
        assert_eq!(q.select(2, 10, None), vec![alive(3, 0), alive(2, 0)]);
        // Now all were sent once: newest first.
        assert_eq!(
            q.select(3, 10, None),
            vec![alive(3, 0), alive(2, 0), alive(1, 0)]
        );
    }

    #[test]
    fn a_newer_claim_replaces_the_old_and_restarts_its_count() {
        let mut q = BroadcastQueue::default();
        q.push(alive(1, 0));
        q.select(1, 3, None);
        q.select(1, 3, None);
        q.push(alive(1, 1));
        assert_eq!(q.len(), 1);
        let mut sent = Vec::new();
        while !q.is_empty() {
            sent.extend(q.select(1, 3, None));
        }
        assert_eq!(sent, vec![alive(1, 1); 3]);
    }

    #[test]
    fn peeking_does_not_count() {
        let mut q = BroadcastQueue::default();
        q.push(alive(1, 0));
        for _ in 0..10 {
            assert_eq!(q.peek(8, None), vec![alive(1, 0)]);
        }
        assert_eq!(q.select(8, 1, None), vec![alive(1, 0)]);
        assert!(q.is_empty());
    }

    #[test]
    fn the_skipped_member_stays_queued() {
        let mut q = BroadcastQueue::default();
        q.push(alive(1, 0));
        q.push(alive(2, 0));
        assert_eq!(q.select(8, 1, Some(2)), vec![alive(1, 0)]);
        assert_eq!(q.get(2), Some(&alive(2, 0)));
    }
}
