//! Records per second into the embedded SQLite store, against serialising
//! the same records to JSON (the part every local sink pays), same run.
//!
//! `cargo bench -p anosys --bench store`

use std::hint::black_box;

use anosys::{Record, RecordKind, SpanKind, Status};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::json;

include!("common/records.rs");

const BATCH: usize = 256;

fn store(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("anosys-bench-store-{}", std::process::id()));
    let path = dir.join("bench.db");
    let _ = std::fs::remove_dir_all(&dir);
    let mut conn = anosys::sinks::sqlite::open(&path).expect("open the store");
    let batch: Vec<Record> = (0..BATCH).map(|_| typical_record()).collect();

    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(BATCH as u64));
    // Baseline: serialise the batch to JSON, as any local sink must.
    g.bench_function("serialize 256 records to JSON (baseline)", |b| {
        b.iter(|| {
            for r in &batch {
                black_box(serde_json::to_string(black_box(r)).expect("serialise"));
            }
        })
    });
    // One transaction of 256 inserts with their indexed columns (WAL,
    // synchronous=NORMAL), the sink's write path.
    // Fresh records for every batch (new trace and span ids, as in use: the
    // same ids again would keep touching the same index pages).
    g.bench_function("insert 256 records into SQLite", |b| {
        b.iter_batched(
            || (0..BATCH).map(|_| typical_record()).collect::<Vec<Record>>(),
            |fresh| anosys::sinks::sqlite::insert(&mut conn, black_box(&fresh)).expect("insert"),
            BatchSize::LargeInput,
        )
    });
    // The same through the Sink trait (the hop to the blocking pool included).
    let sink = anosys::sinks::SqliteSink::new(dir.join("sink.db"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    g.bench_function("SqliteSink::export of 256 records", |b| {
        b.iter_batched(
            anosys::sinks::ExportContext::new,
            |cx| {
                let report = runtime.block_on(anosys::sinks::Sink::export(&sink, &batch, cx));
                assert_eq!(report.failed, 0);
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, store);
criterion_main!(benches);
