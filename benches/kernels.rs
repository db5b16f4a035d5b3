//! Kernel benchmarks across batch sizes, with the library baselines beside ours.
//!
//! Sizes default to 256…16384; set `MICROCASH_BENCH_LARGE=1` to add 65536. Every batched
//! benchmark asserts its result (a benchmark that verifies nothing measures nothing).
//! RedPallas batches run on a one-thread pool so the comparison with `reddsa`'s own batch
//! verifier is at equal threads.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ff::Field;
use group::{Curve, Group};
use microcash_kernels::bls::{
    self,
    batch::{BlsItem, MessageForm},
};
use microcash_kernels::pallas::{msm, redpallas};
use microcash_kernels::{bloom, weights::random_weights};
use pasta_curves::pallas;
use reddsa::orchard::{Binding, SpendAuth};

const DST: &[u8] = b"BENCH-with-BLS12381G1_XMD:SHA-256_SSWU_RO_";

fn sizes() -> Vec<usize> {
    let mut s = vec![256, 1024, 4096, 16384];
    if std::env::var("MICROCASH_BENCH_LARGE").is_ok() {
        s.push(65536);
    }
    s
}

fn rng() -> rand_core::UnwrapErr<rand::rngs::SysRng> {
    rand_core::UnwrapErr(rand::rngs::SysRng)
}

fn one_thread() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
}

fn bls_kernels(c: &mut Criterion) {
    let mut rng = rng();
    let sk = bls::SecretKey::generate(&mut rng);
    let pk = sk.public_key();
    let mut g = c.benchmark_group("bls");
    g.sample_size(10);
    g.bench_function("hash_to_g1", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            bls::hash_to_g1(&i.to_le_bytes(), DST)
        })
    });
    // The RFC 9380 map written out on blst's field operations, beside blst's own: without
    // hints, with the square roots as hints, and without the per-message cofactor clearing
    // (what a batch that clears once per key pays per message).
    g.bench_function("map_unhinted_cleared", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            bls::map::clear_cofactor(&bls::map::hash_to_curve_uncleared(&i.to_le_bytes(), DST))
        })
    });
    let hinted: Vec<(u64, bls::map::MapHint)> = (0..4096u64)
        .map(|i| (i, bls::map::sswu_hints(&i.to_le_bytes(), DST)))
        .collect();
    g.bench_function("map_hinted_cleared", |b| {
        let mut k = 0usize;
        b.iter(|| {
            k = (k + 1) % hinted.len();
            let (i, h) = &hinted[k];
            bls::map::clear_cofactor(&bls::map::hash_to_curve_uncleared_hinted(
                &i.to_le_bytes(),
                DST,
                h,
            ))
        })
    });
    g.bench_function("map_hinted_uncleared", |b| {
        let mut k = 0usize;
        b.iter(|| {
            k = (k + 1) % hinted.len();
            let (i, h) = &hinted[k];
            bls::map::hash_to_curve_uncleared_hinted(&i.to_le_bytes(), DST, h)
        })
    });
    // The batched map: 256 messages a slice, inversions shared (per message figures).
    let msgs: Vec<[u8; 32]> = hinted
        .iter()
        .take(256)
        .map(|(i, _)| {
            let mut m = [0u8; 32];
            m[..8].copy_from_slice(&i.to_le_bytes());
            m
        })
        .collect();
    let hints: Vec<bls::map::MapHint> = msgs.iter().map(|m| bls::map::sswu_hints(m, DST)).collect();
    let slots: Vec<Option<&bls::map::MapHint>> = hints.iter().map(Some).collect();
    g.throughput(Throughput::Elements(msgs.len() as u64));
    g.bench_function("map_many_unhinted_uncleared", |b| {
        b.iter(|| bls::map::hash_to_curve_uncleared_many(&msgs, &[], DST))
    });
    g.bench_function("map_many_hinted_uncleared", |b| {
        b.iter(|| bls::map::hash_to_curve_uncleared_many(&msgs, &slots, DST))
    });
    g.throughput(Throughput::Elements(1));
    let sig = sk.sign(b"m", DST).to_compressed();
    g.bench_function("g1_decompress", |b| {
        b.iter(|| bls::G1Affine::from_compressed(&sig).unwrap())
    });
    let p = bls::G1Affine::from_compressed(&sig).unwrap();
    g.bench_function("g1_subgroup_check", |b| b.iter(|| assert!(p.in_subgroup())));
    let pool = one_thread();
    for n in sizes() {
        let items: Vec<BlsItem> = (0..n as u64)
            .map(|i| BlsItem {
                key: 0,
                signature: sk.sign(&i.to_le_bytes(), DST),
                message: bls::hash_to_g1(&i.to_le_bytes(), DST),
            })
            .collect();
        let w = random_weights(&mut rng, n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(
            BenchmarkId::new("batch_verify_per_coin_1t", n),
            &n,
            |b, _| {
                b.iter(|| {
                    pool.install(|| {
                        assert!(
                            bls::batch::verify(&[pk], &items, &w, MessageForm::Hashed).is_empty()
                        )
                    })
                })
            },
        );
        let points: Vec<bls::G1Affine> = items.iter().map(|i| i.signature).collect();
        g.bench_with_input(BenchmarkId::new("g1_msm_128bit_1t", n), &n, |b, _| {
            b.iter(|| pool.install(|| bls::batch::vartime_msm(&points, &w)))
        });
    }
    g.finish();
}

struct Sigs {
    vks: Vec<[u8; 32]>,
    sigs: Vec<[u8; 64]>,
    msgs: Vec<Vec<u8>>,
}

fn signatures(n: usize) -> Sigs {
    let rng = rng();
    let mut s = Sigs {
        vks: vec![],
        sigs: vec![],
        msgs: vec![],
    };
    for i in 0..n {
        let sk = reddsa::SigningKey::<SpendAuth>::new(rng);
        let msg = format!("link {i}").into_bytes();
        s.sigs.push(sk.sign(rng, &msg).into());
        s.vks.push(reddsa::VerificationKey::from(&sk).into());
        s.msgs.push(msg);
    }
    s
}

fn redpallas_vs_reddsa(c: &mut Criterion) {
    let mut g = c.benchmark_group("redpallas");
    g.sample_size(10);
    let pool = one_thread();
    for n in sizes() {
        let s = signatures(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("ours_batch_1t", n), &n, |b, _| {
            b.iter(|| {
                pool.install(|| {
                    let entries: Vec<(&[u8; 32], &[u8; 64], &[u8])> = (0..n)
                        .map(|i| (&s.vks[i], &s.sigs[i], s.msgs[i].as_slice()))
                        .collect();
                    let prepared: Vec<redpallas::Prepared> = redpallas::prepare_many(&entries)
                        .into_iter()
                        .map(|p| p.unwrap())
                        .collect();
                    let w = random_weights(&mut rng(), n);
                    assert!(redpallas::verify(&prepared, &w).is_empty())
                })
            })
        });
        g.bench_with_input(BenchmarkId::new("reddsa_batch_1t", n), &n, |b, _| {
            b.iter(|| {
                let mut v = reddsa::batch::Verifier::<SpendAuth, Binding>::new();
                for i in 0..n {
                    v.queue(reddsa::batch::Item::from_spendauth(
                        s.vks[i].into(),
                        s.sigs[i].into(),
                        &s.msgs[i],
                    ));
                }
                assert!(v.verify(rng()).is_ok())
            })
        });
    }
    let s = signatures(64);
    g.bench_function("reddsa_single", |b| {
        b.iter(|| {
            for i in 0..64 {
                let vk = reddsa::VerificationKey::<SpendAuth>::try_from(s.vks[i]).unwrap();
                assert!(vk.verify(&s.msgs[i], &s.sigs[i].into()).is_ok());
            }
        })
    });
    g.finish();
}

fn pallas_msm(c: &mut Criterion) {
    let mut g = c.benchmark_group("pallas_msm");
    g.sample_size(10);
    let pool = one_thread();
    let mut rng = rng();
    for n in sizes() {
        let points: Vec<pallas::Affine> = (0..n)
            .map(|_| pallas::Point::random(&mut rng).to_affine())
            .collect();
        let full: Vec<[u8; 32]> = (0..n)
            .map(|_| ff::PrimeField::to_repr(&pallas::Scalar::random(&mut rng)))
            .collect();
        let short = random_weights(&mut rng, n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("128bit_1t", n), &n, |b, _| {
            b.iter(|| pool.install(|| msm::vartime_msm(&points, &short, 128)))
        });
        g.bench_with_input(BenchmarkId::new("255bit_1t", n), &n, |b, _| {
            b.iter(|| pool.install(|| msm::vartime_msm(&points, &full, 255)))
        });
    }
    g.finish();
}

/// Keys and signatures: `reddsa` (generic constant-time multiplication) beside the
/// fixed-base table (`kernels::pallas::signing`, byte-for-byte the same output).
fn pallas_signing(c: &mut Criterion) {
    use microcash_kernels::pallas::signing;
    let mut g = c.benchmark_group("pallas");
    g.sample_size(20);
    let mut rng = rng();
    let sk = ff::PrimeField::to_repr(&pallas::Scalar::random(&mut rng));
    g.bench_function("keygen_reddsa", |b| {
        b.iter(|| reddsa::SigningKey::<SpendAuth>::from_bytes(&sk).unwrap())
    });
    g.bench_function("keygen_fixed_base", |b| {
        b.iter(|| signing::SigningKey::from_bytes(&sk).unwrap())
    });
    let theirs = reddsa::SigningKey::<SpendAuth>::from_bytes(&sk).unwrap();
    let ours = signing::SigningKey::from_bytes(&sk).unwrap();
    g.bench_function("sign_reddsa", |b| {
        b.iter(|| theirs.sign(&mut rng, b"message"))
    });
    g.bench_function("sign_fixed_base", |b| {
        b.iter(|| ours.sign(&mut rng, b"message"))
    });
    g.finish();
}

fn bloom_kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("bloom");
    let n = 1 << 20;
    let mut filter = vec![0u8; bloom::filter_bytes(n, 16)];
    let hashes: Vec<u64> = (0..n)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i << 17))
        .collect();
    g.throughput(Throughput::Elements(n));
    g.bench_function(format!("insert_{}", bloom::backend()), |b| {
        b.iter(|| hashes.iter().for_each(|&h| bloom::insert(&mut filter, h)))
    });
    g.bench_function("insert_portable", |b| {
        b.iter(|| {
            hashes
                .iter()
                .for_each(|&h| bloom::portable::insert(&mut filter, h))
        })
    });
    g.bench_function(format!("probe_{}", bloom::backend()), |b| {
        b.iter(|| assert!(hashes.iter().all(|&h| bloom::probe(&filter, h))))
    });
    g.bench_function("probe_portable", |b| {
        b.iter(|| assert!(hashes.iter().all(|&h| bloom::portable::probe(&filter, h))))
    });
    g.finish();
}

criterion_group!(
    benches,
    bls_kernels,
    redpallas_vs_reddsa,
    pallas_msm,
    pallas_signing,
    bloom_kernels
);
criterion_main!(benches);
