//! The engine end to end: clearing a generated batch of one-hop coins on a fresh store,
//! one thread and all threads, beside the kernels alone.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use microcash::dataset::{self, GenOptions};
use microcash::engine::{ClearOptions, Engine};
use microcash::spentset::SpentSetConfig;

fn clear(c: &mut Criterion) {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("b.mcb");
    let coins = 4096;
    let now = microcash::unix_now();
    dataset::generate(
        &out,
        &GenOptions {
            coins,
            hops_mix: vec![(1, 1)],
            now,
            ..GenOptions::default()
        },
    )
    .unwrap();
    let params = dataset::params_dir(&out);
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Elements(coins));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for t in [1, threads] {
        let mut run = 0;
        g.bench_function(format!("clear_{t}t"), |b| {
            b.iter(|| {
                run += 1;
                let store = work.path().join(format!("s-{t}-{run}"));
                dataset::init_store_from_params(&params, &store).unwrap();
                let engine = Engine::open(&store, SpentSetConfig::default()).unwrap();
                let opts = ClearOptions {
                    threads: t,
                    chunk_records: 8192,
                    now,
                    ..ClearOptions::default()
                };
                let s = engine.clear(&out, &opts, &|_, _| {}).unwrap();
                assert_eq!(s.accepted, coins);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, clear);
criterion_main!(benches);
