//! The write-ahead journal: framed, checksummed commit groups, one fsync per group.
//!
//! ```text
//! file header (16 bytes): "MCJRNL01" | version u32 = 1 | reserved u32
//! frame: magic u32 = "MCF1" | payload length u32 | CRC-32 (IEEE) of the payload u32 |
//!        reserved u32 | payload
//! ```
//!
//! A frame is committed once `sync` returned. Recovery walks the frames; the first frame
//! that is incomplete or fails its checksum ends the journal **if nothing valid follows
//! it** — a torn tail, whose fsync never returned and whose verdicts were never reported —
//! and the file is truncated there. A bad frame followed by valid ones is corruption, not a
//! torn write, and opening fails. After a failed `sync` the journal refuses all writes
//! until it is reopened (the kernel may have dropped the dirty pages: retrying would
//! report durability that does not exist).
//!
//! All I/O goes through [`JournalIo`] so tests can fail or crash it at a chosen point.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

const FILE_MAGIC: &[u8; 8] = b"MCJRNL01";
/// Bytes of the file header.
pub const FILE_HEADER_BYTES: u64 = 16;
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"MCF1");
/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: u64 = 16;
/// Largest payload of one frame (a commit group).
pub const FRAME_PAYLOAD_MAX: u32 = 256 << 20;

/// The journal's storage.
pub trait JournalIo: Send {
    /// Current length.
    fn len(&self) -> u64;
    /// Whether nothing was written yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Appends at the end.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything appended durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes (recovery only) and makes that durable.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// A real file.
pub struct FileIo {
    file: File,
    len: u64,
}

impl FileIo {
    /// Opens or creates the journal file at `path`.
    pub fn open(path: &Path) -> io::Result<FileIo> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let len = file.seek(SeekFrom::End(0))?;
        Ok(FileIo { file, len })
    }
}

impl JournalIo for FileIo {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.len = len;
        Ok(())
    }
}

/// Journal errors.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// I/O failure.
    #[error("journal I/O: {0}")]
    Io(#[from] io::Error),
    /// A sync failed earlier: writes are refused until the store is reopened.
    #[error("journal is failed after an unsuccessful fsync; reopen the store")]
    Poisoned,
    /// Damage that is not a torn tail.
    #[error("journal corrupted at byte {offset}: {reason}")]
    Corrupted {
        /// Where.
        offset: u64,
        /// What.
        reason: String,
    },
    /// A commit group too large for one frame.
    #[error("commit group of {0} bytes exceeds the frame limit")]
    TooLarge(usize),
}

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Committed frames.
    pub frames: u64,
    /// Bytes cut from a torn tail (0 if none).
    pub truncated_bytes: u64,
}

/// The journal.
pub struct Journal<I: JournalIo> {
    io: I,
    poisoned: bool,
    /// Offsets of frame headers, in order (for replay from a point).
    frames: Vec<u64>,
}

enum FrameCheck {
    Valid(u32),
    Invalid(String),
}

fn check_frame<I: JournalIo>(io: &I, offset: u64) -> FrameCheck {
    let end = io.len();
    if end - offset < FRAME_HEADER_BYTES {
        return FrameCheck::Invalid("incomplete frame header".into());
    }
    let mut h = [0u8; FRAME_HEADER_BYTES as usize];
    if let Err(e) = io.read_at(offset, &mut h) {
        return FrameCheck::Invalid(e.to_string());
    }
    let word = |i: usize| u32::from_le_bytes(h[4 * i..4 * i + 4].try_into().expect("4"));
    if word(0) != FRAME_MAGIC {
        return FrameCheck::Invalid("bad frame magic".into());
    }
    let len = word(1);
    if len > FRAME_PAYLOAD_MAX || end - offset - FRAME_HEADER_BYTES < len as u64 {
        return FrameCheck::Invalid("incomplete frame payload".into());
    }
    let mut payload = vec![0u8; len as usize];
    if let Err(e) = io.read_at(offset + FRAME_HEADER_BYTES, &mut payload) {
        return FrameCheck::Invalid(e.to_string());
    }
    if crc32fast::hash(&payload) != word(2) {
        return FrameCheck::Invalid("checksum mismatch".into());
    }
    FrameCheck::Valid(len)
}

impl<I: JournalIo> Journal<I> {
    /// Opens the journal: writes the header if empty, walks the frames, truncates a torn
    /// tail, refuses corruption.
    pub fn open(mut io: I) -> Result<(Journal<I>, RecoveryReport), JournalError> {
        if io.is_empty() {
            let mut h = Vec::with_capacity(16);
            h.extend_from_slice(FILE_MAGIC);
            h.extend_from_slice(&1u32.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes());
            io.append(&h)?;
            io.sync()?;
        }
        let mut h = [0u8; FILE_HEADER_BYTES as usize];
        if io.len() < FILE_HEADER_BYTES {
            return Err(JournalError::Corrupted {
                offset: 0,
                reason: "short file header".into(),
            });
        }
        io.read_at(0, &mut h)?;
        if &h[..8] != FILE_MAGIC || h[8..12] != 1u32.to_le_bytes() {
            return Err(JournalError::Corrupted {
                offset: 0,
                reason: "not a microcash journal (v1)".into(),
            });
        }
        let mut frames = Vec::new();
        let mut offset = FILE_HEADER_BYTES;
        let mut report = RecoveryReport::default();
        while offset < io.len() {
            match check_frame(&io, offset) {
                FrameCheck::Valid(len) => {
                    frames.push(offset);
                    offset += FRAME_HEADER_BYTES + len as u64;
                }
                FrameCheck::Invalid(reason) => {
                    // Torn tail or corruption? Look for any valid frame after this point.
                    if let Some(later) = Self::find_valid_frame_after(&io, offset + 1) {
                        return Err(JournalError::Corrupted {
                            offset,
                            reason: format!("{reason}, but a valid frame follows at byte {later}"),
                        });
                    }
                    report.truncated_bytes = io.len() - offset;
                    io.truncate(offset)?;
                    break;
                }
            }
        }
        report.frames = frames.len() as u64;
        Ok((
            Journal {
                io,
                poisoned: false,
                frames,
            },
            report,
        ))
    }

    fn find_valid_frame_after(io: &I, from: u64) -> Option<u64> {
        let end = io.len();
        let mut buf = vec![0u8; (end - from.min(end)) as usize];
        io.read_at(from, &mut buf).ok()?;
        let magic = FRAME_MAGIC.to_le_bytes();
        (0..buf.len().saturating_sub(3))
            .filter(|&i| buf[i..i + 4] == magic)
            .map(|i| from + i as u64)
            .find(|&o| matches!(check_frame(io, o), FrameCheck::Valid(_)))
    }

    /// Appends one commit group and syncs it. Returns the payload's offset in the file
    /// (entry offsets inside the payload are relative to it).
    pub fn commit(&mut self, payload: &[u8]) -> Result<u64, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= FRAME_PAYLOAD_MAX)
            .ok_or(JournalError::TooLarge(payload.len()))?;
        let start = self.io.len();
        let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES as usize + payload.len());
        frame.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        frame.extend_from_slice(&0u32.to_le_bytes());
        frame.extend_from_slice(payload);
        let started = std::time::Instant::now();
        let result = self.io.append(&frame).and_then(|()| self.io.sync());
        metrics::histogram!("microcash_fsync_seconds").record(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            self.poisoned = true;
            return Err(JournalError::Io(e));
        }
        self.frames.push(start);
        Ok(start + FRAME_HEADER_BYTES)
    }

    /// Whether a failed sync has closed the journal for writes.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The journal's length in bytes (the next frame's offset).
    pub fn end(&self) -> u64 {
        self.io.len()
    }

    /// Payloads of the frames whose payload starts at or after `from`, with their offsets.
    pub fn payloads_from(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>), JournalError>> + '_ {
        let first = self
            .frames
            .partition_point(|&f| f + FRAME_HEADER_BYTES < from);
        self.frames[first..].iter().map(move |&f| {
            let mut h = [0u8; FRAME_HEADER_BYTES as usize];
            self.io.read_at(f, &mut h)?;
            let len = u32::from_le_bytes(h[4..8].try_into().expect("4")) as usize;
            let mut payload = vec![0u8; len];
            self.io.read_at(f + FRAME_HEADER_BYTES, &mut payload)?;
            Ok((f + FRAME_HEADER_BYTES, payload))
        })
    }

    /// Reads `len` bytes at `offset` (receipt lookups).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), JournalError> {
        Ok(self.io.read_at(offset, buf)?)
    }
}
