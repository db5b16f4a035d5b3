//! Coins, payment links, allowance tokens and the digests and signed messages built from
//! them. Byte layouts are in `docs/protocol.md` ("Messages").

use microcash_kernels::bls::{self, G1Affine};

use super::credential::Presentation;
use super::encoding::{expect_version, Decode, DecodeError, DecodeReason, Encode, Reader, Writer};
use super::keys::{OwnerKey, RedSig};
use super::keyset::{KeysetId, KeysetKind};
use super::tags;

/// Most links a coin encoding may carry (policy classes cap hops further).
pub const LINKS_MAX: usize = 64;
/// Most allowance spends attached to one link or deposit.
pub const ALLOWANCES_MAX: usize = 32;
/// Most coins in one payment message.
pub const PAYMENT_COINS_MAX: usize = 1024;
/// Version byte of coin and payment encodings.
pub const COIN_VERSION: u8 = 1;

/// A coin's (or allowance token's) serial: H_serial(keyset_id ‖ X). The spent set's key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(pub [u8; 32]);

impl core::fmt::Debug for Serial {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Serial({})", hex::encode(&self.0[..8]))
    }
}

impl core::fmt::Display for Serial {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serial {
    /// The serial of the coin or token with key `key` under `keyset` of `kind`.
    pub fn derive(kind: KeysetKind, keyset: &KeysetId, key: &OwnerKey) -> Serial {
        let tag = match kind {
            KeysetKind::Coin => tags::SERIAL_COIN,
            KeysetKind::Allowance => tags::SERIAL_ALLOWANCE,
        };
        Serial(tags::blake2b(tag, &[&keyset.0, &key.to_bytes()]))
    }
}

/// What the issuer's signature σ is over: H1(serial) with [`tags::H1_DST`].
pub fn issuer_message_point(serial: &Serial) -> G1Affine {
    bls::hash_to_g1(&serial.0, tags::H1_DST)
}

fn decode_sigma(r: &mut Reader<'_>) -> Result<G1Affine, DecodeError> {
    let at = r.offset();
    let bytes = r.array::<48>("issuer signature")?;
    let point = match r.hint::<48>("issuer signature")? {
        Some(y) => G1Affine::from_compressed_with_y(&bytes, &y),
        None => G1Affine::from_compressed(&bytes),
    };
    point.map_err(|e| DecodeError {
        offset: at,
        reason: DecodeReason::BadPoint {
            what: "issuer signature",
            detail: e.to_string(),
        },
    })
}

/// The context a payer attaches to a link: which payment, how much in total, when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentContext {
    /// Random id shared by the coins of one payment.
    pub payment_id: [u8; 16],
    /// The total amount of the payment the coin is part of, minor units.
    pub amount: u64,
    /// Payer's clock, Unix seconds.
    pub time: u64,
}

impl Encode for PaymentContext {
    fn encode(&self, w: &mut Writer) {
        w.bytes(&self.payment_id).u64(self.amount).u64(self.time);
    }
}

impl Decode for PaymentContext {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PaymentContext {
            payment_id: r.array("payment id")?,
            amount: r.u64("amount")?,
            time: r.u64("time")?,
        })
    }
}

/// An allowance token as carried in a message: keyset, key, issuer signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowanceToken {
    /// Allowance keyset.
    pub keyset_id: KeysetId,
    /// The token's key (whose secret authorises spending it).
    pub key: OwnerKey,
    /// Issuer signature over H1(serial).
    pub sigma: G1Affine,
}

impl AllowanceToken {
    /// The token's serial.
    pub fn serial(&self) -> Serial {
        Serial::derive(KeysetKind::Allowance, &self.keyset_id, &self.key)
    }
}

impl Encode for AllowanceToken {
    fn encode(&self, w: &mut Writer) {
        w.bytes(&self.keyset_id.0);
        self.key.encode(w);
        w.bytes(&self.sigma.to_compressed());
        w.hint(|| self.sigma.y_bytes().to_vec());
    }
}

impl Decode for AllowanceToken {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AllowanceToken {
            keyset_id: KeysetId(r.array("allowance keyset id")?),
            key: OwnerKey::decode(r, "allowance key")?,
            sigma: decode_sigma(r)?,
        })
    }
}

/// An allowance token spent on a link or deposit: the token and its key's signature over
/// the binding of what it is spent on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowanceSpend {
    /// The token.
    pub token: AllowanceToken,
    /// Signature by the token key over `MSG_ALLOWANCE_SPEND ‖ serial ‖ binding`.
    pub signature: RedSig,
}

impl Encode for AllowanceSpend {
    fn encode(&self, w: &mut Writer) {
        self.token.encode(w);
        self.signature.encode(w);
    }
}

impl Decode for AllowanceSpend {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AllowanceSpend {
            token: AllowanceToken::decode(r)?,
            signature: RedSig::decode(r, "allowance signature")?,
        })
    }
}

/// The byte that opens an allowance v2 section where a v1 spend count would be (a count is
/// at most `ALLOWANCES_MAX` = 32, so the two never meet).
pub const ALLOWANCE_V2_MARKER: u8 = 0x80;

/// Allowance v2 data of a link: the payer's commitment to the stealth tweak of the link's
/// one-time key, and the signer's presentation for its own receipt of the coin (from the
/// second link on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkV2 {
    /// C_s = s·G + t·H for P = W + s·G (compressed Pallas point).
    pub stealth_commitment: [u8; 32],
    /// The signer's presentation for the previous link's receipt.
    pub presentation: Option<Box<Presentation>>,
}

/// The v2 part of a link or deposit, for encoding its allowance section.
#[derive(Clone, Copy, Debug)]
pub(crate) enum V2Section<'a> {
    /// A v1 section (token spends, possibly none).
    None,
    /// A link's v2 data.
    Link(&'a LinkV2),
    /// A deposit's presentation.
    Deposit(&'a Presentation),
}

/// Writes an allowance section: the v1 spend list, or the v2 marker and v2 data.
pub(crate) fn encode_section(w: &mut Writer, spends: &[AllowanceSpend], v2: V2Section<'_>) {
    match v2 {
        V2Section::None => {
            w.count_u8(spends.len());
            for s in spends {
                s.encode(w);
            }
        }
        V2Section::Link(v) => {
            w.u8(ALLOWANCE_V2_MARKER).bytes(&v.stealth_commitment);
            match &v.presentation {
                None => {
                    w.u8(0);
                }
                Some(p) => {
                    w.u8(1);
                    p.encode(w);
                }
            }
        }
        V2Section::Deposit(p) => {
            w.u8(ALLOWANCE_V2_MARKER);
            p.encode(w);
        }
    }
}

/// Reads an allowance section's first byte: `None` for the v2 marker, else the v1 spends.
fn decode_v1_or_marker(r: &mut Reader<'_>) -> Result<Option<Vec<AllowanceSpend>>, DecodeError> {
    let at = r.offset();
    let first = r.u8("allowance spends")?;
    if first == ALLOWANCE_V2_MARKER {
        return Ok(None);
    }
    let n = first as usize;
    if n > ALLOWANCES_MAX {
        return Err(DecodeError {
            offset: at,
            reason: DecodeReason::TooMany {
                what: "allowance spends",
                count: n,
                max: ALLOWANCES_MAX,
            },
        });
    }
    (0..n)
        .map(|_| AllowanceSpend::decode(r))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Reads a link's allowance section.
pub(crate) fn decode_link_section(
    r: &mut Reader<'_>,
) -> Result<(Vec<AllowanceSpend>, Option<LinkV2>), DecodeError> {
    match decode_v1_or_marker(r)? {
        Some(spends) => Ok((spends, None)),
        None => {
            let stealth_commitment = r.array("stealth commitment")?;
            let at = r.offset();
            let presentation = match r.u8("presentation flag")? {
                0 => None,
                1 => Some(Box::new(Presentation::decode(r)?)),
                other => {
                    return Err(DecodeError {
                        offset: at,
                        reason: DecodeReason::BadValue {
                            what: "presentation flag",
                            detail: format!("{other} is neither 0 nor 1"),
                        },
                    })
                }
            };
            Ok((
                Vec::new(),
                Some(LinkV2 {
                    stealth_commitment,
                    presentation,
                }),
            ))
        }
    }
}

/// Reads a deposit's allowance section.
pub(crate) fn decode_deposit_section(
    r: &mut Reader<'_>,
) -> Result<(Vec<AllowanceSpend>, Option<Box<Presentation>>), DecodeError> {
    match decode_v1_or_marker(r)? {
        Some(spends) => Ok((spends, None)),
        None => Ok((Vec::new(), Some(Box::new(Presentation::decode(r)?)))),
    }
}

/// The message an allowance token's key signs: the token serial and the binding.
pub(crate) fn allowance_spend_message(serial: &Serial, binding: &[u8; 32]) -> Vec<u8> {
    [tags::MSG_ALLOWANCE_SPEND, &serial.0, binding].concat()
}

/// Digest of an allowance section (what the owner's signature commits to): for v1 the
/// spend list, for v2 the marker and the v2 data.
pub(crate) fn allowance_list_digest(spends: &[AllowanceSpend], v2: V2Section<'_>) -> [u8; 32] {
    let mut w = Writer::new();
    encode_section(&mut w, spends, v2);
    tags::blake2b(tags::ALLOWANCE_LIST, &[w.as_slice()])
}

/// Binding of allowance spends to a link or deposit body (`kind`: 1 link, 2 deposit).
pub(crate) fn allowance_binding(kind: u8, body: &[u8]) -> [u8; 32] {
    tags::blake2b(tags::ALLOWANCE_BINDING, &[&[kind], body])
}

/// One payment hop: the payer's ephemeral key E, the payee's one-time key P, the payment
/// context, allowance spends (when the signer had received the coin) and the signature of
/// the coin's owner before this link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// E = e·G.
    pub ephemeral: OwnerKey,
    /// P = W + H_s(e·W ‖ E)·G, the new owner key.
    pub one_time_key: OwnerKey,
    /// Payment context.
    pub context: PaymentContext,
    /// Allowance spends covering the coin's value (required from the second link on).
    pub allowances: Vec<AllowanceSpend>,
    /// Allowance v2 data (classes with `allowance_scheme = "v2"`); then `allowances` is
    /// empty.
    pub v2: Option<LinkV2>,
    /// Signature by the previous owner.
    pub signature: RedSig,
}

impl Link {
    /// The link body the owner signs (without the allowance list and prefix).
    pub(crate) fn body(
        serial: &Serial,
        prev_digest: &[u8; 32],
        e: &OwnerKey,
        p: &OwnerKey,
        ctx: &PaymentContext,
    ) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(&serial.0).bytes(prev_digest);
        e.encode(&mut w);
        p.encode(&mut w);
        ctx.encode(&mut w);
        w.finish()
    }

    /// The full message the previous owner signs.
    pub(crate) fn signed_message(
        body: &[u8],
        spends: &[AllowanceSpend],
        v2: Option<&LinkV2>,
    ) -> Vec<u8> {
        let section = v2.map_or(V2Section::None, V2Section::Link);
        [
            tags::MSG_LINK,
            body,
            &allowance_list_digest(spends, section),
        ]
        .concat()
    }

    /// The v2 section view of this link.
    pub(crate) fn section(&self) -> V2Section<'_> {
        self.v2.as_ref().map_or(V2Section::None, V2Section::Link)
    }
}

impl Encode for Link {
    fn encode(&self, w: &mut Writer) {
        self.ephemeral.encode(w);
        self.one_time_key.encode(w);
        self.context.encode(w);
        encode_section(w, &self.allowances, self.section());
        self.signature.encode(w);
    }
}

impl Decode for Link {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let ephemeral = OwnerKey::decode(r, "ephemeral key E")?;
        let one_time_key = OwnerKey::decode(r, "one-time key P")?;
        let context = PaymentContext::decode(r)?;
        let (allowances, v2) = decode_link_section(r)?;
        Ok(Link {
            ephemeral,
            one_time_key,
            context,
            allowances,
            v2,
            signature: RedSig::decode(r, "link signature")?,
        })
    }
}

/// A coin: (keyset_id, X, σ, links). Its owner holds the secret of the last key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coin {
    /// The keyset that signed it (fixes value, class, windows).
    pub keyset_id: KeysetId,
    /// The coin key X = x·G chosen at withdrawal.
    pub coin_key: OwnerKey,
    /// σ = sk·H1(serial).
    pub sigma: G1Affine,
    /// Payment links, oldest first.
    pub links: Vec<Link>,
}

impl Coin {
    /// The coin's serial.
    pub fn serial(&self) -> Serial {
        Serial::derive(KeysetKind::Coin, &self.keyset_id, &self.coin_key)
    }

    /// The current owner's key: X, or the last link's P.
    pub fn owner_key(&self) -> &OwnerKey {
        self.links
            .last()
            .map(|l| &l.one_time_key)
            .unwrap_or(&self.coin_key)
    }

    /// Chain digests d₀ … dₙ: d₀ = H(serial ‖ σ), dᵢ₊₁ = H(dᵢ ‖ linkᵢ). dᵢ is what link i
    /// signs as "previous-link digest"; dₙ is what a deposit signs. Binding σ into d₀ means
    /// only the coin's owner chooses which σ (of those the pairing accepts) the coin carries.
    pub fn chain_digests(&self) -> Vec<[u8; 32]> {
        let mut out = Vec::with_capacity(self.links.len() + 1);
        let mut d: [u8; 32] = tags::blake2b(
            tags::LINK_CHAIN,
            &[&self.serial().0, &self.sigma.to_compressed()],
        );
        out.push(d);
        for link in &self.links {
            d = tags::blake2b(tags::LINK_CHAIN, &[&d, &link.to_bytes()]);
            out.push(d);
        }
        out
    }
}

impl Encode for Coin {
    fn encode(&self, w: &mut Writer) {
        w.u8(COIN_VERSION).bytes(&self.keyset_id.0);
        self.coin_key.encode(w);
        w.bytes(&self.sigma.to_compressed());
        w.hint(|| self.sigma.y_bytes().to_vec());
        w.count_u8(self.links.len());
        for l in &self.links {
            l.encode(w);
        }
    }
}

impl Decode for Coin {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        expect_version(r, "coin", COIN_VERSION)?;
        let keyset_id = KeysetId(r.array("keyset id")?);
        let coin_key = OwnerKey::decode(r, "coin key X")?;
        let sigma = decode_sigma(r)?;
        let n = r.count_u8("links", LINKS_MAX)?;
        let links = (0..n).map(|_| Link::decode(r)).collect::<Result<_, _>>()?;
        Ok(Coin {
            keyset_id,
            coin_key,
            sigma,
            links,
        })
    }
}

/// What a payer hands the payee: the coins of one payment, each ending in a link to the
/// payee's one-time keys. Only the payee can recognise and spend them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// The coins.
    pub coins: Vec<Coin>,
}

impl Encode for Payment {
    fn encode(&self, w: &mut Writer) {
        w.u8(COIN_VERSION).count_u16(self.coins.len());
        for c in &self.coins {
            c.encode(w);
        }
    }
}

impl Decode for Payment {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        expect_version(r, "payment", COIN_VERSION)?;
        let n = r.count_u16("coins", PAYMENT_COINS_MAX)?;
        Ok(Payment {
            coins: (0..n).map(|_| Coin::decode(r)).collect::<Result<_, _>>()?,
        })
    }
}
