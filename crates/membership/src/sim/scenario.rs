//! The measurement campaign: one seeded run of a cluster through a script of faults,
//! measuring how fast a crash is detected and how often healthy nodes are accused.
//!
//! ```text
//!  0 ─── steady ───▶ S ── one-way link a↛b ──▶ S+60s ─ 10s ─▶ crash c ── 60s ──▶ restart c
//!    (b = a's first monitored successor)                       │                 (join via
//!                                                              │                  3 seeds)
//!   ─ 30s ─▶ partition into two halves ── 40s ──▶ heal ── until every node sees every
//!            node alive (≤ 120s) ── 30s ──▶ end
//! ```
//!
//! **One bad link**: a↛b must not get a or b declared dead; accusations of them while
//! it lasts are reported apart from those caused by loss alone.
//!
//! **Detection**: from the crash to the first Suspect of `c` anywhere, and to the moment
//! the last running node marks `c` Dead. **False positives**: distinct (member,
//! incarnation) pairs accused (Suspect) or declared Dead while the member was running,
//! counted everywhere except from the partition to its reconvergence (where declaring
//! the unreachable side dead is the intended outcome), per node-hour of running time
//! in the counted windows. Accusations of `c`'s crashed incarnation after it restarted
//! are stale news about the old life, not false.

use std::collections::BTreeSet;

use consensus::{NodeId, Rng};

use crate::action::Event;
use crate::config::{Config, FaultKnobs};
use crate::member::Incarnation;
use crate::sim::{NetConfig, World};

/// One run's parameters.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Cluster size (ids 1..=nodes, at least 4).
    pub nodes: usize,
    /// Per-message loss probability.
    pub loss: f64,
    /// Seed of the network, the fault choices and every node's RNG.
    pub seed: u64,
    /// Length of the initial fault-free (apart from loss) phase.
    pub steady_ms: u64,
    /// Network delay range.
    pub net: NetConfig,
    /// Protocol breakage, for the checks-can-fail tests.
    pub knobs: FaultKnobs,
}

impl Scenario {
    /// `nodes` nodes at `loss` on a LAN, ten minutes of steady state.
    pub fn new(nodes: usize, loss: f64, seed: u64) -> Scenario {
        Scenario {
            nodes,
            loss,
            seed,
            steady_ms: 600_000,
            net: NetConfig::lan(loss),
            knobs: FaultKnobs::default(),
        }
    }

    /// The node configuration used for node `id`.
    pub fn config(&self, id: NodeId) -> Config {
        Config {
            seed: self.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            knobs: self.knobs,
            ..Config::new(id)
        }
    }
}

/// What one run measured. Times are milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The crashed node.
    pub crashed: NodeId,
    /// Crash → first Suspect (or Dead) of it anywhere; `None` if never.
    pub first_suspect_ms: Option<u64>,
    /// Crash → every running node holds it Dead; `None` if not within 60 s.
    pub all_dead_ms: Option<u64>,
    /// Restart → every running node holds it alive again; `None` if not within 30 s.
    pub rejoin_ms: Option<u64>,
    /// Partition healed → every node sees every node Alive; `None` if not within 120 s.
    pub heal_ms: Option<u64>,
    /// The one-way link failure `a ↛ b`: (a, b). Both ends depend on indirect probes
    /// while it lasts: a's pings to b are lost, and so are a's acks to b's pings.
    pub link: (NodeId, NodeId),
    /// Distinct accusations of a or b during the link failure (or the 10 s after);
    /// included in `false_suspects`.
    pub link_suspects: u64,
    /// a or b was declared dead during the link failure (or the 10 s after).
    pub link_dead: bool,
    /// Distinct false accusations: (member, incarnation) pairs suspected while running.
    pub false_suspects: u64,
    /// Distinct false deaths: (member, incarnation) pairs declared dead while running.
    pub false_deaths: u64,
    /// Running node-hours in the counted windows.
    pub node_hours: f64,
    /// Simulated time of the whole run.
    pub duration_ms: u64,
    /// Messages sent per node per second over the whole run.
    pub messages_per_node_s: f64,
}

/// Runs `s` and measures it. Deterministic: the same scenario gives the same outcome.
pub fn run(s: &Scenario) -> Outcome {
    assert!(s.nodes >= 4, "the script needs at least 4 nodes");
    let ids: Vec<NodeId> = (1..=s.nodes as NodeId).collect();
    let scenario = s.clone();
    let mut world = World::new(&ids, s.net, s.seed, Box::new(move |id| scenario.config(id)));
    let mut rng = Rng::new(s.seed ^ 0x5CE4_A210);

    // Steady state.
    world.run_until(s.steady_ms);

    // One-way link failure: a's messages to its first successor b are all lost.
    let link_from = ids[rng.range(0, ids.len() as u64) as usize];
    let link_victim = world
        .node(link_from)
        .and_then(|d| d.monitored().first().copied())
        .unwrap_or(ids[(ids.iter().position(|&i| i == link_from).unwrap() + 1) % ids.len()]);
    let link_start = world.now_ms();
    world.block(link_from, link_victim);
    world.run_for(60_000);
    world.unblock(link_from, link_victim);
    world.run_for(10_000);
    let link_end = world.now_ms();

    // Crash.
    let others: Vec<NodeId> = ids
        .iter()
        .copied()
        .filter(|&i| i != link_from && i != link_victim)
        .collect();
    let crashed = others[rng.range(0, others.len() as u64) as usize];
    let crashed_incarnation = world
        .node(crashed)
        .map(|d| d.incarnation())
        .unwrap_or_default();
    let crash_at = world.now_ms();
    world.crash(crashed);
    world.run_for(60_000);
    let restart_at = world.now_ms();

    // Restart from scratch (incarnation 0), joining through three running nodes.
    let up: Vec<NodeId> = world.up();
    let seeds: Vec<NodeId> = (0..3)
        .map(|_| up[rng.range(0, up.len() as u64) as usize])
        .collect();
    world.restart(crashed, &seeds);
    world.run_for(30_000);

    // Partition into two random halves, long enough for each side to bury the other.
    let mut shuffled = ids.clone();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, rng.range(0, i as u64 + 1) as usize);
    }
    let half = shuffled.len() / 2;
    let partition_at = world.now_ms();
    world.partition(&[shuffled[..half].to_vec(), shuffled[half..].to_vec()]);
    world.run_for(40_000);
    world.heal();
    let heal_at = world.now_ms();
    let mut heal_ms = None;
    while world.now_ms() < heal_at + 120_000 {
        world.run_for(100);
        if world.converged() {
            heal_ms = Some(world.now_ms() - heal_at);
            break;
        }
    }
    let counted_again_at = world.now_ms();
    world.run_for(30_000);
    let end = world.now_ms();

    // ----- measurements from the event log --------------------------------------------
    let events = world.events();
    let about = |id: NodeId| events.iter().filter(move |o| o.event.member() == Some(id));

    let first_suspect_ms = about(crashed)
        .filter(|o| o.at_ms >= crash_at && o.at_ms < restart_at)
        .find(|o| matches!(o.event, Event::Suspect { .. } | Event::Dead { .. }))
        .map(|o| o.at_ms - crash_at);
    let dead_at: Vec<Option<u64>> = ids
        .iter()
        .filter(|&&o| o != crashed)
        .map(|&o| {
            about(crashed)
                .filter(|e| e.observer == o && e.at_ms >= crash_at && e.at_ms < restart_at)
                .find(|e| matches!(e.event, Event::Dead { .. }))
                .map(|e| e.at_ms - crash_at)
        })
        .collect();
    let all_dead_ms = dead_at
        .iter()
        .copied()
        .collect::<Option<Vec<u64>>>()
        .map(|v| v.into_iter().max().unwrap_or(0));
    let back_at: Vec<Option<u64>> = ids
        .iter()
        .filter(|&&o| o != crashed)
        .map(|&o| {
            about(crashed)
                .filter(|e| e.observer == o && e.at_ms >= restart_at && e.at_ms < partition_at)
                .find(|e| matches!(e.event, Event::MemberUp { .. } | Event::Alive { .. }))
                .map(|e| e.at_ms - restart_at)
        })
        .collect();
    let rejoin_ms = back_at
        .iter()
        .copied()
        .collect::<Option<Vec<u64>>>()
        .map(|v| v.into_iter().max().unwrap_or(0));

    let counted = |t: u64| t < partition_at || t >= counted_again_at;
    let running = |id: NodeId, t: u64| id != crashed || t < crash_at || t >= restart_at;
    let old_life = |id: NodeId, t: u64, inc: Incarnation| {
        id == crashed && t >= restart_at && inc <= crashed_incarnation
    };
    let mut suspects = BTreeSet::new();
    let mut deaths = BTreeSet::new();
    let mut link_suspects = BTreeSet::new();
    let mut link_dead = false;
    for o in events {
        let (id, inc, dead) = match o.event {
            Event::Suspect {
                id, incarnation, ..
            } => (id, incarnation, false),
            Event::Dead {
                id, incarnation, ..
            } => (id, incarnation, true),
            _ => continue,
        };
        if !running(id, o.at_ms) || old_life(id, o.at_ms, inc) {
            continue;
        }
        if (id == link_from || id == link_victim) && o.at_ms >= link_start && o.at_ms < link_end {
            link_suspects.insert((id, inc));
            link_dead |= dead;
        }
        if counted(o.at_ms) {
            if dead {
                deaths.insert((id, inc));
            } else {
                suspects.insert((id, inc));
            }
        }
    }
    // A member declared dead was (usually) suspected first; one that skipped straight
    // to Dead (the skip_suspicion knob, or a Dead claim outrunning the Suspect) counts
    // as an accusation too.
    suspects.extend(deaths.iter().copied());
    let counted_ms = partition_at + (end - counted_again_at);
    let node_ms = s.nodes as u64 * counted_ms - (restart_at - crash_at);
    Outcome {
        crashed,
        first_suspect_ms,
        all_dead_ms,
        rejoin_ms,
        heal_ms,
        link: (link_from, link_victim),
        link_suspects: link_suspects.len() as u64,
        link_dead,
        false_suspects: suspects.len() as u64,
        false_deaths: deaths.len() as u64,
        node_hours: node_ms as f64 / 3_600_000.0,
        duration_ms: end,
        messages_per_node_s: world.messages_sent as f64 / s.nodes as f64 / (end as f64 / 1000.0),
    }
}
