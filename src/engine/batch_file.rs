//! The batch file: versioned, checksummed, little-endian, memory-mappable records.
//! Specification with diagrams: `datasets/FORMAT.md`.
//!
//! ```text
//! header (64 bytes): "MCBATCH1" | version u16 (2; 1 still read) | flags u16 | header bytes u32 = 64 |
//!                    record count u64 | created u64 | batch id [16] | reserved [12] |
//!                    CRC-32 of bytes 0..60 u32
//! record v2 (8-byte aligned, 32-byte header):
//!                    "MCR2" u32 | payload length u32 | sequence u64 | kind u8 | reserved [3] |
//!                    payload CRC-32 u32 | reserved u32 | header CRC-32 (bytes 0..28) u32 |
//!                    payload | zero pad to 8
//! record v1 (8-byte aligned, 16-byte header):
//!                    "MCR1" u32 | payload length u32 | payload CRC-32 u32 | kind u8 | reserved [3] |
//!                    payload | zero pad to 8
//! kind 1: a deposit (protocol v1 encoding), at most DEPOSIT_BYTES_MAX bytes
//! kind 2: deposit length u32 | deposit | hints (the y coordinate of every point, decode order)
//!         | optional serial hints (two SSWU roots per issuer signature: protocol::hints)
//! ```
//!
//! What the v2 reader promises, and why the header carries what it does:
//!
//! * **Nothing unchecked steers the reader.** A record header is believed only if its magic
//!   and its own CRC hold (28 bytes: cheap), so a damaged length can no longer send the
//!   reader into the middle of later records. A believed length above the largest valid
//!   payload of its kind becomes one `malformed` record, skipped by that length without the
//!   payload being read or copied.
//! * **Numbering is stable.** The record number returned *is* the sequence number the writer
//!   put in the header, so damage never renumbers the records after it. Numbers lost in a
//!   damaged stretch come back as one `malformed` record each (offset: where the damage
//!   starts); the number of those is bounded by the bytes skipped (at most one per 32 bytes,
//!   plus one), so no header an attacker writes can make the reader emit more verdicts than
//!   the file has room for records.
//! * **Resynchronisation is linear and bounded in memory.** After garbage the reader scans
//!   8-aligned positions for the magic and a valid header CRC (never a payload CRC), and
//!   hands the pages behind the scan back to the kernel, so a huge garbage stretch or a
//!   sparse file costs O(bytes) time and bounded resident memory.
//!
//! v1 files are read as before (record numbers count the records returned; garbage is
//! one malformed record and resynchronisation also checks payload CRCs), with the same
//! per-kind payload maxima and page release.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::le::{array_at, u32_at, u64_at};
use crate::mmap::ReadOnlyMap;
use crate::protocol::deposit::{DEPOSIT_BYTES_MAX, DEPOSIT_HINTS_BYTES_MAX};
use crate::protocol::hints::SERIAL_HINTS_BYTES_MAX;

/// File magic (both versions: the version field tells them apart).
pub const MAGIC: &[u8; 8] = b"MCBATCH1";
/// Format version the writer produces by default.
pub const VERSION: u16 = 2;
/// The previous format version, still read (and written by [`BatchWriter::create_v1`]).
pub const VERSION_V1: u16 = 1;
/// File header bytes.
pub const HEADER_BYTES: usize = 64;
/// Record magic of version 2.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"MCR2");
/// Record magic of version 1.
pub const RECORD_MAGIC_V1: u32 = u32::from_le_bytes(*b"MCR1");
/// Record header bytes of version 2 (the current format). A record's payload starts at
/// [`RawRecord::payload_offset`], which is right for either version.
pub const RECORD_HEADER_BYTES: usize = 32;
/// Record header bytes of version 1.
pub const RECORD_HEADER_BYTES_V1: usize = 16;
/// Record kind: a deposit message (protocol v1 encoding).
pub const KIND_DEPOSIT: u8 = 1;
/// Record kind: a deposit message with hints: `deposit length u32 | deposit | hints` (the y
/// coordinate of every point, in decode order, then optionally the serial hints —
/// `protocol::hints::HintedDeposit`).
pub const KIND_DEPOSIT_HINTED: u8 = 2;
/// Largest payload of a kind-1 record: the largest deposit the decoder can accept.
pub const DEPOSIT_PAYLOAD_MAX: usize = DEPOSIT_BYTES_MAX;
/// Largest payload of a kind-2 record: length prefix, the largest deposit, and its hints.
pub const HINTED_PAYLOAD_MAX: usize =
    4 + DEPOSIT_BYTES_MAX + DEPOSIT_HINTS_BYTES_MAX + SERIAL_HINTS_BYTES_MAX;
/// Largest payload of any known kind.
pub const RECORD_PAYLOAD_MAX: usize = if HINTED_PAYLOAD_MAX > DEPOSIT_PAYLOAD_MAX {
    HINTED_PAYLOAD_MAX
} else {
    DEPOSIT_PAYLOAD_MAX
};
/// Default byte bound of one [`BatchReader::next_chunk`] (payload bytes held in memory).
pub const CHUNK_BYTES_MAX: usize = 64 << 20;

// Lengths are u32 on disk; the maxima must fit.
const _: () = assert!(RECORD_PAYLOAD_MAX <= u32::MAX as usize);

/// Resident pages behind the reader are released in steps of this many bytes.
const RELEASE_STEP: usize = 8 << 20;
/// Page size assumed when rounding released ranges (the reader never releases the page it
/// is about to read; a larger real page size only makes some releases no-ops).
const PAGE: usize = 4096;

/// The largest valid payload of a record kind, or `None` for a kind this build does not know.
pub fn payload_max(kind: u8) -> Option<usize> {
    match kind {
        KIND_DEPOSIT => Some(DEPOSIT_PAYLOAD_MAX),
        KIND_DEPOSIT_HINTED => Some(HINTED_PAYLOAD_MAX),
        _ => None,
    }
}

fn pad8(n: usize) -> usize {
    (8 - n % 8) % 8
}

fn le_u16(b: &[u8; 2]) -> u16 {
    u16::from_le_bytes(*b)
}

/// The file header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Format version: [`VERSION`] (2) or [`VERSION_V1`] (1). Fixes the record layout.
    pub version: u16,
    /// Flags (none defined; must be 0).
    pub flags: u16,
    /// Records the writer put in the file.
    pub record_count: u64,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// Random batch id.
    pub batch_id: [u8; 16],
}

impl BatchHeader {
    fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut h = [0u8; HEADER_BYTES];
        h[..8].copy_from_slice(MAGIC);
        h[8..10].copy_from_slice(&self.version.to_le_bytes());
        h[10..12].copy_from_slice(&self.flags.to_le_bytes());
        h[12..16].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
        h[16..24].copy_from_slice(&self.record_count.to_le_bytes());
        h[24..32].copy_from_slice(&self.created.to_le_bytes());
        h[32..48].copy_from_slice(&self.batch_id);
        let crc = crc32fast::hash(&h[..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn decode(bytes: &[u8]) -> Result<BatchHeader, BatchFileError> {
        let bad = |m: &str| Err(BatchFileError::Header(m.to_owned()));
        let Some(h) = array_at::<HEADER_BYTES>(bytes, 0) else {
            return bad("file shorter than the 64-byte header");
        };
        if &h[..8] != MAGIC {
            return bad("not a microcash batch file (bad magic)");
        }
        // Checked before any field is believed: a damaged header refuses the whole file.
        if crc32fast::hash(&h[..60]).to_le_bytes() != h[60..64] {
            return bad("header checksum mismatch");
        }
        let version = le_u16(&[h[8], h[9]]);
        if version != VERSION && version != VERSION_V1 {
            return Err(BatchFileError::Header(format!(
                "unsupported version {version} (this build reads {VERSION_V1} and {VERSION})"
            )));
        }
        if u32_at(&h, 12) != Some(HEADER_BYTES as u32) || le_u16(&[h[10], h[11]]) != 0 {
            return bad("unknown header length or flags");
        }
        let mut batch_id = [0u8; 16];
        batch_id.copy_from_slice(&h[32..48]);
        Ok(BatchHeader {
            version,
            flags: 0,
            record_count: u64_at(&h, 16).unwrap_or_default(),
            created: u64_at(&h, 24).unwrap_or_default(),
            batch_id,
        })
    }
}

/// A version-2 record header whose magic and header CRC hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RecordHeaderV2 {
    len: u32,
    seq: u64,
    kind: u8,
    payload_crc: u32,
    /// Whether both reserved fields are zero (they are covered by the header CRC, so
    /// non-zero means a writer this build does not understand, not damage).
    reserved_zero: bool,
}

impl RecordHeaderV2 {
    fn encode(len: u32, seq: u64, kind: u8, payload_crc: u32) -> [u8; RECORD_HEADER_BYTES] {
        let mut h = [0u8; RECORD_HEADER_BYTES];
        h[..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&len.to_le_bytes());
        h[8..16].copy_from_slice(&seq.to_le_bytes());
        h[16] = kind;
        h[20..24].copy_from_slice(&payload_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..28]);
        h[28..32].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// The header at `at`, if one is there: magic, then the 28-byte header CRC. Nothing
    /// else in the file is read.
    fn parse(bytes: &[u8], at: usize) -> Option<RecordHeaderV2> {
        let h = array_at::<RECORD_HEADER_BYTES>(bytes, at)?;
        if u32_at(&h, 0)? != RECORD_MAGIC || crc32fast::hash(&h[..28]) != u32_at(&h, 28)? {
            return None;
        }
        Some(RecordHeaderV2 {
            len: u32_at(&h, 4)?,
            seq: u64_at(&h, 8)?,
            kind: h[16],
            payload_crc: u32_at(&h, 20)?,
            reserved_zero: h[17..20] == [0; 3] && u32_at(&h, 24)? == 0,
        })
    }
}

/// Errors that stop a whole file (per-record damage is a verdict, not an error).
#[derive(Debug, thiserror::Error)]
pub enum BatchFileError {
    /// I/O.
    #[error("batch file: {0}")]
    Io(#[from] io::Error),
    /// The header is unusable.
    #[error("batch file header: {0}")]
    Header(String),
    /// The writer was given a record no reader would accept.
    #[error("batch record of kind {kind}: {len} payload bytes, above the maximum {max}")]
    RecordTooLarge {
        /// Record kind.
        kind: u8,
        /// Payload bytes given.
        len: usize,
        /// The kind's maximum.
        max: usize,
    },
}

/// Writes a batch file: version 2 by default, version 1 on request.
pub struct BatchWriter {
    out: BufWriter<File>,
    header: BatchHeader,
    written: u64,
}

impl BatchWriter {
    /// Creates `path` for a version-2 batch with this id and creation time.
    pub fn create(
        path: &Path,
        batch_id: [u8; 16],
        created: u64,
    ) -> Result<BatchWriter, BatchFileError> {
        Self::create_version(path, batch_id, created, VERSION)
    }

    /// Creates `path` for a version-1 batch (compatibility tests, older readers).
    pub fn create_v1(
        path: &Path,
        batch_id: [u8; 16],
        created: u64,
    ) -> Result<BatchWriter, BatchFileError> {
        Self::create_version(path, batch_id, created, VERSION_V1)
    }

    fn create_version(
        path: &Path,
        batch_id: [u8; 16],
        created: u64,
        version: u16,
    ) -> Result<BatchWriter, BatchFileError> {
        let mut out = BufWriter::new(File::create(path)?);
        let header = BatchHeader {
            version,
            flags: 0,
            record_count: 0,
            created,
            batch_id,
        };
        out.write_all(&header.encode())?;
        Ok(BatchWriter {
            out,
            header,
            written: HEADER_BYTES as u64,
        })
    }

    /// Appends one deposit record (kind 1).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), BatchFileError> {
        self.append_kind(KIND_DEPOSIT, payload)
    }

    /// Appends one deposit with its decompression hints (kind 2).
    pub fn append_hinted(&mut self, deposit: &[u8], hints: &[u8]) -> Result<(), BatchFileError> {
        let len = 4 + deposit.len() + hints.len();
        let too_large = || BatchFileError::RecordTooLarge {
            kind: KIND_DEPOSIT_HINTED,
            len,
            max: HINTED_PAYLOAD_MAX,
        };
        // Refused here rather than after copying: the reader would refuse it anyway.
        if len > HINTED_PAYLOAD_MAX {
            return Err(too_large());
        }
        let deposit_len = u32::try_from(deposit.len()).map_err(|_| too_large())?;
        let mut payload = Vec::with_capacity(len);
        payload.extend_from_slice(&deposit_len.to_le_bytes());
        payload.extend_from_slice(deposit);
        payload.extend_from_slice(hints);
        self.append_kind(KIND_DEPOSIT_HINTED, &payload)
    }

    fn append_kind(&mut self, kind: u8, payload: &[u8]) -> Result<(), BatchFileError> {
        let max = payload_max(kind).unwrap_or(0);
        let too_large = || BatchFileError::RecordTooLarge {
            kind,
            len: payload.len(),
            max,
        };
        if payload.len() > max {
            return Err(too_large());
        }
        let len = u32::try_from(payload.len()).map_err(|_| too_large())?;
        let crc = crc32fast::hash(payload);
        let header_bytes = if self.header.version == VERSION_V1 {
            let mut h = [0u8; RECORD_HEADER_BYTES_V1];
            h[..4].copy_from_slice(&RECORD_MAGIC_V1.to_le_bytes());
            h[4..8].copy_from_slice(&len.to_le_bytes());
            h[8..12].copy_from_slice(&crc.to_le_bytes());
            h[12] = kind;
            self.out.write_all(&h)?;
            RECORD_HEADER_BYTES_V1
        } else {
            // The sequence number is the record's number: readers keep it through damage.
            let seq = self.header.record_count;
            self.out
                .write_all(&RecordHeaderV2::encode(len, seq, kind, crc))?;
            RECORD_HEADER_BYTES
        };
        self.out.write_all(payload)?;
        std::io::copy(
            &mut std::io::Read::take(std::io::repeat(0), pad8(payload.len()) as u64),
            &mut self.out,
        )?;
        self.written += (header_bytes + payload.len() + pad8(payload.len())) as u64;
        self.header.record_count += 1;
        Ok(())
    }

    /// Offset the next record will have.
    pub fn position(&self) -> u64 {
        self.written
    }

    /// Writes the final header (with the record count) and syncs.
    pub fn finish(self) -> Result<BatchHeader, BatchFileError> {
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&self.header.encode())?;
        file.sync_all()?;
        Ok(self.header)
    }
}

/// One record as read: its number, offset and payload, or why it is malformed. (Serde: a
/// cluster's work chunks carry records as read, `cluster::messages`.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawRecord {
    /// Record number. Version 2: the record's sequence number (stable through damage; a
    /// number lost in a damaged stretch is returned as a malformed record of its own).
    /// Version 1: its position among the records returned, a malformed stretch counting one.
    pub index: u64,
    /// Byte offset of the record header (for a record lost in a damaged stretch: where the
    /// damage starts).
    pub offset: u64,
    /// Byte offset of the payload: `offset` + the record header of the file's version.
    /// Decode errors are reported relative to it.
    pub payload_offset: u64,
    /// Record kind ([`KIND_DEPOSIT`] or [`KIND_DEPOSIT_HINTED`]; [`KIND_DEPOSIT`] when the
    /// kind is unknown or was not readable).
    pub kind: u8,
    /// The payload bytes, or the reason the record is malformed.
    pub payload: Result<Vec<u8>, String>,
}

impl RawRecord {
    /// Heap bytes the record holds (payload or reason): what [`BatchReader::next_chunk`]
    /// bounds.
    pub fn held_bytes(&self) -> usize {
        match &self.payload {
            Ok(p) => p.len(),
            Err(r) => r.len(),
        }
    }
}

/// Record numbers lost in a damaged stretch (v2), reported one by one.
#[derive(Debug)]
struct Lost {
    next: u64,
    end: u64,
    /// Where the damage starts.
    offset: usize,
    /// Bytes skipped, and where the reader landed.
    skipped: usize,
    landed: usize,
}

/// Reads a batch file record by record from a read-only memory map.
pub struct BatchReader {
    map: ReadOnlyMap,
    header: BatchHeader,
    pos: usize,
    /// The next record number: v2, the sequence number expected at `pos`; v1, the count of
    /// records returned.
    next_index: u64,
    /// Offset below which pages were handed back to the kernel.
    released: usize,
    /// v2: numbers lost in the stretch just skipped, still to be returned.
    lost: Option<Lost>,
    /// A record read by `next_chunk` that did not fit its chunk.
    peeked: Option<RawRecord>,
    /// Bytes skipped as garbage so far.
    skipped_bytes: u64,
}

enum ProbeV1 {
    Ok { len: usize, kind: u8 },
    Garbage(&'static str),
    Truncated,
    Checksum { len: usize },
    Kind { len: usize, kind: u8 },
}

/// Hands the pages of `[released, upto)` back to the kernel once `RELEASE_STEP` bytes have
/// accumulated. The end is rounded down to a page so the page holding `upto` (about to be
/// read) stays mapped.
fn release_behind(map: &ReadOnlyMap, released: &mut usize, upto: usize) {
    if upto.saturating_sub(*released) >= RELEASE_STEP {
        let end = upto / PAGE * PAGE;
        map.release(*released, end - *released);
        *released = end;
    }
}

/// Whether a v2 header numbered `seq`, found `skipped` bytes after the damage began, can be
/// the next record when `expected` was due: not lower (a replayed stretch), and not further
/// ahead than the records that could have fitted in the skipped bytes (each takes at least a
/// header), plus one (a record missing at a clean boundary).
fn plausible(seq: u64, expected: u64, skipped: usize) -> bool {
    seq >= expected && seq - expected <= (skipped / RECORD_HEADER_BYTES) as u64 + 1
}

impl BatchReader {
    /// Opens and maps `path`; fails only if the header is unusable.
    pub fn open(path: &Path) -> Result<BatchReader, BatchFileError> {
        let map = ReadOnlyMap::open(path)?;
        let header = BatchHeader::decode(map.bytes())?;
        Ok(BatchReader {
            map,
            header,
            pos: HEADER_BYTES,
            next_index: 0,
            released: 0,
            lost: None,
            peeked: None,
            skipped_bytes: 0,
        })
    }

    /// The header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The file's format version ([`VERSION`] or [`VERSION_V1`]).
    pub fn version(&self) -> u16 {
        self.header.version
    }

    /// Bytes in the file.
    pub fn file_len(&self) -> u64 {
        self.map.bytes().len() as u64
    }

    /// Bytes consumed so far (including a record held back by [`BatchReader::next_chunk`]).
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    /// Bytes skipped as garbage so far. In v2, garbage that cost no record number (bytes
    /// inserted between records) is visible only here.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }

    fn record_header_bytes(&self) -> usize {
        if self.header.version == VERSION_V1 {
            RECORD_HEADER_BYTES_V1
        } else {
            RECORD_HEADER_BYTES
        }
    }

    fn malformed(&self, index: u64, offset: usize, kind: u8, reason: String) -> RawRecord {
        RawRecord {
            index,
            offset: offset as u64,
            payload_offset: (offset + self.record_header_bytes()) as u64,
            kind,
            payload: Err(reason),
        }
    }

    /// The next record, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Option<RawRecord> {
        if let Some(r) = self.peeked.take() {
            return Some(r);
        }
        let record = if self.header.version == VERSION_V1 {
            self.next_v1()
        } else {
            self.next_v2()
        };
        // Keep resident memory bounded: drop the pages behind us in RELEASE_STEP steps.
        release_behind(&self.map, &mut self.released, self.pos);
        record
    }

    /// The next records: at most `max_records`, and no more than `max_bytes` of payload held
    /// in memory, except that a record larger than `max_bytes` on its own is returned alone
    /// (so every call makes progress). Empty only at the end of the file.
    pub fn next_chunk(&mut self, max_records: usize, max_bytes: usize) -> Vec<RawRecord> {
        let mut chunk = Vec::new();
        let mut held = 0usize;
        while chunk.len() < max_records.max(1) {
            let Some(record) = self.next_record() else {
                break;
            };
            let n = record.held_bytes();
            if !chunk.is_empty() && held.saturating_add(n) > max_bytes {
                self.peeked = Some(record);
                break;
            }
            held = held.saturating_add(n);
            chunk.push(record);
        }
        chunk
    }

    // ---- version 2 ----

    fn next_v2(&mut self) -> Option<RawRecord> {
        if let Some(lost) = self.lost.as_mut() {
            let index = lost.next;
            lost.next += 1;
            let reason = if lost.skipped == 0 {
                format!(
                    "record {index} missing: the record at offset {} is number {}",
                    lost.landed, lost.end
                )
            } else {
                format!(
                    "record {index} lost in a damaged stretch: no valid record header at \
                     offset {}; {} bytes skipped to record {} at offset {}",
                    lost.offset, lost.skipped, lost.end, lost.landed
                )
            };
            let offset = lost.offset;
            if lost.next == lost.end {
                self.lost = None;
            }
            self.next_index = index + 1;
            return Some(self.malformed(index, offset, KIND_DEPOSIT, reason));
        }
        let file_len = self.map.bytes().len();
        if self.pos >= file_len {
            return None;
        }
        let index = self.next_index;
        let offset = self.pos;
        if file_len - self.pos < RECORD_HEADER_BYTES {
            self.pos = file_len;
            self.next_index += 1;
            return Some(self.malformed(
                index,
                offset,
                KIND_DEPOSIT,
                "truncated record at the end of the file (shorter than a record header)".into(),
            ));
        }
        match RecordHeaderV2::parse(self.map.bytes(), self.pos) {
            Some(h) if h.seq == index => Some(self.record_v2(h)),
            _ => self.resync_v2(),
        }
    }

    /// The record at `pos`, whose header holds and carries the expected number.
    fn record_v2(&mut self, h: RecordHeaderV2) -> RawRecord {
        let bytes = self.map.bytes();
        let file_len = bytes.len();
        let offset = self.pos;
        let index = self.next_index;
        self.next_index += 1;
        let len = h.len as usize;
        let start = offset + RECORD_HEADER_BYTES;
        // The length is trusted (the header CRC holds), so damage below costs this record
        // only: the reader moves on by the length, whatever the payload holds.
        let next = start
            .saturating_add(len)
            .saturating_add(pad8(len))
            .min(file_len);
        let (kind, payload) = match payload_max(h.kind) {
            _ if !h.reserved_zero => (
                KIND_DEPOSIT,
                Err("record header: reserved bytes are not zero".to_owned()),
            ),
            None => (KIND_DEPOSIT, Err(format!("unknown record kind {}", h.kind))),
            // Decided on the header alone: the payload is neither read nor copied.
            Some(max) if len > max => (
                h.kind,
                Err(format!(
                    "record payload length {len} above the maximum {max} for kind {}",
                    h.kind
                )),
            ),
            Some(_) => match bytes.get(start..start.saturating_add(len)) {
                None => (
                    h.kind,
                    Err("truncated record at the end of the file".to_owned()),
                ),
                Some(p) if crc32fast::hash(p) != h.payload_crc => {
                    (h.kind, Err("record checksum mismatch".to_owned()))
                }
                Some(p) => (h.kind, Ok(p.to_vec())),
            },
        };
        self.pos = next;
        RawRecord {
            index,
            offset: offset as u64,
            payload_offset: start as u64,
            kind,
            payload,
        }
    }

    /// No acceptable header at `pos`: scan for the next one whose number is plausible.
    fn resync_v2(&mut self) -> Option<RawRecord> {
        let expected = self.next_index;
        let from = self.pos;
        let found = Self::scan_v2(&self.map, &mut self.released, from, expected);
        let file_len = self.map.bytes().len();
        match found {
            None => {
                // Garbage to the end of the file: the number due is lost (how many more were
                // is unknowable; the header's record count tells the operator).
                let skipped = file_len - from;
                self.skipped_bytes += skipped as u64;
                self.pos = file_len;
                self.next_index += 1;
                Some(self.malformed(
                    expected,
                    from,
                    KIND_DEPOSIT,
                    format!(
                        "no valid record header at offset {from}: {skipped} bytes to the end \
                         of the file skipped"
                    ),
                ))
            }
            Some((at, h)) => {
                self.skipped_bytes += (at - from) as u64;
                self.pos = at;
                if h.seq == expected {
                    // Bytes between records, no number lost: the record at `at` is the one
                    // due.
                    Some(self.record_v2(h))
                } else {
                    self.lost = Some(Lost {
                        next: expected,
                        end: h.seq,
                        offset: from,
                        skipped: at - from,
                        landed: at,
                    });
                    self.next_v2()
                }
            }
        }
    }

    /// The first 8-aligned position at or after `from` holding a v2 record header (magic and
    /// header CRC hold) whose number is plausible, with that header. O(bytes scanned): a
    /// 4-byte compare per step and a 28-byte CRC per magic found, never a payload CRC. The
    /// pages behind the scan are released as it goes.
    fn scan_v2(
        map: &ReadOnlyMap,
        released: &mut usize,
        from: usize,
        expected: u64,
    ) -> Option<(usize, RecordHeaderV2)> {
        let bytes = map.bytes();
        let magic = RECORD_MAGIC.to_le_bytes();
        let mut p = from;
        while p
            .checked_add(RECORD_HEADER_BYTES)
            .is_some_and(|end| end <= bytes.len())
        {
            if bytes.get(p..p + 4) == Some(&magic[..]) {
                if let Some(h) = RecordHeaderV2::parse(bytes, p) {
                    if plausible(h.seq, expected, p - from) {
                        return Some((p, h));
                    }
                }
            }
            p += 8;
            release_behind(map, released, p);
        }
        None
    }

    // ---- version 1 ----

    fn probe_v1(bytes: &[u8], pos: usize) -> ProbeV1 {
        let rest = bytes.get(pos..).unwrap_or_default();
        let (Some(magic), Some(len), Some(crc)) =
            (u32_at(rest, 0), u32_at(rest, 4), u32_at(rest, 8))
        else {
            return ProbeV1::Truncated;
        };
        let Some(&kind) = rest.get(12) else {
            return ProbeV1::Truncated;
        };
        if rest.len() < RECORD_HEADER_BYTES_V1 {
            return ProbeV1::Truncated;
        }
        if magic != RECORD_MAGIC_V1 {
            return ProbeV1::Garbage("bad record magic");
        }
        let len = len as usize;
        // v1 lengths are not checksummed: one above any valid payload of its kind is
        // garbage. An unknown kind gets the largest known maximum (and is refused below).
        if len > payload_max(kind).unwrap_or(RECORD_PAYLOAD_MAX) {
            return ProbeV1::Garbage("record length above the maximum for its kind");
        }
        let Some(payload) = rest.get(RECORD_HEADER_BYTES_V1..RECORD_HEADER_BYTES_V1 + len) else {
            return ProbeV1::Truncated;
        };
        if crc32fast::hash(payload) != crc {
            return ProbeV1::Checksum { len };
        }
        if payload_max(kind).is_none() {
            return ProbeV1::Kind { len, kind };
        }
        ProbeV1::Ok { len, kind }
    }

    /// The next aligned position after `from` holding a v1 record that checks out (each
    /// candidate's payload CRC is computed: v1 has no header checksum). Pages behind the
    /// scan are released.
    fn resync_v1(map: &ReadOnlyMap, released: &mut usize, from: usize) -> usize {
        let bytes = map.bytes();
        let mut p = from + 8 - from % 8;
        while p + RECORD_HEADER_BYTES_V1 <= bytes.len() {
            if matches!(Self::probe_v1(bytes, p), ProbeV1::Ok { .. }) {
                return p;
            }
            p += 8;
            release_behind(map, released, p);
        }
        bytes.len()
    }

    fn next_v1(&mut self) -> Option<RawRecord> {
        let file_len = self.map.bytes().len();
        if self.pos >= file_len {
            return None;
        }
        let offset = self.pos;
        let index = self.next_index;
        self.next_index += 1;
        let step = |len: usize| RECORD_HEADER_BYTES_V1 + len + pad8(len);
        let mut kind = KIND_DEPOSIT;
        let payload = match Self::probe_v1(self.map.bytes(), self.pos) {
            ProbeV1::Ok { len, kind: k } => {
                kind = k;
                let start = self.pos + RECORD_HEADER_BYTES_V1;
                self.pos = (self.pos + step(len)).min(file_len);
                // probe_v1 checked the payload lies inside the map.
                self.map
                    .bytes()
                    .get(start..start + len)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| "truncated record at the end of the file".to_owned())
            }
            ProbeV1::Checksum { len } => {
                self.pos = (self.pos + step(len)).min(file_len);
                Err("record checksum mismatch".to_owned())
            }
            ProbeV1::Kind { len, kind } => {
                self.pos = (self.pos + step(len)).min(file_len);
                Err(format!("unknown record kind {kind}"))
            }
            ProbeV1::Truncated => {
                self.pos = file_len;
                Err("truncated record at the end of the file".to_owned())
            }
            ProbeV1::Garbage(why) => {
                let next = Self::resync_v1(&self.map, &mut self.released, self.pos);
                let skipped = next - self.pos;
                self.skipped_bytes += skipped as u64;
                self.pos = next;
                Err(format!(
                    "{why}; {skipped} bytes skipped to the next valid record"
                ))
            }
        };
        Some(RawRecord {
            index,
            offset: offset as u64,
            payload_offset: (offset + RECORD_HEADER_BYTES_V1) as u64,
            kind,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic bytes (a simple LCG): test payloads that do not contain record headers.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) as u8
            })
            .collect()
    }

    fn write(path: &Path, v1: bool, payloads: &[Vec<u8>]) {
        let mut w = if v1 {
            BatchWriter::create_v1(path, [1; 16], 7).unwrap()
        } else {
            BatchWriter::create(path, [1; 16], 7).unwrap()
        };
        for p in payloads {
            w.append(p).unwrap();
        }
        w.finish().unwrap();
    }

    fn read_all(path: &Path) -> Vec<RawRecord> {
        let mut r = BatchReader::open(path).unwrap();
        std::iter::from_fn(|| r.next_record()).collect()
    }

    /// A v2 file header announcing `count` records.
    fn file_header(version: u16, count: u64) -> Vec<u8> {
        BatchHeader {
            version,
            flags: 0,
            record_count: count,
            created: 7,
            batch_id: [1; 16],
        }
        .encode()
        .to_vec()
    }

    /// One v2 record, as the writer lays it out.
    fn record(seq: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut r = RecordHeaderV2::encode(len, seq, kind, crc32fast::hash(payload)).to_vec();
        r.extend_from_slice(payload);
        r.resize(r.len() + pad8(payload.len()), 0);
        r
    }

    fn read_bytes(dir: &Path, bytes: &[u8]) -> Vec<RawRecord> {
        let path = dir.join("crafted.mcb");
        std::fs::write(&path, bytes).unwrap();
        read_all(&path)
    }

    /// (number, payload or None) per record.
    fn outline(recs: &[RawRecord]) -> Vec<(u64, Option<Vec<u8>>)> {
        recs.iter()
            .map(|r| (r.index, r.payload.as_ref().ok().cloned()))
            .collect()
    }

    fn intact(payloads: &[Vec<u8>]) -> Vec<(u64, Option<Vec<u8>>)> {
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u64, Some(p.clone())))
            .collect()
    }

    #[test]
    fn records_round_trip_in_both_versions() {
        let tmp = tempfile::tempdir().unwrap();
        let payloads = vec![b"alpha".to_vec(), vec![], b"gamma-gamma".to_vec()];
        for (v1, version, header_bytes) in [
            (false, VERSION, RECORD_HEADER_BYTES),
            (true, VERSION_V1, RECORD_HEADER_BYTES_V1),
        ] {
            let path = tmp.path().join(format!("b{version}.mcb"));
            let mut w = if v1 {
                BatchWriter::create_v1(&path, [1; 16], 7).unwrap()
            } else {
                BatchWriter::create(&path, [1; 16], 7).unwrap()
            };
            for p in &payloads {
                w.append(p).unwrap();
            }
            w.append_hinted(b"dep", b"hints").unwrap();
            let header = w.finish().unwrap();
            assert_eq!(header.version, version);
            let r = BatchReader::open(&path).unwrap();
            assert_eq!(r.version(), version);
            assert_eq!(r.header().record_count, 4);
            let recs = read_all(&path);
            let mut want = intact(&payloads);
            want.push((3, Some(b"\x03\0\0\0dephints".to_vec())));
            assert_eq!(outline(&recs), want);
            assert_eq!(recs[3].kind, KIND_DEPOSIT_HINTED);
            assert!(recs[..3].iter().all(|r| r.kind == KIND_DEPOSIT));
            for r in &recs {
                assert_eq!(r.payload_offset - r.offset, header_bytes as u64);
            }
        }
        // The v2 writer lays records out exactly as specified.
        let bytes = std::fs::read(tmp.path().join("b2.mcb")).unwrap();
        let mut want = file_header(VERSION, 4);
        for (i, p) in payloads.iter().enumerate() {
            want.extend(record(i as u64, KIND_DEPOSIT, p));
        }
        want.extend(record(3, KIND_DEPOSIT_HINTED, b"\x03\0\0\0dephints"));
        assert_eq!(bytes, want);
    }

    #[test]
    fn v1_garbage_costs_only_the_records_it_overwrote() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 40]).collect();
        write(&path, true, &payloads);
        let mut bytes = std::fs::read(&path).unwrap();
        // Each record is 16 + 40 = 56 bytes. Smash record 3's header and flip a payload
        // byte of record 6.
        let rec = |i: usize| HEADER_BYTES + i * 56;
        bytes[rec(3)..rec(3) + 8].copy_from_slice(b"GARBAGE!");
        bytes[rec(6) + 20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let recs = read_all(&path);
        let ok: Vec<u8> = recs
            .iter()
            .filter_map(|r| r.payload.as_ref().ok().map(|p| p[0]))
            .collect();
        assert_eq!(ok, vec![0, 1, 2, 4, 5, 7, 8, 9]);
        let bad: Vec<(u64, u64)> = recs
            .iter()
            .filter(|r| r.payload.is_err())
            .map(|r| (r.index, r.offset))
            .collect();
        assert_eq!(bad, vec![(3, rec(3) as u64), (6, rec(6) as u64)]);
        assert!(recs[6].payload.as_ref().unwrap_err().contains("checksum"));
    }

    #[test]
    fn v2_damage_costs_only_the_records_it_hit_and_numbers_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 40]).collect();
        write(&path, false, &payloads);
        let mut bytes = std::fs::read(&path).unwrap();
        // Each record is 32 + 40 = 72 bytes. Smash record 3's header, flip a payload byte
        // of record 6.
        let rec = |i: usize| HEADER_BYTES + i * 72;
        bytes[rec(3)..rec(3) + 8].copy_from_slice(b"GARBAGE!");
        bytes[rec(6) + 40] ^= 1;
        let recs = read_bytes(tmp.path(), &bytes);
        let mut want = intact(&payloads);
        want[3].1 = None;
        want[6].1 = None;
        assert_eq!(outline(&recs), want);
        assert_eq!(recs[3].offset, rec(3) as u64);
        assert!(recs[3].payload.as_ref().unwrap_err().contains("lost"));
        assert_eq!(recs[6].offset, rec(6) as u64);
        assert!(recs[6].payload.as_ref().unwrap_err().contains("checksum"));
    }

    #[test]
    fn truncated_file_reports_the_torn_record_and_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        for v1 in [false, true] {
            // Cut inside the last payload, then inside the last record header.
            for cut in [10, 40 + 8] {
                write(&path, v1, &[vec![1u8; 40], vec![2u8; 40], vec![3u8; 40]]);
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() - cut]).unwrap();
                let recs = read_all(&path);
                assert_eq!(recs.len(), 3, "v1 {v1} cut {cut}");
                assert!(recs[2].payload.as_ref().unwrap_err().contains("truncated"));
                assert!(recs[1].payload.is_ok());
            }
        }
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        write(&path, false, &[b"x".to_vec()]);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(BatchReader::open(&path)
            .err()
            .unwrap()
            .to_string()
            .contains("checksum"));
        std::fs::write(&path, b"short").unwrap();
        assert!(BatchReader::open(&path).is_err());
        // A version this build does not know, with a valid checksum.
        let mut h = file_header(3, 0);
        h[8..10].copy_from_slice(&3u16.to_le_bytes());
        std::fs::write(&path, &h).unwrap();
        let e = BatchReader::open(&path).err().unwrap().to_string();
        assert!(e.contains("unsupported version 3"), "{e}");
    }

    #[test]
    fn any_flipped_bit_in_the_file_header_refuses_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        for v1 in [false, true] {
            write(&path, v1, &[vec![5u8; 48], vec![6u8; 48]]);
            let clean = std::fs::read(&path).unwrap();
            for bit in 0..HEADER_BYTES * 8 {
                let mut b = clean.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                std::fs::write(&path, &b).unwrap();
                let e = BatchReader::open(&path).err();
                let e = e.unwrap_or_else(|| panic!("v1 {v1}: bit {bit} accepted"));
                assert!(matches!(e, BatchFileError::Header(_)), "bit {bit}: {e}");
            }
        }
    }

    /// Flips `bit` (counted from the first record) in a v2 batch of `payloads` and checks
    /// that every other record keeps its payload and number, and the record hit becomes at
    /// most one malformed record: exactly one unless the bit is in its zero padding.
    fn check_bit_flip(dir: &Path, payloads: &[Vec<u8>], bit: usize) -> Result<(), String> {
        let mut file = file_header(VERSION, payloads.len() as u64);
        let mut spans = Vec::new(); // (start, end of payload, end of padding)
        for (i, p) in payloads.iter().enumerate() {
            let start = file.len();
            file.extend(record(i as u64, KIND_DEPOSIT, p));
            spans.push((start, start + RECORD_HEADER_BYTES + p.len(), file.len()));
        }
        let at = HEADER_BYTES + bit / 8;
        file[at] ^= 1 << (bit % 8);
        let (hit, (_, payload_end, _)) = spans
            .iter()
            .enumerate()
            .find(|(_, (s, _, e))| (*s..*e).contains(&at))
            .ok_or("bit outside the records")?;
        let in_padding = at >= *payload_end;
        let recs = read_bytes(dir, &file);
        let got = outline(&recs);
        let mut want = intact(payloads);
        if got == want && in_padding {
            return Ok(());
        }
        want[hit].1 = None;
        if got != want {
            return Err(format!("bit {bit} (byte {at}, record {hit}): got {got:?}"));
        }
        Ok(())
    }

    #[test]
    fn every_single_bit_flip_costs_exactly_the_record_it_hits() {
        let tmp = tempfile::tempdir().unwrap();
        // Lengths 40–100 with every padding remainder in play.
        let payloads: Vec<Vec<u8>> = [40usize, 57, 64, 99, 100]
            .iter()
            .enumerate()
            .map(|(i, &n)| noise(i as u64, n))
            .collect();
        let area: usize = payloads
            .iter()
            .map(|p| RECORD_HEADER_BYTES + p.len() + pad8(p.len()))
            .sum();
        for bit in 0..area * 8 {
            if let Err(e) = check_bit_flip(tmp.path(), &payloads, bit) {
                panic!("{e}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn a_random_bit_flip_costs_exactly_the_record_it_hits(
            lens in proptest::collection::vec(0usize..200, 1..8),
            seed in any::<u64>(),
            bit in any::<proptest::sample::Index>(),
        ) {
            let tmp = tempfile::tempdir().unwrap();
            let payloads: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &n)| noise(seed ^ i as u64, n))
                .collect();
            let area: usize = payloads
                .iter()
                .map(|p| RECORD_HEADER_BYTES + p.len() + pad8(p.len()))
                .sum();
            let r = check_bit_flip(tmp.path(), &payloads, bit.index(area * 8));
            prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }
    }

    #[test]
    fn a_flipped_length_bit_no_longer_swallows_records() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        let payloads: Vec<Vec<u8>> = (0..2000u64).map(|i| noise(i, 60)).collect();
        write(&path, false, &payloads);
        let mut bytes = std::fs::read(&path).unwrap();
        // Record 100's length field: bit 20 makes it claim about a megabyte.
        let rec100 = HEADER_BYTES + 100 * (RECORD_HEADER_BYTES + 64);
        bytes[rec100 + 4 + 2] ^= 0x10;
        let recs = read_bytes(tmp.path(), &bytes);
        let mut want = intact(&payloads);
        want[100].1 = None;
        assert_eq!(outline(&recs), want);
    }

    #[test]
    fn an_over_long_length_is_refused_without_reading_the_payload() {
        let tmp = tempfile::tempdir().unwrap();
        let ok = b"next".to_vec();
        for (kind, max) in [
            (KIND_DEPOSIT, DEPOSIT_PAYLOAD_MAX),
            (KIND_DEPOSIT_HINTED, HINTED_PAYLOAD_MAX),
        ] {
            // A well-formed record one byte over its kind's maximum (valid checksums),
            // followed by a good record: refused on its header, skipped by its length.
            let big = vec![0x5au8; max + 1];
            let mut file = file_header(VERSION, 2);
            file.extend(record(0, kind, &big));
            file.extend(record(1, KIND_DEPOSIT, &ok));
            let recs = read_bytes(tmp.path(), &file);
            assert_eq!(outline(&recs), vec![(0, None), (1, Some(ok.clone()))]);
            let why = recs[0].payload.as_ref().unwrap_err();
            assert!(why.contains(&format!("above the maximum {max}")), "{why}");
            // The same header claiming 4 GiB in a small file: the verdict comes from the
            // header alone (not "truncated"), so the claimed payload was never touched.
            let mut file = file_header(VERSION, 1);
            file.extend(RecordHeaderV2::encode(u32::MAX, 0, kind, 0));
            file.extend(vec![0u8; 64]);
            let recs = read_bytes(tmp.path(), &file);
            assert_eq!(recs.len(), 1);
            assert!(recs[0]
                .payload
                .as_ref()
                .unwrap_err()
                .contains("above the maximum"));
        }
        // The writer refuses what the reader would.
        let mut w = BatchWriter::create(&tmp.path().join("w.mcb"), [0; 16], 0).unwrap();
        let e = w.append(&vec![0u8; DEPOSIT_PAYLOAD_MAX + 1]).unwrap_err();
        assert!(
            matches!(e, BatchFileError::RecordTooLarge { kind: 1, .. }),
            "{e}"
        );
        let e = w
            .append_hinted(
                &vec![0u8; DEPOSIT_PAYLOAD_MAX],
                &vec![0u8; HINTED_PAYLOAD_MAX],
            )
            .unwrap_err();
        assert!(
            matches!(e, BatchFileError::RecordTooLarge { kind: 2, .. }),
            "{e}"
        );
        w.append(&vec![0u8; DEPOSIT_PAYLOAD_MAX]).unwrap();
        assert_eq!(w.finish().unwrap().record_count, 1);
    }

    #[test]
    fn v1_lengths_above_the_kind_maximum_are_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        write(&path, true, &[vec![1u8; 40], vec![2u8; 40], vec![3u8; 40]]);
        let mut bytes = std::fs::read(&path).unwrap();
        // Record 1 claims one byte over the deposit maximum (below v1's old 1 MiB).
        let rec1 = HEADER_BYTES + 56;
        bytes[rec1 + 4..rec1 + 8].copy_from_slice(&(DEPOSIT_PAYLOAD_MAX as u32 + 1).to_le_bytes());
        let recs = read_bytes(tmp.path(), &bytes);
        assert_eq!(
            outline(&recs),
            vec![
                (0, Some(vec![1u8; 40])),
                (1, None),
                (2, Some(vec![3u8; 40]))
            ]
        );
        assert!(recs[1].payload.as_ref().unwrap_err().contains("maximum"));
    }

    #[test]
    fn resync_over_a_large_hostile_stretch_is_linear_and_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let payloads: Vec<Vec<u8>> = (0..10u64).map(|i| noise(i, 48)).collect();
        let recs: Vec<Vec<u8>> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| record(i as u64, KIND_DEPOSIT, p))
            .collect();
        // Records 3 and 4 overwritten by 4 MiB of valid record headers (magic and header CRC
        // hold), each with a number the reader must not believe: far ahead, behind (a
        // replay), or one past what the bytes skipped so far could hold.
        let from = HEADER_BYTES + 3 * recs[0].len();
        let mut garbage = Vec::new();
        while garbage.len() < 4 << 20 {
            let q = garbage.len();
            let seq = match (q / 32) % 3 {
                0 => u64::MAX - q as u64,
                1 => 1,
                _ => 3 + (q / RECORD_HEADER_BYTES) as u64 + 2,
            };
            garbage.extend(RecordHeaderV2::encode(
                0,
                seq,
                KIND_DEPOSIT,
                crc32fast::hash(b""),
            ));
        }
        let mut file = file_header(VERSION, 10);
        recs[..3].iter().for_each(|r| file.extend(r));
        file.extend(&garbage);
        recs[5..].iter().for_each(|r| file.extend(r));
        let path = tmp.path().join("g.mcb");
        std::fs::write(&path, &file).unwrap();
        let mut reader = BatchReader::open(&path).unwrap();
        let got: Vec<RawRecord> = std::iter::from_fn(|| reader.next_record()).collect();
        let mut want = intact(&payloads);
        want[3].1 = None;
        want[4].1 = None;
        assert_eq!(
            outline(&got),
            want,
            "exactly the two lost numbers are malformed"
        );
        assert_eq!(got[3].offset, from as u64);
        assert_eq!(got[4].offset, from as u64);
        assert_eq!(reader.skipped_bytes(), garbage.len() as u64);
    }

    #[test]
    fn implausible_sequence_numbers_are_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let payloads: Vec<Vec<u8>> = (0..6u64).map(|i| noise(i, 40)).collect();
        let rec = |i: usize| record(i as u64, KIND_DEPOSIT, &payloads[i]);
        let build = |parts: Vec<Vec<u8>>| {
            let mut f = file_header(VERSION, 6);
            parts.into_iter().for_each(|p| f.extend(p));
            f
        };
        let all_intact = intact(&payloads);

        // A well-formed record numbered 2^60 where record 2 is due: skipped, no verdicts
        // for the numbers in between.
        let huge = record(1 << 60, KIND_DEPOSIT, b"forged");
        let got = read_bytes(
            tmp.path(),
            &build(vec![
                rec(0),
                rec(1),
                huge.clone(),
                rec(2),
                rec(3),
                rec(4),
                rec(5),
            ]),
        );
        assert_eq!(outline(&got), all_intact);

        // A replayed stretch (numbers lower than due) is skipped too.
        let got = read_bytes(
            tmp.path(),
            &build(vec![
                rec(0),
                rec(1),
                rec(2),
                rec(3),
                rec(1),
                rec(2),
                rec(4),
                rec(5),
            ]),
        );
        assert_eq!(outline(&got), all_intact);

        // At a clean boundary one number may be missing (a record removed)…
        let got = read_bytes(
            tmp.path(),
            &build(vec![rec(0), rec(2), rec(3), rec(4), rec(5)]),
        );
        let mut want = all_intact.clone();
        want[1].1 = None;
        assert_eq!(outline(&got), want);
        assert!(got[1].payload.as_ref().unwrap_err().contains("missing"));
        // …but not two.
        let ahead = record(3, KIND_DEPOSIT, b"forged");
        let got = read_bytes(
            tmp.path(),
            &build(vec![rec(0), ahead, rec(1), rec(2), rec(3), rec(4), rec(5)]),
        );
        assert_eq!(outline(&got), all_intact);

        // After 64 skipped bytes, up to 64 / 32 + 1 = 3 numbers may have been lost: landing
        // on record 4 where 1 is due reports 1, 2 and 3 lost…
        let got = read_bytes(
            tmp.path(),
            &build(vec![rec(0), vec![0xee; 64], rec(4), rec(5)]),
        );
        let mut want = all_intact.clone();
        (1..4).for_each(|i| want[i].1 = None);
        assert_eq!(outline(&got), want);
        // …but a header numbered 5 there is garbage, and the reader finds record 1 after it.
        let forged = record(5, KIND_DEPOSIT, b"forged");
        let got = read_bytes(
            tmp.path(),
            &build(vec![
                rec(0),
                vec![0xee; 64],
                forged,
                rec(1),
                rec(2),
                rec(3),
                rec(4),
                rec(5),
            ]),
        );
        assert_eq!(outline(&got), all_intact);
    }

    #[test]
    fn next_chunk_respects_both_bounds() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        let payloads: Vec<Vec<u8>> = (0..20usize).map(|i| vec![i as u8; i * 10]).collect();
        write(&path, false, &payloads);
        let mut reader = BatchReader::open(&path).unwrap();
        let mut seen = Vec::new();
        loop {
            let chunk = reader.next_chunk(4, 100);
            if chunk.is_empty() {
                break;
            }
            let held: usize = chunk.iter().map(|r| r.held_bytes()).sum();
            assert!(chunk.len() <= 4);
            assert!(
                held <= 100 || chunk.len() == 1,
                "{} records, {held} bytes",
                chunk.len()
            );
            seen.extend(chunk);
        }
        assert_eq!(outline(&seen), intact(&payloads));
        // Records alone over the byte bound still come, one per chunk.
        let mut reader = BatchReader::open(&path).unwrap();
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let c = reader.next_chunk(usize::MAX, 1);
            (!c.is_empty()).then_some(c.len())
        })
        .collect();
        assert_eq!(sizes, vec![1; 20]);
        // The record count bound alone, and a zero bound still makes progress.
        let mut reader = BatchReader::open(&path).unwrap();
        assert_eq!(reader.next_chunk(7, CHUNK_BYTES_MAX).len(), 7);
        assert_eq!(reader.next_chunk(0, CHUNK_BYTES_MAX).len(), 1);
    }

    /// Resident file-backed memory of this process, bytes (Linux).
    fn rss_file() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("RssFile:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    #[test]
    fn resync_over_a_sparse_gigabyte_keeps_resident_memory_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        for v1 in [false, true] {
            let path = tmp.path().join(format!("sparse-{v1}.mcb"));
            let payloads = vec![vec![1u8; 40], vec![2u8; 40]];
            write(&path, v1, &payloads);
            // A gigabyte hole after the records: reads as zeros, i.e. garbage.
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(1 << 30).unwrap();
            drop(file);
            let before = rss_file();
            let mut reader = BatchReader::open(&path).unwrap();
            let recs: Vec<RawRecord> = std::iter::from_fn(|| reader.next_record()).collect();
            let after = rss_file();
            assert_eq!(recs.len(), 3, "v1 {v1}");
            assert!(recs[..2].iter().all(|r| r.payload.is_ok()));
            assert!(recs[2].payload.is_err());
            if let (Some(b), Some(a)) = (before, after) {
                // Without release the whole gigabyte would be resident here (the map is
                // still alive); with it, a few release steps at most. The margin absorbs
                // other tests mapping files in this process.
                assert!(
                    a.saturating_sub(b) < 256 << 20,
                    "v1 {v1}: resident file pages grew by {} MiB",
                    a.saturating_sub(b) >> 20
                );
            }
        }
    }
}
