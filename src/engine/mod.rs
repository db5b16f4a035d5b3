//! The batch redemption engine: composes the kernels (batched verification), the protocol
//! (the reference verifier's rules) and the spent set (durable settlement).
//!
//! [`Engine`] opens a *store* — an issuer directory without the need for its secrets:
//! `keysets.json`, `policy.toml`, `state.redb` (accounts) and `spent/` (the spent set and
//! settlement journal). [`Engine::clear`] clears a batch file through the pipeline in
//! [`pipeline`]; the issuer's single deposits and swaps settle through the same
//! [`settle`] code against the same spent set.

pub mod batch_file;
pub mod batch_verify;
pub mod pipeline;
pub mod settle;
pub mod verdict;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub use pipeline::{ClearOptions, ClearSummary, RecordVerdict};
pub use verdict::{Evidence, Verdict};

use crate::issuer::files::{self, FilesError};
use crate::issuer::store::{Store, StoreError};
use crate::protocol::keyset::KeysetList;
use crate::protocol::policy::Policy;
use crate::spentset::{SpentSet, SpentSetConfig, SpentSetError};

/// Engine errors (storage and setup; bad input is a verdict, never an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Store directory files.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// Accounts store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Spent set.
    #[error(transparent)]
    SpentSet(#[from] SpentSetError),
    /// Batch file unusable as a whole.
    #[error(transparent)]
    BatchFile(#[from] batch_file::BatchFileError),
    /// Output files.
    #[error("{path}: {source}")]
    Output {
        /// Path.
        path: PathBuf,
        /// Error.
        source: std::io::Error,
    },
    /// A pipeline stage died.
    #[error("pipeline stage failed: {0}")]
    Pipeline(String),
}

/// The public parameters a store verifies against.
#[derive(Clone, Debug)]
pub struct PublicParams {
    /// Published keysets.
    pub keysets: KeysetList,
    /// Policy.
    pub policy: Policy,
}

impl PublicParams {
    /// Loads `keysets.json` and `policy.toml` from a store or issuer directory.
    pub fn load(dir: &Path) -> Result<PublicParams, FilesError> {
        let keysets = files::load_keysets(&files::keysets_path(dir))?;
        let ppath = files::policy_path(dir);
        let text = std::fs::read_to_string(&ppath).map_err(|source| FilesError::Io {
            path: ppath.clone(),
            source,
        })?;
        let policy = Policy::from_toml(&text).map_err(|e| FilesError::Invalid {
            path: ppath,
            reason: e.to_string(),
        })?;
        Ok(PublicParams { keysets, policy })
    }
}

/// Spent-set directory inside a store.
pub fn spent_dir(store: &Path) -> PathBuf {
    store.join("spent")
}

/// An open store: parameters, accounts, spent set.
pub struct Engine {
    dir: PathBuf,
    params: PublicParams,
    accounts: Store,
    spent: Mutex<SpentSet>,
}

impl settle::Accounts for Store {
    fn merchant(&self, name: &str) -> Option<bool> {
        self.account(name).ok().flatten().map(|r| r.merchant)
    }
}

impl Engine {
    /// Opens the store at `dir` (recovering the spent set from its journal).
    pub fn open(dir: &Path, config: SpentSetConfig) -> Result<Engine, EngineError> {
        let params = PublicParams::load(dir)?;
        let accounts = Store::open(&files::state_path(dir))?;
        let (spent, report) = SpentSet::open(&spent_dir(dir), config)?;
        if report.truncated_bytes > 0 {
            tracing::warn!(
                bytes = report.truncated_bytes,
                "spent-set journal: torn tail truncated on recovery"
            );
        }
        Ok(Engine {
            dir: dir.to_owned(),
            params,
            accounts,
            spent: Mutex::new(spent),
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The public parameters.
    pub fn params(&self) -> &PublicParams {
        &self.params
    }

    /// Replaces the public parameters (after a key rotation).
    pub fn set_params(&mut self, params: PublicParams) {
        self.params = params;
    }

    /// The accounts store.
    pub fn accounts(&self) -> &Store {
        &self.accounts
    }

    /// The spent set (one writer at a time).
    pub fn spent(&self) -> MutexGuard<'_, SpentSet> {
        // A panic while holding the lock can only come from a bug; the journal stays the
        // source of truth, so continuing with the inner value is safe.
        self.spent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Value the settlement journal credited to `account`.
    pub fn credited(&self, account: &str) -> u64 {
        self.spent()
            .credits()
            .get(&format!("account:{account}"))
            .copied()
            .unwrap_or(0)
    }

    /// An account's balance: funded − withdrawn + credited by redemptions.
    pub fn balance(&self, account: &str) -> Result<Option<u64>, EngineError> {
        Ok(self
            .accounts
            .account(account)?
            .map(|r| r.balance(self.credited(account))))
    }

    /// Clears a batch file.
    pub fn clear(
        &self,
        batch: &Path,
        options: &ClearOptions,
        on_progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<ClearSummary, EngineError> {
        pipeline::clear(self, batch, options, on_progress)
    }
}
