//! Recording a history while a test runs.

use crate::Operation;

/// Handle to an operation recorded by [`History::invoke`]; only meaningful for the recorder that
/// returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(usize);

impl OpId {
    /// The index of the operation in [`History::ops`] / [`History::into_ops`].
    pub fn index(self) -> usize {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Completed,
    Indeterminate,
}

/// A recorder of concurrent operations: call [`History::invoke`] just before sending a request
/// and [`History::complete`] as soon as its response arrives (or [`History::indeterminate`] if it
/// never will, e.g. on a timeout). Operations appear in the history in invocation order.
///
/// Timestamps are supplied by the caller and must come from one monotonic clock shared by all
/// clients (e.g. nanoseconds since an `Instant`, or a simulator's virtual time). For concurrent
/// clients, wrap the recorder in a `Mutex`.
#[derive(Debug, Clone)]
pub struct History<I, O> {
    ops: Vec<Operation<I, O>>,
    status: Vec<Status>,
}

impl<I, O> Default for History<I, O> {
    fn default() -> Self {
        History {
            ops: Vec::new(),
            status: Vec::new(),
        }
    }
}

impl<I, O> History<I, O> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record that `client` invoked `input` at time `now`. The operation stays pending until
    /// [`History::complete`] or [`History::indeterminate`].
    pub fn invoke(&mut self, client: u64, input: I, now: u64) -> OpId {
        self.ops.push(Operation {
            client,
            input,
            call: now,
            ret: None,
        });
        self.status.push(Status::Pending);
        OpId(self.ops.len() - 1)
    }

    /// Record that operation `id` returned `output` at time `now`.
    ///
    /// # Panics
    /// If `id` was not returned by this recorder's `invoke`, or the operation was already
    /// completed or declared indeterminate (both are bugs in the test harness).
    pub fn complete(&mut self, id: OpId, output: O, now: u64) {
        self.resolve(id, "complete");
        self.status[id.0] = Status::Completed;
        self.ops[id.0].ret = Some((now, output));
    }

    /// Record that the outcome of operation `id` will never be known: it may have taken effect
    /// at any time after its call, or never. (Operations still pending at
    /// [`History::into_ops`] are treated the same way.)
    ///
    /// # Panics
    /// As [`History::complete`].
    pub fn indeterminate(&mut self, id: OpId) {
        self.resolve(id, "indeterminate");
        self.status[id.0] = Status::Indeterminate;
    }

    fn resolve(&self, id: OpId, what: &str) {
        match self.status.get(id.0) {
            None => panic!("History::{what}: {id:?} was not returned by this recorder"),
            Some(Status::Pending) => {}
            Some(s) => panic!("History::{what}: {id:?} is already {s:?}"),
        }
    }

    /// Number of recorded operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations recorded so far (pending ones have `ret: None`).
    pub fn ops(&self) -> &[Operation<I, O>] {
        &self.ops
    }

    /// The recorded history, ready for [`crate::Checker::check`]. Operations never completed are
    /// indeterminate (`ret: None`).
    pub fn into_ops(self) -> Vec<Operation<I, O>> {
        self.ops
    }
}
