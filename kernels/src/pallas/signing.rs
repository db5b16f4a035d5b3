//! RedPallas (Orchard SpendAuth) keys and signing with a fixed-base table of the basepoint.
//!
//! `reddsa` computes every public key, randomised key and signature nonce point B·k with
//! `pasta_curves`' generic constant-time multiplication (255 doublings and additions), and
//! its signing key recomputes the public key whenever one is made. Here B·k takes 64 mixed
//! additions of table entries chosen in constant time (4-bit windows: entry j of window i is
//! j·16ⁱ·B; every entry of a window is read, the wanted one kept with a constant-time
//! select), and keys are built once. The signing algorithm is `reddsa`'s, step for step —
//! 80 random bytes T, nonce r = H*(T ‖ A ‖ m), R = r·B, c = H*(R ‖ A ‖ m), s = r + c·sk — so
//! with the same random bytes the signature is the same, byte for byte (tested), and
//! `reddsa` verifies it. `cargo bench --bench kernels -- pallas/(sign|keygen)` compares the
//! two.

use ff::PrimeField;
use group::CurveAffine;
use group::{Curve, Group, GroupEncoding};
use pasta_curves::pallas;
use rand_core::CryptoRng;
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

use super::redpallas::{h_star, spendauth_basepoint};

/// 4-bit windows over a 256-bit scalar encoding.
const WINDOWS: usize = 64;

/// jᵢ·16ⁱ·B for every window i and digit j (j = 0 is the identity).
fn table() -> &'static [[pallas::Affine; 16]] {
    static TABLE: std::sync::OnceLock<Vec<[pallas::Affine; 16]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut projective = Vec::with_capacity(WINDOWS * 16);
        let mut base = spendauth_basepoint();
        for _ in 0..WINDOWS {
            let mut multiple = pallas::Point::identity();
            for _ in 0..16 {
                projective.push(multiple);
                multiple += base;
            }
            // `multiple` is now 16·base: the next window's base.
            base = multiple;
        }
        let mut affine = vec![pallas::Affine::identity(); projective.len()];
        pallas::Point::batch_normalize(&projective, &mut affine);
        affine
            .chunks_exact(16)
            .map(|w| {
                let mut window = [pallas::Affine::identity(); 16];
                window.copy_from_slice(w);
                window
            })
            .collect()
    })
}

/// k·B for the SpendAuth basepoint B, in constant time (the digits of k choose table
/// entries by constant-time selection; the additions are complete).
pub fn basepoint_mul(k: &pallas::Scalar) -> pallas::Point {
    let mut digits = k.to_repr();
    let mut acc = pallas::Point::identity();
    for (i, window) in table().iter().enumerate() {
        let byte = digits.get(i / 2).copied().unwrap_or(0);
        let digit = (byte >> (4 * (i % 2))) & 0x0f;
        let mut chosen = pallas::Affine::identity();
        for (j, entry) in window.iter().enumerate() {
            chosen.conditional_assign(entry, digit.ct_eq(&(j as u8)));
        }
        acc += chosen;
    }
    digits.zeroize();
    acc
}

/// A RedPallas SpendAuth signing key: the secret scalar with its public key, computed
/// once. The scalar is wiped on drop.
#[derive(Clone)]
pub struct SigningKey {
    sk: pallas::Scalar,
    vk: [u8; 32],
    vk_point: pallas::Affine,
}

/// Overwrites a secret scalar with zero in a way the optimiser keeps.
fn wipe(s: &mut pallas::Scalar) {
    // SAFETY: `s` is a valid, aligned, exclusively borrowed scalar; writing another valid
    // scalar through it is sound, and a volatile write is not elided.
    unsafe { core::ptr::write_volatile(s, pallas::Scalar::zero()) };
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        wipe(&mut self.sk);
    }
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SigningKey(for {})", hex_prefix(&self.vk))
    }
}

fn hex_prefix(b: &[u8; 32]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

impl SigningKey {
    /// The key with secret `sk` (any scalar; zero gives the identity as public key, as in
    /// `reddsa`).
    pub fn from_scalar(sk: pallas::Scalar) -> SigningKey {
        let vk_point = basepoint_mul(&sk).to_affine();
        SigningKey {
            sk,
            vk: vk_point.to_bytes(),
            vk_point,
        }
    }

    /// Parses a canonical 32-byte little-endian scalar (`reddsa`'s encoding).
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<SigningKey> {
        Option::<pallas::Scalar>::from(pallas::Scalar::from_repr(*bytes)).map(Self::from_scalar)
    }

    /// The secret scalar's encoding. Secret material.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.sk.to_repr()
    }

    /// The secret scalar.
    pub fn scalar(&self) -> pallas::Scalar {
        self.sk
    }

    /// The public key's encoding.
    pub fn verification_key(&self) -> [u8; 32] {
        self.vk
    }

    /// The public key as a point.
    pub fn verification_point(&self) -> pallas::Affine {
        self.vk_point
    }

    /// This key plus `s` (`reddsa`'s `SigningKey::randomize`).
    pub fn randomize(&self, s: &pallas::Scalar) -> SigningKey {
        SigningKey::from_scalar(self.sk + s)
    }

    /// A signature over `msg`: R ‖ s, 64 bytes, with 80 bytes of randomness from `rng`.
    pub fn sign<R: CryptoRng + ?Sized>(&self, rng: &mut R, msg: &[u8]) -> [u8; 64] {
        let mut t = [0u8; 80];
        rng.fill_bytes(&mut t);
        let mut nonce = h_star(&[&t, &self.vk, msg]);
        t.zeroize();
        let r = basepoint_mul(&nonce).to_bytes();
        let c = h_star(&[&r, &self.vk, msg]);
        let s = nonce + c * self.sk;
        wipe(&mut nonce);
        let mut sig = [0u8; 64];
        let (r_half, s_half) = sig.split_at_mut(32);
        r_half.copy_from_slice(&r);
        s_half.copy_from_slice(&s.to_repr());
        sig
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ff::Field;
    use rand_core::SeedableRng;
    use reddsa::orchard::SpendAuth;

    fn seeded(seed: u64) -> rand::rngs::ChaCha20Rng {
        rand::rngs::ChaCha20Rng::seed_from_u64(seed)
    }

    /// The table gives B·k for every kind of k: zero, one, the largest scalar, random ones.
    #[test]
    fn basepoint_mul_matches_the_generic_multiplication() {
        let b = spendauth_basepoint();
        let mut rng = seeded(1);
        let mut ks = vec![
            pallas::Scalar::ZERO,
            pallas::Scalar::ONE,
            -pallas::Scalar::ONE,
            pallas::Scalar::from(16),
        ];
        ks.extend((0..200).map(|_| pallas::Scalar::random(&mut rng)));
        for k in ks {
            assert_eq!(basepoint_mul(&k), b * k, "k = {k:?}");
        }
    }

    /// Keys, randomised keys and signatures equal `reddsa`'s byte for byte when both draw
    /// the same random bytes; `reddsa` verifies ours; a signature does not verify for another
    /// message or key.
    #[test]
    fn signing_is_reddsas_byte_for_byte() {
        let mut rng = seeded(7);
        for i in 0..100u64 {
            let sk = pallas::Scalar::random(&mut rng);
            let ours = SigningKey::from_scalar(sk);
            let theirs = reddsa::SigningKey::<SpendAuth>::from_bytes(&sk.to_repr()).unwrap();
            let their_vk: [u8; 32] = reddsa::VerificationKey::from(&theirs).into();
            assert_eq!(ours.verification_key(), their_vk);
            assert_eq!(
                SigningKey::from_bytes(&ours.to_bytes()).unwrap().vk,
                ours.vk
            );

            let t = pallas::Scalar::random(&mut rng);
            let (ours_r, theirs_r) = (ours.randomize(&t), theirs.randomize(&t));
            let their_vk: [u8; 32] = reddsa::VerificationKey::from(&theirs_r).into();
            assert_eq!(ours_r.verification_key(), their_vk);

            let msg = i.to_le_bytes().repeat(i as usize % 9);
            let sig = ours_r.sign(&mut seeded(i), &msg);
            let their_sig: [u8; 64] = theirs_r.sign(seeded(i), &msg).into();
            assert_eq!(sig, their_sig, "key {i}");
            let vk = reddsa::VerificationKey::<SpendAuth>::try_from(their_vk).unwrap();
            assert!(vk.verify(&msg, &reddsa::Signature::from(sig)).is_ok());
            assert!(vk.verify(b"other", &reddsa::Signature::from(sig)).is_err());
            let other: [u8; 32] = reddsa::VerificationKey::from(&theirs).into();
            let other = reddsa::VerificationKey::<SpendAuth>::try_from(other).unwrap();
            assert!(other.verify(&msg, &reddsa::Signature::from(sig)).is_err());
        }
        assert!(
            SigningKey::from_bytes(&[0xff; 32]).is_none(),
            "non-canonical"
        );
    }
}
