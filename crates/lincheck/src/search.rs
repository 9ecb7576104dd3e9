//! The search for a linearization of one partition.
//!
//! Wing & Gong's algorithm over a doubly linked list of call/return events, with Lowe's cache of
//! visited configurations. Indeterminate ops have no return event (they return at +infinity);
//! they are kept apart, numbered in call order, and tried after the completed candidates.
//!
//! A configuration is (completed ops linearized, indeterminate ops linearized, model state); it
//! is *good* if it can be extended until every completed op is linearized. Every pruning rule
//! below skips a configuration Y only when some configuration Z that the search visits, or
//! that an ancestor still being explored will try, is good whenever Y is and needs no more
//! steps to finish; by induction on that distance, the search finds a linearization whenever
//! one exists. The rules:
//!
//! * Lowe's memoisation, generalised: Y is skipped if a visited Z has the same completed set and
//!   state and a *subset* of Y's indeterminate ops. An indeterminate op never constrains any
//!   other op in real time and need never be linearized, so Z can make every move Y can.
//! * Forced moves: if a completed op that may take effect now is read-only
//!   ([`Model::is_read_only`]: legal only where it changes nothing) and legal in the current
//!   state, linearizing it first loses nothing (moving it to the front of any linearization
//!   keeps the linearization valid), so it is the only move tried.
//! * Indeterminate ops that leave the state unchanged are never tried (the current
//!   configuration covers what they lead to); see [`Row`].
//! * [`bypasses_recent_indeterminate`]: an op is not tried right after indeterminate ops that
//!   it makes irrelevant (a lost write overwritten at once).
//! * [`useful`]: an indeterminate op is only tried where something that may come next can
//!   observe it.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::{Model, Operation};

/// What the search concluded about one partition.
pub(crate) enum Outcome {
    /// All completed operations could be linearized.
    Linearizable,
    /// No linearization exists; `prefix` is the longest linearizable prefix found (the one that
    /// linearized the most completed ops), as history indices in linearization order.
    NotLinearizable { prefix: Vec<usize> },
    /// The step budget ran out after `steps` steps.
    OutOfBudget { steps: u64 },
}

/// Sentinel heading the list of completed ops' call and return events.
const HEAD: usize = 0;
const NIL: usize = usize::MAX;

/// Where an operation's bit lives: completed and indeterminate ops have separate bitsets, each
/// numbered in call order.
#[derive(Clone, Copy)]
enum Slot {
    Completed(usize),
    Indeterminate(usize),
}

/// A call or return event of a completed op.
#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    /// Local op index.
    op: usize,
    is_call: bool,
    /// For a call event: the node of its return event.
    matching: usize,
    /// When the event happened.
    time: u64,
}

/// The call and return events of the completed ops not yet linearized, in time order, as a
/// doubly linked list headed by `HEAD` ("dancing links": removed nodes keep their pointers so
/// they can be put back in LIFO order).
struct EventList {
    nodes: Vec<Node>,
}

impl EventList {
    fn first(&self) -> usize {
        self.nodes[HEAD].next
    }

    fn unlink(&mut self, i: usize) {
        let Node { prev, next, .. } = self.nodes[i];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, i: usize) {
        let Node { prev, next, .. } = self.nodes[i];
        self.nodes[prev].next = i;
        if next != NIL {
            self.nodes[next].prev = i;
        }
    }

    /// Remove an op's call and return events (the op is now linearized).
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let ret = self.nodes[call].matching;
        self.unlink(ret);
    }

    /// Undo the most recent `lift` still in effect, which must be of `call`.
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].matching;
        self.relink(ret);
        self.relink(call);
    }
}

/// A fixed-size bitset.
struct Bits {
    words: Vec<u64>,
}

impl Bits {
    fn new(n: usize) -> Self {
        Bits {
            words: vec![0; n.div_ceil(64)],
        }
    }
    fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }

    fn get(&self, i: usize) -> bool {
        self.words[i / 64] & (1 << (i % 64)) != 0
    }
}

/// A bitset stored compactly as: `lead` words of all ones, then `mid`, then zeros. Ops are
/// numbered in call order, so linearized sets look like "everything before the frontier plus a
/// few", which packs to a handful of words however long the history is.
struct Packed {
    lead: usize,
    mid: Box<[u64]>,
}

impl Packed {
    fn new(words: &[u64]) -> Self {
        let lead = words.iter().take_while(|&&w| w == u64::MAX).count();
        let rest = &words[lead..];
        let zeros = rest.iter().rev().take_while(|&&w| w == 0).count();
        Packed {
            lead,
            mid: rest[..rest.len() - zeros].into(),
        }
    }

    /// `words` must have the length this was packed from.
    fn equals(&self, words: &[u64]) -> bool {
        let (ones, rest) = words.split_at(self.lead);
        let (mid, zeros) = rest.split_at(self.mid.len());
        ones.iter().all(|&w| w == u64::MAX) && *mid == *self.mid && zeros.iter().all(|&w| w == 0)
    }

    /// Whether this set is a subset of `other` (packed from the same length).
    fn subset_of_packed(&self, other: &Packed) -> bool {
        let word = |p: &Packed, i: usize| {
            if i < p.lead {
                u64::MAX
            } else {
                p.mid.get(i - p.lead).copied().unwrap_or(0)
            }
        };
        (0..self.lead + self.mid.len()).all(|i| word(self, i) & !word(other, i) == 0)
    }

    /// Whether this set is a subset of `words` (same length as packed from).
    fn subset_of(&self, words: &[u64]) -> bool {
        let (ones, rest) = words.split_at(self.lead);
        ones.iter().all(|&w| w == u64::MAX) && self.mid.iter().zip(rest).all(|(&m, &w)| m & !w == 0)
    }
}

/// Hasher for keys that are already well-mixed `u64` hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A set of indeterminate ops as stored in the cache, with cheap filters for subset tests.
struct IndeterminateSet {
    /// Number of members: a subset has no more.
    count: u32,
    /// The words OR-ed together: a subset's fold is within the superset's.
    fold: u64,
    bits: Packed,
}

impl IndeterminateSet {
    fn new(words: &[u64]) -> Self {
        IndeterminateSet {
            count: words.iter().map(|w| w.count_ones()).sum(),
            fold: words.iter().fold(0, |a, w| a | w),
            bits: Packed::new(words),
        }
    }

    fn subset_of(&self, other: &IndeterminateSet, other_words: &[u64]) -> bool {
        self.count <= other.count
            && self.fold & !other.fold == 0
            && self.bits.subset_of(other_words)
    }
}

/// The visited configurations with one completed set and state: their indeterminate sets,
/// kept as an antichain (a set that contains another is redundant).
struct Group<S> {
    completed: Packed,
    state: S,
    indeterminate: Vec<IndeterminateSet>,
}

/// At most this many indeterminate sets are remembered per (completed set, state).
const MAX_SETS_PER_GROUP: usize = 64;

/// Visited configurations, bucketed by a hash of (completed set, state).
struct Cache<S> {
    buckets: HashMap<u64, Vec<Group<S>>, BuildHasherDefault<PassThrough>>,
}

impl<S: Eq> Cache<S> {
    /// Record the configuration unless a visited one covers it (same completed set and state,
    /// subset of its indeterminate ops). Returns whether it was recorded (i.e. is new).
    fn visit(&mut self, key: u64, completed: &[u64], indeterminate: &[u64], state: &S) -> bool
    where
        S: Clone,
    {
        let set = IndeterminateSet::new(indeterminate);
        let bucket = self.buckets.entry(key).or_default();
        let group = match bucket
            .iter_mut()
            .position(|g| g.state == *state && g.completed.equals(completed))
        {
            Some(g) => &mut bucket[g],
            None => {
                bucket.push(Group {
                    completed: Packed::new(completed),
                    state: state.clone(),
                    indeterminate: Vec::new(),
                });
                let last = bucket.len() - 1;
                &mut bucket[last]
            }
        };
        if group
            .indeterminate
            .iter()
            .any(|seen| seen.subset_of(&set, indeterminate))
        {
            return false;
        }
        // Drop the sets the new one is a subset of: it covers whatever they covered.
        group.indeterminate.retain(|seen| {
            !(set.count <= seen.count
                && set.fold & !seen.fold == 0
                && set.bits.subset_of_packed(&seen.bits))
        });
        // Bound the time spent per lookup; forgetting a visited configuration only costs a
        // possible revisit.
        if group.indeterminate.len() >= MAX_SETS_PER_GROUP {
            group.indeterminate.remove(0);
        }
        group.indeterminate.push(set);
        true
    }
}

/// A well-mixed 64-bit value per op index, xor-ed together to hash a completed set in O(1) per
/// change.
fn op_hash(i: usize) -> u64 {
    // splitmix64 finaliser
    let mut z = (i as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn cache_key<S: Hash>(completed_hash: u64, state: &S) -> u64 {
    let mut h = DefaultHasher::new();
    state.hash(&mut h);
    h.finish() ^ completed_hash.rotate_left(29)
}

/// For one model state: the indeterminate ops (by number, ascending) that change it, with the
/// state each leads to, among those numbered below `upto`. An indeterminate op that leaves a
/// state as it is is never worth linearizing there (the current configuration covers the one it
/// leads to); most pending ones are such (lost reads, failed compare-and-swaps), so rows keep
/// them from being re-examined at every configuration.
#[derive(Default)]
struct Row {
    upto: usize,
    changing: Vec<(usize, usize)>,
}

/// Model states met in the indeterminate passes, numbered, each with its row.
struct States<S> {
    ids: HashMap<S, usize>,
    values: Vec<S>,
    rows: Vec<Row>,
    /// For pairs of states (k, a): the indeterminate ops (ascending, among those numbered below
    /// the first field) that change a and lead somewhere else from a than from k.
    distinguishing: PairMap<(usize, Vec<usize>)>,
    /// Memoised steps of completed ops: (state, local op) to the resulting state, if legal.
    completed_steps: PairMap<Option<usize>>,
}

/// A map keyed by pairs of small integers.
type PairMap<V> = HashMap<(usize, usize), V, BuildHasherDefault<PairHasher>>;

/// Hasher for pairs of small integers.
#[derive(Default)]
struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        // Fibonacci hashing spreads consecutive keys over the high bits hashbrown uses.
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(32) ^ n as u64;
    }
}

impl<S: Clone + Eq + Hash> States<S> {
    fn intern(&mut self, state: &S) -> usize {
        if let Some(&id) = self.ids.get(state) {
            return id;
        }
        let id = self.rows.len();
        self.rows.push(Row::default());
        self.values.push(state.clone());
        self.ids.insert(state.clone(), id);
        id
    }

    /// Extend the row of state `id` to cover the indeterminate ops numbered below `below`.
    /// Counts the model steps taken in `steps`.
    fn fill_row<M: Model<State = S>>(
        &mut self,
        id: usize,
        below: usize,
        model: &M,
        ops: &[&Operation<M::Input, M::Output>],
        steps: &mut u64,
    ) {
        while self.rows[id].upto < below {
            let b = self.rows[id].upto;
            self.rows[id].upto += 1;
            *steps += 1;
            let state = &self.values[id];
            if let Some(next) = model.step(state, &ops[b].input, None) {
                if next != *state {
                    let result = self.intern(&next);
                    self.rows[id].changing.push((b, result));
                }
            }
        }
    }

    /// The indeterminate ops numbered below `below` that change state `a` and lead somewhere else
    /// from `a` than from `k` (plus possibly some numbered higher). Both rows must cover
    /// `below`.
    fn distinguishing(&mut self, k: usize, a: usize, below: usize) -> &[usize] {
        let rows = &self.rows;
        let (upto, list) = self.distinguishing.entry((k, a)).or_default();
        if *upto < below {
            let changing = &rows[a].changing;
            let from = changing.partition_point(|&(b, _)| b < *upto);
            for &(b, result) in &changing[from..] {
                if b >= below {
                    break;
                }
                let before = &rows[k].changing;
                let from_k = match before.binary_search_by_key(&b, |&(op, _)| op) {
                    Ok(i) => before[i].1,
                    Err(_) => k,
                };
                if result != from_k {
                    list.push(b);
                }
            }
            *upto = below;
        }
        list
    }

    /// The state the completed op `local` (that is, `op`) leads to from state `id`, if it is
    /// legal there; memoised. Counts one step in `steps`, memoised or not.
    fn completed_step<M: Model<State = S>>(
        &mut self,
        id: usize,
        local: usize,
        op: &Operation<M::Input, M::Output>,
        model: &M,
        steps: &mut u64,
    ) -> Option<usize> {
        *steps += 1;
        if let Some(&known) = self.completed_steps.get(&(id, local)) {
            return known;
        }
        let result = model
            .step(&self.values[id], &op.input, op.output())
            .map(|next| self.intern(&next));
        self.completed_steps.insert((id, local), result);
        result
    }

    /// The state an indeterminate op `b` leads to from state `id` (`id` itself if it changes
    /// nothing there). The row must cover `b`.
    fn result(&self, id: usize, b: usize) -> usize {
        let changing = &self.rows[id].changing;
        match changing.binary_search_by_key(&b, |&(op, _)| op) {
            Ok(i) => changing[i].1,
            Err(_) => id,
        }
    }
}

/// What [`useful`] needs to know about the search.
struct Context<'a, M: Model> {
    model: &'a M,
    history: &'a [Operation<M::Input, M::Output>],
    /// Local op index to history index.
    order: &'a [usize],
    /// Indeterminate ops by number.
    indeterminate_ops: &'a [&'a Operation<M::Input, M::Output>],
}

/// Whether linearizing the indeterminate op `y` (number `y`, leading from state `k` to state
/// `after`) at the current configuration K can lead anywhere that skipping it cannot.
///
/// It cannot if every op f that may come next (the completed ops whose calls precede the
/// earliest pending return, and the indeterminate ops not linearized yet numbered below
/// `below`) fails after y, or leads to the same state after y as before it, or is
/// indeterminate and leaves the state after y unchanged. Then each successor K+y+f is
/// covered by K+f (same completed set and state, fewer indeterminate ops) or by K+y itself, and
/// a shortest way to complete K+y, if any, yields a shorter way to complete some K+f, which the
/// exploration of K tries (K is in its indeterminate pass, so it had no forced move and tries
/// everything). So a lost write is linearized only where something can observe it or build on
/// it.
fn useful<M: Model>(
    cx: &Context<'_, M>,
    states: &mut States<M::State>,
    (k, y, after): (usize, usize, usize),
    below: usize,
    list: &EventList,
    linearized: &Bits,
    steps: &mut u64,
) -> bool {
    let mut walk = list.first();
    while let Some(node) = list.nodes.get(walk).filter(|n| n.is_call) {
        let op = &cx.history[cx.order[node.op]];
        let from_after = states.completed_step(after, node.op, op, cx.model, steps);
        if from_after.is_some()
            && from_after != states.completed_step(k, node.op, op, cx.model, steps)
        {
            return true;
        }
        walk = node.next;
    }
    states.fill_row(after, below, cx.model, cx.indeterminate_ops, steps);
    *steps += 1;
    states
        .distinguishing(k, after, below)
        .iter()
        .take_while(|&&b| b < below)
        .any(|&b| b != y && !linearized.get(b))
}

/// How many trailing indeterminate frames [`bypasses_recent_indeterminate`] looks through.
const LOOKBACK: usize = 16;

/// Whether linearizing `op` now, reaching `next`, is redundant because skipping some of the
/// indeterminate ops linearized just before it reaches the same state.
///
/// If the top frames of the stack are indeterminate ops and `op` applied to the state before one
/// of them already gives `next`, then the configuration "that frame's configuration + `op`" has
/// the same completed set and state as ours with a subset of our indeterminate ops, so it covers
/// ours. It is reachable (indeterminate ops do not change which ops are eligible, only completed
/// ones do) and that ancestor's exploration tries `op`. This prunes chains of lost writes that
/// overwrite one another, which otherwise make the search exponential.
fn bypasses_recent_indeterminate<M: Model>(
    model: &M,
    stack: &[Frame<M::State>],
    op: &Operation<M::Input, M::Output>,
    next: &M::State,
    steps: &mut u64,
) -> bool {
    stack
        .iter()
        .rev()
        .take(LOOKBACK)
        .take_while(|f| f.node == NIL)
        .any(|f| {
            *steps += 1;
            model.step(&f.state, &op.input, op.output()).as_ref() == Some(next)
        })
}

/// Which candidates the walk is trying at the current configuration.
#[derive(Clone, Copy)]
enum Pass {
    /// Just arrived: look for a forced move, else gather the completed candidates.
    Fresh,
    /// The completed ops that may take effect now: `candidates[next..end]`, earliest return
    /// first. `deadline` is the time of the earliest pending return.
    Completed {
        next: usize,
        end: usize,
        deadline: u64,
    },
    /// Then the indeterminate ops not linearized yet that change the state and were invoked no
    /// later than the earliest pending return: `states.rows[state].changing[..pos]`, from the
    /// highest down (the most recently invoked first, as the likeliest to be what a blocked read
    /// is waiting for). If the last op linearized is indeterminate, `parent` is the state before
    /// it (else NIL): an op that leads to the same state from there is skipped (see
    /// [`bypasses_recent_indeterminate`]).
    Indeterminate {
        state: usize,
        below: usize,
        pos: usize,
        parent: usize,
    },
    /// Every candidate has been tried (or a forced move failed): backtrack.
    Exhausted,
}

struct Frame<S> {
    /// The linearized op (local index).
    local: usize,
    /// Its call node if it is completed; NIL if it is indeterminate.
    node: usize,
    /// The pass that tried it, to resume the walk after it on backtracking.
    pass: Pass,
    /// Length of `candidates` when it was linearized (the slices of the configurations below).
    candidates: usize,
    /// Whether it was a forced move: then no alternative needs trying.
    forced: bool,
    /// Model state before it.
    state: S,
}

/// Search for a linearization of the ops `part` (indices into `history`).
///
/// At each configuration the walk first tries every completed op that may take effect next
/// (its call precedes the earliest pending return), then every such indeterminate op; trying
/// completed ops first lets a linearizable history go straight through however many
/// indeterminate ops are pending. When no candidate is left, some op that must already have
/// taken effect has not: backtrack.
pub(crate) fn check_partition<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    part: &[usize],
    budget: u64,
) -> Outcome {
    // Local op numbering in call order (helps the packed bitsets).
    let mut order: Vec<usize> = part.to_vec();
    order.sort_by_key(|&i| (history[i].call, i));

    // Indeterminate read-only ops can neither be observed nor be needed: leave them out.
    order.retain(|&i| {
        let op = &history[i];
        op.ret.is_some() || !model.is_read_only(&op.input, None)
    });
    let read_only: Vec<bool> = order
        .iter()
        .map(|&i| model.is_read_only(&history[i].input, history[i].output()))
        .collect();

    let mut slots = Vec::with_capacity(order.len());
    let mut n_completed = 0;
    // Indeterminate ops by number: local index and call time (nondecreasing).
    let mut indeterminate_local = Vec::new();
    let mut indeterminate_call = Vec::new();
    for (local, &i) in order.iter().enumerate() {
        if history[i].ret.is_some() {
            slots.push(Slot::Completed(n_completed));
            n_completed += 1;
        } else {
            slots.push(Slot::Indeterminate(indeterminate_local.len()));
            indeterminate_local.push(local);
            indeterminate_call.push(history[i].call);
        }
    }
    if n_completed == 0 {
        return Outcome::Linearizable;
    }

    // Completed ops' events sorted by time; at equal times calls come first, so an op returning
    // at t overlaps one invoked at t.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n_completed);
    for (local, &i) in order.iter().enumerate() {
        let op = &history[i];
        if let Some(ret) = op.return_time() {
            events.push((op.call, false, local));
            events.push((ret, true, local));
        }
    }
    events.sort_unstable();
    let mut nodes = Vec::with_capacity(events.len() + 1);
    nodes.push(Node {
        prev: NIL,
        next: NIL,
        op: NIL,
        is_call: false,
        matching: NIL,
        time: 0,
    });
    let mut call_node = vec![NIL; order.len()];
    for &(time, is_return, local) in &events {
        let idx = nodes.len();
        nodes[idx - 1].next = idx;
        nodes.push(Node {
            prev: idx - 1,
            next: NIL,
            op: local,
            is_call: !is_return,
            matching: NIL,
            time,
        });
        if is_return {
            nodes[call_node[local]].matching = idx;
        } else {
            call_node[local] = idx;
        }
    }
    let mut list = EventList { nodes };

    let mut completed = Bits::new(n_completed);
    let mut indeterminate = Bits::new(indeterminate_local.len());
    let mut completed_hash = 0u64;
    let mut remaining = n_completed;
    let mut state = model.init();
    let mut cache = Cache {
        buckets: HashMap::default(),
    };
    cache.visit(
        cache_key(completed_hash, &state),
        &completed.words,
        &indeterminate.words,
        &state,
    );
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut states: States<M::State> = States {
        ids: HashMap::new(),
        values: Vec::new(),
        rows: Vec::new(),
        distinguishing: HashMap::default(),
        completed_steps: HashMap::default(),
    };
    let indeterminate_ops: Vec<&Operation<M::Input, M::Output>> = indeterminate_local
        .iter()
        .map(|&local| &history[order[local]])
        .collect();

    // Longest prefix so far (local ops), and `agree`: best[..agree] == stack ops[..agree].
    let mut best: Vec<usize> = Vec::new();
    let mut best_completed = 0;
    let mut agree = 0;

    let mut steps = 0u64;
    let mut pass = Pass::Fresh;
    // The completed candidates of the configurations on the stack, each a slice (see
    // `Pass::Completed`), in the order they are tried.
    let mut candidates: Vec<usize> = Vec::new();
    loop {
        if remaining == 0 {
            return Outcome::Linearizable;
        }
        if steps >= budget {
            return Outcome::OutOfBudget { steps };
        }
        steps += 1;

        // The next candidate: (local op, its call node or NIL, whether forced, its next state
        // if already computed).
        let candidate = match pass {
            Pass::Fresh => {
                // Walk the ops that may take effect now (calls before the earliest pending
                // return), looking for a forced move: a read-only op legal in this state.
                let mut walk = list.first();
                let mut forced = None;
                let start = candidates.len();
                let deadline = loop {
                    match list.nodes.get(walk) {
                        Some(node) if node.is_call => {
                            if read_only[node.op] {
                                steps += 1;
                                let op = &history[order[node.op]];
                                match model.step(&state, &op.input, op.output()) {
                                    Some(next) if next == state => {
                                        forced = Some((node.op, walk, true, Some(next)));
                                        break 0;
                                    }
                                    Some(_) => candidates.push(walk),
                                    // Illegal here: no point trying it again below.
                                    None => {}
                                }
                            } else {
                                candidates.push(walk);
                            }
                            walk = node.next;
                        }
                        Some(node) => break node.time,
                        // Unreachable: while a completed op is unlinearized its return event
                        // is in the list, so the walk meets a return event before the end.
                        None => break 0,
                    }
                };
                if forced.is_some() {
                    candidates.truncate(start);
                    forced
                } else if walk == NIL {
                    break; // fail safe, see above
                } else {
                    // Earliest deadline first: the op that must take effect soonest is the
                    // likeliest to come next.
                    candidates[start..].sort_by_key(|&n| list.nodes[list.nodes[n].matching].time);
                    pass = Pass::Completed {
                        next: start,
                        end: candidates.len(),
                        deadline,
                    };
                    continue;
                }
            }
            Pass::Completed {
                next,
                end,
                deadline,
            } => {
                if next < end {
                    pass = Pass::Completed {
                        next: next + 1,
                        end,
                        deadline,
                    };
                    let node = candidates[next];
                    Some((list.nodes[node].op, node, false, None))
                } else {
                    // Now the indeterminate ops invoked by the earliest pending return.
                    let below = indeterminate_call.partition_point(|&t| t <= deadline);
                    let id = states.intern(&state);
                    states.fill_row(id, below, model, &indeterminate_ops, &mut steps);
                    let pos = states.rows[id]
                        .changing
                        .partition_point(|&(b, _)| b < below);
                    let parent = match stack.last() {
                        Some(Frame {
                            pass: Pass::Indeterminate { state, .. },
                            ..
                        }) => *state,
                        _ => NIL,
                    };
                    pass = Pass::Indeterminate {
                        state: id,
                        below,
                        pos,
                        parent,
                    };
                    continue;
                }
            }
            Pass::Indeterminate {
                state: id,
                below,
                mut pos,
                parent,
            } => {
                let mut candidate = None;
                while pos > 0 {
                    pos -= 1;
                    let (b, result) = states.rows[id].changing[pos];
                    if indeterminate.get(b) {
                        continue;
                    }
                    if parent != NIL && states.result(parent, b) == result {
                        steps += 1;
                        continue;
                    }
                    let context = Context {
                        model,
                        history,
                        order: &order,
                        indeterminate_ops: &indeterminate_ops,
                    };
                    if !useful(
                        &context,
                        &mut states,
                        (id, b, result),
                        below,
                        &list,
                        &indeterminate,
                        &mut steps,
                    ) {
                        continue;
                    }
                    candidate = Some((indeterminate_local[b], NIL, false, None));
                    break;
                }
                pass = Pass::Indeterminate {
                    state: id,
                    below,
                    pos,
                    parent,
                };
                candidate
            }
            Pass::Exhausted => None,
        };

        let Some((local, node, forced, next)) = candidate else {
            // Nothing (more) can take effect before the pending return: backtrack.
            let Some(frame) = stack.pop() else {
                break;
            };
            agree = agree.min(stack.len());
            match slots[frame.local] {
                Slot::Completed(b) => {
                    completed.clear(b);
                    completed_hash ^= op_hash(b);
                    remaining += 1;
                    list.unlift(frame.node);
                }
                Slot::Indeterminate(b) => indeterminate.clear(b),
            }
            state = frame.state;
            candidates.truncate(frame.candidates);
            pass = if frame.forced {
                Pass::Exhausted
            } else {
                frame.pass
            };
            continue;
        };

        let op = &history[order[local]];
        let Some(next) = next.or_else(|| model.step(&state, &op.input, op.output())) else {
            continue;
        };
        let slot = slots[local];
        if let Slot::Indeterminate(_) = slot {
            if next == state {
                // Changes nothing here: the current configuration, already visited, covers
                // the one it would lead to.
                continue;
            }
        }
        if bypasses_recent_indeterminate(model, &stack, op, &next, &mut steps) {
            if forced {
                pass = Pass::Exhausted;
            }
            continue;
        }
        let next_hash = match slot {
            Slot::Completed(b) => {
                completed.set(b);
                completed_hash ^ op_hash(b)
            }
            Slot::Indeterminate(b) => {
                indeterminate.set(b);
                completed_hash
            }
        };
        let key = cache_key(next_hash, &next);
        if !cache.visit(key, &completed.words, &indeterminate.words, &next) {
            match slot {
                Slot::Completed(b) => completed.clear(b),
                Slot::Indeterminate(b) => indeterminate.clear(b),
            }
            if forced {
                pass = Pass::Exhausted;
            }
            continue;
        }
        completed_hash = next_hash;
        if let Slot::Completed(_) = slot {
            remaining -= 1;
            list.lift(node);
        }
        stack.push(Frame {
            local,
            node,
            pass,
            candidates: candidates.len(),
            forced,
            state: std::mem::replace(&mut state, next),
        });
        pass = Pass::Fresh;

        let linearized = n_completed - remaining;
        if linearized > best_completed {
            best_completed = linearized;
            best.truncate(agree);
            best.extend(stack[agree..].iter().map(|f| f.local));
            agree = stack.len();
        }
    }
    Outcome::NotLinearizable {
        prefix: best.into_iter().map(|local| order[local]).collect(),
    }
}
