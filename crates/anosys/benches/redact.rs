//! The cost of redaction on the background thread: a typical 4 KB chat
//! record (system instructions, a few turns, a tool definition and a tool
//! call with JSON arguments) without secrets, and the same with a few.
//!
//! Run: `cargo bench -p anosys --bench redact`

use std::hint::black_box;
use std::time::Duration;

use anosys::redact::{RedactionConfig, Redactor};
use anosys::{Record, RecordKind, SpanKind, Status};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Value};

include!("common/chat_record.rs");

fn redaction(c: &mut Criterion) {
    let redactor = Redactor::new(&RedactionConfig::default()).unwrap();
    let all = Redactor::new(&RedactionConfig::all()).unwrap();
    let custom = Redactor::new(&RedactionConfig::default().with_pattern("employee_id", "EMP-[0-9]{6}")).unwrap();
    let clean = chat_record(false);
    let dirty = chat_record(true);
    eprintln!(
        "record sizes: {} bytes without secrets, {} with",
        serde_json::to_vec(&clean).unwrap().len(),
        serde_json::to_vec(&dirty).unwrap().len()
    );
    let mut group = c.benchmark_group("redact 4 KB chat record");
    group.bench_function("clone (baseline)", |b| b.iter(|| black_box(clean.clone())));
    for (name, redactor, record) in [
        ("no secrets, defaults", &redactor, &clean),
        ("no secrets, every kind", &all, &clean),
        ("no secrets, defaults and a custom pattern", &custom, &clean),
        ("3 secrets, defaults", &redactor, &dirty),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(|| record.clone(), |r| black_box(redactor.redact_record(r)), BatchSize::SmallInput)
        });
    }
    let text = Value::String(format!(
        "{PARAGRAPH}{PARAGRAPH}{PARAGRAPH}{PARAGRAPH}{PARAGRAPH}{PARAGRAPH}{PARAGRAPH}{PARAGRAPH}"
    ));
    group.bench_function("one 4 KB string, defaults", |b| {
        b.iter_batched_ref(|| text.clone(), |v| black_box(redactor.redact_value(v)), BatchSize::SmallInput)
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = redaction
}
criterion_main!(benches);
