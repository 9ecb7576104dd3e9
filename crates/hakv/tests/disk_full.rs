//! A node whose disk fills up (its data directory on a small tmpfs): a full follower
//! stops alone while the cluster keeps serving; a full leader answers clients with a
//! clear storage error (no hang, no panic) and the others elect a new leader. Either
//! way no acknowledged write is lost, and the node recovers once it has space again.
//!
//! Needs root (to mount tmpfs); prints "skipped: needs root for tmpfs" otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod support;
use support::*;

/// Each full node's file system.
const TMPFS_SIZE: &str = "8m";
/// What it is grown to afterwards.
const TMPFS_SIZE_AFTER: &str = "64m";
/// Value size: the 8 MiB file system holds about 30 of them.
const VALUE_BYTES: usize = 256 << 10;
/// Most large writes a test makes (well past what fills the disk).
const WRITES_MAX: u64 = 120;

fn value(i: u64) -> String {
    let unit = format!("{i:07}|");
    unit.repeat(VALUE_BYTES / unit.len())
}

/// A tmpfs mounted over one node's data directory; unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    fn resize(&self, size: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "remount {} with size {size}",
            self.path.display()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// A cluster with one node's data on a small tmpfs. Dropping it kills every node
/// first, then unmounts, then (the cluster's own drop) removes the directory.
struct Setup {
    cluster: Cluster,
    full: u64,
    fs: Option<Tmpfs>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for i in 1..=3 {
            self.cluster.kill(i);
        }
        self.fs.take();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// Starts a cluster and moves node `full`'s data (byte for byte, while it is down)
/// onto a small tmpfs. None (after saying why) without root or a working mount.
fn setup(engine: &str, tag: &str, slot: u16, full: impl FnOnce(&Cluster) -> u64) -> Option<Setup> {
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: needs root for tmpfs");
        return None;
    }
    let cluster = Cluster::with_engine(engine, tag, slot, &[]);
    cluster.leader();
    let full = full(&cluster);
    let mut s = Setup {
        cluster,
        full,
        fs: None,
    };
    s.cluster.kill(full);
    let data = s.cluster.dir.join(format!("node-{full}"));
    let saved = s.cluster.dir.join(format!("node-{full}.saved"));
    std::fs::rename(&data, &saved).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    match Tmpfs::mount(&data, TMPFS_SIZE) {
        Ok(fs) => s.fs = Some(fs),
        Err(why) => {
            println!("skipped: needs root for tmpfs (mount: {why})");
            return None;
        }
    }
    copy_dir(&saved, &data);
    std::fs::remove_dir_all(&saved).unwrap();
    s.cluster.start(full);
    println!("node {full}'s data is on a {TMPFS_SIZE} tmpfs");
    Some(s)
}

fn fail(cluster: &Cluster, why: String) -> ! {
    dump_logs(&cluster.dir);
    panic!("{why}");
}

fn log_of(cluster: &Cluster, i: u64) -> String {
    std::fs::read_to_string(cluster.dir.join(format!("node-{i}.log"))).unwrap_or_default()
}

fn storage_failed(cluster: &Cluster, i: u64) -> bool {
    log_of(cluster, i).contains("storage failed; every group on this node stops serving")
}

fn assert_no_panics(cluster: &Cluster) {
    for i in 1..=3 {
        if log_of(cluster, i).contains("panicked") {
            fail(cluster, format!("node {i} panicked"));
        }
    }
}

fn info_field(port: u16, name: &str) -> Option<u64> {
    let mut c = connect(port)?;
    let info: String = redis::cmd("INFO").query(&mut c).ok()?;
    info.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|r| r.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// The node among `nodes` that says it leads. (A node whose storage failed keeps
/// its last role, so a failed leader must be left out.)
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

fn set(c: &mut redis::Connection, i: u64) -> redis::RedisResult<String> {
    redis::cmd("SET")
        .arg(format!("big{i}"))
        .arg(value(i))
        .query(c)
}

/// SET through any of `nodes` (followers forward), retrying on errors for up to
/// 20 s: the cluster must keep accepting writes.
fn set_eventually(cluster: &Cluster, nodes: &[u64], i: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut k = 0;
    loop {
        let n = nodes[k % nodes.len()];
        match connect(cluster.port(n)).ok_or("no connection".to_string()) {
            Ok(mut c) => match set(&mut c, i) {
                Ok(_) => return,
                Err(e) => eprintln!("SET big{i} via node {n}: {e}; retrying"),
            },
            Err(e) => eprintln!("node {n}: {e}; retrying"),
        }
        if Instant::now() > deadline {
            fail(cluster, format!("SET big{i} not accepted within 20 s"));
        }
        k += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until node `i` has applied everything node `leader` has committed.
fn wait_caught_up(cluster: &Cluster, i: u64, leader: u64) {
    let started = Instant::now();
    let commit = info_field(cluster.port(leader), "raft_commit").expect("leader INFO");
    loop {
        let applied = info_field(cluster.port(i), "raft_applied").unwrap_or(0);
        if applied >= commit {
            return;
        }
        if started.elapsed() > Duration::from_secs(30) {
            fail(
                cluster,
                format!("node {i} applied {applied} of {commit} within 30 s"),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every key in `acked` reads back with its value on each of `nodes` (a follower
/// answers from its own state once the leader confirms the read index).
fn check_readable(cluster: &Cluster, nodes: &[u64], acked: &[u64]) {
    for &n in nodes {
        let mut c = connect(cluster.port(n)).expect("node answers");
        for &i in acked {
            let v: Option<String> = match redis::cmd("GET").arg(format!("big{i}")).query(&mut c) {
                Ok(v) => v,
                Err(e) => fail(cluster, format!("GET big{i} on node {n}: {e}")),
            };
            if v.as_deref() != Some(value(i).as_str()) {
                fail(
                    cluster,
                    format!(
                        "node {n}: acknowledged big{i} reads back as {:?}",
                        v.map(|v| v.len())
                    ),
                );
            }
        }
    }
}

/// Kills node `full`, gives its file system room, restarts it on the same data and
/// waits for it to catch up with `leader`.
fn recover(s: &mut Setup, leader: u64) {
    let full = s.full;
    s.cluster.kill(full);
    s.fs.as_ref().expect("mounted").resize(TMPFS_SIZE_AFTER);
    let restarted = Instant::now();
    s.cluster.start(full);
    wait_caught_up(&s.cluster, full, leader);
    println!(
        "node {full} restarted with {TMPFS_SIZE_AFTER} and caught up in {:?}",
        restarted.elapsed()
    );
    let log = log_of(&s.cluster, full);
    let since_restart = log.rsplit("node started").next().unwrap_or_default();
    if since_restart.contains("storage failed") {
        fail(
            &s.cluster,
            format!("node {full} failed again after restart"),
        );
    }
}

fn a_follower_whose_disk_fills_up_stops_alone_while_the_cluster_keeps_serving(engine: &str) {
    let started = Instant::now();
    let Some(mut s) = setup(engine, "full-follower", 2, |c| {
        if c.leader() == 1 {
            2
        } else {
            1
        }
    }) else {
        return;
    };
    let full = s.full;
    let healthy: Vec<u64> = (1..=3).filter(|&n| n != full).collect();
    let leader = leader_among(&s.cluster, &healthy);
    wait_caught_up(&s.cluster, full, leader);

    // Write through the healthy nodes until the full follower's storage has failed,
    // then a few more: every write must be accepted.
    let mut acked = Vec::new();
    let mut failed_after = None;
    for i in 0..WRITES_MAX {
        set_eventually(&s.cluster, &healthy, i);
        acked.push(i);
        if failed_after.is_none() && storage_failed(&s.cluster, full) {
            failed_after = Some(i);
        }
        if failed_after.is_some_and(|f| i >= f + 5) {
            break;
        }
    }
    let Some(failed_after) = failed_after else {
        fail(
            &s.cluster,
            format!("node {full}'s storage never failed after {WRITES_MAX} writes of {VALUE_BYTES} bytes"),
        );
    };
    println!(
        "node {full}'s storage failed by write {failed_after}; {} writes accepted in all",
        acked.len()
    );

    // A client of the full node gets a clear storage error, promptly.
    let asked = Instant::now();
    let mut c = connect(s.cluster.port(full)).expect("the full node still answers");
    match redis::cmd("GET")
        .arg("big0")
        .query::<Option<String>>(&mut c)
    {
        Err(e) if e.to_string().to_lowercase().contains("storage") => {
            println!("GET on node {full} after {:?}: {e}", asked.elapsed())
        }
        other => fail(
            &s.cluster,
            format!(
                "a GET on the full node should fail with a storage error, got {:?}",
                other.map(|v| v.map(|v| v.len()))
            ),
        ),
    }
    assert_no_panics(&s.cluster);

    // Space again: the node restarts on its own log and catches up; nothing is lost.
    let leader = leader_among(&s.cluster, &healthy);
    recover(&mut s, leader);
    check_readable(&s.cluster, &[leader, full], &acked);
    assert_no_panics(&s.cluster);
    println!("total {:?}", started.elapsed());
}

/// Makes node `x` the leader without touching its data: with a third node down,
/// commit one entry (it reaches only the leader and `x`), kill the leader, restart the
/// third. The third node's log now lacks that entry, so it cannot win a vote from `x`:
/// only `x` can win. (Freezing the third node instead is not enough: the append
/// already sitting in its socket buffer is read as soon as it runs again.)
fn make_leader(engine: &str, cluster: &mut Cluster, x: u64) {
    let l = leader_among(cluster, &[1, 2, 3]);
    if l == x {
        return;
    }
    if engine == "paxos" {
        // Any Paxos acceptor can lead (a new leader learns every possibly chosen value
        // from the promises), so the log trick below does not apply: depose leaders
        // until `x` wins an election.
        for round in 0..20 {
            let l = leader_among(cluster, &[1, 2, 3]);
            if l == x {
                println!("made node {x} the leader after {round} depositions");
                return;
            }
            cluster.kill(l);
            let others: Vec<u64> = (1..=3).filter(|&n| n != l).collect();
            let _ = leader_among(cluster, &others);
            cluster.start(l);
        }
        fail(cluster, format!("node {x} never won in 20 elections"));
    }
    let third = 6 - l - x;
    cluster.kill(third);
    let mut c = connect(cluster.port(l)).expect("leader answers");
    let r: redis::RedisResult<String> = redis::cmd("SET").arg("marker").arg("1").query(&mut c);
    if let Err(e) = r {
        fail(cluster, format!("SET on leader {l} with {third} down: {e}"));
    }
    cluster.kill(l);
    cluster.start(third);
    let now = leader_among(cluster, &[x, third]);
    if now != x {
        fail(cluster, format!("node {now} won instead of {x}"));
    }
    cluster.start(l);
    println!("made node {x} the leader (restarted {third}, then {l})");
}

fn a_leader_whose_disk_fills_up_fails_writes_with_a_storage_error_and_another_node_takes_over(
    engine: &str,
) {
    let started = Instant::now();
    let Some(mut s) = setup(engine, "full-leader", 7, |c| c.leader()) else {
        return;
    };
    let full = s.full;
    let others: Vec<u64> = (1..=3).filter(|&n| n != full).collect();
    make_leader(engine, &mut s.cluster, full);
    for &o in &others {
        wait_caught_up(&s.cluster, o, full);
    }
    println!("node {full} leads with its data on the small tmpfs");

    // Write to the full leader until a write fails: it must fail with a storage
    // error, well before the 10 s request timeout.
    let mut c = connect(s.cluster.port(full)).expect("leader answers");
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..WRITES_MAX {
        let t = Instant::now();
        match set(&mut c, i) {
            Ok(_) => acked.push(i),
            Err(e) => {
                refused = Some((i, e.to_string(), t.elapsed()));
                break;
            }
        }
    }
    let Some((refused_key, why, took)) = refused else {
        fail(
            &s.cluster,
            format!(
                "all {WRITES_MAX} writes of {VALUE_BYTES} bytes fit on the {TMPFS_SIZE} leader"
            ),
        );
    };
    println!(
        "{} writes acknowledged; write {refused_key} failed after {took:?}: {why}",
        acked.len()
    );
    // The write was in flight when the disk filled: it had already been sent to the
    // followers, so the client must be told its outcome is unknown, not "refused".
    if !why.to_lowercase().contains("storage")
        || !why.contains("outcome is unknown")
        || took > Duration::from_secs(5)
    {
        fail(
            &s.cluster,
            format!("expected a prompt storage error, got after {took:?}: {why}"),
        );
    }
    if !storage_failed(&s.cluster, full) {
        fail(
            &s.cluster,
            format!("node {full} did not log its storage failure"),
        );
    }
    // Later requests to it fail the same way, at once.
    let t = Instant::now();
    let again = set(&mut c, WRITES_MAX);
    match &again {
        Err(e) if e.to_string().to_lowercase().contains("storage") => {
            println!(
                "the next write to node {full} failed after {:?}: {e}",
                t.elapsed()
            )
        }
        other => fail(
            &s.cluster,
            format!(
                "the full leader accepted or hung: {:?}",
                other.as_ref().map(|_| ())
            ),
        ),
    }

    // The others elect a leader and keep serving.
    let failed_at = Instant::now();
    let leader = leader_among(&s.cluster, &others);
    let failed_role = role(s.cluster.port(full));
    println!(
        "node {leader} leads {:?} after the failure; the failed node {full} reports role {:?}",
        failed_at.elapsed(),
        failed_role
    );
    if failed_role.as_deref() == Some("master") {
        fail(
            &s.cluster,
            format!("the failed node {full} still claims to lead"),
        );
    }
    for i in WRITES_MAX + 1..WRITES_MAX + 6 {
        set_eventually(&s.cluster, &others, i);
        acked.push(i);
    }
    // The in-flight write's outcome: it was sent to the followers before the leader's
    // own write failed, so the new leader may well have committed it (hence "unknown").
    let mut c = connect(s.cluster.port(leader)).unwrap();
    let refused_value: Option<String> = redis::cmd("GET")
        .arg(format!("big{refused_key}"))
        .query(&mut c)
        .unwrap();
    println!(
        "the write whose outcome was unknown is {} on the new leader",
        if refused_value.is_some() {
            "PRESENT"
        } else {
            "absent"
        }
    );
    assert_no_panics(&s.cluster);

    // Space again: the old leader restarts on its own log, catches up as a follower,
    // and every acknowledged write reads back from both.
    recover(&mut s, leader);
    check_readable(&s.cluster, &[leader, full], &acked);
    assert_no_panics(&s.cluster);
    println!("total {:?}", started.elapsed());
}

#[test]
fn a_follower_whose_disk_fills_up_stops_alone_while_the_cluster_keeps_serving_raft() {
    a_follower_whose_disk_fills_up_stops_alone_while_the_cluster_keeps_serving("raft");
}

#[test]
fn a_follower_whose_disk_fills_up_stops_alone_while_the_cluster_keeps_serving_paxos() {
    a_follower_whose_disk_fills_up_stops_alone_while_the_cluster_keeps_serving("paxos");
}

#[test]
fn a_leader_whose_disk_fills_up_fails_writes_with_a_storage_error_and_another_node_takes_over_raft()
{
    a_leader_whose_disk_fills_up_fails_writes_with_a_storage_error_and_another_node_takes_over(
        "raft",
    );
}

#[test]
fn a_leader_whose_disk_fills_up_fails_writes_with_a_storage_error_and_another_node_takes_over_paxos(
) {
    a_leader_whose_disk_fills_up_fails_writes_with_a_storage_error_and_another_node_takes_over(
        "paxos",
    );
}
