//! A partition owner's deterministic core, free of network and clocks: which keys are its
//! own, its vote on a chunk, the chunk's verdicts from every partition's votes, and the
//! writes it applies to its spent set. Every owner runs `decide` on the same chunk and the
//! same votes, so all of them (and settlement) reach the same verdicts; each applies only
//! its own keys.

use std::collections::{HashMap, HashSet};

use crate::engine::settle::{self, account_of, Accounts, BatchMemory, SpentView};
use crate::engine::{RecordVerdict, Verdict};
use crate::spentset::{Disk, ReceiptEntry, SpentSet, SpentSetError};
use crate::store::state::StoreError;

use super::messages::{TypedChunk, Vote};
use super::ClusterError;

/// The partition that owns `serial`: its first 8 bytes, big-endian, scaled onto
/// `partitions` contiguous ranges (serials are hash outputs, so ranges are even; a range
/// split later moves one contiguous slice of keys).
pub fn partition_of(serial: &[u8; 32], partitions: u32) -> u32 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(serial.get(..8).unwrap_or(&[0u8; 8]));
    ((u128::from(u64::from_be_bytes(prefix)) * u128::from(partitions.max(1))) >> 64) as u32
}

/// The cluster-wide receipt id of record `record` of the batch with content key `batch`:
/// 63 bits of BLAKE2b (personalised). Stable whichever owner or replay computes it (a
/// single machine's receipt ids are journal offsets, which no cluster shares).
pub fn receipt_id(batch: &[u8; 16], record: u64) -> u64 {
    let h = blake2b_simd::Params::new()
        .hash_length(8)
        .personal(b"mc1/cluster-rcpt")
        .to_state()
        .update(batch)
        .update(&record.to_le_bytes())
        .finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(h.as_bytes());
    u64::from_le_bytes(b) & (i64::MAX as u64)
}

/// The keys of the chunk's verified deposits that fall in `partition`, each once, in
/// chunk order.
fn own_keys(chunk: &TypedChunk, partition: u32, partitions: u32) -> Vec<(u32, [u8; 32])> {
    let mut seen = HashSet::new();
    chunk
        .records
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok())
        .flat_map(|d| d.keys())
        .filter(|(_, s)| partition_of(s, partitions) == partition)
        .filter(|k| seen.insert(*k))
        .collect()
}

/// `partition`'s vote on `chunk`: which of its keys its spent set already holds.
pub fn vote(
    spent: &impl SpentView,
    chunk: &TypedChunk,
    partition: u32,
    partitions: u32,
) -> Result<Vote, SpentSetError> {
    let mut seen = Vec::new();
    for (epoch, serial) in own_keys(chunk, partition, partitions) {
        if let Some(id) = spent.lookup(epoch, &serial) {
            seen.push((epoch, serial, spent.receipt(id)?));
        }
    }
    Ok(Vote {
        batch_seq: chunk.batch_seq,
        chunk: chunk.chunk,
        partition,
        partitions,
        seen,
    })
}

/// The union of a chunk's votes, read as a spent set: receipt ids are positions in
/// `entries`, relabelled to cluster receipt ids once the verdicts are decided.
struct VoteView {
    index: HashMap<(u32, [u8; 32]), u64>,
    entries: Vec<ReceiptEntry>,
}

impl SpentView for VoteView {
    fn lookup(&self, epoch: u32, serial: &[u8; 32]) -> Option<u64> {
        self.index.get(&(epoch, *serial)).copied()
    }
    fn receipt(&self, id: u64) -> Result<ReceiptEntry, SpentSetError> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.entries.get(i))
            .cloned()
            .ok_or_else(|| SpentSetError::Conflict {
                serial: String::new(),
                epoch: 0,
                receipt: Some(id),
            })
    }
}

/// Account facts as the worker resolved them into the chunk.
struct ChunkAccounts<'a>(&'a HashMap<String, Option<bool>>);

impl Accounts for ChunkAccounts<'_> {
    fn merchant(&self, name: &str) -> Result<Option<bool>, StoreError> {
        Ok(self.0.get(name).copied().flatten())
    }
}

/// A chunk decided: every record's verdict, and the receipt entries of its fresh
/// acceptances (each owner applies the keys of its range).
#[derive(Debug)]
pub struct Decision {
    /// Verdicts in record order.
    pub verdicts: Vec<RecordVerdict>,
    /// Each record's coin serial, when it decoded (which partition is its home).
    pub serials: Vec<Option<[u8; 32]>>,
    /// Fresh acceptances.
    pub fresh: Vec<ReceiptEntry>,
}

/// Decides `chunk` of the batch with content key `batch_key` from every partition's vote,
/// with the engine's own settlement rules (`settle::plan`): the verdicts a single machine
/// gives when its spent set holds exactly what the votes show.
///
/// Refuses (never guesses) when the votes are not one per partition for this chunk, or a
/// vote shows a key outside its voter's range.
pub fn decide(
    chunk: TypedChunk,
    votes: &[Vote],
    batch_key: [u8; 16],
    partitions: u32,
) -> Result<Decision, ClusterError> {
    let mut view = VoteView {
        index: HashMap::new(),
        entries: Vec::new(),
    };
    let mut voters = HashSet::new();
    for v in votes {
        let bad = |reason: &str| ClusterError::Vote {
            batch_seq: chunk.batch_seq,
            chunk: chunk.chunk,
            partition: v.partition,
            reason: reason.to_owned(),
        };
        if v.batch_seq != chunk.batch_seq || v.chunk != chunk.chunk {
            return Err(bad("vote for another chunk"));
        }
        if v.partitions != partitions || v.partition >= partitions {
            return Err(bad("voter configured for another partition count"));
        }
        if !voters.insert(v.partition) {
            return Err(bad("two votes from one partition"));
        }
        for (epoch, serial, receipt) in &v.seen {
            if partition_of(serial, partitions) != v.partition {
                return Err(bad("a key outside the voter's range"));
            }
            view.index
                .insert((*epoch, *serial), view.entries.len() as u64);
            view.entries.push(receipt.clone());
        }
    }
    if voters.len() as u32 != partitions {
        return Err(ClusterError::Vote {
            batch_seq: chunk.batch_seq,
            chunk: chunk.chunk,
            partition: partitions,
            reason: format!("{} votes for {partitions} partitions", voters.len()),
        });
    }
    let TypedChunk {
        records,
        accounts,
        now,
        ..
    } = chunk;
    let (origins, items): (Vec<_>, Vec<_>) = records
        .into_iter()
        .map(|r| ((r.index, r.offset, r.serial), (r.index, r.outcome)))
        .unzip();
    let mut memory = BatchMemory::new(batch_key);
    let plan = settle::plan(
        &view,
        &ChunkAccounts(&accounts),
        &mut memory,
        items,
        false,
        now,
    )?;
    let (mut verdicts, fresh) = plan.into_parts();
    let relabel = |id: u64| -> u64 {
        usize::try_from(id)
            .ok()
            .and_then(|i| view.entries.get(i))
            .map_or(id, |e| receipt_id(&e.batch, e.record))
    };
    for v in verdicts.iter_mut().flatten() {
        match v {
            Verdict::Accepted { receipt, .. } => *receipt = relabel(*receipt),
            Verdict::DoubleSpent { evidence } => {
                evidence.first_receipt = relabel(evidence.first_receipt)
            }
            _ => {}
        }
    }
    for (pos, e) in &fresh {
        if let Some(slot) = verdicts.get_mut(*pos) {
            *slot = Some(Verdict::Accepted {
                receipt: receipt_id(&e.batch, e.record),
                value: e.value,
                account: account_of(&e.target),
                replayed: false,
            });
        }
    }
    let serials = origins.iter().map(|(_, _, s)| s.map(|s| s.0)).collect();
    let verdicts = origins
        .into_iter()
        .zip(verdicts)
        .map(|((record, offset, serial), verdict)| {
            let verdict = verdict.ok_or(ClusterError::Undecided { record })?;
            Ok(RecordVerdict {
                record,
                offset,
                serial: serial.map(|s| s.to_string()),
                code: verdict.code(),
                verdict,
            })
        })
        .collect::<Result<Vec<_>, ClusterError>>()?;
    Ok(Decision {
        verdicts,
        serials,
        fresh: fresh.into_iter().map(|(_, e)| e).collect(),
    })
}

/// The entries `partition` records for a decided chunk: each fresh deposit's coin entry
/// (with the allowance serials of the range) where the coin serial is in range, else one
/// value-less entry holding the deposit's allowance serials of the range (so they are
/// spent here, under the same batch and record). Keys the set already holds are left out:
/// a chunk re-applied after a crash writes nothing twice.
pub fn own_writes<D: Disk>(
    spent: &SpentSet<D>,
    fresh: &[ReceiptEntry],
    partition: u32,
    partitions: u32,
) -> Vec<ReceiptEntry> {
    let mine = |s: &[u8; 32], e: u32| {
        partition_of(s, partitions) == partition && spent.lookup(e, s).is_none()
    };
    let mut out = Vec::new();
    for e in fresh {
        let mut allowances: Vec<([u8; 32], u32)> = e
            .allowances
            .iter()
            .filter(|(s, ep)| mine(s, *ep))
            .copied()
            .collect();
        if mine(&e.serial, e.epoch) {
            out.push(ReceiptEntry {
                allowances,
                ..e.clone()
            });
        } else if !allowances.is_empty() {
            let (serial, epoch) = allowances.remove(0);
            out.push(ReceiptEntry {
                serial,
                epoch,
                value: 0,
                allowances,
                owner_keys: Vec::new(),
                chain_digests: Vec::new(),
                ..e.clone()
            });
        }
    }
    out
}

/// The records whose verdicts and credits `partition` writes to settlement: those whose
/// coin serial is in its range; a record without a serial (it did not decode) goes to
/// partition `record mod partitions`. Every record has exactly one home.
pub fn is_home(record: u64, serial: Option<&[u8; 32]>, partition: u32, partitions: u32) -> bool {
    match serial {
        Some(s) => partition_of(s, partitions) == partition,
        None => record % u64::from(partitions.max(1)) == u64::from(partition),
    }
}
