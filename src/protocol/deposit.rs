//! Deposits (the final link, to the issuer), swaps (deposits that pay for blinded outputs)
//! and the blinded outputs themselves.

use microcash_kernels::bls::G1Affine;

use super::coin::{
    allowance_list_digest, decode_spends, encode_spends, AllowanceSpend, Coin, Serial, COIN_VERSION,
};
use super::encoding::{expect_version, Decode, DecodeError, DecodeReason, Encode, Reader, Writer};
use super::keys::RedSig;
use super::keyset::KeysetId;
use super::tags;

/// Longest account name.
pub const ACCOUNT_NAME_LEN_MAX: usize = 64;
/// Most inputs or outputs of one swap or withdrawal.
pub const OUTPUTS_MAX: usize = 1024;

/// An issuer account name: 1–64 bytes of `[A-Za-z0-9_.@-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountName(String);

impl AccountName {
    /// Validates a name.
    pub fn new(name: &str) -> Option<AccountName> {
        let ok = !name.is_empty()
            && name.len() <= ACCOUNT_NAME_LEN_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b));
        ok.then(|| AccountName(name.to_owned()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl core::fmt::Display for AccountName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a deposit credits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreditTarget {
    /// An issuer account.
    Account(AccountName),
    /// The blinded outputs of a swap, by their digest.
    Swap([u8; 32]),
}

impl Encode for CreditTarget {
    fn encode(&self, w: &mut Writer) {
        match self {
            CreditTarget::Account(a) => w.u8(1).short_bytes(a.as_str().as_bytes()),
            CreditTarget::Swap(d) => w.u8(2).bytes(d),
        };
    }
}

impl Decode for CreditTarget {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        match r.u8("credit target")? {
            1 => {
                let at = r.offset();
                let raw = r.short_bytes("account name", ACCOUNT_NAME_LEN_MAX)?;
                let name = std::str::from_utf8(raw)
                    .ok()
                    .and_then(AccountName::new)
                    .ok_or(DecodeError {
                        offset: at,
                        reason: DecodeReason::BadValue {
                            what: "account name",
                            detail: "1-64 chars of [A-Za-z0-9_.@-]".into(),
                        },
                    })?;
                Ok(CreditTarget::Account(name))
            }
            2 => Ok(CreditTarget::Swap(r.array("swap outputs digest")?)),
            t => Err(DecodeError {
                offset: at,
                reason: DecodeReason::BadValue {
                    what: "credit target",
                    detail: format!("unknown tag {t}"),
                },
            }),
        }
    }
}

/// A deposit: the coin, what to credit, a unique deposit id, the allowance spends required
/// when the depositor received the coin, and the current owner's signature over all of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposit {
    /// The coin.
    pub coin: Coin,
    /// Account or swap to credit.
    pub target: CreditTarget,
    /// Random id; a resubmission with the same id (same bytes) is idempotent.
    pub deposit_id: [u8; 16],
    /// Depositor's clock, Unix seconds.
    pub time: u64,
    /// Allowance spends (required if the coin carries links and its class requires them).
    pub allowances: Vec<AllowanceSpend>,
    /// Signature by the coin's current owner.
    pub signature: RedSig,
}

impl Deposit {
    /// The body the owner signs: serial ‖ dₙ ‖ target ‖ deposit_id ‖ time, where dₙ is the
    /// coin's last chain digest (callers have it already: computing it hashes every link).
    pub(crate) fn body(
        serial: &Serial,
        last_digest: &[u8; 32],
        target: &CreditTarget,
        deposit_id: &[u8; 16],
        time: u64,
    ) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(&serial.0).bytes(last_digest);
        target.encode(&mut w);
        w.bytes(deposit_id).u64(time);
        w.finish()
    }

    /// The full message the owner signs.
    pub(crate) fn signed_message(body: &[u8], spends: &[AllowanceSpend]) -> Vec<u8> {
        [tags::MSG_DEPOSIT, body, &allowance_list_digest(spends)].concat()
    }

    /// Digest of the whole deposit message: the idempotency key of its receipt.
    pub fn digest(&self) -> [u8; 32] {
        tags::blake2b(tags::DEPOSIT_DIGEST, &[&self.to_bytes()])
    }
}

impl Encode for Deposit {
    fn encode(&self, w: &mut Writer) {
        w.u8(COIN_VERSION);
        self.coin.encode(w);
        self.target.encode(w);
        w.bytes(&self.deposit_id).u64(self.time);
        encode_spends(w, &self.allowances);
        self.signature.encode(w);
    }
}

impl Decode for Deposit {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        expect_version(r, "deposit", COIN_VERSION)?;
        Ok(Deposit {
            coin: Coin::decode(r)?,
            target: CreditTarget::decode(r)?,
            deposit_id: r.array("deposit id")?,
            time: r.u64("time")?,
            allowances: decode_spends(r)?,
            signature: RedSig::decode(r, "deposit signature")?,
        })
    }
}

/// A blinded message for the issuer to sign under a keyset: B = ρ·H1(serial).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlindedOutput {
    /// The keyset (fixes the value).
    pub keyset_id: KeysetId,
    /// B.
    pub blinded: G1Affine,
}

impl Encode for BlindedOutput {
    fn encode(&self, w: &mut Writer) {
        w.bytes(&self.keyset_id.0)
            .bytes(&self.blinded.to_compressed());
    }
}

impl Decode for BlindedOutput {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let keyset_id = KeysetId(r.array("keyset id")?);
        let at = r.offset();
        let bytes = r.array::<48>("blinded message")?;
        let blinded = G1Affine::from_compressed(&bytes).map_err(|e| DecodeError {
            offset: at,
            reason: DecodeReason::BadPoint {
                what: "blinded message",
                detail: e.to_string(),
            },
        })?;
        Ok(BlindedOutput { keyset_id, blinded })
    }
}

/// Encodes a list of blinded outputs (u16 count).
pub fn encode_outputs(w: &mut Writer, outputs: &[BlindedOutput]) {
    w.u16(u16::try_from(outputs.len()).expect("≤ OUTPUTS_MAX"));
    for o in outputs {
        o.encode(w);
    }
}

/// Decodes a list of blinded outputs.
pub fn decode_outputs(r: &mut Reader<'_>) -> Result<Vec<BlindedOutput>, DecodeError> {
    let n = r.count_u16("outputs", OUTPUTS_MAX)?;
    (0..n).map(|_| BlindedOutput::decode(r)).collect()
}

/// Digest of a list of blinded outputs under `tag` (what swap inputs / allowance requests
/// authorise).
pub fn outputs_digest(tag: &[u8], outputs: &[BlindedOutput]) -> [u8; 32] {
    let mut w = Writer::new();
    encode_outputs(&mut w, outputs);
    tags::blake2b(tag, &[w.as_slice()])
}

/// A swap: inputs deposited to `CreditTarget::Swap(digest of outputs)`, outputs signed only
/// after the inputs are durably spent. Value: Σ inputs = Σ outputs + fee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapRequest {
    /// The spent coins.
    pub inputs: Vec<Deposit>,
    /// The blinded outputs to sign.
    pub outputs: Vec<BlindedOutput>,
}

impl SwapRequest {
    /// The digest every input must name as its target.
    pub fn outputs_digest(&self) -> [u8; 32] {
        outputs_digest(tags::SWAP_OUTPUTS, &self.outputs)
    }
}

impl Encode for SwapRequest {
    fn encode(&self, w: &mut Writer) {
        w.u8(COIN_VERSION)
            .u16(u16::try_from(self.inputs.len()).expect("≤ OUTPUTS_MAX"));
        for d in &self.inputs {
            d.encode(w);
        }
        encode_outputs(w, &self.outputs);
    }
}

impl Decode for SwapRequest {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        expect_version(r, "swap", COIN_VERSION)?;
        let n = r.count_u16("inputs", OUTPUTS_MAX)?;
        let inputs = (0..n)
            .map(|_| Deposit::decode(r))
            .collect::<Result<_, _>>()?;
        Ok(SwapRequest {
            inputs,
            outputs: decode_outputs(r)?,
        })
    }
}
