//! The cost of redaction on the background thread: a typical 4 KB chat
//! record (system instructions, a few turns, a tool definition and a tool
//! call with JSON arguments) without secrets, and the same with a few;
//! and a 41 KB chat history kept as text, as the proxy keeps a request.
//!
//! Run: `cargo bench -p anosys --bench redact`

use std::hint::black_box;
use std::time::Duration;

use anosys::redact::{RedactionConfig, Redactor};
use anosys::record::JsonText;
use anosys::{Record, RecordKind, SpanKind, Status};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Value};

include!("common/chat_record.rs");

include!("common/history.rs");

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
    history(c, &redactor);
}

/// A chat request carrying its history (61 messages, about 41 KB, as
/// `bench/proxy_load.sh` sends it), kept as text in the record as the proxy
/// keeps it: redaction reads it in place. Next to it, reading the same
/// text with serde_json while skipping everything (`IgnoredAny`), and
/// compacting and checking it (`JsonText::compact`; the proxy compacts a
/// body serde_json has just read without checking it again).
fn history(c: &mut Criterion, redactor: &Redactor) {
    let messages = history_messages();
    let body = serde_json::to_vec(&json!({"model": "gpt-4o-mini", "messages": messages})).unwrap();
    let text = JsonText::compact(&body).unwrap();
    let mut record = Record::new(RecordKind::LlmCall, "chat gpt-4o-mini");
    record.request_text = Some(text.clone());
    let mut group = c.benchmark_group("41 KB history kept as text");
    group.bench_function("serde_json IgnoredAny (baseline)", |b| {
        b.iter(|| black_box(serde_json::from_str::<serde::de::IgnoredAny>(black_box(text.as_str())).unwrap()))
    });
    group.bench_function("JsonText::compact", |b| b.iter(|| black_box(JsonText::compact(black_box(&body)).unwrap())));
    group.bench_function("redact, defaults", |b| {
        b.iter(|| {
            let found = redactor.redact_record(black_box(&mut record));
            assert!(found.is_empty() && record.request_text.is_some());
            black_box(found)
        })
    });
    // The messages' text as one string, with the defaults and without
    // cards: the difference is the digit pass's share (a digit in every
    // sentence, as in most chat text).
    let long: String = messages.iter().filter_map(|m| m["content"].as_str()).collect();
    let long = Value::String(long);
    let no_cards = Redactor::new(&RedactionConfig::default().without_kind(anosys::redact::Kind::CreditCard)).unwrap();
    for (name, redactor) in [("its text as one string, defaults", redactor), ("the same, cards not looked for", &no_cards)] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(|| long.clone(), |v| black_box(redactor.redact_value(v)), BatchSize::SmallInput)
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = redaction
}
criterion_main!(benches);
