//! What a wallet sends the issuer for allowance v2: its registration (proving possession of
//! its address secret) and its daily credential request. Both are signed by the address
//! key W, under their own message prefixes.

use rand_core::CryptoRng;

use crate::protocol::keys::{OwnerKey, OwnerSecret, RedSig};
use crate::protocol::tags;

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
