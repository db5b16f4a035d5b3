//! Issuer operations: accounts, withdrawal, wallet registration, allowance issuance,
//! deposit (reference path) and swap. Each value-moving operation is one store transaction.

use std::path::{Path, PathBuf};

use microcash_kernels::bls::G1Affine;
use serde::Serialize;

use super::IssuerApi;
use crate::engine::batch_verify::{self, ChunkDeposit};
use crate::engine::settle::{self, BatchMemory};
use crate::engine::{Engine, PublicParams, Verdict};
use crate::protocol::allowance::AllowanceRequest;
use crate::protocol::credential::{
    CredentialIssue, CredentialKey, CredentialRequest, Registration,
};
use crate::protocol::deposit::{
    withdraw_request_id, AccountName, BlindedOutput, CreditTarget, Deposit, SwapRequest,
};
use crate::protocol::keyset::{Keyset, KeysetKind, KeysetList, KeysetPhase};
use crate::protocol::policy::{AllowanceScheme, Policy, DAY_SECS};
use crate::protocol::stealth::Address;
use crate::protocol::verify::VerifiedDeposit;
use crate::protocol::withdraw::{sign_blinded, BlindSignError};
use crate::spentset::SpentSetConfig;
use crate::store::files::IssuerKeys;
use crate::store::state::WithdrawRequestId;
use crate::store::state::ALLOWANCE_REPLAY_DAYS;

use super::error::{CallError, IssuerError, Misuse, OutputFault, RequestRefusal, StorageFault};

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
            return Err(Misuse::AlreadyInitialised(dir.to_owned()).into());
        }
        let created = crate::store::files::create_dir_atomically(dir, |staging| {
            IssuerKeys::init(staging, policy, now)?;
            Engine::create(staging, SpentSetConfig::default())?;
            Ok::<(), IssuerError>(())
        })?;
        if !created {
            return Err(Misuse::AlreadyInitialised(dir.to_owned()).into());
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
        self.engine.set_params(PublicParams::load(&self.dir)?);
        Ok(epoch)
    }

    /// The engine (store, spent set) behind this issuer.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn account_name(name: &str) -> Result<AccountName, IssuerError> {
        AccountName::new(name).ok_or_else(|| Misuse::BadAccountName(name.to_owned()).into())
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
            .ok_or_else(|| RequestRefusal::UnknownAccount(name.to_owned()).into())
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
            &*spent,
            self.engine.accounts(),
            &mut BatchMemory::default(),
            items,
            allow_swap,
            now,
        )?;
        if let Some(refusal) = plan.first_refusal() {
            return Err(RequestRefusal::Settlement(refusal.clone()).into());
        }
        // A group commits all its inputs at once, so a genuine resubmission replays every
        // one; a partial replay cannot be one, and must not spend the fresh inputs.
        if plan.replay_count() != 0 && plan.replay_count() != n {
            return Err(RequestRefusal::SwapPartiallyReplayed.into());
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
            return Err(Misuse::OutputCount {
                got: outputs.len(),
                max: crate::protocol::deposit::OUTPUTS_MAX,
            }
            .into());
        }
        let mut keysets = Vec::with_capacity(outputs.len());
        let mut total = 0u64;
        for (index, o) in outputs.iter().enumerate() {
            let bad = |reason: OutputFault| -> IssuerError {
                RequestRefusal::BadOutput { index, reason }.into()
            };
            let ks = self
                .keys
                .keysets
                .get(&o.keyset_id)
                .ok_or_else(|| bad(OutputFault::UnknownKeyset))?;
            if ks.kind != kind {
                return Err(bad(OutputFault::WrongKind));
            }
            if ks.windows.phase(now) != KeysetPhase::Active {
                return Err(bad(OutputFault::NotIssuing));
            }
            if !o.blinded.in_subgroup() {
                return Err(bad(OutputFault::OutsideG1));
            }
            total = total
                .checked_add(ks.value())
                .ok_or_else(|| bad(OutputFault::ValueOverflow))?;
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
                    .ok_or_else(|| StorageFault::MissingSecret(o.keyset_id.to_string()))?;
                sign_blinded(sk, index, o).map_err(|BlindSignError::NotInSubgroup { index }| {
                    IssuerError::from(RequestRefusal::BadOutput {
                        index,
                        reason: OutputFault::OutsideG1,
                    })
                })
            })
            .collect()
    }
}

/// The wallet-facing operations, with the issuer's own error type (the server maps it to
/// HTTP answers; [`IssuerApi`] wraps it for wallets).
impl Issuer {
    /// See [`IssuerApi::withdraw`].
    pub fn withdraw(
        &self,
        account: &AccountName,
        outputs: &[BlindedOutput],
        now: u64,
    ) -> Result<Vec<G1Affine>, IssuerError> {
        let (keysets, _) = self.check_outputs(outputs, KeysetKind::Coin, now)?;
        let signatures = self.sign_outputs(outputs)?;
        let signed: Vec<([u8; 32], u64)> = keysets.iter().map(|k| (k.id.0, k.value())).collect();
        // A repeat of this request (same account, same blinded outputs) is answered with
        // the same signatures (signing is deterministic) and debited once, for as long as
        // its keysets all issue; afterwards check_outputs refuses it above, before any debit.
        let request = WithdrawRequestId {
            id: withdraw_request_id(account, outputs),
            replay_until: keysets
                .iter()
                .map(|k| k.windows.withdraw_until)
                .min()
                .unwrap_or(now),
        };
        self.engine.accounts().withdraw(
            account.as_str(),
            self.engine.credited(account.as_str()),
            &signed,
            request,
            now,
        )?;
        // Signatures leave the issuer only once the debit is durable.
        Ok(signatures)
    }

    /// See [`IssuerApi::register_wallet`].
    pub fn register_wallet(&self, address: &Address, identity: &str) -> Result<(), IssuerError> {
        let key = address.0.to_bytes();
        self.engine
            .accounts()
            .register_wallet(&key, identity)
            .map_err(|e| match IssuerError::from(e) {
                IssuerError::Refused(RequestRefusal::WalletAlreadyRegistered(_)) => {
                    RequestRefusal::WalletAlreadyRegistered(address.to_string()).into()
                }
                other => other,
            })
    }

    /// Allowance v2: registers the wallet that signed `registration` as its identity's
    /// wallet for the class (the caller — the back office, with the admin token — attests
    /// the identity). Returns the identity's previous wallet, which this revokes: it gets
    /// no more credentials, and the identity's new wallet gets credentials for the days its
    /// old one was not served.
    pub fn register_v2(&self, registration: &Registration) -> Result<Option<Address>, IssuerError> {
        if !registration.authentic() {
            return Err(RequestRefusal::BadRequestSignature.into());
        }
        self.v2_class(&registration.class)?;
        let address = registration.address.to_bytes();
        let previous = self
            .engine
            .accounts()
            .register_v2(&registration.class, &address, &registration.identity)
            .map_err(|e| match IssuerError::from(e) {
                IssuerError::Refused(RequestRefusal::WalletOfAnotherIdentity(_)) => {
                    RequestRefusal::WalletOfAnotherIdentity(
                        Address(registration.address).to_string(),
                    )
                    .into()
                }
                other => other,
            })?;
        Ok(previous
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .and_then(|b| crate::protocol::keys::OwnerKey::from_bytes(&b).ok())
            .map(Address))
    }

    fn v2_class(&self, class: &str) -> Result<(), IssuerError> {
        match self.keys.policy.class(class) {
            Some(c) if c.allowance_scheme == AllowanceScheme::V2 => Ok(()),
            _ => Err(RequestRefusal::NotAV2Class(class.to_owned()).into()),
        }
    }

    /// Allowance v2: the credential of a registered wallet for one class and day (today or
    /// up to [`ALLOWANCE_REPLAY_DAYS`] before: a wallet that received offline fetches the
    /// day's credential when it next reaches the issuer). One per identity, class and day;
    /// a repeat gets the same credential. Issued under the newest epoch's key whose epoch
    /// issues on that day, and recorded, so a repeat after a rotation uses the same key.
    pub fn issue_credential(
        &self,
        request: &CredentialRequest,
        now: u64,
    ) -> Result<(CredentialKey, CredentialIssue), IssuerError> {
        if !request.authentic() {
            return Err(RequestRefusal::BadRequestSignature.into());
        }
        self.v2_class(&request.class)?;
        let today = now / DAY_SECS;
        if request.day > today || request.day + ALLOWANCE_REPLAY_DAYS < today {
            return Err(RequestRefusal::WrongDay {
                requested: request.day,
                today,
            }
            .into());
        }
        let day_start = request.day * DAY_SECS;
        let newest = self
            .keys
            .keysets
            .iter()
            .filter(|k| {
                k.kind == KeysetKind::Allowance
                    && k.windows.withdraw_from <= day_start
                    && day_start < k.windows.withdraw_until
            })
            .map(|k| k.epoch)
            .filter(|e| {
                self.keys
                    .credentials
                    .for_class(*e, &request.class)
                    .is_some()
            })
            .max()
            .ok_or_else(|| RequestRefusal::NoCredentialKey {
                class: request.class.clone(),
                day: request.day,
            })?;
        let address = request.address.to_bytes();
        let epoch = self
            .engine
            .accounts()
            .record_credential_v2(&request.class, &address, request.day, newest)
            .map_err(|e| match IssuerError::from(e) {
                IssuerError::Refused(RequestRefusal::WalletNotRegistered(_)) => {
                    RequestRefusal::WalletNotRegistered(Address(request.address).to_string()).into()
                }
                other => other,
            })?;
        let no_key = || RequestRefusal::NoCredentialKey {
            class: request.class.clone(),
            day: request.day,
        };
        let key = self
            .keys
            .credentials
            .for_class(epoch, &request.class)
            .ok_or_else(no_key)?;
        let (key, secret) = self.keys.credentials.get(&key.id).ok_or_else(no_key)?;
        let secret = secret.ok_or_else(no_key)?;
        let issue = secret.issue(key, &request.address, request.day, &mut crate::os_rng());
        Ok((key.clone(), issue))
    }

    /// See [`IssuerApi::issue_allowance`].
    pub fn issue_allowance(
        &self,
        request: &AllowanceRequest,
        now: u64,
    ) -> Result<Vec<G1Affine>, IssuerError> {
        if !request.authentic() {
            return Err(RequestRefusal::BadRequestSignature.into());
        }
        // A repeat (a wallet recovering, a lost answer, a replay by anyone who saw it) gets
        // the original signatures without a charge — also on a later day.
        let accounts = self.engine.accounts();
        if accounts.allowance_answered(request.day, &request.request_id())? {
            return self.sign_outputs(&request.outputs);
        }
        let today = now / DAY_SECS;
        if request.day != today {
            return Err(RequestRefusal::WrongDay {
                requested: request.day,
                today,
            }
            .into());
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
                IssuerError::Refused(RequestRefusal::WalletNotRegistered(_)) => {
                    RequestRefusal::WalletNotRegistered(Address(request.address).to_string()).into()
                }
                other => other,
            })?;
        Ok(signatures)
    }

    /// See [`IssuerApi::deposit`].
    pub fn deposit(&self, deposit: &Deposit, now: u64) -> Result<Receipt, IssuerError> {
        let verified = self
            .engine
            .params()
            .verifier()
            .verify_deposit(deposit, now)?;
        if !matches!(verified.target(), CreditTarget::Account(_)) {
            return Err(Misuse::NotAnAccountDeposit.into());
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
            other => Err(RequestRefusal::Settlement(other).into()),
        }
    }

    /// See [`IssuerApi::swap`].
    pub fn swap(&self, request: &SwapRequest, now: u64) -> Result<Vec<G1Affine>, IssuerError> {
        let (out_keysets, outputs_value) =
            self.check_outputs(&request.outputs, KeysetKind::Coin, now)?;
        if request.inputs.is_empty() || request.inputs.len() > crate::protocol::deposit::OUTPUTS_MAX
        {
            return Err(Misuse::OutputCount {
                got: request.inputs.len(),
                max: crate::protocol::deposit::OUTPUTS_MAX,
            }
            .into());
        }
        let digest = request.outputs_digest();
        let params = self.engine.params();
        let verifier = params.verifier();
        // All inputs verified as one batch (the engine's kernels; the reference's verdict
        // for each), then judged in order as before: a swap of many inputs, each carrying
        // many allowance spends or presentations, costs a batch, not one check at a time.
        let chunk: Vec<ChunkDeposit<'_>> = request.inputs.iter().map(ChunkDeposit::from).collect();
        let mut results = batch_verify::verify_chunk(
            &verifier,
            &params.keysets,
            &chunk,
            now,
            &mut crate::seeded_rng(),
        )
        .into_iter();
        let mut verified = Vec::with_capacity(request.inputs.len());
        let mut inputs_value = 0u64;
        for (index, input) in request.inputs.iter().enumerate() {
            if input.target != CreditTarget::Swap(digest) {
                return Err(RequestRefusal::SwapTargetMismatch { index }.into());
            }
            let v = match results.next() {
                Some(r) => r,
                // verify_chunk answers every deposit; were it not so, the input is judged
                // by the reference rather than given a made-up verdict.
                None => verifier.verify_deposit(input, now),
            }
            .map_err(|rejection| RequestRefusal::SwapInputRejected { index, rejection })?;
            if verified
                .iter()
                .any(|w: &VerifiedDeposit| w.serial() == v.serial())
            {
                return Err(RequestRefusal::SwapDuplicateInput { index }.into());
            }
            // A swap keeps the class and so its rules (hop cap, deadlines, merchant-only,
            // the allowance scheme): every output is of the inputs' class.
            let input_class = self
                .keys
                .keysets
                .get(&v.keyset_id())
                .map(|k| k.policy_class.clone())
                .unwrap_or_default();
            if let Some(out) = out_keysets.iter().find(|k| k.policy_class != input_class) {
                return Err(RequestRefusal::SwapChangesClass {
                    index,
                    input_class,
                    output_class: out.policy_class.clone(),
                }
                .into());
            }
            inputs_value = inputs_value.saturating_add(v.value());
            verified.push(v);
        }
        let fee = self.keys.policy.swap.fee;
        let paid_out = outputs_value.saturating_add(fee);
        if paid_out > inputs_value {
            return Err(RequestRefusal::SwapOutputsExceedInputs {
                inputs: inputs_value,
                outputs: outputs_value,
                fee,
            }
            .into());
        }
        if paid_out < inputs_value {
            return Err(RequestRefusal::SwapOutputsBelowInputs {
                inputs: inputs_value,
                outputs: outputs_value,
                fee,
            }
            .into());
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

impl IssuerApi for Issuer {
    fn keysets(&self) -> &KeysetList {
        &self.keys.keysets
    }

    fn credential_keys(&self) -> &crate::protocol::credential::CredentialKeys {
        &self.keys.credentials
    }

    fn register_v2(&self, registration: &Registration) -> Result<Option<Address>, CallError> {
        Ok(Issuer::register_v2(self, registration)?)
    }

    fn issue_credential(
        &self,
        request: &CredentialRequest,
        now: u64,
    ) -> Result<([u8; 32], CredentialIssue), CallError> {
        let (key, issue) = Issuer::issue_credential(self, request, now)?;
        Ok((key.id, issue))
    }

    fn policy(&self) -> &Policy {
        &self.keys.policy
    }

    fn withdraw(
        &self,
        account: &AccountName,
        outputs: &[BlindedOutput],
        now: u64,
    ) -> Result<Vec<G1Affine>, CallError> {
        Ok(Issuer::withdraw(self, account, outputs, now)?)
    }

    fn swap(&self, request: &SwapRequest, now: u64) -> Result<Vec<G1Affine>, CallError> {
        Ok(Issuer::swap(self, request, now)?)
    }

    fn register_wallet(&self, address: &Address, identity: &str) -> Result<(), CallError> {
        Ok(Issuer::register_wallet(self, address, identity)?)
    }

    fn issue_allowance(
        &self,
        request: &AllowanceRequest,
        now: u64,
    ) -> Result<Vec<G1Affine>, CallError> {
        Ok(Issuer::issue_allowance(self, request, now)?)
    }

    fn deposit(&self, deposit: &Deposit, now: u64) -> Result<Receipt, CallError> {
        Ok(Issuer::deposit(self, deposit, now)?)
    }
}
