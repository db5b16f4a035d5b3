//! Pallas keys of owners (coin keys X, one-time keys P, ephemeral keys E, wallet addresses W,
//! allowance-token keys) and their RedPallas signatures (Orchard SpendAuth: made with the
//! kernels' fixed-base signer, byte for byte `reddsa`'s; verified by `reddsa`).
//!
//! All keys share the SpendAuth basepoint G, so a stealth key P = W + s·G is exactly
//! `reddsa`'s key re-randomisation, and its secret is w + s.

use group::ff::{FromUniformBytes, PrimeField};
use group::GroupEncoding;
use group::{Curve, CurveAffine};
use microcash_kernels::pallas::signing;
use pasta_curves::arithmetic::CurveAffine as _;
use pasta_curves::pallas;
use rand_core::CryptoRng;
use reddsa::orchard::SpendAuth;

use super::encoding::{DecodeError, DecodeReason, Reader, Writer};

/// Length of a compressed Pallas point.
pub const POINT_LEN: usize = 32;
/// Length of a RedPallas signature (R ‖ s).
pub const SIGNATURE_LEN: usize = 64;

/// A Pallas public key: canonical, on the curve (Pallas has cofactor 1, so that is a full
/// validity check), never the identity.
#[derive(Clone, Copy)]
pub struct OwnerKey {
    point: pallas::Affine,
    bytes: [u8; POINT_LEN],
}

impl PartialEq for OwnerKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for OwnerKey {}

impl core::hash::Hash for OwnerKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state)
    }
}

impl core::fmt::Debug for OwnerKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "OwnerKey({})", hex::encode(self.bytes))
    }
}

/// Why a Pallas key encoding was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not the canonical encoding of a curve point.
    #[error("not a canonical Pallas point")]
    NotAPoint,
    /// The identity, which nobody holds the secret of in a useful sense.
    #[error("the identity point")]
    Identity,
}

impl OwnerKey {
    /// Decodes and validates a 32-byte compressed key.
    pub fn from_bytes(bytes: &[u8; POINT_LEN]) -> Result<OwnerKey, KeyError> {
        let point = Option::<pallas::Affine>::from(pallas::Affine::from_bytes(bytes))
            .ok_or(KeyError::NotAPoint)?;
        Self::checked(point, bytes)
    }

    /// The key for a decoded point: never the identity, and `bytes` must be its canonical
    /// encoding (which also pins the sign of y).
    fn checked(point: pallas::Affine, bytes: &[u8; POINT_LEN]) -> Result<OwnerKey, KeyError> {
        if bool::from(point.is_identity()) {
            return Err(KeyError::Identity);
        }
        if &point.to_bytes() != bytes {
            return Err(KeyError::NotAPoint);
        }
        Ok(OwnerKey {
            point,
            bytes: *bytes,
        })
    }

    /// Decodes with the point's y coordinate given (32 bytes, canonical little-endian): an
    /// on-curve check instead of a square root. Succeeds exactly when [`OwnerKey::from_bytes`]
    /// would give the same key.
    pub fn from_bytes_with_y(bytes: &[u8; POINT_LEN], y: &[u8; 32]) -> Result<OwnerKey, KeyError> {
        let mut x_repr = *bytes;
        x_repr[31] &= 0x7f;
        let x = Option::<pallas::Base>::from(pallas::Base::from_repr(x_repr))
            .ok_or(KeyError::NotAPoint)?;
        let y =
            Option::<pallas::Base>::from(pallas::Base::from_repr(*y)).ok_or(KeyError::NotAPoint)?;
        let point = Option::<pallas::Affine>::from(pallas::Affine::from_xy(x, y))
            .ok_or(KeyError::NotAPoint)?;
        Self::checked(point, bytes)
    }

    /// The y coordinate (the decompression hint for this key).
    #[allow(
        clippy::expect_used,
        reason = "an OwnerKey is never the identity (checked on construction)"
    )]
    pub fn y_bytes(&self) -> [u8; 32] {
        let c = Option::<pasta_curves::arithmetic::Coordinates<pallas::Affine>>::from(
            self.point.coordinates(),
        )
        .expect("not the identity");
        c.y().to_repr()
    }

    /// The canonical 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; POINT_LEN] {
        self.bytes
    }

    /// The point, for stealth-address arithmetic.
    pub fn point(&self) -> pallas::Point {
        self.point.into()
    }

    /// The decoded affine point (the batch verifier uses it as is: no second square root).
    pub fn affine(&self) -> &pallas::Affine {
        &self.point
    }

    /// Verifies a RedPallas signature by this key over `msg` (`reddsa`'s verifier).
    pub fn verify(&self, msg: &[u8], sig: &RedSig) -> bool {
        reddsa::VerificationKey::<SpendAuth>::try_from(self.bytes).is_ok_and(|vk| {
            vk.verify(msg, &reddsa::Signature::from(*sig.bytes()))
                .is_ok()
        })
    }

    /// This key plus `s·G` (stealth derivation; `reddsa`'s key re-randomisation, with G·s
    /// from the fixed-base table).
    pub fn randomize(&self, s: &pallas::Scalar) -> OwnerKey {
        Self::from_affine((self.point() + signing::basepoint_mul(s)).to_affine())
    }

    fn from_affine(point: pallas::Affine) -> OwnerKey {
        OwnerKey {
            point,
            bytes: point.to_bytes(),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, what: &'static str) -> Result<OwnerKey, DecodeError> {
        let at = r.offset();
        let bytes = r.array::<POINT_LEN>(what)?;
        let key = match r.hint::<32>(what)? {
            Some(y) => OwnerKey::from_bytes_with_y(&bytes, &y),
            None => OwnerKey::from_bytes(&bytes),
        };
        key.map_err(|e| DecodeError {
            offset: at,
            reason: DecodeReason::BadPoint {
                what,
                detail: e.to_string(),
            },
        })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.bytes(&self.bytes);
        w.hint(|| self.y_bytes().to_vec());
    }
}

/// The secret of an [`OwnerKey`]. `Debug` never prints it.
///
/// Keys and signatures come from `microcash_kernels::pallas::signing`: `reddsa`'s
/// algorithm with G·k from a fixed-base table, byte for byte `reddsa`'s output (tested
/// there) at ~6× less cost. `reddsa` still verifies every signature.
#[derive(Clone)]
pub struct OwnerSecret(signing::SigningKey);

impl core::fmt::Debug for OwnerSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "OwnerSecret(for {:?})", self.public())
    }
}

impl OwnerSecret {
    /// A fresh uniformly random secret.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> OwnerSecret {
        let mut wide = [0u8; 64];
        rng.fill_bytes(&mut wide);
        let s = pallas::Scalar::from_uniform_bytes(&wide);
        wide.fill(0);
        OwnerSecret(signing::SigningKey::from_scalar(s))
    }

    /// Parses a 32-byte canonical scalar (as written to wallet files).
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<OwnerSecret> {
        signing::SigningKey::from_bytes(bytes).map(OwnerSecret)
    }

    /// The 32-byte scalar. Secret material: only for 0600 wallet files.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The scalar, for stealth-address arithmetic.
    pub(crate) fn scalar(&self) -> pallas::Scalar {
        self.0.scalar()
    }

    /// The public key.
    pub fn public(&self) -> OwnerKey {
        OwnerKey::from_affine(self.0.verification_point())
    }

    /// This secret plus `s` (matches [`OwnerKey::randomize`]).
    pub fn randomize(&self, s: &pallas::Scalar) -> OwnerSecret {
        OwnerSecret(self.0.randomize(s))
    }

    /// A RedPallas signature over `msg` (fresh randomness from `rng`).
    pub fn sign<R: CryptoRng + ?Sized>(&self, rng: &mut R, msg: &[u8]) -> RedSig {
        RedSig::from_bytes(self.0.sign(rng, msg))
    }
}

/// A RedPallas signature's 64 bytes (R ‖ s). Validity is decided only by verification.
///
/// When decoded with hints it may also carry R as a point (checked on the curve and equal
/// to the encoded R), sparing the batch verifier a square root. The hint only accelerates:
/// a wrong or missing one leaves R to be decompressed as usual, so the verdict is the same.
#[derive(Clone, Copy)]
pub struct RedSig {
    bytes: [u8; SIGNATURE_LEN],
    r_point: Option<pallas::Affine>,
}

impl PartialEq for RedSig {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for RedSig {}

impl core::fmt::Debug for RedSig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RedSig({}…)", hex::encode(&self.bytes[..8]))
    }
}

impl RedSig {
    /// A signature from its 64 bytes.
    pub fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> RedSig {
        RedSig {
            bytes,
            r_point: None,
        }
    }

    /// The 64 bytes.
    pub fn bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.bytes
    }

    /// The bytes, for tests and tools that tamper with signatures (drops any decoded R).
    pub fn bytes_mut(&mut self) -> &mut [u8; SIGNATURE_LEN] {
        self.r_point = None;
        &mut self.bytes
    }

    /// R as a point, when a decompression hint supplied it.
    pub fn r_point(&self) -> Option<&pallas::Affine> {
        self.r_point.as_ref()
    }

    fn r_hint(&self) -> Vec<u8> {
        OwnerKey::from_bytes(&r_half(&self.bytes))
            .map(|k| k.y_bytes().to_vec())
            .unwrap_or_else(|_| vec![0u8; 32])
    }

    pub(crate) fn decode(r: &mut Reader<'_>, what: &'static str) -> Result<RedSig, DecodeError> {
        let bytes: [u8; SIGNATURE_LEN] = r.array(what)?;
        let r_point = r.hint::<32>(what)?.and_then(|y| {
            OwnerKey::from_bytes_with_y(&r_half(&bytes), &y)
                .ok()
                .map(|k| *k.affine())
        });
        Ok(RedSig { bytes, r_point })
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.bytes(&self.bytes);
        w.hint(|| self.r_hint());
    }
}

/// Hashes to a uniformly distributed Pallas scalar (512-bit output reduced mod q).
pub(crate) fn hash_to_scalar(personal: &[u8], parts: &[&[u8]]) -> pallas::Scalar {
    let wide: [u8; 64] = super::tags::blake2b(personal, parts);
    pallas::Scalar::from_uniform_bytes(&wide)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_encodings_are_refused() {
        let mut rng = crate::os_rng();
        let sk = OwnerSecret::generate(&mut rng);
        let pk = sk.public();
        assert_eq!(OwnerKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
        assert_eq!(OwnerKey::from_bytes(&[0u8; 32]), Err(KeyError::Identity));
        assert_eq!(
            OwnerKey::from_bytes(&[0xffu8; 32]),
            Err(KeyError::NotAPoint)
        );
        let again = OwnerSecret::from_bytes(&sk.to_bytes()).unwrap();
        assert_eq!(again.public(), pk);
        assert!(!format!("{sk:?}").contains(&hex::encode(sk.to_bytes())));
    }

    #[test]
    fn signatures_verify_only_for_their_key_and_message() {
        let mut rng = crate::os_rng();
        let sk = OwnerSecret::generate(&mut rng);
        let sig = sk.sign(&mut rng, b"m");
        assert!(sk.public().verify(b"m", &sig));
        assert!(!sk.public().verify(b"n", &sig));
        assert!(!OwnerSecret::generate(&mut rng).public().verify(b"m", &sig));
    }

    #[test]
    fn randomized_secret_matches_randomized_key() {
        let mut rng = crate::os_rng();
        let sk = OwnerSecret::generate(&mut rng);
        let s = hash_to_scalar(b"t", &[b"x"]);
        assert_eq!(sk.randomize(&s).public(), sk.public().randomize(&s));
    }
}

/// The R half of a RedPallas signature (R ‖ s).
fn r_half(sig: &[u8; SIGNATURE_LEN]) -> [u8; 32] {
    let mut r = [0u8; 32];
    r.copy_from_slice(&sig[..32]);
    r
}
