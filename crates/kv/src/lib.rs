//! hakv's replicated key-value state machine.
//!
//! A [`Command`] is what a client asks; it is encoded into a log entry by the proposer
//! and applied, in log order, by every replica's [`KvStore`]. Applying is a pure
//! function of the state and the command, so replicas that apply the same log hold the
//! same data. Every encoding starts with a version byte; snapshots end with a CRC32C.
//! Decoding never panics: bad input is a [`DecodeError`].

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Version byte of the command encoding.
pub const COMMAND_VERSION: u8 = 1;
/// Version byte of the snapshot encoding.
pub const SNAPSHOT_VERSION: u8 = 1;

/// A state-machine operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// Read a key through the log (the slow, always-linearizable path).
    Get {
        /// The key.
        key: Bytes,
    },
    /// Set a key.
    Put {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// Append to a key's value, creating it if absent.
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
}

/// The result of applying a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Response {
    /// A value read (`None`: absent).
    Value(Option<Bytes>),
    /// A write applied.
    Ok,
    /// Whether a compare-and-set swapped.
    Cas(bool),
    /// Whether a delete removed something.
    Deleted(bool),
    /// The entry could not be decoded (identically on every replica).
    Invalid(String),
}

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The version byte is not one this build understands.
    Version(u8),
    /// The input ended early.
    Truncated,
    /// An unknown tag or flag.
    BadTag(u8),
    /// The checksum does not match.
    Checksum,
    /// Bytes left over after a complete value.
    Trailing,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Version(v) => write!(f, "unsupported encoding version {v}"),
            DecodeError::Truncated => write!(f, "input truncated"),
            DecodeError::BadTag(t) => write!(f, "unknown tag {t}"),
            DecodeError::Checksum => write!(f, "checksum mismatch"),
            DecodeError::Trailing => write!(f, "trailing bytes"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_u32_le(b.len() as u32);
    buf.put_slice(b);
}

fn get_bytes(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    if buf.remaining() < 4 {
        return Err(DecodeError::Truncated);
    }
    let n = buf.get_u32_le() as usize;
    if buf.remaining() < n {
        return Err(DecodeError::Truncated);
    }
    Ok(buf.split_to(n))
}

fn get_u8(buf: &mut Bytes) -> Result<u8, DecodeError> {
    if buf.has_remaining() {
        Ok(buf.get_u8())
    } else {
        Err(DecodeError::Truncated)
    }
}

impl Command {
    /// The key the command touches.
    pub fn key(&self) -> &Bytes {
        match self {
            Command::Get { key }
            | Command::Put { key, .. }
            | Command::Append { key, .. }
            | Command::Cas { key, .. }
            | Command::Delete { key } => key,
        }
    }

    /// Encodes as `version, tag, fields…` with length-prefixed byte strings.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(16 + self.key().len());
        buf.put_u8(COMMAND_VERSION);
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
        }
        buf.freeze()
    }

    /// Decodes what [`Command::encode`] produced. Zero-copy: fields share `input`.
    pub fn decode(mut input: Bytes) -> Result<Command, DecodeError> {
        let version = get_u8(&mut input)?;
        if version != COMMAND_VERSION {
            return Err(DecodeError::Version(version));
        }
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
            t => return Err(DecodeError::BadTag(t)),
        };
        if input.has_remaining() {
            return Err(DecodeError::Trailing);
        }
        Ok(cmd)
    }
}

/// The key-value state of one replica.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    data: BTreeMap<Bytes, Bytes>,
}

impl KvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one encoded command. Deterministic: the same state and bytes give the
    /// same result and next state on every replica.
    pub fn apply(&mut self, encoded: Bytes) -> Response {
        match Command::decode(encoded) {
            Ok(cmd) => self.apply_command(cmd),
            Err(e) => Response::Invalid(e.to_string()),
        }
    }

    /// Applies one decoded command.
    pub fn apply_command(&mut self, cmd: Command) -> Response {
        match cmd {
            Command::Get { key } => Response::Value(self.data.get(&key).cloned()),
            Command::Put { key, value } => {
                self.data.insert(key, value);
                Response::Ok
            }
            Command::Append { key, value } => {
                let next = match self.data.get(&key) {
                    Some(old) => {
                        let mut b = BytesMut::with_capacity(old.len() + value.len());
                        b.put_slice(old);
                        b.put_slice(&value);
                        b.freeze()
                    }
                    None => value,
                };
                self.data.insert(key, next);
                Response::Ok
            }
            Command::Cas { key, expected, new } => {
                if self.data.get(&key) == expected.as_ref() {
                    self.data.insert(key, new);
                    Response::Cas(true)
                } else {
                    Response::Cas(false)
                }
            }
            Command::Delete { key } => Response::Deleted(self.data.remove(&key).is_some()),
        }
    }

    /// Reads a key locally (callers make this linearizable with a read barrier).
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.data.get(key)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if no key is stored.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Encodes the whole state: `version, count, (key, value)…, crc32c`.
    pub fn snapshot(&self) -> Bytes {
        let size: usize = self.data.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let mut buf = BytesMut::with_capacity(13 + size);
        buf.put_u8(SNAPSHOT_VERSION);
        buf.put_u64_le(self.data.len() as u64);
        for (k, v) in &self.data {
            put_bytes(&mut buf, k);
            put_bytes(&mut buf, v);
        }
        let crc = crc32c::crc32c(&buf);
        buf.put_u32_le(crc);
        buf.freeze()
    }

    /// Decodes a snapshot, verifying its checksum before trusting any of it.
    pub fn restore(snapshot: Bytes) -> Result<KvStore, DecodeError> {
        if snapshot.len() < 13 {
            return Err(DecodeError::Truncated);
        }
        let (body, crc) = snapshot.split_at(snapshot.len() - 4);
        let crc = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
        if crc32c::crc32c(body) != crc {
            return Err(DecodeError::Checksum);
        }
        let mut input = snapshot.slice(..snapshot.len() - 4);
        let version = input.get_u8();
        if version != SNAPSHOT_VERSION {
            return Err(DecodeError::Version(version));
        }
        let count = input.get_u64_le();
        let mut data = BTreeMap::new();
        for _ in 0..count {
            let k = get_bytes(&mut input)?;
            let v = get_bytes(&mut input)?;
            data.insert(k, v);
        }
        if input.has_remaining() {
            return Err(DecodeError::Trailing);
        }
        Ok(KvStore { data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn commands_apply_like_a_map() {
        let mut kv = KvStore::new();
        assert_eq!(
            kv.apply(Command::Get { key: b("k") }.encode()),
            Response::Value(None)
        );
        assert_eq!(
            kv.apply(
                Command::Append {
                    key: b("k"),
                    value: b("a")
                }
                .encode()
            ),
            Response::Ok
        );
        assert_eq!(
            kv.apply(
                Command::Append {
                    key: b("k"),
                    value: b("b")
                }
                .encode()
            ),
            Response::Ok
        );
        assert_eq!(kv.get(b"k"), Some(&b("ab")));
        let cas = |e: Option<&str>, n: &str| {
            Command::Cas {
                key: b("k"),
                expected: e.map(b),
                new: b(n),
            }
            .encode()
        };
        assert_eq!(kv.apply(cas(Some("x"), "y")), Response::Cas(false));
        assert_eq!(kv.apply(cas(Some("ab"), "y")), Response::Cas(true));
        assert_eq!(kv.apply(cas(None, "z")), Response::Cas(false));
        assert_eq!(
            kv.apply(Command::Delete { key: b("k") }.encode()),
            Response::Deleted(true)
        );
        assert_eq!(kv.apply(cas(None, "z")), Response::Cas(true));
    }

    #[test]
    fn garbage_is_an_invalid_response_not_a_panic() {
        let mut kv = KvStore::new();
        assert!(matches!(
            kv.apply(Bytes::from_static(&[9, 9])),
            Response::Invalid(_)
        ));
        assert!(matches!(kv.apply(Bytes::new()), Response::Invalid(_)));
    }

    #[test]
    fn a_corrupt_snapshot_is_refused() {
        let mut kv = KvStore::new();
        kv.apply(
            Command::Put {
                key: b("a"),
                value: b("1"),
            }
            .encode(),
        );
        let snap = kv.snapshot();
        assert_eq!(KvStore::restore(snap.clone()).unwrap(), kv);
        let mut bad = snap.to_vec();
        bad[10] ^= 1;
        assert_eq!(
            KvStore::restore(Bytes::from(bad)),
            Err(DecodeError::Checksum)
        );
        assert_eq!(
            KvStore::restore(snap.slice(..5)),
            Err(DecodeError::Truncated)
        );
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        let key = proptest::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from);
        let val = proptest::collection::vec(any::<u8>(), 0..16).prop_map(Bytes::from);
        prop_oneof![
            key.clone().prop_map(|key| Command::Get { key }),
            (key.clone(), val.clone()).prop_map(|(key, value)| Command::Put { key, value }),
            (key.clone(), val.clone()).prop_map(|(key, value)| Command::Append { key, value }),
            (key.clone(), proptest::option::of(val.clone()), val)
                .prop_map(|(key, expected, new)| Command::Cas { key, expected, new }),
            key.prop_map(|key| Command::Delete { key }),
        ]
    }

    proptest! {
        #[test]
        fn commands_round_trip(cmd in arb_command()) {
            prop_assert_eq!(Command::decode(cmd.encode()), Ok(cmd));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Command::decode(Bytes::from(bytes.clone()));
            let _ = KvStore::restore(Bytes::from(bytes));
        }

        #[test]
        fn snapshots_round_trip(cmds in proptest::collection::vec(arb_command(), 0..40)) {
            let mut kv = KvStore::new();
            for c in cmds { kv.apply(c.encode()); }
            prop_assert_eq!(KvStore::restore(kv.snapshot()), Ok(kv));
        }
    }
}
