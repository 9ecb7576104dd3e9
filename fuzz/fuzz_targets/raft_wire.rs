//! Peer messages (`raft::wire::decode`, the payload of every peer frame) on arbitrary
//! bytes: no panic, no allocation beyond the input's size, and every message that
//! decodes re-encodes to bytes that decode to the same message. (The encoding is not
//! the input's exact inverse: member-id sets are decoded into ordered sets.)
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use raft::wire::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode(Bytes::copy_from_slice(data)) else {
        return;
    };
    let mut out = Vec::new();
    encode(&msg, &mut out);
    let again = decode(Bytes::from(out.clone())).expect("a re-encoded message decodes");
    assert_eq!(again, msg, "a re-encoded message decodes differently");
    // Re-encoding a decoded message is canonical: a second round gives the same bytes.
    let mut twice = Vec::new();
    encode(&again, &mut twice);
    assert_eq!(twice, out);
    // Only member-id sets can change on the way, and only by losing duplicates.
    assert!(out.len() <= data.len());
});
