use std::path::Path;

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
        chain_digests: vec![[8u8; 32]; 2],
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
    expect_damaged(tmp.path(), "journal.wal", Some(16));
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "left untouched");
}

/// Opening must refuse, naming `file` (and `offset` when given), and change nothing.
fn expect_damaged(dir: &Path, file: &str, offset: Option<u64>) -> String {
    let before: Vec<(String, Vec<u8>)> = ["journal.wal", "journal.mark", "checkpoint.json"]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::read(dir.join(f)).unwrap_or_default(),
            )
        })
        .collect();
    let err = match SpentSet::open(dir, small()) {
        Err(e) => e,
        Ok(_) => panic!("expected {file} to be refused as damaged"),
    };
    match &err {
        SpentSetError::Damaged {
            path, offset: at, ..
        } => {
            assert_eq!(path, &dir.join(file), "{err}");
            if offset.is_some() {
                assert_eq!(*at, offset, "{err}");
            }
        }
        other => panic!("expected damage in {file}, got {other}"),
    }
    for (f, b) in before {
        assert_eq!(
            std::fs::read(dir.join(&f)).unwrap_or_default(),
            b,
            "{f} changed"
        );
    }
    err.to_string()
}

fn two_commits(dir: &Path) -> Vec<u64> {
    let (mut set, _) = SpentSet::open(dir, small()).unwrap();
    let mut ids = set.commit(&[entry(1, 1, "a", 3)]).unwrap();
    ids.extend(set.commit(&[entry(2, 1, "a", 4)]).unwrap());
    ids
}

#[test]
fn a_flipped_bit_in_the_last_acknowledged_frame_is_refused_not_cut() {
    let tmp = tempfile::tempdir().unwrap();
    two_commits(tmp.path());
    let path = tmp.path().join("journal.wal");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let msg = expect_damaged(tmp.path(), "journal.wal", None);
    assert!(msg.contains("durable point"), "{msg}");
}

#[test]
fn a_cut_byte_in_the_last_acknowledged_frame_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    two_commits(tmp.path());
    let path = tmp.path().join("journal.wal");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let msg = expect_damaged(tmp.path(), "journal.wal", None);
    assert!(msg.contains("acknowledged"), "{msg}");
}

#[test]
fn a_frame_synced_but_not_yet_marked_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    two_commits(tmp.path());
    // A crash between the frame's fsync and the mark's: roll the mark back one commit.
    let mark = tmp.path().join("journal.mark");
    let m = std::fs::read(&mark).unwrap();
    let seq = |o: usize| u64::from_le_bytes(m[o + 8..o + 16].try_into().unwrap());
    let newer = if seq(0) > seq(32) { 0 } else { 32 };
    let mut m2 = m.clone();
    m2[newer..newer + 32].fill(0);
    std::fs::write(&mark, &m2).unwrap();
    let (set, report) = SpentSet::open(tmp.path(), small()).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert!(set.lookup(1, &entry(2, 1, "a", 1).serial).is_some());
    drop(set);
    std::fs::write(&mark, [0u8; 64]).unwrap();
    let msg = expect_damaged(tmp.path(), "journal.mark", None);
    assert!(msg.contains("both mark slots"), "{msg}");
}

#[test]
fn a_damaged_checkpoint_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    two_commits(tmp.path());
    let path = tmp.path().join("checkpoint.json");
    let text = std::fs::read_to_string(&path).unwrap();
    // A flipped digit in the credits: the checksum no longer holds.
    let flipped = text.replace("\"account:a\":7", "\"account:a\":8");
    assert_ne!(flipped, text);
    std::fs::write(&path, &flipped).unwrap();
    let msg = expect_damaged(tmp.path(), "checkpoint.json", None);
    assert!(msg.contains("checksum"), "{msg}");
    // A version-1 checkpoint (no checksum) with wrong credits: the journal disagrees.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let legacy = serde_json::json!({"applied": v["applied"], "credits": {"account:a": 8}});
    std::fs::write(&path, legacy.to_string()).unwrap();
    let msg = expect_damaged(tmp.path(), "checkpoint.json", None);
    assert!(msg.contains("differ from the journal"), "{msg}");
}

#[test]
fn missing_or_damaged_maps_are_rebuilt_from_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = two_commits(tmp.path());
    let epoch_dir = tmp.path().join("epoch-0001");
    let damage: Vec<Box<dyn Fn()>> = vec![
        Box::new(|| std::fs::remove_dir_all(&epoch_dir).unwrap()),
        Box::new(|| {
            let p = epoch_dir.join("bloom.bin");
            let mut b = std::fs::read(&p).unwrap();
            b[4096..].fill(0);
            std::fs::write(&p, b).unwrap();
        }),
        Box::new(|| {
            let p = epoch_dir.join("table.bin");
            let mut b = std::fs::read(&p).unwrap();
            let i = b.iter().rposition(|&x| x != 0).unwrap();
            b[i] ^= 0x40;
            std::fs::write(&p, b).unwrap();
        }),
        Box::new(|| std::fs::remove_file(epoch_dir.join("table.bin")).unwrap()),
        Box::new(|| {
            let p = epoch_dir.join("table.bin");
            let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..b.len() - 40]).unwrap();
        }),
    ];
    for (i, d) in damage.iter().enumerate() {
        d();
        let (set, report) = SpentSet::open(tmp.path(), small()).unwrap();
        assert_eq!(report.maps_rebuilt, vec![1], "case {i}");
        assert_eq!(
            set.lookup(1, &entry(1, 1, "a", 1).serial),
            Some(ids[0]),
            "case {i}"
        );
        assert_eq!(
            set.lookup(1, &entry(2, 1, "a", 1).serial),
            Some(ids[1]),
            "case {i}"
        );
        assert_eq!(set.credits()["account:a"], 7);
        drop(set);
        let (_, report) = SpentSet::open(tmp.path(), small()).unwrap();
        assert!(
            report.maps_rebuilt.is_empty(),
            "a clean close seals them again"
        );
    }
}

#[test]
fn stale_maps_catch_up_and_crashed_maps_are_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    two_commits(tmp.path());
    let epoch_dir = tmp.path().join("epoch-0001");
    let old_table = std::fs::read(epoch_dir.join("table.bin")).unwrap();
    let old_bloom = std::fs::read(epoch_dir.join("bloom.bin")).unwrap();
    {
        let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
        set.commit(&[entry(3, 1, "a", 5)]).unwrap();
    }
    // Restore an older copy of the maps: sealed, but a frame behind.
    std::fs::write(epoch_dir.join("table.bin"), &old_table).unwrap();
    std::fs::write(epoch_dir.join("bloom.bin"), &old_bloom).unwrap();
    let (mut set, report) = SpentSet::open(tmp.path(), small()).unwrap();
    assert!(
        report.maps_rebuilt.is_empty(),
        "stale but sealed: caught up"
    );
    for i in 1..=3 {
        assert!(set.lookup(1, &entry(i, 1, "a", 1).serial).is_some());
    }
    set.commit(&[entry(4, 1, "a", 1)]).unwrap();
    set.simulate_crash();
    let (set, report) = SpentSet::open(tmp.path(), small()).unwrap();
    assert_eq!(
        report.maps_rebuilt,
        vec![1],
        "left open by a crash: rebuilt"
    );
    assert!(set.lookup(1, &entry(4, 1, "a", 1).serial).is_some());
    assert_eq!(set.credits()["account:a"], 13);
}

#[test]
fn a_conflicting_serial_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
    set.commit(&[entry(1, 1, "a", 1)]).unwrap();
    let len = std::fs::metadata(tmp.path().join("journal.wal"))
        .unwrap()
        .len();
    let mut again = entry(1, 1, "b", 9);
    again.deposit_digest = [0xee; 32];
    assert!(matches!(
        set.commit(&[entry(5, 1, "a", 1), again]),
        Err(SpentSetError::Conflict {
            receipt: Some(_),
            ..
        })
    ));
    assert!(matches!(
        set.commit(&[entry(6, 1, "a", 1), entry(6, 1, "a", 1)]),
        Err(SpentSetError::Conflict { receipt: None, .. })
    ));
    // An allowance serial spent again with another coin.
    let mut reuse = entry(7, 1, "a", 1);
    reuse.allowances = entry(1, 1, "a", 1).allowances;
    assert!(matches!(
        set.commit(&[reuse]),
        Err(SpentSetError::Conflict { .. })
    ));
    assert_eq!(
        std::fs::metadata(tmp.path().join("journal.wal"))
            .unwrap()
            .len(),
        len,
        "nothing written"
    );
    assert!(set.lookup(1, &entry(5, 1, "a", 1).serial).is_none());
    assert_eq!(set.credits()["account:a"], 1);
}

#[test]
fn failed_fsync_poisons_the_store_until_reopened() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = sim::SimDisk::new(tmp.path());
    let open = || {
        SpentSet::open_on(tmp.path(), disk.clone(), small(), &|_, _| {})
            .unwrap()
            .0
    };
    let mut set = open();
    set.commit(&[entry(1, 1, "a", 1)]).unwrap();
    disk.set_faults(sim::Faults {
        eio_at: Some(disk.ops() + 2), // the frame's sync
        ..sim::Faults::default()
    });
    assert!(set.commit(&[entry(2, 1, "a", 1)]).is_err());
    assert!(set.is_poisoned());
    assert!(matches!(
        set.commit(&[entry(3, 1, "a", 1)]),
        Err(SpentSetError::Journal(JournalError::Poisoned))
    ));
    drop(set);
    let mut set = open();
    assert!(set.lookup(1, &entry(1, 1, "a", 1).serial).is_some());
    set.commit(&[entry(3, 1, "a", 1)]).unwrap();
}

#[test]
fn a_full_disk_is_an_error_and_nothing_is_half_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = sim::SimDisk::new(tmp.path());
    let (mut set, _) = SpentSet::open_on(tmp.path(), disk.clone(), small(), &|_, _| {}).unwrap();
    set.commit(&[entry(1, 1, "a", 1)]).unwrap();
    let used: u64 = ["journal.wal", "journal.mark", "checkpoint.json"]
        .iter()
        .map(|f| disk.len_of(f))
        .sum();
    disk.set_faults(sim::Faults {
        capacity: Some(used + 10),
        ..sim::Faults::default()
    });
    let err = set.commit(&[entry(2, 1, "a", 1)]).unwrap_err();
    assert!(err.to_string().contains("No space left"), "{err}");
    assert!(set.lookup(1, &entry(2, 1, "a", 1).serial).is_none());
    assert_eq!(set.credits()["account:a"], 1);
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

#[test]
fn a_receipt_at_every_maximum_commits_and_reads_back() {
    use receipt::{ALLOWANCES_PER_ENTRY_MAX, OWNER_KEYS_MAX};
    let tmp = tempfile::tempdir().unwrap();
    let mut big = entry(1, 1, "shop", 1 << 20);
    big.owner_keys = vec![[5u8; 32]; OWNER_KEYS_MAX];
    big.chain_digests = vec![[6u8; 32]; OWNER_KEYS_MAX];
    big.allowances = (0..ALLOWANCES_PER_ENTRY_MAX as u64)
        .map(|i| {
            (
                crate::protocol::tags::blake2b(b"max-allow", &[&i.to_le_bytes()]),
                2,
            )
        })
        .collect();
    big.target = format!("account:{}", "x".repeat(64));
    let id = {
        let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
        let id = set.commit(std::slice::from_ref(&big)).unwrap()[0];
        assert_eq!(set.receipt(id).unwrap(), big);
        id
    };
    let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
    assert_eq!(set.receipt(id).unwrap(), big);
    assert!(big
        .allowances
        .iter()
        .all(|(s, e)| set.lookup(*e, s) == Some(id)));
    // One more allowance than any valid deposit can carry: refused, nothing written.
    let mut over = entry(2, 1, "shop", 1);
    over.allowances = (0..=ALLOWANCES_PER_ENTRY_MAX as u64)
        .map(|i| {
            (
                crate::protocol::tags::blake2b(b"over-allow", &[&i.to_le_bytes()]),
                2,
            )
        })
        .collect();
    let len = std::fs::metadata(tmp.path().join("journal.wal"))
        .unwrap()
        .len();
    assert!(matches!(
        set.commit(&[over]),
        Err(SpentSetError::EntryTooLarge(_))
    ));
    assert_eq!(
        std::fs::metadata(tmp.path().join("journal.wal"))
            .unwrap()
            .len(),
        len
    );
}

/// A commit group as journals before v2 wrote it: u32 count, u8 allowance counts.
fn v1_group(entries: &[ReceiptEntry]) -> Vec<u8> {
    let mut w = crate::protocol::encoding::Writer::new();
    w.u32(entries.len() as u32);
    for e in entries {
        w.bytes(&e.serial)
            .u32(e.epoch)
            .bytes(&e.deposit_digest)
            .u64(e.value)
            .u64(e.time)
            .bytes(&e.batch)
            .u64(e.record);
        w.short_bytes(e.target.as_bytes());
        w.u8(e.owner_keys.len() as u8);
        for k in &e.owner_keys {
            w.bytes(k);
        }
        w.u8(e.allowances.len() as u8);
        for (s, ep) in &e.allowances {
            w.bytes(s).u32(*ep);
        }
    }
    w.finish()
}

/// Found by the `receipt_group` fuzzer: a target that is not UTF-8 used to be decoded
/// lossily, so the receipt read back differed from the bytes the journal holds.
#[test]
fn a_group_whose_target_is_not_utf8_is_refused_not_replaced() {
    let e = entry(1, 1, "shop", 3);
    let (mut bytes, _) = receipt::encode_group(std::slice::from_ref(&e)).unwrap();
    let (entries, _) = receipt::encode_group(&[]).unwrap();
    let target_at = entries.len() + 32 + 4 + 32 + 8 + 8 + 16 + 8 + 1;
    assert_eq!(&bytes[target_at..target_at + 8], b"account:");
    bytes[target_at + 3] = 0xB0; // a lone continuation byte
    let err = receipt::decode_group(&bytes).unwrap_err();
    assert_eq!(err.offset, target_at - 1, "{err}");
    assert!(
        err.to_string().contains("target") && err.to_string().contains("UTF-8"),
        "{err}"
    );
    // The untouched group still decodes to exactly what was encoded.
    let (good, _) = receipt::encode_group(std::slice::from_ref(&e)).unwrap();
    assert_eq!(receipt::decode_group(&good).unwrap()[0].1, e);
}

#[test]
fn journals_written_before_v2_groups_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let old: Vec<ReceiptEntry> = [entry(1, 1, "a", 3), entry(2, 1, "b", 4)]
        .into_iter()
        .map(|mut e| {
            e.chain_digests.clear(); // v1 receipts had none
            e
        })
        .collect();
    let payload = v1_group(&old);
    let mut file = b"MCJRNL01".to_vec();
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(b"MCF1");
    file.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    file.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(&payload);
    std::fs::write(tmp.path().join("journal.wal"), &file).unwrap();
    let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
    let id = set.lookup(1, &old[1].serial).unwrap();
    assert_eq!(set.receipt(id).unwrap(), old[1]);
    assert_eq!(set.credits()["account:b"], 4);
    // New commits after it are v2 groups; both read back.
    let new_id = set.commit(&[entry(3, 1, "a", 5)]).unwrap()[0];
    assert_eq!(set.receipt(new_id).unwrap(), entry(3, 1, "a", 5));
    assert_eq!(set.receipt(id).unwrap(), old[1]);
}

#[test]
fn rebuild_cuts_a_damaged_tail_aside_only_when_asked_and_never_under_a_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = {
        let (mut set, _) = SpentSet::open(tmp.path(), small()).unwrap();
        let mut ids = set.commit(&[entry(1, 1, "a", 3)]).unwrap();
        ids.extend(set.commit(&[entry(2, 1, "a", 4)]).unwrap());
        ids.extend(set.commit(&[entry(3, 1, "a", 5)]).unwrap());
        // A writer holds the store: neither check nor rebuild runs under it.
        assert!(matches!(
            check::check(tmp.path()),
            Err(SpentSetError::Locked(_))
        ));
        assert!(matches!(
            check::rebuild(tmp.path(), None, small(), &|_, _| {}),
            Err(SpentSetError::Locked(_))
        ));
        ids
    };
    // Damage the second frame's payload (acknowledged: below the durable point).
    let second_frame = ids[1] - wal::FRAME_HEADER_BYTES - 4 - 1 - 4;
    let path = tmp.path().join("journal.wal");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[ids[1] as usize + 40] ^= 0x08;
    std::fs::write(&path, &bytes).unwrap();
    expect_damaged(tmp.path(), "journal.wal", Some(second_frame));
    // store check reports it, read-only.
    let report = check::check(tmp.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains(&format!("byte {second_frame}")));
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "check wrote nothing");
    // A plain rebuild cannot make a damaged journal whole: still refused, still untouched.
    assert!(check::rebuild(tmp.path(), None, small(), &|_, _| {}).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // The last resort: the tail from the damage on moves aside; the first receipt stays.
    let out = check::rebuild(tmp.path(), Some(second_frame), small(), &|_, _| {}).unwrap();
    assert_eq!(out.moved_bytes, bytes.len() as u64 - second_frame);
    let aside = std::fs::read(
        tmp.path()
            .join(format!("journal.wal.damaged-{second_frame}")),
    )
    .unwrap();
    assert_eq!(aside, bytes[second_frame as usize..]);
    let (set, _) = SpentSet::open(tmp.path(), small()).unwrap();
    assert_eq!(set.lookup(1, &entry(1, 1, "a", 1).serial), Some(ids[0]));
    assert_eq!(set.lookup(1, &entry(2, 1, "a", 1).serial), None);
    assert_eq!(set.credits()["account:a"], 3);
}
