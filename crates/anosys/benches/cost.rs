//! The cost of pricing one LLM call record once the price table is loaded
//! (the background thread does this for every LLM record), next to the
//! baseline of cloning the record, which each iteration also pays.
//!
//! Run: `cargo bench -p anosys --bench cost`

use std::hint::black_box;
use std::time::Duration;

use anosys::cost::{price_record, PriceTable, Usage};
use anosys::{Record, RecordKind};
use criterion::{criterion_group, criterion_main, Criterion};

fn chat_record(model: &str) -> Record {
    let mut r = Record::new(RecordKind::LlmCall, format!("chat {model}"));
    r.set_attribute("gen_ai.operation.name", "chat");
    r.set_attribute("gen_ai.provider.name", "openai");
    r.set_attribute("gen_ai.request.model", "gpt-4o-mini");
    r.set_attribute("gen_ai.response.model", model.to_owned());
    r.set_attribute("gen_ai.usage.input_tokens", 2_000);
    r.set_attribute("gen_ai.usage.output_tokens", 300);
    r.set_attribute("gen_ai.usage.cache_read.input_tokens", 1_024);
    r.set_attribute("gen_ai.usage.reasoning.output_tokens", 128);
    r.set_attribute("openai.response.service_tier", "default");
    r
}

fn pricing(c: &mut Criterion) {
    let table = PriceTable::builtin();
    let record = chat_record("gpt-4o-mini-2024-07-18");
    let prefixed = chat_record("openai/gpt-4o-mini-2031-01-01");
    let mut warm = record.clone();
    price_record(table, &mut warm); // loads the table
    let mut group = c.benchmark_group("cost");
    group.bench_function("clone record (baseline)", |b| b.iter(|| black_box(record.clone())));
    group.bench_function("clone and price_record", |b| {
        b.iter(|| {
            let mut r = record.clone();
            price_record(table, &mut r);
            black_box(r)
        })
    });
    group.bench_function("clone and price_record, prefixed dated name", |b| {
        b.iter(|| {
            let mut r = prefixed.clone();
            price_record(table, &mut r);
            black_box(r)
        })
    });
    let usage = Usage {
        model: "gpt-4o-mini-2024-07-18",
        input_tokens: Some(2_000),
        output_tokens: Some(300),
        cache_read_tokens: 1_024,
        ..Usage::default()
    };
    group.bench_function("PriceTable::cost", |b| b.iter(|| black_box(table.cost(black_box(&usage)))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = pricing
}
criterion_main!(benches);
