//! Fiat–Shamir proofs of knowledge for linear relations over Pallas, in batchable form.
//!
//! A statement is a list of equations `Yₑ = Σⱼ wⱼ·Bₑⱼ` over one vector of secret witnesses
//! w. The prover draws nonces nⱼ, sends the commitments `Aₑ = Σⱼ nⱼ·Bₑⱼ`, takes the
//! challenge c from the transcript (which the caller has already fed every public input of
//! the statement, and which then absorbs the commitments), and answers `sⱼ = nⱼ + c·wⱼ`.
//! The verifier checks `Σⱼ sⱼ·Bₑⱼ = Aₑ + c·Yₑ` for every equation.
//!
//! Sending the commitments instead of the challenge (the "batchable" form, 32 bytes more per
//! equation) is what lets a verifier fold many proofs into one multi-scalar multiplication:
//! every check is then a linear equation in public points.
//!
//! Soundness (special soundness, standard): two accepting answers (c, s), (c', s') to the
//! same commitments give wⱼ = (sⱼ − s'ⱼ)/(c − c') satisfying every equation, so a prover
//! that succeeds for more than one challenge knows a witness; with c a 512-bit hash reduced
//! mod q (random oracle), cheating succeeds with probability ≈ q⁻¹ per query. Honest-verifier
//! zero knowledge: (A, c, s) is simulated by picking s and c and setting
//! Aₑ = Σ sⱼ·Bₑⱼ − c·Yₑ; the nonces are uniform, so real and simulated transcripts agree.

use ff::{FromUniformBytes, PrimeField};
use group::CurveAffine as _;
use group::{Curve, Group, GroupEncoding};
use merlin::Transcript;
use pasta_curves::pallas;
use rand_core::CryptoRng;

/// One equation `lhs = Σ witness[j]·base`.
pub(crate) struct Equation {
    pub lhs: pallas::Point,
    pub terms: Vec<(usize, pallas::Point)>,
}

/// A uniformly random scalar (64 random bytes reduced mod q).
pub(crate) fn random_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> pallas::Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let s = pallas::Scalar::from_uniform_bytes(&wide);
    wide.fill(0);
    s
}

/// The challenge: 64 bytes from the transcript reduced mod q.
pub(crate) fn challenge(t: &mut Transcript) -> pallas::Scalar {
    let mut wide = [0u8; 64];
    t.challenge_bytes(b"challenge", &mut wide);
    pallas::Scalar::from_uniform_bytes(&wide)
}

/// Absorbs the commitments (compressed) into the transcript.
pub(crate) fn absorb_commitments(t: &mut Transcript, commitments: &[[u8; 32]]) {
    for a in commitments {
        t.append_message(b"commitment", a);
    }
}

/// A canonical scalar from 32 bytes (`None` for a value ≥ q).
pub(crate) fn scalar_from_bytes(bytes: &[u8; 32]) -> Option<pallas::Scalar> {
    Option::from(pallas::Scalar::from_repr(*bytes))
}

/// Proves knowledge of `witness` for `equations`; returns the compressed commitments and
/// the responses. The transcript must already hold the statement's public inputs.
pub(crate) fn prove<R: CryptoRng + ?Sized>(
    t: &mut Transcript,
    equations: &[Equation],
    witness: &[pallas::Scalar],
    rng: &mut R,
) -> (Vec<[u8; 32]>, Vec<pallas::Scalar>) {
    let nonces: Vec<pallas::Scalar> = witness.iter().map(|_| random_scalar(rng)).collect();
    let commitments: Vec<pallas::Point> = equations
        .iter()
        .map(|e| {
            e.terms
                .iter()
                .filter_map(|(j, b)| nonces.get(*j).map(|n| b * n))
                .sum()
        })
        .collect();
    let mut affine = vec![pallas::Affine::identity(); commitments.len()];
    pallas::Point::batch_normalize(&commitments, &mut affine);
    let bytes: Vec<[u8; 32]> = affine.iter().map(|a| a.to_bytes()).collect();
    absorb_commitments(t, &bytes);
    let c = challenge(t);
    let responses = nonces.iter().zip(witness).map(|(n, w)| n + c * w).collect();
    (bytes, responses)
}

/// Whether every equation holds for the commitments, responses and challenge.
pub(crate) fn holds(
    equations: &[Equation],
    commitments: &[pallas::Point],
    responses: &[pallas::Scalar],
    c: &pallas::Scalar,
) -> bool {
    equations.len() == commitments.len()
        && equations.iter().zip(commitments).all(|(e, a)| {
            let mut acc = -(*a + e.lhs * c);
            for (j, b) in &e.terms {
                match responses.get(*j) {
                    Some(s) => acc += b * s,
                    None => return false,
                }
            }
            bool::from(acc.is_identity())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::Field;

    /// Y₀ = w₀·G + w₁·H, Y₁ = w₀·K: proves and verifies; any other witness, commitment,
    /// response or statement fails.
    #[test]
    fn proofs_verify_only_for_their_statement_and_witness() {
        let mut rng = crate::os_rng();
        let g = pallas::Point::random(&mut rng);
        let h = pallas::Point::random(&mut rng);
        let k = pallas::Point::random(&mut rng);
        let w = [random_scalar(&mut rng), random_scalar(&mut rng)];
        let eqs = |w0: pallas::Scalar, w1: pallas::Scalar| {
            vec![
                Equation {
                    lhs: g * w0 + h * w1,
                    terms: vec![(0, g), (1, h)],
                },
                Equation {
                    lhs: k * w0,
                    terms: vec![(0, k)],
                },
            ]
        };
        let statement = eqs(w[0], w[1]);
        let run = |statement: &[Equation], witness: &[pallas::Scalar]| {
            let mut t = Transcript::new(b"test");
            let (a, s) = prove(&mut t, statement, witness, &mut crate::os_rng());
            (a, s)
        };
        let check = |statement: &[Equation], a: &[[u8; 32]], s: &[pallas::Scalar]| {
            let mut t = Transcript::new(b"test");
            absorb_commitments(&mut t, a);
            let c = challenge(&mut t);
            let points: Option<Vec<pallas::Point>> = a
                .iter()
                .map(|b| Option::from(pallas::Point::from_bytes(b)))
                .collect();
            points.is_some_and(|p| holds(statement, &p, s, &c))
        };
        let (a, s) = run(&statement, &w);
        assert!(check(&statement, &a, &s));
        // A wrong witness does not prove the statement.
        let (a2, s2) = run(&statement, &[w[0] + pallas::Scalar::ONE, w[1]]);
        assert!(!check(&statement, &a2, &s2));
        // Tampering with any commitment or response fails.
        for i in 0..a.len() {
            let mut bad = a.clone();
            bad[i] = (pallas::Point::from_bytes(&bad[i]).unwrap() + g)
                .to_affine()
                .to_bytes();
            assert!(!check(&statement, &bad, &s), "commitment {i}");
        }
        for i in 0..s.len() {
            let mut bad = s.clone();
            bad[i] += pallas::Scalar::ONE;
            assert!(!check(&statement, &a, &bad), "response {i}");
        }
        // Another statement (Y₁ for another w₀) fails with this proof.
        let other = eqs(w[0], w[1] + pallas::Scalar::ONE);
        assert!(!check(&other, &a, &s));
        // A missing response fails rather than panics.
        assert!(!check(&statement, &a, &s[..1]));
    }
}
