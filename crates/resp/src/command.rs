//! Client request parsing: RESP arrays of bulk strings and inline commands.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::{find_byte, parse_i64_strict, Limits, ProtocolError};

/// Parses one client request from the front of `buf`.
///
/// A request is either a RESP array of bulk strings (`*2\r\n$3\r\nGET\r\n`
/// `$1\r\na\r\n`) or, when the first byte is not `*`, an inline command
/// (`SET a b\r\n`, `\n` alone also ends a line) split on whitespace with
/// Redis's quoting rules: `"..."` understands `\"`, `\\`, `\n`, `\r`, `\t`,
/// `\b`, `\a` and `\xHH`; `'...'` understands `\'`; a closing quote must be
/// followed by whitespace or the end of the line.
///
/// Returns:
/// * `Ok(Some(args))`: a complete request; `buf` has been advanced past it.
///   `args` is never empty. Each argument is a zero-copy slice of the bytes
///   split off `buf`, except inline arguments that used quotes, which are
///   fresh buffers.
/// * `Ok(None)`: no complete request yet. `buf` is left **unchanged**; call
///   again after appending more bytes.
/// * `Err(e)`: the input is not valid; send [`ProtocolError::to_frame`] and
///   close the connection (the buffer's contents are then unspecified).
///
/// Input that carries no command (empty inline lines, `*0\r\n`, and `*-N\r\n`,
/// which Redis also ignores) is skipped together with the next request. To
/// keep the buffer from growing without bound, more than
/// [`Limits::inline_bytes_max`] such bytes before a request is
/// [`ProtocolError::TooBigInlineRequest`].
///
/// The result depends only on the bytes in `buf`, not on how they arrived: a
/// prefix of a valid stream yields `Ok(None)`, and any prefix that yields an
/// error is followed by the same error on the full input.
///
/// # Cost
///
/// The function keeps no state, so each call re-reads the pending request from
/// the front of `buf`: for an array, its headers (`*N`, then `$len` for each
/// complete argument; payloads are skipped by length, never scanned); for an
/// inline command, the line, bounded by `inline_bytes_max`. Feeding one
/// request of `n` arguments in `k` pieces thus costs `O(k * n)` header reads.
/// Pipelined requests already in the buffer each cost `O(own size)`. When a
/// single request may arrive in many pieces, use [`CommandDecoder`], which
/// resumes where it stopped and costs `O(total bytes)` overall.
pub fn parse_command(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    State::default().step(buf, limits)
}

/// A resumable version of [`parse_command`] for one connection's buffer.
///
/// Same results as [`parse_command`] on the same bytes, but it remembers how
/// far it has validated an incomplete request, so each input byte is examined
/// a bounded number of times however the request is split: total cost is
/// linear in the input.
///
/// Contract: between calls the caller may only *append* to `buf` (as a socket
/// read does). If `buf` is replaced or shrunk, call [`CommandDecoder::reset`]
/// first; a shrunk buffer is detected and causes a reset, and misuse never
/// panics but may give wrong results. After an error, the connection is to be
/// closed; the decoder is reset.
#[derive(Debug, Clone, Default)]
pub struct CommandDecoder {
    limits: Limits,
    state: State,
}

impl CommandDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> CommandDecoder {
        CommandDecoder {
            limits,
            state: State::default(),
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forgets any partial progress, as if newly created.
    pub fn reset(&mut self) {
        self.state = State::default();
    }

    /// Parses the next request from `buf`; see [`parse_command`] for the
    /// meaning of the result. On `Ok(None)`, `buf` is unchanged and the
    /// progress made is remembered for the next call.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if buf.len() < self.state.seen_len {
            self.state = State::default();
        }
        let result = self.state.step(buf, &self.limits);
        match &result {
            Ok(None) => self.state.seen_len = buf.len(),
            Ok(Some(_)) | Err(_) => self.state = State::default(),
        }
        result
    }
}

/// Progress through the pending request. All offsets are from the front of
/// the buffer and never exceed `seen_len` (the buffer length when it was
/// saved), so they stay in bounds as long as the buffer only grows.
#[derive(Debug, Clone, Default)]
struct State {
    /// Bytes of no-op input (empty lines, `*0`) before the pending request.
    start: usize,
    /// The current line (from `start`, or from the current `$` header) has
    /// no terminator before this offset.
    scanned: usize,
    /// Buffer length when `Ok(None)` was last returned.
    seen_len: usize,
    phase: Phase,
}

#[derive(Debug, Clone, Default)]
enum Phase {
    /// Nothing known about the request at `start`.
    #[default]
    Idle,
    /// An inline command starting at `start`.
    Inline,
    /// The `*N` line starting at `start`.
    Count,
    /// The arguments of an array request.
    Args(Args),
}

#[derive(Debug, Clone)]
struct Args {
    /// Arguments still to read.
    remaining: usize,
    /// Offset of the next `$` header (or of the payload's end + CRLF when
    /// `bulk` is set).
    pos: usize,
    /// The current argument's payload: (start offset, length), once its header
    /// has been read.
    bulk: Option<(usize, usize)>,
    /// The arguments read so far.
    ranges: Vec<Range<usize>>,
}

/// At most this many argument slots are reserved up front, whatever `*N`
/// claims, so a lying count cannot make us allocate.
const PREALLOCATE_ARGS_MAX: usize = 64;

impl State {
    fn step(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            let data: &[u8] = buf;
            match &mut self.phase {
                Phase::Idle => {
                    if self.start > limits.inline_bytes_max {
                        return Err(ProtocolError::TooBigInlineRequest);
                    }
                    let Some(&first) = data.get(self.start) else {
                        return Ok(None);
                    };
                    if first == b'*' {
                        self.phase = Phase::Count;
                        self.scanned = self.start + 1;
                    } else {
                        self.phase = Phase::Inline;
                        self.scanned = self.start;
                    }
                }
                Phase::Inline => {
                    let Some(newline) = find_byte(data, self.scanned, b'\n') else {
                        self.scanned = data.len();
                        if data.len() - self.start > limits.inline_bytes_max {
                            return Err(ProtocolError::TooBigInlineRequest);
                        }
                        return Ok(None);
                    };
                    if newline - self.start > limits.inline_bytes_max {
                        return Err(ProtocolError::TooBigInlineRequest);
                    }
                    let mut end = newline;
                    if end > self.start && data.get(end - 1) == Some(&b'\r') {
                        end -= 1;
                    }
                    let line = data.get(self.start..end).unwrap_or_default();
                    let tokens = split_inline(line)?;
                    if tokens.is_empty() {
                        self.start = newline + 1;
                        self.phase = Phase::Idle;
                        continue;
                    }
                    let start = self.start;
                    let chunk = buf.split_to(newline + 1).freeze();
                    let line = chunk.slice(start..end);
                    let args = tokens
                        .into_iter()
                        .map(|token| match token {
                            Token::Slice(range) => line.slice(range),
                            Token::Owned(bytes) => Bytes::from(bytes),
                        })
                        .collect();
                    *self = State::default();
                    return Ok(Some(args));
                }
                Phase::Count => {
                    let Some(cr) = find_byte(data, self.scanned, b'\r') else {
                        self.scanned = data.len();
                        if data.len() - self.start > limits.inline_bytes_max {
                            return Err(ProtocolError::TooBigMbulkCountString);
                        }
                        return Ok(None);
                    };
                    if cr - self.start > limits.inline_bytes_max {
                        return Err(ProtocolError::TooBigMbulkCountString);
                    }
                    self.scanned = cr;
                    match data.get(cr + 1) {
                        None => return Ok(None),
                        Some(b'\n') => {}
                        Some(_) => return Err(ProtocolError::InvalidMultibulkLength),
                    }
                    let digits = data.get(self.start + 1..cr).unwrap_or_default();
                    let count =
                        parse_i64_strict(digits).ok_or(ProtocolError::InvalidMultibulkLength)?;
                    if count <= 0 {
                        // Redis ignores empty and negative multibulk requests.
                        self.start = cr + 2;
                        self.phase = Phase::Idle;
                        continue;
                    }
                    let count = usize::try_from(count)
                        .ok()
                        .filter(|&n| n <= limits.args_max && n <= i32::MAX as usize)
                        .ok_or(ProtocolError::InvalidMultibulkLength)?;
                    self.scanned = cr + 2;
                    self.phase = Phase::Args(Args {
                        remaining: count,
                        pos: cr + 2,
                        bulk: None,
                        ranges: Vec::with_capacity(count.min(PREALLOCATE_ARGS_MAX)),
                    });
                }
                Phase::Args(args) => {
                    let Some(end) = read_args(args, &mut self.scanned, data, limits)? else {
                        return Ok(None);
                    };
                    let ranges = std::mem::take(&mut args.ranges);
                    let chunk = buf.split_to(end).freeze();
                    *self = State::default();
                    return Ok(Some(
                        ranges.into_iter().map(|range| chunk.slice(range)).collect(),
                    ));
                }
            }
        }
    }
}

/// Reads arguments until all are complete (returns the request's end offset)
/// or the data runs out (returns `None`, with `args` recording the progress).
fn read_args(
    args: &mut Args,
    scanned: &mut usize,
    data: &[u8],
    limits: &Limits,
) -> Result<Option<usize>, ProtocolError> {
    while args.remaining > 0 {
        if let Some((payload, len)) = args.bulk {
            let end = payload
                .checked_add(len)
                .ok_or(ProtocolError::InvalidBulkLength)?;
            let Some(terminator) = data.get(end..end.saturating_add(2)) else {
                return Ok(None);
            };
            if terminator != b"\r\n" {
                return Err(ProtocolError::BulkNotTerminated);
            }
            args.ranges.push(payload..end);
            args.remaining -= 1;
            args.pos = end + 2;
            args.bulk = None;
            *scanned = args.pos;
            continue;
        }
        let Some(&first) = data.get(args.pos) else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(ProtocolError::ExpectedDollar(first));
        }
        let from = (*scanned).max(args.pos + 1);
        let Some(cr) = find_byte(data, from, b'\r') else {
            *scanned = data.len();
            if data.len() - args.pos > limits.inline_bytes_max {
                return Err(ProtocolError::TooBigBulkCountString);
            }
            return Ok(None);
        };
        if cr - args.pos > limits.inline_bytes_max {
            return Err(ProtocolError::TooBigBulkCountString);
        }
        *scanned = cr;
        match data.get(cr + 1) {
            None => return Ok(None),
            Some(b'\n') => {}
            Some(_) => return Err(ProtocolError::InvalidBulkLength),
        }
        let digits = data.get(args.pos + 1..cr).unwrap_or_default();
        let len = parse_i64_strict(digits)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= limits.bulk_bytes_max)
            .ok_or(ProtocolError::InvalidBulkLength)?;
        args.bulk = Some((cr + 2, len));
    }
    Ok(Some(args.pos))
}

/// One inline argument: a range of the line, or bytes rebuilt because of
/// quotes or escapes.
#[derive(Debug, PartialEq, Eq)]
enum Token {
    Slice(Range<usize>),
    Owned(Vec<u8>),
}

/// Whitespace between arguments (C's `isspace`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Splits an inline line into arguments following Redis's `sdssplitargs`.
/// (Unlike C, a NUL byte is ordinary data.)
fn split_inline(line: &[u8]) -> Result<Vec<Token>, ProtocolError> {
    let mut tokens = Vec::new();
    let mut p = 0;
    loop {
        while line.get(p).is_some_and(|&b| is_space(b)) {
            p += 1;
        }
        if p >= line.len() {
            return Ok(tokens);
        }
        let start = p;
        // `None` while the argument is a plain slice of the line.
        let mut owned: Option<Vec<u8>> = None;
        let mut in_double = false;
        let mut in_single = false;
        loop {
            let Some(&c) = line.get(p) else {
                if in_double || in_single {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                break;
            };
            if in_double {
                let out = owned.get_or_insert_with(Vec::new);
                let next = line.get(p + 1).copied();
                if c == b'\\' && next == Some(b'x') {
                    let hi = line.get(p + 2).copied().and_then(hex_value);
                    let lo = line.get(p + 3).copied().and_then(hex_value);
                    if let (Some(hi), Some(lo)) = (hi, lo) {
                        out.push(hi * 16 + lo);
                        p += 4;
                        continue;
                    }
                }
                if c == b'\\' {
                    if let Some(escaped) = next {
                        out.push(match escaped {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                        p += 2;
                        continue;
                    }
                }
                if c == b'"' {
                    if next.is_some_and(|b| !is_space(b)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                }
                out.push(c);
                p += 1;
            } else if in_single {
                let out = owned.get_or_insert_with(Vec::new);
                let next = line.get(p + 1).copied();
                if c == b'\\' && next == Some(b'\'') {
                    out.push(b'\'');
                    p += 2;
                    continue;
                }
                if c == b'\'' {
                    if next.is_some_and(|b| !is_space(b)) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    p += 1;
                    break;
                }
                out.push(c);
                p += 1;
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' => break,
                    b'"' | b'\'' => {
                        if owned.is_none() {
                            owned = Some(line.get(start..p).unwrap_or_default().to_vec());
                        }
                        if c == b'"' {
                            in_double = true;
                        } else {
                            in_single = true;
                        }
                    }
                    _ => {
                        if let Some(out) = owned.as_mut() {
                            out.push(c);
                        }
                    }
                }
                p += 1;
            }
        }
        tokens.push(match owned {
            Some(bytes) => Token::Owned(bytes),
            None => Token::Slice(start..p),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        Ok(split_inline(line)?
            .into_iter()
            .map(|t| match t {
                Token::Slice(r) => line[r].to_vec(),
                Token::Owned(v) => v,
            })
            .collect())
    }

    #[test]
    fn inline_split_follows_sdssplitargs() {
        let ok: &[(&[u8], &[&[u8]])] = &[
            (b"", &[]),
            (b"   \t ", &[]),
            (b"PING", &[b"PING"]),
            (b"  SET  a   b ", &[b"SET", b"a", b"b"]),
            (b"SET \"a b\" 'c'", &[b"SET", b"a b", b"c"]),
            (b"\"\"", &[b""]),
            (b"''", &[b""]),
            (
                b"\"\\x41\\x4a\\n\\r\\t\\b\\a\\\\\\\"\"",
                &[b"AJ\n\r\t\x08\x07\\\""],
            ),
            (b"\"\\xZZ\"", &[b"xZZ"]),
            (b"'it\\'s' 'a\\nb'", &[b"it's", b"a\\nb"]),
            (b"ab\"c d\"", &[b"abc d"]),
            (b"a\x0bb", &[b"a\x0bb"]),
            (b"a\0b", &[b"a\0b"]),
        ];
        for (line, want) in ok {
            let got = split(line).unwrap();
            let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(line));
        }
        for bad in [
            &b"\"abc"[..],
            b"'abc",
            b"\"a\"b",
            b"'a'b",
            b"\"abc\\\"",
            b"\"\\",
        ] {
            assert_eq!(
                split(bad),
                Err(ProtocolError::UnbalancedQuotes),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn plain_inline_arguments_are_slices() {
        assert_eq!(
            split_inline(b"GET key").unwrap(),
            vec![Token::Slice(0..3), Token::Slice(4..7)]
        );
    }
}
