//! The RESP client against a tiny in-process RESP server that can misbehave:
//! answer errors, drop connections, or stall once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use loadgen::{run_bench, BenchArgs, Report};
use resp::{CommandDecoder, Frame, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy)]
enum Mode {
    Normal,
    /// Every command gets `-ERR`.
    Errors,
    /// Each connection is closed, unanswered, at its n-th command.
    CloseAt(u64),
    /// The first command received after this instant is answered this late.
    StallOnce(Instant, Duration),
}

#[derive(Default)]
struct Fake {
    store: Mutex<HashMap<Bytes, Bytes>>,
    commands: AtomicU64,
    connections: AtomicU64,
    stalled: AtomicU64,
}

async fn serve(mode: Mode) -> (String, Arc<Fake>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fake = Arc::new(Fake::default());
    let f = fake.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            f.connections.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(connection(sock, f.clone(), mode));
        }
    });
    (addr, fake)
}

async fn connection(mut sock: TcpStream, fake: Arc<Fake>, mode: Mode) {
    let mut dec = CommandDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let mut seen = 0u64;
    loop {
        match sock.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Ok(Some(args)) = dec.decode(&mut buf) {
            seen += 1;
            fake.commands.fetch_add(1, Ordering::Relaxed);
            if let Mode::CloseAt(n) = mode {
                if seen >= n {
                    return;
                }
            }
            if let Mode::StallOnce(at, d) = mode {
                if Instant::now() >= at && fake.stalled.fetch_add(1, Ordering::Relaxed) == 0 {
                    tokio::time::sleep(d).await;
                }
            }
            let name = args[0].to_ascii_uppercase();
            let reply = match (mode, name.as_slice()) {
                (Mode::Errors, _) => Frame::error("ERR fake failure"),
                (_, b"SET") if args.len() == 3 => {
                    fake.store
                        .lock()
                        .unwrap()
                        .insert(args[1].clone(), args[2].clone());
                    Frame::simple("OK")
                }
                (_, b"GET") if args.len() == 2 => match fake.store.lock().unwrap().get(&args[1]) {
                    Some(v) => Frame::Bulk(v.clone()),
                    None => Frame::Null,
                },
                _ => Frame::error("ERR unknown command"),
            };
            resp::encode(&reply, Version::Resp2, &mut out);
        }
        if sock.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

fn args(target: &str, extra: &[&str]) -> BenchArgs {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }
    let mut v = vec!["bench", target, "--quiet"];
    v.extend_from_slice(extra);
    Cli::parse_from(v).bench
}

async fn bench(target: &str, extra: &[&str]) -> Report {
    run_bench(&args(&format!("resp://{target}"), extra))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_pipelined_mix_with_preload() {
    let (addr, fake) = serve(Mode::Normal).await;
    let r = bench(
        &addr,
        &[
            "-c",
            "4",
            "-P",
            "3",
            "-k",
            "100",
            "-d",
            "64",
            "-r",
            "0.5",
            "--preload",
            "--duration",
            "500ms",
            "--warmup",
            "100ms",
        ],
    )
    .await;
    assert_eq!(r.errors, 0, "{:?}", r.first_error);
    assert_eq!(r.config.in_flight, 12);
    let read = &r.latency["read"];
    let write = &r.latency["write"];
    assert!(read.count > 100 && write.count > 100, "{}", r.text());
    // Half reads, within noise.
    let share = read.count as f64 / r.ops as f64;
    assert!((0.4..0.6).contains(&share), "read share {share}");
    assert_eq!(r.latency["all"].count, r.ops);
    assert!(r.ops_per_sec > 0.0 && read.p50_ms > 0.0 && read.p50_ms <= read.p99_ms);
    // Preload wrote every key, with values of the requested size.
    let store = fake.store.lock().unwrap();
    assert_eq!(store.len(), 100);
    assert!(store.values().all(|v| v.len() == 64));
    assert!(store.contains_key(&b"key:00"[..]) && store.contains_key(&b"key:99"[..]));
    // The server saw every measured operation (and the preload and warm-up).
    assert!(fake.commands.load(Ordering::Relaxed) >= r.ops + 100);
    // Only the requested connections (plus the preload's).
    assert!(fake.connections.load(Ordering::Relaxed) <= 4 + 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_replies_are_counted_not_fatal() {
    let (addr, _fake) = serve(Mode::Errors).await;
    let r = bench(&addr, &["-c", "2", "--duration", "300ms", "--warmup", "0s"]).await;
    assert_eq!(r.ops, 0);
    assert!(r.errors > 10);
    assert!(
        r.first_error
            .as_deref()
            .unwrap_or("")
            .contains("ERR fake failure"),
        "{:?}",
        r.first_error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_fail_their_requests_and_reconnect() {
    let (addr, fake) = serve(Mode::CloseAt(50)).await;
    let r = bench(
        &addr,
        &[
            "-c",
            "2",
            "-P",
            "4",
            "--duration",
            "500ms",
            "--warmup",
            "0s",
        ],
    )
    .await;
    assert!(r.ops > 100, "{}", r.text());
    assert!(r.errors > 0, "{}", r.text());
    assert!(fake.connections.load(Ordering::Relaxed) > 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_reported_and_ends_on_time() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t0 = Instant::now();
    let r = bench(
        &format!("127.0.0.1:{port}"),
        &["-c", "2", "--duration", "300ms", "--warmup", "0s"],
    )
    .await;
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(r.ops, 0);
    assert!(r.connect_errors > 0);
    assert!(r.first_error.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_holds_the_rate() {
    let (addr, _fake) = serve(Mode::Normal).await;
    let r = bench(
        &addr,
        &[
            "-c",
            "4",
            "--rate",
            "2000",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
        ],
    )
    .await;
    assert_eq!(r.errors, 0);
    assert!((1800..=2200).contains(&r.ops), "{}", r.text());
    assert_eq!(r.config.rate, Some(2000.0));
}

/// A 300 ms stall in a 1 s window: the closed loop charges it to the single
/// request that was waiting (its p99 stays low), the open loop to every
/// request scheduled during the stall (about 30% of them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_corrects_for_coordinated_omission() {
    let stall = Duration::from_millis(300);
    let warmup = Duration::from_millis(200);

    let (addr, _fake) = serve(Mode::StallOnce(
        Instant::now() + warmup + Duration::from_millis(300),
        stall,
    ))
    .await;
    let closed = bench(&addr, &["-c", "1", "--duration", "1s", "--warmup", "200ms"]).await;
    let (addr, _fake) = serve(Mode::StallOnce(
        Instant::now() + warmup + Duration::from_millis(300),
        stall,
    ))
    .await;
    let open = bench(
        &addr,
        &[
            "-c",
            "1",
            "--rate",
            "1000",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
        ],
    )
    .await;

    let c = &closed.latency["all"];
    let o = &open.latency["all"];
    assert!(
        c.max_ms >= 290.0,
        "closed loop must see the stall once: {}",
        closed.text()
    );
    assert!(
        c.p99_ms < 50.0,
        "closed loop hides it in the percentiles: {}",
        closed.text()
    );
    assert!(o.max_ms >= 290.0, "{}", open.text());
    assert!(
        o.p90_ms >= 100.0,
        "open loop charges every delayed request: {}",
        open.text()
    );
}
