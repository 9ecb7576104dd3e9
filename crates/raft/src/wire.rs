//! The binary encoding of [`Message`] for the peer transport:
//! `version u8 | term u64 | kind u8 | body`, little-endian, byte strings
//! `u32`-length-prefixed (see [`consensus::codec`]). The transport frames each message
//! with a length and a CRC32C. Decoding never panics; the result is still checked by
//! [`crate::Raft`]'s own validation when stepped.

use bytes::{BufMut, Bytes};
use consensus::codec::{
    get_entry, get_snapshot_meta, put_bytes, put_entry, put_snapshot_meta, DecodeError, Reader,
};
use consensus::{LogIndex, Term};

use crate::message::{Body, Message};

/// The encoding version this build writes and reads.
pub const WIRE_VERSION: u8 = 1;

/// Appends the encoding of `msg` to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    out.put_u8(WIRE_VERSION);
    out.put_u64_le(msg.term.0);
    match &msg.body {
        Body::PreVote {
            last_index,
            last_term,
        } => {
            out.put_u8(0);
            out.put_u64_le(last_index.0);
            out.put_u64_le(last_term.0);
        }
        Body::PreVoteResponse { granted } => {
            out.put_u8(1);
            out.put_u8(*granted as u8);
        }
        Body::Vote {
            last_index,
            last_term,
            transfer,
        } => {
            out.put_u8(2);
            out.put_u64_le(last_index.0);
            out.put_u64_le(last_term.0);
            out.put_u8(*transfer as u8);
        }
        Body::VoteResponse { granted } => {
            out.put_u8(3);
            out.put_u8(*granted as u8);
        }
        Body::Append {
            prev_index,
            prev_term,
            entries,
            commit,
        } => {
            out.put_u8(4);
            out.put_u64_le(prev_index.0);
            out.put_u64_le(prev_term.0);
            out.put_u64_le(commit.0);
            out.put_u32_le(entries.len() as u32);
            for e in entries {
                put_entry(out, e);
            }
        }
        Body::AppendResponse {
            success,
            index,
            hint_index,
            hint_term,
        } => {
            out.put_u8(5);
            out.put_u8(*success as u8);
            out.put_u64_le(index.0);
            out.put_u64_le(hint_index.0);
            out.put_u64_le(hint_term.0);
        }
        Body::Heartbeat { commit, read_round } => {
            out.put_u8(6);
            out.put_u64_le(commit.0);
            out.put_u64_le(*read_round);
        }
        Body::HeartbeatResponse { read_round } => {
            out.put_u8(7);
            out.put_u64_le(*read_round);
        }
        Body::InstallSnapshot {
            meta,
            total_bytes,
            offset,
            chunk,
        } => {
            out.put_u8(8);
            put_snapshot_meta(out, meta);
            out.put_u64_le(*total_bytes);
            out.put_u64_le(*offset);
            put_bytes(out, chunk);
        }
        Body::SnapshotResponse { index, offset } => {
            out.put_u8(9);
            out.put_u64_le(index.0);
            out.put_u64_le(*offset);
        }
        Body::TimeoutNow => out.put_u8(10),
        Body::ReadIndex { ctx } => {
            out.put_u8(11);
            out.put_u64_le(*ctx);
        }
        Body::ReadIndexResponse { ctx, index } => {
            out.put_u8(12);
            out.put_u64_le(*ctx);
            out.put_u64_le(index.0);
        }
    }
}

fn flag(r: &mut Reader) -> Result<bool, DecodeError> {
    match r.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError("boolean out of range")),
    }
}

/// Decodes one message encoded by [`encode`]; zero-copy for entry payloads and chunks.
pub fn decode(input: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::new(input);
    let version = r.u8()?;
    if version != WIRE_VERSION {
        return Err(DecodeError("unsupported wire version"));
    }
    let term = Term(r.u64()?);
    let idx = |r: &mut Reader| r.u64().map(LogIndex);
    let body = match r.u8()? {
        0 => Body::PreVote {
            last_index: idx(&mut r)?,
            last_term: Term(r.u64()?),
        },
        1 => Body::PreVoteResponse {
            granted: flag(&mut r)?,
        },
        2 => Body::Vote {
            last_index: idx(&mut r)?,
            last_term: Term(r.u64()?),
            transfer: flag(&mut r)?,
        },
        3 => Body::VoteResponse {
            granted: flag(&mut r)?,
        },
        4 => {
            let prev_index = idx(&mut r)?;
            let prev_term = Term(r.u64()?);
            let commit = idx(&mut r)?;
            let n = r.u32()?;
            // Every entry takes at least 17 bytes: never pre-allocate beyond the input.
            let mut entries = Vec::with_capacity((n as usize).min(4096));
            for _ in 0..n {
                entries.push(get_entry(&mut r)?);
            }
            Body::Append {
                prev_index,
                prev_term,
                entries,
                commit,
            }
        }
        5 => Body::AppendResponse {
            success: flag(&mut r)?,
            index: idx(&mut r)?,
            hint_index: idx(&mut r)?,
            hint_term: Term(r.u64()?),
        },
        6 => Body::Heartbeat {
            commit: idx(&mut r)?,
            read_round: r.u64()?,
        },
        7 => Body::HeartbeatResponse {
            read_round: r.u64()?,
        },
        8 => Body::InstallSnapshot {
            meta: get_snapshot_meta(&mut r)?,
            total_bytes: r.u64()?,
            offset: r.u64()?,
            chunk: r.bytes()?,
        },
        9 => Body::SnapshotResponse {
            index: idx(&mut r)?,
            offset: r.u64()?,
        },
        10 => Body::TimeoutNow,
        11 => Body::ReadIndex { ctx: r.u64()? },
        12 => Body::ReadIndexResponse {
            ctx: r.u64()?,
            index: idx(&mut r)?,
        },
        _ => return Err(DecodeError("unknown message kind")),
    };
    if !r.is_empty() {
        return Err(DecodeError("trailing bytes after message"));
    }
    Ok(Message { term, body })
}
