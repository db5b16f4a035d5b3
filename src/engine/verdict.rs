//! Per-coin verdicts of a redemption, with their stable reason codes.

use serde::{Deserialize, Serialize};

use crate::protocol::policy::PolicyRule;
use crate::protocol::verify::Rejection;

/// Double-spend evidence: the earlier receipt and where the two chains part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The first redemption's receipt id.
    pub first_receipt: u64,
    /// Index of the first link where the chains differ; the chain length when both are the
    /// same chain and its last owner signed two deposits.
    pub diverges_at_link: usize,
    /// The owner key (hex) that signed both branches.
    pub double_signer: String,
}

/// The verdict on one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Durably redeemed under `receipt` (`replayed`: the same deposit was accepted before).
    Accepted {
        /// Receipt id.
        receipt: u64,
        /// Value credited.
        value: u64,
        /// Account credited.
        account: String,
        /// A resubmission of an accepted deposit.
        replayed: bool,
    },
    /// The serial was redeemed before by a different deposit.
    DoubleSpent {
        /// Evidence.
        evidence: Evidence,
    },
    /// An earlier record of the same batch carries the same serial.
    DuplicateInBatch {
        /// Index of that earlier record.
        first_record: u64,
    },
    /// σ fails the pairing check.
    BadIssuerSignature,
    /// A link or the deposit is not signed by the coin's owner.
    BadLinkSignature {
        /// Link index, or `None` for the deposit signature.
        link: Option<usize>,
    },
    /// Unknown keyset, wrong kind, not yet valid or expired.
    UnknownOrExpiredKeyset {
        /// Specifics.
        detail: String,
    },
    /// More links than the class allows.
    HopCapExceeded {
        /// Links.
        hops: usize,
        /// Cap.
        max: u8,
    },
    /// Received value moved on without (enough) allowance.
    AllowanceMissing {
        /// Specifics.
        detail: String,
    },
    /// An allowance token already used (in this coin, this batch or before).
    AllowanceReused {
        /// The token serial (hex).
        serial: String,
    },
    /// An attached allowance token that is not valid.
    BadAllowance {
        /// Specifics.
        detail: String,
    },
    /// A usage-policy rule failed.
    PolicyViolation {
        /// Rule name.
        rule: PolicyRule,
        /// Specifics.
        detail: String,
    },
    /// A deposit to an account the store does not know.
    UnknownAccount {
        /// Account name.
        account: String,
    },
    /// The record does not decode.
    Malformed {
        /// Byte offset in the batch file where decoding failed. Serialised as
        /// `error_offset`: a verdict line already carries the record's own `offset`.
        #[serde(rename = "error_offset")]
        offset: u64,
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// The stable reason code (`accepted`, `double_spent`, …, `policy_violation(rule)`).
    pub fn code(&self) -> String {
        match self {
            Verdict::Accepted { .. } => "accepted".into(),
            Verdict::DoubleSpent { .. } => "double_spent".into(),
            Verdict::DuplicateInBatch { .. } => "duplicate_in_batch".into(),
            Verdict::BadIssuerSignature => "bad_issuer_signature".into(),
            Verdict::BadLinkSignature { .. } => "bad_link_signature".into(),
            Verdict::UnknownOrExpiredKeyset { .. } => "unknown_or_expired_keyset".into(),
            Verdict::HopCapExceeded { .. } => "hop_cap_exceeded".into(),
            Verdict::AllowanceMissing { .. } => "allowance_missing".into(),
            Verdict::AllowanceReused { .. } => "allowance_reused".into(),
            Verdict::BadAllowance { .. } => "bad_allowance".into(),
            Verdict::PolicyViolation { rule, .. } => format!("policy_violation({rule})"),
            Verdict::UnknownAccount { .. } => "unknown_account".into(),
            Verdict::Malformed { .. } => "malformed".into(),
        }
    }

    /// Whether the coin was accepted.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Verdict::Accepted { .. })
    }
}

impl From<Rejection> for Verdict {
    fn from(r: Rejection) -> Verdict {
        match r {
            Rejection::UnknownKeyset(_)
            | Rejection::WrongKeysetKind(_)
            | Rejection::KeysetNotYetValid(_)
            | Rejection::KeysetExpired(_)
            | Rejection::UnknownPolicyClass(_) => Verdict::UnknownOrExpiredKeyset {
                detail: r.to_string(),
            },
            Rejection::BadIssuerSignature(_) => Verdict::BadIssuerSignature,
            Rejection::BadLinkSignature { index } => {
                Verdict::BadLinkSignature { link: Some(index) }
            }
            Rejection::BadDepositSignature => Verdict::BadLinkSignature { link: None },
            Rejection::HopCapExceeded { hops, max } => Verdict::HopCapExceeded { hops, max },
            Rejection::AllowanceMissing { .. } | Rejection::AllowanceShort { .. } => {
                Verdict::AllowanceMissing {
                    detail: r.to_string(),
                }
            }
            Rejection::AllowanceReused { serial } => Verdict::AllowanceReused {
                serial: serial.to_string(),
            },
            Rejection::BadAllowance { .. } => Verdict::BadAllowance {
                detail: r.to_string(),
            },
            Rejection::PolicyViolation { rule, detail } => {
                Verdict::PolicyViolation { rule, detail }
            }
        }
    }
}

impl core::fmt::Display for Verdict {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.code())?;
        match self {
            Verdict::Accepted {
                receipt,
                value,
                account,
                replayed,
            } => {
                write!(
                    f,
                    ": receipt {receipt}, {value} to {account}{}",
                    if *replayed { " (replayed)" } else { "" }
                )
            }
            Verdict::DoubleSpent { evidence } => write!(
                f,
                ": first redeemed under receipt {}, chains diverge at link {}, key {} signed twice",
                evidence.first_receipt, evidence.diverges_at_link, evidence.double_signer
            ),
            Verdict::DuplicateInBatch { first_record } => {
                write!(f, ": same serial as record {first_record}")
            }
            Verdict::BadIssuerSignature => Ok(()),
            Verdict::BadLinkSignature { link: Some(i) } => write!(f, ": link {i}"),
            Verdict::BadLinkSignature { link: None } => f.write_str(": deposit signature"),
            Verdict::HopCapExceeded { hops, max } => write!(f, ": {hops} links, cap {max}"),
            Verdict::AllowanceReused { serial } => write!(f, ": token {serial}"),
            Verdict::UnknownAccount { account } => write!(f, ": {account}"),
            Verdict::Malformed { offset, reason } => write!(f, " at byte {offset}: {reason}"),
            Verdict::UnknownOrExpiredKeyset { detail }
            | Verdict::AllowanceMissing { detail }
            | Verdict::BadAllowance { detail }
            | Verdict::PolicyViolation { detail, .. } => write!(f, ": {detail}"),
        }
    }
}
