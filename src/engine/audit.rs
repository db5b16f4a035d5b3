//! `microcash audit`: the issuer's liability per key epoch and denomination — value signed
//! (withdrawals and swap outputs; allowance tokens apart) against value redeemed (deposits
//! and swap inputs, from the journal) — and the outstanding amount, reconciled with the
//! accounts. What an auditor or a regulator runs at the end of a day and of an epoch.
//!
//! The figures come from two independent records: what the issuer signed is counted in
//! `state.redb` in the same transaction that debits the account (withdrawals) or before the
//! signatures leave (swaps, allowance); what was redeemed is summed from the settlement
//! journal. Every mismatch is named.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::maintenance::{check_store, AccountLine};
use super::{EngineError, PublicParams};
use crate::protocol::keyset::KeysetKind;
use crate::store::files;
use crate::store::state::Store;

/// Coins of one key epoch and denomination.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CoinLine {
    /// Key epoch.
    pub epoch: u32,
    /// Denomination (minor units).
    pub denomination: u64,
    /// Signed by withdrawals.
    pub withdrawn: u64,
    /// Signed as swap outputs.
    pub swapped_out: u64,
    /// Redeemed by deposits to accounts.
    pub deposited: u64,
    /// Redeemed as swap inputs.
    pub swapped_in: u64,
    /// Signed − redeemed (coins).
    pub outstanding: i128,
    /// Outstanding value.
    pub outstanding_value: i128,
}

/// Allowance tokens of one key epoch (not money: a receive allowance).
#[derive(Debug, Default, Clone, Serialize)]
pub struct AllowanceLine {
    /// Key epoch.
    pub epoch: u32,
    /// Tokens signed.
    pub issued: u64,
    /// Units of allowance signed.
    pub issued_value: u64,
    /// Tokens spent with payments (from the journal).
    pub spent: u64,
}

/// The audit.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Audit {
    /// Per (epoch, denomination).
    pub coins: Vec<CoinLine>,
    /// Per epoch.
    pub allowances: Vec<AllowanceLine>,
    /// Value signed as coins (withdrawals + swap outputs).
    pub issued_value: u64,
    /// Value redeemed (deposits + swap inputs).
    pub redeemed_value: u64,
    /// The issuer's liability: coins signed and not yet redeemed.
    pub outstanding_value: i128,
    /// Swap fees collected (swap inputs − swap outputs).
    pub swap_fees: i128,
    /// Accounts with balances derived from the journal.
    pub accounts: Vec<AccountLine>,
    /// Every mismatch, named (empty: the books balance).
    pub problems: Vec<String>,
}

/// Audits the store at `dir` (read-only).
pub fn audit(dir: &Path) -> Result<Audit, EngineError> {
    let check = check_store(dir)?;
    let params = PublicParams::load(dir)?;
    let mut out = Audit {
        accounts: check.accounts.clone(),
        problems: check.problems.clone(),
        ..Audit::default()
    };
    let store = Store::open(&files::state_path(dir))?;
    let mut coins: BTreeMap<(u32, u64), CoinLine> = BTreeMap::new();
    let mut allowances: BTreeMap<u32, AllowanceLine> = BTreeMap::new();
    let mut withdrawn_value = 0u64;
    let mut swap_out_value = 0u64;
    for row in store.issuance()? {
        let Some(ks) = params.keysets.iter().find(|k| k.id.0 == row.keyset) else {
            out.problems.push(format!(
                "{}: signatures recorded under keyset {}, which keysets.json does not list",
                files::state_path(dir).display(),
                hex::encode(row.keyset)
            ));
            continue;
        };
        if ks.kind == KeysetKind::Allowance {
            let a = allowances.entry(ks.epoch).or_default();
            a.epoch = ks.epoch;
            a.issued += row.count;
            a.issued_value += row.value;
            continue;
        }
        let line = coins.entry((ks.epoch, ks.value())).or_default();
        match row.source.as_str() {
            "withdraw" => {
                line.withdrawn += row.count;
                withdrawn_value += row.value;
            }
            _ => {
                line.swapped_out += row.count;
                swap_out_value += row.value;
            }
        }
    }
    let mut swap_in_value = 0u64;
    for (&(epoch, value), r) in &check.spent.redeemed {
        let line = coins.entry((epoch, value)).or_default();
        line.deposited += r.deposits;
        line.swapped_in += r.swap_inputs;
        swap_in_value += r.swap_inputs * value;
    }
    for (&epoch, &spent) in &check.spent.allowances_spent {
        let a = allowances.entry(epoch).or_default();
        a.epoch = epoch;
        a.spent += spent;
    }
    for (&(epoch, denomination), line) in coins.iter_mut() {
        line.epoch = epoch;
        line.denomination = denomination;
        let signed = (line.withdrawn + line.swapped_out) as i128;
        let redeemed = (line.deposited + line.swapped_in) as i128;
        line.outstanding = signed - redeemed;
        line.outstanding_value = line.outstanding * denomination as i128;
        out.issued_value += (signed as u64) * denomination;
        out.redeemed_value += (redeemed as u64) * denomination;
        if line.outstanding < 0 {
            out.problems.push(format!(
                "epoch {epoch} denomination {denomination}: {redeemed} coins redeemed but only \
                 {signed} signed (forged coins, or signatures made before issuance was \
                 recorded)"
            ));
        }
    }
    for a in allowances.values() {
        if a.spent > a.issued {
            out.problems.push(format!(
                "allowance epoch {}: {} tokens spent but only {} signed",
                a.epoch, a.spent, a.issued
            ));
        }
    }
    out.outstanding_value = out.issued_value as i128 - out.redeemed_value as i128;
    let debited: u64 = out.accounts.iter().map(|a| a.withdrawn).sum();
    if debited != withdrawn_value {
        out.problems.push(format!(
            "withdrawals: accounts were debited {debited} but coins worth {withdrawn_value} \
             were signed for them"
        ));
    }
    out.swap_fees = swap_in_value as i128 - swap_out_value as i128;
    if out.swap_fees < 0 {
        out.problems.push(format!(
            "swaps: outputs worth {swap_out_value} were signed for inputs worth only \
             {swap_in_value}"
        ));
    }
    // Money in equals money held: every unit funded is in a balance, in circulation as a
    // coin, or was taken as a swap fee.
    let funded: i128 = out.accounts.iter().map(|a| a.funded as i128).sum();
    let balances: i128 = out.accounts.iter().map(|a| a.balance).sum();
    if funded != balances + out.outstanding_value + out.swap_fees {
        out.problems.push(format!(
            "the books do not balance: funded {funded} ≠ balances {balances} + outstanding {} \
             + swap fees {}",
            out.outstanding_value, out.swap_fees
        ));
    }
    out.coins = coins.into_values().collect();
    out.allowances = allowances.into_values().collect();
    Ok(out)
}
