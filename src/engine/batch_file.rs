//! The batch file: versioned, checksummed, little-endian, memory-mappable records.
//! Specification with a diagram: `datasets/FORMAT.md`.
//!
//! ```text
//! header (64 bytes): "MCBATCH1" | version u16 = 1 | flags u16 | header bytes u32 = 64 |
//!                    record count u64 | created u64 | batch id [16] | reserved [12] |
//!                    CRC-32 of bytes 0..60 u32
//! record (8-byte aligned): "MCR1" u32 | payload length u32 | CRC-32 of payload u32 |
//!                    kind u8 (1 = deposit v1) | reserved [3] | payload | zero pad to 8
//! ```
//!
//! Reading never trusts a length it has not bounded: a record whose magic, length or
//! checksum is wrong becomes one `malformed(offset)` verdict and the reader resynchronises
//! on the next aligned record magic whose checksum holds, so garbage in the middle of a
//! file costs only the records it overwrote.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::mmap::ReadOnlyMap;

/// File magic.
pub const MAGIC: &[u8; 8] = b"MCBATCH1";
/// Format version.
pub const VERSION: u16 = 1;
/// Header bytes.
pub const HEADER_BYTES: usize = 64;
/// Record magic.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"MCR1");
/// Record header bytes.
pub const RECORD_HEADER_BYTES: usize = 16;
/// Largest record payload.
pub const RECORD_PAYLOAD_MAX: usize = 1 << 20;
/// Record kind: a deposit message (protocol v1 encoding).
pub const KIND_DEPOSIT: u8 = 1;
/// Record kind: a deposit message with decompression hints:
/// `deposit length u32 | deposit | hints` (the y coordinate of every point, in order).
pub const KIND_DEPOSIT_HINTED: u8 = 2;

fn pad8(n: usize) -> usize {
    (8 - n % 8) % 8
}

/// The file header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    /// Flags (none defined in v1; must be 0).
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
        h[8..10].copy_from_slice(&VERSION.to_le_bytes());
        h[10..12].copy_from_slice(&self.flags.to_le_bytes());
        h[12..16].copy_from_slice(&(HEADER_BYTES as u32).to_le_bytes());
        h[16..24].copy_from_slice(&self.record_count.to_le_bytes());
        h[24..32].copy_from_slice(&self.created.to_le_bytes());
        h[32..48].copy_from_slice(&self.batch_id);
        let crc = crc32fast::hash(&h[..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn decode(h: &[u8]) -> Result<BatchHeader, BatchFileError> {
        let bad = |m: &str| Err(BatchFileError::Header(m.to_owned()));
        if h.len() < HEADER_BYTES {
            return bad("file shorter than the 64-byte header");
        }
        if &h[..8] != MAGIC {
            return bad("not a microcash batch file (bad magic)");
        }
        let u16_at = |o: usize| u16::from_le_bytes(h[o..o + 2].try_into().expect("2"));
        let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4"));
        let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8"));
        if crc32fast::hash(&h[..60]) != u32_at(60) {
            return bad("header checksum mismatch");
        }
        if u16_at(8) != VERSION {
            return Err(BatchFileError::Header(format!(
                "unsupported version {}",
                u16_at(8)
            )));
        }
        if u32_at(12) as usize != HEADER_BYTES || u16_at(10) != 0 {
            return bad("unknown header length or flags");
        }
        Ok(BatchHeader {
            flags: 0,
            record_count: u64_at(16),
            created: u64_at(24),
            batch_id: h[32..48].try_into().expect("16"),
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
}

/// Writes a batch file.
pub struct BatchWriter {
    out: BufWriter<File>,
    header: BatchHeader,
    written: u64,
}

impl BatchWriter {
    /// Creates `path` for a batch with this id and creation time.
    pub fn create(
        path: &Path,
        batch_id: [u8; 16],
        created: u64,
    ) -> Result<BatchWriter, BatchFileError> {
        let mut out = BufWriter::new(File::create(path)?);
        let header = BatchHeader {
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
        let mut payload = Vec::with_capacity(4 + deposit.len() + hints.len());
        payload.extend_from_slice(&(deposit.len() as u32).to_le_bytes());
        payload.extend_from_slice(deposit);
        payload.extend_from_slice(hints);
        self.append_kind(KIND_DEPOSIT_HINTED, &payload)
    }

    fn append_kind(&mut self, kind: u8, payload: &[u8]) -> Result<(), BatchFileError> {
        assert!(
            payload.len() <= RECORD_PAYLOAD_MAX,
            "record larger than the format allows"
        );
        let mut h = [0u8; RECORD_HEADER_BYTES];
        h[..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
        h[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        h[8..12].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
        h[12] = kind;
        self.out.write_all(&h)?;
        self.out.write_all(payload)?;
        self.out.write_all(&[0u8; 8][..pad8(payload.len())])?;
        self.written += (RECORD_HEADER_BYTES + payload.len() + pad8(payload.len())) as u64;
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

/// One record as read: its number, offset and payload, or why it is malformed.
#[derive(Debug)]
pub struct RawRecord {
    /// Record number (position in the file, counting malformed stretches as one record).
    pub index: u64,
    /// Byte offset of the record header.
    pub offset: u64,
    /// Record kind ([`KIND_DEPOSIT`] or [`KIND_DEPOSIT_HINTED`]).
    pub kind: u8,
    /// The payload bytes, or the reason the record is malformed.
    pub payload: Result<Vec<u8>, String>,
}

/// Reads a batch file record by record from a read-only memory map.
pub struct BatchReader {
    map: ReadOnlyMap,
    header: BatchHeader,
    pos: usize,
    index: u64,
    released: usize,
}

enum Probe {
    Ok { len: usize, kind: u8 },
    Garbage(&'static str),
    Truncated,
    Checksum { len: usize },
    Kind { len: usize, kind: u8 },
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
            index: 0,
            released: 0,
        })
    }

    /// The header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Bytes in the file.
    pub fn file_len(&self) -> u64 {
        self.map.bytes().len() as u64
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    fn probe(bytes: &[u8], pos: usize) -> Probe {
        let rest = &bytes[pos..];
        if rest.len() < RECORD_HEADER_BYTES {
            return Probe::Truncated;
        }
        let u32_at = |o: usize| u32::from_le_bytes(rest[o..o + 4].try_into().expect("4"));
        if u32_at(0) != RECORD_MAGIC {
            return Probe::Garbage("bad record magic");
        }
        let len = u32_at(4) as usize;
        if len > RECORD_PAYLOAD_MAX {
            return Probe::Garbage("record length above the maximum");
        }
        if rest.len() < RECORD_HEADER_BYTES + len {
            return Probe::Truncated;
        }
        let payload = &rest[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len];
        if crc32fast::hash(payload) != u32_at(8) {
            return Probe::Checksum { len };
        }
        if rest[12] != KIND_DEPOSIT && rest[12] != KIND_DEPOSIT_HINTED {
            return Probe::Kind {
                len,
                kind: rest[12],
            };
        }
        Probe::Ok {
            len,
            kind: rest[12],
        }
    }

    /// The next aligned position after `from` holding a record that checks out.
    fn resync(bytes: &[u8], from: usize) -> usize {
        let mut p = from + 8 - from % 8;
        while p + RECORD_HEADER_BYTES <= bytes.len() {
            if matches!(Self::probe(bytes, p), Probe::Ok { .. }) {
                return p;
            }
            p += 8;
        }
        bytes.len()
    }

    /// The next record, or `None` at the end of the file.
    pub fn next_record(&mut self) -> Option<RawRecord> {
        let bytes = self.map.bytes();
        if self.pos >= bytes.len() {
            return None;
        }
        let offset = self.pos as u64;
        let index = self.index;
        self.index += 1;
        let step = |len: usize| RECORD_HEADER_BYTES + len + pad8(len);
        let mut kind = KIND_DEPOSIT;
        let payload = match Self::probe(bytes, self.pos) {
            Probe::Ok { len, kind: k } => {
                kind = k;
                let start = self.pos + RECORD_HEADER_BYTES;
                let p = bytes[start..start + len].to_vec();
                self.pos += step(len);
                Ok(p)
            }
            Probe::Checksum { len } => {
                self.pos += step(len);
                Err("record checksum mismatch".to_owned())
            }
            Probe::Kind { len, kind } => {
                self.pos += step(len);
                Err(format!("unknown record kind {kind}"))
            }
            Probe::Truncated => {
                self.pos = bytes.len();
                Err("truncated record at the end of the file".to_owned())
            }
            Probe::Garbage(why) => {
                let next = Self::resync(bytes, self.pos);
                let skipped = next - self.pos;
                self.pos = next;
                Err(format!(
                    "{why}; {skipped} bytes skipped to the next valid record"
                ))
            }
        };
        // Keep resident memory bounded: drop the pages behind us in 8 MiB steps.
        if self.pos - self.released >= 8 << 20 {
            self.map.release(self.released, self.pos - self.released);
            self.released = self.pos;
        }
        Some(RawRecord {
            index,
            offset,
            kind,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, payloads: &[&[u8]]) {
        let mut w = BatchWriter::create(path, [1; 16], 7).unwrap();
        for p in payloads {
            w.append(p).unwrap();
        }
        w.finish().unwrap();
    }

    fn read_all(path: &Path) -> Vec<RawRecord> {
        let mut r = BatchReader::open(path).unwrap();
        std::iter::from_fn(|| r.next_record()).collect()
    }

    #[test]
    fn records_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        write(&path, &[b"alpha", b"", b"gamma-gamma"]);
        let r = BatchReader::open(&path).unwrap();
        assert_eq!(r.header().record_count, 3);
        let recs = read_all(&path);
        let payloads: Vec<Vec<u8>> = recs.into_iter().map(|r| r.payload.unwrap()).collect();
        assert_eq!(
            payloads,
            vec![b"alpha".to_vec(), vec![], b"gamma-gamma".to_vec()]
        );
    }

    #[test]
    fn garbage_costs_only_the_records_it_overwrote() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 40]).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
        write(&path, &refs);
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
    fn truncated_file_reports_the_torn_record_and_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        write(&path, &[&[1u8; 40], &[2u8; 40], &[3u8; 40]]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let recs = read_all(&path);
        assert_eq!(recs.len(), 3);
        assert!(recs[2].payload.as_ref().unwrap_err().contains("truncated"));
        assert!(recs[1].payload.is_ok());
    }

    #[test]
    fn bad_headers_are_refused_with_a_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("b.mcb");
        write(&path, &[b"x"]);
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
    }
}
