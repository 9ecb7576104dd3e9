//! The ring: every active node's virtual nodes at hashed positions, and the walk that
//! turns a position into a replica set.
//!
//! ```text
//!  0 ──────────────────────────────────────────────────────────── 2^64, wrapping to 0
//!     a·0    b·1    ● shard s    a·2    c·0    a·1    b·0    c·2   ...
//!                   └── walk ──▶ meets a, c, a again (skip), b, c again (skip), ...
//!                                preference list of s: [a, c, b, ...]
//! ```
//! (`a·2` is node `a`'s virtual node 2.)
//!
//! **Choosing replicas from the preference list.** Give each listed node a *rank*: 1 for
//! the first node of its zone in the list, 2 for the second node of the same zone, and
//! so on. The replicas are the `R` nodes with the smallest `(rank, place in the list)`.
//! With at least `R` zones that is simply the first node of each of the first `R` zones
//! met (and with no zone labels at all, the first `R` distinct nodes — Dynamo's
//! preference list). With fewer zones than replicas every zone gets one replica before
//! any gets a second, so no zone holds more than `⌈R / zones⌉` replicas of a shard while
//! each zone has that many active nodes: with 5 replicas over 3 zones, losing a whole
//! zone leaves 3 of 5, still a majority. Zones too small for their share simply run out
//! and the others fill in.
//!
//! **Why this rule moves little.** Adding node `x` of zone `Z` to a preference list
//! leaves every other zone's nodes with their ranks and relative order. Write zone
//! `Z`'s keys as `(rank, place)`; if `x` is the `k`-th `Z` node met, the new rank-`k`
//! key is `x`'s, earlier than the old one, and for `j > k` the new rank-`j` key belongs
//! to the old rank-`(j - 1)` node, at its earlier place. So each new `Z` key is no
//! later than the old key of the same rank and later than the old key of the rank
//! below: at most one more `Z` node fits among the first `R`, and it must be `x`. The
//! chosen `Z` nodes are a prefix of `Z`'s list (now with `x` in it), the other zones'
//! a prefix of their unchanged order; so the set either stays the same or gains `x` and
//! loses exactly one node. Removing `x` is the inverse. Hence a join moves exactly the
//! replicas the new node ends up holding, a departure exactly those the old node held
//! (the least any placement could move), and a dead node's replica goes to the next
//! eligible node of the walk (with zones, the next the zone rule admits): recovery is deterministic and spread over the dead node's
//! many ring neighbours. The property tests check all of this against a naive
//! re-implementation.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::hash::vnode_position;
use crate::members::{Members, NodeId};

/// The consistent-hash ring of a membership's active nodes.
///
/// Guarantees: built only from the active nodes (draining and dead nodes have no
/// virtual nodes, so they are never chosen); an active node of weight `w` owns exactly
/// `w × vnodes_per_weight` virtual nodes at [`vnode_position`]s; the same membership
/// gives the same ring on every node, whatever order its nodes were listed in.
#[derive(Clone, Debug)]
pub struct Ring {
    /// Every virtual node, sorted by `(position, node)`. Node indexes follow id order, so
    /// two virtual nodes that hash to the same position are ordered by node id.
    points: Vec<Point>,
    /// The active nodes in id order; `Point::node` indexes this.
    nodes: Vec<RingNode>,
    /// The number of active nodes in each zone, by dense zone index. Every entry ≥ 1.
    zone_sizes: Vec<u32>,
}

#[derive(Clone, Copy, Debug)]
struct Point {
    position: u64,
    node: u32,
}

#[derive(Clone, Copy, Debug)]
struct RingNode {
    id: NodeId,
    /// Dense zone index; a node without a zone label has a zone of its own.
    zone: u32,
}

impl Ring {
    /// The most virtual nodes a ring may hold (about 64 MiB of points). Real clusters need
    /// far fewer: 100 nodes × 256 is 25,600.
    pub const VNODES_MAX: u64 = 1 << 22;

    /// The ring of `members`' active nodes, each with `weight × vnodes_per_weight`
    /// virtual nodes.
    ///
    /// Errors: `NoVnodes` if `vnodes_per_weight` is 0, `NoActiveNodes` if no member is
    /// active, `TooManyVnodes` past [`Ring::VNODES_MAX`].
    pub fn new(members: &Members, vnodes_per_weight: u32) -> Result<Ring, Error> {
        if vnodes_per_weight == 0 {
            return Err(Error::NoVnodes);
        }
        let vnodes: u64 = members
            .eligible()
            .map(|n| u64::from(n.weight) * u64::from(vnodes_per_weight))
            .sum();
        if vnodes == 0 {
            return Err(Error::NoActiveNodes);
        }
        if vnodes > Self::VNODES_MAX {
            return Err(Error::TooManyVnodes {
                vnodes,
                max: Self::VNODES_MAX,
            });
        }

        let mut zone_index: BTreeMap<&str, u32> = BTreeMap::new();
        let mut zone_sizes: Vec<u32> = Vec::new();
        let mut nodes = Vec::new();
        let mut points = Vec::with_capacity(vnodes as usize);
        for node in members.eligible() {
            let zone = match node.zone.as_deref() {
                Some(label) => *zone_index.entry(label).or_insert_with(|| {
                    zone_sizes.push(0);
                    zone_sizes.len() as u32 - 1
                }),
                None => {
                    zone_sizes.push(0);
                    zone_sizes.len() as u32 - 1
                }
            };
            zone_sizes[zone as usize] += 1;
            let index = nodes.len() as u32;
            nodes.push(RingNode { id: node.id, zone });
            // Bounded by VNODES_MAX above, so the count fits a u32.
            let count = node.weight * vnodes_per_weight;
            points.extend((0..count).map(|i| Point {
                position: vnode_position(node.id, i),
                node: index,
            }));
        }
        points.sort_unstable_by_key(|p| (p.position, p.node));
        Ok(Ring {
            points,
            nodes,
            zone_sizes,
        })
    }

    /// The number of active nodes on the ring.
    pub fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// The number of virtual nodes on the ring.
    pub fn vnodes(&self) -> usize {
        self.points.len()
    }

    /// The number of distinct failure domains among the active nodes (a node without a
    /// zone label counts as one).
    pub fn zones(&self) -> usize {
        self.zone_sizes.len()
    }

    /// Every active node, once each, in the order a clockwise walk from `position` first
    /// meets one of its virtual nodes (the first at or after `position`, wrapping).
    pub fn preference_list(&self, position: u64) -> PreferenceList<'_> {
        PreferenceList {
            ring: self,
            start: self.start(position),
            step: 0,
            seen: vec![false; self.nodes.len()],
            unseen: self.nodes.len(),
        }
    }

    /// The `count` replicas for `position`, chosen from its preference list by the
    /// zone-aware rule in the module documentation, listed in preference-list order.
    ///
    /// Guarantees: `count` distinct active nodes; as many distinct zones as possible
    /// (`min(count, zones)`); no zone holds more than `⌈count / zones⌉` of them unless a
    /// smaller zone ran out of nodes. Errors: `NoReplicas` if `count` is 0,
    /// `TooFewActiveNodes` if it exceeds the active nodes.
    pub fn replicas(&self, position: u64, count: u32) -> Result<Vec<NodeId>, Error> {
        self.check_count(count)?;
        let mut walk = Walk::new(self, count as usize);
        let mut out = Vec::with_capacity(count as usize);
        self.select(position, &mut walk, &mut out);
        Ok(out)
    }

    pub(crate) fn check_count(&self, count: u32) -> Result<(), Error> {
        if count == 0 {
            return Err(Error::NoReplicas);
        }
        if count as usize > self.nodes.len() {
            return Err(Error::TooFewActiveNodes {
                active: self.nodes.len(),
                replicas: count,
            });
        }
        Ok(())
    }

    /// The index of the first virtual node at or after `position`, wrapping to 0.
    fn start(&self, position: u64) -> usize {
        let i = self.points.partition_point(|p| p.position < position);
        if i == self.points.len() {
            0
        } else {
            i
        }
    }

    /// Appends the replicas for `position` to `out`. The walk stops as soon as no node
    /// further along could change the choice, so with enough zones it visits about as
    /// many virtual nodes as it picks replicas.
    ///
    /// Requires `1 <= walk.count <= self.nodes()` (checked by `check_count`).
    pub(crate) fn select(&self, position: u64, walk: &mut Walk, out: &mut Vec<NodeId>) {
        let count = walk.count;
        debug_assert!(count >= 1 && count <= self.nodes.len());
        walk.begin(self.zone_sizes.len());
        let start = self.start(position);
        let (before, after) = self.points.split_at(start);
        let mut seen = 0;
        for point in after.iter().chain(before) {
            let node = point.node as usize;
            if !walk.first_visit(node) {
                continue;
            }
            seen += 1;
            let zone = self.nodes[node].zone as usize;
            walk.take(zone, self.zone_sizes[zone], point.node);
            if seen == self.nodes.len() || walk.decided() {
                break;
            }
        }
        walk.finish(&self.nodes, out);
    }
}

/// The preference list of a position: see [`Ring::preference_list`].
#[derive(Clone, Debug)]
pub struct PreferenceList<'a> {
    ring: &'a Ring,
    start: usize,
    step: usize,
    seen: Vec<bool>,
    unseen: usize,
}

impl Iterator for PreferenceList<'_> {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        let points = &self.ring.points;
        while self.unseen > 0 && self.step < points.len() {
            let point = points[(self.start + self.step) % points.len()];
            self.step += 1;
            let node = point.node as usize;
            if !self.seen[node] {
                self.seen[node] = true;
                self.unseen -= 1;
                return Some(self.ring.nodes[node].id);
            }
        }
        None
    }
}

/// A node met by a walk: its rank within its zone and its place in the preference list.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    rank: usize,
    order: usize,
    node: u32,
}

/// Reusable bookkeeping for walks on one ring, so that placing thousands of shards
/// allocates once. Per-walk arrays are reset lazily by stamping: an entry whose stamp is
/// not the current walk's counts as zero.
#[derive(Debug)]
pub(crate) struct Walk {
    /// Replicas to choose.
    count: usize,
    stamp: u32,
    /// `node_stamp[n] == stamp` iff node `n` was met in this walk.
    node_stamp: Vec<u32>,
    zone_stamp: Vec<u32>,
    /// Nodes of the zone met in this walk (valid when `zone_stamp` matches).
    zone_taken: Vec<u32>,
    /// `rank_counts[k]`: candidates of rank `k`, for `k <= count` (larger ranks can never
    /// be among the first `count`, since the i-th candidate met has rank at most i).
    rank_counts: Vec<u32>,
    /// `open_zones[c]`: zones with unmet nodes of which `c` were met (`c` capped at
    /// `count`). An unmet node of such a zone would have rank `c + 1`.
    open_zones: Vec<u32>,
    candidates: Vec<Candidate>,
}

impl Walk {
    pub(crate) fn new(ring: &Ring, count: usize) -> Walk {
        Walk {
            count,
            stamp: 0,
            node_stamp: vec![0; ring.nodes.len()],
            zone_stamp: vec![0; ring.zone_sizes.len()],
            zone_taken: vec![0; ring.zone_sizes.len()],
            rank_counts: vec![0; count + 1],
            open_zones: vec![0; count + 1],
            candidates: Vec::new(),
        }
    }

    fn begin(&mut self, zones: usize) {
        if self.stamp == u32::MAX {
            // After 4 billion walks, clear for real rather than let stamps repeat.
            self.node_stamp.fill(0);
            self.zone_stamp.fill(0);
            self.stamp = 0;
        }
        self.stamp += 1;
        self.rank_counts.fill(0);
        self.open_zones.fill(0);
        // Every zone has at least one active node, so every zone starts open with none met.
        self.open_zones[0] = zones as u32;
        self.candidates.clear();
    }

    /// Marks `node` met; false if it already was.
    fn first_visit(&mut self, node: usize) -> bool {
        if self.node_stamp[node] == self.stamp {
            return false;
        }
        self.node_stamp[node] = self.stamp;
        true
    }

    /// Records a newly met node of `zone` (which has `zone_size` active nodes).
    fn take(&mut self, zone: usize, zone_size: u32, node: u32) {
        let taken = if self.zone_stamp[zone] == self.stamp {
            self.zone_taken[zone]
        } else {
            0
        };
        let rank = taken + 1;
        self.zone_stamp[zone] = self.stamp;
        self.zone_taken[zone] = rank;
        // The zone was open (this node was unmet); it is open still if more remain.
        self.open_zones[(taken as usize).min(self.count)] -= 1;
        if rank < zone_size {
            self.open_zones[(rank as usize).min(self.count)] += 1;
        }
        let rank = rank as usize;
        if rank <= self.count {
            self.rank_counts[rank] += 1;
        }
        let order = self.candidates.len();
        self.candidates.push(Candidate { rank, order, node });
    }

    /// Whether the choice is final: no unmet node can sort before the current
    /// `count`-th candidate. An unmet node comes later in the list, so it only sorts
    /// earlier with a strictly smaller rank; the rank it would get is one more than the
    /// nodes met of its zone.
    fn decided(&self) -> bool {
        let mut total = 0;
        for rank in 1..=self.count {
            total += self.rank_counts[rank] as usize;
            if total >= self.count {
                // The count-th candidate has rank `rank`. An open zone with at most
                // rank - 2 nodes met could still produce a node of rank <= rank - 1.
                return self.open_zones[..rank - 1].iter().all(|&zones| zones == 0);
            }
        }
        false
    }

    fn finish(&mut self, nodes: &[RingNode], out: &mut Vec<NodeId>) {
        self.candidates.sort_unstable_by_key(|c| (c.rank, c.order));
        self.candidates.truncate(self.count);
        // A walk ends decided (which needs `count` candidates) or having met every node
        // (at least `count`, checked by `check_count`).
        debug_assert_eq!(self.candidates.len(), self.count);
        self.candidates.sort_unstable_by_key(|c| c.order);
        out.extend(self.candidates.iter().map(|c| nodes[c.node as usize].id));
    }
}
