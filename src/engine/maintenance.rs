//! Operator commands over a whole store: `store check` (verify everything, change nothing)
//! and `store rebuild` (derive again what the journal determines). The recovery procedure
//! built on them is in `docs/engine.md`, "When a store refuses to open".

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{spent_dir, EngineError};
use crate::spentset::check::{self, CheckReport, RebuildReport};
use crate::spentset::SpentSetConfig;
use crate::store::files;
use crate::store::state::Store;

/// One account as the store sees it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountLine {
    /// Name.
    pub name: String,
    /// Paid in from outside (state.redb).
    pub funded: u64,
    /// Withdrawn as coins (state.redb).
    pub withdrawn: u64,
    /// Credited by redemptions (the journal).
    pub credited: u64,
    /// funded − withdrawn + credited.
    pub balance: i128,
}

/// What `store check` found.
#[derive(Debug, Clone, Serialize)]
pub struct StoreCheck {
    /// The spent set and its journal.
    pub spent: CheckReport,
    /// Every account with its balance derived from the journal.
    pub accounts: Vec<AccountLine>,
    /// Everything wrong, each naming a file (empty: the store is sound).
    pub problems: Vec<String>,
}

/// Verifies the store at `dir` without changing it: journal, mark, checkpoint, maps,
/// state.redb's integrity, and that every balance equals funded − withdrawn + journal
/// credits and is not negative.
pub fn check_store(dir: &Path) -> Result<StoreCheck, EngineError> {
    let spent = check::check(&spent_dir(dir))?;
    let mut problems = spent.problems.clone();
    let mut accounts = Vec::new();
    let state_path = files::state_path(dir);
    match Store::open(&state_path) {
        Err(e) => problems.push(e.to_string()),
        Ok(store) => {
            let rows = store.accounts()?;
            let known: BTreeMap<&str, ()> = rows.iter().map(|(n, _)| (n.as_str(), ())).collect();
            for target in spent.credits.keys() {
                if let Some(name) = target.strip_prefix("account:") {
                    if !known.contains_key(name) {
                        problems.push(format!(
                            "{}: the journal credits account {name:?}, which state.redb does \
                             not hold",
                            state_path.display()
                        ));
                    }
                }
            }
            for (name, r) in rows {
                let credited = spent
                    .credits
                    .get(&format!("account:{name}"))
                    .copied()
                    .unwrap_or(0);
                let balance = r.funded as i128 - r.withdrawn as i128 + credited as i128;
                if balance < 0 {
                    problems.push(format!(
                        "account {name}: withdrew {} but was funded {} and credited {credited}",
                        r.withdrawn, r.funded
                    ));
                }
                accounts.push(AccountLine {
                    name,
                    funded: r.funded,
                    withdrawn: r.withdrawn,
                    credited,
                    balance,
                });
            }
        }
    }
    Ok(StoreCheck {
        spent,
        accounts,
        problems,
    })
}

/// Rebuilds the spent set's maps, checkpoint and (if unreadable) durable mark from the
/// journal; with `cut_journal_at`, first moves the journal's damaged tail aside.
pub fn rebuild_store(
    dir: &Path,
    cut_journal_at: Option<u64>,
    progress: &dyn Fn(u64, u64),
) -> Result<RebuildReport, EngineError> {
    if !files::keysets_path(dir).exists() {
        return Err(EngineError::BatchInput {
            path: dir.to_owned(),
            reason: "not a store (no keysets.json)".into(),
        });
    }
    Ok(check::rebuild(
        &spent_dir(dir),
        cut_journal_at,
        SpentSetConfig::default(),
        progress,
    )?)
}
