//! The φ-accrual failure detector (Hayashibara, Défago, Yared, Katayama, SRDS 2004) for
//! one monitored peer.
//!
//! A timeout answers "is it dead?" with a yes or no fixed in advance. An accrual
//! detector instead answers "how sure are we?": from the recent inter-arrival times of
//! heartbeats it estimates how likely it is that the next one is merely late, and
//! reports
//!
//! ```text
//!     φ(now) = −log10 P(next heartbeat arrives later than now − last)
//! ```
//!
//! so φ = 1 means a 10 % chance the silence is normal, φ = 8 one in 10⁸. Because the
//! distribution is learned per peer, a peer behind a lossy link (whose intervals are
//! longer and more variable) is judged against its own history, not a global constant.
//!
//! The model is a normal distribution of intervals, with two guards (both in the
//! Akka/Cassandra tradition of the paper, with our own reasons):
//!
//! * **minimum standard deviation** — on a quiet LAN the intervals are almost constant,
//!   the fitted σ is a few milliseconds, and φ would shoot to infinity a few σ after the
//!   mean: one delayed packet would look impossible. σ is floored at
//!   `min_std_dev_ms`;
//! * **acceptable pause** — a single lost heartbeat makes an interval of twice the
//!   period, which the fitted normal (mean ≈ period) calls a many-σ event. The pause is
//!   added to the mean, so up to `acceptable_pause_ms` of silence beyond the usual
//!   interval is never suspicious (lost packets, GC pauses, a busy event loop).
//!
//! The normal tail uses Abramowitz & Stegun 7.1.26 for erfc, evaluated in log space so
//! φ stays finite and monotone for any silence (no underflow to P = 0). Its error is
//! below 0.15 in φ where φ matters (0–40), checked against tabulated values in the
//! tests.

use std::collections::VecDeque;

/// Intervals are clamped to this (one hour) so the sums below stay exact and bounded.
const INTERVAL_MAX_MS: u64 = 3_600_000;

/// How φ is computed; shared by every monitored peer of one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiParams {
    /// How many recent inter-arrival times are kept (the oldest is dropped).
    pub window: usize,
    /// Floor on the standard deviation, in milliseconds (at least 1).
    pub min_std_dev_ms: u64,
    /// Silence beyond the mean interval that is never suspicious, in milliseconds.
    pub acceptable_pause_ms: u64,
}

/// Heartbeat history of one peer and the φ it implies.
///
/// Invariant: the window holds between 1 and `window` samples, and `sum_ms`/`sum_sq`
/// are exactly the sums of the samples (integers, so no floating-point drift).
#[derive(Clone, Debug)]
pub struct PhiAccrual {
    intervals_ms: VecDeque<u64>,
    sum_ms: u128,
    sum_sq: u128,
    capacity: usize,
    last_ms: u64,
    /// The next heartbeat does not produce a sample: `last_ms` was set by indirect
    /// evidence of life ([`PhiAccrual::touch`]), not by a heartbeat.
    skip_next: bool,
}

impl PhiAccrual {
    /// A history that starts at `now_ms` (as if a heartbeat had just arrived) with a
    /// prior of two samples around `expected_interval_ms` (mean = expected, σ = a
    /// quarter of it), so φ is meaningful before any real heartbeat and a peer that
    /// never answers at all is still detected. Real samples push the prior out.
    pub fn new(now_ms: u64, expected_interval_ms: u64, window: usize) -> Self {
        let mut d = PhiAccrual {
            intervals_ms: VecDeque::with_capacity(window.min(1024)),
            sum_ms: 0,
            sum_sq: 0,
            capacity: window.max(2),
            last_ms: now_ms,
            skip_next: false,
        };
        let e = expected_interval_ms.max(1);
        d.push(e - e / 4);
        d.push(e + e / 4);
        d
    }

    /// A heartbeat arrived at `now_ms`: the interval since the previous one becomes a
    /// sample (unless the previous mark was indirect evidence), and the clock restarts.
    pub fn heartbeat(&mut self, now_ms: u64) {
        let now_ms = now_ms.max(self.last_ms);
        if self.skip_next {
            self.skip_next = false;
        } else {
            self.push(now_ms - self.last_ms);
        }
        self.last_ms = now_ms;
    }

    /// The peer is known to have been alive at `now_ms` without a heartbeat of ours
    /// arriving (an indirect probe reached it). Restarts the clock but records no
    /// sample: the gap was not an inter-arrival time and would distort the model.
    pub fn touch(&mut self, now_ms: u64) {
        self.last_ms = now_ms.max(self.last_ms);
        self.skip_next = true;
    }

    /// When the last heartbeat (or touch) happened.
    pub fn last_ms(&self) -> u64 {
        self.last_ms
    }

    /// Mean of the sampled intervals, in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        self.sum_ms as f64 / self.intervals_ms.len() as f64
    }

    /// Population standard deviation of the sampled intervals, in milliseconds.
    pub fn std_dev_ms(&self) -> f64 {
        let n = self.intervals_ms.len() as u128;
        // n·Σx² − (Σx)² is exact in integers and never negative.
        let num = n * self.sum_sq - self.sum_ms * self.sum_ms;
        (num as f64).sqrt() / n as f64
    }

    /// φ at `now_ms` (0 or more; grows without bound as the silence lengthens).
    pub fn phi(&self, now_ms: u64, p: &PhiParams) -> f64 {
        phi_of_z(self.z(now_ms.saturating_sub(self.last_ms), p))
    }

    /// The first time at which φ reaches the level whose z-score is `z_threshold`
    /// (see [`z_for_phi`]); never before `last_ms + 1`. Computing the crossing once per
    /// heartbeat lets the state machine tell its caller exactly when to wake it.
    pub fn crossing_ms(&self, z_threshold: f64, p: &PhiParams) -> u64 {
        let elapsed = self.mean_ms() + p.acceptable_pause_ms as f64 + z_threshold * self.sigma(p);
        let elapsed = elapsed.ceil().clamp(1.0, INTERVAL_MAX_MS as f64 * 4.0) as u64;
        self.last_ms.saturating_add(elapsed)
    }

    fn sigma(&self, p: &PhiParams) -> f64 {
        self.std_dev_ms().max(p.min_std_dev_ms.max(1) as f64)
    }

    fn z(&self, elapsed_ms: u64, p: &PhiParams) -> f64 {
        (elapsed_ms as f64 - self.mean_ms() - p.acceptable_pause_ms as f64) / self.sigma(p)
    }

    fn push(&mut self, interval_ms: u64) {
        let x = interval_ms.min(INTERVAL_MAX_MS) as u128;
        if self.intervals_ms.len() == self.capacity {
            if let Some(old) = self.intervals_ms.pop_front() {
                self.sum_ms -= old as u128;
                self.sum_sq -= old as u128 * old as u128;
            }
        }
        self.intervals_ms.push_back(x as u64);
        self.sum_ms += x;
        self.sum_sq += x * x;
    }
}

/// φ for a standard-normal z-score: −log10 P(Z > z). Monotone increasing, 0.301 at
/// z = 0, about 8 at z = 5.6, finite for every finite z.
pub fn phi_of_z(z: f64) -> f64 {
    -log10_normal_tail(z)
}

/// The z-score at which φ reaches `phi` (bisection on the monotone [`phi_of_z`]).
pub fn z_for_phi(phi: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0_f64, 200.0_f64);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if phi_of_z(mid) < phi {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// log10 P(Z > z) for a standard normal Z.
fn log10_normal_tail(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    // Abramowitz & Stegun 7.1.26: erfc(x) ≈ t·(a1 + t·(a2 + t·(a3 + t·(a4 + t·a5))))·e^(−x²)
    // for x ≥ 0, with t = 1 / (1 + p·x). Kept as a logarithm: ln erfc = ln(t·poly) − x².
    const P: f64 = 0.327_591_1;
    const A: [f64; 5] = [
        0.254_829_592,
        -0.284_496_736,
        1.421_413_741,
        -1.453_152_027,
        1.061_405_429,
    ];
    let t = 1.0 / (1.0 + P * x);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let ln_upper = poly.ln() - x * x - std::f64::consts::LN_2; // ln P(Z > |z|)
    let ln_tail = if z >= 0.0 {
        ln_upper
    } else {
        // P(Z > z) = 1 − P(Z > |z|), which lies in [0.5, 1].
        (-ln_upper.exp()).ln_1p()
    };
    ln_tail / std::f64::consts::LN_10
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: PhiParams = PhiParams {
        window: 100,
        min_std_dev_ms: 100,
        acceptable_pause_ms: 1000,
    };

    #[test]
    fn phi_matches_the_normal_tail_table() {
        // P(Z > z) from standard tables: (z, -log10 P).
        let table = [
            (-2.0, -(0.977_25_f64).log10()),
            (0.0, -(0.5_f64).log10()),
            (1.0, -(0.158_655_f64).log10()),
            (3.0, -(1.349_9e-3_f64).log10()),
            (5.0, -(2.866_5e-7_f64).log10()),
            (6.0, -(9.865_9e-10_f64).log10()),
            (8.0, -(6.220_96e-16_f64).log10()),
        ];
        for (z, want) in table {
            let got = phi_of_z(z);
            assert!((got - want).abs() < 0.15, "z={z}: φ {got} vs {want}");
        }
    }

    #[test]
    fn phi_is_monotone_and_finite_for_any_silence() {
        let mut prev = -1.0;
        let mut z = -30.0;
        while z < 1e6 {
            let p = phi_of_z(z);
            assert!(p.is_finite() && p >= prev, "z={z}");
            prev = p;
            z = if z < 50.0 { z + 0.01 } else { z * 1.5 };
        }
    }

    #[test]
    fn z_for_phi_inverts_phi_of_z() {
        for phi in [0.5, 1.0, 3.0, 8.0, 12.0, 30.0] {
            let z = z_for_phi(phi);
            assert!((phi_of_z(z) - phi).abs() < 1e-9);
        }
        // The default threshold: one chance in 10^8 that the silence is normal.
        assert!((z_for_phi(8.0) - 5.6).abs() < 0.1);
    }

    #[test]
    fn a_new_history_assumes_the_expected_interval() {
        let d = PhiAccrual::new(1_000, 500, 100);
        assert_eq!(d.mean_ms(), 500.0);
        assert_eq!(d.std_dev_ms(), 125.0);
        assert_eq!(d.last_ms(), 1_000);
    }

    #[test]
    fn regular_heartbeats_keep_phi_low_and_silence_raises_it() {
        let mut d = PhiAccrual::new(0, 500, 100);
        for i in 1..=200 {
            d.heartbeat(i * 500);
        }
        let last = 200 * 500;
        assert_eq!(d.mean_ms(), 500.0);
        assert_eq!(
            d.std_dev_ms(),
            0.0,
            "the prior has been pushed out of the window"
        );
        // One period of silence (the next heartbeat due now) is nothing.
        assert!(d.phi(last + 500, &P) < 0.1);
        // A lost heartbeat (1 s of silence) is still within the acceptable pause.
        assert!(d.phi(last + 1_000, &P) < 0.5);
        // mean + pause + 5.6·σ_min ≈ 2.06 s: φ reaches 8.
        let z8 = z_for_phi(8.0);
        let at = d.crossing_ms(z8, &P);
        assert_eq!(at - last, (500.0_f64 + 1000.0 + z8 * 100.0).ceil() as u64);
        assert!(d.phi(at - 1, &P) < 8.0 && d.phi(at, &P) >= 8.0);
    }

    #[test]
    fn a_lossy_peer_is_judged_against_its_own_history() {
        // Every third heartbeat lost: intervals 500, 500, 1000, ...
        let (mut steady, mut lossy) = (PhiAccrual::new(0, 500, 100), PhiAccrual::new(0, 500, 100));
        let (mut t1, mut t2) = (0, 0);
        for i in 0..150 {
            t1 += 500;
            steady.heartbeat(t1);
            t2 += if i % 3 == 2 { 1000 } else { 500 };
            lossy.heartbeat(t2);
        }
        let z8 = z_for_phi(8.0);
        let wait_steady = steady.crossing_ms(z8, &P) - t1;
        let wait_lossy = lossy.crossing_ms(z8, &P) - t2;
        assert!(
            wait_lossy > wait_steady + 500,
            "{wait_lossy} vs {wait_steady}"
        );
    }

    #[test]
    fn touch_restarts_the_clock_without_a_sample() {
        let mut d = PhiAccrual::new(0, 500, 100);
        d.heartbeat(500);
        let (mean, sd) = (d.mean_ms(), d.std_dev_ms());
        d.touch(5_000);
        assert_eq!(d.last_ms(), 5_000);
        d.heartbeat(5_400); // not a 4.9 s interval
        assert_eq!((d.mean_ms(), d.std_dev_ms()), (mean, sd));
        d.heartbeat(6_100);
        assert_ne!(d.mean_ms(), mean, "later heartbeats sample again (700 ms)");
    }

    #[test]
    fn the_window_forgets_old_intervals() {
        let mut d = PhiAccrual::new(0, 500, 4);
        let mut t = 0;
        for _ in 0..4 {
            t += 2_000;
            d.heartbeat(t);
        }
        assert_eq!(d.mean_ms(), 2_000.0);
        for _ in 0..4 {
            t += 100;
            d.heartbeat(t);
        }
        assert_eq!(d.mean_ms(), 100.0);
    }

    #[test]
    fn time_going_backwards_is_treated_as_no_time() {
        let mut d = PhiAccrual::new(10_000, 500, 10);
        d.heartbeat(9_000);
        assert_eq!(d.last_ms(), 10_000);
        assert_eq!(d.phi(0, &P), phi_of_z(d.z(0, &P)));
    }
}
