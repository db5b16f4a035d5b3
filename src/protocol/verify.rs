//! The reference verifier: checks one coin, or one deposit, completely and one step at a
//! time. It is the slow, obviously-correct path: the batch engine must return exactly its
//! verdicts.
//!
//! # Order of checks (the first failure is the verdict)
//! 1. keyset: known, a coin keyset, valid at `now` (not before `withdraw_from`, not at or
//!    after `deposit_until`); its policy class exists;
//! 2. hop cap: `links ≤ max_hops`;
//! 3. σ: e(σ, g2) = e(H1(serial), pk) (pairing only: a cofactor component of σ is
//!    invisible to it and harmless, and σ is bound into the chain digest so only the owner
//!    picks it — see `docs/protocol.md`, "Cofactor components of σ");
//! 4. each link i in order: the previous owner's signature; its allowance spends (required
//!    from i = 1 on, covering the coin's value); the payment policy (min/max payment, coin
//!    not worth more than the payment);
//! 5. for a deposit: the owner's signature; its allowance spends (required when the coin
//!    carries a link); the deposit deadline.
//!
//! Allowance spends are checked token by token: allowance keyset known and valid at `now`,
//! σ valid, the token key's signature over the binding, and no token serial twice in the
//! same coin or deposit. Whether a serial was spent *before* is the spent set's question,
//! answered by the issuer after this verifier.

use std::collections::HashSet;

use microcash_kernels::bls::{self, G1Affine};

use super::coin::{allowance_binding, allowance_spend_message, AllowanceSpend, Coin, Link, Serial};
use super::credential::{
    CredentialKey, CredentialKeys, CredentialSecret, Presentation, PresentationContext,
    PresentationError,
};
use super::deposit::{CreditTarget, Deposit};
use super::keys::{OwnerKey, RedSig};
use super::keyset::{Keyset, KeysetId, KeysetKind, KeysetList, KeysetPhase};
use super::policy::{AllowanceScheme, ClassPolicy, Policy, PolicyRule, DAY_SECS};
use super::spend::{BIND_DEPOSIT, BIND_LINK};
use super::tags;

/// Where allowance was (or should have been) attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendSite {
    /// On link i (0-based).
    Link(usize),
    /// On the deposit.
    Deposit,
}

impl core::fmt::Display for SpendSite {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpendSite::Link(i) => write!(f, "link {i}"),
            SpendSite::Deposit => f.write_str("deposit"),
        }
    }
}

/// Why an allowance token is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllowanceFault {
    /// Its keyset is unknown, not an allowance keyset, or outside its window.
    #[error("{0}")]
    Keyset(Box<Rejection>),
    /// The issuer's signature on the token does not verify.
    #[error("issuer signature invalid")]
    IssuerSignature,
    /// The token key's signature on this spend does not verify.
    #[error("token key signature invalid")]
    TokenKeySignature,
    /// Allowance of the other scheme than the class's (v1 tokens on a v2 class, v2 data on
    /// a v1 class), or v2 data where the scheme has none (a presentation without a receipt,
    /// a link without the payer's commitment).
    #[error("{0}")]
    Scheme(&'static str),
    /// A v2 presentation under an unknown credential key, a key of another class, or a key
    /// whose epoch does not cover the receipt day or is not valid now.
    #[error("credential key: {0}")]
    CredentialKey(&'static str),
    /// A v2 slot outside the day's schedule.
    #[error("slot {0} is not in the day's schedule")]
    Slot(u16),
    /// A v2 presentation that does not verify (or a point in it that is not one).
    #[error("presentation: {0}")]
    Presentation(#[from] crate::protocol::credential::PresentationError),
}

/// Why a coin or deposit is refused by the protocol rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No such keyset is published.
    #[error("unknown keyset {0}")]
    UnknownKeyset(KeysetId),
    /// The keyset exists but is of the wrong kind (an allowance keyset where a coin keyset
    /// is expected, or the reverse).
    #[error("keyset {0} is of the wrong kind")]
    WrongKeysetKind(KeysetId),
    /// Before the keyset's `withdraw_from`.
    #[error("keyset {0} is not yet valid")]
    KeysetNotYetValid(KeysetId),
    /// At or after the keyset's `deposit_until`.
    #[error("keyset {0} has expired")]
    KeysetExpired(KeysetId),
    /// The keyset names a policy class the policy file does not define.
    #[error("policy class {0:?} is not defined")]
    UnknownPolicyClass(String),
    /// σ fails the pairing check.
    #[error("bad issuer signature: {0}")]
    BadIssuerSignature(&'static str),
    /// A link not signed by the coin's owner before it.
    #[error("bad signature on link {index}")]
    BadLinkSignature {
        /// Link index (0-based).
        index: usize,
    },
    /// A deposit not signed by the coin's current owner.
    #[error("bad deposit signature")]
    BadDepositSignature,
    /// More links than the class allows.
    #[error("hop cap exceeded: {hops} links, class allows {max}")]
    HopCapExceeded {
        /// Links on the coin.
        hops: usize,
        /// The class's cap.
        max: u8,
    },
    /// Received value re-spent or deposited without allowance.
    #[error("allowance missing on {site}: {need} needed")]
    AllowanceMissing {
        /// Where.
        site: SpendSite,
        /// Value to cover.
        need: u64,
    },
    /// Allowance attached but worth less than the value.
    #[error("allowance short on {site}: need {need}, have {have}")]
    AllowanceShort {
        /// Where.
        site: SpendSite,
        /// Value to cover.
        need: u64,
        /// Value attached.
        have: u64,
    },
    /// The same allowance token used twice (within the coin, or already spent).
    #[error("allowance token {serial} already used")]
    AllowanceReused {
        /// The token serial.
        serial: Serial,
    },
    /// An allowance token that is not valid.
    #[error("bad allowance token on {site}: {reason}")]
    BadAllowance {
        /// Where.
        site: SpendSite,
        /// Why.
        reason: AllowanceFault,
    },
    /// A usage-policy rule failed.
    #[error("policy violation: {rule} ({detail})")]
    PolicyViolation {
        /// The rule.
        rule: PolicyRule,
        /// Specifics.
        detail: String,
    },
}

/// A deposit that passed every protocol check. Only [`Verifier::verify_deposit`] builds
/// one, and the issuer's spent-set commit accepts nothing else.
#[derive(Clone, Debug)]
pub struct VerifiedDeposit {
    serial: Serial,
    value: u64,
    keyset_id: KeysetId,
    target: CreditTarget,
    merchant_only: bool,
    epoch: u32,
    allowance_serials: Vec<(Serial, u32)>,
    owner_keys: Vec<OwnerKey>,
    chain_digests: Vec<[u8; 32]>,
    digest: [u8; 32],
}

impl VerifiedDeposit {
    /// The coin serial.
    pub fn serial(&self) -> Serial {
        self.serial
    }
    /// The coin's value.
    pub fn value(&self) -> u64 {
        self.value
    }
    /// The coin's keyset.
    pub fn keyset_id(&self) -> KeysetId {
        self.keyset_id
    }
    /// What to credit.
    pub fn target(&self) -> &CreditTarget {
        &self.target
    }
    /// Whether the class only allows deposits to merchant accounts.
    pub fn merchant_only(&self) -> bool {
        self.merchant_only
    }
    /// Key epoch of the coin's keyset (its spent-set partition).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// Serials (with their keysets' epochs) of the allowance tokens spent anywhere in the
    /// coin or deposit.
    pub fn allowance_serials(&self) -> &[(Serial, u32)] {
        &self.allowance_serials
    }
    /// The chain of owner keys: X, P₁, …, Pₙ (double-spend evidence).
    pub fn owner_keys(&self) -> &[OwnerKey] {
        &self.owner_keys
    }
    /// Digest of the deposit message (idempotency key).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
    /// The coin's chain digests d₀ … dₙ (where two spends of one serial diverge).
    pub fn chain_digests(&self) -> &[[u8; 32]] {
        &self.chain_digests
    }
}

/// A coin that passed the offline checks (what a payee runs on receipt).
#[derive(Clone, Debug)]
pub struct VerifiedCoin<'a> {
    /// Its keyset.
    pub keyset: &'a Keyset,
    /// Its class rules.
    pub class: &'a ClassPolicy,
    /// Its serial.
    pub serial: Serial,
    /// Allowance serials (with epochs) spent on its links.
    pub allowance_serials: Vec<(Serial, u32)>,
    /// The last chain digest dₙ (what a deposit of the coin signs).
    pub last_digest: [u8; 32],
    /// Every chain digest d₀ … dₙ.
    pub chain_digests: Vec<[u8; 32]>,
}

/// The reference verifier over a published keyset list and policy (and, for allowance v2
/// classes, the credential keys).
#[derive(Clone, Copy, Debug)]
pub struct Verifier<'a> {
    keysets: &'a KeysetList,
    policy: &'a Policy,
    credentials: Option<&'a CredentialKeys>,
    /// The v2 slot schedule (slot → value), from the policy.
    slots: Option<&'a [u64]>,
    /// Redemption (the issuer): a v2 presentation must be checked in full, MAC included,
    /// so a key whose secret this verifier lacks is refused rather than half-checked.
    redeeming: bool,
}

/// The two cryptographic questions the verifier asks. The reference answers them one at a
/// time ([`DirectChecks`]); the batch engine answers them from batched kernels, replaying
/// the verifier's walk so that the order of checks — and so every verdict — is the same.
pub trait CryptoChecks {
    /// Does e(σ, g2) = e(H1(serial), pk) hold for `keyset`'s key? (Cofactor components of σ
    /// are invisible to the pairing and deliberately not checked: see `docs/protocol.md`.)
    fn issuer_signature(&mut self, keyset: &Keyset, sigma: &G1Affine, serial: &Serial) -> bool;
    /// Is `sig` a valid RedPallas signature by `key` over `msg`?
    fn owner_signature(&mut self, key: &OwnerKey, msg: &[u8], sig: &RedSig) -> bool;
    /// Does the allowance v2 presentation verify — fully with the issuer's `secret`, or
    /// only its public equations without it (a payee)? Answered one at a time unless a
    /// batch overrides it.
    fn presentation(
        &mut self,
        key: &CredentialKey,
        secret: Option<&CredentialSecret>,
        presentation: &Presentation,
        ctx: &PresentationContext<'_>,
    ) -> Result<(), PresentationError> {
        match secret {
            Some(secret) => presentation.verify(key, secret, ctx),
            None => presentation.verify_public(key, ctx),
        }
    }
}

/// One-at-a-time answers: blst pairing check, `reddsa` verification.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectChecks;

impl CryptoChecks for DirectChecks {
    fn issuer_signature(&mut self, keyset: &Keyset, sigma: &G1Affine, serial: &Serial) -> bool {
        bls::pairing_check(
            &keyset.public_key,
            sigma,
            &bls::hash_to_g1(&serial.0, tags::H1_DST),
        )
    }
    fn owner_signature(&mut self, key: &OwnerKey, msg: &[u8], sig: &RedSig) -> bool {
        key.verify(msg, sig)
    }
}

impl<'a> Verifier<'a> {
    /// A verifier over `keysets` and `policy`.
    pub fn new(keysets: &'a KeysetList, policy: &'a Policy) -> Verifier<'a> {
        Verifier {
            keysets,
            policy,
            credentials: None,
            slots: None,
            redeeming: false,
        }
    }

    /// This verifier for redemption: allowance v2 presentations are checked in full with
    /// the credential secrets, and refused under a key whose secret is not held. (Without
    /// it, as for a payee, only their public equations are checked.)
    pub fn redeeming(mut self) -> Verifier<'a> {
        self.redeeming = true;
        self
    }

    /// This verifier with the credential keys and slot schedule that allowance v2 classes
    /// need (without them, every v2 presentation is refused as under an unknown key).
    pub fn with_credentials(
        mut self,
        credentials: &'a CredentialKeys,
        slot_schedule: &'a [u64],
    ) -> Verifier<'a> {
        self.credentials = Some(credentials);
        self.slots = Some(slot_schedule);
        self
    }

    /// The credential keys this verifier knows (allowance v2).
    pub fn credential_keys(&self) -> Option<&'a CredentialKeys> {
        self.credentials
    }

    /// Checks an allowance v2 site: a presentation for the receipt `receipt` (the link that
    /// paid the signer), attached where `binding` says; records its tags in `seen`.
    #[allow(
        clippy::too_many_arguments,
        reason = "one check with all its context, called per site"
    )]
    fn check_presentation(
        &self,
        checks: &mut dyn CryptoChecks,
        site: SpendSite,
        class_name: &str,
        presentation: Option<&Presentation>,
        receipt: Option<&Link>,
        binding: &[u8; 32],
        need: u64,
        now: u64,
        seen: &mut Vec<(Serial, u32)>,
    ) -> Result<(), Rejection> {
        let bad = |reason: AllowanceFault| Rejection::BadAllowance { site, reason };
        let Some(p) = presentation else {
            return if need > 0 {
                Err(Rejection::AllowanceMissing { site, need })
            } else {
                Ok(())
            };
        };
        let Some(receipt) = receipt else {
            return Err(bad(AllowanceFault::Scheme(
                "a presentation without a receipt",
            )));
        };
        let Some(v2) = receipt.v2.as_ref() else {
            return Err(bad(AllowanceFault::Scheme(
                "the receiving link carries no stealth commitment",
            )));
        };
        let (key, secret) = self
            .credentials
            .and_then(|c| c.get(&p.key_id))
            .ok_or_else(|| bad(AllowanceFault::CredentialKey("unknown")))?;
        if key.class != class_name {
            return Err(bad(AllowanceFault::CredentialKey("of another class")));
        }
        let secret = match (self.redeeming, secret) {
            (true, None) => {
                return Err(bad(AllowanceFault::CredentialKey(
                    "its secret is not held here, so its presentations cannot be checked",
                )))
            }
            (true, Some(secret)) => Some(secret),
            (false, _) => None,
        };
        let day = receipt.context.time / DAY_SECS;
        let epoch = self
            .keysets
            .iter()
            .find(|k| k.kind == KeysetKind::Allowance && k.epoch == key.epoch)
            .ok_or_else(|| bad(AllowanceFault::CredentialKey("its epoch has no keysets")))?;
        match epoch.windows.phase(now) {
            KeysetPhase::Active | KeysetPhase::DepositOnly => {}
            KeysetPhase::NotYetValid | KeysetPhase::Expired => {
                return Err(bad(AllowanceFault::CredentialKey("not valid now")))
            }
        }
        let day_start = day.saturating_mul(DAY_SECS);
        if day_start < epoch.windows.withdraw_from - epoch.windows.withdraw_from % DAY_SECS
            || day_start >= epoch.windows.withdraw_until
        {
            return Err(bad(AllowanceFault::CredentialKey(
                "its epoch does not issue for the receipt day",
            )));
        }
        let schedule = self.slots.unwrap_or_default();
        let mut have = 0u64;
        for s in &p.slots {
            let value = schedule
                .get(usize::from(s.slot))
                .ok_or_else(|| bad(AllowanceFault::Slot(s.slot)))?;
            have = have.saturating_add(*value);
        }
        let ctx = PresentationContext {
            day,
            receiving_key: &receipt.one_time_key,
            stealth_commitment: &v2.stealth_commitment,
            binding,
        };
        checks
            .presentation(key, secret, p, &ctx)
            .map_err(|e| bad(AllowanceFault::Presentation(e)))?;
        for tag in p.tags() {
            let serial = Serial(*tag);
            if seen.iter().any(|(s, _)| *s == serial) {
                return Err(Rejection::AllowanceReused { serial });
            }
            seen.push((serial, key.epoch));
        }
        if have < need {
            return Err(Rejection::AllowanceShort { site, need, have });
        }
        Ok(())
    }

    fn keyset(&self, id: &KeysetId, kind: KeysetKind, now: u64) -> Result<&'a Keyset, Rejection> {
        let ks = self.keysets.get(id).ok_or(Rejection::UnknownKeyset(*id))?;
        if ks.kind != kind {
            return Err(Rejection::WrongKeysetKind(*id));
        }
        match ks.windows.phase(now) {
            KeysetPhase::NotYetValid => Err(Rejection::KeysetNotYetValid(*id)),
            KeysetPhase::Expired => Err(Rejection::KeysetExpired(*id)),
            KeysetPhase::Active | KeysetPhase::DepositOnly => Ok(ks),
        }
    }

    /// Checks the allowance spends at one site; adds their serials to `seen`.
    #[allow(
        clippy::too_many_arguments,
        reason = "one check with all its context, called per site"
    )]
    fn check_allowances(
        &self,
        checks: &mut dyn CryptoChecks,
        site: SpendSite,
        spends: &[AllowanceSpend],
        binding: &[u8; 32],
        need: u64,
        now: u64,
        seen: &mut Vec<(Serial, u32)>,
    ) -> Result<(), Rejection> {
        if need > 0 && spends.is_empty() {
            return Err(Rejection::AllowanceMissing { site, need });
        }
        let bad = |reason: AllowanceFault| Rejection::BadAllowance { site, reason };
        let mut have = 0u64;
        for spend in spends {
            let token = &spend.token;
            let ks = self
                .keyset(&token.keyset_id, KeysetKind::Allowance, now)
                .map_err(|r| bad(AllowanceFault::Keyset(Box::new(r))))?;
            let serial = token.serial();
            if !checks.issuer_signature(ks, &token.sigma, &serial) {
                return Err(bad(AllowanceFault::IssuerSignature));
            }
            if !checks.owner_signature(
                &token.key,
                &allowance_spend_message(&serial, binding),
                &spend.signature,
            ) {
                return Err(bad(AllowanceFault::TokenKeySignature));
            }
            if seen.iter().any(|(s, _)| *s == serial) {
                return Err(Rejection::AllowanceReused { serial });
            }
            seen.push((serial, ks.epoch));
            have = have.saturating_add(ks.value());
        }
        if have < need {
            return Err(Rejection::AllowanceShort { site, need, have });
        }
        Ok(())
    }

    /// Offline checks of a coin (everything but the deposit and the spent set), at `now`.
    pub fn verify_coin(&self, coin: &Coin, now: u64) -> Result<VerifiedCoin<'a>, Rejection> {
        self.verify_coin_with(&mut DirectChecks, coin, now)
    }

    /// [`Verifier::verify_coin`] with the cryptographic checks answered by `checks`.
    pub fn verify_coin_with(
        &self,
        checks: &mut dyn CryptoChecks,
        coin: &Coin,
        now: u64,
    ) -> Result<VerifiedCoin<'a>, Rejection> {
        let keyset = self.keyset(&coin.keyset_id, KeysetKind::Coin, now)?;
        let class = self
            .policy
            .class(&keyset.policy_class)
            .ok_or_else(|| Rejection::UnknownPolicyClass(keyset.policy_class.clone()))?;
        if coin.links.len() > class.max_hops as usize {
            return Err(Rejection::HopCapExceeded {
                hops: coin.links.len(),
                max: class.max_hops,
            });
        }
        let serial = coin.serial();
        if !checks.issuer_signature(keyset, &coin.sigma, &serial) {
            return Err(Rejection::BadIssuerSignature("pairing check failed"));
        }
        let digests = coin.chain_digests();
        let mut seen = Vec::new();
        let mut owner = &coin.coin_key;
        // digests[i] is the digest before link i (d₀ … dₙ: one more than there are links).
        for (i, (link, prev)) in coin.links.iter().zip(&digests).enumerate() {
            let body = Link::body(
                &serial,
                prev,
                &link.ephemeral,
                &link.one_time_key,
                &link.context,
            );
            if !checks.owner_signature(
                owner,
                &Link::signed_message(&body, &link.allowances, link.v2.as_ref()),
                &link.signature,
            ) {
                return Err(Rejection::BadLinkSignature { index: i });
            }
            let need = if i >= 1 && class.allowance_required {
                keyset.value()
            } else {
                0
            };
            let binding = allowance_binding(BIND_LINK, &body);
            let site = SpendSite::Link(i);
            match class.allowance_scheme {
                AllowanceScheme::V1 => {
                    if link.v2.is_some() {
                        return Err(scheme_fault(site, "allowance v2 data on a v1 class"));
                    }
                    self.check_allowances(
                        checks,
                        site,
                        &link.allowances,
                        &binding,
                        need,
                        now,
                        &mut seen,
                    )?;
                }
                AllowanceScheme::V2 => {
                    let Some(v2) = link.v2.as_ref() else {
                        return Err(scheme_fault(site, "a v2 class link without v2 data"));
                    };
                    let receipt = i.checked_sub(1).and_then(|j| coin.links.get(j));
                    check_receipt_days(link, receipt, now)?;
                    self.check_presentation(
                        checks,
                        site,
                        &keyset.policy_class,
                        v2.presentation.as_deref(),
                        receipt,
                        &binding,
                        need,
                        now,
                        &mut seen,
                    )?;
                }
            }
            check_payment(class, keyset.value(), &link.context.amount)?;
            owner = &link.one_time_key;
        }
        #[allow(clippy::expect_used, reason = "chain_digests always holds d₀")]
        let last_digest = *digests.last().expect("d₀ always exists");
        Ok(VerifiedCoin {
            keyset,
            class,
            serial,
            allowance_serials: seen,
            last_digest,
            chain_digests: digests,
        })
    }

    /// Full protocol checks of a deposit at `now`.
    pub fn verify_deposit(
        &self,
        deposit: &Deposit,
        now: u64,
    ) -> Result<VerifiedDeposit, Rejection> {
        self.verify_deposit_with(&mut DirectChecks, deposit, now)
    }

    /// [`Verifier::verify_deposit`] with the cryptographic checks answered by `checks`.
    pub fn verify_deposit_with(
        &self,
        checks: &mut dyn CryptoChecks,
        deposit: &Deposit,
        now: u64,
    ) -> Result<VerifiedDeposit, Rejection> {
        let coin = &deposit.coin;
        let VerifiedCoin {
            keyset,
            class,
            serial,
            allowance_serials: mut seen,
            last_digest,
            chain_digests,
        } = self.verify_coin_with(checks, coin, now)?;
        let body = Deposit::body(
            &serial,
            &last_digest,
            &deposit.target,
            &deposit.deposit_id,
            deposit.time,
        );
        if !checks.owner_signature(
            coin.owner_key(),
            &Deposit::signed_message(&body, &deposit.allowances, deposit.presentation.as_deref()),
            &deposit.signature,
        ) {
            return Err(Rejection::BadDepositSignature);
        }
        let need = if !coin.links.is_empty() && class.allowance_required {
            keyset.value()
        } else {
            0
        };
        let binding = allowance_binding(BIND_DEPOSIT, &body);
        match class.allowance_scheme {
            AllowanceScheme::V1 => {
                if deposit.presentation.is_some() {
                    return Err(scheme_fault(
                        SpendSite::Deposit,
                        "allowance v2 data on a v1 class",
                    ));
                }
                self.check_allowances(
                    checks,
                    SpendSite::Deposit,
                    &deposit.allowances,
                    &binding,
                    need,
                    now,
                    &mut seen,
                )?;
            }
            AllowanceScheme::V2 => {
                if !deposit.allowances.is_empty() {
                    return Err(scheme_fault(SpendSite::Deposit, "v1 tokens on a v2 class"));
                }
                self.check_presentation(
                    checks,
                    SpendSite::Deposit,
                    &keyset.policy_class,
                    deposit.presentation.as_deref(),
                    coin.links.last(),
                    &binding,
                    need,
                    now,
                    &mut seen,
                )?;
            }
        }
        let deadline = keyset
            .windows
            .withdraw_until
            .saturating_add(class.deposit_deadline_days.saturating_mul(DAY_SECS));
        if now >= deadline {
            return Err(Rejection::PolicyViolation {
                rule: PolicyRule::DepositDeadline,
                detail: format!("deadline was {deadline}, now is {now}"),
            });
        }
        let mut owner_keys = vec![coin.coin_key];
        owner_keys.extend(coin.links.iter().map(|l| l.one_time_key));
        let mut unique = HashSet::new();
        debug_assert!(
            seen.iter().all(|s| unique.insert(*s)),
            "duplicates were refused above"
        );
        Ok(VerifiedDeposit {
            serial,
            value: keyset.value(),
            keyset_id: keyset.id,
            target: deposit.target.clone(),
            merchant_only: class.merchant_only_deposit,
            epoch: keyset.epoch,
            allowance_serials: seen,
            owner_keys,
            chain_digests,
            digest: deposit.digest(),
        })
    }
}

fn scheme_fault(site: SpendSite, what: &'static str) -> Rejection {
    Rejection::BadAllowance {
        site,
        reason: AllowanceFault::Scheme(what),
    }
}

/// Allowance v2: a link's day (its payer's clock) is not before the day of the link that
/// paid its signer — a receipt cannot move to an earlier day's slots — and not after the
/// verifier's day.
fn check_receipt_days(link: &Link, receipt: Option<&Link>, now: u64) -> Result<(), Rejection> {
    let day = link.context.time / DAY_SECS;
    if day > now / DAY_SECS {
        return Err(Rejection::PolicyViolation {
            rule: PolicyRule::ReceiptDay,
            detail: format!("link dated day {day}, after today {}", now / DAY_SECS),
        });
    }
    if let Some(prev) = receipt {
        let prev_day = prev.context.time / DAY_SECS;
        if day < prev_day {
            return Err(Rejection::PolicyViolation {
                rule: PolicyRule::ReceiptDay,
                detail: format!("link dated day {day}, before its receipt on day {prev_day}"),
            });
        }
    }
    Ok(())
}

fn check_payment(class: &ClassPolicy, coin_value: u64, amount: &u64) -> Result<(), Rejection> {
    let violation = |rule, detail| Err(Rejection::PolicyViolation { rule, detail });
    if *amount < class.min_payment {
        return violation(
            PolicyRule::MinPayment,
            format!("payment {amount} below {}", class.min_payment),
        );
    }
    if *amount > class.max_payment {
        return violation(
            PolicyRule::MaxPayment,
            format!("payment {amount} above {}", class.max_payment),
        );
    }
    if coin_value > *amount {
        return violation(
            PolicyRule::CoinExceedsPayment,
            format!("coin worth {coin_value} in a payment of {amount}"),
        );
    }
    Ok(())
}
