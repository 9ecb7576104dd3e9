//! Latency recording (HDR histograms) and the run's result.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The two operations of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// RESP `GET key`; etcd linearizable `Range key`.
    Read,
    /// RESP `SET key value`; etcd `Put key value`.
    Write,
}

impl OpKind {
    fn index(self) -> usize {
        match self {
            OpKind::Read => 0,
            OpKind::Write => 1,
        }
    }

    /// `read` or `write`.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write => "write",
        }
    }
}

/// Largest latency recorded exactly (µs); anything slower is recorded as this.
const MAX_US: u64 = 3_600_000_000;

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 1 h at 3 significant digits; grows its buckets as needed.
    let mut h = Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds");
    h.auto(false);
    h
}

/// One worker's measurements: a latency histogram (µs) and an error count per
/// operation kind, plus the first error seen (for the report).
#[derive(Debug, Clone)]
pub struct Recorder {
    hist: [Histogram<u64>; 2],
    errors: [u64; 2],
    /// The first error message seen, to tell the user what went wrong.
    pub first_error: Option<String>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// Empty.
    pub fn new() -> Recorder {
        Recorder {
            hist: [new_histogram(), new_histogram()],
            errors: [0; 2],
            first_error: None,
        }
    }

    /// A successful operation and its latency.
    pub fn ok(&mut self, kind: OpKind, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_US);
        // Cannot fail: the value is clamped into the histogram's range.
        let _ = self.hist[kind.index()].record(us);
    }

    /// A failed operation.
    pub fn error(&mut self, kind: OpKind, message: impl FnOnce() -> String) {
        self.errors[kind.index()] += 1;
        if self.first_error.is_none() {
            self.first_error = Some(message());
        }
    }

    /// Adds another recorder's measurements to this one.
    pub fn merge(&mut self, other: &Recorder) {
        for i in 0..2 {
            // Same bounds on both sides: cannot fail.
            let _ = self.hist[i].add(&other.hist[i]);
            self.errors[i] += other.errors[i];
        }
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }

    /// Successful operations of `kind`.
    pub fn count(&self, kind: OpKind) -> u64 {
        self.hist[kind.index()].len()
    }

    /// Failed operations of `kind`.
    pub fn errors(&self, kind: OpKind) -> u64 {
        self.errors[kind.index()]
    }

    /// Latency summary of one kind.
    pub fn summary(&self, kind: OpKind) -> LatencySummary {
        LatencySummary::of(&self.hist[kind.index()])
    }

    /// Latency summary of both kinds together.
    pub fn summary_all(&self) -> LatencySummary {
        let mut all = self.hist[0].clone();
        let _ = all.add(&self.hist[1]);
        LatencySummary::of(&all)
    }
}

/// Latency percentiles of one kind of operation, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Successful operations measured.
    pub count: u64,
    /// Mean latency (ms).
    pub mean_ms: f64,
    /// Median (ms).
    pub p50_ms: f64,
    /// 90th percentile (ms).
    pub p90_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// 99.9th percentile (ms).
    pub p999_ms: f64,
    /// Slowest (ms).
    pub max_ms: f64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> LatencySummary {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return LatencySummary {
                count: 0,
                mean_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
            };
        }
        LatencySummary {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// What was run (echoed in the JSON result).
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// The target as given.
    pub target: String,
    /// `resp` or `etcd`.
    pub protocol: String,
    /// Connections (etcd: gRPC channels, each its own HTTP/2 connection).
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// connections × pipeline.
    pub in_flight: usize,
    /// Bytes per written value.
    pub value_size: usize,
    /// Size of the key space.
    pub keys: u64,
    /// Key distribution.
    pub distribution: crate::keys::Distribution,
    /// Zipfian exponent (used only by the zipfian distribution).
    pub theta: f64,
    /// Fraction of operations that are reads.
    pub read_ratio: f64,
    /// Measured seconds.
    pub duration_s: f64,
    /// Warm-up seconds (not measured).
    pub warmup_s: f64,
    /// Open-loop target rate (operations/s); `None` for closed loop.
    pub rate: Option<f64>,
    /// Whether every key was written once before the run.
    pub preload: bool,
    /// The seed of every worker's random stream.
    pub seed: u64,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was run.
    pub config: RunConfig,
    /// Successful operations in the measured window.
    pub ops: u64,
    /// Successful operations per second in the measured window.
    pub ops_per_sec: f64,
    /// Failed operations in the measured window (error replies, timeouts,
    /// requests lost with their connection).
    pub errors: u64,
    /// Failed connection attempts (during the whole run).
    pub connect_errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// Latencies of `read`, `write` and `all`.
    pub latency: BTreeMap<String, LatencySummary>,
    /// CPU time (user + system) the generator itself used per second of the
    /// measured window, in cores.
    pub client_cpu_cores: f64,
    /// Seconds spent preloading the key space (0 without `--preload`).
    pub preload_s: f64,
    /// Unix time (s) at which the measured window began.
    pub started_unix_s: f64,
}

impl Report {
    /// The human-readable summary printed after a run.
    pub fn text(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let mode = match c.rate {
            None => "closed loop".to_string(),
            Some(r) => format!("open loop at {r} ops/s"),
        };
        s.push_str(&format!(
            "{} ({}): {} connections x {} pipeline = {} in flight, {}, {}-byte values, {} keys {:?}, {:.0}% reads, {} s measured after {} s warm-up\n",
            c.target, c.protocol, c.connections, c.pipeline, c.in_flight, mode, c.value_size,
            c.keys, format!("{:?}", c.distribution).to_lowercase(), c.read_ratio * 100.0, c.duration_s, c.warmup_s
        ));
        s.push_str(&format!(
            "throughput {:.0} ops/s   ops {}   errors {}   connect errors {}   client CPU {:.2} cores\n",
            self.ops_per_sec, self.ops, self.errors, self.connect_errors, self.client_cpu_cores
        ));
        if let Some(e) = &self.first_error {
            s.push_str(&format!("first error: {e}\n"));
        }
        s.push_str(&format!(
            "{:<6} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}   (latency, ms)\n",
            "op", "count", "mean", "p50", "p90", "p99", "p99.9", "max"
        ));
        for name in ["read", "write", "all"] {
            if let Some(l) = self.latency.get(name) {
                if l.count == 0 && name != "all" {
                    continue;
                }
                s.push_str(&format!(
                    "{:<6} {:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}\n",
                    name, l.count, l.mean_ms, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_percentiles_and_merge() {
        let mut a = Recorder::new();
        let mut b = Recorder::new();
        for i in 1..=1000u64 {
            a.ok(OpKind::Read, Duration::from_micros(i * 10));
        }
        b.ok(OpKind::Write, Duration::from_secs(2));
        b.error(OpKind::Write, || "boom".into());
        b.error(OpKind::Write, || "second".into());
        a.merge(&b);
        assert_eq!(a.count(OpKind::Read), 1000);
        assert_eq!(a.count(OpKind::Write), 1);
        assert_eq!(a.errors(OpKind::Write), 2);
        assert_eq!(a.first_error.as_deref(), Some("boom"));
        let r = a.summary(OpKind::Read);
        assert!((r.p50_ms - 5.0).abs() < 0.01, "{r:?}");
        assert!((r.p99_ms - 9.9).abs() < 0.01, "{r:?}");
        assert!((r.max_ms - 10.0).abs() < 0.01, "{r:?}");
        let all = a.summary_all();
        assert_eq!(all.count, 1001);
        assert!((all.max_ms - 2000.0).abs() < 2.0, "{all:?}");
        // Sub-microsecond and absurd latencies are clamped, not lost.
        a.ok(OpKind::Read, Duration::from_nanos(10));
        a.ok(OpKind::Read, Duration::from_secs(100_000));
        assert_eq!(a.count(OpKind::Read), 1002);
        assert_eq!(Recorder::new().summary_all().count, 0);
    }
}
