//! Commands: what a client asks, as it travels through the log.
//!
//! An entry is `version, now_ms, tag, fields…` with length-prefixed byte strings.
//! `now_ms` is the proposer's wall clock when it proposed (0: no clock): replicas
//! never read their own clock while applying, so expiry is decided identically
//! everywhere. Version-1 entries (no clock) still decode, so logs written by older
//! builds replay.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::DecodeError;

/// Version byte written by [`Command::encode_at`].
pub const COMMAND_VERSION: u8 = 2;

/// A state-machine operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Read a key through the log (the slow, always-linearizable path).
    Get {
        /// The key.
        key: Bytes,
    },
    /// Set a key, clearing any time to live.
    Put {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// Append to a key's value, creating it if absent; keeps its time to live.
    /// Responds with the new length.
    Append {
        /// The key.
        key: Bytes,
        /// Bytes to append.
        value: Bytes,
    },
    /// Set `key` to `new` iff its current value equals `expected` (`None`: absent).
    Cas {
        /// The key.
        key: Bytes,
        /// The value required now.
        expected: Option<Bytes>,
        /// The value to set.
        new: Bytes,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: Bytes,
    },
    /// Redis SET with its options: a condition, an expiry, and returning the old value.
    Set {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
        /// When to write.
        cond: SetCond,
        /// What happens to the time to live.
        expiry: Expiry,
    },
    /// Remove a key, returning its value.
    GetDel {
        /// The key.
        key: Bytes,
    },
    /// Add `delta` to the key's value read as a signed 64-bit decimal (absent: 0);
    /// keeps its time to live.
    IncrBy {
        /// The key.
        key: Bytes,
        /// What to add.
        delta: i64,
    },
    /// Set (`Some`) or remove (`None`) a key's absolute expiry, in Unix milliseconds.
    /// A deadline not after the entry's clock deletes the key.
    Expire {
        /// The key.
        key: Bytes,
        /// The new deadline; `None` makes the key persistent.
        at: Option<u64>,
        /// When to change it.
        cond: ExpireCond,
    },
    /// Delete up to `limit` keys whose deadline is not after the entry's clock (active
    /// expiry, proposed by the leader so that memory is reclaimed on every replica).
    Purge {
        /// The most keys to delete.
        limit: u32,
    },
}

/// When a [`Command::Set`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetCond {
    /// Always (plain SET).
    Always,
    /// Only if the key is absent (NX).
    IfAbsent,
    /// Only if the key exists (XX).
    IfPresent,
}

/// What a [`Command::Set`] does to the key's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// The key becomes persistent.
    Clear,
    /// The key keeps its current deadline (KEEPTTL).
    Keep,
    /// The key expires at this Unix time in milliseconds.
    At(u64),
}

/// When a [`Command::Expire`] changes the deadline (Redis 7's EXPIRE options).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpireCond {
    /// Always.
    Always,
    /// Only if the key has no deadline (NX).
    IfNone,
    /// Only if the key has a deadline (XX).
    IfSome,
    /// Only if the new deadline is later (GT); no deadline counts as infinitely late.
    Later,
    /// Only if the new deadline is earlier (LT); no deadline counts as infinitely late.
    Earlier,
    /// Only if the key has a deadline and the new one is earlier (XX LT).
    EarlierExisting,
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_u32_le(b.len() as u32);
    buf.put_slice(b);
}

pub(crate) fn get_bytes(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let n = get_u32(buf)? as usize;
    if buf.remaining() < n {
        return Err(DecodeError::Truncated);
    }
    Ok(buf.split_to(n))
}

pub(crate) fn get_u8(buf: &mut Bytes) -> Result<u8, DecodeError> {
    if buf.has_remaining() {
        Ok(buf.get_u8())
    } else {
        Err(DecodeError::Truncated)
    }
}

fn get_u32(buf: &mut Bytes) -> Result<u32, DecodeError> {
    if buf.remaining() < 4 {
        return Err(DecodeError::Truncated);
    }
    Ok(buf.get_u32_le())
}

pub(crate) fn get_u64(buf: &mut Bytes) -> Result<u64, DecodeError> {
    if buf.remaining() < 8 {
        return Err(DecodeError::Truncated);
    }
    Ok(buf.get_u64_le())
}

impl Command {
    /// The key the command touches (`None` for [`Command::Purge`]).
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Command::Get { key }
            | Command::Put { key, .. }
            | Command::Append { key, .. }
            | Command::Cas { key, .. }
            | Command::Delete { key }
            | Command::Set { key, .. }
            | Command::GetDel { key }
            | Command::IncrBy { key, .. }
            | Command::Expire { key, .. } => Some(key),
            Command::Purge { .. } => None,
        }
    }

    /// Encodes without a clock (`now_ms` = 0): for callers that never use expiry.
    pub fn encode(&self) -> Bytes {
        self.encode_at(0)
    }

    /// Encodes with the proposer's clock, `now_ms` Unix milliseconds.
    pub fn encode_at(&self, now_ms: u64) -> Bytes {
        let mut buf = BytesMut::with_capacity(32 + self.key().map_or(0, |k| k.len()));
        buf.put_u8(COMMAND_VERSION);
        buf.put_u64_le(now_ms);
        match self {
            Command::Get { key } => {
                buf.put_u8(0);
                put_bytes(&mut buf, key);
            }
            Command::Put { key, value } => {
                buf.put_u8(1);
                put_bytes(&mut buf, key);
                put_bytes(&mut buf, value);
            }
            Command::Append { key, value } => {
                buf.put_u8(2);
                put_bytes(&mut buf, key);
                put_bytes(&mut buf, value);
            }
            Command::Cas { key, expected, new } => {
                buf.put_u8(3);
                put_bytes(&mut buf, key);
                match expected {
                    None => buf.put_u8(0),
                    Some(e) => {
                        buf.put_u8(1);
                        put_bytes(&mut buf, e);
                    }
                }
                put_bytes(&mut buf, new);
            }
            Command::Delete { key } => {
                buf.put_u8(4);
                put_bytes(&mut buf, key);
            }
            Command::Set {
                key,
                value,
                cond,
                expiry,
            } => {
                buf.put_u8(5);
                put_bytes(&mut buf, key);
                put_bytes(&mut buf, value);
                buf.put_u8(*cond as u8);
                match expiry {
                    Expiry::Clear => buf.put_u8(0),
                    Expiry::Keep => buf.put_u8(1),
                    Expiry::At(t) => {
                        buf.put_u8(2);
                        buf.put_u64_le(*t);
                    }
                }
            }
            Command::GetDel { key } => {
                buf.put_u8(6);
                put_bytes(&mut buf, key);
            }
            Command::IncrBy { key, delta } => {
                buf.put_u8(7);
                put_bytes(&mut buf, key);
                buf.put_i64_le(*delta);
            }
            Command::Expire { key, at, cond } => {
                buf.put_u8(8);
                put_bytes(&mut buf, key);
                match at {
                    None => buf.put_u8(0),
                    Some(t) => {
                        buf.put_u8(1);
                        buf.put_u64_le(*t);
                    }
                }
                buf.put_u8(*cond as u8);
            }
            Command::Purge { limit } => {
                buf.put_u8(9);
                buf.put_u32_le(*limit);
            }
        }
        buf.freeze()
    }

    /// Decodes what [`Command::encode_at`] produced (or a version-1 entry): the
    /// proposer's clock and the command. Zero-copy: fields share `input`.
    pub fn decode_at(mut input: Bytes) -> Result<(u64, Command), DecodeError> {
        let now = match get_u8(&mut input)? {
            1 => 0,
            2 => get_u64(&mut input)?,
            v => return Err(DecodeError::Version(v)),
        };
        let cmd = match get_u8(&mut input)? {
            0 => Command::Get {
                key: get_bytes(&mut input)?,
            },
            1 => Command::Put {
                key: get_bytes(&mut input)?,
                value: get_bytes(&mut input)?,
            },
            2 => Command::Append {
                key: get_bytes(&mut input)?,
                value: get_bytes(&mut input)?,
            },
            3 => {
                let key = get_bytes(&mut input)?;
                let expected = match get_u8(&mut input)? {
                    0 => None,
                    1 => Some(get_bytes(&mut input)?),
                    t => return Err(DecodeError::BadTag(t)),
                };
                Command::Cas {
                    key,
                    expected,
                    new: get_bytes(&mut input)?,
                }
            }
            4 => Command::Delete {
                key: get_bytes(&mut input)?,
            },
            5 => {
                let key = get_bytes(&mut input)?;
                let value = get_bytes(&mut input)?;
                let cond = match get_u8(&mut input)? {
                    0 => SetCond::Always,
                    1 => SetCond::IfAbsent,
                    2 => SetCond::IfPresent,
                    t => return Err(DecodeError::BadTag(t)),
                };
                let expiry = match get_u8(&mut input)? {
                    0 => Expiry::Clear,
                    1 => Expiry::Keep,
                    2 => Expiry::At(get_u64(&mut input)?),
                    t => return Err(DecodeError::BadTag(t)),
                };
                Command::Set {
                    key,
                    value,
                    cond,
                    expiry,
                }
            }
            6 => Command::GetDel {
                key: get_bytes(&mut input)?,
            },
            7 => Command::IncrBy {
                key: get_bytes(&mut input)?,
                delta: get_u64(&mut input)? as i64,
            },
            8 => {
                let key = get_bytes(&mut input)?;
                let at = match get_u8(&mut input)? {
                    0 => None,
                    1 => Some(get_u64(&mut input)?),
                    t => return Err(DecodeError::BadTag(t)),
                };
                let cond = match get_u8(&mut input)? {
                    0 => ExpireCond::Always,
                    1 => ExpireCond::IfNone,
                    2 => ExpireCond::IfSome,
                    3 => ExpireCond::Later,
                    4 => ExpireCond::Earlier,
                    5 => ExpireCond::EarlierExisting,
                    t => return Err(DecodeError::BadTag(t)),
                };
                Command::Expire { key, at, cond }
            }
            9 => Command::Purge {
                limit: get_u32(&mut input)?,
            },
            t => return Err(DecodeError::BadTag(t)),
        };
        if input.has_remaining() {
            return Err(DecodeError::Trailing);
        }
        Ok((now, cmd))
    }

    /// Decodes a command, dropping its clock.
    pub fn decode(input: Bytes) -> Result<Command, DecodeError> {
        Command::decode_at(input).map(|(_, c)| c)
    }
}
