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

const MODELS: &[&str] = &["gpt-4o-mini", "gpt-4o", "gpt-4.1", "o4-mini", "text-embedding-3-small"];
const SOURCES: &[&str] = &["billing", "search", "assistant", "ingest"];

/// Record `i`; records are spread evenly over the 30 days from `t0`, `step` apart.
fn record(i: usize, rng: &mut fastrand::Rng, t0: SystemTime, step: Duration) -> Record {
    let llm = !i.is_multiple_of(5);
    let mut r = if llm {
        let model = MODELS[rng.usize(..MODELS.len())];
        let mut r = Record::new(RecordKind::LlmCall, format!("chat {model}"));
        r.source = Some("openai".into());
        r.set_attribute("gen_ai.operation.name", "chat");
        r.set_attribute("gen_ai.provider.name", "openai");
        r.set_attribute("gen_ai.request.model", model);
        r.set_attribute("gen_ai.usage.input_tokens", rng.u32(5..2000));
        r.set_attribute("gen_ai.usage.output_tokens", rng.u32(1..800));
        if rng.bool() {
            r.set_attribute("gen_ai.response.time_to_first_chunk", rng.f64() * 0.8);
        }
        r.input = Some(json!([{"role": "user", "content": "Summarise the ticket in one line."}]));
        r.output = Some(json!("Customer cannot log in after the password reset."));
        r
    } else {
        let mut r = Record::new(RecordKind::FunctionCall, "app::handler");
        r.source = Some(SOURCES[rng.usize(..SOURCES.len())].into());
        r.input = Some(json!([rng.u32(..)]));
        r
    };
    r.start_time = t0 + step * i as u32;
    r.end_time = r.start_time + Duration::from_micros(rng.u64(1_000..3_000_000));
    if rng.u8(..100) < 3 {
        r.fail(ErrorInfo { error_type: "RateLimitError".into(), message: "slow down".into(), stack: None });
    } else {
        r.status = Status::ok();
    }
    r
}

fn store_with(n: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("anosys-bench-stats-{n}.db"));
    if let Ok(store) = Store::open(&path)
        && store.count(&Filter::default()).ok() == Some(n as u64)
    {
        return path;
    }
    let _ = std::fs::remove_file(&path);
    eprintln!("building a store of {n} records at {} (once)", path.display());
    let mut conn = anosys::sinks::sqlite::open(&path).expect("create the store");
    let mut rng = fastrand::Rng::with_seed(7);
    let t0 = SystemTime::now() - Duration::from_secs(30 * 86_400);
    let step = Duration::from_secs(30 * 86_400) / n.max(1) as u32;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        batch.push(record(i, &mut rng, t0, step));
        if batch.len() == batch.capacity() {
            anosys::sinks::sqlite::insert(&mut conn, &batch).expect("insert");
            batch.clear();
        }
    }
    anosys::sinks::sqlite::insert(&mut conn, &batch).expect("insert");
    path
}

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
