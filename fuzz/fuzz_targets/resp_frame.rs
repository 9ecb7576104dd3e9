//! Replies (`resp::parse_frame`, the client side and the leader-forwarding path) on
//! arbitrary bytes: no panic, progress on every frame, `Ok(None)` leaves the buffer
//! unchanged, and every parsed frame re-encodes (RESP3) to bytes that parse back to an
//! equal frame. Parsed with the default limits (what the node uses) and, on the same
//! bytes, with small limits so that the fuzzer reaches every limit check.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use resp::{encode, parse_frame, Frame, Limits, Version};

fuzz_target!(|data: &[u8]| {
    check(data, &Limits::default());
    check(
        data,
        &Limits {
            bulk_bytes_max: 1024,
            args_max: 64,
            inline_bytes_max: 256,
        },
    );
});

fn check(data: &[u8], limits: &Limits) {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone();
        match parse_frame(&mut buf, limits) {
            Ok(Some(frame)) => {
                assert!(buf.len() < before.len(), "no progress");
                for version in [Version::Resp3, Version::Resp2] {
                    let mut out = BytesMut::new();
                    encode(&frame, version, &mut out);
                    let again = parse_frame(&mut out, &Limits::default())
                        .expect("re-encoded frame must parse")
                        .expect("re-encoded frame must be complete");
                    assert!(out.is_empty(), "re-encoded frame left bytes behind");
                    // Simple strings, errors and big numbers may lose CR/LF on
                    // encode, and RESP3 writes NullArray as `_`; compare the rest.
                    // RESP2 has fewer types, so only RESP3 must give the same frame.
                    if version == Version::Resp3 && !lossy(&frame) {
                        assert_eq!(again, frame);
                    }
                }
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) changed the buffer");
                break;
            }
            Err(_) => break,
        }
    }
}

/// Whether `frame` contains a value whose encoding is not its exact inverse.
fn lossy(frame: &Frame) -> bool {
    match frame {
        Frame::NullArray => true,
        Frame::SimpleString(b) | Frame::Error(b) | Frame::BigNumber(b) => {
            b.iter().any(|&c| c == b'\r' || c == b'\n')
        }
        Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => v.iter().any(lossy),
        Frame::Map(v) => v.iter().any(|(k, x)| lossy(k) || lossy(x)),
        _ => false,
    }
}
