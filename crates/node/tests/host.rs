//! A host's groups across restarts: a group it removed stays gone (even a founding
//! one, which must not be bootstrapped again with an empty log), the others come back
//! with their data, and the removed group's log no longer pins WAL segments.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use consensus::Role;
use kv::{Command, Response};
use node::host::{GroupSpec, Host, HostConfig, HostRuntime};
use node::replica::Replica;
use node::transport::{Transport, TransportConfig};

fn config(dir: &Path) -> HostConfig {
    HostConfig {
        data_dir: dir.to_path_buf(),
        tick: Duration::from_millis(10),
        compact_every: 50,
        request_timeout: Duration::from_secs(5),
        storage: storage::Options {
            // Small segments, so that a dropped group's records would pin several.
            segment_bytes_max: 16 << 10,
            ..Default::default()
        },
    }
}

fn founding() -> Vec<GroupSpec> {
    [1, 2]
        .into_iter()
        .map(|group| GroupSpec {
            group,
            voters: vec![1],
            preferred_leader: None,
        })
        .collect()
}

/// Starts the host as a node does: its transport on the host's runtime.
async fn start(dir: &Path) -> Host {
    let rt = HostRuntime::new().unwrap();
    let (t, rx) = Transport::bind_on(
        rt.handle(),
        TransportConfig::new(1),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let mut raft = raft::Config::new(1);
    raft.election_ticks = 10;
    raft.heartbeat_ticks = 2;
    Host::start_on::<raft::Raft>(rt, config(dir), raft, &founding(), Arc::new(t), rx).unwrap()
}

async fn lead(r: &Replica) {
    for _ in 0..500 {
        if r.status().await.is_ok_and(|s| s.role == Role::Leader) {
            return;
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

fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("wal"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_founding_group_stays_removed_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path()).await;
    for group in [1, 2] {
        let r = host.replica(group).unwrap();
        lead(&r).await;
        // Enough writes to fill several segments.
        for i in 0..200 {
            let value = format!("{group}-{i}-{}", "x".repeat(200));
            assert_eq!(
                r.propose(put(&format!("k{i}"), &value)).await,
                Ok(Response::Ok)
            );
        }
    }
    let before = wal_bytes(dir.path());
    host.remove_group(1).await;
    // The remaining group keeps writing and compacting; the dropped group's records no
    // longer hold old segments back.
    let r2 = host.replica(2).unwrap();
    for i in 0..300 {
        assert_eq!(
            r2.propose(put("late", &format!("{i}"))).await,
            Ok(Response::Ok)
        );
    }
    let after = wal_bytes(dir.path());
    assert!(
        after < before,
        "the WAL shrank once group 1 was dropped: {before} -> {after} bytes"
    );
    host.stop();

    // Restart with the same founding groups: group 1 is not bootstrapped again.
    let host = start(dir.path()).await;
    assert!(
        host.replica(1).is_none(),
        "the dropped founding group stays gone"
    );
    let r2 = host.replica(2).unwrap();
    lead(&r2).await;
    assert_eq!(
        r2.read(Bytes::from_static(b"late")).await,
        Ok(Some(Bytes::from_static(b"299")))
    );
    host.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_data_directory_bootstraps_every_founding_group() {
    let dir = tempfile::tempdir().unwrap();
    let host = start(dir.path()).await;
    for group in [1, 2] {
        lead(&host.replica(group).unwrap()).await;
    }
    host.stop();
    // And a restart before anything was dropped brings both back.
    let host = start(dir.path()).await;
    for group in [1, 2] {
        lead(&host.replica(group).unwrap()).await;
    }
    host.stop();
}

/// A node that fails to start drops its unused host runtime on a runtime thread (in
/// the server's async main): that must not panic, as dropping a tokio runtime there
/// normally does.
#[tokio::test]
async fn an_unused_host_runtime_can_be_dropped_inside_a_runtime() {
    let rt = HostRuntime::new().unwrap();
    rt.handle().spawn(async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    drop(rt);
}
