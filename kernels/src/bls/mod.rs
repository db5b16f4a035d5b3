//! BLS12-381 in the *min_sig* setting (signatures in G1, 48 bytes compressed; public keys in
//! G2, 96 bytes compressed) through `blst`.
//!
//! The safe `blst` bindings cover ordinary sign/verify but not what a blind signature needs
//! (hash-to-G1 as a point, scalar multiplication, signing a point, scalar inversion), so this
//! module wraps the raw calls once, with the validation level of every point in its type:
//!
//! * [`G1Affine`] — any point *on the curve* `y² = x³ + 4` (not the identity). It may carry a
//!   cofactor component: on-curve is all a 48-byte decompression proves.
//! * [`G1Affine::in_subgroup`] — the prime-order subgroup check (≈45 µs); callers decide when
//!   they need it and say why (see `docs/protocol.md`, "cofactor components of σ").
//! * [`PublicKey`] — always in G2 and not the identity (checked on decode).
//!
//! # Security
//! Secret scalars are used only by `blst_sign_pk_in_g2`, which is constant time. Everything
//! else here is verification on public data and may be variable time.

use blst::{
    blst_bendian_from_scalar, blst_core_verify_pk_in_g2, blst_hash_to_g1, blst_p1,
    blst_p1_add_or_double, blst_p1_affine, blst_p1_affine_compress, blst_p1_affine_in_g1,
    blst_p1_affine_is_equal, blst_p1_affine_serialize, blst_p1_deserialize, blst_p1_from_affine,
    blst_p1_mult, blst_p1_to_affine, blst_p1_uncompress, blst_p2_affine, blst_scalar,
    blst_scalar_fr_check, blst_scalar_from_bendian, blst_scalar_from_le_bytes, blst_sign_pk_in_g2,
    blst_sk_inverse, min_sig, BLST_ERROR,
};
use rand_core::CryptoRng;
use zeroize::Zeroize;

/// Length of a compressed G1 point (a signature).
pub const G1_COMPRESSED_LEN: usize = 48;
/// Length of an uncompressed G1 point.
pub const G1_UNCOMPRESSED_LEN: usize = 96;
/// Length of a compressed G2 point (a public key).
pub const G2_COMPRESSED_LEN: usize = 96;
/// Length of a secret scalar's encoding.
pub const SECRET_KEY_LEN: usize = 32;

/// Why a point encoding was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PointError {
    /// Wrong flag bits, wrong length, or a coordinate not below the field modulus.
    #[error("bad point encoding (flags, length or coordinate range)")]
    BadEncoding,
    /// The coordinates do not satisfy the curve equation (or no square root exists).
    #[error("point is not on the curve")]
    NotOnCurve,
    /// The point is on the curve but outside the prime-order subgroup.
    #[error("point is outside the prime-order subgroup")]
    NotInSubgroup,
    /// The point at infinity, which is never a valid signature, blinded message or key.
    #[error("point at infinity")]
    Identity,
    /// The bytes decode, but re-encode differently: a non-canonical encoding.
    #[error("non-canonical point encoding")]
    NonCanonical,
}

/// A scalar of the BLS12-381 group order r, never zero.
#[derive(Clone)]
pub struct Scalar(blst_scalar);

impl Scalar {
    /// A uniformly random non-zero scalar (512 random bits reduced mod r: bias < 2⁻²⁵⁰).
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
        loop {
            let mut wide = [0u8; 64];
            rng.fill_bytes(&mut wide);
            let mut s = blst_scalar::default();
            // SAFETY: `wide` is 64 readable bytes and `s` a valid out-pointer.
            let non_zero = unsafe { blst_scalar_from_le_bytes(&mut s, wide.as_ptr(), wide.len()) };
            wide.zeroize();
            if non_zero {
                return Scalar(s);
            }
        }
    }

    /// The multiplicative inverse mod r.
    pub fn invert(&self) -> Scalar {
        let mut out = blst_scalar::default();
        // SAFETY: both pointers are valid blst_scalar values; `self` is non-zero by construction.
        unsafe { blst_sk_inverse(&mut out, &self.0) };
        Scalar(out)
    }

    /// The canonical 32-byte big-endian encoding (secret material: a wallet's blinding
    /// factor, kept only until its coin is unblinded).
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // SAFETY: `out` is 32 writable bytes and `self.0` a valid scalar.
        unsafe { blst_bendian_from_scalar(out.as_mut_ptr(), &self.0) };
        out
    }

    /// Parses [`Scalar::to_bytes`]: `None` unless canonical (below r) and non-zero.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Scalar> {
        let mut s = blst_scalar::default();
        // SAFETY: `bytes` is 32 readable bytes and `s` a valid out-pointer.
        let canonical = unsafe {
            blst_scalar_from_bendian(&mut s, bytes.as_ptr());
            blst_scalar_fr_check(&s)
        };
        (canonical && s.b != [0u8; 32]).then_some(Scalar(s))
    }
}

impl Drop for Scalar {
    fn drop(&mut self) {
        self.0.b.zeroize();
    }
}

impl core::fmt::Debug for Scalar {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Scalar(..)")
    }
}

/// A G1 point known to be on the curve and not the identity (see the module docs).
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct G1Affine(pub(crate) blst_p1_affine);

impl PartialEq for G1Affine {
    fn eq(&self, other: &Self) -> bool {
        // SAFETY: both are valid affine points.
        unsafe { blst_p1_affine_is_equal(&self.0, &other.0) }
    }
}
impl Eq for G1Affine {}

impl core::fmt::Debug for G1Affine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "G1Affine({})", hex_lower(&self.to_compressed()))
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_not_identity(p: blst_p1_affine) -> Result<G1Affine, PointError> {
    if p == blst_p1_affine::default() {
        Err(PointError::Identity)
    } else {
        Ok(G1Affine(p))
    }
}

fn map_decode_error(e: BLST_ERROR) -> PointError {
    match e {
        BLST_ERROR::BLST_POINT_NOT_ON_CURVE => PointError::NotOnCurve,
        BLST_ERROR::BLST_POINT_NOT_IN_GROUP => PointError::NotInSubgroup,
        BLST_ERROR::BLST_PK_IS_INFINITY => PointError::Identity,
        _ => PointError::BadEncoding,
    }
}

impl G1Affine {
    /// Decodes a 48-byte compressed point: canonical encoding, on the curve, not the identity.
    /// Performs **no** subgroup check (see [`G1Affine::in_subgroup`]).
    pub fn from_compressed(bytes: &[u8; G1_COMPRESSED_LEN]) -> Result<G1Affine, PointError> {
        if bytes[0] & 0x80 == 0 {
            return Err(PointError::BadEncoding);
        }
        let mut p = blst_p1_affine::default();
        // SAFETY: `bytes` is 48 readable bytes, the length blst_p1_uncompress reads.
        let err = unsafe { blst_p1_uncompress(&mut p, bytes.as_ptr()) };
        if err != BLST_ERROR::BLST_SUCCESS {
            return Err(map_decode_error(err));
        }
        let point = check_not_identity(p)?;
        if &point.to_compressed() != bytes {
            return Err(PointError::NonCanonical);
        }
        Ok(point)
    }

    /// Decodes a 96-byte uncompressed point (x ‖ y, big-endian): on the curve, not the
    /// identity. No square root is taken, so this costs an on-curve check only.
    pub fn from_uncompressed(bytes: &[u8; G1_UNCOMPRESSED_LEN]) -> Result<G1Affine, PointError> {
        if bytes[0] & 0x80 != 0 {
            return Err(PointError::BadEncoding);
        }
        let mut p = blst_p1_affine::default();
        // SAFETY: `bytes` is 96 readable bytes, the length blst_p1_deserialize reads when the
        // compression flag is clear (checked above).
        let err = unsafe { blst_p1_deserialize(&mut p, bytes.as_ptr()) };
        if err != BLST_ERROR::BLST_SUCCESS {
            return Err(map_decode_error(err));
        }
        let point = check_not_identity(p)?;
        if &point.to_uncompressed() != bytes {
            return Err(PointError::NonCanonical);
        }
        Ok(point)
    }

    /// Decodes a 48-byte compressed point given its y coordinate (48 bytes, big-endian): an
    /// on-curve check instead of a square root. Succeeds exactly when `from_compressed`
    /// would return the same point; a y that is off the curve or of the wrong sign is refused.
    pub fn from_compressed_with_y(
        bytes: &[u8; G1_COMPRESSED_LEN],
        y: &[u8; G1_COMPRESSED_LEN],
    ) -> Result<G1Affine, PointError> {
        if bytes[0] & 0x80 == 0 || bytes[0] & 0x40 != 0 {
            return Err(PointError::BadEncoding);
        }
        let mut u = [0u8; G1_UNCOMPRESSED_LEN];
        u[..48].copy_from_slice(bytes);
        u[0] &= 0x1f;
        u[48..].copy_from_slice(y);
        let p = G1Affine::from_uncompressed(&u)?;
        if &p.to_compressed() != bytes {
            return Err(PointError::NonCanonical);
        }
        Ok(p)
    }

    /// The y coordinate, big-endian (the decompression hint for this point).
    pub fn y_bytes(&self) -> [u8; G1_COMPRESSED_LEN] {
        let xy = self.to_uncompressed();
        let mut y = [0u8; G1_COMPRESSED_LEN];
        y.copy_from_slice(&xy[48..]);
        y
    }

    /// The 48-byte compressed encoding.
    pub fn to_compressed(&self) -> [u8; G1_COMPRESSED_LEN] {
        let mut out = [0u8; G1_COMPRESSED_LEN];
        // SAFETY: `out` has the 48 bytes blst writes.
        unsafe { blst_p1_affine_compress(out.as_mut_ptr(), &self.0) };
        out
    }

    /// The 96-byte uncompressed encoding (x ‖ y, big-endian).
    pub fn to_uncompressed(&self) -> [u8; G1_UNCOMPRESSED_LEN] {
        let mut out = [0u8; G1_UNCOMPRESSED_LEN];
        // SAFETY: `out` has the 96 bytes blst writes.
        unsafe { blst_p1_affine_serialize(out.as_mut_ptr(), &self.0) };
        out
    }

    /// Whether the point lies in the prime-order subgroup G1 (variable time, ≈45 µs).
    pub fn in_subgroup(&self) -> bool {
        // SAFETY: a valid affine point.
        unsafe { blst_p1_affine_in_g1(&self.0) }
    }

    /// `s · self`. Blinding factors are secret, so this uses blst's constant-time ladder.
    pub fn mul(&self, s: &Scalar) -> Result<G1Affine, PointError> {
        let mut p = blst_p1::default();
        let mut out = blst_p1::default();
        // SAFETY: valid in/out pointers; the scalar is 32 little-endian bytes = 255 bits used.
        unsafe {
            blst_p1_from_affine(&mut p, &self.0);
            blst_p1_mult(&mut out, &p, s.0.b.as_ptr(), 255);
        }
        to_affine_checked(&out)
    }

    /// `self + other` (used by tests that build points outside G1, and by aggregations).
    pub fn add(&self, other: &G1Affine) -> Result<G1Affine, PointError> {
        let mut a = blst_p1::default();
        let mut b = blst_p1::default();
        let mut out = blst_p1::default();
        // SAFETY: valid in/out pointers.
        unsafe {
            blst_p1_from_affine(&mut a, &self.0);
            blst_p1_from_affine(&mut b, &other.0);
            blst_p1_add_or_double(&mut out, &a, &b);
        }
        to_affine_checked(&out)
    }
}

fn to_affine_checked(p: &blst_p1) -> Result<G1Affine, PointError> {
    let mut a = blst_p1_affine::default();
    // SAFETY: valid in/out pointers.
    unsafe { blst_p1_to_affine(&mut a, p) };
    check_not_identity(a)
}

/// RFC 9380 `hash_to_curve` for G1, suite `BLS12381G1_XMD:SHA-256_SSWU_RO_`, under the
/// domain-separation tag `dst` (the caller's; at most 255 bytes). The result is in G1.
pub fn hash_to_g1(msg: &[u8], dst: &[u8]) -> G1Affine {
    let mut p = blst_p1::default();
    // SAFETY: pointer/length pairs describe readable slices; an empty `aug` is allowed.
    unsafe {
        blst_hash_to_g1(
            &mut p,
            msg.as_ptr(),
            msg.len(),
            dst.as_ptr(),
            dst.len(),
            core::ptr::null(),
            0,
        )
    };
    // A hash landing on the identity has probability ≈ 2⁻²⁵⁵; treat it as the bug it would be.
    #[allow(
        clippy::expect_used,
        reason = "the identity is a 2^-255 event, a bug if ever seen"
    )]
    let point = to_affine_checked(&p).expect("hash_to_g1 produced the identity");
    point
}

/// A BLS public key: a G2 point, validated in the subgroup and not the identity on decode.
#[derive(Clone, Copy)]
pub struct PublicKey(pub(crate) blst_p2_affine);

impl PublicKey {
    /// Decodes and validates a 96-byte compressed public key.
    pub fn from_bytes(bytes: &[u8; G2_COMPRESSED_LEN]) -> Result<PublicKey, PointError> {
        let pk = min_sig::PublicKey::key_validate(bytes).map_err(map_decode_error)?;
        let out = PublicKey(pk.into());
        if &out.to_bytes() != bytes {
            return Err(PointError::NonCanonical);
        }
        Ok(out)
    }

    /// The 96-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; G2_COMPRESSED_LEN] {
        min_sig::PublicKey::from(self.0).to_bytes()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}
impl Eq for PublicKey {}

impl core::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PublicKey({})", hex_lower(&self.to_bytes()))
    }
}

/// A BLS secret key. `Debug` never prints it; its memory is zeroed on drop (by blst).
#[derive(Clone)]
pub struct SecretKey(min_sig::SecretKey);

impl core::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A fresh key from 32 bytes of the given CSPRNG, through the IETF KeyGen procedure.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> SecretKey {
        let mut ikm = [0u8; 32];
        rng.fill_bytes(&mut ikm);
        #[allow(
            clippy::expect_used,
            reason = "key_gen fails only on IKM below 32 bytes"
        )]
        let sk = min_sig::SecretKey::key_gen(&ikm, b"microcash-v1 issuer key")
            .expect("32 bytes of IKM is the documented minimum");
        ikm.zeroize();
        SecretKey(sk)
    }

    /// Parses the 32-byte big-endian secret scalar; refuses zero and values ≥ r.
    pub fn from_bytes(bytes: &[u8; SECRET_KEY_LEN]) -> Result<SecretKey, PointError> {
        min_sig::SecretKey::from_bytes(bytes)
            .map(SecretKey)
            .map_err(|_| PointError::BadEncoding)
    }

    /// The 32-byte big-endian secret scalar. Secret material: write it only to 0600 files.
    pub fn to_bytes(&self) -> [u8; SECRET_KEY_LEN] {
        self.0.to_bytes()
    }

    /// The matching public key, sk·g2.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.sk_to_pk().into())
    }

    /// The raw blind-signature operation: returns sk·B.
    ///
    /// # Security
    /// The caller must have checked that `blinded` is in G1 ([`G1Affine::in_subgroup`]): sk·B
    /// on a point with a small-order component would leak sk modulo that order. Constant time
    /// in sk (`blst_sign_pk_in_g2`).
    pub fn sign_point(&self, blinded: &G1Affine) -> Result<G1Affine, PointError> {
        let mut bytes = self.0.to_bytes();
        let mut scalar = blst_scalar::default();
        let mut p = blst_p1::default();
        let mut out = blst_p1::default();
        // SAFETY: `bytes` is the 32-byte big-endian scalar blst reads; all pointers are valid.
        unsafe {
            blst_scalar_from_bendian(&mut scalar, bytes.as_ptr());
            blst_p1_from_affine(&mut p, &blinded.0);
            blst_sign_pk_in_g2(&mut out, &p, &scalar);
        }
        bytes.zeroize();
        scalar.b.zeroize();
        to_affine_checked(&out)
    }

    /// Ordinary BLS signature: sk·H(msg) with [`hash_to_g1`] under `dst`.
    #[allow(
        clippy::expect_used,
        reason = "sk ≠ 0 and H(msg) ∈ G1 \\ {O}: sk·H(msg) ≠ O"
    )]
    pub fn sign(&self, msg: &[u8], dst: &[u8]) -> G1Affine {
        let h = hash_to_g1(msg, dst);
        self.sign_point(&h)
            .expect("sk is non-zero and H(msg) is in G1, so sk·H(msg) is not the identity")
    }
}

/// Checks that σ is in G1 and that e(σ, g2) = e(H(msg), pk), with RFC 9380 hash-to-G1
/// under `dst` (`blst_core_verify_pk_in_g2`, which performs the subgroup check itself).
///
/// The subgroup check matters for canonicity, not forgery: the pairing alone ignores
/// cofactor components, so σ + T (T of small order) would pass a pairing-only check (pinned
/// by a test). Single-threaded: no blst thread pool.
pub fn verify(pk: &PublicKey, signature: &G1Affine, msg: &[u8], dst: &[u8]) -> bool {
    // SAFETY: valid points; pointer/length pairs describe readable slices.
    let err = unsafe {
        blst_core_verify_pk_in_g2(
            &pk.0,
            &signature.0,
            true,
            msg.as_ptr(),
            msg.len(),
            dst.as_ptr(),
            dst.len(),
            core::ptr::null(),
            0,
        )
    };
    err == BLST_ERROR::BLST_SUCCESS
}

/// e(−g2) as an affine point, computed once.
pub(crate) fn neg_g2() -> &'static blst_p2_affine {
    static NEG_G2: std::sync::OnceLock<blst_p2_affine> = std::sync::OnceLock::new();
    NEG_G2.get_or_init(|| {
        let mut p = blst::blst_p2::default();
        let mut out = blst_p2_affine::default();
        // SAFETY: the generator pointer is a static inside blst; in/out pointers are valid.
        unsafe {
            blst::blst_p2_from_affine(&mut p, blst::blst_p2_affine_generator());
            blst::blst_p2_cneg(&mut p, true);
            blst::blst_p2_to_affine(&mut out, &p);
        }
        out
    })
}

/// Checks Π e(Pᵢ, Qᵢ) = 1 with one multi-Miller loop and one final exponentiation.
pub(crate) fn pairing_product_is_one(ps: &[&blst_p1_affine], qs: &[&blst_p2_affine]) -> bool {
    debug_assert_eq!(ps.len(), qs.len());
    let mut f = blst::blst_fp12::default();
    let mut out = blst::blst_fp12::default();
    let ps_ptrs: Vec<*const blst_p1_affine> = ps.iter().map(|p| *p as *const _).collect();
    let qs_ptrs: Vec<*const blst_p2_affine> = qs.iter().map(|q| *q as *const _).collect();
    // SAFETY: both pointer arrays hold `n` valid affine points that outlive the call.
    unsafe {
        blst::blst_miller_loop_n(&mut f, qs_ptrs.as_ptr(), ps_ptrs.as_ptr(), ps.len());
        blst::blst_final_exp(&mut out, &f);
        blst::blst_fp12_is_one(&out)
    }
}

/// Checks e(σ, g2) = e(M, pk) for a message point M, **ignoring** cofactor components of σ:
/// the pairing cannot see them. This is the check the batch equation generalises, and the
/// one the protocol uses (see `docs/protocol.md`, "Cofactor components of σ").
pub fn pairing_check(pk: &PublicKey, signature: &G1Affine, message: &G1Affine) -> bool {
    pairing_product_is_one(&[&signature.0, &message.0], &[neg_g2(), &pk.0])
}

/// Helpers for tests (here and in dependent crates) that need points *outside* G1 — for
/// pinning what the pairing and the subgroup checks do with cofactor components. Not part
/// of the API: compiled for this crate's tests and behind the `testing` feature, which
/// only dev-dependencies enable.
#[cfg(any(test, feature = "testing"))]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers: a failure is a failing test"
)]
pub mod testing {
    use super::*;
    use rand_core::Rng;

    /// Randomness for the search below; quality does not matter, only variety.
    struct OsEntropy;
    impl rand_core::TryRng for OsEntropy {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0);
            Ok(h.finish())
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for chunk in dst.chunks_mut(8) {
                let v = self.try_next_u64()?.to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            Ok(())
        }
    }

    /// A point of order 3 on y² = x³ + 4, outside G1. blst refuses to *decode* (0, ±2) (its
    /// decoders special-case x = 0), so we reach the 3-torsion by computation instead: a random
    /// curve point Q, times r (killing its G1 part), times h/3 (leaving order 3 or 1).
    pub fn order_three_point() -> G1Affine {
        const R_LE: [u8; 32] = [
            1, 0, 0, 0, 255, 255, 255, 255, 254, 91, 254, 255, 2, 164, 189, 83, 5, 216, 161, 9, 8,
            216, 57, 51, 72, 125, 157, 41, 83, 167, 237, 115,
        ];
        const H_OVER_3_LE: [u8; 16] = [
            57, 142, 85, 85, 142, 227, 170, 46, 114, 160, 28, 199, 170, 46, 36, 19,
        ];
        let mul = |p: &blst_p1, k: &[u8], nbits: usize| {
            let mut out = blst_p1::default();
            // SAFETY: valid pointers; `k` holds at least nbits/8 bytes.
            unsafe { blst_p1_mult(&mut out, p, k.as_ptr(), nbits) };
            out
        };
        let mut rng = rand_core::UnwrapErr(OsEntropy);
        loop {
            let mut x = [0u8; 48];
            rng.fill_bytes(&mut x);
            x[0] = (x[0] & 0x1f) | 0x80;
            let Ok(q) = G1Affine::from_compressed(&x) else {
                continue;
            };
            let mut qp = blst_p1::default();
            // SAFETY: valid pointers.
            unsafe { blst_p1_from_affine(&mut qp, &q.0) };
            let t = mul(&mul(&qp, &R_LE, 255), &H_OVER_3_LE, 125);
            let Ok(t) = to_affine_checked(&t) else {
                continue;
            };
            // Order exactly 3: T ≠ O and 3T = O.
            let two_t = t.add(&t).unwrap();
            assert_eq!(two_t.add(&t), Err(PointError::Identity));
            return t;
        }
    }
}

pub mod batch;
pub mod map;

#[cfg(test)]
mod tests;
