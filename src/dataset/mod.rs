//! Synthetic redemption days from a real issuer key set: valid coins over a mix of hop
//! counts (with allowance tokens where the class requires them) and every kind of bad
//! coin, written as batch files with their expected verdicts beside them.
//!
//! Output for `--out DIR/NAME.mcb` (one day) or `NAME-dayK.mcb` (several days):
//!
//! ```text
//! NAME.mcb                  the batch
//! NAME.expected.jsonl       expected verdict per record: {"record": i, "verdict": code}
//! NAME.params/              public parameters and accounts for a store to clear it:
//!     keysets.json  policy.toml  accounts.json
//! ```
//!
//! The expected verdicts are those of a clearing path on a fresh store, days in order —
//! the batched engine by default, the *reference* path
//! ([`crate::engine::pipeline::clear_reference`], one deposit at a time, independent of
//! the engine) with [`GenCheck::Reference`] — and the generator checks them against the
//! fault it injected into each record and fails if the two disagree. Generation is deterministic for a seed (per-record ChaCha20 streams,
//! parallel over records).

#![allow(
    clippy::indexing_slicing,
    clippy::expect_used,
    reason = "the generator indexes lists it built itself; it reads no outside input; a failure here is a bug in it"
)]

use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use microcash_kernels::bls;
use rand::SeedableRng;
use rand_chacha_alias::ChaCha20Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::engine::batch_file::BatchWriter;
use crate::engine::{ClearOptions, Engine, EngineError};
use crate::protocol::coin::{AllowanceToken, Coin, PaymentContext, Serial};
use crate::protocol::credential::{Credential, CredentialKey, CredentialSecret};
use crate::protocol::deposit::{AccountName, CreditTarget, Deposit};
use crate::protocol::encoding::Encode;
use crate::protocol::hints::HintedDeposit;
use crate::protocol::keys::OwnerSecret;
use crate::protocol::keyset::{Keyset, KeysetKind, KeysetList, Windows};
use crate::protocol::policy::{AllowanceScheme, Policy, DAY_SECS};
use crate::protocol::spend::{OwnedAllowance, OwnedCoin, Presenter};
use crate::protocol::tags;
use crate::spentset::SpentSetConfig;
use crate::store::files::{keysets_path, policy_path, write_atomic, FilesError, PublicKeysets};

mod rand_chacha_alias {
    pub use rand::rngs::ChaCha20Rng;
}

/// Generation options.
#[derive(Clone, Debug)]
pub struct GenOptions {
    /// Records per day.
    pub coins: u64,
    /// Seed (deterministic output).
    pub seed: u64,
    /// Fraction of records that re-deposit a coin deposited earlier (same day: duplicate in
    /// batch; later days: double spend).
    pub double_spend_rate: f64,
    /// Fraction of records with an injected fault of another kind.
    pub invalid_rate: f64,
    /// (hops, weight) of valid coins.
    pub hops_mix: Vec<(u8, u32)>,
    /// Whether received coins carry allowance (class requires it).
    pub allowance: bool,
    /// With `allowance`: v1 tokens, or v2 presentations by registered receiving wallets
    /// (each receiver a wallet with its day's credential; the class's slot schedule has two
    /// slots per denomination).
    pub allowance_scheme: AllowanceScheme,
    /// Number of merchant accounts deposits go to.
    pub accounts: u32,
    /// Number of days (batch files).
    pub days: u32,
    /// Time of the first day (Unix seconds).
    pub now: u64,
    /// Write records with decompression and serial hints (kind 2) instead of plain deposits.
    pub hints: bool,
    /// Which clearing path confirms the expected verdicts.
    pub check: GenCheck,
}

/// The clearing path that confirms a generated day's expected verdicts. Either way each
/// verdict must also equal the fault injected into its record, or generation fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GenCheck {
    /// The batched engine (what `microcash clear` runs; ~30x cheaper): for benchmark days.
    #[default]
    Engine,
    /// The one-at-a-time reference verifier, independent of the engine: for golden samples
    /// and the tests that hold the engine to them.
    Reference,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            coins: 1000,
            seed: 1,
            double_spend_rate: 0.0,
            invalid_rate: 0.0,
            hops_mix: vec![(1, 80), (2, 15), (3, 5)],
            allowance: false,
            allowance_scheme: AllowanceScheme::V1,
            accounts: 16,
            days: 1,
            now: crate::unix_now(),
            hints: true,
            check: GenCheck::default(),
        }
    }
}

/// Parses `1:80,2:15,3:5`.
pub fn parse_hops_mix(s: &str) -> Result<Vec<(u8, u32)>, String> {
    s.split(',')
        .map(|part| {
            let (h, w) = part
                .split_once(':')
                .ok_or_else(|| format!("expected hops:weight, got {part:?}"))?;
            Ok((
                h.trim().parse().map_err(|_| format!("bad hops {h:?}"))?,
                w.trim().parse().map_err(|_| format!("bad weight {w:?}"))?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()
        .and_then(|v| {
            if v.iter().map(|(_, w)| *w as u64).sum::<u64>() == 0 {
                Err("weights sum to zero".into())
            } else {
                Ok(v)
            }
        })
}

/// Dataset errors.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Files.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// Engine (reference clearing).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Batch output.
    #[error(transparent)]
    Batch(#[from] crate::engine::batch_file::BatchFileError),
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Generator self-check failed.
    #[error("generator self-check: {0}")]
    SelfCheck(String),
}

/// One account of a dataset's store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountSpec {
    /// Name.
    pub name: String,
    /// Merchant?
    pub merchant: bool,
}

/// What the generator injected into a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    Redeposit,
    ForgedSigma,
    BadLinkSignature,
    ExpiredKeyset,
    HopCap,
    AllowanceMissing,
    AllowanceReused,
    MaxPayment,
    UnknownAccount,
    Malformed,
    Corrupt,
}

impl Fault {
    /// The verdict code the reference must give.
    fn expected(self) -> &'static str {
        match self {
            Fault::None => "accepted",
            Fault::Redeposit => "redeposit", // resolved per day below
            Fault::ForgedSigma => "bad_issuer_signature",
            Fault::BadLinkSignature => "bad_link_signature",
            Fault::ExpiredKeyset => "unknown_or_expired_keyset",
            Fault::HopCap => "hop_cap_exceeded",
            Fault::AllowanceMissing => "allowance_missing",
            Fault::AllowanceReused => "allowance_reused",
            Fault::MaxPayment => "policy_violation(max_payment)",
            Fault::UnknownAccount => "unknown_account",
            Fault::Malformed | Fault::Corrupt => "malformed",
        }
    }
}

const MAX_HOPS: u8 = 4;
/// Records generated in parallel before being written.
const GEN_BLOCK: usize = 8192;
/// Most coins kept as candidates for re-deposits.
const REDEPOSIT_POOL_MAX: usize = 50_000;
const MAX_PAYMENT: u64 = 100_000;
const DENOMINATION_EXP_MAX: u8 = 10;

/// The generator's issuer: keys in memory, deterministic from the seed.
struct GenIssuer {
    keysets: KeysetList,
    secrets: BTreeMap<(KeysetKind, u32, u8), (Keyset, bls::SecretKey)>,
    policy: Policy,
    /// Allowance v2: the current epoch's credential key of `standard`.
    credential: Option<(CredentialKey, CredentialSecret)>,
}

/// A receiving wallet of a v2 day: its secret and its credential for the day.
#[derive(Clone)]
struct V2Receiver {
    wallet: OwnerSecret,
    credential: Credential,
}

/// What moving a generated coin on needs.
#[derive(Clone)]
enum Mover {
    /// Nothing (not received, or no allowance required).
    Free,
    /// v1 tokens.
    Tokens,
    /// A v2 presentation by this receiver.
    Presentation(Box<V2Receiver>),
}

impl GenIssuer {
    #[cfg(test)]
    fn new(seed: u64, now: u64, allowance: bool) -> GenIssuer {
        Self::with_scheme(seed, now, allowance, AllowanceScheme::V1)
    }

    fn with_scheme(seed: u64, now: u64, allowance: bool, scheme: AllowanceScheme) -> GenIssuer {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x6b65_7973);
        let mut policy = Policy::default();
        // Long-lived keys so checked-in samples stay clearable for decades.
        policy.epochs.withdraw_days = 365 * 50;
        policy.epochs.deposit_days = 365 * 50;
        policy.epochs.max_denomination_exp = DENOMINATION_EXP_MAX;
        let class = policy.class.get_mut("standard").expect("default class");
        class.max_hops = MAX_HOPS;
        class.max_payment = MAX_PAYMENT;
        class.deposit_deadline_days = 365 * 50;
        class.allowance_required = allowance;
        class.allowance_scheme = scheme;
        if scheme == AllowanceScheme::V2 {
            // Two slots per denomination: every generated coin is covered by one slot.
            policy.allowance.slots = (0..=DENOMINATION_EXP_MAX).map(|e| (1u64 << e, 2)).collect();
            policy.allowance.daily_limit = 2 * ((2u64 << DENOMINATION_EXP_MAX) - 1);
        }
        let day = now - now % DAY_SECS;
        let current = Windows {
            withdraw_from: day - 30 * DAY_SECS,
            withdraw_until: day + 365 * 50 * DAY_SECS,
            deposit_until: day + 365 * 100 * DAY_SECS,
        };
        let expired = Windows {
            withdraw_from: day - 400 * DAY_SECS,
            withdraw_until: day - 300 * DAY_SECS,
            deposit_until: day - 200 * DAY_SECS,
        };
        let mut secrets = BTreeMap::new();
        let mut list = Vec::new();
        for (kind, class) in [
            (KeysetKind::Coin, "standard"),
            (KeysetKind::Allowance, crate::store::files::ALLOWANCE_CLASS),
        ] {
            for (epoch, windows) in [(1u32, expired), (2u32, current)] {
                for exp in 0..=DENOMINATION_EXP_MAX {
                    let sk = bls::SecretKey::generate(&mut rng);
                    let ks = Keyset::new(kind, epoch, exp, class, windows, sk.public_key())
                        .expect("valid parameters");
                    list.push(ks.clone());
                    secrets.insert((kind, epoch, exp), (ks, sk));
                }
            }
        }
        let credential = (scheme == AllowanceScheme::V2).then(|| {
            let secret = CredentialSecret::generate(&mut rng);
            let key = CredentialKey::of(&secret, 2, "standard").expect("a fresh key is valid");
            (key, secret)
        });
        GenIssuer {
            keysets: KeysetList::new(list).expect("distinct ids"),
            secrets,
            policy,
            credential,
        }
    }

    /// A fresh registered wallet with its credential for `day` (v2).
    fn v2_receiver(&self, rng: &mut ChaCha20Rng, day: u64) -> Option<V2Receiver> {
        let (key, secret) = self.credential.as_ref()?;
        let wallet = OwnerSecret::generate(rng);
        let issue = secret.issue(key, &wallet.public(), day, rng);
        // The generator is the issuer: the credential is taken as issued (a wallet would
        // check the proof with `CredentialIssue::open`).
        let credential = Credential {
            key_id: key.id,
            day,
            u: issue.u,
            v: issue.v,
        };
        Some(V2Receiver { wallet, credential })
    }

    /// The v2 slot of a coin of 2^exp (the first of its denomination's two).
    fn v2_slot(&self, exp: u8) -> u16 {
        2 * u16::from(exp)
    }

    fn keyset(&self, kind: KeysetKind, epoch: u32, exp: u8) -> &(Keyset, bls::SecretKey) {
        &self.secrets[&(kind, epoch, exp)]
    }

    fn coin(&self, rng: &mut ChaCha20Rng, epoch: u32, exp: u8, forged: bool) -> OwnedCoin {
        let (ks, sk) = self.keyset(KeysetKind::Coin, epoch, exp);
        let x = OwnerSecret::generate(rng);
        let serial = Serial::derive(KeysetKind::Coin, &ks.id, &x.public());
        let signer = if forged {
            bls::SecretKey::generate(rng)
        } else {
            sk.clone()
        };
        let sigma = signer.sign(&serial.0, tags::H1_DST);
        OwnedCoin {
            coin: Coin {
                keyset_id: ks.id,
                coin_key: x.public(),
                sigma,
                links: vec![],
            },
            secret: x,
        }
    }

    fn allowance(&self, rng: &mut ChaCha20Rng, exp: u8) -> OwnedAllowance {
        let (ks, sk) = self.keyset(KeysetKind::Allowance, 2, exp);
        let t = OwnerSecret::generate(rng);
        let serial = Serial::derive(KeysetKind::Allowance, &ks.id, &t.public());
        OwnedAllowance {
            token: AllowanceToken {
                keyset_id: ks.id,
                key: t.public(),
                sigma: sk.sign(&serial.0, tags::H1_DST),
            },
            secret: t,
        }
    }

    fn write_params(&self, dir: &Path, accounts: &[AccountSpec]) -> Result<(), DatasetError> {
        std::fs::create_dir_all(dir)?;
        let doc = PublicKeysets {
            version: 1,
            keysets: self.keysets.to_json(),
            credential_keys: self
                .credential
                .iter()
                .map(|(k, _)| crate::store::files::CredentialKeyJson::from(k))
                .collect(),
        };
        if let Some((key, secret)) = &self.credential {
            // The clearing store needs the credential secret: only the issuer can check a
            // presentation. Params of a v2 day are therefore private (0700/0600).
            let secrets = dir.join("secrets");
            std::fs::create_dir_all(&secrets)?;
            std::fs::set_permissions(
                &secrets,
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )?;
            let map: BTreeMap<String, String> =
                [(key.class.clone(), hex::encode(secret.to_bytes()))].into();
            write_atomic(
                &secrets.join(format!("credentials-{:04}.json", key.epoch)),
                &serde_json::to_vec_pretty(&map).expect("json"),
                0o600,
            )?;
        }
        write_atomic(
            &keysets_path(dir),
            &serde_json::to_vec_pretty(&doc).expect("json"),
            0o644,
        )?;
        write_atomic(&policy_path(dir), self.policy.to_toml().as_bytes(), 0o644)?;
        write_atomic(
            &dir.join("accounts.json"),
            &serde_json::to_vec_pretty(accounts).expect("json"),
            0o644,
        )?;
        Ok(())
    }
}

/// A coin generated for a record (kept for re-deposits on later records or days).
struct Generated {
    payload: Vec<u8>,
    hints: Option<Vec<u8>>,
    fault: Fault,
    coin: Option<(OwnedCoin, Mover)>,
}

fn pay_once(
    coin: &OwnedCoin,
    amount: u64,
    allowance: &[OwnedAllowance],
    rng: &mut ChaCha20Rng,
) -> OwnedCoin {
    let w = OwnerSecret::generate(rng);
    let mut payment_id = [0u8; 16];
    rand_core::Rng::fill_bytes(rng, &mut payment_id);
    let ctx = PaymentContext {
        payment_id,
        amount,
        time: 0,
    };
    // The generator plays payer and payee: the coin `pay` would make, and the payee's
    // secret, without the two variable-base multiplications of the key exchange.
    coin.pay_own_wallet(&w, ctx, allowance, rng)
}

fn pick_hops(mix: &[(u8, u32)], r: u64) -> u8 {
    let total: u64 = mix.iter().map(|(_, w)| *w as u64).sum();
    let mut x = r % total;
    for (h, w) in mix {
        if x < *w as u64 {
            return *h;
        }
        x -= *w as u64;
    }
    mix[0].0
}

fn fault_for(i: u64, opts: &GenOptions, r: f64) -> Fault {
    const KINDS: [Fault; 10] = [
        Fault::ForgedSigma,
        Fault::BadLinkSignature,
        Fault::ExpiredKeyset,
        Fault::HopCap,
        Fault::AllowanceMissing,
        Fault::AllowanceReused,
        Fault::MaxPayment,
        Fault::UnknownAccount,
        Fault::Malformed,
        Fault::Corrupt,
    ];
    if r < opts.invalid_rate {
        let kinds: Vec<Fault> = KINDS
            .iter()
            .copied()
            .filter(|k| {
                opts.allowance || !matches!(k, Fault::AllowanceMissing | Fault::AllowanceReused)
            })
            .collect();
        kinds[(i as usize) % kinds.len()]
    } else if r < opts.invalid_rate + opts.double_spend_rate && i > 0 {
        Fault::Redeposit
    } else {
        Fault::None
    }
}

/// A deposit's record: its bytes, and with `hints` the kind-2 hints (decompression and
/// serial hints, `HintedDeposit::encode`).
fn record_parts(deposit: &Deposit, hints: bool) -> (Vec<u8>, Option<Vec<u8>>) {
    if hints {
        let (payload, hints) = HintedDeposit::encode(deposit);
        (payload, Some(hints))
    } else {
        (deposit.to_bytes(), None)
    }
}

fn gen_record(
    issuer: &GenIssuer,
    opts: &GenOptions,
    accounts: &[AccountSpec],
    day: u32,
    i: u64,
    fault: Fault,
    now: u64,
) -> Generated {
    let mut rng = ChaCha20Rng::seed_from_u64(
        opts.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((day as u64) << 40) ^ i,
    );
    let r = |rng: &mut ChaCha20Rng| rand_core::Rng::next_u64(rng);
    if fault == Fault::Malformed {
        let len = 8 + (r(&mut rng) % 200) as usize;
        let mut junk = vec![0u8; len];
        rand_core::Rng::fill_bytes(&mut rng, &mut junk);
        junk[0] = 1; // a deposit version byte, so decoding fails further in
        return Generated {
            payload: junk,
            hints: None,
            fault,
            coin: None,
        };
    }
    let exp = (r(&mut rng) % (DENOMINATION_EXP_MAX as u64 + 1)) as u8;
    let value = 1u64 << exp;
    let mut hops = pick_hops(&opts.hops_mix, r(&mut rng)).min(MAX_HOPS);
    if fault == Fault::HopCap {
        hops = MAX_HOPS + 1;
    }
    if matches!(
        fault,
        Fault::AllowanceMissing | Fault::BadLinkSignature | Fault::MaxPayment
    ) {
        hops = hops.max(1);
    }
    if fault == Fault::AllowanceReused {
        hops = hops.clamp(2, MAX_HOPS);
    }
    let epoch = if fault == Fault::ExpiredKeyset { 1 } else { 2 };
    let mut coin = issuer.coin(&mut rng, epoch, exp, fault == Fault::ForgedSigma);
    let amount = if fault == Fault::MaxPayment {
        MAX_PAYMENT + 1
    } else {
        value
    };
    if issuer.credential.is_some() && opts.allowance {
        return gen_v2_record(
            issuer, accounts, coin, hops, exp, amount, fault, now, opts.hints, &mut rng,
        );
    }
    // For AllowanceReused: the same token on the last link and on the deposit.
    let reused = (fault == Fault::AllowanceReused).then(|| issuer.allowance(&mut rng, exp));
    for hop in 0..hops {
        let tokens = match (&reused, opts.allowance && hop >= 1) {
            (_, false) => vec![],
            (Some(t), true) if hop + 1 == hops => vec![t.clone()],
            (_, true) => vec![issuer.allowance(&mut rng, exp)],
        };
        coin = pay_once(&coin, amount, &tokens, &mut rng);
    }
    if fault == Fault::BadLinkSignature {
        let last = coin.coin.links.len() - 1;
        coin.coin.links[last].signature.bytes_mut()[5] ^= 0x20;
    }
    let account = if fault == Fault::UnknownAccount {
        "nobody-here".to_owned()
    } else {
        accounts[(r(&mut rng) % accounts.len() as u64) as usize]
            .name
            .clone()
    };
    let target =
        CreditTarget::Account(AccountName::new(&account).expect("generated names are valid"));
    let tokens = match (
        &reused,
        opts.allowance && hops >= 1 && fault != Fault::AllowanceMissing,
    ) {
        (Some(t), _) => vec![t.clone()],
        (None, true) => vec![issuer.allowance(&mut rng, exp)],
        (None, false) => vec![],
    };
    let deposit = coin.deposit(target, now, &tokens, &mut rng);
    let (payload, hints) = record_parts(&deposit, opts.hints);
    Generated {
        payload,
        hints,
        fault,
        coin: Some((
            coin,
            if opts.allowance && hops >= 1 {
                Mover::Tokens
            } else {
                Mover::Free
            },
        )),
    }
}

/// A v2 record: each hop pays a fresh registered wallet (with its day's credential), and
/// each receiver presents for its receipt when it moves the coin on — the next link or
/// the deposit. Faults: `AllowanceMissing` deposits without the presentation;
/// `AllowanceReused` pays the last hop back to the same wallet, which presents the same
/// slot twice in the coin.
#[allow(
    clippy::too_many_arguments,
    reason = "the record's parameters, each used once"
)]
fn gen_v2_record(
    issuer: &GenIssuer,
    accounts: &[AccountSpec],
    mut coin: OwnedCoin,
    hops: u8,
    exp: u8,
    amount: u64,
    fault: Fault,
    now: u64,
    hints: bool,
    rng: &mut ChaCha20Rng,
) -> Generated {
    let day = now / DAY_SECS;
    let (key, _) = issuer.credential.as_ref().expect("a v2 issuer");
    let slot = [issuer.v2_slot(exp)];
    let mut holder: Option<V2Receiver> = None;
    for hop in 0..hops {
        let next = match (&holder, fault == Fault::AllowanceReused && hop + 1 == hops) {
            (Some(h), true) => h.clone(),
            _ => issuer.v2_receiver(rng, day).expect("a v2 issuer"),
        };
        let mut payment_id = [0u8; 16];
        rand_core::Rng::fill_bytes(rng, &mut payment_id);
        let ctx = PaymentContext {
            payment_id,
            amount,
            time: now,
        };
        let presenter = holder.as_ref().map(|h| Presenter {
            key,
            credential: &h.credential,
            wallet: &h.wallet,
            slots: &slot,
        });
        coin = coin
            .pay_own_wallet_v2(&next.wallet, ctx, presenter.as_ref(), rng)
            .expect("the generator's receivers present for their own coins");
        holder = Some(next);
    }
    if fault == Fault::BadLinkSignature {
        let last = coin.coin.links.len() - 1;
        coin.coin.links[last].signature.bytes_mut()[5] ^= 0x20;
    }
    let account = if fault == Fault::UnknownAccount {
        "nobody-here".to_owned()
    } else {
        accounts[(rand_core::Rng::next_u64(rng) % accounts.len() as u64) as usize]
            .name
            .clone()
    };
    let target =
        CreditTarget::Account(AccountName::new(&account).expect("generated names are valid"));
    let mover = match &holder {
        Some(h) => Mover::Presentation(Box::new(h.clone())),
        None => Mover::Free,
    };
    let deposit = v2_deposit(
        issuer,
        &coin,
        &mover,
        exp,
        target,
        now,
        fault != Fault::AllowanceMissing,
        rng,
    );
    let (payload, hints) = record_parts(&deposit, hints);
    Generated {
        payload,
        hints,
        fault,
        coin: Some((coin, mover)),
    }
}

/// A v2 deposit of `coin`, presented by its receiver when `present` (and it was received).
#[allow(
    clippy::too_many_arguments,
    reason = "the deposit's parameters, each used once"
)]
fn v2_deposit(
    issuer: &GenIssuer,
    coin: &OwnedCoin,
    mover: &Mover,
    exp: u8,
    target: CreditTarget,
    now: u64,
    present: bool,
    rng: &mut ChaCha20Rng,
) -> Deposit {
    let (key, _) = issuer.credential.as_ref().expect("a v2 issuer");
    let slot = [issuer.v2_slot(exp)];
    let presenter = match (mover, present) {
        (Mover::Presentation(h), true) => Some(Presenter {
            key,
            credential: &h.credential,
            wallet: &h.wallet,
            slots: &slot,
        }),
        _ => None,
    };
    coin.deposit_v2(target, now, presenter.as_ref(), rng)
        .expect("the generator's receivers present for their own coins")
}

/// What a generation run wrote.
#[derive(Clone, Debug, Serialize)]
pub struct GenReport {
    /// Batch files, in day order.
    pub batches: Vec<PathBuf>,
    /// Records per day.
    pub records: Vec<u64>,
    /// Expected verdict counts per day.
    pub expected: Vec<BTreeMap<String, u64>>,
    /// The params directory.
    pub params: PathBuf,
    /// Seconds spent.
    pub elapsed_s: f64,
}

fn day_path(out: &Path, days: u32, day: u32, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into());
    let dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
    if days == 1 {
        dir.join(format!("{stem}{suffix}"))
    } else {
        dir.join(format!("{stem}-day{day}{suffix}"))
    }
}

/// Where day `day`'s batch goes: exactly `--out` for one day; `NAME-dayK.EXT` (the
/// extension of `--out`, `mcb` if it has none) for several.
fn batch_path(out: &Path, days: u32, day: u32) -> PathBuf {
    if days == 1 {
        return out.to_path_buf();
    }
    let ext = out
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_else(|| ".mcb".into());
    day_path(out, days, day, &ext)
}

/// The params directory for a batch path (`NAME.params`, shared by all days).
pub fn params_dir(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "batch".into());
    let stem = stem.split("-day").next().unwrap_or(&stem).to_owned();
    out.parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
        .join(format!("{stem}.params"))
}

/// Initialises a store directory from a dataset's params (keysets, policy, accounts).
///
/// Built in a staging directory unique to this process beside `store`, synced, and renamed
/// into place: an interrupted start leaves no half-made store, and two processes creating
/// the same store at once never touch each other's files — the first rename wins, the other
/// discards its staging copy and uses the winner's store. Returns whether this call created
/// it.
pub fn init_store_from_params(params: &Path, store: &Path) -> Result<bool, DatasetError> {
    crate::store::files::create_dir_atomically(store, |staging| build_store(params, staging))
}

fn build_store(params: &Path, staging: &Path) -> Result<(), DatasetError> {
    for f in ["keysets.json", "policy.toml"] {
        let bytes = std::fs::read(params.join(f)).map_err(|e| {
            DatasetError::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", params.join(f).display()),
            ))
        })?;
        write_atomic(&staging.join(f), &bytes, 0o644)?;
    }
    // Allowance v2 days carry the credential secrets the clearing store checks
    // presentations with (never the signing keys).
    let secrets = params.join("secrets");
    if secrets.is_dir() {
        let to = staging.join("secrets");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&to)
            .or_else(|e| if to.is_dir() { Ok(()) } else { Err(e) })?;
        for entry in std::fs::read_dir(&secrets)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with("credentials-") && name.ends_with(".json") {
                write_atomic(&to.join(name), &std::fs::read(&path)?, 0o600)?;
            }
        }
    }
    let accounts_path = params.join("accounts.json");
    let accounts: Vec<AccountSpec> = serde_json::from_slice(&std::fs::read(&accounts_path)?)
        .map_err(|e| DatasetError::SelfCheck(format!("{}: {e}", accounts_path.display())))?;
    let engine = Engine::create(staging, SpentSetConfig::default())?;
    let rows: Vec<(&str, bool)> = accounts
        .iter()
        .map(|a| (a.name.as_str(), a.merchant))
        .collect();
    engine
        .accounts()
        .create_accounts(&rows)
        .map_err(EngineError::from)?;
    drop(engine);
    Ok(())
}

/// Generates the dataset.
pub fn generate(out: &Path, opts: &GenOptions) -> Result<GenReport, DatasetError> {
    let start = std::time::Instant::now();
    let issuer = GenIssuer::with_scheme(
        opts.seed,
        opts.now,
        opts.allowance,
        if opts.allowance {
            opts.allowance_scheme
        } else {
            AllowanceScheme::V1
        },
    );
    let accounts: Vec<AccountSpec> = (0..opts.accounts.max(1))
        .map(|i| AccountSpec {
            name: format!("merchant-{i:04}"),
            merchant: true,
        })
        .collect();
    let params = params_dir(out);
    issuer.write_params(&params, &accounts)?;
    let scratch = tempfile_dir(out)?;
    init_store_from_params(&params, &scratch)?;
    let engine = Engine::open(&scratch, SpentSetConfig::default())?;
    let mut report = GenReport {
        batches: vec![],
        records: vec![],
        expected: vec![],
        params: params.clone(),
        elapsed_s: 0.0,
    };
    let mut earlier: Vec<(OwnedCoin, Mover)> = Vec::new();
    for day in 1..=opts.days {
        let now = opts.now + (day as u64 - 1) * DAY_SECS;
        let mut plan_rng = ChaCha20Rng::seed_from_u64(opts.seed ^ ((day as u64) << 32));
        let faults: Vec<Fault> = (0..opts.coins)
            .map(|i| {
                fault_for(
                    i,
                    opts,
                    (rand_core::Rng::next_u64(&mut plan_rng) >> 11) as f64 / (1u64 << 53) as f64,
                )
            })
            .collect();
        // Re-deposits: a new deposit of a coin deposited earlier (this day or before).
        let path = batch_path(out, opts.days, day);
        let mut writer = BatchWriter::create(&path, batch_id(opts.seed, day), now)?;
        let mut corrupt_offsets = Vec::new();
        let mut expected_codes = Vec::new();
        let mut todays: Vec<(OwnedCoin, Mover)> = Vec::new();
        // Records are generated in parallel blocks and written in order, so memory stays
        // bounded by the block (and the re-deposit pool) whatever the number of coins.
        let blocks = (0..opts.coins)
            .step_by(GEN_BLOCK)
            .map(|start| start..(start + GEN_BLOCK as u64).min(opts.coins));
        for (i, g) in blocks.flat_map(|block| {
            let generated: Vec<Generated> = block
                .clone()
                .into_par_iter()
                .map(|i| {
                    let f = faults[i as usize];
                    let base = if f == Fault::Redeposit {
                        Fault::None
                    } else {
                        f
                    };
                    gen_record(&issuer, opts, &accounts, day, i, base, now)
                })
                .collect();
            block.map(|i| i as usize).zip(generated)
        }) {
            let mut payload = g.payload;
            let mut hints = g.hints;
            let mut code = g.fault.expected().to_owned();
            if faults[i] == Fault::Redeposit {
                let mut rng = ChaCha20Rng::seed_from_u64(
                    opts.seed ^ 0x7265_6470 ^ ((day as u64) << 24) ^ i as u64,
                );
                let pool_today = !todays.is_empty()
                    && (earlier.is_empty() || rand_core::Rng::next_u32(&mut rng) % 2 == 0);
                let pool = if pool_today { &todays } else { &earlier };
                if let Some((coin, mover)) = pool
                    .get((rand_core::Rng::next_u64(&mut rng) % pool.len().max(1) as u64) as usize)
                    .cloned()
                {
                    let acct = &accounts
                        [(rand_core::Rng::next_u32(&mut rng) as usize) % accounts.len()]
                    .name;
                    let target = CreditTarget::Account(AccountName::new(acct).expect("valid"));
                    let d = match &mover {
                        Mover::Presentation(_) => v2_deposit(
                            &issuer,
                            &coin,
                            &mover,
                            exp_of(&issuer, &coin),
                            target,
                            now,
                            true,
                            &mut rng,
                        ),
                        Mover::Tokens | Mover::Free => {
                            let tokens = if matches!(mover, Mover::Tokens) {
                                vec![issuer.allowance(&mut rng, exp_of(&issuer, &coin))]
                            } else {
                                vec![]
                            };
                            coin.deposit(target, now, &tokens, &mut rng)
                        }
                    };
                    (payload, hints) = record_parts(&d, opts.hints);
                    code = if pool_today {
                        "duplicate_in_batch".into()
                    } else {
                        "double_spent".into()
                    };
                }
            }
            if g.fault == Fault::Corrupt {
                corrupt_offsets.push(writer.position());
            }
            match &hints {
                Some(h) => writer.append_hinted(&payload, h)?,
                None => writer.append(&payload)?,
            }
            expected_codes.push(code);
            if let (Fault::None, Some(c)) = (g.fault, g.coin) {
                if faults[i] != Fault::Redeposit {
                    // A bounded pool of re-deposit candidates (the newest replace old ones).
                    if todays.len() < REDEPOSIT_POOL_MAX {
                        todays.push(c);
                    } else {
                        todays[i % REDEPOSIT_POOL_MAX] = c;
                    }
                }
            }
        }
        writer.finish()?;
        if !corrupt_offsets.is_empty() {
            let mut bytes = std::fs::read(&path)?;
            for o in corrupt_offsets {
                // Flip a payload byte: the record's checksum no longer holds.
                bytes[o as usize + crate::engine::batch_file::RECORD_HEADER_BYTES + 3] ^= 0x40;
            }
            std::fs::write(&path, &bytes)?;
        }
        // Expected verdicts from the chosen clearing path, checked against the injected
        // faults.
        let verdicts = match opts.check {
            GenCheck::Reference => crate::engine::pipeline::clear_reference(&engine, &path, now)?,
            GenCheck::Engine => {
                let options = ClearOptions {
                    collect_verdicts: true,
                    now,
                    ..ClearOptions::default()
                };
                engine.clear(&path, &options, &|_, _| {})?.verdicts
            }
        };
        let mut lines = String::new();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut mismatches = Vec::new();
        for (v, want) in verdicts.iter().zip(&expected_codes) {
            let code = v.verdict.code();
            if &code != want {
                mismatches.push(format!(
                    "record {}: generated as {want}, reference says {}",
                    v.record, v.verdict
                ));
            }
            lines.push_str(&serde_json::json!({"record": v.record, "verdict": code}).to_string());
            lines.push('\n');
            *counts.entry(code).or_default() += 1;
        }
        if verdicts.len() != expected_codes.len() {
            mismatches.push(format!(
                "{} records written, {} read back",
                expected_codes.len(),
                verdicts.len()
            ));
        }
        if !mismatches.is_empty() {
            return Err(DatasetError::SelfCheck(
                mismatches
                    .into_iter()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        write_atomic(
            &day_path(out, opts.days, day, ".expected.jsonl"),
            lines.as_bytes(),
            0o644,
        )?;
        report.batches.push(path);
        report.records.push(verdicts.len() as u64);
        report.expected.push(counts);
        earlier.extend(todays);
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(&scratch);
    report.elapsed_s = start.elapsed().as_secs_f64();
    Ok(report)
}

fn exp_of(issuer: &GenIssuer, coin: &OwnedCoin) -> u8 {
    issuer
        .keysets
        .get(&coin.coin.keyset_id)
        .map_or(0, |k| k.denomination_exp)
}

fn batch_id(seed: u64, day: u32) -> [u8; 16] {
    let h: [u8; 16] = tags::blake2b(
        b"mc1/dataset-id",
        &[&seed.to_le_bytes(), &day.to_le_bytes()],
    );
    h
}

fn tempfile_dir(out: &Path) -> Result<PathBuf, DatasetError> {
    let dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = format!(
        ".{}.reference-store-{}",
        out.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    );
    let path = dir.join(name);
    let _ = std::fs::remove_dir_all(&path);
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::batch_file::BatchWriter;

    use crate::protocol::coin::ALLOWANCES_MAX;
    use crate::protocol::stealth::{recognise, Address};

    /// A temp directory holding `issuer`'s parameters with one merchant account, `shop`.
    fn params_with_a_shop(issuer: &GenIssuer) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let accounts = vec![AccountSpec {
            name: "shop".into(),
            merchant: true,
        }];
        let params = tmp.path().join("p.params");
        issuer.write_params(&params, &accounts).unwrap();
        (tmp, params)
    }

    /// A valid deposit carrying 288 allowance spends (32 on each of 8 links and on the
    /// deposit): more than a u8 counts. It once panicked the receipt encoder on every re-run
    /// and left the rest of its chunk uncredited; now it clears like any other record.
    #[test]
    fn a_deposit_at_every_allowance_maximum_is_cleared_with_its_chunk() {
        let now = 1_900_000_000;
        let mut issuer = GenIssuer::new(5, now, true);
        let hops = 8u8;
        issuer
            .policy
            .class
            .get_mut("standard")
            .expect("default class")
            .max_hops = hops;
        let (tmp, params) = params_with_a_shop(&issuer);
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let target = CreditTarget::Account(AccountName::new("shop").unwrap());
        let tokens = |rng: &mut ChaCha20Rng| -> Vec<OwnedAllowance> {
            (0..ALLOWANCES_MAX)
                .map(|_| issuer.allowance(rng, 0))
                .collect()
        };
        let mut heavy = issuer.coin(&mut rng, 2, 0, false);
        for _ in 0..hops {
            let t = tokens(&mut rng);
            heavy = pay_once(&heavy, 1, &t, &mut rng);
        }
        let t = tokens(&mut rng);
        let heavy = heavy.deposit(target.clone(), now, &t, &mut rng);
        let plain = issuer.coin(&mut rng, 2, 3, false);
        let plain = plain.deposit(target, now, &[], &mut rng);
        let batch = tmp.path().join("b.mcb");
        let mut w = BatchWriter::create(&batch, [1; 16], now).unwrap();
        w.append(&heavy.to_bytes()).unwrap();
        w.append(&plain.to_bytes()).unwrap();
        w.finish().unwrap();
        let store = tmp.path().join("store");
        init_store_from_params(&params, &store).unwrap();
        let engine = Engine::open(&store, SpentSetConfig::default()).unwrap();
        let options = ClearOptions {
            now,
            collect_verdicts: true,
            ..ClearOptions::default()
        };
        for run in 0..2 {
            let s = engine.clear(&batch, &options, &|_, _| {}).unwrap();
            let codes: Vec<String> = s.verdicts.iter().map(|v| v.verdict.code()).collect();
            assert_eq!(codes, ["accepted", "accepted"], "run {run}");
        }
        assert_eq!(engine.credited("shop"), 1 + 8);

        // The same deposits as kind-2 records with every hint (289 serial hints on the
        // heavy one), then with every serial hint flipped: each on a fresh store, the same
        // verdicts and credits.
        let (bytes, hints) = HintedDeposit::encode(&heavy);
        let serial_start = heavy.to_bytes_with_hints().1.len();
        assert_eq!(hints.len() - serial_start, 289 * 96);
        let mut flipped = hints.clone();
        for hint in flipped[serial_start..].chunks_exact_mut(96) {
            hint[47] ^= 1;
        }
        for (name, heavy_hints) in [("right", &hints), ("flipped", &flipped)] {
            let batch = tmp.path().join(format!("hinted-{name}.mcb"));
            let mut w = BatchWriter::create(&batch, [2; 16], now).unwrap();
            w.append_hinted(&bytes, heavy_hints).unwrap();
            let (p, h) = HintedDeposit::encode(&plain);
            w.append_hinted(&p, &h).unwrap();
            w.finish().unwrap();
            let store = tmp.path().join(format!("store-{name}"));
            init_store_from_params(&params, &store).unwrap();
            let engine = Engine::open(&store, SpentSetConfig::default()).unwrap();
            let s = engine.clear(&batch, &options, &|_, _| {}).unwrap();
            let codes: Vec<String> = s.verdicts.iter().map(|v| v.verdict.code()).collect();
            assert_eq!(codes, ["accepted", "accepted"], "{name} hints");
            assert_eq!(engine.credited("shop"), 1 + 8, "{name} hints");
        }
    }

    /// A payer who reuses its ephemeral secret pays the same coin twice to one payee: both
    /// links carry the same one-time key. The evidence must name the payer's key (where
    /// the chains diverge), not the payee's one-time key (where the keys would).
    #[test]
    fn a_reused_ephemeral_secret_names_the_payer_as_double_signer() {
        let now = 1_900_000_000;
        let issuer = GenIssuer::new(6, now, false);
        let (tmp, params) = params_with_a_shop(&issuer);
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let coin = issuer.coin(&mut rng, 2, 2, false);
        let payee = OwnerSecret::generate(&mut rng);
        let to = Address(payee.public());
        let ctx = |id: u8| PaymentContext {
            payment_id: [id; 16],
            amount: 4,
            time: 0,
        };
        // The same randomness for both payments: the same ephemeral key and one-time key.
        let first = coin.pay(&to, ctx(1), &[], &mut ChaCha20Rng::seed_from_u64(11));
        let second = coin.pay(&to, ctx(2), &[], &mut ChaCha20Rng::seed_from_u64(11));
        assert_eq!(
            first.links[0].one_time_key, second.links[0].one_time_key,
            "the reuse makes the keys agree"
        );
        let target = CreditTarget::Account(AccountName::new("shop").unwrap());
        let deposit = |paid: Coin, rng: &mut ChaCha20Rng| {
            let link = paid.links.last().expect("one link");
            let secret = recognise(&payee, &link.ephemeral, &link.one_time_key).expect("ours");
            OwnedCoin { coin: paid, secret }.deposit(target.clone(), now, &[], rng)
        };
        let d1 = deposit(first, &mut rng);
        let d2 = deposit(second, &mut rng);
        let batch = tmp.path().join("b.mcb");
        let mut w = BatchWriter::create(&batch, [2; 16], now).unwrap();
        w.append(&d1.to_bytes()).unwrap();
        w.finish().unwrap();
        let batch2 = tmp.path().join("b2.mcb");
        let mut w = BatchWriter::create(&batch2, [3; 16], now).unwrap();
        w.append(&d2.to_bytes()).unwrap();
        w.finish().unwrap();
        let store = tmp.path().join("store");
        init_store_from_params(&params, &store).unwrap();
        let engine = Engine::open(&store, SpentSetConfig::default()).unwrap();
        let options = crate::engine::ClearOptions {
            now,
            collect_verdicts: true,
            ..crate::engine::ClearOptions::default()
        };
        let s1 = engine.clear(&batch, &options, &|_, _| {}).unwrap();
        assert_eq!(s1.verdicts[0].verdict.code(), "accepted");
        let s2 = engine.clear(&batch2, &options, &|_, _| {}).unwrap();
        match &s2.verdicts[0].verdict {
            crate::engine::Verdict::DoubleSpent { evidence } => {
                assert_eq!(evidence.diverges_at_link, 0);
                assert_eq!(
                    evidence.double_signer,
                    hex::encode(coin.coin.coin_key.to_bytes()),
                    "the payer (coin key X) signed two different links"
                );
            }
            other => panic!("expected double_spent, got {other:?}"),
        }
    }

    /// A storage failure while looking up the credited account is an error for the
    /// issuer, never the depositor's `unknown_account` verdict.
    #[test]
    fn an_accounts_store_failure_is_an_error_not_a_verdict() {
        use crate::engine::settle::{self, Accounts, BatchMemory, SettleError};
        use crate::protocol::verify::Verifier;
        use crate::store::state::StoreError;
        struct Failing;
        impl Accounts for Failing {
            fn merchant(&self, _: &str) -> Result<Option<bool>, StoreError> {
                Err(StoreError::Redb(redb::Error::Io(std::io::Error::other(
                    "simulated I/O error",
                ))))
            }
        }
        let now = 1_900_000_000;
        let issuer = GenIssuer::new(8, now, false);
        let (tmp, _params) = params_with_a_shop(&issuer);
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let coin = issuer.coin(&mut rng, 2, 1, false);
        let target = CreditTarget::Account(AccountName::new("shop").unwrap());
        let deposit = coin.deposit(target, now, &[], &mut rng);
        let verified = Verifier::new(&issuer.keysets, &issuer.policy)
            .verify_deposit(&deposit, now)
            .unwrap();
        let (spent, _) =
            crate::spentset::SpentSet::open(&tmp.path().join("spent"), SpentSetConfig::default())
                .unwrap();
        let result = settle::plan(
            &spent,
            &Failing,
            &mut BatchMemory::default(),
            vec![(0, Ok(verified))],
            false,
            now,
        );
        assert!(matches!(result, Err(SettleError::Accounts(_))));
    }
}
