//! The key-value state of one replica: applying commands and answering queries.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::command::{get_bytes, get_u64, get_u8, Command, ExpireCond, Expiry, SetCond};
use crate::{glob, key_hash, DecodeError};

/// Version byte of the snapshot encoding written by [`KvStore::snapshot`].
pub const SNAPSHOT_VERSION: u8 = 2;

/// The largest value a key may hold (Redis's default `proto-max-bulk-len`). APPEND
/// past it is refused, so no sequence of commands builds an unbounded value.
pub const VALUE_MAX: usize = 512 << 20;

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
    /// A [`Command::Set`]: whether it wrote, and the value before it (`None`: absent).
    Set {
        /// Whether the condition held and the value was written.
        written: bool,
        /// The live value before the command.
        old: Option<Bytes>,
    },
    /// A number: a new length, a counter's value, a count of keys, or 0/1.
    Integer(i64),
    /// The command was refused by the data (not an integer, overflow, too large); the
    /// state is unchanged.
    Error(KvError),
    /// The entry could not be decoded (identically on every replica).
    Invalid(String),
}

/// Why the data refused a command. `Display` is Redis's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvError {
    /// The value is not a signed 64-bit decimal.
    NotInteger,
    /// The arithmetic would overflow 64 bits.
    Overflow,
    /// The value would exceed [`VALUE_MAX`].
    TooLarge,
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KvError::NotInteger => "ERR value is not an integer or out of range",
            KvError::Overflow => "ERR increment or decrement would overflow",
            KvError::TooLarge => "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        })
    }
}

/// A read served from local state after a read barrier (ReadIndex or lease).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// A key's value.
    Get(Bytes),
    /// Several keys' values, in order.
    MGet(Vec<Bytes>),
    /// The length of a key's value (0 if absent).
    Strlen(Bytes),
    /// Milliseconds a key has left: -2 if absent, -1 if it never expires.
    Pttl(Bytes),
    /// How many of the keys exist (a key named twice counts twice).
    Exists(Vec<Bytes>),
    /// The number of live keys.
    DbSize,
    /// Every live key matching a glob pattern.
    Keys(Bytes),
    /// One step of a cursor iteration (see [`KvStore::query`]).
    Scan {
        /// 0 to start; otherwise the cursor the previous step returned.
        cursor: u64,
        /// Only keys matching this glob pattern are returned.
        pattern: Option<Bytes>,
        /// How many keys to examine (a hint, as in Redis).
        count: usize,
        /// False when the client asked for a TYPE no key has: nothing is returned.
        type_matches: bool,
    },
}

/// The answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryResult {
    /// One value.
    Value(Option<Bytes>),
    /// Several values.
    Values(Vec<Option<Bytes>>),
    /// A number.
    Integer(i64),
    /// Keys.
    Keys(Vec<Bytes>),
    /// A scan step: the next cursor (0: done) and the keys found.
    Scan {
        /// Where to continue; 0 when the iteration is complete.
        cursor: u64,
        /// Keys found in this step.
        keys: Vec<Bytes>,
    },
}

/// A key with its hash: the store is ordered by hash so that a SCAN cursor (a hash)
/// stays meaningful however the key set changes between steps.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct HKey {
    hash: u64,
    key: Bytes,
}

impl HKey {
    fn new(key: Bytes) -> HKey {
        HKey {
            hash: key_hash(&key),
            key,
        }
    }

    fn first_with_hash(hash: u64) -> HKey {
        HKey {
            hash,
            key: Bytes::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Value {
    bytes: Bytes,
    /// Absolute deadline, Unix milliseconds.
    expires: Option<u64>,
}

/// The key-value state of one replica.
///
/// Time enters only through entries: each carries its proposer's clock, and the store's
/// clock is the largest seen so far, so it never runs backwards even when leaders'
/// clocks disagree. A key whose deadline is not after the clock is gone for every
/// command; queries also treat a key as gone once the caller's clock passes its
/// deadline.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvStore {
    data: BTreeMap<HKey, Value>,
    /// (deadline, key) for every key with a deadline: finds what to purge in order.
    expiries: BTreeSet<(u64, HKey)>,
    clock: u64,
}

/// The state of a [`KvStore`] at one moment (see [`KvStore::view`]).
pub struct KvView {
    clock: u64,
    entries: Vec<(Bytes, Bytes, Option<u64>)>,
}

impl KvView {
    /// The snapshot the store would have encoded when the view was taken, byte for
    /// byte ([`KvStore::snapshot`]).
    pub fn encode(&self) -> Bytes {
        encode_snapshot(
            self.clock,
            self.entries.iter().map(|(k, v, e)| (&k[..], &v[..], *e)),
        )
    }
}

/// Encodes `entries` (key, value, deadline), in key order, as a snapshot.
fn encode_snapshot<'a>(
    clock: u64,
    entries: impl Iterator<Item = (&'a [u8], &'a [u8], Option<u64>)> + Clone,
) -> Bytes {
    let (count, size) = entries
        .clone()
        .fold((0u64, 0usize), |(n, size), (k, v, _)| {
            (n + 1, size + 17 + k.len() + v.len())
        });
    let mut buf = BytesMut::with_capacity(21 + size);
    buf.put_u8(SNAPSHOT_VERSION);
    buf.put_u64_le(clock);
    buf.put_u64_le(count);
    for (k, v, expires) in entries {
        buf.put_u32_le(k.len() as u32);
        buf.put_slice(k);
        buf.put_u32_le(v.len() as u32);
        buf.put_slice(v);
        match expires {
            None => buf.put_u8(0),
            Some(t) => {
                buf.put_u8(1);
                buf.put_u64_le(t);
            }
        }
    }
    let crc = crc32c::crc32c(&buf);
    buf.put_u32_le(crc);
    buf.freeze()
}

/// Parses a signed 64-bit decimal exactly as Redis does: optional `-`, no `+`, no
/// spaces, no leading zeros, at most 20 characters.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    match digits.first() {
        Some(b'1'..=b'9') if digits.iter().all(u8::is_ascii_digit) => {}
        _ => return None,
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

impl KvStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The store's clock: the latest proposer clock applied, Unix milliseconds.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// Applies one encoded entry. Deterministic: the same state and bytes give the
    /// same result and next state on every replica.
    pub fn apply(&mut self, encoded: Bytes) -> Response {
        match Command::decode_at(encoded) {
            Ok((now, cmd)) => {
                self.clock = self.clock.max(now);
                self.apply_command(cmd)
            }
            Err(e) => Response::Invalid(e.to_string()),
        }
    }

    /// Applies one decoded command at the store's current clock.
    pub fn apply_command(&mut self, cmd: Command) -> Response {
        match cmd {
            Command::Get { key } => Response::Value(self.live(HKey::new(key)).cloned()),
            Command::Put { key, value } => {
                self.write(HKey::new(key), value, None);
                Response::Ok
            }
            Command::Append { key, value } => {
                let hk = HKey::new(key);
                let (next, expires) = match self.data.get(&hk).filter(|v| self.alive(v)) {
                    Some(old) => {
                        if old.bytes.len() + value.len() > VALUE_MAX {
                            return Response::Error(KvError::TooLarge);
                        }
                        let mut b = BytesMut::with_capacity(old.bytes.len() + value.len());
                        b.put_slice(&old.bytes);
                        b.put_slice(&value);
                        (b.freeze(), old.expires)
                    }
                    None => (value, None),
                };
                let len = next.len() as i64;
                self.write(hk, next, expires);
                Response::Integer(len)
            }
            Command::Cas { key, expected, new } => {
                let hk = HKey::new(key);
                if self.live(hk.clone()) == expected.as_ref() {
                    self.write(hk, new, None);
                    Response::Cas(true)
                } else {
                    Response::Cas(false)
                }
            }
            Command::Delete { key } => Response::Deleted(self.take(HKey::new(key)).is_some()),
            Command::Set {
                key,
                value,
                cond,
                expiry,
            } => self.set(HKey::new(key), value, cond, expiry),
            Command::GetDel { key } => Response::Value(self.take(HKey::new(key))),
            Command::IncrBy { key, delta } => {
                let hk = HKey::new(key);
                let (current, expires) = match self.data.get(&hk).filter(|v| self.alive(v)) {
                    Some(v) => match parse_i64(&v.bytes) {
                        Some(n) => (n, v.expires),
                        None => return Response::Error(KvError::NotInteger),
                    },
                    None => (0, None),
                };
                let Some(next) = current.checked_add(delta) else {
                    return Response::Error(KvError::Overflow);
                };
                self.write(hk, Bytes::from(next.to_string()), expires);
                Response::Integer(next)
            }
            Command::Expire { key, at, cond } => self.expire(HKey::new(key), at, cond),
            Command::Purge { limit } => {
                let mut purged = 0;
                while purged < limit {
                    match self.expiries.first() {
                        Some((t, hk)) if *t <= self.clock => {
                            let hk = hk.clone();
                            self.remove(&hk);
                            purged += 1;
                        }
                        _ => break,
                    }
                }
                Response::Integer(i64::from(purged))
            }
        }
    }

    fn set(&mut self, hk: HKey, value: Bytes, cond: SetCond, expiry: Expiry) -> Response {
        let current = self.data.get(&hk).filter(|v| self.alive(v)).cloned();
        let write = match cond {
            SetCond::Always => true,
            SetCond::IfAbsent => current.is_none(),
            SetCond::IfPresent => current.is_some(),
        };
        if write {
            let expires = match expiry {
                Expiry::Clear => None,
                Expiry::Keep => current.as_ref().and_then(|v| v.expires),
                Expiry::At(t) => Some(t),
            };
            self.write(hk, value, expires);
        }
        Response::Set {
            written: write,
            old: current.map(|v| v.bytes),
        }
    }

    fn expire(&mut self, hk: HKey, at: Option<u64>, cond: ExpireCond) -> Response {
        let Some(current) = self.data.get(&hk).filter(|v| self.alive(v)).cloned() else {
            return Response::Integer(0);
        };
        let Some(at) = at else {
            // PERSIST: succeeds only if there was a deadline to remove.
            if current.expires.is_none() {
                return Response::Integer(0);
            }
            self.write(hk, current.bytes, None);
            return Response::Integer(1);
        };
        let allowed = match (cond, current.expires) {
            (ExpireCond::Always, _) => true,
            (ExpireCond::IfNone, e) => e.is_none(),
            (ExpireCond::IfSome, e) => e.is_some(),
            (ExpireCond::Later, Some(e)) => at > e,
            (ExpireCond::Later, None) => false,
            (ExpireCond::Earlier, Some(e)) => at < e,
            (ExpireCond::Earlier, None) => true,
            (ExpireCond::EarlierExisting, e) => e.is_some_and(|e| at < e),
        };
        if !allowed {
            return Response::Integer(0);
        }
        self.write(hk, current.bytes, Some(at));
        Response::Integer(1)
    }

    fn alive(&self, v: &Value) -> bool {
        v.expires.is_none_or(|t| t > self.clock)
    }

    /// The live value of a key; an expired one is removed on the way (deterministic:
    /// every replica's clock is the same at this entry).
    fn live(&mut self, hk: HKey) -> Option<&Bytes> {
        let expired = self.data.get(&hk).is_some_and(|v| !self.alive(v));
        if expired {
            self.remove(&hk);
            return None;
        }
        self.data.get(&hk).map(|v| &v.bytes)
    }

    /// Removes a key, returning its value if it was live.
    fn take(&mut self, hk: HKey) -> Option<Bytes> {
        let v = self.remove(&hk)?;
        self.alive(&v).then_some(v.bytes)
    }

    fn remove(&mut self, hk: &HKey) -> Option<Value> {
        let v = self.data.remove(hk)?;
        if let Some(t) = v.expires {
            self.expiries.remove(&(t, hk.clone()));
        }
        Some(v)
    }

    /// Stores a value; a deadline not after the clock leaves the key absent.
    fn write(&mut self, hk: HKey, bytes: Bytes, expires: Option<u64>) {
        if expires.is_some_and(|t| t <= self.clock) {
            self.remove(&hk);
            return;
        }
        if let Some(t) = expires {
            self.expiries.insert((t, hk.clone()));
        }
        if let Some(old) = self.data.insert(hk.clone(), Value { bytes, expires }) {
            if let Some(t) = old.expires.filter(|&t| Some(t) != expires) {
                self.expiries.remove(&(t, hk));
            }
        }
    }

    /// The earliest deadline of any key, if some key has one: when the leader should
    /// next propose a [`Command::Purge`].
    pub fn next_deadline(&self) -> Option<u64> {
        self.expiries.first().map(|(t, _)| *t)
    }

    /// Reads a key at the store's clock (callers make this linearizable with a read
    /// barrier).
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        let hk = HKey::new(Bytes::copy_from_slice(key));
        self.data
            .get(&hk)
            .filter(|v| self.alive(v))
            .map(|v| &v.bytes)
    }

    /// Answers a query at `now_ms` (the caller's clock; the store's clock if later).
    ///
    /// SCAN walks keys in hash order and its cursor is the hash to resume at, so — as
    /// Redis guarantees — a key present for the whole iteration is returned at least
    /// once, and a step never splits keys sharing a hash.
    pub fn query(&self, q: &Query, now_ms: u64) -> QueryResult {
        let now = now_ms.max(self.clock);
        let alive = |v: &Value| v.expires.is_none_or(|t| t > now);
        let get = |k: &Bytes| self.data.get(&HKey::new(k.clone())).filter(|v| alive(v));
        match q {
            Query::Get(k) => QueryResult::Value(get(k).map(|v| v.bytes.clone())),
            Query::MGet(keys) => QueryResult::Values(
                keys.iter()
                    .map(|k| get(k).map(|v| v.bytes.clone()))
                    .collect(),
            ),
            Query::Strlen(k) => QueryResult::Integer(get(k).map_or(0, |v| v.bytes.len() as i64)),
            Query::Pttl(k) => QueryResult::Integer(match get(k) {
                None => -2,
                Some(Value { expires: None, .. }) => -1,
                Some(Value {
                    expires: Some(t), ..
                }) => (t - now).min(i64::MAX as u64) as i64,
            }),
            Query::Exists(keys) => {
                QueryResult::Integer(keys.iter().filter(|k| get(k).is_some()).count() as i64)
            }
            Query::DbSize => {
                // Deadlines up to `now` have passed: every entry before (now + 1, ..).
                let expired = match now.checked_add(1) {
                    Some(after) => self
                        .expiries
                        .range(..(after, HKey::first_with_hash(0)))
                        .count(),
                    None => self.expiries.len(),
                };
                QueryResult::Integer((self.data.len() - expired) as i64)
            }
            Query::Keys(pattern) => QueryResult::Keys(
                self.data
                    .iter()
                    .filter(|(hk, v)| alive(v) && glob::matches(pattern, &hk.key))
                    .map(|(hk, _)| hk.key.clone())
                    .collect(),
            ),
            Query::Scan {
                cursor,
                pattern,
                count,
                type_matches,
            } => {
                let mut keys = Vec::new();
                let mut last_hash = None;
                let mut next = 0;
                let from = HKey::first_with_hash(*cursor);
                for (examined, (hk, v)) in self.data.range(from..).enumerate() {
                    if examined >= (*count).max(1) && last_hash != Some(hk.hash) {
                        next = hk.hash;
                        break;
                    }
                    last_hash = Some(hk.hash);
                    if *type_matches
                        && alive(v)
                        && pattern.as_ref().is_none_or(|p| glob::matches(p, &hk.key))
                    {
                        keys.push(hk.key.clone());
                    }
                }
                QueryResult::Scan { cursor: next, keys }
            }
        }
    }

    /// The number of keys held, live or expired but not yet purged.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if no key is held.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Encodes the whole state: `version, clock, count, (key, value, deadline)…, crc32c`.
    pub fn snapshot(&self) -> Bytes {
        encode_snapshot(
            self.clock,
            self.data
                .iter()
                .map(|(k, v)| (&k.key[..], &v.bytes[..], v.expires)),
        )
    }

    /// A frozen copy of the state for [`KvView::encode`] on another thread: keys and
    /// values are shared, not copied, so taking it costs a small fraction of encoding
    /// (one vector entry per key), and the store may change right after.
    pub fn view(&self) -> KvView {
        KvView {
            clock: self.clock,
            entries: self
                .data
                .iter()
                .map(|(k, v)| (k.key.clone(), v.bytes.clone(), v.expires))
                .collect(),
        }
    }

    /// Decodes a snapshot (this version's or version 1's), verifying its checksum
    /// before trusting any of it.
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
        let clock = match version {
            1 => 0,
            2 => get_u64(&mut input)?,
            v => return Err(DecodeError::Version(v)),
        };
        let count = get_u64(&mut input)?;
        let mut store = KvStore {
            clock,
            ..KvStore::default()
        };
        for _ in 0..count {
            let k = get_bytes(&mut input)?;
            let bytes = get_bytes(&mut input)?;
            let expires = match version {
                1 => None,
                _ => match get_u8(&mut input)? {
                    0 => None,
                    1 => Some(get_u64(&mut input)?),
                    t => return Err(DecodeError::BadTag(t)),
                },
            };
            let hk = HKey::new(k);
            // A second copy would leave the first one's deadline in `expiries`.
            if store.data.contains_key(&hk) {
                return Err(DecodeError::DuplicateKey);
            }
            if let Some(t) = expires {
                store.expiries.insert((t, hk.clone()));
            }
            store.data.insert(hk, Value { bytes, expires });
        }
        if input.has_remaining() {
            return Err(DecodeError::Trailing);
        }
        Ok(store)
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;
    use crate::Command;

    #[test]
    fn a_view_encodes_the_state_it_was_taken_at_byte_for_byte() {
        let mut kv = KvStore::new();
        for i in 0..100 {
            kv.apply(
                Command::Put {
                    key: Bytes::from(format!("k{i}")),
                    value: Bytes::from(format!("v{i}")),
                }
                .encode_at(1_000 + i),
            );
        }
        let at_100 = kv.snapshot();
        let view = kv.view();
        // The store moves on; the view does not.
        kv.apply(
            Command::Put {
                key: Bytes::from_static(b"k1"),
                value: Bytes::from_static(b"changed"),
            }
            .encode_at(5_000),
        );
        assert_eq!(view.encode(), at_100);
        assert_ne!(kv.snapshot(), at_100);
    }
}
