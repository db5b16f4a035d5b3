//! Deposits (the final link, to the issuer), swaps (deposits that pay for blinded outputs)
//! and the blinded outputs themselves.

use microcash_kernels::bls::{G1Affine, G1_COMPRESSED_LEN};

use super::coin::{
    allowance_list_digest, decode_deposit_section, encode_section, AllowanceSpend, Coin, Serial,
    V2Section, ALLOWANCES_MAX, COIN_VERSION, LINKS_MAX,
};
use super::credential::Presentation;
use super::encoding::{expect_version, Decode, DecodeError, DecodeReason, Encode, Reader, Writer};
use super::keys::{RedSig, POINT_LEN, SIGNATURE_LEN};
use super::keyset::KeysetId;
use super::tags;

/// Longest account name.
pub const ACCOUNT_NAME_LEN_MAX: usize = 64;
/// Most inputs or outputs of one swap or withdrawal.
pub const OUTPUTS_MAX: usize = 1024;

// The largest deposit the decoder accepts, derived field by field from the limits it
// enforces (layouts: docs/protocol.md §3.3–3.9). A batch reader uses it to refuse a record
// length no valid deposit can have *before* it touches the payload, so these must follow
// every change to the encoding: the test `deposit_bytes_max_is_the_largest_decodable_deposit`
// encodes a maximal deposit and fails if this derivation falls behind.

/// Bytes of a keyset id (`KeysetId`, a BLAKE2b-256 digest).
const KEYSET_ID_LEN: usize = 32;
/// PaymentContext: payment id 16 ‖ amount u64 ‖ time u64.
const PAYMENT_CONTEXT_LEN: usize = 16 + 8 + 8;
/// AllowanceSpend: keyset id ‖ token key K ‖ σ (G1) ‖ RedPallas signature = 176.
const ALLOWANCE_SPEND_LEN: usize = KEYSET_ID_LEN + POINT_LEN + G1_COMPRESSED_LEN + SIGNATURE_LEN;
/// An allowance-spend list: u8 count (≤ `ALLOWANCES_MAX`, checked by `decode_spends`) ‖ spends.
const SPENDS_LEN_MAX: usize = 1 + ALLOWANCES_MAX * ALLOWANCE_SPEND_LEN;
/// Link: E ‖ P ‖ PaymentContext ‖ spend list ‖ signature = 161 + 176·a.
const LINK_LEN_MAX: usize = 2 * POINT_LEN + PAYMENT_CONTEXT_LEN + SPENDS_LEN_MAX + SIGNATURE_LEN;
/// Coin: version ‖ keyset id ‖ X ‖ σ ‖ u8 link count (≤ `LINKS_MAX`, checked by
/// `Coin::decode`) ‖ links = 114 + Σ links.
const COIN_LEN_MAX: usize =
    1 + KEYSET_ID_LEN + POINT_LEN + G1_COMPRESSED_LEN + 1 + LINKS_MAX * LINK_LEN_MAX;
/// CreditTarget: tag ‖ (u8 length ‖ name ≤ `ACCOUNT_NAME_LEN_MAX`) or (swap digest 32).
const TARGET_LEN_MAX: usize = 1 + max(1 + ACCOUNT_NAME_LEN_MAX, 32);

/// The largest encoded [`Deposit`] the decoder can accept: version ‖ coin ‖ target ‖
/// deposit id 16 ‖ time u64 ‖ spend list ‖ signature
/// = 1 + (114 + 64 · (161 + 32 · 176)) + 66 + 16 + 8 + (1 + 32 · 176) + 64 = 376 654 bytes
/// (about 368 KiB: a coin at the 64-link encoding limit with 32 allowance spends on every
/// link and on the deposit). Policy classes cap hops far lower; this is the encoding bound.
pub const DEPOSIT_BYTES_MAX: usize =
    1 + COIN_LEN_MAX + TARGET_LEN_MAX + 16 + 8 + SPENDS_LEN_MAX + SIGNATURE_LEN;

/// Decompression hints of one allowance spend: y of K (32), y of σ (48), y of the
/// signature's R (32).
const ALLOWANCE_SPEND_HINTS_LEN: usize = POINT_LEN + G1_COMPRESSED_LEN + POINT_LEN;
/// Hints of a link: y of E, y of P, its spends, y of its signature's R.
const LINK_HINTS_LEN_MAX: usize =
    2 * POINT_LEN + ALLOWANCES_MAX * ALLOWANCE_SPEND_HINTS_LEN + POINT_LEN;

/// The most decompression-hint bytes a deposit can carry (`Encode::to_bytes_with_hints`: the
/// y coordinate of every point, 32 bytes per Pallas point or signature R, 48 per G1 point):
/// coin (X, σ, links) + deposit spends + the deposit signature's R
/// = (32 + 48 + 64 · (32 + 32 + 32 · 112 + 32)) + 32 · 112 + 32 = 239 216 bytes.
pub const DEPOSIT_HINTS_BYTES_MAX: usize = POINT_LEN
    + G1_COMPRESSED_LEN
    + LINKS_MAX * LINK_HINTS_LEN_MAX
    + ALLOWANCES_MAX * ALLOWANCE_SPEND_HINTS_LEN
    + POINT_LEN;

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

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
    /// Allowance v2: the depositor's presentation for its receipt of the coin (classes
    /// with `allowance_scheme = "v2"`, coins with links); then `allowances` is empty.
    pub presentation: Option<Box<Presentation>>,
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
    pub(crate) fn signed_message(
        body: &[u8],
        spends: &[AllowanceSpend],
        presentation: Option<&Presentation>,
    ) -> Vec<u8> {
        let section = presentation.map_or(V2Section::None, V2Section::Deposit);
        [
            tags::MSG_DEPOSIT,
            body,
            &allowance_list_digest(spends, section),
        ]
        .concat()
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
        let section = self
            .presentation
            .as_deref()
            .map_or(V2Section::None, V2Section::Deposit);
        encode_section(w, &self.allowances, section);
        self.signature.encode(w);
    }
}

impl Decode for Deposit {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        expect_version(r, "deposit", COIN_VERSION)?;
        let coin = Coin::decode(r)?;
        let target = CreditTarget::decode(r)?;
        let deposit_id = r.array("deposit id")?;
        let time = r.u64("time")?;
        let (allowances, presentation) = decode_deposit_section(r)?;
        Ok(Deposit {
            coin,
            target,
            deposit_id,
            time,
            allowances,
            presentation,
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
    w.count_u16(outputs.len());
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

/// The idempotency key of a withdrawal: the account and the blinded outputs. Blinded
/// outputs are uniformly random points, so two honest withdrawals never share one; a
/// repeated request (a retry after a lost answer, a wallet's recovery, a replay by anyone
/// holding the account token) is the same withdrawal.
pub fn withdraw_request_id(account: &AccountName, outputs: &[BlindedOutput]) -> [u8; 32] {
    let mut w = Writer::new();
    w.short_bytes(account.as_str().as_bytes());
    encode_outputs(&mut w, outputs);
    tags::blake2b(tags::WITHDRAW_REQUEST_ID, &[w.as_slice()])
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
        w.u8(COIN_VERSION).count_u16(self.inputs.len());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::coin::{AllowanceToken, Link, PaymentContext};
    use crate::protocol::encoding::DecodeReason;
    use crate::protocol::hints::SERIAL_HINTS_BYTES_MAX;
    use crate::protocol::keys::OwnerSecret;

    /// A deposit at every limit the decoder enforces: `LINKS_MAX` links, `ALLOWANCES_MAX`
    /// spends on each link and on the deposit, the longest account name. Not valid (one key
    /// and one signature everywhere); the decoder does not verify, so it must still decode.
    fn maximal_deposit(links: usize, spends: usize) -> Deposit {
        let mut rng = crate::os_rng();
        let sk = OwnerSecret::generate(&mut rng);
        let key = sk.public();
        let sig = sk.sign(&mut rng, b"max");
        let sigma = crate::protocol::coin::issuer_message_point(&Serial([7; 32]));
        let spend = AllowanceSpend {
            token: AllowanceToken {
                keyset_id: KeysetId([1; 32]),
                key,
                sigma,
            },
            signature: sig,
        };
        let link = Link {
            ephemeral: key,
            one_time_key: key,
            context: PaymentContext {
                payment_id: [2; 16],
                amount: u64::MAX,
                time: u64::MAX,
            },
            allowances: vec![spend; spends],
            v2: None,
            signature: sig,
        };
        Deposit {
            coin: Coin {
                keyset_id: KeysetId([3; 32]),
                coin_key: key,
                sigma,
                links: vec![link; links],
            },
            target: CreditTarget::Account(
                AccountName::new(&"a".repeat(ACCOUNT_NAME_LEN_MAX)).expect("valid name"),
            ),
            deposit_id: [4; 16],
            time: u64::MAX,
            allowances: vec![spend; spends],
            presentation: None,
            signature: sig,
        }
    }

    /// Allowance v2 at its maximum (every link with a commitment and an 8-slot
    /// presentation, and one on the deposit) decodes, and is smaller than the v1 maximum
    /// the limits are derived from.
    #[test]
    fn a_maximal_v2_deposit_decodes_within_deposit_bytes_max() {
        use crate::protocol::coin::LinkV2;
        use crate::protocol::credential::presentation::SLOTS_PER_PRESENTATION_MAX;
        use crate::protocol::credential::{Presentation, SlotTag};
        let presentation = Presentation {
            key_id: [1; 32],
            u: [2; 32],
            c_k: [3; 32],
            c_v: [4; 32],
            commitments: [[5; 32]; 4],
            slots: (0..SLOTS_PER_PRESENTATION_MAX as u16)
                .map(|slot| SlotTag {
                    slot,
                    tag: [6; 32],
                    commitment: [7; 32],
                })
                .collect(),
            responses: [[8; 32]; 5],
            hints: Default::default(),
        };
        let mut d = maximal_deposit(LINKS_MAX, 0);
        for l in &mut d.coin.links {
            l.v2 = Some(LinkV2 {
                stealth_commitment: [9; 32],
                presentation: Some(Box::new(presentation.clone())),
            });
        }
        d.presentation = Some(Box::new(presentation));
        let bytes = d.to_bytes();
        assert!(bytes.len() < DEPOSIT_BYTES_MAX, "{}", bytes.len());
        assert_eq!(Deposit::from_bytes(&bytes).unwrap(), d);
        // A presentation flag other than 0 or 1 is refused.
        let mut one = maximal_deposit(1, 0);
        one.coin.links[0].v2 = Some(LinkV2 {
            stealth_commitment: [9; 32],
            presentation: None,
        });
        let mut bytes = one.to_bytes();
        let flag = bytes.len()
            - 64
            - one.allowances.len()
            - 1
            - 8
            - 16
            - (1 + 1 + ACCOUNT_NAME_LEN_MAX)
            - 64
            - 1;
        assert_eq!(bytes[flag], 0);
        bytes[flag] = 2;
        assert!(Deposit::from_bytes(&bytes).is_err());
    }

    #[test]
    fn deposit_bytes_max_is_the_largest_decodable_deposit() {
        assert_eq!(DEPOSIT_BYTES_MAX, 376_654, "the figure the docs quote");
        assert_eq!(
            DEPOSIT_HINTS_BYTES_MAX, 239_216,
            "the figure the docs quote"
        );
        let max = maximal_deposit(LINKS_MAX, ALLOWANCES_MAX);
        let (bytes, hints) = max.to_bytes_with_hints();
        // A new field, or a wider one, makes the maximal deposit longer than the derivation.
        assert_eq!(bytes.len(), DEPOSIT_BYTES_MAX);
        assert_eq!(hints.len(), DEPOSIT_HINTS_BYTES_MAX);
        assert_eq!(Deposit::from_bytes(&bytes).unwrap(), max);
        assert_eq!(Deposit::from_bytes_with_hints(&bytes, &hints).unwrap(), max);
        // One serial hint per issuer signature: the coin's σ and every token's.
        assert_eq!(SERIAL_HINTS_BYTES_MAX, 199_776, "the figure the docs quote");
        let serial_hints = crate::protocol::hints::SerialHints::of(&max).to_bytes();
        assert_eq!(serial_hints.len(), SERIAL_HINTS_BYTES_MAX);

        // The decoder's limits are the constants the derivation uses: one more link or
        // spend than they allow is refused (if a limit grew, this would decode).
        let too_many = |d: Deposit, what: &str| {
            let e = Deposit::from_bytes(&d.to_bytes()).unwrap_err();
            assert!(
                matches!(e.reason, DecodeReason::TooMany { what: w, .. } if w == what),
                "{e}"
            );
        };
        too_many(maximal_deposit(LINKS_MAX + 1, 0), "links");
        too_many(maximal_deposit(1, ALLOWANCES_MAX + 1), "allowance spends");
        let mut spends = maximal_deposit(0, 0);
        spends.allowances = maximal_deposit(0, ALLOWANCES_MAX + 1).allowances;
        too_many(spends, "allowance spends");
        // The account name: lengthen the maximal one by a byte in place.
        let d = maximal_deposit(0, 0);
        let mut bytes = d.to_bytes();
        let at = 1 + d.coin.to_bytes().len() + 1; // version, coin, target tag
        assert_eq!(bytes[at] as usize, ACCOUNT_NAME_LEN_MAX);
        bytes[at] += 1;
        bytes.insert(at + 1, b'a');
        let e = Deposit::from_bytes(&bytes).unwrap_err();
        assert!(
            matches!(
                e.reason,
                DecodeReason::TooMany {
                    what: "account name",
                    ..
                }
            ),
            "{e}"
        );
    }
}
