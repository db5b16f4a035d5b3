//! Batched checks of linear relations over Pallas: each item is a combination
//! Σ sᵢ·Pᵢ that must be the identity, and a batch checks the sum of its items' combinations
//! with one multi-scalar multiplication.
//!
//! The caller builds each item's scalars with its own verifier-chosen random weights (one
//! per equation of the item), so the sum over any subset is a random linear combination of
//! the subset's equations: a false equation survives with probability ≤ 2⁻¹²⁸ per weight
//! (`weights.rs`), and bisection names the failing items exactly as for signatures.
//!
//! Bases that many items share (generators, an issuer's key, a day's tag base) are given
//! once per batch as `shared` and addressed by index, so their scalars are summed before the
//! multiplication instead of costing one MSM term per item.

#![allow(
    clippy::indexing_slicing,
    reason = "shared and item indices are checked in `append_terms`"
)]

use ff::PrimeField;
use group::Group;
use pasta_curves::pallas;

use super::msm::vartime_msm;

/// One item's combination: Σ own + Σ shared must be the identity.
#[derive(Clone, Debug, Default)]
pub struct Combination {
    /// Points of this item alone, with their scalars.
    pub own: Vec<(pallas::Affine, pallas::Scalar)>,
    /// Scalars on the batch's shared bases, by index into the `shared` slice.
    pub shared: Vec<(usize, pallas::Scalar)>,
}

impl Combination {
    /// The combination computed directly (the single-item oracle).
    pub fn evaluate(&self, shared: &[pallas::Affine]) -> Option<pallas::Point> {
        let mut acc = pallas::Point::identity();
        for (p, s) in &self.own {
            acc += *p * s;
        }
        for (i, s) in &self.shared {
            acc += *shared.get(*i)? * s;
        }
        Some(acc)
    }
}

/// Appends the terms of the items at `subset` to a multi-scalar multiplication's points
/// and scalars: each item's own points, then every shared base once with its summed scalar.
/// False (nothing to check) when an item names a shared base that is not there.
pub fn append_terms(
    items: &[Combination],
    shared: &[pallas::Affine],
    subset: &[usize],
    points: &mut Vec<pallas::Affine>,
    scalars: &mut Vec<[u8; 32]>,
) -> bool {
    if subset.is_empty() {
        return true;
    }
    let mut shared_sums = vec![pallas::Scalar::zero(); shared.len()];
    for &i in subset {
        let Some(item) = items.get(i) else {
            return false;
        };
        for (p, s) in &item.own {
            points.push(*p);
            scalars.push(s.to_repr());
        }
        for (b, s) in &item.shared {
            match shared_sums.get_mut(*b) {
                Some(sum) => *sum += s,
                None => return false,
            }
        }
    }
    points.extend_from_slice(shared);
    scalars.extend(shared_sums.iter().map(|s| s.to_repr()));
    true
}

/// Whether the items at `subset` sum to the identity: one MSM over their own points plus
/// one term per shared base. An out-of-range shared index fails the check.
pub fn check_subset(items: &[Combination], shared: &[pallas::Affine], subset: &[usize]) -> bool {
    let (mut points, mut scalars) = (Vec::new(), Vec::new());
    append_terms(items, shared, subset, &mut points, &mut scalars)
        && bool::from(vartime_msm(&points, &scalars, 255).is_identity())
}

/// Verifies a batch; returns the positions of the items whose combination is not the
/// identity (bisection after a failed whole-batch check).
pub fn verify(items: &[Combination], shared: &[pallas::Affine]) -> Vec<usize> {
    crate::bisect::verify_or_bisect(items.len(), &|subset: &[usize]| {
        check_subset(items, shared, subset)
    })
}

#[cfg(test)]
mod tests {
    use ff::Field;
    use group::Curve;

    use super::*;

    fn rng() -> rand_core::UnwrapErr<rand::rngs::SysRng> {
        rand_core::UnwrapErr(rand::rngs::SysRng)
    }

    /// An item that holds: a·P + b·Q − (a·P + b·Q) with the sum given as its own point and
    /// Q shared; `broken` shifts the sum by one P.
    fn item(shared_q: &pallas::Affine, broken: bool) -> Combination {
        let mut rng = rng();
        let p = pallas::Point::random(&mut rng).to_affine();
        let (a, b) = (
            pallas::Scalar::random(&mut rng),
            pallas::Scalar::random(&mut rng),
        );
        let mut sum = p * a + *shared_q * b;
        if broken {
            sum += p;
        }
        Combination {
            own: vec![(p, a), (sum.to_affine(), -pallas::Scalar::ONE)],
            shared: vec![(0, b)],
        }
    }

    #[test]
    fn batches_agree_with_direct_evaluation_and_name_bad_items() {
        let q = pallas::Point::random(&mut rng()).to_affine();
        let shared = [q];
        let bad = [3usize, 17, 18];
        let items: Vec<Combination> = (0..40).map(|i| item(&q, bad.contains(&i))).collect();
        for (i, it) in items.iter().enumerate() {
            let direct = it.evaluate(&shared).map(|p| bool::from(p.is_identity()));
            assert_eq!(direct, Some(!bad.contains(&i)), "item {i}");
        }
        assert_eq!(verify(&items, &shared), bad.to_vec());
        assert!(verify(&items[..3], &shared).is_empty());
        assert!(verify(&[], &shared).is_empty());
    }

    #[test]
    fn a_shared_index_out_of_range_fails_the_item() {
        let q = pallas::Point::random(&mut rng()).to_affine();
        let mut it = item(&q, false);
        it.shared[0].0 = 1;
        assert_eq!(verify(&[it.clone()], &[q]), vec![0]);
        assert_eq!(it.evaluate(&[q]), None);
    }
}
