//! Hints a deposit's writer can attach so that the verifier does less work: the y
//! coordinate of every point (decompression hints, [`Encode::to_bytes_with_hints`]) and
//! the two SSWU square roots of H1 for every serial an issuer signed (serial hints).
//!
//! Hints are covered by no signature — a relay could change them — so none of them ever
//! decides anything: a deposit decodes to the same value with or without them, and a wrong
//! serial hint is caught by one squaring and replaced by the square roots it meant to save
//! (`microcash_kernels::bls::map`). The layout of the kind-2 record that carries them is
//! in `datasets/FORMAT.md`.

use microcash_kernels::bls::map::{sswu_hints, MapHint};

use super::coin::{Serial, ALLOWANCES_MAX, LINKS_MAX};
use super::deposit::Deposit;
use super::encoding::{Decode, DecodeError, Encode};
use super::tags;

/// Bytes of one serial hint: two 48-byte big-endian field elements.
pub const SERIAL_HINT_LEN: usize = 96;

/// Most issuer signatures a deposit can carry: its coin's, one per allowance spend on each
/// of the most links, and one per spend on the deposit (2 081).
pub const ISSUER_SIGNATURES_MAX: usize = 1 + LINKS_MAX * ALLOWANCES_MAX + ALLOWANCES_MAX;

/// The most serial-hint bytes a deposit can carry: 96 per issuer signature = 199 776.
pub const SERIAL_HINTS_BYTES_MAX: usize = ISSUER_SIGNATURES_MAX * SERIAL_HINT_LEN;

/// The SSWU hints of a deposit's serials, one per issuer signature in the order the
/// verifier checks them (the coin's σ, then each link's allowance tokens oldest first, then
/// the deposit's own tokens — also the order they are encoded in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SerialHints(Vec<MapHint>);

impl SerialHints {
    /// Computes the hints of `deposit`'s serials (two square roots each: what the writer
    /// spends so that the engine does not).
    pub fn of(deposit: &Deposit) -> SerialHints {
        SerialHints(
            issuer_serials(deposit)
                .iter()
                .map(|s| sswu_hints(&s.0, tags::H1_DST))
                .collect(),
        )
    }

    /// The hint of the `i`-th issuer signature.
    pub fn get(&self, i: usize) -> Option<&MapHint> {
        self.0.get(i)
    }

    /// The hints' bytes, packed in order.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flatten().flatten().copied().collect()
    }

    /// Reads the hints of `deposit` from `bytes`: `None` unless there are exactly 96 bytes
    /// per issuer signature of the deposit (whatever their values: a wrong root is caught
    /// where it is used).
    pub fn parse(bytes: &[u8], deposit: &Deposit) -> Option<SerialHints> {
        if bytes.len() != issuer_signature_count(deposit).checked_mul(SERIAL_HINT_LEN)? {
            return None;
        }
        let hints = bytes
            .chunks_exact(SERIAL_HINT_LEN)
            .map(|h| {
                let (a, b) = h.split_at(48);
                Some([a.try_into().ok()?, b.try_into().ok()?])
            })
            .collect::<Option<Vec<MapHint>>>()?;
        Some(SerialHints(hints))
    }
}

/// How many issuer signatures the verifier checks for `deposit` (at most: it stops at the
/// first failure).
pub fn issuer_signature_count(deposit: &Deposit) -> usize {
    1 + deposit
        .coin
        .links
        .iter()
        .map(|l| l.allowances.len())
        .sum::<usize>()
        + deposit.allowances.len()
}

/// The serials the issuer signed, in the verifier's order.
pub fn issuer_serials(deposit: &Deposit) -> Vec<Serial> {
    std::iter::once(deposit.coin.serial())
        .chain(
            deposit
                .coin
                .links
                .iter()
                .flat_map(|l| &l.allowances)
                .chain(&deposit.allowances)
                .map(|spend| spend.token.serial()),
        )
        .collect()
}

/// A decoded deposit with the serial hints its record carried, if they were usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintedDeposit {
    /// The deposit: exactly what decoding its bytes alone gives.
    pub deposit: Deposit,
    /// Its serial hints.
    pub serial_hints: Option<SerialHints>,
}

impl HintedDeposit {
    /// The two parts of a kind-2 record for `deposit`: its encoding, and its hints
    /// (decompression hints, then serial hints).
    pub fn encode(deposit: &Deposit) -> (Vec<u8>, Vec<u8>) {
        let (bytes, mut hints) = deposit.to_bytes_with_hints();
        hints.extend(SerialHints::of(deposit).to_bytes());
        (bytes, hints)
    }

    /// Decodes a kind-2 record's deposit bytes with its hints. The deposit is decided by
    /// its own bytes alone: hints that do not check out (a relay could have changed them)
    /// are dropped — the deposit is decoded as if it had none — and only an undecodable
    /// deposit is an error. Serial hints count only when there is exactly one per issuer
    /// signature.
    pub fn decode(bytes: &[u8], hints: &[u8]) -> Result<HintedDeposit, DecodeError> {
        match Deposit::from_bytes_with_hint_prefix(bytes, hints) {
            Ok((deposit, used)) => {
                let serial_hints = hints
                    .get(used..)
                    .and_then(|rest| SerialHints::parse(rest, &deposit));
                Ok(HintedDeposit {
                    deposit,
                    serial_hints,
                })
            }
            Err(_) => Ok(HintedDeposit {
                deposit: Deposit::from_bytes(bytes)?,
                serial_hints: None,
            }),
        }
    }
}

impl From<Deposit> for HintedDeposit {
    fn from(deposit: Deposit) -> HintedDeposit {
        HintedDeposit {
            deposit,
            serial_hints: None,
        }
    }
}
