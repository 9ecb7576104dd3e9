//! The key hash: a fixed, documented function of the key's bytes.
//!
//! It orders the store (so a SCAN cursor is a position in hash order that stays valid
//! while keys come and go) and must therefore give the same value on every node, every
//! build and every version: it is defined here rather than borrowed from `std`, whose
//! hashers promise no stability.

/// FNV-1a over the bytes, then the SplitMix64 finalizer to spread FNV's weak high bits.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::key_hash;

    #[test]
    fn the_hash_is_frozen() {
        // These values are part of the on-disk and on-wire contract (SCAN cursors).
        assert_eq!(key_hash(b""), 0xf52a15e9a9b5e89b_u64);
        assert_eq!(key_hash(b"hello"), 0x16fe05a1c75bcd0f_u64);
        assert_ne!(key_hash(b"hello"), key_hash(b"hellp"));
    }
}
