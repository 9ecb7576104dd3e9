//! Properties over generated input: round trips, robustness, and the
//! "incomplete leaves the buffer unchanged" rule.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use resp::{
    encode, parse_command, parse_frame, CommandDecoder, Frame, Limits, ProtocolError, Version,
};

fn bytes_any() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

/// Text that fits on one RESP line (no CR or LF).
fn line_text() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..16,
    )
    .prop_map(Bytes::from)
}

fn big_number() -> impl Strategy<Value = Bytes> {
    "-?[0-9]{1,40}".prop_map(|s| Bytes::from(s.into_bytes()))
}

fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(-0.0),
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
    ]
}

/// Any frame whose RESP3 encoding parses back to itself (all but NullArray).
fn resp3_frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_text().prop_map(Frame::SimpleString),
        line_text().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        bytes_any().prop_map(Frame::Bulk),
        Just(Frame::Null),
        double().prop_map(Frame::Double),
        any::<bool>().prop_map(Frame::Boolean),
        (any::<[u8; 3]>(), bytes_any()).prop_map(|(format, text)| Frame::Verbatim { format, text }),
        big_number().prop_map(Frame::BigNumber),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Array),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Set),
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Frame::Push),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

/// The frames RESP2 represents one-to-one.
fn resp2_frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line_text().prop_map(Frame::SimpleString),
        line_text().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        bytes_any().prop_map(Frame::Bulk),
        Just(Frame::Null),
        Just(Frame::NullArray),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        proptest::collection::vec(inner, 0..6).prop_map(Frame::Array)
    })
}

fn command() -> impl Strategy<Value = Vec<Bytes>> {
    proptest::collection::vec(bytes_any(), 1..8)
}

fn encode_command(args: &[Bytes], out: &mut BytesMut) {
    let frame = Frame::Array(args.iter().cloned().map(Frame::Bulk).collect());
    encode(&frame, Version::Resp2, out);
}

/// Drains `buf` with `parse_command`, checking progress on every call so a
/// bug cannot loop forever, and the unchanged-buffer rule on `Ok(None)`.
fn drain_commands(buf: &mut BytesMut, limits: &Limits) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
    let mut out = Vec::new();
    loop {
        let before = buf.clone();
        match parse_command(buf, limits)? {
            Some(cmd) => {
                assert!(!cmd.is_empty(), "a command has at least one argument");
                assert!(buf.len() < before.len(), "a parsed command consumes input");
                out.push(cmd);
            }
            None => {
                assert_eq!(*buf, before, "Ok(None) must leave the buffer unchanged");
                return Ok(out);
            }
        }
    }
}

fn small_limits() -> Limits {
    Limits {
        bulk_bytes_max: 64,
        args_max: 16,
        inline_bytes_max: 64,
    }
}

/// Bytes that look a lot like RESP, to reach deep parser states.
fn resp_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"%".to_vec()),
        Just(b"|".to_vec()),
        Just(b"=".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\".to_vec()),
        Just(b" ".to_vec()),
        Just(b"-1".to_vec()),
        (0u32..20).prop_map(|n| n.to_string().into_bytes()),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn resp3_encoding_round_trips(frame in resp3_frame()) {
        let mut buf = BytesMut::new();
        encode(&frame, Version::Resp3, &mut buf);
        buf.extend_from_slice(b"+next\r\n");
        let parsed = parse_frame(&mut buf, &Limits::default()).unwrap();
        prop_assert_eq!(parsed, Some(frame));
        prop_assert_eq!(&buf[..], b"+next\r\n");
    }

    #[test]
    fn resp2_encoding_round_trips_for_its_types(frame in resp2_frame()) {
        let mut buf = BytesMut::new();
        encode(&frame, Version::Resp2, &mut buf);
        let parsed = parse_frame(&mut buf, &Limits::default()).unwrap();
        prop_assert_eq!(parsed, Some(frame));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn every_strict_prefix_of_a_frame_is_incomplete(frame in resp3_frame()) {
        let mut whole = BytesMut::new();
        encode(&frame, Version::Resp3, &mut whole);
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            prop_assert_eq!(parse_frame(&mut buf, &Limits::default()), Ok(None));
            prop_assert_eq!(&buf[..], &whole[..cut]);
        }
    }

    #[test]
    fn encoded_commands_parse_back(cmds in proptest::collection::vec(command(), 1..6)) {
        let mut buf = BytesMut::new();
        for cmd in &cmds {
            encode_command(cmd, &mut buf);
        }
        let parsed = drain_commands(&mut buf, &Limits::default()).unwrap();
        prop_assert_eq!(parsed, cmds);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn commands_split_anywhere_parse_the_same(
        cmds in proptest::collection::vec(command(), 1..4),
        split in any::<prop::sample::Index>(),
    ) {
        let mut whole = BytesMut::new();
        for cmd in &cmds {
            encode_command(cmd, &mut whole);
        }
        let split = split.index(whole.len() + 1);
        let mut buf = BytesMut::from(&whole[..split]);
        let mut parsed = drain_commands(&mut buf, &Limits::default()).unwrap();
        buf.extend_from_slice(&whole[split..]);
        parsed.extend(drain_commands(&mut buf, &Limits::default()).unwrap());
        prop_assert_eq!(parsed, cmds);
    }

    #[test]
    fn decoder_agrees_with_parse_command_on_any_chunking(
        input in resp_like_bytes(),
        chunk in 1usize..8,
    ) {
        let limits = small_limits();
        let mut whole = BytesMut::from(&input[..]);
        let expected = drain_commands(&mut whole, &limits);
        let mut decoder = CommandDecoder::new(limits);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut error = None;
        'feed: for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(cmd)) => got.push(cmd),
                    Ok(None) => break,
                    Err(e) => { error = Some(e); break 'feed; }
                }
            }
        }
        match expected {
            Ok(cmds) => {
                prop_assert_eq!(error, None);
                prop_assert_eq!(got, cmds);
            }
            Err(e) => prop_assert_eq!(error, Some(e)),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_parse_command(
        input in prop_oneof![proptest::collection::vec(any::<u8>(), 0..256), resp_like_bytes()],
    ) {
        for limits in [Limits::default(), small_limits()] {
            let mut buf = BytesMut::from(&input[..]);
            let _ = drain_commands(&mut buf, &limits);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_parse_frame(
        input in prop_oneof![proptest::collection::vec(any::<u8>(), 0..256), resp_like_bytes()],
    ) {
        for limits in [Limits::default(), small_limits()] {
            let mut buf = BytesMut::from(&input[..]);
            loop {
                let before = buf.clone();
                match parse_frame(&mut buf, &limits) {
                    Ok(Some(_)) => prop_assert!(buf.len() < before.len()),
                    Ok(None) => {
                        prop_assert_eq!(&buf, &before);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }
}
