//! What the fuzz targets share: the strict-decoding property, and the checked-in sample day
//! (its public parameters and valid deposits) for the targets that need real signatures.

use std::path::PathBuf;
use std::sync::OnceLock;

use microcash::engine::batch_file::{BatchReader, KIND_DEPOSIT_HINTED};
use microcash::engine::PublicParams;
use microcash::protocol::deposit::Deposit;
use microcash::protocol::encoding::{Decode, Encode};
use microcash::protocol::verify::VerifiedDeposit;

/// Strict decoding: whatever decodes re-encodes to exactly the input (no two encodings of
/// one value, so no malleable digests or idempotency keys). Returns the value.
pub fn decodes_canonically<T: Decode + Encode>(data: &[u8]) -> Option<T> {
    let value = T::from_bytes(data).ok()?;
    assert_eq!(
        value.to_bytes(),
        data,
        "a decodable input re-encodes differently"
    );
    Some(value)
}

/// The checked-in samples directory.
pub fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/samples")
}

/// The sample day: its parameters, its clearing time, and deposits the reference verifier
/// accepts.
pub struct SampleDay {
    /// Keysets and policy of `mixed.params`.
    pub params: PublicParams,
    /// The batch's creation time: inside every keyset's windows.
    pub now: u64,
    /// Accepted deposits of `mixed-day1.mcb` (a few dozen).
    pub valid: Vec<Deposit>,
    /// What the reference verifier says of each of them.
    pub accepted: Vec<VerifiedDeposit>,
}

/// Loaded once per fuzzing process.
pub fn sample_day() -> &'static SampleDay {
    static DAY: OnceLock<SampleDay> = OnceLock::new();
    DAY.get_or_init(|| {
        let params = PublicParams::load(&samples().join("mixed.params")).expect("sample params");
        let mut reader =
            BatchReader::open(&samples().join("mixed-day1.mcb")).expect("sample batch");
        let now = reader.header().created;
        let verifier = microcash::protocol::verify::Verifier::new(&params.keysets, &params.policy);
        let (mut valid, mut accepted) = (Vec::new(), Vec::new());
        while let Some(record) = reader.next_record() {
            let Some(deposit) = record
                .payload
                .ok()
                .and_then(|p| deposit_of(record.kind, &p))
            else {
                continue;
            };
            if let Ok(verified) = verifier.verify_deposit(&deposit, now) {
                valid.push(deposit);
                accepted.push(verified);
            }
            if valid.len() == 32 {
                break;
            }
        }
        assert!(!valid.is_empty(), "the sample day has valid deposits");
        SampleDay {
            params,
            now,
            valid,
            accepted,
        }
    })
}

/// The deposit of a sample record (plain or hinted).
pub fn deposit_of(kind: u8, payload: &[u8]) -> Option<Deposit> {
    if kind == KIND_DEPOSIT_HINTED {
        let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
        Deposit::from_bytes(payload.get(4..4 + len)?).ok()
    } else {
        Deposit::from_bytes(payload).ok()
    }
}
