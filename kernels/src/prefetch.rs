//! Software prefetch: ask for a cache line before it is needed, so a batch of random
//! probes (bloom blocks, hash-table slots) overlaps its memory latencies instead of paying
//! them one after another.

/// Hints that `bytes[offset]` will be read soon. Out-of-range offsets are ignored. A no-op
/// where no prefetch instruction is available (the portable path).
#[inline(always)]
pub fn prefetch(bytes: &[u8], offset: usize) {
    let Some(rest) = bytes.get(offset..).filter(|r| !r.is_empty()) else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    {
        let p = rest.as_ptr() as *const i8;
        // SAFETY: prefetch never faults and reads nothing architecturally; `p` points
        // inside `bytes` anyway. SSE is part of the x86-64 baseline.
        unsafe { core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = rest;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_accepts_any_offset() {
        let v = vec![0u8; 100];
        super::prefetch(&v, 0);
        super::prefetch(&v, 99);
        super::prefetch(&v, 100);
        super::prefetch(&[], 0);
    }
}
