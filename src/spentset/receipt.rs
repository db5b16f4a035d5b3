//! Receipt entries: what the journal records for each accepted redemption. A receipt's id is
//! its byte offset in the journal, so the spent table's value leads straight to it.
//!
//! ```text
//! entry: serial [32] | epoch u32 | deposit digest [32] | value u64 | time u64 |
//!        batch key [16] | record u64 |
//!        target (u8 len ‖ bytes) | owner keys (u8 n ‖ n × 32) |
//!        allowances (v2: u16 n, v1: u8 n ‖ n × (serial [32] ‖ epoch u32)) |
//!        chain digests (v2 only: u8 n ‖ n × 32; d₀ … dₙ of the coin's link chain)
//! commit group payload v2: 0xFFFFFFFF | version u8 = 2 | count u32 | entries
//! commit group payload v1: count u32 | entries            (read only)
//! ```
//!
//! Every bound the verifier accepts fits: a deposit may spend up to
//! [`ALLOWANCES_PER_ENTRY_MAX`] allowance tokens (32 per link and at the deposit, 64 links),
//! which v1's u8 count could not hold (a valid deposit with 256 allowance spends panicked
//! the encoder). v1 groups in existing journals are still read; a v1 group's count can
//! never be `0xFFFFFFFF` (a frame holds at most 256 MiB).

use crate::protocol::coin::{ALLOWANCES_MAX, LINKS_MAX};
use crate::protocol::encoding::{DecodeError, DecodeReason, Reader, Writer};

/// Owner keys of the longest chain: X and one per link.
pub const OWNER_KEYS_MAX: usize = LINKS_MAX + 1;
/// Allowance spends one deposit can carry: a full list on every link and on the deposit.
pub const ALLOWANCES_PER_ENTRY_MAX: usize = (LINKS_MAX + 1) * ALLOWANCES_MAX;
/// Longest credit target (`account:` + 64 characters, or `swap:` + 64 hex digits).
pub const TARGET_BYTES_MAX: usize = 255;

/// Largest encoded entry (v2), from the protocol's link and allowance limits.
pub const ENTRY_BYTES_MAX: usize = 32
    + 4
    + 32
    + 8
    + 8
    + 16
    + 8
    + 1
    + TARGET_BYTES_MAX
    + 1
    + OWNER_KEYS_MAX * 32
    + 2
    + ALLOWANCES_PER_ENTRY_MAX * 36
    + 1
    + OWNER_KEYS_MAX * 32;

/// Smallest encoded entry (v1, empty target, no owner keys or allowances): serial, epoch,
/// deposit digest, value, time, batch id, record, three one-byte lengths.
const ENTRY_BYTES_MIN: usize = 32 + 4 + 32 + 8 + 8 + 16 + 8 + 3;

const GROUP_V2_MARKER: u32 = u32::MAX;
const GROUP_VERSION: u8 = 2;

/// A commit group's encoding version (entries are decoded according to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupVersion {
    /// u8 allowance counts (journals written before v2; read only).
    V1,
    /// u16 allowance counts.
    V2,
}

/// An entry outside the bounds the encoding (and the verifier) allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("receipt entry beyond the encodable bounds: {0}")]
pub struct EntryTooLarge(pub String);

/// One accepted redemption.
// Serde: a cluster vote carries the receipt that holds a key (`cluster::messages`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReceiptEntry {
    /// Coin serial.
    pub serial: [u8; 32],
    /// Key epoch of the coin's keyset (which spent-set partition holds the serial).
    pub epoch: u32,
    /// Digest of the deposit message (idempotency key).
    pub deposit_digest: [u8; 32],
    /// Value credited.
    pub value: u64,
    /// Issuer time of the redemption.
    pub time: u64,
    /// Content key of the batch file that redeemed it (zeros for single deposits and swaps).
    pub batch: [u8; 16],
    /// Its record number in that batch.
    pub record: u64,
    /// What was credited: `account:<name>` or `swap:<hex>`.
    pub target: String,
    /// Owner keys X, P₁ … Pₙ of the redeemed chain (double-spend evidence).
    pub owner_keys: Vec<[u8; 32]>,
    /// Allowance serials spent with it, with their epochs.
    pub allowances: Vec<([u8; 32], u32)>,
    /// The coin's chain digests d₀ … dₙ (double-spend evidence: where two spends of one
    /// serial diverge). Empty for receipts written before v2.
    pub chain_digests: Vec<[u8; 32]>,
}

impl ReceiptEntry {
    /// Checks the bounds of the encoding (the verifier's bounds fit them; this keeps the
    /// encoder free of panics whatever a caller builds).
    pub fn check_bounds(&self) -> Result<(), EntryTooLarge> {
        if self.target.len() > TARGET_BYTES_MAX {
            return Err(EntryTooLarge(format!(
                "target of {} bytes",
                self.target.len()
            )));
        }
        if self.owner_keys.len() > OWNER_KEYS_MAX {
            return Err(EntryTooLarge(format!(
                "{} owner keys",
                self.owner_keys.len()
            )));
        }
        if self.chain_digests.len() > OWNER_KEYS_MAX {
            return Err(EntryTooLarge(format!(
                "{} chain digests",
                self.chain_digests.len()
            )));
        }
        if self.allowances.len() > ALLOWANCES_PER_ENTRY_MAX {
            return Err(EntryTooLarge(format!(
                "{} allowances",
                self.allowances.len()
            )));
        }
        Ok(())
    }

    /// Appends the (v2) encoding; the caller has checked the bounds.
    fn encode(&self, w: &mut Writer) {
        w.bytes(&self.serial)
            .u32(self.epoch)
            .bytes(&self.deposit_digest)
            .u64(self.value)
            .u64(self.time)
            .bytes(&self.batch)
            .u64(self.record);
        w.short_bytes(self.target.as_bytes());
        // Bounds checked by `check_bounds` (65 keys, 2080 allowances): the casts are exact.
        w.u8(self.owner_keys.len() as u8);
        for k in &self.owner_keys {
            w.bytes(k);
        }
        w.u16(self.allowances.len() as u16);
        for (s, e) in &self.allowances {
            w.bytes(s).u32(*e);
        }
        w.u8(self.chain_digests.len() as u8);
        for d in &self.chain_digests {
            w.bytes(d);
        }
    }

    /// Reads one entry of a group of `version`.
    pub fn decode(r: &mut Reader<'_>, version: GroupVersion) -> Result<ReceiptEntry, DecodeError> {
        let serial = r.array("serial")?;
        let epoch = r.u32("epoch")?;
        let deposit_digest = r.array("deposit digest")?;
        let value = r.u64("value")?;
        let time = r.u64("time")?;
        let batch = r.array("batch id")?;
        let record = r.u64("record")?;
        let target = r.short_str("target", 255)?.to_owned();
        let n = r.count_u8("owner keys", OWNER_KEYS_MAX)?;
        let owner_keys = (0..n)
            .map(|_| r.array("owner key"))
            .collect::<Result<_, _>>()?;
        let n = match version {
            GroupVersion::V1 => r.count_u8("allowances", 255)?,
            GroupVersion::V2 => r.count_u16("allowances", ALLOWANCES_PER_ENTRY_MAX)?,
        };
        let allowances = (0..n)
            .map(|_| Ok((r.array("allowance serial")?, r.u32("allowance epoch")?)))
            .collect::<Result<_, _>>()?;
        let chain_digests = match version {
            GroupVersion::V1 => Vec::new(),
            GroupVersion::V2 => {
                let n = r.count_u8("chain digests", OWNER_KEYS_MAX)?;
                (0..n)
                    .map(|_| r.array("chain digest"))
                    .collect::<Result<_, _>>()?
            }
        };
        Ok(ReceiptEntry {
            serial,
            epoch,
            deposit_digest,
            value,
            time,
            batch,
            record,
            target,
            owner_keys,
            allowances,
            chain_digests,
        })
    }
}

/// Encodes a commit group (v2); returns the payload and each entry's offset within it.
pub fn encode_group(entries: &[ReceiptEntry]) -> Result<(Vec<u8>, Vec<u64>), EntryTooLarge> {
    for e in entries {
        e.check_bounds()?;
    }
    let count = u32::try_from(entries.len())
        .map_err(|_| EntryTooLarge(format!("{} entries in one group", entries.len())))?;
    let mut w = Writer::new();
    w.u32(GROUP_V2_MARKER).u8(GROUP_VERSION).u32(count);
    let mut offsets = Vec::with_capacity(entries.len());
    for e in entries {
        offsets.push(w.as_slice().len() as u64);
        e.encode(&mut w);
    }
    Ok((w.finish(), offsets))
}

/// The version of a group from the first bytes of its payload.
pub fn group_version(head: &[u8]) -> GroupVersion {
    if head.len() >= 5 && head.get(..4) == Some(&GROUP_V2_MARKER.to_le_bytes()[..]) {
        GroupVersion::V2
    } else {
        GroupVersion::V1
    }
}

/// Decodes a commit group (v2 or v1) into (offset within payload, entry) pairs.
pub fn decode_group(payload: &[u8]) -> Result<Vec<(u64, ReceiptEntry)>, DecodeError> {
    let mut r = Reader::new(payload);
    let first = r.u32("entry count")?;
    let (version, n) = if first == GROUP_V2_MARKER {
        let v = r.u8("group version")?;
        if v != GROUP_VERSION {
            return Err(r.error(DecodeReason::UnsupportedVersion {
                what: "commit group",
                version: v,
            }));
        }
        (GroupVersion::V2, r.u32("entry count")? as usize)
    } else {
        (GroupVersion::V1, first as usize)
    };
    // The count is input: preallocate only what the bytes present could hold (an entry is
    // never under ENTRY_BYTES_MIN), not what the count claims.
    let mut out = Vec::with_capacity(n.min(r.remaining() / ENTRY_BYTES_MIN));
    for _ in 0..n {
        let at = r.offset() as u64;
        out.push((at, ReceiptEntry::decode(&mut r, version)?));
    }
    r.finish()?;
    Ok(out)
}
