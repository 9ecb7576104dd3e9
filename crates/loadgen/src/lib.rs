//! `loadgen`: the load generator behind `hakv bench`.
//!
//! One generator drives hakv and Redis over RESP (`SET`/`GET`, pipelined) and
//! etcd over its native gRPC API (`Put`/linearizable `Range`), so all three
//! see the same workload: the same key space and distribution (uniform or
//! YCSB's scrambled zipfian), value size, read ratio, number of requests in
//! flight (connections × pipeline), warm-up and measured window.
//!
//! * **Closed loop** (default): every slot sends its next request when the
//!   previous one is answered; latency is measured from the send.
//! * **Open loop** (`--rate R`): requests are scheduled at R per second across
//!   all slots and latency is measured from each request's *intended* send
//!   time, so a stalled server is charged for the requests it held back
//!   (coordinated omission, see [`rate`]).
//!
//! Latencies go into HDR histograms (1 µs – 1 h, 3 significant digits) per
//! operation kind; errors (error replies, timeouts, requests lost with their
//! connection) are counted and reported, never fatal. The result is printed
//! and, with `--json FILE`, written as JSON ([`Report`]).

pub mod etcd;
pub mod keys;
pub mod rate;
pub mod report;
mod resp_client;
pub mod rng;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

pub use keys::{Distribution, KeyChooser, Zipfian};
pub use rate::{Pacer, RateSchedule};
pub use report::{LatencySummary, OpKind, Recorder, Report, RunConfig};
use rng::Rng;

/// Options of `hakv bench`.
#[derive(Args, Debug, Clone)]
#[command(after_help = "\
Examples:
  hakv bench resp://127.0.0.1:7001 -c 50 -r 0.9          # hakv, 50 in flight, 90% reads
  hakv bench resp://127.0.0.1:6379 -c 50 -P 4 -r 0        # Redis, 200 in flight, writes only
  hakv bench etcd://127.0.0.1:2379 -c 10 --rate 5000      # etcd, open loop at 5,000 ops/s
  hakv bench resp://127.0.0.1:7001 --preload -d 256 -k 100000 --duration 0   # only write every key once

Latencies are measured from the intended send time: in closed loop that is the
actual send; with --rate it is the request's slot in the schedule, so queueing
behind a slow server counts (coordinated-omission correction).")]
pub struct BenchArgs {
    /// What to load: `resp://HOST:PORT` (hakv or Redis: SET and GET) or
    /// `etcd://HOST:PORT` (etcd's gRPC API: Put and linearizable Range).
    /// Several endpoints of one cluster may be given comma-separated
    /// (`etcd://127.0.0.1:2379,127.0.0.1:22379`): connections are spread over
    /// them round-robin.
    pub target: String,
    /// Connections to open (etcd: gRPC channels, each its own HTTP/2 connection).
    #[arg(short = 'c', long, default_value_t = 10)]
    pub connections: usize,
    /// Requests in flight on each connection (RESP: pipeline depth; etcd:
    /// concurrent streams). Requests in flight = connections × pipeline.
    #[arg(short = 'P', long, default_value_t = 1)]
    pub pipeline: usize,
    /// Size of every written value, in bytes.
    #[arg(short = 'd', long, default_value_t = 256)]
    pub value_size: usize,
    /// Number of distinct keys (`key:000000` … with the default prefix, all of
    /// the same length).
    #[arg(short = 'k', long, default_value_t = 100_000)]
    pub keys: u64,
    /// Prefix of every key.
    #[arg(long, default_value = "key:")]
    pub key_prefix: String,
    /// How keys are drawn: `uniform` or `zipfian` (YCSB's scrambled zipfian:
    /// popularity by rank ∝ 1/rank^theta, hot keys spread over the key space).
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    pub distribution: Distribution,
    /// Zipfian exponent, strictly between 0 and 1 (YCSB's default 0.99).
    #[arg(long, default_value_t = 0.99)]
    pub theta: f64,
    /// Fraction of operations that are reads (GET / Range), the rest writes
    /// (SET / Put): 0 writes only, 1 reads only.
    #[arg(short = 'r', long, default_value_t = 0.5)]
    pub read_ratio: f64,
    /// Length of the measured window: `10s`, `500ms`, `2m`, or plain seconds.
    /// 0 with `--preload` only loads the keys.
    #[arg(short = 't', long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load applied before the measured window and not measured (connections,
    /// caches, elections' dust settle).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Open-loop mode: send this many operations per second in total, on a
    /// fixed schedule, and measure every latency from its scheduled time.
    /// Without it (or 0): closed loop, as fast as the slots are answered.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Before the run, write every key of the key space once (not measured),
    /// so reads find values of the configured size.
    #[arg(long)]
    pub preload: bool,
    /// Seed of the key and read/write choices (each worker derives its own
    /// stream from it): the same seed replays the same sequences.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A request not answered within this time counts as an error (RESP: and
    /// its connection is reopened); also the connect timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Worker threads of the generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress bar (it is drawn only on a terminal anyway).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// Parses `10s`, `250ms`, `2m`, `1.5s`, `1h` or plain seconds (`10`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "ms" => v / 1000.0,
        "s" | "" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        u => {
            return Err(format!(
                "unknown duration unit {u:?} in {s:?} (ms, s, m, h)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("not a duration: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The protocol and endpoints of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// hakv or Redis.
    Resp(Vec<String>),
    /// etcd v3.
    Etcd(Vec<String>),
}

impl Target {
    /// Parses `resp://h:p[,h:p…]` (also `redis://`) or `etcd://h:p[,h:p…]`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            format!("target {s:?}: expected resp://HOST:PORT or etcd://HOST:PORT")
        })?;
        let endpoints: Vec<String> = rest
            .split(',')
            .map(|e| e.trim().trim_end_matches('/').to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() || endpoints.iter().any(|e| !e.contains(':')) {
            return Err(format!("target {s:?}: every endpoint must be HOST:PORT"));
        }
        match scheme {
            "resp" | "redis" | "hakv" => Ok(Target::Resp(endpoints)),
            "etcd" => Ok(Target::Etcd(endpoints)),
            _ => Err(format!(
                "target {s:?}: unknown scheme {scheme:?} (resp or etcd)"
            )),
        }
    }

    fn protocol(&self) -> &'static str {
        match self {
            Target::Resp(_) => "resp",
            Target::Etcd(_) => "etcd",
        }
    }
}

/// One operation to send.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    pub kind: OpKind,
    pub key: u64,
    pub intended: Instant,
}

enum Phase {
    /// Write keys `0..n` once each.
    Preload { next: AtomicU64 },
    /// The run: warm-up, then the measured window.
    Run {
        pacer: Pacer,
        measure_start: Instant,
    },
}

/// What every worker of a phase shares.
pub(crate) struct Shared {
    pub chooser: KeyChooser,
    pub value: Bytes,
    pub read_ratio: f64,
    pub seed: u64,
    pub pipeline: usize,
    pub timeout: Duration,
    phase: Phase,
    live_ops: AtomicU64,
    live_errors: AtomicU64,
    connect_errors: AtomicU64,
}

impl Shared {
    /// Records an operation's outcome if it belongs to the measured window
    /// (every preload operation is recorded).
    pub(crate) fn record(
        &self,
        rec: &mut Recorder,
        kind: OpKind,
        intended: Instant,
        done: Instant,
        result: Result<(), String>,
    ) {
        if let Phase::Run { measure_start, .. } = &self.phase {
            if intended < *measure_start {
                return;
            }
        }
        match result {
            Ok(()) => {
                rec.ok(kind, done.saturating_duration_since(intended));
                self.live_ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                rec.error(kind, || e);
                self.live_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn connect_error(&self) {
        self.connect_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// True once no more operations will be started.
    pub(crate) fn past_end(&self, now: Instant) -> bool {
        match &self.phase {
            Phase::Preload { next } => next.load(Ordering::Relaxed) >= self.chooser.len(),
            Phase::Run { pacer, .. } => now >= pacer.end(),
        }
    }
}

/// One worker's stream of operations.
pub(crate) struct Source {
    shared: Arc<Shared>,
    rng: Rng,
    finished: bool,
}

impl Source {
    pub(crate) fn new(shared: Arc<Shared>, stream: u64) -> Source {
        let rng = Rng::for_stream(shared.seed, stream);
        Source {
            shared,
            rng,
            finished: false,
        }
    }

    /// The next operation, or `None` once the phase is over for this worker.
    pub(crate) fn next(&mut self, now: Instant) -> Option<Op> {
        if self.finished {
            return None;
        }
        let op = match &self.shared.phase {
            Phase::Preload { next } => {
                let key = next.fetch_add(1, Ordering::Relaxed);
                (key < self.shared.chooser.len()).then_some(Op {
                    kind: OpKind::Write,
                    key,
                    intended: now,
                })
            }
            Phase::Run { pacer, .. } => pacer.next(now).map(|intended| {
                let kind = if self.rng.next_f64() < self.shared.read_ratio {
                    OpKind::Read
                } else {
                    OpKind::Write
                };
                Op {
                    kind,
                    key: self.shared.chooser.choose(&mut self.rng),
                    intended,
                }
            }),
        };
        self.finished = op.is_none();
        op
    }

    pub(crate) fn finished(&self) -> bool {
        self.finished
    }
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs every connection of one phase to completion and merges their
/// measurements.
async fn run_phase(target: &Target, shared: &Arc<Shared>, connections: usize) -> Recorder {
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let shared = shared.clone();
        tasks.push(match target {
            Target::Resp(eps) => tokio::spawn(resp_client::connection(
                shared,
                eps[i % eps.len()].clone(),
                i,
            )),
            Target::Etcd(eps) => {
                tokio::spawn(etcd::connection(shared, eps[i % eps.len()].clone(), i))
            }
        });
    }
    let mut all = Recorder::new();
    for t in tasks {
        match t.await {
            Ok(r) => all.merge(&r),
            Err(e) => {
                all.first_error
                    .get_or_insert_with(|| format!("worker failed: {e}"));
            }
        }
    }
    all
}

fn progress_bar(quiet: bool, len: u64, template: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Runs a benchmark as `args` describe and returns its result. Errors only
/// for invalid options; failures of the target are counted in the report.
pub async fn run_bench(args: &BenchArgs) -> Result<Report, String> {
    let target = Target::parse(&args.target)?;
    if args.connections == 0 || args.pipeline == 0 {
        return Err("--connections and --pipeline must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&args.read_ratio) {
        return Err(format!(
            "--read-ratio must be within 0..1, got {}",
            args.read_ratio
        ));
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        return Err(format!(
            "--rate must be a positive number, got {}",
            args.rate
        ));
    }
    if args.duration.is_zero() && !args.preload {
        return Err("--duration 0 only makes sense with --preload".into());
    }
    let chooser = KeyChooser::new(args.keys, args.distribution, args.theta, &args.key_prefix)?;
    // A printable pattern, so values read back in redis-cli stay legible.
    let value: Bytes = (0..args.value_size)
        .map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i % 36])
        .collect::<Vec<u8>>()
        .into();
    let in_flight = args.connections * args.pipeline;
    let config = RunConfig {
        target: args.target.clone(),
        protocol: target.protocol().into(),
        connections: args.connections,
        pipeline: args.pipeline,
        in_flight,
        value_size: args.value_size,
        keys: args.keys,
        distribution: args.distribution,
        theta: args.theta,
        read_ratio: args.read_ratio,
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        rate: (args.rate > 0.0).then_some(args.rate),
        preload: args.preload,
        seed: args.seed,
    };
    let shared_with = |phase: Phase| {
        Arc::new(Shared {
            chooser: chooser.clone(),
            value: value.clone(),
            read_ratio: args.read_ratio,
            seed: args.seed,
            pipeline: args.pipeline,
            timeout: args.timeout,
            phase,
            live_ops: AtomicU64::new(0),
            live_errors: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
        })
    };

    let mut first_error = None;
    let mut connect_errors = 0;
    let mut preload_s = 0.0;
    if args.preload {
        let shared = shared_with(Phase::Preload {
            next: AtomicU64::new(0),
        });
        let bar = progress_bar(
            args.quiet,
            args.keys,
            "preload {bar:30.cyan/blue} {pos}/{len} keys {per_sec} {msg}",
        );
        let ticker = {
            let shared = shared.clone();
            let bar = bar.clone();
            tokio::spawn(async move {
                loop {
                    bar.set_position(shared.live_ops.load(Ordering::Relaxed));
                    let e = shared.live_errors.load(Ordering::Relaxed);
                    if e > 0 {
                        bar.set_message(format!("{e} errors"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        let t0 = Instant::now();
        // Preload at least 64 writes in flight: it is not measured.
        let conns = args.connections.max(64 / args.pipeline.max(1)).max(1);
        let rec = run_phase(&target, &shared, conns).await;
        ticker.abort();
        bar.finish_and_clear();
        preload_s = t0.elapsed().as_secs_f64();
        let errors = rec.errors(OpKind::Write);
        connect_errors += shared.connect_errors.load(Ordering::Relaxed);
        if errors > 0 {
            eprintln!(
                "preload: {errors} of {} writes failed; first error: {}",
                args.keys,
                rec.first_error.as_deref().unwrap_or("?")
            );
            first_error = rec.first_error.clone();
        }
    }

    let mut latency = BTreeMap::new();
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() + args.warmup.as_secs_f64())
        .unwrap_or(0.0);
    if args.duration.is_zero() {
        for name in ["read", "write", "all"] {
            latency.insert(name.to_string(), Recorder::new().summary_all());
        }
        return Ok(Report {
            config,
            ops: 0,
            ops_per_sec: 0.0,
            errors: 0,
            connect_errors,
            first_error,
            latency,
            client_cpu_cores: 0.0,
            preload_s,
            started_unix_s,
        });
    }

    let start = Instant::now();
    let measure_start = start + args.warmup;
    let end = measure_start + args.duration;
    let pacer = if args.rate > 0.0 {
        Pacer::open(start, args.rate, end)
    } else {
        Pacer::closed(end)
    };
    let shared = shared_with(Phase::Run {
        pacer,
        measure_start,
    });
    let total_ms = (args.warmup + args.duration).as_millis() as u64;
    let bar = progress_bar(
        args.quiet,
        total_ms,
        "{spinner} [{bar:30.cyan/blue}] {elapsed}/{len_s} {msg}",
    );
    let len_s = format!("{:.0}s", (args.warmup + args.duration).as_secs_f64());
    // Samples the generator's CPU time when the measured window opens, and
    // draws the progress bar until the run ends.
    let ticker = {
        let shared = shared.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            let mut cpu_start = None;
            let mut last = (Instant::now(), 0u64);
            loop {
                let now = Instant::now();
                if cpu_start.is_none() && now >= measure_start {
                    cpu_start = Some((now, cpu_time()));
                }
                bar.set_position(now.saturating_duration_since(start).as_millis() as u64);
                let ops = shared.live_ops.load(Ordering::Relaxed);
                let errors = shared.live_errors.load(Ordering::Relaxed);
                let dt = now.saturating_duration_since(last.0).as_secs_f64();
                if now < measure_start {
                    bar.set_message(format!("{len_s}  warm-up"));
                } else if dt >= 0.5 {
                    let rate = (ops - last.1) as f64 / dt;
                    bar.set_message(format!(
                        "{len_s}  {rate:.0} ops/s  {ops} ops  {errors} errors"
                    ));
                    last = (now, ops);
                }
                if now >= end {
                    return cpu_start;
                }
                let next_tick = if cpu_start.is_none() {
                    (now + Duration::from_millis(100)).min(measure_start)
                } else {
                    now + Duration::from_millis(100)
                };
                tokio::time::sleep_until(next_tick.into()).await;
            }
        })
    };
    let rec = run_phase(&target, &shared, args.connections).await;
    let finished = Instant::now();
    let cpu_end = cpu_time();
    let cpu_start = ticker.await.ok().flatten();
    bar.finish_and_clear();
    let client_cpu_cores = match cpu_start {
        Some((t, c)) if finished > t => {
            cpu_end.saturating_sub(c).as_secs_f64() / (finished - t).as_secs_f64()
        }
        _ => 0.0,
    };
    connect_errors += shared.connect_errors.load(Ordering::Relaxed);
    let ops = rec.count(OpKind::Read) + rec.count(OpKind::Write);
    let errors = rec.errors(OpKind::Read) + rec.errors(OpKind::Write);
    latency.insert("read".into(), rec.summary(OpKind::Read));
    latency.insert("write".into(), rec.summary(OpKind::Write));
    latency.insert("all".into(), rec.summary_all());
    Ok(Report {
        config,
        ops,
        ops_per_sec: ops as f64 / args.duration.as_secs_f64(),
        errors,
        connect_errors,
        first_error: first_error.or(rec.first_error),
        latency,
        client_cpu_cores,
        preload_s,
        started_unix_s,
    })
}

/// `hakv bench`: runs the benchmark on its own runtime, prints the result
/// (and writes `--json`); returns the process exit code.
pub fn run(args: BenchArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let report = match rt.block_on(run_bench(&args)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    print!("{}", report.text());
    if let Some(path) = &args.json {
        let json = match serde_json::to_string_pretty(&report) {
            Ok(j) => j,
            Err(e) => {
                eprintln!("error: cannot encode the result: {e}");
                return 1;
            }
        };
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("resp://127.0.0.1:7001"),
            Ok(Target::Resp(vec!["127.0.0.1:7001".into()]))
        );
        assert_eq!(
            Target::parse("etcd://a:1, b:2/"),
            Ok(Target::Etcd(vec!["a:1".into(), "b:2".into()]))
        );
        assert!(Target::parse("127.0.0.1:7001").is_err());
        assert!(Target::parse("http://a:1").is_err());
        assert!(Target::parse("resp://nohost").is_err());
    }
}
