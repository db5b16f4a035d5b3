//! Keysets: one BLS12-381 issuer key per (kind, epoch, denomination 2^k, policy class).
//!
//! The keyset id is the BLAKE2b-256 hash (tag [`tags::KEYSET_ID`]) of the encoded public
//! parameters, so a coin naming a keyset id commits to its kind, epoch, value, class,
//! windows and public key at once; a published list whose entries do not hash to their ids
//! is refused on load.

use std::collections::HashMap;

use microcash_kernels::bls;
use serde::{Deserialize, Serialize};

use super::encoding::{Encode, Writer};
use super::tags;

/// Largest denomination exponent: coins are worth 2^0 … 2^MAX minor units.
pub const DENOMINATION_EXP_MAX: u8 = 30;
/// Longest policy-class name.
pub const POLICY_CLASS_LEN_MAX: usize = 32;

/// Keyset id: hash of the public parameters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeysetId(pub [u8; 32]);

impl core::fmt::Debug for KeysetId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeysetId({})", hex::encode(&self.0[..8]))
    }
}

impl core::fmt::Display for KeysetId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// What a keyset's signatures certify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeysetKind {
    /// Coins: value-bearing, transferable.
    Coin,
    /// Allowance tokens: the right to receive that much value (regulation).
    Allowance,
}

impl KeysetKind {
    /// The byte this kind is encoded as (keyset preimages, wallet journals).
    pub fn tag(self) -> u8 {
        match self {
            KeysetKind::Coin => 1,
            KeysetKind::Allowance => 2,
        }
    }

    /// The kind encoded as `tag`.
    pub fn from_tag(tag: u8) -> Option<KeysetKind> {
        match tag {
            1 => Some(KeysetKind::Coin),
            2 => Some(KeysetKind::Allowance),
            _ => None,
        }
    }
}

/// The time windows of a keyset, in Unix seconds.
///
/// Withdrawals are signed in `[withdraw_from, withdraw_until)`; coins are accepted for
/// deposit in `[withdraw_from, deposit_until)`; after `deposit_until` the keyset is expired
/// and its spent serials can be archived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    /// Start of the withdraw window (and of validity).
    pub withdraw_from: u64,
    /// End (exclusive) of the withdraw window.
    pub withdraw_until: u64,
    /// End (exclusive) of the deposit window: the keyset's expiry.
    pub deposit_until: u64,
}

/// Where a keyset stands at a moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysetPhase {
    /// Before `withdraw_from`.
    NotYetValid,
    /// Withdrawals and deposits allowed.
    Active,
    /// Only deposits allowed (retiring).
    DepositOnly,
    /// At or after `deposit_until`.
    Expired,
}

impl Windows {
    /// The phase at `now`.
    pub fn phase(&self, now: u64) -> KeysetPhase {
        if now < self.withdraw_from {
            KeysetPhase::NotYetValid
        } else if now < self.withdraw_until {
            KeysetPhase::Active
        } else if now < self.deposit_until {
            KeysetPhase::DepositOnly
        } else {
            KeysetPhase::Expired
        }
    }
}

/// The public parameters of one keyset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyset {
    /// Hash of the parameters below.
    pub id: KeysetId,
    /// Coin or allowance.
    pub kind: KeysetKind,
    /// Key epoch (rotation counter).
    pub epoch: u32,
    /// Denomination exponent: the keyset's value is 2^exp minor units.
    pub denomination_exp: u8,
    /// Policy class name (a section of the policy file).
    pub policy_class: String,
    /// Time windows.
    pub windows: Windows,
    /// The issuer's BLS public key (G2).
    pub public_key: bls::PublicKey,
}

/// Why a keyset description was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeysetError {
    /// Denomination exponent too large.
    #[error("denomination exponent {0} exceeds {DENOMINATION_EXP_MAX}")]
    Denomination(u8),
    /// Class name empty, too long or with characters outside [a-z0-9_-].
    #[error("invalid policy class name {0:?}")]
    PolicyClass(String),
    /// Windows out of order.
    #[error("windows must satisfy withdraw_from < withdraw_until <= deposit_until")]
    Windows,
    /// The id does not hash the parameters.
    #[error("keyset id {0} does not match its parameters")]
    IdMismatch(String),
    /// A public key that is not a valid G2 point.
    #[error("invalid public key: {0}")]
    PublicKey(String),
    /// Bad hex or JSON.
    #[error("invalid keyset list: {0}")]
    Format(String),
    /// Two keysets with the same id.
    #[error("duplicate keyset {0}")]
    Duplicate(String),
}

/// Checks a policy-class name: 1–32 bytes of `[a-z0-9_-]`.
pub fn valid_class_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= POLICY_CLASS_LEN_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Keyset {
    /// Builds a keyset from its parameters, computing the id.
    pub fn new(
        kind: KeysetKind,
        epoch: u32,
        denomination_exp: u8,
        policy_class: &str,
        windows: Windows,
        public_key: bls::PublicKey,
    ) -> Result<Keyset, KeysetError> {
        if denomination_exp > DENOMINATION_EXP_MAX {
            return Err(KeysetError::Denomination(denomination_exp));
        }
        if !valid_class_name(policy_class) {
            return Err(KeysetError::PolicyClass(policy_class.to_owned()));
        }
        if !(windows.withdraw_from < windows.withdraw_until
            && windows.withdraw_until <= windows.deposit_until)
        {
            return Err(KeysetError::Windows);
        }
        let mut ks = Keyset {
            id: KeysetId([0; 32]),
            kind,
            epoch,
            denomination_exp,
            policy_class: policy_class.to_owned(),
            windows,
            public_key,
        };
        ks.id = KeysetId(tags::blake2b(tags::KEYSET_ID, &[&ks.to_bytes()]));
        Ok(ks)
    }

    /// The value of every coin (or token) of this keyset, in minor units.
    pub fn value(&self) -> u64 {
        1u64 << self.denomination_exp
    }
}

/// Encoding of the public parameters (the keyset id's preimage), version 1:
/// `01 | kind u8 | epoch u32 | exp u8 | class (u8 len ‖ bytes) | withdraw_from u64 |
/// withdraw_until u64 | deposit_until u64 | public key (96 bytes, compressed G2)`.
impl Encode for Keyset {
    fn encode(&self, w: &mut Writer) {
        w.u8(1)
            .u8(self.kind.tag())
            .u32(self.epoch)
            .u8(self.denomination_exp)
            .short_bytes(self.policy_class.as_bytes())
            .u64(self.windows.withdraw_from)
            .u64(self.windows.withdraw_until)
            .u64(self.windows.deposit_until)
            .bytes(&self.public_key.to_bytes());
    }
}

/// The JSON form of one keyset, as published.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeysetJson {
    /// Hex keyset id.
    pub id: String,
    /// Coin or allowance.
    pub kind: KeysetKind,
    /// Epoch.
    pub epoch: u32,
    /// Value in minor units (2^exp), for readers.
    pub value: u64,
    /// Denomination exponent.
    pub denomination_exp: u8,
    /// Policy class.
    pub policy_class: String,
    /// Windows.
    #[serde(flatten)]
    pub windows: Windows,
    /// Hex compressed G2 public key.
    pub public_key: String,
}

impl From<&Keyset> for KeysetJson {
    fn from(k: &Keyset) -> KeysetJson {
        KeysetJson {
            id: k.id.to_string(),
            kind: k.kind,
            epoch: k.epoch,
            value: k.value(),
            denomination_exp: k.denomination_exp,
            policy_class: k.policy_class.clone(),
            windows: k.windows,
            public_key: hex::encode(k.public_key.to_bytes()),
        }
    }
}

impl TryFrom<&KeysetJson> for Keyset {
    type Error = KeysetError;
    fn try_from(j: &KeysetJson) -> Result<Keyset, KeysetError> {
        let pk_bytes: [u8; 96] = hex::decode(&j.public_key)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| KeysetError::PublicKey("expected 96 hex-encoded bytes".into()))?;
        let pk = bls::PublicKey::from_bytes(&pk_bytes)
            .map_err(|e| KeysetError::PublicKey(e.to_string()))?;
        let ks = Keyset::new(
            j.kind,
            j.epoch,
            j.denomination_exp,
            &j.policy_class,
            j.windows,
            pk,
        )?;
        if ks.id.to_string() != j.id || ks.value() != j.value {
            return Err(KeysetError::IdMismatch(j.id.clone()));
        }
        Ok(ks)
    }
}

/// The public keyset list: what wallets and verifiers load.
#[derive(Clone, Debug, Default)]
pub struct KeysetList {
    by_id: HashMap<KeysetId, Keyset>,
    order: Vec<KeysetId>,
}

impl KeysetList {
    /// Builds a list, refusing duplicate ids.
    pub fn new(keysets: Vec<Keyset>) -> Result<KeysetList, KeysetError> {
        let mut list = KeysetList::default();
        for k in keysets {
            list.push(k)?;
        }
        Ok(list)
    }

    /// Adds a keyset.
    pub fn push(&mut self, k: Keyset) -> Result<(), KeysetError> {
        if self.by_id.contains_key(&k.id) {
            return Err(KeysetError::Duplicate(k.id.to_string()));
        }
        self.order.push(k.id);
        self.by_id.insert(k.id, k);
        Ok(())
    }

    /// Looks up a keyset by id.
    pub fn get(&self, id: &KeysetId) -> Option<&Keyset> {
        self.by_id.get(id)
    }

    /// All keysets in publication order.
    pub fn iter(&self) -> impl Iterator<Item = &Keyset> {
        self.order.iter().filter_map(|id| self.by_id.get(id))
    }

    /// The keyset of `kind`, `class` and value 2^exp that is open for withdrawal at `now`
    /// (the newest epoch if windows overlap).
    pub fn withdrawable(
        &self,
        kind: KeysetKind,
        class: &str,
        exp: u8,
        now: u64,
    ) -> Option<&Keyset> {
        self.iter()
            .filter(|k| {
                k.kind == kind
                    && k.policy_class == class
                    && k.denomination_exp == exp
                    && k.windows.phase(now) == KeysetPhase::Active
            })
            .max_by_key(|k| k.epoch)
    }

    /// The largest epoch number in the list (0 if empty).
    pub fn latest_epoch(&self) -> u32 {
        self.iter().map(|k| k.epoch).max().unwrap_or(0)
    }

    /// The published JSON document.
    pub fn to_json(&self) -> Vec<KeysetJson> {
        self.iter().map(KeysetJson::from).collect()
    }

    /// Loads and checks a published JSON document (every id is recomputed).
    pub fn from_json(items: &[KeysetJson]) -> Result<KeysetList, KeysetError> {
        KeysetList::new(
            items
                .iter()
                .map(Keyset::try_from)
                .collect::<Result<_, _>>()?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(exp: u8) -> Keyset {
        let pk = bls::SecretKey::generate(&mut crate::os_rng()).public_key();
        let w = Windows {
            withdraw_from: 100,
            withdraw_until: 200,
            deposit_until: 300,
        };
        Keyset::new(KeysetKind::Coin, 1, exp, "standard", w, pk).unwrap()
    }

    #[test]
    fn id_commits_to_every_parameter_and_json_round_trips() {
        let k = sample(3);
        let json = KeysetJson::from(&k);
        assert_eq!(Keyset::try_from(&json).unwrap(), k);
        let mut tampered = json.clone();
        tampered.windows.deposit_until += 1;
        assert!(matches!(
            Keyset::try_from(&tampered),
            Err(KeysetError::IdMismatch(_))
        ));
        let mut tampered = json.clone();
        tampered.denomination_exp = 4;
        tampered.value = 16;
        assert!(matches!(
            Keyset::try_from(&tampered),
            Err(KeysetError::IdMismatch(_))
        ));
        let mut tampered = json;
        tampered.kind = KeysetKind::Allowance;
        assert!(matches!(
            Keyset::try_from(&tampered),
            Err(KeysetError::IdMismatch(_))
        ));
    }

    #[test]
    fn phases_follow_the_windows() {
        let w = sample(0).windows;
        assert_eq!(w.phase(99), KeysetPhase::NotYetValid);
        assert_eq!(w.phase(100), KeysetPhase::Active);
        assert_eq!(w.phase(200), KeysetPhase::DepositOnly);
        assert_eq!(w.phase(300), KeysetPhase::Expired);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let pk = bls::SecretKey::generate(&mut crate::os_rng()).public_key();
        let w = Windows {
            withdraw_from: 100,
            withdraw_until: 200,
            deposit_until: 300,
        };
        assert_eq!(
            Keyset::new(KeysetKind::Coin, 1, 31, "s", w, pk),
            Err(KeysetError::Denomination(31))
        );
        assert!(Keyset::new(KeysetKind::Coin, 1, 1, "Bad Name", w, pk).is_err());
        let bad = Windows {
            withdraw_from: 100,
            withdraw_until: 100,
            deposit_until: 300,
        };
        assert_eq!(
            Keyset::new(KeysetKind::Coin, 1, 1, "s", bad, pk),
            Err(KeysetError::Windows)
        );
        let k = sample(1);
        assert!(KeysetList::new(vec![k.clone(), k]).is_err());
    }
}
