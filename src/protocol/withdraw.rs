//! Blind issuance, shared by coins and allowance tokens.
//!
//! Wallet: draw a key x (X = x·G) and ρ; serial = H_serial(keyset_id ‖ X);
//! B = ρ·H1(serial). Issuer: check B ∈ G1, return S' = sk·B. Wallet: σ = ρ⁻¹·S', check
//! e(σ, g2) = e(H1(serial), pk) before storing. The issuer sees only B, a uniformly random
//! element of G1 whatever the serial: it cannot link the withdrawal to the later deposit.

use microcash_kernels::bls::{self, G1Affine};
use rand_core::CryptoRng;

use super::coin::{issuer_message_point, AllowanceToken, Coin, Serial};
use super::deposit::BlindedOutput;
use super::keys::{OwnerKey, OwnerSecret};
use super::keyset::{Keyset, KeysetId, KeysetKind};
use super::spend::{OwnedAllowance, OwnedCoin};
use super::tags;

/// What the wallet keeps between sending B and receiving S'. Secret.
#[derive(Clone)]
pub struct PendingIssue {
    kind: KeysetKind,
    keyset_id: KeysetId,
    secret: OwnerSecret,
    rho: bls::Scalar,
}

/// Bytes of [`PendingIssue::to_bytes`]: kind | keyset id | owner secret x | blinding ρ.
pub const PENDING_ISSUE_BYTES: usize = 1 + 32 + 32 + 32;

impl PendingIssue {
    /// The bytes a wallet journal keeps until the issuer has answered: with them the
    /// wallet can unblind the answer to a re-sent request after a crash. Secret material.
    pub fn to_bytes(&self) -> [u8; PENDING_ISSUE_BYTES] {
        let mut out = [0u8; PENDING_ISSUE_BYTES];
        out[0] = self.kind.tag();
        out[1..33].copy_from_slice(&self.keyset_id.0);
        out[33..65].copy_from_slice(&self.secret.to_bytes());
        out[65..97].copy_from_slice(&self.rho.to_bytes());
        out
    }

    /// Parses [`PendingIssue::to_bytes`]; `None` for any invalid field.
    pub fn from_bytes(b: &[u8; PENDING_ISSUE_BYTES]) -> Option<PendingIssue> {
        let field = |at: usize| -> [u8; 32] {
            let mut f = [0u8; 32];
            f.copy_from_slice(b.get(at..at + 32).unwrap_or(&[0u8; 32]));
            f
        };
        Some(PendingIssue {
            kind: KeysetKind::from_tag(b[0])?,
            keyset_id: KeysetId(field(1)),
            secret: OwnerSecret::from_bytes(&field(33))?,
            rho: bls::Scalar::from_bytes(&field(65))?,
        })
    }

    /// The keyset the output was blinded for.
    pub fn keyset_id(&self) -> KeysetId {
        self.keyset_id
    }
}

impl core::fmt::Debug for PendingIssue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PendingIssue({:?}, {:?})", self.kind, self.keyset_id)
    }
}

/// Why the issuer refused to sign a blinded message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlindSignError {
    /// B has a component outside G1: signing it would leak the key modulo a small order.
    #[error("blinded message {index} is outside G1")]
    NotInSubgroup {
        /// Position in the request.
        index: usize,
    },
}

/// Why a signed blinded message did not unblind to a valid signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnblindError {
    /// The answer does not verify under the keyset's public key.
    #[error("issuer answer does not verify under keyset {0}")]
    BadIssuerAnswer(KeysetId),
    /// The answer was the identity or otherwise degenerate.
    #[error("issuer answer is degenerate")]
    Degenerate,
    /// The answer came for another keyset than asked.
    #[error("answer for keyset {got}, expected {expected}")]
    WrongKeyset {
        /// Keyset of the pending request.
        expected: KeysetId,
        /// Keyset of the keyset passed in.
        got: KeysetId,
    },
}

/// Wallet side: a fresh key and blinding for one coin or token of `keyset`.
#[allow(
    clippy::expect_used,
    reason = "ρ ≠ 0 and H1(serial) ≠ O: the product is never O"
)]
pub fn blind<R: CryptoRng + ?Sized>(keyset: &Keyset, rng: &mut R) -> (PendingIssue, BlindedOutput) {
    let secret = OwnerSecret::generate(rng);
    let serial = Serial::derive(keyset.kind, &keyset.id, &secret.public());
    let rho = bls::Scalar::random(rng);
    let blinded = issuer_message_point(&serial)
        .mul(&rho)
        .expect("ρ ≠ 0 and H1(serial) ∈ G1 \\ {O}, so ρ·H1(serial) ≠ O");
    let pending = PendingIssue {
        kind: keyset.kind,
        keyset_id: keyset.id,
        secret,
        rho,
    };
    (
        pending,
        BlindedOutput {
            keyset_id: keyset.id,
            blinded,
        },
    )
}

/// Issuer side: S' = sk·B after checking B ∈ G1.
///
/// # Security
/// The subgroup check is not optional: see [`bls::SecretKey::sign_point`].
#[allow(
    clippy::expect_used,
    reason = "sk ≠ 0 and B ∈ G1 \\ {O} (checked above): sk·B ≠ O"
)]
pub fn sign_blinded(
    sk: &bls::SecretKey,
    index: usize,
    output: &BlindedOutput,
) -> Result<G1Affine, BlindSignError> {
    if !output.blinded.in_subgroup() {
        return Err(BlindSignError::NotInSubgroup { index });
    }
    Ok(sk
        .sign_point(&output.blinded)
        .expect("sk ≠ 0 and B ∈ G1 \\ {O}"))
}

/// The unblinded result: the key, σ and the secret.
fn unblind(
    pending: PendingIssue,
    keyset: &Keyset,
    answer: &G1Affine,
) -> Result<(OwnerKey, G1Affine, OwnerSecret), UnblindError> {
    if keyset.id != pending.keyset_id {
        return Err(UnblindError::WrongKeyset {
            expected: pending.keyset_id,
            got: keyset.id,
        });
    }
    let sigma = answer
        .mul(&pending.rho.invert())
        .map_err(|_| UnblindError::Degenerate)?;
    let key = pending.secret.public();
    let serial = Serial::derive(pending.kind, &keyset.id, &key);
    if !bls::verify(&keyset.public_key, &sigma, &serial.0, tags::H1_DST) {
        return Err(UnblindError::BadIssuerAnswer(keyset.id));
    }
    Ok((key, sigma, pending.secret))
}

/// Unblinds a coin and checks it with a pairing before the wallet stores it.
pub fn finish_coin(
    pending: PendingIssue,
    keyset: &Keyset,
    answer: &G1Affine,
) -> Result<OwnedCoin, UnblindError> {
    let (key, sigma, secret) = unblind(pending, keyset, answer)?;
    Ok(OwnedCoin {
        coin: Coin {
            keyset_id: keyset.id,
            coin_key: key,
            sigma,
            links: vec![],
        },
        secret,
    })
}

/// Unblinds an allowance token and checks it with a pairing.
pub fn finish_allowance(
    pending: PendingIssue,
    keyset: &Keyset,
    answer: &G1Affine,
) -> Result<OwnedAllowance, UnblindError> {
    let (key, sigma, secret) = unblind(pending, keyset, answer)?;
    Ok(OwnedAllowance {
        token: AllowanceToken {
            keyset_id: keyset.id,
            key,
            sigma,
        },
        secret,
    })
}

/// Splits `amount` into power-of-two denominations no larger than 2^`max_exp`, largest
/// first: the coins a withdrawal or swap output set is made of.
pub fn denominations(amount: u64, max_exp: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let top = 1u64 << max_exp;
    let mut rest = amount;
    while rest >= top {
        out.push(max_exp);
        rest -= top;
    }
    for exp in (0..max_exp).rev() {
        if rest & (1 << exp) != 0 {
            out.push(exp);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denominations_sum_to_the_amount() {
        assert_eq!(denominations(1000, 16), vec![9, 8, 7, 6, 5, 3]);
        assert_eq!(denominations(5, 1), vec![1, 1, 0]);
        assert!(denominations(0, 16).is_empty());
        for amount in [1u64, 7, 300, 65_536, 1_000_000] {
            let sum: u64 = denominations(amount, 16).iter().map(|e| 1u64 << e).sum();
            assert_eq!(sum, amount);
        }
    }
}
