//! Why an issuer operation failed, sorted by who is at fault — because each party acts
//! differently on it:
//!
//! * [`RequestRefusal`]: the request is well formed but the issuer says no (a protocol rule,
//!   a double spend, the balance, the cap). The requester's fault; retrying unchanged gets
//!   the same answer. Over HTTP: 4xx with a stable code.
//! * [`Misuse`]: the caller used the API wrongly (a bad account name, an empty request, a
//!   deposit sent to the swap route). A bug or a typo on the calling side. Over HTTP: 400/409.
//! * [`StorageFault`]: the issuer's own disk or state failed. Never the requester's fault,
//!   never turned into a verdict about the request (a redb error must not read as
//!   `unknown_account`); retry later. Over HTTP: 500, details only in the server log.
//!
//! Failures of the way to a remote issuer (HTTP transport, an answer that breaks the API) are
//! not issuer errors: they belong to the client ([`crate::client::ClientError`]) and reach
//! the wallet as [`CallError::Remote`].

use crate::engine::settle::SettleError;
use crate::engine::{EngineError, Verdict};
use crate::protocol::verify::Rejection;
use crate::spentset::SpentSetError;
use crate::store::files::FilesError;
use crate::store::state::{Refusal as StoreRefusal, StoreError};

/// Why the issuer refused an operation (see the module docs for the three kinds).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// The requester's fault: the issuer says no.
    #[error(transparent)]
    Refused(#[from] RequestRefusal),
    /// The caller's fault: the API was used wrongly.
    #[error(transparent)]
    Misuse(#[from] Misuse),
    /// The issuer's fault: its storage failed.
    #[error(transparent)]
    Storage(#[from] StorageFault),
}

/// A well-formed request the issuer will not honour.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestRefusal {
    /// The coin or deposit breaks a protocol rule.
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    /// Swap input `index` breaks a protocol rule.
    #[error("swap input {index} rejected: {rejection}")]
    SwapInputRejected {
        /// Input position.
        index: usize,
        /// The rule.
        rejection: Rejection,
    },
    /// Refused at settlement (double spend with evidence, allowance reused, unknown
    /// account, merchant-only policy).
    #[error("refused: {0}")]
    Settlement(Verdict),
    /// Some swap inputs were redeemed before by this very swap, others not: impossible for
    /// a resubmission (a swap commits all inputs at once), so refused.
    #[error("swap inputs partially redeemed before")]
    SwapPartiallyReplayed,
    /// No account of that name.
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
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
    /// Crediting would overflow the account's balance (u64 minor units).
    #[error("balance of {account} would overflow")]
    BalanceOverflow {
        /// Account.
        account: String,
    },
    /// A blinded output the issuer will not sign.
    #[error("output {index}: {reason}")]
    BadOutput {
        /// Position.
        index: usize,
        /// Why.
        reason: OutputFault,
    },
    /// Swap outputs (plus fee) worth more than its inputs.
    #[error("swap outputs worth {outputs} plus fee {fee} exceed inputs worth {inputs}")]
    SwapOutputsExceedInputs {
        /// Σ inputs.
        inputs: u64,
        /// Σ outputs.
        outputs: u64,
        /// Fee.
        fee: u64,
    },
    /// Swap outputs (plus fee) worth less than its inputs: value would vanish.
    #[error("swap outputs worth {outputs} plus fee {fee} fall short of inputs worth {inputs}")]
    SwapOutputsBelowInputs {
        /// Σ inputs.
        inputs: u64,
        /// Σ outputs.
        outputs: u64,
        /// Fee.
        fee: u64,
    },
    /// A swap input that does not authorise these outputs.
    #[error("swap input {index} is not a deposit to this swap's outputs")]
    SwapTargetMismatch {
        /// Position.
        index: usize,
    },
    /// A swap output of another class than an input's: a swap keeps the class and its
    /// rules.
    #[error("swap input {index} is of class {input_class:?}, an output of class {output_class:?}")]
    SwapChangesClass {
        /// Position of the input.
        index: usize,
        /// The input's class.
        input_class: String,
        /// The output's class.
        output_class: String,
    },
    /// The same coin twice in one swap.
    #[error("swap input {index} repeats an earlier input's coin")]
    SwapDuplicateInput {
        /// Position.
        index: usize,
    },
    /// Allowance request beyond the daily cap.
    #[error("allowance cap exceeded: limit {limit} per day, already issued {issued}, requested {requested}")]
    AllowanceCapExceeded {
        /// Daily limit.
        limit: u64,
        /// Issued today so far.
        issued: u64,
        /// Requested now.
        requested: u64,
    },
    /// Allowance request from an unregistered address.
    #[error("wallet {0} is not registered")]
    WalletNotRegistered(String),
    /// Address already registered.
    #[error("wallet {0} is already registered")]
    WalletAlreadyRegistered(String),
    /// Request signature invalid.
    #[error("request signature is invalid")]
    BadRequestSignature,
    /// Allowance requested for another day than today.
    #[error("allowance requested for day {requested}, today is {today}")]
    WrongDay {
        /// Requested day.
        requested: u64,
        /// Today.
        today: u64,
    },
    /// Allowance v2: the class does not use v2 (or does not exist).
    #[error("class {0:?} is not an allowance v2 class")]
    NotAV2Class(String),
    /// Allowance v2: no credential key of the class issues for the day.
    #[error("no credential key of class {class:?} issues for day {day}")]
    NoCredentialKey {
        /// Class.
        class: String,
        /// Day.
        day: u64,
    },
    /// Allowance v2: the identity's credential for the day went to its previous wallet; a
    /// re-registration takes effect for days not served yet.
    #[error("the identity's credential for day {day} was issued to its previous wallet")]
    CredentialTaken {
        /// Day.
        day: u64,
    },
    /// Allowance v2: the address is registered to another identity.
    #[error("wallet {0} is registered to another identity")]
    WalletOfAnotherIdentity(String),
}

/// Why one blinded output cannot be signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutputFault {
    /// No published keyset has this id.
    #[error("unknown keyset")]
    UnknownKeyset,
    /// A coin keyset asked for an allowance (or the reverse).
    #[error("keyset of the wrong kind")]
    WrongKind,
    /// The keyset is not (or no longer) issuing.
    #[error("keyset is not open for issuance")]
    NotIssuing,
    /// The blinded message is not a point of the prime-order subgroup.
    #[error("blinded message is outside G1")]
    OutsideG1,
    /// The outputs' values sum beyond u64.
    #[error("value overflow")]
    ValueOverflow,
}

/// An operation the caller should not have asked for in this form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// An account name that is already taken.
    #[error("account {0:?} already exists")]
    AccountExists(String),
    /// An invalid account or partner name.
    #[error("invalid account name {0:?} (1-64 chars of [A-Za-z0-9_.@-])")]
    BadAccountName(String),
    /// A withdrawal or swap with no outputs (or inputs), or too many.
    #[error("request must carry between 1 and {max} outputs, got {got}")]
    OutputCount {
        /// Got.
        got: usize,
        /// Max.
        max: usize,
    },
    /// A deposit whose target is a swap, sent to the deposit endpoint.
    #[error("deposit target must be an account")]
    NotAnAccountDeposit,
    /// `issuer init` on a directory that holds an issuer already.
    #[error(
        "{} already holds an issuer or other files (issuer init needs a new or empty directory)",
        .0.display()
    )]
    AlreadyInitialised(std::path::PathBuf),
}

/// The issuer's own storage failed: not the requester's fault, retry later.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageFault {
    /// The state database.
    #[error(transparent)]
    Store(StoreError),
    /// The issuer directory (keys, policy).
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The file system (creating the issuer directory).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The engine's stores.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The spent set.
    #[error(transparent)]
    SpentSet(#[from] SpentSetError),
    /// The settlement journal.
    #[error(transparent)]
    Settle(#[from] SettleError),
    /// A published keyset whose secret key is missing from the issuer directory.
    #[error("keyset {0} has no secret key in the issuer directory")]
    MissingSecret(String),
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for IssuerError {
            fn from(e: $t) -> Self {
                IssuerError::Storage(e.into())
            }
        }
    )*};
}
storage_from!(std::io::Error, EngineError, SpentSetError, SettleError);

impl From<FilesError> for IssuerError {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::AlreadyInitialised(dir) => Misuse::AlreadyInitialised(dir).into(),
            other => IssuerError::Storage(other.into()),
        }
    }
}

impl From<Rejection> for IssuerError {
    fn from(e: Rejection) -> Self {
        IssuerError::Refused(e.into())
    }
}

impl From<StoreError> for IssuerError {
    /// The state's refusals are about the request; everything else it reports is storage.
    fn from(e: StoreError) -> Self {
        let refusal = match e {
            StoreError::Refused(r) => r,
            other => return IssuerError::Storage(StorageFault::Store(other)),
        };
        match refusal {
            StoreRefusal::AccountExists(a) => Misuse::AccountExists(a).into(),
            StoreRefusal::UnknownAccount(a) => RequestRefusal::UnknownAccount(a).into(),
            StoreRefusal::InsufficientFunds {
                account,
                balance,
                needed,
            } => RequestRefusal::InsufficientFunds {
                account,
                balance,
                needed,
            }
            .into(),
            StoreRefusal::Overflow(account) => RequestRefusal::BalanceOverflow { account }.into(),
            StoreRefusal::AllowanceCapExceeded {
                limit,
                issued,
                requested,
            } => RequestRefusal::AllowanceCapExceeded {
                limit,
                issued,
                requested,
            }
            .into(),
            // The caller names the address (it knows it; the state does not print it).
            StoreRefusal::WalletAlreadyRegistered => {
                RequestRefusal::WalletAlreadyRegistered(String::new()).into()
            }
            StoreRefusal::WalletNotRegistered => {
                RequestRefusal::WalletNotRegistered(String::new()).into()
            }
            StoreRefusal::CredentialTaken(day) => RequestRefusal::CredentialTaken { day }.into(),
            StoreRefusal::WalletOfAnotherIdentity => {
                RequestRefusal::WalletOfAnotherIdentity(String::new()).into()
            }
        }
    }
}

impl IssuerError {
    /// The settlement verdict when this is a refusal at settlement.
    pub fn verdict(&self) -> Option<&Verdict> {
        match self {
            IssuerError::Refused(RequestRefusal::Settlement(v)) => Some(v),
            _ => None,
        }
    }
}

/// A failure the wallet sees when it calls an issuer through [`super::IssuerApi`]: the
/// issuer's own answer (in process), or whatever a remote issuer's client reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// An in-process issuer failed the operation.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// A remote issuer refused, failed, or could not be reached.
    #[error("{0}")]
    Remote(Box<dyn RemoteFailure>),
}

/// What a remote issuer's client error tells the wallet beyond its message.
pub trait RemoteFailure: std::error::Error + Send + Sync + 'static {
    /// The issuer's stable error or verdict code, when it answered at all.
    fn code(&self) -> Option<&str>;
    /// The HTTP status of the issuer's answer, when it answered at all.
    fn status(&self) -> Option<u16>;
}

impl CallError {
    /// Whether the issuer answered "no" to the request itself: nothing was done, and the
    /// same request will be refused again. Storage faults, a busy issuer and a failed
    /// transport are not refusals: the operation may have happened, or may still.
    pub fn is_refusal(&self) -> bool {
        match self {
            CallError::Issuer(e) => !matches!(e, IssuerError::Storage(_)),
            CallError::Remote(r) => r
                .status()
                .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429),
        }
    }

    /// Whether the issuer refused because the coin is spent already: the wallet drops it.
    pub fn is_double_spent(&self) -> bool {
        match self {
            CallError::Issuer(e) => matches!(e.verdict(), Some(Verdict::DoubleSpent { .. })),
            CallError::Remote(r) => r.code() == Some("double_spent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusals() -> Vec<StoreRefusal> {
        vec![
            StoreRefusal::UnknownAccount("a".into()),
            StoreRefusal::AccountExists("a".into()),
            StoreRefusal::InsufficientFunds {
                account: "a".into(),
                balance: 1,
                needed: 2,
            },
            StoreRefusal::Overflow("a".into()),
            StoreRefusal::WalletAlreadyRegistered,
            StoreRefusal::WalletNotRegistered,
            StoreRefusal::AllowanceCapExceeded {
                limit: 1,
                issued: 1,
                requested: 1,
            },
        ]
    }

    /// Every state refusal is about the request (never storage), and every storage failure
    /// stays storage: a damaged or failing store never reads as the requester's fault.
    #[test]
    fn store_errors_are_sorted_by_fault() {
        for r in refusals() {
            let e = IssuerError::from(StoreError::Refused(r));
            assert!(!matches!(e, IssuerError::Storage(_)), "{e:?}");
        }
        let faults = [
            StoreError::Corrupted("row".into()),
            StoreError::Missing("state.redb".into()),
            StoreError::Exists("state.redb".into()),
            StoreError::File {
                path: "state.redb".into(),
                source: std::io::Error::other("disk"),
            },
            StoreError::Redb(redb::Error::Corrupted("page".into())),
        ];
        for f in faults {
            let e = IssuerError::from(f);
            assert!(
                matches!(e, IssuerError::Storage(StorageFault::Store(_))),
                "{e:?}"
            );
        }
    }

    /// A balance overflow names the account; it used to read as "output 0".
    #[test]
    fn balance_overflow_is_its_own_refusal() {
        let e = IssuerError::from(StoreError::Refused(StoreRefusal::Overflow("shop".into())));
        assert!(matches!(
            e,
            IssuerError::Refused(RequestRefusal::BalanceOverflow { ref account }) if account == "shop"
        ));
    }

    #[test]
    fn an_existing_issuer_directory_is_misuse_not_storage() {
        let e = IssuerError::from(FilesError::AlreadyInitialised("/x".into()));
        assert!(matches!(
            e,
            IssuerError::Misuse(Misuse::AlreadyInitialised(_))
        ));
    }
}
