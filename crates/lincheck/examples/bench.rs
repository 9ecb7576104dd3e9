//! Times the checker on generated histories: `cargo run --release -p lincheck --example bench`.

#[path = "../tests/common/gen.rs"]
mod gen;

use std::time::Instant;

use gen::{completed_get, generate, Shape};
use lincheck::kv::{KvModel, KvOutput};
use lincheck::Checker;

fn main() {
    let shapes = [
        (
            "5,000 ops, 1 key, 8 clients, no lost requests",
            5_000,
            8,
            1,
            0,
        ),
        ("5,000 ops, 1 key, 8 clients, 2% lost", 5_000, 8, 1, 2),
        ("5,000 ops, 1 key, 4 clients, 5% lost", 5_000, 4, 1, 5),
        ("5,000 ops, 1 key, 8 clients, 5% lost", 5_000, 8, 1, 5),
        ("2,000 ops, 1 key, 8 clients, 5% lost", 2_000, 8, 1, 5),
        (
            "100,000 ops, 100 keys, 32 clients, 5% lost",
            100_000,
            32,
            100,
            5,
        ),
    ];
    for (name, ops, clients, keys, lost) in shapes {
        let shape = Shape {
            ops,
            clients,
            keys,
            indeterminate_percent: lost,
        };
        let h = generate(42, &shape);
        let start = Instant::now();
        let verdict = Checker::new().check(&KvModel, &h);
        let ok = start.elapsed();

        let mut bad = h;
        let victim = completed_get(&bad, ops / 2).expect("reads");
        if let Some((_, out)) = bad[victim].ret.as_mut() {
            *out = KvOutput::found("never written");
        }
        let start = Instant::now();
        let bad_verdict = Checker::new().check(&KvModel, &bad);
        let caught = start.elapsed();
        println!(
            "{name}: valid -> {} in {ok:?}; corrupted read -> {} in {caught:?}",
            match verdict {
                lincheck::Verdict::Linearizable => "linearizable",
                lincheck::Verdict::Unknown { .. } => "unknown (budget)",
                lincheck::Verdict::NotLinearizable(_) => "WRONGLY REJECTED",
            },
            match bad_verdict {
                lincheck::Verdict::NotLinearizable(_) => "violation",
                lincheck::Verdict::Unknown { .. } => "unknown (budget)",
                lincheck::Verdict::Linearizable => "MISSED",
            }
        );
    }
}
