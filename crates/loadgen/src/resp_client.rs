//! The RESP side (hakv or Redis): `SET key value` for writes, `GET key` for
//! reads, up to `--pipeline` requests outstanding per connection, replies
//! matched to requests in order.
//!
//! One task per connection runs a single loop: send every operation whose slot
//! is free and whose intended time has come (several at once go out in one
//! write), read replies, wake for the next intended time. A broken connection
//! fails its outstanding requests (counted as errors) and is reopened.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use resp::{Frame, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::report::{OpKind, Recorder};
use crate::{Op, Shared, Source};

/// Appends the RESP encoding of `op` to `out`.
pub(crate) fn encode(op: &Op, shared: &Shared, out: &mut BytesMut) {
    let key = shared.chooser.key(op.key);
    match op.kind {
        OpKind::Write => {
            let _ = write!(out, "*3\r\n$3\r\nSET\r\n${}\r\n", key.len());
            out.extend_from_slice(&key);
            let _ = write!(out, "\r\n${}\r\n", shared.value.len());
            out.extend_from_slice(&shared.value);
            out.extend_from_slice(b"\r\n");
        }
        OpKind::Read => {
            let _ = write!(out, "*2\r\n$3\r\nGET\r\n${}\r\n", key.len());
            out.extend_from_slice(&key);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Whether a reply answers the request successfully.
fn check(frame: &Frame) -> Result<(), String> {
    match frame {
        Frame::Error(e) => Err(format!("error reply: {}", String::from_utf8_lossy(e))),
        _ => Ok(()),
    }
}

struct Pending {
    kind: OpKind,
    intended: Instant,
    sent: Instant,
}

/// Fails every outstanding request of a broken connection.
fn fail_all(shared: &Shared, rec: &mut Recorder, inflight: &mut VecDeque<Pending>, why: &str) {
    let now = Instant::now();
    for p in inflight.drain(..) {
        shared.record(rec, p.kind, p.intended, now, Err(why.to_string()));
    }
}

/// One connection of the run.
pub(crate) async fn connection(shared: Arc<Shared>, addr: String, index: usize) -> Recorder {
    let mut rec = Recorder::new();
    let mut src = Source::new(shared.clone(), index as u64);
    let limits = Limits::default();
    let pipeline = shared.pipeline.max(1);
    // An operation taken from the source but not sent yet (its intended time is
    // ahead, or the connection broke before it went out).
    let mut waiting: Option<Op> = None;
    let mut backoff = Duration::from_millis(20);
    'connect: loop {
        if waiting.is_none() && src.finished() {
            break;
        }
        let stream = match tokio::time::timeout(shared.timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                shared.connect_error();
                rec.first_error
                    .get_or_insert_with(|| format!("connect {addr}: {e}"));
                if shared.past_end(Instant::now()) {
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
                continue;
            }
            Err(_) => {
                shared.connect_error();
                rec.first_error
                    .get_or_insert_with(|| format!("connect {addr}: timed out"));
                if shared.past_end(Instant::now()) {
                    break;
                }
                continue;
            }
        };
        backoff = Duration::from_millis(20);
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let mut inflight: VecDeque<Pending> = VecDeque::with_capacity(pipeline);
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        let mut wbuf = BytesMut::with_capacity(4 * 1024);
        loop {
            // Send whatever is due and fits.
            let now = Instant::now();
            while inflight.len() < pipeline {
                let op = match waiting.take() {
                    Some(op) => op,
                    None => match src.next(now) {
                        Some(op) => op,
                        None => break,
                    },
                };
                if op.intended > now {
                    waiting = Some(op);
                    break;
                }
                encode(&op, &shared, &mut wbuf);
                inflight.push_back(Pending {
                    kind: op.kind,
                    intended: op.intended,
                    sent: now,
                });
            }
            if !wbuf.is_empty() {
                let w = tokio::time::timeout(shared.timeout, wr.write_all(&wbuf)).await;
                wbuf.clear();
                if !matches!(w, Ok(Ok(()))) {
                    fail_all(
                        &shared,
                        &mut rec,
                        &mut inflight,
                        "connection lost while sending",
                    );
                    continue 'connect;
                }
            }
            if inflight.is_empty() && waiting.is_none() && src.finished() {
                break 'connect;
            }
            // Wake for: a reply, the next intended time (if a slot is free), or
            // the oldest request's timeout.
            let wake = waiting
                .as_ref()
                .filter(|_| inflight.len() < pipeline)
                .map(|op| op.intended);
            let deadline = inflight.front().map(|p| p.sent + shared.timeout);
            tokio::select! {
                r = rd.read_buf(&mut rbuf) => {
                    match r {
                        Ok(0) | Err(_) => {
                            fail_all(&shared, &mut rec, &mut inflight, "connection closed by the server");
                            continue 'connect;
                        }
                        Ok(_) => {}
                    }
                    loop {
                        match resp::parse_frame(&mut rbuf, &limits) {
                            Ok(Some(frame)) => {
                                let Some(p) = inflight.pop_front() else {
                                    rec.first_error.get_or_insert_with(|| "reply without a request".into());
                                    continue 'connect;
                                };
                                shared.record(&mut rec, p.kind, p.intended, Instant::now(), check(&frame));
                            }
                            Ok(None) => break,
                            Err(e) => {
                                fail_all(&shared, &mut rec, &mut inflight, &format!("bad reply: {e:?}"));
                                continue 'connect;
                            }
                        }
                    }
                }
                _ = sleep_until_opt(wake) => {}
                _ = sleep_until_opt(deadline) => {
                    fail_all(&shared, &mut rec, &mut inflight, "request timed out");
                    continue 'connect;
                }
            }
        }
    }
    rec
}

/// Sleeps until `t`, or forever without one.
async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
