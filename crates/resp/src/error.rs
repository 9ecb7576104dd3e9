use std::fmt;

use bytes::Bytes;

use crate::Frame;

/// Why the input could not be parsed.
///
/// The [`Display`](fmt::Display) text is what Redis writes after `-ERR `, with
/// Redis's exact wording wherever Redis has one (for example
/// `Protocol error: invalid multibulk length`). After any `ProtocolError` the
/// server must send [`ProtocolError::to_frame`] and close the connection: the
/// stream cannot be re-synchronised and the buffer's contents are unspecified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A `*N` count that is not a valid integer, is above
    /// [`Limits::args_max`](crate::Limits::args_max), or whose line is not
    /// ended by `\r\n`. Text: `Protocol error: invalid multibulk length`.
    InvalidMultibulkLength,
    /// A `$N` length that is not a valid integer, is negative (in a command),
    /// is above [`Limits::bulk_bytes_max`](crate::Limits::bulk_bytes_max), or
    /// whose line is not ended by `\r\n`.
    /// Text: `Protocol error: invalid bulk length`.
    InvalidBulkLength,
    /// An element of a command array did not start with `$`.
    /// Text: `Protocol error: expected '$', got 'x'`.
    ExpectedDollar(u8),
    /// An inline command with an unterminated quote, or a closing quote not
    /// followed by a space. Text: `Protocol error: unbalanced quotes in request`.
    UnbalancedQuotes,
    /// An inline line (or the no-op input before a command) longer than
    /// [`Limits::inline_bytes_max`](crate::Limits::inline_bytes_max).
    /// Text: `Protocol error: too big inline request`.
    TooBigInlineRequest,
    /// A `*N` line longer than
    /// [`Limits::inline_bytes_max`](crate::Limits::inline_bytes_max).
    /// Text: `Protocol error: too big mbulk count string`.
    TooBigMbulkCountString,
    /// A `$N` line longer than
    /// [`Limits::inline_bytes_max`](crate::Limits::inline_bytes_max).
    /// Text: `Protocol error: too big bulk count string`.
    TooBigBulkCountString,
    /// A bulk string payload not followed by `\r\n` (Redis does not check
    /// this; hakv does, to catch de-synchronised clients early).
    /// Text: `Protocol error: bulk string not terminated by CRLF`.
    BulkNotTerminated,
    /// (Reply parsing) an unknown type byte at the start of a frame.
    /// Text: `Protocol error: unexpected type byte 'x'`.
    UnexpectedType(u8),
    /// (Reply parsing) a single-line frame longer than
    /// [`Limits::inline_bytes_max`](crate::Limits::inline_bytes_max).
    /// Text: `Protocol error: too big reply line`.
    LineTooLong,
    /// (Reply parsing) aggregates nested deeper than
    /// [`FRAME_DEPTH_MAX`](crate::FRAME_DEPTH_MAX).
    /// Text: `Protocol error: reply nested too deeply`.
    TooDeep,
    /// (Reply parsing) a malformed scalar; the field names what was being
    /// parsed (`integer`, `double`, `boolean`, ...).
    /// Text: `Protocol error: invalid <what>`.
    InvalidValue(&'static str),
}

/// Writes `b` the way Redis's `%c` would, except that CR and LF become spaces
/// (as Redis's error sanitising does) and other non-printable bytes are shown
/// as `\xHH` so the reply stays a valid, single-line UTF-8 error.
fn write_byte(f: &mut fmt::Formatter<'_>, b: u8) -> fmt::Result {
    match b {
        b'\r' | b'\n' => f.write_str(" "),
        0x20..=0x7e => write!(f, "{}", b as char),
        _ => write!(f, "\\x{b:02x}"),
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Protocol error: ")?;
        match self {
            ProtocolError::InvalidMultibulkLength => f.write_str("invalid multibulk length"),
            ProtocolError::InvalidBulkLength => f.write_str("invalid bulk length"),
            ProtocolError::ExpectedDollar(b) => {
                f.write_str("expected '$', got '")?;
                write_byte(f, *b)?;
                f.write_str("'")
            }
            ProtocolError::UnbalancedQuotes => f.write_str("unbalanced quotes in request"),
            ProtocolError::TooBigInlineRequest => f.write_str("too big inline request"),
            ProtocolError::TooBigMbulkCountString => f.write_str("too big mbulk count string"),
            ProtocolError::TooBigBulkCountString => f.write_str("too big bulk count string"),
            ProtocolError::BulkNotTerminated => f.write_str("bulk string not terminated by CRLF"),
            ProtocolError::UnexpectedType(b) => {
                f.write_str("unexpected type byte '")?;
                write_byte(f, *b)?;
                f.write_str("'")
            }
            ProtocolError::LineTooLong => f.write_str("too big reply line"),
            ProtocolError::TooDeep => f.write_str("reply nested too deeply"),
            ProtocolError::InvalidValue(what) => write!(f, "invalid {what}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl ProtocolError {
    /// The error reply to send before closing the connection:
    /// `Frame::Error("ERR <Display text>")`, which encodes as
    /// `-ERR Protocol error: ...\r\n`.
    pub fn to_frame(&self) -> Frame {
        Frame::Error(Bytes::from(format!("ERR {self}")))
    }
}
