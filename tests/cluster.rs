//! The cluster's deterministic core, in one process and without a network: generated days
//! go through the workers' verification and the wire encodings, every partition votes
//! from its own spent set, every owner decides every chunk from all votes and applies its
//! own keys — and the verdicts equal `Engine::clear`'s, for any partition count and chunk
//! size. Also: votes and messages that cannot be trusted are refused, never guessed at.
//! (`scripts/cluster-check.sh` runs the same over real NATS and PostgreSQL.)

use std::collections::HashMap;
use std::path::Path;

use microcash::cluster::messages::{self, TypedChunk, VerifiedChunk, Vote, WorkChunk};
use microcash::cluster::partition::{self, partition_of};
use microcash::cluster::{worker, ClusterError};
use microcash::dataset::{self, GenOptions};
use microcash::engine::batch_file::{BatchReader, RawRecord};
use microcash::engine::pipeline::{batch_content_key, verify_records};
use microcash::engine::{ClearOptions, Engine, RecordVerdict, Verdict};
use microcash::protocol::policy::AllowanceScheme;
use microcash::spentset::{SpentSet, SpentSetConfig};

mod common;
use common::fresh_store;

/// A verdict without its receipt ids (journal offsets on one machine, content hashes in a
/// cluster): what must be equal.
fn normalised(v: &RecordVerdict) -> serde_json::Value {
    let mut j = serde_json::to_value(v).unwrap();
    let o = j.as_object_mut().unwrap();
    o.remove("receipt");
    if let Some(e) = o.get_mut("evidence") {
        e.as_object_mut().unwrap().remove("first_receipt");
    }
    j
}

struct Cluster {
    owners: Vec<SpentSet>,
    _dirs: Vec<tempfile::TempDir>,
    accounts: HashMap<String, bool>,
}

impl Cluster {
    fn new(partitions: u32, engine: &Engine) -> Cluster {
        let dirs: Vec<_> = (0..partitions)
            .map(|_| tempfile::tempdir().unwrap())
            .collect();
        let owners = dirs
            .iter()
            .map(|d| {
                SpentSet::open(d.path(), SpentSetConfig::default())
                    .unwrap()
                    .0
            })
            .collect();
        let accounts = engine
            .accounts()
            .accounts()
            .unwrap()
            .into_iter()
            .map(|(n, r)| (n, r.merchant))
            .collect();
        Cluster {
            owners,
            _dirs: dirs,
            accounts,
        }
    }

    fn n(&self) -> u32 {
        self.owners.len() as u32
    }

    /// One worker's output for one chunk of raw records, as the wire carries it.
    fn verified(
        &self,
        engine: &Engine,
        raw: Vec<RawRecord>,
        batch_seq: u64,
        chunk: u32,
        now: u64,
    ) -> Vec<u8> {
        let work = WorkChunk {
            batch_key: [batch_seq as u8; 16],
            chunk,
            chunk_records: 64,
            records: raw,
        };
        let work: WorkChunk = messages::decode("w", &messages::encode(&work).unwrap()).unwrap();
        let verified = verify_records(
            engine.params(),
            work.records,
            now,
            &mut microcash::seeded_rng(),
        )
        .unwrap();
        let facts = worker::credited_accounts(&verified)
            .into_iter()
            .map(|n| {
                let m = self.accounts.get(&n).copied();
                (n, m)
            })
            .collect();
        let chunk = worker::verified_chunk(batch_seq, chunk, now, verified, facts).unwrap();
        messages::encode(&chunk).unwrap()
    }

    fn typed(bytes: &[u8]) -> TypedChunk {
        TypedChunk::from_wire("s", messages::decode::<VerifiedChunk>("s", bytes).unwrap()).unwrap()
    }

    /// Clears `batch` as the cluster does; `replay`: every owner handles every chunk a
    /// second time, as after a crash between its commit and its position.
    fn clear(
        &mut self,
        engine: &Engine,
        batch: &Path,
        batch_seq: u64,
        chunk_records: usize,
        now: u64,
        replay: bool,
    ) -> Vec<RecordVerdict> {
        let key = batch_content_key(batch).unwrap();
        let mut reader = BatchReader::open(batch).unwrap();
        let n = self.n();
        let mut out = Vec::new();
        for i in 0.. {
            let raw = reader.next_chunk(chunk_records, 4 << 20);
            if raw.is_empty() {
                break;
            }
            let bytes = self.verified(engine, raw, batch_seq, i, now);
            let votes: Vec<Vote> = (0..n)
                .map(|p| {
                    let v = partition::vote(&self.owners[p as usize], &Self::typed(&bytes), p, n)
                        .unwrap();
                    messages::decode("v", &messages::encode(&v).unwrap()).unwrap()
                })
                .collect();
            let decisions: Vec<_> = (0..n)
                .map(|_| partition::decide(Self::typed(&bytes), &votes, key, n).unwrap())
                .collect();
            for d in &decisions[1..] {
                assert_eq!(
                    d.verdicts, decisions[0].verdicts,
                    "owners disagree on chunk {i}"
                );
            }
            for (p, d) in decisions.iter().enumerate() {
                let owner = &mut self.owners[p];
                let writes = partition::own_writes(owner, &d.fresh, p as u32, n);
                owner.commit(&writes).unwrap();
                if replay {
                    // Same first votes, same decision; nothing left to write.
                    let again = partition::decide(Self::typed(&bytes), &votes, key, n).unwrap();
                    assert_eq!(again.verdicts, d.verdicts);
                    assert!(partition::own_writes(owner, &again.fresh, p as u32, n).is_empty());
                }
            }
            out.extend(decisions.into_iter().next().unwrap().verdicts);
        }
        out
    }
}

#[test]
fn partitioned_decisions_equal_the_single_machine_for_any_partition_count() {
    for (seed, scheme, partitions, chunk, replay) in [
        (21, AllowanceScheme::V1, 1, 64, false),
        (22, AllowanceScheme::V1, 3, 37, true),
        (23, AllowanceScheme::V1, 4, 200, false),
        (24, AllowanceScheme::V2, 4, 29, false),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("c.mcb");
        let opts = GenOptions {
            coins: 240,
            seed,
            double_spend_rate: 0.1,
            invalid_rate: 0.3,
            hops_mix: vec![(0, 10), (1, 50), (2, 25), (3, 15)],
            allowance: true,
            allowance_scheme: scheme,
            accounts: 5,
            days: 2,
            now: 1_900_000_000,
            hints: true,
            check: dataset::GenCheck::Engine,
        };
        dataset::generate(&out, &opts).unwrap();
        let params = dataset::params_dir(&out);
        let (_s, single) = fresh_store(&params);
        let (_c, params_engine) = fresh_store(&params);
        let mut cluster = Cluster::new(partitions, &params_engine);
        for day in 1..=2u64 {
            let batch = tmp.path().join(format!("c-day{day}.mcb"));
            let now = opts.now + (day - 1) * 86_400;
            let options = ClearOptions {
                chunk_records: 100,
                collect_verdicts: true,
                now,
                ..ClearOptions::default()
            };
            let want = single.clear(&batch, &options, &|_, _| {}).unwrap().verdicts;
            let got = cluster.clear(&params_engine, &batch, day, chunk, now, replay);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(
                    normalised(g),
                    normalised(w),
                    "seed {seed} day {day} P={partitions}"
                );
            }
            let codes: std::collections::BTreeSet<_> = got.iter().map(|v| v.code.clone()).collect();
            assert!(codes.contains("accepted") && codes.len() > 3, "{codes:?}");
            if day == 2 {
                assert!(codes.contains("double_spent"), "{codes:?}");
            }
            // Every accepted serial is held by exactly one owner: its range's.
            for v in got.iter().filter(|v| {
                matches!(
                    v.verdict,
                    Verdict::Accepted {
                        replayed: false,
                        ..
                    }
                )
            }) {
                let serial: [u8; 32] = hex::decode(v.serial.as_ref().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap();
                let holders: Vec<usize> = cluster
                    .owners
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| (0..4).any(|e| o.lookup(e, &serial).is_some()))
                    .map(|(p, _)| p)
                    .collect();
                assert_eq!(holders, vec![partition_of(&serial, partitions) as usize]);
            }
        }
    }
}

#[test]
fn partitions_are_contiguous_even_ranges() {
    let mut lo = [0u8; 32];
    let mut hi = [0xffu8; 32];
    for n in [1u32, 2, 3, 4, 7, 4096] {
        assert_eq!(partition_of(&lo, n), 0);
        assert_eq!(partition_of(&hi, n), n - 1);
    }
    lo[0] = 0x7f;
    hi[0] = 0x80;
    hi[1..].fill(0);
    lo[1..].fill(0xff);
    assert_eq!((partition_of(&lo, 2), partition_of(&hi, 2)), (0, 1));
}

/// A chunk of the sample day and its honest votes, for the refusal tests.
fn sample_chunk() -> (Vec<u8>, Vec<Vote>, [u8; 16]) {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/samples");
    let (_t, engine) = fresh_store(&samples.join("mixed.params"));
    let cluster = Cluster::new(4, &engine);
    let batch = samples.join("mixed-day1.mcb");
    let raw = BatchReader::open(&batch).unwrap().next_chunk(200, 4 << 20);
    let bytes = cluster.verified(&engine, raw, 1, 0, microcash::unix_now());
    let votes = (0..4)
        .map(|p| {
            partition::vote(&cluster.owners[p as usize], &Cluster::typed(&bytes), p, 4).unwrap()
        })
        .collect();
    (bytes, votes, batch_content_key(&batch).unwrap())
}

#[test]
fn votes_that_cannot_be_used_are_refused_by_name() {
    let (bytes, votes, key) = sample_chunk();
    let decide = |votes: &[Vote]| partition::decide(Cluster::typed(&bytes), votes, key, 4);
    assert!(decide(&votes).is_ok());
    let refusal = |votes: Vec<Vote>, want: &str| match decide(&votes) {
        Err(ClusterError::Vote { reason, .. }) => assert!(reason.contains(want), "{reason}"),
        other => panic!("{want}: {other:?}"),
    };
    refusal(votes[..3].to_vec(), "3 votes for 4 partitions");
    let mut twice = votes.clone();
    twice[3] = votes[2].clone();
    refusal(twice, "two votes from one partition");
    let mut other_chunk = votes.clone();
    other_chunk[1].chunk = 1;
    refusal(other_chunk, "another chunk");
    let mut other_count = votes.clone();
    other_count[0].partitions = 8;
    refusal(other_count, "another partition count");
    // A vote claiming a key of another range spent (a forged or misrouted vote would
    // otherwise refuse an honest deposit).
    let chunk = Cluster::typed(&bytes);
    let d = chunk
        .records
        .iter()
        .find_map(|r| r.outcome.as_ref().ok())
        .unwrap();
    let (epoch, serial) = d.keys().next().unwrap();
    let wrong = (partition_of(&serial, 4) + 1) % 4;
    let mut forged = votes.clone();
    let receipt = votes
        .iter()
        .find_map(|v| v.seen.first())
        .map(|s| s.2.clone());
    if let Some(receipt) = receipt {
        forged[wrong as usize].seen.push((epoch, serial, receipt));
        refusal(forged, "outside the voter's range");
    }
}

#[test]
fn verified_chunks_that_cannot_be_trusted_are_refused() {
    let (bytes, _, _) = sample_chunk();
    let chunk: VerifiedChunk = messages::decode("s", &bytes).unwrap();
    // An account a deposit credits with no fact: the worker's fault, not unknown_account.
    let mut missing = chunk.clone();
    missing.accounts.clear();
    assert!(matches!(
        TypedChunk::from_wire("s", missing),
        Err(ClusterError::Message { reason, .. }) if reason.contains("no fact for account")
    ));
    let mut bad_name = chunk.clone();
    let facts = bad_name
        .records
        .iter_mut()
        .find_map(|r| r.outcome.as_mut().ok())
        .unwrap();
    // Account target (1), a name the protocol refuses.
    facts.target = [&[1u8, 17][..], b"no spaces allowed"].concat();
    assert!(TypedChunk::from_wire("s", bad_name).is_err());
    let mut bad_verdict = chunk.clone();
    let refusal = bad_verdict
        .records
        .iter_mut()
        .find_map(|r| r.outcome.as_mut().err())
        .unwrap();
    *refusal = "{\"verdict\":\"made_up\"}".into();
    assert!(TypedChunk::from_wire("s", bad_verdict).is_err());
    let mut huge = chunk;
    let facts = huge
        .records
        .iter_mut()
        .find_map(|r| r.outcome.as_mut().ok())
        .unwrap();
    facts.owner_keys = vec![[0u8; 32]; 1000];
    assert!(TypedChunk::from_wire("s", huge).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    #[test]
    fn damaged_messages_are_errors_not_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = messages::decode::<WorkChunk>("x", &bytes);
        let _ = messages::decode::<Vote>("x", &bytes);
        let _ = messages::decode::<messages::Announce>("x", &bytes);
        if let Ok(c) = messages::decode::<VerifiedChunk>("x", &bytes) {
            let _ = TypedChunk::from_wire("x", c);
        }
    }

}

/// Against a live cluster (`MICROCASH_TEST_NATS`, set by `scripts/cluster-check.sh`): the
/// stream itself refuses a second message on a fenced subject — a second vote for one
/// chunk and partition, whatever it says — and every reader gets the first.
#[test]
fn a_second_vote_for_one_chunk_and_partition_is_refused_by_the_stream() {
    let Ok(urls) = std::env::var("MICROCASH_TEST_NATS") else {
        eprintln!(
            "MICROCASH_TEST_NATS not set: needs a live cluster (scripts/cluster-check.sh runs it)"
        );
        return;
    };
    use microcash::cluster::transport::{self, VOTES_STREAM};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let nats = transport::connect(&urls, "fence-test").await.unwrap();
        let subject = format!("mc.vote.{}.0.0", u64::MAX - u64::from(std::process::id()));
        let first = nats
            .publish_once(&subject, "fence-a", b"honest".to_vec())
            .await
            .unwrap();
        assert!(first.is_some());
        // Another id (past any duplicate window), other content: refused.
        let second = nats
            .publish_once(&subject, "fence-b", b"forged".to_vec())
            .await
            .unwrap();
        assert_eq!(second, None);
        let votes = nats.stream(VOTES_STREAM).await.unwrap();
        let m = transport::first(&votes, &subject, 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&m.payload[..], b"honest");
        assert_eq!(Some(m.sequence), first);
    });
}
