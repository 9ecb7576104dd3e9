//! Three replicas of one group, each with its own data directory and TCP transport on
//! loopback: writes replicate, reads are linearizable, a follower that was down
//! catches up, and everything acknowledged survives stopping and restarting all three.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use consensus::Role;
use kv::{Command, Response};
use node::replica::{ClientError, Replica, ReplicaConfig};
use node::transport::{Incoming, Transport, TransportConfig};
use tokio::sync::mpsc::Receiver;

const GROUP: u64 = 1;

fn config(id: u64, dir: &Path) -> ReplicaConfig {
    ReplicaConfig {
        group: GROUP,
        bootstrap_voters: vec![1, 2, 3],
        data_dir: dir.join(format!("node-{id}")),
        tick: Duration::from_millis(10),
        compact_every: 50,
        request_timeout: Duration::from_secs(5),
        storage: storage::Options::default(),
    }
}

/// Which engine the replicas run.
#[derive(Clone, Copy)]
enum Engine {
    Raft,
    Paxos,
}

fn start(
    engine: Engine,
    id: u64,
    dir: &Path,
    t: &Arc<Transport>,
    rx: Receiver<Incoming>,
) -> Replica {
    let cfg = config(id, dir);
    match engine {
        Engine::Raft => {
            let mut raft = raft::Config::new(id);
            raft.election_ticks = 10;
            raft.heartbeat_ticks = 2;
            Replica::start::<raft::Raft>(cfg, raft, t.clone(), rx).unwrap()
        }
        Engine::Paxos => {
            let mut paxos = paxos::Config::new(id);
            paxos.election_ticks = 10;
            paxos.heartbeat_ticks = 2;
            Replica::start::<paxos::Paxos>(cfg, paxos, t.clone(), rx).unwrap()
        }
    }
}

/// Binds three transports first so every node knows every address.
async fn bind_all() -> Vec<(
    Arc<Transport>,
    tokio::sync::mpsc::Receiver<node::transport::Incoming>,
    SocketAddr,
)> {
    let mut out = Vec::new();
    for id in 1..=3 {
        let (t, rx) = Transport::bind(TransportConfig::new(id), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = t.local_addr();
        out.push((Arc::new(t), rx, addr));
    }
    let addrs: Vec<SocketAddr> = out.iter().map(|x| x.2).collect();
    for (i, (t, _, _)) in out.iter().enumerate() {
        for (j, a) in addrs.iter().enumerate() {
            if i != j {
                t.add_peer(j as u64 + 1, *a);
            }
        }
    }
    out
}

async fn start_at(
    engine: Engine,
    id: u64,
    dir: &Path,
    addrs: &BTreeMap<u64, SocketAddr>,
) -> (Replica, Arc<Transport>) {
    let (t, rx) = Transport::bind(TransportConfig::new(id), addrs[&id])
        .await
        .unwrap();
    for (&p, &a) in addrs {
        if p != id {
            t.add_peer(p, a);
        }
    }
    let t = Arc::new(t);
    (start(engine, id, dir, &t, rx), t)
}

async fn leader(replicas: &BTreeMap<u64, Replica>) -> u64 {
    for _ in 0..500 {
        for (&id, r) in replicas {
            if r.status()
                .await
                .map(|s| s.role == Role::Leader)
                .unwrap_or(false)
            {
                return id;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no leader within 5 s");
}

fn put(k: &str, v: &str) -> Command {
    Command::Put {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: Bytes::copy_from_slice(v.as_bytes()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_replicate_reads_are_linearizable_and_data_survives_restarts_raft() {
    writes_replicate_reads_are_linearizable_and_data_survives_restarts(Engine::Raft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_replicate_reads_are_linearizable_and_data_survives_restarts_paxos() {
    writes_replicate_reads_are_linearizable_and_data_survives_restarts(Engine::Paxos).await;
}

async fn writes_replicate_reads_are_linearizable_and_data_survives_restarts(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let bound = bind_all().await;
    let addrs: BTreeMap<u64, SocketAddr> = bound
        .iter()
        .enumerate()
        .map(|(i, x)| (i as u64 + 1, x.2))
        .collect();
    let mut replicas = BTreeMap::new();
    let mut transports = BTreeMap::new();
    for (i, (t, rx, _)) in bound.into_iter().enumerate() {
        let id = i as u64 + 1;
        replicas.insert(id, start(engine, id, dir.path(), &t, rx));
        transports.insert(id, t);
    }
    let l = leader(&replicas).await;
    for i in 0..100 {
        let r = replicas[&l]
            .propose(put(&format!("k{}", i % 10), &format!("v{i}")))
            .await;
        assert_eq!(r, Ok(Response::Ok));
    }
    assert_eq!(
        replicas[&l].read(Bytes::from_static(b"k3")).await,
        Ok(Some(Bytes::from_static(b"v93")))
    );
    // A Raft follower's read is confirmed by the leader and sees the latest write;
    // the Paxos engine serves reads only at the leader and names it (the front then
    // forwards the read there).
    let f = *replicas.keys().find(|&&id| id != l).unwrap();
    let follower_read = replicas[&f].read(Bytes::from_static(b"k9")).await;
    match engine {
        Engine::Raft => assert_eq!(follower_read, Ok(Some(Bytes::from_static(b"v99")))),
        Engine::Paxos => assert_eq!(follower_read, Err(ClientError::NotLeader { hint: Some(l) })),
    }
    // A follower refuses writes and names the leader.
    assert_eq!(
        replicas[&f].propose(put("x", "y")).await,
        Err(ClientError::NotLeader { hint: Some(l) })
    );

    // Stop a follower, keep writing past a compaction, bring it back: it catches up.
    let down = *replicas.keys().find(|&&id| id != l && id != f).unwrap();
    replicas.remove(&down).unwrap().stop();
    transports.remove(&down);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..120 {
        assert_eq!(
            replicas[&l].propose(put("late", &format!("{i}"))).await,
            Ok(Response::Ok)
        );
    }
    let (r, t) = start_at(engine, down, dir.path(), &addrs).await;
    replicas.insert(down, r);
    transports.insert(down, t);
    let mut caught_up = false;
    for _ in 0..300 {
        let s = replicas[&down].status().await.unwrap();
        let ls = replicas[&l].status().await.unwrap();
        if s.applied >= ls.commit {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(caught_up, "the restarted follower caught up");

    // Stop everyone; restart from disk; every acknowledged write is there.
    let ids: Vec<u64> = replicas.keys().copied().collect();
    for id in &ids {
        replicas.remove(id).unwrap().stop();
    }
    transports.clear();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for id in ids {
        let (r, t) = start_at(engine, id, dir.path(), &addrs).await;
        replicas.insert(id, r);
        transports.insert(id, t);
    }
    let l = leader(&replicas).await;
    assert_eq!(
        replicas[&l].read(Bytes::from_static(b"late")).await,
        Ok(Some(Bytes::from_static(b"119")))
    );
    assert_eq!(
        replicas[&l].read(Bytes::from_static(b"k5")).await,
        Ok(Some(Bytes::from_static(b"v95")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_submitted_together_apply_in_order_or_are_all_refused_raft() {
    proposals_submitted_together_apply_in_order_or_are_all_refused(Engine::Raft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_submitted_together_apply_in_order_or_are_all_refused_paxos() {
    proposals_submitted_together_apply_in_order_or_are_all_refused(Engine::Paxos).await;
}

/// `propose_each` (what the front uses for a pipeline of writes): at the leader every
/// command applies, in the order given, each with its own outcome; at a follower every
/// one is refused with the leader's name, so the caller may run them again in order.
async fn proposals_submitted_together_apply_in_order_or_are_all_refused(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let mut replicas = BTreeMap::new();
    let mut transports = Vec::new();
    for (i, (t, rx, _)) in bind_all().await.into_iter().enumerate() {
        let id = i as u64 + 1;
        replicas.insert(id, start(engine, id, dir.path(), &t, rx));
        transports.push(t);
    }
    let l = leader(&replicas).await;
    // A chain of compare-and-sets: each succeeds only if the one before it applied
    // first. The last one expects a value never written, and fails on its own.
    let key = Bytes::from_static(b"chain");
    let mut cmds: Vec<Command> = (0..50u32)
        .map(|i| Command::Cas {
            key: key.clone(),
            expected: (i > 0).then(|| Bytes::from((i - 1).to_string())),
            new: Bytes::from(i.to_string()),
        })
        .collect();
    cmds.push(Command::Cas {
        key: key.clone(),
        expected: Some(Bytes::from_static(b"never")),
        new: Bytes::from_static(b"x"),
    });
    let outcomes = replicas[&l].propose_each(cmds).await.unwrap();
    assert_eq!(outcomes.len(), 51);
    for (i, o) in outcomes[..50].iter().enumerate() {
        assert_eq!(o, &Ok(Response::Cas(true)), "command {i} applied in order");
    }
    assert_eq!(outcomes[50], Ok(Response::Cas(false)));
    assert_eq!(
        replicas[&l].read(key.clone()).await,
        Ok(Some(Bytes::from("49")))
    );

    let f = *replicas.keys().find(|&&id| id != l).unwrap();
    let refused = replicas[&f]
        .propose_each((0..5).map(|i| put("f", &i.to_string())).collect())
        .await
        .unwrap();
    assert_eq!(
        refused,
        vec![Err(ClientError::NotLeader { hint: Some(l) }); 5],
        "a follower refuses every one of them"
    );
}
