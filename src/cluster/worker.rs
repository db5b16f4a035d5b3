//! A verifier worker: stateless. It pulls raw chunks from the work queue, verifies them
//! with the engine's batch verification (every core), resolves the accounts their
//! deposits credit, and publishes the verified chunk into the global order. It acks the
//! work only after the verified chunk is stored: a worker killed at any point leaves the
//! chunk to be redelivered, and a chunk published twice is one message to every reader
//! (message id inside the duplicate window, first-by-subject after it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy};
use async_nats::jetstream::AckKind;
use futures_util::StreamExt;

use crate::engine::pipeline::{verify_records, VerifiedRecord};
use crate::engine::PublicParams;
use crate::protocol::deposit::CreditTarget;

use super::messages::{self, Announce, DepositFacts, VerifiedChunk, VerifiedRecordWire, WorkChunk};
use super::transport::{self, SEQ_STREAM, WORK_STREAM};
use super::{settlement, ClusterError};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// NATS server URLs (comma-separated).
    pub nats: String,
    /// PostgreSQL connection string (accounts).
    pub postgres: String,
    /// Store directory with the issuer's public parameters and credential secrets.
    pub store: PathBuf,
    /// Verification threads (0: all cores).
    pub threads: usize,
    /// Worker name (metrics label, client name).
    pub name: String,
}

/// How long a chunk may stay unacknowledged before the queue gives it to another worker.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// Runs a worker until the process is stopped or a fault it cannot retry.
pub async fn run(options: WorkerOptions) -> Result<(), ClusterError> {
    super::supervise("worker", || run_once(options.clone())).await
}

async fn run_once(options: WorkerOptions) -> Result<(), ClusterError> {
    let mut params = Arc::new(PublicParams::load(&options.store)?);
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.threads
    };
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("microcash-worker-{i}"))
            .build()
            .map_err(|e| ClusterError::Config(format!("thread pool: {e}")))?,
    );
    let nats = transport::connect(&options.nats, &options.name).await?;
    let pg = settlement::connect(&options.postgres).await?;
    let work = nats.stream(WORK_STREAM).await?;
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        transport::retry("create the workers' consumer", || async {
            work.get_or_create_consumer(
                "workers",
                pull::Config {
                    durable_name: Some("workers".into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_ack_pending: 1024,
                    ..Default::default()
                },
            )
            .await
        })
        .await?;
    tracing::info!(worker = %options.name, threads, "worker ready");
    let label = options.name.clone();
    let seq = nats.stream(SEQ_STREAM).await?;
    let mut announces = Announces::default();
    loop {
        let mut batch = match consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(2))
            .messages()
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Some(msg) = batch.next().await {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "fetch failed");
                    continue;
                }
            };
            let subject = msg.subject.to_string();
            let chunk: WorkChunk = match messages::decode(&subject, &msg.payload) {
                Ok(c) => c,
                Err(e) => {
                    // Only our uploader writes the queue: a chunk that does not decode is
                    // damage. Redelivering it forever would help nobody.
                    tracing::error!(error = %e, "dropping an undecodable work chunk");
                    metrics::counter!("microcash_cluster_bad_messages_total", "worker" => label.clone())
                        .increment(1);
                    let _ = msg.ack_with(AckKind::Term).await;
                    continue;
                }
            };
            // The batch's number and clock come from its announce, published once the
            // whole batch is queued: until then the chunk waits in the queue.
            let known = announces.0.len();
            let Some(batch) = announces.get(&seq, &chunk.batch_key).await? else {
                let _ = msg.ack_with(AckKind::Nak(Some(MISS_MEMORY))).await;
                continue;
            };
            if announces.0.len() != known {
                // A new batch: the issuer may have rotated keys or changed its policy
                // since the last one. A store that does not load keeps the last good one.
                match PublicParams::load(&options.store) {
                    Ok(p) => params = Arc::new(p),
                    Err(e) => {
                        tracing::error!(error = %e, "store parameters do not load; keeping the last good ones")
                    }
                }
            }
            if batch.chunk_records != chunk.chunk_records || chunk.chunk >= batch.chunks {
                // A chunk of an abandoned upload cut another way: not this batch's.
                tracing::info!(%subject, "dropping a chunk of another cut of the batch");
                let _ = msg.ack_with(AckKind::Term).await;
                continue;
            }
            let t = Instant::now();
            let records = chunk.records.len() as u64;
            let verified = verify(&params, &pool, &pg, chunk, batch.batch_seq, batch.now).await?;
            let subject = format!("mc.seq.{}.{}", verified.batch_seq, verified.chunk);
            let id = format!("seq.{}.{}", verified.batch_seq, verified.chunk);
            let payload = messages::encode(&verified)?;
            let bytes = payload.len() as u64;
            // One verified message per chunk: a redelivered chunk's second one is refused.
            if nats.publish_once(&subject, &id, payload).await?.is_none() {
                tracing::info!(%subject, "chunk already in the order (redelivered)");
            }
            // A lost acknowledgement (a node dying) only means the chunk comes back: its
            // verified message is already stored, and a second one is dropped or ignored.
            if let Err(e) = msg.double_ack().await {
                tracing::warn!(%subject, error = %e, "acknowledgement failed; the chunk may be redelivered");
            }
            metrics::counter!("microcash_cluster_records_verified_total", "worker" => label.clone())
                .increment(records);
            metrics::counter!("microcash_cluster_chunks_verified_total", "worker" => label.clone())
                .increment(1);
            metrics::counter!("microcash_cluster_seq_bytes_total", "worker" => label.clone())
                .increment(bytes);
            metrics::histogram!("microcash_cluster_verify_seconds", "worker" => label.clone())
                .record(t.elapsed().as_secs_f64());
        }
    }
}

/// A batch as its announce defines it.
#[derive(Clone, Copy)]
struct Batch {
    batch_seq: u64,
    now: u64,
    chunks: u32,
    chunk_records: u32,
}

/// Announces seen, by content key (a day is one batch: this stays small; it is cleared
/// past a bound all the same), and keys recently found without one: the chunks of an
/// abandoned upload come back every few seconds for a day, and must not cost a stream
/// read each time.
#[derive(Default)]
struct Announces(
    std::collections::HashMap<[u8; 16], Batch>,
    std::collections::HashMap<[u8; 16], Instant>,
);

/// How long a key found without an announce is not looked up again.
const MISS_MEMORY: Duration = Duration::from_secs(2);

impl Announces {
    async fn get(
        &mut self,
        seq: &async_nats::jetstream::stream::Stream,
        key: &[u8; 16],
    ) -> Result<Option<Batch>, ClusterError> {
        if let Some(b) = self.0.get(key) {
            return Ok(Some(*b));
        }
        if self.1.get(key).is_some_and(|t| t.elapsed() < MISS_MEMORY) {
            return Ok(None);
        }
        let subject = transport::announce_subject(key);
        let Some(m) = transport::first(seq, &subject, 1).await? else {
            if self.1.len() >= 4096 {
                self.1.clear();
            }
            self.1.insert(*key, Instant::now());
            return Ok(None);
        };
        let a: Announce = messages::decode(&subject, &m.payload)?;
        let b = Batch {
            batch_seq: m.sequence,
            now: m.time.unix_timestamp().max(0) as u64,
            chunks: a.chunks,
            chunk_records: a.chunk_records,
        };
        if self.0.len() >= 4096 {
            self.0.clear();
        }
        self.0.insert(*key, b);
        Ok(Some(b))
    }
}

/// Verifies one work chunk on the pool and resolves its accounts.
async fn verify(
    params: &Arc<PublicParams>,
    pool: &Arc<rayon::ThreadPool>,
    pg: &tokio_postgres::Client,
    chunk: WorkChunk,
    batch_seq: u64,
    now: u64,
) -> Result<VerifiedChunk, ClusterError> {
    let WorkChunk {
        chunk: index,
        records,
        ..
    } = chunk;
    let (params, pool) = (params.clone(), pool.clone());
    let verified = tokio::task::spawn_blocking(move || {
        let mut rng = crate::seeded_rng();
        pool.install(|| verify_records(&params, records, now, &mut rng))
    })
    .await
    .map_err(|e| ClusterError::Config(format!("verification task: {e}")))??;
    let accounts = settlement::account_facts(pg, credited_accounts(&verified)).await?;
    verified_chunk(batch_seq, index, now, verified, accounts)
}

/// The accounts the chunk's verified deposits credit, each once (the facts to resolve).
pub fn credited_accounts(verified: &[VerifiedRecord]) -> Vec<String> {
    let mut names: Vec<String> = verified
        .iter()
        .filter_map(|r| match r.outcome.as_ref().ok()?.target() {
            CreditTarget::Account(a) => Some(a.to_string()),
            CreditTarget::Swap(_) => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The verified-chunk message for verified records and their account facts.
pub fn verified_chunk(
    batch_seq: u64,
    chunk: u32,
    now: u64,
    verified: Vec<VerifiedRecord>,
    accounts: Vec<(String, Option<bool>)>,
) -> Result<VerifiedChunk, ClusterError> {
    let records = verified
        .into_iter()
        .map(|r| {
            Ok(VerifiedRecordWire {
                index: r.index,
                offset: r.offset,
                serial: r.serial.map(|s| s.0),
                outcome: match r.outcome {
                    Ok(vd) => Ok(DepositFacts::of(&vd)),
                    Err(v) => {
                        Err(
                            serde_json::to_string(&v).map_err(|e| ClusterError::Message {
                                subject: format!("verdict of record {}", r.index),
                                reason: e.to_string(),
                            })?,
                        )
                    }
                },
            })
        })
        .collect::<Result<Vec<_>, ClusterError>>()?;
    Ok(VerifiedChunk {
        batch_seq,
        chunk,
        now,
        records,
        accounts,
    })
}
