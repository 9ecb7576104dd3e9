//! Simulated clients: a key-value workload on a small key space (so that operations
//! conflict), and the history of invocations and completions the linearizability
//! checker reads.

use std::collections::BTreeMap;

use bytes::Bytes;
use consensus::{LogIndex, NodeId, Rng, Term};
use kv::{Command, Response};
use lincheck::kv::{KvInput, KvOutput};
use lincheck::Operation;

/// One client: at most one operation outstanding.
#[derive(Debug)]
pub struct Client {
    /// The client's id in the history.
    pub id: u64,
    /// The node it believes leads.
    pub leader_guess: Option<NodeId>,
    /// The operation in progress.
    pub current: Option<ClientOp>,
    /// Operations issued so far.
    pub issued: u64,
    /// The last value this client saw per key (for plausible compare-and-set).
    pub seen: BTreeMap<Bytes, Option<Bytes>>,
}

/// An operation in progress.
#[derive(Clone, Debug)]
pub struct ClientOp {
    /// Unique per client.
    pub op: u64,
    /// Position in the history.
    pub hist: usize,
    /// What it does.
    pub command: Command,
    /// A read served by the ReadIndex/lease path instead of through the log.
    pub read_index: bool,
    /// Some node accepted it (it may take effect even if the client never hears back).
    pub accepted: bool,
    /// When it was invoked.
    pub invoked_us: u64,
}

impl Client {
    /// A client with no operation yet.
    pub fn new(id: u64) -> Self {
        Client {
            id,
            leader_guess: None,
            current: None,
            issued: 0,
            seen: BTreeMap::new(),
        }
    }

    /// Draws the next command: reads (half through the log, half by read barrier),
    /// puts, appends, compare-and-sets and deletes over `keys` keys.
    pub fn next_command(&mut self, rng: &mut Rng, keys: usize) -> (Command, bool) {
        self.issued += 1;
        let key = Bytes::from(format!("k{}", rng.range(0, keys as u64)));
        let value = Bytes::from(format!("c{}o{};", self.id, self.issued));
        match rng.range(0, 100) {
            0..=29 => (Command::Get { key }, rng.chance(0.5)),
            30..=49 => (Command::Put { key, value }, false),
            50..=74 => (Command::Append { key, value }, false),
            75..=89 => {
                let expected = self.seen.get(&key).cloned().flatten();
                let expected = if rng.chance(0.2) { None } else { expected };
                (
                    Command::Cas {
                        key,
                        expected,
                        new: value,
                    },
                    false,
                )
            }
            _ => (Command::Delete { key }, false),
        }
    }
}

/// The recorded history: one slot per invocation; `None` once an operation is known
/// not to have taken effect (it imposes nothing and is left out of the check).
#[derive(Debug, Default)]
pub struct Recorder {
    ops: Vec<Option<Operation<KvInput, KvOutput>>>,
    /// Where each write was proposed, once a leader accepted it.
    slots: Vec<Option<(LogIndex, Term)>>,
}

fn to_input(c: &Command) -> KvInput {
    match c {
        Command::Get { key } => KvInput::get(key),
        Command::Put { key, value } => KvInput::put(key, value),
        Command::Append { key, value } => KvInput::append(key, value),
        Command::Cas { key, expected, new } => KvInput::cas(key, expected.as_deref(), new),
        Command::Delete { key } => KvInput::delete(key),
        other => unreachable!("the simulated workload never issues {other:?}"),
    }
}

/// Converts a state-machine response to the model's output; `None` if it cannot be.
pub fn to_output(r: &Response) -> Option<KvOutput> {
    Some(match r {
        Response::Value(v) => KvOutput::Value(v.as_ref().map(|b| b.to_vec())),
        // Append answers with the new length; the model only records that it applied.
        Response::Ok | Response::Integer(_) => KvOutput::Ok,
        Response::Cas(b) => KvOutput::Cas(*b),
        Response::Deleted(b) => KvOutput::Deleted(*b),
        Response::Set { .. } | Response::Error(_) | Response::Invalid(_) => return None,
    })
}

impl Recorder {
    /// Records an invocation; returns its slot.
    pub fn invoke(&mut self, client: u64, command: &Command, now: u64) -> usize {
        self.ops.push(Some(Operation::indeterminate(
            client,
            to_input(command),
            now,
        )));
        self.slots.push(None);
        self.ops.len() - 1
    }

    /// A leader accepted the write at `index` in `term`.
    pub fn proposed_at(&mut self, slot: usize, index: LogIndex, term: Term) {
        self.slots[slot] = Some((index, term));
    }

    /// Settles writes whose outcome the client never learned, using what the
    /// simulator saw applied at each log slot:
    /// - a write whose slot holds another entry (or nothing, by the end of the run) did
    ///   not take effect: it imposes nothing and is dropped;
    /// - a write that was applied gets the output the state machine computed for it
    ///   and returns when its slot was first applied anywhere. Its linearization point
    ///   (the commit) precedes that moment, so the interval still contains it; and a
    ///   known output and a finite interval keep the checker's search small.
    ///
    /// Returns how many were dropped.
    pub fn settle_with(
        &mut self,
        applied: impl Fn(LogIndex) -> Option<(Term, Option<KvOutput>, u64)>,
    ) -> usize {
        let mut dropped = 0;
        for (op, slot) in self.ops.iter_mut().zip(&self.slots) {
            let open = op.as_ref().is_some_and(|o| o.ret.is_none());
            let (true, Some((index, term))) = (open, slot) else {
                continue;
            };
            match applied(*index) {
                Some((t, output, at)) if t == *term => {
                    if let (Some(o), Some(output)) = (op.as_mut(), output) {
                        o.ret = Some((at.max(o.call), output));
                    }
                }
                _ => {
                    *op = None;
                    dropped += 1;
                }
            }
        }
        dropped
    }

    /// Records a completion.
    pub fn complete(&mut self, slot: usize, output: KvOutput, now: u64) {
        if let Some(op) = self.ops[slot].as_mut() {
            op.ret = Some((now, output));
        }
    }

    /// The operation certainly did not take effect.
    pub fn discard(&mut self, slot: usize) {
        self.ops[slot] = None;
    }

    /// Completed and indeterminate operations, for the checker.
    pub fn operations(&self) -> Vec<Operation<KvInput, KvOutput>> {
        self.ops.iter().flatten().cloned().collect()
    }

    /// (completed, indeterminate) counts.
    pub fn counts(&self) -> (usize, usize) {
        let done = self
            .ops
            .iter()
            .flatten()
            .filter(|o| o.ret.is_some())
            .count();
        let open = self
            .ops
            .iter()
            .flatten()
            .filter(|o| o.ret.is_none())
            .count();
        (done, open)
    }
}
