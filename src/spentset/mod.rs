//! The spent set: for each key epoch, a memory-mapped bloom filter in front of a
//! memory-mapped open-addressing table of serial → receipt id, behind a write-ahead journal.
//!
//! ```text
//! <dir>/LOCK                     exclusive lock while open (every writer holds it)
//! <dir>/journal.wal              commit groups of receipt entries (the settlement journal)
//! <dir>/journal.mark             how much of the journal was acknowledged (two slots)
//! <dir>/checkpoint.json          journal offset + account credits there, checksummed
//! <dir>/epoch-NNNN/bloom.bin     split-block bloom filter   } sealed caches of the journal
//! <dir>/epoch-NNNN/table.bin     open-addressing table      } (receipt id = journal offset)
//! <dir>/archive/epoch-NNNN/      maps of archived (expired) epochs
//! ```
//!
//! # The journal is the only truth
//! [`SpentSet::commit`] refuses a serial the maps (or the group itself) already hold
//! *before* anything is written, then appends one frame, fsyncs it, advances the durable
//! mark, and only then touches the maps and returns: accepted means durable. Opening walks
//! the whole journal: credits are summed from it (never read from a cache) and checked
//! against the checkpoint; each epoch's maps are trusted only if their seal (written on a
//! clean close, `seal`) names this epoch and a prefix of this journal and their checksum
//! holds — then only the journal after that prefix is applied. Missing, stale, unsealed
//! (crash) or damaged maps are rebuilt from the journal. A serial found in two receipts is
//! refused as damage. All durable files go through [`Disk`], so the fault simulator
//! ([`sim`]) can tear, lose, flip and refuse their writes.

mod bloom;
pub mod check;
mod disk;
pub mod receipt;
mod seal;
#[cfg(test)]
pub(crate) mod sim;
mod table;
pub mod wal;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use disk::{write_atomic, Disk, FileIo, FsDisk, JournalIo};
pub use receipt::ReceiptEntry;
pub use wal::{JournalError, RecoveryReport};

use bloom::Bloom;
use seal::{Seal, Sealed};
use table::{capacity_for, Insert, Table};
use wal::{Journal, JOURNAL_FILE, MARK_FILE};

/// The checkpoint's file name.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";

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
    /// A durable file is damaged: nothing was changed. `microcash store check` reports,
    /// `microcash store rebuild` repairs what can be derived from the journal.
    #[error("{path}: damaged{}: {reason} (the store was left untouched; see `microcash store check`)", offset.map(|o| format!(" at byte {o}")).unwrap_or_default())]
    Damaged {
        /// The damaged file.
        path: PathBuf,
        /// Where in it, if known.
        offset: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// A commit would spend a serial that is already spent (or twice in one group): refused
    /// before anything was written.
    #[error("serial {serial} (epoch {epoch}) is already spent{}; nothing was written", receipt.map(|r| format!(" by receipt {r}")).unwrap_or_else(|| " earlier in the same commit".into()))]
    Conflict {
        /// The serial (hex).
        serial: String,
        /// Its epoch.
        epoch: u32,
        /// The receipt that spent it, if it is in the maps.
        receipt: Option<u64>,
    },
    /// A receipt entry beyond the encoding's bounds (refused before anything is written).
    #[error("{0}")]
    EntryTooLarge(String),
    /// A commit names an epoch whose maps were archived.
    #[error("epoch {0} is archived: its serials can no longer be spent")]
    Archived(u32),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SpentSetError + '_ {
    move |source| SpentSetError::Io {
        path: path.to_owned(),
        source,
    }
}

fn damaged(path: PathBuf, offset: Option<u64>, reason: impl Into<String>) -> SpentSetError {
    SpentSetError::Damaged {
        path,
        offset,
        reason: reason.into(),
    }
}

/// Sizing and checkpoint policy.
#[derive(Clone, Copy, Debug)]
pub struct SpentSetConfig {
    /// Serials expected per epoch (initial table and bloom size; tables grow past it).
    pub expected_serials_per_epoch: u64,
    /// Write the checkpoint (journal offset and credits there) every this many commits.
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

const CHECKPOINT_VERSION: u32 = 2;

#[derive(Serialize)]
struct CheckpointBody<'a> {
    version: u32,
    applied: u64,
    credits: &'a BTreeMap<String, u64>,
}

/// `checkpoint.json`. Version 2 carries a CRC-32 of its body; version 1 (no `version`, no
/// checksum) is still read, and its credits are checked against the journal all the same.
#[derive(Deserialize)]
struct CheckpointFile {
    #[serde(default)]
    version: u32,
    applied: u64,
    credits: BTreeMap<String, u64>,
    #[serde(default)]
    checksum: Option<String>,
}

fn checkpoint_checksum(applied: u64, credits: &BTreeMap<String, u64>) -> String {
    let body = CheckpointBody {
        version: CHECKPOINT_VERSION,
        applied,
        credits,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    format!("{:08x}", crc32fast::hash(&bytes))
}

fn encode_checkpoint(applied: u64, credits: &BTreeMap<String, u64>) -> Vec<u8> {
    let checksum = checkpoint_checksum(applied, credits);
    let doc = serde_json::json!({
        "version": CHECKPOINT_VERSION,
        "applied": applied,
        "credits": credits,
        "checksum": checksum,
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Reads and verifies `checkpoint.json` (`None` if absent).
fn read_checkpoint<D: Disk>(disk: &D) -> Result<Option<CheckpointFile>, SpentSetError> {
    let path = disk.path(CHECKPOINT_FILE);
    let Some(bytes) = disk.read(CHECKPOINT_FILE).map_err(io_at(&path))? else {
        return Ok(None);
    };
    let cp: CheckpointFile = serde_json::from_slice(&bytes)
        .map_err(|e| damaged(path.clone(), None, format!("does not parse: {e}")))?;
    match (cp.version, &cp.checksum) {
        (1 | 0, None) => {}
        (CHECKPOINT_VERSION, Some(sum)) if *sum == checkpoint_checksum(cp.applied, &cp.credits) => {
        }
        (CHECKPOINT_VERSION, _) => return Err(damaged(path, None, "checksum mismatch")),
        (v, _) => return Err(damaged(path, None, format!("unknown version {v}"))),
    }
    Ok(Some(cp))
}

struct EpochSet {
    dir: PathBuf,
    epoch: u32,
    bloom: Bloom,
    table: Table,
    /// Whether the files on disk are unsealed (new, rebuilt, or changed since open): a
    /// sealed set is unsealed before its first insert, and only unsealed sets are sealed
    /// again on close — opening a store to read it rewrites no map.
    open_for_writes: bool,
}

impl EpochSet {
    /// Creates empty maps for `epoch` in `dir` (replacing whatever is there).
    fn create(dir: &Path, epoch: u32, expected: u64) -> Result<EpochSet, SpentSetError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let tpath = dir.join("table.bin");
        let bpath = dir.join("bloom.bin");
        let table = Table::create(&tpath, capacity_for(expected), epoch).map_err(io_at(&tpath))?;
        let bloom = Bloom::create(&bpath, expected, epoch).map_err(io_at(&bpath))?;
        Ok(EpochSet {
            dir: dir.to_owned(),
            epoch,
            bloom,
            table,
            open_for_writes: true,
        })
    }

    /// Opens existing maps and checks their seal against the journal. Returns the maps with
    /// the journal offset they reflect, or why they cannot be trusted.
    fn open_sealed(
        dir: &Path,
        epoch: u32,
        frames: &[wal::FrameInfo],
        journal_end: u64,
    ) -> Result<(EpochSet, u64), String> {
        let _ = fs::remove_file(dir.join("table.bin.grow"));
        let _ = fs::remove_file(dir.join("bloom.bin.grow"));
        let tpath = dir.join("table.bin");
        let bpath = dir.join("bloom.bin");
        if !tpath.exists() || !bpath.exists() {
            return Err("missing".into());
        }
        let table = Table::open(&tpath).map_err(|e| e.to_string())?;
        let bloom = Bloom::open(&bpath).map_err(|e| e.to_string())?;
        let ts = table.seal().map_err(|e| format!("table.bin: {e}"))?;
        let bs = bloom.seal().map_err(|e| format!("bloom.bin: {e}"))?;
        if ts.epoch != epoch || bs.epoch != epoch {
            return Err(format!("sealed for epoch {} / {}", ts.epoch, bs.epoch));
        }
        if (ts.applied, ts.tag) != (bs.applied, bs.tag) {
            return Err("table and bloom filter reflect different journal prefixes".into());
        }
        if wal::tag_at(frames, ts.applied) != Some(ts.tag) || ts.applied > journal_end {
            return Err(format!(
                "sealed at journal byte {}, which is not a prefix of this journal",
                ts.applied
            ));
        }
        if table.body_crc() != ts.body_crc {
            return Err("table.bin: body checksum mismatch".into());
        }
        if bloom.body_crc() != bs.body_crc {
            return Err("bloom.bin: body checksum mismatch".into());
        }
        Ok((
            EpochSet {
                dir: dir.to_owned(),
                epoch,
                bloom,
                table,
                open_for_writes: false,
            },
            ts.applied,
        ))
    }

    fn lookup(&self, serial: &[u8; 32]) -> Option<u64> {
        if !self.bloom.may_contain(serial) {
            return None;
        }
        self.table.get(serial)
    }

    /// Grows table (and bloom) so that `extra` more entries fit at load ≤ 3/4.
    fn reserve(&mut self, extra: u64) -> Result<(), SpentSetError> {
        if extra > 0 && !self.open_for_writes {
            self.unseal()?;
        }
        if !self.table.needs_growth(extra) {
            return Ok(());
        }
        let want = capacity_for(self.table.len() + extra).max(self.table.capacity() * 2);
        let grow = self.dir.join("table.bin.grow");
        let table = self.table.rehash_into(&grow, want).map_err(io_at(&grow))?;
        let bgrow = self.dir.join("bloom.bin.grow");
        let mut bloom = Bloom::create(&bgrow, want * 3 / 4, self.epoch).map_err(io_at(&bgrow))?;
        for (s, _) in table.entries() {
            bloom.insert(&s);
        }
        bloom.flush().map_err(io_at(&bgrow))?;
        let tpath = self.dir.join("table.bin");
        let bpath = self.dir.join("bloom.bin");
        // Both new files are unsealed: whatever a crash between the renames leaves is
        // rebuilt from the journal.
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

    /// Marks the maps open for writes (a crash from now on leaves them unsealed).
    fn unseal(&mut self) -> Result<(), SpentSetError> {
        self.table
            .set_seal(self.epoch, None)
            .map_err(io_at(&self.dir))?;
        self.bloom
            .set_seal(self.epoch, None)
            .map_err(io_at(&self.dir))?;
        self.open_for_writes = true;
        Ok(())
    }

    /// Flushes the maps, then seals them as reflecting the journal up to `applied` (maps
    /// still sealed from the open need nothing: no entry was added to them).
    fn seal(&mut self, applied: u64, tag: u64) -> Result<(), SpentSetError> {
        if !self.open_for_writes {
            return Ok(());
        }
        self.table.flush().map_err(io_at(&self.dir))?;
        self.bloom.flush().map_err(io_at(&self.dir))?;
        let t = Seal {
            epoch: self.epoch,
            applied,
            tag,
            body_crc: self.table.body_crc(),
        };
        let b = Seal {
            body_crc: self.bloom.body_crc(),
            ..t
        };
        self.table
            .set_seal(self.epoch, Some(t))
            .map_err(io_at(&self.dir))?;
        self.bloom
            .set_seal(self.epoch, Some(b))
            .map_err(io_at(&self.dir))?;
        self.open_for_writes = false;
        Ok(())
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
pub struct SpentSet<D: Disk = FsDisk> {
    dir: PathBuf,
    _lock: fs::File,
    disk: D,
    journal: Journal<D::File>,
    epochs: BTreeMap<u32, EpochSet>,
    archived: BTreeSet<u32>,
    credits: BTreeMap<String, u64>,
    commits_since_checkpoint: u32,
    config: SpentSetConfig,
    /// Tests set this to model a crash: drop without sealing the maps.
    crash_on_drop: bool,
}

/// Creates `dir` and takes its exclusive lock (held for as long as the file is open).
fn lock_dir(dir: &Path) -> Result<fs::File, SpentSetError> {
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
    Ok(lock)
}

fn epoch_dir_number(name: &str) -> Option<u32> {
    name.strip_prefix("epoch-")
        .and_then(|n| n.parse::<u32>().ok())
}

fn epoch_dirs(dir: &Path) -> Result<BTreeSet<u32>, SpentSetError> {
    if !dir.exists() {
        return Ok(BTreeSet::new());
    }
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        if let Some(n) = epoch_dir_number(&entry.file_name().to_string_lossy()) {
            out.insert(n);
        }
    }
    Ok(out)
}

impl SpentSet<FsDisk> {
    /// Opens (or creates) the spent set in `dir`, recovering from its journal.
    pub fn open(
        dir: &Path,
        config: SpentSetConfig,
    ) -> Result<(SpentSet<FsDisk>, RecoveryReport), SpentSetError> {
        SpentSet::open_on(dir, FsDisk::new(dir), config, &|_, _| {})
    }

    /// [`SpentSet::open`] reporting replay progress (journal bytes done, total).
    pub fn open_with_progress(
        dir: &Path,
        config: SpentSetConfig,
        progress: &dyn Fn(u64, u64),
    ) -> Result<(SpentSet<FsDisk>, RecoveryReport), SpentSetError> {
        SpentSet::open_on(dir, FsDisk::new(dir), config, progress)
    }
}

impl<D: Disk> SpentSet<D> {
    /// Opens with the durable files on `disk` (the maps stay real files in `dir`).
    pub fn open_on(
        dir: &Path,
        disk: D,
        config: SpentSetConfig,
        progress: &dyn Fn(u64, u64),
    ) -> Result<(SpentSet<D>, RecoveryReport), SpentSetError> {
        let lock = lock_dir(dir)?;
        SpentSet::open_locked(dir, lock, disk, config, progress)
    }

    fn open_locked(
        dir: &Path,
        lock: fs::File,
        disk: D,
        config: SpentSetConfig,
        progress: &dyn Fn(u64, u64),
    ) -> Result<(SpentSet<D>, RecoveryReport), SpentSetError> {
        let checkpoint = read_checkpoint(&disk)?;
        let jpath = disk.path(JOURNAL_FILE);
        let io = disk.open(JOURNAL_FILE).map_err(io_at(&jpath))?;
        let mpath = disk.path(MARK_FILE);
        let mark = disk.open(MARK_FILE).map_err(io_at(&mpath))?;
        let floor = checkpoint.as_ref().map_or(0, |c| c.applied);
        let (journal, mut report) = Journal::open(io, mark, floor).map_err(|e| match e {
            JournalError::Corrupted {
                file,
                offset,
                reason,
            } => damaged(disk.path(file), Some(offset), reason),
            other => SpentSetError::Journal(other),
        })?;
        let archived = epoch_dirs(&dir.join("archive"))?;
        let mut set = SpentSet {
            dir: dir.to_owned(),
            _lock: lock,
            disk,
            journal,
            epochs: BTreeMap::new(),
            archived,
            credits: BTreeMap::new(),
            commits_since_checkpoint: 0,
            config,
            // Until the open completes, dropping the half-open set must write nothing.
            crash_on_drop: true,
        };
        // Maps on disk whose epoch the journal never mentions are checked too (a journal
        // from elsewhere makes them stale: they are rebuilt, i.e. emptied).
        let mut starts: BTreeMap<u32, u64> = BTreeMap::new();
        for epoch in epoch_dirs(dir)? {
            if !set.archived.contains(&epoch) {
                let start = set.load_epoch(epoch, &mut report)?;
                starts.insert(epoch, start);
            }
        }
        set.replay(checkpoint, &mut starts, &mut report, progress)?;
        set.checkpoint()?;
        set.crash_on_drop = false;
        Ok((set, report))
    }

    /// Opens or rebuilds `epoch`'s maps; returns the first receipt id they still need.
    fn load_epoch(
        &mut self,
        epoch: u32,
        report: &mut RecoveryReport,
    ) -> Result<u64, SpentSetError> {
        let dir = self.dir.join(format!("epoch-{epoch:04}"));
        let opened = EpochSet::open_sealed(&dir, epoch, self.journal.frames(), self.journal.end());
        let (set, start) = match opened {
            Ok(found) => found,
            Err(why) => {
                if why != "missing" || self.journal.end() > wal::FILE_HEADER_BYTES {
                    tracing::warn!(epoch, reason = %why, "spent-set maps rebuilt from the journal");
                }
                report.maps_rebuilt.push(epoch);
                let set = EpochSet::create(&dir, epoch, self.config.expected_serials_per_epoch)?;
                (set, 0)
            }
        };
        self.epochs.insert(epoch, set);
        Ok(start)
    }

    /// One pass over the journal: credits from every entry; serials into the maps that do
    /// not have them yet; the checkpoint's credits checked where it was written.
    fn replay(
        &mut self,
        checkpoint: Option<CheckpointFile>,
        starts: &mut BTreeMap<u32, u64>,
        report: &mut RecoveryReport,
        progress: &dyn Fn(u64, u64),
    ) -> Result<(), SpentSetError> {
        let jpath = self.disk.path(JOURNAL_FILE);
        let total = self.journal.end();
        if let Some(cp) = checkpoint
            .as_ref()
            .filter(|c| c.applied <= wal::FILE_HEADER_BYTES)
        {
            self.check_checkpoint_credits(cp)?;
        }
        let frames = self.journal.frames().to_vec();
        for frame in frames {
            let (base, payload) = self.journal.payload(&frame)?;
            let entries = receipt::decode_group(&payload).map_err(|e| {
                damaged(
                    jpath.clone(),
                    Some(frame.offset),
                    format!("frame does not decode: {e}"),
                )
            })?;
            let mut per_epoch: BTreeMap<u32, u64> = BTreeMap::new();
            for (off, e) in &entries {
                let id = base + off;
                for ep in std::iter::once(e.epoch).chain(e.allowances.iter().map(|(_, ep)| *ep)) {
                    if self.archived.contains(&ep) {
                        continue;
                    }
                    if let std::collections::btree_map::Entry::Vacant(slot) = starts.entry(ep) {
                        slot.insert(self.load_epoch(ep, report)?);
                    }
                    if id >= starts[&ep] {
                        *per_epoch.entry(ep).or_default() += 1;
                    }
                }
            }
            for (ep, n) in per_epoch {
                #[allow(clippy::expect_used, reason = "every epoch counted was loaded above")]
                let set = self.epochs.get_mut(&ep).expect("loaded above");
                set.reserve(n)?;
            }
            for (off, e) in &entries {
                let id = base + off;
                let serials = std::iter::once((&e.serial, e.epoch))
                    .chain(e.allowances.iter().map(|(s, ep)| (s, *ep)));
                for (serial, ep) in serials {
                    if self.archived.contains(&ep) || id < starts[&ep] {
                        continue;
                    }
                    #[allow(clippy::expect_used, reason = "every epoch counted was loaded above")]
                    let set = self.epochs.get_mut(&ep).expect("loaded above");
                    if let Insert::Present(other) = set.insert(serial, id) {
                        if other != id {
                            return Err(damaged(
                                jpath.clone(),
                                Some(id),
                                format!(
                                    "serial {} (epoch {ep}) is spent by two receipts, at bytes \
                                     {other} and {id}",
                                    hex::encode(serial)
                                ),
                            ));
                        }
                    }
                }
                let credit = self.credits.entry(e.target.clone()).or_default();
                *credit = credit.saturating_add(e.value);
            }
            report.entries += entries.len() as u64;
            if let Some(cp) = checkpoint.as_ref().filter(|c| c.applied == frame.end()) {
                self.check_checkpoint_credits(cp)?;
            }
            progress(frame.end(), total);
        }
        Ok(())
    }

    fn check_checkpoint_credits(&self, cp: &CheckpointFile) -> Result<(), SpentSetError> {
        if cp.credits == self.credits {
            return Ok(());
        }
        let differing = cp
            .credits
            .keys()
            .chain(self.credits.keys())
            .find(|k| cp.credits.get(*k) != self.credits.get(*k))
            .cloned()
            .unwrap_or_default();
        Err(damaged(
            self.disk.path(CHECKPOINT_FILE),
            None,
            format!(
                "credits at journal byte {} differ from the journal: {differing} is {} in the \
                 checkpoint but {} in the journal",
                cp.applied,
                cp.credits.get(&differing).copied().unwrap_or(0),
                self.credits.get(&differing).copied().unwrap_or(0)
            ),
        ))
    }

    fn epoch_mut(&mut self, epoch: u32) -> Result<&mut EpochSet, SpentSetError> {
        if self.archived.contains(&epoch) {
            return Err(SpentSetError::Archived(epoch));
        }
        Ok(match self.epochs.entry(epoch) {
            std::collections::btree_map::Entry::Occupied(set) => set.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let dir = self.dir.join(format!("epoch-{epoch:04}"));
                let expected = self.config.expected_serials_per_epoch;
                slot.insert(EpochSet::create(&dir, epoch, expected)?)
            }
        })
    }

    /// The receipt id that spent `serial` in `epoch`, if any.
    pub fn lookup(&self, epoch: u32, serial: &[u8; 32]) -> Option<u64> {
        self.epochs.get(&epoch).and_then(|s| s.lookup(serial))
    }

    /// Reads the receipt entry with id `id`.
    pub fn receipt(&self, id: u64) -> Result<ReceiptEntry, SpentSetError> {
        let end = self.journal.end();
        let jpath = || self.disk.path(JOURNAL_FILE);
        if id >= end {
            return Err(damaged(
                jpath(),
                Some(id),
                format!("receipt {id} beyond the journal end {end}"),
            ));
        }
        // The entry is decoded as its group was encoded: the group's first bytes say how.
        let frames = self.journal.frames();
        let frame = frames
            .partition_point(|f| f.offset + wal::FRAME_HEADER_BYTES <= id)
            .checked_sub(1)
            .and_then(|i| frames.get(i))
            .filter(|f| id < f.end())
            .ok_or_else(|| damaged(jpath(), Some(id), "receipt id inside no frame"))?;
        let mut head = [0u8; 5];
        let head_len = (frame.len as usize).min(head.len());
        let head = head.get_mut(..head_len).unwrap_or_default();
        self.journal
            .read_at(frame.offset + wal::FRAME_HEADER_BYTES, head)?;
        let version = receipt::group_version(head);
        let len = (frame.end() - id).min(receipt::ENTRY_BYTES_MAX as u64) as usize;
        let mut buf = vec![0u8; len];
        self.journal.read_at(id, &mut buf)?;
        let mut r = crate::protocol::encoding::Reader::new(&buf);
        ReceiptEntry::decode(&mut r, version)
            .map_err(|e| damaged(jpath(), Some(id), format!("receipt: {e}")))
    }

    /// Durably records `entries` as one commit group (one fsync) and applies them. Returns
    /// each entry's receipt id. A serial already spent, or spent twice in the group, is
    /// refused before anything is written ([`SpentSetError::Conflict`]).
    pub fn commit(&mut self, entries: &[ReceiptEntry]) -> Result<Vec<u64>, SpentSetError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        if self.journal.is_poisoned() {
            return Err(JournalError::Poisoned.into());
        }
        for e in entries {
            e.check_bounds()
                .map_err(|err| SpentSetError::EntryTooLarge(err.to_string()))?;
        }
        let mut seen = HashSet::new();
        let mut per_epoch: BTreeMap<u32, u64> = BTreeMap::new();
        for e in entries {
            let serials = std::iter::once((&e.serial, e.epoch))
                .chain(e.allowances.iter().map(|(s, ep)| (s, *ep)));
            for (serial, ep) in serials {
                if self.archived.contains(&ep) {
                    return Err(SpentSetError::Archived(ep));
                }
                let existing = self.lookup(ep, serial);
                if existing.is_some() || !seen.insert((*serial, ep)) {
                    return Err(SpentSetError::Conflict {
                        serial: hex::encode(serial),
                        epoch: ep,
                        receipt: existing,
                    });
                }
                *per_epoch.entry(ep).or_default() += 1;
            }
        }
        // Room first: growth can fail (a full disk) and must fail before the journal moves.
        for (ep, n) in per_epoch {
            self.epoch_mut(ep)?.reserve(n)?;
        }
        let (payload, offsets) = receipt::encode_group(entries)
            .map_err(|e| SpentSetError::EntryTooLarge(e.to_string()))?;
        let base = self.journal.commit(&payload)?;
        for (off, e) in offsets.iter().zip(entries) {
            let id = base + off;
            let serials = std::iter::once((&e.serial, e.epoch))
                .chain(e.allowances.iter().map(|(s, ep)| (s, *ep)));
            for (serial, ep) in serials {
                // Every epoch was reserved and every serial checked above; failing here is a
                // bug. The journal is right, the maps are not: stop writing, a reopen
                // rebuilds them.
                let dir = match self.epochs.get_mut(&ep) {
                    Some(set) => {
                        if set.insert(serial, id) == Insert::Inserted {
                            continue;
                        }
                        set.dir.clone()
                    }
                    None => self.dir.clone(),
                };
                self.journal.poison();
                return Err(damaged(
                    dir,
                    None,
                    "map refused an insert after the journal commit",
                ));
            }
            let credit = self.credits.entry(e.target.clone()).or_default();
            *credit = credit.saturating_add(e.value);
        }
        self.commits_since_checkpoint += 1;
        if self.commits_since_checkpoint >= self.config.checkpoint_every_commits {
            self.checkpoint()?;
        }
        Ok(offsets.iter().map(|o| base + o).collect())
    }

    /// Records the journal offset with the credits there (checksummed). The maps need no
    /// flush here: while open they are unsealed, and a crash has them rebuilt.
    pub fn checkpoint(&mut self) -> Result<(), SpentSetError> {
        if self.journal.is_poisoned() {
            return Err(JournalError::Poisoned.into());
        }
        let bytes = encode_checkpoint(self.journal.end(), &self.credits);
        let path = self.disk.path(CHECKPOINT_FILE);
        self.disk
            .replace(CHECKPOINT_FILE, &bytes)
            .map_err(io_at(&path))?;
        self.commits_since_checkpoint = 0;
        Ok(())
    }

    /// Checkpoints and seals every epoch's maps as reflecting the whole journal (what a
    /// clean close does; the next open then trusts them after checking their checksums).
    pub fn close(mut self) -> Result<(), SpentSetError> {
        let sealed = self.seal_all();
        // Sealed (or failed to): the drop has nothing left to do.
        self.crash_on_drop = true;
        sealed
    }

    fn seal_all(&mut self) -> Result<(), SpentSetError> {
        self.checkpoint()?;
        let end = self.journal.end();
        let tag = self.journal.tag_at(end).unwrap_or(0);
        for set in self.epochs.values_mut() {
            set.seal(end, tag)?;
        }
        Ok(())
    }

    /// Total value credited per target (`account:<name>`, `swap:<digest>`), summed from the
    /// journal.
    pub fn credits(&self) -> &BTreeMap<String, u64> {
        &self.credits
    }

    /// Whether a failed fsync closed the store for writes.
    pub fn is_poisoned(&self) -> bool {
        self.journal.is_poisoned()
    }

    /// Drops the set as a crash would: nothing sealed, no final checkpoint (recovery
    /// rebuilds the maps from the journal).
    pub fn simulate_crash(mut self) {
        self.crash_on_drop = true;
    }

    /// The journal's frames (for `store check`).
    pub fn journal_frames(&self) -> &[wal::FrameInfo] {
        self.journal.frames()
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
    /// spent set is consulted, and commits naming the epoch are refused.
    pub fn archive_epoch(&mut self, epoch: u32) -> Result<(), SpentSetError> {
        self.checkpoint()?;
        if let Some(mut set) = self.epochs.remove(&epoch) {
            let end = self.journal.end();
            set.seal(end, self.journal.tag_at(end).unwrap_or(0))?;
            let to = self.dir.join("archive").join(format!("epoch-{epoch:04}"));
            let parent = self.dir.join("archive");
            fs::create_dir_all(&parent).map_err(io_at(&parent))?;
            let from = set.dir.clone();
            drop(set);
            fs::rename(&from, &to).map_err(io_at(&to))?;
        }
        self.archived.insert(epoch);
        Ok(())
    }
}

impl<D: Disk> Drop for SpentSet<D> {
    fn drop(&mut self) {
        if !self.journal.is_poisoned() && !self.crash_on_drop {
            if let Err(e) = self.seal_all() {
                tracing::warn!(error = %e, "closing the spent set: maps left unsealed (rebuilt on next open)");
            }
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
    let Ok(mut set) = EpochSet::create(dir, 1, serials.len() as u64) else {
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

/// Recovery rates for capacity planning, over `n` journal entries shaped like real receipts
/// (two owner keys, one allowance), committed in groups of 8192 in `dir`: entries per
/// second replayed when the maps must be rebuilt (after a crash), and when they are sealed
/// (after a clean close: checksums verified, credits summed). `None` on any I/O error.
pub fn bench_recovery(dir: &Path, n: u64) -> Option<(f64, f64)> {
    let _ = fs::remove_dir_all(dir);
    let config = SpentSetConfig {
        expected_serials_per_epoch: n * 2,
        ..SpentSetConfig::default()
    };
    let entry = |i: u64| {
        let serial = crate::protocol::tags::blake2b(b"bench-serial", &[&i.to_le_bytes()]);
        ReceiptEntry {
            serial,
            epoch: 1,
            deposit_digest: serial,
            value: 64,
            time: 1,
            batch: [1; 16],
            record: i,
            target: format!("account:merchant-{:04}", i % 16),
            owner_keys: vec![serial; 2],
            chain_digests: vec![serial; 2],
            allowances: vec![(
                crate::protocol::tags::blake2b(b"bench-allow", &[&serial]),
                1,
            )],
        }
    };
    {
        let (mut set, _) = SpentSet::open(dir, config).ok()?;
        let ids: Vec<u64> = (0..n).collect();
        for chunk in ids.chunks(8192) {
            let group: Vec<ReceiptEntry> = chunk.iter().map(|&i| entry(i)).collect();
            set.commit(&group).ok()?;
        }
        set.simulate_crash();
    }
    let timed = || -> Option<f64> {
        let start = std::time::Instant::now();
        let (set, report) = SpentSet::open(dir, config).ok()?;
        let rate = report.entries as f64 / start.elapsed().as_secs_f64();
        set.close().ok()?;
        Some(rate)
    };
    let rebuild = timed()?;
    let sealed = timed()?;
    let _ = fs::remove_dir_all(dir);
    Some((rebuild, sealed))
}
