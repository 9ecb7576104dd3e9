//! Peer frames: `len u32 | crc32c u32 | version u8 | group u64 | payload`, where `len`
//! counts everything after the CRC and the CRC covers it. One connection carries the
//! frames of every replication group between two nodes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The frame format version this build speaks.
pub const FRAME_VERSION: u8 = 1;
/// Bytes before the payload: len, crc, version, group.
pub const FRAME_HEADER_BYTES: usize = 4 + 4 + 1 + 8;

/// A frame that cannot be accepted; the connection that sent it is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length is zero, too small, or above the configured maximum.
    BadLength(u64),
    /// The checksum does not match: the bytes were damaged.
    Checksum,
    /// A version this build does not speak.
    Version(u8),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadLength(n) => write!(f, "frame length {n} out of range"),
            FrameError::Checksum => write!(f, "frame checksum mismatch"),
            FrameError::Version(v) => write!(f, "unsupported frame version {v}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Appends one frame carrying `payload` for `group`.
pub fn encode(group: u64, payload: &[u8], out: &mut BytesMut) {
    let len = 1 + 8 + payload.len();
    out.reserve(8 + len);
    out.put_u32_le(len as u32);
    let crc_at = out.len();
    out.put_u32_le(0);
    let body_at = out.len();
    out.put_u8(FRAME_VERSION);
    out.put_u64_le(group);
    out.put_slice(payload);
    let crc = crc32c::crc32c(&out[body_at..]);
    out[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Takes one whole frame off the front of `buf`: `Ok(None)` if more bytes are needed
/// (the buffer is unchanged). The payload shares `buf`'s memory (zero-copy).
pub fn decode(
    buf: &mut BytesMut,
    frame_bytes_max: usize,
) -> Result<Option<(u64, Bytes)>, FrameError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    if len < 9 || len > frame_bytes_max {
        return Err(FrameError::BadLength(len as u64));
    }
    if buf.len() < 8 + len {
        buf.reserve(8 + len - buf.len());
        return Ok(None);
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if crc32c::crc32c(&buf[8..8 + len]) != crc {
        return Err(FrameError::Checksum);
    }
    let mut frame = buf.split_to(8 + len);
    frame.advance(8);
    let version = frame.get_u8();
    if version != FRAME_VERSION {
        return Err(FrameError::Version(version));
    }
    let group = frame.get_u64_le();
    Ok(Some((group, frame.freeze())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_frame_round_trips_and_waits_for_its_last_byte() {
        let mut out = BytesMut::new();
        encode(7, b"hello", &mut out);
        let whole = out.clone();
        for cut in 0..whole.len() {
            let mut part = BytesMut::from(&whole[..cut]);
            assert_eq!(decode(&mut part, 1 << 20), Ok(None));
            assert_eq!(
                part.len(),
                cut,
                "an incomplete frame leaves the buffer alone"
            );
        }
        assert_eq!(
            decode(&mut out, 1 << 20),
            Ok(Some((7, Bytes::from_static(b"hello"))))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn damage_and_oversize_are_refused() {
        let mut out = BytesMut::new();
        encode(1, b"payload", &mut out);
        let mut bad = out.clone();
        bad[12] ^= 1;
        assert_eq!(decode(&mut bad, 1 << 20), Err(FrameError::Checksum));
        assert_eq!(decode(&mut out.clone(), 8), Err(FrameError::BadLength(16)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut b = BytesMut::from(&bytes[..]);
            let _ = decode(&mut b, 1 << 16);
        }

        #[test]
        fn frames_back_to_back_decode_in_order(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8)) {
            let mut out = BytesMut::new();
            for (i, p) in payloads.iter().enumerate() {
                encode(i as u64, p, &mut out);
            }
            for (i, p) in payloads.iter().enumerate() {
                let (g, got) = decode(&mut out, 1 << 16).unwrap().unwrap();
                prop_assert_eq!(g, i as u64);
                prop_assert_eq!(&got[..], &p[..]);
            }
            prop_assert!(out.is_empty());
        }
    }
}
