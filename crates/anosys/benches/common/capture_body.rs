
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anosys::sinks::anosys::{Encoder, SlotRegistry};
use anosys::{Config, LogLevel, Pipeline, Record, RecordKind, Resource, SpanKind, Status};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::hint::black_box;

include!("discard.rs");

include!("records.rs");

include!("caller.rs");

fn caller_cost(c: &mut Criterion) {
    let config = Config::builder().queue_size(1 << 20).log_level(LogLevel::Off).build().unwrap();
    let pipeline = Pipeline::builder(config).without_builtin_sinks().sink(Arc::new(Discard)).build().unwrap();
    let mut group = c.benchmark_group("caller");
    group.bench_function("build record (baseline)", |b| b.iter(|| black_box(typical_record())));
    // Timed in runs of at most 4,096 submits, each followed by an untimed
    // flush: the queue never fills, so every record is enqueued (a full
    // queue would make the caller's cost that of dropping the record), and
    // the pipeline's thread works alongside, as in an application.
    group.bench_function("build and enqueue", |b| {
        b.iter_custom(|iters| submit_runs(&pipeline, iters, std::time::Instant::now, |t| t.elapsed()))
    });
    // The same loop timed by the caller thread's own CPU clock: its work
    // alone, without the time the pipeline's threads (on a 2-core machine,
    // the same cores) take it off the CPU.
    group.bench_function("build and enqueue, the caller thread's CPU time", |b| {
        b.iter_custom(|iters| submit_runs(&pipeline, iters, thread_cpu, |t| thread_cpu().saturating_sub(t)))
    });
    group.finish();
    let report = pipeline.shutdown(Some(Duration::from_secs(30)));
    eprintln!(
        "caller: {} captured, {} delivered, {} dropped (queue full)",
        report.counters.captured, report.counters.delivered, report.counters.dropped
    );
}

fn encoding(c: &mut Criterion) {
    let registry = SlotRegistry::new();
    let encoder = Encoder::with_registry(&registry);
    let record = thirty_field_record();
    let resource = Resource::default();
    let mut group = c.benchmark_group("encode 30-field record");
    group.bench_function("serde_json::to_vec(record) (baseline)", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&record)).unwrap()))
    });
    group.bench_function("AnoSys object to bytes", |b| {
        b.iter(|| {
            black_box(encoder.encode_to_vec(black_box(&record), &resource, SystemTime::now()))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = caller_cost, encoding
}
criterion_main!(benches);
