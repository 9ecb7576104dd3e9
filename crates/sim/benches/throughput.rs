//! Committed proposals per second through a 3-node Raft cluster on a perfect simulated
//! network, with batching on (proposals gathered into one append and one "fsync") and
//! off (one append and one ready per proposal). Measures the protocol's own CPU cost.
//!
//! `cargo bench -p sim --bench throughput`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sim::bench_cluster::BenchCluster;
use sim::EngineParams;

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

criterion_group!(benches, commit_throughput);
criterion_main!(benches);
