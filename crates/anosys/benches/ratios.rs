//! The engine's ratios, each figure timed interleaved with its baseline:
//! the two run in alternating blocks of about 10 ms within one loop
//! (which goes first alternating too), so that this machine's drift (its
//! speed moves by up to 2x between minutes, and criterion times a
//! baseline and its figure one after the other, seconds apart) falls on
//! both alike. Each round gives a ratio; the figure is the median of the
//! rounds, with the spread of the middle half.
//!
//! The pairs are those of the criterion groups `caller`, `encode 30-field
//! record`, `extract chat response` and `stream of N chunks` (the same
//! code, the same inputs), and one of its own: a JSON-lines line written
//! with `write_json_expanded` against expanding a copy of the record and
//! writing that. `bench/all.py` reads its lines:
//!
//! ```text
//! RATIO <name>|<baseline ns>|<figure ns>|<median ratio>|<25th percentile>|<75th percentile>
//! ```
//!
//! Run: `cargo bench -p anosys --features async-openai --bench ratios`
//! (`ANOSYS_BENCH_ROUNDS` sets the rounds, 40 unless set).

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anosys::embed::{DeferredCall, RequestJson, ResponseJson};
use anosys::sinks::anosys::{Encoder, SlotRegistry};
use anosys::sources::openai::sse::SseParser;
use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use anosys::{Config, LogLevel, Pipeline, Record, RecordKind, Resource, SpanKind, Status};
use serde_json::{json, Value};
use support::cassette;

include!("common/discard.rs");
include!("common/records.rs");
include!("common/caller.rs");
include!("common/deferred.rs");

/// A timed loop: runs `n` iterations and returns the time they took
/// (untimed work, such as a flush or copies of the inputs, left out).
type Timed<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// Times `figure` against `baseline` interleaved and prints its line.
fn pair(name: &str, rounds: usize, mut baseline: Timed<'_>, mut figure: Timed<'_>) {
    // Warm both up, and size a block to about 10 ms of the baseline.
    let mut n = 16;
    loop {
        figure(n);
        if baseline(n) >= Duration::from_millis(10) || n >= 1 << 22 {
            break;
        }
        n *= 2;
    }
    let (mut ratios, mut base_ns, mut figure_ns) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (b, f) = if round % 2 == 0 {
            let b = baseline(n);
            (b, figure(n))
        } else {
            let f = figure(n);
            (baseline(n), f)
        };
        let per = |d: Duration| d.as_secs_f64() * 1e9 / n as f64;
        base_ns.push(per(b));
        figure_ns.push(per(f));
        ratios.push(per(f) / per(b));
    }
    let at = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let (b, f) = (at(&mut base_ns, 0.5), at(&mut figure_ns, 0.5));
    let (r, lo, hi) = (at(&mut ratios, 0.5), at(&mut ratios, 0.25), at(&mut ratios, 0.75));
    println!("RATIO {name}|{b:.1}|{f:.1}|{r:.3}|{lo:.3}|{hi:.3}");
    eprintln!("{name}: {f:.0} ns against {b:.0} ns, {r:.2}x (middle half {lo:.2}-{hi:.2}x, {rounds} rounds of {n})");
}

/// Times `n` runs of `f`.
fn timed(n: u64, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed()
}

fn main() {
    let rounds = std::env::var("ANOSYS_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(40);

    // The caller: build a typical record, against building and enqueuing
    // it (runs of at most 4,096, each followed by an untimed flush, as in
    // the criterion group), by the clock and by the caller thread's CPU.
    let config = Config::builder().queue_size(1 << 20).log_level(LogLevel::Off).build().unwrap();
    let pipeline = Pipeline::builder(config).without_builtin_sinks().sink(Arc::new(Discard)).build().unwrap();
    let build: Timed<'_> = Box::new(|n| timed(n, || drop(black_box(typical_record()))));
    pair("caller", rounds, build, Box::new(|n| submit_runs(&pipeline, n, Instant::now, |t| t.elapsed())));
    let build_cpu: Timed<'_> = Box::new(|n| {
        let started = thread_cpu();
        for _ in 0..n {
            drop(black_box(typical_record()));
        }
        thread_cpu().saturating_sub(started)
    });
    pair(
        "caller cpu",
        rounds,
        build_cpu,
        Box::new(|n| submit_runs(&pipeline, n, thread_cpu, |t| thread_cpu().saturating_sub(t))),
    );

    // The AnoSys encoder, against serde_json writing the same record.
    let registry = SlotRegistry::new();
    let encoder = Encoder::with_registry(&registry);
    let record = thirty_field_record();
    let resource = Resource::default();
    pair(
        "encode",
        rounds,
        Box::new(|n| timed(n, || drop(black_box(serde_json::to_vec(black_box(&record)).unwrap())))),
        Box::new(|n| timed(n, || drop(black_box(encoder.encode_to_vec(black_box(&record), &resource, SystemTime::now()))))),
    );

    // Extraction: a chat answer with tool calls made into its record,
    // against parsing the answer. As in the criterion group, the request
    // is handed over as the bytes sent, as every caller hands a plain
    // call's request (the proxy, the async-openai layer, the Python and
    // Node packages).
    let x = cassette::first("test_chat_completion_tool_calls_with_content");
    let sent = serde_json::to_vec(&x.request).unwrap();
    let parse: &dyn Fn(u64) -> Duration =
        &|n| timed(n, || drop(black_box(serde_json::from_slice::<Value>(black_box(&x.body)).unwrap())));
    for (name, options) in [
        ("extract", CaptureOptions::default()),
        ("extract, content off", CaptureOptions { capture_content: false, ..CaptureOptions::default() }),
    ] {
        let extract: Timed<'_> = Box::new(|n| {
            timed(n, || {
                let call = OpenAiCall::start(&x.uri, black_box(&sent[..]), &options);
                drop(black_box(call.finish(200, black_box(&x.body))));
            })
        });
        pair(name, rounds, Box::new(parse), extract);
    }

    // What the async-openai layer does on the caller's thread for a plain
    // call (see `hand_over`).
    let options = CaptureOptions::default();
    let deferred: Timed<'_> = Box::new(|n| hand_over(&x.uri, &sent, &x.body, &options, n));
    pair("deferred", rounds, Box::new(parse), deferred);

    // A JSON-lines line of that call (its content written out, as the
    // JSON-lines sink writes it), against the way before: expanding a copy
    // of the record, then writing the copy.
    let kept = OpenAiCall::start(&x.uri, &sent[..], &options).finish(200, &x.body);
    let copy_then_write: Timed<'_> = Box::new(|n| {
        let mut line = Vec::new();
        timed(n, || {
            line.clear();
            let mut copy = black_box(&kept).clone();
            copy.expand_content();
            copy.write_json(&mut line).unwrap();
            black_box(&line);
        })
    });
    let write_expanded: Timed<'_> = Box::new(|n| {
        let mut line = Vec::new();
        timed(n, || {
            line.clear();
            black_box(&kept).write_json_expanded(&mut line).unwrap();
            black_box(&line);
        })
    });
    pair("jsonl line", rounds, copy_then_write, write_expanded);

    // A stream, per chunk: the accumulator against parsing each event.
    let stream = cassette::first("test_chat_completion_multiple_choices_streaming");
    let chunks = {
        let mut s = OpenAiCall::start(&stream.uri, stream.request.clone(), &options).into_stream();
        s.push_bytes(&stream.body);
        s.chunk_count()
    };
    let parse_events: Timed<'_> = Box::new(|n| {
        timed(n, || {
            let mut parser = SseParser::new();
            parser.push(black_box(&stream.body), |e| {
                if !e.is_done() {
                    black_box(serde_json::from_str::<Value>(&e.data).unwrap());
                }
            });
        })
    });
    let accumulate: Timed<'_> = Box::new(|n| {
        timed(n, || {
            let mut s = OpenAiCall::start(&stream.uri, stream.request.clone(), &options).into_stream();
            s.push_bytes(black_box(&stream.body));
            drop(black_box(s.finish()));
        })
    });
    pair(&format!("stream of {chunks} chunks"), rounds, parse_events, accumulate);

    let report = pipeline.shutdown(Some(Duration::from_secs(30)));
    eprintln!("caller: {} captured, {} delivered, {} dropped", report.counters.captured, report.counters.delivered, report.counters.dropped);
}
