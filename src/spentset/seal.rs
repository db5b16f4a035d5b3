//! The seal in the header page of every spent-set map (bloom filter and table): which epoch
//! it holds, which journal prefix it reflects, and a checksum of its body. A map is trusted
//! only when its seal is intact, was written on a clean close, names this epoch, and
//! reflects a prefix of *this* journal (by the tag of the frame ending there); its body must
//! match the checksum. Anything else — missing, stale from another journal, left open by a
//! crash, a flipped bit — and the map is rebuilt from the journal.
//!
//! ```text
//! header bytes 16..48: sealed u32 (1 = clean close) | epoch u32 | journal end u64 |
//!                      journal tag u64 | CRC-32 of the body u32 | CRC-32 of bytes 0..44 u32
//! ```

use crate::le::{u32_at, u64_at};

/// What a sealed map claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seal {
    /// The key epoch whose serials the map holds.
    pub epoch: u32,
    /// Journal length the map reflects (a frame boundary).
    pub applied: u64,
    /// `Journal::tag_at(applied)` when it was sealed.
    pub tag: u64,
    /// CRC-32 of everything after the header page.
    pub body_crc: u32,
}

/// The bytes of the header page the seal uses.
pub const SEAL_BYTES: usize = 48;

/// Writes `seal` (or an open, unsealed state for `None`) into a header page.
pub fn write(header: &mut [u8; SEAL_BYTES], epoch: u32, seal: Option<Seal>) {
    let s = seal.unwrap_or(Seal {
        epoch,
        applied: 0,
        tag: 0,
        body_crc: 0,
    });
    header[16..20].copy_from_slice(&u32::from(seal.is_some()).to_le_bytes());
    header[20..24].copy_from_slice(&s.epoch.to_le_bytes());
    header[24..32].copy_from_slice(&s.applied.to_le_bytes());
    header[32..40].copy_from_slice(&s.tag.to_le_bytes());
    header[40..44].copy_from_slice(&s.body_crc.to_le_bytes());
    let crc = crc32fast::hash(&header[..44]);
    header[44..48].copy_from_slice(&crc.to_le_bytes());
}

/// Writes `seal` into the header page at the start of a map's bytes.
pub fn write_into(map: &mut [u8], epoch: u32, seal: Option<Seal>) -> std::io::Result<()> {
    let header = map.first_chunk_mut::<SEAL_BYTES>();
    let header = header.ok_or_else(|| std::io::Error::other("map shorter than its header"))?;
    write(header, epoch, seal);
    Ok(())
}

/// Why a map's seal does not hold.
pub fn read(header: &[u8; SEAL_BYTES]) -> Result<Seal, &'static str> {
    let word = |o| u32_at(header, o).unwrap_or_default();
    let long = |o| u64_at(header, o).unwrap_or_default();
    if crc32fast::hash(&header[..44]) != word(44) {
        return Err("header checksum mismatch");
    }
    if word(16) != 1 {
        return Err("not closed cleanly (left open by a crash)");
    }
    Ok(Seal {
        epoch: word(20),
        applied: long(24),
        tag: long(32),
        body_crc: word(40),
    })
}

/// The header page every map starts with (the seal lives in it).
pub const HEADER_BYTES: usize = 4096;

/// A memory-mapped map file with a seal in its header page (the bloom filter, the table).
pub trait Sealed {
    /// The mapped file.
    fn mapped(&self) -> &crate::mmap::MappedFile;
    /// The mapped file, writable.
    fn mapped_mut(&mut self) -> &mut crate::mmap::MappedFile;

    /// The header's seal, or why it does not hold.
    fn seal(&self) -> Result<Seal, &'static str> {
        let header = self.mapped().bytes().first_chunk::<SEAL_BYTES>();
        read(header.ok_or("header page truncated")?)
    }

    /// CRC-32 of the body (everything after the header page).
    fn body_crc(&self) -> u32 {
        crc32fast::hash(
            self.mapped()
                .bytes()
                .get(HEADER_BYTES..)
                .unwrap_or_default(),
        )
    }

    /// Writes the seal (`None`: open for writes) and makes the header page durable.
    fn set_seal(&mut self, epoch: u32, seal: Option<Seal>) -> std::io::Result<()> {
        let file = self.mapped_mut();
        write_into(file.bytes_mut(), epoch, seal)?;
        file.flush_range(0, HEADER_BYTES)
    }
}
