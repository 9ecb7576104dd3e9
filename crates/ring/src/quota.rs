//! Quotas: each active node's fair share of replicas and preferred leaderships, and the
//! caps that bounded-load placement keeps it under.
//!
//! ```text
//!   R·S replicas ──split over zones──▶ zone totals ──split within each zone──▶ node shares
//!                  (the zone rule fixes         (by weight, at most S
//!                   each zone's range;           per node: one replica
//!                   by weight inside it)          per shard)
//!
//!   replicas_max = min(S, max(⌈c · share⌉, ⌈share⌉ + 1))    leaders_max = ⌈c · share / R⌉
//!                                                                          (c = 9/8)
//! ```
//!
//! **Fair share.** With no zones, a node's share is its weight's part of the `R·S`
//! replicas — except that a node holds at most one replica per shard, so a node whose
//! part would exceed `S` holds `S` and the rest is split among the others by weight
//! ("water-filling"). Zones add ranges: the zone rule gives every zone its `ℓ - 1`
//! first-ranked nodes in every shard, where `ℓ` is the least level with
//! `Σ min(size, ℓ) ≥ R`, and one more node in some of the shards if it has an `ℓ`-th
//! node. So zone `z` holds between `min(size, ℓ - 1)·S` and `min(size, ℓ)·S` replicas,
//! and the `R·S` replicas are split over zones by weight within those ranges, then
//! within each zone by weight with at most `S` per node. (With as many zones as
//! replicas or more, `ℓ = 1`: each zone holds at most `S`, one replica per shard.)
//!
//! **Caps.** A node may go `c = 9/8` over its share (see `Placement` for the choice), and
//! always at least one replica over `⌈share⌉`: when shares are small, `⌈c · share⌉`
//! sits at the mean — 21 shards on 24 nodes would cap every node at 1 — so nearly every
//! node is full, and the next membership change shifts the caps and reshuffles most
//! shards. Leaders get no such floor: moving a preferred leader copies no data, and
//! their caps are soft anyway (a shard's leader is one of its replicas).
//!
//! **Exact arithmetic.** Every node computes the caps from the same membership, and a
//! cap that differs by one between two nodes would make their shard maps differ, so
//! shares are exact fractions of integers, never floating point. The bounds: shards
//! `S ≤ 2^20`; active weight `W ≤ 2^22` (the ring refuses more virtual nodes, and each
//! unit of weight has at least one); replicas `R ≤ 2^22` (at most one per active node).
//! So `R·S ≤ 2^42`, a zone-level fraction has a denominator `≤ 2^22` and a numerator
//! `≤ 2^64`, a node-level one a denominator `≤ 2^44` and a numerator `≤ 2^86`; products
//! in comparisons stay below `2^128`.

use std::cmp::Ordering;

use crate::members::NodeId;
use crate::ring::Ring;

/// How far over its fair share a node may go: `c = 9/8` (the module documentation of
/// `placement.rs` explains the choice).
pub(crate) const CAP_OVER_FAIR: (u128, u128) = (9, 8);

/// What one active node should hold under a placement, and the most it is given while
/// other nodes have room.
///
/// Guarantees (for [`crate::Placement::quotas`]): the `replicas_fair` of all active
/// nodes sum to `R·S`, each is above 0 and at most `S`; they are proportional to weight
/// except where one replica per shard or the zone rule forces otherwise (a node, or a
/// zone, that cannot take its weight's part takes all it can and the rest is shared by
/// weight); `replicas_max = min(S, max(⌈9/8 · replicas_fair⌉, ⌈replicas_fair⌉ + 1))`
/// and `leaders_max = ⌈9/8 · replicas_fair / R⌉`, computed in exact arithmetic so that
/// every node derives the same caps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    /// The node.
    pub node: NodeId,
    /// Replicas it would hold under perfect balance (may be fractional).
    pub replicas_fair: f64,
    /// The cap on its replicas: [`crate::Placement::compute`] gives it no more while
    /// `R` nodes (over enough zones) have room.
    pub replicas_max: u32,
    /// Preferred leaderships (first places) it would hold under perfect balance: its
    /// replica share over `R`, so that it leads one in `R` of the shards it holds.
    pub leaders_fair: f64,
    /// The cap on its preferred leaderships: it is listed first beyond this only for
    /// shards whose every replica has reached its own leader cap.
    pub leaders_max: u32,
}

/// A non-negative fraction `num / den`, `den > 0`, compared exactly.
#[derive(Clone, Copy, Debug)]
struct Frac {
    num: u128,
    den: u128,
}

impl Frac {
    fn int(n: u128) -> Frac {
        Frac { num: n, den: 1 }
    }

    /// `self · k`.
    fn times(self, k: u128) -> Frac {
        Frac {
            num: self.num * k,
            den: self.den,
        }
    }

    /// `⌈self · c / over⌉` for `c = CAP_OVER_FAIR`.
    fn ceil_capped(self, over: u128) -> u128 {
        let (c_num, c_den) = CAP_OVER_FAIR;
        (self.num * c_num).div_ceil(self.den * c_den * over)
    }

    fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl PartialEq for Frac {
    fn eq(&self, other: &Frac) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Frac {}

impl PartialOrd for Frac {
    fn partial_cmp(&self, other: &Frac) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Frac {
    fn cmp(&self, other: &Frac) -> Ordering {
        (self.num * other.den).cmp(&(other.num * self.den))
    }
}

/// One thing to fill: a weight and the range its amount must stay in.
#[derive(Clone, Copy, Debug)]
struct Vessel {
    weight: u128,
    lo: u128,
    hi: u128,
}

/// Water-filling: the amounts `clamp(μ · weight, lo, hi)` whose sum is `total`.
///
/// Requires every weight ≥ 1, `lo ≤ hi`, and `Σ lo ≤ total ≤ Σ hi`. The sum is
/// continuous and non-decreasing in `μ`, linear between the breakpoints `lo / weight`
/// and `hi / weight`; binary search finds the last breakpoint where it is at most
/// `total`, and the vessels strictly between their bounds there share the rest by
/// weight. Items at a bound get exactly that bound; the others get equal amounts per
/// unit of weight — no more per weight than any item above its `lo`, no less than any
/// below its `hi`.
fn fill(total: Frac, vessels: &[Vessel]) -> Vec<Frac> {
    let mut breaks: Vec<Frac> = vessels
        .iter()
        .flat_map(|v| {
            [
                Frac {
                    num: v.lo,
                    den: v.weight,
                },
                Frac {
                    num: v.hi,
                    den: v.weight,
                },
            ]
        })
        .collect();
    breaks.sort_unstable();
    // The sum at μ = p as a fraction over p.den: Σ clamp(p.num · w, lo · p.den, hi · p.den).
    let sum_at = |p: Frac| Frac {
        num: vessels
            .iter()
            .map(|v| (p.num * v.weight).clamp(v.lo * p.den, v.hi * p.den))
            .sum(),
        den: p.den,
    };
    // At the smallest breakpoint every vessel is at its lo, and Σ lo ≤ total.
    let at = breaks.partition_point(|&p| sum_at(p) <= total) - 1;
    let p = breaks[at];
    let (mut fixed, mut free_weight) = (0u128, 0u128);
    for v in vessels {
        // On [p, next breakpoint): at hi if hi / w ≤ p, at lo if lo / w > p, else free.
        if Frac::int(v.hi) <= p.times(v.weight) {
            fixed += v.hi;
        } else if Frac::int(v.lo) > p.times(v.weight) {
            fixed += v.lo;
        } else {
            free_weight += v.weight;
        }
    }
    let mu = if free_weight == 0 {
        // Flat from p on, so the sum is already total at p.
        p
    } else {
        // total - fixed = μ · free_weight, and μ ≥ p keeps it non-negative.
        Frac {
            num: total.num - fixed * total.den,
            den: total.den * free_weight,
        }
    };
    vessels
        .iter()
        .map(|v| {
            let amount = mu.times(v.weight);
            if amount <= Frac::int(v.lo) {
                Frac::int(v.lo)
            } else if amount >= Frac::int(v.hi) {
                Frac::int(v.hi)
            } else {
                amount
            }
        })
        .collect()
}

/// Every active node's quota, in ring node order (active nodes by id), for `shards`
/// shards of `replicas` replicas.
///
/// Requires `1 <= replicas <= ring.nodes()` (checked by `Ring::check_count`).
pub(crate) fn quotas(ring: &Ring, shards: u32, replicas: u32) -> Vec<Quota> {
    let nodes: Vec<(NodeId, u32, u32)> = ring.node_info().collect();
    let (s, r) = (u128::from(shards), u128::from(replicas));
    let zones = ring.zones();
    let mut zone_size = vec![0u128; zones];
    let mut zone_weight = vec![0u128; zones];
    for &(_, weight, zone) in &nodes {
        zone_size[zone as usize] += 1;
        zone_weight[zone as usize] += u128::from(weight);
    }
    // ℓ: the least level at which the zones' first ℓ nodes cover R replicas. R is at
    // most the active nodes, so ℓ ≤ the largest zone size.
    let mut level = 1;
    while zone_size.iter().map(|&n| n.min(level)).sum::<u128>() < r {
        level += 1;
    }
    let zone_vessels: Vec<Vessel> = (0..zones)
        .map(|z| Vessel {
            weight: zone_weight[z],
            lo: zone_size[z].min(level - 1) * s,
            hi: zone_size[z].min(level) * s,
        })
        .collect();
    let zone_total = fill(Frac::int(r * s), &zone_vessels);

    let mut zone_members: Vec<Vec<usize>> = vec![Vec::new(); zones];
    for (i, &(_, _, zone)) in nodes.iter().enumerate() {
        zone_members[zone as usize].push(i);
    }
    let mut shares = vec![Frac::int(0); nodes.len()];
    for (members, &total) in zone_members.iter().zip(&zone_total) {
        let vessels: Vec<Vessel> = members
            .iter()
            .map(|&i| Vessel {
                weight: u128::from(nodes[i].1),
                lo: 0,
                hi: s,
            })
            .collect();
        for (&i, share) in members.iter().zip(fill(total, &vessels)) {
            shares[i] = share;
        }
    }

    nodes
        .iter()
        .zip(shares)
        .map(|(&(node, _, _), share)| Quota {
            node,
            replicas_fair: share.to_f64(),
            // At least one replica of slack over ⌈share⌉ (see the module documentation),
            // at most S: a node cannot hold two replicas of a shard anyway.
            replicas_max: share
                .ceil_capped(1)
                .max(share.num.div_ceil(share.den) + 1)
                .min(s) as u32,
            leaders_fair: share.to_f64() / replicas as f64,
            leaders_max: share.ceil_capped(r) as u32,
        })
        .collect()
}
