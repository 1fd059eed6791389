//! The GenAI client metrics of the OTLP sink against a real OTLP receiver
//! on 127.0.0.1 (built from opentelemetry-proto), over HTTP/protobuf
//! (`POST /v1/metrics`) and gRPC (`MetricsService/Export`).

mod support;

use std::time::{Duration, Instant};

use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use anosys::{Config, ConfigBuilder, OtlpProtocol, Pipeline, Record, RecordKind, SinkKind, Status};
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{metric, AggregationTemporality, HistogramDataPoint, Metric};
use serde_json::{json, Value};
use support::otlp::{attributes, OtlpReceiver};
use support::temp_dir;

const WAIT: Duration = Duration::from_secs(10);

const DURATION_BOUNDS: [f64; 14] =
    [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
const TOKEN_BOUNDS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

// ---------------------------------------------------------------------------
// The receiver (tests/support/otlp.rs): metrics kept, spans counted.

struct Receiver(OtlpReceiver);

impl Receiver {
    fn http() -> Receiver {
        Receiver(OtlpReceiver::http())
    }

    fn grpc() -> Receiver {
        Receiver(OtlpReceiver::grpc())
    }

    fn endpoint(&self) -> String {
        self.0.endpoint()
    }

    fn metrics_headers(&self) -> std::sync::MutexGuard<'_, Vec<HeaderMap>> {
        self.0.shared.metrics_headers.lock().unwrap()
    }

    fn requests(&self) -> usize {
        self.0.shared.metrics.lock().unwrap().len()
    }

    fn spans(&self) -> usize {
        self.0.spans().len()
    }

    /// The latest export (cumulative: it holds every total), once `done`
    /// holds for it; `None` when the deadline passes first.
    fn latest_when(&self, done: impl Fn(&Export) -> bool) -> Option<Export> {
        let end = Instant::now() + WAIT;
        loop {
            if let Some(last) = self.0.shared.metrics.lock().unwrap().last() {
                let export = Export::of(last);
                if done(&export) {
                    return Some(export);
                }
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

// ---------------------------------------------------------------------------
// One export request, flattened.

struct Export {
    resource: Value,
    scope: (String, String),
    metrics: Vec<Metric>,
}

impl Export {
    fn of(request: &ExportMetricsServiceRequest) -> Export {
        assert_eq!(request.resource_metrics.len(), 1, "one resource");
        let rm = &request.resource_metrics[0];
        assert_eq!(rm.scope_metrics.len(), 1, "one scope");
        let sm = &rm.scope_metrics[0];
        let scope = sm.scope.as_ref().map(|s| (s.name.clone(), s.version.clone())).unwrap_or_default();
        Export {
            resource: rm.resource.as_ref().map_or(Value::Null, |r| attributes(&r.attributes)),
            scope,
            metrics: sm.metrics.clone(),
        }
    }

    fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }

    /// The data points of a histogram, with their attributes as JSON.
    fn points(&self, name: &str) -> Vec<(Value, HistogramDataPoint)> {
        let Some(m) = self.metric(name) else { return Vec::new() };
        match &m.data {
            Some(metric::Data::Histogram(h)) => {
                assert_eq!(h.aggregation_temporality, AggregationTemporality::Cumulative as i32, "{name}");
                h.data_points.iter().map(|p| (attributes(&p.attributes), p.clone())).collect()
            }
            other => panic!("{name} is not a histogram: {other:?}"),
        }
    }

    fn count(&self, name: &str) -> u64 {
        self.points(name).iter().map(|(_, p)| p.count).sum()
    }
}

// ---------------------------------------------------------------------------
// Records: two chat calls (8 + 2 tokens each), a rate-limited call, a
// stream (5 + 7 tokens), and a function call that is no LLM call.

const URL: &str = "http://127.0.0.1:9/v1/chat/completions";

fn chat() -> Record {
    let request = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]});
    let call = OpenAiCall::start(URL, request, &CaptureOptions::default());
    call.finish(
        200,
        json!({
            "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}
        }),
    )
}

fn rate_limited() -> Record {
    let request = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]});
    let call = OpenAiCall::start(URL, request, &CaptureOptions::default());
    call.finish(
        429,
        json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}),
    )
}

fn stream() -> Record {
    let request = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
    let mut stream = OpenAiCall::start(URL, request, &CaptureOptions::default()).into_stream();
    for chunk in [
        json!({"id": "c1", "model": "gpt-4o-2024-08-06", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}),
        json!({"id": "c1", "model": "gpt-4o-2024-08-06", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}),
        json!({"id": "c1", "model": "gpt-4o-2024-08-06", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}),
    ] {
        stream.push_data(&chunk.to_string());
    }
    stream.push_bytes(b"data: [DONE]\n\n");
    stream.finish()
}

struct Calls {
    chats: [Record; 2],
    failed: Record,
    stream: Record,
    function: Record,
}

fn calls() -> Calls {
    let mut function = Record::new(RecordKind::FunctionCall, "app::plan");
    function.finish(Status::ok());
    let calls = Calls { chats: [chat(), chat()], failed: rate_limited(), stream: stream(), function };
    // What the assertions rely on, from the capture itself.
    assert_eq!(calls.failed.attribute("error.type"), Some(&json!("rate_limit_exceeded")));
    assert_eq!(calls.stream.attribute("gen_ai.usage.input_tokens"), Some(&json!(5)));
    assert!(calls.stream.attribute("gen_ai.response.time_to_first_chunk").is_some());
    assert!(calls.chats[0].attribute("gen_ai.response.time_to_first_chunk").is_none());
    calls
}

impl Calls {
    fn all(&self) -> Vec<Record> {
        let [a, b] = &self.chats;
        vec![a.clone(), b.clone(), self.failed.clone(), self.stream.clone(), self.function.clone()]
    }
}

fn seconds(r: &Record) -> f64 {
    r.end_time.duration_since(r.start_time).unwrap().as_secs_f64()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

fn config(receiver: &Receiver, protocol: OtlpProtocol, dir: &std::path::Path) -> ConfigBuilder {
    Config::builder()
        .sinks([SinkKind::Otlp])
        .otlp_endpoint(receiver.endpoint())
        .otlp_protocol(protocol)
        .service_name("checkout")
        .db_path(dir.join("fallback.db"))
        .flush_interval(Duration::from_millis(20))
        .retry_max_elapsed(Duration::from_secs(5))
}

/// Everything the receiver should hold once every call is measured.
fn check(export: &Export, calls: &Calls) {
    assert_eq!(export.resource["service.name"], "checkout");
    assert_eq!(export.resource["telemetry.sdk.name"], "anosys");
    assert_eq!(export.scope, ("anosys".to_owned(), env!("CARGO_PKG_VERSION").to_owned()));
    let mut names: Vec<&str> = export.metrics.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "anosys.client.cost",
            "gen_ai.client.operation.duration",
            "gen_ai.client.operation.time_to_first_chunk",
            "gen_ai.client.token.usage"
        ]
    );
    // The cost: a monotonic cumulative sum in USD, per model, equal to the
    // records' own prices (the pipeline prices each call it captures).
    let cost = export.metric("anosys.client.cost").unwrap();
    assert_eq!(cost.unit, "USD");
    let Some(metric::Data::Sum(sum)) = &cost.data else { panic!("the cost is a sum: {cost:?}") };
    assert!(sum.is_monotonic);
    assert_eq!(sum.aggregation_temporality, AggregationTemporality::Cumulative as i32);
    let priced = |r: &Record| {
        let mut r = r.clone();
        anosys::cost::price_record(anosys::cost::PriceTable::builtin(), &mut r);
        r.attribute("gen_ai.usage.cost").and_then(Value::as_f64).expect("gpt-4o and gpt-4o-mini have prices")
    };
    let per_model: std::collections::BTreeMap<String, f64> = sum
        .data_points
        .iter()
        .map(|p| {
            let model = attributes(&p.attributes)["gen_ai.response.model"].as_str().unwrap().to_owned();
            let value = match p.value {
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(v)) => v,
                other => panic!("a double sum: {other:?}"),
            };
            (model, value)
        })
        .collect();
    assert_eq!(per_model.len(), 2, "{per_model:?}");
    let same = |a: f64, b: f64| b > 0.0 && (a - b).abs() <= 1e-9 * b;
    assert!(same(per_model["gpt-4o-mini-2024-07-18"], 2.0 * priced(&calls.chats[0])), "{per_model:?}");
    assert!(same(per_model["gpt-4o-2024-08-06"], priced(&calls.stream)), "{per_model:?}");
    for (name, unit) in [
        ("gen_ai.client.operation.duration", "s"),
        ("gen_ai.client.operation.time_to_first_chunk", "s"),
        ("gen_ai.client.token.usage", "{token}"),
    ] {
        assert_eq!(export.metric(name).unwrap().unit, unit, "{name}");
        for (attrs, p) in export.points(name) {
            let bounds = if name == "gen_ai.client.token.usage" { TOKEN_BOUNDS } else { DURATION_BOUNDS };
            assert_eq!(p.explicit_bounds, bounds, "{name}");
            assert_eq!(p.bucket_counts.len(), bounds.len() + 1, "{name}");
            assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count, "{name}");
            // The attributes every measurement has, from the records.
            assert_eq!(attrs["gen_ai.operation.name"], "chat", "{name}");
            assert_eq!(attrs["gen_ai.provider.name"], "openai", "{name}");
            assert_eq!(attrs["server.address"], "127.0.0.1", "{name}");
            assert_eq!(attrs["server.port"], 9, "{name}");
        }
    }

    // Duration: the two chats share a data point; the failure and the stream
    // have their own. The function call is not measured.
    let duration = export.points("gen_ai.client.operation.duration");
    assert_eq!(duration.len(), 3, "{duration:#?}");
    assert_eq!(export.count("gen_ai.client.operation.duration"), 4);
    let ok_chats = duration
        .iter()
        .find(|(a, _)| a["gen_ai.request.model"] == "gpt-4o-mini" && a.get("error.type").is_none())
        .expect("the chats' point");
    assert_eq!(ok_chats.0["gen_ai.response.model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(ok_chats.1.count, 2);
    assert!(close(ok_chats.1.sum.unwrap(), seconds(&calls.chats[0]) + seconds(&calls.chats[1])));
    let failed = duration.iter().find(|(a, _)| a.get("error.type").is_some()).expect("the failure's point");
    assert_eq!(failed.0["error.type"], "rate_limit_exceeded");
    assert_eq!(failed.0["gen_ai.request.model"], "gpt-4o-mini");
    assert!(failed.0.get("gen_ai.response.model").is_none());
    assert_eq!(failed.1.count, 1);
    assert!(close(failed.1.sum.unwrap(), seconds(&calls.failed)));
    let streamed = duration.iter().find(|(a, _)| a["gen_ai.request.model"] == "gpt-4o").expect("the stream's point");
    assert_eq!(streamed.0["gen_ai.response.model"], "gpt-4o-2024-08-06");
    assert_eq!(streamed.1.count, 1);
    assert!(close(streamed.1.sum.unwrap(), seconds(&calls.stream)));
    assert_eq!(
        duration.iter().filter(|(a, _)| a.get("error.type").is_some()).count(),
        1,
        "only the failure has error.type"
    );

    // Tokens: one point per model and token type; the failure has none.
    let tokens = export.points("gen_ai.client.token.usage");
    assert_eq!(tokens.len(), 4, "{tokens:#?}");
    let point = |model: &str, kind: &str| {
        tokens
            .iter()
            .find(|(a, _)| a["gen_ai.request.model"] == model && a["gen_ai.token.type"] == kind)
            .map(|(_, p)| (p.count, p.sum.unwrap(), p.min, p.max))
            .unwrap_or_else(|| panic!("no {kind} tokens for {model}"))
    };
    assert_eq!(point("gpt-4o-mini", "input"), (2, 16.0, Some(8.0), Some(8.0)));
    assert_eq!(point("gpt-4o-mini", "output"), (2, 4.0, Some(2.0), Some(2.0)));
    assert_eq!(point("gpt-4o", "input"), (1, 5.0, Some(5.0), Some(5.0)));
    assert_eq!(point("gpt-4o", "output"), (1, 7.0, Some(7.0), Some(7.0)));
    let mut kinds: Vec<String> = tokens.iter().map(|(a, _)| a["gen_ai.token.type"].as_str().unwrap().to_owned()).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ["input", "output"]);
    // 8 tokens fall in (4, 16], the bucket at index 2.
    let chat_input = tokens
        .iter()
        .find(|(a, _)| a["gen_ai.request.model"] == "gpt-4o-mini" && a["gen_ai.token.type"] == "input")
        .unwrap();
    assert_eq!(chat_input.1.bucket_counts[2], 2);

    // Time to first chunk: the stream only.
    let ttfc = export.points("gen_ai.client.operation.time_to_first_chunk");
    assert_eq!(ttfc.len(), 1, "{ttfc:#?}");
    let (attrs, p) = &ttfc[0];
    assert_eq!(attrs["gen_ai.request.model"], "gpt-4o");
    assert_eq!(p.count, 1);
    let expected = calls.stream.attribute("gen_ai.response.time_to_first_chunk").unwrap().as_f64().unwrap();
    assert!(close(p.sum.unwrap(), expected), "{p:?} vs {expected}");
}

// ---------------------------------------------------------------------------

#[test]
fn llm_calls_become_genai_metrics_over_http_protobuf() {
    let receiver = Receiver::http();
    let dir = temp_dir("otlp-metrics-http");
    let config = config(&receiver, OtlpProtocol::HttpProtobuf, &dir)
        .otlp_metric_export_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let pipeline = Pipeline::new(config).unwrap();
    let line = &pipeline.destinations()[0];
    assert!(line.contains(&format!("GenAI client metrics to {}/v1/metrics every 50ms", receiver.endpoint())), "{line}");
    let calls = calls();
    for r in calls.all() {
        assert!(pipeline.submit(r));
    }
    // The periodic export delivers them while the pipeline runs.
    let running = receiver
        .latest_when(|e| e.count("gen_ai.client.operation.duration") == 4)
        .expect("a periodic export with every call");
    check(&running, &calls);

    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.delivered, 5, "{report:?}");
    assert_eq!(receiver.spans(), 5);
    // The export at shutdown holds the same cumulative totals.
    let last = receiver.latest_when(|_| true).unwrap();
    check(&last, &calls);
    let headers = receiver.metrics_headers();
    assert_eq!(headers[0]["content-type"], "application/x-protobuf");
}

#[test]
fn a_short_lived_process_delivers_its_metrics_at_shutdown_over_grpc() {
    let receiver = Receiver::grpc();
    let dir = temp_dir("otlp-metrics-grpc");
    // The default interval (60 s): only the export at shutdown can deliver.
    let config = config(&receiver, OtlpProtocol::Grpc, &dir).build().unwrap();
    assert_eq!(config.otlp_metric_export_interval(), Duration::from_secs(60));
    let pipeline = Pipeline::new(config).unwrap();
    let calls = calls();
    for r in calls.all() {
        assert!(pipeline.submit(r));
    }
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.delivered, 5, "{report:?}");
    let export = receiver
        .latest_when(|e| e.count("gen_ai.client.operation.duration") == 4)
        .expect("the export at shutdown");
    check(&export, &calls);
    assert_eq!(receiver.requests(), 1, "one export, at shutdown");
    assert_eq!(receiver.spans(), 5);
}

#[test]
fn otel_metrics_exporter_none_sends_no_metrics() {
    let receiver = Receiver::http();
    let dir = temp_dir("otlp-metrics-none");
    let env = |name: &str| (name == "OTEL_METRICS_EXPORTER").then(|| "none".to_owned());
    let config = ConfigBuilder::from_lookup(env)
        .unwrap()
        .sinks([SinkKind::Otlp])
        .otlp_endpoint(receiver.endpoint())
        .service_name("checkout")
        .db_path(dir.join("fallback.db"))
        .flush_interval(Duration::from_millis(20))
        .otlp_metric_export_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    assert!(!config.otlp_metrics());
    assert!(anosys::sinks::OtlpSink::new(&config).metrics().is_none());
    let pipeline = Pipeline::new(config).unwrap();
    assert!(!pipeline.destinations()[0].contains("metrics"), "{:?}", pipeline.destinations());
    let calls = calls();
    for r in calls.all() {
        assert!(pipeline.submit(r));
    }
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.delivered, 5, "{report:?}");
    // The spans went out; the shutdown (when metrics would be sent last) is
    // over, and nothing came.
    assert_eq!(receiver.spans(), 5);
    assert_eq!(receiver.requests(), 0);
    assert!(receiver.metrics_headers().is_empty());
}

#[test]
fn metrics_that_cannot_be_sent_do_not_hold_up_the_spans() {
    let receiver = Receiver::http();
    let dir = temp_dir("otlp-metrics-down");
    let nowhere = format!("http://127.0.0.1:{}/v1/metrics", support::free_port());
    let config = config(&receiver, OtlpProtocol::HttpProtobuf, &dir)
        .otlp_metrics_endpoint(&nowhere)
        .otlp_metric_export_interval(Duration::from_millis(20))
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let pipeline = Pipeline::new(config).unwrap();
    assert!(pipeline.destinations()[0].contains(&nowhere), "{:?}", pipeline.destinations());
    let calls = calls();
    for r in calls.all() {
        assert!(pipeline.submit(r));
    }
    let started = Instant::now();
    let report = pipeline.shutdown(Some(WAIT));
    assert!(report.completed, "{report:?}");
    assert!(started.elapsed() < WAIT);
    assert_eq!(report.counters.delivered, 5, "{report:?}");
    assert_eq!(report.counters.failed, 0, "{report:?}");
    assert_eq!(receiver.spans(), 5);
    assert_eq!(receiver.requests(), 0);
}

#[test]
fn calls_sampled_out_are_still_measured() {
    let receiver = Receiver::http();
    let dir = temp_dir("otlp-metrics-sampled-out");
    // No trace is kept (not even the failed call's: keep rules off), yet
    // every call is in the metrics.
    let config = config(&receiver, OtlpProtocol::HttpProtobuf, &dir).sample_rate(0.0).keep_errors(false).build().unwrap();
    let pipeline = Pipeline::new(config).unwrap();
    let calls = calls();
    for r in calls.all() {
        assert!(pipeline.submit(r));
    }
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!((report.counters.sampled_out, report.counters.delivered, report.pending), (5, 0, 0), "{report:?}");
    let export = receiver
        .latest_when(|e| e.count("gen_ai.client.operation.duration") == 4)
        .expect("the export at shutdown, with every call");
    check(&export, &calls);
    assert_eq!(receiver.spans(), 0);
}
