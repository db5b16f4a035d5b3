//! Stealth payments: paying with only the payee's address.
//!
//! The payee's address is a registered Pallas key W = w·G. The payer draws e, sends
//! E = e·G and the one-time key P = W + s·G with s = H_s(e·W ‖ E). The payee computes the
//! same s from w·E = e·W, recognises P, and owns it with p = w + s. Without w, nobody can
//! tell that P belongs to W (decisional Diffie–Hellman on Pallas) nor sign for it.

use group::GroupEncoding;
use microcash_kernels::pallas::signing;
use rand_core::CryptoRng;

use super::credential::presentation::{stealth_commitment, StealthOpening};
use super::keys::{hash_to_scalar, KeyError, OwnerKey, OwnerSecret};
use super::tags;

/// Prefix of an address's text form.
pub const ADDRESS_PREFIX: &str = "mc1";

/// A payee address: the public key W.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address(pub OwnerKey);

impl core::fmt::Display for Address {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{ADDRESS_PREFIX}{}", hex::encode(self.0.to_bytes()))
    }
}

/// Why an address string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// Missing prefix or not 64 hex digits.
    #[error("an address is 'mc1' followed by 64 hex digits")]
    Format,
    /// Not a valid key.
    #[error("address key: {0}")]
    Key(#[from] KeyError),
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Address, AddressError> {
        let hex_part = s.strip_prefix(ADDRESS_PREFIX).ok_or(AddressError::Format)?;
        let bytes: [u8; 32] = hex::decode(hex_part)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(AddressError::Format)?;
        Ok(Address(OwnerKey::from_bytes(&bytes)?))
    }
}

fn stealth_scalar(
    shared: &pasta_curves::pallas::Point,
    ephemeral: &OwnerKey,
) -> pasta_curves::pallas::Scalar {
    hash_to_scalar(tags::STEALTH, &[&shared.to_bytes(), &ephemeral.to_bytes()])
}

/// Allowance v2: the blinding t of the payer's commitment C_s = s·G + t·H, from the same
/// shared secret as s (so the payee can recompute it, and nobody else can).
fn commitment_blinding(
    shared: &pasta_curves::pallas::Point,
    ephemeral: &OwnerKey,
) -> pasta_curves::pallas::Scalar {
    hash_to_scalar(
        tags::STEALTH_COMMITMENT,
        &[&shared.to_bytes(), &ephemeral.to_bytes()],
    )
}

/// Payer side: a fresh (E, P) for `address`.
pub fn one_time_key<R: CryptoRng + ?Sized>(address: &Address, rng: &mut R) -> (OwnerKey, OwnerKey) {
    let (e, p, _) = one_time_key_committed(address, rng);
    (e, p)
}

/// Payer side for allowance v2 classes: a fresh (E, P) for `address` and the commitment
/// C_s = s·G + t·H to P's stealth tweak, which goes into the signed link.
pub fn one_time_key_committed<R: CryptoRng + ?Sized>(
    address: &Address,
    rng: &mut R,
) -> (OwnerKey, OwnerKey, [u8; 32]) {
    let e = OwnerSecret::generate(rng);
    let ephemeral = e.public();
    let shared = address.0.point() * e.scalar();
    let opening = StealthOpening {
        s: stealth_scalar(&shared, &ephemeral),
        t: commitment_blinding(&shared, &ephemeral),
    };
    (
        ephemeral,
        address.0.randomize(&opening.s),
        stealth_commitment(&opening),
    )
}

/// Payee side, allowance v2: the opening (s, t) of a payment to `wallet_secret`'s address
/// with ephemeral key `ephemeral` (what its presentation proves knowledge of).
pub fn stealth_opening(wallet_secret: &OwnerSecret, ephemeral: &OwnerKey) -> StealthOpening {
    let shared = ephemeral.point() * wallet_secret.scalar();
    StealthOpening {
        s: stealth_scalar(&shared, ephemeral),
        t: commitment_blinding(&shared, ephemeral),
    }
}

/// Payer and payee at once, for simulations that play both (the dataset generator): the
/// (E, P) that [`one_time_key`] draws from the same `rng` for `wallet_secret`'s address,
/// and P's secret as [`recognise`] finds it — with e·W = (e·w)·G taken from the fixed-base
/// table instead of two variable-base multiplications.
pub fn one_time_key_for_own_wallet<R: CryptoRng + ?Sized>(
    wallet_secret: &OwnerSecret,
    rng: &mut R,
) -> (OwnerKey, OwnerSecret) {
    let (e, p, _) = one_time_key_committed_for_own_wallet(wallet_secret, rng);
    (e, p)
}

/// [`one_time_key_for_own_wallet`] with the allowance v2 commitment C_s and its opening.
pub fn one_time_key_committed_for_own_wallet<R: CryptoRng + ?Sized>(
    wallet_secret: &OwnerSecret,
    rng: &mut R,
) -> (OwnerKey, OwnerSecret, [u8; 32]) {
    let e = OwnerSecret::generate(rng);
    let ephemeral = e.public();
    let shared = signing::basepoint_mul(&(e.scalar() * wallet_secret.scalar()));
    let opening = StealthOpening {
        s: stealth_scalar(&shared, &ephemeral),
        t: commitment_blinding(&shared, &ephemeral),
    };
    (
        ephemeral,
        wallet_secret.randomize(&opening.s),
        stealth_commitment(&opening),
    )
}

/// Payee side: if (E, P) was made for the holder of `wallet_secret`, the secret of P.
pub fn recognise(
    wallet_secret: &OwnerSecret,
    ephemeral: &OwnerKey,
    one_time_key: &OwnerKey,
) -> Option<OwnerSecret> {
    let shared = ephemeral.point() * wallet_secret.scalar();
    let s = stealth_scalar(&shared, ephemeral);
    let p = wallet_secret.randomize(&s);
    (p.public() == *one_time_key).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payee_recognises_and_owns_only_its_payments() {
        let mut rng = crate::os_rng();
        let w = OwnerSecret::generate(&mut rng);
        let addr = Address(w.public());
        let (e, p) = one_time_key(&addr, &mut rng);
        let secret = recognise(&w, &e, &p).expect("payee recognises its payment");
        assert_eq!(secret.public(), p);
        assert_ne!(p, addr.0, "P is not W");
        let other = OwnerSecret::generate(&mut rng);
        assert!(recognise(&other, &e, &p).is_none());
        // Two payments to the same address give unrelated one-time keys.
        let (_, p2) = one_time_key(&addr, &mut rng);
        assert_ne!(p, p2);
    }

    /// The simulation shortcut gives exactly what a payer and a payee compute apart.
    #[test]
    fn paying_an_own_wallet_gives_the_payers_keys_and_the_payees_secret() {
        use rand_core::SeedableRng;
        for seed in 0..20u64 {
            let w = OwnerSecret::generate(&mut crate::os_rng());
            let mut a = rand::rngs::ChaCha20Rng::seed_from_u64(seed);
            let mut b = rand::rngs::ChaCha20Rng::seed_from_u64(seed);
            let (e, p) = one_time_key(&Address(w.public()), &mut a);
            let (e2, secret) = one_time_key_for_own_wallet(&w, &mut b);
            assert_eq!((e2, secret.public()), (e, p));
            let found = recognise(&w, &e, &p).expect("the payee's payment");
            assert_eq!(found.to_bytes(), secret.to_bytes());
        }
    }

    /// The payer's commitment opens to what the payee computes, and to nothing another
    /// wallet computes.
    #[test]
    fn the_payee_opens_the_payers_stealth_commitment() {
        let mut rng = crate::os_rng();
        let w = OwnerSecret::generate(&mut rng);
        let (e, p, c_s) = one_time_key_committed(&Address(w.public()), &mut rng);
        let opening = stealth_opening(&w, &e);
        assert_eq!(stealth_commitment(&opening), c_s);
        assert_eq!(w.public().randomize(&opening.s), p);
        let other = stealth_opening(&OwnerSecret::generate(&mut rng), &e);
        assert_ne!(stealth_commitment(&other), c_s);
        let (e2, secret, c2) = one_time_key_committed_for_own_wallet(&w, &mut rng);
        let o2 = stealth_opening(&w, &e2);
        assert_eq!(
            (stealth_commitment(&o2), w.randomize(&o2.s).public()),
            (c2, secret.public())
        );
    }

    #[test]
    fn address_text_round_trips_and_rejects_garbage() {
        let addr = Address(OwnerSecret::generate(&mut crate::os_rng()).public());
        assert_eq!(addr.to_string().parse::<Address>().unwrap(), addr);
        assert_eq!("xx".parse::<Address>(), Err(AddressError::Format));
        assert!(format!("mc1{}", "00".repeat(32))
            .parse::<Address>()
            .is_err());
    }
}
