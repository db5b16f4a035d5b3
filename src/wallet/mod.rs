//! A wallet: its address secret, its coins (with the secret of each coin's current owner
//! key) and its allowance tokens, kept in one JSON file created with mode 0600.
//!
//! Operations talk to an issuer through [`IssuerApi`]. Each one that moves value is
//! journalled in the wallet file ([`journal`]): its request is saved before the issuer is
//! asked, its result replaces it after, and [`Wallet::recover`] finishes whatever a crash
//! interrupted — no coin is lost and none is spent twice by the wallet itself. One process
//! at a time holds a wallet (an exclusive lock on `<wallet>.lock`).

#![allow(
    clippy::indexing_slicing,
    reason = "coin indices come from selection over this wallet's own coin list"
)]

mod journal;
mod select;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::issuer::{CallError, IssuerApi, Receipt};
use crate::protocol::allowance::AllowanceRequest;
use crate::protocol::coin::{Coin, Payment, PaymentContext};
use crate::protocol::credential::{CredentialKey, CredentialKeys, CredentialRequest, Registration};
use crate::protocol::deposit::{AccountName, BlindedOutput, CreditTarget, Deposit, SwapRequest};
use crate::protocol::encoding::Encode;
use crate::protocol::keys::OwnerSecret;
use crate::protocol::keyset::{KeysetKind, KeysetList};
use crate::protocol::policy::{AllowanceScheme, Policy, DAY_SECS};
use crate::protocol::spend::{OwnedAllowance, OwnedCoin, Presenter, V2SpendError};
use crate::protocol::stealth::{recognise, Address};
use crate::protocol::verify::Verifier;
use crate::protocol::withdraw::{
    blind, denominations, finish_allowance, finish_coin, PendingIssue, UnblindError,
};
use crate::store::files::{write_atomic, FilesError};

use journal::{crash_point, load_coin, load_token, secret_of, PendingOp, StoredOp};
use journal::{store_coin, store_token, StoredSecretItem};

mod credentials;
use credentials::V2State;

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
    /// Allowance v2: no credential for the receipt day, and the issuer could not give one.
    #[error("no allowance v2 credential of class {class:?} for day {day} (run `microcash wallet credential`)")]
    NoCredential {
        /// Class.
        class: String,
        /// Receipt day.
        day: u64,
    },
    /// Allowance v2: the receipt day's free slots cannot cover the coin (the receive limit).
    #[error("receive limit of class {class:?} reached for day {day}: need {need}, {free} left")]
    ReceiveLimit {
        /// Class.
        class: String,
        /// Receipt day.
        day: u64,
        /// Value to cover.
        need: u64,
        /// Value of the day's free slots.
        free: u64,
    },
    /// Allowance v2: the presentation could not be made.
    #[error("allowance v2: {0}")]
    V2(#[from] V2SpendError),
    /// Another process holds the wallet.
    #[error("wallet {0} is in use by another process")]
    Busy(PathBuf),
    /// The issuer could not be asked (or its answer was lost); the operation stays in the
    /// wallet's journal and `microcash wallet recover` finishes it.
    #[error("{op} interrupted ({cause}); it is journalled: run `microcash wallet recover`")]
    Interrupted {
        /// The operation.
        op: &'static str,
        /// Why.
        cause: CallError,
    },
}

/// What one v2 presentation needs: the key, the credential for the receipt day, the slots.
type V2Present = (
    CredentialKey,
    crate::protocol::credential::Credential,
    Vec<u16>,
);

/// The wallet file. Version 2 added `pending` (the journal); version 1 files open as
/// version 2 with nothing pending.
#[derive(Serialize, Deserialize)]
struct WalletFile {
    version: u32,
    name: String,
    address_secret: String,
    registered_identity: Option<String>,
    coins: Vec<StoredSecretItem>,
    allowance: Vec<StoredSecretItem>,
    #[serde(default)]
    pending: Vec<StoredOp>,
    /// Allowance v2 credentials and used slots (absent in older files).
    #[serde(default)]
    v2: V2State,
}

const WALLET_VERSION: u32 = 2;

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
    /// The journal: operations begun and not finished (their coins are in flight).
    pending: Vec<PendingOp>,
    /// Allowance v2 credentials and the slots used per day.
    v2: V2State,
    /// Held for the wallet's lifetime: one process at a time changes a wallet.
    _lock: std::fs::File,
}

/// Takes the wallet's lock file (`<wallet>.lock`), exclusively and without waiting.
fn lock(path: &Path) -> Result<std::fs::File, WalletError> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| FilesError::Io {
            path: lock_path.clone(),
            source,
        })?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(|_| WalletError::Busy(path.to_owned()))?;
    Ok(file)
}

/// One pending operation, as `wallet recover` reports it.
#[derive(Debug, Serialize)]
pub struct RecoveryItem {
    /// withdraw, allowance, swap, pay or deposit.
    pub op: &'static str,
    /// completed, refused (nothing happened; what was at stake is back), or still pending.
    pub outcome: &'static str,
    /// Value that came into the wallet (coins or allowance).
    pub value_in: u64,
    /// Value that left it (paid, deposited, or double-spent elsewhere).
    pub value_out: u64,
    /// What to know: the issuer's refusal, where the payment was written.
    pub detail: Option<String>,
    /// For deposits: each coin's outcome.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deposits: Vec<DepositOutcome>,
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
            pending: vec![],
            v2: V2State::default(),
            _lock: lock(path)?,
        };
        w.save()?;
        Ok(w)
    }

    /// Loads a wallet file, taking its lock.
    pub fn open(path: &Path) -> Result<Wallet, WalletError> {
        let corrupt = |reason: String| WalletError::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let lock = lock(path)?;
        let bytes = std::fs::read(path).map_err(|source| FilesError::Io {
            path: path.to_owned(),
            source,
        })?;
        let f: WalletFile = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if f.version != 1 && f.version != WALLET_VERSION {
            return Err(corrupt(format!("unsupported version {}", f.version)));
        }
        let address_secret = secret_of(&f.address_secret).map_err(corrupt)?;
        let coins = f.coins.iter().map(load_coin).collect::<Result<_, _>>();
        let allowance = f.allowance.iter().map(load_token).collect::<Result<_, _>>();
        let pending = f
            .pending
            .iter()
            .map(StoredOp::load)
            .collect::<Result<_, _>>();
        Ok(Wallet {
            path: path.to_owned(),
            name: f.name,
            address_secret,
            registered_identity: f.registered_identity,
            coins: coins.map_err(corrupt)?,
            allowance: allowance.map_err(corrupt)?,
            pending: pending.map_err(|e| corrupt(format!("journal: {e}")))?,
            v2: f.v2,
            _lock: lock,
        })
    }

    /// Writes the wallet file atomically (temporary file, fsync, rename, fsync of the
    /// directory), mode 0600: the file on disk is always one whole state.
    pub fn save(&self) -> Result<(), WalletError> {
        self.write(None)
    }

    /// Writes the wallet file with `begun` journalled after the pending operations.
    fn write(&self, begun: Option<&PendingOp>) -> Result<(), WalletError> {
        let f = WalletFile {
            version: WALLET_VERSION,
            name: self.name.clone(),
            address_secret: hex::encode(self.address_secret.to_bytes()),
            registered_identity: self.registered_identity.clone(),
            coins: self.coins.iter().map(store_coin).collect(),
            allowance: self.allowance.iter().map(store_token).collect(),
            pending: self
                .pending
                .iter()
                .chain(begun)
                .map(PendingOp::store)
                .collect(),
            v2: self.v2.clone(),
        };
        #[allow(
            clippy::expect_used,
            reason = "string-keyed maps and plain structs always serialise"
        )]
        let text = serde_json::to_vec_pretty(&f).expect("wallet serialises");
        write_atomic(&self.path, &text, 0o600)?;
        Ok(())
    }

    /// Records `op` durably before anything is asked of the issuer. If the wallet file
    /// cannot be written (a full disk), nothing was asked: what the operation had at stake
    /// comes back and the error is returned.
    fn begin(&mut self, op: PendingOp) -> Result<PendingOp, WalletError> {
        if let Err(e) = self.write(Some(&op)) {
            self.give_back(op);
            return Err(e);
        }
        crash_point(&format!("{}:journalled", op.kind()));
        Ok(op)
    }

    /// Puts back what an operation that did not happen had at stake.
    fn give_back(&mut self, op: PendingOp) {
        match op {
            PendingOp::Swap { inputs, tokens, .. }
            | PendingOp::Pay {
                coins: inputs,
                tokens,
                ..
            } => {
                self.coins.extend(inputs);
                self.allowance.extend(tokens);
            }
            PendingOp::Deposit { items } => {
                for (_, coin, tokens) in items {
                    self.coins.push(coin);
                    self.allowance.extend(tokens);
                }
            }
            PendingOp::Withdraw { .. } | PendingOp::Allowance { .. } => {}
        }
    }

    /// Operations begun and not finished (their coins and tokens are in flight).
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Value of the coins in flight in unfinished operations, by the published keysets.
    pub fn in_flight(&self, keysets: &KeysetList) -> u64 {
        let value = |c: &OwnedCoin| coin_value(keysets, &c.coin).unwrap_or(0);
        self.pending
            .iter()
            .map(|op| match op {
                PendingOp::Swap { inputs, .. } => inputs.iter().map(value).sum(),
                PendingOp::Pay { coins, .. } => coins.iter().map(value).sum(),
                PendingOp::Deposit { items } => items.iter().map(|(_, c, _)| value(c)).sum(),
                PendingOp::Withdraw { .. } | PendingOp::Allowance { .. } => 0,
            })
            .sum()
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

    /// Allowance v2: registers this wallet as `identity`'s for `class`, signed with the
    /// address secret (possession). Returns the identity's previous wallet, now revoked.
    pub fn register_v2(
        &mut self,
        issuer: &dyn IssuerApi,
        class: &str,
        identity: &str,
    ) -> Result<Option<Address>, WalletError> {
        let reg = Registration::sign(&self.address_secret, class, identity, &mut crate::os_rng());
        let revoked = issuer.register_v2(&reg)?;
        self.registered_identity = Some(identity.to_owned());
        Ok(revoked)
    }

    /// Allowance v2: fetches (or re-fetches: the issuer answers a repeat with the same
    /// credential) the credential of `class` for `day`, checks the issuer's proof under the
    /// published key, and keeps it.
    pub fn fetch_credential(
        &mut self,
        issuer: &dyn IssuerApi,
        class: &str,
        day: u64,
        now: u64,
    ) -> Result<(), WalletError> {
        let req = CredentialRequest::sign(&self.address_secret, class, day, &mut crate::os_rng());
        let (key_id, issue) = issuer.issue_credential(&req, now)?;
        // The key must be a published key of the class asked for (an answer naming
        // another would make presentations the issuer refuses).
        let (key, _) = issuer
            .credential_keys()
            .get(&key_id)
            .filter(|(k, _)| k.class == class)
            .ok_or(WalletError::NoCredential {
                class: class.to_owned(),
                day,
            })?;
        let credential = issue.open(key, &self.address_secret, day).map_err(|e| {
            WalletError::V2(V2SpendError::Presentation(
                crate::protocol::credential::PresentationError::CannotPresent(match e {
                    crate::protocol::credential::issuance::CredentialError::BadIssuanceProof => {
                        "the issuer's credential does not verify under its published key"
                    }
                    _ => "the issuer's credential is malformed",
                }),
            ))
        })?;
        self.v2.insert(class, &credential, now / DAY_SECS);
        Ok(())
    }

    /// Allowance v2: the value of today's free slots of `class`.
    pub fn receive_limit_left(&self, policy: &Policy, class: &str, now: u64) -> u64 {
        self.v2
            .free_value(class, now / DAY_SECS, &policy.slot_schedule())
    }

    /// What moving coin `i` on needs under allowance v2: `None` when its class is not v2;
    /// `Some(None)` when it needs no presentation (the withdrawer's own coin, or a class
    /// without `allowance_required`); else the key, the credential for the receipt day
    /// (fetched if not held) and fresh slots covering the coin's value.
    fn v2_allowance(
        &mut self,
        issuer: &dyn IssuerApi,
        i: usize,
        now: u64,
    ) -> Result<Option<Option<V2Present>>, WalletError> {
        let keysets = issuer.keysets();
        let policy = issuer.policy();
        let coin = &self.coins[i];
        let ks = keysets
            .get(&coin.coin.keyset_id)
            .ok_or_else(|| WalletError::UnknownKeyset(coin.coin.keyset_id.to_string()))?;
        let Some(class) = policy.class(&ks.policy_class) else {
            return Ok(None);
        };
        if class.allowance_scheme != AllowanceScheme::V2 {
            return Ok(None);
        }
        let Some(receipt) = coin.coin.links.last() else {
            return Ok(Some(None));
        };
        if !class.allowance_required {
            return Ok(Some(None));
        }
        let name = ks.policy_class.clone();
        let day = receipt.context.time / DAY_SECS;
        let value = ks.value();
        if self.v2.credential(&name, day).is_none() {
            self.fetch_credential(issuer, &name, day, now)?;
        }
        let credential = self
            .v2
            .credential(&name, day)
            .ok_or(WalletError::NoCredential {
                class: name.clone(),
                day,
            })?;
        let key = issuer
            .credential_keys()
            .get(&credential.key_id)
            .map(|(k, _)| k.clone())
            .ok_or(WalletError::NoCredential {
                class: name.clone(),
                day,
            })?;
        let schedule = policy.slot_schedule();
        let slots = self
            .v2
            .take_slots(&name, day, value, &schedule)
            .ok_or_else(|| WalletError::ReceiveLimit {
                free: self.v2.free_value(&name, day, &schedule),
                class: name.clone(),
                day,
                need: value,
            })?;
        Ok(Some(Some((key, credential, slots))))
    }

    /// The presenter for what [`Wallet::v2_allowance`] prepared (this wallet's secret).
    fn presenter<'a>(&'a self, p: Option<&'a V2Present>) -> Option<Presenter<'a>> {
        p.map(|(key, credential, slots)| Presenter {
            key,
            credential,
            wallet: &self.address_secret,
            slots,
        })
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

    /// Withdraws `amount` from `account` as power-of-two coins of `class`. Every coin is
    /// checked with a pairing before it is stored. Journalled: a crash at any point is
    /// finished by [`Wallet::recover`] with one debit.
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
        let (issues, outputs) = Self::blind_many(
            issuer.keysets(),
            KeysetKind::Coin,
            class,
            amount,
            max_exp,
            now,
        )?;
        let op = PendingOp::Withdraw {
            account,
            outputs,
            issues,
        };
        Ok(self.run(issuer, op, now)?.value_in)
    }

    /// Obtains allowance tokens worth `amount` for today (journalled like a withdrawal).
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
        let (issues, outputs) = Self::blind_many(
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
        let op = PendingOp::Allowance { request, issues };
        Ok(self.run(issuer, op, now)?.value_in)
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
        // v2 classes present instead of spending tokens (`v2_allowance`).
        let required = policy
            .class(&ks.policy_class)
            .is_some_and(|c| c.allowance_required && c.allowance_scheme == AllowanceScheme::V1);
        Ok(if coin.was_received() && required {
            ks.value()
        } else {
            0
        })
    }

    /// Swaps the coins at `inputs` for fresh coins worth `first` and then the change
    /// (journalled: the inputs are in flight until the issuer answers).
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
        let class = inputs
            .first()
            .and_then(|&i| keysets.get(&self.coins[i].coin.keyset_id))
            .map(|k| k.policy_class.clone())
            .unwrap_or_default();
        let max_exp = policy.epochs.max_denomination_exp;
        let (mut issues, mut outputs) =
            Self::blind_many(keysets, KeysetKind::Coin, &class, first, max_exp, now)?;
        let (p2, o2) = Self::blind_many(keysets, KeysetKind::Coin, &class, change, max_exp, now)?;
        issues.extend(p2);
        outputs.extend(o2);
        let digest =
            crate::protocol::deposit::outputs_digest(crate::protocol::tags::SWAP_OUTPUTS, &outputs);
        // Check the allowance for every input before taking any token.
        let mut need_total = 0;
        for &i in inputs {
            need_total += Self::allowance_need(policy, keysets, &self.coins[i])?;
        }
        let have = self.allowance_balance(keysets);
        if need_total > have {
            return Err(WalletError::AllowanceShort {
                need: need_total,
                have,
            });
        }
        let mut rng = crate::os_rng();
        let mut deposits = Vec::new();
        let mut taken = Vec::new();
        for &i in inputs {
            let need = Self::allowance_need(policy, keysets, &self.coins[i])?;
            let tokens = self.take_allowance(keysets, need)?;
            let deposit = match self.v2_allowance(issuer, i, now)? {
                None => self.coins[i].deposit(CreditTarget::Swap(digest), now, &tokens, &mut rng),
                Some(p) => {
                    let presenter = self.presenter(p.as_ref());
                    self.coins[i].deposit_v2(
                        CreditTarget::Swap(digest),
                        now,
                        presenter.as_ref(),
                        &mut rng,
                    )?
                }
            };
            deposits.push(deposit);
            taken.extend(tokens);
        }
        let in_flight = select::take(&mut self.coins, inputs);
        let op = PendingOp::Swap {
            request: SwapRequest {
                inputs: deposits,
                outputs,
            },
            issues,
            inputs: in_flight,
            tokens: taken,
        };
        self.run(issuer, op, now)?;
        Ok(())
    }

    /// Picks held coins worth exactly `amount`, splitting one or more through a swap first
    /// when no exact set is held (the swap is its own journalled operation).
    fn select_exact(
        &mut self,
        issuer: &dyn IssuerApi,
        amount: u64,
        now: u64,
    ) -> Result<Vec<usize>, WalletError> {
        let keysets = issuer.keysets();
        let values = self.coin_values(keysets)?;
        let balance: u64 = values.iter().sum();
        let (chosen, remaining) = select::exact_greedy(&values, amount);
        if remaining == 0 {
            return Ok(chosen);
        }
        let fee = issuer.policy().swap.fee;
        let free: Vec<usize> = (0..values.len()).filter(|i| !chosen.contains(i)).collect();
        let free_values: Vec<u64> = free.iter().map(|&i| values[i]).collect();
        let inputs =
            select::cover(&free_values, remaining + fee).ok_or(WalletError::InsufficientFunds {
                balance,
                needed: amount + fee,
            })?;
        let inputs: Vec<usize> = inputs.iter().map(|&j| free[j]).collect();
        self.swap(issuer, &inputs, remaining, now)?;
        let values = self.coin_values(keysets)?;
        let (again, left) = select::exact_greedy(&values, amount);
        if left != 0 {
            return Err(WalletError::InsufficientFunds {
                balance,
                needed: amount,
            });
        }
        Ok(again)
    }

    /// Pays `amount` to `to` and writes the payment for the payee to `out`, splitting a
    /// coin through a swap when no exact set of coins exists. The coins paid are in flight
    /// (journalled) before the file is written, so they are never paid again; a crash is
    /// finished by [`Wallet::recover`], which writes the same payment again.
    pub fn pay(
        &mut self,
        issuer: &dyn IssuerApi,
        to: &Address,
        amount: u64,
        out: &Path,
        now: u64,
    ) -> Result<Payment, WalletError> {
        if amount == 0 {
            return Err(WalletError::Amount("pay at least 1".into()));
        }
        let keysets = issuer.keysets();
        let chosen = self.select_exact(issuer, amount, now)?;
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
        let mut spent_tokens = Vec::new();
        for &i in &chosen {
            let need = Self::allowance_need(issuer.policy(), keysets, &self.coins[i])?;
            let tokens = self.take_allowance(keysets, need)?;
            let coin = match self.v2_allowance(issuer, i, now)? {
                None => self.coins[i].pay(to, context, &tokens, &mut rng),
                Some(p) => {
                    let presenter = self.presenter(p.as_ref());
                    self.coins[i].pay_v2(to, context, presenter.as_ref(), &mut rng)?
                }
            };
            coins.push(coin);
            spent_tokens.extend(tokens);
        }
        let payment = Payment { coins };
        let op = PendingOp::Pay {
            payment: payment.clone(),
            out: out.to_owned(),
            coins: select::take(&mut self.coins, &chosen),
            tokens: spent_tokens,
        };
        self.run(issuer, op, now)?;
        Ok(payment)
    }

    /// Scans a payment: keeps the coins addressed to this wallet that verify offline.
    ///
    /// For allowance v2 classes the payee checks the earlier hops' presentations as far as
    /// anyone but the issuer can (their binding and tags; not the MAC: `docs/protocol.md`
    /// §8.5) with the published `credentials`.
    pub fn receive(
        &mut self,
        keysets: &KeysetList,
        policy: &Policy,
        credentials: &CredentialKeys,
        payment: &Payment,
        now: u64,
    ) -> ReceiveReport {
        let schedule = policy.slot_schedule();
        let verifier = Verifier::new(keysets, policy).with_credentials(credentials, &schedule);
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

    /// Deposits coins worth `amount` (all coins if `None`) to `account`, splitting through
    /// a swap when no exact set is held. Accepted and double-spent coins leave the wallet;
    /// coins refused for other reasons stay. Journalled: the deposits are recorded before
    /// they are sent, and re-sent as they are by [`Wallet::recover`].
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
        let chosen: Vec<usize> = match amount {
            None => (0..self.coins.len()).collect(),
            Some(0) => return Err(WalletError::Amount("deposit at least 1".into())),
            Some(a) => self.select_exact(issuer, a, now)?,
        };
        let mut rng = crate::os_rng();
        let mut outcomes = Vec::new();
        let mut ready = Vec::new();
        let mut presentations = std::collections::HashMap::new();
        for i in chosen {
            let need = Self::allowance_need(issuer.policy(), keysets, &self.coins[i])?;
            let v2 = match self.v2_allowance(issuer, i, now) {
                Ok(v2) => v2,
                Err(e) => {
                    outcomes.push(DepositOutcome {
                        serial: self.coins[i].coin.serial().to_string(),
                        value: coin_value(keysets, &self.coins[i].coin)?,
                        receipt: None,
                        error: Some(e.to_string()),
                    });
                    continue;
                }
            };
            if let Some(p) = v2 {
                presentations.insert(i, p);
            }
            match self.take_allowance(keysets, need) {
                Ok(tokens) => ready.push((i, tokens)),
                Err(e) => outcomes.push(DepositOutcome {
                    serial: self.coins[i].coin.serial().to_string(),
                    value: coin_value(keysets, &self.coins[i].coin)?,
                    receipt: None,
                    error: Some(e.to_string()),
                }),
            }
        }
        // Descending by index: the order select::take hands the coins back in.
        ready.sort_by_key(|r| std::cmp::Reverse(r.0));
        let deposits: Vec<Deposit> = ready
            .iter()
            .map(|(i, tokens)| match presentations.get(i) {
                None => Ok(self.coins[*i].deposit(
                    CreditTarget::Account(account.clone()),
                    now,
                    tokens,
                    &mut rng,
                )),
                Some(p) => {
                    let presenter = self.presenter(p.as_ref());
                    self.coins[*i].deposit_v2(
                        CreditTarget::Account(account.clone()),
                        now,
                        presenter.as_ref(),
                        &mut rng,
                    )
                }
            })
            .collect::<Result<_, _>>()?;
        let indices: Vec<usize> = ready.iter().map(|(i, _)| *i).collect();
        let coins = select::take(&mut self.coins, &indices);
        let items = deposits
            .into_iter()
            .zip(coins)
            .zip(ready)
            .map(|((d, c), (_, t))| (d, c, t))
            .collect();
        let op = PendingOp::Deposit { items };
        let item = self.run(issuer, op, now)?;
        outcomes.extend(item.deposits);
        Ok(outcomes)
    }

    /// Finishes every operation a crash (or a lost answer) left in the journal: re-sends
    /// each request as it was recorded — the issuer answers a repeat with its original
    /// answer and no second charge — and re-writes recorded payments. A refused operation
    /// gives back what it had at stake; one the issuer still cannot answer stays.
    pub fn recover(
        &mut self,
        issuer: &dyn IssuerApi,
        now: u64,
    ) -> Result<Vec<RecoveryItem>, WalletError> {
        let mut report = Vec::new();
        // Whatever stays unfinished goes back into `self.pending`: by `finish` itself (an
        // operation it could not apply, the unanswered part of a deposit) or here.
        let mut ops = std::mem::take(&mut self.pending).into_iter();
        while let Some(op) = ops.next() {
            match self.finish(issuer, op, now) {
                Ok(Finish::Completed(item) | Finish::Refused(item, _)) => report.push(item),
                Ok(Finish::Again(op, cause)) => {
                    report.push(RecoveryItem {
                        op: op.kind(),
                        outcome: "pending",
                        value_in: 0,
                        value_out: 0,
                        detail: Some(cause.to_string()),
                        deposits: vec![],
                    });
                    self.pending.push(op);
                }
                Err(e) => {
                    self.pending.extend(ops);
                    self.save()?;
                    return Err(e);
                }
            }
        }
        self.save()?;
        Ok(report)
    }

    /// Runs a new operation under the journal: recorded, performed, its result saved.
    fn run(
        &mut self,
        issuer: &dyn IssuerApi,
        op: PendingOp,
        now: u64,
    ) -> Result<RecoveryItem, WalletError> {
        let kind = op.kind();
        let op = self.begin(op)?;
        let finished = self.finish(issuer, op, now);
        let result = match finished {
            Ok(Finish::Completed(item)) => Ok(item),
            Ok(Finish::Refused(_, cause)) => Err(WalletError::Issuer(cause)),
            Ok(Finish::Again(op, cause)) => {
                self.pending.push(op);
                Err(WalletError::Interrupted { op: kind, cause })
            }
            Err(e) => Err(e),
        };
        self.save()?;
        crash_point(&format!("{kind}:finished"));
        result
    }

    /// Performs one journalled operation and applies its result in memory (the caller
    /// saves). On an error the operation is back in the journal, unchanged.
    fn finish(
        &mut self,
        issuer: &dyn IssuerApi,
        op: PendingOp,
        now: u64,
    ) -> Result<Finish, WalletError> {
        let keysets = issuer.keysets();
        let item = |op: &'static str, outcome, value_in, value_out, detail| RecoveryItem {
            op,
            outcome,
            value_in,
            value_out,
            detail,
            deposits: vec![],
        };
        // What an operation that is not finished does: back into the journal, unchanged.
        macro_rules! keep {
            ($op:expr, $result:expr) => {
                match $result {
                    Ok(v) => v,
                    Err(e) => {
                        self.pending.push($op);
                        return Err(e);
                    }
                }
            };
        }
        // Payments and deposits are finished by their own rules; the rest are one request
        // whose answer is blind signatures.
        let answer = match &op {
            PendingOp::Withdraw {
                account, outputs, ..
            } => issuer.withdraw(account, outputs, now),
            PendingOp::Allowance { request, .. } => issuer.issue_allowance(request, now),
            PendingOp::Swap { request, .. } => issuer.swap(request, now),
            PendingOp::Pay { .. } | PendingOp::Deposit { .. } => Ok(vec![]),
        };
        let kind = op.kind();
        let answers = match answer {
            Ok(answers) => answers,
            Err(e) if e.is_refusal() => {
                // Nothing happened: what was at stake comes back.
                self.give_back(op);
                let it = item(kind, "refused", 0, 0, Some(e.to_string()));
                return Ok(Finish::Refused(it, e));
            }
            Err(e) => return Ok(Finish::Again(op, e)),
        };
        let signed = matches!(
            op,
            PendingOp::Withdraw { .. } | PendingOp::Allowance { .. } | PendingOp::Swap { .. }
        );
        if signed {
            crash_point(&format!("{kind}:answered"));
        }
        match op {
            PendingOp::Withdraw {
                ref outputs,
                ref issues,
                ..
            } => {
                let unblinded = unblind(keysets, issues, outputs, &answers, finish_coin);
                let (coins, value) = keep!(op, unblinded);
                self.coins.extend(coins);
                Ok(Finish::Completed(item(kind, "completed", value, 0, None)))
            }
            PendingOp::Allowance {
                ref request,
                ref issues,
            } => {
                let outputs = &request.outputs;
                let unblinded = unblind(keysets, issues, outputs, &answers, finish_allowance);
                let (tokens, value) = keep!(op, unblinded);
                self.allowance.extend(tokens);
                Ok(Finish::Completed(item(kind, "completed", value, 0, None)))
            }
            PendingOp::Swap {
                ref request,
                ref issues,
                ref inputs,
                ..
            } => {
                let outputs = &request.outputs;
                let unblinded = unblind(keysets, issues, outputs, &answers, finish_coin);
                let (coins, value) = keep!(op, unblinded);
                self.coins.extend(coins);
                let spent = inputs
                    .iter()
                    .map(|c| coin_value(keysets, &c.coin).unwrap_or(0))
                    .sum();
                Ok(Finish::Completed(item(
                    kind,
                    "completed",
                    value,
                    spent,
                    None,
                )))
            }
            PendingOp::Pay {
                ref payment,
                ref out,
                ref coins,
                ..
            } => {
                keep!(
                    op,
                    write_atomic(out, &payment.to_bytes(), 0o600).map_err(WalletError::from)
                );
                crash_point("pay:written");
                let value = coins
                    .iter()
                    .map(|c| coin_value(keysets, &c.coin).unwrap_or(0))
                    .sum();
                let detail = format!("payment written to {}", out.display());
                Ok(Finish::Completed(item(
                    "pay",
                    "completed",
                    0,
                    value,
                    Some(detail),
                )))
            }
            PendingOp::Deposit { items } => {
                let mut outcomes = Vec::new();
                let mut left = Vec::new();
                let mut value_out = 0;
                let mut cause = None;
                for (deposit, coin, tokens) in items {
                    let value = coin_value(keysets, &coin.coin).unwrap_or(0);
                    let serial = coin.coin.serial().to_string();
                    let outcome = |receipt, error| DepositOutcome {
                        serial: serial.clone(),
                        value,
                        receipt,
                        error,
                    };
                    match issuer.deposit(&deposit, now) {
                        Ok(receipt) => {
                            value_out += value;
                            outcomes.push(outcome(Some(receipt), None));
                        }
                        Err(e) if e.is_double_spent() => {
                            value_out += value;
                            outcomes.push(outcome(None, Some(e.to_string())));
                        }
                        Err(e) if e.is_refusal() => {
                            // Nothing happened to this coin: it and its tokens come back.
                            self.coins.push(coin);
                            self.allowance.extend(tokens);
                            outcomes.push(outcome(None, Some(e.to_string())));
                        }
                        Err(e) => {
                            outcomes.push(outcome(None, Some(e.to_string())));
                            left.push((deposit, coin, tokens));
                            cause = Some(e);
                        }
                    }
                }
                crash_point("deposit:answered");
                let mut it = item("deposit", "completed", 0, value_out, None);
                it.deposits = outcomes;
                if let Some(cause) = cause {
                    // The deposits the issuer did not answer stay journalled; the rest is
                    // done. Report both: the caller shows the outcomes.
                    it.outcome = "partial";
                    it.detail = Some(cause.to_string());
                    self.pending.push(PendingOp::Deposit { items: left });
                }
                Ok(Finish::Completed(it))
            }
        }
    }
}

/// Unblinds and checks the issuer's answers to `issues` with `finish` (coins or tokens);
/// nothing is kept unless every answer verifies. Returns them with their value.
fn unblind<T>(
    keysets: &KeysetList,
    issues: &[PendingIssue],
    outputs: &[BlindedOutput],
    answers: &[microcash_kernels::bls::G1Affine],
    finish: fn(
        PendingIssue,
        &crate::protocol::keyset::Keyset,
        &microcash_kernels::bls::G1Affine,
    ) -> Result<T, UnblindError>,
) -> Result<(Vec<T>, u64), WalletError> {
    if answers.len() != issues.len() {
        return Err(WalletError::AnswerCount {
            expected: issues.len(),
            got: answers.len(),
        });
    }
    let mut value = 0;
    let mut fresh = Vec::new();
    for ((p, o), a) in issues.iter().zip(outputs).zip(answers) {
        let ks = keysets
            .get(&o.keyset_id)
            .ok_or_else(|| WalletError::UnknownKeyset(o.keyset_id.to_string()))?;
        fresh.push(finish(p.clone(), ks, a)?);
        value += ks.value();
    }
    Ok((fresh, value))
}

/// What performing one journalled operation came to.
enum Finish {
    /// Done: its result is in the wallet.
    Completed(RecoveryItem),
    /// The issuer refused: nothing happened, what was at stake is back.
    Refused(RecoveryItem, CallError),
    /// No answer: it stays journalled.
    Again(PendingOp, CallError),
}

fn coin_value(keysets: &KeysetList, coin: &Coin) -> Result<u64, WalletError> {
    keysets
        .get(&coin.keyset_id)
        .map(|k| k.value())
        .ok_or_else(|| WalletError::UnknownKeyset(coin.keyset_id.to_string()))
}
