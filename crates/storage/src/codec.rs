//! Binary encodings of the engine's records. Little-endian, length-prefixed byte
//! strings; decoding never panics and never trusts a length it cannot satisfy.

use bytes::{Buf, BufMut, Bytes};
use consensus::{
    ConfigChange, Entry, HardState, LogIndex, MemberChange, Membership, NodeId, Payload,
    SnapshotMeta, Term,
};

/// Input that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        if self.buf.remaining() < 1 {
            return Err(DecodeError("truncated u8"));
        }
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        if self.buf.remaining() < 4 {
            return Err(DecodeError("truncated u32"));
        }
        Ok(self.buf.get_u32_le())
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        if self.buf.remaining() < 8 {
            return Err(DecodeError("truncated u64"));
        }
        Ok(self.buf.get_u64_le())
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.u32()? as usize;
        if self.buf.remaining() < n {
            return Err(DecodeError("truncated bytes"));
        }
        Ok(self.buf.split_to(n))
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.buf.has_remaining()
    }
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
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

pub(crate) fn put_membership(out: &mut Vec<u8>, m: &Membership) {
    put_ids(out, &m.voters);
    put_ids(out, &m.voters_outgoing);
    put_ids(out, &m.learners);
}

pub(crate) fn get_membership(r: &mut Reader) -> Result<Membership, DecodeError> {
    Ok(Membership {
        voters: get_ids(r)?,
        voters_outgoing: get_ids(r)?,
        learners: get_ids(r)?,
    })
}

pub(crate) fn put_entry(out: &mut Vec<u8>, e: &Entry) {
    out.put_u64_le(e.term.0);
    out.put_u64_le(e.index.0);
    match &e.payload {
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

pub(crate) fn get_entry(r: &mut Reader) -> Result<Entry, DecodeError> {
    let term = Term(r.u64()?);
    let index = LogIndex(r.u64()?);
    let payload = match r.u8()? {
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
    };
    Ok(Entry {
        term,
        index,
        payload,
    })
}

pub(crate) fn put_hard_state(out: &mut Vec<u8>, hs: &HardState) {
    out.put_u64_le(hs.term.0);
    out.put_u64_le(hs.vote.unwrap_or(0));
    out.put_u64_le(hs.commit.0);
}

pub(crate) fn get_hard_state(r: &mut Reader) -> Result<HardState, DecodeError> {
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

pub(crate) fn put_snapshot_meta(out: &mut Vec<u8>, m: &SnapshotMeta) {
    out.put_u64_le(m.index.0);
    out.put_u64_le(m.term.0);
    put_membership(out, &m.membership);
}

pub(crate) fn get_snapshot_meta(r: &mut Reader) -> Result<SnapshotMeta, DecodeError> {
    Ok(SnapshotMeta {
        index: LogIndex(r.u64()?),
        term: Term(r.u64()?),
        membership: get_membership(r)?,
    })
}
