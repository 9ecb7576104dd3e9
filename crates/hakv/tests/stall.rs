//! A follower frozen with SIGSTOP for longer than the leader's compaction window: once
//! it runs again (SIGCONT) the entries it missed are gone from every log, so it must
//! catch up by installing a snapshot — and afterwards it carries the data as a member
//! of the only quorum left when the old leader is killed.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;
use support::*;

/// `--compact-every`: the leader keeps at most this many applied entries in its log.
const WINDOW: u64 = 200;
/// Writes while the follower is frozen: well over twice the window.
const KEYS: u64 = 1_000;

fn signal(cluster: &Cluster, i: u64, sig: i32) {
    let pid = cluster.nodes[i as usize - 1]
        .as_ref()
        .expect("node is running")
        .id() as i32;
    // SAFETY: signalling our own child process.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    if sig == libc::SIGSTOP {
        wait_stopped(pid);
    }
}

/// Waits until every thread of `pid` is stopped: SIGSTOP takes effect asynchronously,
/// and a thread may run (receive, fsync, acknowledge) for a while on a loaded machine.
fn wait_stopped(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let states: Vec<char> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| {
                d.flatten()
                    .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
                    .filter_map(|s| s.rsplit(')').next()?.trim_start().chars().next())
                    .collect()
            })
            .unwrap_or_default();
        if !states.is_empty() && states.iter().all(|&c| c == 'T') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} not stopped within 10 s: thread states {states:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// One numeric field of a node's INFO (answered by the node itself, never forwarded).
fn info_field(port: u16, name: &str) -> Option<u64> {
    let mut c = connect(port)?;
    let info: String = redis::cmd("INFO").query(&mut c).ok()?;
    info.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// The highest snapshot index among a node's snapshot files
/// (`snap/g…-i<index>-t<term>.snap`), if it has any.
fn snapshot_index(data_dir: &Path) -> Option<u64> {
    std::fs::read_dir(data_dir.join("snap"))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_suffix(".snap")?;
            let i = rest.split('-').find_map(|p| p.strip_prefix('i'))?;
            i.parse::<u64>().ok()
        })
        .max()
}

fn fail(cluster: &Cluster, why: String) -> ! {
    dump_logs(&cluster.dir);
    panic!("{why}");
}

fn value(i: u64) -> String {
    format!("value-{i}-{}", "x".repeat(64))
}

/// SET through one of `nodes` (any node forwards writes to the leader), moving to the
/// next on an error (SET is idempotent) in case leadership moves.
fn set(cluster: &Cluster, nodes: &[u64], conn: &mut Option<redis::Connection>, i: u64) {
    for attempt in 0..20 {
        if conn.is_none() {
            *conn = connect(cluster.port(nodes[attempt % nodes.len()]));
        }
        if let Some(c) = conn.as_mut() {
            let r: redis::RedisResult<String> = redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg(value(i))
                .query(c);
            match r {
                Ok(_) => return,
                Err(e) => eprintln!("SET k{i}: {e}; retrying"),
            }
        }
        *conn = None;
        std::thread::sleep(Duration::from_millis(100));
    }
    fail(cluster, format!("SET k{i} never succeeded"));
}

/// The leader among `nodes` (skipping a frozen node, whose INFO would never answer).
fn leader_among(cluster: &Cluster, nodes: &[u64]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for &n in nodes {
            if role(cluster.port(n)).as_deref() == Some("master") {
                return n;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    fail(cluster, format!("no leader among {nodes:?} within 30 s"));
}

fn a_follower_stopped_past_the_compaction_window_catches_up_by_snapshot(engine: &str) {
    let window = WINDOW.to_string();
    let mut cluster = Cluster::with_engine(engine, "stall", 6, &["--compact-every", &window]);
    let leader = cluster.leader();
    let stalled = if leader == 1 { 2 } else { 1 };
    let other = 6 - leader - stalled;

    // Freeze the follower (every thread stopped). It cannot hold an entry the leader
    // lacks, so the leader's last index now bounds what the frozen node has. On waking
    // it also finds the appends already in its socket buffer: at most the leader's
    // 64 in flight, one entry each here (the writes are sequential), far below WINDOW.
    signal(&cluster, stalled, libc::SIGSTOP);
    let frozen_at = Instant::now();
    let bound = info_field(cluster.port(leader), "raft_last_index").expect("leader INFO");
    println!("leader {leader}; froze node {stalled} holding at most index {bound}");

    let started = Instant::now();
    let mut conn = None;
    for i in 0..KEYS {
        set(&cluster, &[leader, other], &mut conn, i);
    }
    let wrote = started.elapsed();
    // Frozen for several election timeouts too, however fast the writes were: its
    // timers fire as soon as it runs again.
    let min_freeze = 4 * ELECTION_TIMEOUT_MAX;
    if let Some(rest) = min_freeze.checked_sub(frozen_at.elapsed()) {
        std::thread::sleep(rest);
    }
    let l = leader_among(&cluster, &[leader, other]);
    println!("{KEYS} SETs with node {stalled} frozen took {wrote:?} (leader now node {l})");

    // The log was compacted past everything the frozen node holds, with WINDOW to spare
    // (the leader compacts every WINDOW entries, so its snapshot is within WINDOW of
    // its applied index).
    let commit = info_field(cluster.port(l), "raft_commit").expect("leader INFO");
    let applied = info_field(cluster.port(l), "raft_applied").expect("leader INFO");
    let last = info_field(cluster.port(l), "raft_last_index").expect("leader INFO");
    let snap = snapshot_index(&cluster.dir.join(format!("node-{l}"))).unwrap_or(0);
    println!(
        "leader INFO: commit {commit}, applied {applied}, last {last}; its snapshot is at {snap}"
    );
    if applied < bound + 2 * WINDOW || snap <= bound + WINDOW {
        fail(
            &cluster,
            format!(
                "the leader did not compact past the frozen node: applied {applied}, \
                 snapshot {snap}, frozen node at most {bound}, window {WINDOW}"
            ),
        );
    }

    signal(&cluster, stalled, libc::SIGCONT);
    let thawed = Instant::now();
    println!(
        "node {stalled} was frozen for {:?}",
        thawed.duration_since(frozen_at)
    );
    let deadline = thawed + Duration::from_secs(30);
    let caught_up = loop {
        let a = info_field(cluster.port(stalled), "raft_applied").unwrap_or(0);
        if a >= commit {
            break thawed.elapsed();
        }
        if Instant::now() > deadline {
            fail(
                &cluster,
                format!("node {stalled} applied only {a} of {commit} within 30 s of SIGCONT"),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("node {stalled} applied up to {commit} {caught_up:?} after SIGCONT");

    // It got there by installing a snapshot beyond what it held when frozen.
    let log = std::fs::read_to_string(cluster.dir.join(format!("node-{stalled}.log"))).unwrap();
    let installs = log
        .lines()
        .filter(|l| l.contains("installed a snapshot from the leader"))
        .count();
    let its_snap = snapshot_index(&cluster.dir.join(format!("node-{stalled}"))).unwrap_or(0);
    println!("node {stalled} installed {installs} snapshot(s); its snapshot is at {its_snap}");
    if installs == 0 || its_snap <= bound + WINDOW {
        fail(
            &cluster,
            format!(
                "node {stalled} caught up without installing a snapshot \
                 ({installs} installs logged, snapshot at {its_snap}, held at most {bound})"
            ),
        );
    }

    // Kill the leader: the only quorum left includes the node that was frozen.
    let killed = Instant::now();
    cluster.kill(l);
    let new_leader = cluster.leader();
    println!(
        "killed leader {l}; node {new_leader} leads after {:?}",
        killed.elapsed()
    );
    let read_started = Instant::now();
    // Survivors, the leader first; a follower serves a read from its own state once
    // the leader confirms the read index.
    let mut readers: Vec<u64> = vec![new_leader];
    readers.extend((1..=3).filter(|&n| n != l && n != new_leader));
    for n in readers {
        let mut c = connect(cluster.port(n)).expect("surviving node answers");
        for i in 0..KEYS {
            let v: Option<String> = match redis::cmd("GET").arg(format!("k{i}")).query(&mut c) {
                Ok(v) => v,
                Err(e) => fail(&cluster, format!("GET k{i} on node {n}: {e}")),
            };
            if v.as_deref() != Some(value(i).as_str()) {
                fail(
                    &cluster,
                    format!("node {n}: k{i} = {v:?} after the leader died"),
                );
            }
        }
    }
    println!(
        "read all {KEYS} keys back from both survivors in {:?}",
        read_started.elapsed()
    );
}

#[test]
fn a_follower_stopped_past_the_compaction_window_catches_up_by_snapshot_raft() {
    a_follower_stopped_past_the_compaction_window_catches_up_by_snapshot("raft");
}

#[test]
fn a_follower_stopped_past_the_compaction_window_catches_up_by_snapshot_paxos() {
    a_follower_stopped_past_the_compaction_window_catches_up_by_snapshot("paxos");
}
