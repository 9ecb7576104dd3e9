//! Placement: the rules that turn a membership into a target shard map, and the plan
//! that takes the current map there.
//!
//! ```text
//!   Members ──Ring::new──▶ Ring ──for each shard: walk from its position──▶ target ShardMap
//!                                                                              │
//!   current ShardMap (stored by the meta group) ──────────moves_to─────────────┴──▶ [Move]
//! ```
//!
//! The target is a pure function of the membership and the placement configuration, so
//! every node that holds the same membership computes the same target, and any current
//! map — mid-migration, after a crash, edited by hand — converges to it.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::keyspace::Keyspace;
use crate::members::Members;
use crate::moves::Move;
use crate::ring::{Ring, Walk};
use crate::shard_map::ShardMap;

/// How shards are placed: the keyspace, the replicas per shard and the virtual nodes per
/// unit of node weight. Fixed at cluster creation (the replica count and virtual nodes
/// can change later, at the cost of the moves the new target implies).
///
/// Guarantees of [`Placement::compute`]: deterministic (same members and configuration,
/// same map, on every node and version); each shard gets exactly `replicas` distinct
/// active nodes, spread over `min(replicas, zones)` zones, at most `⌈replicas / zones⌉`
/// per zone while each zone has that many active nodes; minimal movement (adding one
/// node changes only shards that now hold it, one replica each; removing, draining or
/// killing one changes only shards that held it, one replica each).
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
    /// A good default for virtual nodes per unit of weight: with 4,096 shards and 3
    /// replicas the busiest node holds at most 9% over the mean up to 50 nodes (18% at
    /// 100, where the shard count rather than the ring is the limit; see the README), for
    /// 25,600 ring points at 100 nodes and about 2 ms to place every shard.
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

    /// The target shard map for `members`: each shard's replicas chosen by walking the
    /// ring from the shard's position (the start of its hash slice); see
    /// [`Ring::replicas`] for the rule and the [`Placement`] guarantees.
    ///
    /// Errors: `NoActiveNodes`, `TooFewActiveNodes` (fewer active nodes than replicas:
    /// keep the current map until nodes return or join), `TooManyVnodes`.
    pub fn compute(&self, members: &Members) -> Result<ShardMap, Error> {
        let ring = self.ring(members)?;
        ring.check_count(self.replicas)?;
        let mut walk = Walk::new(&ring, self.replicas as usize);
        let replicas = self
            .keyspace
            .shard_ids()
            .map(|shard| {
                let mut set = Vec::with_capacity(self.replicas as usize);
                ring.select(self.keyspace.ring_position(shard.0), &mut walk, &mut set);
                set
            })
            .collect();
        Ok(ShardMap::from_valid(self.keyspace, replicas))
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
