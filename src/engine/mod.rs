//! The batch redemption engine: composes the kernels (batched verification), the protocol
//! (the reference verifier's rules) and the spent set (durable settlement).
//!
//! [`Engine`] opens a *store* — an issuer directory without the need for its secrets:
//! `keysets.json`, `policy.toml`, `state.redb` (accounts) and `spent/` (the spent set and
//! settlement journal). [`Engine::clear`] clears a batch file through the pipeline in
//! [`pipeline`]; the issuer's single deposits and swaps settle through the same
//! [`settle`] code against the same spent set.

pub mod audit;
pub mod batch_file;
pub mod batch_verify;
#[cfg(test)]
pub(crate) mod faultsim;
pub mod maintenance;
pub mod pipeline;
pub mod settle;
pub mod verdict;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub use pipeline::{ClearOptions, ClearSummary, RecordVerdict};
pub use verdict::{Evidence, Verdict};

use crate::protocol::credential::CredentialKeys;
use crate::protocol::keyset::KeysetList;
use crate::protocol::policy::Policy;
use crate::protocol::verify::Verifier;
use crate::spentset::{SpentSet, SpentSetConfig, SpentSetError};
use crate::store::files::{self, FilesError};
use crate::store::state::{Store, StoreError};

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
    /// Creating a store where one exists.
    #[error("{0}: a store already exists here")]
    StoreExists(PathBuf),
    /// The batch path is not a readable regular file.
    #[error("batch {path}: {reason}")]
    BatchInput {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be cleared.
        reason: String,
    },
    /// Settlement failed (storage).
    #[error(transparent)]
    Settle(#[from] settle::SettleError),
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
    /// Allowance v2 credential keys (with their secrets where the store has them: only
    /// the issuer can check a presentation's MAC).
    pub credentials: std::sync::Arc<CredentialKeys>,
    /// Allowance v2 slot schedule (slot → value), from the policy.
    pub slot_schedule: Vec<u64>,
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
        let credentials = std::sync::Arc::new(files::load_credential_keys(dir)?);
        let slot_schedule = policy.slot_schedule();
        Ok(PublicParams {
            keysets,
            policy,
            credentials,
            slot_schedule,
        })
    }

    /// The reference verifier for redemption over these parameters (credential keys and
    /// their secrets included: a v2 presentation under a key whose secret the store lacks
    /// is refused, never half-checked).
    pub fn verifier(&self) -> Verifier<'_> {
        Verifier::new(&self.keysets, &self.policy)
            .with_credentials(&self.credentials, &self.slot_schedule)
            .redeeming()
    }
}

/// Checks that `path` is a readable regular file before anything else happens: a missing
/// path, a directory, a FIFO or a device is named and refused (a FIFO would block the
/// memory map forever; a directory would fail with a confusing "No such device").
pub fn check_batch_input(path: &Path) -> Result<(), EngineError> {
    let refuse = |reason: String| EngineError::BatchInput {
        path: path.to_owned(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| refuse(e.to_string()))?;
    if meta.is_dir() {
        return Err(refuse("is a directory, not a batch file".into()));
    }
    if !meta.is_file() {
        return Err(refuse(
            "is not a regular file (a FIFO, socket or device): batch files are memory-mapped \
             and must be regular files"
                .into(),
        ));
    }
    std::fs::File::open(path).map_err(|e| refuse(e.to_string()))?;
    Ok(())
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
    fn merchant(&self, name: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.account(name)?.map(|r| r.merchant))
    }
}

impl Engine {
    /// Opens the store at `dir` (recovering the spent set from its journal). Every file of
    /// an existing store must be there: a missing `state.redb` is an error, never a new
    /// empty one.
    pub fn open(dir: &Path, config: SpentSetConfig) -> Result<Engine, EngineError> {
        Engine::open_with_progress(dir, config, &|_, _| {})
    }

    /// [`Engine::open`] reporting journal replay progress (bytes done, total).
    pub fn open_with_progress(
        dir: &Path,
        config: SpentSetConfig,
        progress: &dyn Fn(u64, u64),
    ) -> Result<Engine, EngineError> {
        let params = PublicParams::load(dir)?;
        // The spent set's lock comes first: it excludes every other writer of this store.
        let (spent, report) = SpentSet::open_with_progress(&spent_dir(dir), config, progress)?;
        let accounts = Store::open(&files::state_path(dir))?;
        Engine::finish_open(dir, params, accounts, spent, report)
    }

    /// Creates the state of a new store in `dir` (its `keysets.json` and `policy.toml` are
    /// already there) and opens it. Refuses if `dir` already holds state.
    pub fn create(dir: &Path, config: SpentSetConfig) -> Result<Engine, EngineError> {
        let params = PublicParams::load(dir)?;
        let spent_path = spent_dir(dir);
        if spent_path.join(crate::spentset::wal::JOURNAL_FILE).exists() {
            return Err(EngineError::StoreExists(dir.to_owned()));
        }
        let (spent, report) = SpentSet::open(&spent_path, config)?;
        let accounts = Store::create(&files::state_path(dir))?;
        Engine::finish_open(dir, params, accounts, spent, report)
    }

    fn finish_open(
        dir: &Path,
        params: PublicParams,
        accounts: Store,
        spent: SpentSet,
        report: crate::spentset::RecoveryReport,
    ) -> Result<Engine, EngineError> {
        if report.truncated_bytes > 0 {
            tracing::warn!(
                bytes = report.truncated_bytes,
                "spent-set journal: torn tail beyond the durable point cut on recovery"
            );
        }
        // Balances are funded − withdrawn (state.redb) + journal credits: a journal credit
        // to an account state.redb does not know means the two files are not one store.
        for target in spent.credits().keys() {
            if let Some(name) = target.strip_prefix("account:") {
                if accounts.account(name)?.is_none() {
                    return Err(EngineError::Store(StoreError::Damaged {
                        path: files::state_path(dir),
                        reason: format!(
                            "the journal credits account {name:?}, which this state does not \
                             hold (a state file from another store, or an old backup)"
                        ),
                    }));
                }
            }
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
