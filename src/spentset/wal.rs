//! The write-ahead journal: framed, checksummed commit groups, one fsync per group, and a
//! durable mark recording how much of it was acknowledged.
//!
//! ```text
//! journal.wal
//!   file header (16 bytes): "MCJRNL01" | version u32 = 1 | reserved u32
//!   frame: magic u32 = "MCF1" | payload length u32 | CRC-32 (IEEE) of the payload u32 |
//!          reserved u32 | payload
//! journal.mark (64 bytes, two slots written alternately)
//!   slot: "MCMK" u32 | reserved u32 | sequence u64 | durable end u64 | CRC-32 of bytes 0..24 u32 | zero u32
//! ```
//!
//! # Torn tail versus corruption
//! A commit appends its frame, syncs it, then writes the mark (the journal's new end) into
//! the older slot of `journal.mark` and syncs that, and only then returns: everything below
//! the mark was acknowledged. Recovery may cut only an *incomplete* final frame (the file
//! ends inside it: an append torn by a crash) that starts at or beyond the durable point
//! (the mark, or the checkpoint if that is further): it was never acknowledged, its
//! verdicts never reported. A complete frame that fails its checks anywhere (a crash tears
//! appends short, it does not flip bytes), an incomplete one below the durable point, a
//! journal shorter than it, or a durable point that is not a frame boundary is damage, not
//! a crash: opening refuses with the offset, naming the file, and leaves the file
//! untouched. A damaged mark slot falls back to the other (one commit older); both damaged
//! is refused.
//!
//! After a failed `sync` the journal refuses all writes until it is reopened (the kernel may
//! have dropped the dirty pages: retrying would report durability that does not exist).

use std::io;

pub use super::disk::{FileIo, JournalIo};

const FILE_MAGIC: &[u8; 8] = b"MCJRNL01";
/// Bytes of the file header.
pub const FILE_HEADER_BYTES: u64 = 16;
const FRAME_MAGIC: u32 = u32::from_le_bytes(*b"MCF1");
/// Bytes of a frame header.
pub const FRAME_HEADER_BYTES: u64 = 16;
/// Largest payload of one frame (a commit group).
pub const FRAME_PAYLOAD_MAX: u32 = 256 << 20;
const MARK_MAGIC: u32 = u32::from_le_bytes(*b"MCMK");
const MARK_SLOT_BYTES: usize = 32;
/// The journal file's name in the spent-set directory.
pub const JOURNAL_FILE: &str = "journal.wal";
/// The durable mark's file name.
pub const MARK_FILE: &str = "journal.mark";

/// Journal errors.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// I/O failure.
    #[error("journal I/O: {0}")]
    Io(#[from] io::Error),
    /// A sync failed earlier: writes are refused until the store is reopened.
    #[error("journal is failed after an unsuccessful fsync; reopen the store")]
    Poisoned,
    /// Damage that is not a torn tail; the file was left untouched.
    #[error("{file} damaged at byte {offset}: {reason}")]
    Corrupted {
        /// Which file (`journal.wal` or `journal.mark`).
        file: &'static str,
        /// Where.
        offset: u64,
        /// What.
        reason: String,
    },
    /// A commit group too large for one frame.
    #[error("commit group of {0} bytes exceeds the frame limit")]
    TooLarge(usize),
}

fn corrupted(file: &'static str, offset: u64, reason: impl Into<String>) -> JournalError {
    JournalError::Corrupted {
        file,
        offset,
        reason: reason.into(),
    }
}

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Committed frames.
    pub frames: u64,
    /// Bytes cut from a torn tail beyond the durable point (0 if none).
    pub truncated_bytes: u64,
    /// The durable point recovery honoured.
    pub durable: u64,
    /// Epochs whose maps were rebuilt from the journal (missing, stale, unsealed, damaged).
    pub maps_rebuilt: Vec<u32>,
    /// Receipt entries in the journal.
    pub entries: u64,
}

/// One frame's place in the file.
#[derive(Clone, Copy, Debug)]
pub struct FrameInfo {
    /// Offset of its header.
    pub offset: u64,
    /// Payload bytes.
    pub len: u32,
    /// CRC-32 of the payload (the journal tag maps record to prove which journal they reflect).
    pub crc: u32,
}

impl FrameInfo {
    /// Offset just past the frame.
    pub fn end(&self) -> u64 {
        self.offset + FRAME_HEADER_BYTES + self.len as u64
    }
}

/// A tag identifying the journal content up to `end` (a frame boundary): the CRC of the
/// frame ending there, mixed with its offset. `None` if `end` is not a frame boundary.
pub fn tag_at(frames: &[FrameInfo], end: u64) -> Option<u64> {
    if end == FILE_HEADER_BYTES {
        return Some(0);
    }
    let i = frames.partition_point(|f| f.end() < end);
    frames
        .get(i)
        .filter(|f| f.end() == end)
        .map(|f| (f.offset << 32) ^ f.crc as u64)
}

/// Reads a frame found by a scan, checking its CRC again (the file must not have changed
/// under the store). Returns the payload's offset (receipt ids are relative to it) with it.
pub fn read_payload<I: JournalIo>(
    io: &I,
    frame: &FrameInfo,
) -> Result<(u64, Vec<u8>), JournalError> {
    let mut payload = vec![0u8; frame.len as usize];
    io.read_at(frame.offset + FRAME_HEADER_BYTES, &mut payload)?;
    if crc32fast::hash(&payload) != frame.crc {
        return Err(corrupted(
            JOURNAL_FILE,
            frame.offset,
            "frame checksum mismatch on re-read (the file changed under the store)",
        ));
    }
    Ok((frame.offset + FRAME_HEADER_BYTES, payload))
}

/// The journal.
pub struct Journal<I: JournalIo> {
    io: I,
    mark: I,
    mark_seq: u64,
    poisoned: bool,
    frames: Vec<FrameInfo>,
}

enum FrameCheck {
    Valid(FrameInfo),
    Incomplete(&'static str),
    Invalid(&'static str),
}

fn check_frame<I: JournalIo>(io: &I, offset: u64) -> FrameCheck {
    let end = io.len();
    if end - offset < FRAME_HEADER_BYTES {
        return FrameCheck::Incomplete("incomplete frame header");
    }
    let mut h = [0u8; FRAME_HEADER_BYTES as usize];
    if io.read_at(offset, &mut h).is_err() {
        return FrameCheck::Invalid("unreadable frame header");
    }
    let word = |i: usize| crate::le::u32_at(&h, 4 * i).unwrap_or_default();
    if word(0) != FRAME_MAGIC {
        return FrameCheck::Invalid("bad frame magic");
    }
    let len = word(1);
    if len > FRAME_PAYLOAD_MAX {
        return FrameCheck::Invalid("frame length above the maximum");
    }
    if end - offset - FRAME_HEADER_BYTES < len as u64 {
        return FrameCheck::Incomplete("frame payload cut by the end of the file");
    }
    let mut payload = vec![0u8; len as usize];
    if io
        .read_at(offset + FRAME_HEADER_BYTES, &mut payload)
        .is_err()
    {
        return FrameCheck::Invalid("unreadable frame payload");
    }
    if crc32fast::hash(&payload) != word(2) {
        return FrameCheck::Invalid("frame checksum mismatch");
    }
    FrameCheck::Valid(FrameInfo {
        offset,
        len,
        crc: word(2),
    })
}

fn encode_mark_slot(seq: u64, end: u64) -> [u8; MARK_SLOT_BYTES] {
    let mut s = [0u8; MARK_SLOT_BYTES];
    s[..4].copy_from_slice(&MARK_MAGIC.to_le_bytes());
    s[8..16].copy_from_slice(&seq.to_le_bytes());
    s[16..24].copy_from_slice(&end.to_le_bytes());
    let crc = crc32fast::hash(&s[..24]);
    s[24..28].copy_from_slice(&crc.to_le_bytes());
    s
}

fn decode_mark_slot(s: &[u8]) -> Option<(u64, u64)> {
    use crate::le::{u32_at, u64_at};
    let s: &[u8; MARK_SLOT_BYTES] = s.try_into().ok()?;
    (u32_at(s, 0)? == MARK_MAGIC && crc32fast::hash(&s[..24]) == u32_at(s, 24)?)
        .then_some((u64_at(s, 8)?, u64_at(s, 16)?))
}

/// Reads the durable mark: `Ok(None)` for a missing/empty mark (a new journal, or one
/// written before marks existed), the newest valid slot otherwise.
fn read_mark<I: JournalIo>(mark: &I) -> Result<Option<(u64, u64)>, JournalError> {
    if mark.is_empty() {
        return Ok(None);
    }
    let mut buf = [0u8; 2 * MARK_SLOT_BYTES];
    let n = (mark.len() as usize).min(buf.len());
    let buf = buf.get_mut(..n).unwrap_or_default();
    mark.read_at(0, buf)?;
    let best = buf
        .chunks(MARK_SLOT_BYTES)
        .filter_map(decode_mark_slot)
        .max_by_key(|(seq, _)| *seq);
    match best {
        Some(m) => Ok(Some(m)),
        None => Err(corrupted(MARK_FILE, 0, "both mark slots are damaged")),
    }
}

/// What a read-only walk of the journal found.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Valid frames, in order.
    pub frames: Vec<FrameInfo>,
    /// Where a torn tail beyond the durable point starts (recovery cuts it there).
    pub torn_at: Option<u64>,
    /// The durable point honoured (mark or checkpoint, whichever is further).
    pub durable: u64,
    /// The mark as read: (sequence, end).
    pub marked: Option<(u64, u64)>,
    /// The file's length.
    pub len: u64,
}

impl<I: JournalIo> Journal<I> {
    /// Walks the journal without writing anything: the frames, a torn tail beyond the
    /// durable point, or the damage that makes it unusable. An empty file scans as a new
    /// journal.
    pub fn scan(io: &I, mark: &I, floor: u64) -> Result<Scan, JournalError> {
        let marked = read_mark(mark)?;
        let durable = marked
            .map_or(0, |(_, end)| end)
            .max(floor)
            .max(FILE_HEADER_BYTES);
        let mut scan = Scan {
            frames: Vec::new(),
            torn_at: None,
            durable,
            marked,
            len: io.len(),
        };
        if io.is_empty() {
            if durable > FILE_HEADER_BYTES {
                return Err(corrupted(
                    JOURNAL_FILE,
                    0,
                    format!("the journal is empty but {durable} bytes of it were acknowledged"),
                ));
            }
            return Ok(scan);
        }
        let mut h = [0u8; FILE_HEADER_BYTES as usize];
        if io.len() < FILE_HEADER_BYTES {
            return Err(corrupted(JOURNAL_FILE, 0, "short file header"));
        }
        io.read_at(0, &mut h)?;
        if &h[..8] != FILE_MAGIC || h[8..12] != 1u32.to_le_bytes() {
            return Err(corrupted(JOURNAL_FILE, 0, "not a microcash journal (v1)"));
        }
        if io.len() < durable {
            return Err(corrupted(
                JOURNAL_FILE,
                io.len(),
                format!(
                    "the journal ends at byte {} but {durable} bytes were acknowledged \
                     (journal.mark / checkpoint): acknowledged commits are missing",
                    io.len()
                ),
            ));
        }
        let mut offset = FILE_HEADER_BYTES;
        while offset < io.len() {
            match check_frame(io, offset) {
                FrameCheck::Valid(f) => {
                    scan.frames.push(f);
                    offset = f.end();
                }
                FrameCheck::Invalid(reason) => {
                    // A complete frame that does not check out was written whole and then
                    // damaged (a crash tears an append short, it does not flip bytes):
                    // damage wherever it lies, never a tail to cut.
                    let follows = Self::find_valid_frame_after(io, offset + 1)
                        .map(|at| format!("; a valid frame follows at byte {at}"))
                        .unwrap_or_default();
                    return Err(corrupted(
                        JOURNAL_FILE,
                        offset,
                        if offset < durable {
                            format!(
                                "{reason} below the durable point {durable} (an acknowledged \
                                 commit is damaged){follows}"
                            )
                        } else {
                            format!(
                                "{reason} in a complete frame (damage, not a torn write){follows}"
                            )
                        },
                    ));
                }
                FrameCheck::Incomplete(reason) => {
                    if offset < durable {
                        return Err(corrupted(
                            JOURNAL_FILE,
                            offset,
                            format!(
                                "{reason} below the durable point {durable} (an acknowledged \
                                 commit is damaged)"
                            ),
                        ));
                    }
                    // The file ends inside this frame: an append torn by a crash, never
                    // acknowledged. Nothing can follow it.
                    scan.torn_at = Some(offset);
                    break;
                }
            }
        }
        let boundary =
            durable == FILE_HEADER_BYTES || scan.frames.iter().any(|f| f.end() == durable);
        if !boundary {
            return Err(corrupted(
                JOURNAL_FILE,
                durable,
                format!(
                    "the durable point {durable} (journal.mark / checkpoint.json) is not the \
                     end of a frame"
                ),
            ));
        }
        Ok(scan)
    }

    /// Opens the journal: writes the header if empty, walks the frames, cuts a torn tail
    /// beyond the durable point (`floor`, the checkpoint's offset, or the mark if further),
    /// refuses damage anywhere else without writing.
    pub fn open(
        mut io: I,
        mark: I,
        floor: u64,
    ) -> Result<(Journal<I>, RecoveryReport), JournalError> {
        let scan = Self::scan(&io, &mark, floor)?;
        if io.is_empty() {
            let mut h = Vec::with_capacity(16);
            h.extend_from_slice(FILE_MAGIC);
            h.extend_from_slice(&1u32.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes());
            io.append(&h)?;
            io.sync()?;
        }
        let mut report = RecoveryReport {
            durable: scan.durable,
            frames: scan.frames.len() as u64,
            ..RecoveryReport::default()
        };
        if let Some(at) = scan.torn_at {
            report.truncated_bytes = io.len() - at;
            io.truncate(at)?;
        }
        let mut journal = Journal {
            io,
            mark,
            mark_seq: scan.marked.map_or(0, |(seq, _)| seq),
            poisoned: false,
            frames: scan.frames,
        };
        if scan.marked.map(|(_, end)| end) != Some(journal.end()) {
            journal.write_mark()?;
        }
        Ok((journal, report))
    }

    /// The first offset at or after `from` where a valid frame starts, scanning in bounded
    /// windows (memory stays constant whatever the size of the damaged tail).
    fn find_valid_frame_after(io: &I, from: u64) -> Option<u64> {
        const WINDOW: u64 = 1 << 20;
        let end = io.len();
        let magic = FRAME_MAGIC.to_le_bytes();
        let mut at = from;
        let mut buf = Vec::new();
        while at + 4 <= end {
            let n = (end - at).min(WINDOW + 3);
            buf.resize(n as usize, 0);
            io.read_at(at, &mut buf).ok()?;
            for (i, window) in buf.windows(4).enumerate() {
                if window == magic && matches!(check_frame(io, at + i as u64), FrameCheck::Valid(_))
                {
                    return Some(at + i as u64);
                }
            }
            at += WINDOW;
        }
        None
    }

    fn write_mark(&mut self) -> Result<(), JournalError> {
        let seq = self.mark_seq + 1;
        let slot = (seq % 2) * MARK_SLOT_BYTES as u64;
        let result = self
            .mark
            .write_at(slot, &encode_mark_slot(seq, self.io.len()))
            .and_then(|()| self.mark.sync());
        if let Err(e) = result {
            self.poisoned = true;
            return Err(JournalError::Io(e));
        }
        self.mark_seq = seq;
        Ok(())
    }

    /// Appends one commit group, syncs it, then advances the durable mark. Returns the
    /// payload's offset in the file (entry offsets inside the payload are relative to it).
    pub fn commit(&mut self, payload: &[u8]) -> Result<u64, JournalError> {
        if self.poisoned {
            return Err(JournalError::Poisoned);
        }
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&l| l <= FRAME_PAYLOAD_MAX)
            .ok_or(JournalError::TooLarge(payload.len()))?;
        let start = self.io.len();
        let crc = crc32fast::hash(payload);
        let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES as usize + payload.len());
        frame.extend_from_slice(&FRAME_MAGIC.to_le_bytes());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc.to_le_bytes());
        frame.extend_from_slice(&0u32.to_le_bytes());
        frame.extend_from_slice(payload);
        let started = std::time::Instant::now();
        let result = self.io.append(&frame).and_then(|()| self.io.sync());
        metrics::histogram!("microcash_fsync_seconds").record(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            self.poisoned = true;
            return Err(JournalError::Io(e));
        }
        self.frames.push(FrameInfo {
            offset: start,
            len,
            crc,
        });
        self.write_mark()?;
        Ok(start + FRAME_HEADER_BYTES)
    }

    /// Whether a failed sync has closed the journal for writes.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Closes the journal for writes (the caller found its state inconsistent).
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    /// The journal's length in bytes (the next frame's offset).
    pub fn end(&self) -> u64 {
        self.io.len()
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[FrameInfo] {
        &self.frames
    }

    /// A tag identifying the journal content up to `end` ([`tag_at`]).
    pub fn tag_at(&self, end: u64) -> Option<u64> {
        tag_at(&self.frames, end)
    }

    /// Reads one frame's payload; returns the payload's offset with it.
    pub fn payload(&self, frame: &FrameInfo) -> Result<(u64, Vec<u8>), JournalError> {
        read_payload(&self.io, frame)
    }

    /// Reads `len` bytes at `offset` (receipt lookups).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), JournalError> {
        Ok(self.io.read_at(offset, buf)?)
    }
}
