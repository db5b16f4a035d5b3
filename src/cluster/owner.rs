//! A partition owner: holds its partition's lease, walks the global order batch by batch
//! and chunk by chunk (chunk-index order, so every key sees the deposits in the order one
//! machine would), votes on each chunk from its own spent set, decides the chunk from all
//! votes, writes its home records to PostgreSQL, applies its own keys, and records how far
//! it got.
//!
//! Crash anywhere and restart: the position file says which chunk comes next; its vote,
//! if already published, is read back rather than recomputed (the first vote on a subject
//! is the one every owner uses), settlement rows are insert-if-absent, and keys the set
//! already holds are not written again. A lost disk: start from an empty directory and
//! the owner replays the whole order.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};

use crate::spentset::{SpentSet, SpentSetConfig};

use super::messages::{self, Announce, TypedChunk, VerifiedChunk, Vote};
use super::partition::{self, is_home};
use super::settlement::{self, HomeRecord};
use super::transport::{self, Nats, ANNOUNCE_SUBJECTS, OWNERS_BUCKET, SEQ_STREAM, VOTES_STREAM};
use super::ClusterError;

/// How an owner runs.
#[derive(Clone, Debug)]
pub struct OwnerOptions {
    /// NATS server URLs (comma-separated).
    pub nats: String,
    /// PostgreSQL connection string.
    pub postgres: String,
    /// The owner's directory (its spent set and position).
    pub dir: PathBuf,
    /// The partition it owns.
    pub partition: u32,
    /// Owner id (lease holder name).
    pub name: String,
}

/// Where an owner is in the global order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    /// The batch in progress (its announce's sequence; 0 before the first).
    batch_seq: u64,
    /// Its next chunk to apply.
    next_chunk: u32,
}

const POSITION_FILE: &str = "position.json";

impl Position {
    /// The saved position; the start of the order when the file is missing or damaged.
    /// Starting earlier than the truth is always safe: a chunk already applied is decided
    /// again from its stored votes, its settlement rows exist, its keys are skipped.
    fn load(dir: &Path) -> Result<Position, ClusterError> {
        let path = dir.join(POSITION_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "position unreadable; replaying the order from its start");
                Position::default()
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Position::default()),
            Err(source) => Err(ClusterError::Io { path, source }),
        }
    }

    fn save(&self, dir: &Path) -> Result<(), ClusterError> {
        let bytes = serde_json::to_vec(self).map_err(|e| ClusterError::Io {
            path: dir.join(POSITION_FILE),
            source: std::io::Error::other(e),
        })?;
        crate::store::files::write_atomic(&dir.join(POSITION_FILE), &bytes, 0o644)?;
        Ok(())
    }
}

/// A partition lease in MC_OWNERS: created only when free (the bucket expires entries
/// after the lease time), renewed by revision. Losing a renewal means another owner may
/// hold it: this one stops before its next vote or settlement write.
struct Lease {
    lost: Arc<AtomicBool>,
    partition: u32,
    renewal: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    // A run that ends stops renewing: a restarted run (or another owner) can take the
    // lease once it expires.
    fn drop(&mut self) {
        self.renewal.abort();
        metrics::gauge!("microcash_cluster_partition_up", "partition" => self.partition.to_string())
            .set(0.0);
    }
}

impl Lease {
    async fn acquire(nats: &Nats, partition: u32, owner: &str) -> Result<Lease, ClusterError> {
        let bucket = nats.bucket_handle(OWNERS_BUCKET).await?;
        let ttl = transport::retry("read the lease time", || async { bucket.status().await })
            .await?
            .max_age();
        let ttl = if ttl.is_zero() {
            Duration::from_secs(10)
        } else {
            ttl
        };
        let key = format!("partition-{partition}");
        let mut waited = false;
        let mut revision = loop {
            match bucket.create(&key, owner.to_owned().into()).await {
                Ok(rev) => break rev,
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    if !waited {
                        tracing::info!(
                            partition,
                            "lease held by another owner; waiting for it to expire"
                        );
                        waited = true;
                    }
                    tokio::time::sleep(ttl / 4).await;
                }
                Err(e) => {
                    tracing::warn!(partition, error = %e, "lease create failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        tracing::info!(partition, owner, "lease acquired");
        let lost = Arc::new(AtomicBool::new(false));
        let flag = lost.clone();
        let owner = owner.to_owned();
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match bucket.update(&key, owner.clone().into(), revision).await {
                    Ok(rev) => revision = rev,
                    Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        // Either another owner holds it, or the entry expired while NATS
                        // could not take renewals (an election). Taking an expired lease
                        // back is safe: nobody held it meanwhile (create would fail), and
                        // votes are fenced at the stream whoever holds the lease.
                        match bucket.create(&key, owner.clone().into()).await {
                            Ok(rev) => {
                                tracing::warn!(
                                    partition,
                                    "lease expired during an outage; taken back"
                                );
                                revision = rev;
                            }
                            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                                flag.store(true, Ordering::SeqCst);
                                return;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "lease re-create failed; retrying")
                            }
                        }
                    }
                    // A NATS node going away: retry until the lease would have expired.
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed; retrying"),
                }
            }
        });
        Ok(Lease {
            lost,
            partition,
            renewal,
        })
    }

    fn check(&self) -> Result<(), ClusterError> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(ClusterError::LeaseLost {
                partition: self.partition,
                reason: "renewal refused: another owner holds the partition".into(),
            });
        }
        Ok(())
    }
}

/// Runs the owner until stopped or a fault it cannot retry (lease lost, storage).
pub async fn run(options: OwnerOptions) -> Result<(), ClusterError> {
    super::supervise("partition owner", || run_once(options.clone())).await
}

async fn run_once(options: OwnerOptions) -> Result<(), ClusterError> {
    let p = options.partition;
    let nats = transport::connect(&options.nats, &options.name).await?;
    let n = nats.partitions().await?;
    if p >= n {
        return Err(ClusterError::Config(format!(
            "partition {p} does not exist: the cluster has {n} (0 … {})",
            n - 1
        )));
    }
    std::fs::create_dir_all(&options.dir).map_err(|source| ClusterError::Io {
        path: options.dir.clone(),
        source,
    })?;
    let lease = Lease::acquire(&nats, p, &options.name).await?;
    let (mut spent, _) = SpentSet::open(&options.dir.join("spent"), SpentSetConfig::default())?;
    let mut pg = settlement::connect(&options.postgres).await?;
    let seq = nats.stream(SEQ_STREAM).await?;
    let votes = nats.stream(VOTES_STREAM).await?;
    let mut pos = Position::load(&options.dir)?;
    let label = p.to_string();
    metrics::gauge!("microcash_cluster_partition_up", "partition" => label.clone()).set(1.0);
    tracing::info!(partition = p, partitions = n, ?pos, "owner ready");
    loop {
        if pos.batch_seq == 0 {
            let m = transport::wait_first(&seq, ANNOUNCE_SUBJECTS, 1).await?;
            pos = Position {
                batch_seq: m.sequence,
                next_chunk: 0,
            };
            pos.save(&options.dir)?;
        }
        let m = transport::wait_first(&seq, ANNOUNCE_SUBJECTS, pos.batch_seq).await?;
        if m.sequence != pos.batch_seq {
            return Err(ClusterError::Config(format!(
                "batch {} is not in MC_SEQ (the stream was replaced?)",
                pos.batch_seq
            )));
        }
        let announce: Announce = messages::decode(&m.subject, &m.payload)?;
        let now = m.time.unix_timestamp().max(0) as u64;
        settlement::record_batch(&pg, pos.batch_seq, &announce, now).await?;
        while pos.next_chunk < announce.chunks {
            let t = Instant::now();
            let chunk = ChunkAt {
                batch_seq: pos.batch_seq,
                chunk: pos.next_chunk,
                partition: p,
                partitions: n,
                batch_key: announce.batch_key,
            };
            let (records, keys, applied_seq) = chunk
                .apply(&nats, &seq, &votes, &mut spent, &mut pg, &lease)
                .await?;
            pos.next_chunk += 1;
            pos.save(&options.dir)?;
            metrics::gauge!("microcash_cluster_applied_batch", "partition" => label.clone())
                .set(pos.batch_seq as f64);
            metrics::gauge!("microcash_cluster_applied_chunk", "partition" => label.clone())
                .set(f64::from(pos.next_chunk));
            metrics::gauge!("microcash_cluster_applied_seq", "partition" => label.clone())
                .set(applied_seq as f64);
            metrics::gauge!("microcash_cluster_pending_chunks", "partition" => label.clone())
                .set(f64::from(announce.chunks - pos.next_chunk));
            metrics::counter!("microcash_cluster_records_decided_total", "partition" => label.clone())
                .increment(records);
            metrics::counter!("microcash_cluster_keys_applied_total", "partition" => label.clone())
                .increment(keys);
            metrics::histogram!("microcash_cluster_chunk_seconds", "partition" => label.clone())
                .record(t.elapsed().as_secs_f64());
        }
        let next = transport::wait_first(&seq, ANNOUNCE_SUBJECTS, pos.batch_seq + 1).await?;
        pos = Position {
            batch_seq: next.sequence,
            next_chunk: 0,
        };
        pos.save(&options.dir)?;
    }
}

/// One chunk as an owner handles it.
struct ChunkAt {
    batch_seq: u64,
    chunk: u32,
    partition: u32,
    partitions: u32,
    batch_key: [u8; 16],
}

impl ChunkAt {
    /// Votes, decides, settles and applies the chunk; returns (records, keys written, the
    /// chunk's MC_SEQ sequence).
    async fn apply(
        &self,
        nats: &Nats,
        seq: &async_nats::jetstream::stream::Stream,
        votes: &async_nats::jetstream::stream::Stream,
        spent: &mut SpentSet,
        pg: &mut tokio_postgres::Client,
        lease: &Lease,
    ) -> Result<(u64, u64, u64), ClusterError> {
        let (b, i, p, n) = (self.batch_seq, self.chunk, self.partition, self.partitions);
        let subject = format!("mc.seq.{b}.{i}");
        let sequenced = transport::wait_first(seq, &subject, b).await?;
        let wire: VerifiedChunk = messages::decode(&subject, &sequenced.payload)?;
        if wire.batch_seq != b || wire.chunk != i {
            return Err(ClusterError::Message {
                subject,
                reason: format!("carries batch {} chunk {}", wire.batch_seq, wire.chunk),
            });
        }
        let chunk = TypedChunk::from_wire(&subject, wire)?;
        let mine = format!("mc.vote.{b}.{i}.{p}");
        if transport::first(votes, &mine, 1).await?.is_none() {
            let vote = partition::vote(spent, &chunk, p, n)?;
            lease.check()?;
            // Fenced: if another holder of this partition voted first, its vote stands
            // (it is the same vote: both applied exactly the chunks before this one).
            nats.publish_once(
                &mine,
                &format!("vote.{b}.{i}.{p}"),
                messages::encode(&vote)?,
            )
            .await?;
        }
        let mut all = Vec::with_capacity(n as usize);
        for q in 0..n {
            let s = format!("mc.vote.{b}.{i}.{q}");
            let m = transport::wait_first(votes, &s, 1).await?;
            all.push(messages::decode::<Vote>(&s, &m.payload)?);
        }
        let decision = partition::decide(chunk, &all, self.batch_key, n)?;
        let fresh_by_record: std::collections::HashMap<u64, &crate::spentset::ReceiptEntry> =
            decision.fresh.iter().map(|e| (e.record, e)).collect();
        let homes: Vec<HomeRecord<'_>> = decision
            .verdicts
            .iter()
            .zip(&decision.serials)
            .filter(|(v, s)| is_home(v.record, s.as_ref(), p, n))
            .map(|(v, _)| HomeRecord {
                verdict: v,
                fresh: fresh_by_record
                    .get(&v.record)
                    .map(|e| (e.serial, e.epoch, e.deposit_digest)),
            })
            .collect();
        lease.check()?;
        settlement::write_chunk(pg, p, b, i, &homes).await?;
        let writes = partition::own_writes(spent, &decision.fresh, p, n);
        let keys: u64 = writes.iter().map(|e| 1 + e.allowances.len() as u64).sum();
        tokio::task::block_in_place(|| spent.commit(&writes))?;
        Ok((decision.verdicts.len() as u64, keys, sequenced.sequence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_damaged_position_replays_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Position::load(dir.path()).unwrap(), Position::default());
        let at = Position {
            batch_seq: 7,
            next_chunk: 3,
        };
        at.save(dir.path()).unwrap();
        assert_eq!(Position::load(dir.path()).unwrap(), at);
        for damage in [&b"{\"batch_seq\": 7, \"next_ch"[..], b"", b"\xff\xfe"] {
            std::fs::write(dir.path().join(POSITION_FILE), damage).unwrap();
            assert_eq!(Position::load(dir.path()).unwrap(), Position::default());
        }
    }
}
