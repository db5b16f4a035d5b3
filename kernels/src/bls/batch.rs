//! Batched verification of BLS signatures (min_sig), per key, with random weights:
//!
//! ```text
//!   e(Σᵢ rᵢ·σᵢ, g2) = Πₖ e(Σ_{i: key(i)=k} rᵢ·Mᵢ, pkₖ)
//! ```
//!
//! one G1 multi-scalar multiplication over all signatures, one per key over the message
//! points, and a single multi-pairing (K + 1 Miller loops, one final exponentiation)
//! whatever the batch size.
//!
//! # Security
//! * Weights rᵢ are 128-bit, drawn per batch by the caller from a CSPRNG ([`random_weights`])
//!   and never derived from the input: a submitter who does not know them makes a batch
//!   with an invalid item pass with probability ≤ 2⁻¹²⁸ per check.
//! * Cofactor components of σᵢ are invisible to the pairing, exactly as in
//!   [`super::pairing_check`]: batch and single verification agree item by item.
//! * Message points must be hashes (in G1); public keys are validated on decode.
//!
//! MSMs run on blst's Pippenger with caller-owned scratch (no blst thread pool), split over
//! rayon's threads.

#![allow(
    clippy::indexing_slicing,
    reason = "subsets and key indices index the batch's own items, built together with them"
)]

use blst::{
    blst_p1, blst_p1_affine, blst_p1s_mult_pippenger, blst_p1s_mult_pippenger_scratch_sizeof,
};
use rayon::prelude::*;

use super::map::{affine, MapHint};
use super::{G1Affine, PublicKey};
pub use crate::weights::{random_weights, Weight, WEIGHT_BITS};

/// Below this many points a chunk is not worth a thread of its own.
const MSM_CHUNK_MIN: usize = 512;

/// One signature to check: which key, σ, and the message point.
#[derive(Clone, Copy, Debug)]
pub struct BlsItem {
    /// Index into the key slice passed to [`verify`].
    pub key: u32,
    /// The signature.
    pub signature: G1Affine,
    /// The hashed message, in the batch's [`MessageForm`].
    pub message: G1Affine,
}

/// What the message points of a batch are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageForm {
    /// M = H1(m), in G1 (RFC 9380 hash_to_curve, cofactor cleared).
    Hashed,
    /// M = Q₀ + Q₁ of RFC 9380 before cofactor clearing ([`hash_to_curve_uncleared_many`]):
    /// a point of E, in general outside G1. The check clears once per key after the MSM,
    /// h_eff·Σ rᵢ·Mᵢ = Σ rᵢ·H1(mᵢ), instead of once per message.
    Uncleared,
}

fn add(a: &blst_p1, b: &blst_p1) -> blst_p1 {
    let mut out = blst_p1::default();
    // SAFETY: valid in/out pointers.
    unsafe { blst::blst_p1_add_or_double(&mut out, a, b) };
    out
}

/// Σ wᵢ·Pᵢ on one thread through blst's Pippenger.
///
/// Correct for any points of E, not only G1 (message points may be uncleared): blst's
/// Pippenger only adds and doubles (no endomorphism), and below 4 points `blst_p1_mult`
/// with 128-bit weights takes its window method (its GLV path, which assumes G1, starts at
/// 176 bits). `an_msm_is_right_outside_g1` fails if either changes.
fn msm_serial(points: &[blst_p1_affine], weights: &[Weight]) -> blst_p1 {
    debug_assert_eq!(points.len(), weights.len());
    let n = points.len();
    let mut ret = blst_p1::default();
    if n == 0 {
        return ret;
    }
    if n < 4 {
        for (p, w) in points.iter().zip(weights) {
            let mut pp = blst_p1::default();
            let mut t = blst_p1::default();
            // SAFETY: valid pointers; the weight is 16 bytes = WEIGHT_BITS bits.
            unsafe {
                blst::blst_p1_from_affine(&mut pp, p);
                blst::blst_p1_mult(&mut t, &pp, w.as_ptr(), WEIGHT_BITS);
            }
            ret = add(&ret, &t);
        }
        return ret;
    }
    // SAFETY: a pure size query.
    let scratch_bytes = unsafe { blst_p1s_mult_pippenger_scratch_sizeof(n) };
    let mut scratch = vec![0u64; scratch_bytes.div_ceil(8)];
    // blst's convention: a pointer array whose second entry is null means "the first entry
    // points at a contiguous array of n elements".
    let pts: [*const blst_p1_affine; 2] = [points.as_ptr(), core::ptr::null()];
    let scs: [*const u8; 2] = [weights.as_ptr() as *const u8, core::ptr::null()];
    // SAFETY: `points` holds n affine points and `weights` n × 16 bytes (WEIGHT_BITS bits
    // each); scratch has the size blst asked for; all outlive the call.
    unsafe {
        blst_p1s_mult_pippenger(
            &mut ret,
            pts.as_ptr(),
            n,
            scs.as_ptr(),
            WEIGHT_BITS,
            scratch.as_mut_ptr(),
        )
    };
    ret
}

/// Σ wᵢ·Pᵢ, split over rayon's threads.
///
/// Variable time (blst's Pippenger): for public points and one-use batch weights only.
pub fn vartime_msm(points: &[G1Affine], weights: &[Weight]) -> blst_p1 {
    assert_eq!(points.len(), weights.len(), "one weight per point");
    // SAFETY: G1Affine is repr(transparent) over blst_p1_affine.
    let raw: &[blst_p1_affine] = unsafe {
        core::slice::from_raw_parts(points.as_ptr() as *const blst_p1_affine, points.len())
    };
    let threads = rayon::current_num_threads().max(1);
    let chunk = raw.len().div_ceil(threads).max(MSM_CHUNK_MIN);
    raw.par_chunks(chunk)
        .zip(weights.par_chunks(chunk))
        .map(|(p, w)| msm_serial(p, w))
        .reduce(blst_p1::default, |a, b| add(&a, &b))
}

/// Checks the batch equation for the items at `subset` (positions into `items`), with the
/// matching entries of `weights`; message points are in `form`. An empty subset passes.
pub fn verify_subset(
    keys: &[PublicKey],
    items: &[BlsItem],
    weights: &[Weight],
    form: MessageForm,
    subset: &[usize],
) -> bool {
    if subset.is_empty() {
        return true;
    }
    let sigs: Vec<G1Affine> = subset.iter().map(|&i| items[i].signature).collect();
    let ws: Vec<Weight> = subset.iter().map(|&i| weights[i]).collect();
    // Group message points by key.
    let mut by_key: Vec<(Vec<G1Affine>, Vec<Weight>)> = vec![(Vec::new(), Vec::new()); keys.len()];
    for &i in subset {
        let k = items[i].key as usize;
        by_key[k].0.push(items[i].message);
        by_key[k].1.push(weights[i]);
    }
    let s = affine(&vartime_msm(&sigs, &ws));
    let h: Vec<(usize, blst_p1_affine)> = by_key
        .par_iter()
        .enumerate()
        .filter(|(_, (p, _))| !p.is_empty())
        .map(|(k, (p, w))| {
            let sum = vartime_msm(p, w);
            let h = match form {
                MessageForm::Hashed => sum,
                MessageForm::Uncleared => super::map::clear_cofactor(&sum),
            };
            (k, affine(&h))
        })
        .collect();
    let mut ps: Vec<&blst_p1_affine> = vec![&s];
    let mut qs = vec![super::neg_g2()];
    for (k, hk) in &h {
        ps.push(hk);
        qs.push(&keys[*k].0);
    }
    super::pairing_product_is_one(&ps, &qs)
}

/// Verifies all items; on failure, bisects. Returns the positions of invalid items (empty
/// when all are valid).
pub fn verify(
    keys: &[PublicKey],
    items: &[BlsItem],
    weights: &[Weight],
    form: MessageForm,
) -> Vec<usize> {
    assert_eq!(items.len(), weights.len(), "one weight per item");
    assert!(
        items.iter().all(|i| (i.key as usize) < keys.len()),
        "item key out of range"
    );
    crate::bisect::verify_or_bisect(items.len(), &|subset: &[usize]| {
        verify_subset(keys, items, weights, form, subset)
    })
}

/// Q₀ + Q₁ (uncleared, [`MessageForm::Uncleared`]) of many messages in parallel, each with
/// its SSWU hint if it has one (`hints` empty or one slot per message). Inversions are
/// batched per chunk ([`super::map::hash_to_curve_uncleared_many`]).
pub fn hash_to_curve_uncleared_many(
    messages: &[[u8; 32]],
    hints: &[Option<&MapHint>],
    dst: &[u8],
) -> Vec<G1Affine> {
    const CHUNK: usize = 256;
    assert!(
        hints.is_empty() || hints.len() == messages.len(),
        "one hint slot per message"
    );
    let hint_chunks: Vec<&[Option<&MapHint>]> = if hints.is_empty() {
        vec![&[]; messages.len().div_ceil(CHUNK)]
    } else {
        hints.chunks(CHUNK).collect()
    };
    messages
        .par_chunks(CHUNK)
        .zip(hint_chunks)
        .flat_map_iter(|(m, h)| super::map::hash_to_curve_uncleared_many(m, h, dst))
        .map(|a| {
            // Q₀ = −Q₁ for a hash has probability ≈ 2⁻³⁸⁰: that would be a bug.
            assert!(
                a != blst_p1_affine::default(),
                "hash_to_curve produced the identity"
            );
            G1Affine(a)
        })
        .collect()
}
