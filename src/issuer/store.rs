//! Issuer state in redb (an embedded, ACID, crash-safe B-tree store): accounts, registered
//! wallets, allowance issued per wallet per day, spent serials with their receipts, spent
//! allowance serials, and a withdrawal log that holds nothing linkable to coins.
//!
//! Every operation that moves value runs in one write transaction: a serial is marked spent
//! together with the credit it pays for, or neither happens.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::protocol::coin::Serial;
use crate::protocol::deposit::CreditTarget;
use crate::protocol::verify::VerifiedDeposit;

/// account name → (balance, merchant?)
pub(crate) const ACCOUNTS: TableDefinition<&str, (u64, bool)> = TableDefinition::new("accounts");
/// wallet address (32 bytes) → identity registered with it
pub(crate) const WALLETS: TableDefinition<&[u8], &str> = TableDefinition::new("wallets");
/// (wallet address, UTC day) → allowance value issued that day
pub(crate) const ALLOWANCE_ISSUED: TableDefinition<(&[u8], u64), u64> =
    TableDefinition::new("allowance_issued");
/// coin serial → receipt (JSON [`SpentRecord`])
pub(crate) const SPENT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("spent");
/// allowance serial → receipt id that spent it
pub(crate) const ALLOWANCE_SPENT: TableDefinition<&[u8], u64> =
    TableDefinition::new("allowance_spent");
/// counters: "next_receipt", "next_withdrawal"
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
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

/// What the spent table remembers of a redemption: enough to answer a resubmission with the
/// same verdict and a double spend with evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpentRecord {
    /// Receipt number.
    pub receipt_id: u64,
    /// Digest of the deposit message that spent the serial.
    pub deposit_digest: String,
    /// Value credited.
    pub value: u64,
    /// `account:<name>` or `swap:<outputs digest>`.
    pub target: String,
    /// Issuer time of the redemption.
    pub time: u64,
    /// Owner keys X, P₁, …, Pₙ (hex) of the chain that was redeemed.
    pub owner_keys: Vec<String>,
}

/// Outcome of trying to mark a verified deposit spent.
#[derive(Debug)]
pub enum SpendOutcome {
    /// Newly spent under this receipt id.
    Fresh(SpentRecord),
    /// The same deposit was redeemed before: its original record.
    Replay(SpentRecord),
    /// The serial was redeemed before by a different deposit.
    DoubleSpent(SpentRecord),
    /// An allowance token serial was already spent.
    AllowanceReused(Serial),
}

/// Text form of a credit target in records.
pub fn target_label(t: &CreditTarget) -> String {
    match t {
        CreditTarget::Account(a) => format!("account:{a}"),
        CreditTarget::Swap(d) => format!("swap:{}", hex::encode(d)),
    }
}

/// The store.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the store at `path` and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            txn.open_table(ACCOUNTS)?;
            txn.open_table(WALLETS)?;
            txn.open_table(ALLOWANCE_ISSUED)?;
            txn.open_table(SPENT)?;
            txn.open_table(ALLOWANCE_SPENT)?;
            txn.open_table(META)?;
            txn.open_table(WITHDRAWALS)?;
        }
        txn.commit()?;
        Ok(Store { db })
    }

    /// Starts a write transaction (redb allows one writer at a time).
    pub fn write(&self) -> Result<WriteTransaction, StoreError> {
        Ok(self.db.begin_write()?)
    }

    /// An account's (balance, merchant) if it exists.
    pub fn account(&self, name: &str) -> Result<Option<(u64, bool)>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ACCOUNTS)?;
        Ok(t.get(name)?.map(|v| v.value()))
    }

    /// The spent record of a coin serial.
    pub fn spent(&self, serial: &Serial) -> Result<Option<SpentRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SPENT)?;
        t.get(&serial.0[..])?
            .map(|v| parse_record(v.value()))
            .transpose()
    }

    /// Whether an allowance serial was spent.
    pub fn allowance_spent(&self, serial: &Serial) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ALLOWANCE_SPENT)?;
        Ok(t.get(&serial.0[..])?.is_some())
    }
}

fn parse_record(bytes: &[u8]) -> Result<SpentRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupted(format!("spent record: {e}")))
}

/// Takes the next value of a counter.
pub(crate) fn next_counter(txn: &WriteTransaction, name: &str) -> Result<u64, StoreError> {
    let mut t = txn.open_table(META)?;
    let next = t.get(name)?.map(|v| v.value()).unwrap_or(1);
    t.insert(name, next + 1)?;
    Ok(next)
}

/// Marks a verified deposit's coin serial and allowance serials spent inside `txn`, or
/// reports why not. Writes nothing unless the outcome is `Fresh`.
pub(crate) fn mark_spent(
    txn: &WriteTransaction,
    verified: &VerifiedDeposit,
    now: u64,
) -> Result<SpendOutcome, StoreError> {
    let digest_hex = hex::encode(verified.digest());
    {
        let spent = txn.open_table(SPENT)?;
        if let Some(v) = spent.get(&verified.serial().0[..])? {
            let record = parse_record(v.value())?;
            return Ok(if record.deposit_digest == digest_hex {
                SpendOutcome::Replay(record)
            } else {
                SpendOutcome::DoubleSpent(record)
            });
        }
        let allowance = txn.open_table(ALLOWANCE_SPENT)?;
        for s in verified.allowance_serials() {
            if allowance.get(&s.0[..])?.is_some() {
                return Ok(SpendOutcome::AllowanceReused(*s));
            }
        }
    }
    let receipt_id = next_counter(txn, "next_receipt")?;
    let record = SpentRecord {
        receipt_id,
        deposit_digest: digest_hex,
        value: verified.value(),
        target: target_label(verified.target()),
        time: now,
        owner_keys: verified
            .owner_keys()
            .iter()
            .map(|k| hex::encode(k.to_bytes()))
            .collect(),
    };
    let bytes = serde_json::to_vec(&record).expect("record serialises");
    txn.open_table(SPENT)?
        .insert(&verified.serial().0[..], &bytes[..])?;
    let mut allowance = txn.open_table(ALLOWANCE_SPENT)?;
    for s in verified.allowance_serials() {
        allowance.insert(&s.0[..], receipt_id)?;
    }
    Ok(SpendOutcome::Fresh(record))
}
