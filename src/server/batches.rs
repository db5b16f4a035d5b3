//! Batch uploads: streamed to disk as they arrive, queued (bounded), cleared one at a time
//! by a worker thread through the engine, with progress and verdicts on disk.
//!
//! ```text
//! <store>/batches/<id>.mcb             the uploaded batch
//! <store>/batches/<id>.verdicts.jsonl  its verdicts (written while clearing)
//! <store>/batches/<id>.status.json     the final summary (present once done)
//! ```
//!
//! On start every batch without a final status is queued again: clearing is idempotent,
//! so a batch interrupted by a shutdown or a crash resumes where the journal says it was.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde::Serialize;

use crate::engine::ClearOptions;
use crate::issuer::Issuer;

/// Batches waiting to be cleared, at most (more get 429).
pub const BATCH_QUEUE_MAX: usize = 16;

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
            stop: Arc::new(AtomicBool::new(false)),
        });
        let mut pending = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".mcb.part") {
                // An upload cut off before it completed: it was never acknowledged.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            if let Some(id) = name.strip_suffix(".mcb") {
                match std::fs::read(status_path(&dir, id))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                {
                    Some(summary) => batches.set(BatchStatus {
                        id: id.to_owned(),
                        state: "done",
                        records_done: summary["records"].as_u64().unwrap_or(0),
                        records_total: summary["header_records"].as_u64().unwrap_or(0),
                        summary: Some(summary),
                        error: None,
                    }),
                    None => {
                        let uploaded = entry.metadata().and_then(|m| m.modified()).ok();
                        pending.push((uploaded, id.to_owned()));
                    }
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
    pub fn enqueue(&self, id: String) -> Result<(), ()> {
        if self.push(id, BATCH_QUEUE_MAX) {
            Ok(())
        } else {
            Err(())
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
