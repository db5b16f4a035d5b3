//! Allowance requests: a registered wallet asks for blind-signed allowance tokens for one
//! UTC day, authenticated by a signature of its address key. The issuer knows who asks
//! (that is how it enforces the daily cap) but not which tokens it signed.

use rand_core::CryptoRng;

use super::coin::COIN_VERSION;
use super::deposit::{decode_outputs, encode_outputs, outputs_digest, BlindedOutput};
use super::encoding::{expect_version, Decode, DecodeError, Encode, Reader, Writer};
use super::keys::{OwnerKey, OwnerSecret, RedSig};
use super::tags;

/// A signed request for allowance tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowanceRequest {
    /// The registered wallet's address key W.
    pub address: OwnerKey,
    /// UTC day number (Unix seconds / 86400) the allowance counts against.
    pub day: u64,
    /// Blinded tokens to sign (allowance keysets).
    pub outputs: Vec<BlindedOutput>,
    /// Signature by w over the request.
    pub signature: RedSig,
}

fn request_message(address: &OwnerKey, day: u64, outputs: &[BlindedOutput]) -> Vec<u8> {
    let digest = outputs_digest(tags::ALLOWANCE_REQUEST, outputs);
    [
        tags::MSG_ALLOWANCE_REQUEST,
        &address.to_bytes(),
        &day.to_le_bytes(),
        &digest,
    ]
    .concat()
}

impl AllowanceRequest {
    /// Builds and signs a request with the wallet's address secret.
    pub fn sign<R: CryptoRng + ?Sized>(
        wallet: &OwnerSecret,
        day: u64,
        outputs: Vec<BlindedOutput>,
        rng: &mut R,
    ) -> Self {
        let address = wallet.public();
        let signature = wallet.sign(rng, &request_message(&address, day, &outputs));
        AllowanceRequest {
            address,
            day,
            outputs,
            signature,
        }
    }

    /// The request's identity: the digest of what the wallet signed (address, day,
    /// outputs). A replay of the request — by the wallet after a lost answer, or by anyone
    /// who saw it — has the same identity, and the issuer answers it without charging the
    /// day's cap again (signing is deterministic, so the answer is the same).
    pub fn request_id(&self) -> [u8; 32] {
        tags::blake2b(
            tags::ALLOWANCE_REQUEST_ID,
            &[&request_message(&self.address, self.day, &self.outputs)],
        )
    }

    /// Whether the signature is valid for the request.
    pub fn authentic(&self) -> bool {
        self.address.verify(
            &request_message(&self.address, self.day, &self.outputs),
            &self.signature,
        )
    }
}

impl Encode for AllowanceRequest {
    fn encode(&self, w: &mut Writer) {
        w.u8(COIN_VERSION);
        self.address.encode(w);
        w.u64(self.day);
        encode_outputs(w, &self.outputs);
        self.signature.encode(w);
    }
}

impl Decode for AllowanceRequest {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        expect_version(r, "allowance request", COIN_VERSION)?;
        Ok(AllowanceRequest {
            address: OwnerKey::decode(r, "address")?,
            day: r.u64("day")?,
            outputs: decode_outputs(r)?,
            signature: RedSig::decode(r, "request signature")?,
        })
    }
}
