//! Batch uploads: streamed to disk as they arrive, queued (bounded), cleared one at a time
//! by a worker thread through the engine, with progress and verdicts on disk.
//!
//! ```text
//! <store>/batches/<id>.mcb             the uploaded batch
//! <store>/batches/<id>.verdicts.jsonl  its verdicts (written while clearing)
//! <store>/batches/<id>.status.json     the final summary (present once done)
//! <store>/batches/<id>.partner         the clearing partner that uploaded it
//! ```
//!
//! On start every batch without a final status is queued again: clearing is idempotent,
//! so a batch interrupted by a shutdown or a crash resumes where the journal says it was.
//!
//! What partners leave on the issuer's disk is bounded ([`StorageLimits`]): a byte quota
//! per partner over its uploads and verdicts, a free-space reserve that uploads never eat
//! into (the journal needs it), and retention: a finished batch's upload is removed after
//! `upload_retention`, its verdicts and status after `verdict_retention`. The journal, not
//! these files, is the record of what was redeemed.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::Value;

use crate::engine::ClearOptions;
use crate::issuer::Issuer;

/// Batches waiting to be cleared, at most (more get 429).
pub const BATCH_QUEUE_MAX: usize = 16;

/// How much a clearing partner may keep on the issuer's disk, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct StorageLimits {
    /// Bytes of uploads, verdicts and statuses one partner may hold (queued, running and
    /// finished batches, and uploads in flight).
    pub partner_quota: u64,
    /// Bytes of the store's file system an upload never eats into.
    pub min_free: u64,
    /// How long a finished batch's uploaded file is kept.
    pub upload_retention: Duration,
    /// How long a finished batch's verdicts and status are kept.
    pub verdict_retention: Duration,
}

/// The batch queue already holds [`BATCH_QUEUE_MAX`] batches.
#[derive(Debug, thiserror::Error)]
#[error("{BATCH_QUEUE_MAX} batches already queued")]
pub struct QueueFull;

/// Default per-partner quota: four of the largest uploads.
pub const PARTNER_QUOTA_DEFAULT: u64 = 4 * super::BATCH_BODY_MAX;
/// Default free-space reserve.
pub const MIN_FREE_DEFAULT: u64 = 1 << 30;
/// Default retention of uploaded files after their batch finished.
pub const UPLOAD_RETENTION_DEFAULT: Duration = Duration::from_secs(86_400);
/// Default retention of verdicts and statuses after their batch finished.
pub const VERDICT_RETENTION_DEFAULT: Duration = Duration::from_secs(30 * 86_400);
/// How often the worker looks for expired files while idle.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl Default for StorageLimits {
    fn default() -> Self {
        StorageLimits {
            partner_quota: PARTNER_QUOTA_DEFAULT,
            min_free: MIN_FREE_DEFAULT,
            upload_retention: UPLOAD_RETENTION_DEFAULT,
            verdict_retention: VERDICT_RETENTION_DEFAULT,
        }
    }
}

/// Why an upload may not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StorageRefusal {
    /// The partner's quota would be exceeded.
    #[error("partner {partner} holds {held} bytes; with this upload it would exceed its quota of {quota} bytes (finished batches expire: uploads after {upload_retention:?}, verdicts after {verdict_retention:?})")]
    Quota {
        /// The partner.
        partner: String,
        /// Bytes it holds, including uploads in flight.
        held: u64,
        /// Its quota.
        quota: u64,
        /// Retention of uploads.
        upload_retention: Duration,
        /// Retention of verdicts.
        verdict_retention: Duration,
    },
    /// The store's file system would fall below its free-space reserve.
    #[error("the issuer's disk has {available} bytes free and keeps {reserve} in reserve")]
    Disk {
        /// Bytes available now.
        available: u64,
        /// The reserve.
        reserve: u64,
    },
    /// The free space could not be read.
    #[error("reading the free space: {0}")]
    Io(#[from] std::io::Error),
}

/// An upload's claim on its partner's quota while its bytes arrive; released when dropped
/// (by then the file is either stored, and counted from the disk, or removed).
pub struct UploadCharge {
    batches: Arc<Batches>,
    partner: String,
    /// What the partner held on disk when the upload began.
    stored: u64,
    charged: u64,
}

impl UploadCharge {
    /// Counts `n` more bytes of the upload; refuses once the quota or the disk reserve
    /// would be passed.
    pub fn charge(&mut self, n: u64) -> Result<(), StorageRefusal> {
        let in_flight = {
            let mut inflight = self.batches.lock_inflight();
            let held = inflight.entry(self.partner.clone()).or_insert(0);
            *held += n;
            *held
        };
        self.charged += n;
        self.batches
            .check(&self.partner, self.stored.saturating_add(in_flight), 0)
    }
}

impl Drop for UploadCharge {
    fn drop(&mut self) {
        let mut inflight = self.batches.lock_inflight();
        if let Some(held) = inflight.get_mut(&self.partner) {
            *held = held.saturating_sub(self.charged);
            if *held == 0 {
                inflight.remove(&self.partner);
            }
        }
    }
}

/// Bytes available to unprivileged writers on the file system holding `dir`.
fn available_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Where a batch stands.
#[derive(Clone, Debug, Serialize)]
pub struct BatchStatus {
    /// Batch id.
    pub id: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// Records cleared so far.
    pub records_done: u64,
    /// Records in the file (from its header).
    pub records_total: u64,
    /// The clearing summary (`ClearSummary` as JSON), once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The registry and the queue.
pub struct Batches {
    dir: PathBuf,
    status: Mutex<HashMap<String, BatchStatus>>,
    /// Batches waiting for the worker, in upload order. New uploads are refused when
    /// [`BATCH_QUEUE_MAX`] wait; batches resumed at start are queued whatever their number.
    queue: Mutex<VecDeque<String>>,
    wake: Condvar,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    chunk_records: usize,
    clock: super::Clock,
    limits: StorageLimits,
    /// Bytes of uploads in flight, per partner.
    inflight: Mutex<HashMap<String, u64>>,
    last_sweep: Mutex<Instant>,
    /// Set on shutdown: the running batch stops after its current chunk.
    pub stop: Arc<AtomicBool>,
}

fn status_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.status.json"))
}

impl Batches {
    /// The batch directory of a store.
    pub fn dir_of(store: &Path) -> PathBuf {
        store.join("batches")
    }

    /// Opens the registry, queues unfinished batches and starts the worker.
    pub fn start(
        issuer: Arc<Issuer>,
        store: &Path,
        chunk_records: usize,
        clock: super::Clock,
        limits: StorageLimits,
    ) -> std::io::Result<Arc<Batches>> {
        let dir = Self::dir_of(store);
        std::fs::create_dir_all(&dir)?;
        // Uploaded batches and their verdicts are the clearing partners' business alone.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let batches = Arc::new(Batches {
            dir: dir.clone(),
            status: Mutex::new(HashMap::new()),
            queue: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            worker: Mutex::new(None),
            chunk_records,
            clock,
            limits,
            inflight: Mutex::new(HashMap::new()),
            last_sweep: Mutex::new(Instant::now()),
            stop: Arc::new(AtomicBool::new(false)),
        });
        // What expired while the server was down goes before anything is loaded.
        batches.sweep();
        let mut pending = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".mcb.part") {
                // An upload cut off before it completed: it was never acknowledged.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            // A finished batch is known by its status (its upload may have expired); an
            // upload without one is unfinished.
            if let Some(id) = name.strip_suffix(".status.json") {
                if let Some(summary) = std::fs::read(entry.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                {
                    batches.set(BatchStatus {
                        id: id.to_owned(),
                        state: "done",
                        records_done: summary.get("records").and_then(Value::as_u64).unwrap_or(0),
                        records_total: summary
                            .get("header_records")
                            .and_then(Value::as_u64)
                            .unwrap_or(0),
                        summary: Some(summary),
                        error: None,
                    });
                }
            } else if let Some(id) = name.strip_suffix(".mcb") {
                if !status_path(&dir, id).exists() {
                    let uploaded = entry.metadata().and_then(|m| m.modified()).ok();
                    pending.push((uploaded, id.to_owned()));
                }
            }
        }
        // Every unfinished batch resumes, however many, in the order they were uploaded
        // (the rename that completed each upload set its time).
        pending.sort();
        for (_, id) in pending {
            tracing::info!(batch = %id, "resuming an unfinished batch");
            batches.push(id, usize::MAX);
        }
        let worker = batches.clone();
        let handle = std::thread::Builder::new()
            .name("microcash-batches".into())
            .spawn(move || worker.run(issuer))?;
        *batches.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(batches)
    }

    fn lock_inflight(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes `partner` holds on disk: its batches' uploads, verdicts and statuses.
    fn stored_bytes(&self, partner: &str) -> u64 {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".partner")?.to_owned();
                (std::fs::read_to_string(e.path()).ok()? == partner).then_some(id)
            })
            .map(|id| {
                [
                    self.batch_path(&id),
                    self.verdicts_path(&id),
                    status_path(&self.dir, &id),
                    self.partner_path(&id),
                ]
                .iter()
                .map(|p| file_len(p))
                .sum::<u64>()
            })
            .sum()
    }

    /// Refuses when `partner` holding `held` bytes plus `more` would pass its quota, or
    /// `more` bytes would eat into the disk reserve.
    fn check(&self, partner: &str, held: u64, more: u64) -> Result<(), StorageRefusal> {
        if held.saturating_add(more) > self.limits.partner_quota {
            return Err(StorageRefusal::Quota {
                partner: partner.to_owned(),
                held,
                quota: self.limits.partner_quota,
                upload_retention: self.limits.upload_retention,
                verdict_retention: self.limits.verdict_retention,
            });
        }
        let available = available_bytes(&self.dir)?;
        if available < self.limits.min_free.saturating_add(more) {
            return Err(StorageRefusal::Disk {
                available,
                reserve: self.limits.min_free,
            });
        }
        Ok(())
    }

    /// Admits an upload of `announced` bytes (when the client said) by `partner`, before
    /// any of its body is read; its bytes are then charged as they arrive.
    pub fn admit(
        self: &Arc<Self>,
        partner: &str,
        announced: Option<u64>,
    ) -> Result<UploadCharge, StorageRefusal> {
        let stored = self.stored_bytes(partner);
        let in_flight = self.lock_inflight().get(partner).copied().unwrap_or(0);
        self.check(
            partner,
            stored.saturating_add(in_flight),
            announced.unwrap_or(0),
        )?;
        Ok(UploadCharge {
            batches: self.clone(),
            partner: partner.to_owned(),
            stored,
            charged: 0,
        })
    }

    /// Removes what has expired: the upload of a batch finished `upload_retention` ago, and
    /// everything of one finished `verdict_retention` ago (its status last, so a crash
    /// midway leaves a batch that is still known as finished and is swept again).
    pub fn sweep(&self) {
        *self.last_sweep.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".status.json") else {
                continue;
            };
            let Some(age) = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|finished| now.duration_since(finished).ok())
            else {
                continue;
            };
            let upload = self.batch_path(id);
            if age >= self.limits.verdict_retention {
                for path in [upload, self.verdicts_path(id), self.partner_path(id)] {
                    let _ = std::fs::remove_file(path);
                }
                let _ = std::fs::remove_file(entry.path());
                self.status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
                metrics::counter!("microcash_batches_expired_total").increment(1);
                tracing::info!(batch = %id, "finished batch expired: verdicts and status removed");
            } else if age >= self.limits.upload_retention && upload.exists() {
                let _ = std::fs::remove_file(&upload);
                tracing::info!(batch = %id, "finished batch's upload expired and was removed");
            }
        }
    }

    fn sweep_due(&self) -> bool {
        self.last_sweep
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            >= SWEEP_INTERVAL
    }

    /// Whether a new upload would find room in the queue (checked before its body is read).
    pub fn has_room(&self) -> bool {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len() < BATCH_QUEUE_MAX
    }

    /// Stops the worker after its current chunk and waits for it (shutdown).
    pub fn shut_down(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_all();
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                tracing::error!("the batch worker panicked");
            }
        }
    }

    fn queue_depth(&self, depth: usize) {
        metrics::gauge!("microcash_queue_depth", "queue" => "batches").set(depth as f64);
    }

    /// Marks `id` queued and appends it unless `limit` batches already wait.
    fn push(&self, id: String, limit: usize) -> bool {
        let total = crate::engine::batch_file::BatchReader::open(&self.batch_path(&id))
            .map(|r| r.header().record_count)
            .unwrap_or(0);
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= limit {
            return false;
        }
        self.set(BatchStatus {
            id: id.clone(),
            state: "queued",
            records_done: 0,
            records_total: total,
            summary: None,
            error: None,
        });
        q.push_back(id);
        self.queue_depth(q.len());
        drop(q);
        self.wake.notify_one();
        true
    }

    /// The next batch to clear, or `None` once the server stops.
    fn next(&self) -> Option<String> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None; // what is still queued resumes on the next start
            }
            if let Some(id) = q.pop_front() {
                self.queue_depth(q.len());
                return Some(id);
            }
            if self.sweep_due() {
                drop(q);
                self.sweep();
                q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                continue;
            }
            q = self
                .wake
                .wait_timeout(q, std::time::Duration::from_millis(500))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn set(&self, s: BatchStatus) {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(s.id.clone(), s);
    }

    /// The status of a batch.
    pub fn get(&self, id: &str) -> Option<BatchStatus> {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Path of a batch's uploaded file.
    pub fn batch_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.mcb"))
    }

    /// Path of a batch's verdicts.
    pub fn verdicts_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.verdicts.jsonl"))
    }

    /// Which clearing partner uploaded a batch (written before the batch is accepted).
    pub fn partner_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.partner"))
    }

    /// The clearing partner that uploaded `id`, if known.
    pub fn partner(&self, id: &str) -> Option<String> {
        std::fs::read_to_string(self.partner_path(id)).ok()
    }

    /// Where an upload is written before it is complete.
    pub fn partial_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.mcb.part"))
    }

    /// Queues an uploaded batch; `Err` when [`BATCH_QUEUE_MAX`] already wait.
    pub fn enqueue(&self, id: String) -> Result<(), QueueFull> {
        if self.push(id, BATCH_QUEUE_MAX) {
            Ok(())
        } else {
            Err(QueueFull)
        }
    }

    fn run(&self, issuer: Arc<Issuer>) {
        while let Some(id) = self.next() {
            let total = self.get(&id).map_or(0, |s| s.records_total);
            self.set(BatchStatus {
                id: id.clone(),
                state: "running",
                records_done: 0,
                records_total: total,
                summary: None,
                error: None,
            });
            let options = ClearOptions {
                verdicts: Some(self.verdicts_path(&id)),
                stop: Some(self.stop.clone()),
                chunk_records: self.chunk_records,
                now: self.clock.now(),
                ..ClearOptions::default()
            };
            let progress = |done: u64, total: u64| {
                self.set(BatchStatus {
                    id: id.clone(),
                    state: "running",
                    records_done: done,
                    records_total: total,
                    summary: None,
                    error: None,
                });
            };
            match issuer
                .engine()
                .clear(&self.batch_path(&id), &options, &progress)
            {
                Ok(summary) if summary.interrupted => {
                    tracing::info!(batch = %id, "batch interrupted by shutdown; it resumes on restart");
                }
                Ok(summary) => {
                    #[allow(clippy::expect_used, reason = "a derived Serialize of plain fields")]
                    let bytes = serde_json::to_vec(&summary).expect("summary serialises");
                    if let Err(e) = crate::store::files::write_atomic(
                        &status_path(&self.dir, &id),
                        &bytes,
                        0o644,
                    ) {
                        tracing::error!(batch = %id, error = %e, "writing the batch status failed");
                    }
                    self.set(BatchStatus {
                        id: id.clone(),
                        state: "done",
                        records_done: summary.records,
                        records_total: summary.header_records,
                        summary: serde_json::to_value(&summary).ok(),
                        error: None,
                    });
                    self.sweep();
                }
                Err(e) => {
                    tracing::error!(batch = %id, error = %e, "clearing failed");
                    self.set(BatchStatus {
                        id: id.clone(),
                        state: "failed",
                        records_done: 0,
                        records_total: total,
                        summary: None,
                        error: Some(e.to_string()),
                    });
                }
            }
        }
    }
}
