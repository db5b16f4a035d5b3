//! Random batch weights.
//!
//! # Security
//! Weights are 128-bit, drawn per batch from the caller's CSPRNG (the engine seeds one from
//! the OS for every batch) and never derived from the input. A forged item then survives a
//! batch check with probability ≤ 2⁻¹²⁸: the failing combination is a non-zero linear form
//! in the weights over a prime-order group, zero for at most one value of the forged item's
//! weight.

use rand_core::CryptoRng;

/// A 128-bit weight, little-endian.
pub type Weight = [u8; 16];

/// Bits in a weight.
pub const WEIGHT_BITS: usize = 128;

/// `n` uniformly random non-zero 128-bit weights from `rng`.
pub fn random_weights<R: CryptoRng + ?Sized>(rng: &mut R, n: usize) -> Vec<Weight> {
    (0..n)
        .map(|_| loop {
            let mut w = [0u8; 16];
            rng.fill_bytes(&mut w);
            if w != [0u8; 16] {
                break w;
            }
        })
        .collect()
}
