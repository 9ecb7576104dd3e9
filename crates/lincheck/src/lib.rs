//! A linearizability checker for concurrent histories, in the style of Porcupine.
//!
//! A history is a list of [`Operation`]s, each with the client that issued it, its input, its
//! invocation time and (if known) its return time and output. The history is *linearizable* with
//! respect to a sequential specification (a [`Model`]) if every operation can be given a single
//! instant, between its invocation and its return, at which it takes effect, such that applying
//! the operations in that order to the model yields exactly the recorded outputs.
//!
//! # Algorithm
//!
//! The search is Wing & Gong's: walk a doubly linked list of call and return events in time
//! order; at a call event try to linearize that operation next (apply it to the model and "lift"
//! its call and return events out of the list); reaching a return event means some operation
//! that must already have taken effect has not, so backtrack (pop the last linearized operation
//! and "unlift" it). Lowe's memoisation prunes every configuration (set of linearized operations
//! as a bitset, model state) that was already visited. Before searching, the history is split by
//! [`Model::partition`] into independent parts (P-compositionality: for a key-value store every
//! key is checked on its own), which keeps each search small.
//!
//! Indeterminate operations (`ret: None`) may take effect at any instant after their call, or
//! never; a part is accepted as soon as all of its *completed* operations are linearized.
//!
//! On top of that, the search prunes configurations that provably cannot succeed where another
//! one visited (or still to be visited) can: one that differs from a visited one only by having
//! linearized *more* indeterminate operations; alternatives to a read-only operation that is
//! legal now ([`Model::is_read_only`]); indeterminate operations that change nothing, that are
//! overwritten at once, or that nothing that may come next can observe. Candidates are tried
//! earliest deadline first. Together these keep realistic histories with timed-out requests
//! tractable. A test against a brute-force search on thousands of small random histories backs
//! the soundness of each rule.
//!
//! What stays expensive: proving a violation means exhausting every alternative, so a failing
//! partition with many concurrent indeterminate non-idempotent operations (lost appends, say)
//! can run out of budget ([`Verdict::Unknown`]); keep per-partition histories moderate.
//!
//! # Time
//!
//! Timestamps are in any monotonic unit. Operation A precedes operation B in real time only if
//! `A.ret < B.call` strictly; an operation that returns at the very instant another is invoked
//! is treated as concurrent with it (the conservative choice).
//!
//! # Budget
//!
//! Checking linearizability is NP-complete in general. Every part is searched with a bounded
//! number of steps ([`Checker::with_step_budget`]); when the budget runs out the verdict is
//! [`Verdict::Unknown`] rather than a hang.
//!
//! ```
//! use lincheck::kv::{KvInput, KvModel, KvOutput};
//! use lincheck::{Checker, Operation, Verdict};
//!
//! let history = vec![
//!     Operation::completed(1, KvInput::put("x", "1"), 0, 10, KvOutput::Ok),
//!     // A read that starts after the write returned must see it.
//!     Operation::completed(2, KvInput::get("x"), 20, 30, KvOutput::not_found()),
//! ];
//! let verdict = Checker::new().check(&KvModel, &history);
//! assert!(matches!(verdict, Verdict::NotLinearizable(_)));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod history;
pub mod kv;

mod search;

use std::fmt;

pub use history::{History, OpId};

/// A sequential specification: the behaviour every concurrent history is compared against.
///
/// Implementations must be deterministic: `step` must give the same answer for the same
/// arguments every time, or verdicts are meaningless.
pub trait Model {
    /// The state of the specification (per partition). Visited `(linearized set, state)` pairs
    /// are memoised, so states must compare and hash by value.
    type State: Clone + Eq + std::hash::Hash + std::fmt::Debug;
    /// The argument of an operation.
    type Input: Clone + std::fmt::Debug;
    /// The result of an operation.
    type Output: Clone + std::fmt::Debug;

    /// The state before any operation (of each partition) took effect.
    fn init(&self) -> Self::State;

    /// Apply `input` to `state`; return the next state if `output` is a legal result, None
    /// otherwise.
    ///
    /// `output == None` means the operation's outcome is unknown (indeterminate): accept any
    /// result, i.e. return the state the operation would leave behind.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Optional: whether an operation with this input and output never changes the state when
    /// it is legal, i.e. whenever `step(s, input, output)` is `Some(t)`, `t == s` (a read; a
    /// compare-and-swap that reports it did not swap). Such an operation is linearized as soon
    /// as it can be, without trying alternatives, which speeds up the search a lot.
    ///
    /// Default `false`, which is always correct. Answering `true` wrongly can make the checker
    /// reject linearizable histories.
    fn is_read_only(&self, input: &Self::Input, output: Option<&Self::Output>) -> bool {
        let _ = (input, output);
        false
    }

    /// Split a history into independently checkable parts (default: one part with every op).
    ///
    /// Each part is a list of indices into `ops`, and is checked starting from [`Model::init`].
    /// This is only sound if the specification really is the product of independent
    /// specifications, one per part (as with the keys of a key-value store). An index should
    /// appear in at most one part; operations in no part are not checked.
    fn partition(&self, ops: &[Operation<Self::Input, Self::Output>]) -> Vec<Vec<usize>> {
        vec![(0..ops.len()).collect()]
    }

    /// Optional: a label for a partition in reports (e.g. the key).
    ///
    /// `part` is one of the lists returned by [`Model::partition`] for `ops`.
    fn describe_partition(
        &self,
        ops: &[Operation<Self::Input, Self::Output>],
        part: &[usize],
    ) -> String {
        let _ = ops;
        format!("whole history ({} operations)", part.len())
    }

    /// Optional: how a state is shown in reports (default: its `Debug` form).
    fn describe_state(&self, state: &Self::State) -> String {
        format!("{state:?}")
    }
}

/// One operation of a concurrent history, as observed by the client that issued it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Operation<I, O> {
    /// The client (process, thread, connection) that issued the operation. Only used in reports.
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// Invocation time (any monotonic unit shared by all clients).
    pub call: u64,
    /// Return time and output. `None` = indeterminate: it may have taken effect at any time
    /// after `call`, or never (a timeout, a lost connection, a crash).
    pub ret: Option<(u64, O)>,
}

impl<I, O> Operation<I, O> {
    /// An operation invoked at `call` that returned `output` at `ret`.
    pub fn completed(client: u64, input: I, call: u64, ret: u64, output: O) -> Self {
        Operation {
            client,
            input,
            call,
            ret: Some((ret, output)),
        }
    }

    /// An operation invoked at `call` whose outcome is unknown: it may have taken effect at any
    /// time after `call`, or never.
    pub fn indeterminate(client: u64, input: I, call: u64) -> Self {
        Operation {
            client,
            input,
            call,
            ret: None,
        }
    }

    /// The return time, or `None` (= +infinity) if the operation is indeterminate.
    pub fn return_time(&self) -> Option<u64> {
        self.ret.as_ref().map(|(t, _)| *t)
    }

    /// The output, or `None` if the operation is indeterminate.
    pub fn output(&self) -> Option<&O> {
        self.ret.as_ref().map(|(_, o)| o)
    }

    /// Whether the outcome of the operation is unknown.
    pub fn is_indeterminate(&self) -> bool {
        self.ret.is_none()
    }
}

/// The outcome of [`Checker::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every partition has a linearization: the history is consistent with the model.
    Linearizable,
    /// Some partition has no linearization; the history is definitely not linearizable.
    /// When several partitions fail, the first one (in [`Model::partition`] order) is reported.
    NotLinearizable(Violation),
    /// No violation was found, but at least one partition could not be decided: its search ran
    /// out of step budget, or the history (or the model's partition) was malformed.
    Unknown {
        /// Which partition could not be decided, and why.
        reason: String,
    },
}

impl Verdict {
    /// True only for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }

    /// The violation, for [`Verdict::NotLinearizable`].
    pub fn violation(&self) -> Option<&Violation> {
        match self {
            Verdict::NotLinearizable(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => f.write_str("linearizable"),
            Verdict::NotLinearizable(v) => write!(f, "{v}"),
            Verdict::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

/// Evidence that a partition of a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The label of the failing partition ([`Model::describe_partition`], e.g. the key).
    pub partition: String,
    /// Indices into the checked history of every operation of the failing partition, sorted by
    /// call time (ties by index).
    pub ops: Vec<usize>,
    /// Multi-line human-readable report: the partition's operations sorted by call time with
    /// client, call and return times, input and output; the longest linearizable prefix the
    /// search found (with the model state after each operation); and the operation that could
    /// not be linearized after it.
    pub explanation: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.explanation)
    }
}

/// The default for [`Checker::with_step_budget`]: search steps per partition.
pub const DEFAULT_STEP_BUDGET: u64 = 10_000_000;

/// Checks histories against a [`Model`]. Cheap to create and to copy; holds no state between
/// checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checker {
    step_budget: u64,
}

impl Default for Checker {
    fn default() -> Self {
        Checker::new()
    }
}

impl Checker {
    /// A checker with a budget of [`DEFAULT_STEP_BUDGET`] search steps per partition.
    pub fn new() -> Self {
        Checker {
            step_budget: DEFAULT_STEP_BUDGET,
        }
    }

    /// The same checker with at most `n` search steps per partition. A partition whose search
    /// needs more makes the verdict [`Verdict::Unknown`] (unless another partition fails).
    /// The memoisation cache grows by at most one entry per step, so this also bounds memory.
    #[must_use]
    pub fn with_step_budget(self, n: u64) -> Self {
        Checker { step_budget: n }
    }

    /// The search steps allowed per partition.
    pub fn step_budget(&self) -> u64 {
        self.step_budget
    }

    /// Decide whether `history` is linearizable with respect to `model`.
    ///
    /// Never panics on any history (unless the model itself does). Returns
    /// [`Verdict::NotLinearizable`] only if some partition definitely has no linearization,
    /// [`Verdict::Linearizable`] only if every partition has one, and [`Verdict::Unknown`]
    /// if a partition's search ran out of budget, an operation returns before it is invoked, or
    /// the model's partition refers to operations that do not exist or lists one twice.
    pub fn check<M: Model>(
        &self,
        model: &M,
        history: &[Operation<M::Input, M::Output>],
    ) -> Verdict {
        for (i, op) in history.iter().enumerate() {
            if let Some((ret, _)) = &op.ret {
                if *ret < op.call {
                    return Verdict::Unknown {
                        reason: format!(
                            "malformed history: operation #{i} (client {}) returns at {ret}, \
                             before its call at {}",
                            op.client, op.call
                        ),
                    };
                }
            }
        }
        let parts = model.partition(history);
        let mut seen = vec![false; history.len()];
        for part in &parts {
            for &i in part {
                match seen.get_mut(i) {
                    None => {
                        return Verdict::Unknown {
                            reason: format!(
                                "model partition refers to operation #{i}, but the history has \
                                 only {} operations",
                                history.len()
                            ),
                        }
                    }
                    Some(true) => {
                        return Verdict::Unknown {
                            reason: format!("model partition lists operation #{i} twice"),
                        }
                    }
                    Some(s) => *s = true,
                }
            }
        }

        let mut unknown: Option<String> = None;
        for part in &parts {
            match search::check_partition(model, history, part, self.step_budget) {
                search::Outcome::Linearizable => {}
                search::Outcome::NotLinearizable { prefix } => {
                    return Verdict::NotLinearizable(violation(model, history, part, &prefix));
                }
                search::Outcome::OutOfBudget { steps } => {
                    if unknown.is_none() {
                        unknown = Some(format!(
                            "search of partition {} ({} operations) ran out of budget after {} \
                             steps",
                            model.describe_partition(history, part),
                            part.len(),
                            steps
                        ));
                    }
                }
            }
        }
        match unknown {
            Some(reason) => Verdict::Unknown { reason },
            None => Verdict::Linearizable,
        }
    }
}

/// Builds the report for a failing partition. `prefix` is the longest linearizable prefix found
/// (history indices in linearization order).
fn violation<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    part: &[usize],
    prefix: &[usize],
) -> Violation {
    use std::fmt::Write as _;

    let label = model.describe_partition(history, part);
    let mut ops: Vec<usize> = part.to_vec();
    ops.sort_by_key(|&i| (history[i].call, i));
    let completed = ops.iter().filter(|&&i| history[i].ret.is_some()).count();

    let width = ops.iter().map(|i| i.to_string().len()).max().unwrap_or(1);
    let line = |i: usize| -> String {
        let op = &history[i];
        let ret = match op.return_time() {
            Some(t) => t.to_string(),
            None => "∞".to_string(),
        };
        let out = match op.output() {
            Some(o) => format!("{o:?}"),
            None => "? (indeterminate)".to_string(),
        };
        format!(
            "#{i:<width$}  client {:<4} [{}, {}]  {:?} -> {}",
            op.client, op.call, ret, op.input, out
        )
    };

    let mut text = String::new();
    let _ = writeln!(
        text,
        "not linearizable: partition {label}: {} operations ({completed} completed, {} \
         indeterminate)",
        ops.len(),
        ops.len() - completed
    );
    let _ = writeln!(text, "operations sorted by call time:");
    for &i in &ops {
        let _ = writeln!(text, "  {}", line(i));
    }

    let prefix_completed = prefix.iter().filter(|&&i| history[i].ret.is_some()).count();
    let _ = writeln!(
        text,
        "longest linearizable prefix found ({prefix_completed} of {completed} completed \
         operations):"
    );
    if prefix.is_empty() {
        let _ = writeln!(text, "  (empty: no operation can be linearized first)");
    }
    let mut state = Some(model.init());
    for (n, &i) in prefix.iter().enumerate() {
        let op = &history[i];
        state = state.and_then(|s| model.step(&s, &op.input, op.output()));
        let after = match &state {
            Some(s) => model.describe_state(s),
            None => "(model rejected this step on replay: is it deterministic?)".to_string(),
        };
        let _ = writeln!(text, "  {:>3}. {}  => state {}", n + 1, line(i), after);
    }

    // The completed operation that had to take effect next but could not: the earliest
    // returning one not in the prefix.
    let in_prefix: std::collections::HashSet<usize> = prefix.iter().copied().collect();
    let stuck = ops
        .iter()
        .copied()
        .filter(|i| !in_prefix.contains(i))
        .filter_map(|i| history[i].return_time().map(|t| (t, i)))
        .min();
    if let Some((_, i)) = stuck {
        let _ = writeln!(
            text,
            "after this prefix no remaining operation can be linearized in a way that lets this \
             one take effect before it returned:"
        );
        let _ = writeln!(text, "  {}", line(i));
    }

    Violation {
        partition: label,
        ops,
        explanation: text,
    }
}
