//! The protocol as a specification: exact bytes, framing, quoting, limits and
//! Redis's error wording.

use bytes::{Bytes, BytesMut};
use resp::{
    encode, parse_command, parse_frame, CommandDecoder, Frame, Limits, ProtocolError, Version,
};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn enc(frame: &Frame, version: Version) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(frame, version, &mut out);
    out.to_vec()
}

fn args(list: &[&str]) -> Vec<Bytes> {
    list.iter().map(|s| b(s)).collect()
}

/// Parses every command in `input` with default limits.
fn commands(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(cmd) = parse_command(&mut buf, &Limits::default())? {
        out.push(cmd);
    }
    Ok(out)
}

fn first_error(input: &[u8], limits: &Limits) -> ProtocolError {
    let mut buf = BytesMut::from(input);
    loop {
        match parse_command(&mut buf, limits) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error for {:?}", String::from_utf8_lossy(input)),
            Err(e) => return e,
        }
    }
}

// ---------------------------------------------------------------- encoding

#[test]
fn every_frame_type_has_exact_bytes_in_both_versions() {
    let cases: Vec<(Frame, &str, &str)> = vec![
        (Frame::simple("OK"), "+OK\r\n", "+OK\r\n"),
        (
            Frame::error("ERR unknown command 'foo'"),
            "-ERR unknown command 'foo'\r\n",
            "-ERR unknown command 'foo'\r\n",
        ),
        (Frame::Integer(0), ":0\r\n", ":0\r\n"),
        (Frame::Integer(-42), ":-42\r\n", ":-42\r\n"),
        (
            Frame::Integer(i64::MIN),
            ":-9223372036854775808\r\n",
            ":-9223372036854775808\r\n",
        ),
        (
            Frame::Bulk(b("hello")),
            "$5\r\nhello\r\n",
            "$5\r\nhello\r\n",
        ),
        (Frame::Bulk(b("")), "$0\r\n\r\n", "$0\r\n\r\n"),
        (
            Frame::Bulk(b("a\r\nb")),
            "$4\r\na\r\nb\r\n",
            "$4\r\na\r\nb\r\n",
        ),
        (Frame::Null, "$-1\r\n", "_\r\n"),
        (Frame::NullArray, "*-1\r\n", "_\r\n"),
        (Frame::Array(vec![]), "*0\r\n", "*0\r\n"),
        (
            Frame::Array(vec![Frame::Integer(1), Frame::Bulk(b("x")), Frame::Null]),
            "*3\r\n:1\r\n$1\r\nx\r\n$-1\r\n",
            "*3\r\n:1\r\n$1\r\nx\r\n_\r\n",
        ),
        (
            Frame::Map(vec![
                (Frame::simple("a"), Frame::Integer(1)),
                (Frame::simple("b"), Frame::Boolean(true)),
            ]),
            "*4\r\n+a\r\n:1\r\n+b\r\n:1\r\n",
            "%2\r\n+a\r\n:1\r\n+b\r\n#t\r\n",
        ),
        (Frame::Double(1.5), "$3\r\n1.5\r\n", ",1.5\r\n"),
        (Frame::Double(3.0), "$1\r\n3\r\n", ",3\r\n"),
        (Frame::Double(f64::INFINITY), "$3\r\ninf\r\n", ",inf\r\n"),
        (
            Frame::Double(f64::NEG_INFINITY),
            "$4\r\n-inf\r\n",
            ",-inf\r\n",
        ),
        (Frame::Double(f64::NAN), "$3\r\nnan\r\n", ",nan\r\n"),
        (Frame::Boolean(true), ":1\r\n", "#t\r\n"),
        (Frame::Boolean(false), ":0\r\n", "#f\r\n"),
        (
            Frame::Verbatim {
                format: *b"txt",
                text: b("Some string"),
            },
            "$11\r\nSome string\r\n",
            "=15\r\ntxt:Some string\r\n",
        ),
        (
            Frame::Set(vec![Frame::Integer(1), Frame::Integer(2)]),
            "*2\r\n:1\r\n:2\r\n",
            "~2\r\n:1\r\n:2\r\n",
        ),
        (
            Frame::BigNumber(b("3492890328409238509324850943850943825024385")),
            "$43\r\n3492890328409238509324850943850943825024385\r\n",
            "(3492890328409238509324850943850943825024385\r\n",
        ),
        (
            Frame::Push(vec![Frame::Bulk(b("message")), Frame::Bulk(b("ch"))]),
            "*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n",
            ">2\r\n$7\r\nmessage\r\n$2\r\nch\r\n",
        ),
    ];
    for (frame, resp2, resp3) in cases {
        assert_eq!(
            String::from_utf8(enc(&frame, Version::Resp2)).unwrap(),
            resp2,
            "RESP2 {frame:?}"
        );
        assert_eq!(
            String::from_utf8(enc(&frame, Version::Resp3)).unwrap(),
            resp3,
            "RESP3 {frame:?}"
        );
    }
}

#[test]
fn line_frames_never_emit_a_raw_line_break() {
    let frame = Frame::Error(b("ERR bad\r\nthing"));
    assert_eq!(enc(&frame, Version::Resp2), b"-ERR bad  thing\r\n");
    let frame = Frame::SimpleString(b("a\nb"));
    assert_eq!(enc(&frame, Version::Resp3), b"+a b\r\n");
}

#[test]
fn encode_appends_without_touching_existing_bytes() {
    let mut out = BytesMut::from(&b"+OK\r\n"[..]);
    encode(&Frame::Integer(5), Version::Resp2, &mut out);
    assert_eq!(&out[..], b"+OK\r\n:5\r\n");
}

#[test]
fn protocol_error_reply_is_redis_text_after_dash_err() {
    let frame = ProtocolError::InvalidMultibulkLength.to_frame();
    assert_eq!(
        enc(&frame, Version::Resp2),
        b"-ERR Protocol error: invalid multibulk length\r\n"
    );
}

#[test]
fn protocol_error_texts_match_redis() {
    let cases = [
        (
            ProtocolError::InvalidMultibulkLength,
            "Protocol error: invalid multibulk length",
        ),
        (
            ProtocolError::InvalidBulkLength,
            "Protocol error: invalid bulk length",
        ),
        (
            ProtocolError::ExpectedDollar(b'x'),
            "Protocol error: expected '$', got 'x'",
        ),
        (
            ProtocolError::ExpectedDollar(b'\r'),
            "Protocol error: expected '$', got ' '",
        ),
        (
            ProtocolError::ExpectedDollar(0xff),
            "Protocol error: expected '$', got '\\xff'",
        ),
        (
            ProtocolError::UnbalancedQuotes,
            "Protocol error: unbalanced quotes in request",
        ),
        (
            ProtocolError::TooBigInlineRequest,
            "Protocol error: too big inline request",
        ),
        (
            ProtocolError::TooBigMbulkCountString,
            "Protocol error: too big mbulk count string",
        ),
        (
            ProtocolError::TooBigBulkCountString,
            "Protocol error: too big bulk count string",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}

// ---------------------------------------------------------- reply parsing

#[test]
fn parse_frame_reads_every_resp3_type_natively() {
    let cases: Vec<(&str, Frame)> = vec![
        ("+OK\r\n", Frame::simple("OK")),
        ("-ERR x\r\n", Frame::error("ERR x")),
        ("!5\r\nERR x\r\n", Frame::error("ERR x")),
        (":+7\r\n", Frame::Integer(7)),
        ("$-1\r\n", Frame::Null),
        ("*-1\r\n", Frame::NullArray),
        ("_\r\n", Frame::Null),
        (",-1.25e-3\r\n", Frame::Double(-1.25e-3)),
        (",inf\r\n", Frame::Double(f64::INFINITY)),
        ("#f\r\n", Frame::Boolean(false)),
        ("(-12\r\n", Frame::BigNumber(b("-12"))),
        (
            "=8\r\nmkd:# hi\r\n",
            Frame::Verbatim {
                format: *b"mkd",
                text: b("# hi"),
            },
        ),
        (
            "%1\r\n+k\r\n~1\r\n:1\r\n",
            Frame::Map(vec![(
                Frame::simple("k"),
                Frame::Set(vec![Frame::Integer(1)]),
            )]),
        ),
        (">1\r\n+m\r\n", Frame::Push(vec![Frame::simple("m")])),
        // An attribute is dropped and the frame after it returned.
        ("|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n", Frame::Bulk(b("hi"))),
    ];
    for (input, want) in cases {
        let mut buf = BytesMut::from(input.as_bytes());
        let got = parse_frame(&mut buf, &Limits::default()).unwrap();
        assert_eq!(got, Some(want), "{input:?}");
        assert!(buf.is_empty(), "{input:?} left {buf:?}");
    }
}

#[test]
fn parse_frame_rejects_malformed_replies() {
    let cases: Vec<(&str, ProtocolError)> = vec![
        ("?x\r\n", ProtocolError::UnexpectedType(b'?')),
        (":1x\r\n", ProtocolError::InvalidValue("integer")),
        (":+-1\r\n", ProtocolError::InvalidValue("integer")),
        ("#x\r\n", ProtocolError::InvalidValue("boolean")),
        (",\r\n", ProtocolError::InvalidValue("double")),
        ("_x\r\n", ProtocolError::InvalidValue("null")),
        ("(1a\r\n", ProtocolError::InvalidValue("big number")),
        (
            "=3\r\ntxt\r\n",
            ProtocolError::InvalidValue("verbatim string"),
        ),
        ("$-2\r\n", ProtocolError::InvalidBulkLength),
        ("$?\r\n", ProtocolError::InvalidBulkLength),
        ("$1\r\nab\r\n", ProtocolError::BulkNotTerminated),
        ("*-2\r\n", ProtocolError::InvalidMultibulkLength),
        ("~-1\r\n", ProtocolError::InvalidMultibulkLength),
        ("+a\rb\r\n", ProtocolError::InvalidValue("line terminator")),
    ];
    for (input, want) in cases {
        let mut buf = BytesMut::from(input.as_bytes());
        assert_eq!(
            parse_frame(&mut buf, &Limits::default()),
            Err(want),
            "{input:?}"
        );
    }
}

#[test]
fn parse_frame_limits_depth_and_sizes_before_allocating() {
    let deep = "*1\r\n".repeat(resp::FRAME_DEPTH_MAX + 1) + ":1\r\n";
    let mut buf = BytesMut::from(deep.as_bytes());
    assert_eq!(
        parse_frame(&mut buf, &Limits::default()),
        Err(ProtocolError::TooDeep)
    );
    let ok = "*1\r\n".repeat(resp::FRAME_DEPTH_MAX) + ":1\r\n";
    let mut buf = BytesMut::from(ok.as_bytes());
    assert!(parse_frame(&mut buf, &Limits::default()).unwrap().is_some());

    let limits = Limits {
        bulk_bytes_max: 10,
        args_max: 3,
        inline_bytes_max: 8,
    };
    let mut buf = BytesMut::from(&b"$11\r\n"[..]);
    assert_eq!(
        parse_frame(&mut buf, &limits),
        Err(ProtocolError::InvalidBulkLength)
    );
    let mut buf = BytesMut::from(&b"%4\r\n"[..]);
    assert_eq!(
        parse_frame(&mut buf, &limits),
        Err(ProtocolError::InvalidMultibulkLength)
    );
    let mut buf = BytesMut::from(&b"+123456789"[..]);
    assert_eq!(
        parse_frame(&mut buf, &limits),
        Err(ProtocolError::LineTooLong)
    );
}

#[test]
fn parse_frame_incomplete_leaves_buffer_unchanged() {
    let whole = b"*2\r\n$5\r\nhello\r\n%1\r\n+a\r\n:1\r\n";
    for cut in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        assert_eq!(parse_frame(&mut buf, &Limits::default()), Ok(None), "{cut}");
        assert_eq!(&buf[..], &whole[..cut]);
    }
}

// -------------------------------------------------------- command parsing

#[test]
fn array_command_is_parsed_and_consumed() {
    let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\nrest"[..]);
    let cmd = parse_command(&mut buf, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(cmd, args(&["SET", "a", ""]));
    assert_eq!(&buf[..], b"rest");
}

#[test]
fn arguments_are_slices_of_the_input_buffer() {
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nGET plain\r\n"[..]);
    let base = buf.as_ptr() as usize;
    let cmd = parse_command(&mut buf, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(cmd[0].as_ptr() as usize, base + 8);
    assert_eq!(cmd[1].as_ptr() as usize, base + 17);
    let cmd = parse_command(&mut buf, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(cmd[1].as_ptr() as usize, base + 26);
}

#[test]
fn pipelined_commands_parse_one_after_another() {
    let input = b"*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\r\nSET a b\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n";
    assert_eq!(
        commands(input).unwrap(),
        vec![
            args(&["PING"]),
            args(&["PING"]),
            args(&["GET", "k"]),
            args(&["SET", "a", "b"]),
            args(&["ECHO", "hi"]),
        ]
    );
}

/// Feeds `first` then all of `input`; returns the commands and final error.
fn parse_in_two_feeds(
    input: &[u8],
    split: usize,
    limits: &Limits,
) -> (Vec<Vec<Bytes>>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for part in [&input[..split], &input[split..]] {
        buf.extend_from_slice(part);
        loop {
            let before = buf.clone();
            match parse_command(&mut buf, limits) {
                Ok(Some(cmd)) => out.push(cmd),
                Ok(None) => {
                    assert_eq!(buf, before, "Ok(None) changed the buffer");
                    break;
                }
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

#[test]
fn a_split_at_every_byte_boundary_parses_identically() {
    let inputs: [&[u8]; 4] = [
        b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\nPING\r\n\r\n*0\r\nSET \"a b\" 'c'\r\n*1\r\n$4\r\nQUIT\r\n",
        b"GET a\n*-1\r\n*1\r\n$1\r\nx\r\n",
        b"*2\r\n$1\r\na\r\n:1\r\n",
        b"SET \"unterminated\r\n",
    ];
    for input in inputs {
        let whole = parse_in_two_feeds(input, input.len(), &Limits::default());
        for split in 0..=input.len() {
            assert_eq!(
                parse_in_two_feeds(input, split, &Limits::default()),
                whole,
                "split at {split} of {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn decoder_matches_parse_command_when_fed_byte_by_byte() {
    let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\nPING\r\n\r\n*0\r\nSET \"a b\" 'c'\r\n*1\r\n$4\r\nQUIT\r\n";
    let mut decoder = CommandDecoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for &byte in input.iter() {
        buf.extend_from_slice(&[byte]);
        while let Some(cmd) = decoder.decode(&mut buf).unwrap() {
            out.push(cmd);
        }
    }
    assert_eq!(out, commands(input).unwrap());
    assert_eq!(out.len(), 4);
}

#[test]
fn decoder_survives_a_replaced_buffer() {
    let mut decoder = CommandDecoder::default();
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    let mut other = BytesMut::from(&b"PING\r\n"[..]);
    assert_eq!(decoder.decode(&mut other), Ok(Some(args(&["PING"]))));
}

#[test]
fn inline_commands_follow_redis_quoting() {
    assert_eq!(
        commands(b"SET \"a b\" 'c'\r\n").unwrap(),
        vec![args(&["SET", "a b", "c"])]
    );
    assert_eq!(
        commands(b"  set   k   \"l1\\nl2\\x41\"  \r\n").unwrap(),
        vec![args(&["set", "k", "l1\nl2A"])]
    );
    assert_eq!(
        commands(b"ECHO 'don\\'t'\n").unwrap(),
        vec![args(&["ECHO", "don't"])]
    );
}

#[test]
fn empty_inline_lines_and_empty_arrays_are_skipped() {
    assert_eq!(
        commands(b"\r\n\n   \r\n").unwrap(),
        Vec::<Vec<Bytes>>::new()
    );
    assert_eq!(
        commands(b"\r\n*0\r\n*-1\r\nPING\r\n").unwrap(),
        vec![args(&["PING"])]
    );
    // Skipping never consumes when no command follows.
    let mut buf = BytesMut::from(&b"\r\n*0\r\n"[..]);
    assert_eq!(parse_command(&mut buf, &Limits::default()), Ok(None));
    assert_eq!(&buf[..], b"\r\n*0\r\n");
}

#[test]
fn unbalanced_quotes_are_an_error() {
    for input in [&b"SET \"a b\r\n"[..], b"SET 'a\r\n", b"SET \"a\"b c\r\n"] {
        assert_eq!(
            first_error(input, &Limits::default()),
            ProtocolError::UnbalancedQuotes
        );
    }
}

#[test]
fn garbage_and_negative_lengths_use_redis_wording() {
    let cases: [(&[u8], ProtocolError); 11] = [
        (b"*x\r\n", ProtocolError::InvalidMultibulkLength),
        (b"*1x\r\n", ProtocolError::InvalidMultibulkLength),
        (b"*+1\r\n", ProtocolError::InvalidMultibulkLength),
        (b"*\r\n", ProtocolError::InvalidMultibulkLength),
        (b"*1\rx", ProtocolError::InvalidMultibulkLength),
        (b"*1\r\n$-1\r\n", ProtocolError::InvalidBulkLength),
        (b"*1\r\n$x\r\n", ProtocolError::InvalidBulkLength),
        (b"*1\r\n$01\r\n", ProtocolError::InvalidBulkLength),
        (b"*1\r\n:1\r\n", ProtocolError::ExpectedDollar(b':')),
        (b"*2\r\n$1\r\na\r\nx", ProtocolError::ExpectedDollar(b'x')),
        (b"*1\r\n$1\r\nab\r\n", ProtocolError::BulkNotTerminated),
    ];
    for (input, want) in cases {
        assert_eq!(
            first_error(input, &Limits::default()),
            want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn bulk_length_above_limit_fails_before_the_payload_arrives() {
    // Only the header is present: the error must not wait for (or allocate)
    // the 512 MiB + 1 payload.
    let input = b"*1\r\n$536870913\r\n";
    assert_eq!(
        first_error(input, &Limits::default()),
        ProtocolError::InvalidBulkLength
    );
    let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\n"[..]);
    assert_eq!(parse_command(&mut buf, &Limits::default()), Ok(None));
    let small = Limits {
        bulk_bytes_max: 3,
        ..Limits::default()
    };
    assert_eq!(
        commands_with(b"*1\r\n$3\r\nabc\r\n", &small).unwrap(),
        vec![args(&["abc"])]
    );
    assert_eq!(
        first_error(b"*1\r\n$4\r\n", &small),
        ProtocolError::InvalidBulkLength
    );
}

fn commands_with(input: &[u8], limits: &Limits) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(cmd) = parse_command(&mut buf, limits)? {
        out.push(cmd);
    }
    Ok(out)
}

#[test]
fn argument_count_above_limit_is_an_error() {
    let limits = Limits {
        args_max: 2,
        ..Limits::default()
    };
    assert_eq!(
        first_error(b"*3\r\n", &limits),
        ProtocolError::InvalidMultibulkLength
    );
    assert_eq!(
        commands_with(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", &limits).unwrap(),
        vec![args(&["a", "b"])]
    );
    // Default: 1,048,576 like Redis; one more is refused before any element.
    assert_eq!(
        first_error(b"*1048577\r\n", &Limits::default()),
        ProtocolError::InvalidMultibulkLength
    );
    let mut buf = BytesMut::from(&b"*1048576\r\n"[..]);
    assert_eq!(parse_command(&mut buf, &Limits::default()), Ok(None));
    assert!(buf.len() == 10);
}

#[test]
fn overlong_lines_are_errors_with_redis_wording() {
    let limits = Limits {
        inline_bytes_max: 16,
        ..Limits::default()
    };
    // Without a newline yet.
    assert_eq!(
        first_error(&[b'a'; 17], &limits),
        ProtocolError::TooBigInlineRequest
    );
    // With the newline, the same answer.
    let mut long = vec![b'a'; 17];
    long.extend_from_slice(b"\r\n");
    assert_eq!(
        first_error(&long, &limits),
        ProtocolError::TooBigInlineRequest
    );
    // Exactly at the limit is fine.
    let mut ok = vec![b'a'; 16];
    ok.push(b'\n');
    assert_eq!(commands_with(&ok, &limits).unwrap().len(), 1);

    let mut count = b"*".to_vec();
    count.extend_from_slice(&[b'1'; 16]);
    assert_eq!(
        first_error(&count, &limits),
        ProtocolError::TooBigMbulkCountString
    );
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.extend_from_slice(&[b'1'; 16]);
    assert_eq!(
        first_error(&bulk, &limits),
        ProtocolError::TooBigBulkCountString
    );
    // Endless blank lines cannot grow the buffer without bound.
    assert_eq!(
        first_error(&b"\r\n".repeat(9), &limits),
        ProtocolError::TooBigInlineRequest
    );
}
