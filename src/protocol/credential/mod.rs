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
pub mod request;
pub(crate) mod sigma;

use std::sync::OnceLock;

use group::CurveAffine as _;
use group::{Curve, GroupEncoding};
use pasta_curves::arithmetic::CurveExt;
use pasta_curves::pallas;

pub use issuance::{Credential, CredentialIssue, CredentialKey, CredentialSecret};
pub use presentation::{
    Presentation, PresentationContext, PresentationError, SlotTag, StealthOpening,
};
pub use request::{CredentialRequest, Registration};

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

/// The credential keys a verifier knows, by id: public keys (a wallet, a payee) and, at
/// the issuer, their secrets (only the issuer can check a presentation's MAC).
#[derive(Default)]
pub struct CredentialKeys {
    keys: std::collections::HashMap<[u8; 32], (CredentialKey, Option<CredentialSecret>)>,
}

impl core::fmt::Debug for CredentialKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "CredentialKeys({} keys, secrets elided)",
            self.keys.len()
        )
    }
}

impl CredentialKeys {
    /// Adds a public key.
    pub fn insert_public(&mut self, key: CredentialKey) {
        self.keys.insert(key.id, (key, None));
    }

    /// Adds a key with its secret.
    pub fn insert_secret(&mut self, key: CredentialKey, secret: CredentialSecret) {
        self.keys.insert(key.id, (key, Some(secret)));
    }

    /// The key with this id, and its secret where known.
    pub fn get(&self, id: &[u8; 32]) -> Option<(&CredentialKey, Option<&CredentialSecret>)> {
        self.keys.get(id).map(|(k, s)| (k, s.as_ref()))
    }

    /// The key of `class` for `epoch`.
    pub fn for_class(&self, epoch: u32, class: &str) -> Option<&CredentialKey> {
        self.keys
            .values()
            .map(|(k, _)| k)
            .find(|k| k.epoch == epoch && k.class == class)
    }

    /// Every key.
    pub fn iter(&self) -> impl Iterator<Item = &CredentialKey> {
        self.keys.values().map(|(k, _)| k)
    }
}

/// A canonical, non-identity point from 32 bytes.
pub(crate) fn decode_point(bytes: &[u8; 32]) -> Option<pallas::Affine> {
    let p = Option::<pallas::Affine>::from(pallas::Affine::from_bytes(bytes))?;
    (!bool::from(p.is_identity()) && &p.to_bytes() == bytes).then_some(p)
}

#[cfg(test)]
mod tests;
