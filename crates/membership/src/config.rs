//! Tuning of one detector, its defaults with their reasons, and test-only fault knobs.

use consensus::NodeId;

use crate::member::{Incarnation, INCARNATION_MAX};
use crate::message::{SYNC_MEMBERS_MAX, UPDATES_MAX};
use crate::phi::{z_for_phi, PhiParams};
use crate::suspicion::timeout_bounds_ms;

/// Protocol deviations for proving that the tests' checks catch real bugs.
/// **Never enable outside tests**: each one makes healthy nodes look dead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultKnobs {
    /// Treat φ crossing the threshold as a failed probe round, without asking other
    /// members to reach the peer (SWIM without ping-req): one broken link is enough to
    /// accuse.
    pub skip_indirect_probes: bool,
    /// Declare a member dead at once when its probe round fails, without a suspicion
    /// period in which it could refute (SWIM without the suspicion mechanism).
    pub skip_suspicion: bool,
}

/// Configuration of one node's detector. [`Config::new`] gives the defaults.
///
/// Times are milliseconds of the caller's monotonic clock.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id (non-zero).
    pub id: NodeId,
    /// The incarnation this node starts at. A restarted node should start above any
    /// incarnation it used before if it remembers it ([`crate::Detector::incarnation`]);
    /// if it does not, 0 is fine: it learns its old tombstone from the first sync and
    /// refutes above it.
    pub incarnation: Incarnation,
    /// Seed of the detector's private RNG (probe phase, helper, gossip and sync targets).
    pub seed: u64,
    /// How often each monitored successor is pinged; the expected heartbeat interval.
    /// Default 500 ms: half of memberlist's LAN period, since hakv wants a crash noticed
    /// in seconds, and with `k` = 3 monitors the load is still only 6 small messages per
    /// node per period.
    pub probe_interval_ms: u64,
    /// How many ring successors each node monitors directly (k). Default 3: a member
    /// is watched by three nodes, so one monitor's bad link or death never blinds the
    /// cluster, and a crash gets two confirmations for the short suspicion timeout.
    pub monitored_successors: usize,
    /// How many members are asked to ping a peer whose φ crossed the threshold (m).
    /// Default 3 (SWIM's and memberlist's k): at 20 % loss a four-hop indirect path
    /// succeeds 41 % of the time, so three independent paths fail together only 20 % of
    /// the time, and the direct ping sent alongside covers most of the rest.
    pub indirect_probes: usize,
    /// How long one attempt of a probe round waits for an ack, direct or relayed.
    /// Default 500 ms: four one-way hops with generous queueing on a LAN.
    pub indirect_timeout_ms: u64,
    /// Attempts per probe round, each a direct ping plus `indirect_probes` fresh random
    /// helpers; the peer is suspected only when all of them time out. Default 2: on a
    /// permanently broken link the prober runs a round every few seconds, and with one
    /// attempt at 5 % loss 0.7 % of rounds fail (three four-hop paths all losing a
    /// message), accusing the healthy peer every few minutes; a second attempt squares
    /// that probability for 500 ms more detection time.
    pub indirect_attempts: u32,
    /// φ at which a probe round starts (not a suspicion: that needs the round to
    /// fail). Default 8: under the peer's own heartbeat model the silence has one
    /// chance in 10⁸ of being normal. With the defaults below, a peer answering every
    /// 500 ms reaches φ = 8 after 2.06 s of silence (500 + 1000 + 5.61 × 100 ms: about
    /// three missed acks); one behind 20 % loss (36 % of round trips lost), whose
    /// intervals vary far more, after about 3–4 s.
    pub phi_suspect: f64,
    /// Inter-arrival samples kept per peer. Default 100 (50 s at the default period):
    /// long enough for a stable estimate, short enough to follow a link's changing
    /// quality within a minute.
    pub phi_window: usize,
    /// Floor on the modelled standard deviation. Default 100 ms (see [`crate::phi`]).
    pub phi_min_std_dev_ms: u64,
    /// Silence beyond the mean interval that is never suspicious. Default 1000 ms: two
    /// lost acks in a row, or a second-long pause (GC, a busy event loop), never starts
    /// a probe round on its own.
    pub phi_acceptable_pause_ms: u64,
    /// α in the minimum suspicion timeout `α · max(1, log10 N) · probe_interval`.
    /// Default 4 (memberlist's): 2 s up to 10 members, 2.6 s at 20, 4 s at 100.
    pub suspicion_mult: u32,
    /// β: the unconfirmed suspicion timeout is β times the minimum. Default 6
    /// (memberlist's): a lone accuser waits 12–16 s, a confirmed crash about 2–3 s.
    pub suspicion_max_mult: u32,
    /// How often pending news is gossiped to random members. Default 200 ms.
    pub gossip_interval_ms: u64,
    /// How many random live members receive each gossip round. Default 3.
    pub gossip_fanout: usize,
    /// λ: each claim is gossiped to `λ · ⌈log10(N + 1)⌉` random members by every node
    /// that adopts it (probe traffic carries it for free meanwhile). Default 6, above
    /// memberlist's 4: with 4, a 5-node cluster at 20 % loss sends each claim only 4
    /// times per node, and in the simulator about one rejoin in twenty reached its last
    /// node only through the 10 s anti-entropy sync; with 6 the slowest took 1.4 s,
    /// for 1 % more messages.
    pub retransmit_mult: u32,
    /// Most claims piggybacked on one message. Default 16 (400 bytes).
    pub updates_per_message_max: usize,
    /// How often the whole member list is exchanged with one random member, live or
    /// dead (not left). Default 10 s. It repairs what gossip missed, and it is how two
    /// sides of a healed partition — each believing the other dead, so neither probing
    /// nor gossiping to it — find each other again.
    pub sync_interval_ms: u64,
    /// How often a joining node resends its sync to the seeds until one answers.
    /// Default 1 s.
    pub join_retry_ms: u64,
    /// Most members remembered, this node and tombstones included. When full, the
    /// oldest tombstone is forgotten to admit a new member; with no tombstone to
    /// forget, claims about new members are ignored. Default 4096.
    pub members_max: usize,
    /// Test-only protocol breakage.
    pub knobs: FaultKnobs,
}

impl Config {
    /// The defaults documented on each field, for node `id` (seeded by its id).
    pub fn new(id: NodeId) -> Config {
        Config {
            id,
            incarnation: Incarnation(0),
            seed: id,
            probe_interval_ms: 500,
            monitored_successors: 3,
            indirect_probes: 3,
            indirect_timeout_ms: 500,
            indirect_attempts: 2,
            phi_suspect: 8.0,
            phi_window: 100,
            phi_min_std_dev_ms: 100,
            phi_acceptable_pause_ms: 1000,
            suspicion_mult: 4,
            suspicion_max_mult: 6,
            gossip_interval_ms: 200,
            gossip_fanout: 3,
            retransmit_mult: 6,
            updates_per_message_max: 16,
            sync_interval_ms: 10_000,
            join_retry_ms: 1_000,
            members_max: 4096,
            knobs: FaultKnobs::default(),
        }
    }

    /// Checks the configuration; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.id == 0 {
            return Err("node id 0 is reserved".into());
        }
        if self.incarnation.0 > INCARNATION_MAX {
            return Err(format!("incarnation above {INCARNATION_MAX}"));
        }
        for (name, v) in [
            ("probe_interval_ms", self.probe_interval_ms),
            ("indirect_timeout_ms", self.indirect_timeout_ms),
            ("phi_min_std_dev_ms", self.phi_min_std_dev_ms),
            ("gossip_interval_ms", self.gossip_interval_ms),
            ("sync_interval_ms", self.sync_interval_ms),
            ("join_retry_ms", self.join_retry_ms),
            ("suspicion_mult", self.suspicion_mult as u64),
            ("suspicion_max_mult", self.suspicion_max_mult as u64),
            ("retransmit_mult", self.retransmit_mult as u64),
            ("monitored_successors", self.monitored_successors as u64),
            ("indirect_attempts", self.indirect_attempts as u64),
        ] {
            if v == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if !(self.phi_suspect.is_finite() && self.phi_suspect > 0.0) {
            return Err(format!(
                "phi_suspect ({}) must be positive",
                self.phi_suspect
            ));
        }
        if self.phi_window < 2 {
            return Err("phi_window must be at least 2".into());
        }
        if !(1..=UPDATES_MAX).contains(&self.updates_per_message_max) {
            return Err(format!(
                "updates_per_message_max must be in 1..={UPDATES_MAX}"
            ));
        }
        if !(2..=SYNC_MEMBERS_MAX).contains(&self.members_max) {
            return Err(format!("members_max must be in 2..={SYNC_MEMBERS_MAX}"));
        }
        Ok(())
    }

    /// The φ model's parameters.
    pub fn phi_params(&self) -> PhiParams {
        PhiParams {
            window: self.phi_window,
            min_std_dev_ms: self.phi_min_std_dev_ms,
            acceptable_pause_ms: self.phi_acceptable_pause_ms,
        }
    }

    /// `(min, max)` suspicion timeouts for a cluster of `live` members.
    pub fn suspicion_bounds_ms(&self, live: usize) -> (u64, u64) {
        timeout_bounds_ms(
            self.suspicion_mult,
            self.suspicion_max_mult,
            self.probe_interval_ms,
            live,
        )
    }

    /// An upper bound on the time from a member's crash until every live member of an
    /// `n`-member cluster has declared it dead, on a network that loses nothing and
    /// delivers within `delay_ms_max`, all views agreeing. Each term is one step:
    ///
    /// 1. **φ crosses the threshold**: at most `mean + pause + z·σ` after the last ack,
    ///    which came at or before the crash; the mean is at most the probe interval plus
    ///    a round trip, and σ at most the larger of the floor, the prior's
    ///    (interval / 4) and the round-trip jitter;
    /// 2. **the probe round times out**: `indirect_attempts × indirect_timeout`;
    /// 3. **the suspicion times out**: at most `max` (no confirmation assumed) after the
    ///    accuser's own accusation;
    /// 4. **the death reaches everyone**: `2·⌈log2 n⌉ + 2` gossip rounds, each a gossip
    ///    interval plus a delivery — epidemic fan-out `gossip_fanout ≥ 1` more than
    ///    doubles the informed set per round in expectation, and every member that
    ///    heard the suspicion also times it out by itself at most `max` after hearing.
    ///
    /// hakv's `down-after` (30 s by default) should exceed this.
    pub fn crash_detection_bound_ms(&self, n: usize, delay_ms_max: u64) -> u64 {
        let rtt = 2 * delay_ms_max;
        let mean = self.probe_interval_ms + rtt;
        let sigma = self
            .phi_min_std_dev_ms
            .max(self.probe_interval_ms / 4)
            .max(rtt);
        let crossing = mean as f64
            + self.phi_acceptable_pause_ms as f64
            + z_for_phi(self.phi_suspect) * sigma as f64;
        let (_, max) = self.suspicion_bounds_ms(n);
        let rounds = 2 * (n.max(2) as f64).log2().ceil() as u64 + 2;
        crossing.ceil() as u64
            + self.indirect_attempts as u64 * self.indirect_timeout_ms
            + max
            + rounds * (self.gossip_interval_ms + delay_ms_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_values_are_named() {
        Config::new(1).validate().unwrap();
        assert!(Config::new(0).validate().unwrap_err().contains("id 0"));
        let bad = Config {
            probe_interval_ms: 0,
            ..Config::new(1)
        };
        assert!(bad.validate().unwrap_err().contains("probe_interval_ms"));
        let bad = Config {
            phi_suspect: f64::NAN,
            ..Config::new(1)
        };
        assert!(bad.validate().is_err());
        let bad = Config {
            members_max: 1,
            ..Config::new(1)
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn the_crash_bound_is_well_under_down_after() {
        let c = Config::new(1);
        for n in [3, 5, 20, 50] {
            let b = c.crash_detection_bound_ms(n, 20);
            assert!(b > 10_000 && b < 30_000, "n={n}: {b} ms");
        }
    }
}
