//! Classic small histories: what the checker must accept and what it must reject.

use lincheck::kv::{KvHistory, KvInput, KvModel, KvOutput};
use lincheck::{Checker, Model, Operation, Verdict, DEFAULT_STEP_BUDGET};

type Op = Operation<KvInput, KvOutput>;

fn op(client: u64, call: u64, ret: u64, input: KvInput, output: KvOutput) -> Op {
    Operation::completed(client, input, call, ret, output)
}

fn lost(client: u64, call: u64, input: KvInput) -> Op {
    Operation::indeterminate(client, input, call)
}

fn check(history: &[Op]) -> Verdict {
    Checker::new().check(&KvModel, history)
}

#[track_caller]
fn assert_ok(history: &[Op]) {
    match check(history) {
        Verdict::Linearizable => {}
        other => panic!("expected linearizable, got: {other}"),
    }
}

#[track_caller]
fn assert_violation(history: &[Op]) -> lincheck::Violation {
    match check(history) {
        Verdict::NotLinearizable(v) => v,
        other => panic!("expected a violation, got: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Registers: Get / Put

#[test]
fn empty_history_is_linearizable() {
    assert_ok(&[]);
}

#[test]
fn sequential_history_is_linearizable() {
    assert_ok(&[
        op(1, 0, 1, KvInput::get("x"), KvOutput::not_found()),
        op(1, 2, 3, KvInput::put("x", "a"), KvOutput::Ok),
        op(2, 4, 5, KvInput::get("x"), KvOutput::found("a")),
        op(2, 6, 7, KvInput::put("x", "b"), KvOutput::Ok),
        op(1, 8, 9, KvInput::get("x"), KvOutput::found("b")),
        op(1, 10, 11, KvInput::delete("x"), KvOutput::Deleted(true)),
        op(2, 12, 13, KvInput::get("x"), KvOutput::not_found()),
    ]);
}

#[test]
fn stale_read_after_completed_write_is_caught() {
    let v = assert_violation(&[
        op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok),
        op(1, 20, 30, KvInput::put("x", "b"), KvOutput::Ok),
        op(2, 40, 50, KvInput::get("x"), KvOutput::found("a")),
    ]);
    assert_eq!(v.ops, vec![0, 1, 2]);
}

#[test]
fn read_concurrent_with_a_write_may_see_old_or_new_value() {
    for seen in [KvOutput::not_found(), KvOutput::found("a")] {
        assert_ok(&[
            op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok),
            op(2, 5, 15, KvInput::get("x"), seen),
        ]);
    }
}

#[test]
fn concurrent_writes_seen_in_inconsistent_orders_are_caught() {
    // Writes a and b overlap each other; client 3 sees a then b, client 4 sees b then a, with
    // all four reads after both writes and not overlapping each other.
    assert_violation(&[
        op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok),
        op(2, 0, 10, KvInput::put("x", "b"), KvOutput::Ok),
        op(3, 1, 20, KvInput::get("x"), KvOutput::found("a")),
        op(4, 2, 21, KvInput::get("x"), KvOutput::found("b")),
        op(3, 30, 40, KvInput::get("x"), KvOutput::found("b")),
        op(4, 31, 41, KvInput::get("x"), KvOutput::found("a")),
    ]);
}

#[test]
fn concurrent_writes_seen_in_one_order_by_everyone_are_accepted() {
    assert_ok(&[
        op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok),
        op(2, 0, 10, KvInput::put("x", "b"), KvOutput::Ok),
        op(3, 1, 20, KvInput::get("x"), KvOutput::found("a")),
        op(4, 2, 21, KvInput::get("x"), KvOutput::found("a")),
        op(3, 30, 40, KvInput::get("x"), KvOutput::found("b")),
        op(4, 31, 41, KvInput::get("x"), KvOutput::found("b")),
    ]);
}

#[test]
fn read_of_a_value_never_written_is_caught() {
    assert_violation(&[
        op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok),
        op(2, 5, 15, KvInput::get("x"), KvOutput::found("zzz")),
    ]);
}

#[test]
fn read_of_a_value_before_its_write_was_invoked_is_caught() {
    assert_violation(&[
        op(2, 0, 5, KvInput::get("x"), KvOutput::found("a")),
        op(1, 10, 20, KvInput::put("x", "a"), KvOutput::Ok),
    ]);
}

#[test]
fn a_value_that_was_read_cannot_be_unread() {
    // Once a read saw the new value, a later read may not see the old one (no new-old inversion).
    assert_violation(&[
        op(1, 0, 100, KvInput::put("x", "a"), KvOutput::Ok),
        op(2, 10, 20, KvInput::get("x"), KvOutput::found("a")),
        op(3, 30, 40, KvInput::get("x"), KvOutput::not_found()),
    ]);
}

#[test]
fn output_of_the_wrong_kind_is_caught() {
    assert_violation(&[op(1, 0, 1, KvInput::get("x"), KvOutput::Ok)]);
    assert_violation(&[op(1, 0, 1, KvInput::put("x", "a"), KvOutput::Cas(true))]);
}

// ---------------------------------------------------------------------------------------------
// Time: equal timestamps are concurrent

#[test]
fn an_op_returning_at_the_instant_another_is_invoked_overlaps_it() {
    // The put returns at 10 and the get is invoked at 10: conservatively concurrent, so the get
    // may still see the old value.
    assert_ok(&[
        op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok),
        op(2, 10, 20, KvInput::get("x"), KvOutput::not_found()),
    ]);
}

#[test]
fn an_op_invoked_one_tick_after_another_returned_follows_it() {
    assert_violation(&[
        op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok),
        op(2, 11, 20, KvInput::get("x"), KvOutput::not_found()),
    ]);
}

#[test]
fn instantaneous_ops_are_allowed() {
    assert_ok(&[
        op(1, 5, 5, KvInput::put("x", "a"), KvOutput::Ok),
        op(2, 5, 5, KvInput::get("x"), KvOutput::found("a")),
        op(1, 6, 6, KvInput::get("x"), KvOutput::found("a")),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Indeterminate operations

#[test]
fn indeterminate_write_that_is_later_observed_is_accepted() {
    assert_ok(&[
        op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok),
        lost(2, 20, KvInput::put("x", "b")),
        op(3, 30, 40, KvInput::get("x"), KvOutput::found("a")),
        op(3, 1000, 1010, KvInput::get("x"), KvOutput::found("b")),
    ]);
}

#[test]
fn indeterminate_write_that_is_never_observed_is_accepted() {
    assert_ok(&[
        op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok),
        lost(2, 20, KvInput::put("x", "b")),
        op(3, 30, 40, KvInput::get("x"), KvOutput::found("a")),
        op(3, 1000, 1010, KvInput::get("x"), KvOutput::found("a")),
    ]);
}

#[test]
fn indeterminate_write_cannot_take_effect_before_it_was_invoked() {
    assert_violation(&[
        op(3, 0, 10, KvInput::get("x"), KvOutput::found("b")),
        lost(2, 20, KvInput::put("x", "b")),
    ]);
}

#[test]
fn indeterminate_write_takes_effect_at_most_once() {
    // Observed, overwritten by a completed put, then observed again: it would have to take
    // effect twice.
    assert_violation(&[
        lost(1, 0, KvInput::put("x", "b")),
        op(2, 10, 20, KvInput::get("x"), KvOutput::found("b")),
        op(2, 30, 40, KvInput::put("x", "a"), KvOutput::Ok),
        op(2, 50, 60, KvInput::get("x"), KvOutput::found("b")),
    ]);
}

#[test]
fn many_failed_writes_that_are_never_observed_are_accepted_quickly() {
    // 200 timed-out writes interleaved with 200 reads that never see them. Without pruning
    // configurations that only differ by extra applied indeterminate ops this is exponential.
    let mut h = Vec::new();
    h.push(op(0, 0, 1, KvInput::put("x", "base"), KvOutput::Ok));
    for i in 0..200u64 {
        h.push(lost(
            1 + i,
            10 + 20 * i,
            KvInput::put("x", format!("lost{i}")),
        ));
        h.push(op(
            500,
            15 + 20 * i,
            20 + 20 * i,
            KvInput::get("x"),
            KvOutput::found("base"),
        ));
    }
    let verdict = Checker::new()
        .with_step_budget(1_000_000)
        .check(&KvModel, &h);
    assert_eq!(verdict, Verdict::Linearizable);
}

// ---------------------------------------------------------------------------------------------
// Compare-and-swap

#[test]
fn cas_results_consistent_with_the_values_are_accepted() {
    assert_ok(&[
        op(1, 0, 1, KvInput::cas("x", None, "a"), KvOutput::Cas(true)),
        op(1, 2, 3, KvInput::cas("x", None, "b"), KvOutput::Cas(false)),
        op(
            2,
            4,
            5,
            KvInput::cas("x", Some(b"a"), "c"),
            KvOutput::Cas(true),
        ),
        op(
            2,
            6,
            7,
            KvInput::cas("x", Some(b"a"), "d"),
            KvOutput::Cas(false),
        ),
        op(1, 8, 9, KvInput::get("x"), KvOutput::found("c")),
    ]);
}

#[test]
fn cas_with_expected_none_succeeds_only_if_the_key_is_absent() {
    assert_violation(&[
        op(1, 0, 1, KvInput::put("x", "a"), KvOutput::Ok),
        op(1, 2, 3, KvInput::cas("x", None, "b"), KvOutput::Cas(true)),
    ]);
    assert_violation(&[op(
        1,
        0,
        1,
        KvInput::cas("x", None, "b"),
        KvOutput::Cas(false),
    )]);
}

#[test]
fn cas_claiming_success_against_a_different_value_is_caught() {
    assert_violation(&[
        op(1, 0, 1, KvInput::put("x", "a"), KvOutput::Ok),
        op(
            2,
            2,
            3,
            KvInput::cas("x", Some(b"z"), "b"),
            KvOutput::Cas(true),
        ),
    ]);
}

#[test]
fn failed_cas_leaves_the_value_alone() {
    assert_violation(&[
        op(1, 0, 1, KvInput::put("x", "a"), KvOutput::Ok),
        op(
            2,
            2,
            3,
            KvInput::cas("x", Some(b"z"), "b"),
            KvOutput::Cas(false),
        ),
        op(2, 4, 5, KvInput::get("x"), KvOutput::found("b")),
    ]);
}

#[test]
fn two_concurrent_cas_from_the_same_value_cannot_both_succeed() {
    let base = op(0, 0, 1, KvInput::put("x", "0"), KvOutput::Ok);
    assert_violation(&[
        base.clone(),
        op(
            1,
            10,
            20,
            KvInput::cas("x", Some(b"0"), "1"),
            KvOutput::Cas(true),
        ),
        op(
            2,
            10,
            20,
            KvInput::cas("x", Some(b"0"), "2"),
            KvOutput::Cas(true),
        ),
    ]);
    // ... but one may win while the other loses, in either order.
    assert_ok(&[
        base,
        op(
            1,
            10,
            20,
            KvInput::cas("x", Some(b"0"), "1"),
            KvOutput::Cas(false),
        ),
        op(
            2,
            10,
            20,
            KvInput::cas("x", Some(b"0"), "2"),
            KvOutput::Cas(true),
        ),
        op(3, 30, 40, KvInput::get("x"), KvOutput::found("2")),
    ]);
}

#[test]
fn indeterminate_cas_may_or_may_not_have_swapped() {
    for seen in ["0", "1"] {
        assert_ok(&[
            op(0, 0, 1, KvInput::put("x", "0"), KvOutput::Ok),
            lost(1, 10, KvInput::cas("x", Some(b"0"), "1")),
            op(2, 50, 60, KvInput::get("x"), KvOutput::found(seen)),
        ]);
    }
}

// ---------------------------------------------------------------------------------------------
// Append

#[test]
fn append_to_a_missing_key_creates_it() {
    assert_ok(&[
        op(1, 0, 1, KvInput::append("x", "a"), KvOutput::Ok),
        op(1, 2, 3, KvInput::get("x"), KvOutput::found("a")),
        op(1, 4, 5, KvInput::append("x", "b"), KvOutput::Ok),
        op(1, 6, 7, KvInput::get("x"), KvOutput::found("ab")),
    ]);
}

#[test]
fn concurrent_appends_may_land_in_either_order() {
    for seen in ["ab", "ba"] {
        assert_ok(&[
            op(1, 0, 10, KvInput::append("x", "a"), KvOutput::Ok),
            op(2, 0, 10, KvInput::append("x", "b"), KvOutput::Ok),
            op(3, 20, 30, KvInput::get("x"), KvOutput::found(seen)),
        ]);
    }
}

#[test]
fn concurrent_appends_seen_in_both_orders_are_caught() {
    assert_violation(&[
        op(1, 0, 10, KvInput::append("x", "a"), KvOutput::Ok),
        op(2, 0, 10, KvInput::append("x", "b"), KvOutput::Ok),
        op(3, 20, 30, KvInput::get("x"), KvOutput::found("ab")),
        op(4, 40, 50, KvInput::get("x"), KvOutput::found("ba")),
    ]);
}

#[test]
fn a_completed_append_cannot_be_missing_from_a_later_read() {
    assert_violation(&[
        op(1, 0, 10, KvInput::append("x", "a"), KvOutput::Ok),
        op(2, 0, 10, KvInput::append("x", "b"), KvOutput::Ok),
        op(3, 20, 30, KvInput::get("x"), KvOutput::found("a")),
    ]);
}

#[test]
fn appends_in_real_time_order_must_apply_in_that_order() {
    assert_violation(&[
        op(1, 0, 10, KvInput::append("x", "a"), KvOutput::Ok),
        op(2, 20, 30, KvInput::append("x", "b"), KvOutput::Ok),
        op(3, 40, 50, KvInput::get("x"), KvOutput::found("ba")),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Delete

#[test]
fn delete_reports_whether_the_key_existed() {
    assert_ok(&[
        op(1, 0, 1, KvInput::delete("x"), KvOutput::Deleted(false)),
        op(1, 2, 3, KvInput::put("x", "a"), KvOutput::Ok),
        op(1, 4, 5, KvInput::delete("x"), KvOutput::Deleted(true)),
        op(1, 6, 7, KvInput::get("x"), KvOutput::not_found()),
    ]);
    assert_violation(&[op(1, 0, 1, KvInput::delete("x"), KvOutput::Deleted(true))]);
    assert_violation(&[
        op(1, 0, 1, KvInput::put("x", "a"), KvOutput::Ok),
        op(1, 2, 3, KvInput::delete("x"), KvOutput::Deleted(false)),
    ]);
}

#[test]
fn two_concurrent_deletes_cannot_both_find_the_key() {
    assert_violation(&[
        op(0, 0, 1, KvInput::put("x", "a"), KvOutput::Ok),
        op(1, 10, 20, KvInput::delete("x"), KvOutput::Deleted(true)),
        op(2, 10, 20, KvInput::delete("x"), KvOutput::Deleted(true)),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Partitions and reports

#[test]
fn keys_are_independent_registers() {
    // Reads of x and y interleave freely; only per-key order matters.
    assert_ok(&[
        op(1, 0, 1, KvInput::put("x", "1"), KvOutput::Ok),
        op(1, 2, 3, KvInput::put("y", "1"), KvOutput::Ok),
        op(2, 4, 5, KvInput::get("y"), KvOutput::found("1")),
        op(2, 6, 7, KvInput::get("x"), KvOutput::found("1")),
        op(3, 8, 9, KvInput::get("z"), KvOutput::not_found()),
    ]);
}

#[test]
fn kv_model_partitions_by_key_in_order_of_first_appearance() {
    let h = [
        op(1, 0, 1, KvInput::put("b", "1"), KvOutput::Ok),
        op(1, 2, 3, KvInput::put("a", "1"), KvOutput::Ok),
        op(1, 4, 5, KvInput::get("b"), KvOutput::found("1")),
    ];
    assert_eq!(KvModel.partition(&h), vec![vec![0, 2], vec![1]]);
    assert_eq!(
        KvModel.describe_partition(&h, &[1]),
        "key \"a\" (0x61)".to_string()
    );
}

#[test]
fn violation_names_the_key_and_only_its_ops() {
    let h = [
        op(1, 0, 10, KvInput::put("good", "1"), KvOutput::Ok),
        op(1, 0, 10, KvInput::put("bad", "1"), KvOutput::Ok),
        op(2, 20, 30, KvInput::get("good"), KvOutput::found("1")),
        op(2, 40, 50, KvInput::get("bad"), KvOutput::found("2")),
        op(3, 60, 70, KvInput::put("bad", "2"), KvOutput::Ok),
    ];
    let v = assert_violation(&h);
    assert_eq!(v.partition, "key \"bad\" (0x626164)");
    assert_eq!(v.ops, vec![1, 3, 4]);
    assert!(v.explanation.contains("key \"bad\""), "{}", v.explanation);
    assert!(!v.explanation.contains("good"), "{}", v.explanation);
}

#[test]
fn binary_keys_are_shown_in_hex() {
    let v = assert_violation(&[op(
        1,
        0,
        1,
        KvInput::get([0xff, 0x00]),
        KvOutput::found([0x01]),
    )]);
    assert!(v.partition.contains("0xff00"), "{}", v.partition);
    assert!(v.explanation.contains("0x01"), "{}", v.explanation);
}

#[test]
fn explanation_lists_ops_by_call_time_and_the_longest_linearizable_prefix() {
    // Listed out of call order on purpose.
    let h = [
        op(2, 40, 50, KvInput::get("x"), KvOutput::found("a")),
        op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok),
        lost(3, 5, KvInput::put("x", "c")),
        op(1, 20, 30, KvInput::put("x", "b"), KvOutput::Ok),
    ];
    let v = assert_violation(&h);
    assert_eq!(v.ops, vec![1, 2, 3, 0], "sorted by call time");
    let text = &v.explanation;
    let lines: Vec<&str> = text.lines().collect();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
    };
    // Every op listed with client, times, input and output, in call order.
    let put_a = pos("#1  client 1    [0, 10]  Put { key: \"x\", value: \"a\" } -> Ok");
    let lost_c =
        pos("#2  client 3    [5, ∞]  Put { key: \"x\", value: \"c\" } -> ? (indeterminate)");
    let put_b = pos("#3  client 1    [20, 30]  Put { key: \"x\", value: \"b\" } -> Ok");
    let get = pos("#0  client 2    [40, 50]  Get { key: \"x\" } -> Value(Some(\"a\"))");
    assert!(put_a < lost_c && lost_c < put_b && put_b < get, "{text}");
    // The prefix: both puts linearize (with their states), the get cannot.
    let prefix = pos("longest linearizable prefix found (2 of 3 completed operations)");
    assert!(prefix > get, "{text}");
    assert!(text.contains("=> state Some(\"b\")"), "{text}");
    let stuck = pos("after this prefix");
    assert!(lines[stuck + 1].contains("#0"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Budget, malformed input, defaults

/// `n` mutually concurrent writes of distinct values followed by a read of a value none wrote:
/// a plain search visits about n * 2^(n-1) configurations before giving up.
fn pathological(key: &str, n: u64) -> Vec<Op> {
    let mut h: Vec<Op> = (0..n)
        .map(|i| op(i, 0, 100, KvInput::put(key, format!("v{i}")), KvOutput::Ok))
        .collect();
    h.push(op(
        99,
        200,
        300,
        KvInput::get(key),
        KvOutput::found("never"),
    ));
    h
}

#[test]
fn exhausted_budget_gives_unknown_instead_of_hanging() {
    let start = std::time::Instant::now();
    let verdict = Checker::new()
        .with_step_budget(10_000)
        .check(&KvModel, &pathological("x", 24));
    match verdict {
        Verdict::Unknown { reason } => {
            assert!(reason.contains("budget"), "{reason}");
            assert!(reason.contains("key \"x\""), "{reason}");
        }
        other => panic!("expected unknown, got {other:?}"),
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn enough_budget_decides_the_same_pathological_history() {
    let verdict = Checker::new().check(&KvModel, &pathological("x", 8));
    assert!(matches!(verdict, Verdict::NotLinearizable(_)), "{verdict}");
}

#[test]
fn an_undecided_partition_does_not_hide_a_violation_in_another() {
    let mut h = pathological("slow", 24);
    h.push(op(1, 0, 10, KvInput::put("x", "a"), KvOutput::Ok));
    h.push(op(1, 20, 30, KvInput::get("x"), KvOutput::not_found()));
    let verdict = Checker::new().with_step_budget(10_000).check(&KvModel, &h);
    assert_eq!(
        verdict.violation().map(|v| v.partition.as_str()),
        Some("key \"x\" (0x78)")
    );
}

#[test]
fn a_return_before_the_call_is_reported_as_malformed() {
    let verdict = check(&[op(1, 10, 5, KvInput::get("x"), KvOutput::not_found())]);
    match verdict {
        Verdict::Unknown { reason } => assert!(reason.contains("malformed"), "{reason}"),
        other => panic!("expected unknown, got {other:?}"),
    }
}

#[test]
fn default_budget_is_ten_million_steps() {
    assert_eq!(Checker::new().step_budget(), DEFAULT_STEP_BUDGET);
    assert_eq!(DEFAULT_STEP_BUDGET, 10_000_000);
    assert_eq!(Checker::default(), Checker::new());
    assert_eq!(Checker::new().with_step_budget(7).step_budget(), 7);
}

// ---------------------------------------------------------------------------------------------
// A model with the default (single) partition

/// A counter with increments and reads; not partitioned.
struct Counter;

impl Model for Counter {
    type State = i64;
    type Input = Option<i64>; // Some(delta) = add, None = read
    type Output = i64; // value read (ignored for adds)

    fn init(&self) -> i64 {
        0
    }

    fn step(&self, state: &i64, input: &Option<i64>, output: Option<&i64>) -> Option<i64> {
        match (input, output) {
            (Some(d), _) => Some(state + d),
            (None, Some(v)) if v != state => None,
            (None, _) => Some(*state),
        }
    }
}

#[test]
fn default_partition_checks_the_whole_history_together() {
    let h = vec![
        Operation::completed(1, Some(1), 0, 10, 0),
        Operation::completed(2, Some(2), 0, 10, 0),
        Operation::completed(3, None, 5, 6, 2),
        Operation::completed(3, None, 20, 21, 3),
    ];
    assert_eq!(Counter.partition(&h), vec![vec![0, 1, 2, 3]]);
    assert_eq!(Checker::new().check(&Counter, &h), Verdict::Linearizable);

    let mut bad = h.clone();
    bad[3].ret = Some((21, 4));
    let v = Checker::new().check(&Counter, &bad);
    let v = v.violation().expect("a read of 4 cannot be explained");
    assert_eq!(v.partition, "whole history (4 operations)");
}

// ---------------------------------------------------------------------------------------------
// Recorder

#[test]
fn recorder_keeps_invocation_order_and_leaves_unfinished_ops_indeterminate() {
    let mut h = KvHistory::new();
    let a = h.invoke(1, KvInput::put("x", "a"), 0);
    let b = h.invoke(2, KvInput::get("x"), 1);
    let c = h.invoke(3, KvInput::put("x", "c"), 2);
    let d = h.invoke(4, KvInput::put("x", "d"), 3);
    h.complete(b, KvOutput::found("a"), 5);
    h.complete(a, KvOutput::Ok, 6);
    h.indeterminate(c);
    assert_eq!(h.len(), 4);
    assert_eq!(d.index(), 3);
    let ops = h.into_ops();
    assert_eq!(ops[0], op(1, 0, 6, KvInput::put("x", "a"), KvOutput::Ok));
    assert_eq!(ops[1], op(2, 1, 5, KvInput::get("x"), KvOutput::found("a")));
    assert_eq!(ops[2], lost(3, 2, KvInput::put("x", "c")));
    assert_eq!(ops[3], lost(4, 3, KvInput::put("x", "d")));
    assert_eq!(check(&ops), Verdict::Linearizable);
}

#[test]
#[should_panic(expected = "already")]
fn recorder_rejects_completing_an_op_twice() {
    let mut h = KvHistory::new();
    let a = h.invoke(1, KvInput::get("x"), 0);
    h.complete(a, KvOutput::not_found(), 1);
    h.complete(a, KvOutput::not_found(), 2);
}
