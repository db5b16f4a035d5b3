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
//!    equation over all σ (per-keyset message MSMs, one multi-pairing) and one RedPallas
//!    batch equation over all signatures, each bisected on failure to name the bad items;
//! 3. **replay** — for records with a "no" among their answers, walk again answering from
//!    the batch results. The walk stops at the first "no" exactly where the reference would,
//!    so the verdict is the reference's verdict. Records whose answers are all "yes" keep
//!    their pass-1 outcome.

use std::collections::HashMap;

use microcash_kernels::bls::{self, batch::BlsItem, G1Affine};
use microcash_kernels::pallas::redpallas;
use microcash_kernels::weights::random_weights;
use rand_core::CryptoRng;
use rayon::prelude::*;

use crate::protocol::coin::Serial;
use crate::protocol::deposit::Deposit;
use crate::protocol::keys::{OwnerKey, RedSig};
use crate::protocol::keyset::{Keyset, KeysetId};
use crate::protocol::tags;
use crate::protocol::verify::{CryptoChecks, Rejection, VerifiedDeposit, Verifier};

/// The questions one record's walk asked, in order.
#[derive(Default)]
struct Recorded {
    issuer: Vec<(KeysetId, G1Affine, Serial)>,
    owner: Vec<(OwnerKey, Vec<u8>, RedSig)>,
}

impl CryptoChecks for Recorded {
    fn issuer_signature(&mut self, keyset: &Keyset, sigma: &G1Affine, serial: &Serial) -> bool {
        self.issuer.push((keyset.id, *sigma, *serial));
        true
    }
    fn owner_signature(&mut self, key: &OwnerKey, msg: &[u8], sig: &RedSig) -> bool {
        self.owner.push((*key, msg.to_vec(), *sig));
        true
    }
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
}

/// Verifies `deposits` (one chunk) at `now`; weights come from `rng`, which the caller seeds
/// from the OS for every batch.
pub fn verify_chunk<R: CryptoRng + ?Sized>(
    verifier: &Verifier<'_>,
    keysets: &crate::protocol::keyset::KeysetList,
    deposits: &[&Deposit],
    now: u64,
    rng: &mut R,
) -> Vec<Result<VerifiedDeposit, Rejection>> {
    // Pass 1: record.
    let recorded: Vec<(Recorded, Result<VerifiedDeposit, Rejection>)> = deposits
        .par_iter()
        .map(|d| {
            let mut rec = Recorded::default();
            let outcome = verifier.verify_deposit_with(&mut rec, d, now);
            (rec, outcome)
        })
        .collect();

    // Pass 2: batch. Flatten the questions, remembering whose they are.
    let mut key_index: HashMap<KeysetId, u32> = HashMap::new();
    let mut keys: Vec<bls::PublicKey> = Vec::new();
    let mut issuer_refs: Vec<(KeysetId, G1Affine, [u8; 32])> = Vec::new();
    let mut owner_refs: Vec<(&OwnerKey, &[u8], &RedSig)> = Vec::new();
    for (rec, _) in &recorded {
        for (id, sigma, serial) in &rec.issuer {
            issuer_refs.push((*id, *sigma, serial.0));
        }
        for (key, msg, sig) in &rec.owner {
            owner_refs.push((key, msg, sig));
        }
    }
    for (id, _, _) in &issuer_refs {
        if !key_index.contains_key(id) {
            let ks = keysets
                .get(id)
                .expect("the walk only asks about known keysets");
            key_index.insert(*id, keys.len() as u32);
            keys.push(ks.public_key);
        }
    }
    let serials: Vec<[u8; 32]> = issuer_refs.iter().map(|(_, _, s)| *s).collect();
    let messages = bls::batch::hash_to_g1_many(&serials, tags::H1_DST);
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

    let (bls_bad, owner_ok) = rayon::join(
        || bls::batch::verify(&keys, &bls_items, &bls_weights),
        || {
            let prepared: Vec<Option<redpallas::Prepared>> = owner_refs
                .par_iter()
                .map(|(key, msg, sig)| {
                    redpallas::Prepared::with_key(
                        *key.affine(),
                        &key.to_bytes(),
                        sig.bytes(),
                        sig.r_point().copied(),
                        msg,
                    )
                })
                .collect();
            let positions: Vec<usize> = (0..prepared.len())
                .filter(|&i| prepared[i].is_some())
                .collect();
            let items: Vec<redpallas::Prepared> = positions
                .iter()
                .map(|&i| prepared[i].expect("filtered"))
                .collect();
            let weights: Vec<_> = positions.iter().map(|&i| pallas_weights_all[i]).collect();
            let bad = redpallas::verify(&items, &weights);
            let mut ok: Vec<bool> = prepared.iter().map(|p| p.is_some()).collect();
            for j in bad {
                ok[positions[j]] = false;
            }
            ok
        },
    );
    let mut issuer_ok = vec![true; bls_items.len()];
    for i in bls_bad {
        issuer_ok[i] = false;
    }

    // Pass 3: replay where any answer was "no".
    let mut starts = Vec::with_capacity(recorded.len());
    let (mut ai, mut ao) = (0usize, 0usize);
    for (rec, _) in &recorded {
        starts.push((ai, ao));
        ai += rec.issuer.len();
        ao += rec.owner.len();
    }
    recorded
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
            verifier.verify_deposit_with(&mut replay, d, now)
        })
        .collect()
}
