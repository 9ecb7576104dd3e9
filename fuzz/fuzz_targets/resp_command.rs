//! Client requests (`resp::parse_command`, `resp::CommandDecoder`) on arbitrary
//! bytes, as a client's socket delivers them. Checks the crate's promises: no panic,
//! progress on every parsed command, `Ok(None)` leaves the buffer unchanged, the
//! resumable decoder fed in small pieces gives exactly the same commands and error as
//! parsing the whole input at once, and every decoded command re-encoded as an array
//! of bulk strings decodes to the same arguments.
//!
//! Input: `chunk u8 | bytes`; `chunk % 16 + 1` is the piece size fed to the decoder.
#![no_main]

use bytes::{BufMut, Bytes, BytesMut};
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
                assert!(!cmd.is_empty(), "a command has at least one argument");
                assert!(buf.len() < before.len(), "no progress");
                round_trip(&cmd);
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

    // The server's own limits, on the whole input: no panic.
    let mut buf = BytesMut::from(input);
    while let Ok(Some(_)) = parse_command(&mut buf, &Limits::default()) {}
});

/// `args` written as a RESP array of bulk strings parses back to `args`, and to
/// nothing more.
fn round_trip(args: &[Bytes]) {
    let mut out = BytesMut::new();
    out.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.put_slice(format!("${}\r\n", a.len()).as_bytes());
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
    let again = parse_command(&mut out, &Limits::default())
        .expect("a re-encoded command parses")
        .expect("a re-encoded command is complete");
    assert_eq!(again, args, "re-encoded command decodes differently");
    assert!(out.is_empty(), "re-encoded command left bytes behind");
}
