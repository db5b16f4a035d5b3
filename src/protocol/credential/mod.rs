//! Allowance v2: receiver-bound, unlinkable allowance credentials (keyed-verification
//! anonymous credentials on Pallas, CMZ14's MAC_GGM with µCMZ/ARC-style per-day tags).
//!
//! * The issuer holds one credential key per (epoch, policy class) ([`CredentialSecret`]);
//!   its public parameters ([`CredentialKey`]) let wallets check what they are given.
//! * A registered wallet with address W = k·G receives, once per UTC day, a MAC on its
//!   secret k and the day ([`issuance`]): U = u·G, V = (x₀ + x₁·k + x₂·d)·U, computed from W
//!   alone, with a proof that the published key made it.
//! * When the wallet moves a received coin on, it attaches a [`presentation`]: a proof that
//!   it holds a MAC for the coin's receipt day on the same k that owns the coin's receiving
//!   key P (through the payer's commitment to the stealth tweak), and one tag
//!   T = (k + slot)⁻¹·H_d per allowance slot it uses. The issuer's spent set refuses a tag
//!   it has seen: each slot of the day's schedule is used once per wallet.
//!
//! `docs/protocol.md` §8.5 states the relations and argues binding, cap and anonymity.

pub mod issuance;
pub mod presentation;
pub(crate) mod sigma;

use std::sync::OnceLock;

use group::CurveAffine as _;
use group::{Curve, GroupEncoding};
use pasta_curves::arithmetic::CurveExt;
use pasta_curves::pallas;

pub use issuance::{Credential, CredentialIssue, CredentialKey, CredentialSecret};
pub use presentation::{Presentation, PresentationContext, PresentationError, SlotTag};

/// Domain of the v2 generators (pasta's `hash_to_curve` prefix).
const GENERATOR_DOMAIN: &str = "microcash-v2:allowance";

/// G: the SpendAuth basepoint, the base of every wallet key (W = k·G, P = (k + s)·G).
pub fn generator_g() -> pallas::Affine {
    static G: OnceLock<pallas::Affine> = OnceLock::new();
    *G.get_or_init(|| microcash_kernels::pallas::redpallas::spendauth_basepoint().to_affine())
}

/// H: the second generator (commitment blinding and the issuer's x₁, x₂ commitments), by
/// hash to curve, so nobody knows log_G H.
pub fn generator_h() -> pallas::Affine {
    static H: OnceLock<pallas::Affine> = OnceLock::new();
    *H.get_or_init(|| pallas::Point::hash_to_curve(GENERATOR_DOMAIN)(b"H").to_affine())
}

/// H_d: the tag base of one credential key and day, by hash to curve. Tags of different
/// days (or keys) are unrelated, so a day's unused slots are worth nothing on another day.
pub fn tag_base(key_id: &[u8; 32], day: u64) -> pallas::Affine {
    let msg = [b"tag".as_slice(), key_id, &day.to_le_bytes()].concat();
    pallas::Point::hash_to_curve(GENERATOR_DOMAIN)(&msg).to_affine()
}

/// A canonical, non-identity point from 32 bytes.
pub(crate) fn decode_point(bytes: &[u8; 32]) -> Option<pallas::Affine> {
    let p = Option::<pallas::Affine>::from(pallas::Affine::from_bytes(bytes))?;
    (!bool::from(p.is_identity()) && &p.to_bytes() == bytes).then_some(p)
}

#[cfg(test)]
mod tests;
