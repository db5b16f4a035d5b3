//! Issuer state in redb (an embedded, ACID, crash-safe B-tree store): accounts, registered
//! wallets, allowance issued per wallet per day, and a withdrawal log that holds nothing
//! linkable to coins. Spent serials and the credits they pay for are *not* here: they live
//! together in the spent set's journal (`crate::spentset`), the one source of truth for
//! redemptions. An account's balance is its stored balance here plus its journal credits.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use crate::protocol::deposit::CreditTarget;

/// account name → (funded, withdrawn, merchant?); the balance adds journal credits.
pub(crate) const ACCOUNTS: TableDefinition<&str, (u64, u64, bool)> =
    TableDefinition::new("accounts");
/// account name → BLAKE2b-256 of its API token (bearer authentication of withdrawals)
pub(crate) const ACCOUNT_TOKENS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("account_tokens");
/// wallet address (32 bytes) → identity registered with it
pub(crate) const WALLETS: TableDefinition<&[u8], &str> = TableDefinition::new("wallets");
/// (wallet address, UTC day) → allowance value issued that day
pub(crate) const ALLOWANCE_ISSUED: TableDefinition<(&[u8], u64), u64> =
    TableDefinition::new("allowance_issued");
/// counters: "next_receipt", "next_withdrawal"
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (keyset id, source: "withdraw" | "swap" | "allowance") → (signatures, value): what the
/// issuer signed, for the audit of its liability. Nothing per coin, nothing linkable.
pub(crate) const ISSUED: TableDefinition<(&[u8], &str), (u64, u64)> =
    TableDefinition::new("issued");
/// swap outputs digest → time its outputs were first signed (a replayed swap is signed
/// again but counted once)
pub(crate) const SWAPS_SIGNED: TableDefinition<&[u8], u64> = TableDefinition::new("swaps_signed");
/// withdrawal sequence → (account, value, time): no blinded messages, nothing per coin
pub(crate) const WITHDRAWALS: TableDefinition<u64, (&str, u64, u64)> =
    TableDefinition::new("withdrawals");

/// Store errors (storage, not protocol).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Any redb error, with context.
    #[error("issuer store: {0}")]
    Redb(String),
    /// A record that does not parse: the store is damaged.
    #[error("issuer store corrupted: {0}")]
    Corrupted(String),
    /// The state file is missing: an existing store is never silently given a new, empty one.
    #[error("{0}: missing — this store's accounts and wallets are gone; restore state.redb from a backup (it is never recreated empty)")]
    Missing(std::path::PathBuf),
    /// The state file is damaged (redb's integrity check failed or its pages do not parse).
    #[error("{path}: damaged: {reason}; restore state.redb from a backup (the journal keeps every credit: `microcash store check` reconciles)")]
    Damaged {
        /// The file.
        path: std::path::PathBuf,
        /// What failed.
        reason: String,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError { StoreError::Redb(e.to_string()) }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Text form of a credit target in records.
pub fn target_label(t: &CreditTarget) -> String {
    match t {
        CreditTarget::Account(a) => format!("account:{a}"),
        CreditTarget::Swap(d) => format!("swap:{}", hex::encode(d)),
    }
}

/// What the store keeps of an account. Its balance is `funded + credited − withdrawn`, where
/// `credited` comes from the settlement journal (redemptions to the account).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    /// Money paid in from outside.
    pub funded: u64,
    /// Money withdrawn as coins.
    pub withdrawn: u64,
    /// Merchant account (may receive merchant-only deposits).
    pub merchant: bool,
}

impl From<(u64, u64, bool)> for AccountRecord {
    fn from((funded, withdrawn, merchant): (u64, u64, bool)) -> Self {
        AccountRecord {
            funded,
            withdrawn,
            merchant,
        }
    }
}

impl AccountRecord {
    /// The tuple stored in redb.
    pub fn to_row(self) -> (u64, u64, bool) {
        (self.funded, self.withdrawn, self.merchant)
    }

    /// Balance given the journal credits.
    pub fn balance(&self, credited: u64) -> u64 {
        self.funded
            .saturating_add(credited)
            .saturating_sub(self.withdrawn)
    }
}

/// The store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Creates a new, empty state file at `path` with every table (issuer init, store
    /// creation). Refuses if one exists.
    pub fn create(path: &Path) -> Result<Store, StoreError> {
        if path.exists() {
            return Err(StoreError::Redb(format!(
                "{}: already exists; refusing to create a new state over it",
                path.display()
            )));
        }
        let db = Database::create(path)?;
        create_tables(&db)?;
        Ok(Store { db })
    }

    /// Opens an existing state file, checking its integrity first: a missing file is an
    /// error (never silently recreated), and a damaged one is refused with its path instead
    /// of panicking later inside redb (redb panics on some malformed pages; the check and a
    /// full read of every table run under `catch_unwind` so damage surfaces here, once).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_owned()));
        }
        let damaged = |reason: String| StoreError::Damaged {
            path: path.to_owned(),
            reason,
        };
        let opened = std::panic::catch_unwind(|| -> Result<Database, String> {
            let mut db = Database::open(path).map_err(|e| e.to_string())?;
            if !db.check_integrity().map_err(|e| e.to_string())? {
                return Err("redb integrity check failed".into());
            }
            read_everything(&db).map_err(|e| e.to_string())?;
            Ok(db)
        });
        match opened {
            Ok(Ok(db)) => {
                // Tables added since the file was made (e.g. `issued`) start empty.
                create_tables(&db)?;
                Ok(Store { db })
            }
            Ok(Err(reason)) => Err(damaged(reason)),
            Err(_) => Err(damaged("redb panicked reading its pages".into())),
        }
    }

    /// Starts a write transaction (redb allows one writer at a time).
    pub fn write(&self) -> Result<WriteTransaction, StoreError> {
        Ok(self.db.begin_write()?)
    }

    /// Whether `token` is the API token of `account` (compares BLAKE2b digests).
    pub fn account_token_matches(&self, account: &str, token: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ACCOUNT_TOKENS)?;
        let want = token_digest(token);
        Ok(t.get(account)?
            .is_some_and(|v| v.value() == want.as_slice()))
    }

    /// Every account, by name.
    pub fn accounts(&self) -> Result<Vec<(String, AccountRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ACCOUNTS)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_owned(), AccountRecord::from(v.value())));
        }
        Ok(out)
    }

    /// What the issuer signed, per keyset and source.
    pub fn issuance(&self) -> Result<Vec<Issuance>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ISSUED)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            let (id, source) = k.value();
            let (count, value) = v.value();
            out.push(Issuance {
                keyset: id
                    .try_into()
                    .map_err(|_| StoreError::Corrupted("issued: keyset id length".into()))?,
                source: source.to_owned(),
                count,
                value,
            });
        }
        Ok(out)
    }

    /// An account's record, if it exists.
    pub fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ACCOUNTS)?;
        Ok(t.get(name)?.map(|v| AccountRecord::from(v.value())))
    }
}

fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        txn.open_table(ACCOUNTS)?;
        txn.open_table(WALLETS)?;
        txn.open_table(ACCOUNT_TOKENS)?;
        txn.open_table(ALLOWANCE_ISSUED)?;
        txn.open_table(META)?;
        txn.open_table(WITHDRAWALS)?;
        txn.open_table(ISSUED)?;
        txn.open_table(SWAPS_SIGNED)?;
    }
    txn.commit()?;
    Ok(())
}

/// Counts one signature of `value` under keyset `keyset` for `source` (in `txn`).
pub(crate) fn record_issuance(
    txn: &WriteTransaction,
    keyset: &[u8; 32],
    source: &str,
    value: u64,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(ISSUED)?;
    let (n, v) = t
        .get((&keyset[..], source))?
        .map(|g| g.value())
        .unwrap_or((0, 0));
    t.insert((&keyset[..], source), (n + 1, v.saturating_add(value)))?;
    Ok(())
}

/// One row of the issuance record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuance {
    /// Keyset id.
    pub keyset: [u8; 32],
    /// `withdraw`, `swap` or `allowance`.
    pub source: String,
    /// Signatures.
    pub count: u64,
    /// Value signed.
    pub value: u64,
}

/// Reads every row of every table (so damaged pages fail at open, not in the middle of a
/// request).
fn read_everything(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_read()?;
    fn scan<K: redb::Key + 'static, V: redb::Value + 'static>(
        txn: &redb::ReadTransaction,
        def: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        let t = txn.open_table(def)?;
        for row in t.iter()? {
            let (k, v) = row?;
            let _ = (k.value(), v.value());
        }
        Ok(())
    }
    scan(&txn, ACCOUNTS)?;
    scan(&txn, ACCOUNT_TOKENS)?;
    scan(&txn, WALLETS)?;
    scan(&txn, ALLOWANCE_ISSUED)?;
    scan(&txn, META)?;
    scan(&txn, WITHDRAWALS)?;
    // Tables added later may be absent from an older file until `create_tables` runs.
    if txn.list_tables()?.any(|t| t.name() == "issued") {
        scan(&txn, ISSUED)?;
    }
    Ok(())
}

/// Takes the next value of a counter.
pub(crate) fn next_counter(txn: &WriteTransaction, name: &str) -> Result<u64, StoreError> {
    let mut t = txn.open_table(META)?;
    let next = t.get(name)?.map(|v| v.value()).unwrap_or(1);
    t.insert(name, next + 1)?;
    Ok(next)
}

/// The stored form of an account API token.
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    crate::protocol::tags::blake2b(b"mc1/api-token", &[token.as_bytes()])
}
