//! Who monitors whom: every live member sits on a ring ordered by a hash of its id, and
//! each node directly monitors the next `k` live members clockwise (its successors).
//!
//! ```text
//!            a ──▶ b ──▶ c ──▶ d        k = 2: a monitors b and c,
//!            ▲                 │               b monitors c and d, ...
//!            └──── f ◀── e ◀───┘        so every member has k monitors
//! ```
//!
//! Why a ring rather than SWIM's random probe target: when every node holds the same
//! member list, each member is watched by exactly `min(k, n − 1)` others every period,
//! so a crash is noticed within one period by several independent monitors (whose
//! suspicions confirm each other), and the probe load is `k` pings per node per period
//! regardless of cluster size. Views that briefly disagree only shift who watches whom.
//!
//! This ring is private to the detector: positions are a fixed mix of the id (the
//! SplitMix64 finalizer), independent of the `ring` crate's key placement, so that
//! monitors are spread evenly and a node's neighbours in id order do not all watch it.
//! The mix is part of the protocol's behaviour, not its wire format; nodes running
//! different mixes would still interoperate, only with uneven monitoring.

use consensus::NodeId;

/// A member's position on the monitoring ring.
pub fn position(id: NodeId) -> u64 {
    let mut z = id ^ 0x6A09_E667_F3BC_C908; // so that position(0) is not 0
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The up to `k` members following `of` clockwise among `live` (which may or may not
/// contain `of`; duplicates are ignored), nearest first. Ties in position are broken by
/// id, so the order is total and every node computes the same answer from the same set.
pub fn successors(live: impl IntoIterator<Item = NodeId>, of: NodeId, k: usize) -> Vec<NodeId> {
    let mut ring: Vec<(u64, NodeId)> = live
        .into_iter()
        .filter(|&id| id != of)
        .map(|id| (position(id), id))
        .collect();
    ring.sort_unstable();
    ring.dedup();
    let start = ring.partition_point(|&p| p < (position(of), of));
    ring.iter()
        .cycle()
        .skip(start)
        .take(k.min(ring.len()))
        .map(|&(_, id)| id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The naive definition: walk clockwise from `of`, one step at a time.
    fn brute_force(live: &[NodeId], of: NodeId, k: usize) -> Vec<NodeId> {
        let mut others: Vec<NodeId> = live.iter().copied().filter(|&id| id != of).collect();
        others.sort_unstable();
        others.dedup();
        let key = |id: NodeId| (position(id), id);
        let mut out = Vec::new();
        let mut cur = key(of);
        for _ in 0..k.min(others.len()) {
            // Smallest key strictly after `cur`, wrapping around to the smallest overall.
            let next = others
                .iter()
                .copied()
                .filter(|&id| key(id) > cur)
                .min_by_key(|&id| key(id))
                .or_else(|| others.iter().copied().min_by_key(|&id| key(id)))
                .unwrap();
            out.push(next);
            cur = key(next);
        }
        out
    }

    proptest! {
        #[test]
        fn successors_match_a_clockwise_walk(
            live in proptest::collection::vec(1u64..64, 0..20),
            of in 1u64..64,
            k in 0usize..6,
        ) {
            prop_assert_eq!(successors(live.clone(), of, k), brute_force(&live, of, k));
        }
    }

    #[test]
    fn every_member_has_exactly_k_monitors_when_views_agree() {
        for n in [2u64, 3, 5, 20, 100] {
            let live: Vec<NodeId> = (1..=n).collect();
            let k = 3;
            let mut watchers = vec![0usize; n as usize + 1];
            for &a in &live {
                let s = successors(live.clone(), a, k);
                assert!(!s.contains(&a));
                for b in s {
                    watchers[b as usize] += 1;
                }
            }
            let expect = k.min(n as usize - 1);
            assert!(
                watchers[1..].iter().all(|&w| w == expect),
                "n={n}: {watchers:?}"
            );
        }
    }

    #[test]
    fn neighbours_in_id_order_are_not_neighbours_on_the_ring() {
        // Ids are often handed out consecutively; if the ring followed id order, the
        // nodes of one rack or one batch would all watch each other.
        let live: Vec<NodeId> = (1..=20).collect();
        let adjacent = live
            .iter()
            .filter(|&&a| successors(live.clone(), a, 1) == vec![a % 20 + 1])
            .count();
        assert!(adjacent <= 4, "{adjacent} of 20 successors are the next id");
    }
}
