//! The portable split-block bloom filter: the fallback and the test oracle.

#![allow(
    clippy::indexing_slicing,
    reason = "block and word indices are reduced modulo the filter's own block count"
)]

use super::{block_index, BLOCK_BYTES, SALT};

#[inline]
fn word(b: &[u8; BLOCK_BYTES], i: usize) -> u32 {
    u32::from_le_bytes(b.as_chunks::<4>().0[i])
}

/// Probe within one block.
#[inline]
pub fn probe_block(b: &[u8; BLOCK_BYTES], key: u32) -> bool {
    (0..8).all(|i| word(b, i) & (1u32 << (key.wrapping_mul(SALT[i]) >> 27)) != 0)
}

/// Insert within one block.
#[inline]
pub fn insert_block(b: &mut [u8; BLOCK_BYTES], key: u32) {
    for (i, salt) in SALT.iter().enumerate() {
        let w = word(b, i) | (1u32 << (key.wrapping_mul(*salt) >> 27));
        b[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
}

/// Probe a whole filter.
pub fn probe(filter: &[u8], hash: u64) -> bool {
    let i = block_index(hash, filter.len() / BLOCK_BYTES);
    probe_block(&filter.as_chunks::<BLOCK_BYTES>().0[i], hash as u32)
}

/// Insert into a whole filter.
pub fn insert(filter: &mut [u8], hash: u64) {
    let i = block_index(hash, filter.len() / BLOCK_BYTES);
    insert_block(&mut filter.as_chunks_mut::<BLOCK_BYTES>().0[i], hash as u32)
}
