//! The simulator's command line: replay one seed with a readable trace, or run a long
//! campaign over many seeds with a progress bar and a summary of what was exercised.
//! Every seed runs against each selected engine with the same world (cluster, faults,
//! workload) and the same checks.
//!
//! ```text
//! cargo run -p sim --release -- --seeds 100000                  # campaign, both engines
//! cargo run -p sim --release -- --seeds 3000 --engine paxos     # one engine
//! cargo run -p sim --release -- --seed 42 --trace --engine raft # replay one seed
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sim::{Failure, Report, SimConfig, Stats};

/// Which engines a run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EngineChoice {
    Raft,
    Paxos,
    Both,
}

impl EngineChoice {
    fn names(self) -> &'static [&'static str] {
        match self {
            EngineChoice::Raft => &["raft"],
            EngineChoice::Paxos => &["paxos"],
            EngineChoice::Both => &["raft", "paxos"],
        }
    }
}

#[derive(Parser, Debug)]
#[command(name = "sim", about = "hakv deterministic simulator")]
struct Args {
    /// Replay exactly this seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds, starting at --start.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// First seed of a campaign.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Worker threads (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the event trace (with --seed).
    #[arg(long)]
    trace: bool,
    /// Stop at the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// The engines to drive (each seed runs on each).
    #[arg(long, value_enum, default_value_t = EngineChoice::Both)]
    engine: EngineChoice,
    /// Turn on a deliberately broken protocol knob, to watch the checks catch it.
    /// Raft: vote-without-log-check, commit-any-term, skip-persist-barrier,
    /// read-without-quorum. Multi-Paxos: ignore-promised-values, skip-persist-barrier,
    /// read-without-quorum, retry-without-backoff.
    #[arg(long)]
    knob: Option<String>,
}

/// The world for `seed` on `engine`, with `knob` (if any) broken; `Err` names a knob
/// the engine does not have.
fn world(seed: u64, engine: &str, knob: Option<&str>) -> Result<SimConfig, String> {
    let mut cfg = SimConfig::from_seed(seed);
    let Some(k) = knob else {
        return Ok(cfg);
    };
    let (r, p) = (&mut cfg.engine.raft_knobs, &mut cfg.engine.paxos_knobs);
    match (engine, k) {
        ("raft", "vote-without-log-check") => r.vote_without_log_check = true,
        ("raft", "commit-any-term") => r.commit_any_term = true,
        ("raft", "skip-persist-barrier") => r.skip_persist_barrier = true,
        ("raft", "read-without-quorum") => r.read_without_quorum = true,
        ("paxos", "ignore-promised-values") => p.ignore_promised_values = true,
        ("paxos", "skip-persist-barrier") => p.skip_persist_barrier = true,
        ("paxos", "read-without-quorum") => p.read_without_quorum = true,
        ("paxos", "retry-without-backoff") => p.retry_without_backoff = true,
        _ => return Err(format!("{engine} has no knob {k:?}")),
    }
    Ok(cfg)
}

/// Runs one world on the named engine.
fn run_on(engine: &str, cfg: SimConfig) -> Result<Report, Failure> {
    match engine {
        "raft" => sim::run::<raft::Raft>(cfg),
        _ => sim::run::<paxos::Paxos>(cfg),
    }
}

fn main() {
    let args = Args::parse();
    for engine in args.engine.names() {
        if let Err(e) = world(0, engine, args.knob.as_deref()) {
            eprintln!("{e}");
            std::process::exit(2);
        }
    }
    let mut code = 0;
    for engine in args.engine.names() {
        let c = match args.seed {
            Some(seed) => replay(engine, seed, args.trace, args.knob.as_deref()),
            None => campaign(engine, &args),
        };
        code = code.max(c);
    }
    std::process::exit(code);
}

fn replay(engine: &str, seed: u64, trace: bool, knob: Option<&str>) -> i32 {
    let mut cfg = world(seed, engine, knob).expect("knob checked");
    cfg.trace = trace;
    println!("[{engine}] {}", cfg.summary());
    match run_on(engine, cfg) {
        Ok(report) => {
            for line in &report.trace {
                println!("{line}");
            }
            println!(
                "[{engine}] seed {seed}: ok — {} events, {} ops checked, trace hash {:016x}, recovered in {:.1} ms",
                report.stats.events,
                report.ops_checked,
                report.trace_hash,
                report.recovery_us as f64 / 1000.0
            );
            println!("{:#?}", report.stats);
            0
        }
        Err(failure) => {
            for line in &failure.trace {
                println!("{line}");
            }
            eprintln!("{failure}");
            1
        }
    }
}

fn campaign(engine: &str, args: &Args) -> i32 {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let bar = ProgressBar::new(args.seeds);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} seeds ({per_sec}, eta {eta}) {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    println!(
        "simulating {engine}: seeds {}..{} on {threads} threads",
        args.start,
        args.start + args.seeds
    );
    let next = Arc::new(AtomicU64::new(args.start));
    let end = args.start + args.seeds;
    let totals = Arc::new(Mutex::new((Stats::default(), 0usize, 0usize)));
    let failures: Arc<Mutex<Vec<Failure>>> = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (next, totals, failures, bar) =
                (next.clone(), totals.clone(), failures.clone(), bar.clone());
            let fail_fast = args.fail_fast;
            let knob = args.knob.as_deref();
            s.spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end || (fail_fast && !failures.lock().expect("lock").is_empty()) {
                    break;
                }
                match run_on(engine, world(seed, engine, knob).expect("knob checked")) {
                    Ok(r) => {
                        let mut t = totals.lock().expect("lock");
                        t.0.add(&r.stats);
                        t.1 += r.ops_checked;
                        t.2 += r.lincheck_unknown as usize;
                    }
                    Err(f) => {
                        bar.println(format!("{f}"));
                        let mut fs = failures.lock().expect("lock");
                        fs.push(f);
                        bar.set_message(format!("{} FAILED", fs.len()));
                    }
                }
                bar.inc(1);
            });
        }
    });
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    let (stats, ops, unknown) = totals.lock().expect("lock").clone();
    let failures = failures.lock().expect("lock");
    let ran = bar.position();
    println!(
        "\n[{engine}] {ran} seeds in {secs:.1}s ({:.1} seeds/s)",
        ran as f64 / secs
    );
    println!(
        "operations checked for linearizability: {ops} ({unknown} runs hit the checker budget)"
    );
    println!("events: {}  messages: {}", stats.events, stats.messages);
    println!("faults injected:");
    println!("  messages dropped     {:>10}", stats.dropped);
    println!("  messages duplicated  {:>10}", stats.duplicated);
    println!("  messages delayed     {:>10}", stats.delayed);
    println!("  partitions           {:>10}", stats.partitions);
    println!(
        "  crashes              {:>10}  (torn writes {})",
        stats.crashes, stats.torn_writes
    );
    println!("  restarts             {:>10}", stats.restarts);
    println!("  slow fsyncs          {:>10}", stats.slow_fsyncs);
    println!("  membership changes   {:>10}", stats.config_changes);
    println!("  leadership transfers {:>10}", stats.transfers);
    println!(
        "  snapshots taken      {:>10}  installed {}",
        stats.snapshots_taken, stats.snapshots_installed
    );
    println!("  leaders elected      {:>10}", stats.leaders);
    println!(
        "  ops completed        {:>10}  indeterminate {}",
        stats.ops_completed, stats.ops_indeterminate
    );
    if failures.is_empty() {
        println!("[{engine}] {ran} passed, 0 failed");
        0
    } else {
        println!(
            "[{engine}] FAILED seeds: {:?}",
            failures.iter().map(|f| f.seed).collect::<Vec<_>>()
        );
        println!(
            "{} passed, {} failed",
            ran as usize - failures.len(),
            failures.len()
        );
        1
    }
}
