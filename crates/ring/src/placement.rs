//! Placement: the rules that turn a membership into a target shard map, and the plan
//! that takes the current map there.
//!
//! ```text
//!   Members ──Ring::new──▶ Ring ─┐
//!          ──quotas──▶ caps ─────┴─▶ for each shard, in bit-reversed id order:
//!                                      walk from its position, passing over full nodes
//!                                      (zone rule first), first replica under its
//!                                      leader cap leads ──▶ count it ──▶ target ShardMap
//!                                                                              │
//!   current ShardMap (stored by the meta group) ──────────moves_to─────────────┴──▶ [Move]
//! ```
//!
//! The target is a pure function of the membership and the placement configuration, so
//! every node that holds the same membership computes the same target, and any current
//! map — mid-migration, after a crash, edited by hand — converges to it.
//!
//! **Consistent hashing with bounded loads** (Mirrokni, Thorup, Zadimoghaddam, 2017;
//! used by Vimeo and HAProxy). The ring alone gives each node a share that tracks its
//! arcs, which is coarse when a node holds few replicas: 16 shards × 3 replicas on 5
//! nodes left one node 13 replicas against a mean of 9.6. So each active node gets a
//! cap a little over its fair share ([`Quota`]); shards are placed one after another, and a node
//! that has reached its cap is *full*: walks pass over it to the next node with room
//! (the zone rule still comes first; see [`crate::Ring`]). The same is done, more
//! softly, for preferred leaders: each shard lists first the first of its replicas still
//! under its leader cap (or its ring-first replica if none is), so leadership spreads
//! without changing which nodes hold what.
//!
//! **Choosing the cap.** A node's cap is `max(⌈c · share⌉, ⌈share⌉ + 1)` with
//! `c = 9/8`: one replica over the mean when a node holds 8 (16 shards × 3 on 6 nodes),
//! 12.5% over it at large counts, and never less than one replica of slack (a cap at the
//! mean leaves every node full, and the next change reshuffles most shards; see
//! [`Quota`]). A tighter `c` balances more, but every membership change re-routes more
//! shards past full nodes, and with `N` close to `R` the walk runs out of nodes with
//! room. Measured over 3–100 nodes, 16–256 virtual nodes and 16–4,096 shards (README):
//! `c = 1` or `17/16` moved 3–30% more than the joining or departing node's share and
//! overshot caps by up to 307 replicas; `c = 5/4` moved at most 5% more but let the
//! busiest node reach 1.25–1.30 × the mean, which the ring alone at 256 virtual nodes
//! rarely exceeds; `c = 9/8` keeps the busiest node within 1.15 × the mean at 4,096
//! shards (1.17 at 256, where a node may hold as few as 8), for 1.5–12% more movement
//! (at most 1.5% at 4,096 shards × 256 virtual nodes, where caps seldom bind).
//!
//! **What it costs in movement.** Without caps one join or departure moved exactly the
//! node's share (each affected shard swapped one replica). With caps, caps change with
//! the membership, and a node that stops being full (or becomes full) re-routes later
//! shards, so a few other shards move too — a cascade. At 4,096 shards × 3 and 256
//! virtual nodes on 5–100 nodes, a join moved at most 5 replicas beyond the newcomer's
//! share, and departures at most 2.2% beyond what the departing nodes held; with few
//! replicas per node the cascade is a larger part (a replica or two at 16 shards;
//! 25–55% of a departing node's 8–15 replicas at 256 shards on 50–100 nodes). The property tests
//! assert `3·R·S/N + R` in general and `R·S/N` for equal nodes with 64+ virtual nodes.
//!
//! **Guarantees that hold exactly** (property-tested against a naive re-implementation):
//! determinism; `R` distinct active nodes per shard; the zone rule; draining and dead
//! nodes hold nothing. **Caps are soft**: a node goes over its cap only when fewer than
//! `R` nodes (or not enough zones) have room, which needs few nodes compared with `R`
//! (with equal weights and no zones, never once `N ≥ 9R`: fewer than `N / c` nodes can
//! be full at once) or weights and zone sizes the ring cannot follow.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::keyspace::Keyspace;
use crate::members::Members;
use crate::moves::Move;
use crate::quota::{self, Quota};
use crate::ring::{Ring, Room, Walk};
use crate::shard_map::ShardMap;

/// How shards are placed: the keyspace, the replicas per shard and the virtual nodes per
/// unit of node weight. Fixed at cluster creation (the replica count and virtual nodes
/// can change later, at the cost of the moves the new target implies).
///
/// Guarantees of [`Placement::compute`]: deterministic (same members and configuration,
/// same map, on every node and version); each shard gets exactly `replicas` distinct
/// active nodes, spread over `min(replicas, zones)` zones, at most `⌈replicas / zones⌉`
/// per zone while each zone has that many active nodes; draining and dead nodes hold
/// nothing; every node holds at most its [`Quota::replicas_max`] replicas whenever the
/// walk finds `replicas` nodes with room (always, with equal weights, no zones and at
/// least `9 × replicas` active nodes), and leads at most its [`Quota::leaders_max`]
/// shards whenever one of each shard's replicas is under its leader cap. Movement is
/// near-minimal rather than minimal: see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PlacementFields")]
pub struct Placement {
    keyspace: Keyspace,
    replicas: u32,
    vnodes_per_weight: u32,
}

/// The wire form of a [`Placement`], checked by [`Placement::new`] on the way in.
#[derive(Deserialize)]
struct PlacementFields {
    keyspace: Keyspace,
    replicas: u32,
    vnodes_per_weight: u32,
}

impl TryFrom<PlacementFields> for Placement {
    type Error = Error;
    fn try_from(fields: PlacementFields) -> Result<Placement, Error> {
        Placement::new(fields.keyspace, fields.replicas, fields.vnodes_per_weight)
    }
}

/// A target map and the moves that reach it from the current map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// What the ring wants for the current membership.
    pub target: ShardMap,
    /// What to do to get there, most urgent first; see [`ShardMap::moves_to`].
    pub moves: Vec<Move>,
}

impl Placement {
    /// A good default for virtual nodes per unit of weight. With caps bounding the
    /// busiest node, virtual nodes mainly decide how often caps bind, and so how much a
    /// membership change moves beyond the minimum: at 256, the ring alone already keeps
    /// the busiest node within 18% of the mean for 4,096 shards × 3 on up to 100 nodes,
    /// for 25,600 ring points at 100 nodes and a few milliseconds to place every shard
    /// (see the README).
    pub const VNODES_PER_WEIGHT_DEFAULT: u32 = 256;

    /// A placement of `replicas` replicas per shard of `keyspace`, with
    /// `vnodes_per_weight` virtual nodes per unit of node weight.
    ///
    /// Errors: `NoReplicas` or `NoVnodes` for a zero. Whether there are enough nodes is
    /// a property of the membership, checked by [`Placement::compute`].
    pub fn new(
        keyspace: Keyspace,
        replicas: u32,
        vnodes_per_weight: u32,
    ) -> Result<Placement, Error> {
        if replicas == 0 {
            return Err(Error::NoReplicas);
        }
        if vnodes_per_weight == 0 {
            return Err(Error::NoVnodes);
        }
        Ok(Placement {
            keyspace,
            replicas,
            vnodes_per_weight,
        })
    }

    /// The keyspace placed.
    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// Replicas per shard.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// Virtual nodes per unit of node weight.
    pub fn vnodes_per_weight(&self) -> u32 {
        self.vnodes_per_weight
    }

    /// The ring of `members`' active nodes under this placement.
    pub fn ring(&self, members: &Members) -> Result<Ring, Error> {
        Ring::new(members, self.vnodes_per_weight)
    }

    /// The target shard map for `members`, by consistent hashing with bounded loads
    /// (see the module documentation): shards in bit-reversed order of their ids, each
    /// walking the ring from its position and passing over nodes that are full, then
    /// listing first the first of its replicas still under its leader cap.
    ///
    /// Guarantees: those of [`Placement`]. Errors: `NoActiveNodes`,
    /// `TooFewActiveNodes` (fewer active nodes than replicas: keep the current map until
    /// nodes return or join), `TooManyVnodes`.
    pub fn compute(&self, members: &Members) -> Result<ShardMap, Error> {
        let ring = self.ring(members)?;
        ring.check_count(self.replicas)?;
        let quotas = quota::quotas(&ring, self.keyspace.shards(), self.replicas);
        let mut room = Room::new(&ring);
        // Per ring node (active nodes in id order): replicas and first places so far.
        let mut replicas_held = vec![0u32; ring.nodes()];
        let mut leaders_held = vec![0u32; ring.nodes()];
        let mut walk = Walk::new(&ring, self.replicas as usize);
        let mut replicas = vec![Vec::new(); self.keyspace.shards() as usize];
        let mut chosen = Vec::with_capacity(self.replicas as usize);
        for shard in placing_order(self.keyspace.shards()) {
            chosen.clear();
            ring.select(
                self.keyspace.ring_position(shard),
                &mut walk,
                &room,
                &mut chosen,
            );
            // The first node under its leader cap leads, the rest keep preference order;
            // if all are at their caps the ring's first choice leads (a soft cap: the
            // replica set is already decided, and leadership moves no data).
            let lead = chosen
                .iter()
                .position(|&n| leaders_held[n as usize] < quotas[n as usize].leaders_max)
                .unwrap_or(0);
            chosen[..=lead].rotate_right(1);
            leaders_held[chosen[0] as usize] += 1;
            for &n in &chosen {
                replicas_held[n as usize] += 1;
                if replicas_held[n as usize] >= quotas[n as usize].replicas_max {
                    room.fill(&ring, n);
                }
            }
            replicas[shard as usize] = chosen.iter().map(|&n| ring.id(n)).collect();
        }
        // Every shard placed once, with R replicas (distinct: the walk meets a node once).
        debug_assert!(replicas
            .iter()
            .all(|set| set.len() == self.replicas as usize));
        debug_assert_eq!(
            replicas_held.iter().map(|&n| u64::from(n)).sum::<u64>(),
            u64::from(self.keyspace.shards()) * u64::from(self.replicas)
        );
        Ok(ShardMap::from_valid(self.keyspace, replicas))
    }

    /// Every active member's fair share and caps under this placement, in id order:
    /// the numbers [`Placement::compute`] balances against.
    ///
    /// Guarantees: those of [`Quota`]. Errors: as [`Placement::compute`].
    pub fn quotas(&self, members: &Members) -> Result<Vec<Quota>, Error> {
        let ring = self.ring(members)?;
        ring.check_count(self.replicas)?;
        Ok(quota::quotas(&ring, self.keyspace.shards(), self.replicas))
    }

    /// The target for `members` and the moves from `current` to it — the one call a
    /// meta-group leader makes after any membership change.
    ///
    /// Errors: those of [`Placement::compute`], and `KeyspaceMismatch` if `current` is not
    /// a map of this placement's keyspace.
    pub fn plan(&self, current: &ShardMap, members: &Members) -> Result<Plan, Error> {
        let target = self.compute(members)?;
        let moves = current.moves_to(&target, members)?;
        Ok(Plan { target, moves })
    }
}

/// The order shards are placed in: bit-reversed ids. With `k` the bits needed for
/// `shards - 1`, step `i` of `0..2^k` places shard `reverse_k(i)`, skipping ids past the
/// last shard. For 8 shards: 0, 4, 2, 6, 1, 5, 3, 7.
///
/// Why: shards sit in id order around the ring, and any prefix of this order is spread
/// evenly around it (a van der Corput sequence). Nodes therefore fill up at the same
/// pace all around the ring, and when one reaches its cap the shards still to come are
/// everywhere, not only on the arcs after it. Measured against id order it balances as
/// well and moves a little less (see the crate README).
fn placing_order(shards: u32) -> impl Iterator<Item = u32> {
    // Keyspace guarantees 1 ≤ shards ≤ 2^20, so bits ≤ 20.
    let bits = u32::BITS - (shards - 1).leading_zeros();
    (0..1u32 << bits)
        .map(move |i| i.reverse_bits().checked_shr(u32::BITS - bits).unwrap_or(0))
        .filter(move |&shard| shard < shards)
}
