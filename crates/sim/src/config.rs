//! A simulated world's configuration, drawn entirely from its seed ("swarm testing":
//! each seed enables a different mix of faults at different intensities, so that rare
//! combinations are reached without hand-written scenarios).

use consensus::Rng;

use crate::harness::EngineParams;

/// Which faults a run injects and how hard.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultMix {
    /// Probability that a message is dropped.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message takes a long detour (reordering it).
    pub long_delay: f64,
    /// Partitions of every shape.
    pub partitions: bool,
    /// Crashes (losing unsynced writes) and restarts.
    pub crashes: bool,
    /// Membership changes mid-flight.
    pub membership: bool,
    /// Leadership transfers mid-flight.
    pub transfers: bool,
    /// Slow fsyncs now and then (the simulator's buggify).
    pub slow_disk: bool,
    /// Largest relative tick-rate difference from nominal, in thousandths.
    pub skew_permille: u32,
}

impl FaultMix {
    /// No faults at all.
    pub fn none() -> Self {
        FaultMix {
            loss: 0.0,
            duplicate: 0.0,
            long_delay: 0.0,
            partitions: false,
            crashes: false,
            membership: false,
            transfers: false,
            slow_disk: false,
            skew_permille: 0,
        }
    }
}

/// Everything that defines one simulated run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed everything else derives from.
    pub seed: u64,
    /// Founding voters.
    pub voters: usize,
    /// Extra nodes that start outside the group (joined by membership changes).
    pub spares: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys the clients share (few, so that histories conflict).
    pub keys: usize,
    /// Simulated duration of the fault phase, in microseconds.
    pub fault_phase_us: u64,
    /// After healing, a command must commit within this many election timeouts.
    pub liveness_timeouts: u64,
    /// Nominal tick length in microseconds.
    pub tick_us: u64,
    /// Take a snapshot every this many applied entries.
    pub compact_every: u64,
    /// Faults to inject.
    pub faults: FaultMix,
    /// Engine tuning.
    pub engine: EngineParams,
    /// Record a readable event trace.
    pub trace: bool,
}

impl SimConfig {
    /// A configuration drawn from `seed`: cluster size 3, 5 or 7, a random fault mix,
    /// random batching, window and snapshot sizes.
    pub fn from_seed(seed: u64) -> SimConfig {
        let mut r = Rng::new(seed ^ 0x5eed_cafe_f00d_d00d);
        let voters = *r.pick(&[3, 3, 5, 5, 7]).expect("non-empty");
        let spares = r.range(0, 3) as usize;
        let mut faults = FaultMix {
            loss: if r.chance(0.6) {
                r.range(1, 200) as f64 / 1000.0
            } else {
                0.0
            },
            duplicate: if r.chance(0.5) {
                r.range(1, 100) as f64 / 1000.0
            } else {
                0.0
            },
            long_delay: if r.chance(0.5) {
                r.range(1, 100) as f64 / 1000.0
            } else {
                0.0
            },
            partitions: r.chance(0.7),
            crashes: r.chance(0.7),
            membership: r.chance(0.5),
            transfers: r.chance(0.5),
            slow_disk: r.chance(0.3),
            skew_permille: if r.chance(0.5) {
                r.range(0, 100) as u32
            } else {
                0
            },
        };
        let check_quorum = r.chance(0.85);
        let engine = EngineParams {
            election_ticks: r.range(8, 16) as u32,
            heartbeat_ticks: r.range(1, 4) as u32,
            batch_entries_max: *r.pick(&[1, 4, 64, 1024]).expect("non-empty"),
            inflight_msgs_max: *r.pick(&[1, 2, 8, 64]).expect("non-empty"),
            snapshot_chunk_bytes: *r.pick(&[16, 256, 4096, 1 << 20]).expect("non-empty"),
            pre_vote: r.chance(0.85),
            check_quorum,
            lease_reads: check_quorum && r.chance(0.4),
            lease_drift_permille: 100,
            raft_knobs: Default::default(),
            paxos_knobs: Default::default(),
        };
        // The lease's documented assumption: tick rates drift by at most its bound.
        // Each node's skew is within ±skew of nominal, so pairwise drift stays within it
        // when skew ≤ bound / 2.
        if engine.lease_reads {
            faults.skew_permille = faults.skew_permille.min(engine.lease_drift_permille / 2);
        }
        SimConfig {
            seed,
            voters,
            spares,
            clients: r.range(2, 7) as usize,
            keys: r.range(1, 6) as usize,
            fault_phase_us: r.range(1_000_000, 4_000_000),
            liveness_timeouts: 40,
            tick_us: 10_000,
            compact_every: *r.pick(&[8, 32, 128, 100_000]).expect("non-empty"),
            faults,
            engine,
            trace: false,
        }
    }

    /// A calm configuration (no faults) for benchmarks and basic tests.
    pub fn calm(seed: u64, voters: usize) -> SimConfig {
        let mut c = SimConfig::from_seed(seed);
        c.voters = voters;
        c.spares = 0;
        c.faults = FaultMix::none();
        c.engine = EngineParams::default();
        c.compact_every = 1024;
        c
    }

    /// One line describing the run, printed with every failure.
    pub fn summary(&self) -> String {
        let f = &self.faults;
        let e = &self.engine;
        format!(
            "seed={} voters={} spares={} clients={} keys={} loss={:.3} dup={:.3} long_delay={:.3} \
             partitions={} crashes={} membership={} transfers={} slow_disk={} skew={}‰ \
             election={} heartbeat={} batch={} inflight={} chunk={} prevote={} checkquorum={} lease={} compact_every={}",
            self.seed, self.voters, self.spares, self.clients, self.keys, f.loss, f.duplicate,
            f.long_delay, f.partitions, f.crashes, f.membership, f.transfers, f.slow_disk,
            f.skew_permille, e.election_ticks, e.heartbeat_ticks, e.batch_entries_max,
            e.inflight_msgs_max, e.snapshot_chunk_bytes, e.pre_vote, e.check_quorum,
            e.lease_reads, self.compact_every
        )
    }
}
