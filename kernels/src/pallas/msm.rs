//! Variable-time Pippenger (bucket) multi-scalar multiplication on Pallas, with signed
//! (Booth) digits.
//!
//! Public data only (verification): digits are read in the clear. Windows are independent,
//! so they run in parallel on rayon's threads and are combined by Horner's rule.
//!
//! Scalars are little-endian byte strings (`[u8; 32]` for full scalars, `[u8; 16]` for
//! 128-bit weights); `bits` bounds the scalars' length so short scalars cost fewer windows.

#![allow(
    clippy::indexing_slicing,
    reason = "bucket and digit indices are computed from this MSM's own window sizes and input lengths"
)]

use ff::{BatchInvert, Field};
use group::Group;
use pasta_curves::arithmetic::CurveAffine;
use pasta_curves::pallas;
use rayon::prelude::*;

/// Window width for `n` points (≈ ln n + 1 with signed digits, the usual optimum).
fn window_bits(n: usize) -> usize {
    if n < 32 {
        3
    } else {
        ((n as f64).ln().ceil() as usize + 1).clamp(4, 15)
    }
}

/// The `width`-bit digit of `scalar` starting at bit `offset`.
#[inline]
fn digit(scalar: &[u8], offset: usize, width: usize) -> usize {
    let byte = offset / 8;
    let mut v = 0u32;
    for (k, b) in scalar.iter().skip(byte).take(4).enumerate() {
        v |= (*b as u32) << (8 * k);
    }
    ((v >> (offset % 8)) & ((1u32 << width) - 1)) as usize
}

/// Signed (Booth) digits of every scalar: digit w of scalar i at `digits[i * windows + w]`,
/// each in [−2^(width−1), 2^(width−1)], so buckets hold only 2^(width−1) magnitudes and a
/// negative digit adds the (free) negation of the point.
fn signed_digits<S: AsRef<[u8]> + Sync>(scalars: &[S], width: usize, windows: usize) -> Vec<i32> {
    let half = 1i32 << (width - 1);
    let full = 1i32 << width;
    let mut digits = vec![0i32; scalars.len() * windows];
    digits
        .par_chunks_mut(windows)
        .zip(scalars.par_iter())
        .for_each(|(out, s)| {
            let mut carry = 0i32;
            for (w, d) in out.iter_mut().enumerate() {
                let raw = digit(s.as_ref(), w * width, width) as i32 + carry;
                if raw > half {
                    *d = raw - full;
                    carry = 1;
                } else {
                    *d = raw;
                    carry = 0;
                }
            }
        });
    digits
}

/// One window's Σ d·B_d, with the buckets accumulated in **affine** coordinates: points
/// are grouped by bucket (a counting sort), then in round r every bucket with more than r
/// points takes its r-th one, and all the additions of a round share one field inversion
/// (Montgomery's trick). An affine addition then costs about 6 multiplications against 11
/// for a mixed Jacobian one. The rare same-x cases (P + P, P + (−P)) go to a projective side
/// total, so no inversion of zero is ever needed.
fn window_sum(
    xs: &[pallas::Base],
    ys: &[pallas::Base],
    digits: &[i32],
    windows: usize,
    w: usize,
    width: usize,
) -> pallas::Point {
    let buckets = 1usize << (width - 1);
    // Counting sort of (point, sign) by bucket.
    let mut start = vec![0u32; buckets + 1];
    for i in 0..xs.len() {
        let d = digits[i * windows + w];
        if d != 0 {
            start[d.unsigned_abs() as usize] += 1;
        }
    }
    for b in 0..buckets {
        start[b + 1] += start[b];
    }
    let mut fill = start.clone();
    let mut items = vec![(0u32, false); start[buckets] as usize];
    for i in 0..xs.len() {
        let d = digits[i * windows + w];
        if d != 0 {
            let b = d.unsigned_abs() as usize - 1;
            items[fill[b] as usize] = (i as u32, d < 0);
            fill[b] += 1;
        }
    }
    let point = |k: usize| {
        let (i, neg) = items[k];
        let y = ys[i as usize];
        (xs[i as usize], if neg { -y } else { y })
    };
    let mut bx = vec![pallas::Base::ZERO; buckets];
    let mut by = vec![pallas::Base::ZERO; buckets];
    let mut full = vec![false; buckets];
    let mut side = vec![pallas::Point::identity(); buckets];
    let mut active: Vec<usize> = (0..buckets).filter(|&b| start[b + 1] > start[b]).collect();
    let mut batch: Vec<(usize, pallas::Base, pallas::Base)> = Vec::with_capacity(active.len());
    let mut dens: Vec<pallas::Base> = Vec::with_capacity(active.len());
    let mut inv: Vec<pallas::Base> = Vec::with_capacity(active.len());
    let mut round = 0u32;
    while !active.is_empty() {
        batch.clear();
        for &b in &active {
            let (px, py) = point((start[b] + round) as usize);
            if full[b] {
                batch.push((b, px, py));
            } else {
                bx[b] = px;
                by[b] = py;
                full[b] = true;
            }
        }
        dens.clear();
        dens.extend(batch.iter().map(|&(b, px, _)| px - bx[b]));
        inv.clear();
        inv.extend_from_slice(&dens);
        inv.iter_mut().batch_invert();
        for (k, &(b, px, py)) in batch.iter().enumerate() {
            if bool::from(dens[k].is_zero()) {
                // Same x: P + P (double into the side total) or P + (−P) (nothing left).
                if py == by[b] {
                    side[b] += pallas::Point::from(pallas::Affine::from_xy_unchecked(bx[b], by[b]))
                        .double();
                }
                full[b] = false;
                continue;
            }
            let lambda = (py - by[b]) * inv[k];
            let x3 = lambda.square() - bx[b] - px;
            let y3 = lambda * (bx[b] - x3) - by[b];
            bx[b] = x3;
            by[b] = y3;
        }
        round += 1;
        active.retain(|&b| start[b + 1] - start[b] > round);
    }
    // Σ d·B_d as a running sum from the top bucket down.
    let mut running = pallas::Point::identity();
    let mut sum = pallas::Point::identity();
    for b in (0..buckets).rev() {
        if full[b] {
            running += pallas::Affine::from_xy_unchecked(bx[b], by[b]);
        }
        running += side[b];
        sum += running;
    }
    sum
}

/// Σ sᵢ·Pᵢ for scalars of at most `bits` bits.
///
/// Variable time: bucket choice and additions follow the scalars' bits. For public data
/// and batch weights that are never reused or revealed only, not for secrets.
pub fn vartime_msm<S: AsRef<[u8]> + Sync>(
    points: &[pallas::Affine],
    scalars: &[S],
    bits: usize,
) -> pallas::Point {
    assert_eq!(points.len(), scalars.len(), "one scalar per point");
    if points.is_empty() {
        return pallas::Point::identity();
    }
    let width = window_bits(points.len());
    // One extra window takes the final carry of the signed recoding.
    let windows = bits.div_ceil(width) + 1;
    // The identity contributes nothing (and has no affine coordinates): leave it out. Keys
    // are never the identity, but a signature's R may be.
    let (coords, kept): (Vec<(pallas::Base, pallas::Base)>, Vec<&S>) = points
        .iter()
        .zip(scalars)
        .filter_map(|(p, s)| {
            Option::<pasta_curves::arithmetic::Coordinates<pallas::Affine>>::from(p.coordinates())
                .map(|c| ((*c.x(), *c.y()), s))
        })
        .unzip();
    let (xs, ys): (Vec<pallas::Base>, Vec<pallas::Base>) = coords.into_iter().unzip();
    let digits = signed_digits(&kept, width, windows);
    let sums: Vec<pallas::Point> = (0..windows)
        .into_par_iter()
        .map(|w| window_sum(&xs, &ys, &digits, windows, w, width))
        .collect();
    let mut acc = pallas::Point::identity();
    for sum in sums.iter().rev() {
        for _ in 0..width {
            acc = acc.double();
        }
        acc += sum;
    }
    acc
}

/// The obviously-correct twin (Σ sᵢ·Pᵢ one scalar multiplication at a time), the test
/// oracle for [`vartime_msm`].
#[cfg(test)]
pub(crate) fn vartime_msm_naive(
    points: &[pallas::Affine],
    scalars: &[pasta_curves::pallas::Scalar],
) -> pallas::Point {
    points
        .iter()
        .zip(scalars)
        .fold(pallas::Point::identity(), |acc, (p, s)| acc + *p * s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::{Field, PrimeField};
    use group::Curve;

    fn rng() -> rand_core::UnwrapErr<rand::rngs::SysRng> {
        rand_core::UnwrapErr(rand::rngs::SysRng)
    }

    #[test]
    fn same_bucket_doubling_cancellation_and_identity_are_handled() {
        let mut rng = rng();
        let p = pallas::Point::random(&mut rng).to_affine();
        let q = pallas::Point::random(&mut rng).to_affine();
        // P twice with equal scalars (doubling in a bucket), P and −P with equal scalars
        // (cancellation), the identity, and a spread of others.
        let mut points = vec![p, p, p, -p, pallas::Point::identity().to_affine(), q];
        let mut scalars = vec![pallas::Scalar::from(5u64); 4];
        scalars.push(pallas::Scalar::from(9u64));
        scalars.push(pallas::Scalar::from(5u64));
        for _ in 0..200 {
            points.push(if bool::from(pallas::Scalar::random(&mut rng).is_odd()) {
                p
            } else {
                q
            });
            scalars.push(pallas::Scalar::from(
                rand_core::Rng::next_u32(&mut rng) as u64 % 7,
            ));
        }
        let bytes: Vec<[u8; 32]> = scalars.iter().map(|s| s.to_repr()).collect();
        assert_eq!(
            vartime_msm(&points, &bytes, 255),
            vartime_msm_naive(&points, &scalars)
        );
    }

    #[test]
    fn pippenger_matches_naive() {
        let mut rng = rng();
        for n in [0usize, 1, 2, 31, 33, 300] {
            let points: Vec<pallas::Affine> = (0..n)
                .map(|_| pallas::Point::random(&mut rng).to_affine())
                .collect();
            let scalars: Vec<pallas::Scalar> =
                (0..n).map(|_| pallas::Scalar::random(&mut rng)).collect();
            let bytes: Vec<[u8; 32]> = scalars.iter().map(|s| s.to_repr()).collect();
            assert_eq!(
                vartime_msm(&points, &bytes, 255),
                vartime_msm_naive(&points, &scalars),
                "n = {n}"
            );
            // 128-bit scalars through the short path.
            let short: Vec<[u8; 16]> = bytes.iter().map(|b| b[..16].try_into().unwrap()).collect();
            let short_scalars: Vec<pallas::Scalar> = short
                .iter()
                .map(|b| {
                    let mut full = [0u8; 32];
                    full[..16].copy_from_slice(b);
                    pallas::Scalar::from_repr(full).unwrap()
                })
                .collect();
            assert_eq!(
                vartime_msm(&points, &short, 128),
                vartime_msm_naive(&points, &short_scalars)
            );
        }
    }
}
