//! Little-endian fields at offsets of on-disk headers, read without a panicking index:
//! `None` when the bytes are too short, so a torn or truncated file is an error, not a crash.

/// A fixed-size array at `at` in `b`, or `None` if `b` is too short.
pub(crate) fn array_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The little-endian u32 at `at`.
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    array_at(b, at).map(u32::from_le_bytes)
}

/// The little-endian u64 at `at`.
pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    array_at(b, at).map(u64::from_le_bytes)
}
