//! Binary encodings of the shared types, used by the write-ahead log and the wire
//! formats: little-endian integers, `u32`-length-prefixed byte strings. Decoding never
//! panics and never trusts a length it cannot satisfy; callers add a version byte and
//! a CRC32C around whole records.

use bytes::{Buf, BufMut, Bytes};

use crate::{
    ConfigChange, Entry, HardState, LogIndex, MemberChange, Membership, NodeId, Payload,
    SnapshotMeta, Term,
};

/// Input that does not decode; says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over bytes being decoded; every read checks the length first.
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    /// Reads from `buf`.
    pub fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.remaining() < 1 {
            return Err(DecodeError("truncated u8"));
        }
        Ok(self.buf.get_u8())
    }

    /// A little-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.buf.remaining() < 4 {
            return Err(DecodeError("truncated u32"));
        }
        Ok(self.buf.get_u32_le())
    }

    /// A little-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        if self.buf.remaining() < 8 {
            return Err(DecodeError("truncated u64"));
        }
        Ok(self.buf.get_u64_le())
    }

    /// A u32-length-prefixed byte string, zero-copy.
    pub fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u32()? as usize;
        if self.buf.remaining() < n {
            return Err(DecodeError("truncated bytes"));
        }
        Ok(self.buf.split_to(n))
    }

    /// True when everything was consumed.
    pub fn is_empty(&self) -> bool {
        !self.buf.has_remaining()
    }
}

/// Appends a u32-length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.put_u32_le(b.len() as u32);
    out.put_slice(b);
}

fn put_ids(out: &mut Vec<u8>, ids: &std::collections::BTreeSet<NodeId>) {
    out.put_u32_le(ids.len() as u32);
    for &id in ids {
        out.put_u64_le(id);
    }
}

fn get_ids(r: &mut Reader) -> Result<std::collections::BTreeSet<NodeId>, DecodeError> {
    let n = r.u32()?;
    if n > 1 << 16 {
        return Err(DecodeError("implausible member count"));
    }
    (0..n).map(|_| r.u64()).collect()
}

/// Appends a membership.
pub fn put_membership(out: &mut Vec<u8>, m: &Membership) {
    put_ids(out, &m.voters);
    put_ids(out, &m.voters_outgoing);
    put_ids(out, &m.learners);
}

/// Reads a membership.
pub fn get_membership(r: &mut Reader) -> Result<Membership, DecodeError> {
    Ok(Membership {
        voters: get_ids(r)?,
        voters_outgoing: get_ids(r)?,
        learners: get_ids(r)?,
    })
}

/// Appends a log entry.
pub fn put_entry(out: &mut Vec<u8>, e: &Entry) {
    out.put_u64_le(e.term.0);
    out.put_u64_le(e.index.0);
    put_payload(out, &e.payload);
}

/// Appends an entry's payload alone (the tail of [`put_entry`]'s encoding), for formats
/// that carry payloads outside Raft-shaped entries (e.g. Multi-Paxos values).
pub fn put_payload(out: &mut Vec<u8>, payload: &Payload) {
    match payload {
        Payload::Noop => out.put_u8(0),
        Payload::Command(b) => {
            out.put_u8(1);
            put_bytes(out, b);
        }
        Payload::Config(ConfigChange::LeaveJoint) => out.put_u8(2),
        Payload::Config(ConfigChange::Apply(changes)) => {
            out.put_u8(3);
            out.put_u32_le(changes.len() as u32);
            for c in changes {
                let (kind, id) = match *c {
                    MemberChange::AddVoter(id) => (0, id),
                    MemberChange::AddLearner(id) => (1, id),
                    MemberChange::Remove(id) => (2, id),
                };
                out.put_u8(kind);
                out.put_u64_le(id);
            }
        }
    }
}

/// Reads a log entry.
pub fn get_entry(r: &mut Reader) -> Result<Entry, DecodeError> {
    let term = Term(r.u64()?);
    let index = LogIndex(r.u64()?);
    let payload = get_payload(r)?;
    Ok(Entry {
        term,
        index,
        payload,
    })
}

/// Reads a payload written by [`put_payload`]; zero-copy for commands.
pub fn get_payload(r: &mut Reader) -> Result<Payload, DecodeError> {
    Ok(match r.u8()? {
        0 => Payload::Noop,
        1 => Payload::Command(r.bytes()?),
        2 => Payload::Config(ConfigChange::LeaveJoint),
        3 => {
            let n = r.u32()?;
            if n > 1 << 16 {
                return Err(DecodeError("implausible change count"));
            }
            let mut changes = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let kind = r.u8()?;
                let id = r.u64()?;
                changes.push(match kind {
                    0 => MemberChange::AddVoter(id),
                    1 => MemberChange::AddLearner(id),
                    2 => MemberChange::Remove(id),
                    _ => return Err(DecodeError("unknown member change")),
                });
            }
            Payload::Config(ConfigChange::Apply(changes))
        }
        _ => return Err(DecodeError("unknown payload tag")),
    })
}

/// Appends a hard state (vote 0 means none).
pub fn put_hard_state(out: &mut Vec<u8>, hs: &HardState) {
    out.put_u64_le(hs.term.0);
    out.put_u64_le(hs.vote.unwrap_or(0));
    out.put_u64_le(hs.commit.0);
}

/// Reads a hard state.
pub fn get_hard_state(r: &mut Reader) -> Result<HardState, DecodeError> {
    let term = Term(r.u64()?);
    let vote = match r.u64()? {
        0 => None,
        v => Some(v),
    };
    Ok(HardState {
        term,
        vote,
        commit: LogIndex(r.u64()?),
    })
}

/// Appends snapshot metadata.
pub fn put_snapshot_meta(out: &mut Vec<u8>, m: &SnapshotMeta) {
    out.put_u64_le(m.index.0);
    out.put_u64_le(m.term.0);
    put_membership(out, &m.membership);
}

/// Reads snapshot metadata.
pub fn get_snapshot_meta(r: &mut Reader) -> Result<SnapshotMeta, DecodeError> {
    Ok(SnapshotMeta {
        index: LogIndex(r.u64()?),
        term: Term(r.u64()?),
        membership: get_membership(r)?,
    })
}
