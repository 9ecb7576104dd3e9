//! Deterministic generator of realistic concurrent key-value histories (shared by the scale
//! tests and the `bench` example).
//!
//! `clients` clients each issue one request at a time; each request gets a random duration and a
//! random linearization point inside it; outputs come from applying the requests to a reference
//! store in linearization-point order. So the history is linearizable by construction, and the
//! concurrency is about `clients`.

use std::collections::HashMap;

use lincheck::kv::{KvInput, KvOutput};
use lincheck::Operation;

pub type Op = Operation<KvInput, KvOutput>;

/// splitmix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

pub struct Shape {
    pub ops: usize,
    pub clients: usize,
    pub keys: usize,
    /// Percentage of requests whose outcome is lost.
    pub indeterminate_percent: u64,
}

pub fn generate(seed: u64, shape: &Shape) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let mut free = vec![0u64; shape.clients.max(1)];
    // (point, call, ret, client, indeterminate)
    let mut timing = Vec::with_capacity(shape.ops);
    for _ in 0..shape.ops {
        let (c, &t) = free
            .iter()
            .enumerate()
            .min_by_key(|&(_, &t)| t)
            .expect("at least one client");
        let call = t + rng.below(10);
        let duration = 1 + rng.below(60);
        let ret = call + duration;
        let point = call + rng.below(duration + 1);
        free[c] = ret + 1;
        let lost = rng.below(100) < shape.indeterminate_percent;
        timing.push((point, call, ret, c as u64, lost));
    }
    timing.sort_unstable();

    let mut store: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut ops = Vec::with_capacity(shape.ops);
    for (i, &(_, call, ret, client, lost)) in timing.iter().enumerate() {
        let key = format!("key{}", rng.below(shape.keys as u64)).into_bytes();
        let value = format!("v{i}").into_bytes();
        let input = match rng.below(100) {
            0..=39 => KvInput::Get { key },
            40..=64 => KvInput::Put { key, value },
            65..=69 => KvInput::Append {
                key,
                value: vec![b'+'],
            },
            70..=89 => {
                let expected = if rng.below(2) == 0 {
                    store.get(&key).cloned()
                } else {
                    Some(format!("v{}", i.saturating_sub(1 + rng.below(5) as usize)).into_bytes())
                };
                KvInput::Cas {
                    key,
                    expected,
                    new: value,
                }
            }
            _ => KvInput::Delete { key },
        };
        let output = match &input {
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
                let swap = store.get(key) == expected.as_ref();
                if swap {
                    store.insert(key.clone(), new.clone());
                }
                KvOutput::Cas(swap)
            }
            KvInput::Delete { key } => KvOutput::Deleted(store.remove(key).is_some()),
        };
        ops.push(if lost {
            Operation::indeterminate(client, input, call)
        } else {
            Operation::completed(client, input, call, ret, output)
        });
    }
    ops.sort_by_key(|op| op.call);
    ops
}

/// Index of the `n`th (mod count) completed Get whose output can be corrupted.
pub fn completed_get(ops: &[Op], n: usize) -> Option<usize> {
    let reads: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op.input, KvInput::Get { .. }) && op.ret.is_some())
        .map(|(i, _)| i)
        .collect();
    if reads.is_empty() {
        None
    } else {
        Some(reads[n % reads.len()])
    }
}
