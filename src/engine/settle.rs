//! Settlement: the spent-set side of a redemption, shared by the batch engine and the
//! issuer's single-deposit and swap paths, so that "spent" has one source of truth.
//!
//! For each verified deposit, in record order: the credit target must be acceptable; the
//! serial must not appear earlier in the same batch (`duplicate_in_batch`); if the spent set
//! knows it, the same deposit is answered with its original receipt (idempotent) and a
//! different one is a double spend with evidence; its allowance serials must be unused. The
//! fresh ones become one commit group: one fsync, then `accepted`.

use std::collections::{HashMap, HashSet};

use super::verdict::{Evidence, Verdict};
use crate::protocol::coin::Serial;
use crate::protocol::deposit::CreditTarget;
use crate::protocol::policy::PolicyRule;
use crate::protocol::verify::VerifiedDeposit;
use crate::spentset::{Disk, ReceiptEntry, SpentSet, SpentSetError};
use crate::store::state::StoreError;

/// What settlement reads of the spent set. One machine reads its own [`SpentSet`]; a
/// cluster partition owner reads the votes of every partition for the chunk (`cluster`),
/// so both decide with this one function.
pub trait SpentView {
    /// The receipt id that spent `serial` in `epoch`, if any.
    fn lookup(&self, epoch: u32, serial: &[u8; 32]) -> Option<u64>;
    /// The receipt entry with id `id` (an id `lookup` returned).
    fn receipt(&self, id: u64) -> Result<ReceiptEntry, SpentSetError>;
}

impl<D: Disk> SpentView for SpentSet<D> {
    fn lookup(&self, epoch: u32, serial: &[u8; 32]) -> Option<u64> {
        SpentSet::lookup(self, epoch, serial)
    }
    fn receipt(&self, id: u64) -> Result<ReceiptEntry, SpentSetError> {
        SpentSet::receipt(self, id)
    }
}

/// What settlement needs of a verified deposit: a [`VerifiedDeposit`] on one machine, the
/// facts a verifier worker published for it in a cluster.
pub trait Settleable {
    /// The coin serial.
    fn serial(&self) -> Serial;
    /// The coin's key epoch.
    fn epoch(&self) -> u32;
    /// The coin's value.
    fn value(&self) -> u64;
    /// What to credit.
    fn target(&self) -> &CreditTarget;
    /// Whether the class only allows deposits to merchant accounts.
    fn merchant_only(&self) -> bool;
    /// Allowance serials spent with it, with their epochs.
    fn allowance_serials(&self) -> &[(Serial, u32)];
    /// Owner keys X, P₁ … Pₙ (compressed).
    fn owner_key_bytes(&self) -> Vec<[u8; 32]>;
    /// Chain digests d₀ … dₙ.
    fn chain_digests(&self) -> &[[u8; 32]];
    /// The deposit digest (idempotency key).
    fn digest(&self) -> [u8; 32];
}

impl Settleable for VerifiedDeposit {
    fn serial(&self) -> Serial {
        VerifiedDeposit::serial(self)
    }
    fn epoch(&self) -> u32 {
        VerifiedDeposit::epoch(self)
    }
    fn value(&self) -> u64 {
        VerifiedDeposit::value(self)
    }
    fn target(&self) -> &CreditTarget {
        VerifiedDeposit::target(self)
    }
    fn merchant_only(&self) -> bool {
        VerifiedDeposit::merchant_only(self)
    }
    fn allowance_serials(&self) -> &[(Serial, u32)] {
        VerifiedDeposit::allowance_serials(self)
    }
    fn owner_key_bytes(&self) -> Vec<[u8; 32]> {
        self.owner_keys().iter().map(|k| k.to_bytes()).collect()
    }
    fn chain_digests(&self) -> &[[u8; 32]] {
        VerifiedDeposit::chain_digests(self)
    }
    fn digest(&self) -> [u8; 32] {
        VerifiedDeposit::digest(self)
    }
}

/// What settlement needs to know about accounts.
pub trait Accounts {
    /// `Some(merchant?)` if the account exists. A storage failure is an error, never a
    /// verdict: a redb error must not turn into the depositor's `unknown_account`.
    fn merchant(&self, name: &str) -> Result<Option<bool>, StoreError>;
}

/// Why settlement could not decide (storage, never the depositor's fault).
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// The spent set or its journal failed.
    #[error(transparent)]
    SpentSet(#[from] SpentSetError),
    /// The accounts store failed.
    #[error(transparent)]
    Accounts(#[from] StoreError),
}

/// What settlement remembers of the batch in progress: its content key (receipts carry it,
/// so a serial redeemed by an earlier record of the same file is recognised from the spent
/// set itself), and the serials of the chunk not yet committed. Memory is bounded by the
/// chunk.
#[derive(Default)]
pub struct BatchMemory {
    batch: [u8; 16],
    serials: HashMap<[u8; 32], u64>,
    allowances: HashSet<[u8; 32]>,
}

impl BatchMemory {
    /// Memory for the batch with content key `batch` (all zeros: a single deposit or swap).
    pub fn new(batch: [u8; 16]) -> BatchMemory {
        BatchMemory {
            batch,
            ..BatchMemory::default()
        }
    }

    /// Forgets the chunk just committed (its serials are in the spent set now).
    pub fn end_chunk(&mut self) {
        self.serials.clear();
        self.allowances.clear();
    }
}

/// Verdicts decided without the journal, plus the fresh entries to commit.
pub struct Plan {
    verdicts: Vec<Option<Verdict>>,
    fresh: Vec<(usize, ReceiptEntry)>,
}

impl Plan {
    /// Whether every deposit is either fresh or an idempotent replay (what a swap needs).
    pub fn all_acceptable(&self) -> bool {
        self.verdicts
            .iter()
            .all(|v| v.as_ref().is_none_or(Verdict::is_accepted))
    }

    /// The first refusal, if any.
    pub fn first_refusal(&self) -> Option<&Verdict> {
        self.verdicts.iter().flatten().find(|v| !v.is_accepted())
    }

    /// Number of idempotent replays.
    pub fn replay_count(&self) -> usize {
        self.verdicts
            .iter()
            .flatten()
            .filter(|v| matches!(v, Verdict::Accepted { replayed: true, .. }))
            .count()
    }

    /// Number of fresh entries.
    pub fn fresh_count(&self) -> usize {
        self.fresh.len()
    }

    /// The decided verdicts (`None` where the deposit is fresh) and the fresh entries with
    /// their positions: for a caller that records the fresh ones elsewhere than in one
    /// [`SpentSet`] (a cluster's partition owners each record their own keys).
    pub fn into_parts(self) -> (Vec<Option<Verdict>>, Vec<(usize, ReceiptEntry)>) {
        (self.verdicts, self.fresh)
    }
}

/// Who signed twice. The two spends share the chain up to the last digest they have in
/// common, dₖ; whoever owned the coin there (X for k = 0, else Pₖ) signed two different
/// continuations — a different link k+1, or (when every digest agrees) a different
/// deposit. Comparing digests, not owner keys: a payer who reuses its ephemeral secret
/// pays the same one-time key twice, so the keys agree past the real divergence and would
/// name the payee. Receipts from before chain digests were recorded fall back to keys.
fn evidence(first_receipt: u64, first: &ReceiptEntry, ours: &impl Settleable) -> Evidence {
    let keys: Vec<[u8; 32]> = ours.owner_key_bytes();
    let common = if first.chain_digests.is_empty() {
        keys.iter()
            .zip(&first.owner_keys)
            .take_while(|(a, b)| a == b)
            .count()
    } else {
        ours.chain_digests()
            .iter()
            .zip(&first.chain_digests)
            .take_while(|(a, b)| a == b)
            .count()
    }
    .clamp(1, keys.len().max(1));
    Evidence {
        first_receipt,
        diverges_at_link: common - 1,
        double_signer: keys.get(common - 1).map(hex::encode).unwrap_or_default(),
    }
}

/// The account a receipt target credits (`account:<name>` → `<name>`; a swap target as is).
pub fn account_of(target: &str) -> String {
    target.strip_prefix("account:").unwrap_or(target).to_owned()
}

/// Decides every deposit of `items` that can be decided without writing; collects the
/// fresh ones. `index` is each item's record number (for `duplicate_in_batch`).
pub fn plan<S: SpentView + ?Sized, T: Settleable>(
    spent: &S,
    accounts: &dyn Accounts,
    memory: &mut BatchMemory,
    items: Vec<(u64, Result<T, Verdict>)>,
    allow_swap_targets: bool,
    now: u64,
) -> Result<Plan, SettleError> {
    let mut verdicts = Vec::with_capacity(items.len());
    let mut fresh = Vec::new();
    for (pos, (index, item)) in items.into_iter().enumerate() {
        let vd = match item {
            Err(v) => {
                verdicts.push(Some(v));
                continue;
            }
            Ok(vd) => vd,
        };
        let verdict = decide(spent, accounts, memory, index, &vd, allow_swap_targets)?;
        // Fresh acceptances and replays of earlier ones both claim the serial for this
        // batch, so a later copy in the batch is `duplicate_in_batch` whether the batch
        // runs once or is re-run after a crash.
        if verdict.as_ref().is_none_or(Verdict::is_accepted) {
            memory.serials.insert(vd.serial().0, index);
            memory
                .allowances
                .extend(vd.allowance_serials().iter().map(|(s, _)| s.0));
        }
        if verdict.is_none() {
            let target = crate::store::state::target_label(vd.target());
            fresh.push((
                pos,
                ReceiptEntry {
                    serial: vd.serial().0,
                    epoch: vd.epoch(),
                    deposit_digest: vd.digest(),
                    value: vd.value(),
                    time: now,
                    batch: memory.batch,
                    record: index,
                    target,
                    owner_keys: vd.owner_key_bytes(),
                    chain_digests: vd.chain_digests().to_vec(),
                    allowances: vd
                        .allowance_serials()
                        .iter()
                        .map(|(s, e)| (s.0, *e))
                        .collect(),
                },
            ));
        }
        verdicts.push(verdict);
    }
    Ok(Plan { verdicts, fresh })
}

fn decide<S: SpentView + ?Sized, T: Settleable>(
    spent: &S,
    accounts: &dyn Accounts,
    memory: &BatchMemory,
    index: u64,
    vd: &T,
    allow_swap_targets: bool,
) -> Result<Option<Verdict>, SettleError> {
    match vd.target() {
        CreditTarget::Account(name) => match accounts.merchant(name.as_str())? {
            None => {
                return Ok(Some(Verdict::UnknownAccount {
                    account: name.to_string(),
                }))
            }
            Some(false) if vd.merchant_only() => {
                return Ok(Some(Verdict::PolicyViolation {
                    rule: PolicyRule::MerchantOnlyDeposit,
                    detail: format!("account {name} is not a merchant account"),
                }))
            }
            Some(_) => {}
        },
        CreditTarget::Swap(_) if !allow_swap_targets => {
            return Ok(Some(Verdict::Malformed {
                offset: 0,
                reason: "swap deposits are not cleared in batches".into(),
            }))
        }
        CreditTarget::Swap(_) => {}
    }
    let serial = vd.serial().0;
    if let Some(&first_record) = memory.serials.get(&serial) {
        return Ok(Some(Verdict::DuplicateInBatch { first_record }));
    }
    if let Some(id) = spent.lookup(vd.epoch(), &serial) {
        let first = spent.receipt(id)?;
        // `memory.batch` is the batch's content key, so "same batch" means the same bytes:
        // a re-run (or a resumed run) of this very file, never another file that copied its
        // header's batch id.
        let same_batch = memory.batch != [0u8; 16] && first.batch == memory.batch;
        if same_batch && first.record != index {
            return Ok(Some(Verdict::DuplicateInBatch {
                first_record: first.record,
            }));
        }
        // Idempotency by content: the byte-identical deposit gets its original receipt,
        // whichever batch, position or endpoint it came through first.
        return Ok(Some(if first.deposit_digest == vd.digest() {
            Verdict::Accepted {
                receipt: id,
                value: first.value,
                account: account_of(&first.target),
                replayed: true,
            }
        } else {
            Verdict::DoubleSpent {
                evidence: evidence(id, &first, vd),
            }
        }));
    }
    for (s, e) in vd.allowance_serials() {
        if memory.allowances.contains(&s.0) || spent.lookup(*e, &s.0).is_some() {
            return Ok(Some(Verdict::AllowanceReused {
                serial: s.to_string(),
            }));
        }
    }
    Ok(None)
}

/// Commits the plan's fresh entries (one fsync) and returns every verdict in order.
pub fn commit<D: Disk>(spent: &mut SpentSet<D>, plan: Plan) -> Result<Vec<Verdict>, SpentSetError> {
    let Plan {
        mut verdicts,
        fresh,
    } = plan;
    let entries: Vec<ReceiptEntry> = fresh.iter().map(|(_, e)| e.clone()).collect();
    let ids = spent.commit(&entries)?;
    for ((pos, e), id) in fresh.into_iter().zip(ids) {
        let Some(slot) = verdicts.get_mut(pos) else {
            continue;
        };
        *slot = Some(Verdict::Accepted {
            receipt: id,
            value: e.value,
            account: account_of(&e.target),
            replayed: false,
        });
    }
    #[allow(
        clippy::expect_used,
        reason = "plan decides every position but the fresh ones, set above"
    )]
    let verdicts = verdicts
        .into_iter()
        .map(|v| v.expect("every position decided"))
        .collect();
    Ok(verdicts)
}
