//! Presentations: what a wallet attaches when it moves on a coin it received, proving that
//! the receiving wallet holds the day's credential and using allowance slots of that day.
//!
//! Public inputs: the credential key, the receipt day d, the coin's receiving key P, the
//! payer's stealth commitment C_s (inside the payer's signed link), the binding of the link
//! or deposit the presentation is attached to, and the slots used. The prover (secret k,
//! credential (U, V), stealth opening (s, t)) draws a, z, r and sends
//!
//! ```text
//!   U' = a·U,  C_k = k·U' + z·H,  C_V = a·V + r·G,  Tⱼ = (k + slotⱼ)⁻¹·H_d
//! ```
//!
//! with a proof of knowledge of (k, z, r, s, t) such that
//!
//! ```text
//!   E1  Z = z·X₁ − r·G        where the issuer computes Z = x₀·U' + x₁·C_k + x₂·d·U' − C_V
//!   E2  C_k = k·U' + z·H
//!   E3  P = k·G + s·G
//!   E4  C_s = s·G + t·H
//!   E5ⱼ H_d − slotⱼ·Tⱼ = k·Tⱼ
//! ```
//!
//! E1–E2 are CMZ14's MAC_GGM showing for a hidden attribute k and the revealed day; E3–E4
//! bind the coin to the same k through the payer's commitment; E5 makes each tag the PRF
//! (Dodis–Yampolskiy) of k at the slot. Only E1 needs the issuer's secret.

use ff::{Field, PrimeField};
use group::{Curve, CurveAffine as _, GroupEncoding};
use merlin::Transcript;
use microcash_kernels::pallas::lincomb::Combination;
use pasta_curves::arithmetic::CurveAffine as _;
use pasta_curves::pallas;
use rand_core::CryptoRng;

use super::issuance::{Credential, CredentialKey, CredentialSecret};
use super::sigma::{self, Equation};
use super::{decode_point, generator_g, generator_h, tag_base};
use crate::protocol::encoding::{Decode, DecodeError, Encode, Reader, Writer};
use crate::protocol::keys::{OwnerKey, OwnerSecret};

/// Transcript label of a presentation.
const PRESENTATION_LABEL: &[u8] = b"microcash-v2 allowance presentation";

/// Most slots one presentation may use.
pub const SLOTS_PER_PRESENTATION_MAX: usize = 8;

/// Bytes of a presentation with `slots` slots: key id, U', C_k, C_V, four commitments, the
/// slot count, 66 bytes per slot and five responses.
pub const fn presentation_len(slots: usize) -> usize {
    32 + 3 * 32 + 4 * 32 + 1 + 66 * slots + 5 * 32
}

/// One used slot: its index in the class's schedule, its tag and the proof's commitment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotTag {
    /// Index in the class's slot schedule (its value is the schedule's).
    pub slot: u16,
    /// T = (k + slot)⁻¹·H_d, compressed: what the spent set records.
    pub tag: [u8; 32],
    /// Commitment of E5 for this slot.
    pub commitment: [u8; 32],
}

/// Points of a presentation decoded from decompression hints (a kind-2 record's y
/// coordinates), sparing the verifier square roots. Only an accelerator: a missing or
/// wrong hint leaves the point to be decompressed as usual, so verdicts never change.
#[derive(Clone, Debug, Default)]
pub struct PresentationHints {
    u: Option<pallas::Affine>,
    c_k: Option<pallas::Affine>,
    c_v: Option<pallas::Affine>,
    commitments: [Option<pallas::Affine>; 4],
    /// Per slot: the tag and the commitment.
    slots: Vec<(Option<pallas::Affine>, Option<pallas::Affine>)>,
}

/// A presentation (bytes as sent; points and scalars are checked when it is verified).
#[derive(Clone, Debug)]
pub struct Presentation {
    /// The credential key's id.
    pub key_id: [u8; 32],
    /// U' = a·U.
    pub u: [u8; 32],
    /// C_k = k·U' + z·H.
    pub c_k: [u8; 32],
    /// C_V = a·V + r·G.
    pub c_v: [u8; 32],
    /// Commitments of E1–E4.
    pub commitments: [[u8; 32]; 4],
    /// Slots used, with their tags (1 to 8, distinct).
    pub slots: Vec<SlotTag>,
    /// Responses for (k, z, r, s, t).
    pub responses: [[u8; 32]; 5],
    /// Points already decoded from hints (not part of the message: equality ignores it).
    pub hints: PresentationHints,
}

impl PartialEq for Presentation {
    fn eq(&self, o: &Self) -> bool {
        (
            self.key_id,
            self.u,
            self.c_k,
            self.c_v,
            self.commitments,
            &self.slots,
            self.responses,
        ) == (
            o.key_id,
            o.u,
            o.c_k,
            o.c_v,
            o.commitments,
            &o.slots,
            o.responses,
        )
    }
}
impl Eq for Presentation {}

/// The y coordinate of a compressed point, as a decompression hint (zeros when the bytes
/// are not a point: the reader then finds the hint wrong and decompresses).
fn y_hint(bytes: &[u8; 32]) -> Vec<u8> {
    decode_point(bytes)
        .and_then(|p| {
            Option::<pasta_curves::arithmetic::Coordinates<pallas::Affine>>::from(p.coordinates())
        })
        .map_or(vec![0u8; 32], |c| c.y().to_repr().to_vec())
}

/// Reads a 32-byte point field and its hint; the point when the hint checks out.
fn read_point(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<([u8; 32], Option<pallas::Affine>), DecodeError> {
    let bytes = r.array(what)?;
    let hinted = r.hint::<32>(what)?.and_then(|y| {
        crate::protocol::keys::OwnerKey::from_bytes_with_y(&bytes, &y)
            .ok()
            .map(|k| *k.affine())
    });
    Ok((bytes, hinted))
}

/// What a presentation is about, from the coin and the link or deposit that carries it.
#[derive(Clone, Copy, Debug)]
pub struct PresentationContext<'a> {
    /// UTC day of the receipt (the payer's link that paid the coin to P).
    pub day: u64,
    /// P: the one-time key the coin was paid to.
    pub receiving_key: &'a OwnerKey,
    /// C_s: the payer's commitment to P's stealth tweak, from that link.
    pub stealth_commitment: &'a [u8; 32],
    /// Digest of the link or deposit body the presentation is attached to.
    pub binding: &'a [u8; 32],
}

/// Why a presentation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresentationError {
    /// No slot, or more than [`SLOTS_PER_PRESENTATION_MAX`].
    #[error("slot count {0} outside 1..=8")]
    SlotCount(usize),
    /// A slot used twice in one presentation.
    #[error("slot {0} used twice")]
    DuplicateSlot(u16),
    /// The presentation names another key than the verifier's.
    #[error("presentation for another credential key")]
    WrongKey,
    /// A point that is not canonical, not on the curve, or the identity.
    #[error("{0} is not a valid point")]
    BadPoint(&'static str),
    /// A scalar that is not canonical.
    #[error("response is not a canonical scalar")]
    BadScalar,
    /// The proof does not verify.
    #[error("the proof does not verify")]
    BadProof,
    /// A prover-side failure: the credential is for another day or key, or the stealth
    /// opening does not open the commitment to P.
    #[error("cannot present: {0}")]
    CannotPresent(&'static str),
}

/// The stealth opening of a received coin: P = W + s·G and C_s = s·G + t·H.
#[derive(Clone, Copy)]
pub struct StealthOpening {
    /// s, the stealth tweak.
    pub s: pallas::Scalar,
    /// t, the commitment's blinding.
    pub t: pallas::Scalar,
}

fn transcript(
    key_id: &[u8; 32],
    ctx: &PresentationContext<'_>,
    u: &[u8; 32],
    c_k: &[u8; 32],
    c_v: &[u8; 32],
    slots: &[(u16, [u8; 32])],
) -> Transcript {
    let mut t = Transcript::new(PRESENTATION_LABEL);
    t.append_message(b"key", key_id);
    t.append_message(b"day", &ctx.day.to_le_bytes());
    t.append_message(b"P", &ctx.receiving_key.to_bytes());
    t.append_message(b"C_s", ctx.stealth_commitment);
    t.append_message(b"binding", ctx.binding);
    t.append_message(b"U", u);
    t.append_message(b"C_k", c_k);
    t.append_message(b"C_V", c_v);
    t.append_message(b"slots", &(slots.len() as u8).to_le_bytes());
    for (slot, tag) in slots {
        t.append_message(b"slot", &slot.to_le_bytes());
        t.append_message(b"T", tag);
    }
    t
}

/// Witness order: k, z, r, s, t.
#[allow(
    clippy::too_many_arguments,
    reason = "the statement's public points, each used once"
)]
fn equations(
    x1: pallas::Point,
    z_point: pallas::Point,
    u: pallas::Point,
    c_k: pallas::Point,
    p: pallas::Point,
    c_s: pallas::Point,
    h_d: pallas::Point,
    tags: &[(u16, pallas::Point)],
) -> Vec<Equation> {
    let (g, h) = (
        pallas::Point::from(generator_g()),
        pallas::Point::from(generator_h()),
    );
    let mut eqs = vec![
        Equation {
            lhs: z_point,
            terms: vec![(1, x1), (2, -g)],
        },
        Equation {
            lhs: c_k,
            terms: vec![(0, u), (1, h)],
        },
        Equation {
            lhs: p,
            terms: vec![(0, g), (3, g)],
        },
        Equation {
            lhs: c_s,
            terms: vec![(3, g), (4, h)],
        },
    ];
    for (slot, tag) in tags {
        eqs.push(Equation {
            lhs: h_d - *tag * pallas::Scalar::from(u64::from(*slot)),
            terms: vec![(0, *tag)],
        });
    }
    eqs
}

/// The payer's commitment to the stealth tweak: C_s = s·G + t·H.
pub fn stealth_commitment(opening: &StealthOpening) -> [u8; 32] {
    (generator_g() * opening.s + generator_h() * opening.t)
        .to_affine()
        .to_bytes()
}

impl Presentation {
    /// Makes a presentation: `wallet` is the receiving wallet's secret k (its address
    /// secret), `credential` its credential for `ctx.day` under `key`, `opening` the stealth
    /// opening of `ctx.receiving_key`, `slots` the distinct slots to use.
    pub fn create<R: CryptoRng + ?Sized>(
        key: &CredentialKey,
        credential: &Credential,
        wallet: &OwnerSecret,
        opening: &StealthOpening,
        ctx: &PresentationContext<'_>,
        slots: &[u16],
        rng: &mut R,
    ) -> Result<Presentation, PresentationError> {
        check_slots(slots.iter().copied())?;
        if credential.key_id != key.id || credential.day != ctx.day {
            return Err(PresentationError::CannotPresent(
                "the credential is for another key or day",
            ));
        }
        let k = wallet.scalar();
        let g = pallas::Point::from(generator_g());
        let h = pallas::Point::from(generator_h());
        let p = ctx.receiving_key.point();
        if g * (k + opening.s) != p {
            return Err(PresentationError::CannotPresent(
                "the receiving key is not this wallet's with this tweak",
            ));
        }
        if stealth_commitment(opening) != *ctx.stealth_commitment {
            return Err(PresentationError::CannotPresent(
                "the stealth commitment does not open to this tweak",
            ));
        }
        let u0 = decode_point(&credential.u).ok_or(PresentationError::BadPoint("U"))?;
        let v0 = decode_point(&credential.v).ok_or(PresentationError::BadPoint("V"))?;
        let c_s = decode_point(ctx.stealth_commitment).ok_or(PresentationError::BadPoint("C_s"))?;
        let a = nonzero_scalar(rng);
        let z = sigma::random_scalar(rng);
        let r = sigma::random_scalar(rng);
        let u = u0 * a;
        let c_k = u * k + h * z;
        let c_v = v0 * a + g * r;
        let h_d = pallas::Point::from(tag_base(&key.id, ctx.day));
        let mut tags = Vec::with_capacity(slots.len());
        for &slot in slots {
            let inv = Option::<pallas::Scalar>::from(
                (k + pallas::Scalar::from(u64::from(slot))).invert(),
            )
            .ok_or(PresentationError::CannotPresent("k + slot is zero"))?;
            tags.push((slot, h_d * inv));
        }
        let points = [u, c_k, c_v];
        let mut affine = [pallas::Affine::identity(); 3];
        pallas::Point::batch_normalize(&points, &mut affine);
        let [u_b, c_k_b, c_v_b] = affine.map(|p| p.to_bytes());
        let tag_bytes: Vec<(u16, [u8; 32])> = tags
            .iter()
            .map(|(s, t)| (*s, t.to_affine().to_bytes()))
            .collect();
        let mut t = transcript(&key.id, ctx, &u_b, &c_k_b, &c_v_b, &tag_bytes);
        let z_point = pallas::Point::from(key.x1) * z - g * r;
        let eqs = equations(key.x1.into(), z_point, u, c_k, p, c_s.into(), h_d, &tags);
        let (commitments, responses) =
            sigma::prove(&mut t, &eqs, &[k, z, r, opening.s, opening.t], rng);
        let mut fixed = [[0u8; 32]; 4];
        for (f, c) in fixed.iter_mut().zip(&commitments) {
            *f = *c;
        }
        let mut resp = [[0u8; 32]; 5];
        for (o, s) in resp.iter_mut().zip(&responses) {
            *o = s.to_repr();
        }
        Ok(Presentation {
            key_id: key.id,
            u: u_b,
            c_k: c_k_b,
            c_v: c_v_b,
            commitments: fixed,
            slots: tag_bytes
                .iter()
                .zip(commitments.get(4..).unwrap_or_default())
                .map(|((slot, tag), c)| SlotTag {
                    slot: *slot,
                    tag: *tag,
                    commitment: *c,
                })
                .collect(),
            responses: resp,
            hints: PresentationHints::default(),
        })
    }

    /// The slots' tags, as the spent set records them.
    pub fn tags(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.slots.iter().map(|s| &s.tag)
    }

    /// Decodes every point and scalar and derives the challenge; what single and batched
    /// verification share.
    pub fn prepare(
        &self,
        key: &CredentialKey,
        ctx: &PresentationContext<'_>,
    ) -> Result<Prepared, PresentationError> {
        check_slots(self.slots.iter().map(|s| s.slot))?;
        if self.key_id != key.id {
            return Err(PresentationError::WrongKey);
        }
        let point = |b: &[u8; 32], hint: Option<pallas::Affine>, what| match hint {
            Some(p) => Ok(p),
            None => decode_point(b).ok_or(PresentationError::BadPoint(what)),
        };
        let h = &self.hints;
        let u = point(&self.u, h.u, "U'")?;
        let c_k = point(&self.c_k, h.c_k, "C_k")?;
        let c_v = point(&self.c_v, h.c_v, "C_V")?;
        let c_s = point(ctx.stealth_commitment, None, "C_s")?;
        let mut commitments = [pallas::Affine::identity(); 4];
        for ((o, c), hint) in commitments
            .iter_mut()
            .zip(&self.commitments)
            .zip(h.commitments)
        {
            *o = point(c, hint, "commitment")?;
        }
        let mut tags = Vec::with_capacity(self.slots.len());
        for (i, s) in self.slots.iter().enumerate() {
            let (tag_hint, commitment_hint) = h.slots.get(i).copied().unwrap_or_default();
            tags.push((
                s.slot,
                point(&s.tag, tag_hint, "tag")?,
                point(&s.commitment, commitment_hint, "commitment")?,
            ));
        }
        let mut responses = [pallas::Scalar::ZERO; 5];
        for (o, b) in responses.iter_mut().zip(&self.responses) {
            *o = sigma::scalar_from_bytes(b).ok_or(PresentationError::BadScalar)?;
        }
        let tag_bytes: Vec<(u16, [u8; 32])> = self.slots.iter().map(|s| (s.slot, s.tag)).collect();
        let mut t = transcript(&key.id, ctx, &self.u, &self.c_k, &self.c_v, &tag_bytes);
        let mut all_commitments: Vec<[u8; 32]> = self.commitments.to_vec();
        all_commitments.extend(self.slots.iter().map(|s| s.commitment));
        sigma::absorb_commitments(&mut t, &all_commitments);
        let c = sigma::challenge(&mut t);
        Ok(Prepared {
            day: ctx.day,
            p: *ctx.receiving_key.affine(),
            u,
            c_k,
            c_v,
            c_s,
            commitments,
            tags,
            responses,
            c,
        })
    }

    /// Single verification with the issuer's secret (the reference verifier).
    pub fn verify(
        &self,
        key: &CredentialKey,
        secret: &CredentialSecret,
        ctx: &PresentationContext<'_>,
    ) -> Result<(), PresentationError> {
        let prepared = self.prepare(key, ctx)?;
        if prepared.holds(key, Some(secret)) {
            Ok(())
        } else {
            Err(PresentationError::BadProof)
        }
    }

    /// What anyone can check without the issuer's secret: E2–E5 (the binding to P and the
    /// tags' form). A payee runs it on the presentations of a coin it receives; only the
    /// issuer can check E1, the MAC.
    pub fn verify_public(
        &self,
        key: &CredentialKey,
        ctx: &PresentationContext<'_>,
    ) -> Result<(), PresentationError> {
        let prepared = self.prepare(key, ctx)?;
        if prepared.holds(key, None) {
            Ok(())
        } else {
            Err(PresentationError::BadProof)
        }
    }
}

fn nonzero_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> pallas::Scalar {
    loop {
        let s = sigma::random_scalar(rng);
        if !bool::from(s.is_zero()) {
            return s;
        }
    }
}

fn check_slots(slots: impl Iterator<Item = u16> + Clone) -> Result<(), PresentationError> {
    let n = slots.clone().count();
    if n == 0 || n > SLOTS_PER_PRESENTATION_MAX {
        return Err(PresentationError::SlotCount(n));
    }
    let mut seen = Vec::with_capacity(n);
    for s in slots {
        if seen.contains(&s) {
            return Err(PresentationError::DuplicateSlot(s));
        }
        seen.push(s);
    }
    Ok(())
}

/// A decoded presentation with its challenge.
#[derive(Clone, Debug)]
pub struct Prepared {
    day: u64,
    p: pallas::Affine,
    u: pallas::Affine,
    c_k: pallas::Affine,
    c_v: pallas::Affine,
    c_s: pallas::Affine,
    /// Commitments of E1–E4.
    commitments: [pallas::Affine; 4],
    /// Per slot: the slot, its tag and E5's commitment.
    tags: Vec<(u16, pallas::Affine, pallas::Affine)>,
    /// k, z, r, s, t.
    responses: [pallas::Scalar; 5],
    c: pallas::Scalar,
}

/// Bases every presentation of a batch shares: G, H, and per key X₁ and per (key, day) H_d.
/// The verifier registers them once and presentations refer to them by index.
#[derive(Default)]
pub struct SharedBases {
    points: Vec<pallas::Affine>,
    index: std::collections::HashMap<[u8; 32], usize>,
}

impl SharedBases {
    /// The index of `point`, registering it on first use.
    pub fn index(&mut self, point: pallas::Affine) -> usize {
        let n = self.points.len();
        let bytes = point.to_bytes();
        *self.index.entry(bytes).or_insert_with(|| {
            self.points.push(point);
            n
        })
    }

    /// The registered bases, in index order.
    pub fn points(&self) -> &[pallas::Affine] {
        &self.points
    }
}

impl Prepared {
    /// The slots used, in presentation order.
    pub fn slots(&self) -> impl Iterator<Item = u16> + '_ {
        self.tags.iter().map(|(slot, _, _)| *slot)
    }

    fn holds(&self, key: &CredentialKey, secret: Option<&CredentialSecret>) -> bool {
        let h_d = tag_base(&key.id, self.day);
        let [_, s_z, s_r, _, _] = self.responses;
        let [a1, _, _, _] = self.commitments;
        let z_point = match secret {
            Some(secret) => {
                let (x0, x1, x2) = secret.mac_scalars();
                let d = pallas::Scalar::from(self.day);
                self.u * (x0 + x2 * d) + self.c_k * x1 - self.c_v
            }
            // Without the secret E1 cannot be checked: Z is solved from E1 itself, so E1
            // holds by construction and the others are checked as they are.
            None => {
                let g = pallas::Point::from(generator_g());
                match Option::<pallas::Scalar>::from(self.c.invert()) {
                    Some(ci) => (pallas::Point::from(key.x1) * s_z - g * s_r - a1) * ci,
                    None => return false,
                }
            }
        };
        let tags: Vec<(u16, pallas::Point)> = self
            .tags
            .iter()
            .map(|(s, t, _)| (*s, (*t).into()))
            .collect();
        let eqs = equations(
            key.x1.into(),
            z_point,
            self.u.into(),
            self.c_k.into(),
            self.p.into(),
            self.c_s.into(),
            h_d.into(),
            &tags,
        );
        let commitments: Vec<pallas::Point> = self
            .commitments
            .iter()
            .chain(self.tags.iter().map(|(_, _, a)| a))
            .map(|a| pallas::Point::from(*a))
            .collect();
        sigma::holds(&eqs, &commitments, &self.responses, &self.c)
    }

    /// This presentation's equations as one linear combination for a batch, each equation
    /// scaled by its own weight from `weights` (4 + slots of them, verifier-chosen random
    /// scalars). `h_d` is the tag base of (key, day), which the caller caches.
    pub fn combination(
        &self,
        key: &CredentialKey,
        secret: &CredentialSecret,
        h_d: pallas::Affine,
        weights: &[pallas::Scalar],
        shared: &mut SharedBases,
    ) -> Option<Combination> {
        let [w1, w2, w3, w4, slot_weights @ ..] = weights else {
            return None;
        };
        if slot_weights.len() != self.tags.len() {
            return None;
        }
        let (x0, x1, x2) = secret.mac_scalars();
        let [s_k, s_z, s_r, s_s, s_t] = self.responses;
        let [a1, a2, a3, a4] = self.commitments;
        let c = self.c;
        let d = pallas::Scalar::from(self.day);
        let (g, h, x1p, hd) = (
            shared.index(generator_g()),
            shared.index(generator_h()),
            shared.index(key.x1),
            shared.index(h_d),
        );
        let mut own = vec![
            // U': −ρ₁·c·(x₀ + x₂·d) (E1) + ρ₂·s_k (E2)
            (self.u, *w2 * s_k - *w1 * c * (x0 + x2 * d)),
            // C_k: −ρ₁·c·x₁ (E1) − ρ₂·c (E2)
            (self.c_k, -(*w1 * c * x1 + *w2 * c)),
            // C_V: +ρ₁·c (E1)
            (self.c_v, *w1 * c),
            (a1, -*w1),
            (a2, -*w2),
            (a3, -*w3),
            (a4, -*w4),
            (self.p, -*w3 * c),
            (self.c_s, -*w4 * c),
        ];
        let mut hd_scalar = pallas::Scalar::ZERO;
        for ((slot, tag, a), w) in self.tags.iter().zip(slot_weights) {
            own.push((
                *tag,
                *w * (s_k + c * pallas::Scalar::from(u64::from(*slot))),
            ));
            own.push((*a, -*w));
            hd_scalar -= *w * c;
        }
        Some(Combination {
            own,
            shared: vec![
                (x1p, *w1 * s_z),
                (g, -*w1 * s_r + *w3 * (s_k + s_s) + *w4 * s_s),
                (h, *w2 * s_z + *w4 * s_t),
                (hd, hd_scalar),
            ],
        })
    }
}

impl Encode for Presentation {
    fn encode(&self, w: &mut Writer) {
        w.bytes(&self.key_id);
        for p in [&self.u, &self.c_k, &self.c_v]
            .into_iter()
            .chain(&self.commitments)
        {
            w.bytes(p);
            w.hint(|| y_hint(p));
        }
        w.count_u8(self.slots.len());
        for s in &self.slots {
            w.u16(s.slot).bytes(&s.tag);
            w.hint(|| y_hint(&s.tag));
            w.bytes(&s.commitment);
            w.hint(|| y_hint(&s.commitment));
        }
        for r in &self.responses {
            w.bytes(r);
        }
    }
}

impl Decode for Presentation {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let key_id = r.array("presentation key id")?;
        let mut hints = PresentationHints::default();
        let (u, hu) = read_point(r, "presentation U")?;
        let (c_k, hk) = read_point(r, "presentation C_k")?;
        let (c_v, hv) = read_point(r, "presentation C_V")?;
        (hints.u, hints.c_k, hints.c_v) = (hu, hk, hv);
        let mut commitments = [[0u8; 32]; 4];
        for (c, h) in commitments.iter_mut().zip(hints.commitments.iter_mut()) {
            (*c, *h) = read_point(r, "presentation commitment")?;
        }
        let n = r.count_u8("presentation slots", SLOTS_PER_PRESENTATION_MAX)?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            let slot = r.u16("slot")?;
            let (tag, ht) = read_point(r, "slot tag")?;
            let (commitment, hc) = read_point(r, "slot commitment")?;
            hints.slots.push((ht, hc));
            slots.push(SlotTag {
                slot,
                tag,
                commitment,
            });
        }
        let mut responses = [[0u8; 32]; 5];
        for s in &mut responses {
            *s = r.array("presentation response")?;
        }
        Ok(Presentation {
            key_id,
            u,
            c_k,
            c_v,
            commitments,
            slots,
            responses,
            hints,
        })
    }
}

/// Verifies presentations under one key as a batch: decodes each, combines every equation
/// with fresh random weights from `rng`, checks all with one multi-scalar multiplication
/// and bisects on failure. Returns, in order, the positions refused and why. Verdicts
/// equal [`Presentation::verify`]'s for every item (up to the 2⁻¹²⁸ batch error).
pub fn verify_batch<R: CryptoRng + ?Sized>(
    key: &CredentialKey,
    secret: &CredentialSecret,
    items: &[(&Presentation, PresentationContext<'_>)],
    rng: &mut R,
) -> Vec<(usize, PresentationError)> {
    let mut shared = SharedBases::default();
    let mut tag_bases: std::collections::HashMap<u64, pallas::Affine> = Default::default();
    let mut combinations = Vec::with_capacity(items.len());
    let mut positions = Vec::with_capacity(items.len());
    let mut refused = Vec::new();
    for (i, (p, ctx)) in items.iter().enumerate() {
        let prepared = match p.prepare(key, ctx) {
            Ok(prepared) => prepared,
            Err(e) => {
                refused.push((i, e));
                continue;
            }
        };
        let h_d = *tag_bases
            .entry(ctx.day)
            .or_insert_with(|| tag_base(&key.id, ctx.day));
        let weights: Vec<pallas::Scalar> = (0..4 + p.slots.len())
            .map(|_| {
                let mut w = [0u8; 32];
                rng.fill_bytes(&mut w[..16]);
                Option::<pallas::Scalar>::from(pallas::Scalar::from_repr(w))
                    .unwrap_or(pallas::Scalar::ONE)
            })
            .collect();
        match prepared.combination(key, secret, h_d, &weights, &mut shared) {
            Some(c) => {
                combinations.push(c);
                positions.push(i);
            }
            None => refused.push((i, PresentationError::BadProof)),
        }
    }
    for bad in microcash_kernels::pallas::lincomb::verify(&combinations, shared.points()) {
        if let Some(&i) = positions.get(bad) {
            refused.push((i, PresentationError::BadProof));
        }
    }
    refused.sort_unstable_by_key(|(i, _)| *i);
    refused
}
