//! The spent set: for each key epoch, a memory-mapped bloom filter in front of a
//! memory-mapped open-addressing table of serial → receipt id, behind a write-ahead journal.
//!
//! ```text
//! <dir>/LOCK                     exclusive lock while open
//! <dir>/journal.wal              commit groups of receipt entries (the settlement journal)
//! <dir>/checkpoint.json          journal offset applied to the maps + account credits
//! <dir>/epoch-NNNN/bloom.bin     split-block bloom filter
//! <dir>/epoch-NNNN/table.bin     open-addressing table (receipt id = journal offset)
//! ```
//!
//! # Durability
//! [`SpentSet::commit`] appends one frame and fsyncs it (group commit) *before* touching the
//! maps, and returns only then: accepted means durable. The maps are caches of the journal:
//! they are flushed at checkpoints, and on open the journal is replayed from the checkpoint
//! (inserts are idempotent). A serial's credit is in the same journal entry as the serial,
//! so neither can exist without the other.

mod bloom;
pub mod receipt;
mod table;
pub mod wal;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use receipt::ReceiptEntry;
pub use wal::{FileIo, JournalError, JournalIo, RecoveryReport};

use bloom::Bloom;
use table::{capacity_for, Insert, Table};
use wal::Journal;

/// Spent-set errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpentSetError {
    /// File system failure on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Journal failure (including a poisoned journal after a failed fsync).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Another process holds the store.
    #[error("store {0} is locked by another process")]
    Locked(PathBuf),
    /// A file that does not parse.
    #[error("spent set corrupted: {0}")]
    Corrupted(String),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SpentSetError + '_ {
    move |source| SpentSetError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Sizing and checkpoint policy.
#[derive(Clone, Copy, Debug)]
pub struct SpentSetConfig {
    /// Serials expected per epoch (initial table and bloom size; tables grow past it).
    pub expected_serials_per_epoch: u64,
    /// Checkpoint (flush maps, record the applied journal offset) every this many commits.
    pub checkpoint_every_commits: u32,
}

impl Default for SpentSetConfig {
    fn default() -> Self {
        SpentSetConfig {
            expected_serials_per_epoch: 1 << 16,
            checkpoint_every_commits: 64,
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct Checkpoint {
    applied: u64,
    credits: BTreeMap<String, u64>,
}

struct EpochSet {
    dir: PathBuf,
    bloom: Bloom,
    table: Table,
}

impl EpochSet {
    fn open_or_create(dir: &Path, expected: u64) -> Result<EpochSet, SpentSetError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let tpath = dir.join("table.bin");
        let bpath = dir.join("bloom.bin");
        let _ = fs::remove_file(dir.join("table.bin.grow"));
        let _ = fs::remove_file(dir.join("bloom.bin.grow"));
        if tpath.exists() && bpath.exists() {
            let table = Table::open(&tpath).map_err(io_at(&tpath))?;
            let bloom = Bloom::open(&bpath).map_err(io_at(&bpath))?;
            return Ok(EpochSet {
                dir: dir.to_owned(),
                bloom,
                table,
            });
        }
        // A half-created epoch (crash between the two files) is rebuilt from the journal.
        let table = Table::create(&tpath, capacity_for(expected)).map_err(io_at(&tpath))?;
        let bloom = Bloom::create(&bpath, expected).map_err(io_at(&bpath))?;
        Ok(EpochSet {
            dir: dir.to_owned(),
            bloom,
            table,
        })
    }

    fn lookup(&self, serial: &[u8; 32]) -> Option<u64> {
        if !self.bloom.may_contain(serial) {
            return None;
        }
        self.table.get(serial)
    }

    /// Grows table (and bloom) so that `extra` more entries fit at load ≤ 3/4.
    fn reserve(&mut self, extra: u64) -> Result<(), SpentSetError> {
        if !self.table.needs_growth(extra) {
            return Ok(());
        }
        let want = capacity_for(self.table.len() + extra).max(self.table.capacity() * 2);
        let grow = self.dir.join("table.bin.grow");
        let table = self.table.rehash_into(&grow, want).map_err(io_at(&grow))?;
        let bgrow = self.dir.join("bloom.bin.grow");
        let mut bloom = Bloom::create(&bgrow, want * 3 / 4).map_err(io_at(&bgrow))?;
        for (s, _) in table.entries() {
            bloom.insert(&s);
        }
        bloom.flush().map_err(io_at(&bgrow))?;
        let tpath = self.dir.join("table.bin");
        let bpath = self.dir.join("bloom.bin");
        // Table first: a crash between the renames leaves a bloom that is merely small.
        fs::rename(&grow, &tpath).map_err(io_at(&tpath))?;
        fs::rename(&bgrow, &bpath).map_err(io_at(&bpath))?;
        self.table = table;
        self.bloom = bloom;
        Ok(())
    }

    fn insert(&mut self, serial: &[u8; 32], id: u64) -> Insert {
        self.bloom.insert(serial);
        self.table.insert(serial, id)
    }

    fn flush(&self) -> Result<(), SpentSetError> {
        self.table.flush().map_err(io_at(&self.dir))?;
        self.bloom.flush().map_err(io_at(&self.dir))
    }
}

/// Counters for reports and metrics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SpentSetStats {
    /// Serials per epoch.
    pub serials_by_epoch: BTreeMap<u32, u64>,
    /// Journal bytes.
    pub journal_bytes: u64,
}

/// The spent set.
pub struct SpentSet<I: JournalIo = FileIo> {
    dir: PathBuf,
    _lock: fs::File,
    journal: Journal<I>,
    epochs: BTreeMap<u32, EpochSet>,
    credits: BTreeMap<String, u64>,
    applied: u64,
    commits_since_checkpoint: u32,
    config: SpentSetConfig,
    /// Tests set this to model a crash: drop without the final checkpoint.
    crash_on_drop: bool,
}

impl SpentSet<FileIo> {
    /// Opens (or creates) the spent set in `dir`, recovering from its journal.
    pub fn open(
        dir: &Path,
        config: SpentSetConfig,
    ) -> Result<(SpentSet<FileIo>, RecoveryReport), SpentSetError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let jpath = dir.join("journal.wal");
        let io = FileIo::open(&jpath).map_err(io_at(&jpath))?;
        SpentSet::open_with_io(dir, io, config)
    }
}

impl<I: JournalIo> SpentSet<I> {
    /// Opens with a given journal I/O (tests inject failures here).
    pub fn open_with_io(
        dir: &Path,
        io: I,
        config: SpentSetConfig,
    ) -> Result<(SpentSet<I>, RecoveryReport), SpentSetError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let lock_path = dir.join("LOCK");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_at(&lock_path))?;
        lock.try_lock()
            .map_err(|_| SpentSetError::Locked(dir.to_owned()))?;
        let (journal, report) = Journal::open(io)?;
        let cp_path = dir.join("checkpoint.json");
        let cp: Checkpoint = match fs::read(&cp_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| SpentSetError::Corrupted(format!("checkpoint: {e}")))?,
            Err(_) => Checkpoint::default(),
        };
        if cp.applied > journal.end() {
            return Err(SpentSetError::Corrupted(format!(
                "checkpoint at journal byte {} but the journal ends at {}",
                cp.applied,
                journal.end()
            )));
        }
        let mut set = SpentSet {
            dir: dir.to_owned(),
            _lock: lock,
            journal,
            epochs: BTreeMap::new(),
            credits: cp.credits,
            applied: cp.applied,
            commits_since_checkpoint: 0,
            config,
            crash_on_drop: false,
        };
        for entry in fs::read_dir(dir).map_err(io_at(dir))? {
            let entry = entry.map_err(io_at(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(n) = name
                .strip_prefix("epoch-")
                .and_then(|n| n.parse::<u32>().ok())
            {
                set.epochs.insert(
                    n,
                    EpochSet::open_or_create(&entry.path(), config.expected_serials_per_epoch)?,
                );
            }
        }
        // Replay what the maps may not have: everything after the checkpoint.
        let replay: Vec<(u64, Vec<u8>)> = set
            .journal
            .payloads_from(set.applied)
            .collect::<Result<_, _>>()?;
        for (base, payload) in replay {
            let entries = receipt::decode_group(&payload)
                .map_err(|e| SpentSetError::Corrupted(format!("journal frame at {base}: {e}")))?;
            set.apply(base, &entries)?;
        }
        set.applied = set.journal.end();
        set.checkpoint()?;
        Ok((set, report))
    }

    fn epoch_mut(&mut self, epoch: u32) -> Result<&mut EpochSet, SpentSetError> {
        if !self.epochs.contains_key(&epoch) {
            let dir = self.dir.join(format!("epoch-{epoch:04}"));
            self.epochs.insert(
                epoch,
                EpochSet::open_or_create(&dir, self.config.expected_serials_per_epoch)?,
            );
        }
        Ok(self.epochs.get_mut(&epoch).expect("inserted above"))
    }

    fn apply(&mut self, base: u64, entries: &[(u64, ReceiptEntry)]) -> Result<(), SpentSetError> {
        let mut per_epoch: BTreeMap<u32, u64> = BTreeMap::new();
        for (_, e) in entries {
            *per_epoch.entry(e.epoch).or_default() += 1;
            for (_, ae) in &e.allowances {
                *per_epoch.entry(*ae).or_default() += 1;
            }
        }
        for (epoch, n) in per_epoch {
            self.epoch_mut(epoch)?.reserve(n)?;
        }
        for (offset, e) in entries {
            let id = base + offset;
            let set = self.epochs.get_mut(&e.epoch).expect("reserved above");
            if let Insert::Present(other) = set.insert(&e.serial, id) {
                if other != id {
                    return Err(SpentSetError::Corrupted(format!(
                        "serial in two receipts ({other} and {id})"
                    )));
                }
            }
            for (s, ae) in &e.allowances {
                self.epochs
                    .get_mut(ae)
                    .expect("reserved above")
                    .insert(s, id);
            }
            *self.credits.entry(e.target.clone()).or_default() += e.value;
        }
        Ok(())
    }

    /// The receipt id that spent `serial` in `epoch`, if any.
    pub fn lookup(&self, epoch: u32, serial: &[u8; 32]) -> Option<u64> {
        self.epochs.get(&epoch).and_then(|s| s.lookup(serial))
    }

    /// Reads the receipt entry with id `id`.
    pub fn receipt(&self, id: u64) -> Result<ReceiptEntry, SpentSetError> {
        let end = self.journal.end();
        if id >= end {
            return Err(SpentSetError::Corrupted(format!(
                "receipt {id} beyond the journal end {end}"
            )));
        }
        let len = (end - id).min(receipt::ENTRY_BYTES_MAX as u64) as usize;
        let mut buf = vec![0u8; len];
        self.journal.read_at(id, &mut buf)?;
        let mut r = crate::protocol::encoding::Reader::new(&buf);
        ReceiptEntry::decode(&mut r)
            .map_err(|e| SpentSetError::Corrupted(format!("receipt {id}: {e}")))
    }

    /// Durably records `entries` as one commit group (one fsync) and applies them. Returns
    /// each entry's receipt id. The caller has checked the serials are unspent.
    pub fn commit(&mut self, entries: &[ReceiptEntry]) -> Result<Vec<u64>, SpentSetError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (payload, offsets) = receipt::encode_group(entries);
        let base = self.journal.commit(&payload)?;
        let pairs: Vec<(u64, ReceiptEntry)> = offsets
            .iter()
            .copied()
            .zip(entries.iter().cloned())
            .collect();
        self.apply(base, &pairs)?;
        self.applied = self.journal.end();
        self.commits_since_checkpoint += 1;
        if self.commits_since_checkpoint >= self.config.checkpoint_every_commits {
            self.checkpoint()?;
        }
        Ok(offsets.iter().map(|o| base + o).collect())
    }

    /// Flushes the maps and records the applied journal offset with the credits.
    pub fn checkpoint(&mut self) -> Result<(), SpentSetError> {
        for set in self.epochs.values() {
            set.flush()?;
        }
        let cp = Checkpoint {
            applied: self.applied,
            credits: self.credits.clone(),
        };
        let bytes = serde_json::to_vec(&cp).expect("checkpoint serialises");
        let path = self.dir.join("checkpoint.json");
        crate::issuer::files::write_atomic(&path, &bytes, 0o644)
            .map_err(|e| SpentSetError::Corrupted(format!("writing checkpoint: {e}")))?;
        self.commits_since_checkpoint = 0;
        Ok(())
    }

    /// Total value credited per target (`account:<name>`, `swap:<digest>`).
    pub fn credits(&self) -> &BTreeMap<String, u64> {
        &self.credits
    }

    /// Whether a failed fsync closed the store for writes.
    pub fn is_poisoned(&self) -> bool {
        self.journal.is_poisoned()
    }

    /// Drops the set as a crash would: no final checkpoint (the maps keep whatever pages
    /// the kernel wrote back; recovery replays the journal).
    pub fn simulate_crash(mut self) {
        self.crash_on_drop = true;
    }

    /// Counters.
    pub fn stats(&self) -> SpentSetStats {
        SpentSetStats {
            serials_by_epoch: self
                .epochs
                .iter()
                .map(|(e, s)| (*e, s.table.len()))
                .collect(),
            journal_bytes: self.journal.end(),
        }
    }

    /// Moves an (expired) epoch's bloom and table out of the live set into `archive/`.
    /// Its serials stay in the journal; deposits of expired keysets are refused before the
    /// spent set is consulted.
    pub fn archive_epoch(&mut self, epoch: u32) -> Result<(), SpentSetError> {
        self.checkpoint()?;
        if let Some(set) = self.epochs.remove(&epoch) {
            let to = self.dir.join("archive").join(format!("epoch-{epoch:04}"));
            fs::create_dir_all(to.parent().expect("has parent")).map_err(io_at(&to))?;
            let from = set.dir.clone();
            drop(set);
            fs::rename(&from, &to).map_err(io_at(&to))?;
        }
        Ok(())
    }
}

impl<I: JournalIo> Drop for SpentSet<I> {
    fn drop(&mut self) {
        if !self.journal.is_poisoned() && !self.crash_on_drop {
            let _ = self.checkpoint();
        }
    }
}

/// Probes prefetched this many serials ahead (overlapping their memory latencies).
const PREFETCH_AHEAD: usize = 8;

impl EpochSet {
    /// Probe-then-insert of many serials (ids `first_id`, `first_id + 1`, …), prefetching the
    /// bloom block and table slot of each a few serials ahead. Returns how many were new.
    fn probe_insert_many(&mut self, serials: &[[u8; 32]], first_id: u64) -> u64 {
        for s in serials.iter().take(PREFETCH_AHEAD) {
            self.bloom.prefetch(s);
            self.table.prefetch(s);
        }
        let mut inserted = 0;
        for (i, s) in serials.iter().enumerate() {
            if let Some(ahead) = serials.get(i + PREFETCH_AHEAD) {
                self.bloom.prefetch(ahead);
                self.table.prefetch(ahead);
            }
            if self.lookup(s).is_none() && self.insert(s, first_id + i as u64) == Insert::Inserted {
                inserted += 1;
            }
        }
        inserted
    }
}

/// Benchmark helper: probe-then-insert of each (fresh) serial on a bloom + table pair in
/// `dir`, sized for them, without the journal. Returns operations per second.
pub fn bench_probe_insert(dir: &Path, serials: &[[u8; 32]]) -> f64 {
    let _ = fs::remove_dir_all(dir);
    let Ok(mut set) = EpochSet::open_or_create(dir, serials.len() as u64) else {
        return 0.0;
    };
    let start = std::time::Instant::now();
    let inserted = set.probe_insert_many(serials, 1);
    let rate = inserted as f64 / start.elapsed().as_secs_f64();
    drop(set);
    let _ = fs::remove_dir_all(dir);
    rate
}

#[cfg(test)]
mod tests;
