//! Two criterion groups on a 3-node cluster on a perfect simulated network (messages
//! delivered in order at once, every write "durable" at once), measuring the protocol's
//! own CPU cost:
//!
//! - `raft_3_nodes`: committed proposals per second through Raft with batching on
//!   (proposals gathered into one append and one "fsync") and off (one append and one
//!   ready per proposal);
//! - `engines_closed_loop`: Raft against Multi-Paxos with 1, 16 and 64 clients in a
//!   closed loop (each keeps one command outstanding and submits the next when it
//!   commits), both engines at their production batching and window defaults.
//!   Criterion reports committed commands per second; messages, durable writes and
//!   network hops per command are printed once per configuration (criterion only
//!   measures time).
//!
//! `cargo bench -p sim --bench throughput` (about two minutes);
//! `cargo bench -p sim --bench throughput -- engines_closed_loop` for the comparison.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use sim::bench_cluster::BenchCluster;
use sim::{EngineParams, SimEngine};

const PROPOSALS: usize = 2_000;
const VALUE_BYTES: usize = 256;

fn params(batching: bool) -> EngineParams {
    EngineParams {
        batch_entries_max: if batching { 1024 } else { 1 },
        inflight_msgs_max: 256,
        ..EngineParams::default()
    }
}

fn commit_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("raft_3_nodes");
    group.throughput(Throughput::Elements(PROPOSALS as u64));
    for (name, batching) in [("batching_on", true), ("batching_off", false)] {
        // Report the message cost once, outside the timed loop.
        let mut probe = BenchCluster::<raft::Raft>::new(3, &params(batching));
        probe.propose(PROPOSALS, VALUE_BYTES, !batching);
        probe.run();
        eprintln!(
            "{name}: {:.3} messages per committed proposal",
            probe.messages as f64 / probe.applied as f64
        );
        group.bench_function(name, |b| {
            b.iter_batched(
                || BenchCluster::<raft::Raft>::new(3, &params(batching)),
                |mut cluster| {
                    cluster.propose(PROPOSALS, VALUE_BYTES, !batching);
                    cluster.run();
                    assert_eq!(cluster.applied, PROPOSALS as u64);
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Commands committed per measured iteration of the closed loop.
const LOOP_COMMANDS: u64 = 2_000;

/// Both engines' production defaults (`raft::Config::new`, `paxos::Config::new`): up to
/// 1,024 entries per append or accept, 64 in flight per follower.
fn production_params() -> EngineParams {
    EngineParams {
        batch_entries_max: 1024,
        inflight_msgs_max: 64,
        ..EngineParams::default()
    }
}

fn closed_loop<E: SimEngine>(group: &mut BenchmarkGroup<'_, WallTime>, clients: usize) {
    let params = production_params();
    // The costs criterion cannot see, from one run outside the timed loop (the loop is
    // deterministic: every iteration does exactly this).
    let mut probe = BenchCluster::<E>::new(3, &params);
    probe.count_kinds = true;
    let s = probe.closed_loop(clients, LOOP_COMMANDS, VALUE_BYTES);
    let kinds: Vec<String> = probe
        .kinds
        .iter()
        .map(|(k, n)| format!("{k} {:.3}", *n as f64 / s.committed as f64))
        .collect();
    eprintln!(
        "{:>5} {clients:>2} clients: {:.3} messages/command ({}), {:.3} durable writes/command, \
         latency {:.2} hops, {:.2} commands/hop",
        E::NAME,
        s.messages_per_command(),
        kinds.join(", "),
        s.syncs_per_command(),
        s.mean_latency_rounds(),
        s.commands_per_round()
    );
    group.bench_with_input(BenchmarkId::new(E::NAME, clients), &clients, |b, &n| {
        b.iter_batched(
            || BenchCluster::<E>::new(3, &params),
            |mut cluster| {
                let s = cluster.closed_loop(n, LOOP_COMMANDS, VALUE_BYTES);
                assert_eq!(s.committed, LOOP_COMMANDS);
                cluster // dropped outside the timed loop
            },
            BatchSize::SmallInput,
        )
    });
}

fn engines_closed_loop(c: &mut Criterion) {
    let mut group = c.benchmark_group("engines_closed_loop");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(LOOP_COMMANDS));
    for clients in [1, 16, 64] {
        closed_loop::<raft::Raft>(&mut group, clients);
        closed_loop::<paxos::Paxos>(&mut group, clients);
    }
    group.finish();
}

criterion_group!(benches, commit_throughput, engines_closed_loop);
criterion_main!(benches);
