//! Batched RedPallas (Orchard SpendAuth) verification.
//!
//! A signature (R, s) by key A on message m is valid when s·B = R + c·A with
//! c = H*(R ‖ A ‖ m) (BLAKE2b-512, personalisation `Zcash_RedPallasH`, reduced mod q) and B
//! the SpendAuth basepoint. A batch checks, with 128-bit random weights zᵢ,
//!
//! ```text
//!   [−Σ zᵢ·sᵢ]·B + Σ zᵢ·Rᵢ + Σ (zᵢ·cᵢ)·Aᵢ = O
//! ```
//!
//! as three multi-scalar multiplications (the B term is one scalar multiplication). Pallas
//! has cofactor 1, so there is no small-subgroup term to clear. Items whose encodings do not
//! decode (R or A not a point, s not canonical) are invalid before any batching, exactly as
//! in `reddsa`'s own verifier — a property test checks the two agree.

#![allow(
    clippy::indexing_slicing,
    reason = "subsets index the batch's own items and weights, built together with them"
)]

use ff::{FromUniformBytes, PrimeField};
use group::{Group, GroupEncoding};
use pasta_curves::pallas;
use rayon::prelude::*;

use super::msm::vartime_msm;
use crate::weights::{Weight, WEIGHT_BITS};

/// BLAKE2b personalisation of RedPallas' H*.
const H_STAR_PERSONAL: &[u8; 16] = b"Zcash_RedPallasH";

/// The Orchard SpendAuth basepoint: `hash_to_curve("z.cash:Orchard")(b"G")`.
pub fn spendauth_basepoint() -> pallas::Point {
    static B: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let bytes = B.get_or_init(|| {
        use pasta_curves::arithmetic::CurveExt;
        pallas::Point::hash_to_curve("z.cash:Orchard")(b"G").to_bytes()
    });
    pallas::Point::from_bytes(bytes).expect("a valid encoding, made above")
}

/// A signature ready for batching: decoded points, canonical s, challenge c.
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    a: pallas::Affine,
    r: pallas::Affine,
    s: pallas::Scalar,
    c: pallas::Scalar,
}

/// RedPallas' H*: BLAKE2b-512 of the concatenated parts, personalisation
/// `Zcash_RedPallasH`, reduced mod q.
pub(crate) fn h_star(parts: &[&[u8]]) -> pallas::Scalar {
    let mut state = blake2b_simd::Params::new()
        .hash_length(64)
        .personal(H_STAR_PERSONAL)
        .to_state();
    for part in parts {
        state.update(part);
    }
    let mut wide = [0u8; 64];
    wide.copy_from_slice(state.finalize().as_bytes());
    pallas::Scalar::from_uniform_bytes(&wide)
}

/// RedPallas' challenge c = H*(R ‖ A ‖ m).
pub fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> pallas::Scalar {
    h_star(&[r, a, msg])
}

impl Prepared {
    /// Decodes key A and signature (R ‖ s) for message `msg`. `None` means the signature
    /// is invalid on its encoding alone.
    pub fn new(a: &[u8; 32], sig: &[u8; 64], msg: &[u8]) -> Option<Prepared> {
        let a_point = Option::<pallas::Affine>::from(pallas::Affine::from_bytes(a))?;
        Self::with_key(a_point, a, sig, None, msg)
    }

    /// As [`Prepared::new`] for a key already decoded (and validated) by the caller, and
    /// optionally R too (it must be the point `sig[..32]` encodes), saving square roots.
    pub fn with_key(
        a_point: pallas::Affine,
        a: &[u8; 32],
        sig: &[u8; 64],
        r: Option<pallas::Affine>,
        msg: &[u8],
    ) -> Option<Prepared> {
        let (mut r_bytes, mut s_bytes) = ([0u8; 32], [0u8; 32]);
        r_bytes.copy_from_slice(&sig[..32]);
        s_bytes.copy_from_slice(&sig[32..]);
        let r = match r {
            Some(r) => {
                debug_assert_eq!(r.to_bytes(), r_bytes, "R hint must match the signature");
                r
            }
            None => Option::<pallas::Affine>::from(pallas::Affine::from_bytes(&r_bytes))?,
        };
        let s = Option::<pallas::Scalar>::from(pallas::Scalar::from_repr(s_bytes))?;
        Some(Prepared {
            a: a_point,
            r,
            s,
            c: challenge(&r_bytes, a, msg),
        })
    }

    /// Single verification: s·B − c·A − R = O.
    pub fn verify_single(&self) -> bool {
        bool::from((spendauth_basepoint() * self.s - self.a * self.c - self.r).is_identity())
    }
}

/// A 128-bit batch weight as a scalar.
pub fn weight_scalar(w: &Weight) -> pallas::Scalar {
    let mut full = [0u8; 32];
    full[..16].copy_from_slice(w);
    pallas::Scalar::from_repr(full).expect("128-bit values are canonical")
}

/// Checks the batch equation over the items at `subset`.
pub fn verify_subset(items: &[Prepared], weights: &[Weight], subset: &[usize]) -> bool {
    verify_subset_with(items, weights, subset, &[], &[], &[])
}

/// [`verify_subset`] with further items' linear combinations (each already weighted by its
/// own verifier-chosen randomness, as `lincomb` expects) folded into the same multi-scalar
/// multiplication: the signatures and the extra items pass together or not at all, in one
/// equation. The engine checks allowance v2 presentations this way with the RedPallas
/// signatures of the same records.
pub fn verify_subset_with(
    items: &[Prepared],
    weights: &[Weight],
    subset: &[usize],
    extra: &[super::lincomb::Combination],
    extra_subset: &[usize],
    shared: &[pallas::Affine],
) -> bool {
    if subset.is_empty() && extra_subset.is_empty() {
        return true;
    }
    let z: Vec<pallas::Scalar> = subset.iter().map(|&i| weight_scalar(&weights[i])).collect();
    let rs: Vec<pallas::Affine> = subset.iter().map(|&i| items[i].r).collect();
    let ws: Vec<Weight> = subset.iter().map(|&i| weights[i]).collect();
    // The 255-bit side: every key with z·c, then the extra items' terms.
    let mut points: Vec<pallas::Affine> = subset.iter().map(|&i| items[i].a).collect();
    let mut scalars: Vec<[u8; 32]> = subset
        .iter()
        .zip(&z)
        .map(|(&i, z)| (items[i].c * z).to_repr())
        .collect();
    if !super::lincomb::append_terms(extra, shared, extra_subset, &mut points, &mut scalars) {
        return false;
    }
    let zs: pallas::Scalar = subset.iter().zip(&z).map(|(&i, z)| items[i].s * z).sum();
    let (r_sum, a_sum) = rayon::join(
        || vartime_msm(&rs, &ws, WEIGHT_BITS),
        || vartime_msm(&points, &scalars, 255),
    );
    bool::from((r_sum + a_sum - spendauth_basepoint() * zs).is_identity())
}

/// Verifies a batch; returns the positions of invalid items.
pub fn verify(items: &[Prepared], weights: &[Weight]) -> Vec<usize> {
    assert_eq!(items.len(), weights.len(), "one weight per item");
    crate::bisect::verify_or_bisect(items.len(), &|subset: &[usize]| {
        verify_subset(items, weights, subset)
    })
}

/// Prepares many signatures in parallel (the decompressions dominate).
pub fn prepare_many(entries: &[(&[u8; 32], &[u8; 64], &[u8])]) -> Vec<Option<Prepared>> {
    entries
        .par_iter()
        .map(|(a, s, m)| Prepared::new(a, s, m))
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use reddsa::orchard::SpendAuth;

    use super::*;

    fn rng() -> rand_core::UnwrapErr<rand::rngs::SysRng> {
        rand_core::UnwrapErr(rand::rngs::SysRng)
    }

    #[test]
    fn basepoint_is_reddsas() {
        let one = reddsa::SigningKey::<SpendAuth>::from_bytes(&{
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        })
        .unwrap();
        let vk: [u8; 32] = reddsa::VerificationKey::from(&one).into();
        assert_eq!(vk, spendauth_basepoint().to_bytes());
    }

    /// Signatures and extra linear combinations checked in one equation: true exactly when
    /// every signature and every extra item holds.
    #[test]
    fn signatures_and_extra_combinations_pass_or_fail_together() {
        use crate::pallas::lincomb::Combination;
        use ff::Field;
        use group::{Curve, Group};
        let mut rng = rng();
        let sigs: Vec<Prepared> = (0..6)
            .map(|i| {
                let sk = reddsa::SigningKey::<SpendAuth>::new(&mut rng);
                let vk: [u8; 32] = reddsa::VerificationKey::from(&sk).into();
                let msg = [i as u8; 9];
                let sig: [u8; 64] = sk.sign(&mut rng, &msg).into();
                Prepared::new(&vk, &sig, &msg).unwrap()
            })
            .collect();
        let weights = crate::weights::random_weights(&mut rng, sigs.len());
        let q = pallas::Point::random(&mut rng).to_affine();
        let combo = |broken: bool| {
            let mut r = self::rng();
            let p = pallas::Point::random(&mut r).to_affine();
            let (a, b) = (
                pallas::Scalar::random(&mut r),
                pallas::Scalar::random(&mut r),
            );
            let mut sum = p * a + q * b;
            if broken {
                sum += p;
            }
            Combination {
                own: vec![(p, a), (sum.to_affine(), -pallas::Scalar::ONE)],
                shared: vec![(0, b)],
            }
        };
        let extra = vec![combo(false), combo(false), combo(true)];
        let all: Vec<usize> = (0..sigs.len()).collect();
        assert!(verify_subset_with(
            &sigs,
            &weights,
            &all,
            &extra,
            &[0, 1],
            &[q]
        ));
        assert!(!verify_subset_with(
            &sigs,
            &weights,
            &all,
            &extra,
            &[0, 2],
            &[q]
        ));
        assert!(verify_subset_with(&sigs, &weights, &[], &extra, &[1], &[q]));
        // A bad signature fails the joint equation too.
        let mut bad = sigs.clone();
        bad[3].s += pallas::Scalar::ONE;
        assert!(!verify_subset_with(
            &bad,
            &weights,
            &all,
            &extra,
            &[0, 1],
            &[q]
        ));
        assert!(verify_subset_with(
            &bad,
            &weights,
            &[0, 1, 2, 4, 5],
            &extra,
            &[0, 1],
            &[q]
        ));
        // An extra item naming a shared base that is not there fails, not panics.
        assert!(!verify_subset_with(
            &sigs,
            &weights,
            &all,
            &extra,
            &[7],
            &[q]
        ));
    }

    /// How a test case corrupts a signature.
    #[derive(Clone, Copy, Debug)]
    enum Fault {
        None,
        Message,
        SFlip,
        RFlip,
        OtherKey,
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop_oneof![
            4 => Just(Fault::None),
            1 => Just(Fault::Message),
            1 => Just(Fault::SFlip),
            1 => Just(Fault::RFlip),
            1 => Just(Fault::OtherKey),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        /// Our batch verdicts equal reddsa's single verifier on every item, valid or not.
        #[test]
        fn batch_agrees_with_reddsa(faults in proptest::collection::vec(fault(), 1..24)) {
            let mut rng = rng();
            let mut entries = Vec::new();
            for (i, f) in faults.iter().enumerate() {
                let sk = reddsa::SigningKey::<SpendAuth>::new(rng);
                let mut vk: [u8; 32] = reddsa::VerificationKey::from(&sk).into();
                let msg = format!("message {i}").into_bytes();
                let mut sig: [u8; 64] = sk.sign(rng, &msg).into();
                let mut signed_msg = msg.clone();
                match f {
                    Fault::None => {}
                    Fault::Message => signed_msg.push(0),
                    Fault::SFlip => sig[40] ^= 1,
                    Fault::RFlip => sig[3] ^= 1,
                    Fault::OtherKey => vk = reddsa::VerificationKey::from(&reddsa::SigningKey::<SpendAuth>::new(rng)).into(),
                }
                entries.push((vk, sig, signed_msg));
            }
            let expected: Vec<bool> = entries.iter().map(|(vk, sig, msg)| {
                reddsa::VerificationKey::<SpendAuth>::try_from(*vk)
                    .map(|k| k.verify(msg, &reddsa::Signature::from(*sig)).is_ok())
                    .unwrap_or(false)
            }).collect();
            let prepared: Vec<Option<Prepared>> = entries.iter().map(|(vk, sig, msg)| Prepared::new(vk, sig, msg)).collect();
            let positions: Vec<usize> = (0..prepared.len()).filter(|&i| prepared[i].is_some()).collect();
            let items: Vec<Prepared> = positions.iter().map(|&i| prepared[i].unwrap()).collect();
            let weights = crate::weights::random_weights(&mut rng, items.len());
            let bad = verify(&items, &weights);
            let mut ours = vec![false; entries.len()];
            for (j, &i) in positions.iter().enumerate() {
                ours[i] = !bad.contains(&j);
                prop_assert_eq!(items[j].verify_single(), ours[i]);
            }
            prop_assert_eq!(ours, expected);
        }
    }
}
