//! Hashing of the hot tier's integer keys (ids and signature hashes).

/// Hasher for the hot tier's integer keys (ids and signature hashes): a seeded splitmix64
/// finalizer. SipHash was 8% of the write path's CPU; this is a few instructions, and the
/// per-process random seed keeps crafted keys from flooding one bucket.
#[derive(Clone)]
pub(crate) struct IdHashBuilder(u64);

impl Default for IdHashBuilder {
    fn default() -> Self {
        use std::hash::BuildHasher;
        Self(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl std::hash::BuildHasher for IdHashBuilder {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

/// See [`IdHashBuilder`].
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n)
            .wrapping_add(0x9e37_79b9_7f4a_7c15)
            .rotate_left(23);
    }
    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}
