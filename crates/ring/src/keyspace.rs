//! Keys to shards: a fixed number of shards, each owning one equal slice of the 64-bit
//! key-hash space.
//!
//! ```text
//!   key ──hash tag?──▶ routed bytes ──kv::key_hash──▶ h: u64 ──⌊h·S / 2^64⌋──▶ shard
//!
//!   hash space  0 ────────────────────────────────────────────────────── 2^64
//!               │ shard 0 │ shard 1 │ shard 2 │   ...   │ shard S-1 │
//!               ▲ each shard's ring position is the start of its slice
//! ```
//!
//! Why slices of the hash rather than `h mod S`: a shard is then a contiguous range of
//! `kv::key_hash` order, which is the order the store keeps and SCAN walks, so a
//! keyspace-wide SCAN can visit shards in order with one cursor; and with a power-of-two
//! shard count, doubling it splits shard `i` into `2i` and `2i + 1` exactly (a future
//! shard split moves no key across any other shard boundary).
//!
//! **Hash tags.** With [`HashTags::Redis`] (the default) a key that contains `{…}` with
//! at least one byte between the first `{` and the first `}` after it is routed by those
//! bytes alone, exactly as Redis Cluster does: `{user1000}.following` and
//! `{user1000}.followers` land on one shard, so multi-key commands on them need no
//! cross-shard transaction. The price is the user's to pay knowingly: one hot tag is one
//! hot shard. [`HashTags::Off`] routes by the whole key. The choice is part of the
//! keyspace and is fixed when the cluster is created, like the shard count: changing
//! either would move keys between shards.

use std::fmt;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A shard's number, `0..Keyspace::shards()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Whether a `{tag}` inside a key chooses its shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashTags {
    /// Redis Cluster's rule: route by the bytes between the first `{` and the first `}`
    /// after it, when there is at least one such byte; otherwise by the whole key.
    #[default]
    Redis,
    /// Route every key by all of its bytes.
    Off,
}

/// How keys map to shards: the shard count and the hash-tag rule, both fixed at cluster
/// creation.
///
/// Guarantees: [`Keyspace::shard_of`] is a pure function of the key and this value, the
/// same on every node, build and version (`kv::key_hash` is frozen); every key maps to a
/// shard `< shards()`; shards own equal slices of the hash space (to within one hash
/// value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "KeyspaceFields")]
pub struct Keyspace {
    shards: u32,
    hash_tags: HashTags,
}

/// The wire form of a [`Keyspace`], checked by [`Keyspace::new`] on the way in.
#[derive(Deserialize)]
struct KeyspaceFields {
    shards: u32,
    hash_tags: HashTags,
}

impl TryFrom<KeyspaceFields> for Keyspace {
    type Error = Error;
    fn try_from(fields: KeyspaceFields) -> Result<Keyspace, Error> {
        Keyspace::new(fields.shards, fields.hash_tags)
    }
}

impl Keyspace {
    /// The most shards a keyspace may have. A shard is a replication group on each of
    /// its replicas, so real clusters want thousands, not millions; the bound keeps a
    /// hostile or mistyped configuration from allocating gigabytes.
    pub const SHARDS_MAX: u32 = 1 << 20;

    /// A keyspace of `shards` shards. Any count in `1..=SHARDS_MAX` works; a power of two
    /// keeps the door open to splitting every shard in two later.
    pub fn new(shards: u32, hash_tags: HashTags) -> Result<Keyspace, Error> {
        if shards == 0 {
            return Err(Error::NoShards);
        }
        if shards > Self::SHARDS_MAX {
            return Err(Error::TooManyShards {
                shards,
                max: Self::SHARDS_MAX,
            });
        }
        Ok(Keyspace { shards, hash_tags })
    }

    /// The number of shards.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The hash-tag rule.
    pub fn hash_tags(&self) -> HashTags {
        self.hash_tags
    }

    /// Every shard id, in order.
    pub fn shard_ids(&self) -> impl Iterator<Item = ShardId> {
        (0..self.shards).map(ShardId)
    }

    /// Whether `shard` is one of this keyspace's shards.
    pub fn contains(&self, shard: ShardId) -> bool {
        shard.0 < self.shards
    }

    /// The 64-bit hash that routes `key`: `kv::key_hash` of its hash tag, or of the whole
    /// key when it has none (or tags are off). Keys with the same tag have the same
    /// routing hash.
    pub fn routing_hash(&self, key: &[u8]) -> u64 {
        let routed = match self.hash_tags {
            HashTags::Redis => hash_tag(key).unwrap_or(key),
            HashTags::Off => key,
        };
        kv::key_hash(routed)
    }

    /// The shard that owns `key`.
    pub fn shard_of(&self, key: &[u8]) -> ShardId {
        self.shard_of_hash(self.routing_hash(key))
    }

    /// The shard whose slice holds `hash`: `⌊hash · shards / 2^64⌋`, always `< shards`.
    pub fn shard_of_hash(&self, hash: u64) -> ShardId {
        // The product of a u64 and a u32 fits a u128; its high 64 bits are < shards.
        ShardId(((u128::from(hash) * u128::from(self.shards)) >> 64) as u32)
    }

    /// The hashes `shard` owns (`None` for a shard outside the keyspace). The slices of
    /// all shards tile `0..=u64::MAX` in shard order without gaps or overlaps.
    pub fn hash_range(&self, shard: ShardId) -> Option<RangeInclusive<u64>> {
        if !self.contains(shard) {
            return None;
        }
        let start = self.slice_start(shard.0);
        // The last shard ends at the top of the space; the start of a shard past the
        // end would be 2^64, one beyond u64.
        let end = if shard.0 + 1 == self.shards {
            u64::MAX
        } else {
            self.slice_start(shard.0 + 1) - 1
        };
        Some(start..=end)
    }

    /// Where `shard` sits on the ring: the first hash of its slice. Shards are thus
    /// evenly spaced around the ring, so a node's share of shards tracks its share of
    /// ring arcs without the extra noise hashed shard positions would add.
    pub(crate) fn ring_position(&self, shard: u32) -> u64 {
        self.slice_start(shard)
    }

    /// The smallest hash `h` with `⌊h · shards / 2^64⌋ = shard`, i.e. `⌈shard · 2^64 /
    /// shards⌉`; `shard < shards` keeps it below 2^64.
    fn slice_start(&self, shard: u32) -> u64 {
        let numerator = u128::from(shard) << 64;
        numerator.div_ceil(u128::from(self.shards)) as u64
    }
}

/// The hash tag of `key` under Redis Cluster's rule: the bytes between the first `{` and
/// the first `}` after it, if there is at least one; `None` otherwise.
///
/// `{user1000}.following` → `user1000`; `foo{}{bar}` → `None` (the first pair is empty,
/// so the whole key routes); `foo{{bar}}zap` → `{bar`; `foo{bar}{zap}` → `bar`.
pub fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = &key[open + 1..];
    let close = rest.iter().position(|&b| b == b'}')?;
    if close == 0 {
        return None;
    }
    Some(&rest[..close])
}
