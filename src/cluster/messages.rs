//! What the cluster's streams carry, as postcard (compact serde binary: the bytes per coin
//! on three-replica streams are the cluster's main network cost).
//!
//! Every decoder here takes bytes from the network: a message that does not decode, or
//! decodes to something out of bounds, is an error naming the subject, never a panic and
//! never a made-up verdict.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::engine::batch_file::RawRecord;
use crate::engine::settle::Settleable;
use crate::engine::Verdict;
use crate::protocol::coin::Serial;
use crate::protocol::deposit::CreditTarget;
use crate::protocol::encoding::{Decode, Encode};
use crate::spentset::ReceiptEntry;

use super::ClusterError;

/// A batch entering the cluster (subject `mc.batch.<content key>` on MC_SEQ), published
/// after all its chunks are in the work queue, at most once per content. Its stream
/// sequence is the batch's number (`batch_seq`); its stream timestamp is the clearing time
/// every worker checks keyset windows against, so all of them judge the batch at one
/// instant. An uploader that dies before it leaves no announce: nothing waits for the
/// batch, and its chunks expire from the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// BLAKE2b content key of the whole file (receipts carry it: `duplicate_in_batch`).
    pub batch_key: [u8; 16],
    /// The header's batch id.
    pub batch_id: [u8; 16],
    /// Records the uploader read.
    pub records: u64,
    /// Chunks it cut them into (MC_WORK messages, indices 0 … chunks-1).
    pub chunks: u32,
    /// Records per chunk it cut by (chunks of another cut — an earlier, abandoned upload
    /// with another `--chunk` — are not this batch's).
    pub chunk_records: u32,
}

/// A chunk of raw records to verify (MC_WORK, subject
/// `mc.work.<content key>.<records per chunk>.<chunk>`).
/// The worker takes the batch's number and clock from its announce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkChunk {
    /// The batch's content key.
    pub batch_key: [u8; 16],
    /// Chunk index within the batch.
    pub chunk: u32,
    /// Records per chunk of this cut.
    pub chunk_records: u32,
    /// The records, as the uploader's reader returned them.
    pub records: Vec<RawRecord>,
}

/// What a worker found a verified deposit to be: every fact settlement reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositFacts {
    /// Coin serial.
    pub serial: [u8; 32],
    /// Coin key epoch.
    pub epoch: u32,
    /// Value.
    pub value: u64,
    /// Credit target, in the deposit's own encoding (decoded, and so validated, as a
    /// deposit's is).
    pub target: Vec<u8>,
    /// Merchant-only class.
    pub merchant_only: bool,
    /// Allowance serials with their epochs.
    pub allowances: Vec<([u8; 32], u32)>,
    /// Owner keys X, P₁ … Pₙ.
    pub owner_keys: Vec<[u8; 32]>,
    /// Chain digests.
    pub chain_digests: Vec<[u8; 32]>,
    /// Deposit digest.
    pub digest: [u8; 32],
}

/// One verified record: where it is, its serial, and the facts or the verifier's refusal
/// (the verdict as JSON: postcard cannot carry the verdict's tagged form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedRecordWire {
    /// Record number.
    pub index: u64,
    /// Byte offset.
    pub offset: u64,
    /// Coin serial when the record decoded.
    pub serial: Option<[u8; 32]>,
    /// Facts, or the refusal verdict as JSON.
    pub outcome: Result<DepositFacts, String>,
}

/// A verified chunk (MC_SEQ, subject `mc.seq.<batch_seq>.<chunk>`), with the account
/// facts the worker resolved for its targets so every owner decides from the same ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedChunk {
    /// Batch number.
    pub batch_seq: u64,
    /// Chunk index.
    pub chunk: u32,
    /// Clearing time.
    pub now: u64,
    /// The records, in order.
    pub records: Vec<VerifiedRecordWire>,
    /// Every account the chunk's deposits credit: `Some(merchant)` if it exists.
    pub accounts: Vec<(String, Option<bool>)>,
}

/// One partition's vote on one chunk (MC_VOTES, subject `mc.vote.<batch_seq>.<chunk>.<P>`):
/// which of the chunk's keys in its range its spent set already holds, with the receipt
/// that holds each. A key of the range not listed is fresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// Batch number.
    pub batch_seq: u64,
    /// Chunk index.
    pub chunk: u32,
    /// Voting partition.
    pub partition: u32,
    /// Partitions the cluster has (a vote from a differently configured owner is refused).
    pub partitions: u32,
    /// Keys already spent: (epoch, serial, receipt holding it).
    pub seen: Vec<(u32, [u8; 32], ReceiptEntry)>,
}

/// Encodes a message.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ClusterError> {
    postcard::to_allocvec(msg).map_err(|e| ClusterError::Message {
        subject: String::new(),
        reason: format!("encode: {e}"),
    })
}

/// Decodes a message read from `subject`.
pub fn decode<'a, T: Deserialize<'a>>(subject: &str, bytes: &'a [u8]) -> Result<T, ClusterError> {
    postcard::from_bytes(bytes).map_err(|e| ClusterError::Message {
        subject: subject.to_owned(),
        reason: e.to_string(),
    })
}

/// A verified deposit as an owner settles it: [`DepositFacts`] checked and typed.
#[derive(Clone, Debug)]
pub struct ClusterDeposit {
    serial: Serial,
    epoch: u32,
    value: u64,
    target: CreditTarget,
    merchant_only: bool,
    allowances: Vec<(Serial, u32)>,
    owner_keys: Vec<[u8; 32]>,
    chain_digests: Vec<[u8; 32]>,
    digest: [u8; 32],
}

impl ClusterDeposit {
    /// Types `facts`, refusing what no verifier would have produced (an account name the
    /// protocol does not allow, more owner keys or allowances than a receipt holds).
    pub fn from_facts(subject: &str, facts: DepositFacts) -> Result<ClusterDeposit, ClusterError> {
        let bad = |reason: String| ClusterError::Message {
            subject: subject.to_owned(),
            reason,
        };
        let target = CreditTarget::from_bytes(&facts.target)
            .map_err(|e| bad(format!("credit target: {e}")))?;
        if facts.owner_keys.len() > crate::spentset::receipt::OWNER_KEYS_MAX
            || facts.chain_digests.len() > crate::spentset::receipt::OWNER_KEYS_MAX
            || facts.allowances.len() > crate::spentset::receipt::ALLOWANCES_PER_ENTRY_MAX
        {
            return Err(bad("deposit facts beyond a receipt's bounds".into()));
        }
        Ok(ClusterDeposit {
            serial: Serial(facts.serial),
            epoch: facts.epoch,
            value: facts.value,
            target,
            merchant_only: facts.merchant_only,
            allowances: facts
                .allowances
                .into_iter()
                .map(|(s, e)| (Serial(s), e))
                .collect(),
            owner_keys: facts.owner_keys,
            chain_digests: facts.chain_digests,
            digest: facts.digest,
        })
    }

    /// Every spent-set key the deposit writes when accepted: its coin serial, then its
    /// allowance serials.
    pub fn keys(&self) -> impl Iterator<Item = (u32, [u8; 32])> + '_ {
        std::iter::once((self.epoch, self.serial.0))
            .chain(self.allowances.iter().map(|(s, e)| (*e, s.0)))
    }
}

impl DepositFacts {
    /// The facts of a deposit the engine's verifier accepted.
    pub fn of<T: Settleable>(vd: &T) -> DepositFacts {
        DepositFacts {
            serial: vd.serial().0,
            epoch: vd.epoch(),
            value: vd.value(),
            target: vd.target().to_bytes(),
            merchant_only: vd.merchant_only(),
            allowances: vd
                .allowance_serials()
                .iter()
                .map(|(s, e)| (s.0, *e))
                .collect(),
            owner_keys: vd.owner_key_bytes(),
            chain_digests: vd.chain_digests().to_vec(),
            digest: vd.digest(),
        }
    }
}

impl Settleable for ClusterDeposit {
    fn serial(&self) -> Serial {
        self.serial
    }
    fn epoch(&self) -> u32 {
        self.epoch
    }
    fn value(&self) -> u64 {
        self.value
    }
    fn target(&self) -> &CreditTarget {
        &self.target
    }
    fn merchant_only(&self) -> bool {
        self.merchant_only
    }
    fn allowance_serials(&self) -> &[(Serial, u32)] {
        &self.allowances
    }
    fn owner_key_bytes(&self) -> Vec<[u8; 32]> {
        self.owner_keys.clone()
    }
    fn chain_digests(&self) -> &[[u8; 32]] {
        &self.chain_digests
    }
    fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

/// One record of a verified chunk, typed.
pub struct ChunkRecord {
    /// Record number.
    pub index: u64,
    /// Byte offset.
    pub offset: u64,
    /// Coin serial when it decoded.
    pub serial: Option<Serial>,
    /// The deposit, or the verifier's verdict.
    pub outcome: Result<ClusterDeposit, Verdict>,
}

/// A verified chunk, typed: its records and account facts.
pub struct TypedChunk {
    /// Batch number.
    pub batch_seq: u64,
    /// Chunk index.
    pub chunk: u32,
    /// Clearing time.
    pub now: u64,
    /// Records in order.
    pub records: Vec<ChunkRecord>,
    /// Account facts: name → `Some(merchant)` when it exists.
    pub accounts: HashMap<String, Option<bool>>,
}

impl TypedChunk {
    /// Types a verified chunk read from `subject`. Every account a deposit credits must
    /// have a fact: a missing one is the worker's fault, never an `unknown_account`.
    pub fn from_wire(subject: &str, chunk: VerifiedChunk) -> Result<TypedChunk, ClusterError> {
        let accounts: HashMap<String, Option<bool>> = chunk.accounts.into_iter().collect();
        let mut records = Vec::with_capacity(chunk.records.len());
        for r in chunk.records {
            let outcome = match r.outcome {
                Ok(facts) => {
                    let d = ClusterDeposit::from_facts(subject, facts)?;
                    if let CreditTarget::Account(a) = &d.target {
                        if !accounts.contains_key(a.as_str()) {
                            return Err(ClusterError::Message {
                                subject: subject.to_owned(),
                                reason: format!("record {}: no fact for account {a}", r.index),
                            });
                        }
                    }
                    Ok(d)
                }
                Err(json) => Err(serde_json::from_str::<Verdict>(&json).map_err(|e| {
                    ClusterError::Message {
                        subject: subject.to_owned(),
                        reason: format!("record {}: verdict: {e}", r.index),
                    }
                })?),
            };
            records.push(ChunkRecord {
                index: r.index,
                offset: r.offset,
                serial: r.serial.map(Serial),
                outcome,
            });
        }
        Ok(TypedChunk {
            batch_seq: chunk.batch_seq,
            chunk: chunk.chunk,
            now: chunk.now,
            records,
            accounts,
        })
    }
}
