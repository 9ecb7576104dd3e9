//! Keys to shards: the rules of `Keyspace` and of hash tags.

use proptest::prelude::*;
use ring::{hash_tag, Error, HashTags, Keyspace, ShardId};

fn keyspace(shards: u32) -> Keyspace {
    Keyspace::new(shards, HashTags::Redis).unwrap()
}

#[test]
fn hash_tags_follow_redis_clusters_rule() {
    // The examples of the Redis Cluster specification, "Hash tags".
    assert_eq!(hash_tag(b"{user1000}.following"), Some(&b"user1000"[..]));
    assert_eq!(hash_tag(b"{user1000}.followers"), Some(&b"user1000"[..]));
    assert_eq!(
        hash_tag(b"foo{}{bar}"),
        None,
        "an empty first tag routes the whole key"
    );
    assert_eq!(hash_tag(b"foo{{bar}}zap"), Some(&b"{bar"[..]));
    assert_eq!(
        hash_tag(b"foo{bar}{zap}"),
        Some(&b"bar"[..]),
        "only the first pair counts"
    );
    assert_eq!(hash_tag(b"plain"), None);
    assert_eq!(hash_tag(b"open{only"), None);
    assert_eq!(hash_tag(b"close}only{"), None);
    assert_eq!(hash_tag(b""), None);
}

#[test]
fn keys_sharing_a_tag_share_a_shard() {
    let ks = keyspace(4096);
    assert_eq!(
        ks.shard_of(b"{user1000}.following"),
        ks.shard_of(b"{user1000}.followers")
    );
    assert_eq!(
        ks.shard_of(b"{user1000}.following"),
        ks.shard_of(b"user1000")
    );
    assert_eq!(ks.routing_hash(b"a{t}b"), kv::key_hash(b"t"));
    assert_eq!(ks.routing_hash(b"foo{}{bar}"), kv::key_hash(b"foo{}{bar}"));
}

#[test]
fn with_tags_off_the_whole_key_routes() {
    let ks = Keyspace::new(4096, HashTags::Off).unwrap();
    assert_eq!(
        ks.routing_hash(b"{user1000}.following"),
        kv::key_hash(b"{user1000}.following")
    );
}

#[test]
fn a_shard_is_a_slice_of_the_key_hash() {
    // shard = ⌊hash · S / 2^64⌋: with 4 shards, the top two bits of the hash.
    let ks = Keyspace::new(4, HashTags::Off).unwrap();
    assert_eq!(ks.shard_of_hash(0), ShardId(0));
    assert_eq!(ks.shard_of_hash(u64::MAX / 4), ShardId(0));
    assert_eq!(ks.shard_of_hash(1 << 62), ShardId(1));
    assert_eq!(ks.shard_of_hash(u64::MAX), ShardId(3));
    assert_eq!(ks.hash_range(ShardId(1)), Some((1 << 62)..=((1 << 63) - 1)));
    assert_eq!(ks.hash_range(ShardId(3)), Some((3 << 62)..=u64::MAX));
    assert_eq!(ks.hash_range(ShardId(4)), None);
}

#[test]
fn key_to_shard_is_frozen() {
    // Part of the cluster contract: changing these moves keys between shards. Also
    // printed by tests/reference/frozen_values.py.
    let ks = keyspace(4096);
    assert_eq!(ks.shard_of(b""), ShardId(3922));
    assert_eq!(ks.shard_of(b"hello"), ShardId(367));
    assert_eq!(ks.shard_of(b"{hello}.world"), ShardId(367));
}

#[test]
fn shard_counts_out_of_range_are_refused() {
    assert_eq!(Keyspace::new(0, HashTags::Redis), Err(Error::NoShards));
    assert_eq!(
        Keyspace::new(Keyspace::SHARDS_MAX + 1, HashTags::Redis),
        Err(Error::TooManyShards {
            shards: Keyspace::SHARDS_MAX + 1,
            max: Keyspace::SHARDS_MAX
        })
    );
    assert!(Keyspace::new(1, HashTags::Redis).is_ok());
    assert!(Keyspace::new(Keyspace::SHARDS_MAX, HashTags::Redis).is_ok());
    // An invalid keyspace cannot come in over the wire either.
    let wire = r#"{"shards":0,"hash_tags":"Redis"}"#;
    assert!(serde_json::from_str::<Keyspace>(wire).is_err());
}

proptest! {
    #[test]
    fn every_hash_lands_in_a_shard_whose_slice_holds_it(shards in 1u32..=Keyspace::SHARDS_MAX, hash: u64) {
        let ks = keyspace(shards);
        let shard = ks.shard_of_hash(hash);
        prop_assert!(shard.0 < shards);
        prop_assert!(ks.hash_range(shard).unwrap().contains(&hash));
    }

    #[test]
    fn slices_tile_the_hash_space_in_order(shards in 1u32..2000) {
        let ks = keyspace(shards);
        let mut next = 0u64;
        for shard in ks.shard_ids() {
            let range = ks.hash_range(shard).unwrap();
            prop_assert_eq!(*range.start(), next, "no gap, no overlap");
            prop_assert_eq!(ks.shard_of_hash(*range.start()), shard);
            prop_assert_eq!(ks.shard_of_hash(*range.end()), shard);
            // Equal slices: sizes differ by at most one hash.
            let size = u128::from(*range.end()) - u128::from(*range.start()) + 1;
            let ideal = (1u128 << 64) / u128::from(shards);
            prop_assert!(size == ideal || size == ideal + 1);
            next = range.end().wrapping_add(1);
        }
        prop_assert_eq!(next, 0, "the last slice ends at u64::MAX");
    }

    #[test]
    fn doubling_a_power_of_two_splits_each_shard_in_two(bits in 0u32..20, hash: u64) {
        let before = keyspace(1 << bits).shard_of_hash(hash).0;
        let after = keyspace(1 << (bits + 1)).shard_of_hash(hash).0;
        prop_assert_eq!(after / 2, before);
    }

    #[test]
    fn a_tag_routes_like_the_tag_alone(
        prefix in "[a-z:]{0,8}",
        tag in "[a-z0-9:]{1,8}",
        suffix in "[a-z{}:]{0,8}",
    ) {
        let ks = keyspace(16384);
        let key = format!("{prefix}{{{tag}}}{suffix}");
        prop_assert_eq!(ks.shard_of(key.as_bytes()), ks.shard_of(tag.as_bytes()));
    }
}
