//! The measurement campaign of `examples/detect.rs` in miniature, with loose bounds, so
//! a regression in detection time or false positives fails `cargo test`. The full
//! table (more seeds, ten-minute steady phases, 20 % loss) is in the crate README.
//!
//! Bounds: no false death at 0 % and 5 % loss (including during a one-way link failure);
//! the crash is declared dead everywhere within [`Config::crash_detection_bound_ms`]
//! (derived from the parameters, loss-free) — at 5 % loss plus one anti-entropy sync
//! interval, the repair path for a rumour that loss kept from a node — and the restart
//! and the healed partition converge.

use membership::sim::scenario::{run, Outcome, Scenario};
use membership::{Config, FaultKnobs};

fn scenario(nodes: usize, loss: f64, seed: u64) -> Scenario {
    Scenario {
        steady_ms: 60_000,
        ..Scenario::new(nodes, loss, seed)
    }
}

/// Why `o` breaks the bounds, if it does.
fn check(s: &Scenario, o: &Outcome) -> Result<(), String> {
    let cfg = Config::new(1);
    let what = format!("nodes {} loss {} seed {}: {o:?}", s.nodes, s.loss, s.seed);
    let fail = |why: String| Err(format!("{why}; {what}"));
    if o.false_deaths > 0 || o.link_dead {
        return fail(format!("{} false deaths", o.false_deaths));
    }
    let mut bound = cfg.crash_detection_bound_ms(s.nodes, s.net.delay_ms_max);
    if s.loss > 0.0 {
        bound += cfg.sync_interval_ms;
    }
    match o.all_dead_ms {
        None => return fail("crash never detected everywhere".into()),
        Some(ms) if ms > bound => {
            return fail(format!("dead everywhere after {ms} ms > {bound} ms"))
        }
        Some(_) => {}
    }
    // Not before φ could cross: a probe period plus the acceptable pause.
    let earliest = cfg.probe_interval_ms + cfg.phi_acceptable_pause_ms - 2 * s.net.delay_ms_max;
    match o.first_suspect_ms {
        Some(ms) if ms >= earliest => {}
        _ => return fail(format!("first suspicion not in [{earliest} ms, ∞)")),
    }
    match o.rejoin_ms {
        Some(ms) if ms <= 10_000 => {}
        _ => return fail("restarted node not back everywhere within 10 s".into()),
    }
    match o.heal_ms {
        Some(ms) if ms <= 60_000 => {}
        _ => return fail("partition not healed within 60 s".into()),
    }
    Ok(())
}

#[test]
fn no_false_deaths_and_bounded_detection_at_0_and_5_percent_loss() {
    let mut report = Vec::new();
    for (nodes, seeds) in [(5, 1..=3), (20, 1..=1)] {
        for loss in [0.0, 0.05] {
            for seed in seeds.clone() {
                let s = scenario(nodes, loss, seed);
                let o = run(&s);
                check(&s, &o).unwrap();
                report.push((
                    nodes,
                    loss,
                    seed,
                    o.first_suspect_ms,
                    o.all_dead_ms,
                    o.false_suspects,
                ));
            }
        }
    }
    eprintln!(
        "(nodes, loss, seed, first suspect ms, dead everywhere ms, false suspects): {report:?}"
    );
}

/// Checks can fail: with the broken knobs the same campaign declares the healthy end of
/// the one-way link dead, and the assertions above would catch it.
#[test]
fn with_indirect_probes_and_suspicion_disabled_the_bad_link_evicts() {
    let s = Scenario {
        knobs: FaultKnobs {
            skip_indirect_probes: true,
            skip_suspicion: true,
        },
        ..scenario(5, 0.0, 1)
    };
    let o = run(&s);
    assert!(o.link_dead, "{o:?}");
    assert!(o.false_deaths > 0);
    let verdict = check(&s, &o);
    assert!(verdict.is_err_and(|why| why.contains("false deaths")));
}

/// The same campaign replays exactly from its seed.
#[test]
fn a_scenario_replays_from_its_seed() {
    let s = scenario(5, 0.2, 7);
    assert_eq!(run(&s), run(&s));
}
