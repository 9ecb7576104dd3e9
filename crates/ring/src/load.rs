//! Load statistics: how evenly a shard map spreads replicas (and preferred leaders)
//! over the active nodes, per unit of weight.

use crate::members::{Members, NodeId};
use crate::shard_map::ShardMap;

/// Summary statistics of a per-node quantity (population statistics: every node counts,
/// nodes with nothing included).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadStats {
    /// Nodes counted.
    pub nodes: usize,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std_dev: f64,
}

impl LoadStats {
    /// The statistics of `values`, or `None` if there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<LoadStats> {
        let values: Vec<f64> = values.into_iter().collect();
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        Some(LoadStats {
            nodes: values.len(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            mean,
            std_dev: variance.sqrt(),
        })
    }

    /// The busiest node relative to the mean: 1.0 is perfect balance. 0 if the mean is 0.
    pub fn max_over_mean(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            self.max / self.mean
        }
    }

    /// The standard deviation relative to the mean (coefficient of variation). 0 if the
    /// mean is 0.
    pub fn relative_std_dev(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            self.std_dev / self.mean
        }
    }
}

/// The members the statistics cover — the active ones — with their weights.
fn active_weights(members: &Members) -> impl Iterator<Item = (NodeId, f64)> + '_ {
    members.eligible().map(|n| (n.id, f64::from(n.weight)))
}

impl ShardMap {
    /// Replicas per unit of weight on each active member (draining and dead members are
    /// left out; active members holding nothing count as 0). `None` if no member is
    /// active.
    pub fn replica_stats(&self, members: &Members) -> Option<LoadStats> {
        let load = self.load();
        LoadStats::of(
            active_weights(members)
                .map(|(id, weight)| f64::from(load.get(&id).copied().unwrap_or(0)) / weight),
        )
    }

    /// Preferred leaderships (first replicas) per unit of weight on each active member,
    /// as [`ShardMap::replica_stats`] counts replicas.
    pub fn leader_stats(&self, members: &Members) -> Option<LoadStats> {
        let leaders = self.leaders();
        LoadStats::of(
            active_weights(members)
                .map(|(id, weight)| f64::from(leaders.get(&id).copied().unwrap_or(0)) / weight),
        )
    }
}
