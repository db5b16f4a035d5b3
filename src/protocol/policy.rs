//! The declarative policy file (TOML): usage rules per policy class, the allowance (receive
//! limit) rules, epoch lengths and the swap fee.
//!
//! ```toml
//! [epochs]
//! withdraw_days = 30      # length of each epoch's withdraw window
//! deposit_days = 90       # coins stay depositable this long after the window closes
//! max_denomination_exp = 16
//!
//! [allowance]
//! daily_limit = 1000      # minor units a registered wallet may receive per UTC day
//!
//! [swap]
//! fee = 0                 # minor units kept by the issuer per swap
//!
//! [class.standard]
//! max_hops = 8
//! deposit_deadline_days = 60
//! min_payment = 1
//! max_payment = 1000000
//! allowance_required = true
//! merchant_only_deposit = false
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keyset::valid_class_name;

/// Seconds per day (policy windows are in days, UTC).
pub const DAY_SECS: u64 = 86_400;

/// The whole policy file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Epoch lengths.
    pub epochs: EpochPolicy,
    /// Receive-limit rules.
    pub allowance: AllowancePolicy,
    /// Swap rules.
    pub swap: SwapPolicy,
    /// Usage rules per policy class.
    pub class: BTreeMap<String, ClassPolicy>,
}

/// Epoch lengths and denominations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochPolicy {
    /// Length of the withdraw window, days.
    pub withdraw_days: u64,
    /// How long coins stay depositable after the withdraw window closes, days.
    pub deposit_days: u64,
    /// Largest denomination exponent issued (coins up to 2^exp minor units).
    pub max_denomination_exp: u8,
}

/// The receive limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowancePolicy {
    /// Allowance a registered wallet may obtain (v1) or receive (v2) per UTC day, in minor
    /// units.
    pub daily_limit: u64,
    /// Allowance v2: the day's slots as `[value, count]` groups (each slot is used once per
    /// wallet and day; their values sum to at most `daily_limit`). Empty: the default
    /// schedule of [`default_slot_schedule`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<(u64, u32)>,
}

/// Most slots a day's schedule may have (slot indices are u16).
pub const SLOTS_MAX: usize = 4096;

/// The default v2 schedule for a daily limit L: the limit shared equally among the power-of-
/// two values 1 … 2^J ≤ L (so small and large receipts both find slots), then what is left
/// as single slots of the largest powers of two that fit. Values sum to exactly L.
/// L = 1000: 100×1, 50×2, 25×4, 12×8, 6×16, 3×32, 1×64, then 256, 64, 16, 8, 4 — 202 slots.
pub fn default_slot_schedule(daily_limit: u64) -> Vec<(u64, u32)> {
    if daily_limit == 0 {
        return Vec::new();
    }
    let levels = u64::from(63 - daily_limit.leading_zeros()) + 1;
    let share = daily_limit / levels;
    let mut groups: Vec<(u64, u32)> = Vec::new();
    let mut used = 0u64;
    for j in 0..levels {
        let value = 1u64 << j;
        let count = share / value;
        if count > 0 {
            groups.push((value, count as u32));
            used += value * count;
        }
    }
    let mut rest = daily_limit - used;
    while rest > 0 {
        let value = 1u64 << (63 - rest.leading_zeros());
        groups.push((value, 1));
        rest -= value;
    }
    groups
}

/// Swap (split/merge) rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwapPolicy {
    /// Fee per swap, minor units.
    pub fee: u64,
}

/// Usage rules of one policy class.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassPolicy {
    /// Most payment links a coin may carry.
    pub max_hops: u8,
    /// Deposits must happen within this many days after the withdraw window closes.
    pub deposit_deadline_days: u64,
    /// Smallest declared payment amount.
    pub min_payment: u64,
    /// Largest declared payment amount.
    pub max_payment: u64,
    /// Whether received coins need allowance tokens to be re-spent or deposited.
    pub allowance_required: bool,
    /// Whether deposits to accounts must go to merchant accounts.
    pub merchant_only_deposit: bool,
    /// How received coins prove the receive limit: `v1` bearer tokens, or `v2` credentials
    /// bound to the receiving wallet (`docs/protocol.md` §8.5).
    #[serde(default, skip_serializing_if = "AllowanceScheme::is_v1")]
    pub allowance_scheme: AllowanceScheme,
}

/// The receive-limit scheme of a class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllowanceScheme {
    /// Blind-signed bearer tokens, capped at issuance.
    #[default]
    V1,
    /// Receiver-bound credentials with per-day slot tags, capped at redemption.
    V2,
}

impl AllowanceScheme {
    /// Whether this is v1 (the default, left out of written policy files).
    pub fn is_v1(&self) -> bool {
        *self == AllowanceScheme::V1
    }
}

/// A named rule, as reported in `policy_violation(rule)` verdicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyRule {
    /// Deposited after the class's deposit deadline.
    DepositDeadline,
    /// A payment below the class minimum.
    MinPayment,
    /// A payment above the class maximum.
    MaxPayment,
    /// A coin worth more than the payment it is part of.
    CoinExceedsPayment,
    /// A deposit to a non-merchant account.
    MerchantOnlyDeposit,
    /// Allowance v2: a link dated before the link that paid its signer, or after the
    /// issuer's day.
    ReceiptDay,
}

impl PolicyRule {
    /// The rule's name in the policy file and verdicts.
    pub fn name(self) -> &'static str {
        match self {
            PolicyRule::DepositDeadline => "deposit_deadline",
            PolicyRule::MinPayment => "min_payment",
            PolicyRule::MaxPayment => "max_payment",
            PolicyRule::CoinExceedsPayment => "coin_exceeds_payment",
            PolicyRule::MerchantOnlyDeposit => "merchant_only_deposit",
            PolicyRule::ReceiptDay => "receipt_day",
        }
    }
}

impl core::fmt::Display for PolicyRule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a policy file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// TOML syntax or schema error.
    #[error("policy file: {0}")]
    Parse(#[from] toml::de::Error),
    /// A value that makes no sense.
    #[error("policy file: {0}")]
    Invalid(String),
}

impl Default for Policy {
    fn default() -> Policy {
        let mut class = BTreeMap::new();
        class.insert(
            "standard".to_owned(),
            ClassPolicy {
                max_hops: 8,
                deposit_deadline_days: 60,
                min_payment: 1,
                max_payment: 1_000_000,
                allowance_required: true,
                merchant_only_deposit: false,
                allowance_scheme: AllowanceScheme::V1,
            },
        );
        Policy {
            epochs: EpochPolicy {
                withdraw_days: 30,
                deposit_days: 90,
                max_denomination_exp: 16,
            },
            allowance: AllowancePolicy {
                daily_limit: 1000,
                slots: Vec::new(),
            },
            swap: SwapPolicy { fee: 0 },
            class,
        }
    }
}

impl Policy {
    /// Parses and validates a policy file.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let p: Policy = toml::from_str(text)?;
        p.validate()?;
        Ok(p)
    }

    /// The policy as TOML.
    #[allow(
        clippy::expect_used,
        reason = "plain structs with string keys always serialise"
    )]
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("policy serialises")
    }

    /// Checks internal consistency.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |m: String| Err(PolicyError::Invalid(m));
        if self.epochs.withdraw_days == 0 {
            return bad("epochs.withdraw_days must be at least 1".into());
        }
        if self.epochs.max_denomination_exp > super::keyset::DENOMINATION_EXP_MAX {
            return bad(format!(
                "epochs.max_denomination_exp must be at most {}",
                super::keyset::DENOMINATION_EXP_MAX
            ));
        }
        if self.class.is_empty() {
            return bad("at least one [class.NAME] section is required".into());
        }
        for (name, c) in &self.class {
            if !valid_class_name(name) {
                return bad(format!(
                    "class name {name:?} must be 1-32 chars of [a-z0-9_-]"
                ));
            }
            if c.max_hops as usize > super::coin::LINKS_MAX {
                return bad(format!(
                    "class.{name}: max_hops must be at most {}",
                    super::coin::LINKS_MAX
                ));
            }
            if c.min_payment > c.max_payment {
                return bad(format!("class.{name}: min_payment exceeds max_payment"));
            }
        }
        let groups = self.slot_groups();
        let total: u128 = groups
            .iter()
            .map(|(v, n)| u128::from(*v) * u128::from(*n))
            .sum();
        let count: u64 = groups.iter().map(|(_, n)| u64::from(*n)).sum();
        if total > u128::from(self.allowance.daily_limit) {
            return bad(format!(
                "allowance.slots are worth {total}, more than daily_limit {}",
                self.allowance.daily_limit
            ));
        }
        if count as usize > SLOTS_MAX || groups.iter().any(|(v, _)| *v == 0) {
            return bad(format!(
                "allowance.slots: at most {SLOTS_MAX} slots, each worth at least 1"
            ));
        }
        Ok(())
    }

    /// The v2 slot groups: the file's, or the default schedule for the daily limit.
    pub fn slot_groups(&self) -> Vec<(u64, u32)> {
        if self.allowance.slots.is_empty() {
            default_slot_schedule(self.allowance.daily_limit)
        } else {
            self.allowance.slots.clone()
        }
    }

    /// The v2 schedule: slot index → value, ascending by value.
    pub fn slot_schedule(&self) -> Vec<u64> {
        let mut values: Vec<u64> = self
            .slot_groups()
            .iter()
            .flat_map(|(v, n)| std::iter::repeat_n(*v, (*n as usize).min(SLOTS_MAX)))
            .take(SLOTS_MAX)
            .collect();
        values.sort_unstable();
        values
    }

    /// The rules of a class, if it exists.
    pub fn class(&self, name: &str) -> Option<&ClassPolicy> {
        self.class.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_round_trips_through_toml() {
        let p = Policy::default();
        assert_eq!(Policy::from_toml(&p.to_toml()).unwrap(), p);
        assert_eq!(p.allowance.daily_limit, 1000, "10 EUR in cents");
    }

    #[test]
    fn invalid_files_are_refused_with_reasons() {
        let mut p = Policy::default();
        p.class.get_mut("standard").unwrap().min_payment = 10;
        p.class.get_mut("standard").unwrap().max_payment = 5;
        let e = Policy::from_toml(&p.to_toml()).unwrap_err();
        assert!(e.to_string().contains("min_payment"), "{e}");
        let text = Policy::default().to_toml().replace("max_hops", "max_hopz");
        assert!(Policy::from_toml(&text).is_err());
        let mut p = Policy::default();
        p.allowance.slots = vec![(100, 5), (1, 501)];
        let e = Policy::from_toml(&p.to_toml()).unwrap_err();
        assert!(e.to_string().contains("more than daily_limit"), "{e}");
        p.allowance.slots = vec![(0, 5)];
        assert!(Policy::from_toml(&p.to_toml()).is_err());
    }

    #[test]
    fn the_default_slot_schedule_spends_exactly_the_daily_limit() {
        for limit in [1u64, 2, 3, 7, 100, 1000, 1024, 4096, 1_000_000] {
            let groups = default_slot_schedule(limit);
            let total: u64 = groups.iter().map(|(v, n)| v * u64::from(*n)).sum();
            assert_eq!(total, limit, "limit {limit}");
            assert!(groups.iter().all(|(v, _)| v.is_power_of_two()));
        }
        let p = Policy::default();
        let s = p.slot_schedule();
        assert_eq!(s.len(), 202);
        assert_eq!(s.iter().sum::<u64>(), 1000);
        assert!(s.windows(2).all(|w| w[0] <= w[1]));
        // A v2 class round-trips; v1 classes write no scheme line (old files unchanged).
        assert!(!p.to_toml().contains("allowance_scheme"));
        let mut v2 = p.clone();
        v2.class.get_mut("standard").unwrap().allowance_scheme = AllowanceScheme::V2;
        assert!(v2.to_toml().contains("allowance_scheme = \"v2\""));
        assert_eq!(Policy::from_toml(&v2.to_toml()).unwrap(), v2);
    }
}
