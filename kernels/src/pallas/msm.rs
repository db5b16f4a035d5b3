//! Variable-time Pippenger (bucket) multi-scalar multiplication on Pallas, with signed
//! (Booth) digits.
//!
//! Public data only (verification): digits are read in the clear. Windows are independent,
//! so they run in parallel on rayon's threads and are combined by Horner's rule.
//!
//! Scalars are little-endian byte strings (`[u8; 32]` for full scalars, `[u8; 16]` for
//! 128-bit weights); `bits` bounds the scalars' length so short scalars cost fewer windows.

use group::Group;
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

fn window_sum(
    points: &[pallas::Affine],
    digits: &[i32],
    windows: usize,
    w: usize,
    width: usize,
) -> pallas::Point {
    let mut buckets = vec![pallas::Point::identity(); 1 << (width - 1)];
    for (i, p) in points.iter().enumerate() {
        let d = digits[i * windows + w];
        if d > 0 {
            buckets[(d - 1) as usize] += p;
        } else if d < 0 {
            buckets[(-d - 1) as usize] -= p;
        }
    }
    // Σ d·B_d as a running sum from the top bucket down.
    let mut running = pallas::Point::identity();
    let mut sum = pallas::Point::identity();
    for b in buckets.iter().rev() {
        running += b;
        sum += running;
    }
    sum
}

/// Σ sᵢ·Pᵢ for scalars of at most `bits` bits.
pub fn msm<S: AsRef<[u8]> + Sync>(
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
    let digits = signed_digits(scalars, width, windows);
    let sums: Vec<pallas::Point> = (0..windows)
        .into_par_iter()
        .map(|w| window_sum(points, &digits, windows, w, width))
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
/// oracle for [`msm`].
pub fn msm_naive(
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
                msm(&points, &bytes, 255),
                msm_naive(&points, &scalars),
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
                msm(&points, &short, 128),
                msm_naive(&points, &short_scalars)
            );
        }
    }
}
