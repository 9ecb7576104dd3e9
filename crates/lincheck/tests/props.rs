//! Properties over random histories built from a known linearization.
//!
//! A random sequential execution of a key-value store (an independent reference implementation,
//! not `KvModel`) over 1-3 keys by several clients gives every operation a linearization point;
//! each operation then gets a random interval around its point, so intervals overlap at random,
//! and some operations are made indeterminate. Such a history is linearizable by construction.

use std::collections::HashMap;

use lincheck::kv::{KvInput, KvModel, KvOutput};
use lincheck::{Checker, Operation, Verdict};
use proptest::prelude::*;
use proptest::sample::Index;

type Op = Operation<KvInput, KvOutput>;

const VALUES: [&str; 4] = ["a", "b", "c", "d"];

/// Never produced by the generator: every written byte is one of `VALUES`.
const FRESH: &str = "zz-never-written";

#[derive(Debug, Clone)]
struct Step {
    client: u64,
    key: usize,
    kind: u8,
    value: usize,
    expected: usize,
    /// How long before its linearization point the op was invoked.
    before: u64,
    /// How long after its linearization point the op returned.
    after: u64,
    indeterminate: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0u64..6,
        0usize..3,
        0u8..5,
        0usize..VALUES.len(),
        0usize..4,
        0u64..250,
        0u64..250,
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(client, key, kind, value, expected, before, after, indeterminate)| Step {
                client,
                key,
                kind,
                value,
                expected,
                before,
                after,
                indeterminate,
            },
        )
}

/// The reference store: apply `input` in sequence, return its output.
fn apply(store: &mut HashMap<Vec<u8>, Vec<u8>>, input: &KvInput) -> KvOutput {
    match input {
        KvInput::Get { key } => KvOutput::Value(store.get(key).cloned()),
        KvInput::Put { key, value } => {
            store.insert(key.clone(), value.clone());
            KvOutput::Ok
        }
        KvInput::Append { key, value } => {
            store.entry(key.clone()).or_default().extend(value);
            KvOutput::Ok
        }
        KvInput::Cas { key, expected, new } => {
            if store.get(key) == expected.as_ref() {
                store.insert(key.clone(), new.clone());
                KvOutput::Cas(true)
            } else {
                KvOutput::Cas(false)
            }
        }
        KvInput::Delete { key } => KvOutput::Deleted(store.remove(key).is_some()),
    }
}

/// Linearization points are 100 apart; an op's interval reaches up to 250 either side, so up
/// to ~5 ops overlap, and intervals often share endpoints.
fn build(keys: usize, steps: &[Step]) -> Vec<Op> {
    let mut store = HashMap::new();
    let mut history = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let key = format!("k{}", s.key % keys);
        let value = VALUES[s.value];
        let input = match s.kind {
            0 => KvInput::get(&key),
            1 => KvInput::put(&key, value),
            2 => KvInput::append(&key, value),
            3 => {
                // Often expect the current value, so that swaps happen.
                let expected = match s.expected {
                    0 => None,
                    1 => store.get(key.as_bytes()).cloned(),
                    n => Some(VALUES[n].as_bytes().to_vec()),
                };
                KvInput::Cas {
                    key: key.clone().into_bytes(),
                    expected,
                    new: value.as_bytes().to_vec(),
                }
            }
            _ => KvInput::delete(&key),
        };
        let output = apply(&mut store, &input);
        let point = 1_000 + 100 * i as u64;
        let call = point - s.before;
        history.push(if s.indeterminate {
            Operation::indeterminate(s.client, input, call)
        } else {
            Operation::completed(s.client, input, call, point + s.after, output)
        });
    }
    history
}

fn history() -> impl Strategy<Value = Vec<Op>> {
    (1usize..=3, prop::collection::vec(step(), 1..60)).prop_map(|(keys, steps)| build(keys, &steps))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every history with a valid linearization is accepted.
    #[test]
    fn histories_built_from_a_sequential_execution_are_linearizable(h in history()) {
        let verdict = Checker::new().check(&KvModel, &h);
        prop_assert_eq!(verdict, Verdict::Linearizable);
    }

    /// Corrupting one completed read to a value nobody wrote is always caught, and reported
    /// against that read's key.
    #[test]
    fn a_read_of_a_never_written_value_is_always_caught(h in history(), pick in any::<Index>()) {
        let reads: Vec<usize> = h
            .iter()
            .enumerate()
            .filter(|(_, op)| matches!(op.input, KvInput::Get { .. }) && op.ret.is_some())
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!reads.is_empty());
        let victim = reads[pick.index(reads.len())];
        let mut bad = h.clone();
        if let Some((_, out)) = bad[victim].ret.as_mut() {
            *out = KvOutput::found(FRESH);
        }
        match Checker::new().check(&KvModel, &bad) {
            Verdict::NotLinearizable(v) => {
                prop_assert!(v.ops.contains(&victim), "{}", v.explanation);
                let key = String::from_utf8_lossy(bad[victim].input.key()).into_owned();
                prop_assert!(v.partition.contains(&key), "{}", v.partition);
                prop_assert!(v.explanation.contains(FRESH), "{}", v.explanation);
            }
            other => prop_assert!(false, "expected a violation, got {:?}", other),
        }
    }

    /// Making more ops indeterminate never turns an accepted history into a rejected one.
    #[test]
    fn forgetting_outcomes_keeps_a_history_linearizable(h in history(), forget in prop::collection::vec(any::<Index>(), 0..10)) {
        let mut h = h;
        for f in forget {
            let i = f.index(h.len());
            h[i].ret = None;
        }
        prop_assert_eq!(Checker::new().check(&KvModel, &h), Verdict::Linearizable);
    }
}
