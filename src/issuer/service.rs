//! Issuer operations: accounts, withdrawal, wallet registration, allowance issuance,
//! deposit (reference path) and swap. Each value-moving operation is one store transaction.

use std::path::{Path, PathBuf};

use microcash_kernels::bls::G1Affine;
use serde::Serialize;

use super::IssuerApi;
use crate::engine::settle::{self, BatchMemory};
use crate::engine::{Engine, EngineError, PublicParams, Verdict};
use crate::protocol::allowance::AllowanceRequest;
use crate::protocol::deposit::{AccountName, BlindedOutput, CreditTarget, Deposit, SwapRequest};
use crate::protocol::keyset::{Keyset, KeysetKind, KeysetList, KeysetPhase};
use crate::protocol::policy::{Policy, DAY_SECS};
use crate::protocol::stealth::Address;
use crate::protocol::verify::{Rejection, VerifiedDeposit, Verifier};
use crate::protocol::withdraw::{sign_blinded, BlindSignError};
use crate::spentset::{SpentSetConfig, SpentSetError};
use crate::store::files::{FilesError, IssuerKeys};
use crate::store::state::{Refusal, StoreError};

/// A redemption receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Receipt id (its offset in the settlement journal).
    pub receipt_id: u64,
    /// Coin serial (hex).
    pub serial: String,
    /// Value credited.
    pub value: u64,
    /// Account credited.
    pub account: String,
    /// True when this answers a resubmission of an already-accepted deposit.
    pub replayed: bool,
}

/// Why the issuer refused an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// The coin or deposit breaks a protocol rule.
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    /// Swap input `index` breaks a protocol rule.
    #[error("swap input {index} rejected: {rejection}")]
    SwapInputRejected {
        /// Input position.
        index: usize,
        /// The rule.
        rejection: Rejection,
    },
    /// Refused at settlement (double spend with evidence, allowance reused, unknown
    /// account, merchant-only policy).
    #[error("refused: {0}")]
    Refused(Verdict),
    /// A deposit to an account that does not exist.
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    /// An account name that is already taken.
    #[error("account {0:?} already exists")]
    AccountExists(String),
    /// An invalid account name.
    #[error("invalid account name {0:?} (1-64 chars of [A-Za-z0-9_.@-])")]
    BadAccountName(String),
    /// Not enough balance to withdraw.
    #[error("insufficient funds in {account}: balance {balance}, needed {needed}")]
    InsufficientFunds {
        /// Account.
        account: String,
        /// Balance.
        balance: u64,
        /// Needed.
        needed: u64,
    },
    /// A blinded output the issuer will not sign.
    #[error("output {index}: {reason}")]
    BadOutput {
        /// Position.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A withdrawal or swap with no outputs, or too many.
    #[error("request must carry between 1 and {max} outputs, got {got}")]
    OutputCount {
        /// Got.
        got: usize,
        /// Max.
        max: usize,
    },
    /// Swap outputs (plus fee) worth more than its inputs.
    #[error("swap outputs worth {outputs} plus fee {fee} exceed inputs worth {inputs}")]
    SwapOutputsExceedInputs {
        /// Σ inputs.
        inputs: u64,
        /// Σ outputs.
        outputs: u64,
        /// Fee.
        fee: u64,
    },
    /// Swap outputs (plus fee) worth less than its inputs: value would vanish.
    #[error("swap outputs worth {outputs} plus fee {fee} fall short of inputs worth {inputs}")]
    SwapOutputsBelowInputs {
        /// Σ inputs.
        inputs: u64,
        /// Σ outputs.
        outputs: u64,
        /// Fee.
        fee: u64,
    },
    /// A swap input that does not authorise these outputs.
    #[error("swap input {index} is not a deposit to this swap's outputs")]
    SwapTargetMismatch {
        /// Position.
        index: usize,
    },
    /// The same coin twice in one swap.
    #[error("swap input {index} repeats an earlier input's coin")]
    SwapDuplicateInput {
        /// Position.
        index: usize,
    },
    /// A deposit whose target is a swap, sent to the deposit endpoint (or the reverse).
    #[error("deposit target must be an account")]
    NotAnAccountDeposit,
    /// Allowance request beyond the daily cap.
    #[error("allowance cap exceeded: limit {limit} per day, already issued {issued}, requested {requested}")]
    AllowanceCapExceeded {
        /// Daily limit.
        limit: u64,
        /// Issued today so far.
        issued: u64,
        /// Requested now.
        requested: u64,
    },
    /// Allowance request from an unregistered address.
    #[error("wallet {0} is not registered")]
    WalletNotRegistered(String),
    /// Address already registered.
    #[error("wallet {0} is already registered")]
    WalletAlreadyRegistered(String),
    /// Request signature invalid.
    #[error("request signature is invalid")]
    BadRequestSignature,
    /// Allowance requested for another day than today.
    #[error("allowance requested for day {requested}, today is {today}")]
    WrongDay {
        /// Requested day.
        requested: u64,
        /// Today.
        today: u64,
    },
    /// Storage failure.
    #[error(transparent)]
    Store(StoreError),
    /// Issuer directory failure.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// File system failure (creating the issuer directory).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A remote issuer refused or failed (HTTP client).
    #[error("issuer server: {code} ({status}): {message}")]
    Remote {
        /// HTTP status (0: transport failure).
        status: u16,
        /// The stable error or verdict code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// Engine (store) failure.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Spent-set failure.
    #[error(transparent)]
    SpentSet(#[from] SpentSetError),
    /// Settlement failure (storage).
    #[error(transparent)]
    Settle(#[from] crate::engine::settle::SettleError),
    /// Some swap inputs were redeemed before by this very swap, others not: impossible for
    /// a resubmission (a swap commits all inputs at once), so refused.
    #[error("swap inputs partially redeemed before")]
    SwapPartiallyReplayed,
}

impl From<StoreError> for IssuerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(r) => match r {
                Refusal::UnknownAccount(a) => IssuerError::UnknownAccount(a),
                Refusal::AccountExists(a) => IssuerError::AccountExists(a),
                Refusal::InsufficientFunds {
                    account,
                    balance,
                    needed,
                } => IssuerError::InsufficientFunds {
                    account,
                    balance,
                    needed,
                },
                Refusal::Overflow(_) => IssuerError::BadOutput {
                    index: 0,
                    reason: "balance overflow".into(),
                },
                Refusal::AllowanceCapExceeded {
                    limit,
                    issued,
                    requested,
                } => IssuerError::AllowanceCapExceeded {
                    limit,
                    issued,
                    requested,
                },
                // The caller names the address (it knows it; the state does not print it).
                Refusal::WalletAlreadyRegistered => {
                    IssuerError::WalletAlreadyRegistered(String::new())
                }
                Refusal::WalletNotRegistered => IssuerError::WalletNotRegistered(String::new()),
            },
            other => IssuerError::Store(other),
        }
    }
}

/// An issuer working on a local directory.
pub struct Issuer {
    dir: PathBuf,
    keys: IssuerKeys,
    engine: Engine,
}

impl Issuer {
    /// Creates a new issuer directory with `policy`, first epoch from `now` — atomically:
    /// built beside `dir` and renamed into place, so a crash leaves nothing half-made and a
    /// concurrent `init` of the same directory fails instead of mixing keys.
    pub fn init(dir: &Path, policy: Policy, now: u64) -> Result<Issuer, IssuerError> {
        if crate::store::files::keysets_path(dir).exists() {
            return Err(FilesError::AlreadyInitialised(dir.to_owned()).into());
        }
        let created = crate::store::files::create_dir_atomically(dir, |staging| {
            IssuerKeys::init(staging, policy, now)?;
            Engine::create(staging, SpentSetConfig::default())?;
            Ok::<(), IssuerError>(())
        })?;
        if !created {
            return Err(FilesError::AlreadyInitialised(dir.to_owned()).into());
        }
        Issuer::open(dir)
    }

    /// Opens an existing issuer directory.
    pub fn open(dir: &Path) -> Result<Issuer, IssuerError> {
        let keys = IssuerKeys::load(dir)?;
        let engine = Engine::open(dir, SpentSetConfig::default())?;
        Ok(Issuer {
            dir: dir.to_owned(),
            keys,
            engine,
        })
    }

    /// Key rotation: adds the next epoch from `now`.
    pub fn rotate(&mut self, now: u64) -> Result<u32, IssuerError> {
        let epoch = self.keys.add_epoch(&self.dir, now)?;
        self.engine.set_params(PublicParams {
            keysets: self.keys.keysets.clone(),
            policy: self.keys.policy.clone(),
        });
        Ok(epoch)
    }

    /// The engine (store, spent set) behind this issuer.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn account_name(name: &str) -> Result<AccountName, IssuerError> {
        AccountName::new(name).ok_or_else(|| IssuerError::BadAccountName(name.to_owned()))
    }

    /// Creates an account with zero balance.
    pub fn create_account(&self, name: &str, merchant: bool) -> Result<(), IssuerError> {
        let name = Self::account_name(name)?;
        Ok(self
            .engine
            .accounts()
            .create_accounts(&[(name.as_str(), merchant)])?)
    }

    /// Issues a fresh API token for `account` (replacing any earlier one). The token
    /// authenticates withdrawals over HTTP; only its digest is stored.
    pub fn issue_account_token(&self, account: &str) -> Result<String, IssuerError> {
        let mut raw = [0u8; 32];
        rand_core::Rng::fill_bytes(&mut crate::os_rng(), &mut raw);
        let token = format!("mct_{}", hex::encode(raw));
        self.engine.accounts().set_account_token(account, &token)?;
        Ok(token)
    }

    /// Issues an upload token for clearing partner `partner` (a back office that submits
    /// redemption batches). Each call adds a token; only its digest is stored.
    pub fn issue_partner_token(&self, partner: &str) -> Result<String, IssuerError> {
        let name = Self::account_name(partner)?;
        let mut raw = [0u8; 32];
        rand_core::Rng::fill_bytes(&mut crate::os_rng(), &mut raw);
        let token = format!("mcp_{}", hex::encode(raw));
        self.engine
            .accounts()
            .add_partner_token(name.as_str(), &token)?;
        Ok(token)
    }

    /// The issuer's keys (public keysets and policy).
    pub fn keys(&self) -> &IssuerKeys {
        &self.keys
    }

    /// Credits an account from outside the system (a bank transfer in).
    pub fn fund(&self, name: &str, amount: u64) -> Result<u64, IssuerError> {
        self.engine.accounts().fund(name, amount)?;
        self.balance(name)
    }

    /// An account's balance: funding minus withdrawals, plus redemptions credited to it.
    pub fn balance(&self, name: &str) -> Result<u64, IssuerError> {
        self.engine
            .balance(name)?
            .ok_or_else(|| IssuerError::UnknownAccount(name.to_owned()))
    }

    /// Settles verified deposits against the spent set: all of them in one commit group,
    /// or none when any is refused.
    fn settle(
        &self,
        verified: Vec<VerifiedDeposit>,
        allow_swap: bool,
        now: u64,
    ) -> Result<Vec<Verdict>, IssuerError> {
        let mut spent = self.engine.spent();
        let n = verified.len();
        let items = verified
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i as u64, Ok(v)))
            .collect();
        let plan = settle::plan(
            &spent,
            self.engine.accounts(),
            &mut BatchMemory::default(),
            items,
            allow_swap,
            now,
        )?;
        if let Some(refusal) = plan.first_refusal() {
            return Err(IssuerError::Refused(refusal.clone()));
        }
        // A group commits all its inputs at once, so a genuine resubmission replays every
        // one; a partial replay cannot be one, and must not spend the fresh inputs.
        if plan.replay_count() != 0 && plan.replay_count() != n {
            return Err(IssuerError::SwapPartiallyReplayed);
        }
        Ok(settle::commit(&mut spent, plan)?)
    }

    /// Checks outputs: known keysets of `kind`, open for issuance at `now`; returns each
    /// output's keyset and the total value.
    fn check_outputs<'k>(
        &'k self,
        outputs: &[BlindedOutput],
        kind: KeysetKind,
        now: u64,
    ) -> Result<(Vec<&'k Keyset>, u64), IssuerError> {
        if outputs.is_empty() || outputs.len() > crate::protocol::deposit::OUTPUTS_MAX {
            return Err(IssuerError::OutputCount {
                got: outputs.len(),
                max: crate::protocol::deposit::OUTPUTS_MAX,
            });
        }
        let mut keysets = Vec::with_capacity(outputs.len());
        let mut total = 0u64;
        for (index, o) in outputs.iter().enumerate() {
            let bad = |reason: &str| IssuerError::BadOutput {
                index,
                reason: reason.to_owned(),
            };
            let ks = self
                .keys
                .keysets
                .get(&o.keyset_id)
                .ok_or_else(|| bad("unknown keyset"))?;
            if ks.kind != kind {
                return Err(bad("keyset of the wrong kind"));
            }
            if ks.windows.phase(now) != KeysetPhase::Active {
                return Err(bad("keyset is not open for issuance"));
            }
            if !o.blinded.in_subgroup() {
                return Err(bad("blinded message is outside G1"));
            }
            total = total
                .checked_add(ks.value())
                .ok_or_else(|| bad("value overflow"))?;
            keysets.push(ks);
        }
        Ok((keysets, total))
    }

    fn sign_outputs(&self, outputs: &[BlindedOutput]) -> Result<Vec<G1Affine>, IssuerError> {
        outputs
            .iter()
            .enumerate()
            .map(|(index, o)| {
                let sk = self
                    .keys
                    .secret(&o.keyset_id)
                    .ok_or(IssuerError::BadOutput {
                        index,
                        reason: "no secret key".into(),
                    })?;
                sign_blinded(sk, index, o).map_err(|BlindSignError::NotInSubgroup { index }| {
                    IssuerError::BadOutput {
                        index,
                        reason: "blinded message is outside G1".into(),
                    }
                })
            })
            .collect()
    }
}

impl IssuerApi for Issuer {
    fn keysets(&self) -> &KeysetList {
        &self.keys.keysets
    }

    fn policy(&self) -> &Policy {
        &self.keys.policy
    }

    fn withdraw(
        &self,
        account: &AccountName,
        outputs: &[BlindedOutput],
        now: u64,
    ) -> Result<Vec<G1Affine>, IssuerError> {
        let (keysets, _) = self.check_outputs(outputs, KeysetKind::Coin, now)?;
        let signatures = self.sign_outputs(outputs)?;
        let signed: Vec<([u8; 32], u64)> = keysets.iter().map(|k| (k.id.0, k.value())).collect();
        self.engine.accounts().withdraw(
            account.as_str(),
            self.engine.credited(account.as_str()),
            &signed,
            now,
        )?;
        // Signatures leave the issuer only once the debit is durable.
        Ok(signatures)
    }

    fn register_wallet(&self, address: &Address, identity: &str) -> Result<(), IssuerError> {
        let key = address.0.to_bytes();
        self.engine
            .accounts()
            .register_wallet(&key, identity)
            .map_err(|e| match IssuerError::from(e) {
                IssuerError::WalletAlreadyRegistered(_) => {
                    IssuerError::WalletAlreadyRegistered(address.to_string())
                }
                other => other,
            })
    }

    fn issue_allowance(
        &self,
        request: &AllowanceRequest,
        now: u64,
    ) -> Result<Vec<G1Affine>, IssuerError> {
        if !request.authentic() {
            return Err(IssuerError::BadRequestSignature);
        }
        let today = now / DAY_SECS;
        if request.day != today {
            return Err(IssuerError::WrongDay {
                requested: request.day,
                today,
            });
        }
        let (keysets, _) = self.check_outputs(&request.outputs, KeysetKind::Allowance, now)?;
        let key = request.address.to_bytes();
        let limit = self.keys.policy.allowance.daily_limit;
        let signatures = self.sign_outputs(&request.outputs)?;
        let signed: Vec<([u8; 32], u64)> = keysets.iter().map(|k| (k.id.0, k.value())).collect();
        self.engine
            .accounts()
            .issue_allowance(&key, today, limit, &signed, &request.request_id())
            .map_err(|e| match IssuerError::from(e) {
                IssuerError::WalletNotRegistered(_) => {
                    IssuerError::WalletNotRegistered(Address(request.address).to_string())
                }
                other => other,
            })?;
        Ok(signatures)
    }

    fn deposit(&self, deposit: &Deposit, now: u64) -> Result<Receipt, IssuerError> {
        let verified =
            Verifier::new(&self.keys.keysets, &self.keys.policy).verify_deposit(deposit, now)?;
        if !matches!(verified.target(), CreditTarget::Account(_)) {
            return Err(IssuerError::NotAnAccountDeposit);
        }
        let serial = verified.serial().to_string();
        match self.settle(vec![verified], false, now)?.remove(0) {
            Verdict::Accepted {
                receipt,
                value,
                account,
                replayed,
            } => Ok(Receipt {
                receipt_id: receipt,
                serial,
                value,
                account,
                replayed,
            }),
            other => Err(IssuerError::Refused(other)),
        }
    }

    fn swap(&self, request: &SwapRequest, now: u64) -> Result<Vec<G1Affine>, IssuerError> {
        let (out_keysets, outputs_value) =
            self.check_outputs(&request.outputs, KeysetKind::Coin, now)?;
        if request.inputs.is_empty() || request.inputs.len() > crate::protocol::deposit::OUTPUTS_MAX
        {
            return Err(IssuerError::OutputCount {
                got: request.inputs.len(),
                max: crate::protocol::deposit::OUTPUTS_MAX,
            });
        }
        let digest = request.outputs_digest();
        let verifier = Verifier::new(&self.keys.keysets, &self.keys.policy);
        let mut verified = Vec::with_capacity(request.inputs.len());
        let mut inputs_value = 0u64;
        for (index, input) in request.inputs.iter().enumerate() {
            if input.target != CreditTarget::Swap(digest) {
                return Err(IssuerError::SwapTargetMismatch { index });
            }
            let v = verifier
                .verify_deposit(input, now)
                .map_err(|rejection| IssuerError::SwapInputRejected { index, rejection })?;
            if verified
                .iter()
                .any(|w: &VerifiedDeposit| w.serial() == v.serial())
            {
                return Err(IssuerError::SwapDuplicateInput { index });
            }
            inputs_value = inputs_value.saturating_add(v.value());
            verified.push(v);
        }
        let fee = self.keys.policy.swap.fee;
        let paid_out = outputs_value.saturating_add(fee);
        if paid_out > inputs_value {
            return Err(IssuerError::SwapOutputsExceedInputs {
                inputs: inputs_value,
                outputs: outputs_value,
                fee,
            });
        }
        if paid_out < inputs_value {
            return Err(IssuerError::SwapOutputsBelowInputs {
                inputs: inputs_value,
                outputs: outputs_value,
                fee,
            });
        }
        self.settle(verified, true, now)?;
        // Counted once per swap, before any signature leaves (a replay is signed again).
        let signed: Vec<([u8; 32], u64)> =
            out_keysets.iter().map(|k| (k.id.0, k.value())).collect();
        self.engine.accounts().record_swap(&digest, now, &signed)?;
        // Outputs are signed only now that the inputs are durably spent. Signing is
        // deterministic (sk·B), so a replayed swap gets the same answers again.
        self.sign_outputs(&request.outputs)
    }
}
