//! Split-block bloom filter probes over a raw byte buffer (a memory-mapped file).
//!
//! Layout (the Parquet SBBF scheme): the filter is an array of 32-byte blocks, each eight
//! little-endian u32 words. A 64-bit hash picks a block with its high half
//! (`((h >> 32) · blocks) >> 32`) and, with its low half `k`, one bit in each word:
//! bit `(k · SALTᵢ) >> 27` of word i. Insert sets the eight bits; probe checks them. One
//! block is one cache line half, so a probe touches one line.
//!
//! Backends: `portable` (the test oracle, always compiled), AVX2 on x86-64 (chosen at
//! runtime, detection cached) and NEON on aarch64 (baseline there). Property tests compare
//! each with the portable twin.

#![allow(
    clippy::indexing_slicing,
    reason = "block indices are reduced modulo the filter's own block count"
)]

pub mod portable;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

/// Bytes per block.
pub const BLOCK_BYTES: usize = 32;

/// The eight odd multipliers of the SBBF scheme.
pub const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

/// Which block a hash selects in a filter of `blocks` blocks.
#[inline]
pub fn block_index(hash: u64, blocks: usize) -> usize {
    (((hash >> 32) * blocks as u64) >> 32) as usize
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

fn detect() -> Backend {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            return Backend::Avx2;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return Backend::Neon;
    }
    #[allow(
        unreachable_code,
        reason = "reached on targets without a SIMD backend above"
    )]
    Backend::Portable
}

fn backend_cached() -> Backend {
    static BACKEND: std::sync::OnceLock<Backend> = std::sync::OnceLock::new();
    *BACKEND.get_or_init(detect)
}

/// The name of the backend in use ("avx2", "neon" or "portable").
pub fn backend() -> &'static str {
    match backend_cached() {
        Backend::Portable => "portable",
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => "avx2",
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => "neon",
    }
}

fn block(filter: &[u8], hash: u64) -> &[u8; BLOCK_BYTES] {
    assert!(
        filter.len() >= BLOCK_BYTES && filter.len().is_multiple_of(BLOCK_BYTES),
        "filter is whole blocks"
    );
    let i = block_index(hash, filter.len() / BLOCK_BYTES);
    &filter.as_chunks::<BLOCK_BYTES>().0[i]
}

fn block_mut(filter: &mut [u8], hash: u64) -> &mut [u8; BLOCK_BYTES] {
    assert!(
        filter.len() >= BLOCK_BYTES && filter.len().is_multiple_of(BLOCK_BYTES),
        "filter is whole blocks"
    );
    let i = block_index(hash, filter.len() / BLOCK_BYTES);
    &mut filter.as_chunks_mut::<BLOCK_BYTES>().0[i]
}

/// Whether `hash` may be in the filter (false: certainly not).
#[inline]
pub fn probe(filter: &[u8], hash: u64) -> bool {
    let b = block(filter, hash);
    match backend_cached() {
        Backend::Portable => portable::probe_block(b, hash as u32),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 support was detected at runtime.
        Backend::Avx2 => unsafe { avx2::probe_block(b, hash as u32) },
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => neon::probe_block(b, hash as u32),
    }
}

/// Adds `hash` to the filter.
#[inline]
pub fn insert(filter: &mut [u8], hash: u64) {
    let b = block_mut(filter, hash);
    match backend_cached() {
        Backend::Portable => portable::insert_block(b, hash as u32),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 support was detected at runtime.
        Backend::Avx2 => unsafe { avx2::insert_block(b, hash as u32) },
        #[cfg(target_arch = "aarch64")]
        Backend::Neon => neon::insert_block(b, hash as u32),
    }
}

/// Filter size in bytes for `items` expected entries at `bits_per_item` bits each, rounded
/// up to whole blocks (at least one).
pub fn filter_bytes(items: u64, bits_per_item: u64) -> usize {
    let bytes = (items.max(1) * bits_per_item).div_ceil(8);
    (bytes.div_ceil(BLOCK_BYTES as u64) as usize).max(1) * BLOCK_BYTES
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn dispatched_backend_matches_portable(hashes in proptest::collection::vec(any::<u64>(), 1..200),
                                               probes in proptest::collection::vec(any::<u64>(), 1..200),
                                               blocks in 1usize..64) {
            let mut fast = vec![0u8; blocks * BLOCK_BYTES];
            let mut slow = fast.clone();
            for &h in &hashes {
                insert(&mut fast, h);
                portable::insert(&mut slow, h);
            }
            prop_assert_eq!(&fast, &slow);
            for &h in hashes.iter().chain(&probes) {
                prop_assert_eq!(probe(&fast, h), portable::probe(&slow, h));
            }
            for &h in &hashes {
                prop_assert!(probe(&fast, h), "no false negatives");
            }
        }
    }

    #[test]
    fn false_positive_rate_is_low_at_sixteen_bits_per_item() {
        let n = 100_000u64;
        let mut f = vec![0u8; filter_bytes(n, 16)];
        let mix = |x: u64| x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) ^ x;
        for i in 0..n {
            insert(&mut f, mix(i));
        }
        let fp = (n..2 * n).filter(|&i| probe(&f, mix(i))).count();
        assert!(
            (fp as f64) / (n as f64) < 0.005,
            "fp rate {}",
            fp as f64 / n as f64
        );
    }
}
