//! Store throughput on 256 MiB of feed-like data:
//! - raw FastCDC (the crate's own iterator) and raw BLAKE3: the ceilings;
//! - our chunker, chunker + BLAKE3 per chunk;
//! - full ingest (chunk + SHA-256 + BLAKE3 + zstd -3 + pack append + redb commit) with one
//!   thread and with two.
//!
//! `cargo bench -p ouk-benches --bench store`; figures in docs/benchmarks.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ouk_store::{Chunker, ChunkerParams, Store, StoreOptions};

const SIZE: usize = 256 << 20;

fn benches(c: &mut Criterion) {
    let data = ouk_benches::feed_like(SIZE, 1);
    let p = ChunkerParams::V1;
    let mut g = c.benchmark_group("store-256MiB-feed");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(SIZE as u64));

    g.bench_function("fastcdc-crate-raw", |b| {
        b.iter(|| {
            fastcdc::v2020::FastCDC::new(
                &data,
                p.min_size as usize,
                p.avg_size as usize,
                p.max_size as usize,
            )
            .count()
        })
    });
    g.bench_function("blake3-raw", |b| b.iter(|| blake3::hash(&data)));
    g.bench_function("sha256-raw", |b| {
        use sha2::Digest;
        b.iter(|| sha2::Sha256::digest(&data))
    });
    let chunker = Chunker::new(p);
    g.bench_function("ouk-chunker", |b| b.iter(|| chunker.cuts(&data).len()));
    g.bench_function("ouk-chunker+blake3", |b| {
        b.iter(|| {
            chunker
                .cuts(&data)
                .into_iter()
                .map(|(o, l)| blake3::hash(&data[o..o + l]).as_bytes()[0] as u64)
                .sum::<u64>()
        })
    });
    for threads in [1usize, 2] {
        g.bench_function(format!("ingest-zstd3-{threads}thread"), |b| {
            b.iter_batched(
                || tempfile::tempdir().expect("tempdir"),
                |dir| {
                    let store = Store::open(
                        dir.path(),
                        StoreOptions {
                            threads,
                            ..Default::default()
                        },
                    )
                    .expect("open store");
                    store.put_reader(&data[..]).expect("put");
                    dir
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(store, benches);
criterion_main!(store);
