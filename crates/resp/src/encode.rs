use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};

use crate::{Frame, Version};

/// Appends the encoding of `frame` in `version` to `out`.
///
/// Guarantees: the appended bytes are one complete, well-formed RESP value
/// (see each [`Frame`] variant for the exact bytes), which
/// [`parse_frame`](crate::parse_frame) parses back; nothing already in `out`
/// is touched. Integers, lengths and doubles are formatted on the stack: the
/// only allocation is `out` growing. Never panics (beyond allocation failure);
/// nesting depth is the caller's (recursion follows the frame's depth).
pub fn encode(frame: &Frame, version: Version, out: &mut BytesMut) {
    let resp3 = version == Version::Resp3;
    match frame {
        Frame::SimpleString(s) => put_line(out, b'+', s),
        Frame::Error(s) => put_line(out, b'-', s),
        Frame::Integer(i) => {
            out.put_u8(b':');
            put_i64(out, *i);
            out.put_slice(b"\r\n");
        }
        Frame::Bulk(b) => put_blob(out, b'$', b),
        Frame::Null => out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
        Frame::NullArray => out.put_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
        Frame::Array(items) => put_aggregate(out, b'*', items, version),
        Frame::Set(items) => put_aggregate(out, if resp3 { b'~' } else { b'*' }, items, version),
        Frame::Push(items) => put_aggregate(out, if resp3 { b'>' } else { b'*' }, items, version),
        Frame::Map(pairs) => {
            if resp3 {
                put_header(out, b'%', pairs.len());
            } else {
                put_header(out, b'*', pairs.len().saturating_mul(2));
            }
            for (k, v) in pairs {
                encode(k, version, out);
                encode(v, version, out);
            }
        }
        Frame::Double(d) => {
            let text = DoubleText::new(*d);
            if resp3 {
                out.put_u8(b',');
                out.put_slice(text.as_bytes());
                out.put_slice(b"\r\n");
            } else {
                put_blob(out, b'$', text.as_bytes());
            }
        }
        Frame::Boolean(b) => out.put_slice(match (resp3, *b) {
            (true, true) => b"#t\r\n",
            (true, false) => b"#f\r\n",
            (false, true) => b":1\r\n",
            (false, false) => b":0\r\n",
        }),
        Frame::Verbatim { format, text } => {
            if resp3 {
                put_header(out, b'=', text.len().saturating_add(4));
                out.put_slice(format);
                out.put_u8(b':');
                out.put_slice(text);
                out.put_slice(b"\r\n");
            } else {
                put_blob(out, b'$', text);
            }
        }
        Frame::BigNumber(n) => {
            if resp3 {
                put_line(out, b'(', n);
            } else {
                put_blob(out, b'$', n);
            }
        }
    }
}

fn put_aggregate(out: &mut BytesMut, tag: u8, items: &[Frame], version: Version) {
    put_header(out, tag, items.len());
    for item in items {
        encode(item, version, out);
    }
}

/// `tag` + `text` + CRLF, with CR and LF inside `text` replaced by spaces.
fn put_line(out: &mut BytesMut, tag: u8, text: &[u8]) {
    out.put_u8(tag);
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.reserve(text.len() + 2);
        for &b in text {
            out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

fn put_blob(out: &mut BytesMut, tag: u8, data: &[u8]) {
    put_header(out, tag, data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn put_header(out: &mut BytesMut, tag: u8, len: usize) {
    out.put_u8(tag);
    put_u64(out, len as u64);
    out.put_slice(b"\r\n");
}

fn put_u64(out: &mut BytesMut, mut v: u64) {
    // u64::MAX has 20 decimal digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.put_slice(&digits[start..]);
}

fn put_i64(out: &mut BytesMut, v: i64) {
    if v < 0 {
        out.put_u8(b'-');
    }
    put_u64(out, v.unsigned_abs());
}

/// The text of a double, formatted into a stack buffer: `inf`, `-inf`,
/// `nan`, or Rust's shortest round-trip representation (exponent form for
/// very large and very small magnitudes so the text stays short).
pub(crate) struct DoubleText {
    buf: [u8; 64],
    len: usize,
}

impl DoubleText {
    pub(crate) fn new(d: f64) -> DoubleText {
        let mut text = DoubleText {
            buf: [0; 64],
            len: 0,
        };
        let magnitude = d.abs();
        let result = if d.is_nan() {
            text.write_str("nan")
        } else if d.is_infinite() {
            text.write_str(if d > 0.0 { "inf" } else { "-inf" })
        } else if magnitude != 0.0 && !(1e-5..1e17).contains(&magnitude) {
            write!(text, "{d:e}")
        } else {
            write!(text, "{d}")
        };
        if result.is_err() {
            // Unreachable: the longest text above is about 25 bytes. Fall back
            // to a value that still parses rather than a truncated one.
            text.len = 0;
            let _ = text.write_str("nan");
        }
        text
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

impl std::fmt::Write for DoubleText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(std::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_formatted_exactly() {
        for (v, text) in [
            (0i64, "0"),
            (7, "7"),
            (-7, "-7"),
            (1234567890, "1234567890"),
            (i64::MAX, "9223372036854775807"),
            (i64::MIN, "-9223372036854775808"),
        ] {
            let mut out = BytesMut::new();
            put_i64(&mut out, v);
            assert_eq!(&out[..], text.as_bytes());
        }
    }

    #[test]
    fn doubles_use_short_round_trip_text() {
        for (v, text) in [
            (1.5f64, "1.5"),
            (3.0, "3"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1e300, "1e300"),
            (-2.5e-10, "-2.5e-10"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(DoubleText::new(v).as_bytes(), text.as_bytes(), "{v}");
        }
        for v in [f64::MAX, f64::MIN_POSITIVE, 5e-324, -1.2345678901234567e16] {
            let text = DoubleText::new(v);
            let parsed: f64 = std::str::from_utf8(text.as_bytes())
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(parsed.to_bits(), v.to_bits());
        }
    }
}
