//! Credential keys and the daily credential.
//!
//! Issuer secret (x₀, x̃₀, x₁, x₂); public parameters C_x₀ = x₀·G + x̃₀·H, X₁ = x₁·H,
//! X₂ = x₂·H. The credential of wallet W = k·G for day d is
//!
//! ```text
//!   u = H[mc2/cred-u](secret ‖ key id ‖ W ‖ d),  U = u·G,
//!   V = (x₀ + x₂·d)·U + x₁·(u·W) = (x₀ + x₁·k + x₂·d)·U
//! ```
//!
//! computed from W alone (the issuer never learns k), and deterministic: a repeated request
//! gets the same credential. The issuer proves knowledge of (x₀, x̃₀, x₁, x₂) with
//! C_x₀ = x₀·G + x̃₀·H, X₁ = x₁·H, X₂ = x₂·H and V = x₀·U + x₁·M + x₂·(d·U), where the
//! wallet computes M = k·U itself. Without that proof an issuer could MAC each wallet under
//! its own x₀ and recognise the wallet in every presentation.

use ff::{Field, PrimeField};
use group::{Curve, GroupEncoding};
use merlin::Transcript;
use pasta_curves::pallas;
use rand_core::CryptoRng;

use super::sigma::{self, Equation};
use super::{decode_point, generator_g, generator_h};
use crate::protocol::keys::{hash_to_scalar, OwnerKey, OwnerSecret};
use crate::protocol::tags;

/// Transcript label of the issuance proof.
const ISSUANCE_LABEL: &[u8] = b"microcash-v2 credential issuance";

/// The issuer's secret of one credential key. Overwritten on drop.
pub struct CredentialSecret {
    x0: pallas::Scalar,
    x0_blind: pallas::Scalar,
    x1: pallas::Scalar,
    x2: pallas::Scalar,
}

impl Drop for CredentialSecret {
    fn drop(&mut self) {
        for s in [&mut self.x0, &mut self.x0_blind, &mut self.x1, &mut self.x2] {
            *s = pallas::Scalar::ZERO;
        }
    }
}

impl core::fmt::Debug for CredentialSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CredentialSecret(..)")
    }
}

impl CredentialSecret {
    /// A fresh random key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> CredentialSecret {
        CredentialSecret {
            x0: sigma::random_scalar(rng),
            x0_blind: sigma::random_scalar(rng),
            x1: sigma::random_scalar(rng),
            x2: sigma::random_scalar(rng),
        }
    }

    /// The 128-byte secret (x₀ ‖ x̃₀ ‖ x₁ ‖ x₂, canonical little-endian scalars), for the
    /// issuer's 0600 secrets file only.
    pub fn to_bytes(&self) -> [u8; 128] {
        let mut out = [0u8; 128];
        for (chunk, s) in out
            .chunks_exact_mut(32)
            .zip([self.x0, self.x0_blind, self.x1, self.x2])
        {
            chunk.copy_from_slice(&s.to_repr());
        }
        out
    }

    /// Parses [`CredentialSecret::to_bytes`] (`None` for a non-canonical scalar).
    pub fn from_bytes(bytes: &[u8; 128]) -> Option<CredentialSecret> {
        let mut s = [pallas::Scalar::ZERO; 4];
        for (o, chunk) in s.iter_mut().zip(bytes.chunks_exact(32)) {
            let mut b = [0u8; 32];
            b.copy_from_slice(chunk);
            *o = sigma::scalar_from_bytes(&b)?;
        }
        let [x0, x0_blind, x1, x2] = s;
        Some(CredentialSecret {
            x0,
            x0_blind,
            x1,
            x2,
        })
    }

    /// The public parameters (C_x₀, X₁, X₂).
    pub fn params(&self) -> [[u8; 32]; 3] {
        let (g, h) = (generator_g(), generator_h());
        [
            (g * self.x0 + h * self.x0_blind).to_affine().to_bytes(),
            (h * self.x1).to_affine().to_bytes(),
            (h * self.x2).to_affine().to_bytes(),
        ]
    }

    /// (x₀, x₁, x₂): what the verifier needs.
    pub(crate) fn mac_scalars(&self) -> (pallas::Scalar, pallas::Scalar, pallas::Scalar) {
        (self.x0, self.x1, self.x2)
    }

    /// The day-`day` credential of the wallet with address `address`, with the proof that
    /// `key`'s secret made it.
    pub fn issue<R: CryptoRng + ?Sized>(
        &self,
        key: &CredentialKey,
        address: &OwnerKey,
        day: u64,
        rng: &mut R,
    ) -> CredentialIssue {
        let g = generator_g();
        let u = hash_to_scalar(
            tags::CREDENTIAL_U,
            &[
                &self.x0.to_repr(),
                &self.x1.to_repr(),
                &key.id,
                &address.to_bytes(),
                &day.to_le_bytes(),
            ],
        );
        // u = 0 has probability 2⁻²⁵⁴; it would give the identity U, which wallets refuse.
        let d = pallas::Scalar::from(day);
        let big_u = g * u;
        let m = address.point() * u;
        let v = big_u * (self.x0 + self.x2 * d) + m * self.x1;
        let (u_bytes, v_bytes) = (big_u.to_affine().to_bytes(), v.to_affine().to_bytes());
        let mut t = issuance_transcript(key, address, day, &u_bytes, &v_bytes);
        let equations = issuance_equations(key, big_u, m, v, d);
        let (commitments, responses) = sigma::prove(
            &mut t,
            &equations,
            &[self.x0, self.x0_blind, self.x1, self.x2],
            rng,
        );
        CredentialIssue {
            u: u_bytes,
            v: v_bytes,
            commitments: to_array(&commitments),
            responses: to_array(&responses.iter().map(|s| s.to_repr()).collect::<Vec<_>>()),
        }
    }
}

fn to_array<const N: usize>(v: &[[u8; 32]]) -> [[u8; 32]; N] {
    let mut out = [[0u8; 32]; N];
    for (o, x) in out.iter_mut().zip(v) {
        *o = *x;
    }
    out
}

fn issuance_transcript(
    key: &CredentialKey,
    address: &OwnerKey,
    day: u64,
    u: &[u8; 32],
    v: &[u8; 32],
) -> Transcript {
    let mut t = Transcript::new(ISSUANCE_LABEL);
    t.append_message(b"key", &key.id);
    t.append_message(b"address", &address.to_bytes());
    t.append_message(b"day", &day.to_le_bytes());
    t.append_message(b"U", u);
    t.append_message(b"V", v);
    t
}

/// Witnesses (x₀, x̃₀, x₁, x₂).
fn issuance_equations(
    key: &CredentialKey,
    u: pallas::Point,
    m: pallas::Point,
    v: pallas::Point,
    d: pallas::Scalar,
) -> Vec<Equation> {
    let (g, h) = (
        pallas::Point::from(generator_g()),
        pallas::Point::from(generator_h()),
    );
    vec![
        Equation {
            lhs: key.cx0.into(),
            terms: vec![(0, g), (1, h)],
        },
        Equation {
            lhs: key.x1.into(),
            terms: vec![(2, h)],
        },
        Equation {
            lhs: key.x2.into(),
            terms: vec![(3, h)],
        },
        Equation {
            lhs: v,
            terms: vec![(0, u), (2, m), (3, u * d)],
        },
    ]
}

/// The public side of a credential key: its epoch and class, the parameters, and the id
/// that names it in presentations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialKey {
    /// Epoch whose windows the key follows (tags go to this epoch's spent-set partition).
    pub epoch: u32,
    /// Policy class the key serves.
    pub class: String,
    /// Compressed (C_x₀, X₁, X₂).
    pub params: [[u8; 32]; 3],
    /// `H[mc2/cred-key](epoch ‖ class ‖ params)`.
    pub id: [u8; 32],
    pub(crate) cx0: pallas::Affine,
    pub(crate) x1: pallas::Affine,
    pub(crate) x2: pallas::Affine,
}

/// Why credential material was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A point that is not canonical, not on the curve, or the identity.
    #[error("{0} is not a valid point")]
    BadPoint(&'static str),
    /// A scalar that is not canonical.
    #[error("{0} is not a canonical scalar")]
    BadScalar(&'static str),
    /// The issuer's proof does not show that the published key made the credential.
    #[error("the issuer's proof does not verify for this key")]
    BadIssuanceProof,
    /// A class name outside 1–32 bytes.
    #[error("bad class name")]
    BadClass,
}

impl CredentialKey {
    /// The key with these parameters (refused if a parameter is not a valid point).
    pub fn new(epoch: u32, class: &str, params: [[u8; 32]; 3]) -> Result<Self, CredentialError> {
        if class.is_empty() || class.len() > 32 {
            return Err(CredentialError::BadClass);
        }
        let cx0 = decode_point(&params[0]).ok_or(CredentialError::BadPoint("C_x0"))?;
        let x1 = decode_point(&params[1]).ok_or(CredentialError::BadPoint("X1"))?;
        let x2 = decode_point(&params[2]).ok_or(CredentialError::BadPoint("X2"))?;
        let id = tags::blake2b(
            tags::CREDENTIAL_KEY_ID,
            &[
                &epoch.to_le_bytes(),
                &[class.len() as u8],
                class.as_bytes(),
                &params[0],
                &params[1],
                &params[2],
            ],
        );
        Ok(CredentialKey {
            epoch,
            class: class.to_string(),
            params,
            id,
            cx0,
            x1,
            x2,
        })
    }

    /// The public key of `secret`.
    pub fn of(secret: &CredentialSecret, epoch: u32, class: &str) -> Result<Self, CredentialError> {
        Self::new(epoch, class, secret.params())
    }
}

/// The issuer's answer to a credential request: (U, V) and the issuance proof (four
/// commitments, four responses). 320 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialIssue {
    /// U, compressed.
    pub u: [u8; 32],
    /// V, compressed.
    pub v: [u8; 32],
    /// Commitments of the issuance proof.
    pub commitments: [[u8; 32]; 4],
    /// Responses of the issuance proof.
    pub responses: [[u8; 32]; 4],
}

impl CredentialIssue {
    /// Wallet side: checks the issuer's proof for this wallet and day, and keeps the
    /// credential.
    pub fn open(
        &self,
        key: &CredentialKey,
        wallet: &OwnerSecret,
        day: u64,
    ) -> Result<Credential, CredentialError> {
        let u = decode_point(&self.u).ok_or(CredentialError::BadPoint("U"))?;
        let v = decode_point(&self.v).ok_or(CredentialError::BadPoint("V"))?;
        let mut commitments = Vec::with_capacity(4);
        for a in &self.commitments {
            // A commitment may be the identity only with negligible probability; refusing
            // it keeps one decoding rule for every point.
            commitments.push(pallas::Point::from(
                decode_point(a).ok_or(CredentialError::BadPoint("issuance commitment"))?,
            ));
        }
        let mut responses = Vec::with_capacity(4);
        for s in &self.responses {
            responses.push(
                sigma::scalar_from_bytes(s)
                    .ok_or(CredentialError::BadScalar("issuance response"))?,
            );
        }
        let address = wallet.public();
        let mut t = issuance_transcript(key, &address, day, &self.u, &self.v);
        sigma::absorb_commitments(&mut t, &self.commitments);
        let c = sigma::challenge(&mut t);
        let u_point = pallas::Point::from(u);
        let m = u_point * wallet.scalar();
        let equations = issuance_equations(key, u_point, m, v.into(), pallas::Scalar::from(day));
        if !sigma::holds(&equations, &commitments, &responses, &c) {
            return Err(CredentialError::BadIssuanceProof);
        }
        Ok(Credential {
            key_id: key.id,
            day,
            u: self.u,
            v: self.v,
        })
    }
}

impl crate::protocol::encoding::Encode for CredentialIssue {
    fn encode(&self, w: &mut crate::protocol::encoding::Writer) {
        w.bytes(&self.u).bytes(&self.v);
        for c in &self.commitments {
            w.bytes(c);
        }
        for r in &self.responses {
            w.bytes(r);
        }
    }
}

impl crate::protocol::encoding::Decode for CredentialIssue {
    fn decode(
        r: &mut crate::protocol::encoding::Reader<'_>,
    ) -> Result<Self, crate::protocol::encoding::DecodeError> {
        let u = r.array("U")?;
        let v = r.array("V")?;
        let mut commitments = [[0u8; 32]; 4];
        for c in &mut commitments {
            *c = r.array("issuance commitment")?;
        }
        let mut responses = [[0u8; 32]; 4];
        for s in &mut responses {
            *s = r.array("issuance response")?;
        }
        Ok(CredentialIssue {
            u,
            v,
            commitments,
            responses,
        })
    }
}

/// A wallet's credential for one day under one key: the MAC (U, V) on (k, day).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The credential key's id.
    pub key_id: [u8; 32],
    /// The UTC day it is for.
    pub day: u64,
    /// U, compressed.
    pub u: [u8; 32],
    /// V, compressed.
    pub v: [u8; 32],
}
