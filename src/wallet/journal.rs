//! The wallet's journal: operations started and not finished, kept in the wallet file.
//!
//! Before the wallet asks the issuer anything that moves value (or writes a payment file),
//! it records the whole request — with the blinding factors that unblind its answer, and the
//! coins and tokens it puts at stake — in the wallet file, written atomically (temporary
//! file, fsync, rename, fsync of the directory). The coins at stake leave the spendable list
//! in that same write: they are *in flight*, so no other operation can select them. When the
//! answer is in, the result replaces the pending entry in one more atomic write.
//!
//! A crash anywhere leaves either the state before the operation or a pending entry, and a
//! pending entry can always be finished: the issuer answers a repeated request with the
//! original answer and no second charge (withdrawals and allowance requests by request id,
//! swaps and deposits by their spent-set replay), and a payment is re-written from the
//! recorded bytes. See docs/protocol.md §5.8.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::protocol::allowance::AllowanceRequest;
use crate::protocol::coin::{AllowanceToken, Coin, Payment};
use crate::protocol::deposit::{AccountName, BlindedOutput, Deposit, SwapRequest};
use crate::protocol::encoding::{Decode, Encode};
use crate::protocol::keys::OwnerSecret;
use crate::protocol::spend::{OwnedAllowance, OwnedCoin};
use crate::protocol::withdraw::{PendingIssue, PENDING_ISSUE_BYTES};

/// An operation begun and not finished.
pub(super) enum PendingOp {
    /// Blinded coins sent (or about to be) for signing against an account.
    Withdraw {
        account: AccountName,
        outputs: Vec<BlindedOutput>,
        issues: Vec<PendingIssue>,
    },
    /// A signed allowance request sent (or about to be).
    Allowance {
        request: AllowanceRequest,
        issues: Vec<PendingIssue>,
    },
    /// A swap: its inputs (coins and allowance tokens) are at stake until it answers.
    Swap {
        request: SwapRequest,
        issues: Vec<PendingIssue>,
        inputs: Vec<OwnedCoin>,
        tokens: Vec<OwnedAllowance>,
    },
    /// A payment built from `coins` (and `tokens`), to be written to `out`.
    Pay {
        payment: Payment,
        out: PathBuf,
        coins: Vec<OwnedCoin>,
        tokens: Vec<OwnedAllowance>,
    },
    /// Deposits of coins to an account, one per coin, each with the tokens it spends.
    Deposit {
        items: Vec<(Deposit, OwnedCoin, Vec<OwnedAllowance>)>,
    },
}

impl PendingOp {
    /// A short name for reports.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            PendingOp::Withdraw { .. } => "withdraw",
            PendingOp::Allowance { .. } => "allowance",
            PendingOp::Swap { .. } => "swap",
            PendingOp::Pay { .. } => "pay",
            PendingOp::Deposit { .. } => "deposit",
        }
    }
}

/// A coin or token with its owner secret, as stored.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct StoredSecretItem {
    /// Hex encoding of the coin or token.
    pub item: String,
    /// Hex of the owner secret.
    pub secret: String,
}

/// One deposit of a pending deposit operation, as stored.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredDeposit {
    deposit: String,
    coin: StoredSecretItem,
    tokens: Vec<StoredSecretItem>,
}

/// A pending operation as stored in the wallet file (hex of the protocol encodings).
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum StoredOp {
    Withdraw {
        account: String,
        outputs: Vec<String>,
        issues: Vec<String>,
    },
    Allowance {
        request: String,
        issues: Vec<String>,
    },
    Swap {
        request: String,
        issues: Vec<String>,
        inputs: Vec<StoredSecretItem>,
        tokens: Vec<StoredSecretItem>,
    },
    Pay {
        payment: String,
        out: PathBuf,
        coins: Vec<StoredSecretItem>,
        tokens: Vec<StoredSecretItem>,
    },
    Deposit {
        items: Vec<StoredDeposit>,
    },
}

pub(super) fn store_coin(c: &OwnedCoin) -> StoredSecretItem {
    StoredSecretItem {
        item: hex::encode(c.coin.to_bytes()),
        secret: hex::encode(c.secret.to_bytes()),
    }
}

pub(super) fn store_token(t: &OwnedAllowance) -> StoredSecretItem {
    StoredSecretItem {
        item: hex::encode(t.token.to_bytes()),
        secret: hex::encode(t.secret.to_bytes()),
    }
}

fn hex_of(v: &impl Encode) -> String {
    hex::encode(v.to_bytes())
}

fn store_issues(issues: &[PendingIssue]) -> Vec<String> {
    issues.iter().map(|p| hex::encode(p.to_bytes())).collect()
}

impl PendingOp {
    pub(super) fn store(&self) -> StoredOp {
        let coins = |c: &[OwnedCoin]| c.iter().map(store_coin).collect();
        let tokens = |t: &[OwnedAllowance]| t.iter().map(store_token).collect();
        match self {
            PendingOp::Withdraw {
                account,
                outputs,
                issues,
            } => StoredOp::Withdraw {
                account: account.as_str().to_owned(),
                outputs: outputs.iter().map(hex_of).collect(),
                issues: store_issues(issues),
            },
            PendingOp::Allowance { request, issues } => StoredOp::Allowance {
                request: hex_of(request),
                issues: store_issues(issues),
            },
            PendingOp::Swap {
                request,
                issues,
                inputs,
                tokens: t,
            } => StoredOp::Swap {
                request: hex_of(request),
                issues: store_issues(issues),
                inputs: coins(inputs),
                tokens: tokens(t),
            },
            PendingOp::Pay {
                payment,
                out,
                coins: c,
                tokens: t,
            } => StoredOp::Pay {
                payment: hex_of(payment),
                out: out.clone(),
                coins: coins(c),
                tokens: tokens(t),
            },
            PendingOp::Deposit { items } => StoredOp::Deposit {
                items: items
                    .iter()
                    .map(|(d, c, t)| StoredDeposit {
                        deposit: hex_of(d),
                        coin: store_coin(c),
                        tokens: tokens(t),
                    })
                    .collect(),
            },
        }
    }
}

/// Decodes the hex of a protocol message.
fn decode_hex<T: Decode>(s: &str, what: &str) -> Result<T, String> {
    let bytes = hex::decode(s).map_err(|e| format!("{what}: {e}"))?;
    T::from_bytes(&bytes).map_err(|e| format!("{what}: {e}"))
}

pub(super) fn secret_of(s: &str) -> Result<OwnerSecret, String> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| OwnerSecret::from_bytes(&b))
        .ok_or_else(|| "bad secret".to_owned())
}

pub(super) fn load_coin(c: &StoredSecretItem) -> Result<OwnedCoin, String> {
    let bytes = hex::decode(&c.item).map_err(|e| e.to_string())?;
    let coin = Coin::from_bytes(&bytes).map_err(|e| format!("coin: {e}"))?;
    let secret = secret_of(&c.secret)?;
    if secret.public() != *coin.owner_key() {
        return Err("coin secret does not match its owner key".into());
    }
    Ok(OwnedCoin { coin, secret })
}

pub(super) fn load_token(t: &StoredSecretItem) -> Result<OwnedAllowance, String> {
    let bytes = hex::decode(&t.item).map_err(|e| e.to_string())?;
    let token = AllowanceToken::from_bytes(&bytes).map_err(|e| format!("allowance token: {e}"))?;
    Ok(OwnedAllowance {
        token,
        secret: secret_of(&t.secret)?,
    })
}

fn load_issues(issues: &[String]) -> Result<Vec<PendingIssue>, String> {
    issues
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; PENDING_ISSUE_BYTES]>::try_from(b).ok())
                .and_then(|b| PendingIssue::from_bytes(&b))
                .ok_or_else(|| "bad pending issue".to_owned())
        })
        .collect()
}

impl StoredOp {
    pub(super) fn load(&self) -> Result<PendingOp, String> {
        let coins = |c: &[StoredSecretItem]| c.iter().map(load_coin).collect::<Result<_, _>>();
        let tokens = |t: &[StoredSecretItem]| t.iter().map(load_token).collect::<Result<_, _>>();
        Ok(match self {
            StoredOp::Withdraw {
                account,
                outputs,
                issues,
            } => PendingOp::Withdraw {
                account: AccountName::new(account).ok_or("bad account name")?,
                outputs: outputs
                    .iter()
                    .map(|o| decode_hex(o, "blinded output"))
                    .collect::<Result<_, _>>()?,
                issues: load_issues(issues)?,
            },
            StoredOp::Allowance { request, issues } => PendingOp::Allowance {
                request: decode_hex(request, "allowance request")?,
                issues: load_issues(issues)?,
            },
            StoredOp::Swap {
                request,
                issues,
                inputs,
                tokens: t,
            } => PendingOp::Swap {
                request: decode_hex(request, "swap request")?,
                issues: load_issues(issues)?,
                inputs: coins(inputs)?,
                tokens: tokens(t)?,
            },
            StoredOp::Pay {
                payment,
                out,
                coins: c,
                tokens: t,
            } => PendingOp::Pay {
                payment: decode_hex(payment, "payment")?,
                out: out.clone(),
                coins: coins(c)?,
                tokens: tokens(t)?,
            },
            StoredOp::Deposit { items } => PendingOp::Deposit {
                items: items
                    .iter()
                    .map(|i| {
                        Ok((
                            decode_hex(&i.deposit, "deposit")?,
                            load_coin(&i.coin)?,
                            tokens(&i.tokens)?,
                        ))
                    })
                    .collect::<Result<_, String>>()?,
            },
        })
    }
}

/// Aborts the process at a named point when `MICROCASH_CRASH_AT` names it: the kill tests'
/// deterministic stand-in for `kill -9` (no destructor runs, nothing more is written).
pub(super) fn crash_point(name: &str) {
    if std::env::var_os("MICROCASH_CRASH_AT").is_some_and(|v| v == name) {
        std::process::abort();
    }
}
