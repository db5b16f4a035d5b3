//! NEON split-block bloom filter: a block as two 128-bit registers of four words.

use core::arch::aarch64::*;

use super::{BLOCK_BYTES, SALT};

#[inline]
fn masks(key: u32) -> (uint32x4_t, uint32x4_t) {
    // SAFETY: NEON is part of the aarch64 baseline; SALT is 8 readable u32s.
    unsafe {
        let k = vdupq_n_u32(key);
        let lo = vshrq_n_u32::<27>(vmulq_u32(k, vld1q_u32(SALT.as_ptr())));
        let hi = vshrq_n_u32::<27>(vmulq_u32(k, vld1q_u32(SALT.as_ptr().add(4))));
        let one = vdupq_n_u32(1);
        (
            vshlq_u32(one, vreinterpretq_s32_u32(lo)),
            vshlq_u32(one, vreinterpretq_s32_u32(hi)),
        )
    }
}

/// Probe within one block.
#[inline]
pub fn probe_block(b: &[u8; BLOCK_BYTES], key: u32) -> bool {
    let (mlo, mhi) = masks(key);
    // SAFETY: `b` is 32 readable bytes; vld1q_u8 has no alignment requirement.
    unsafe {
        let lo = vreinterpretq_u32_u8(vld1q_u8(b.as_ptr()));
        let hi = vreinterpretq_u32_u8(vld1q_u8(b.as_ptr().add(16)));
        let ok = vandq_u32(
            vceqq_u32(vandq_u32(lo, mlo), mlo),
            vceqq_u32(vandq_u32(hi, mhi), mhi),
        );
        vminvq_u32(ok) == u32::MAX
    }
}

/// Insert within one block.
#[inline]
pub fn insert_block(b: &mut [u8; BLOCK_BYTES], key: u32) {
    let (mlo, mhi) = masks(key);
    // SAFETY: `b` is 32 readable and writable bytes; vld1q/vst1q have no alignment needs.
    unsafe {
        let lo = vorrq_u32(vreinterpretq_u32_u8(vld1q_u8(b.as_ptr())), mlo);
        let hi = vorrq_u32(vreinterpretq_u32_u8(vld1q_u8(b.as_ptr().add(16))), mhi);
        vst1q_u8(b.as_mut_ptr(), vreinterpretq_u8_u32(lo));
        vst1q_u8(b.as_mut_ptr().add(16), vreinterpretq_u8_u32(hi));
    }
}
