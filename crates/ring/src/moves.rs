//! Moves: what must change to take the current shard map to a target, one replica at a
//! time, so that later work can throttle, order and explain them.
//!
//! For each shard the nodes leaving (in the current set, not the target) are paired
//! with the nodes arriving (in the target, not the current set): a pair is one
//! replacement, an unpaired arrival adds a replica, an unpaired departure removes one.
//! Shards whose set of nodes is unchanged produce no move — a new preferred leader is
//! not a move. Within a shard, departures from dead nodes are paired first, so the
//! target's most preferred newcomer restores lost redundancy.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::keyspace::ShardId;
use crate::members::{Members, NodeId, NodeState};
use crate::shard_map::ShardMap;

/// One replica change of one shard: add a replica on `to` (once it has caught up),
/// retire the one on `from`. Never both `None`.
///
/// The moves of a plan touch distinct `(shard, node)` pairs, so they can be carried out
/// in any order, any subset at a time: each applies to the current map on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Move {
    /// The shard.
    pub shard: ShardId,
    /// The replica to retire; `None` when the shard is short of replicas.
    pub from: Option<NodeId>,
    /// The node to receive a new replica; `None` when the shard has one too many.
    pub to: Option<NodeId>,
    /// Why, which is also how urgent.
    pub reason: MoveReason,
}

/// Why a move is needed, in order of urgency (the derived order is the priority order:
/// `Repair` first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MoveReason {
    /// The shard lacks a replica, or has one on a dead node or a node no longer a member:
    /// redundancy is reduced until this is done.
    Repair,
    /// The replica is on a draining node.
    Drain,
    /// The replica's node is healthy but the ring now prefers another (a node joined or
    /// changed weight or zone).
    Rebalance,
    /// The shard has more replicas than the target, all on active nodes.
    Trim,
}

impl fmt::Display for MoveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MoveReason::Repair => "repair",
            MoveReason::Drain => "drain",
            MoveReason::Rebalance => "rebalance",
            MoveReason::Trim => "trim",
        })
    }
}

impl fmt::Display for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {}: ", self.shard)?;
        match (self.from, self.to) {
            (Some(from), Some(to)) => write!(f, "{from} -> {to}")?,
            (None, Some(to)) => write!(f, "+{to}")?,
            (Some(from), None) => write!(f, "-{from}")?,
            (None, None) => write!(f, "nothing")?,
        }
        write!(f, " ({})", self.reason)
    }
}

/// How soon a departing replica's node should be paired: gone first, then draining,
/// then healthy.
fn departure_urgency(members: &Members, node: NodeId) -> u8 {
    match members.get(node).map(|n| n.state) {
        None | Some(NodeState::Dead) => 0,
        Some(NodeState::Draining) => 1,
        Some(NodeState::Active) => 2,
    }
}

fn reason(members: &Members, from: Option<NodeId>, to: Option<NodeId>) -> MoveReason {
    let Some(from) = from else {
        return MoveReason::Repair;
    };
    match members.get(from).map(|n| n.state) {
        None | Some(NodeState::Dead) => MoveReason::Repair,
        Some(NodeState::Draining) => MoveReason::Drain,
        Some(NodeState::Active) if to.is_some() => MoveReason::Rebalance,
        Some(NodeState::Active) => MoveReason::Trim,
    }
}

impl ShardMap {
    /// The moves that take this (current) map to `target`, most urgent first (by
    /// [`MoveReason`], then by shard).
    ///
    /// Guarantees: a shard gets moves only if its set of nodes differs from the target's;
    /// it gets `max(leaving, arriving)` of them, the fewest single-replica changes that
    /// can do it; every `from` is in the current set and not the target, every `to` in
    /// the target and not the current set; applying all of them, in any order, makes
    /// [`ShardMap::converged_to`] hold. `members` only classifies the moves.
    ///
    /// Errors: `KeyspaceMismatch` if the maps cover different keyspaces.
    pub fn moves_to(&self, target: &ShardMap, members: &Members) -> Result<Vec<Move>, Error> {
        if self.keyspace() != target.keyspace() {
            return Err(Error::KeyspaceMismatch);
        }
        let mut moves = Vec::new();
        for (shard, (current, wanted)) in self.sets().iter().zip(target.sets()).enumerate() {
            let mut leaving: Vec<NodeId> = current
                .iter()
                .filter(|n| !wanted.contains(n))
                .copied()
                .collect();
            // Stable: equally urgent departures keep the current map's order.
            leaving.sort_by_key(|n| departure_urgency(members, *n));
            let arriving: Vec<NodeId> = wanted
                .iter()
                .filter(|n| !current.contains(n))
                .copied()
                .collect();
            for i in 0..leaving.len().max(arriving.len()) {
                let (from, to) = (leaving.get(i).copied(), arriving.get(i).copied());
                moves.push(Move {
                    shard: ShardId(shard as u32),
                    from,
                    to,
                    reason: reason(members, from, to),
                });
            }
        }
        // Stable: within one reason, shards stay in order.
        moves.sort_by_key(|m| m.reason);
        Ok(moves)
    }

    /// Carries out `m`: `to` takes `from`'s place in the shard's list (or is appended
    /// when there is no `from`); a `from` without `to` is removed. The other replicas
    /// keep their order.
    ///
    /// Errors, leaving the map unchanged: `UnknownShard`; `MoveDoesNotApply` if `from`
    /// is not a replica of the shard, `to` already is, or the move names neither.
    pub fn apply(&mut self, m: &Move) -> Result<(), Error> {
        let set = self.set_mut(m.shard).ok_or(Error::UnknownShard(m.shard))?;
        let stale = Error::MoveDoesNotApply(*m);
        if m.to.is_some_and(|to| set.contains(&to)) {
            return Err(stale);
        }
        match (m.from, m.to) {
            (None, None) => return Err(stale),
            (None, Some(to)) => set.push(to),
            (Some(from), to) => {
                let at = set.iter().position(|n| *n == from).ok_or(stale)?;
                match to {
                    Some(to) => set[at] = to,
                    None => {
                        set.remove(at);
                    }
                }
            }
        }
        Ok(())
    }
}
