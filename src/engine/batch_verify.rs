//! Batched protocol verification of a chunk of deposits, with verdicts identical to the
//! reference verifier's.
//!
//! The reference [`Verifier`] walks each deposit in a fixed order and asks two
//! cryptographic questions along the way ([`CryptoChecks`]). The engine runs that same walk
//! three times per chunk:
//!
//! 1. **record** — answer every question "yes" and write it down (issuer signatures and
//!    RedPallas signatures, in walk order, per record), in parallel over records;
//! 2. **batch** — answer all recorded questions of the chunk at once: one BLS batch
//!    equation over all σ (per-keyset message MSMs over the serials' uncleared hash points
//!    Q₀ + Q₁, one cofactor clearing per keyset, one multi-pairing) and one RedPallas
//!    batch equation over all signatures. On failure the bisection runs over *records*,
//!    and inside a bad record only finds its first bad answer in walk order (a binary
//!    search over prefixes) — the reference stops there too, so later answers are never
//!    consulted. A forged record with hundreds of bad signatures therefore costs
//!    O(log records + log its signatures) sub-checks, not one bisection per bad signature
//!    ([`judge_by_record`]);
//! 3. **replay** — for records with a "no" among their answers, walk again answering from
//!    the batch results. The walk stops at the first "no" exactly where the reference would,
//!    so the verdict is the reference's verdict. Records whose answers are all "yes" keep
//!    their pass-1 outcome.

#![allow(
    clippy::indexing_slicing,
    reason = "record, group and subset indices are built from the chunk being verified"
)]

use std::collections::HashMap;

use microcash_kernels::bls::map::MapHint;
use microcash_kernels::bls::{
    self,
    batch::{BlsItem, MessageForm},
    G1Affine,
};
use microcash_kernels::pallas::{lincomb, redpallas};
use microcash_kernels::weights::random_weights;
use rand_core::CryptoRng;
use rayon::prelude::*;

use crate::protocol::coin::Serial;
use crate::protocol::credential::presentation::{self, SharedBases};
use crate::protocol::credential::{
    tag_base, CredentialKey, CredentialSecret, Presentation, PresentationContext, PresentationError,
};
use crate::protocol::deposit::Deposit;
use crate::protocol::hints::{HintedDeposit, SerialHints};
use crate::protocol::keys::{OwnerKey, RedSig};
use crate::protocol::keyset::{Keyset, KeysetId};
use crate::protocol::tags;
use crate::protocol::verify::{CryptoChecks, Rejection, VerifiedDeposit, Verifier};

/// A Pallas question: a RedPallas signature, or an allowance v2 presentation (checked by
/// the issuer, whose engine holds the credential secrets).
#[allow(
    clippy::large_enum_variant,
    reason = "signatures are the common case: boxing them would allocate per signature; the rare presentation is boxed"
)]
enum PallasQuestion {
    Signature(OwnerKey, Vec<u8>, RedSig),
    Presentation(Box<RecordedPresentation>),
}

/// A presentation with the public inputs of its statement.
struct RecordedPresentation {
    key_id: [u8; 32],
    presentation: Presentation,
    day: u64,
    receiving_key: OwnerKey,
    stealth_commitment: [u8; 32],
    binding: [u8; 32],
}

impl RecordedPresentation {
    fn context(&self) -> PresentationContext<'_> {
        PresentationContext {
            day: self.day,
            receiving_key: &self.receiving_key,
            stealth_commitment: &self.stealth_commitment,
            binding: &self.binding,
        }
    }
}

/// The questions one record's walk asked, in order.
#[derive(Default)]
struct Recorded {
    issuer: Vec<(KeysetId, G1Affine, Serial)>,
    owner: Vec<PallasQuestion>,
}

impl CryptoChecks for Recorded {
    fn issuer_signature(&mut self, keyset: &Keyset, sigma: &G1Affine, serial: &Serial) -> bool {
        self.issuer.push((keyset.id, *sigma, *serial));
        true
    }
    fn owner_signature(&mut self, key: &OwnerKey, msg: &[u8], sig: &RedSig) -> bool {
        self.owner
            .push(PallasQuestion::Signature(*key, msg.to_vec(), *sig));
        true
    }
    fn presentation(
        &mut self,
        key: &CredentialKey,
        secret: Option<&CredentialSecret>,
        presentation: &Presentation,
        ctx: &PresentationContext<'_>,
    ) -> Result<(), PresentationError> {
        // Without the secret (not an issuer's engine) only the public part can be checked,
        // and it is checked here, one at a time.
        if secret.is_none() {
            return presentation.verify_public(key, ctx);
        }
        self.owner.push(PallasQuestion::Presentation(Box::new(
            RecordedPresentation {
                key_id: key.id,
                presentation: presentation.clone(),
                day: ctx.day,
                receiving_key: *ctx.receiving_key,
                stealth_commitment: *ctx.stealth_commitment,
                binding: *ctx.binding,
            },
        )));
        Ok(())
    }
}

/// A Pallas question ready for its batch.
enum PallasItem {
    Signature(redpallas::Prepared),
    Presentation(Box<presentation::Prepared>),
}

/// Where a Pallas question sits in its kind's batch.
#[derive(Clone, Copy)]
enum PallasSlot {
    Signature(usize),
    Presentation(usize),
}

/// Answers from the batch, consumed in walk order.
struct Replay<'a> {
    issuer: &'a [bool],
    owner: &'a [bool],
    next_issuer: usize,
    next_owner: usize,
}

impl CryptoChecks for Replay<'_> {
    fn issuer_signature(&mut self, _: &Keyset, _: &G1Affine, _: &Serial) -> bool {
        let ok = self.issuer.get(self.next_issuer).copied();
        self.next_issuer += 1;
        // The replayed walk never asks more than the recorded one (it can only stop
        // earlier); a miss would be an engine bug, answered conservatively.
        debug_assert!(ok.is_some(), "replay asked an unrecorded issuer question");
        ok.unwrap_or(false)
    }
    fn owner_signature(&mut self, _: &OwnerKey, _: &[u8], _: &RedSig) -> bool {
        let ok = self.owner.get(self.next_owner).copied();
        self.next_owner += 1;
        debug_assert!(ok.is_some(), "replay asked an unrecorded owner question");
        ok.unwrap_or(false)
    }
    fn presentation(
        &mut self,
        key: &CredentialKey,
        secret: Option<&CredentialSecret>,
        presentation: &Presentation,
        ctx: &PresentationContext<'_>,
    ) -> Result<(), PresentationError> {
        if secret.is_none() {
            return presentation.verify_public(key, ctx);
        }
        let ok = self.owner.get(self.next_owner).copied();
        self.next_owner += 1;
        debug_assert!(ok.is_some(), "replay asked an unrecorded presentation");
        if ok.unwrap_or(false) {
            Ok(())
        } else {
            // The batch says only "no"; the reference names the reason, and a refused
            // presentation is rare enough to ask it.
            match secret {
                Some(secret) => match presentation.verify(key, secret, ctx) {
                    Ok(()) => Err(PresentationError::BadProof),
                    Err(e) => Err(e),
                },
                None => Err(PresentationError::BadProof),
            }
        }
    }
}

/// A deposit to verify, with the SSWU hints of its serials when its record carried them
/// (they change the cost of hashing serials to G1, never a verdict).
#[derive(Clone, Copy, Debug)]
pub struct ChunkDeposit<'a> {
    /// The deposit.
    pub deposit: &'a Deposit,
    /// Its serial hints.
    pub serial_hints: Option<&'a SerialHints>,
}

impl<'a> From<&'a Deposit> for ChunkDeposit<'a> {
    fn from(deposit: &'a Deposit) -> ChunkDeposit<'a> {
        ChunkDeposit {
            deposit,
            serial_hints: None,
        }
    }
}

impl<'a> From<&'a HintedDeposit> for ChunkDeposit<'a> {
    fn from(d: &'a HintedDeposit) -> ChunkDeposit<'a> {
        ChunkDeposit {
            deposit: &d.deposit,
            serial_hints: d.serial_hints.as_ref(),
        }
    }
}

/// Where a chunk's verification time went, in seconds of wall time per stage. With one
/// thread the stages run one after another and add up to the whole; with more, the BLS
/// and Pallas checks overlap (`rayon::join`) and each figure is that side's own time.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StageTimes {
    /// Pass 1: the reference walk recording its questions (decoding checks, hashing of
    /// links and bindings, policy).
    pub walk: f64,
    /// RFC 9380 hash-to-G1 of every serial, up to Q₀ + Q₁ (the cofactor is cleared once
    /// per key in the BLS check), with the square roots from hints where records have them.
    pub hash_to_g1: f64,
    /// The issuer-signature batch: MSMs and pairings, bisection included.
    pub bls_check: f64,
    /// RedPallas preparation: point decompression and challenge hashes.
    pub pallas_prepare: f64,
    /// The owner-signature batch MSM, bisection included.
    pub pallas_check: f64,
    /// Pass 3: collecting verdicts, replaying the walk of records with a "no".
    pub replay: f64,
}

impl StageTimes {
    /// Every stage combined with `o`'s by `f`.
    fn zip(self, o: StageTimes, f: impl Fn(f64, f64) -> f64) -> StageTimes {
        StageTimes {
            walk: f(self.walk, o.walk),
            hash_to_g1: f(self.hash_to_g1, o.hash_to_g1),
            bls_check: f(self.bls_check, o.bls_check),
            pallas_prepare: f(self.pallas_prepare, o.pallas_prepare),
            pallas_check: f(self.pallas_check, o.pallas_check),
            replay: f(self.replay, o.replay),
        }
    }

    /// Every stage times `k` (seconds to µs per coin, say).
    pub fn scaled(self, k: f64) -> StageTimes {
        self.zip(self, |a, _| a * k)
    }
}

impl std::ops::AddAssign for StageTimes {
    fn add_assign(&mut self, o: StageTimes) {
        *self = self.zip(o, |a, b| a + b);
    }
}

/// Verifies `deposits` (one chunk) at `now`; weights come from `rng`, which the caller seeds
/// from the OS for every batch.
pub fn verify_chunk<R: CryptoRng + ?Sized>(
    verifier: &Verifier<'_>,
    keysets: &crate::protocol::keyset::KeysetList,
    deposits: &[ChunkDeposit<'_>],
    now: u64,
    rng: &mut R,
) -> Vec<Result<VerifiedDeposit, Rejection>> {
    verify_chunk_timed(verifier, keysets, deposits, now, rng).0
}

/// [`verify_chunk`], also saying where the time went (for `microcash bench`).
pub fn verify_chunk_timed<R: CryptoRng + ?Sized>(
    verifier: &Verifier<'_>,
    keysets: &crate::protocol::keyset::KeysetList,
    deposits: &[ChunkDeposit<'_>],
    now: u64,
    rng: &mut R,
) -> (Vec<Result<VerifiedDeposit, Rejection>>, StageTimes) {
    let mut times = StageTimes::default();
    let clock = std::time::Instant::now();
    // Pass 1: record.
    let recorded: Vec<(Recorded, Result<VerifiedDeposit, Rejection>)> = deposits
        .par_iter()
        .map(|d| {
            let mut rec = Recorded::default();
            let outcome = verifier.verify_deposit_with(&mut rec, d.deposit, now);
            (rec, outcome)
        })
        .collect();

    // Pass 2: batch. Flatten the questions, remembering whose they are.
    let mut key_index: HashMap<KeysetId, u32> = HashMap::new();
    let mut keys: Vec<bls::PublicKey> = Vec::new();
    let mut issuer_refs: Vec<(KeysetId, G1Affine, [u8; 32])> = Vec::new();
    // The walk asks about issuer signatures in the order their hints are written; were it
    // ever not so, a misplaced hint would only fail its check and cost its square roots.
    let mut hint_slots: Vec<Option<&MapHint>> = Vec::new();
    let mut owner_refs: Vec<&PallasQuestion> = Vec::new();
    for ((rec, _), d) in recorded.iter().zip(deposits) {
        for (j, (id, sigma, serial)) in rec.issuer.iter().enumerate() {
            issuer_refs.push((*id, *sigma, serial.0));
            hint_slots.push(d.serial_hints.and_then(|h| h.get(j)));
        }
        for q in &rec.owner {
            owner_refs.push(q);
        }
    }
    for (id, _, _) in &issuer_refs {
        if !key_index.contains_key(id) {
            #[allow(clippy::expect_used, reason = "the walk only asks about known keysets")]
            let ks = keysets
                .get(id)
                .expect("the walk only asks about known keysets");
            key_index.insert(*id, keys.len() as u32);
            keys.push(ks.public_key);
        }
    }
    let serials: Vec<[u8; 32]> = issuer_refs.iter().map(|(_, _, s)| *s).collect();
    times.walk = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    let messages = bls::batch::hash_to_curve_uncleared_many(&serials, &hint_slots, tags::H1_DST);
    times.hash_to_g1 = clock.elapsed().as_secs_f64();
    let bls_items: Vec<BlsItem> = issuer_refs
        .iter()
        .zip(messages)
        .map(|((id, sigma, _), message)| BlsItem {
            key: key_index[id],
            signature: *sigma,
            message,
        })
        .collect();
    let bls_weights = random_weights(rng, bls_items.len());
    let pallas_weights_all = random_weights(rng, owner_refs.len());
    // Presentations take one weight per equation (4 + their slots), drawn here in walk order.
    let mut presentation_weights: Vec<Option<Vec<pasta_curves::pallas::Scalar>>> =
        Vec::with_capacity(owner_refs.len());
    for q in &owner_refs {
        presentation_weights.push(match q {
            PallasQuestion::Presentation(p) => Some(
                random_weights(rng, 4 + p.presentation.slots.len())
                    .iter()
                    .map(redpallas::weight_scalar)
                    .collect(),
            ),
            PallasQuestion::Signature(..) => None,
        });
    }

    let mut issuer_groups = Vec::with_capacity(recorded.len());
    let mut owner_groups = Vec::with_capacity(recorded.len());
    let (mut ai, mut ao) = (0usize, 0usize);
    for (rec, _) in &recorded {
        issuer_groups.push(ai..ai + rec.issuer.len());
        owner_groups.push(ao..ao + rec.owner.len());
        ai += rec.issuer.len();
        ao += rec.owner.len();
    }
    let ((issuer_ok, bls_s), (owner_ok, pallas_prepare_s, pallas_check_s)) = rayon::join(
        || {
            let clock = std::time::Instant::now();
            let ok = judge_by_record(&issuer_groups, &|subset: &[usize]| {
                bls::batch::verify_subset(
                    &keys,
                    &bls_items,
                    &bls_weights,
                    MessageForm::Uncleared,
                    subset,
                )
            });
            (ok, clock.elapsed().as_secs_f64())
        },
        || {
            let clock = std::time::Instant::now();
            let prepared: Vec<Option<PallasItem>> = owner_refs
                .par_iter()
                .map(|q| match q {
                    PallasQuestion::Signature(key, msg, sig) => redpallas::Prepared::with_key(
                        *key.affine(),
                        &key.to_bytes(),
                        sig.bytes(),
                        sig.r_point().copied(),
                        msg,
                    )
                    .map(PallasItem::Signature),
                    PallasQuestion::Presentation(p) => verifier
                        .credential_keys()
                        .and_then(|keys| keys.get(&p.key_id))
                        .and_then(|(key, _)| p.presentation.prepare(key, &p.context()).ok())
                        .map(|prepared| PallasItem::Presentation(Box::new(prepared))),
                })
                .collect();
            // An undecodable signature or presentation is a "no" without any arithmetic;
            // every other item takes part in a batch equation with its own secret weights.
            // Signatures and presentations are judged together (one pass of bisection over
            // records) in one equation: the presentations' terms join the signatures'
            // multi-scalar multiplication.
            let mut position = vec![None; prepared.len()];
            let mut items = Vec::with_capacity(prepared.len());
            let mut weights = Vec::with_capacity(prepared.len());
            let mut shared = SharedBases::default();
            let mut combinations = Vec::new();
            let mut tag_bases: HashMap<([u8; 32], u64), pasta_curves::pallas::Affine> =
                HashMap::new();
            for (i, p) in prepared.into_iter().enumerate() {
                match p {
                    Some(PallasItem::Signature(p)) => {
                        position[i] = Some(PallasSlot::Signature(items.len()));
                        items.push(p);
                        weights.push(pallas_weights_all[i]);
                    }
                    Some(PallasItem::Presentation(prep)) => {
                        let PallasQuestion::Presentation(rp) = owner_refs[i] else {
                            continue;
                        };
                        let Some((key, Some(secret))) = verifier
                            .credential_keys()
                            .and_then(|keys| keys.get(&rp.key_id))
                        else {
                            continue;
                        };
                        let h_d = *tag_bases
                            .entry((rp.key_id, rp.day))
                            .or_insert_with(|| tag_base(&rp.key_id, rp.day));
                        let Some(scalars) = &presentation_weights[i] else {
                            continue;
                        };
                        if let Some(c) = prep.combination(key, secret, h_d, scalars, &mut shared) {
                            position[i] = Some(PallasSlot::Presentation(combinations.len()));
                            combinations.push(c);
                        }
                    }
                    None => {}
                }
            }
            let prepare_s = clock.elapsed().as_secs_f64();
            let clock = std::time::Instant::now();
            let ok = judge_by_record(&owner_groups, &|subset: &[usize]| {
                let (mut sigs, mut pres) = (Vec::new(), Vec::new());
                for &i in subset {
                    match position[i] {
                        Some(PallasSlot::Signature(k)) => sigs.push(k),
                        Some(PallasSlot::Presentation(k)) => pres.push(k),
                        None => return false,
                    }
                }
                match (sigs.is_empty(), pres.is_empty()) {
                    (_, true) => redpallas::verify_subset(&items, &weights, &sigs),
                    (true, false) => lincomb::check_subset(&combinations, shared.points(), &pres),
                    // One equation: the presentations' terms join the signatures' MSM.
                    (false, false) => redpallas::verify_subset_with(
                        &items,
                        &weights,
                        &sigs,
                        &combinations,
                        &pres,
                        shared.points(),
                    ),
                }
            });
            (ok, prepare_s, clock.elapsed().as_secs_f64())
        },
    );
    times.bls_check = bls_s;
    times.pallas_prepare = pallas_prepare_s;
    times.pallas_check = pallas_check_s;
    let clock = std::time::Instant::now();

    // Pass 3: replay where any answer was "no".
    let starts: Vec<(usize, usize)> = issuer_groups
        .iter()
        .zip(&owner_groups)
        .map(|(i, o)| (i.start, o.start))
        .collect();
    let verdicts = recorded
        .into_par_iter()
        .zip(starts)
        .zip(deposits.par_iter())
        .map(|(((rec, outcome), (si, so)), d)| {
            let issuer = &issuer_ok[si..si + rec.issuer.len()];
            let owner = &owner_ok[so..so + rec.owner.len()];
            if issuer.iter().all(|&b| b) && owner.iter().all(|&b| b) {
                return outcome;
            }
            let mut replay = Replay {
                issuer,
                owner,
                next_issuer: 0,
                next_owner: 0,
            };
            verifier.verify_deposit_with(&mut replay, d.deposit, now)
        })
        .collect();
    times.replay = clock.elapsed().as_secs_f64();
    (verdicts, times)
}

/// The answers of a chunk's questions of one kind, grouped by record (`groups[r]` is record
/// r's range, in walk order), given a batch `check` over any subset. A record whose
/// questions all pass is all "yes". In a record that fails, the first failing question in
/// walk order and every later one are "no": the reference walk stops at its first "no", so
/// the later answers are never consulted, and an attacker's record full of bad signatures
/// costs a binary search, not a bisection per signature.
fn judge_by_record(
    groups: &[std::ops::Range<usize>],
    check: &(dyn Fn(&[usize]) -> bool + Sync),
) -> Vec<bool> {
    let total = groups.last().map_or(0, |g| g.end);
    let mut ok = vec![true; total];
    let records: Vec<usize> = (0..groups.len())
        .filter(|&r| !groups[r].is_empty())
        .collect();
    let items_of =
        |rs: &[usize]| -> Vec<usize> { rs.iter().flat_map(|&r| groups[r].clone()).collect() };
    if records.is_empty() || check(&items_of(&records)) {
        return ok;
    }
    let bad_records =
        microcash_kernels::bisect::find_invalid(&records, &|rs: &[usize]| check(&items_of(rs)));
    let firsts: Vec<usize> = bad_records
        .par_iter()
        .map(|&r| {
            let g = groups[r].clone();
            let prefix = |k: usize| -> Vec<usize> { (g.start..g.start + k).collect() };
            // The whole record fails; find the shortest failing prefix.
            let (mut lo, mut hi) = (1usize, g.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if check(&prefix(mid)) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            g.start + lo - 1
        })
        .collect();
    for (&r, first) in bad_records.iter().zip(firsts) {
        for flag in &mut ok[first..groups[r].end] {
            *flag = false;
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::judge_by_record;

    #[test]
    fn a_bad_record_is_cut_at_its_first_bad_answer_and_good_records_stay_good() {
        // Records: [0..3) good, [3..8) bad at 5 and 7, [8..8) empty, [8..12) bad at 8.
        let groups = vec![0..3, 3..8, 8..8, 8..12];
        let bad = [5usize, 7, 8];
        let checks = std::sync::atomic::AtomicUsize::new(0);
        let check = |s: &[usize]| {
            checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            s.iter().all(|i| !bad.contains(i))
        };
        let ok = judge_by_record(&groups, &check);
        let want: Vec<bool> = (0..12)
            .map(|i| !(5..8).contains(&i) && !(8..12).contains(&i))
            .collect();
        assert_eq!(ok, want);
        // A record of 1000 bad answers costs a handful of checks, not a thousand.
        let one_record = std::iter::once(0..1000).collect::<Vec<_>>();
        let checks = std::sync::atomic::AtomicUsize::new(0);
        let ok = judge_by_record(&one_record, &|s: &[usize]| {
            checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            s.is_empty()
        });
        assert!(ok.iter().all(|b| !b));
        assert!(checks.into_inner() <= 12);
        let all_good = judge_by_record(&[0..4, 4..9], &|_: &[usize]| true);
        assert!(all_good.iter().all(|&b| b));
    }
}
