//! The checker agrees with a brute-force search on small random histories, linearizable or not.
//!
//! The brute force tries every order of the operations that respects real time (A before B when
//! A returned before B was invoked), with each indeterminate operation either placed somewhere
//! or left out, and accepts if one order explains every completed output.

use std::collections::HashSet;

use lincheck::kv::{KvInput, KvModel, KvOutput, KvState};
use lincheck::{Checker, Model, Operation, Verdict};
use proptest::prelude::*;

type Op = Operation<KvInput, KvOutput>;

fn brute_force(ops: &[Op]) -> bool {
    fn go(ops: &[Op], used: u32, state: &KvState, seen: &mut HashSet<(u32, KvState)>) -> bool {
        let all_completed = ops
            .iter()
            .enumerate()
            .all(|(i, op)| op.ret.is_none() || used & (1 << i) != 0);
        if all_completed {
            return true;
        }
        if !seen.insert((used, state.clone())) {
            return false;
        }
        for (i, op) in ops.iter().enumerate() {
            if used & (1 << i) != 0 {
                continue;
            }
            // Every op that returned before this one was invoked must already be placed.
            let blocked = ops
                .iter()
                .enumerate()
                .any(|(j, p)| used & (1 << j) == 0 && p.return_time().is_some_and(|r| r < op.call));
            if blocked {
                continue;
            }
            if let Some(next) = KvModel.step(state, &op.input, op.output()) {
                if go(ops, used | (1 << i), &next, seen) {
                    return true;
                }
            }
        }
        false
    }
    go(ops, 0, &None, &mut HashSet::new())
}

const VALUES: [&str; 2] = ["a", "b"];
const READS: [Option<&str>; 6] = [
    None,
    Some("a"),
    Some("b"),
    Some("ab"),
    Some("ba"),
    Some("aa"),
];

fn op() -> impl Strategy<Value = Op> {
    (
        0u8..5,
        0usize..2,
        0usize..READS.len(),
        any::<bool>(),
        0u64..12,
        0u64..8,
        prop::bool::weighted(0.4),
        0u64..4,
    )
        .prop_map(|(kind, v, read, flag, call, duration, lost, client)| {
            let value = VALUES[v];
            let (input, output) = match kind {
                0 => (
                    KvInput::get("k"),
                    KvOutput::Value(READS[read].map(|r| r.as_bytes().to_vec())),
                ),
                1 => (KvInput::put("k", value), KvOutput::Ok),
                2 => (KvInput::append("k", value), KvOutput::Ok),
                3 => (
                    KvInput::cas("k", READS[read].map(str::as_bytes), VALUES[1 - v]),
                    KvOutput::Cas(flag),
                ),
                _ => (KvInput::delete("k"), KvOutput::Deleted(flag)),
            };
            if lost {
                Operation::indeterminate(client, input, call)
            } else {
                Operation::completed(client, input, call, call + duration, output)
            }
        })
}

/// The generator below makes both kinds of history, so the comparison is not vacuous.
#[test]
fn generated_histories_are_mixed() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(op(), 1..=8);
    let (mut yes, mut no) = (0, 0);
    for _ in 0..2_000 {
        let ops = strategy.new_tree(&mut runner).expect("strategy").current();
        if brute_force(&ops) {
            yes += 1;
        } else {
            no += 1;
        }
    }
    assert!(yes > 300 && no > 300, "{yes} linearizable, {no} not");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20000))]

    #[test]
    fn checker_agrees_with_brute_force(ops in prop::collection::vec(op(), 1..=10)) {
        let expected = brute_force(&ops);
        let verdict = Checker::new().check(&KvModel, &ops);
        match verdict {
            Verdict::Linearizable => prop_assert!(expected, "accepted a non-linearizable history"),
            Verdict::NotLinearizable(v) => {
                prop_assert!(!expected, "rejected a linearizable history:\n{}", v.explanation)
            }
            Verdict::Unknown { reason } => prop_assert!(false, "unknown: {}", reason),
        }
    }
}
