//! The failure detector on real nodes: five `Transport`s on loopback TCP, each with a
//! `DetectorHandle` running `production_config`. Healthy nodes see each other alive, a
//! crashed node (its transport and detector dropped) is declared dead everywhere within
//! the configuration's derived bound, and a node that cannot hear one peer at all does
//! not get that peer (or itself) declared dead: indirect probes through the others
//! bridge the broken link.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::detector::{production_config, DetectorHandle, PeerState, MEMBERSHIP_GROUP};
use node::transport::{Incoming, Transport, TransportConfig};
use tokio::sync::mpsc;

const N: u64 = 5;

/// The largest one-way delay assumed when deriving the crash bound: loopback delivers
/// in microseconds, but two shared cores running five nodes (and other tests) can delay
/// a task by tens of milliseconds.
const DELAY_MS_MAX: u64 = 50;

struct Node {
    transport: Arc<Transport>,
    detector: DetectorHandle,
}

/// Binds `N` transports, wires every pair, and starts a detector on each. With
/// `deaf = Some((x, p))`, node `x`'s incoming frames pass through a filter that drops
/// everything from `p` (the link p → x is broken; x → p still works).
async fn cluster(deaf: Option<(u64, u64)>) -> BTreeMap<u64, Node> {
    let mut bound = Vec::new();
    for id in 1..=N {
        let (t, rx) = Transport::bind(TransportConfig::new(id), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        bound.push((id, Arc::new(t), rx));
    }
    let addrs: BTreeMap<u64, SocketAddr> = bound
        .iter()
        .map(|(id, t, _)| (*id, t.local_addr()))
        .collect();
    let known: Vec<u64> = addrs.keys().copied().collect();
    let mut nodes = BTreeMap::new();
    for (id, t, rx) in bound {
        for (&p, &a) in &addrs {
            if p != id {
                t.add_peer(p, a);
            }
        }
        let rx = match deaf {
            Some((x, p)) if x == id => drop_frames_from(p, rx),
            _ => rx,
        };
        let detector =
            DetectorHandle::start(id, known.clone(), production_config(id), t.clone(), rx);
        nodes.insert(
            id,
            Node {
                transport: t,
                detector,
            },
        );
    }
    nodes
}

/// Forwards `rx` into a new channel, dropping every frame from `peer`.
fn drop_frames_from(peer: u64, mut rx: mpsc::Receiver<Incoming>) -> mpsc::Receiver<Incoming> {
    let (tx, out) = mpsc::channel(1024);
    tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if f.from != peer && tx.send(f).await.is_err() {
                return;
            }
        }
    });
    out
}

/// Fails if any node holds a member of `healthy` as anything but Alive at incarnation 0.
/// A suspicion that reached its target would have made it refute at incarnation 1, so
/// incarnation 0 at the end also rules out suspicions that came and went between polls.
fn assert_healthy_alive(nodes: &BTreeMap<u64, Node>, healthy: &[u64], when: &str) {
    for (&observer, n) in nodes {
        for h in n.detector.view() {
            if healthy.contains(&h.id) {
                assert!(
                    h.state == PeerState::Alive && h.incarnation == 0,
                    "{when}: node {observer} holds healthy node {} as {:?} at incarnation {}",
                    h.id,
                    h.state,
                    h.incarnation
                );
            }
        }
    }
}

/// Runs for `d`, checking `assert_healthy_alive` every 20 ms.
async fn watch_healthy(nodes: &BTreeMap<u64, Node>, healthy: &[u64], d: Duration, when: &str) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        assert_healthy_alive(nodes, healthy, when);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_healthy_alive(nodes, healthy, when);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_see_each_other_alive_and_survive_garbage() {
    let nodes = cluster(None).await;
    let all: Vec<u64> = (1..=N).collect();
    // 3 s is more than three times φ's crossing (~0.9 s) plus a probe round: pings that
    // did not get through would have produced suspicions, and refutations, by now.
    watch_healthy(&nodes, &all, Duration::from_secs(3), "steady").await;
    for (&id, n) in &nodes {
        let view = n.detector.view();
        assert_eq!(
            view.iter().map(|h| h.id).collect::<Vec<_>>(),
            all.iter().copied().filter(|&p| p != id).collect::<Vec<_>>(),
            "node {id} knows every other node"
        );
        let monitored: Vec<f64> = view.iter().filter_map(|h| h.phi).collect();
        assert_eq!(
            monitored.len(),
            3,
            "node {id} monitors its 3 ring successors"
        );
        assert!(
            monitored.iter().all(|&phi| phi < 1.0),
            "node {id}: φ stays low while acks flow: {monitored:?}"
        );
        let stats = n.detector.stats();
        assert!(stats.messages_received > 20, "node {id}: {stats:?}");
        assert_eq!(stats.probe_rounds, 0, "node {id}: no φ crossing: {stats:?}");
        assert_eq!(n.detector.counters(), Default::default(), "node {id}");
        assert_eq!(n.detector.dead_for(1 + id % N), None);
    }

    // Garbage on the membership group (and a frame of another group) is counted, never
    // fatal: node 1 keeps detecting.
    let t2 = &nodes[&2].transport;
    for garbage in [&b""[..], b"\x01", b"\x09\x00", b"\x01\x00\x07", &[0xff; 64]] {
        assert!(t2.send(1, MEMBERSHIP_GROUP, garbage));
    }
    // A well-formed message that the detector must refuse: a suspicion claimed by the
    // member itself (version 1, Gossip, one update: id 2, incarnation 0, Suspect, by 2).
    let mut self_accusation = vec![1u8, 4, 1, 0];
    self_accusation.extend_from_slice(&2u64.to_le_bytes());
    self_accusation.extend_from_slice(&0u64.to_le_bytes());
    self_accusation.push(1);
    self_accusation.extend_from_slice(&2u64.to_le_bytes());
    assert!(t2.send(1, MEMBERSHIP_GROUP, &self_accusation));
    watch_healthy(&nodes, &all, Duration::from_millis(1500), "after garbage").await;
    let c = nodes[&1].detector.counters();
    assert_eq!((c.undecodable, c.refused), (5, 1), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_node_is_declared_dead_everywhere_within_the_derived_bound() {
    let mut nodes = cluster(None).await;
    let healthy: Vec<u64> = (1..N).collect();
    let all: Vec<u64> = (1..=N).collect();
    watch_healthy(&nodes, &all, Duration::from_secs(2), "before the crash").await;

    // Crash node N: its detector task and transport (listener, connections) go away.
    let crashed = nodes.remove(&N).unwrap();
    drop(crashed);
    let crash = Instant::now();

    // The loss-free worst case from the configuration: φ crossing, the probe round's two
    // attempts, the unconfirmed (longest) suspicion timeout, and epidemic spread of
    // the death — see `membership::Config::crash_detection_bound_ms`.
    let bound = Duration::from_millis(
        production_config(1).crash_detection_bound_ms(N as usize, DELAY_MS_MAX),
    );
    let mut detected: BTreeMap<u64, Duration> = BTreeMap::new();
    let mut first_suspect: Option<Duration> = None;
    while detected.len() < healthy.len() {
        assert!(
            crash.elapsed() <= bound,
            "not dead everywhere within {bound:?}: detected by {detected:?}"
        );
        assert_healthy_alive(&nodes, &healthy, "after the crash");
        for (&id, n) in &nodes {
            let h = n.detector.health(N).unwrap();
            if h.state == PeerState::Suspect && first_suspect.is_none() {
                first_suspect = Some(crash.elapsed());
            }
            if h.state == PeerState::Dead && !detected.contains_key(&id) {
                detected.insert(id, h.since.saturating_duration_since(crash));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "crash of node {N}: first suspect seen at {first_suspect:?}, dead per node {detected:?}, bound {bound:?}"
    );
    // It stays dead, and the healthy stay healthy.
    watch_healthy(&nodes, &healthy, Duration::from_secs(1), "after detection").await;
    for (&id, n) in &nodes {
        let dead_for = n.detector.dead_for(N).expect("still dead");
        assert!(dead_for >= Duration::from_secs(1) && dead_for <= crash.elapsed());
        for &p in &healthy {
            assert_eq!(n.detector.dead_for(p), None, "node {id} about {p}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_deaf_to_one_peer_gets_nobody_declared_dead() {
    // Node 1 hears nothing from the first of its ring successors: its pings to that
    // peer get answers it never sees, so φ crosses and only indirect probes (helpers
    // relaying the peer's acks) can save the peer. In the other direction, the peer's
    // pings never reach node 1, so if the peer monitors node 1, node 1 too lives on
    // relayed acks.
    let x = 1;
    let p = membership::ring::successors(1..=N, x, 3)[0];
    let nodes = cluster(Some((x, p))).await;
    let all: Vec<u64> = (1..=N).collect();
    // Long enough for a false accusation to run its course: φ (~0.9 s) + the round
    // (0.4 s) + the longest suspicion timeout (4.8 s) is 6.1 s.
    let d = Duration::from_secs(8);
    let until = Instant::now() + d;
    let mut suspicions = 0;
    while Instant::now() < until {
        for (&observer, n) in &nodes {
            for h in n.detector.view() {
                assert!(
                    h.state != PeerState::Dead,
                    "node {observer} declared {} dead",
                    h.id
                );
                if h.state == PeerState::Suspect {
                    suspicions += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = nodes[&x].detector.stats();
    eprintln!(
        "deaf to {p}: node {x} {stats:?}; polls that saw a suspicion: {suspicions}; view {:?}",
        nodes[&x].detector.view()
    );
    assert!(
        stats.probe_rounds > 0,
        "the broken link must have exercised indirect probes: {stats:?}"
    );
    assert!(
        nodes[&x].detector.health(p).unwrap().phi.is_some(),
        "node {x} monitors {p}"
    );
    // The indirect probes bridged the link: no round failed, so nobody was accused.
    assert_eq!(stats.probe_rounds_failed, 0, "{stats:?}");
    assert_healthy_alive(&nodes, &all, "at the end");
}
