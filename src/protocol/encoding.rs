//! Canonical, strict binary encodings.
//!
//! Rules every message follows (see `docs/protocol.md` for the byte layouts):
//! * integers little-endian, fixed width; counts are `u8` or `u16` with a documented maximum
//!   checked *before* anything is allocated;
//! * points in their canonical compressed form, validated on decode (on curve, not the
//!   identity, re-encoding equal to the input);
//! * top-level messages start with a version byte, and decoding refuses trailing bytes.

use thiserror::Error;

/// Why bytes were refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed at byte {offset}: {reason}")]
pub struct DecodeError {
    /// Offset into the decoded buffer where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub reason: DecodeReason,
}

/// The reason part of a [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeReason {
    /// The buffer ended inside a field.
    #[error("unexpected end of input reading {0}")]
    UnexpectedEnd(&'static str),
    /// Bytes remained after a complete message.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// A version byte this build does not know.
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion {
        /// Which message.
        what: &'static str,
        /// The version found.
        version: u8,
    },
    /// A count or length above its documented maximum.
    #[error("{what} count {count} exceeds the maximum {max}")]
    TooMany {
        /// Which field.
        what: &'static str,
        /// The count found.
        count: usize,
        /// The maximum allowed.
        max: usize,
    },
    /// A point that is not a valid, canonical encoding.
    #[error("invalid {what}: {detail}")]
    BadPoint {
        /// Which field.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// A field with an invalid value (unknown tag, bad text, zero where forbidden).
    #[error("invalid {what}: {detail}")]
    BadValue {
        /// Which field.
        what: &'static str,
        /// Why.
        detail: String,
    },
}

/// Appends canonical encodings to a byte vector; optionally collects decompression hints
/// (the y coordinate of every point, in encoding order) beside it.
#[derive(Default, Debug)]
pub struct Writer {
    buf: Vec<u8>,
    hints: Option<Vec<u8>>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer::default()
    }
    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Appends a little-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a little-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a little-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends raw bytes (fixed-length fields).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// Appends a list length as a `u8`. Every list the protocol encodes is bounded by its
    /// decoder and its builders far below 256, so a longer one is a bug in the caller.
    #[allow(
        clippy::expect_used,
        reason = "lists are bounded by their decoders and builders"
    )]
    pub fn count_u8(&mut self, n: usize) -> &mut Self {
        self.u8(u8::try_from(n).expect("list bounded below 256 where it is built"))
    }
    /// Appends a list length as a `u16` (see [`Writer::count_u8`]).
    #[allow(
        clippy::expect_used,
        reason = "lists are bounded by their decoders and builders"
    )]
    pub fn count_u16(&mut self, n: usize) -> &mut Self {
        self.u16(u16::try_from(n).expect("list bounded below 65536 where it is built"))
    }
    /// Appends a `u8` length then the bytes (short text such as account names).
    pub fn short_bytes(&mut self, v: &[u8]) -> &mut Self {
        self.count_u8(v.len()).bytes(v)
    }
    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    /// A writer that also collects decompression hints.
    pub fn with_hints() -> Writer {
        Writer {
            buf: Vec::new(),
            hints: Some(Vec::new()),
        }
    }

    /// Records the y coordinate of the point just written (computed only when collecting).
    pub fn hint(&mut self, y: impl FnOnce() -> Vec<u8>) {
        if let Some(h) = self.hints.as_mut() {
            h.extend_from_slice(&y());
        }
    }

    /// The encoded bytes and the hints.
    pub fn finish_with_hints(self) -> (Vec<u8>, Vec<u8>) {
        (self.buf, self.hints.unwrap_or_default())
    }
    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }
}

/// Reads canonical encodings from a byte slice, tracking the offset for error reports.
/// With hints, points are decoded from their y coordinate instead of a square root.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    hints: Option<&'a [u8]>,
    hint_pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            hints: None,
            hint_pos: 0,
        }
    }

    /// A reader that takes the y coordinate of each point from `hints`, in order.
    pub fn with_hints(buf: &'a [u8], hints: &'a [u8]) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            hints: Some(hints),
            hint_pos: 0,
        }
    }

    /// The next `N`-byte hint, if this reader has hints.
    pub fn hint<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<Option<[u8; N]>, DecodeError> {
        let Some(h) = self.hints else { return Ok(None) };
        if h.len() - self.hint_pos < N {
            return Err(self.error(DecodeReason::BadValue {
                what,
                detail: "decompression hint missing".into(),
            }));
        }
        let mut out = [0u8; N];
        let end = self.hint_pos + N;
        out.copy_from_slice(h.get(self.hint_pos..end).unwrap_or(&[0u8; N]));
        self.hint_pos = end;
        Ok(Some(out))
    }
    /// The current offset.
    pub fn offset(&self) -> usize {
        self.pos
    }
    /// Bytes not read yet: the most any count read from the input can honestly need, so
    /// the bound for preallocating from it.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// An error at the current offset.
    pub fn error(&self, reason: DecodeReason) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason,
        }
    }
    /// Takes `n` bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.saturating_add(n);
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.error(DecodeReason::UnexpectedEnd(what)))?;
        self.pos = end;
        Ok(out)
    }
    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }
    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }
    /// Reads a little-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    /// Reads a little-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    /// Reads a little-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// Reads a `u8` count and checks it against `max` before the caller allocates.
    pub fn count_u8(&mut self, what: &'static str, max: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u8(what)? as usize;
        check_count(at, what, n, max)
    }
    /// Reads a `u16` count and checks it against `max` before the caller allocates.
    pub fn count_u16(&mut self, what: &'static str, max: usize) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.u16(what)? as usize;
        check_count(at, what, n, max)
    }
    /// Reads a `u8`-length-prefixed byte string.
    pub fn short_bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let n = self.count_u8(what, max)?;
        self.take(n, what)
    }
    /// Reads a `u8`-length-prefixed UTF-8 string; other bytes are refused, never replaced,
    /// so that a decoded string always re-encodes to the bytes it came from.
    pub fn short_str(&mut self, what: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        let at = self.pos;
        let raw = self.short_bytes(what, max)?;
        std::str::from_utf8(raw).map_err(|e| DecodeError {
            offset: at,
            reason: DecodeReason::BadValue {
                what,
                detail: format!("not UTF-8 ({e})"),
            },
        })
    }
    /// Checks that the whole buffer was consumed; returns how many hint bytes were used.
    pub fn finish_bytes(&self) -> Result<usize, DecodeError> {
        let left = self.buf.len() - self.pos;
        if left != 0 {
            return Err(self.error(DecodeReason::TrailingBytes(left)));
        }
        Ok(self.hint_pos)
    }

    /// Checks that the whole buffer (and every hint) was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        self.finish_bytes()?;
        if let Some(h) = self.hints {
            if h.len() != self.hint_pos {
                return Err(self.error(DecodeReason::BadValue {
                    what: "decompression hints",
                    detail: format!("{} unused bytes", h.len() - self.hint_pos),
                }));
            }
        }
        Ok(())
    }
}

fn check_count(
    at: usize,
    what: &'static str,
    count: usize,
    max: usize,
) -> Result<usize, DecodeError> {
    if count > max {
        return Err(DecodeError {
            offset: at,
            reason: DecodeReason::TooMany { what, count, max },
        });
    }
    Ok(count)
}

/// A value with a canonical binary encoding.
pub trait Encode {
    /// Appends the encoding.
    fn encode(&self, w: &mut Writer);
    /// The encoding as a fresh vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.finish()
    }
    /// The encoding and its decompression hints: the y coordinate of every point in
    /// encoding order (48 bytes big-endian for G1, 32 bytes little-endian for Pallas).
    /// Bytes are cheaper than square roots: a clearing batch may carry them.
    fn to_bytes_with_hints(&self) -> (Vec<u8>, Vec<u8>) {
        let mut w = Writer::with_hints();
        self.encode(&mut w);
        w.finish_with_hints()
    }
}

/// A value decoded strictly from its canonical encoding.
pub trait Decode: Sized {
    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// Decodes a whole buffer, refusing trailing bytes.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    /// Decodes a whole buffer with decompression hints (see [`Encode::to_bytes_with_hints`]).
    /// The result is exactly what [`Decode::from_bytes`] gives; wrong hints are refused.
    fn from_bytes_with_hints(bytes: &[u8], hints: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::with_hints(bytes, hints);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    /// [`Decode::from_bytes_with_hints`] where the decompression hints are a prefix of
    /// `hints` (more hints may follow): the value and how many hint bytes it used.
    fn from_bytes_with_hint_prefix(
        bytes: &[u8],
        hints: &[u8],
    ) -> Result<(Self, usize), DecodeError> {
        let mut r = Reader::with_hints(bytes, hints);
        let v = Self::decode(&mut r)?;
        let used = r.finish_bytes()?;
        Ok((v, used))
    }
}

/// Reads and checks a version byte.
pub fn expect_version(
    r: &mut Reader<'_>,
    what: &'static str,
    known: u8,
) -> Result<(), DecodeError> {
    let at = r.offset();
    let version = r.u8(what)?;
    if version != known {
        return Err(DecodeError {
            offset: at,
            reason: DecodeReason::UnsupportedVersion { what, version },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_offsets_and_limits() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u8("a").unwrap(), 1);
        let e = r.u32("b").unwrap_err();
        assert_eq!(e.offset, 1);
        assert_eq!(e.reason, DecodeReason::UnexpectedEnd("b"));
        let mut r = Reader::new(&[9]);
        let e = r.count_u8("links", 8).unwrap_err();
        assert_eq!(
            e.reason,
            DecodeReason::TooMany {
                what: "links",
                count: 9,
                max: 8
            }
        );
        let r = Reader::new(&[0]);
        assert_eq!(
            r.finish().unwrap_err().reason,
            DecodeReason::TrailingBytes(1)
        );
    }
}
