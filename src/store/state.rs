//! Issuer state in redb (an embedded, ACID, crash-safe B-tree store): accounts, registered
//! wallets, allowance issued per wallet per day, and a withdrawal log that holds nothing
//! linkable to coins. Spent serials and the credits they pay for are *not* here: they live
//! together in the spent set's journal (`crate::spentset`), the one source of truth for
//! redemptions. An account's balance is its stored balance here plus its journal credits.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use redb::{
    Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle, WriteTransaction,
};

use crate::protocol::deposit::CreditTarget;

/// account name → (funded, withdrawn, merchant?); the balance adds journal credits.
const ACCOUNTS: TableDefinition<&str, (u64, u64, bool)> = TableDefinition::new("accounts");
/// BLAKE2b-256 of a clearing partner's upload token → the partner's name (bearer
/// authentication of batch uploads; the token itself is never stored)
const PARTNER_TOKENS: TableDefinition<&[u8], &str> = TableDefinition::new("partner_tokens");
/// account name → BLAKE2b-256 of its API token (bearer authentication of withdrawals)
const ACCOUNT_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("account_tokens");
/// wallet address (32 bytes) → identity registered with it
const WALLETS: TableDefinition<&[u8], &str> = TableDefinition::new("wallets");
/// (wallet address, UTC day) → allowance value issued that day
const ALLOWANCE_ISSUED: TableDefinition<(&[u8], u64), u64> =
    TableDefinition::new("allowance_issued");
/// counters: "next_receipt", "next_withdrawal"
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Allowance v2: (class, address W) → identity, for the wallet each identity holds now.
const V2_WALLETS: TableDefinition<(&str, &[u8]), &str> = TableDefinition::new("v2_wallets");
/// Allowance v2: (class, identity) → its current address W.
const V2_IDENTITIES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("v2_identities");
/// Allowance v2: (class, identity, day) → (address W, key epoch) of the one credential the
/// identity got for that day.
const V2_CREDENTIALS: TableDefinition<(&str, &str, u64), (&[u8], u32)> =
    TableDefinition::new("v2_credentials");
/// (UTC day, allowance request id) → value charged: requests already answered (a replay is
/// answered again without a second charge). Entries older than the day before are pruned.
const ALLOWANCE_REQUESTS: TableDefinition<(u64, &[u8]), u64> =
    TableDefinition::new("allowance_requests");
/// (keyset id, source: "withdraw" | "swap" | "allowance") → (signatures, value): what the
/// issuer signed, for the audit of its liability. Nothing per coin, nothing linkable.
const ISSUED: TableDefinition<(&[u8], &str), (u64, u64)> = TableDefinition::new("issued");
/// swap outputs digest → time its outputs were first signed (a replayed swap is signed
/// again but counted once)
const SWAPS_SIGNED: TableDefinition<&[u8], u64> = TableDefinition::new("swaps_signed");
/// withdrawal sequence → (account, value, time): no blinded messages, nothing per coin
const WITHDRAWALS: TableDefinition<u64, (&str, u64, u64)> = TableDefinition::new("withdrawals");
/// Withdrawals answered, by request id: until when a repeat is answered without a debit
/// (the close of the outputs' withdraw windows; after it a repeat is refused unsigned).
const WITHDRAW_REQUESTS: TableDefinition<&[u8], u64> = TableDefinition::new("withdraw_requests");
/// The same, ordered by expiry, for pruning.
const WITHDRAW_REQUEST_EXPIRY: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("withdraw_request_expiry");

/// Store errors (storage, not protocol).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A redb operation failed (the typed cause is kept).
    #[error("issuer store: {0}")]
    Redb(#[from] redb::Error),
    /// Creating or opening the state file failed.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A state file already exists where a new one was to be created.
    #[error("{0}: already exists; refusing to create a new state over it")]
    Exists(std::path::PathBuf),
    /// A record that does not parse: the store is damaged.
    #[error("issuer store corrupted: {0}")]
    Corrupted(String),
    /// A request the state refuses (not storage damage).
    #[error("{0}")]
    Refused(Refusal),
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
            fn from(e: $t) -> StoreError { StoreError::Redb(e.into()) }
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

/// Why the state refused a change (the issuer turns these into its own errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No such account.
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    /// The name is taken.
    #[error("account {0:?} already exists")]
    AccountExists(String),
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
    /// A balance would overflow.
    #[error("balance overflow in {0}")]
    Overflow(String),
    /// The wallet address is registered already.
    #[error("wallet already registered")]
    WalletAlreadyRegistered,
    /// The wallet address is not registered.
    #[error("wallet not registered")]
    WalletNotRegistered,
    /// Allowance v2: the identity's credential for the day went to another of its wallets
    /// (before a re-registration).
    #[error("the identity's credential for day {0} was issued to its previous wallet")]
    CredentialTaken(u64),
    /// Allowance v2: the address is registered to another identity.
    #[error("wallet registered to another identity")]
    WalletOfAnotherIdentity,
    /// Beyond the day's allowance cap.
    #[error("allowance cap exceeded: limit {limit}, issued {issued}, requested {requested}")]
    AllowanceCapExceeded {
        /// Daily limit.
        limit: u64,
        /// Issued today so far.
        issued: u64,
        /// Requested now.
        requested: u64,
    },
}

fn refused(r: Refusal) -> StoreError {
    StoreError::Refused(r)
}

/// Text form of a credit target in records.
pub fn target_label(t: &CreditTarget) -> String {
    match t {
        CreditTarget::Account(a) => format!("account:{a}"),
        CreditTarget::Swap(d) => format!("swap:{}", hex::encode(d)),
    }
}

/// Days an answered allowance request is answered again without a charge (a wallet that
/// crashed after asking recovers within this horizon).
pub const ALLOWANCE_REPLAY_DAYS: u64 = 7;

/// Stale withdrawal request ids removed per withdrawal (amortised pruning).
const PRUNE_PER_WITHDRAWAL: usize = 4;

/// A withdrawal's idempotency key and until when a repeat of it is answered.
#[derive(Clone, Copy, Debug)]
pub struct WithdrawRequestId {
    /// `protocol::deposit::withdraw_request_id`.
    pub id: [u8; 32],
    /// When the first of the outputs' keysets stops issuing: a repeat after it is refused
    /// before any debit, so the key can go.
    pub replay_until: u64,
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
            return Err(StoreError::Exists(path.to_owned()));
        }
        // Registered identities live here: readable by the issuer's user only, from the start.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| StoreError::File {
                path: path.to_owned(),
                source,
            })?;
        let backend = redb::backends::FileBackend::new(file)?;
        let db = Database::builder().create_with_backend(backend)?;
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
        Store::open_checked(path, || Database::open(path))
    }

    /// [`Store::create`] over any redb storage backend (the fault simulator's disk).
    pub fn create_on(backend: impl redb::StorageBackend) -> Result<Store, StoreError> {
        let db = Database::builder().create_with_backend(backend)?;
        create_tables(&db)?;
        Ok(Store { db })
    }

    /// [`Store::open`] over any redb storage backend (the fault simulator's disk);
    /// `shown_as` names it in errors.
    pub fn open_on(
        backend: impl redb::StorageBackend,
        shown_as: &Path,
    ) -> Result<Store, StoreError> {
        Store::open_checked(shown_as, move || {
            Database::builder().create_with_backend(backend)
        })
    }

    fn open_checked(
        path: &Path,
        open: impl FnOnce() -> Result<Database, redb::DatabaseError>,
    ) -> Result<Store, StoreError> {
        let damaged = |reason: String| StoreError::Damaged {
            path: path.to_owned(),
            reason,
        };
        // The closure only owns the database it builds; nothing it touches outlives an
        // unwind, so observing its state after a panic is not possible.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
            || -> Result<Database, String> {
                let mut db = open().map_err(|e| e.to_string())?;
                if !db.check_integrity().map_err(|e| e.to_string())? {
                    return Err("redb integrity check failed".into());
                }
                read_everything(&db).map_err(|e| e.to_string())?;
                Ok(db)
            },
        ));
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

    /// Creates accounts (all or none).
    pub fn create_accounts(&self, accounts: &[(&str, bool)]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(ACCOUNTS)?;
            for (name, merchant) in accounts {
                if t.get(*name)?.is_some() {
                    return Err(refused(Refusal::AccountExists((*name).to_owned())));
                }
                t.insert(*name, (0u64, 0u64, *merchant))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Stores the digest of `account`'s API token (replacing any earlier one).
    pub fn set_account_token(&self, account: &str, token: &str) -> Result<(), StoreError> {
        if self.account(account)?.is_none() {
            return Err(refused(Refusal::UnknownAccount(account.to_owned())));
        }
        let txn = self.db.begin_write()?;
        txn.open_table(ACCOUNT_TOKENS)?
            .insert(account, &token_digest(token)[..])?;
        txn.commit()?;
        Ok(())
    }

    /// Adds money paid in from outside to `account`.
    pub fn fund(&self, account: &str, amount: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(ACCOUNTS)?;
            let mut r = account_row(&t, account)?;
            r.funded = r
                .funded
                .checked_add(amount)
                .ok_or_else(|| refused(Refusal::Overflow(account.to_owned())))?;
            t.insert(account, r.to_row())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Debits `account` by the value of `signed` (keyset id, value per signature) if its
    /// balance (with `credited` from the journal) covers it, and records the issuance and
    /// the withdrawal — one transaction, committed before any signature leaves. Once per
    /// `request.id`: a request answered before (until `request.replay_until`) is answered
    /// again without a debit.
    pub fn withdraw(
        &self,
        account: &str,
        credited: u64,
        signed: &[([u8; 32], u64)],
        request: WithdrawRequestId,
        now: u64,
    ) -> Result<(), StoreError> {
        let total = signed
            .iter()
            .try_fold(0u64, |acc, (_, v)| acc.checked_add(*v))
            .ok_or_else(|| refused(Refusal::Overflow(account.to_owned())))?;
        let txn = self.db.begin_write()?;
        {
            let mut answered = txn.open_table(WITHDRAW_REQUESTS)?;
            if answered.get(&request.id[..])?.is_some() {
                return Ok(());
            }
            answered.insert(&request.id[..], request.replay_until)?;
            let mut expiry = txn.open_table(WITHDRAW_REQUEST_EXPIRY)?;
            expiry.insert((request.replay_until, &request.id[..]), ())?;
            // Prune what can no longer be asked again (its keysets stopped issuing).
            let stale: Vec<(u64, Vec<u8>)> = expiry
                .range(..(now, &[][..]))?
                .take(PRUNE_PER_WITHDRAWAL)
                .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_vec())))
                .collect::<Result<_, _>>()?;
            for (until, id) in stale {
                expiry.remove((until, &id[..]))?;
                answered.remove(&id[..])?;
            }
        }
        {
            let mut t = txn.open_table(ACCOUNTS)?;
            let mut r = account_row(&t, account)?;
            // Credits only ever grow, so a value read before this transaction can only
            // understate the balance, never let a withdrawal overdraw it.
            let balance = r.balance(credited);
            if balance < total {
                return Err(refused(Refusal::InsufficientFunds {
                    account: account.to_owned(),
                    balance,
                    needed: total,
                }));
            }
            r.withdrawn += total;
            t.insert(account, r.to_row())?;
        }
        for (keyset, value) in signed {
            record_issuance(&txn, keyset, "withdraw", *value)?;
        }
        let seq = next_counter(&txn, "next_withdrawal")?;
        txn.open_table(WITHDRAWALS)?
            .insert(seq, (account, total, now))?;
        txn.commit()?;
        Ok(())
    }

    /// Registers a wallet address under an identity.
    pub fn register_wallet(&self, address: &[u8], identity: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(WALLETS)?;
            if t.get(address)?.is_some() {
                return Err(refused(Refusal::WalletAlreadyRegistered));
            }
            t.insert(address, identity)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Allowance v2: registers `address` as `identity`'s wallet for `class`, replacing (and
    /// returning) the identity's previous wallet, which can get no more credentials. A
    /// repeated registration changes nothing; an address registered to another identity is
    /// refused.
    pub fn register_v2(
        &self,
        class: &str,
        address: &[u8],
        identity: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_write()?;
        let previous = {
            let mut wallets = txn.open_table(V2_WALLETS)?;
            if let Some(owner) = wallets.get((class, address))? {
                if owner.value() != identity {
                    return Err(refused(Refusal::WalletOfAnotherIdentity));
                }
                return Ok(None);
            }
            let mut identities = txn.open_table(V2_IDENTITIES)?;
            let previous = identities
                .get((class, identity))?
                .map(|v| v.value().to_vec());
            if let Some(old) = &previous {
                wallets.remove((class, old.as_slice()))?;
            }
            identities.insert((class, identity), address)?;
            wallets.insert((class, address), identity)?;
            previous
        };
        txn.commit()?;
        Ok(previous)
    }

    /// Allowance v2: records the credential of `address` for `class` and `day`, under the
    /// key of `epoch` unless one was recorded before (then that epoch is returned: a repeat
    /// gets the same credential). One credential per identity, class and day: refused when
    /// the identity's credential for the day went to its previous wallet, or when the
    /// address is not (or no longer) registered.
    pub fn record_credential_v2(
        &self,
        class: &str,
        address: &[u8],
        day: u64,
        epoch: u32,
    ) -> Result<u32, StoreError> {
        let txn = self.db.begin_write()?;
        let epoch = {
            let identity = txn
                .open_table(V2_WALLETS)?
                .get((class, address))?
                .map(|v| v.value().to_owned())
                .ok_or_else(|| refused(Refusal::WalletNotRegistered))?;
            let mut t = txn.open_table(V2_CREDENTIALS)?;
            let existing = t
                .get((class, identity.as_str(), day))?
                .map(|v| (v.value().0.to_vec(), v.value().1));
            match existing {
                Some((w, e)) if w == address => e,
                Some(_) => return Err(refused(Refusal::CredentialTaken(day))),
                None => {
                    t.insert((class, identity.as_str(), day), (address, epoch))?;
                    epoch
                }
            }
        };
        txn.commit()?;
        Ok(epoch)
    }

    /// Counts `signed` allowance tokens against `address`'s cap for `day` (refused beyond
    /// `limit` or for an unregistered address) and records their issuance — once per
    /// `request_id`: a request answered before is answered again at no charge.
    pub fn issue_allowance(
        &self,
        address: &[u8],
        day: u64,
        limit: u64,
        signed: &[([u8; 32], u64)],
        request_id: &[u8; 32],
    ) -> Result<(), StoreError> {
        let requested: u64 = signed.iter().map(|(_, v)| *v).fold(0, u64::saturating_add);
        let txn = self.db.begin_write()?;
        {
            let mut answered = txn.open_table(ALLOWANCE_REQUESTS)?;
            if answered.get((day, &request_id[..]))?.is_some() {
                return Ok(());
            }
            if txn.open_table(WALLETS)?.get(address)?.is_none() {
                return Err(refused(Refusal::WalletNotRegistered));
            }
            let mut t = txn.open_table(ALLOWANCE_ISSUED)?;
            let issued = t.get((address, day))?.map(|v| v.value()).unwrap_or(0);
            if issued.saturating_add(requested) > limit {
                return Err(refused(Refusal::AllowanceCapExceeded {
                    limit,
                    issued,
                    requested,
                }));
            }
            t.insert((address, day), issued + requested)?;
            answered.insert((day, &request_id[..]), requested)?;
            // New requests can only be for today; repeats are answered for a week.
            let horizon = day.saturating_sub(ALLOWANCE_REPLAY_DAYS);
            answered.retain_in(..(horizon, &[][..]), |_, _| false)?;
        }
        for (keyset, value) in signed {
            record_issuance(&txn, keyset, "allowance", *value)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Whether the allowance request `request_id` for `day` was answered (and charged)
    /// within the replay horizon.
    pub fn allowance_answered(&self, day: u64, request_id: &[u8; 32]) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ALLOWANCE_REQUESTS)?;
        Ok(t.get((day, &request_id[..]))?.is_some())
    }

    /// Records a swap's outputs as issued, once per outputs digest (a replayed swap is
    /// signed again, but was issued once).
    pub fn record_swap(
        &self,
        digest: &[u8; 32],
        now: u64,
        signed: &[([u8; 32], u64)],
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(SWAPS_SIGNED)?;
            if t.get(&digest[..])?.is_some() {
                return Ok(());
            }
            t.insert(&digest[..], now)?;
        }
        for (keyset, value) in signed {
            record_issuance(&txn, keyset, "swap", *value)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Whether `token` is the API token of `account` (compares BLAKE2b digests).
    pub fn account_token_matches(&self, account: &str, token: &str) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ACCOUNT_TOKENS)?;
        let want = token_digest(token);
        Ok(t.get(account)?
            .is_some_and(|v| digests_equal(v.value(), &want)))
    }

    /// Records a clearing partner's upload token (only its digest is kept).
    pub fn add_partner_token(&self, partner: &str, token: &str) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(PARTNER_TOKENS)?
            .insert(&token_digest(token)[..], partner)?;
        txn.commit()?;
        Ok(())
    }

    /// The clearing partner an upload token belongs to, if any (looked up by digest).
    pub fn partner_of(&self, token: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(PARTNER_TOKENS)?;
        Ok(t.get(&token_digest(token)[..])?
            .map(|v| v.value().to_owned()))
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

/// `account`'s row in an open accounts table, or the refusal naming it.
fn account_row(
    t: &redb::Table<'_, &str, (u64, u64, bool)>,
    account: &str,
) -> Result<AccountRecord, StoreError> {
    t.get(account)?
        .map(|v| AccountRecord::from(v.value()))
        .ok_or_else(|| refused(Refusal::UnknownAccount(account.to_owned())))
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
        txn.open_table(ALLOWANCE_REQUESTS)?;
        txn.open_table(PARTNER_TOKENS)?;
        txn.open_table(WITHDRAW_REQUESTS)?;
        txn.open_table(WITHDRAW_REQUEST_EXPIRY)?;
        txn.open_table(V2_WALLETS)?;
        txn.open_table(V2_IDENTITIES)?;
        txn.open_table(V2_CREDENTIALS)?;
    }
    txn.commit()?;
    Ok(())
}

/// Counts one signature of `value` under keyset `keyset` for `source` (in `txn`).
fn record_issuance(
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
    let tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    if tables.iter().any(|t| t == "issued") {
        scan(&txn, ISSUED)?;
    }
    if tables.iter().any(|t| t == "allowance_requests") {
        scan(&txn, ALLOWANCE_REQUESTS)?;
    }
    if tables.iter().any(|t| t == "partner_tokens") {
        scan(&txn, PARTNER_TOKENS)?;
    }
    if tables.iter().any(|t| t == "withdraw_requests") {
        scan(&txn, WITHDRAW_REQUESTS)?;
        scan(&txn, WITHDRAW_REQUEST_EXPIRY)?;
    }
    if tables.iter().any(|t| t == "v2_wallets") {
        scan(&txn, V2_WALLETS)?;
        scan(&txn, V2_IDENTITIES)?;
        scan(&txn, V2_CREDENTIALS)?;
    }
    Ok(())
}

/// Takes the next value of a counter.
fn next_counter(txn: &WriteTransaction, name: &str) -> Result<u64, StoreError> {
    let mut t = txn.open_table(META)?;
    let next = t.get(name)?.map(|v| v.value()).unwrap_or(1);
    t.insert(name, next + 1)?;
    Ok(next)
}

/// Compares two digests in time independent of where they differ.
pub fn digests_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a presented secret token equals the expected one, compared through their
/// digests in constant time (neither the length nor the first differing byte of the
/// expected token leaks through timing).
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    digests_equal(&token_digest(presented), &token_digest(expected))
}

/// The stored form of an account API token.
fn token_digest(token: &str) -> [u8; 32] {
    crate::protocol::tags::blake2b(b"mc1/api-token", &[token.as_bytes()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(byte: u8, replay_until: u64) -> WithdrawRequestId {
        WithdrawRequestId {
            id: [byte; 32],
            replay_until,
        }
    }

    fn withdrawn(s: &Store) -> u64 {
        s.account("a").unwrap().unwrap().withdrawn
    }

    /// A repeated withdrawal id is not debited again while it is kept; ids whose keysets
    /// stopped issuing are pruned by later withdrawals (the issuer refuses such repeats
    /// before the store sees them), so the table does not grow without bound.
    #[test]
    fn withdrawal_ids_are_answered_once_and_pruned_after_their_horizon() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Store::create(&tmp.path().join("state.redb")).unwrap();
        s.create_accounts(&[("a", false)]).unwrap();
        s.fund("a", 100).unwrap();
        let one = [([1u8; 32], 10u64)];
        s.withdraw("a", 0, &one, request(1, 50), 5).unwrap();
        s.withdraw("a", 0, &one, request(1, 50), 6).unwrap();
        assert_eq!(withdrawn(&s), 10, "a repeat is not debited");
        // Past the horizon, another withdrawal prunes id 1 …
        s.withdraw("a", 0, &one, request(2, 500), 60).unwrap();
        assert_eq!(withdrawn(&s), 20);
        let txn = s.db.begin_read().unwrap();
        assert!(txn
            .open_table(WITHDRAW_REQUESTS)
            .unwrap()
            .get(&[1u8; 32][..])
            .unwrap()
            .is_none());
        let expiry = txn.open_table(WITHDRAW_REQUEST_EXPIRY).unwrap();
        assert_eq!(expiry.iter().unwrap().count(), 1, "only id 2 is kept");
        drop(expiry);
        drop(txn);
        // … and a refused withdrawal (insufficient funds) records no id.
        let big = [([1u8; 32], 1000u64)];
        assert!(s.withdraw("a", 0, &big, request(3, 500), 61).is_err());
        s.fund("a", 1000).unwrap();
        s.withdraw("a", 0, &big, request(3, 500), 62).unwrap();
        assert_eq!(
            withdrawn(&s),
            1020,
            "the earlier refusal left nothing to replay"
        );
    }
}
