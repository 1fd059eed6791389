//! OpenAI capture costs, each next to a baseline from the same run:
//! extracting a chat response, the stream accumulator per chunk, and an
//! async-openai client with the recording layer against the bare client on
//! a local upstream.
//!
//! Run: `cargo bench -p anosys --features async-openai --bench openai`

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use anosys::sources::openai::sse::SseParser;
use anosys::embed::{DeferredCall, RequestJson, ResponseJson};
use anosys::sinks::anosys::{Encoder, SlotRegistry};
use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use anosys::Resource;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::CreateChatCompletionRequest;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::Value;
use support::cassette;

fn extraction(c: &mut Criterion) {
    let x = cassette::first("test_chat_completion_tool_calls_with_content");
    let options = CaptureOptions::default();
    let mut group = c.benchmark_group("extract chat response");
    // Both sides free what they made inside the timing. The request is
    // handed to `start` as every caller hands a plain call's request: the
    // bytes sent (the proxy the body it read, the async-openai layer the
    // body it sends, the Python and Node packages the body openai built).
    let sent = serde_json::to_vec(&x.request).unwrap();
    group.bench_function("serde_json::from_slice (baseline)", |b| {
        b.iter(|| drop(black_box(serde_json::from_slice::<Value>(black_box(&x.body)).unwrap())))
    });
    group.bench_function("OpenAiCall start + finish", |b| {
        b.iter(|| {
            let call = OpenAiCall::start(&x.uri, black_box(&sent[..]), &options);
            drop(black_box(call.finish(200, black_box(&x.body))))
        })
    });
    // Without content capture the answer is read straight from its bytes
    // (a typed view, no `serde_json::Value` built).
    let quiet = CaptureOptions { capture_content: false, ..CaptureOptions::default() };
    group.bench_function("OpenAiCall start + finish, content capture off", |b| {
        b.iter(|| {
            let call = OpenAiCall::start(&x.uri, black_box(&sent[..]), &quiet);
            drop(black_box(call.finish(200, black_box(&x.body))))
        })
    });
    // What the async-openai layer does on the caller's thread for a plain
    // call (see `hand_over`); the extraction thread makes the same record
    // (timed above).
    group.bench_function("DeferredCall start + hand over (caller's thread)", |b| {
        b.iter_custom(|iters| hand_over(&x.uri, &sent, &x.body, &options, iters))
    });
    group.finish();
}

/// What a sink pays for a captured call's record: its AnoSys body, with the
/// answer kept as text (as capture keeps it) and, for comparison, parsed
/// into `raw` (as capture kept it before). The record's own JSON form, as
/// the SQLite store writes it, is the baseline.
fn encoding(c: &mut Criterion) {
    let x = cassette::first("test_chat_completion_tool_calls_with_content");
    let options = CaptureOptions::default();
    let as_text = OpenAiCall::start(&x.uri, x.request.clone(), &options).finish(200, &x.body);
    let parsed = OpenAiCall::start(&x.uri, x.request.clone(), &options)
        .finish(200, serde_json::from_slice::<Value>(&x.body).unwrap());
    assert!(as_text.response_text.is_some() && parsed.response_text.is_none());
    let registry = SlotRegistry::new();
    let encoder = Encoder::with_registry(&registry);
    let resource = Resource::default();
    let mut group = c.benchmark_group("AnoSys body of a captured chat call");
    group.bench_function("serde_json::to_vec of the record (baseline)", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&as_text)).unwrap()))
    });
    group.bench_function("encode, the answer kept as text", |b| {
        b.iter(|| black_box(encoder.encode_to_vec(black_box(&as_text), &resource, SystemTime::now())))
    });
    group.bench_function("encode, the answer parsed into raw", |b| {
        b.iter(|| black_box(encoder.encode_to_vec(black_box(&parsed), &resource, SystemTime::now())))
    });
    // The two together, from the answer's bytes to the body: capture
    // keeping the text (a parse at encoding), against capture parsing the
    // answer first (as a client that parsed it hands it over).
    group.bench_function("capture and encode, the answer kept as text", |b| {
        b.iter_batched(
            || x.request.clone(),
            |request| {
                let record = OpenAiCall::start(&x.uri, request, &options).finish(200, black_box(&x.body));
                black_box(encoder.encode_to_vec(&record, &resource, SystemTime::now()))
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("capture and encode, the answer parsed first", |b| {
        b.iter_batched(
            || x.request.clone(),
            |request| {
                let answer = serde_json::from_slice::<Value>(black_box(&x.body)).unwrap();
                let record = OpenAiCall::start(&x.uri, request, &options).finish(200, answer);
                black_box(encoder.encode_to_vec(&record, &resource, SystemTime::now()))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn accumulator(c: &mut Criterion) {
    let x = cassette::first("test_chat_completion_multiple_choices_streaming");
    let options = CaptureOptions::default();
    let chunks = {
        let mut s = OpenAiCall::start(&x.uri, x.request.clone(), &options).into_stream();
        s.push_bytes(&x.body);
        s.chunk_count()
    };
    eprintln!("accumulator: one stream is {chunks} chunks, {} bytes", x.body.len());
    let mut group = c.benchmark_group(format!("stream of {chunks} chunks"));
    group.bench_function("parse every event to serde_json::Value (baseline)", |b| {
        b.iter(|| {
            let mut parser = SseParser::new();
            let mut n = 0;
            parser.push(black_box(&x.body), |e| {
                if !e.is_done() {
                    black_box(serde_json::from_str::<Value>(&e.data).unwrap());
                    n += 1;
                }
            });
            n
        })
    });
    group.bench_function("accumulate and build the record", |b| {
        b.iter(|| {
            let mut s = OpenAiCall::start(&x.uri, x.request.clone(), &options).into_stream();
            s.push_bytes(black_box(&x.body));
            black_box(s.finish())
        })
    });
    group.finish();
}

include!("common/discard.rs");
include!("common/deferred.rs");

fn client(c: &mut Criterion) {
    let upstream = support::upstream::Upstream::start();
    let x = cassette::first("test_chat_completion_with_content");
    let request: CreateChatCompletionRequest = serde_json::from_value(x.request.clone()).unwrap();
    let config = OpenAIConfig::new().with_api_base(upstream.base_url()).with_api_key("k");
    let bare = async_openai::Client::with_config(config.clone());
    // Records go through the whole pipeline to a sink that drops them, so
    // that the worker's share of the 2 cores is counted but nothing piles up.
    let anosys_config = anosys::Config::builder().log_level(anosys::LogLevel::Off).build().unwrap();
    let pipeline = anosys::Pipeline::builder(anosys_config).without_builtin_sinks().sink(std::sync::Arc::new(Discard)).build().unwrap();
    let recorded = anosys::sources::openai::async_openai::client_with(
        config.clone(),
        anosys::sources::openai::async_openai::AnosysLayer::new().pipeline(pipeline.clone()),
    );
    // The same tower stack with no recording layer: what async-openai's
    // middleware path costs by itself.
    let stack_only = async_openai::Client::with_config(config.clone()).with_http_service(
        tower::ServiceBuilder::new()
            .layer(async_openai::middleware::retry::OpenAIRetryLayer::default())
            .service(async_openai::middleware::ReqwestService::new(reqwest::Client::new())),
    );
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut group = c.benchmark_group("async-openai chat create, local upstream");
    group.sample_size(30).measurement_time(Duration::from_secs(5));
    group.bench_function("bare client (baseline)", |b| {
        b.iter(|| {
            upstream.serve(x.clone());
            rt.block_on(bare.chat().create(request.clone())).unwrap()
        })
    });
    group.bench_function("same tower stack, no recording layer", |b| {
        b.iter(|| {
            upstream.serve(x.clone());
            rt.block_on(stack_only.chat().create(request.clone())).unwrap()
        })
    });
    group.bench_function("recorded client", |b| {
        b.iter(|| {
            upstream.serve(x.clone());
            rt.block_on(recorded.chat().create(request.clone())).unwrap()
        })
    });
    let quiet = anosys::sources::openai::async_openai::client_with(
        config.clone(),
        anosys::sources::openai::async_openai::AnosysLayer::new()
            .options(CaptureOptions { capture_content: false, ..Default::default() })
            .pipeline(pipeline.clone()),
    );
    group.bench_function("recorded client, content capture off", |b| {
        b.iter(|| {
            upstream.serve(x.clone());
            rt.block_on(quiet.chat().create(request.clone())).unwrap()
        })
    });
    group.finish();
    let report = pipeline.shutdown(Some(Duration::from_secs(10)));
    eprintln!("client: {} records delivered, {} dropped", report.counters.delivered, report.counters.dropped);
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = extraction, encoding, accumulator, client
}
criterion_main!(benches);
