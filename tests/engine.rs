//! The batch engine against the reference: golden samples, random batches with every kind
//! of bad record, idempotent re-runs, and crashes (kill -9) in the middle of clearing.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use microcash::dataset::{self, GenOptions};
use microcash::engine::{ClearOptions, Engine, RecordVerdict, Verdict};
use microcash::spentset::SpentSetConfig;

mod common;

use common::{expected_codes as expected, fresh_store, samples, verdict_codes};

fn clear(engine: &Engine, batch: &Path, chunk: usize, threads: usize) -> Vec<RecordVerdict> {
    let options = ClearOptions {
        threads,
        chunk_records: chunk,
        collect_verdicts: true,
        ..ClearOptions::default()
    };
    engine.clear(batch, &options, &|_, _| {}).unwrap().verdicts
}

fn codes(v: &[RecordVerdict]) -> Vec<String> {
    v.iter().map(|r| r.verdict.code()).collect()
}

#[test]
fn golden_samples_clear_to_their_expected_verdicts() {
    let dir = samples();
    let (_tmp, engine) = fresh_store(&dir.join("mixed.params"));
    let mut seen = std::collections::BTreeSet::new();
    for day in ["mixed-day1", "mixed-day2"] {
        let got = clear(&engine, &dir.join(format!("{day}.mcb")), 512, 2);
        let want = expected(&dir.join(format!("{day}.expected.jsonl")));
        assert_eq!(codes(&got), want, "{day}");
        seen.extend(want);
    }
    // The samples cover every verdict the engine can give a batch record.
    for code in [
        "accepted",
        "double_spent",
        "duplicate_in_batch",
        "bad_issuer_signature",
        "bad_link_signature",
        "unknown_or_expired_keyset",
        "hop_cap_exceeded",
        "allowance_missing",
        "allowance_reused",
        "policy_violation(max_payment)",
        "unknown_account",
        "malformed",
    ] {
        assert!(seen.contains(code), "samples lack {code}");
    }
}

/// How a rewritten batch carries its deposits' hints.
#[derive(Clone, Copy, Debug)]
enum HintForm {
    /// Kind 1, no hints.
    Plain,
    /// Kind 2 with decompression and right serial hints.
    Right,
    /// Kind 2 with every serial hint wrong in one of several ways.
    Wrong,
    /// Kind 2 with decompression hints only (records written before serial hints).
    DecompressionOnly,
    /// Kind 2 with one serial hint too few (unusable: ignored).
    Short,
}

/// Writes `src`'s records to a version-2 file `dst`, one record per record read, each
/// decodable deposit in hint form `form`; undecodable payloads are copied as kind 1 and
/// unreadable records (broken checksum, damage) become broken-checksum records, so that
/// every record keeps its number and its verdict code.
fn rewrite_with_hints(src: &Path, dst: &Path, form: HintForm) {
    use microcash::engine::batch_file::{BatchReader, BatchWriter, KIND_DEPOSIT_HINTED};
    use microcash::protocol::deposit::Deposit;
    use microcash::protocol::encoding::{Decode, Encode};
    use microcash::protocol::hints::{HintedDeposit, SerialHints};

    let mut reader = BatchReader::open(src).unwrap();
    let (id, created) = (reader.header().batch_id, reader.header().created);
    let mut writer = BatchWriter::create(dst, id, created).unwrap();
    let mut broken = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while let Some(raw) = reader.next_record() {
        let Ok(payload) = raw.payload else {
            broken.push(writer.position());
            writer.append(b"\x01damaged").unwrap();
            continue;
        };
        let deposit = if raw.kind == KIND_DEPOSIT_HINTED {
            let len = u32::from_le_bytes(payload[..4].try_into().unwrap()) as usize;
            payload
                .get(4..4 + len)
                .and_then(|d| HintedDeposit::decode(d, &payload[4 + len..]).ok())
                .map(|h| h.deposit)
        } else {
            Deposit::from_bytes(&payload).ok()
        };
        let Some(deposit) = deposit else {
            writer.append(&payload).unwrap();
            continue;
        };
        let (bytes, hints) = deposit.to_bytes_with_hints();
        let mut serial = SerialHints::of(&deposit).to_bytes();
        match form {
            HintForm::Plain => {
                writer.append(&bytes).unwrap();
                continue;
            }
            HintForm::Right | HintForm::DecompressionOnly => {}
            HintForm::Wrong => {
                for hint in serial.chunks_exact_mut(96) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    match (x >> 60) % 4 {
                        0 => hint[47] ^= 1,
                        1 => hint.rotate_left(48),
                        2 => hint.fill(0),
                        _ => hint.iter_mut().for_each(|b| *b ^= 0x5a),
                    }
                }
            }
            HintForm::Short => {
                serial.truncate(serial.len() - 96);
            }
        }
        if matches!(form, HintForm::DecompressionOnly) {
            serial.clear();
        }
        writer
            .append_hinted(&bytes, &[hints, serial].concat())
            .unwrap();
    }
    writer.finish().unwrap();
    let mut bytes = std::fs::read(dst).unwrap();
    for o in broken {
        bytes[o as usize + microcash::engine::batch_file::RECORD_HEADER_BYTES + 3] ^= 0x40;
    }
    std::fs::write(dst, &bytes).unwrap();
}

/// Serial hints change the cost of a record, never its verdict: every golden sample,
/// rewritten with no hints, right hints, wrong hints of several kinds, decompression hints
/// only and too few serial hints, clears to its expected verdicts.
#[test]
fn golden_samples_clear_alike_with_right_wrong_or_no_serial_hints() {
    let dir = samples();
    let tmp = tempfile::tempdir().unwrap();
    for form in [
        HintForm::Plain,
        HintForm::Right,
        HintForm::Wrong,
        HintForm::DecompressionOnly,
        HintForm::Short,
    ] {
        let (_s, engine) = fresh_store(&dir.join("mixed.params"));
        for day in ["mixed-day1", "mixed-day2"] {
            let batch = tmp.path().join(format!("{day}-{form:?}.mcb"));
            rewrite_with_hints(&dir.join(format!("{day}.mcb")), &batch, form);
            let got = clear(&engine, &batch, 512, 2);
            let want = expected(&dir.join(format!("{day}.expected.jsonl")));
            assert_eq!(codes(&got), want, "{day} with {form:?} hints");
        }
    }
}

#[test]
fn re_clearing_a_batch_is_idempotent() {
    let dir = samples();
    let (_tmp, engine) = fresh_store(&dir.join("mixed.params"));
    let batch = dir.join("mixed-day1.mcb");
    let first = clear(&engine, &batch, 700, 2);
    let credited = engine.credited("merchant-0003");
    let second = clear(&engine, &batch, 300, 1);
    assert_eq!(first.len(), second.len());
    for (a, b) in first.iter().zip(&second) {
        match (&a.verdict, &b.verdict) {
            (
                Verdict::Accepted {
                    receipt: r1,
                    replayed: false,
                    ..
                },
                Verdict::Accepted {
                    receipt: r2,
                    replayed: true,
                    ..
                },
            ) => {
                assert_eq!(r1, r2, "same receipt on resubmission")
            }
            (x, y) => assert_eq!(x.code(), y.code(), "record {}", a.record),
        }
    }
    assert_eq!(
        engine.credited("merchant-0003"),
        credited,
        "nothing credited twice"
    );
}

#[test]
fn random_batches_agree_with_the_reference() {
    // `generate` itself clears each day through the reference path and checks it against
    // the injected faults; here the batched engine must reproduce those verdicts, across
    // chunk boundaries and thread counts.
    use microcash::protocol::policy::AllowanceScheme::{V1, V2};
    for (seed, allowance, scheme, chunk, threads, hints) in [
        (11u64, true, V1, 37usize, 2usize, true),
        (12, false, V1, 64, 1, false),
        (13, true, V1, 1000, 2, false),
        (14, false, V1, 300, 2, true),
        // Allowance v2: presentations by registered receivers, batched with the signatures.
        (15, true, V2, 45, 2, true),
        (16, true, V2, 1000, 1, false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("r.mcb");
        let opts = GenOptions {
            coins: 160,
            seed,
            double_spend_rate: 0.1,
            invalid_rate: 0.35,
            hops_mix: vec![(0, 10), (1, 50), (2, 25), (3, 15)],
            allowance,
            allowance_scheme: scheme,
            accounts: 5,
            days: 2,
            now: 1_900_000_000,
            hints,
            // Expected verdicts from the reference: the engine is held to them here.
            check: dataset::GenCheck::Reference,
        };
        dataset::generate(&out, &opts).unwrap();
        let (_s, engine) = fresh_store(&dataset::params_dir(&out));
        let (_t, twin) = fresh_store(&dataset::params_dir(&out));
        for day in 1..=2 {
            let batch = tmp.path().join(format!("r-day{day}.mcb"));
            let options = ClearOptions {
                threads,
                chunk_records: chunk,
                collect_verdicts: true,
                now: opts.now + (day - 1) * 86_400,
                ..ClearOptions::default()
            };
            let want = expected(&tmp.path().join(format!("r-day{day}.expected.jsonl")));
            let got = engine.clear(&batch, &options, &|_, _| {}).unwrap().verdicts;
            assert_eq!(codes(&got), want, "seed {seed} day {day}");
            if hints {
                // The same records with every serial hint wrong: the same verdicts, on a
                // second store that has seen the same days.
                let wrong = tmp.path().join(format!("r-day{day}-wrong.mcb"));
                rewrite_with_hints(&batch, &wrong, HintForm::Wrong);
                let got = twin.clear(&wrong, &options, &|_, _| {}).unwrap().verdicts;
                assert_eq!(codes(&got), want, "seed {seed} day {day}, wrong hints");
            }
        }
    }
}

#[test]
fn a_truncated_batch_clears_its_complete_records() {
    let dir = samples();
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(dir.join("mixed-day1.mcb")).unwrap();
    let cut = tmp.path().join("cut.mcb");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (_s, engine) = fresh_store(&dir.join("mixed.params"));
    let got = clear(&engine, &cut, 256, 2);
    let want = expected(&dir.join("mixed-day1.expected.jsonl"));
    let last = got.last().unwrap();
    assert!(
        matches!(&last.verdict, Verdict::Malformed { reason, .. } if reason.contains("truncated")),
        "{last:?}"
    );
    assert_eq!(codes(&got[..got.len() - 1]), want[..got.len() - 1].to_vec());
}

/// Kills a clearing child process at random points, restarts it, and checks the end state
/// is as if it ran once: no serial accepted twice, no acceptance that a run reported lost.
/// Kill times are spread uniformly over a whole run (store creation, journal replay and map
/// rebuild, verification, commits, the final seal), measured first on a scratch store.
/// `MICROCASH_CRASH_ITERATIONS` raises the number of kills (default 20; run 200+ outside
/// CI).
#[test]
fn clearing_survives_kill_9_at_random_points() {
    let iterations: u32 = std::env::var("MICROCASH_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = samples();
    let tmp = tempfile::tempdir().unwrap();
    // The batch and its params side by side, so the first run creates the store from them.
    let batch = tmp.path().join("mixed-day1.mcb");
    std::fs::copy(dir.join("mixed-day1.mcb"), &batch).unwrap();
    let params = tmp.path().join("mixed.params");
    std::fs::create_dir_all(&params).unwrap();
    for f in ["keysets.json", "policy.toml", "accounts.json"] {
        std::fs::copy(dir.join("mixed.params").join(f), params.join(f)).unwrap();
    }
    let store = tmp.path().join("store");
    let run = |verdicts: &Path| {
        Command::new(env!("CARGO_BIN_EXE_microcash"))
            .args([
                "clear",
                batch.to_str().unwrap(),
                "--store",
                store.to_str().unwrap(),
                "--chunk",
                "32",
                "--threads",
                "2",
                "--verdicts",
            ])
            .arg(verdicts)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long one whole run takes here (on a throwaway store beside the real one).
    let whole_ms = {
        let scratch = tmp.path().join("timing-store");
        let t = std::time::Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_microcash"))
            .args([
                "clear",
                batch.to_str().unwrap(),
                "--store",
                scratch.to_str().unwrap(),
            ])
            .args(["--chunk", "32", "--threads", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let _ = std::fs::remove_dir_all(&scratch);
        (t.elapsed().as_millis() as u64).max(50)
    };
    let mut reported: HashMap<String, u64> = HashMap::new(); // serial -> receipt
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..iterations {
        let out = tmp.path().join(format!("v{i}.jsonl"));
        let mut child = run(&out);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % (whole_ms + whole_ms / 5)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Every complete line the killed run wrote is a verdict it reported.
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if v["verdict"] == "accepted" {
                let serial = v["serial"].as_str().unwrap().to_owned();
                let receipt = v["receipt"].as_u64().unwrap();
                if let Some(prev) = reported.insert(serial.clone(), receipt) {
                    assert_eq!(prev, receipt, "serial {serial} accepted under two receipts");
                }
            }
        }
    }
    // A final run to completion.
    let out = tmp.path().join("final.jsonl");
    let status = run(&out).wait().unwrap();
    assert!(status.success());
    let finals: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want = expected(&dir.join("mixed-day1.expected.jsonl"));
    let got = verdict_codes(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(got, want, "the end result is the single run's result");
    let mut by_account: BTreeMap<String, u64> = BTreeMap::new();
    for v in finals.iter().filter(|v| v["verdict"] == "accepted") {
        let serial = v["serial"].as_str().unwrap();
        if let Some(r) = reported.get(serial) {
            assert_eq!(
                *r,
                v["receipt"].as_u64().unwrap(),
                "an acceptance reported before the crash was kept"
            );
        }
        *by_account
            .entry(v["account"].as_str().unwrap().to_owned())
            .or_default() += v["value"].as_u64().unwrap();
    }
    for serial in reported.keys() {
        assert!(
            finals
                .iter()
                .any(|v| v["serial"] == serial.as_str() && v["verdict"] == "accepted"),
            "reported acceptance of {serial} lost"
        );
    }
    // Credits equal one run's worth: nothing credited twice across the restarts.
    let engine = Engine::open(&store, SpentSetConfig::default()).unwrap();
    for (account, value) in by_account {
        assert_eq!(engine.credited(&account), value, "{account}");
    }
}
