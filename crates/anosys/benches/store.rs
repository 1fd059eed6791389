//! Records per second into the embedded SQLite store, against serialising
//! the same records to JSON (the part every local sink pays), same run.
//!
//! Also a record's JSON text as the local sinks write it, next to
//! serde_json's, for a typical record and one holding a 41 KB history.
//!
//! `cargo bench -p anosys --bench store`

use std::hint::black_box;

use anosys::{Record, RecordKind, SpanKind, Status};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::json;

include!("common/records.rs");

include!("common/chat_record.rs");

include!("common/history.rs");

const BATCH: usize = 256;

fn store(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("anosys-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Typical records (about 0.8 KB of JSON), then chat records of about
    // 4.9 KB (a page of 4 KiB holds none of them whole), each group into a
    // store of its own.
    inserts(c, "store", &dir.join("bench.db"), "", typical_record);
    inserts(c, "store, 4 KB chat records", &dir.join("chat.db"), "chat ", || chat_record(false));
    // The same through the Sink trait, as the pipeline writes (the hop to
    // the blocking pool included, the WAL checkpointed on the sink's own
    // thread rather than the writer's), with fresh records for every batch
    // as above, handed over as the pipeline hands its batches (shared, not
    // copied; the pipeline then frees them on the threads that made
    // them, so here they are freed after the timing). `bench/all.py` reads
    // this one against its goal. (Exporting
    // the same 256 records again and again read 19,000 records/s: each
    // batch inserted the same 256 index keys again, in the middle of the
    // index, dirtying a page for each.)
    let sink = anosys::sinks::SqliteSink::new(dir.join("sink.db"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("SqliteSink::export of 256 records", |b| {
        b.iter_batched(
            || {
                let fresh: std::sync::Arc<[Record]> = (0..BATCH).map(|_| typical_record()).collect();
                (fresh, anosys::sinks::ExportContext::new())
            },
            |(fresh, cx)| {
                let report = runtime.block_on(anosys::sinks::Sink::export_shared(&sink, fresh.clone(), cx));
                assert_eq!(report.failed, 0);
                // Freed after the timing, as with the inserts above.
                fresh
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// In `group`: serialising 256 records `make` builds to JSON (the
/// baseline), and inserting 256 of them into a store at `path`.
fn inserts(c: &mut Criterion, group: &str, path: &std::path::Path, what: &str, make: impl Fn() -> Record) {
    let mut conn = anosys::sinks::sqlite::open(path).expect("open the store");
    let batch: Vec<Record> = (0..BATCH).map(|_| make()).collect();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(BATCH as u64));
    // Baseline: serialise the batch to JSON, as any local sink must.
    g.bench_function(format!("serialize 256 {what}records to JSON (baseline)"), |b| {
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
    g.bench_function(format!("insert 256 {what}records into SQLite"), |b| {
        b.iter_batched(
            || (0..BATCH).map(|_| make()).collect::<Vec<Record>>(),
            // The records are handed back, freed after the timing: the
            // pipeline frees them on the threads that made them, not on
            // the store's (as the baseline above frees none).
            |fresh| {
                anosys::sinks::sqlite::insert(&mut conn, black_box(&fresh)).expect("insert");
                fresh
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// A chat call's record holding its request, a 41 KB history (61 messages,
/// as `bench/proxy_load.sh` sends): what the proxy stores for each such call.
fn history_record() -> Record {
    let mut r = typical_record();
    r.raw = Some(json!({"request": {"model": "gpt-4o-mini", "messages": history_messages()}}));
    r
}

/// A record's JSON text as the local sinks write it (`Record::to_json`),
/// next to `serde_json::to_string` of the same record (the same bytes).
fn json_text(c: &mut Criterion) {
    let mut g = c.benchmark_group("record JSON text");
    for (name, record) in [("typical record", typical_record()), ("41 KB history", history_record())] {
        assert_eq!(record.to_json().unwrap(), serde_json::to_string(&record).unwrap());
        g.bench_function(format!("{name}: serde_json::to_string (baseline)"), |b| {
            b.iter(|| black_box(serde_json::to_string(black_box(&record)).unwrap()))
        });
        g.bench_function(format!("{name}: Record::to_json"), |b| b.iter(|| black_box(black_box(&record).to_json().unwrap())));
    }
    g.finish();
}

criterion_group!(benches, store, json_text);
criterion_main!(benches);
