//! Client-side reply parsing: RESP2 and RESP3 frames.

use bytes::{Bytes, BytesMut};

use crate::{find_byte, parse_i64_strict, Frame, Limits, ProtocolError};

/// Deepest aggregate nesting [`parse_frame`] accepts (a top-level array of
/// scalars has depth 1). Bounds the parser's recursion and the recursion of
/// dropping the parsed frame, so hostile input cannot overflow the stack.
pub const FRAME_DEPTH_MAX: usize = 128;

/// Parses one reply frame (RESP2 or RESP3, chosen by each type byte) from the
/// front of `buf`.
///
/// Returns:
/// * `Ok(Some(frame))`: `buf` has been advanced past the frame. Strings are
///   zero-copy slices of the bytes split off `buf`.
/// * `Ok(None)`: the frame is incomplete; `buf` is left **unchanged**.
/// * `Err(e)`: the input is not valid RESP; the stream cannot be resumed.
///
/// Every encoding written by [`encode`](crate::encode) parses back to an
/// equal frame, except that RESP2 has no types for doubles, booleans, maps,
/// sets, pushes, verbatim strings and big numbers, and that RESP3 writes
/// [`Frame::NullArray`] as `_` (parsed as [`Frame::Null`]). Also accepted:
/// RESP3 blob errors `!len` (as [`Frame::Error`]) and attributes `|n`
/// (parsed, then dropped: the frame that follows them is returned). Not
/// supported: streamed strings and aggregates (`$?`, `*?`), which are errors.
///
/// Limits: bulk lengths above [`Limits::bulk_bytes_max`], aggregate counts
/// above [`Limits::args_max`] (pairs for maps), single-line frames longer than
/// [`Limits::inline_bytes_max`], and nesting deeper than [`FRAME_DEPTH_MAX`]
/// are errors, detected before allocating.
///
/// Cost: no state is kept, so each call re-reads the pending frame's headers
/// and single-line values from the front of `buf` (bulk payloads are skipped
/// by length); nothing is allocated until the frame is complete.
pub fn parse_frame(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, ProtocolError> {
    // First pass: validate and find the end, without allocating.
    let Some((_, end)) = parse_value(buf, 0, 0, limits, None)? else {
        return Ok(None);
    };
    let chunk = buf.split_to(end).freeze();
    // Second pass over the same bytes: build the frame from zero-copy slices.
    match parse_value(&chunk, 0, 0, limits, Some(&chunk))? {
        Some((Some(frame), built_end)) if built_end == end => Ok(Some(frame)),
        _ => Err(ProtocolError::InvalidValue("frame")),
    }
}

/// A parsed value (`None` in validation mode) and the offset after it.
type Parsed = Option<(Option<Frame>, usize)>;

/// Parses the value at `pos`. With `src` (the frozen bytes of `data`), builds
/// the frame; without, only validates it and finds its end.
fn parse_value(
    data: &[u8],
    pos: usize,
    depth: usize,
    limits: &Limits,
    src: Option<&Bytes>,
) -> Result<Parsed, ProtocolError> {
    let Some(&tag) = data.get(pos) else {
        return Ok(None);
    };
    if !matches!(
        tag,
        b'+' | b'-'
            | b':'
            | b'$'
            | b'*'
            | b'_'
            | b','
            | b'#'
            | b'!'
            | b'='
            | b'('
            | b'%'
            | b'~'
            | b'>'
            | b'|'
    ) {
        return Err(ProtocolError::UnexpectedType(tag));
    }
    let Some((line_start, line_end, next)) = read_line(data, pos + 1, limits)? else {
        return Ok(None);
    };
    let line = data.get(line_start..line_end).unwrap_or_default();
    let slice = |start: usize, end: usize| src.map(|b| b.slice(start..end));
    let frame = match tag {
        b'+' => slice(line_start, line_end).map(Frame::SimpleString),
        b'-' => slice(line_start, line_end).map(Frame::Error),
        b':' => {
            let digits = line.strip_prefix(b"+").unwrap_or(line);
            let value = if digits.first() == Some(&b'-') && line.first() == Some(&b'+') {
                None
            } else {
                parse_i64_strict(digits)
            };
            let value = value.ok_or(ProtocolError::InvalidValue("integer"))?;
            src.map(|_| Frame::Integer(value))
        }
        b'_' => {
            if !line.is_empty() {
                return Err(ProtocolError::InvalidValue("null"));
            }
            src.map(|_| Frame::Null)
        }
        b'#' => {
            let value = match line {
                b"t" => true,
                b"f" => false,
                _ => return Err(ProtocolError::InvalidValue("boolean")),
            };
            src.map(|_| Frame::Boolean(value))
        }
        b',' => {
            let value = std::str::from_utf8(line)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or(ProtocolError::InvalidValue("double"))?;
            src.map(|_| Frame::Double(value))
        }
        b'(' => {
            let digits = match line.first() {
                Some(b'+' | b'-') => line.get(1..).unwrap_or_default(),
                _ => line,
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return Err(ProtocolError::InvalidValue("big number"));
            }
            slice(line_start, line_end).map(Frame::BigNumber)
        }
        b'$' | b'!' | b'=' => {
            if tag == b'$' && line == b"-1" {
                return Ok(Some((src.map(|_| Frame::Null), next)));
            }
            let len = parse_i64_strict(line)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n <= limits.bulk_bytes_max)
                .ok_or(ProtocolError::InvalidBulkLength)?;
            let end = next
                .checked_add(len)
                .ok_or(ProtocolError::InvalidBulkLength)?;
            let Some(terminator) = data.get(end..end.saturating_add(2)) else {
                return Ok(None);
            };
            if terminator != b"\r\n" {
                return Err(ProtocolError::BulkNotTerminated);
            }
            let frame = match tag {
                b'$' => slice(next, end).map(Frame::Bulk),
                b'!' => slice(next, end).map(Frame::Error),
                _ => {
                    let format = match data.get(next..end) {
                        Some([a, b, c, b':', ..]) => [*a, *b, *c],
                        _ => return Err(ProtocolError::InvalidValue("verbatim string")),
                    };
                    slice(next + 4, end).map(|text| Frame::Verbatim { format, text })
                }
            };
            return Ok(Some((frame, end + 2)));
        }
        _ => {
            // Aggregates: '*', '~', '>', '%', '|'.
            if tag == b'*' && line == b"-1" {
                return Ok(Some((src.map(|_| Frame::NullArray), next)));
            }
            if depth >= FRAME_DEPTH_MAX {
                return Err(ProtocolError::TooDeep);
            }
            let count = parse_i64_strict(line)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n <= limits.args_max)
                .ok_or(ProtocolError::InvalidMultibulkLength)?;
            let paired = tag == b'%' || tag == b'|';
            let elements = if paired {
                count
                    .checked_mul(2)
                    .ok_or(ProtocolError::InvalidMultibulkLength)?
            } else {
                count
            };
            let mut items: Option<Vec<Frame>> =
                src.map(|_| Vec::with_capacity(elements.min(PREALLOCATE_ITEMS_MAX)));
            let mut at = next;
            for _ in 0..elements {
                let Some((item, after)) = parse_value(data, at, depth + 1, limits, src)? else {
                    return Ok(None);
                };
                if let (Some(items), Some(item)) = (items.as_mut(), item) {
                    items.push(item);
                }
                at = after;
            }
            if tag == b'|' {
                // An attribute describes the frame that follows it; it is
                // dropped and that frame returned in its place.
                return parse_value(data, at, depth + 1, limits, src);
            }
            let frame = items.map(|items| match tag {
                b'*' => Frame::Array(items),
                b'~' => Frame::Set(items),
                b'>' => Frame::Push(items),
                _ => {
                    let mut pairs = Vec::with_capacity(items.len() / 2);
                    let mut iter = items.into_iter();
                    while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
                        pairs.push((key, value));
                    }
                    Frame::Map(pairs)
                }
            });
            return Ok(Some((frame, at)));
        }
    };
    Ok(Some((frame, next)))
}

/// At most this many element slots are reserved up front per aggregate.
const PREALLOCATE_ITEMS_MAX: usize = 1024;

/// Finds the CRLF-terminated line starting at `from`: `(start, end, next)`
/// where `end` is the CR and `next` follows the LF.
fn read_line(
    data: &[u8],
    from: usize,
    limits: &Limits,
) -> Result<Option<(usize, usize, usize)>, ProtocolError> {
    let Some(cr) = find_byte(data, from, b'\r') else {
        if data.len().saturating_sub(from) > limits.inline_bytes_max {
            return Err(ProtocolError::LineTooLong);
        }
        return Ok(None);
    };
    if cr - from > limits.inline_bytes_max {
        return Err(ProtocolError::LineTooLong);
    }
    match data.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((from, cr, cr + 2))),
        Some(_) => Err(ProtocolError::InvalidValue("line terminator")),
    }
}
