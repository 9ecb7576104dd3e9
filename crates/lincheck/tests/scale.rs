//! Realistic histories of thousands of operations check quickly and correctly.

mod common;

use common::gen::{completed_get, generate, Shape};
use lincheck::kv::{KvModel, KvOutput};
use lincheck::{Checker, Verdict};

fn one_key(indeterminate_percent: u64) -> Shape {
    Shape {
        ops: 5_000,
        clients: 8,
        keys: 1,
        indeterminate_percent,
    }
}

#[test]
fn five_thousand_ops_on_one_key_are_linearizable() {
    for seed in 0..3 {
        let h = generate(seed, &one_key(0));
        let verdict = Checker::new()
            .with_step_budget(1_000_000)
            .check(&KvModel, &h);
        assert_eq!(verdict, Verdict::Linearizable, "seed {seed}");
    }
}

#[test]
fn five_thousand_ops_on_one_key_with_lost_requests_are_linearizable() {
    for seed in 0..2 {
        let h = generate(seed, &one_key(2));
        assert_eq!(
            Checker::new().check(&KvModel, &h),
            Verdict::Linearizable,
            "seed {seed}"
        );
    }
}

#[test]
fn a_corrupted_read_in_the_middle_of_five_thousand_ops_is_caught() {
    let h = generate(7, &one_key(0));
    let victim = completed_get(&h, 1_000).expect("the generator makes reads");
    let mut bad = h;
    if let Some((_, out)) = bad[victim].ret.as_mut() {
        *out = KvOutput::found("never written");
    }
    let verdict = Checker::new().check(&KvModel, &bad);
    let violation = verdict.violation().expect("violation");
    assert!(violation.ops.contains(&victim));
    assert!(
        violation
            .explanation
            .contains("longest linearizable prefix found"),
        "{}",
        violation.explanation
    );
}

#[test]
fn twenty_thousand_ops_over_ten_keys_are_linearizable() {
    let h = generate(
        11,
        &Shape {
            ops: 20_000,
            clients: 16,
            keys: 10,
            indeterminate_percent: 10,
        },
    );
    assert_eq!(Checker::new().check(&KvModel, &h), Verdict::Linearizable);
}
