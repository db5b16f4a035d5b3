//! `store check` and `store rebuild` for the spent set.
//!
//! [`check`] verifies everything without writing: the journal's frames and durable mark,
//! the checkpoint (checksum and credits against the journal), that no serial appears in
//! two receipts, and each epoch's maps against the journal (seal, checksum, and every entry
//! they claim to hold). [`rebuild`] throws away everything derived from the journal — maps,
//! checkpoint, an unreadable mark — and derives it again; with `cut_journal_at` it first
//! moves a damaged journal tail aside (the receipts in it are lost: the last resort when no
//! replica or backup holds them).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use serde::Serialize;

use super::disk::{Disk, FileIo, FsDisk, JournalIo};
use super::wal::{self, Journal, JournalError, JOURNAL_FILE, MARK_FILE};
use super::{
    epoch_dirs, io_at, lock_dir, read_checkpoint, receipt, EpochSet, SpentSet, SpentSetConfig,
    SpentSetError, CHECKPOINT_FILE,
};

/// What [`check`] found.
#[derive(Debug, Default, Clone, Serialize)]
pub struct CheckReport {
    /// Journal length.
    pub journal_bytes: u64,
    /// Valid frames.
    pub frames: u64,
    /// Receipt entries.
    pub entries: u64,
    /// The durable point (acknowledged end).
    pub durable: u64,
    /// A torn tail beyond the durable point (cut on the next open), if any.
    pub torn_tail_at: Option<u64>,
    /// Credits per target, summed from the journal.
    pub credits: BTreeMap<String, u64>,
    /// Each epoch's maps: `ok`, `behind by N entries (caught up on open)`, or why they will
    /// be rebuilt.
    pub maps: BTreeMap<u32, String>,
    /// Redeemed coins per (epoch, value), split by where the value went (`microcash audit`
    /// presents them).
    #[serde(skip)]
    pub redeemed: BTreeMap<(u32, u64), Redeemed>,
    /// Allowance tokens spent per epoch.
    pub allowances_spent: BTreeMap<u32, u64>,
    /// Damage that makes the store refuse to open (file, offset, reason).
    pub problems: Vec<String>,
}

/// Coins of one (epoch, value) redeemed, as the journal records them.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Redeemed {
    /// Deposited to accounts.
    pub deposits: u64,
    /// Spent as swap inputs.
    pub swap_inputs: u64,
}

/// Verifies the spent set in `dir` without changing anything (it takes the store's lock).
pub fn check(dir: &Path) -> Result<CheckReport, SpentSetError> {
    let _lock = lock_dir(dir)?;
    let disk = FsDisk::new(dir);
    let mut report = CheckReport::default();
    let checkpoint = match read_checkpoint(&disk) {
        Ok(cp) => cp,
        Err(e) => {
            report.problems.push(e.to_string());
            None
        }
    };
    let jpath = disk.path(JOURNAL_FILE);
    if !jpath.exists() {
        report
            .problems
            .push(format!("{}: missing", jpath.display()));
        return Ok(report);
    }
    let io = FileIo::open(&jpath).map_err(io_at(&jpath))?;
    let mpath = disk.path(MARK_FILE);
    let mark = FileIo::open(&mpath).map_err(io_at(&mpath))?;
    report.journal_bytes = io.len();
    let floor = checkpoint.as_ref().map_or(0, |c| c.applied);
    let scan = match Journal::scan(&io, &mark, floor) {
        Ok(s) => s,
        Err(JournalError::Corrupted {
            file,
            offset,
            reason,
        }) => {
            report.problems.push(format!(
                "{}: damaged at byte {offset}: {reason}",
                disk.path(file).display()
            ));
            return Ok(report);
        }
        Err(e) => return Err(e.into()),
    };
    report.frames = scan.frames.len() as u64;
    report.durable = scan.durable;
    report.torn_tail_at = scan.torn_at;
    let end = scan
        .frames
        .last()
        .map_or(wal::FILE_HEADER_BYTES, |f| f.end());
    // Every serial once: the journal's own view, then the maps against it.
    let mut spent: HashMap<([u8; 32], u32), u64> = HashMap::new();
    for frame in &scan.frames {
        let (base, payload) = match wal::read_payload(&io, frame) {
            Ok(read) => read,
            Err(e) => {
                report.problems.push(format!("{}: {e}", jpath.display()));
                continue;
            }
        };
        let entries = match receipt::decode_group(&payload) {
            Ok(e) => e,
            Err(e) => {
                report.problems.push(format!(
                    "{}: frame at byte {} does not decode: {e}",
                    jpath.display(),
                    frame.offset
                ));
                continue;
            }
        };
        for (off, e) in &entries {
            let id = base + off;
            let serials = std::iter::once((e.serial, e.epoch))
                .chain(e.allowances.iter().map(|(s, ep)| (*s, *ep)));
            for key in serials {
                if let Some(first) = spent.insert(key, id) {
                    report.problems.push(format!(
                        "{}: serial {} (epoch {}) is spent by two receipts, at bytes {first} \
                         and {id}",
                        jpath.display(),
                        hex::encode(key.0),
                        key.1
                    ));
                }
            }
            *report.credits.entry(e.target.clone()).or_default() += e.value;
            let r = report.redeemed.entry((e.epoch, e.value)).or_default();
            if e.target.starts_with("swap:") {
                r.swap_inputs += 1;
            } else {
                r.deposits += 1;
            }
            for (_, ep) in &e.allowances {
                *report.allowances_spent.entry(*ep).or_default() += 1;
            }
        }
        report.entries += entries.len() as u64;
        if let Some(cp) = checkpoint.as_ref().filter(|c| c.applied == frame.end()) {
            if cp.credits != report.credits {
                report.problems.push(format!(
                    "{}: credits at journal byte {} differ from the journal",
                    disk.path(CHECKPOINT_FILE).display(),
                    cp.applied
                ));
            }
        }
    }
    let archived = epoch_dirs(&dir.join("archive"))?;
    let mut epochs: Vec<u32> = spent.keys().map(|(_, e)| *e).collect();
    epochs.extend(epoch_dirs(dir)?);
    epochs.sort_unstable();
    epochs.dedup();
    for epoch in epochs.into_iter().filter(|e| !archived.contains(e)) {
        let edir = dir.join(format!("epoch-{epoch:04}"));
        let verdict = match EpochSet::open_sealed(&edir, epoch, &scan.frames, end) {
            Err(why) => format!("rebuilt from the journal on the next open: {why}"),
            Ok((set, applied)) => {
                let mut wrong = 0u64;
                let mut behind = 0u64;
                for ((serial, ep), id) in spent.iter().filter(|((_, ep), _)| *ep == epoch) {
                    let _ = ep;
                    if *id >= applied {
                        behind += 1;
                    } else if set.lookup(serial) != Some(*id) {
                        wrong += 1;
                    }
                }
                if wrong > 0 {
                    report.problems.push(format!(
                        "{}: {wrong} serials disagree with the journal despite an intact seal \
                         (run `microcash store rebuild`)",
                        edir.display()
                    ));
                    format!("{wrong} entries disagree with the journal")
                } else if behind > 0 {
                    format!("behind the journal by {behind} entries (caught up on open)")
                } else {
                    "ok".into()
                }
            }
        };
        report.maps.insert(epoch, verdict);
    }
    Ok(report)
}

/// What [`rebuild`] did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RebuildReport {
    /// Where a damaged journal tail was moved (with `cut_journal_at`).
    pub moved_tail_to: Option<String>,
    /// Bytes moved aside.
    pub moved_bytes: u64,
    /// Epochs whose maps were rebuilt.
    pub epochs: Vec<u32>,
    /// Receipt entries replayed.
    pub entries: u64,
    /// Credits per target after the rebuild.
    pub credits: BTreeMap<String, u64>,
}

/// Rebuilds everything derived from the journal in `dir`: maps, checkpoint and (if
/// unreadable) the durable mark. With `cut_journal_at`, the journal from that offset on is
/// first moved to `journal.wal.damaged-<offset>` — its receipts are gone from the store.
pub fn rebuild(
    dir: &Path,
    cut_journal_at: Option<u64>,
    config: SpentSetConfig,
    progress: &dyn Fn(u64, u64),
) -> Result<RebuildReport, SpentSetError> {
    let lock = lock_dir(dir)?;
    let disk = FsDisk::new(dir);
    let mut out = RebuildReport::default();
    let jpath = disk.path(JOURNAL_FILE);
    if let Some(at) = cut_journal_at {
        let mut io = FileIo::open(&jpath).map_err(io_at(&jpath))?;
        if at < wal::FILE_HEADER_BYTES || at > io.len() {
            return Err(SpentSetError::Damaged {
                path: jpath,
                offset: Some(at),
                reason: "the cut must lie inside the journal, after its header".into(),
            });
        }
        let mut tail = vec![0u8; (io.len() - at) as usize];
        io.read_at(at, &mut tail).map_err(io_at(&jpath))?;
        let aside = dir.join(format!("{JOURNAL_FILE}.damaged-{at}"));
        super::write_atomic(&aside, &tail, 0o600).map_err(io_at(&aside))?;
        io.truncate(at).map_err(io_at(&jpath))?;
        // The mark and checkpoint acknowledge what was just cut.
        remove_if_present(&disk.path(MARK_FILE))?;
        out.moved_tail_to = Some(aside.display().to_string());
        out.moved_bytes = tail.len() as u64;
    }
    remove_if_present(&disk.path(CHECKPOINT_FILE))?;
    let mpath = disk.path(MARK_FILE);
    if mpath.exists() {
        let mark = FileIo::open(&mpath).map_err(io_at(&mpath))?;
        let io = FileIo::open(&jpath).map_err(io_at(&jpath))?;
        if let Err(JournalError::Corrupted { file, .. }) = Journal::scan(&io, &mark, 0) {
            if file == MARK_FILE {
                remove_if_present(&mpath)?;
            }
        }
    }
    for epoch in epoch_dirs(dir)? {
        let edir = dir.join(format!("epoch-{epoch:04}"));
        fs::remove_dir_all(&edir).map_err(io_at(&edir))?;
    }
    let (set, report) = SpentSet::open_locked(dir, lock, disk, config, progress)?;
    out.epochs = report.maps_rebuilt;
    out.entries = report.entries;
    out.credits = set.credits().clone();
    set.close()?;
    Ok(out)
}

fn remove_if_present(path: &Path) -> Result<(), SpentSetError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_at(path)(e)),
        _ => Ok(()),
    }
}
