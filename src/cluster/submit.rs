//! Putting a batch file into the cluster, and reading its verdicts back from PostgreSQL.
//!
//! The chunks go onto the work queue first, then the announce (its stream sequence becomes
//! the batch's number, its stream time the clearing clock). Every message carries a
//! message id derived from the batch's content key, and the announce subject takes one
//! message ever: submitting the same file again is the same batch, whose verdicts are the
//! first submission's.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::engine::batch_file::BatchReader;
use crate::engine::pipeline::batch_content_key;
use crate::engine::ClearSummary;

use super::messages::{self, Announce, WorkChunk};
use super::transport::{self, Nats, SEQ_STREAM, WORK_CHUNK_BYTES_MAX};
use super::{settlement, ClusterError};

/// How to submit.
#[derive(Clone, Debug)]
pub struct SubmitOptions {
    /// NATS server URLs.
    pub nats: String,
    /// PostgreSQL connection string (for `wait`).
    pub postgres: String,
    /// The batch file.
    pub batch: PathBuf,
    /// Records per work chunk.
    pub chunk_records: usize,
    /// Wait until every record has its verdict.
    pub wait: Option<Duration>,
    /// Write the verdicts (JSON lines, record order) here once all are in.
    pub verdicts: Option<PathBuf>,
    /// Stop after queueing the chunks, as an uploader killed before its announce does
    /// (fault drills: the cluster must not wait for such a batch).
    pub chunks_only: bool,
}

/// Default records per work chunk: small enough that a chunk is verified in well under a
/// second on one worker, large enough for the batch MSMs to pay.
pub const CHUNK_RECORDS_DEFAULT: usize = 1024;

/// What `submit` did: the batch's number, and with `wait` the summary.
#[derive(Debug, serde::Serialize)]
pub struct Submitted {
    /// The batch's number in the cluster (its announce's MC_SEQ sequence).
    pub batch_seq: u64,
    /// Chunks published.
    pub chunks: u32,
    /// The summary, with `wait`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<ClearSummary>,
}

fn open(path: &Path) -> Result<BatchReader, ClusterError> {
    Ok(BatchReader::open(path).map_err(crate::engine::EngineError::from)?)
}

/// Submits the batch; with `wait`, waits for all verdicts and returns the summary.
pub async fn run(options: &SubmitOptions) -> Result<Submitted, ClusterError> {
    let start = Instant::now();
    crate::engine::check_batch_input(&options.batch)?;
    let batch_key = batch_content_key(&options.batch)?;
    // First pass: count, so the announce can say how many chunks follow.
    let per = options
        .chunk_records
        .clamp(1, crate::engine::pipeline::CHUNK_RECORDS_MAX);
    let mut reader = open(&options.batch)?;
    let batch_id = reader.header().batch_id;
    let (mut records, mut chunks) = (0u64, 0u32);
    loop {
        let c = reader.next_chunk(per, WORK_CHUNK_BYTES_MAX);
        if c.is_empty() {
            break;
        }
        records += c.len() as u64;
        chunks += 1;
    }
    let nats = transport::connect(&options.nats, "microcash-submit").await?;
    let announce = Announce {
        batch_key,
        batch_id,
        records,
        chunks,
        chunk_records: per as u32,
    };
    let subject = transport::announce_subject(&batch_key);
    let seq = nats.stream(SEQ_STREAM).await?;
    // Announced already (the same content submitted before): it was whole then; queueing
    // it again would only verify it again.
    if transport::first(&seq, &subject, 1).await?.is_none() {
        // The chunks first, the announce last: a batch is in the order only once all of
        // it is in the queue, so an upload cut short leaves nothing to wait on.
        publish_chunks(&nats, options, batch_key, per).await?;
        if options.chunks_only {
            return Ok(Submitted {
                batch_seq: 0,
                chunks,
                summary: None,
            });
        }
        let key = hex::encode(batch_key);
        nats.publish_once(
            &subject,
            &format!("batch.{key}"),
            messages::encode(&announce)?,
        )
        .await?;
    }
    // Published now or by an earlier submission of the same content: the first is the batch.
    let m = transport::first(&seq, &subject, 1)
        .await?
        .ok_or_else(|| ClusterError::Config(format!("announce {subject} not readable")))?;
    let batch_seq = m.sequence;
    let announce: Announce = messages::decode(&subject, &m.payload)?;
    tracing::info!(batch_seq, chunks, records, "batch submitted");
    let summary = match options.wait {
        None => None,
        Some(limit) => Some(wait(options, batch_seq, &announce, limit, start).await?),
    };
    Ok(Submitted {
        batch_seq,
        chunks,
        summary,
    })
}

/// Second pass: the chunks onto the work queue, many acknowledgements in flight at once.
async fn publish_chunks(
    nats: &Nats,
    options: &SubmitOptions,
    batch_key: [u8; 16],
    per: usize,
) -> Result<(), ClusterError> {
    let key = hex::encode(batch_key);
    let mut reader = open(&options.batch)?;
    let mut index = 0u32;
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        let c = reader.next_chunk(per, WORK_CHUNK_BYTES_MAX);
        if c.is_empty() {
            break;
        }
        let msg = WorkChunk {
            batch_key,
            chunk: index,
            chunk_records: per as u32,
            records: c,
        };
        let payload = messages::encode(&msg)?;
        let nats = nats.clone();
        // The cut is part of the name: chunks of an abandoned upload cut another way are
        // other messages, never mistaken for (or deduplicated against) these.
        let (subject, id) = (
            format!("mc.work.{key}.{per}.{index}"),
            format!("work.{key}.{per}.{index}"),
        );
        in_flight.spawn(async move { nats.publish(&subject, &id, payload).await });
        while in_flight.len() >= 32 {
            join_one(&mut in_flight).await?;
        }
        index += 1;
    }
    while !in_flight.is_empty() {
        join_one(&mut in_flight).await?;
    }
    Ok(())
}

async fn join_one(
    set: &mut tokio::task::JoinSet<Result<u64, ClusterError>>,
) -> Result<(), ClusterError> {
    match set.join_next().await {
        Some(Ok(r)) => r.map(|_| ()),
        Some(Err(e)) => Err(ClusterError::Config(format!("publish task: {e}"))),
        None => Ok(()),
    }
}

/// Waits until every record of the batch has its verdict, then sums them up.
async fn wait(
    options: &SubmitOptions,
    batch_seq: u64,
    announce: &Announce,
    limit: Duration,
    start: Instant,
) -> Result<ClearSummary, ClusterError> {
    let pg = settlement::connect(&options.postgres).await?;
    let deadline = Instant::now() + limit;
    loop {
        let done = settlement::verdict_count(&pg, batch_seq).await?;
        if done >= announce.records {
            break;
        }
        if Instant::now() > deadline {
            return Err(ClusterError::Config(format!(
                "batch {batch_seq}: {done} of {} verdicts after {} s",
                announce.records,
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let lines = settlement::verdicts(&pg, batch_seq).await?;
    let credits = settlement::credits(&pg, batch_seq).await?;
    if let Some(path) = &options.verdicts {
        let io = |source| ClusterError::Io {
            path: path.clone(),
            source,
        };
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        for (_, line) in &lines {
            writeln!(out, "{line}").map_err(io)?;
        }
        out.flush().map_err(io)?;
    }
    let mut summary = ClearSummary {
        batch_id: hex::encode(announce.batch_id),
        content_key: hex::encode(announce.batch_key),
        header_records: announce.records,
        elapsed_s: elapsed,
        ..ClearSummary::default()
    };
    let mut rejected = BTreeMap::new();
    for (code, line) in &lines {
        summary.records += 1;
        if code == "accepted" {
            summary.accepted += 1;
            let replayed = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("replayed").and_then(serde_json::Value::as_bool));
            if replayed == Some(true) {
                summary.replayed += 1;
            }
        } else {
            *rejected.entry(code.clone()).or_insert(0u64) += 1;
        }
    }
    summary.rejected = rejected;
    summary.value_credited_this_run = credits.iter().map(|(_, v)| v).sum();
    summary.credited_by_account = credits.into_iter().collect();
    summary.value_credited = summary.value_credited_this_run;
    summary.coins_per_s = summary.records as f64 / elapsed.max(1e-9);
    Ok(summary)
}
