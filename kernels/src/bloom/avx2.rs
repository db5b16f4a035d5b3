//! AVX2 split-block bloom filter: all eight words of a block in one 256-bit register.

use core::arch::x86_64::*;

use super::{BLOCK_BYTES, SALT};

#[inline]
#[target_feature(enable = "avx2")]
fn mask(key: u32) -> __m256i {
    let salt = _mm256_setr_epi32(
        SALT[0] as i32,
        SALT[1] as i32,
        SALT[2] as i32,
        SALT[3] as i32,
        SALT[4] as i32,
        SALT[5] as i32,
        SALT[6] as i32,
        SALT[7] as i32,
    );
    let k = _mm256_set1_epi32(key as i32);
    let shift = _mm256_srli_epi32(_mm256_mullo_epi32(k, salt), 27);
    _mm256_sllv_epi32(_mm256_set1_epi32(1), shift)
}

/// Probe within one block.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn probe_block(b: &[u8; BLOCK_BYTES], key: u32) -> bool {
    // SAFETY: `b` is 32 readable bytes; loadu has no alignment requirement.
    let block = unsafe { _mm256_loadu_si256(b.as_ptr() as *const __m256i) };
    // testc: (¬block ∧ mask) = 0, i.e. every mask bit is set in the block.
    _mm256_testc_si256(block, mask(key)) != 0
}

/// Insert within one block.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
pub unsafe fn insert_block(b: &mut [u8; BLOCK_BYTES], key: u32) {
    // SAFETY: `b` is 32 readable and writable bytes; loadu/storeu have no alignment needs.
    unsafe {
        let block = _mm256_loadu_si256(b.as_ptr() as *const __m256i);
        _mm256_storeu_si256(
            b.as_mut_ptr() as *mut __m256i,
            _mm256_or_si256(block, mask(key)),
        );
    }
}
