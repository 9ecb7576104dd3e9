//! One test per protocol rule, on single detectors driven by hand: the inputs are
//! scripted, and the outputs (messages and events) are asserted exactly where the rule
//! fixes them. Sources: SWIM (Das, Gupta, Motivala 2002), Lifeguard (Dadgar, Phillips,
//! Currey 2018), φ-accrual (Hayashibara et al. 2004).

use membership::message::Body;
use membership::ring;
use membership::{
    Action, Config, Detector, Event, Incarnation, Message, NodeId, State, Update, RELAYS_MAX,
};

fn cfg(id: NodeId) -> Config {
    Config::new(id)
}

fn node(id: NodeId, known: &[NodeId]) -> Detector {
    let mut d = Detector::new(cfg(id), 0, known).unwrap();
    d.take_actions();
    d
}

fn claim(id: NodeId, incarnation: u64, state: State, by: NodeId) -> Update {
    Update {
        id,
        incarnation: Incarnation(incarnation),
        state,
        by,
    }
}

fn alive(id: NodeId, incarnation: u64) -> Update {
    claim(id, incarnation, State::Alive, id)
}

fn gossip(updates: Vec<Update>) -> Message {
    Message {
        body: Body::Gossip,
        updates,
    }
}

fn sends(actions: &[Action]) -> Vec<(NodeId, &Message)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, msg } => Some((*to, msg)),
            Action::Event(_) => None,
        })
        .collect()
}

fn events(actions: &[Action]) -> Vec<Event> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) => Some(*e),
            Action::Send { .. } => None,
        })
        .collect()
}

/// Ticks `d` at each time it asks for, up to `until_ms`, returning what it did, stamped.
fn drive(d: &mut Detector, until_ms: u64) -> Vec<(u64, Action)> {
    let mut out = Vec::new();
    loop {
        let t = d.poll_at().max(d.now_ms());
        if t > until_ms {
            return out;
        }
        d.tick(t);
        out.extend(d.take_actions().into_iter().map(|a| (t, a)));
    }
}

/// Ticks `d` until an action satisfies `pred`; returns the time and all actions then.
fn drive_until(d: &mut Detector, pred: impl Fn(&Action) -> bool) -> (u64, Vec<Action>) {
    for _ in 0..10_000 {
        let t = d.poll_at().max(d.now_ms());
        d.tick(t);
        let actions = d.take_actions();
        if actions.iter().any(&pred) {
            return (t, actions);
        }
    }
    panic!("the awaited action never came");
}

fn is_ping_req(a: &Action) -> bool {
    matches!(
        a,
        Action::Send {
            msg: Message {
                body: Body::PingReq { .. },
                ..
            },
            ..
        }
    )
}

// ----- probing ------------------------------------------------------------------------

#[test]
fn a_ping_is_answered_with_an_ack_carrying_the_same_seq_and_the_news() {
    let mut d = node(1, &[2, 3]);
    d.step(10, 2, Message::bare(Body::Ping { seq: 7 })).unwrap();
    // The node's announcement of itself is news until gossiped enough times.
    assert_eq!(
        d.take_actions(),
        vec![Action::Send {
            to: 2,
            msg: Message {
                body: Body::Ack { seq: 7 },
                updates: vec![alive(1, 0)],
            },
        }]
    );
}

#[test]
fn each_node_monitors_exactly_its_k_ring_successors() {
    let ids: Vec<NodeId> = (1..=10).collect();
    let d = node(4, &ids);
    let mut want = ring::successors(ids.iter().copied(), 4, 3);
    want.sort_unstable();
    assert_eq!(d.monitored(), want);
}

#[test]
fn every_probe_period_pings_each_monitored_successor() {
    let ids: Vec<NodeId> = (1..=10).collect();
    let mut d = node(4, &ids);
    let (_, actions) = drive_until(&mut d, |a| {
        matches!(
            a,
            Action::Send {
                msg: Message {
                    body: Body::Ping { .. },
                    ..
                },
                ..
            }
        )
    });
    let mut pinged: Vec<NodeId> = sends(&actions)
        .into_iter()
        .filter(|(_, m)| matches!(m.body, Body::Ping { .. }))
        .map(|(to, _)| to)
        .collect();
    pinged.sort_unstable();
    assert_eq!(pinged, d.monitored());
}

/// SWIM §3.1: when the direct probe fails, ask k other members to probe the target;
/// here "fails" is φ crossing the threshold. No suspicion yet.
#[test]
fn phi_crossing_starts_an_indirect_round_not_a_suspicion() {
    let ids: Vec<NodeId> = (1..=8).collect();
    let mut d = node(1, &ids);
    let (t, actions) = drive_until(&mut d, is_ping_req);
    // With no ack ever, φ reaches 8 at mean + pause + z·σ of the prior
    // (500 + 1000 + 5.61 · 125 ms) after monitoring started.
    assert!((2_150..2_250).contains(&t), "first round at {t} ms");
    assert!(
        events(&actions).is_empty(),
        "no accusation yet: {actions:?}"
    );
    for target in d.monitored() {
        let helpers: Vec<NodeId> = sends(&actions)
            .into_iter()
            .filter(|(_, m)| matches!(m.body, Body::PingReq { target: t, .. } if t == target))
            .map(|(to, _)| to)
            .collect();
        assert_eq!(helpers.len(), 3, "m = 3 helpers for {target}");
        assert!(helpers.iter().all(|&h| h != 1 && h != target));
        let mut distinct = helpers.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 3);
        let direct = sends(&actions)
            .into_iter()
            .any(|(to, m)| to == target && matches!(m.body, Body::Ping { .. }));
        assert!(direct, "one more direct ping to {target} alongside");
    }
}

/// SWIM §3.1: the member is suspected only if neither a direct nor any indirect ack
/// arrives; with `indirect_attempts = 2`, only after both attempts time out.
#[test]
fn suspicion_comes_only_after_every_attempt_fails() {
    let ids: Vec<NodeId> = (1..=8).collect();
    let mut d = node(1, &ids);
    let (t0, _) = drive_until(&mut d, is_ping_req);
    let before = drive(&mut d, t0 + 499);
    assert!(before.iter().all(|(_, a)| !matches!(a, Action::Event(_))));
    let second: Vec<Action> = drive(&mut d, t0 + 500)
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    assert!(
        second.iter().any(is_ping_req),
        "a second attempt with fresh helpers"
    );
    assert!(events(&second).is_empty());
    let third: Vec<Action> = drive(&mut d, t0 + 1_000)
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    let mut accused: Vec<NodeId> = events(&third)
        .into_iter()
        .map(|e| match e {
            Event::Suspect {
                id,
                incarnation,
                by,
            } => {
                assert_eq!((incarnation, by), (Incarnation(0), 1));
                id
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    accused.sort_unstable();
    assert_eq!(accused, d.monitored());
    assert!(d
        .monitored()
        .iter()
        .all(|&m| d.member(m).unwrap().state == State::Suspect));
}

/// The rule that keeps one bad link from evicting a healthy node: a relayed ack from a
/// helper ends the round as a success.
#[test]
fn a_relayed_ack_from_an_asked_helper_saves_the_target() {
    let ids: Vec<NodeId> = (1..=8).collect();
    let mut d = node(1, &ids);
    let (t0, actions) = drive_until(&mut d, is_ping_req);
    let target = d.monitored()[0];
    let (helper, seq) = sends(&actions)
        .into_iter()
        .find_map(|(to, m)| match m.body {
            Body::PingReq { seq, target: t } if t == target => Some((to, seq)),
            _ => None,
        })
        .unwrap();
    d.step(
        t0 + 40,
        helper,
        Message::bare(Body::IndirectAck { seq, target }),
    )
    .unwrap();
    let later = drive(&mut d, t0 + 1_500);
    let about_target = later
        .iter()
        .any(|(_, a)| matches!(a, Action::Event(e) if e.member() == Some(target)));
    assert!(!about_target, "{target} must not be suspected");
    assert_eq!(d.member(target).unwrap().state, State::Alive);
}

#[test]
fn an_indirect_ack_from_someone_not_asked_proves_nothing() {
    let ids: Vec<NodeId> = (1..=8).collect();
    let mut d = node(1, &ids);
    let (t0, actions) = drive_until(&mut d, is_ping_req);
    let target = d.monitored()[0];
    let asked: Vec<NodeId> = sends(&actions)
        .into_iter()
        .filter(|(_, m)| matches!(m.body, Body::PingReq { target: t, .. } if t == target))
        .map(|(to, _)| to)
        .collect();
    let stranger = (2..=8)
        .find(|h| *h != target && !asked.contains(h))
        .unwrap();
    for seq in 0..200 {
        d.step(
            t0 + 10,
            stranger,
            Message::bare(Body::IndirectAck { seq, target }),
        )
        .unwrap();
    }
    drive(&mut d, t0 + 1_000);
    assert_eq!(d.member(target).unwrap().state, State::Suspect);
}

#[test]
fn a_helper_pings_the_target_and_relays_its_ack() {
    let mut helper = node(2, &[1, 2, 3]);
    helper
        .step(100, 1, Message::bare(Body::PingReq { seq: 42, target: 3 }))
        .unwrap();
    let actions = helper.take_actions();
    let (to, ping) = sends(&actions)[0];
    let Body::Ping { seq } = ping.body else {
        panic!("expected a ping, got {ping:?}")
    };
    assert_eq!(to, 3);
    helper
        .step(120, 3, Message::bare(Body::Ack { seq }))
        .unwrap();
    let relayed = helper.take_actions();
    assert_eq!(sends(&relayed).len(), 1);
    assert_eq!(sends(&relayed)[0].0, 1);
    assert_eq!(
        sends(&relayed)[0].1.body,
        Body::IndirectAck { seq: 42, target: 3 }
    );
}

// ----- suspicion, refutation, death -------------------------------------------------------

/// SWIM §4.2: a member that hears it is suspected increments its incarnation and
/// spreads "alive" at the new incarnation.
#[test]
fn a_suspected_member_refutes_by_raising_its_incarnation() {
    let mut d = node(1, &[2, 3]);
    d.step(10, 2, gossip(vec![claim(1, 0, State::Suspect, 3)]))
        .unwrap();
    assert_eq!(
        d.take_actions(),
        vec![Action::Event(Event::Refuted {
            incarnation: Incarnation(1)
        })]
    );
    assert_eq!(d.incarnation(), Incarnation(1));
    d.step(20, 2, Message::bare(Body::Ping { seq: 1 })).unwrap();
    let actions = d.take_actions();
    assert_eq!(sends(&actions)[0].1.updates, vec![alive(1, 1)]);
    // An accusation of an incarnation already refuted changes nothing.
    d.step(30, 3, gossip(vec![claim(1, 0, State::Dead, 3)]))
        .unwrap();
    assert!(events(&d.take_actions()).is_empty());
    assert_eq!(d.incarnation(), Incarnation(1));
}

/// The one member of 1..=5 that node 1 does not monitor (k = 3 of 4 others).
fn unmonitored(d: &Detector) -> NodeId {
    (2..=5).find(|id| !d.monitored().contains(id)).unwrap()
}

#[test]
fn a_refutation_ends_the_suspicion_everywhere_it_arrives() {
    let mut d = node(1, &[1, 2, 3, 4, 5]);
    // A member this node does not probe itself (it gets no acks in this test).
    let x = unmonitored(&d);
    let accuser = (2..=5).find(|&i| i != x).unwrap();
    d.step(
        10,
        accuser,
        gossip(vec![claim(x, 0, State::Suspect, accuser)]),
    )
    .unwrap();
    d.step(20, x, gossip(vec![alive(x, 1)])).unwrap();
    let evs = events(&d.take_actions());
    assert_eq!(
        evs,
        vec![
            Event::Suspect {
                id: x,
                incarnation: Incarnation(0),
                by: accuser
            },
            Event::Alive {
                id: x,
                incarnation: Incarnation(1)
            },
        ]
    );
    // The timer died with the suspicion: past the longest timeout, still alive.
    drive(&mut d, 14_000);
    assert_eq!(d.member(x).unwrap().state, State::Alive);
}

/// Lifeguard §IV-B: an unconfirmed suspicion waits the maximum timeout, β · α ·
/// max(1, log10 N) · probe_interval = 6 · 4 · 1 · 500 ms for N = 5.
#[test]
fn an_unrefuted_suspect_is_declared_dead_after_the_maximum_timeout() {
    let mut d = node(1, &[1, 2, 3, 4, 5]);
    let x = unmonitored(&d);
    let accuser = (2..=5).find(|&i| i != x).unwrap();
    d.step(
        1_000,
        accuser,
        gossip(vec![claim(x, 0, State::Suspect, accuser)]),
    )
    .unwrap();
    let died: Vec<u64> = drive(&mut d, 20_000)
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::Event(Event::Dead { id, by: 1, .. }) if *id == x))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(died, vec![1_000 + 12_000]);
    assert_eq!(d.member(x).unwrap().state, State::Dead);
}

/// Lifeguard §IV-B: independent confirmations shrink the timeout towards the minimum
/// (α · max(1, log10 N) · probe_interval = 2 s here) — a crash seen by all of its
/// monitors is declared quickly.
#[test]
fn confirmations_shorten_the_suspicion_timeout() {
    let mut d = node(1, &[1, 2, 3, 4, 5]);
    let x = unmonitored(&d);
    let others: Vec<NodeId> = (2..=5).filter(|&i| i != x).collect();
    let accusations = others
        .iter()
        .map(|&by| claim(x, 0, State::Suspect, by))
        .collect();
    d.step(1_000, others[0], gossip(accusations)).unwrap();
    let died: Vec<u64> = drive(&mut d, 20_000)
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::Event(Event::Dead { id, .. }) if *id == x))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(died, vec![1_000 + 2_000]);
}

// ----- no resurrection, rejoin ------------------------------------------------------------

/// SWIM §4.2: "alive" overrides a death only at a higher incarnation, so a stale
/// "alive" still circulating cannot resurrect a dead member.
#[test]
fn stale_gossip_cannot_resurrect_a_dead_member() {
    let mut d = node(1, &[2, 3]);
    d.step(10, 3, gossip(vec![claim(2, 3, State::Dead, 3)]))
        .unwrap();
    assert_eq!(
        events(&d.take_actions()),
        vec![Event::Dead {
            id: 2,
            incarnation: Incarnation(3),
            by: 3
        }]
    );
    for stale in [alive(2, 3), alive(2, 0), claim(2, 3, State::Suspect, 3)] {
        d.step(20, 3, gossip(vec![stale])).unwrap();
        assert!(d.take_actions().is_empty(), "{stale:?} must change nothing");
        assert_eq!(d.member(2).unwrap().state, State::Dead);
    }
    d.step(30, 2, gossip(vec![alive(2, 4)])).unwrap();
    assert_eq!(
        events(&d.take_actions()),
        vec![Event::MemberUp {
            id: 2,
            incarnation: Incarnation(4)
        }]
    );
}

/// Delivers every message in `actions` addressed to `to`'s id, from `from`.
fn deliver(actions: &[Action], from: NodeId, to: &mut Detector, now_ms: u64) {
    for (dest, msg) in sends(actions) {
        if dest == to.id() {
            to.step(now_ms, from, msg.clone()).unwrap();
        }
    }
}

/// A restarted node that forgot its incarnation hears its tombstone in the seed's
/// answer and rejoins above it.
#[test]
fn a_restarted_node_rejoins_above_its_tombstone() {
    let mut seed = node(1, &[2, 3]);
    seed.step(10, 3, gossip(vec![claim(2, 5, State::Dead, 3)]))
        .unwrap();
    seed.take_actions();

    let mut two = Detector::new(cfg(2), 1_000, &[]).unwrap();
    two.join(1_000, &[1]);
    assert!(two.is_joining());
    let join = two.take_actions();
    deliver(&join, 2, &mut seed, 1_010);
    // "Alive at #0" is older than the tombstone: the seed still holds 2 dead.
    assert_eq!(seed.member(2).unwrap().state, State::Dead);
    let answer = seed.take_actions();
    deliver(&answer, 1, &mut two, 1_020);
    assert!(!two.is_joining());
    let rejoined = two.take_actions();
    assert!(events(&rejoined).contains(&Event::Refuted {
        incarnation: Incarnation(6)
    }));
    assert_eq!(
        two.member(3).unwrap().state,
        State::Alive,
        "learned the cluster"
    );

    // Its next message to the seed carries "alive at #6", which outranks the tombstone.
    two.step(1_030, 1, Message::bare(Body::Ping { seq: 1 }))
        .unwrap();
    deliver(&two.take_actions(), 2, &mut seed, 1_040);
    assert!(events(&seed.take_actions()).contains(&Event::MemberUp {
        id: 2,
        incarnation: Incarnation(6)
    }));
}

#[test]
fn a_joining_node_retries_until_a_seed_answers() {
    let mut d = Detector::new(cfg(9), 0, &[]).unwrap();
    d.join(0, &[1, 2, 9, 0, 1]);
    let first: Vec<NodeId> = sends(&d.take_actions())
        .into_iter()
        .map(|(to, _)| to)
        .collect();
    assert_eq!(first, vec![1, 2], "deduplicated, never itself or 0");
    let retries = drive(&mut d, 3_000)
        .into_iter()
        .filter(|(_, a)| {
            matches!(
                a,
                Action::Send {
                    msg: Message {
                        body: Body::Sync { .. },
                        ..
                    },
                    ..
                }
            )
        })
        .count();
    assert_eq!(retries, 6, "both seeds, every second");
}

// ----- telling the accused ---------------------------------------------------------------

/// Lifeguard's buddy system: a message to a suspected member carries its suspicion
/// first, so it can refute at once.
#[test]
fn a_message_to_a_suspect_carries_its_suspicion_first() {
    let mut d = node(1, &[2, 3, 4]);
    d.step(10, 3, gossip(vec![claim(2, 0, State::Suspect, 3)]))
        .unwrap();
    d.take_actions();
    d.step(20, 2, Message::bare(Body::Ping { seq: 5 })).unwrap();
    let actions = d.take_actions();
    assert_eq!(
        sends(&actions)[0].1.updates[0],
        claim(2, 0, State::Suspect, 3)
    );
}

/// Nobody gossips to the dead, so a member wrongly declared dead learns it from the
/// answer to its own next ping — and refutes.
#[test]
fn a_dead_member_hears_of_its_death_in_the_ack_to_its_own_ping() {
    let mut d = node(1, &[2, 3]);
    d.step(10, 3, gossip(vec![claim(2, 0, State::Dead, 3)]))
        .unwrap();
    d.take_actions();
    d.step(20, 2, Message::bare(Body::Ping { seq: 5 })).unwrap();
    let actions = d.take_actions();
    assert_eq!(sends(&actions)[0].1.updates[0], claim(2, 0, State::Dead, 3));
}

/// memberlist's push-pull rule: a whole list's death verdict about a member held live
/// arrives as a suspicion, which the member can still refute.
#[test]
fn a_listed_death_of_a_live_member_is_merged_as_a_suspicion() {
    let mut d = node(1, &[2, 3]);
    let list = vec![claim(2, 0, State::Dead, 3), claim(9, 4, State::Dead, 3)];
    d.step(
        10,
        3,
        Message::bare(Body::Sync {
            reply: true,
            members: list,
        }),
    )
    .unwrap();
    assert_eq!(
        events(&d.take_actions()),
        vec![Event::Suspect {
            id: 2,
            incarnation: Incarnation(0),
            by: 3
        }]
    );
    // A member never seen live is just remembered dead.
    assert_eq!(d.member(9).unwrap().state, State::Dead);
}

// ----- leave -------------------------------------------------------------------------------

#[test]
fn a_leaving_node_tells_every_live_member_and_is_reported_as_left() {
    let mut d = node(1, &[2, 3]);
    d.leave(100);
    let actions = d.take_actions();
    let told: Vec<(NodeId, Vec<Update>)> = sends(&actions)
        .into_iter()
        .map(|(to, m)| (to, m.updates.clone()))
        .collect();
    let left = claim(1, 1, State::Left, 1);
    assert_eq!(told, vec![(2, vec![left]), (3, vec![left])]);
    assert!(d.monitored().is_empty());

    let mut two = node(2, &[1, 2, 3]);
    deliver(&actions, 1, &mut two, 110);
    assert_eq!(
        events(&two.take_actions()),
        vec![Event::Left {
            id: 1,
            incarnation: Incarnation(1)
        }]
    );
    // Accusations of the leaving node do not make it refute.
    d.step(200, 2, gossip(vec![claim(1, 1, State::Dead, 2)]))
        .unwrap();
    assert!(events(&d.take_actions()).is_empty());
}

// ----- hostile input ----------------------------------------------------------------------

#[test]
fn refused_messages_change_nothing() {
    let mut d = node(1, &[2, 3]);
    let before = d.members();
    let bad = [
        (1, Message::bare(Body::Ping { seq: 1 })), // from itself
        (0, Message::bare(Body::Ping { seq: 1 })), // from id 0
        (2, gossip(vec![alive(0, 0)])),
        (2, gossip(vec![claim(3, 1 << 60, State::Suspect, 2)])),
        (2, gossip(vec![claim(3, 0, State::Alive, 2)])), // alive said by another
        (2, gossip(vec![claim(2, 0, State::Dead, 2)])),  // self-accusation
        (2, Message::bare(Body::PingReq { seq: 1, target: 0 })),
        (2, gossip(vec![alive(2, 1); 2_000])),
    ];
    for (from, msg) in bad {
        assert!(
            d.step(10, from, msg.clone()).is_err(),
            "{msg:?} from {from}"
        );
    }
    assert!(d.take_actions().is_empty());
    assert_eq!(d.members(), before);
    assert_eq!(d.stats().messages_refused, 8);
}

#[test]
fn a_flood_of_new_members_is_bounded_by_members_max() {
    let mut d = Detector::new(
        Config {
            members_max: 8,
            ..cfg(1)
        },
        0,
        &[2, 3],
    )
    .unwrap();
    let flood: Vec<Update> = (100..1_100).map(|id| alive(id, 0)).collect();
    d.step(10, 2, gossip(flood)).unwrap();
    assert_eq!(d.members().len(), 8);
    // Tombstones make way for newcomers; live members are never evicted.
    d.step(20, 2, gossip(vec![claim(3, 0, State::Dead, 2)]))
        .unwrap();
    d.step(30, 2, gossip(vec![alive(5_000, 0)])).unwrap();
    assert!(d.member(3).is_none() && d.member(5_000).is_some());
    assert_eq!(d.members().len(), 8);
}

#[test]
fn ping_requests_from_anyone_are_bounded() {
    let mut d = node(1, &[2, 3]);
    for seq in 0..2_000 {
        d.step(
            10,
            2,
            Message::bare(Body::PingReq {
                seq,
                target: 1_000 + seq,
            }),
        )
        .unwrap();
    }
    let pings = sends(&d.take_actions()).len();
    assert_eq!(pings, RELAYS_MAX);
    // They expire, and relaying resumes.
    drive(&mut d, 2_000);
    d.take_actions();
    d.step(2_001, 2, Message::bare(Body::PingReq { seq: 9, target: 3 }))
        .unwrap();
    assert_eq!(sends(&d.take_actions()).len(), 1);
}

#[test]
fn nothing_happens_before_poll_at() {
    let ids: Vec<NodeId> = (1..=6).collect();
    let mut d = node(1, &ids);
    for _ in 0..200 {
        let at = d.poll_at();
        if at > d.now_ms() + 1 {
            d.tick(at - 1);
            assert!(d.take_actions().is_empty(), "acted before {at}");
        }
        d.tick(at);
        d.take_actions();
    }
}

#[test]
fn time_going_backwards_is_no_time() {
    let ids: Vec<NodeId> = (1..=6).collect();
    let mut d = node(1, &ids);
    drive(&mut d, 5_000);
    let now = d.now_ms();
    d.tick(10);
    assert_eq!(d.now_ms(), now);
    d.step(0, 2, Message::bare(Body::Ping { seq: 1 })).unwrap();
    assert_eq!(d.now_ms(), now);
}
