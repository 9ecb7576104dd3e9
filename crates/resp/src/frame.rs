use bytes::Bytes;

/// The protocol version negotiated with a client (`HELLO 3` switches to
/// RESP3). It only changes how [`encode`](crate::encode) writes the RESP3-only
/// frame types; the request format is the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Version {
    /// RESP2, the default for a new connection.
    #[default]
    Resp2,
    /// RESP3.
    Resp3,
}

/// A reply value.
///
/// Every variant can be encoded in both versions; the doc of each variant says
/// what [`encode`](crate::encode) writes. [`parse_frame`](crate::parse_frame)
/// returns the variant matching the type byte it read, so a RESP3 encoding
/// parses back to the same frame (except [`Frame::NullArray`], which RESP3
/// writes as `_` and so parses back as [`Frame::Null`]).
///
/// Equality is structural; [`Frame::Double`] values are equal when their bits
/// are equal or when both are NaN (so `0.0 != -0.0`, and NaN equals NaN).
#[derive(Debug, Clone)]
pub enum Frame {
    /// `+text\r\n` in both versions. CR and LF in the text are written as
    /// spaces so the output is always valid RESP.
    SimpleString(Bytes),
    /// `-text\r\n` in both versions; the text is the full message including
    /// its code, e.g. `ERR unknown command 'foo'` or `WRONGTYPE ...`. CR and
    /// LF are written as spaces. Parsed from both `-` and RESP3 blob errors
    /// (`!`).
    Error(Bytes),
    /// `:n\r\n` in both versions.
    Integer(i64),
    /// `$len\r\nbytes\r\n` in both versions; binary safe.
    Bulk(Bytes),
    /// The null reply: RESP2 `$-1\r\n`, RESP3 `_\r\n`.
    Null,
    /// The null array: RESP2 `*-1\r\n`, RESP3 `_\r\n`.
    NullArray,
    /// `*n\r\n` followed by the elements, in both versions.
    Array(Vec<Frame>),
    /// RESP3 `%n\r\n` followed by key, value, key, value...; RESP2 a flat
    /// array of `2n` elements.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `,value\r\n` (`inf`, `-inf`, `nan` for the special values);
    /// RESP2 the same text as a bulk string. The text is the shortest one that
    /// parses back to the same `f64`.
    Double(f64),
    /// RESP3 `#t\r\n` / `#f\r\n`; RESP2 the integers `:1\r\n` / `:0\r\n`.
    Boolean(bool),
    /// RESP3 `=len\r\nfmt:text\r\n` (`len` counts `fmt:` too); RESP2 the text
    /// alone as a bulk string.
    Verbatim {
        /// Three-byte format, e.g. `txt` or `mkd`.
        format: [u8; 3],
        /// The text, binary safe.
        text: Bytes,
    },
    /// RESP3 `~n\r\n` followed by the elements; RESP2 an array.
    Set(Vec<Frame>),
    /// RESP3 `(digits\r\n`; RESP2 the digits as a bulk string. CR and LF are
    /// written as spaces.
    BigNumber(Bytes),
    /// RESP3 `>n\r\n` followed by the elements (out-of-band data such as
    /// pub/sub messages); RESP2 an array.
    Push(Vec<Frame>),
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        use Frame::*;
        match (self, other) {
            (SimpleString(a), SimpleString(b))
            | (Error(a), Error(b))
            | (Bulk(a), Bulk(b))
            | (BigNumber(a), BigNumber(b)) => a == b,
            (Integer(a), Integer(b)) => a == b,
            (Null, Null) | (NullArray, NullArray) => true,
            (Array(a), Array(b)) | (Set(a), Set(b)) | (Push(a), Push(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            (Double(a), Double(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            (Boolean(a), Boolean(b)) => a == b,
            (
                Verbatim {
                    format: fa,
                    text: ta,
                },
                Verbatim {
                    format: fb,
                    text: tb,
                },
            ) => fa == fb && ta == tb,
            _ => false,
        }
    }
}

impl Frame {
    /// A simple string reply from static text, e.g. `Frame::simple("OK")`.
    pub fn simple(text: &'static str) -> Frame {
        Frame::SimpleString(Bytes::from_static(text.as_bytes()))
    }

    /// An error reply from static text, e.g. `Frame::error("ERR syntax error")`.
    pub fn error(text: &'static str) -> Frame {
        Frame::Error(Bytes::from_static(text.as_bytes()))
    }
}
