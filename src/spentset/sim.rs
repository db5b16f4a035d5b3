//! A deterministic fault simulator for the spent set.
//!
//! [`SimDisk`] is a [`Disk`] kept in memory that separates what a process sees (`current`)
//! from what would survive a power cut (`durable`). A test can make it:
//! * fail the n-th write or sync with `EIO`, or refuse writes past a capacity with `ENOSPC`;
//! * *lie* on the n-th sync: report success while the synced range never reaches the platter
//!   (after a crash it reads as zeros — the Linux "fsync error lost" case);
//! * crash: every file keeps its durable bytes plus a random prefix of what was appended
//!   since the last sync (a torn write), in-place writes survive or not as a whole;
//! * flip bits at rest.
//!
//! `state.redb` goes through it too ([`SimBackend`], a redb storage backend).
//!
//! `crate::engine::faultsim` drives random days over it against a reference model.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, RngExt};

use super::disk::{Disk, JournalIo};

#[derive(Clone, Default)]
struct SimFile {
    durable: Vec<u8>,
    current: Vec<u8>,
    /// Ranges a lying sync claimed durable (zeros after a crash).
    lost: Vec<(usize, usize)>,
    /// Something was written in place (or the length set) since the last sync: a crash
    /// keeps pages, not a prefix of an append.
    in_place: bool,
}

/// Faults armed on a [`SimDisk`]; operation numbers count appends, writes, syncs and
/// replaces from the start.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The operation with this number fails with EIO.
    pub eio_at: Option<u64>,
    /// The sync with this operation number reports success but is lost...
    pub lie_at: Option<u64>,
    /// ...if it syncs this file (`None`: whichever file it syncs).
    pub lie_file: Option<String>,
    /// Total bytes the disk holds; writes beyond fail with ENOSPC.
    pub capacity: Option<u64>,
}

#[derive(Default)]
struct SimState {
    files: BTreeMap<String, SimFile>,
    faults: Faults,
    ops: u64,
    /// The power is off: every write fails until the crash is over (lets a test drop the
    /// open handles without their clean-shutdown writes reaching the disk).
    frozen: bool,
}

impl SimState {
    fn used(&self) -> u64 {
        self.files.values().map(|f| f.current.len() as u64).sum()
    }

    /// Counts an operation; returns the injected error for it, if any.
    fn op(&mut self, grows_by: u64) -> io::Result<u64> {
        self.ops += 1;
        if self.frozen || self.faults.eio_at == Some(self.ops) {
            return Err(io::Error::from_raw_os_error(5));
        }
        if let Some(cap) = self.faults.capacity {
            if self.used() + grows_by > cap {
                return Err(io::Error::from_raw_os_error(28));
            }
        }
        Ok(self.ops)
    }
}

/// An in-memory disk with faults; clones share the same files.
#[derive(Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<SimState>>,
    dir: PathBuf,
}

/// A file on a [`SimDisk`].
pub struct SimHandle {
    state: Arc<Mutex<SimState>>,
    name: String,
}

fn lock(state: &Arc<Mutex<SimState>>) -> MutexGuard<'_, SimState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimHandle {
    fn with<T>(&self, f: impl FnOnce(&mut SimState, &str) -> T) -> T {
        let mut s = lock(&self.state);
        f(&mut s, &self.name)
    }
}

impl JournalIo for SimHandle {
    fn len(&self) -> u64 {
        self.with(|s, n| s.files.get(n).map_or(0, |f| f.current.len() as u64))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with(|s, n| {
            let f = s.files.get(n).ok_or(io::ErrorKind::NotFound)?;
            let start = offset as usize;
            let src = f
                .current
                .get(start..start + buf.len())
                .ok_or(io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(src);
            Ok(())
        })
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.with(|s, n| {
            s.op(bytes.len() as u64)?;
            s.files
                .entry(n.to_owned())
                .or_default()
                .current
                .extend_from_slice(bytes);
            Ok(())
        })
    }
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.with(|s, n| {
            let len = s.files.get(n).map_or(0, |f| f.current.len());
            let end = offset as usize + bytes.len();
            s.op(end.saturating_sub(len) as u64)?;
            let f = s.files.entry(n.to_owned()).or_default();
            if f.current.len() < end {
                f.current.resize(end, 0);
            }
            f.current[offset as usize..end].copy_from_slice(bytes);
            f.in_place = true;
            Ok(())
        })
    }
    fn sync(&mut self) -> io::Result<()> {
        self.with(|s, n| {
            let op = s.op(0)?;
            let lie = s.faults.lie_at == Some(op)
                && s.faults
                    .lie_file
                    .as_deref()
                    .is_none_or(|target| target == n);
            let f = s.files.entry(n.to_owned()).or_default();
            if lie {
                // Record every byte that differs from the durable copy as lost.
                let from = f
                    .durable
                    .iter()
                    .zip(&f.current)
                    .position(|(a, b)| a != b)
                    .unwrap_or(f.durable.len().min(f.current.len()));
                if from < f.current.len() {
                    f.lost.push((from, f.current.len()));
                }
            }
            f.durable = f.current.clone();
            f.in_place = false;
            Ok(())
        })
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.with(|s, n| {
            s.op(0)?;
            let f = s.files.entry(n.to_owned()).or_default();
            f.current.truncate(len as usize);
            f.durable = f.current.clone();
            Ok(())
        })
    }
}

/// The state file's name on the simulated disk.
pub const STATE_FILE: &str = "state.redb";

/// `state.redb` on a [`SimDisk`], as a redb storage backend: the issuer's state goes
/// through the same faults as the journal.
pub struct SimBackend {
    file: SimHandle,
}

impl std::fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimBackend({})", self.file.name)
    }
}

impl redb::StorageBackend for SimBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(JournalIo::len(&self.file))
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read_at(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.with(|s, n| {
            let old = s.files.get(n).map_or(0, |f| f.current.len() as u64);
            s.op(len.saturating_sub(old))?;
            let f = s.files.entry(n.to_owned()).or_default();
            f.current.resize(len as usize, 0);
            f.in_place = true;
            Ok(())
        })
    }
    fn sync_data(&self) -> io::Result<()> {
        SimHandle {
            state: self.file.state.clone(),
            name: self.file.name.clone(),
        }
        .sync()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        SimHandle {
            state: self.file.state.clone(),
            name: self.file.name.clone(),
        }
        .write_at(offset, data)
    }
}

impl SimDisk {
    /// The state file as a redb backend.
    pub fn state_backend(&self) -> SimBackend {
        lock(&self.state)
            .files
            .entry(STATE_FILE.to_owned())
            .or_default();
        SimBackend {
            file: SimHandle {
                state: self.state.clone(),
                name: STATE_FILE.to_owned(),
            },
        }
    }

    /// An empty disk; `dir` only names files in messages.
    pub fn new(dir: &Path) -> SimDisk {
        SimDisk {
            state: Arc::default(),
            dir: dir.to_owned(),
        }
    }

    /// Arms faults.
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.state).faults = faults;
    }

    /// Bytes held by all files now.
    pub fn used(&self) -> u64 {
        lock(&self.state).used()
    }

    /// Operations so far.
    pub fn ops(&self) -> u64 {
        lock(&self.state).ops
    }

    /// The power goes: from now on every write and sync fails, until [`SimDisk::crash`].
    pub fn power_off(&self) {
        lock(&self.state).frozen = true;
    }

    /// A power cut: each file keeps its durable bytes plus a random prefix of bytes
    /// appended since its last sync; lost syncs read back as zeros; faults are disarmed.
    pub fn crash(&self, rng: &mut impl Rng) {
        let mut s = lock(&self.state);
        s.faults = Faults::default();
        s.frozen = false;
        for f in s.files.values_mut() {
            let mut kept = f.durable.clone();
            let appended = f.current.len() > kept.len() && f.current.starts_with(&kept);
            if appended && !f.in_place {
                // An append torn anywhere: a prefix of it reached the disk.
                let extra = f.current.len() - kept.len();
                let k = rng.random_range(0..=extra);
                kept.extend_from_slice(&f.current[f.durable.len()..f.durable.len() + k]);
            } else {
                // In-place writes (and a length set without a sync): the length is the
                // durable one; each changed 4 KiB page reached the disk or not.
                for (i, page) in kept.chunks_mut(4096).enumerate() {
                    let from = i * 4096;
                    let new = f.current.get(from..from + page.len());
                    if let Some(new) = new.filter(|n| *n != &page[..]) {
                        if rng.random_bool(0.5) {
                            page.copy_from_slice(new);
                        }
                    }
                }
            }
            for (a, b) in f.lost.drain(..) {
                let b = b.min(kept.len());
                if a < b {
                    kept[a..b].fill(0);
                }
            }
            f.durable = kept.clone();
            f.current = kept;
            f.in_place = false;
        }
    }

    /// Flips one bit of a file at rest.
    pub fn flip(&self, name: &str, bit: u64) {
        let mut s = lock(&self.state);
        if let Some(f) = s.files.get_mut(name) {
            let i = (bit / 8) as usize;
            if i < f.current.len() {
                f.current[i] ^= 1 << (bit % 8);
                f.durable = f.current.clone();
            }
        }
    }

    /// A file's durable length.
    pub fn len_of(&self, name: &str) -> u64 {
        lock(&self.state)
            .files
            .get(name)
            .map_or(0, |f| f.durable.len() as u64)
    }

    /// Durable content of every file (to check a refusal changed nothing).
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        lock(&self.state)
            .files
            .iter()
            .map(|(n, f)| (n.clone(), f.durable.clone()))
            .collect()
    }
}

impl Disk for SimDisk {
    type File = SimHandle;
    fn open(&self, name: &str) -> io::Result<SimHandle> {
        lock(&self.state).files.entry(name.to_owned()).or_default();
        Ok(SimHandle {
            state: self.state.clone(),
            name: name.to_owned(),
        })
    }
    fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        let s = lock(&self.state);
        Ok(s.files
            .get(name)
            .filter(|f| !f.current.is_empty())
            .map(|f| f.current.clone()))
    }
    fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let mut s = lock(&self.state);
        let old = s.files.get(name).map_or(0, |f| f.current.len());
        s.op((bytes.len() as u64).saturating_sub(old as u64))?;
        s.files.insert(
            name.to_owned(),
            SimFile {
                durable: bytes.to_vec(),
                current: bytes.to_vec(),
                lost: Vec::new(),
                in_place: false,
            },
        );
        Ok(())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
