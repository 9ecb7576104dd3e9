//! The binary encoding of [`Message`], little-endian:
//!
//! ```text
//!  message = version:u8 (= 1) | kind:u8 | body | count:u16 | update × count
//!  update  = id:u64 | incarnation:u64 | state:u8 | by:u64          (25 bytes)
//!  body    = Ping 0, Ack 1:              seq:u64
//!            PingReq 2, IndirectAck 3:   seq:u64 | target:u64
//!            Gossip 4:                   (empty)
//!            Sync 5:                     reply:u8 | count:u32 | update × count
//! ```
//!
//! The peer transport frames each message with a length and a CRC32C, as it does for
//! Raft. Decoding never panics, never allocates more than the input can fill, and
//! rejects trailing bytes; what decodes is still checked by
//! [`crate::message::validate`] when stepped.

use bytes::{BufMut, Bytes};
use consensus::codec::{DecodeError, Reader};

use crate::member::{Incarnation, State, Update};
use crate::message::{Body, Message, SYNC_MEMBERS_MAX, UPDATES_MAX};

/// The encoding version this build writes and reads.
pub const WIRE_VERSION: u8 = 1;

const UPDATE_BYTES: usize = 25;

/// Appends the encoding of `msg` to `out`.
///
/// # Panics
/// If `msg` has more than [`UPDATES_MAX`] updates or a sync lists more than
/// [`SYNC_MEMBERS_MAX`] members: the detector never builds such a message.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    assert!(
        msg.updates.len() <= UPDATES_MAX,
        "too many updates to encode"
    );
    out.put_u8(WIRE_VERSION);
    match &msg.body {
        Body::Ping { seq } => {
            out.put_u8(0);
            out.put_u64_le(*seq);
        }
        Body::Ack { seq } => {
            out.put_u8(1);
            out.put_u64_le(*seq);
        }
        Body::PingReq { seq, target } => {
            out.put_u8(2);
            out.put_u64_le(*seq);
            out.put_u64_le(*target);
        }
        Body::IndirectAck { seq, target } => {
            out.put_u8(3);
            out.put_u64_le(*seq);
            out.put_u64_le(*target);
        }
        Body::Gossip => out.put_u8(4),
        Body::Sync { reply, members } => {
            assert!(
                members.len() <= SYNC_MEMBERS_MAX,
                "too many members to encode"
            );
            out.put_u8(5);
            out.put_u8(*reply as u8);
            out.put_u32_le(members.len() as u32);
            members.iter().for_each(|u| put_update(out, u));
        }
    }
    out.put_u16_le(msg.updates.len() as u16);
    msg.updates.iter().for_each(|u| put_update(out, u));
}

/// The encoding of `msg` as one buffer.
pub fn to_bytes(msg: &Message) -> Bytes {
    let mut out = Vec::with_capacity(32 + msg.updates.len() * UPDATE_BYTES);
    encode(msg, &mut out);
    Bytes::from(out)
}

/// Decodes one message encoded by [`encode`].
pub fn decode(input: Bytes) -> Result<Message, DecodeError> {
    let total = input.len();
    let mut r = Reader::new(input);
    if r.u8()? != WIRE_VERSION {
        return Err(DecodeError("unsupported membership wire version"));
    }
    let body = match r.u8()? {
        0 => Body::Ping { seq: r.u64()? },
        1 => Body::Ack { seq: r.u64()? },
        2 => Body::PingReq {
            seq: r.u64()?,
            target: r.u64()?,
        },
        3 => Body::IndirectAck {
            seq: r.u64()?,
            target: r.u64()?,
        },
        4 => Body::Gossip,
        5 => {
            let reply = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError("boolean out of range")),
            };
            let n = r.u32()? as usize;
            if n > SYNC_MEMBERS_MAX {
                return Err(DecodeError("implausible member count"));
            }
            Body::Sync {
                reply,
                members: get_updates(&mut r, n, total)?,
            }
        }
        _ => return Err(DecodeError("unknown membership message kind")),
    };
    let n = get_u16(&mut r)? as usize;
    if n > UPDATES_MAX {
        return Err(DecodeError("implausible update count"));
    }
    let updates = get_updates(&mut r, n, total)?;
    if !r.is_empty() {
        return Err(DecodeError("trailing bytes after message"));
    }
    Ok(Message { body, updates })
}

fn put_update(out: &mut Vec<u8>, u: &Update) {
    out.put_u64_le(u.id);
    out.put_u64_le(u.incarnation.0);
    out.put_u8(u.state.tag());
    out.put_u64_le(u.by);
}

fn get_u16(r: &mut Reader) -> Result<u16, DecodeError> {
    let lo = r.u8()? as u16;
    let hi = r.u8()? as u16;
    Ok(lo | hi << 8)
}

/// Reads `n` updates; never reserves more than the whole input could hold.
fn get_updates(r: &mut Reader, n: usize, input_bytes: usize) -> Result<Vec<Update>, DecodeError> {
    let mut out = Vec::with_capacity(n.min(input_bytes / UPDATE_BYTES));
    for _ in 0..n {
        let id = r.u64()?;
        let incarnation = Incarnation(r.u64()?);
        let state = State::from_tag(r.u8()?).ok_or(DecodeError("unknown member state"))?;
        let by = r.u64()?;
        out.push(Update {
            id,
            incarnation,
            state,
            by,
        });
    }
    Ok(out)
}
