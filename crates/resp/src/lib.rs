//! A zero-copy, streaming codec for the Redis serialization protocol (RESP2
//! and RESP3), written for the server side of hakv.
//!
//! The crate has no runtime dependency: everything works on
//! [`bytes::BytesMut`] buffers, so a network runtime reads into a buffer and
//! calls the parsers, and writes what [`encode`] appended.
//!
//! * [`parse_command`] (stateless) and [`CommandDecoder`] (resumable) parse
//!   client requests: RESP arrays of bulk strings and inline commands.
//!   Arguments are [`bytes::Bytes`] slices of the input buffer (no copy),
//!   except inline arguments that contain quotes or escapes.
//! * [`encode`] writes a reply [`Frame`] in RESP2 or RESP3.
//! * [`parse_frame`] is the client-side reply parser, the inverse of
//!   [`encode`].
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use resp::{encode, parse_command, Frame, Limits, Version};
//!
//! let limits = Limits::default();
//! // Two pipelined requests and the start of a third.
//! let mut input = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*1\r\n$4\r\nQU"[..]);
//! let get = parse_command(&mut input, &limits).unwrap().unwrap();
//! assert_eq!(get, [&b"GET"[..], b"k"]);
//! let ping = parse_command(&mut input, &limits).unwrap().unwrap();
//! assert_eq!(ping, [&b"PING"[..]]);
//! // Incomplete: nothing is consumed.
//! assert_eq!(parse_command(&mut input, &limits), Ok(None));
//! assert_eq!(&input[..], b"*1\r\n$4\r\nQU");
//!
//! let mut out = BytesMut::new();
//! encode(&Frame::Null, Version::Resp2, &mut out);
//! encode(&Frame::Null, Version::Resp3, &mut out);
//! assert_eq!(&out[..], b"$-1\r\n_\r\n");
//! ```
//!
//! # Errors and the connection
//!
//! A [`ProtocolError`] means the byte stream can no longer be framed. As Redis
//! does, the server should write the error reply ([`ProtocolError::to_frame`],
//! `-ERR Protocol error: ...`) and then **close the connection**: the parsers
//! give no guarantee about the contents of the buffer after an error, and no
//! further command may be read from it.
//!
//! # Panics
//!
//! No function in this crate panics on any input bytes; this is checked by
//! property tests and by the `resp_command` and `resp_frame` fuzz targets in the
//! repository's `fuzz/` directory.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod command;
mod encode;
mod error;
mod frame;
mod reply;

pub use command::{parse_command, CommandDecoder};
pub use encode::encode;
pub use error::ProtocolError;
pub use frame::{Frame, Version};
pub use reply::{parse_frame, FRAME_DEPTH_MAX};

/// Size limits applied while parsing, so that a peer cannot make the parser
/// allocate or buffer without bound.
///
/// Every limit is checked *before* anything is allocated or waited for: a
/// declared length above a limit is an error as soon as the length itself has
/// been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted bulk string payload, in bytes (Redis's
    /// `proto-max-bulk-len`). Default: 512 MiB. A larger declared length is
    /// [`ProtocolError::InvalidBulkLength`].
    pub bulk_bytes_max: usize,
    /// Largest accepted number of arguments in one command, and of elements in
    /// one aggregate reply parsed by [`parse_frame`]. Default: 1,048,576. A
    /// larger count is [`ProtocolError::InvalidMultibulkLength`].
    pub args_max: usize,
    /// Longest accepted inline command line and length line (`*N`, `$N`,
    /// simple string, ...), in bytes, excluding the terminator. Also bounds the
    /// no-op input (empty lines, `*0`) that may precede a command. Default:
    /// 64 KiB, as Redis's `PROTO_INLINE_MAX_SIZE`.
    pub inline_bytes_max: usize,
}

impl Default for Limits {
    /// Redis's defaults: 512 MiB bulk strings, 1,048,576 arguments, 64 KiB
    /// inline lines.
    fn default() -> Self {
        Limits {
            bulk_bytes_max: 512 * 1024 * 1024,
            args_max: 1_048_576,
            inline_bytes_max: 64 * 1024,
        }
    }
}

/// Position of the first `needle` in `data[from..]`, as an index into `data`.
pub(crate) fn find_byte(data: &[u8], from: usize, needle: u8) -> Option<usize> {
    data.get(from..)?
        .iter()
        .position(|&b| b == needle)
        .map(|i| i + from)
}

/// Strict decimal parse with Redis's `string2ll` rules: an optional `-`, no
/// `+`, no leading zeros, no spaces, no `-0`, no overflow.
pub(crate) fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    let first = *digits.first()?;
    if first == b'0' {
        return (digits.len() == 1 && !negative).then_some(0);
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if negative {
        if value == 1u64 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(value).ok().map(|v| -v)
        }
    } else {
        i64::try_from(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers_follow_string2ll() {
        assert_eq!(parse_i64_strict(b"0"), Some(0));
        assert_eq!(parse_i64_strict(b"12"), Some(12));
        assert_eq!(parse_i64_strict(b"-12"), Some(-12));
        assert_eq!(parse_i64_strict(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1 ",
            b"1a",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_i64_strict(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn find_byte_is_bounds_safe() {
        assert_eq!(find_byte(b"ab\r", 0, b'\r'), Some(2));
        assert_eq!(find_byte(b"ab\r", 3, b'\r'), None);
        assert_eq!(find_byte(b"ab\r", 10, b'\r'), None);
    }
}
