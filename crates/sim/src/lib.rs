//! hakv's deterministic simulator.
//!
//! One seed defines a whole world — cluster size, fault mix, engine tuning, workload —
//! and replays it exactly, on either engine (Raft or Multi-Paxos, through
//! [`SimEngine`]): the same world and the same checks for both, plus each engine's own
//! invariants. Each run drives real engine code through a faulty network
//! (loss, duplication, reordering, partitions of every shape), disks that lose unsynced
//! writes on crash, restarts, skewed clocks, membership changes and leadership
//! transfers; asserts the safety invariants in [`invariants`] after every event; then
//! heals, demands liveness within a bound, and checks the clients' history for
//! linearizability with [`lincheck`].

#![warn(missing_docs)]

pub mod bench_cluster;
pub mod client;
pub mod config;
pub mod harness;
pub mod invariants;
mod nemesis;
pub mod node;
mod shell;
mod workload;
mod world;

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use config::{FaultMix, SimConfig};
pub use harness::{EngineParams, SimEngine};
pub use world::{Failure, Report, Sim, Stats};

/// Runs one world; an engine panic (a broken internal assertion) becomes a [`Failure`]
/// carrying the seed, like any other broken property.
pub fn run<E: SimEngine>(cfg: SimConfig) -> Result<Report, Failure> {
    let seed = cfg.seed;
    let summary = cfg.summary();
    match catch_unwind(AssertUnwindSafe(|| Sim::<E>::new(cfg).run())) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            Err(Failure {
                engine: E::NAME,
                seed,
                message: format!("panic: {message}"),
                summary,
                trace: Vec::new(),
            })
        }
    }
}

/// Runs the world `SimConfig::from_seed(seed)` on Raft.
pub fn run_raft_seed(seed: u64) -> Result<Report, Failure> {
    run::<raft::Raft>(SimConfig::from_seed(seed))
}

/// Runs the world `SimConfig::from_seed(seed)` on Multi-Paxos: the same cluster, faults,
/// workload and checks as [`run_raft_seed`].
pub fn run_paxos_seed(seed: u64) -> Result<Report, Failure> {
    run::<paxos::Paxos>(SimConfig::from_seed(seed))
}
