//! `anosys stats` over a large store (one million records by default),
//! against the least any full-table figure costs: SQLite summing one column
//! over the same rows (baseline), and SQLite's own GROUP BY with counts and
//! sums (no percentiles), same run.
//!
//! `cargo bench -p anosys-cli --bench stats`; `ANOSYS_BENCH_RECORDS=200000`
//! for a smaller store. The store is built once in the temp folder and
//! reused by later runs.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anosys::{ErrorInfo, Record, RecordKind, Status};
use anosys_cli::store::{Filter, Store};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;

include!("common/big_store.rs");

fn stats(c: &mut Criterion) {
    let n: usize = std::env::var("ANOSYS_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let path = store_with(n);
    let store = Store::open(&path).expect("open");
    let conn = rusqlite::Connection::open(&path).expect("open");

    let mut g = c.benchmark_group(format!("stats over {n} records"));
    g.sample_size(10);
    g.bench_function("SQLite sum(duration_ms) over all rows (baseline)", |b| {
        b.iter(|| {
            let sum: f64 = conn.query_row("SELECT sum(duration_ms) FROM records", [], |r| r.get(0)).expect("sum");
            black_box(sum)
        })
    });
    g.bench_function("SQLite GROUP BY kind, model, source with counts and sums", |b| {
        b.iter(|| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT kind, model, source, count(*), sum(status = 'ERROR'), sum(duration_ms),
                            sum(input_tokens), sum(output_tokens)
                     FROM records GROUP BY kind, model, source",
                )
                .expect("prepare");
            let rows: Vec<(String, Option<String>, i64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(3)?)))
                .expect("query")
                .map(|r| r.expect("row"))
                .collect();
            black_box(rows)
        })
    });
    g.bench_function("anosys stats (percentiles per model and source)", |b| {
        b.iter(|| black_box(store.stats(&Filter::default()).expect("stats")))
    });
    g.bench_function("anosys stats --since 24h", |b| {
        let since = SystemTime::now() - Duration::from_secs(86_400);
        let filter = Filter {
            since_ms: Some(since.duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_millis() as i64),
            ..Filter::default()
        };
        b.iter(|| black_box(store.stats(&filter).expect("stats")))
    });
    g.finish();
}

criterion_group!(benches, stats);
criterion_main!(benches);
