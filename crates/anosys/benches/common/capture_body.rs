
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anosys::sinks::anosys::{Encoder, SlotRegistry};
use anosys::{Config, LogLevel, Pipeline, Record, RecordKind, Resource, SpanKind, Status};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::hint::black_box;

include!("discard.rs");

include!("records.rs");

fn thirty_field_record() -> Record {
    let mut r = typical_record();
    r.set_attribute("server.port", 443);
    r.set_attribute("is_streaming", false);
    r.set_attribute("gen_ai.usage.total_tokens", 59);
    r.set_attribute(
        "gen_ai.input.messages",
        json!([{"role": "user", "parts": [{"type": "text", "content": "Say this is a test"}]}]),
    );
    r.set_attribute(
        "gen_ai.output.messages",
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "This is a test."}], "finish_reason": "stop"}]),
    );
    for i in 0..7 {
        r.set_attribute(format!("app.tag{i}"), format!("value-{i}"));
    }
    for i in 0..3 {
        r.set_attribute(format!("app.metric{i}"), i as f64 * 1.5);
    }
    r.set_attribute("app.flag", true);
    assert!(r.attributes.len() >= 28, "{}", r.attributes.len());
    r
}

/// Submits `iters` typical records, timed in runs of at most 4,096 with
/// `start` and `elapsed`, each run followed by an untimed flush.
fn submit_runs<T>(pipeline: &Pipeline, iters: u64, start: impl Fn() -> T, elapsed: impl Fn(T) -> Duration) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let run = left.min(4_096);
        let started = start();
        for _ in 0..run {
            black_box(pipeline.submit(typical_record()));
        }
        timed += elapsed(started);
        left -= run;
        pipeline.flush(Some(Duration::from_secs(30)));
    }
    timed
}

/// CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write into.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    assert!(ok, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

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
