//! Whole-cluster behaviour in the deterministic simulator: every rule of the issue as a
//! scenario — a bad link does not evict, a crash is detected everywhere, a suspect
//! refutes, the dead stay dead, a restart rejoins, a partition heals, a death spreads in
//! O(log N) gossip rounds — plus the checks-can-fail counterparts.

use membership::message::Body;
use membership::sim::{NetConfig, Observed, World};
use membership::{Config, Event, FaultKnobs, Incarnation, Message, NodeId, State, Update};

fn world(n: usize, loss: f64, seed: u64) -> World {
    World::with_defaults(n, NetConfig::lan(loss), seed)
}

fn world_with(n: usize, seed: u64, knobs: FaultKnobs) -> World {
    let ids: Vec<NodeId> = (1..=n as NodeId).collect();
    World::new(
        &ids,
        NetConfig::lan(0.0),
        seed,
        Box::new(move |id| Config {
            seed: seed ^ id,
            knobs,
            ..Config::new(id)
        }),
    )
}

fn accusations_of(w: &World, id: NodeId, after_ms: u64) -> Vec<Observed> {
    w.events()
        .iter()
        .filter(|o| o.at_ms >= after_ms)
        .filter(|o| matches!(o.event, Event::Suspect { id: x, .. } | Event::Dead { id: x, .. } if x == id))
        .copied()
        .collect()
}

fn deaths_of(w: &World, id: NodeId, after_ms: u64) -> Vec<Observed> {
    accusations_of(w, id, after_ms)
        .into_iter()
        .filter(|o| matches!(o.event, Event::Dead { .. }))
        .collect()
}

/// Runs the one-way link failure a ↛ b (b one of a's monitored successors) for two
/// minutes on a loss-free network; returns (a, b, the world).
fn one_bad_link(knobs: FaultKnobs) -> (NodeId, NodeId, World) {
    let mut w = world_with(5, 11, knobs);
    w.run_until(10_000);
    let a = 1;
    let b = w.node(a).unwrap().monitored()[0];
    w.block(a, b);
    w.run_for(120_000);
    (a, b, w)
}

/// The central claim: a broken link A ↛ B (every other path working) does not
/// evict B, because A's indirect probes through C reach B.
#[test]
fn one_bad_link_does_not_evict_a_healthy_node() {
    let (a, b, w) = one_bad_link(FaultKnobs::default());
    assert!(accusations_of(&w, b, 0).is_empty(), "{b} accused");
    assert!(accusations_of(&w, a, 0).is_empty(), "{a} accused");
    let stats = w.node(a).unwrap().stats();
    assert!(
        stats.probe_rounds >= 20,
        "the indirect path was exercised: {stats:?}"
    );
    assert_eq!(stats.probe_rounds_failed, 0);
    assert!(w.converged());
}

/// Checks can fail: without indirect probes, the same bad link gets B accused again and
/// again (it survives only by refuting each time) …
#[test]
fn without_indirect_probes_one_bad_link_gets_the_healthy_node_accused() {
    let knobs = FaultKnobs {
        skip_indirect_probes: true,
        ..FaultKnobs::default()
    };
    let (_, b, w) = one_bad_link(knobs);
    let accused = accusations_of(&w, b, 0);
    assert!(accused.len() >= 10, "{} accusations", accused.len());
    assert!(
        w.node(b).unwrap().incarnation() >= Incarnation(10),
        "refuted each time"
    );
}

/// … and without indirect probes or a suspicion period (a plain timeout detector) the
/// bad link evicts it: it is declared dead.
#[test]
fn without_indirect_probes_or_suspicion_one_bad_link_evicts_the_healthy_node() {
    let knobs = FaultKnobs {
        skip_indirect_probes: true,
        skip_suspicion: true,
    };
    let (a, b, w) = one_bad_link(knobs);
    let deaths = deaths_of(&w, b, 0);
    assert!(!deaths.is_empty());
    assert!(deaths
        .iter()
        .any(|o| matches!(o.event, Event::Dead { by, .. } if by == a)));
}

/// Crash → every running node declares the crashed node dead, within the bound derived
/// from the parameters ([`Config::crash_detection_bound_ms`]), and not before φ could
/// have crossed the threshold.
#[test]
fn a_crash_is_detected_by_every_node_within_the_derived_bound() {
    for (n, seed) in [(5, 1), (12, 2)] {
        let mut w = world(n, 0.0, seed);
        w.run_until(30_000);
        let crashed = 2;
        w.crash(crashed);
        let bound = Config::new(1).crash_detection_bound_ms(n, 20);
        w.run_for(bound);
        assert!(w.all_see(crashed, State::Dead), "n={n}");
        let first = accusations_of(&w, crashed, 30_000)[0].at_ms - 30_000;
        // The last ack came at most one probe interval + a round trip before the crash;
        // φ needs the acceptable pause on top of a period to cross.
        assert!(first >= 1_000, "suspected after {first} ms");
        let last_death = deaths_of(&w, crashed, 30_000).last().unwrap().at_ms - 30_000;
        assert!(last_death <= bound);
    }
}

/// SWIM §4.2 end to end: a member slandered by one node hears of it, refutes, and is
/// never declared dead; everyone ends up holding it alive at the new incarnation.
#[test]
fn a_falsely_suspected_node_refutes_and_survives() {
    let mut w = world(8, 0.05, 3);
    w.run_until(20_000);
    let (victim, slanderer, witness) = (4, 6, 2);
    let slander = Message {
        body: Body::Gossip,
        updates: vec![Update {
            id: victim,
            incarnation: Incarnation(0),
            state: State::Suspect,
            by: slanderer,
        }],
    };
    w.with_node(witness, |d, now| d.step(now, slanderer, slander).unwrap());
    w.run_for(30_000);
    assert!(deaths_of(&w, victim, 0).is_empty());
    let refuted = w
        .events()
        .iter()
        .any(|o| o.observer == victim && matches!(o.event, Event::Refuted { .. }));
    assert!(refuted);
    for o in w.up().into_iter().filter(|&o| o != victim) {
        let v = w.view(o, victim).unwrap();
        assert_eq!(
            (v.state, v.incarnation),
            (State::Alive, Incarnation(1)),
            "at {o}"
        );
    }
}

/// SWIM §4.2: a dead member's stale "alive" (at the incarnation that died) reaches a node
/// after everyone buried it: nobody brings it back.
#[test]
fn stale_gossip_cannot_resurrect_a_dead_member() {
    let mut w = world(6, 0.0, 4);
    w.run_until(20_000);
    w.crash(3);
    w.run_for(30_000);
    assert!(w.all_see(3, State::Dead));
    let stale = Message {
        body: Body::Gossip,
        updates: vec![Update {
            id: 3,
            incarnation: Incarnation(0),
            state: State::Alive,
            by: 3,
        }],
    };
    let at = w.now_ms();
    w.with_node(1, |d, now| d.step(now, 2, stale).unwrap());
    w.run_for(30_000);
    assert!(w.all_see(3, State::Dead));
    let revived = w.events().iter().any(|o| {
        o.at_ms >= at
            && matches!(
                o.event,
                Event::MemberUp { id: 3, .. } | Event::Alive { id: 3, .. }
            )
    });
    assert!(!revived);
}

/// A crashed node restarted from scratch (incarnation 0, knowing only seeds) learns its
/// tombstone, rejoins above it, and every node takes it back.
#[test]
fn a_restarted_node_rejoins_with_a_higher_incarnation() {
    let mut w = world(8, 0.05, 5);
    w.run_until(20_000);
    w.crash(5);
    w.run_for(30_000);
    assert!(w.all_see(5, State::Dead));
    w.restart(5, &[1]);
    w.run_for(5_000);
    assert!(w.all_see(5, State::Alive));
    let me = w.node(5).unwrap();
    assert!(me.incarnation() > Incarnation(0));
    assert_eq!(me.live_members().len(), 7, "it knows the whole cluster");
    for o in w.up().into_iter().filter(|&o| o != 5) {
        assert_eq!(w.view(o, 5).unwrap().incarnation, me.incarnation());
    }
}

/// A graceful leave is reported as Left, never as a death, and stays so.
#[test]
fn a_graceful_leave_is_reported_as_left_not_dead() {
    let mut w = world(6, 0.05, 6);
    w.run_until(20_000);
    w.leave(2);
    w.run_for(2_000);
    w.crash(2); // the process exits after announcing
    w.run_for(60_000);
    assert!(w.all_see(2, State::Left));
    assert!(deaths_of(&w, 2, 0).is_empty());
}

/// Each side of a partition buries the other; after healing, the anti-entropy sync (to
/// dead members too) finds the other side, the accused refute, and every node sees every
/// node alive. Merging a whole list demotes its deaths to suspicions, so healing never
/// makes a node bury members of its own side.
#[test]
fn a_healed_partition_reconverges_without_burying_its_own_side() {
    for (n, seed) in [(6, 7), (10, 8)] {
        let mut w = world(n, 0.0, seed);
        w.run_until(20_000);
        let ids: Vec<NodeId> = (1..=n as NodeId).collect();
        let (left, right) = ids.split_at(n / 2);
        w.partition(&[left.to_vec(), right.to_vec()]);
        w.run_for(40_000);
        assert!(
            w.all_see(right[0], State::Dead)
                || left
                    .iter()
                    .all(|&o| w.view(o, right[0]).unwrap().state == State::Dead)
        );
        let healed_at = w.now_ms();
        w.heal();
        w.run_for(30_000);
        assert!(w.converged(), "n={n}");
        let side = |id: NodeId| left.contains(&id);
        let buried_own_side = w.events().iter().any(|o| {
            o.at_ms >= healed_at
                && matches!(o.event, Event::Dead { id, .. } if side(id) == side(o.observer))
        });
        assert!(!buried_own_side, "n={n}");
    }
}

/// Dissemination is epidemic: a death declared at one node reaches all N in
/// O(log N) gossip rounds — at most 2·⌈log2 N⌉ + 2 here. The verdict is injected at one
/// node at the moment of the crash, long before any other node's own detection could
/// declare it (≥ 5 s: φ, the probe round, the suspicion timeout), and every node must
/// hold that very verdict (same declarer), so only gossip can explain the result.
#[test]
fn every_node_learns_a_death_within_log_n_gossip_rounds() {
    let gossip_ms = Config::new(1).gossip_interval_ms;
    let mut rounds_by_n = Vec::new();
    for (n, seed) in [(8usize, 9), (16, 10), (32, 11), (64, 12)] {
        let mut w = world(n, 0.0, seed);
        w.run_until(15_000);
        let (crashed, declarer) = (n as NodeId, n as NodeId - 1);
        w.crash(crashed);
        let verdict = Message {
            body: Body::Gossip,
            updates: vec![Update {
                id: crashed,
                incarnation: Incarnation(0),
                state: State::Dead,
                by: declarer,
            }],
        };
        w.with_node(1, |d, now| d.step(now, declarer, verdict).unwrap());
        let bound = 2 * (n as f64).log2().ceil() as u64 + 2;
        // One round = a gossip interval plus a delivery (≤ 20 ms).
        w.run_for(bound * (gossip_ms + 20));
        assert!(
            w.all_see(crashed, State::Dead),
            "n={n}: not everyone within {bound} rounds"
        );
        let deaths = deaths_of(&w, crashed, 15_000);
        assert!(deaths
            .iter()
            .all(|o| matches!(o.event, Event::Dead { by, .. } if by == declarer)));
        let span_ms = deaths.last().unwrap().at_ms - 15_000;
        rounds_by_n.push((n, span_ms.div_ceil(gossip_ms + 20)));
    }
    eprintln!("(nodes, gossip rounds until the last node knew): {rounds_by_n:?}");
}

/// One seed, one history: the world replays exactly.
#[test]
fn the_simulation_is_deterministic() {
    let run = || {
        let mut w = world(7, 0.2, 42);
        w.run_until(20_000);
        w.crash(3);
        w.block(1, 2);
        w.run_for(20_000);
        (w.events().to_vec(), w.messages_sent, w.messages_lost)
    };
    assert_eq!(run(), run());
}
