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

fn u32_at(h: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]])
}

fn u64_at(h: &[u8], o: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[o..o + 8]);
    u64::from_le_bytes(b)
}

/// Writes `seal` (or an open, unsealed state for `None`) into a header page.
pub fn write(header: &mut [u8], epoch: u32, seal: Option<Seal>) {
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

/// Why a map's seal does not hold.
pub fn read(header: &[u8]) -> Result<Seal, &'static str> {
    if header.len() < 48 || crc32fast::hash(&header[..44]) != u32_at(header, 44) {
        return Err("header checksum mismatch");
    }
    if u32_at(header, 16) != 1 {
        return Err("not closed cleanly (left open by a crash)");
    }
    Ok(Seal {
        epoch: u32_at(header, 20),
        applied: u64_at(header, 24),
        tag: u64_at(header, 32),
        body_crc: u32_at(header, 40),
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
        read(&self.mapped().bytes()[..HEADER_BYTES])
    }

    /// CRC-32 of the body (everything after the header page).
    fn body_crc(&self) -> u32 {
        crc32fast::hash(&self.mapped().bytes()[HEADER_BYTES..])
    }

    /// Writes the seal (`None`: open for writes) and makes the header page durable.
    fn set_seal(&mut self, epoch: u32, seal: Option<Seal>) -> std::io::Result<()> {
        let file = self.mapped_mut();
        write(&mut file.bytes_mut()[..HEADER_BYTES], epoch, seal);
        file.flush_range(0, HEADER_BYTES)
    }
}
