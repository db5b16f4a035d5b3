//! A wallet: its address secret, its coins (with the secret of each coin's current owner
//! key) and its allowance tokens, kept in one JSON file created with mode 0600.
//!
//! Operations talk to an issuer through [`IssuerApi`] and change the wallet in memory;
//! callers [`Wallet::save`] when the outcome is final (the CLI saves after it has written
//! any payment file, so a crash never loses coins silently).

#![allow(
    clippy::indexing_slicing,
    reason = "coin indices come from selection over this wallet's own coin list"
)]

mod select;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::issuer::{CallError, IssuerApi, Receipt};
use crate::protocol::allowance::AllowanceRequest;
use crate::protocol::coin::{AllowanceToken, Coin, Payment, PaymentContext};
use crate::protocol::deposit::{AccountName, CreditTarget, SwapRequest};
use crate::protocol::encoding::{Decode, Encode};
use crate::protocol::keys::OwnerSecret;
use crate::protocol::keyset::{KeysetKind, KeysetList};
use crate::protocol::policy::{Policy, DAY_SECS};
use crate::protocol::spend::{OwnedAllowance, OwnedCoin};
use crate::protocol::stealth::{recognise, Address};
use crate::protocol::verify::Verifier;
use crate::protocol::withdraw::{
    blind, denominations, finish_allowance, finish_coin, PendingIssue, UnblindError,
};
use crate::store::files::{write_atomic, FilesError};

/// Wallet errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// The wallet file could not be read or written.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The wallet file is damaged.
    #[error("wallet file {path}: {reason}")]
    Corrupt {
        /// Path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The issuer refused or failed, or could not be reached.
    #[error(transparent)]
    Issuer(#[from] CallError),
    /// The issuer's answer does not verify: the wallet stores nothing.
    #[error("issuer answer refused: {0}")]
    Unblind(#[from] UnblindError),
    /// The issuer answered with the wrong number of signatures.
    #[error("issuer returned {got} signatures for {expected} requests")]
    AnswerCount {
        /// Asked.
        expected: usize,
        /// Got.
        got: usize,
    },
    /// Not enough coins.
    #[error("insufficient funds: balance {balance}, needed {needed}")]
    InsufficientFunds {
        /// Balance.
        balance: u64,
        /// Needed (including fees).
        needed: u64,
    },
    /// Not enough allowance tokens to re-spend or deposit received coins.
    #[error("not enough allowance: need {need}, have {have} (run `microcash wallet allowance`)")]
    AllowanceShort {
        /// Needed.
        need: u64,
        /// Held.
        have: u64,
    },
    /// No keyset open for withdrawal of this class and value.
    #[error("no keyset of class {class:?} open for value {value}")]
    NoKeyset {
        /// Class.
        class: String,
        /// Value.
        value: u64,
    },
    /// A coin whose keyset is not published (cannot be valued).
    #[error("coin of unknown keyset {0}")]
    UnknownKeyset(String),
    /// Zero or otherwise invalid amount.
    #[error("invalid amount: {0}")]
    Amount(String),
    /// An invalid account name.
    #[error("invalid account name {0:?}")]
    AccountName(String),
}

#[derive(Clone, Serialize, Deserialize)]
struct StoredSecretItem {
    /// Hex encoding of the coin or token.
    item: String,
    /// Hex of the owner secret.
    secret: String,
}

#[derive(Serialize, Deserialize)]
struct WalletFile {
    version: u32,
    name: String,
    address_secret: String,
    registered_identity: Option<String>,
    coins: Vec<StoredSecretItem>,
    allowance: Vec<StoredSecretItem>,
}

/// Outcome of scanning a payment.
#[derive(Debug, Default, Serialize)]
pub struct ReceiveReport {
    /// Coins accepted into the wallet.
    pub accepted: usize,
    /// Their value.
    pub value: u64,
    /// Coins not addressed to this wallet (ignored).
    pub not_ours: usize,
    /// Coins addressed to us but invalid: (position, reason).
    pub rejected: Vec<(usize, String)>,
}

/// Outcome of depositing one coin.
#[derive(Debug, Serialize)]
pub struct DepositOutcome {
    /// Coin serial.
    pub serial: String,
    /// Value.
    pub value: u64,
    /// Receipt, if accepted.
    pub receipt: Option<Receipt>,
    /// Why not, if refused.
    pub error: Option<String>,
}

/// A wallet loaded from its file.
pub struct Wallet {
    path: PathBuf,
    name: String,
    address_secret: OwnerSecret,
    registered_identity: Option<String>,
    coins: Vec<OwnedCoin>,
    allowance: Vec<OwnedAllowance>,
}

fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    hex::decode(s).ok()?.try_into().ok()
}

impl Wallet {
    /// Creates a new wallet file (mode 0600) with a fresh address key.
    pub fn create(path: &Path, name: &str) -> Result<Wallet, WalletError> {
        if path.exists() {
            return Err(WalletError::Corrupt {
                path: path.to_owned(),
                reason: "already exists".into(),
            });
        }
        let w = Wallet {
            path: path.to_owned(),
            name: name.to_owned(),
            address_secret: OwnerSecret::generate(&mut crate::os_rng()),
            registered_identity: None,
            coins: vec![],
            allowance: vec![],
        };
        w.save()?;
        Ok(w)
    }

    /// Loads a wallet file.
    pub fn open(path: &Path) -> Result<Wallet, WalletError> {
        let corrupt = |reason: String| WalletError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|source| FilesError::Io {
            path: path.to_owned(),
            source,
        })?;
        let f: WalletFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if f.version != 1 {
            return Err(corrupt(format!("unsupported version {}", f.version)));
        }
        let secret = |s: &str| {
            hex_array::<32>(s)
                .and_then(|b| OwnerSecret::from_bytes(&b))
                .ok_or_else(|| corrupt("bad secret".into()))
        };
        let address_secret = secret(&f.address_secret)?;
        let mut coins = Vec::new();
        for c in &f.coins {
            let bytes = hex::decode(&c.item).map_err(|e| corrupt(e.to_string()))?;
            let coin = Coin::from_bytes(&bytes).map_err(|e| corrupt(format!("coin: {e}")))?;
            let secret = secret(&c.secret)?;
            if secret.public() != *coin.owner_key() {
                return Err(corrupt("coin secret does not match its owner key".into()));
            }
            coins.push(OwnedCoin { coin, secret });
        }
        let mut allowance = Vec::new();
        for t in &f.allowance {
            let bytes = hex::decode(&t.item).map_err(|e| corrupt(e.to_string()))?;
            let token = AllowanceToken::from_bytes(&bytes)
                .map_err(|e| corrupt(format!("allowance token: {e}")))?;
            allowance.push(OwnedAllowance {
                token,
                secret: secret(&t.secret)?,
            });
        }
        Ok(Wallet {
            path: path.to_owned(),
            name: f.name,
            address_secret,
            registered_identity: f.registered_identity,
            coins,
            allowance,
        })
    }

    /// Writes the wallet file atomically, mode 0600.
    pub fn save(&self) -> Result<(), WalletError> {
        let item = |bytes: Vec<u8>, s: &OwnerSecret| StoredSecretItem {
            item: hex::encode(bytes),
            secret: hex::encode(s.to_bytes()),
        };
        let f = WalletFile {
            version: 1,
            name: self.name.clone(),
            address_secret: hex::encode(self.address_secret.to_bytes()),
            registered_identity: self.registered_identity.clone(),
            coins: self
                .coins
                .iter()
                .map(|c| item(c.coin.to_bytes(), &c.secret))
                .collect(),
            allowance: self
                .allowance
                .iter()
                .map(|a| item(a.token.to_bytes(), &a.secret))
                .collect(),
        };
        #[allow(
            clippy::expect_used,
            reason = "string-keyed maps and plain structs always serialise"
        )]
        let text = serde_json::to_vec_pretty(&f).expect("wallet serialises");
        write_atomic(&self.path, &text, 0o600)?;
        Ok(())
    }

    /// The wallet's payee address.
    pub fn address(&self) -> Address {
        Address(self.address_secret.public())
    }

    /// The coins held.
    pub fn coins(&self) -> &[OwnedCoin] {
        &self.coins
    }

    /// The value of each coin held, in order.
    fn coin_values(&self, keysets: &KeysetList) -> Result<Vec<u64>, WalletError> {
        self.coins
            .iter()
            .map(|c| coin_value(keysets, &c.coin))
            .collect()
    }

    /// Total value of the coins held, by the published keysets.
    pub fn balance(&self, keysets: &KeysetList) -> Result<u64, WalletError> {
        self.coins
            .iter()
            .map(|c| coin_value(keysets, &c.coin))
            .sum()
    }

    /// Total value of the allowance tokens held.
    pub fn allowance_balance(&self, keysets: &KeysetList) -> u64 {
        self.allowance
            .iter()
            .filter_map(|a| keysets.get(&a.token.keyset_id))
            .map(|k| k.value())
            .sum()
    }

    /// Registers the wallet's address with the issuer under `identity`.
    pub fn register(&mut self, issuer: &dyn IssuerApi, identity: &str) -> Result<(), WalletError> {
        issuer.register_wallet(&self.address(), identity)?;
        self.registered_identity = Some(identity.to_owned());
        Ok(())
    }

    fn blind_many(
        keysets: &KeysetList,
        kind: KeysetKind,
        class: &str,
        amount: u64,
        max_exp: u8,
        now: u64,
    ) -> Result<
        (
            Vec<PendingIssue>,
            Vec<crate::protocol::deposit::BlindedOutput>,
        ),
        WalletError,
    > {
        let mut rng = crate::os_rng();
        let mut pending = Vec::new();
        let mut outputs = Vec::new();
        for exp in denominations(amount, max_exp) {
            let ks = keysets.withdrawable(kind, class, exp, now).ok_or_else(|| {
                WalletError::NoKeyset {
                    class: class.to_owned(),
                    value: 1 << exp,
                }
            })?;
            let (p, o) = blind(ks, &mut rng);
            pending.push(p);
            outputs.push(o);
        }
        Ok((pending, outputs))
    }

    fn finish_coins(
        &mut self,
        keysets: &KeysetList,
        pending: Vec<PendingIssue>,
        outputs: &[crate::protocol::deposit::BlindedOutput],
        answers: Vec<microcash_kernels::bls::G1Affine>,
    ) -> Result<u64, WalletError> {
        if answers.len() != pending.len() {
            return Err(WalletError::AnswerCount {
                expected: pending.len(),
                got: answers.len(),
            });
        }
        let mut value = 0;
        let mut fresh = Vec::new();
        for ((p, o), a) in pending.into_iter().zip(outputs).zip(&answers) {
            let ks = keysets
                .get(&o.keyset_id)
                .ok_or_else(|| WalletError::UnknownKeyset(o.keyset_id.to_string()))?;
            fresh.push(finish_coin(p, ks, a)?);
            value += ks.value();
        }
        self.coins.extend(fresh);
        Ok(value)
    }

    /// Withdraws `amount` from `account` as power-of-two coins of `class`. Every coin is
    /// checked with a pairing before it is stored.
    pub fn withdraw(
        &mut self,
        issuer: &dyn IssuerApi,
        account: &str,
        amount: u64,
        class: &str,
        now: u64,
    ) -> Result<u64, WalletError> {
        if amount == 0 {
            return Err(WalletError::Amount("withdraw at least 1".into()));
        }
        let account = AccountName::new(account)
            .ok_or_else(|| WalletError::AccountName(account.to_owned()))?;
        let max_exp = issuer.policy().epochs.max_denomination_exp;
        let (pending, outputs) = Self::blind_many(
            issuer.keysets(),
            KeysetKind::Coin,
            class,
            amount,
            max_exp,
            now,
        )?;
        let answers = issuer.withdraw(&account, &outputs, now)?;
        self.finish_coins(issuer.keysets(), pending, &outputs, answers)
    }

    /// Obtains allowance tokens worth `amount` for today.
    pub fn request_allowance(
        &mut self,
        issuer: &dyn IssuerApi,
        amount: u64,
        now: u64,
    ) -> Result<u64, WalletError> {
        if amount == 0 {
            return Err(WalletError::Amount("request at least 1".into()));
        }
        let max_exp = issuer.policy().epochs.max_denomination_exp;
        let class = crate::store::files::ALLOWANCE_CLASS;
        let (pending, outputs) = Self::blind_many(
            issuer.keysets(),
            KeysetKind::Allowance,
            class,
            amount,
            max_exp,
            now,
        )?;
        let request = AllowanceRequest::sign(
            &self.address_secret,
            now / DAY_SECS,
            outputs,
            &mut crate::os_rng(),
        );
        let answers = issuer.issue_allowance(&request, now)?;
        if answers.len() != pending.len() {
            return Err(WalletError::AnswerCount {
                expected: pending.len(),
                got: answers.len(),
            });
        }
        let mut tokens = Vec::new();
        for ((p, o), a) in pending.into_iter().zip(&request.outputs).zip(&answers) {
            let ks = issuer
                .keysets()
                .get(&o.keyset_id)
                .ok_or_else(|| WalletError::UnknownKeyset(o.keyset_id.to_string()))?;
            tokens.push(finish_allowance(p, ks, a)?);
        }
        self.allowance.extend(tokens);
        Ok(amount)
    }

    /// Removes and returns allowance tokens covering `need` (none if `need` is 0).
    fn take_allowance(
        &mut self,
        keysets: &KeysetList,
        need: u64,
    ) -> Result<Vec<OwnedAllowance>, WalletError> {
        if need == 0 {
            return Ok(vec![]);
        }
        let values: Vec<u64> = self
            .allowance
            .iter()
            .map(|a| keysets.get(&a.token.keyset_id).map_or(0, |k| k.value()))
            .collect();
        let have: u64 = values.iter().sum();
        let chosen =
            select::cover(&values, need).ok_or(WalletError::AllowanceShort { need, have })?;
        Ok(select::take(&mut self.allowance, &chosen))
    }

    /// Allowance needed to re-spend or deposit `coin`.
    fn allowance_need(
        policy: &Policy,
        keysets: &KeysetList,
        coin: &OwnedCoin,
    ) -> Result<u64, WalletError> {
        let ks = keysets
            .get(&coin.coin.keyset_id)
            .ok_or_else(|| WalletError::UnknownKeyset(coin.coin.keyset_id.to_string()))?;
        let required = policy
            .class(&ks.policy_class)
            .is_some_and(|c| c.allowance_required);
        Ok(if coin.was_received() && required {
            ks.value()
        } else {
            0
        })
    }

    /// Swaps the coins at `inputs` for fresh coins worth `first` and then the change.
    fn swap(
        &mut self,
        issuer: &dyn IssuerApi,
        inputs: &[usize],
        first: u64,
        now: u64,
    ) -> Result<(), WalletError> {
        let keysets = issuer.keysets();
        let policy = issuer.policy();
        let total: u64 = inputs
            .iter()
            .map(|&i| coin_value(keysets, &self.coins[i].coin))
            .sum::<Result<_, _>>()?;
        let fee = policy.swap.fee;
        let change = total
            .checked_sub(first + fee)
            .ok_or(WalletError::InsufficientFunds {
                balance: total,
                needed: first + fee,
            })?;
        let class = keysets
            .get(&self.coins[inputs[0]].coin.keyset_id)
            .map(|k| k.policy_class.clone())
            .unwrap_or_default();
        let max_exp = policy.epochs.max_denomination_exp;
        let (mut pending, mut outputs) =
            Self::blind_many(keysets, KeysetKind::Coin, &class, first, max_exp, now)?;
        let (p2, o2) = Self::blind_many(keysets, KeysetKind::Coin, &class, change, max_exp, now)?;
        pending.extend(p2);
        outputs.extend(o2);
        let digest =
            crate::protocol::deposit::outputs_digest(crate::protocol::tags::SWAP_OUTPUTS, &outputs);
        let mut rng = crate::os_rng();
        let mut deposits = Vec::new();
        let mut taken = Vec::new();
        for &i in inputs {
            let need = Self::allowance_need(policy, keysets, &self.coins[i])?;
            let tokens = self.take_allowance(keysets, need)?;
            deposits.push(self.coins[i].deposit(
                CreditTarget::Swap(digest),
                now,
                &tokens,
                &mut rng,
            ));
            taken.extend(tokens);
        }
        let request = SwapRequest {
            inputs: deposits,
            outputs: outputs.clone(),
        };
        let answers = match issuer.swap(&request, now) {
            Ok(a) => a,
            Err(e) => {
                self.allowance.extend(taken);
                return Err(e.into());
            }
        };
        let mut sorted = inputs.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        for i in sorted {
            self.coins.remove(i);
        }
        self.finish_coins(keysets, pending, &outputs, answers)?;
        self.save()
    }

    /// Pays `amount` to `to`, splitting a coin through a swap when no exact set of coins
    /// exists. Returns the payment to hand to the payee. Call [`Wallet::save`] after
    /// delivering it.
    pub fn pay(
        &mut self,
        issuer: &dyn IssuerApi,
        to: &Address,
        amount: u64,
        now: u64,
    ) -> Result<Payment, WalletError> {
        if amount == 0 {
            return Err(WalletError::Amount("pay at least 1".into()));
        }
        let keysets = issuer.keysets();
        let values = self.coin_values(keysets)?;
        let balance: u64 = values.iter().sum();
        let (mut chosen, remaining) = select::exact_greedy(&values, amount);
        if remaining > 0 {
            let fee = issuer.policy().swap.fee;
            let free: Vec<usize> = (0..values.len()).filter(|i| !chosen.contains(i)).collect();
            let free_values: Vec<u64> = free.iter().map(|&i| values[i]).collect();
            let inputs = select::cover(&free_values, remaining + fee).ok_or(
                WalletError::InsufficientFunds {
                    balance,
                    needed: amount + fee,
                },
            )?;
            let inputs: Vec<usize> = inputs.iter().map(|&j| free[j]).collect();
            self.swap(issuer, &inputs, remaining, now)?;
            let values = self.coin_values(keysets)?;
            let (again, left) = select::exact_greedy(&values, amount);
            debug_assert_eq!(left, 0, "the swap produced the missing denominations");
            if left != 0 {
                return Err(WalletError::InsufficientFunds {
                    balance,
                    needed: amount,
                });
            }
            chosen = again;
        }
        let mut rng = crate::os_rng();
        let mut payment_id = [0u8; 16];
        rand_core::Rng::fill_bytes(&mut rng, &mut payment_id);
        let context = PaymentContext {
            payment_id,
            amount,
            time: now,
        };
        // Check allowance for every received coin before consuming any token.
        let mut need_total = 0;
        for &i in &chosen {
            need_total += Self::allowance_need(issuer.policy(), keysets, &self.coins[i])?;
        }
        let have = self.allowance_balance(keysets);
        if need_total > have {
            return Err(WalletError::AllowanceShort {
                need: need_total,
                have,
            });
        }
        let mut coins = Vec::new();
        for &i in &chosen {
            let need = Self::allowance_need(issuer.policy(), keysets, &self.coins[i])?;
            let tokens = self.take_allowance(keysets, need)?;
            coins.push(self.coins[i].pay(to, context, &tokens, &mut rng));
        }
        select::take(&mut self.coins, &chosen);
        Ok(Payment { coins })
    }

    /// Scans a payment: keeps the coins addressed to this wallet that verify offline.
    pub fn receive(
        &mut self,
        keysets: &KeysetList,
        policy: &Policy,
        payment: &Payment,
        now: u64,
    ) -> ReceiveReport {
        let verifier = Verifier::new(keysets, policy);
        let mut report = ReceiveReport::default();
        for (i, coin) in payment.coins.iter().enumerate() {
            let Some(last) = coin.links.last() else {
                report.not_ours += 1;
                continue;
            };
            let Some(secret) = recognise(&self.address_secret, &last.ephemeral, &last.one_time_key)
            else {
                report.not_ours += 1;
                continue;
            };
            if self.coins.iter().any(|c| c.coin.serial() == coin.serial()) {
                report.rejected.push((i, "already held".into()));
                continue;
            }
            match verifier.verify_coin(coin, now) {
                Ok(v) => {
                    report.accepted += 1;
                    report.value += v.keyset.value();
                    self.coins.push(OwnedCoin {
                        coin: coin.clone(),
                        secret,
                    });
                }
                Err(e) => report.rejected.push((i, e.to_string())),
            }
        }
        report
    }

    /// Deposits coins worth `amount` (all coins if `None`) to `account`. Accepted and
    /// double-spent coins leave the wallet; coins refused for other reasons stay.
    pub fn deposit(
        &mut self,
        issuer: &dyn IssuerApi,
        account: &str,
        amount: Option<u64>,
        now: u64,
    ) -> Result<Vec<DepositOutcome>, WalletError> {
        let account = AccountName::new(account)
            .ok_or_else(|| WalletError::AccountName(account.to_owned()))?;
        let keysets = issuer.keysets();
        let values = self.coin_values(keysets)?;
        let chosen: Vec<usize> = match amount {
            None => (0..self.coins.len()).collect(),
            Some(a) => {
                let (chosen, left) = select::exact_greedy(&values, a);
                if left != 0 {
                    return Err(WalletError::Amount(format!(
                        "no set of held coins makes exactly {a}; pay yourself to split"
                    )));
                }
                chosen
            }
        };
        let mut rng = crate::os_rng();
        let mut outcomes = Vec::new();
        let mut gone = Vec::new();
        for i in chosen {
            let coin = &self.coins[i];
            let need = Self::allowance_need(issuer.policy(), keysets, coin)?;
            let tokens = match self.take_allowance(keysets, need) {
                Ok(t) => t,
                Err(e) => {
                    outcomes.push(DepositOutcome {
                        serial: self.coins[i].coin.serial().to_string(),
                        value: values[i],
                        receipt: None,
                        error: Some(e.to_string()),
                    });
                    continue;
                }
            };
            let coin = &self.coins[i];
            let deposit = coin.deposit(
                CreditTarget::Account(account.clone()),
                now,
                &tokens,
                &mut rng,
            );
            let serial = coin.coin.serial().to_string();
            match issuer.deposit(&deposit, now) {
                Ok(receipt) => {
                    gone.push(i);
                    outcomes.push(DepositOutcome {
                        serial,
                        value: values[i],
                        receipt: Some(receipt),
                        error: None,
                    });
                }
                Err(e) => {
                    if e.is_double_spent() {
                        gone.push(i);
                    } else {
                        self.allowance.extend(tokens);
                    }
                    outcomes.push(DepositOutcome {
                        serial,
                        value: values[i],
                        receipt: None,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
        select::take(&mut self.coins, &gone);
        Ok(outcomes)
    }
}

fn coin_value(keysets: &KeysetList, coin: &Coin) -> Result<u64, WalletError> {
    keysets
        .get(&coin.keyset_id)
        .map(|k| k.value())
        .ok_or_else(|| WalletError::UnknownKeyset(coin.keyset_id.to_string()))
}
