use std::io;
use std::sync::{Arc, Mutex};

use super::*;

fn entry(i: u64, epoch: u32, account: &str, value: u64) -> ReceiptEntry {
    let serial: [u8; 32] = crate::protocol::tags::blake2b(b"test-serial", &[&i.to_le_bytes()]);
    ReceiptEntry {
        serial,
        epoch,
        deposit_digest: [i as u8; 32],
        value,
        time: 1000 + i,
        batch: [3; 16],
        record: i,
        target: format!("account:{account}"),
        owner_keys: vec![[7u8; 32]; 2],
        allowances: vec![(
            crate::protocol::tags::blake2b(b"test-allow", &[&i.to_le_bytes()]),
            epoch,
        )],
    }
}

fn small() -> SpentSetConfig {
    SpentSetConfig {
        expected_serials_per_epoch: 64,
        checkpoint_every_commits: 4,
    }
}

#[test]
fn committed_serials_are_found_with_their_receipts_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let entries: Vec<ReceiptEntry> = (0..10)
        .map(|i| entry(i, 1 + (i % 2) as u32, "shop", 5))
        .collect();
    let ids = {
        let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
        let ids = set.commit(&entries).unwrap();
        assert_eq!(set.receipt(ids[3]).unwrap(), entries[3]);
        ids
    };
    let (set, report) = SpentSet::open(tmp.path(), small()).unwrap();
    assert_eq!(report.frames, 1);
    for (e, id) in entries.iter().zip(&ids) {
        assert_eq!(set.lookup(e.epoch, &e.serial), Some(*id));
        assert_eq!(
            set.lookup(e.epoch, &e.allowances[0].0),
            Some(*id),
            "allowance serials are spent too"
        );
        assert_eq!(
            set.lookup(e.epoch + 5, &e.serial),
            None,
            "epochs are separate partitions"
        );
    }
    assert_eq!(set.credits()["account:shop"], 50);
    assert_eq!(set.lookup(1, &[9u8; 32]), None);
}

#[test]
fn a_crash_without_checkpoint_is_recovered_from_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let config = SpentSetConfig {
        checkpoint_every_commits: 1000,
        ..small()
    };
    let (mut set, _) = SpentSet::open(tmp.path(), config).unwrap();
    for i in 0..5 {
        set.commit(&[entry(i, 1, "a", 1)]).unwrap();
    }
    set.simulate_crash();
    let (set, _) = SpentSet::open(tmp.path(), config).unwrap();
    for i in 0..5 {
        assert!(set.lookup(1, &entry(i, 1, "a", 1).serial).is_some());
    }
    assert_eq!(
        set.credits()["account:a"],
        5,
        "credits replayed exactly once"
    );
}

#[test]
fn tables_grow_without_losing_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
    let all: Vec<ReceiptEntry> = (0..5000).map(|i| entry(i, 3, "a", 1)).collect();
    for chunk in all.chunks(700) {
        set.commit(chunk).unwrap();
    }
    assert!(all.iter().all(|e| set.lookup(3, &e.serial).is_some()));
    drop(set);
    let (set, _) = SpentSet::open(tmp.path(), small()).unwrap();
    assert!(all.iter().all(|e| set.lookup(3, &e.serial).is_some()));
    assert_eq!(
        set.stats().serials_by_epoch[&3],
        10_000,
        "coins and allowance serials"
    );
}

#[test]
fn torn_tail_is_truncated_and_earlier_commits_survive() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
        set.commit(&[entry(1, 1, "a", 1)]).unwrap();
        set.commit(&[entry(2, 1, "a", 1)]).unwrap();
    }
    // A torn append: a frame header promising more bytes than were written.
    let path = tmp.path().join("journal.wal");
    let mut bytes = std::fs::read(&path).unwrap();
    let good_len = bytes.len();
    bytes.extend_from_slice(b"MCF1");
    bytes.extend_from_slice(&100u32.to_le_bytes());
    bytes.extend_from_slice(&[0u8; 30]);
    std::fs::write(&path, &bytes).unwrap();
    let (set, report) = SpentSet::open(tmp.path(), small()).unwrap();
    assert_eq!(report.truncated_bytes, 38);
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, good_len);
    assert!(set.lookup(1, &entry(2, 1, "a", 1).serial).is_some());
}

#[test]
fn corruption_before_valid_frames_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
        set.commit(&[entry(1, 1, "a", 1)]).unwrap();
        set.commit(&[entry(2, 1, "a", 1)]).unwrap();
    }
    let path = tmp.path().join("journal.wal");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40] ^= 0xff; // inside the first frame's payload
    std::fs::write(&path, &bytes).unwrap();
    match SpentSet::open(tmp.path(), small()) {
        Err(SpentSetError::Journal(JournalError::Corrupted { .. })) => {}
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

/// Journal I/O whose `sync` fails from the `fail_at`-th call on.
struct FlakyIo {
    inner: FileIo,
    syncs: Arc<Mutex<u32>>,
    fail_at: u32,
}

impl JournalIo for FlakyIo {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.append(bytes)
    }
    fn sync(&mut self) -> io::Result<()> {
        let mut n = self.syncs.lock().unwrap();
        *n += 1;
        if *n >= self.fail_at {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.inner.sync()
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
}

#[test]
fn failed_fsync_poisons_the_store_until_reopened() {
    let tmp = tempfile::tempdir().unwrap();
    let io = FlakyIo {
        inner: FileIo::open(&tmp.path().join("journal.wal")).unwrap(),
        syncs: Arc::default(),
        fail_at: 3,
    };
    let (mut set, _) = SpentSet::open_with_io(tmp.path(), io, small()).unwrap(); // sync 1: header
    set.commit(&[entry(1, 1, "a", 1)]).unwrap(); // sync 2
    assert!(set.commit(&[entry(2, 1, "a", 1)]).is_err()); // sync 3 fails
    assert!(set.is_poisoned());
    assert!(matches!(
        set.commit(&[entry(3, 1, "a", 1)]),
        Err(SpentSetError::Journal(JournalError::Poisoned))
    ));
    drop(set);
    let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
    assert!(set.lookup(1, &entry(1, 1, "a", 1).serial).is_some());
    set.commit(&[entry(3, 1, "a", 1)]).unwrap();
}

#[test]
fn a_second_opener_is_locked_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (_set, _) = SpentSet::open(tmp.path(), small()).unwrap();
    assert!(matches!(
        SpentSet::open(tmp.path(), small()),
        Err(SpentSetError::Locked(_))
    ));
}

#[test]
fn archived_epochs_leave_the_live_set() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
    set.commit(&[entry(1, 1, "a", 1), entry(2, 2, "a", 1)])
        .unwrap();
    set.archive_epoch(1).unwrap();
    assert!(set.lookup(1, &entry(1, 1, "a", 1).serial).is_none());
    assert!(set.lookup(2, &entry(2, 2, "a", 1).serial).is_some());
    assert!(tmp.path().join("archive/epoch-0001/table.bin").exists());
}
