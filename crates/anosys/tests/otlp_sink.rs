//! The OTLP sink against a real OTLP receiver on 127.0.0.1, over
//! HTTP/protobuf and over gRPC.

mod support;

use std::time::Duration;

use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use anosys::{Caller, Config, ErrorInfo, OtlpProtocol, Pipeline, Record, RecordKind, SinkKind, Status};
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use serde_json::{json, Value};
use support::otlp::{attributes, OtlpReceiver};
use support::{cassette, temp_dir};

const WAIT: Duration = Duration::from_secs(10);

/// A logged function (parent) that made a chat call with tool calls (child),
/// the chat recorded from a real exchange, and a failed function.
fn records() -> (Record, Record, Record) {
    let mut parent = Record::new(RecordKind::FunctionCall, "app::plan_trip");
    parent.source = Some("planner".into());
    parent.input = Some(json!(["Seattle"]));
    parent.output = Some(json!({"days": 3}));
    parent.caller = Some(Caller { function: Some("main".into()), file: "src/main.rs".into(), line: 12 });
    parent.user_context = Some(json!({"user_id": "u-1"}));

    let x = cassette::first("test_chat_completion_tool_calls_with_content");
    let child = {
        let _entered = anosys::record::context::enter(anosys::record::context::SpanContext { trace_id: parent.trace_id, span_id: parent.span_id });
        let call = OpenAiCall::start(&x.uri, x.request.clone(), &CaptureOptions::default());
        call.finish(x.status, &x.body)
    };
    parent.finish(Status::ok());

    let mut failed = Record::new(RecordKind::FunctionCall, "billing::charge");
    failed.source = Some("billing".into());
    failed.fail(ErrorInfo {
        error_type: "CardDeclined".into(),
        message: "the card was declined".into(),
        stack: Some("caused by: issuer answered 05".into()),
    });
    (parent, child, failed)
}

fn config(receiver: &OtlpReceiver, protocol: OtlpProtocol, dir: &std::path::Path) -> anosys::ConfigBuilder {
    Config::builder()
        .sinks([SinkKind::Otlp])
        .otlp_endpoint(receiver.endpoint())
        .otlp_protocol(protocol)
        // Spans only here; tests/otlp_metrics.rs covers the metrics.
        .otlp_metrics(false)
        .service_name("checkout")
        .service_version("2.0.1")
        .db_path(dir.join("fallback.db"))
        .flush_interval(Duration::from_millis(20))
        .retry_max_elapsed(Duration::from_secs(5))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find<'a>(spans: &'a [(Value, Span)], name: &str) -> &'a (Value, Span) {
    spans.iter().find(|(_, s)| s.name == name).unwrap_or_else(|| panic!("no span {name}"))
}

fn check_spans(receiver: &OtlpReceiver, parent: &Record, child: &Record, failed: &Record) {
    let spans = receiver.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");

    // Resource: the seed's attributes, with the configured service name.
    let (resource, _) = &spans[0];
    assert_eq!(resource["service.name"], "checkout");
    assert_eq!(resource["service.version"], "2.0.1");
    assert_eq!(resource["telemetry.sdk.name"], "anosys");
    assert_eq!(resource["telemetry.sdk.language"], "rust");
    assert_eq!(resource["telemetry.sdk.version"], env!("CARGO_PKG_VERSION"));

    // The LLM call: semantic-convention name, kind, ids, times, attributes.
    let (_, chat) = find(&spans, &child.name);
    assert_eq!(chat.name, "chat gpt-4o-mini");
    assert_eq!(chat.kind, SpanKind::Client as i32);
    assert_eq!(hex(&chat.trace_id), parent.trace_id.to_string());
    assert_eq!(hex(&chat.span_id), child.span_id.to_string());
    assert_eq!(hex(&chat.parent_span_id), parent.span_id.to_string());
    let nanos = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    assert_eq!(chat.start_time_unix_nano, nanos(child.start_time));
    assert_eq!(chat.end_time_unix_nano, nanos(child.end_time));
    assert_eq!(chat.status.as_ref().unwrap().code, StatusCode::Ok as i32);
    let a = attributes(&chat.attributes);
    for key in [
        "gen_ai.operation.name",
        "gen_ai.provider.name",
        "gen_ai.system",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.response.id",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "server.address",
    ] {
        assert_eq!(a[key], *child.attribute(key).unwrap(), "{key}");
    }
    assert_eq!(a["gen_ai.response.finish_reasons"], json!(["tool_calls"]));
    // Structured content as JSON strings, as the conventions ask on spans.
    let output: Value = serde_json::from_str(a["gen_ai.output.messages"].as_str().unwrap()).unwrap();
    // Built from the response the record keeps in `raw`.
    assert_eq!(output, *child.output_messages().unwrap());
    assert_eq!(output[0]["parts"][0]["name"], "get_current_weather");
    assert_eq!(a["anosys.record.kind"], "llm_call");

    // The function: input, output, caller, user context.
    let (_, plan) = find(&spans, "app::plan_trip");
    assert_eq!(plan.kind, SpanKind::Internal as i32);
    assert!(plan.parent_span_id.is_empty());
    let a = attributes(&plan.attributes);
    assert_eq!(a["anosys.source"], "planner");
    assert_eq!(a["anosys.input"], "[\"Seattle\"]");
    assert_eq!(a["anosys.output"], "{\"days\":3}");
    assert_eq!(a["code.function.name"], "main");
    assert_eq!(a["code.file.path"], "src/main.rs");
    assert_eq!(a["code.line.number"], 12);
    assert_eq!(a["anosys.user_context"], "{\"user_id\":\"u-1\"}");

    // The failure: status, error.type and an exception event.
    let (_, charge) = find(&spans, &failed.name);
    let status = charge.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "the card was declined");
    assert_eq!(attributes(&charge.attributes)["error.type"], "CardDeclined");
    let exception = charge.events.iter().find(|e| e.name == "exception").expect("an exception event");
    let e = attributes(&exception.attributes);
    assert_eq!(e["exception.type"], "CardDeclined");
    assert_eq!(e["exception.message"], "the card was declined");
    assert_eq!(e["exception.stacktrace"], "caused by: issuer answered 05");
}

#[test]
fn records_become_spans_over_http_protobuf() {
    let receiver = OtlpReceiver::http();
    let dir = temp_dir("otlp-http");
    let config = config(&receiver, OtlpProtocol::HttpProtobuf, &dir)
        .otlp_headers([("x-api-key".to_owned(), "key 1".to_owned())])
        .build()
        .unwrap();
    let pipeline = Pipeline::new(config).unwrap();
    assert!(pipeline.destinations()[0].contains("/v1/traces (http/protobuf)"), "{:?}", pipeline.destinations());
    let (parent, child, failed) = records();
    for r in [parent.clone(), child.clone(), failed.clone()] {
        assert!(pipeline.submit(r));
    }
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.delivered, 3, "{report:?}");
    check_spans(&receiver, &parent, &child, &failed);
    let headers = receiver.shared.headers.lock().unwrap();
    assert_eq!(headers[0]["content-type"], "application/x-protobuf");
    assert_eq!(headers[0]["x-api-key"], "key 1", "configured headers are sent");
}

#[test]
fn records_become_spans_over_grpc() {
    let receiver = OtlpReceiver::grpc();
    let dir = temp_dir("otlp-grpc");
    // OTEL_EXPORTER_OTLP_HEADERS, as the environment gives it.
    let headers = anosys::ConfigBuilder::from_lookup(|v| (v == "OTEL_EXPORTER_OTLP_HEADERS").then(|| "X-Tenant=t%201".into()))
        .unwrap()
        .build()
        .unwrap()
        .otlp_headers()
        .to_vec();
    let config = config(&receiver, OtlpProtocol::Grpc, &dir).otlp_headers(headers).build().unwrap();
    let pipeline = Pipeline::new(config).unwrap();
    let (parent, child, failed) = records();
    for r in [parent.clone(), child.clone(), failed.clone()] {
        assert!(pipeline.submit(r));
    }
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.delivered, 3, "{report:?}");
    check_spans(&receiver, &parent, &child, &failed);
    assert_eq!(receiver.shared.headers.lock().unwrap()[0]["x-tenant"], "t 1", "configured metadata is sent");
}

#[test]
fn a_failing_receiver_is_retried_then_succeeds() {
    let receiver = OtlpReceiver::http();
    receiver.fail_next(&[503, 503]);
    let dir = temp_dir("otlp-retry");
    let pipeline = Pipeline::new(config(&receiver, OtlpProtocol::HttpProtobuf, &dir).build().unwrap()).unwrap();
    let (parent, _, _) = records();
    pipeline.submit(parent.clone());
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!((report.counters.kept_in_outbox, report.counters.outbox_delivered), (1, 1), "{report:?}");
    assert!(report.counters.retried >= 2, "{report:?}");
    assert_eq!(receiver.shared.headers.lock().unwrap().len(), 3);
    assert_eq!(hex(&receiver.spans()[0].1.span_id), parent.span_id.to_string());
}

#[test]
fn a_rejecting_receiver_is_not_retried() {
    let receiver = OtlpReceiver::http();
    receiver.fail_next(&[400]);
    let dir = temp_dir("otlp-reject");
    let pipeline = Pipeline::new(config(&receiver, OtlpProtocol::HttpProtobuf, &dir).build().unwrap()).unwrap();
    pipeline.submit(records().0);
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.failed, 1, "{report:?}");
    assert_eq!(receiver.shared.headers.lock().unwrap().len(), 1);
}

#[test]
fn an_unreachable_receiver_leaves_records_in_the_outbox() {
    let port = support::free_port();
    let dir = temp_dir("otlp-down");
    let config = Config::builder()
        .sinks([SinkKind::Otlp])
        .otlp_endpoint(format!("http://127.0.0.1:{port}"))
        .otlp_metrics(false)
        .db_path(dir.join("fallback.db"))
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let pipeline = Pipeline::new(config).unwrap();
    let (parent, child, _) = records();
    pipeline.submit(parent.clone());
    pipeline.submit(child.clone());
    let report = pipeline.shutdown(Some(Duration::from_secs(2)));
    assert_eq!(report.counters.kept_in_outbox, 2, "{report:?}");
    let kept: Vec<String> = support::outboxed(&dir.join("fallback.db")).iter().map(|r| r.span_id.to_string()).collect();
    assert!(kept.contains(&parent.span_id.to_string()) && kept.contains(&child.span_id.to_string()));
}

#[test]
fn otlp_settings_come_from_the_standard_variables() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    };
    let c = anosys::ConfigBuilder::from_lookup(env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(c.otlp_protocol(), OtlpProtocol::Grpc);
    // An OTLP endpoint alone selects the OTLP sink.
    assert_eq!(c.resolved_sinks(), vec![SinkKind::Otlp]);
    assert_eq!(anosys::sinks::OtlpSink::new(&c).endpoint(), "http://127.0.0.1:4317");

    let c = anosys::ConfigBuilder::from_lookup(env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/custom/traces"),
        ("ANOSYS_API_URL", "http://127.0.0.1:9/log"),
    ]))
    .unwrap()
    .build()
    .unwrap();
    assert_eq!(c.resolved_sinks(), vec![SinkKind::Anosys, SinkKind::Otlp]);
    assert_eq!(anosys::sinks::OtlpSink::new(&c).endpoint(), "http://collector:4318/custom/traces");

    let err = anosys::ConfigBuilder::from_lookup(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])).unwrap_err();
    assert_eq!(err.variable(), "OTEL_EXPORTER_OTLP_PROTOCOL");
    let err = anosys::ConfigBuilder::from_lookup(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")])).unwrap_err();
    assert_eq!(err.variable(), "OTEL_EXPORTER_OTLP_ENDPOINT");
}
