//! Sampling through a real pipeline into a real JSON-lines file: traces
//! are kept or dropped whole, the keep rules win over the rate, every
//! record is accounted for, and the decision by trace id is the one an
//! OpenTelemetry SDK makes for the same trace (so other processes agree).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use anosys::{Config, ConfigBuilder, LogLevel, Pipeline, Record, RecordKind, SinkKind, SpanId, Status, TraceId};
use serde_json::Value;
use support::temp_dir;

fn config(file: &Path) -> ConfigBuilder {
    Config::builder().log_level(LogLevel::Off).sinks([SinkKind::Jsonl]).jsonl_path(file).flush_interval(Duration::from_millis(50))
}

/// One trace: a root function call and `children` LLM calls under it.
fn trace(children: usize) -> Vec<Record> {
    let trace = TraceId::random();
    let root_id = SpanId::random();
    let start = SystemTime::now();
    let mut records: Vec<Record> = (0..children)
        .map(|i| {
            let mut r = Record::new(RecordKind::LlmCall, format!("chat {i}"));
            r.trace_id = trace;
            r.parent_span_id = Some(root_id);
            r.start_time = start;
            r.end_time = start + Duration::from_millis(10);
            r
        })
        .collect();
    let mut root = Record::new(RecordKind::FunctionCall, "agent");
    root.trace_id = trace;
    root.span_id = root_id;
    root.start_time = start;
    root.end_time = start + Duration::from_millis(20);
    // The root ends last, as a function's record does.
    records.push(root);
    records
}

/// Trace id → records of it in the file.
fn written(file: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut traces: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        traces.entry(v["trace_id"].as_str().unwrap().to_owned()).or_default().push(v);
    }
    traces
}

#[test]
fn traces_are_kept_or_dropped_whole_and_errors_always_kept() {
    let dir = temp_dir("sampling-whole");
    let file = dir.join("records.jsonl");
    let pipeline = Pipeline::new(config(&file).sample_rate(0.3).build().unwrap()).unwrap();
    let mut failed = BTreeSet::new();
    let mut all = BTreeMap::new();
    for n in 0..400 {
        let mut records = trace(1 + n % 4);
        if n % 25 == 0 {
            records[0].status = Status::error("rate limited");
            failed.insert(records[0].trace_id.to_string());
        }
        all.insert(records[0].trace_id.to_string(), records.len());
        for r in records {
            assert!(pipeline.submit(r));
        }
    }
    let report = pipeline.shutdown(Some(Duration::from_secs(10)));
    let c = report.counters;
    let total: usize = all.values().sum();
    assert_eq!(c.captured, total as u64);
    assert_eq!(c.delivered + c.sampled_out, c.captured, "{c:?}");
    assert_eq!(report.pending, 0);

    let kept = written(&file);
    for (trace, records) in &kept {
        assert_eq!(records.len(), all[trace], "trace {trace} kept whole");
        let by_rate = anosys::pipeline::keeps_trace_id(TraceId::from_hex(trace).unwrap(), 0.3);
        assert!(by_rate || failed.contains(trace), "trace {trace} kept for no reason");
        for r in records {
            assert_eq!(r["attributes"]["anosys.sampling.rate"], 0.3);
            if !by_rate {
                assert_eq!(r["attributes"]["anosys.sampling.kept_by"], "error");
            }
        }
    }
    for trace in &failed {
        assert!(kept.contains_key(trace), "failed trace {trace} dropped");
    }
    let written_records: usize = kept.values().map(Vec::len).sum();
    assert_eq!(written_records as u64, c.delivered);
    // About 30 % of the traces by rate (plus the failed ones).
    assert!((60..=200).contains(&kept.len()), "{} traces kept", kept.len());
}

#[test]
fn two_processes_keep_the_same_traces() {
    // Two pipelines with nothing shared, as two processes would be, each
    // seeing its part of the same traces.
    let dir = temp_dir("sampling-two");
    let (a_file, b_file) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    let a = Pipeline::new(config(&a_file).sample_rate(0.5).keep_errors(false).build().unwrap()).unwrap();
    let b = Pipeline::new(config(&b_file).sample_rate(0.5).keep_errors(false).build().unwrap()).unwrap();
    for _ in 0..300 {
        let records = trace(2);
        let (first, rest) = records.split_at(1);
        a.submit(first[0].clone());
        for r in rest {
            b.submit(r.clone());
        }
    }
    a.shutdown(Some(Duration::from_secs(10)));
    b.shutdown(Some(Duration::from_secs(10)));
    let a_traces: BTreeSet<String> = written(&a_file).into_keys().collect();
    let b_traces: BTreeSet<String> = written(&b_file).into_keys().collect();
    assert!(!a_traces.is_empty() && a_traces.len() < 300);
    assert_eq!(a_traces, b_traces);
}

#[test]
fn slow_and_costly_traces_are_kept_when_the_rate_drops_everything() {
    let dir = temp_dir("sampling-keep-rules");
    let file = dir.join("records.jsonl");
    let c = config(&file)
        .sample_rate(0.0)
        .keep_slower_than(Duration::from_secs(1))
        .keep_costlier_than(0.10)
        .build()
        .unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    let mut slow = trace(1);
    slow[0].end_time = slow[0].start_time + Duration::from_secs(2);
    let slow_id = slow[0].trace_id.to_string();
    let mut costly = trace(3);
    for r in &mut costly[..3] {
        r.set_attribute("gen_ai.usage.cost", 0.04);
    }
    let costly_id = costly[0].trace_id.to_string();
    let cheap = trace(3);
    for r in slow.into_iter().chain(costly).chain(cheap) {
        pipeline.submit(r);
    }
    let report = pipeline.shutdown(Some(Duration::from_secs(10)));
    let kept = written(&file);
    assert_eq!(kept.keys().cloned().collect::<BTreeSet<_>>(), BTreeSet::from([slow_id.clone(), costly_id.clone()]));
    assert_eq!(kept[&costly_id].len(), 4, "the whole costly trace");
    assert_eq!(kept[&slow_id][0]["attributes"]["anosys.sampling.kept_by"], "slow");
    assert_eq!((report.counters.delivered, report.counters.sampled_out), (6, 4));
}

#[test]
fn the_sample_rate_comes_from_opentelemetry_variables_too() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    };
    let c = ConfigBuilder::from_lookup(env(&[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.25")]))
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(c.sample_rate(), 0.25);
    let c = ConfigBuilder::from_lookup(env(&[("OTEL_TRACES_SAMPLER", "always_off")])).unwrap().build().unwrap();
    assert_eq!(c.sample_rate(), 0.0);
    // anosys's own variable wins; code wins over both.
    let both = env(&[("OTEL_TRACES_SAMPLER", "always_off"), ("ANOSYS_SAMPLE_RATE", "10%")]);
    assert_eq!(ConfigBuilder::from_lookup(both).unwrap().build().unwrap().sample_rate(), 0.1);
    assert_eq!(ConfigBuilder::from_lookup(both).unwrap().sample_rate(0.5).build().unwrap().sample_rate(), 0.5);
    // A bad argument names its variable.
    let bad = ConfigBuilder::from_lookup(env(&[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "2")]));
    assert_eq!(bad.unwrap_err().variable(), "OTEL_TRACES_SAMPLER_ARG");
    let bad = ConfigBuilder::from_lookup(env(&[("ANOSYS_SAMPLE_RATE", "half")]));
    assert_eq!(bad.unwrap_err().variable(), "ANOSYS_SAMPLE_RATE");
    // OpenTelemetry's content switch is honoured unless anosys's own is set.
    let off = env(&[("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false")]);
    assert!(!ConfigBuilder::from_lookup(off).unwrap().build().unwrap().capture_content());
    let on = env(&[("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "false"), ("ANOSYS_CAPTURE_CONTENT", "true")]);
    assert!(ConfigBuilder::from_lookup(on).unwrap().build().unwrap().capture_content());
}

#[cfg(feature = "otel")]
#[test]
fn the_decision_is_the_opentelemetry_sdks() {
    use opentelemetry::trace::SpanKind;
    use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample};
    for rate in [0.0, 0.01, 0.25, 0.5, 0.9, 1.0] {
        let sdk = Sampler::TraceIdRatioBased(rate);
        for _ in 0..5_000 {
            let id = TraceId::random();
            let theirs = sdk.should_sample(None, opentelemetry::trace::TraceId::from_bytes(id.0), "x", &SpanKind::Client, &[], &[]);
            let they_keep = theirs.decision == SamplingDecision::RecordAndSample;
            assert_eq!(anosys::pipeline::keeps_trace_id(id, rate), they_keep, "rate {rate}, trace {id}");
        }
    }
}

#[test]
fn before_send_sees_each_record_and_may_drop_it() {
    let dir = temp_dir("sampling-before-send");
    let file = dir.join("records.jsonl");
    let pipeline = Pipeline::builder(config(&file).build().unwrap())
        .before_send(|r: &mut Record| {
            if r.name == "boom" {
                panic!("a broken callback");
            }
            r.set_attribute("team", "search");
            r.name != "skip"
        })
        .build()
        .unwrap();
    for name in ["keep", "skip", "boom", "keep too"] {
        pipeline.submit(Record::new(RecordKind::Raw, name));
    }
    let report = pipeline.shutdown(Some(Duration::from_secs(10)));
    let c = report.counters;
    assert_eq!((c.captured, c.delivered, c.filtered, c.errors, report.pending), (4, 2, 2, 1, 0), "{c:?}");
    let lines: Vec<Value> = written(&file).into_values().flatten().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|r| r["attributes"]["team"] == "search"));
}
