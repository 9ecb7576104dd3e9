//! The binary encoding of [`Message`] for the peer transport:
//! `version u8 | ballot u64 | kind u8 | body`, little-endian, byte strings
//! `u32`-length-prefixed, payloads as in [`consensus::codec`]. Ballots travel in their
//! term encoding ([`Ballot::to_term`]). The transport frames each message with a length
//! and a CRC32C. Decoding never panics and never allocates beyond what the input can
//! fill; the result is still checked by [`crate::Paxos`]'s own validation when stepped.

use bytes::{BufMut, Bytes};
use consensus::codec::{
    get_payload, get_snapshot_meta, put_bytes, put_payload, put_snapshot_meta, DecodeError, Reader,
};
use consensus::{LogIndex, Term};

use crate::ballot::Ballot;
use crate::message::{Accepted, Body, Message, Report, Value};

/// The encoding version this build writes and reads.
pub const WIRE_VERSION: u8 = 1;

fn put_ballot(out: &mut Vec<u8>, b: Ballot) {
    out.put_u64_le(b.to_term().0);
}

fn get_ballot(r: &mut Reader) -> Result<Ballot, DecodeError> {
    r.u64().map(|t| Ballot::from_term(Term(t)))
}

/// Appends a value: `origin ballot u64 | payload`. Shared with the durable record
/// format (`durable.rs`).
pub(crate) fn put_value(out: &mut Vec<u8>, v: &Value) {
    put_ballot(out, v.origin);
    put_payload(out, &v.payload);
}

/// Reads a value written by [`put_value`]; zero-copy for commands.
pub(crate) fn get_value(r: &mut Reader) -> Result<Value, DecodeError> {
    Ok(Value {
        origin: get_ballot(r)?,
        payload: get_payload(r)?,
    })
}

/// Appends the encoding of `msg` to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    out.put_u8(WIRE_VERSION);
    put_ballot(out, msg.ballot);
    match &msg.body {
        Body::Prepare { commit, transfer } => {
            out.put_u8(0);
            out.put_u64_le(commit.0);
            out.put_u8(*transfer as u8);
        }
        Body::Promise { commit, accepted } => {
            out.put_u8(1);
            out.put_u64_le(commit.0);
            out.put_u32_le(accepted.len() as u32);
            for r in accepted {
                out.put_u64_le(r.slot.0);
                put_ballot(out, r.accepted.ballot);
                put_value(out, &r.accepted.value);
            }
        }
        Body::Accept {
            first,
            values,
            commit,
        } => {
            out.put_u8(2);
            out.put_u64_le(first.0);
            out.put_u64_le(commit.0);
            out.put_u32_le(values.len() as u32);
            for v in values {
                put_value(out, v);
            }
        }
        Body::Accepted {
            last,
            through,
            commit,
        } => {
            out.put_u8(3);
            out.put_u64_le(last.0);
            out.put_u64_le(through.0);
            out.put_u64_le(commit.0);
        }
        Body::Nack { promised } => {
            out.put_u8(4);
            put_ballot(out, *promised);
        }
        Body::Heartbeat { commit, read_round } => {
            out.put_u8(5);
            out.put_u64_le(commit.0);
            out.put_u64_le(*read_round);
        }
        Body::HeartbeatAck {
            read_round,
            through,
            commit,
        } => {
            out.put_u8(6);
            out.put_u64_le(*read_round);
            out.put_u64_le(through.0);
            out.put_u64_le(commit.0);
        }
        Body::InstallSnapshot {
            meta,
            total_bytes,
            offset,
            chunk,
            commit,
        } => {
            out.put_u8(7);
            put_snapshot_meta(out, meta);
            out.put_u64_le(*total_bytes);
            out.put_u64_le(*offset);
            put_bytes(out, chunk);
            out.put_u64_le(commit.0);
        }
        Body::SnapshotAck { index, offset } => {
            out.put_u8(8);
            out.put_u64_le(index.0);
            out.put_u64_le(*offset);
        }
        Body::TimeoutNow => out.put_u8(9),
        Body::PrePrepare { commit } => {
            out.put_u8(10);
            out.put_u64_le(commit.0);
        }
        Body::PrePrepareAck { granted } => {
            out.put_u8(11);
            out.put_u8(*granted as u8);
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

/// Decodes one message encoded by [`encode`]; zero-copy for commands and chunks.
pub fn decode(input: Bytes) -> Result<Message, DecodeError> {
    let mut r = Reader::new(input);
    let version = r.u8()?;
    if version != WIRE_VERSION {
        return Err(DecodeError("unsupported wire version"));
    }
    let ballot = get_ballot(&mut r)?;
    let idx = |r: &mut Reader| r.u64().map(LogIndex);
    let body = match r.u8()? {
        0 => Body::Prepare {
            commit: idx(&mut r)?,
            transfer: flag(&mut r)?,
        },
        1 => {
            let commit = idx(&mut r)?;
            let n = r.u32()?;
            // Every report takes at least 25 bytes: never pre-allocate beyond the input.
            let mut accepted = Vec::with_capacity((n as usize).min(4096));
            for _ in 0..n {
                let slot = idx(&mut r)?;
                let ballot = get_ballot(&mut r)?;
                let value = get_value(&mut r)?;
                accepted.push(Report {
                    slot,
                    accepted: Accepted { ballot, value },
                });
            }
            Body::Promise { commit, accepted }
        }
        2 => {
            let first = idx(&mut r)?;
            let commit = idx(&mut r)?;
            let n = r.u32()?;
            let mut values = Vec::with_capacity((n as usize).min(4096));
            for _ in 0..n {
                values.push(get_value(&mut r)?);
            }
            Body::Accept {
                first,
                values,
                commit,
            }
        }
        3 => Body::Accepted {
            last: idx(&mut r)?,
            through: idx(&mut r)?,
            commit: idx(&mut r)?,
        },
        4 => Body::Nack {
            promised: get_ballot(&mut r)?,
        },
        5 => Body::Heartbeat {
            commit: idx(&mut r)?,
            read_round: r.u64()?,
        },
        6 => Body::HeartbeatAck {
            read_round: r.u64()?,
            through: idx(&mut r)?,
            commit: idx(&mut r)?,
        },
        7 => Body::InstallSnapshot {
            meta: get_snapshot_meta(&mut r)?,
            total_bytes: r.u64()?,
            offset: r.u64()?,
            chunk: r.bytes()?,
            commit: idx(&mut r)?,
        },
        8 => Body::SnapshotAck {
            index: idx(&mut r)?,
            offset: r.u64()?,
        },
        9 => Body::TimeoutNow,
        10 => Body::PrePrepare {
            commit: idx(&mut r)?,
        },
        11 => Body::PrePrepareAck {
            granted: flag(&mut r)?,
        },
        _ => return Err(DecodeError("unknown message kind")),
    };
    if !r.is_empty() {
        return Err(DecodeError("trailing bytes after message"));
    }
    Ok(Message { ballot, body })
}
