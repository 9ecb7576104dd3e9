//! Measures the failure detector in the deterministic simulator: crash detection time
//! and false-positive rate per cluster size and loss rate, over many seeds.
//!
//! ```sh
//! cargo run -p membership --release --example detect -- --nodes 5,20 --loss 0,0.05,0.2 --seeds 50
//! ```
//!
//! Each run follows the script in `membership::sim::scenario`; the table aggregates the
//! runs of one (nodes, loss) pair. Same arguments, same table.

use std::time::Instant;

use clap::Parser;
use membership::sim::scenario::{run, Outcome, Scenario};
use membership::FaultKnobs;

#[derive(Parser, Debug)]
#[command(about = "Measure hakv's failure detector under message loss")]
struct Args {
    /// Cluster sizes, comma-separated (each at least 4).
    #[arg(long, value_delimiter = ',', default_value = "5,20")]
    nodes: Vec<usize>,
    /// Per-message loss probabilities, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,0.05,0.2")]
    loss: Vec<f64>,
    /// Seeds per (nodes, loss) pair.
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 1)]
    start: u64,
    /// Length of the steady phase before the faults, in seconds.
    #[arg(long, default_value_t = 600)]
    steady_secs: u64,
    /// Break the protocol: no indirect probes (checks-can-fail demonstration).
    #[arg(long)]
    skip_indirect_probes: bool,
    /// Break the protocol: no suspicion period (checks-can-fail demonstration).
    #[arg(long)]
    skip_suspicion: bool,
    /// Print every run's outcome.
    #[arg(long)]
    verbose: bool,
}

fn main() {
    let args = Args::parse();
    let started = Instant::now();
    println!(
        "| nodes | loss | runs | crash → first suspect (s) median / p95 / max | crash → dead everywhere (s) median / p95 / max | missed | false suspects per node-hour: all (of which a↛b) | false deaths per node-hour | runs with a false death | a↛b: runs with a or b suspected / dead | rejoin (s) median / max | partition heal (s) median / max | msgs per node per s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &nodes in &args.nodes {
        for &loss in &args.loss {
            let mut outcomes = Vec::new();
            for seed in args.start..args.start + args.seeds {
                let mut s = Scenario::new(nodes, loss, seed);
                s.steady_ms = args.steady_secs * 1000;
                s.knobs = FaultKnobs {
                    skip_indirect_probes: args.skip_indirect_probes,
                    skip_suspicion: args.skip_suspicion,
                };
                let o = run(&s);
                if args.verbose {
                    eprintln!("nodes {nodes} loss {loss} seed {seed}: {o:?}");
                }
                outcomes.push(o);
            }
            println!("{}", row(nodes, loss, &outcomes));
        }
    }
    eprintln!("{:.1} s", started.elapsed().as_secs_f64());
}

fn row(nodes: usize, loss: f64, runs: &[Outcome]) -> String {
    let secs = |v: Vec<Option<u64>>| -> (Vec<f64>, usize) {
        let missed = v.iter().filter(|x| x.is_none()).count();
        let mut s: Vec<f64> = v
            .into_iter()
            .flatten()
            .map(|ms| ms as f64 / 1000.0)
            .collect();
        s.sort_by(f64::total_cmp);
        (s, missed)
    };
    let (suspect, _) = secs(runs.iter().map(|o| o.first_suspect_ms).collect());
    let (dead, missed) = secs(runs.iter().map(|o| o.all_dead_ms).collect());
    let (rejoin, rejoin_missed) = secs(runs.iter().map(|o| o.rejoin_ms).collect());
    let (heal, heal_missed) = secs(runs.iter().map(|o| o.heal_ms).collect());
    let hours: f64 = runs.iter().map(|o| o.node_hours).sum();
    let false_suspects: u64 = runs.iter().map(|o| o.false_suspects).sum();
    let false_deaths: u64 = runs.iter().map(|o| o.false_deaths).sum();
    let with_death = runs.iter().filter(|o| o.false_deaths > 0).count();
    let link_suspects: u64 = runs.iter().map(|o| o.link_suspects).sum();
    let victim_suspected = runs.iter().filter(|o| o.link_suspects > 0).count();
    let victim_dead = runs.iter().filter(|o| o.link_dead).count();
    let msgs = runs.iter().map(|o| o.messages_per_node_s).sum::<f64>() / runs.len() as f64;
    let missed_note = |n: usize| {
        if n > 0 {
            format!(" ({n} missed)")
        } else {
            String::new()
        }
    };
    format!(
        "| {nodes} | {:.0}% | {} | {} | {} | {missed} | {:.2} ({:.2}): {false_suspects} ({link_suspects}) in {hours:.0} h | {:.3} ({false_deaths}) | {with_death} | {victim_suspected} / {victim_dead} | {}{} | {}{} | {msgs:.1} |",
        loss * 100.0,
        runs.len(),
        stats3(&suspect),
        stats3(&dead),
        false_suspects as f64 / hours,
        link_suspects as f64 / hours,
        false_deaths as f64 / hours,
        stats2(&rejoin),
        missed_note(rejoin_missed),
        stats2(&heal),
        missed_note(heal_missed),
    )
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

fn stats3(sorted: &[f64]) -> String {
    if sorted.is_empty() {
        return "–".into();
    }
    format!(
        "{:.1} / {:.1} / {:.1}",
        quantile(sorted, 0.5),
        quantile(sorted, 0.95),
        sorted[sorted.len() - 1]
    )
}

fn stats2(sorted: &[f64]) -> String {
    if sorted.is_empty() {
        return "–".into();
    }
    format!(
        "{:.1} / {:.1}",
        quantile(sorted, 0.5),
        sorted[sorted.len() - 1]
    )
}
