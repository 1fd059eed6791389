//! What cost and redaction cost, in one run (issue 17's benchmark):
//!
//! - on the background thread: pricing plus redacting a typical 4 KB chat
//!   record, next to encoding the same record to its AnoSys body (the
//!   baseline: work every record gets anyway);
//! - the same two steps on the typical record of the engine benchmarks,
//!   carrying the pipeline's resource, next to cloning it;
//! - on the caller's thread: queueing the same record into a pipeline whose
//!   steps run (redaction and pricing, the defaults) and into one where
//!   redaction is off, with no `before_send` callback in either; the
//!   difference is what the steps add to the caller.
//!
//! Run: `cargo bench -p anosys --bench steps`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anosys::cost::{price_record, PriceTable};
use anosys::redact::{RedactionConfig, Redactor};
use anosys::sinks::anosys::{Encoder, SlotRegistry};
use anosys::{Config, LogLevel, Pipeline, Record, RecordKind, Resource, SpanKind, Status};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;

include!("common/chat_record.rs");

include!("common/records.rs");

include!("common/discard.rs");

fn background(c: &mut Criterion) {
    let registry = SlotRegistry::new();
    let encoder = Encoder::with_registry(&registry);
    let resource = Resource::default();
    let prices = PriceTable::builtin();
    let redactor = Redactor::new(&RedactionConfig::default()).unwrap();
    let record = chat_record(true);
    let body = encoder.encode_to_vec(&record, &resource, SystemTime::now());
    eprintln!(
        "record: {} bytes of JSON, {} bytes as an AnoSys body",
        serde_json::to_vec(&record).unwrap().len(),
        body.len()
    );
    {
        // The steps do what they should on this record.
        let mut r = record.clone();
        price_record(prices, &mut r);
        assert!(r.attributes.get("gen_ai.usage.cost").is_some(), "priced");
        assert!(redactor.redact_record(&mut r).total() > 0, "redacted");
    }
    let mut group = c.benchmark_group("background, 4 KB chat record");
    group.bench_function("encode to AnoSys body (baseline)", |b| {
        b.iter(|| black_box(encoder.encode_to_vec(black_box(&record), &resource, SystemTime::now())))
    });
    group.bench_function("price", |b| {
        b.iter_batched_ref(|| record.clone(), |r| price_record(prices, r), BatchSize::SmallInput)
    });
    group.bench_function("redact", |b| {
        b.iter_batched_ref(|| record.clone(), |r| black_box(redactor.redact_record(r)), BatchSize::SmallInput)
    });
    group.bench_function("price + redact", |b| price_and_redact(b, &record, prices, &redactor));
    group.finish();
}

/// Times pricing then redacting clones of `record`.
fn price_and_redact(b: &mut criterion::Bencher<'_>, record: &Record, prices: &PriceTable, redactor: &Redactor) {
    b.iter_batched_ref(
        || record.clone(),
        |r| {
            price_record(prices, r);
            black_box(redactor.redact_record(r))
        },
        BatchSize::SmallInput,
    )
}

/// The steps on the record the engine benchmarks capture, carrying the
/// pipeline's resource as every record does when the steps run (it is
/// redacted with the record), next to cloning the record.
fn background_typical(c: &mut Criterion) {
    let prices = PriceTable::builtin();
    let redactor = Redactor::new(&RedactionConfig::default()).unwrap();
    let mut record = typical_record();
    record.resource = Some(Arc::new(anosys::resource::default_resource(None)));
    let mut group = c.benchmark_group("background, typical LLM record with the pipeline's resource");
    group.bench_function("clone (baseline)", |b| b.iter(|| black_box(record.clone())));
    group.bench_function("price + redact", |b| price_and_redact(b, &record, prices, &redactor));
    group.finish();
}

/// Time spent in `submit` only: records are built before the clock starts,
/// and the pipeline is flushed (off the clock) before its queue could fill,
/// so no submit is a cheap drop.
fn submit_time(pipeline: &Pipeline, record: &Record, iters: u64) -> Duration {
    const CHUNK: u64 = 1024;
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(CHUNK);
        let records: Vec<Record> = (0..n).map(|_| record.clone()).collect();
        let started = Instant::now();
        for r in records {
            black_box(pipeline.submit(r));
        }
        total += started.elapsed();
        pipeline.flush(Some(Duration::from_secs(30)));
        left -= n;
    }
    total
}

fn caller(c: &mut Criterion) {
    let record = chat_record(true);
    let pipeline = |redaction: RedactionConfig| {
        let config = Config::builder().queue_size(1 << 16).log_level(LogLevel::Off).build().unwrap();
        Pipeline::builder(config).without_builtin_sinks().sink(Arc::new(Discard)).redaction(redaction).build().unwrap()
    };
    let off = pipeline(RedactionConfig::off());
    let on = pipeline(RedactionConfig::default());
    let mut group = c.benchmark_group("caller, submit a 4 KB chat record");
    group.bench_function("redaction off (baseline)", |b| b.iter_custom(|iters| submit_time(&off, &record, iters)));
    group.bench_function("price + redact (defaults)", |b| b.iter_custom(|iters| submit_time(&on, &record, iters)));
    group.finish();
    // Paired rounds, alternating, so that drift on a noisy machine falls on
    // both alike: the median per-record time of each, and their difference.
    const ROUNDS: usize = 41;
    const PER_ROUND: u64 = 8 * 1024;
    let (mut t_off, mut t_on) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    for _ in 0..ROUNDS {
        t_off.push(submit_time(&off, &record, PER_ROUND).as_nanos() as f64 / PER_ROUND as f64);
        t_on.push(submit_time(&on, &record, PER_ROUND).as_nanos() as f64 / PER_ROUND as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (m_off, m_on) = (median(&mut t_off), median(&mut t_on));
    eprintln!(
        "STEPS|caller, paired medians over {ROUNDS} rounds of {PER_ROUND}|redaction off {m_off:.0} ns|defaults {m_on:.0} ns|added {:+.0} ns ({:.2}x)",
        m_on - m_off,
        m_on / m_off
    );
    for (name, p) in [("redaction off", off), ("defaults", on)] {
        let c = p.shutdown(Some(Duration::from_secs(30))).counters;
        eprintln!("caller, {name}: {} captured, {} delivered, {} dropped", c.captured, c.delivered, c.dropped);
        assert_eq!(c.dropped, 0, "a dropped record would make submit look cheaper");
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = background, background_typical, caller
}
criterion_main!(benches);
