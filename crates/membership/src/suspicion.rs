//! How long a suspected member has to refute before it is declared dead (Lifeguard's
//! dynamic suspicion timeout, Dadgar, Phillips, Currey 2018, §IV-B).
//!
//! ```text
//!   min = α · max(1, log10 N) · probe_interval          α = suspicion_mult
//!   max = β · min                                       β = suspicion_max_mult
//!   timeout(C) = max(min, max − (max − min) · ln(C + 1) / ln(K + 1))
//! ```
//!
//! * **Why grow with log N:** the refutation has to travel back through gossip, which
//!   takes O(log N) rounds to reach everyone; a timeout shorter than that kills members
//!   that already refuted.
//! * **Why start at max and shrink with confirmations:** one accuser may itself be the
//!   problem (an overloaded node, a broken link that indirect probes did not get
//!   around). `C` counts *independent* accusers beyond the first — other monitors whose
//!   own probes also failed — out of the `K` that could accuse (a member has
//!   `min(k, N − 1)` monitors, so `K = min(k, N − 1) − 1`). A real crash is confirmed
//!   by every monitor within a period or two and is declared dead after about `min`;
//!   a lone accusation waits the full `max`, giving the member time to hear of it.

use consensus::NodeId;

use crate::member::Incarnation;

/// The `(min, max)` suspicion timeouts in milliseconds for a cluster of `live` members.
pub fn timeout_bounds_ms(
    mult: u32,
    max_mult: u32,
    probe_interval_ms: u64,
    live: usize,
) -> (u64, u64) {
    let scale = (live.max(1) as f64).log10().max(1.0);
    let min = (mult as f64 * scale * probe_interval_ms as f64)
        .ceil()
        .max(1.0) as u64;
    (min, min.saturating_mul(max_mult.max(1) as u64))
}

/// The running suspicion of one member at one incarnation.
#[derive(Clone, Debug)]
pub struct Suspicion {
    /// The incarnation under suspicion; a refutation is any higher one.
    pub incarnation: Incarnation,
    /// When this node first heard of the suspicion.
    pub started_ms: u64,
    /// Distinct accusers heard, the first one first; at most `expected + 1` are kept,
    /// since more cannot shorten the timeout further.
    accusers: Vec<NodeId>,
    /// This node is among the accusers (its own probes failed), whether or not it fit
    /// in `accusers`. A node accuses each incarnation at most once.
    by_self: bool,
    min_ms: u64,
    max_ms: u64,
    expected: u32,
}

impl Suspicion {
    /// A suspicion heard at `now_ms` from `accuser`, with timeouts `bounds_ms` and `expected`
    /// (K) possible confirmations.
    pub fn new(
        incarnation: Incarnation,
        now_ms: u64,
        accuser: NodeId,
        self_id: NodeId,
        bounds_ms: (u64, u64),
        expected: u32,
    ) -> Suspicion {
        Suspicion {
            incarnation,
            started_ms: now_ms,
            accusers: vec![accuser],
            by_self: accuser == self_id,
            min_ms: bounds_ms.0,
            max_ms: bounds_ms.1.max(bounds_ms.0),
            expected,
        }
    }

    /// Records `accuser` (this node when `accuser == self_id`); true if it is new, in
    /// which case the suspicion is worth passing on again.
    pub fn confirm(&mut self, accuser: NodeId, self_id: NodeId) -> bool {
        let fresh_self = accuser == self_id && !self.by_self;
        self.by_self |= accuser == self_id;
        if self.accusers.contains(&accuser) {
            return fresh_self;
        }
        if self.accusers.len() <= self.expected as usize {
            self.accusers.push(accuser);
            return true;
        }
        fresh_self
    }

    /// This node has accused this incarnation itself.
    pub fn by_self(&self) -> bool {
        self.by_self
    }

    /// Independent confirmations beyond the first accusation (C), capped at K.
    pub fn confirmations(&self) -> u32 {
        (self.accusers.len() as u32 - 1).min(self.expected)
    }

    /// The current timeout: `max` with no confirmation, `min` with K of them.
    pub fn timeout_ms(&self) -> u64 {
        if self.expected == 0 {
            return self.min_ms;
        }
        let c = self.confirmations() as f64;
        let frac = (c + 1.0).ln() / (self.expected as f64 + 1.0).ln();
        let t = self.max_ms as f64 - (self.max_ms - self.min_ms) as f64 * frac;
        (t.floor() as u64).max(self.min_ms)
    }

    /// When the member is declared dead unless it refutes first.
    pub fn deadline_ms(&self) -> u64 {
        self.started_ms.saturating_add(self.timeout_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_grows_with_log_n_and_never_below_one_factor() {
        assert_eq!(timeout_bounds_ms(4, 6, 500, 1), (2_000, 12_000));
        assert_eq!(timeout_bounds_ms(4, 6, 500, 10), (2_000, 12_000));
        assert_eq!(timeout_bounds_ms(4, 6, 500, 100), (4_000, 24_000));
        let (min20, _) = timeout_bounds_ms(4, 6, 500, 20);
        assert!(min20 > 2_000 && min20 < 4_000);
    }

    #[test]
    fn a_lone_accusation_waits_the_maximum_and_confirmations_shrink_it() {
        let mut s = Suspicion::new(Incarnation(1), 1_000, 2, 9, (2_000, 12_000), 2);
        assert_eq!(s.timeout_ms(), 12_000);
        assert_eq!(s.deadline_ms(), 13_000);
        assert!(
            !s.confirm(2, 9),
            "the same accuser again is not a confirmation"
        );
        assert!(s.confirm(3, 9));
        let one = s.timeout_ms();
        assert!(one < 12_000 && one > 2_000, "{one}");
        assert!(s.confirm(4, 9));
        assert_eq!(s.timeout_ms(), 2_000);
        // Beyond K, nothing changes and nothing is re-gossiped.
        assert!(!s.confirm(5, 9));
        assert_eq!(s.confirmations(), 2);
    }

    #[test]
    fn with_no_possible_confirmation_the_minimum_applies() {
        let s = Suspicion::new(Incarnation(0), 0, 2, 9, (2_000, 12_000), 0);
        assert_eq!(s.timeout_ms(), 2_000);
    }

    #[test]
    fn this_nodes_own_accusation_is_remembered_even_when_the_list_is_full() {
        let mut s = Suspicion::new(Incarnation(0), 0, 2, 9, (2_000, 12_000), 1);
        assert!(s.confirm(3, 9));
        assert!(!s.by_self());
        assert!(s.confirm(9, 9), "the first self-accusation is news");
        assert!(s.by_self());
        assert!(!s.confirm(9, 9));
    }
}
