//! The peer transport over real loopback TCP.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use node::transport::{Incoming, Transport, TransportConfig};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc::Receiver;

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn recv(rx: &mut Receiver<Incoming>) -> Incoming {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a frame within 5 s")
        .expect("open")
}

#[tokio::test]
async fn two_nodes_exchange_frames_in_order() {
    let (a, mut a_rx) = Transport::bind(TransportConfig::new(1), any_port())
        .await
        .unwrap();
    let (b, mut b_rx) = Transport::bind(TransportConfig::new(2), any_port())
        .await
        .unwrap();
    a.add_peer(2, b.local_addr());
    b.add_peer(1, a.local_addr());
    for i in 0..100u32 {
        assert!(a.send(2, 7, &i.to_le_bytes()));
    }
    for i in 0..100u32 {
        let m = recv(&mut b_rx).await;
        assert_eq!((m.from, m.group), (1, 7));
        assert_eq!(&m.payload[..], &i.to_le_bytes());
    }
    assert!(b.send(1, 9, b"back"));
    let m = recv(&mut a_rx).await;
    assert_eq!((m.from, m.group, &m.payload[..]), (2, 9, &b"back"[..]));
    assert!(
        a.stats().writes.load(Ordering::Relaxed) <= 100,
        "frames are batched into writes"
    );
}

#[tokio::test]
async fn a_restarted_peer_is_reconnected() {
    let (a, _a_rx) = Transport::bind(TransportConfig::new(1), any_port())
        .await
        .unwrap();
    let (b, mut b_rx) = Transport::bind(TransportConfig::new(2), any_port())
        .await
        .unwrap();
    let addr = b.local_addr();
    a.add_peer(2, addr);
    a.send(2, 1, b"first");
    assert_eq!(&recv(&mut b_rx).await.payload[..], b"first");
    drop(b);
    drop(b_rx);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_b2, mut b2_rx) = Transport::bind(TransportConfig::new(2), addr)
        .await
        .unwrap();
    // Frames sent while the peer was down or reconnecting may be lost; keep sending
    // until one gets through, as consensus does with heartbeats.
    let got = async {
        loop {
            a.send(2, 1, b"again");
            if let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_millis(100), b2_rx.recv()).await
            {
                return m;
            }
        }
    };
    let m = tokio::time::timeout(Duration::from_secs(10), got)
        .await
        .expect("reconnected");
    assert_eq!(&m.payload[..], b"again");
    assert!(a.stats().connects.load(Ordering::Relaxed) >= 2);
}

#[tokio::test]
async fn a_dead_peer_costs_a_bounded_queue_not_unbounded_memory() {
    let mut cfg = TransportConfig::new(1);
    cfg.queue_frames_max = 64;
    let (a, _rx) = Transport::bind(cfg, any_port()).await.unwrap();
    // Nothing listens here (port 1 on loopback refuses connections).
    a.add_peer(9, "127.0.0.1:1".parse().unwrap());
    let accepted = (0..10_000).filter(|_| a.send(9, 1, &[0u8; 100])).count();
    assert!(accepted <= 65, "queue must be bounded, accepted {accepted}");
    assert!(a.stats().frames_dropped.load(Ordering::Relaxed) >= 9_935);
    assert!(!a.send(42, 1, b"unknown peer"));
}

#[tokio::test]
async fn a_damaged_frame_closes_only_that_connection() {
    let (a, _a_rx) = Transport::bind(TransportConfig::new(1), any_port())
        .await
        .unwrap();
    let (b, mut b_rx) = Transport::bind(TransportConfig::new(2), any_port())
        .await
        .unwrap();
    let mut raw = tokio::net::TcpStream::connect(b.local_addr())
        .await
        .unwrap();
    raw.write_all(b"\x10\x00\x00\x00garbage-garbage-garbage")
        .await
        .unwrap();
    a.add_peer(2, b.local_addr());
    a.send(2, 3, b"good");
    let m = recv(&mut b_rx).await;
    assert_eq!(
        &m.payload[..],
        b"good",
        "only the good connection's frame arrives"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(b.stats().bad_frames.load(Ordering::Relaxed), 1);
}

/// `bind_on` puts the connections on the given runtime, not the caller's: while no
/// thread drives that runtime nothing is sent, and once one does, everything queued
/// arrives. (A node binds its transport on its host's runtime, so that consensus
/// frames never change threads between socket and host.)
#[tokio::test]
async fn a_transport_bound_on_another_runtime_runs_there() {
    let host_rt = node::host::HostRuntime::new().unwrap();
    let (a, _a_rx) =
        Transport::bind_on(host_rt.handle(), TransportConfig::new(1), any_port()).unwrap();
    let (b, mut b_rx) = Transport::bind(TransportConfig::new(2), any_port())
        .await
        .unwrap();
    a.add_peer(2, b.local_addr());
    assert!(a.send(2, 7, b"queued before the runtime runs"));
    let early = tokio::time::timeout(Duration::from_millis(300), b_rx.recv()).await;
    assert!(
        early.is_err(),
        "nothing may leave while the runtime is idle"
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = std::thread::spawn(move || {
        host_rt.block_on(async {
            let _ = stopped.await;
        });
        drop(host_rt);
    });
    let m = recv(&mut b_rx).await;
    assert_eq!(
        (m.from, m.group, &m.payload[..]),
        (1, 7, &b"queued before the runtime runs"[..])
    );
    stop.send(()).unwrap();
    driver.join().unwrap();
}

/// A peer that was down long enough for the reconnect backoff to grow is dialled again
/// as soon as it connects to us, not at the end of that backoff: a restarted node must
/// hear from its leaders at once (a follower read there waits for them).
#[tokio::test]
async fn a_peer_that_connects_back_is_dialled_at_once() {
    // A backoff as long as one that grew over a long outage.
    let mut cfg = TransportConfig::new(1);
    cfg.backoff_min = Duration::from_secs(60);
    cfg.backoff_max = Duration::from_secs(60);
    let (a, _a_rx) = Transport::bind(cfg, any_port()).await.unwrap();
    // An address where nothing listens yet (free a port the kernel picked).
    let addr = std::net::TcpListener::bind(any_port())
        .unwrap()
        .local_addr()
        .unwrap();
    a.add_peer(2, addr);
    // The first dial fails at once; the writer now sleeps its 60 s backoff.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!a.is_up(2));

    let (b, mut b_rx) = Transport::bind(TransportConfig::new(2), addr)
        .await
        .unwrap();
    b.add_peer(1, a.local_addr());
    assert!(b.send(1, 5, b"hello from 2")); // b dials a, which wakes a's dialer
    let started = std::time::Instant::now();
    let got = async {
        loop {
            a.send(2, 1, b"back");
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(20), b_rx.recv()).await
            {
                return m;
            }
        }
    };
    let m = tokio::time::timeout(Duration::from_secs(20), got)
        .await
        .expect("dialled back long before the 60 s backoff ends");
    assert_eq!(&m.payload[..], b"back");
    println!("dialled back after {:?}", started.elapsed());
}
