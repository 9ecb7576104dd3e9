//! Feeds arbitrary bytes to `parse_command` and checks the crate's promises:
//! no panic, progress on every parsed command, `Ok(None)` leaves the buffer
//! unchanged, and the resumable `CommandDecoder` fed in small pieces gives
//! exactly the same commands and error as parsing the whole input at once.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use resp::{parse_command, CommandDecoder, Limits};

fuzz_target!(|data: &[u8]| {
    // Small limits so the fuzzer reaches every limit check.
    let limits = Limits {
        bulk_bytes_max: 1024,
        args_max: 64,
        inline_bytes_max: 256,
    };
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk % 16) + 1;

    let mut buf = BytesMut::from(input);
    let mut whole = Vec::new();
    let whole_error = loop {
        let before = buf.clone();
        match parse_command(&mut buf, &limits) {
            Ok(Some(cmd)) => {
                assert!(!cmd.is_empty());
                assert!(buf.len() < before.len(), "no progress");
                whole.push(cmd);
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) changed the buffer");
                break None;
            }
            Err(e) => break Some(e),
        }
    };

    let mut decoder = CommandDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut pieces = Vec::new();
    let mut pieces_error = None;
    'feed: for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(cmd)) => pieces.push(cmd),
                Ok(None) => break,
                Err(e) => {
                    pieces_error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert_eq!(whole_error, pieces_error);
    assert_eq!(whole, pieces);
});
