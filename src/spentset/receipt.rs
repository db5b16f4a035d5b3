//! Receipt entries: what the journal records for each accepted redemption. A receipt's id is
//! its byte offset in the journal, so the spent table's value leads straight to it.
//!
//! ```text
//! entry: serial [32] | epoch u32 | deposit digest [32] | value u64 | time u64 |
//!        batch id [16] | record u64 |
//!        target (u8 len ‖ bytes) | owner keys (u8 n ‖ n × 32) | allowances (u8 n ‖ n × (serial [32] ‖ epoch u32))
//! commit group payload: count u32 | entries
//! ```

use crate::protocol::encoding::{DecodeError, Reader, Writer};

/// Largest encoded entry (bounded by the protocol's link and allowance limits).
pub const ENTRY_BYTES_MAX: usize = 32 + 4 + 32 + 8 + 8 + 16 + 8 + 256 + 1 + 65 * 32 + 1 + 255 * 36;

/// One accepted redemption.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

impl ReceiptEntry {
    /// Appends the encoding.
    pub fn encode(&self, w: &mut Writer) {
        w.bytes(&self.serial)
            .u32(self.epoch)
            .bytes(&self.deposit_digest)
            .u64(self.value)
            .u64(self.time)
            .bytes(&self.batch)
            .u64(self.record);
        w.short_bytes(self.target.as_bytes());
        w.u8(u8::try_from(self.owner_keys.len()).expect("≤ 65 keys"));
        for k in &self.owner_keys {
            w.bytes(k);
        }
        w.u8(u8::try_from(self.allowances.len()).expect("≤ 255 allowances"));
        for (s, e) in &self.allowances {
            w.bytes(s).u32(*e);
        }
    }

    /// Reads one entry.
    pub fn decode(r: &mut Reader<'_>) -> Result<ReceiptEntry, DecodeError> {
        let serial = r.array("serial")?;
        let epoch = r.u32("epoch")?;
        let deposit_digest = r.array("deposit digest")?;
        let value = r.u64("value")?;
        let time = r.u64("time")?;
        let batch = r.array("batch id")?;
        let record = r.u64("record")?;
        let target = String::from_utf8_lossy(r.short_bytes("target", 255)?).into_owned();
        let n = r.count_u8("owner keys", 65)?;
        let owner_keys = (0..n)
            .map(|_| r.array("owner key"))
            .collect::<Result<_, _>>()?;
        let n = r.count_u8("allowances", 255)?;
        let allowances = (0..n)
            .map(|_| Ok((r.array("allowance serial")?, r.u32("allowance epoch")?)))
            .collect::<Result<_, _>>()?;
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
        })
    }
}

/// Encodes a commit group; returns the payload and each entry's offset within it.
pub fn encode_group(entries: &[ReceiptEntry]) -> (Vec<u8>, Vec<u64>) {
    let mut w = Writer::new();
    w.u32(entries.len() as u32);
    let mut offsets = Vec::with_capacity(entries.len());
    for e in entries {
        offsets.push(w.as_slice().len() as u64);
        e.encode(&mut w);
    }
    (w.finish(), offsets)
}

/// Decodes a commit group into (offset within payload, entry) pairs.
pub fn decode_group(payload: &[u8]) -> Result<Vec<(u64, ReceiptEntry)>, DecodeError> {
    let mut r = Reader::new(payload);
    let n = r.u32("entry count")? as usize;
    let mut out = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        let at = r.offset() as u64;
        out.push((at, ReceiptEntry::decode(&mut r)?));
    }
    r.finish()?;
    Ok(out)
}
