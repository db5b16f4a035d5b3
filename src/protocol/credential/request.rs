//! What a wallet sends the issuer for allowance v2: its registration (proving possession of
//! its address secret) and its daily credential request. Both are signed by the address
//! key W, under their own message prefixes.

use rand_core::CryptoRng;

use crate::protocol::encoding::{expect_version, Decode, DecodeError, Encode, Reader, Writer};
use crate::protocol::keys::{OwnerKey, OwnerSecret, RedSig};
use crate::protocol::keyset::POLICY_CLASS_LEN_MAX;
use crate::protocol::tags;

/// Version byte of the v2 wallet messages (a v1 allowance request starts with 1).
pub const V2_MESSAGE_VERSION: u8 = 2;
/// Longest identity, bytes.
pub const IDENTITY_LEN_MAX: usize = 255;

/// A wallet's registration for a v2 class: address W, the identity the back office attests,
/// and w's signature over both (possession of the secret the credential will be bound to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The wallet's address key W.
    pub address: OwnerKey,
    /// Policy class (a v2 class).
    pub class: String,
    /// The identity (the back office's name for the person).
    pub identity: String,
    /// Signature by w.
    pub signature: RedSig,
}

fn length_prefixed(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

fn registration_message(address: &OwnerKey, class: &str, identity: &str) -> Vec<u8> {
    [
        tags::MSG_REGISTER,
        &address.to_bytes(),
        &length_prefixed(class),
        &length_prefixed(identity),
    ]
    .concat()
}

impl Registration {
    /// Signs a registration with the wallet's address secret.
    pub fn sign<R: CryptoRng + ?Sized>(
        wallet: &OwnerSecret,
        class: &str,
        identity: &str,
        rng: &mut R,
    ) -> Registration {
        let address = wallet.public();
        let signature = wallet.sign(rng, &registration_message(&address, class, identity));
        Registration {
            address,
            class: class.to_owned(),
            identity: identity.to_owned(),
            signature,
        }
    }

    /// Whether w signed it.
    pub fn authentic(&self) -> bool {
        self.address.verify(
            &registration_message(&self.address, &self.class, &self.identity),
            &self.signature,
        )
    }
}

/// A registered wallet's request for its credential of one class and UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialRequest {
    /// The wallet's address key W.
    pub address: OwnerKey,
    /// Policy class.
    pub class: String,
    /// UTC day number.
    pub day: u64,
    /// Signature by w.
    pub signature: RedSig,
}

fn request_message(address: &OwnerKey, class: &str, day: u64) -> Vec<u8> {
    [
        tags::MSG_CREDENTIAL_REQUEST,
        &address.to_bytes(),
        &length_prefixed(class),
        &day.to_le_bytes(),
    ]
    .concat()
}

impl CredentialRequest {
    /// Signs a request with the wallet's address secret.
    pub fn sign<R: CryptoRng + ?Sized>(
        wallet: &OwnerSecret,
        class: &str,
        day: u64,
        rng: &mut R,
    ) -> CredentialRequest {
        let address = wallet.public();
        let signature = wallet.sign(rng, &request_message(&address, class, day));
        CredentialRequest {
            address,
            class: class.to_owned(),
            day,
            signature,
        }
    }

    /// Whether w signed it.
    pub fn authentic(&self) -> bool {
        self.address.verify(
            &request_message(&self.address, &self.class, self.day),
            &self.signature,
        )
    }
}

impl Encode for Registration {
    fn encode(&self, w: &mut Writer) {
        w.u8(V2_MESSAGE_VERSION);
        self.address.encode(w);
        w.short_bytes(self.class.as_bytes())
            .short_bytes(self.identity.as_bytes());
        self.signature.encode(w);
    }
}

impl Decode for Registration {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        expect_version(r, "registration", V2_MESSAGE_VERSION)?;
        Ok(Registration {
            address: OwnerKey::decode(r, "address")?,
            class: r.short_str("class", POLICY_CLASS_LEN_MAX)?.to_owned(),
            identity: r.short_str("identity", IDENTITY_LEN_MAX)?.to_owned(),
            signature: RedSig::decode(r, "registration signature")?,
        })
    }
}

impl Encode for CredentialRequest {
    fn encode(&self, w: &mut Writer) {
        w.u8(V2_MESSAGE_VERSION);
        self.address.encode(w);
        w.short_bytes(self.class.as_bytes()).u64(self.day);
        self.signature.encode(w);
    }
}

impl Decode for CredentialRequest {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        expect_version(r, "credential request", V2_MESSAGE_VERSION)?;
        Ok(CredentialRequest {
            address: OwnerKey::decode(r, "address")?,
            class: r.short_str("class", POLICY_CLASS_LEN_MAX)?.to_owned(),
            day: r.u64("day")?,
            signature: RedSig::decode(r, "request signature")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_verify_only_as_signed_and_never_as_each_other() {
        let mut rng = crate::os_rng();
        let w = OwnerSecret::generate(&mut rng);
        let reg = Registration::sign(&w, "standard", "alice", &mut rng);
        assert!(reg.authentic());
        for tampered in [
            Registration {
                class: "other".into(),
                ..reg.clone()
            },
            Registration {
                identity: "bob".into(),
                ..reg.clone()
            },
            Registration {
                address: OwnerSecret::generate(&mut rng).public(),
                ..reg.clone()
            },
        ] {
            assert!(!tampered.authentic());
        }
        let req = CredentialRequest::sign(&w, "standard", 7, &mut rng);
        assert!(req.authentic());
        assert!(!CredentialRequest {
            day: 8,
            ..req.clone()
        }
        .authentic());
        assert!(!CredentialRequest {
            class: "x".into(),
            ..req.clone()
        }
        .authentic());
        // A registration signature is not a request signature for the same key.
        let forged = CredentialRequest {
            signature: reg.signature,
            ..req
        };
        assert!(!forged.authentic());
    }
}
