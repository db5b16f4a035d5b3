//! Spent set: probe-then-insert of fresh serials on the memory-mapped bloom + table, with
//! 10 million serials (100 million with `MICROCASH_BENCH_LARGE=1`; needs ~6 GiB of disk
//! and RAM). Reports elements per second per core (one thread), timing the loop only.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn probe_insert(c: &mut Criterion) {
    let mut g = c.benchmark_group("spentset");
    g.sample_size(10);
    let mut sizes = vec![10_000_000u64];
    if std::env::var("MICROCASH_BENCH_LARGE").is_ok() {
        sizes.push(100_000_000);
    }
    for n in sizes {
        let serials: Vec<[u8; 32]> = (0..n)
            .map(|i| {
                let mut s = [0u8; 32];
                let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                s[..8].copy_from_slice(&h.to_le_bytes());
                s[8..16].copy_from_slice(
                    &h.rotate_left(31)
                        .wrapping_mul(0xff51_afd7_ed55_8ccd)
                        .to_le_bytes(),
                );
                s[16..24].copy_from_slice(&i.to_le_bytes());
                s
            })
            .collect();
        let dir =
            std::env::temp_dir().join(format!("microcash-bench-spent-{}", std::process::id()));
        g.throughput(Throughput::Elements(n));
        // Time the probe-and-insert loop only (creating and deleting the files is setup):
        // the helper reports its own rate.
        g.bench_function(format!("probe_insert_{n}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let rate = microcash::spentset::bench_probe_insert(&dir, &serials);
                        assert!(rate > 0.0);
                        std::time::Duration::from_secs_f64(n as f64 / rate)
                    })
                    .sum()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, probe_insert);
criterion_main!(benches);
