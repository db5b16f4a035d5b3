//! `microcash bench`: one process, one run, ours beside the baselines on the same coins.
//!
//! Measured on a generated batch of one-hop coins (σ, one link signature, one deposit
//! signature each):
//! * the engine end to end (`clear` on a fresh store), on one thread and on all threads;
//! * the verification kernels only (decoded deposits in memory → batched verdicts);
//! * the same coins verified one at a time, the way existing mints check notes: blst
//!   `Signature::verify` (with its group check) plus `reddsa` single verification of every
//!   RedPallas signature;
//! * the primitives that bound the floor: hash_to_g1, G1 decompression, G1 subgroup check,
//!   Pallas decompression;
//! * spent-set probe+insert of fresh serials in RAM (bloom + table, no journal);
//! * with the `peer-baselines` feature, Cashu's mint check (`dhke::verify_message` and
//!   `Proof::verify_p2pk` on P2PK-locked proofs) on the same number of items.
//!
//! Ratios are taken within this one run (this machine is shared and noisy).

#![allow(
    clippy::indexing_slicing,
    clippy::expect_used,
    reason = "the benchmark indexes inputs it generated itself; a failure here is a bug in it"
)]

use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;

use crate::dataset::{self, GenOptions};
use crate::engine::batch_verify::{self, ChunkDeposit};
use crate::engine::{ClearOptions, Engine};
use crate::protocol::deposit::Deposit;
use crate::protocol::hints::HintedDeposit;
use crate::protocol::keys::RedSig;
use crate::protocol::tags;
use crate::protocol::verify::Verifier;
use crate::spentset::SpentSetConfig;

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Coins in the generated batch.
    pub coins: u64,
    /// Threads for the "all threads" runs (0: all cores).
    pub threads: usize,
}

/// Per-coin costs in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PerCoin {
    /// Engine end to end (read, decode, verify, settle, fsync), one thread.
    pub engine_1t_us: f64,
    /// Engine end to end, all threads (wall clock per coin).
    pub engine_all_us: f64,
    /// Batched verification kernels only, one thread.
    pub kernels_1t_us: f64,
    /// Batched verification kernels only, all threads.
    pub kernels_all_us: f64,
    /// One at a time (blst verify + reddsa), one thread.
    pub one_at_a_time_1t_us: f64,
    /// One at a time, all threads.
    pub one_at_a_time_all_us: f64,
}

/// The report `--json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Machine facts.
    pub machine: Machine,
    /// Coins measured.
    pub coins: u64,
    /// Threads in the all-threads runs.
    pub threads: usize,
    /// Per-coin costs.
    pub per_coin: PerCoin,
    /// Ratios within this run.
    pub ratios: Ratios,
    /// Where one coin's microseconds go on one thread, stage by stage.
    pub stages_1t_us: StageCosts,
    /// Primitive costs, µs per operation, one thread.
    pub primitives_us: Primitives,
    /// Spent set: fresh-serial probe+insert per second, one thread, in RAM.
    pub spentset_probe_insert_per_s: f64,
    /// Journal entries per second replayed on open when the maps must be rebuilt (after a
    /// crash or damage), one thread.
    pub recovery_rebuild_entries_per_s: f64,
    /// Journal entries per second replayed on open when the maps are sealed (after a clean
    /// close: checksums verified, credits summed), one thread.
    pub recovery_sealed_open_entries_per_s: f64,
    /// Dataset generation (`dataset gen`, one-hop coins, hints on, verdicts confirmed by
    /// the engine): coins per second per thread, over all threads.
    pub dataset_gen_coins_per_s_per_core: f64,
    /// Allowance v2: one presentation (one slot) verified in a batch, µs, one thread:
    /// decoding, challenge, and its share of the batch's multi-scalar multiplication.
    pub allowance_v2_presentation_us: f64,
    /// Allowance v2: one presentation verified alone (the reference verifier), µs.
    pub allowance_v2_presentation_single_us: f64,
    /// Allowance v1, for comparison: one token in the engine's batch kernels, µs — its σ
    /// (hash to G1 + BLS batch check) and its RedPallas signature (prepare + batch check),
    /// from this run's per-coin stages.
    pub allowance_v1_token_us: f64,
    /// Bloom backend in use.
    pub bloom_backend: &'static str,
    /// Cashu's mint check on the same number of items, one thread (feature `peer-baselines`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cashu: Option<CashuBaseline>,
}

/// The peer baseline: Cashu (CDK's `cashu` crate) checking proofs one at a time.
#[derive(Clone, Debug, Serialize)]
pub struct CashuBaseline {
    /// `dhke::verify_message` per proof, µs.
    pub verify_message_us: f64,
    /// `verify_message` + `Proof::verify_p2pk` per P2PK-locked proof, µs.
    pub p2pk_proof_us: f64,
    /// Our engine per one-hop coin on one thread ÷ Cashu's P2PK proof check (goal ≤ 0.75).
    pub engine_1t_over_p2pk: f64,
}

#[cfg(feature = "peer-baselines")]
fn cashu_baseline(n: usize) -> (f64, f64) {
    use cashu::dhke::{hash_to_curve, sign_message, verify_message};
    use cashu::nuts::{Id, Proof, SecretKey, SpendingConditions};
    use cashu::secret::Secret;
    use cashu::Amount;
    use std::str::FromStr;
    let mint = SecretKey::generate();
    let keyset = Id::from_str("009a1f293253e41e").expect("a valid keyset id");
    let proofs: Vec<Proof> = (0..n)
        .map(|_| {
            let owner = SecretKey::generate();
            let secret: Secret = SpendingConditions::new_p2pk(owner.public_key(), None)
                .try_into()
                .expect("p2pk secret");
            let c = sign_message(&mint, &hash_to_curve(&secret.to_bytes()).expect("hash"))
                .expect("sign");
            let mut proof = Proof::new(Amount::ONE, keyset, secret, c);
            proof.sign_p2pk(owner).expect("sign p2pk");
            proof
        })
        .collect();
    let plain = per_item_us(n, || {
        assert!(proofs
            .iter()
            .all(|p| verify_message(&mint, p.c, &p.secret.to_bytes()).is_ok()))
    });
    let p2pk = per_item_us(n, || {
        assert!(proofs
            .iter()
            .all(|p| verify_message(&mint, p.c, &p.secret.to_bytes()).is_ok()
                && p.verify_p2pk().is_ok()))
    });
    (plain, p2pk)
}

/// Ratios (higher is better for "speedup", lower for "overhead").
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ratios {
    /// One-at-a-time ÷ engine, one thread each.
    pub speedup_vs_one_at_a_time_1t: f64,
    /// One-at-a-time ÷ engine, all threads each.
    pub speedup_vs_one_at_a_time_all: f64,
    /// Engine ÷ kernels only, all threads (pipeline overhead).
    pub engine_over_kernels: f64,
    /// Engine throughput on all threads ÷ on one thread.
    pub thread_scaling: f64,
    /// Kernels per record on a chunk where every record's link signature is forged ÷ on
    /// the valid chunk, one thread: what an attacker's invalid record costs the issuer
    /// relative to an honest one (bounded by the record-wise bisection).
    pub forged_over_valid: f64,
}

/// Per-coin cost of each stage of clearing on one thread, µs. The verification stages are
/// measured inside the kernel-only run (`batch_verify::StageTimes`); `decode` is reading
/// and decoding the batch file; `settle_and_pipeline` is what the end-to-end run spends
/// beyond decode and verification (spent-set lookups, journal commit, verdict lines,
/// queues) — the difference of two runs, so noisy, and floored at 0.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageCosts {
    /// Reading and decoding records.
    pub decode: f64,
    /// The verification stages, µs per coin.
    #[serde(flatten)]
    pub verify: batch_verify::StageTimes,
    /// End to end minus decode and verification.
    pub settle_and_pipeline: f64,
}

impl StageCosts {
    fn per_coin(
        decode_us: f64,
        t: batch_verify::StageTimes,
        n: usize,
        engine_us: f64,
        kernels_us: f64,
    ) -> StageCosts {
        StageCosts {
            decode: decode_us,
            verify: t.scaled(1e6 / n.max(1) as f64),
            settle_and_pipeline: (engine_us - kernels_us - decode_us).max(0.0),
        }
    }
}

/// Primitive costs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Primitives {
    /// blst hash_to_g1 (RO) of a 32-byte serial.
    pub hash_to_g1: f64,
    /// G1 decompression (48 bytes).
    pub g1_decompress: f64,
    /// G1 subgroup check.
    pub g1_subgroup_check: f64,
    /// Pallas point decompression.
    pub pallas_decompress: f64,
    /// blst `Signature::verify`, one signature.
    pub blst_verify: f64,
    /// `reddsa` verification, one signature.
    pub reddsa_verify: f64,
}

/// Machine facts.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
    /// Architecture.
    pub arch: &'static str,
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("CPU part"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        arch: std::env::consts::ARCH,
    }
}

fn per_item_us(n: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
}

fn one_at_a_time(engine: &Engine, deposits: &[Deposit], now: u64) -> usize {
    let params = engine.params();
    deposits
        .par_iter()
        .filter(|d| {
            let coin = &d.coin;
            let Some(ks) = params.keysets.get(&coin.keyset_id) else {
                return false;
            };
            let pk = blst::min_sig::PublicKey::from_bytes(&ks.public_key.to_bytes());
            let sig = blst::min_sig::Signature::from_bytes(&coin.sigma.to_compressed());
            let sigma_ok = match (pk, sig) {
                (Ok(pk), Ok(sig)) => {
                    sig.verify(true, &coin.serial().0, tags::H1_DST, &[], &pk, true)
                        == blst::BLST_ERROR::BLST_SUCCESS
                }
                _ => false,
            };
            // Every RedPallas signature of the coin through reddsa's own verifier.
            let mut recorder = SigRecorder::default();
            let _ = Verifier::new(&params.keysets, &params.policy).verify_deposit_with(
                &mut recorder,
                d,
                now,
            );
            debug_assert_eq!(recorder.sigs.len(), 2, "one link and one deposit signature");
            sigma_ok
                && recorder.sigs.len() == 2
                && recorder.sigs.iter().all(|(k, m, s)| k.verify(m, s))
        })
        .count()
}

/// Collects the owner signatures of a deposit (so the baseline verifies exactly those).
#[derive(Default)]
struct SigRecorder {
    sigs: Vec<(crate::protocol::keys::OwnerKey, Vec<u8>, RedSig)>,
}

impl crate::protocol::verify::CryptoChecks for SigRecorder {
    fn issuer_signature(
        &mut self,
        _: &crate::protocol::keyset::Keyset,
        _: &microcash_kernels::bls::G1Affine,
        _: &crate::protocol::coin::Serial,
    ) -> bool {
        true
    }
    fn owner_signature(
        &mut self,
        key: &crate::protocol::keys::OwnerKey,
        msg: &[u8],
        sig: &RedSig,
    ) -> bool {
        self.sigs.push((*key, msg.to_vec(), *sig));
        true
    }
}

#[allow(
    clippy::field_reassign_with_default,
    reason = "one measurement per field, in order: clearer as assignments than one initializer"
)]
fn primitives(deposits: &[Deposit]) -> Primitives {
    let n = deposits.len().min(2000);
    let d = &deposits[..n];
    let serials: Vec<[u8; 32]> = d.iter().map(|x| x.coin.serial().0).collect();
    let sigmas: Vec<[u8; 48]> = d.iter().map(|x| x.coin.sigma.to_compressed()).collect();
    let keys: Vec<[u8; 32]> = d.iter().map(|x| x.coin.coin_key.to_bytes()).collect();
    let mut p = Primitives::default();
    p.hash_to_g1 = per_item_us(n, || {
        serials.iter().for_each(|s| {
            std::hint::black_box(microcash_kernels::bls::hash_to_g1(s, tags::H1_DST));
        })
    });
    let mut decoded = Vec::with_capacity(n);
    p.g1_decompress = per_item_us(n, || {
        decoded.extend(
            sigmas
                .iter()
                .filter_map(|s| microcash_kernels::bls::G1Affine::from_compressed(s).ok()),
        )
    });
    p.g1_subgroup_check = per_item_us(n, || assert!(decoded.iter().all(|s| s.in_subgroup())));
    p.pallas_decompress = per_item_us(n, || {
        keys.iter().for_each(|k| {
            let _ = std::hint::black_box(crate::protocol::keys::OwnerKey::from_bytes(k));
        })
    });
    p
}

fn spentset_rate(dir: &Path, n: u64) -> f64 {
    let serials: Vec<[u8; 32]> = (0..n)
        .map(|i| tags::blake2b(b"bench-serial", &[&i.to_le_bytes()]))
        .collect();
    crate::spentset::bench_probe_insert(dir, &serials)
}

/// Runs the benchmark.
pub fn run(
    opts: &BenchOptions,
    work: &Path,
) -> Result<BenchReport, Box<dyn std::error::Error + Send + Sync>> {
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let now = crate::unix_now();
    let out = work.join("bench.mcb");
    let gen = GenOptions {
        coins: opts.coins,
        seed: 42,
        hops_mix: vec![(1, 1)],
        allowance: false,
        accounts: 8,
        now,
        ..GenOptions::default()
    };
    let gen_clock = Instant::now();
    let gen_threads = rayon::current_num_threads().max(1) as f64;
    dataset::generate(&out, &gen)?;
    let gen_rate = opts.coins as f64 / gen_clock.elapsed().as_secs_f64() / gen_threads;
    let params = dataset::params_dir(&out);
    let fresh = |name: &str| -> Result<Engine, Box<dyn std::error::Error + Send + Sync>> {
        let store = work.join(name);
        dataset::init_store_from_params(&params, &store)?;
        Ok(Engine::open(&store, SpentSetConfig::default())?)
    };
    let n = opts.coins as usize;
    let mut per = PerCoin::default();
    let mut stages = StageCosts::default();
    for (t, slot) in [(1usize, 0), (threads, 1)] {
        let engine = fresh(&format!("store-{slot}"))?;
        let options = ClearOptions {
            threads: t,
            chunk_records: 8192,
            now,
            ..ClearOptions::default()
        };
        let s = engine.clear(&out, &options, &|_, _| {})?;
        assert_eq!(s.accepted, opts.coins, "benchmark coins must all verify");
        let us = s.elapsed_s * 1e6 / n as f64;
        if slot == 0 {
            per.engine_1t_us = us
        } else {
            per.engine_all_us = us
        }
    }
    // Decoded deposits for the kernel-only and one-at-a-time runs (timed: the decode stage).
    let mut hinted: Vec<HintedDeposit> = Vec::new();
    let mut reader = crate::engine::batch_file::BatchReader::open(&out)?;
    let decode_us = per_item_us(n, || {
        hinted = std::iter::from_fn(|| reader.next_record())
            .filter_map(|r| r.payload.ok().and_then(|p| hinted_deposit(&p)))
            .collect();
    });
    let engine = fresh("store-k")?;
    let p = engine.params().clone();
    let verifier = Verifier::new(&p.keysets, &p.policy);
    let refs: Vec<ChunkDeposit<'_>> = hinted.iter().map(ChunkDeposit::from).collect();
    let deposits: Vec<Deposit> = hinted.iter().map(|h| h.deposit.clone()).collect();
    for (t, slot) in [(1usize, 0), (threads, 1)] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
        let mut rng = rand::rngs::StdRng::try_from_rng(&mut rand::rngs::SysRng)?;
        let mut ok = 0;
        let mut times = batch_verify::StageTimes::default();
        let kernels = per_item_us(n, || {
            ok = pool.install(|| {
                refs.chunks(8192)
                    .map(|c| {
                        let (verdicts, t) = batch_verify::verify_chunk_timed(
                            &verifier, &p.keysets, c, now, &mut rng,
                        );
                        times += t;
                        verdicts.iter().filter(|r| r.is_ok()).count()
                    })
                    .sum::<usize>()
            })
        });
        if slot == 0 {
            stages = StageCosts::per_coin(decode_us, times, n, per.engine_1t_us, kernels);
        }
        assert_eq!(ok, n);
        let mut good = 0;
        let single = per_item_us(n, || {
            good = pool.install(|| one_at_a_time(&engine, &deposits, now))
        });
        assert_eq!(good, n, "baseline must accept the same coins");
        if slot == 0 {
            per.kernels_1t_us = kernels;
            per.one_at_a_time_1t_us = single;
        } else {
            per.kernels_all_us = kernels;
            per.one_at_a_time_all_us = single;
        }
    }
    // The same chunk with every record's link signature forged (well-formed, wrong).
    let forged_over_valid = {
        let forged: Vec<Deposit> = deposits
            .iter()
            .cloned()
            .map(|mut d| {
                if let Some(link) = d.coin.links.last_mut() {
                    link.signature.bytes_mut()[5] ^= 0x20;
                }
                d
            })
            .collect();
        // Forged records keep their serial hints: only the link signature changed.
        let forged_refs: Vec<ChunkDeposit<'_>> = forged
            .iter()
            .zip(&refs)
            .map(|(deposit, r)| ChunkDeposit {
                deposit,
                serial_hints: r.serial_hints,
            })
            .collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
        let mut rng = rand::rngs::StdRng::try_from_rng(&mut rand::rngs::SysRng)?;
        let mut time = |set: &[ChunkDeposit<'_>]| {
            per_item_us(n, || {
                pool.install(|| {
                    for c in set.chunks(8192) {
                        std::hint::black_box(batch_verify::verify_chunk(
                            &verifier, &p.keysets, c, now, &mut rng,
                        ));
                    }
                })
            })
        };
        let valid = time(&refs);
        time(&forged_refs) / valid
    };
    let primitives_us = {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
        let mut p = pool.install(|| primitives(&deposits));
        p.blst_verify = pool.install(|| {
            per_item_us(n.min(500), || {
                std::hint::black_box(one_at_a_time_sigma_only(&engine, &deposits[..n.min(500)]));
            })
        });
        p.reddsa_verify = (per.one_at_a_time_1t_us - p.blst_verify).max(0.0) / 2.0;
        p
    };
    let ratios = Ratios {
        speedup_vs_one_at_a_time_1t: per.one_at_a_time_1t_us / per.engine_1t_us,
        speedup_vs_one_at_a_time_all: per.one_at_a_time_all_us / per.engine_all_us,
        engine_over_kernels: per.engine_all_us / per.kernels_all_us,
        thread_scaling: per.engine_1t_us / per.engine_all_us,
        forged_over_valid,
    };
    let rate = spentset_rate(
        &work.join("spent-bench"),
        (opts.coins * 64).clamp(100_000, 4_000_000),
    );
    let (rebuild, sealed) = crate::spentset::bench_recovery(
        &work.join("recovery-bench"),
        (opts.coins * 64).clamp(20_000, 1_000_000),
    )
    .unwrap_or_default();
    let v1_token = stages.verify.hash_to_g1
        + stages.verify.bls_check
        + (stages.verify.pallas_prepare + stages.verify.pallas_check) / 2.0;
    let (v2_batched, v2_single) = {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
        pool.install(|| allowance_v2_costs(n.clamp(64, 2048)))
    };
    #[cfg(feature = "peer-baselines")]
    let cashu_report = {
        let (plain, p2pk) = cashu_baseline(n);
        Some(CashuBaseline {
            verify_message_us: plain,
            p2pk_proof_us: p2pk,
            engine_1t_over_p2pk: per.engine_1t_us / p2pk,
        })
    };
    #[cfg(not(feature = "peer-baselines"))]
    let cashu_report = None;
    Ok(BenchReport {
        machine: machine(),
        coins: opts.coins,
        threads,
        per_coin: per,
        stages_1t_us: stages,
        ratios,
        primitives_us,
        spentset_probe_insert_per_s: rate,
        dataset_gen_coins_per_s_per_core: gen_rate,
        recovery_rebuild_entries_per_s: rebuild,
        recovery_sealed_open_entries_per_s: sealed,
        allowance_v2_presentation_us: v2_batched,
        allowance_v2_presentation_single_us: v2_single,
        allowance_v1_token_us: v1_token,
        bloom_backend: microcash_kernels::bloom::backend(),
        cashu: cashu_report,
    })
}

/// Allowance v2 presentations (one slot each, for coins received by 16 wallets, read with
/// their decompression hints as from kind-2 records): µs per presentation verified as one
/// batch, and verified one at a time (on 200 of them).
fn allowance_v2_costs(n: usize) -> (f64, f64) {
    use crate::protocol::credential::presentation::{
        stealth_commitment, verify_batch, StealthOpening,
    };
    use crate::protocol::credential::{
        CredentialKey, CredentialSecret, Presentation, PresentationContext,
    };
    use crate::protocol::keys::{OwnerKey, OwnerSecret};
    let mut rng = crate::os_rng();
    let secret = CredentialSecret::generate(&mut rng);
    let key = CredentialKey::of(&secret, 1, "standard").expect("a fresh key is valid");
    let day = 20_000;
    let wallets: Vec<_> = (0..16)
        .map(|_| {
            let k = OwnerSecret::generate(&mut rng);
            let cred = secret
                .issue(&key, &k.public(), day, &mut rng)
                .open(&key, &k, day)
                .expect("the issuer's own credential opens");
            (k, cred)
        })
        .collect();
    let binding = [1u8; 32];
    let coins: Vec<(OwnerKey, [u8; 32], StealthOpening)> = (0..n)
        .map(|i| {
            let opening = StealthOpening {
                s: crate::protocol::credential::sigma::random_scalar(&mut rng),
                t: crate::protocol::credential::sigma::random_scalar(&mut rng),
            };
            let p = wallets[i % 16].0.public().randomize(&opening.s);
            (p, stealth_commitment(&opening), opening)
        })
        .collect();
    let ctx = |i: usize| PresentationContext {
        day,
        receiving_key: &coins[i].0,
        stealth_commitment: &coins[i].1,
        binding: &binding,
    };
    let presentations: Vec<Presentation> = (0..n)
        .into_par_iter()
        .map(|i| {
            let (k, cred) = &wallets[i % 16];
            Presentation::create(
                &key,
                cred,
                k,
                &coins[i].2,
                &ctx(i),
                &[(i / 16) as u16],
                &mut crate::os_rng(),
            )
            .expect("an honest presentation")
        })
        .collect();
    // As the engine reads them from kind-2 records: with decompression hints.
    let presentations: Vec<Presentation> = presentations
        .iter()
        .map(|p| {
            use crate::protocol::encoding::{Decode, Encode};
            let (bytes, hints) = p.to_bytes_with_hints();
            Presentation::from_bytes_with_hints(&bytes, &hints).expect("its own encoding")
        })
        .collect();
    let items: Vec<(&Presentation, PresentationContext<'_>)> = presentations
        .iter()
        .enumerate()
        .map(|(i, p)| (p, ctx(i)))
        .collect();
    let mut refused = Vec::new();
    let batched = per_item_us(n, || {
        refused = verify_batch(&key, &secret, &items, &mut rng)
    });
    assert!(refused.is_empty(), "benchmark presentations must verify");
    let m = n.min(200);
    let single = per_item_us(m, || {
        for (p, c) in &items[..m] {
            assert!(p.verify(&key, &secret, c).is_ok());
        }
    });
    (batched, single)
}

/// The deposit of a hinted record with its serial hints (the benchmark batch is written
/// with hints).
fn hinted_deposit(payload: &[u8]) -> Option<HintedDeposit> {
    let len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let (dep, hints) = payload.get(4..)?.split_at_checked(len)?;
    HintedDeposit::decode(dep, hints).ok()
}

fn one_at_a_time_sigma_only(engine: &Engine, deposits: &[Deposit]) -> usize {
    let params = engine.params();
    deposits
        .iter()
        .filter(|d| {
            let ks = params.keysets.get(&d.coin.keyset_id).expect("known");
            let pk =
                blst::min_sig::PublicKey::from_bytes(&ks.public_key.to_bytes()).expect("valid");
            let sig =
                blst::min_sig::Signature::from_bytes(&d.coin.sigma.to_compressed()).expect("valid");
            sig.verify(true, &d.coin.serial().0, tags::H1_DST, &[], &pk, true)
                == blst::BLST_ERROR::BLST_SUCCESS
        })
        .count()
}
