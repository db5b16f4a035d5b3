//! Memory-mapped open-addressing hash table: serial (32 bytes) → receipt id (u64).
//!
//! ```text
//! header (4096 bytes): "MCSPTB02" | capacity u64 | seal (bytes 16..48, `super::seal`) |
//!                      zero padding
//! slots: capacity × 40 bytes: serial [32] | receipt id u64 LE   (receipt id 0 = empty)
//! ```
//! Capacity is a power of two; linear probing from `serial[8..16] mod capacity` (serials
//! are hash outputs, so their bytes are uniform). The load factor is kept ≤ 3/4 by growth:
//! a new file twice the size is filled and renamed over the old one.

#![allow(
    clippy::indexing_slicing,
    reason = "slot indices are masked by the table's own power-of-two capacity"
)]

use std::io;
use std::path::Path;

use super::seal::{self, Sealed};
use crate::le::{array_at, u32_at, u64_at};
use crate::mmap::MappedFile;

const MAGIC: &[u8; 8] = b"MCSPTB02";
/// Header bytes (one page, so slots start page-aligned; the seal lives in it).
pub use super::seal::HEADER_BYTES;
/// Bytes per slot.
pub const SLOT_BYTES: usize = 40;
/// Smallest capacity.
pub const CAPACITY_MIN: u64 = 1024;

/// Result of an insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// The serial was absent and is now present.
    Inserted,
    /// The serial was already present, with this receipt id.
    Present(u64),
}

/// The table.
#[allow(
    clippy::len_without_is_empty,
    reason = "a table is never empty: it has a capacity"
)]
pub struct Table {
    file: MappedFile,
    capacity: u64,
    count: u64,
}

fn slot_start(capacity: u64, serial: &[u8; 32]) -> u64 {
    u64_at(serial, 8).unwrap_or_default() & (capacity - 1)
}

/// Capacity for `items` entries at load ≤ 3/4.
pub fn capacity_for(items: u64) -> u64 {
    (items.saturating_mul(4) / 3 + 1)
        .next_power_of_two()
        .max(CAPACITY_MIN)
}

impl Table {
    /// Creates an empty, unsealed table of `capacity` slots for `epoch` at `path`.
    pub fn create(path: &Path, capacity: u64, epoch: u32) -> io::Result<Table> {
        assert!(capacity.is_power_of_two() && capacity >= CAPACITY_MIN);
        let len = HEADER_BYTES + capacity as usize * SLOT_BYTES;
        let mut file = MappedFile::create(path, len)?;
        let h = file.bytes_mut();
        h[..8].copy_from_slice(MAGIC);
        h[8..16].copy_from_slice(&capacity.to_le_bytes());
        seal::write_into(h, epoch, None)?;
        Ok(Table {
            file,
            capacity,
            count: 0,
        })
    }

    /// Opens an existing table, checking its header and size.
    pub fn open(path: &Path) -> io::Result<Table> {
        let file = MappedFile::open(path)?;
        let h = file.bytes();
        let bad = |m: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {m}", path.display()),
            )
        };
        if h.len() < HEADER_BYTES || &h[..8] != MAGIC {
            return Err(bad("not a spent-set table"));
        }
        let capacity = u64_at(h, 8).unwrap_or_default();
        if !capacity.is_power_of_two()
            || capacity < CAPACITY_MIN
            || h.len() as u64 != HEADER_BYTES as u64 + capacity.saturating_mul(SLOT_BYTES as u64)
        {
            return Err(bad("size does not match capacity"));
        }
        let mut t = Table {
            file,
            capacity,
            count: 0,
        };
        // The count is derived, not trusted: entries past the last checkpoint may be there.
        t.count = (0..capacity).filter(|&i| t.receipt_at(i) != 0).count() as u64;
        Ok(t)
    }

    fn slot(&self, i: u64) -> &[u8] {
        let o = HEADER_BYTES + i as usize * SLOT_BYTES;
        &self.file.bytes()[o..o + SLOT_BYTES]
    }

    fn receipt_at(&self, i: u64) -> u64 {
        u64_at(self.slot(i), 32).unwrap_or_default()
    }

    /// The receipt id of `serial`, if present.
    pub fn get(&self, serial: &[u8; 32]) -> Option<u64> {
        let mut i = slot_start(self.capacity, serial);
        loop {
            let r = self.receipt_at(i);
            if r == 0 {
                return None;
            }
            if &self.slot(i)[..32] == serial {
                return Some(r);
            }
            i = (i + 1) & (self.capacity - 1);
        }
    }

    /// Inserts `serial → receipt` unless present. The caller keeps the load ≤ 3/4
    /// ([`Table::needs_growth`]), so a free slot always exists.
    pub fn insert(&mut self, serial: &[u8; 32], receipt: u64) -> Insert {
        assert_ne!(receipt, 0, "receipt id 0 marks empty slots");
        assert!(self.count < self.capacity, "table full: growth was skipped");
        let mut i = slot_start(self.capacity, serial);
        loop {
            let r = self.receipt_at(i);
            if r == 0 {
                let o = HEADER_BYTES + i as usize * SLOT_BYTES;
                let s = &mut self.file.bytes_mut()[o..o + SLOT_BYTES];
                s[..32].copy_from_slice(serial);
                s[32..].copy_from_slice(&receipt.to_le_bytes());
                self.count += 1;
                return Insert::Inserted;
            }
            if &self.slot(i)[..32] == serial {
                return Insert::Present(r);
            }
            i = (i + 1) & (self.capacity - 1);
        }
    }

    /// Prefetches the slot `serial` starts probing at.
    pub fn prefetch(&self, serial: &[u8; 32]) {
        let o = HEADER_BYTES + slot_start(self.capacity, serial) as usize * SLOT_BYTES;
        microcash_kernels::prefetch::prefetch(self.file.bytes(), o);
    }

    /// Whether adding `extra` entries would push the load above 3/4.
    pub fn needs_growth(&self, extra: u64) -> bool {
        (self.count + extra) * 4 > self.capacity * 3
    }

    /// Entries.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Slots.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Every (serial, receipt) entry.
    pub fn entries(&self) -> impl Iterator<Item = ([u8; 32], u64)> + '_ {
        (0..self.capacity).filter_map(move |i| {
            let r = self.receipt_at(i);
            (r != 0).then(|| (array_at(self.slot(i), 0).unwrap_or_default(), r))
        })
    }

    fn seal_epoch(&self) -> u32 {
        u32_at(self.file.bytes(), 20).unwrap_or_default()
    }

    /// Writes a copy with `capacity` slots to `path` (flushed), for growth by rename.
    pub fn rehash_into(&self, path: &Path, capacity: u64) -> io::Result<Table> {
        let epoch = self.seal_epoch();
        let mut t = Table::create(path, capacity, epoch)?;
        for (s, r) in self.entries() {
            t.insert(&s, r);
        }
        t.flush()?;
        Ok(t)
    }

    /// msync.
    pub fn flush(&self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Sealed for Table {
    fn mapped(&self) -> &MappedFile {
        &self.file
    }
    fn mapped_mut(&mut self) -> &mut MappedFile {
        &mut self.file
    }
}
