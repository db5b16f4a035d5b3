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
//! [`run_seed`] drives random days against a reference model (which serials were
//! acknowledged, with which credits) and checks after every fault and reopen: no serial
//! twice, no acknowledged credit lost, every refusal names a damaged file, and a refused
//! open leaves the durable files untouched. Everything derives from the seed, so a failing
//! seed replays exactly (`MICROCASH_SIM_SEED=n cargo test --release --lib sim`).
//! The maps are real files in a temp directory; the simulator deletes, truncates, flips and
//! replaces them with stale copies at rest.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, RngExt, SeedableRng};

use super::disk::{Disk, JournalIo};
use super::{ReceiptEntry, SpentSet, SpentSetConfig, SpentSetError};

#[derive(Clone, Default)]
struct SimFile {
    durable: Vec<u8>,
    current: Vec<u8>,
    /// Ranges a lying sync claimed durable (zeros after a crash).
    lost: Vec<(usize, usize)>,
}

/// Faults armed on a [`SimDisk`]; operation numbers count appends, writes, syncs and
/// replaces from the start.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// The operation with this number fails with EIO.
    pub eio_at: Option<u64>,
    /// The sync with this operation number reports success but is lost.
    pub lie_at: Option<u64>,
    /// Total bytes the disk holds; writes beyond fail with ENOSPC.
    pub capacity: Option<u64>,
}

#[derive(Default)]
struct SimState {
    files: BTreeMap<String, SimFile>,
    faults: Faults,
    ops: u64,
}

impl SimState {
    fn used(&self) -> u64 {
        self.files.values().map(|f| f.current.len() as u64).sum()
    }

    /// Counts an operation; returns the injected error for it, if any.
    fn op(&mut self, grows_by: u64) -> io::Result<u64> {
        self.ops += 1;
        if self.faults.eio_at == Some(self.ops) {
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
            Ok(())
        })
    }
    fn sync(&mut self) -> io::Result<()> {
        self.with(|s, n| {
            let op = s.op(0)?;
            let lie = s.faults.lie_at == Some(op);
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

impl SimDisk {
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

    /// Operations so far.
    pub fn ops(&self) -> u64 {
        lock(&self.state).ops
    }

    /// A power cut: each file keeps its durable bytes plus a random prefix of bytes
    /// appended since its last sync; lost syncs read back as zeros; faults are disarmed.
    pub fn crash(&self, rng: &mut impl Rng) {
        let mut s = lock(&self.state);
        s.faults = Faults::default();
        for f in s.files.values_mut() {
            let mut kept = f.durable.clone();
            if f.current.len() > kept.len() && f.current.starts_with(&kept) {
                let extra = f.current.len() - kept.len();
                let k = rng.random_range(0..=extra);
                kept.extend_from_slice(&f.current[f.durable.len()..f.durable.len() + k]);
            }
            for (a, b) in f.lost.drain(..) {
                let b = b.min(kept.len());
                if a < b {
                    kept[a..b].fill(0);
                }
            }
            f.durable = kept.clone();
            f.current = kept;
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
            },
        );
        Ok(())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// What one seed did.
#[derive(Debug, Default, Clone)]
pub struct SimOutcome {
    /// Commit groups acknowledged.
    pub acknowledged: u64,
    /// Reopens after a crash.
    pub crashes: u64,
    /// Reopens refused with a named damaged file (the seed ends there).
    pub refusals: u64,
    /// Map faults survived by a rebuild.
    pub maps_rebuilt: u64,
}

fn sim_entry(rng: &mut impl Rng, serial: [u8; 32], epoch: u32) -> ReceiptEntry {
    let account = format!("account:a{}", rng.random_range(0..4u8));
    ReceiptEntry {
        serial,
        epoch,
        deposit_digest: rng.random(),
        value: 1 << rng.random_range(0..10u32),
        time: 1,
        batch: [0; 16],
        record: 0,
        target: account,
        owner_keys: vec![rng.random()],
        allowances: if rng.random_bool(0.3) {
            vec![(rng.random(), epoch)]
        } else {
            Vec::new()
        },
    }
}

/// A fault that may end a seed with a refusal (anything else must be survived).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Harm {
    /// Only survivable faults so far.
    None,
    /// A lost sync or a bit flip at rest hit a durable file: a refusal is allowed.
    Durable,
}

struct Model {
    /// serial → (epoch, target, value) of every acknowledged entry.
    acked: BTreeMap<[u8; 32], (u32, String, u64)>,
    /// Groups whose commit returned an error: durable or not, all or nothing.
    uncertain: Vec<Vec<ReceiptEntry>>,
}

impl Model {
    fn credits(&self) -> BTreeMap<String, u64> {
        let mut c = BTreeMap::new();
        for (_, t, v) in self.acked.values() {
            *c.entry(t.clone()).or_default() += v;
        }
        c
    }

    fn ack(&mut self, group: &[ReceiptEntry]) {
        for e in group {
            self.acked
                .insert(e.serial, (e.epoch, e.target.clone(), e.value));
        }
    }
}

fn damage_maps(rng: &mut impl Rng, dir: &Path) -> bool {
    let epochs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("epoch-")))
                .collect()
        })
        .unwrap_or_default();
    let Some(epoch) = epochs.get(rng.random_range(0..epochs.len().max(1))) else {
        return false;
    };
    let file = epoch.join(if rng.random_bool(0.5) { "table.bin" } else { "bloom.bin" });
    match rng.random_range(0..4u8) {
        0 => {
            let _ = std::fs::remove_dir_all(epoch);
        }
        1 => {
            if let Ok(mut b) = std::fs::read(&file) {
                if !b.is_empty() {
                    let i = rng.random_range(0..b.len());
                    b[i] ^= 1 << rng.random_range(0..8u32);
                    let _ = std::fs::write(&file, b);
                }
            }
        }
        2 => {
            if let Ok(b) = std::fs::read(&file) {
                let _ = std::fs::write(&file, &b[..b.len() / 2]);
            }
        }
        _ => {
            // Zeroed body, intact header: looks empty unless the checksum is checked.
            if let Ok(mut b) = std::fs::read(&file) {
                if b.len() > 4096 {
                    b[4096..].fill(0);
                    let _ = std::fs::write(&file, b);
                }
            }
        }
    }
    true
}

/// Runs one seeded simulation in `dir` (a fresh temp directory for the maps). `Err` names
/// the invariant that broke.
pub fn run_seed(seed: u64, dir: &Path) -> Result<SimOutcome, String> {
    let mut rng = rand::rngs::ChaCha20Rng::seed_from_u64(seed);
    let disk = SimDisk::new(dir);
    let config = SpentSetConfig {
        expected_serials_per_epoch: 16,
        checkpoint_every_commits: rng.random_range(1..6),
    };
    let open = |disk: &SimDisk| SpentSet::open_on(dir, disk.clone(), config, &|_, _| {});
    let mut model = Model {
        acked: BTreeMap::new(),
        uncertain: Vec::new(),
    };
    let mut outcome = SimOutcome::default();
    let mut harm = Harm::None;
    let mut set = open(&disk).map_err(|e| format!("seed {seed}: fresh open failed: {e}"))?.0;
    let steps = rng.random_range(20..60);
    for step in 0..steps {
        let ctx = |what: &str| format!("seed {seed} step {step}: {what}");
        match rng.random_range(0..10u8) {
            // Commit a group: fresh serials, sometimes one already spent.
            0..=5 => {
                let n = rng.random_range(1..5);
                let mut group: Vec<ReceiptEntry> = (0..n)
                    .map(|_| {
                        let epoch = rng.random_range(1..3);
                        let serial = rng.random();
                        sim_entry(&mut rng, serial, epoch)
                    })
                    .collect();
                let reuse = !model.acked.is_empty() && rng.random_bool(0.2);
                if reuse {
                    let i = rng.random_range(0..model.acked.len());
                    let (serial, (epoch, _, _)) =
                        model.acked.iter().nth(i).map(|(s, v)| (*s, v.clone())).expect("i < len");
                    group[0] = sim_entry(&mut rng, serial, epoch);
                }
                let journal_before = disk.len_of(super::wal::JOURNAL_FILE);
                match set.commit(&group) {
                    Ok(ids) => {
                        if reuse {
                            return Err(ctx("a spent serial was committed again"));
                        }
                        for (e, id) in group.iter().zip(ids) {
                            if set.lookup(e.epoch, &e.serial) != Some(id) {
                                return Err(ctx("acknowledged serial not found"));
                            }
                        }
                        model.ack(&group);
                        outcome.acknowledged += 1;
                    }
                    Err(SpentSetError::Conflict { .. }) if reuse => {
                        if disk.len_of(super::wal::JOURNAL_FILE) != journal_before {
                            return Err(ctx("a refused conflict wrote to the journal"));
                        }
                    }
                    Err(SpentSetError::Conflict { .. }) => {
                        // Random serials colliding is impossible in practice.
                        return Err(ctx("conflict reported for fresh serials"));
                    }
                    Err(e) => {
                        if std::env::var("MICROCASH_SIM_TRACE").is_ok() {
                            eprintln!("step {step}: commit failed: {e}");
                        }
                        // A group with a spent serial can never be written; only the
                        // others may or may not have reached the journal.
                        if !reuse {
                            model.uncertain.push(group)
                        }
                    }
                }
            }
            // Arm an I/O fault a few operations ahead.
            6 => {
                let at = disk.ops() + rng.random_range(1..6);
                let faults = match rng.random_range(0..3u8) {
                    0 => Faults {
                        eio_at: Some(at),
                        ..Faults::default()
                    },
                    1 => {
                        harm = Harm::Durable;
                        Faults {
                            lie_at: Some(at),
                            ..Faults::default()
                        }
                    }
                    _ => Faults {
                        capacity: Some(
                            lock(&disk.state).used() + rng.random_range(0..2000u64),
                        ),
                        ..Faults::default()
                    },
                };
                disk.set_faults(faults);
            }
            // Crash (maybe with damage at rest), then reopen and check.
            _ => {
                set.simulate_crash();
                disk.crash(&mut rng);
                outcome.crashes += 1;
                if rng.random_bool(0.3) && damage_maps(&mut rng, dir) {
                    outcome.maps_rebuilt += 1;
                }
                if rng.random_bool(0.1) {
                    harm = Harm::Durable;
                    let names = [
                        super::wal::JOURNAL_FILE,
                        super::wal::MARK_FILE,
                        super::CHECKPOINT_FILE,
                    ];
                    let name = names[rng.random_range(0..names.len())];
                    let len = disk.len_of(name);
                    if len > 0 {
                        disk.flip(name, rng.random_range(0..len * 8));
                    }
                }
                let before = disk.snapshot();
                match open(&disk) {
                    Ok((s, _)) => {
                        set = s;
                        check(&set, &mut model).map_err(|e| ctx(&e))?;
                    }
                    Err(e) => {
                        let named = matches!(
                            &e,
                            SpentSetError::Damaged { .. } | SpentSetError::Io { .. }
                        );
                        if harm == Harm::None {
                            return Err(ctx(&format!("refused after survivable faults: {e}")));
                        }
                        if !named {
                            return Err(ctx(&format!("refusal without a named file: {e}")));
                        }
                        if disk.snapshot() != before {
                            return Err(ctx("a refused open changed the durable files"));
                        }
                        outcome.refusals += 1;
                        return Ok(outcome);
                    }
                }
            }
        }
    }
    set.simulate_crash();
    Ok(outcome)
}

/// After a reopen: every acknowledged serial is there, each uncertain group is there
/// entirely or not at all, and the credits are exactly the model's.
fn check<D: Disk>(set: &SpentSet<D>, model: &mut Model) -> Result<(), String> {
    for (serial, (epoch, _, _)) in &model.acked {
        if set.lookup(*epoch, serial).is_none() {
            return Err(format!("acknowledged serial {} lost", hex::encode(serial)));
        }
    }
    for group in std::mem::take(&mut model.uncertain) {
        let present: Vec<bool> = group
            .iter()
            .map(|e| set.lookup(e.epoch, &e.serial).is_some())
            .collect();
        if present.iter().all(|&p| p) {
            model.ack(&group);
        } else if present.iter().any(|&p| p) {
            return Err(format!("a commit group survived in part: {present:?} {:?}", group.iter().map(|e| (e.epoch, hex::encode(&e.serial[..4]))).collect::<Vec<_>>()));
        }
    }
    if set.credits() != &model.credits() {
        return Err(format!(
            "credits {:?} differ from the acknowledged {:?}",
            set.credits(),
            model.credits()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few hundred seeds in CI; `MICROCASH_SIM_SEEDS=5000` for a long run,
    /// `MICROCASH_SIM_SEED=n` to replay one.
    #[test]
    fn seeded_fault_simulation_keeps_every_acknowledged_credit_once() {
        let seeds: Vec<u64> = match std::env::var("MICROCASH_SIM_SEED") {
            Ok(s) => vec![s.parse().expect("a seed number")],
            Err(_) => {
                let n = std::env::var("MICROCASH_SIM_SEEDS")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(300u64);
                (0..n).collect()
            }
        };
        let mut total = SimOutcome::default();
        for seed in seeds {
            let tmp = tempfile::tempdir().unwrap();
            let o = run_seed(seed, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
            total.acknowledged += o.acknowledged;
            total.crashes += o.crashes;
            total.refusals += o.refusals;
            total.maps_rebuilt += o.maps_rebuilt;
        }
        eprintln!("{total:?}");
        assert!(total.crashes > 0 && total.acknowledged > 0);
    }
}
