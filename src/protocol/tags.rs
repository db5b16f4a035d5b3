//! Every domain-separation tag of protocol v1, in one place.
//!
//! Three kinds of tags:
//! * the RFC 9380 DST of the issuer signature's hash-to-G1 (`H1`);
//! * BLAKE2b personalisations (at most 16 bytes), one per derived value;
//! * prefixes of the messages a RedPallas key signs (RedPallas hashes with its own fixed
//!   personalisation `Zcash_RedPallasH`, so *our* separation lives in the message).
//!
//! No two tags are equal, and no signed-message prefix is a prefix of another (both tested):
//! a signature or hash made for one purpose is never valid for another.

/// H1: RFC 9380 `hash_to_curve`, suite BLS12381G1_XMD:SHA-256_SSWU_RO_, for issuer
/// signatures over serials (coins and allowance tokens alike; their serials differ by tag).
pub const H1_DST: &[u8] = b"MICROCASH-V1-ISSUER-SIG-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";

/// H_serial for coins: serial = BLAKE2b-256(keyset_id ‖ X).
pub const SERIAL_COIN: &[u8] = b"mc1/serial/coin";
/// H_serial for allowance tokens: serial = BLAKE2b-256(keyset_id ‖ X).
pub const SERIAL_ALLOWANCE: &[u8] = b"mc1/serial/allow";
/// Keyset id = BLAKE2b-256(encoded public parameters).
pub const KEYSET_ID: &[u8] = b"mc1/keyset-id";
/// H_s: stealth scalar = BLAKE2b-512(e·W ‖ E) reduced mod q (Pallas scalar field).
pub const STEALTH: &[u8] = b"mc1/stealth";
/// Chain digest: d₀ = H(serial ‖ σ), dᵢ = H(dᵢ₋₁ ‖ encoded linkᵢ).
pub const LINK_CHAIN: &[u8] = b"mc1/link-chain";
/// Digest of the allowance spends attached to a link or deposit.
pub const ALLOWANCE_LIST: &[u8] = b"mc1/allow-list";
/// Digest of the body a set of allowance spends is bound to.
pub const ALLOWANCE_BINDING: &[u8] = b"mc1/allow-bind";
/// Digest of a swap's blinded outputs (what the swap inputs authorise).
pub const SWAP_OUTPUTS: &[u8] = b"mc1/swap-outs";
/// Digest of a whole deposit message (idempotency key of the receipt).
pub const DEPOSIT_DIGEST: &[u8] = b"mc1/deposit";
/// Digest of the blinded outputs of an allowance request.
pub const ALLOWANCE_REQUEST: &[u8] = b"mc1/allow-req";
/// Identity of an allowance request: digest of what the wallet signed (idempotency key).
pub const ALLOWANCE_REQUEST_ID: &[u8] = b"mc1/allow-req-id";
/// Identity of a withdrawal: account and blinded outputs (idempotency key).
pub const WITHDRAW_REQUEST_ID: &[u8] = b"mc1/withdraw-id";
/// Allowance v2: the id of a credential key (epoch, class, public parameters).
pub const CREDENTIAL_KEY_ID: &[u8] = b"mc2/cred-key";
/// Allowance v2: the issuer's per-(wallet, day) credential scalar u (U = u·G).
pub const CREDENTIAL_U: &[u8] = b"mc2/cred-u";
/// Allowance v2: the blinding t of the payer's stealth commitment C_s = s·G + t·H, from the
/// same shared secret as the stealth scalar.
pub const STEALTH_COMMITMENT: &[u8] = b"mc2/stealth-cmt";

/// Prefix of the message the current owner signs to append a payment link.
pub const MSG_LINK: &[u8] = b"microcash/v1/link\0";
/// Prefix of the message the current owner signs to deposit (or swap) a coin.
pub const MSG_DEPOSIT: &[u8] = b"microcash/v1/deposit\0";
/// Prefix of the message an allowance token's key signs when the token is spent.
pub const MSG_ALLOWANCE_SPEND: &[u8] = b"microcash/v1/allowance-spend\0";
/// Prefix of the message a registered wallet signs to request allowance tokens.
pub const MSG_ALLOWANCE_REQUEST: &[u8] = b"microcash/v1/allowance-request\0";
/// Prefix of the message a wallet's address key signs to register for an allowance v2
/// class (possession of the secret its credentials will be bound to).
pub const MSG_REGISTER: &[u8] = b"microcash/v2/register\0";
/// Prefix of the message a registered wallet signs to request its v2 credential of a day.
pub const MSG_CREDENTIAL_REQUEST: &[u8] = b"microcash/v2/credential-request\0";

/// All BLAKE2b personalisations (for the distinctness test and the docs).
pub const ALL_PERSONALISATIONS: &[&[u8]] = &[
    SERIAL_COIN,
    SERIAL_ALLOWANCE,
    KEYSET_ID,
    STEALTH,
    LINK_CHAIN,
    ALLOWANCE_LIST,
    ALLOWANCE_BINDING,
    SWAP_OUTPUTS,
    DEPOSIT_DIGEST,
    ALLOWANCE_REQUEST,
    ALLOWANCE_REQUEST_ID,
    WITHDRAW_REQUEST_ID,
    CREDENTIAL_KEY_ID,
    CREDENTIAL_U,
    STEALTH_COMMITMENT,
];

/// All signed-message prefixes.
pub const ALL_MESSAGE_PREFIXES: &[&[u8]] = &[
    MSG_LINK,
    MSG_DEPOSIT,
    MSG_ALLOWANCE_SPEND,
    MSG_ALLOWANCE_REQUEST,
    MSG_REGISTER,
    MSG_CREDENTIAL_REQUEST,
];

/// BLAKE2b with a personalisation tag, over the concatenation of `parts`.
///
/// Every variable-length part a caller passes is length-prefixed by the caller's encoding,
/// so concatenation is unambiguous.
pub(crate) fn blake2b<const N: usize>(personal: &[u8], parts: &[&[u8]]) -> [u8; N] {
    let mut state = blake2b_simd::Params::new()
        .hash_length(N)
        .personal(personal)
        .to_state();
    for part in parts {
        state.update(part);
    }
    let mut out = [0u8; N];
    out.copy_from_slice(state.finalize().as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personalisations_are_distinct_and_fit_blake2b() {
        for (i, a) in ALL_PERSONALISATIONS.iter().enumerate() {
            assert!(
                a.len() <= 16,
                "{:?} longer than BLAKE2b's 16-byte personalisation",
                a
            );
            for b in &ALL_PERSONALISATIONS[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn message_prefixes_are_prefix_free() {
        for a in ALL_MESSAGE_PREFIXES {
            for b in ALL_MESSAGE_PREFIXES {
                if a != b {
                    assert!(!b.starts_with(a), "{:?} is a prefix of {:?}", a, b);
                }
            }
        }
    }

    #[test]
    fn tags_change_the_hash() {
        let a: [u8; 32] = blake2b(SERIAL_COIN, &[b"x"]);
        let b: [u8; 32] = blake2b(SERIAL_ALLOWANCE, &[b"x"]);
        assert_ne!(a, b);
    }
}
