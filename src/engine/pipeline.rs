//! The clearing pipeline:
//!
//! ```text
//!  read ──▶ [raw chunks] ──▶ decode + verify ──▶ [verified chunks] ──▶ settle + commit ──▶ verdicts,
//!  (mmap,     bounded        (rayon pool:          bounded              (spent set, one      journal,
//!   records)  queue          all cores)            queue                 fsync per chunk)    progress
//! ```
//!
//! Stages run on their own threads joined by bounded crossbeam channels
//! ([`QUEUE_DEPTH_MAX`] chunks of at most `chunk_records` records), so memory is bounded by
//! the chunk size whatever the file size. Data-parallel work runs on a rayon pool of
//! `threads` threads (optionally pinned to cores). Weights come from a CSPRNG seeded from the
//! OS once per batch.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crossbeam_channel::bounded;
use rayon::prelude::*;
use serde::Serialize;

use super::batch_file::{BatchReader, RawRecord};
use super::batch_verify::{self, ChunkDeposit};
use super::settle::{self, BatchMemory};
use super::verdict::Verdict;
use super::{Engine, EngineError};
use crate::protocol::coin::Serial;
use crate::protocol::deposit::Deposit;
use crate::protocol::encoding::Decode;
use crate::protocol::hints::HintedDeposit;
use crate::protocol::verify::VerifiedDeposit;

/// Chunks in flight between two stages.
pub const QUEUE_DEPTH_MAX: usize = 2;
/// Default records per chunk.
pub const CHUNK_RECORDS_DEFAULT: usize = 8192;
/// Upper bound on records per chunk (memory bound).
pub const CHUNK_RECORDS_MAX: usize = 65_536;

/// How to clear.
#[derive(Clone, Debug)]
pub struct ClearOptions {
    /// Worker threads for verification (0: all cores).
    pub threads: usize,
    /// Records per chunk (one fsync per chunk).
    pub chunk_records: usize,
    /// Pin worker threads to cores.
    pub pin_cores: bool,
    /// The clock the keyset windows are checked against (Unix seconds).
    pub now: u64,
    /// Settlement journal output (JSON lines, one per accepted coin).
    pub journal: Option<PathBuf>,
    /// Per-record verdicts output (JSON lines).
    pub verdicts: Option<PathBuf>,
    /// Keep every verdict in the summary (tests, small batches).
    pub collect_verdicts: bool,
    /// Set to stop reading: chunks already read are committed, then `clear` returns with
    /// `interrupted` set. Clearing is idempotent, so running the batch again completes it.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for ClearOptions {
    fn default() -> Self {
        ClearOptions {
            threads: 0,
            chunk_records: CHUNK_RECORDS_DEFAULT,
            pin_cores: false,
            now: crate::unix_now(),
            journal: None,
            verdicts: None,
            collect_verdicts: false,
            stop: None,
        }
    }
}

/// The verdict on one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordVerdict {
    /// Record number.
    pub record: u64,
    /// Byte offset in the batch file.
    pub offset: u64,
    /// Coin serial (hex), when the record decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// The stable reason code (`accepted`, `double_spent`, `policy_violation(rule)`, …): the
    /// same string as the datasets' expected verdicts and the summary's rejection keys.
    pub code: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// What a clearing run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClearSummary {
    /// Batch id (hex).
    pub batch_id: String,
    /// Records read.
    pub records: u64,
    /// Records the header announced.
    pub header_records: u64,
    /// Coins accepted (including idempotent replays).
    pub accepted: u64,
    /// Of those, replays of earlier acceptances.
    pub replayed: u64,
    /// Rejections by reason code.
    pub rejected: BTreeMap<String, u64>,
    /// Value credited for the batch's accepted records, including acceptances replayed
    /// from an earlier (interrupted) run: after a resume this is still the batch's total.
    pub value_credited: u64,
    /// Of that, value newly credited by this run.
    pub value_credited_this_run: u64,
    /// Value credited per account for the batch (replays included).
    pub credited_by_account: BTreeMap<String, u64>,
    /// The batch's content key (hex): BLAKE2b of the whole file. Receipts carry it, so a
    /// re-run of the same bytes recognises its own records, and nothing a header claims
    /// (the batch id) can make another batch's records look like this one's.
    pub content_key: String,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
    /// Records per second.
    pub coins_per_s: f64,
    /// Verification threads.
    pub threads: usize,
    /// Whether the run was stopped before the end of the file.
    pub interrupted: bool,
    /// Bytes between records that belong to no record (v2: inserted garbage that cost no
    /// record its number is otherwise invisible).
    pub skipped_bytes: u64,
    /// Every verdict, if requested.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<RecordVerdict>,
}

/// One record on its way from the reader to the commit: its number and offset stay with it,
/// and `item` is what it is so far — a decoded deposit (or why not), then its verification.
struct InFlight<T> {
    index: u64,
    offset: u64,
    item: T,
}

type Decoded = InFlight<Result<HintedDeposit, Verdict>>;

/// A verified record: its serial when it decoded, and the verifier's outcome.
type Verified = InFlight<(Option<Serial>, Result<VerifiedDeposit, Verdict>)>;

/// Splits a hinted payload into (deposit, hints).
fn split_hinted(payload: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (len, rest) = payload
        .split_first_chunk::<4>()
        .ok_or("hinted record shorter than its length field")?;
    let len = u32::from_le_bytes(*len) as usize;
    rest.split_at_checked(len).ok_or_else(|| {
        format!(
            "hinted record: deposit length {len} exceeds the payload ({} bytes)",
            rest.len()
        )
    })
}

fn decode(raw: RawRecord) -> Decoded {
    let base = raw.payload_offset;
    let malformed = |at: u64, reason: String| Verdict::Malformed { offset: at, reason };
    let deposit = match raw.payload {
        Err(reason) => Err(malformed(raw.offset, reason)),
        Ok(bytes) if raw.kind == super::batch_file::KIND_DEPOSIT_HINTED => {
            match split_hinted(&bytes) {
                Err(reason) => Err(malformed(base, reason)),
                // Hints are covered by no signature: a relay could change them. Hints that
                // do not check out are dropped, so only the deposit's own bytes decide its
                // verdict.
                Ok((dep, hints)) => HintedDeposit::decode(dep, hints)
                    .map_err(|e| malformed(base + 4 + e.offset as u64, e.reason.to_string())),
            }
        }
        Ok(bytes) => Deposit::from_bytes(&bytes)
            .map(HintedDeposit::from)
            .map_err(|e| malformed(base + e.offset as u64, e.reason.to_string())),
    };
    InFlight {
        index: raw.index,
        offset: raw.offset,
        item: deposit,
    }
}

impl Decoded {
    /// This record with its verification outcome (`check` runs for decoded deposits only).
    fn verified(
        self,
        check: impl FnOnce(&Deposit) -> Result<Result<VerifiedDeposit, Verdict>, EngineError>,
    ) -> Result<Verified, EngineError> {
        let item = match self.item {
            Err(v) => (None, Err(v)),
            Ok(dep) => {
                let r = check(&dep.deposit)?;
                (Some(serial_of(&dep.deposit, &r)), r)
            }
        };
        Ok(InFlight {
            index: self.index,
            offset: self.offset,
            item,
        })
    }
}

fn verify_raw_chunk(
    engine: &Engine,
    chunk: Vec<RawRecord>,
    now: u64,
    rng: &mut rand::rngs::StdRng,
) -> Result<Vec<Verified>, EngineError> {
    verify_raw_chunk_with(engine.params(), chunk, now, rng)
}

fn verify_raw_chunk_with(
    params: &super::PublicParams,
    chunk: Vec<RawRecord>,
    now: u64,
    rng: &mut rand::rngs::StdRng,
) -> Result<Vec<Verified>, EngineError> {
    let decoded: Vec<Decoded> = chunk.into_par_iter().map(decode).collect();
    let deposits: Vec<ChunkDeposit<'_>> = decoded
        .iter()
        .filter_map(|d| d.item.as_ref().ok().map(ChunkDeposit::from))
        .collect();
    let verifier = params.verifier();
    let mut results =
        batch_verify::verify_chunk(&verifier, &params.keysets, &deposits, now, rng).into_iter();
    // verify_chunk answers every deposit it is given; if it ever did not, the chunk fails
    // as a whole rather than a record getting a made-up verdict.
    let mut next = || {
        let r = results.next().ok_or_else(|| {
            EngineError::Pipeline("batch verification answered fewer deposits".into())
        })?;
        Ok(r.map_err(Verdict::from))
    };
    decoded
        .into_iter()
        .map(|d| d.verified(|_| next()))
        .collect()
}

/// One record of a chunk after decoding and verification: where it came from, its coin
/// serial when it decoded, and the verifier's outcome.
pub struct VerifiedRecord {
    /// Record number.
    pub index: u64,
    /// Byte offset in the batch file.
    pub offset: u64,
    /// Coin serial, when the record decoded.
    pub serial: Option<Serial>,
    /// The verified deposit, or the verifier's refusal.
    pub outcome: Result<VerifiedDeposit, Verdict>,
}

/// Decodes and batch-verifies one chunk of raw records against `params` at `now`, on the
/// current rayon pool: the engine's own verification stage, for a caller that settles
/// elsewhere (a cluster's verifier workers). Every record gets an outcome, in order.
pub fn verify_records(
    params: &super::PublicParams,
    chunk: Vec<RawRecord>,
    now: u64,
    rng: &mut rand::rngs::StdRng,
) -> Result<Vec<VerifiedRecord>, EngineError> {
    Ok(verify_raw_chunk_with(params, chunk, now, rng)?
        .into_iter()
        .map(|r| VerifiedRecord {
            index: r.index,
            offset: r.offset,
            serial: r.item.0,
            outcome: r.item.1,
        })
        .collect())
}

/// The serial of a deposit, taken from its verification when that succeeded (no second
/// hash), else derived.
fn serial_of(dep: &Deposit, r: &Result<VerifiedDeposit, Verdict>) -> Serial {
    match r {
        Ok(v) => v.serial(),
        Err(_) => dep.coin.serial(),
    }
}

/// The reference twin of [`verify_raw_chunk`]: each deposit checked on its own with direct
/// checks (deposits spread over threads; no batching).
fn verify_raw_chunk_reference(
    engine: &Engine,
    chunk: Vec<RawRecord>,
    now: u64,
) -> Result<Vec<Verified>, EngineError> {
    let params = engine.params();
    let verifier = params.verifier();
    chunk
        .into_par_iter()
        .map(decode)
        .map(|d| d.verified(|dep| Ok(verifier.verify_deposit(dep, now).map_err(Verdict::from))))
        .collect()
}

/// Settles one verified chunk: spent-set checks, one commit group, verdicts in order.
fn settle_chunk(
    engine: &Engine,
    memory: &mut BatchMemory,
    chunk: Vec<Verified>,
    now: u64,
) -> Result<Vec<RecordVerdict>, EngineError> {
    // Settlement takes the outcomes; where each record came from waits beside them.
    let (origins, items): (Vec<_>, Vec<_>) = chunk
        .into_iter()
        .map(|r| ((r.index, r.offset, r.item.0), (r.index, r.item.1)))
        .unzip();
    let mut spent = engine.spent();
    let plan = settle::plan(&*spent, engine.accounts(), memory, items, false, now)?;
    let verdicts = settle::commit(&mut spent, plan)?;
    memory.end_chunk();
    Ok(origins
        .into_iter()
        .zip(verdicts)
        .map(|((record, offset, serial), verdict)| RecordVerdict {
            record,
            offset,
            serial: serial.map(|s| s.to_string()),
            code: verdict.code(),
            verdict,
        })
        .collect())
}

/// The reference clearing path: the same reader, settlement and verdicts as [`clear`], but
/// every deposit checked by the one-at-a-time reference verifier (no batching). Slow and
/// obviously correct: the golden verdicts of the datasets come from here, and the tests
/// require [`clear`] to agree with it record for record.
pub fn clear_reference(
    engine: &Engine,
    batch: &Path,
    now: u64,
) -> Result<Vec<RecordVerdict>, EngineError> {
    let mut reader = BatchReader::open(batch)?;
    let mut memory = BatchMemory::new(batch_content_key(batch)?);
    let mut out = Vec::new();
    loop {
        let chunk = reader.next_chunk(CHUNK_RECORDS_DEFAULT, super::batch_file::CHUNK_BYTES_MAX);
        if chunk.is_empty() {
            break;
        }
        let verified = verify_raw_chunk_reference(engine, chunk, now)?;
        out.extend(settle_chunk(engine, &mut memory, verified, now)?);
    }
    engine.spent().checkpoint()?;
    Ok(out)
}

/// The batch's identity for settlement: BLAKE2b-128 (personalised) of every byte of the
/// file, read in bounded blocks. The uploader chooses the header's batch id; it chooses the
/// content too, but cannot give two different files one key (2^64 work for a collision,
/// which would only turn that batch's own double spends into `duplicate_in_batch`).
pub fn batch_content_key(path: &Path) -> Result<[u8; 16], EngineError> {
    use std::io::Read;
    let io_err = |source: std::io::Error| EngineError::BatchInput {
        path: path.to_owned(),
        reason: source.to_string(),
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut state = blake2b_simd::Params::new()
        .hash_length(16)
        .personal(b"mc1/batch-key")
        .to_state();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        state.update(buf.get(..n).unwrap_or_default());
    }
    let mut key = [0u8; 16];
    key.copy_from_slice(state.finalize().as_bytes());
    // All zeros means "no batch" (single deposits); a real key is never that.
    if key == [0u8; 16] {
        key[0] = 1;
    }
    Ok(key)
}

/// Counts one verdict into the summary (and the rejection metrics).
fn tally(summary: &mut ClearSummary, rv: &RecordVerdict) {
    summary.records += 1;
    match &rv.verdict {
        Verdict::Accepted {
            value,
            account,
            replayed,
            ..
        } => {
            summary.accepted += 1;
            if *replayed {
                summary.replayed += 1;
            } else {
                summary.value_credited_this_run += value;
            }
            summary.value_credited += value;
            *summary
                .credited_by_account
                .entry(account.clone())
                .or_default() += value;
        }
        other => {
            let code = other.code();
            metrics::counter!("microcash_rejections_total", "reason" => code.clone()).increment(1);
            *summary.rejected.entry(code).or_default() += 1;
        }
    }
}

/// The run's line outputs: the credit journal (accepted records) and the verdict lines.
struct Outputs<'o> {
    journal: Option<BufWriter<File>>,
    verdicts: Option<BufWriter<File>>,
    options: &'o ClearOptions,
}

impl<'o> Outputs<'o> {
    fn create(options: &'o ClearOptions) -> Result<Outputs<'o>, EngineError> {
        Ok(Outputs {
            journal: create_output(&options.journal)?,
            verdicts: create_output(&options.verdicts)?,
            options,
        })
    }

    fn write(&mut self, rv: &RecordVerdict) -> Result<(), EngineError> {
        if let Verdict::Accepted {
            receipt,
            value,
            account,
            replayed,
        } = &rv.verdict
        {
            let line = serde_json::json!({
                "record": rv.record, "receipt": receipt, "serial": rv.serial,
                "account": account, "value": value, "replayed": replayed,
            });
            write_line(&mut self.journal, &self.options.journal, &line)?;
        }
        write_line(&mut self.verdicts, &self.options.verdicts, rv)
    }

    fn flush(&mut self) -> Result<(), EngineError> {
        for (out, path) in [
            (&mut self.journal, &self.options.journal),
            (&mut self.verdicts, &self.options.verdicts),
        ] {
            if let (Some(w), Some(p)) = (out.as_mut(), path.as_ref()) {
                w.flush().map_err(|source| EngineError::Output {
                    path: p.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

fn create_output(path: &Option<PathBuf>) -> Result<Option<BufWriter<File>>, EngineError> {
    path.as_ref()
        .map(|p| {
            File::create(p)
                .map(BufWriter::new)
                .map_err(|source| EngineError::Output {
                    path: p.clone(),
                    source,
                })
        })
        .transpose()
}

fn write_line(
    out: &mut Option<BufWriter<File>>,
    path: &Option<PathBuf>,
    value: &impl Serialize,
) -> Result<(), EngineError> {
    if let (Some(w), Some(p)) = (out.as_mut(), path.as_ref()) {
        serde_json::to_writer(&mut *w, value).map_err(|e| EngineError::Output {
            path: p.clone(),
            source: e.into(),
        })?;
        w.write_all(b"\n").map_err(|source| EngineError::Output {
            path: p.clone(),
            source,
        })?;
    }
    Ok(())
}

fn thread_pool(threads: usize, pin: bool) -> Result<rayon::ThreadPool, EngineError> {
    let cores = if pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("microcash-verify-{i}"))
        .start_handler(move |i| {
            if let Some(core) = cores.get(i % cores.len().max(1)) {
                core_affinity::set_for_current(*core);
            }
        })
        .build()
        .map_err(|e| EngineError::Pipeline(e.to_string()))
}

/// Clears `batch` against `engine`'s store.
pub fn clear(
    engine: &Engine,
    batch: &Path,
    options: &ClearOptions,
    on_progress: &(dyn Fn(u64, u64) + Sync),
) -> Result<ClearSummary, EngineError> {
    let start = Instant::now();
    super::check_batch_input(batch)?;
    let mut reader = BatchReader::open(batch)?;
    let header = reader.header().clone();
    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        options.threads
    };
    let chunk_records = options.chunk_records.clamp(1, CHUNK_RECORDS_MAX);
    let pool = thread_pool(threads, options.pin_cores)?;
    let content_key = batch_content_key(batch)?;
    let mut summary = ClearSummary {
        batch_id: hex::encode(header.batch_id),
        content_key: hex::encode(content_key),
        header_records: header.record_count,
        threads,
        ..ClearSummary::default()
    };
    let mut outputs = Outputs::create(options)?;
    let (raw_tx, raw_rx) = bounded::<Vec<RawRecord>>(QUEUE_DEPTH_MAX);
    let (ver_tx, ver_rx) = bounded::<Result<Vec<Verified>, EngineError>>(QUEUE_DEPTH_MAX);
    let now = options.now;

    let stop = options.stop.clone();
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let stopped_ref = &stopped;
    let result: Result<u64, EngineError> = std::thread::scope(|scope| {
        let read_stage = scope.spawn(move || {
            loop {
                if stop
                    .as_ref()
                    .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
                {
                    stopped_ref.store(true, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
                // Bounded by bytes as well as records: memory stays bounded whatever the
                // records' sizes.
                let chunk = reader.next_chunk(chunk_records, super::batch_file::CHUNK_BYTES_MAX);
                if chunk.is_empty() {
                    break;
                }
                metrics::counter!("microcash_stage_records_total", "stage" => "read")
                    .increment(chunk.len() as u64);
                if raw_tx.send(chunk).is_err() {
                    break; // downstream stopped
                }
                metrics::gauge!("microcash_queue_depth", "queue" => "raw").set(raw_tx.len() as f64);
            }
            reader.skipped_bytes()
        });
        let pool = &pool;
        scope.spawn(move || {
            // A fresh CSPRNG per batch, seeded from the OS.
            let mut rng = crate::seeded_rng();
            for chunk in raw_rx {
                let n = chunk.len() as u64;
                let t = Instant::now();
                let verified = pool.install(|| verify_raw_chunk(engine, chunk, now, &mut rng));
                metrics::histogram!("microcash_stage_seconds", "stage" => "verify")
                    .record(t.elapsed().as_secs_f64());
                metrics::counter!("microcash_stage_records_total", "stage" => "verify")
                    .increment(n);
                if ver_tx.send(verified).is_err() {
                    break;
                }
                metrics::gauge!("microcash_queue_depth", "queue" => "verified")
                    .set(ver_tx.len() as f64);
            }
        });
        let mut memory = BatchMemory::new(content_key);
        for chunk in ver_rx.iter() {
            let t = Instant::now();
            let verdicts = settle_chunk(engine, &mut memory, chunk?, now)?;
            let committed = verdicts.len() as u64;
            metrics::histogram!("microcash_commit_seconds").record(t.elapsed().as_secs_f64());
            for rv in verdicts {
                tally(&mut summary, &rv);
                outputs.write(&rv)?;
                if options.collect_verdicts {
                    summary.verdicts.push(rv);
                }
            }
            metrics::counter!("microcash_stage_records_total", "stage" => "commit")
                .increment(committed);
            on_progress(summary.records, summary.header_records.max(summary.records));
        }
        read_stage
            .join()
            .map_err(|_| EngineError::Pipeline("the read stage panicked".into()))
    });
    // On an error the commit loop returned early; dropping its receiver stopped the others.
    summary.skipped_bytes = result?;
    outputs.flush()?;
    engine.spent().checkpoint()?;
    summary.interrupted = stopped.load(std::sync::atomic::Ordering::Relaxed);
    summary.elapsed_s = start.elapsed().as_secs_f64();
    summary.coins_per_s = summary.records as f64 / summary.elapsed_s.max(1e-9);
    metrics::histogram!("microcash_batch_seconds").record(summary.elapsed_s);
    Ok(summary)
}
