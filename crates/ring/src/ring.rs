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
//! loses exactly one node. Removing `x` is the inverse. So for one position the ring's
//! own choice ([`Ring::replicas`]) changes by at most one node when one node comes or
//! goes, and a dead node's place goes to the next eligible node of the walk.
//!
//! **Full nodes.** [`crate::Placement::compute`] bounds each node's load: once a node
//! holds its cap it is *full*, and later walks prefer nodes with room. The rule above
//! extends without touching the zone guarantees. Within each zone, order the nodes with
//! room first (in list order), then the full ones (in list order), and rank them 1, 2, …
//! in that order; the replicas are the `R` nodes with the smallest `(rank, full, place)`.
//! The zone rule rests only on rank coming first, so it holds as before: a zone whose
//! nodes are all full still gets its rank-1 replica before any zone gets a second. What
//! changes is which node of a zone has which rank, and that among zones of equal rank
//! one with room comes first. With no zone labels every node is rank 1 and this is the
//! bounded-loads walk of Mirrokni, Thorup and Zadimoghaddam (2017): the first `R`
//! distinct nodes with room, clockwise, and full ones only if fewer than `R` have room.
//! With room everywhere it is exactly the ring's own choice. The property tests check
//! the walk, which stops early, against a naive sort of the whole list.

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
    /// The node's weight, at least 1.
    weight: u32,
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
            nodes.push(RingNode {
                id: node.id,
                weight: node.weight,
                zone,
            });
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
    /// This is the ring's own choice for one position, with no node full: the replica
    /// set [`crate::Placement::compute`] picks for a shard whenever no node in the way
    /// has reached its cap (which one it lists first may differ).
    ///
    /// Guarantees: `count` distinct active nodes; as many distinct zones as possible
    /// (`min(count, zones)`); no zone holds more than `⌈count / zones⌉` of them unless a
    /// smaller zone ran out of nodes. Errors: `NoReplicas` if `count` is 0,
    /// `TooFewActiveNodes` if it exceeds the active nodes.
    pub fn replicas(&self, position: u64, count: u32) -> Result<Vec<NodeId>, Error> {
        self.check_count(count)?;
        let mut walk = Walk::new(self, count as usize);
        let mut chosen = Vec::with_capacity(count as usize);
        self.select(position, &mut walk, &Room::new(self), &mut chosen);
        Ok(chosen.into_iter().map(|i| self.id(i)).collect())
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

    /// Appends the replicas for `position` to `out`, as indexes into the ring's nodes
    /// (see [`Ring::id`]) in preference-list order, preferring nodes with room (see the
    /// module documentation). The walk stops as soon as no node further along could
    /// change the choice, so with enough zones and room it visits about as many virtual
    /// nodes as it picks replicas.
    ///
    /// Requires `1 <= walk.count <= self.nodes()` (checked by `check_count`) and `room`
    /// made for this ring.
    pub(crate) fn select(&self, position: u64, walk: &mut Walk, room: &Room, out: &mut Vec<u32>) {
        let count = walk.count;
        debug_assert!(count >= 1 && count <= self.nodes.len());
        debug_assert_eq!(room.full.len(), self.nodes.len());
        walk.begin(self.zone_sizes.len(), room.zones_with_room);
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
            walk.take(
                zone,
                self.zone_sizes[zone],
                room.open[zone],
                point.node,
                room.full[node],
            );
            if seen == self.nodes.len() || walk.decided() {
                break;
            }
        }
        walk.finish(out);
    }

    /// The id of the node at `index` in the ring's node order (active nodes by id).
    pub(crate) fn id(&self, index: u32) -> NodeId {
        self.nodes[index as usize].id
    }

    /// The active nodes in id order, as `(id, weight, dense zone index)`: index `i` of
    /// this iterator is ring node index `i`.
    pub(crate) fn node_info(&self) -> impl Iterator<Item = (NodeId, u32, u32)> + '_ {
        self.nodes.iter().map(|n| (n.id, n.weight, n.zone))
    }
}

/// Which active nodes still have room under their caps, as a walk sees it: a node is
/// *full* once it holds its cap, and the walk prefers nodes that are not (see the
/// module documentation for how this combines with zones).
#[derive(Clone, Debug)]
pub(crate) struct Room {
    /// `full[n]`: ring node `n` has reached its cap.
    full: Vec<bool>,
    /// `open[z]`: nodes of zone `z` that are not full.
    open: Vec<u32>,
    /// Zones with at least one node that is not full.
    zones_with_room: u32,
}

impl Room {
    /// Room on every node of `ring`: the walk then makes the ring's own choice.
    pub(crate) fn new(ring: &Ring) -> Room {
        Room {
            full: vec![false; ring.nodes.len()],
            open: ring.zone_sizes.clone(),
            zones_with_room: ring.zone_sizes.len() as u32,
        }
    }

    /// Marks ring node `node` full. Idempotent.
    pub(crate) fn fill(&mut self, ring: &Ring, node: u32) {
        let node = node as usize;
        if self.full[node] {
            return;
        }
        self.full[node] = true;
        let zone = ring.nodes[node].zone as usize;
        self.open[zone] -= 1;
        if self.open[zone] == 0 {
            self.zones_with_room -= 1;
        }
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

/// A node met by a walk, with its sort key: `level = 2 × rank + full` (see the module
/// documentation), then its place in the preference list.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    level: usize,
    order: usize,
    node: u32,
}

/// The sort level of a node of rank `rank`, full or not: `(rank, full)` as one number.
fn level(rank: usize, full: bool) -> usize {
    2 * rank + usize::from(full)
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
    /// Nodes of the zone with room met in this walk (valid when `zone_stamp` matches).
    zone_open_met: Vec<u32>,
    /// Full nodes of the zone met in this walk (valid when `zone_stamp` matches).
    zone_full_met: Vec<u32>,
    /// `level_counts[l]`: candidates of level `l`, for ranks `<= count` (a node of a
    /// larger rank can never be among the first `count`: the nodes of its zone ranked
    /// before it sort before it, and there are at least `count` of them).
    level_counts: Vec<u32>,
    /// `open_levels[l]`: zones with unmet nodes whose best unmet node would have level
    /// `l` (levels past `2 × count + 1` share the last entry, as they cannot matter).
    open_levels: Vec<u32>,
    candidates: Vec<Candidate>,
}

impl Walk {
    pub(crate) fn new(ring: &Ring, count: usize) -> Walk {
        Walk {
            count,
            stamp: 0,
            node_stamp: vec![0; ring.nodes.len()],
            zone_stamp: vec![0; ring.zone_sizes.len()],
            zone_open_met: vec![0; ring.zone_sizes.len()],
            zone_full_met: vec![0; ring.zone_sizes.len()],
            level_counts: vec![0; level(count, true) + 1],
            open_levels: vec![0; level(count, true) + 2],
            candidates: Vec::new(),
        }
    }

    /// The `open_levels` entry for level `level`.
    fn bucket(&self, level: usize) -> usize {
        level.min(self.open_levels.len() - 1)
    }

    fn begin(&mut self, zones: usize, zones_with_room: u32) {
        if self.stamp == u32::MAX {
            // After 4 billion walks, clear for real rather than let stamps repeat.
            self.node_stamp.fill(0);
            self.zone_stamp.fill(0);
            self.stamp = 0;
        }
        self.stamp += 1;
        self.level_counts.fill(0);
        self.open_levels.fill(0);
        // Every zone has at least one active node and none is met yet: its best unmet
        // node has rank 1, and is full only if the whole zone is.
        self.open_levels[level(1, false)] = zones_with_room;
        self.open_levels[level(1, true)] = zones as u32 - zones_with_room;
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

    /// The level of the best unmet node of a zone of `size` nodes, `open` of them with
    /// room, of which `open_met` and `full_met` were met; `None` if all were met. Within
    /// a zone, nodes with room rank first (in walk order), then full ones.
    fn next_level(open_met: u32, full_met: u32, size: u32, open: u32) -> Option<usize> {
        if open_met < open {
            Some(level(open_met as usize + 1, false))
        } else if open + full_met < size {
            Some(level((open + full_met) as usize + 1, true))
        } else {
            None
        }
    }

    /// Records a newly met node of `zone` (which has `zone_size` active nodes, `open` of
    /// them with room); `full` says whether this node is full.
    fn take(&mut self, zone: usize, zone_size: u32, open: u32, node: u32, full: bool) {
        let (open_met, full_met) = if self.zone_stamp[zone] == self.stamp {
            (self.zone_open_met[zone], self.zone_full_met[zone])
        } else {
            (0, 0)
        };
        // The zone had an unmet node (this one), so it had a best unmet level.
        let before = Self::next_level(open_met, full_met, zone_size, open)
            .expect("a zone with an unmet node has a best unmet level");
        let (open_met, full_met) = if full {
            (open_met, full_met + 1)
        } else {
            (open_met + 1, full_met)
        };
        self.zone_stamp[zone] = self.stamp;
        self.zone_open_met[zone] = open_met;
        self.zone_full_met[zone] = full_met;
        let bucket = self.bucket(before);
        self.open_levels[bucket] -= 1;
        if let Some(after) = Self::next_level(open_met, full_met, zone_size, open) {
            let bucket = self.bucket(after);
            self.open_levels[bucket] += 1;
        }
        // Within its zone a node with room ranks after the others with room met before
        // it; a full node after every node of its zone with room, met or not.
        let rank = if full { open + full_met } else { open_met } as usize;
        let level = level(rank, full);
        if rank <= self.count {
            self.level_counts[level] += 1;
        }
        let order = self.candidates.len();
        self.candidates.push(Candidate { level, order, node });
    }

    /// Whether the choice is final: no unmet node can sort before the current
    /// `count`-th candidate. An unmet node comes later in the list, so it only sorts
    /// earlier with a strictly smaller level.
    fn decided(&self) -> bool {
        let mut total = 0;
        for (level, &candidates) in self.level_counts.iter().enumerate() {
            total += candidates as usize;
            if total >= self.count {
                return self.open_levels[..level].iter().all(|&zones| zones == 0);
            }
        }
        false
    }

    fn finish(&mut self, out: &mut Vec<u32>) {
        self.candidates.sort_unstable_by_key(|c| (c.level, c.order));
        self.candidates.truncate(self.count);
        // A walk ends decided (which needs `count` candidates) or having met every node
        // (at least `count`, checked by `check_count`).
        debug_assert_eq!(self.candidates.len(), self.count);
        self.candidates.sort_unstable_by_key(|c| c.order);
        out.extend(self.candidates.iter().map(|c| c.node));
    }
}
