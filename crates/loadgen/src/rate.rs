//! When each operation is meant to start.
//!
//! Closed loop (no `--rate`): a slot sends its next request as soon as its
//! previous one is answered, and latency is measured from the actual send.
//!
//! Open loop (`--rate R`): operation number `i` of the run is *intended* to
//! start at `start + i / R`, whatever happens to earlier ones. Workers take the
//! next ticket from a shared counter when they have a free slot, wait until its
//! intended time if it is still ahead, and measure latency from the intended
//! time, not from when the request finally went out. When the server stalls,
//! the requests that should have been sent meanwhile are charged the time they
//! spent waiting for a slot — the correction for *coordinated omission* (Gil
//! Tene; as in wrk2): a closed-loop generator would simply not have sent them,
//! and its percentiles would hide the stall.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The open-loop schedule: ticket `i` is intended at `start + i / rate`.
#[derive(Debug, Clone, Copy)]
pub struct RateSchedule {
    start: Instant,
    nanos_per_op: f64,
}

impl RateSchedule {
    /// A schedule of `rate` operations per second from `start`.
    pub fn new(start: Instant, rate: f64) -> RateSchedule {
        assert!(rate > 0.0 && rate.is_finite(), "rate must be positive");
        RateSchedule {
            start,
            nanos_per_op: 1e9 / rate,
        }
    }

    /// When ticket `i` is meant to be sent.
    pub fn intended(&self, ticket: u64) -> Instant {
        self.start + Duration::from_nanos((ticket as f64 * self.nanos_per_op) as u64)
    }
}

/// Hands out intended start times to every worker of a run until `end`.
#[derive(Debug)]
pub struct Pacer {
    schedule: Option<RateSchedule>,
    tickets: AtomicU64,
    end: Instant,
}

impl Pacer {
    /// Closed loop until `end`.
    pub fn closed(end: Instant) -> Pacer {
        Pacer {
            schedule: None,
            tickets: AtomicU64::new(0),
            end,
        }
    }

    /// Open loop at `rate` operations per second from `start` until `end`.
    pub fn open(start: Instant, rate: f64, end: Instant) -> Pacer {
        Pacer {
            schedule: Some(RateSchedule::new(start, rate)),
            tickets: AtomicU64::new(0),
            end,
        }
    }

    /// The intended start of the next operation, or `None` once the run is
    /// over. Closed loop: `now`. Open loop: the next ticket's time, which may
    /// be ahead of `now` (wait for it) or behind (the slot was busy: send at
    /// once, the delay counts in the latency).
    pub fn next(&self, now: Instant) -> Option<Instant> {
        let t = match &self.schedule {
            None => now,
            Some(s) => s.intended(self.tickets.fetch_add(1, Ordering::Relaxed)),
        };
        (t < self.end).then_some(t)
    }

    /// The end of the run.
    pub fn end(&self) -> Instant {
        self.end
    }

    /// True in open-loop mode.
    pub fn is_open_loop(&self) -> bool {
        self.schedule.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn tickets_are_evenly_spaced() {
        let t0 = Instant::now();
        let s = RateSchedule::new(t0, 1000.0);
        assert_eq!(s.intended(0), t0);
        assert_eq!(s.intended(1) - t0, Duration::from_millis(1));
        assert_eq!(s.intended(2500) - t0, Duration::from_millis(2500));
        let s = RateSchedule::new(t0, 3.0);
        assert_eq!(s.intended(3) - t0, Duration::from_secs(1));
    }

    #[test]
    fn open_loop_hands_out_every_slot_once_then_stops() {
        let t0 = Instant::now();
        let p = Pacer::open(t0, 100.0, t0 + Duration::from_secs(1));
        // Asked late, tickets still come in schedule order (the delay is the
        // caller's to measure), and exactly rate × duration are handed out.
        let late = t0 + Duration::from_secs(5);
        let times: Vec<Instant> = std::iter::from_fn(|| p.next(late)).collect();
        assert_eq!(times.len(), 100);
        for (i, t) in times.iter().enumerate() {
            assert_eq!(*t - t0, Duration::from_millis(10 * i as u64));
        }
        assert!(p.next(late).is_none());
    }

    #[test]
    fn concurrent_workers_never_share_a_ticket() {
        let t0 = Instant::now();
        let p = Arc::new(Pacer::open(t0, 1e6, t0 + Duration::from_millis(100)));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut v = Vec::new();
                    while let Some(t) = p.next(t0) {
                        v.push(t - t0);
                    }
                    v
                })
            })
            .collect();
        let mut all: Vec<Duration> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        let len = all.len();
        all.dedup();
        assert_eq!(all.len(), len);
        assert_eq!(len, 100_000);
    }

    #[test]
    fn closed_loop_starts_now_until_the_end() {
        let t0 = Instant::now();
        let p = Pacer::closed(t0 + Duration::from_secs(1));
        assert!(!p.is_open_loop());
        let now = t0 + Duration::from_millis(300);
        assert_eq!(p.next(now), Some(now));
        assert_eq!(p.next(t0 + Duration::from_secs(1)), None);
    }
}
