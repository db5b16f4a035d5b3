//! Memory-mapped split-block bloom filter in front of the table: a fresh serial (the common
//! case) is answered here without touching the table's pages.
//!
//! ```text
//! header (4096 bytes): "MCSPBL02" | blocks u64 | seal (bytes 16..48, `super::seal`) |
//!                      zero padding
//! blocks × 32 bytes (microcash_kernels::bloom layout)
//! ```

#![allow(
    clippy::indexing_slicing,
    reason = "offsets are within the header page and the filter this map was created with"
)]

use std::io;
use std::path::Path;

use microcash_kernels::bloom;

use super::seal::{self, Sealed};
use crate::le::u64_at;
use crate::mmap::MappedFile;

const MAGIC: &[u8; 8] = b"MCSPBL02";
use super::seal::HEADER_BYTES;
/// Bits per expected serial (false-positive rate ≈ 0.1 % at this load, measured in tests).
pub const BITS_PER_SERIAL: u64 = 16;

/// The filter.
pub struct Bloom {
    file: MappedFile,
}

/// The filter's 64-bit hash of a serial: its first 8 bytes (serials are hash outputs; the
/// table indexes with bytes 8..16, so the two are independent).
#[inline]
pub fn serial_hash(serial: &[u8; 32]) -> u64 {
    u64_at(serial, 0).unwrap_or_default()
}

impl Bloom {
    /// Creates an empty, unsealed filter for `epoch` sized for `expected` serials.
    pub fn create(path: &Path, expected: u64, epoch: u32) -> io::Result<Bloom> {
        let bytes = bloom::filter_bytes(expected, BITS_PER_SERIAL);
        let mut file = MappedFile::create(path, HEADER_BYTES + bytes)?;
        let h = file.bytes_mut();
        h[..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&((bytes / bloom::BLOCK_BYTES) as u64).to_le_bytes());
        seal::write_into(h, epoch, None)?;
        Ok(Bloom { file })
    }

    /// Opens an existing filter.
    pub fn open(path: &Path) -> io::Result<Bloom> {
        let file = MappedFile::open(path)?;
        let h = file.bytes();
        let blocks = if h.len() >= HEADER_BYTES && &h[..8] == MAGIC {
            u64_at(h, 8).unwrap_or_default()
        } else {
            0
        };
        if blocks == 0
            || h.len() as u64
                != HEADER_BYTES as u64 + blocks.saturating_mul(bloom::BLOCK_BYTES as u64)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a spent-set bloom filter", path.display()),
            ));
        }
        Ok(Bloom { file })
    }

    /// Whether `serial` may have been inserted.
    #[inline]
    pub fn may_contain(&self, serial: &[u8; 32]) -> bool {
        bloom::probe(&self.file.bytes()[HEADER_BYTES..], serial_hash(serial))
    }

    /// Prefetches the block `serial` maps to.
    pub fn prefetch(&self, serial: &[u8; 32]) {
        let filter = &self.file.bytes()[HEADER_BYTES..];
        let block = bloom::block_index(serial_hash(serial), filter.len() / bloom::BLOCK_BYTES);
        microcash_kernels::prefetch::prefetch(filter, block * bloom::BLOCK_BYTES);
    }

    /// Adds `serial`.
    #[inline]
    pub fn insert(&mut self, serial: &[u8; 32]) {
        bloom::insert(
            &mut self.file.bytes_mut()[HEADER_BYTES..],
            serial_hash(serial),
        )
    }

    /// msync.
    pub fn flush(&self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sealed for Bloom {
    fn mapped(&self) -> &MappedFile {
        &self.file
    }
    fn mapped_mut(&mut self) -> &mut MappedFile {
        &mut self.file
    }
}
