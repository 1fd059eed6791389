//! OpenTelemetry both ways, intake side: `tracing` spans (through
//! tracing-opentelemetry) and OpenTelemetry API spans flow through
//! `AnosysSpanExporter` into the pipeline, and on to a real SQLite store and
//! a local AnoSys stand-in with the AnoSys column mapping; records made
//! inside an active OpenTelemetry or `tracing` span become its children.
//! The global pipeline and tracer are process-wide: the tests take a lock.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use anosys::sources::otel::AnosysSpanExporter;
use anosys::{Config, RecordKind, SinkKind, StatusCode};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{KeyValue, Context};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use serde_json::{json, Value};
use support::{decode, stored, temp_dir, Backend};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

static SERIAL: Mutex<()> = Mutex::new(());

struct Setup {
    backend: Backend,
    db: std::path::PathBuf,
    provider: SdkTracerProvider,
    _guard: anosys::Guard,
}

/// The global pipeline: AnoSys stand-in and a SQLite store; a tracer
/// provider exporting into it.
fn setup(name: &str) -> Setup {
    let backend = Backend::start();
    let db = temp_dir(name).join("anosys.db");
    let config = Config::builder()
        .api_url(backend.url())
        .sinks([SinkKind::Anosys, SinkKind::Sqlite])
        .db_path(&db)
        .flush_interval(Duration::from_millis(20))
        .log_level(anosys::LogLevel::Off)
        .build()
        .unwrap();
    let guard = anosys::init_with(config).unwrap();
    let resource = Resource::builder().with_service_name("checkout-service").with_attribute(KeyValue::new("deployment.environment.name", "test")).build();
    let provider = SdkTracerProvider::builder().with_resource(resource).with_simple_exporter(AnosysSpanExporter::new()).build();
    Setup { backend, db, provider, _guard: guard }
}

fn by_name<'a>(records: &'a [anosys::Record], name: &str) -> &'a anosys::Record {
    records.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no record {name}: {:?}", records.iter().map(|r| &r.name).collect::<Vec<_>>()))
}

#[test]
fn tracing_spans_reach_the_store_and_anosys_with_their_tree_events_links_and_resource() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = setup("tracing");
    let tracer = s.provider.tracer("checkout");
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    let linked = opentelemetry::trace::SpanContext::new(
        opentelemetry::trace::TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        opentelemetry::trace::SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        opentelemetry::trace::TraceFlags::SAMPLED,
        true,
        Default::default(),
    );
    tracing::subscriber::with_default(subscriber, || {
        let order = tracing::info_span!("place_order", order.id = 42, customer = "acme");
        order.add_link_with_attributes(linked.clone(), vec![KeyValue::new("link.reason", "retry of")]);
        let _o = order.enter();
        tracing::info!(items = 3, "validated");
        {
            let pay = tracing::info_span!("charge_card", otel.kind = "client", amount = 12.5);
            let _p = pay.enter();
            pay.set_status(Status::error("card declined"));
            tracing::error!(error = "card declined", "payment failed");
        }
    });
    let report = anosys::flush(Some(Duration::from_secs(5)));
    assert!(report.completed, "{report:?}");

    let records = stored(&s.db);
    assert_eq!(records.len(), 2, "only the two spans: {:?}", records.iter().map(|r| &r.name).collect::<Vec<_>>());
    let order = by_name(&records, "place_order");
    let pay = by_name(&records, "charge_card");
    assert_eq!(order.kind, RecordKind::Span);
    assert_eq!(pay.trace_id, order.trace_id);
    assert_eq!(pay.parent_span_id, Some(order.span_id));
    assert_eq!(order.parent_span_id, None);
    assert!(order.start_time <= pay.start_time && pay.end_time <= order.end_time);
    assert!(order.end_time > order.start_time);
    assert_eq!(order.attribute("order.id"), Some(&json!(42)));
    assert_eq!(order.attribute("customer"), Some(&json!("acme")));
    assert_eq!(order.attribute("otel.scope.name"), Some(&json!("checkout")));
    assert_eq!(order.source.as_deref(), Some("checkout"));
    assert_eq!(pay.span_kind, anosys::SpanKind::Client);
    assert_eq!(pay.attribute("amount"), Some(&json!(12.5)));
    assert_eq!(pay.status.code, StatusCode::Error);
    assert_eq!(pay.status.message.as_deref(), Some("card declined"));
    assert!(order.events.iter().any(|e| e.name == "validated" && e.attributes.get("items") == Some(&json!(3))), "{:?}", order.events);
    assert!(pay.events.iter().any(|e| e.name == "payment failed"));
    assert_eq!(order.links.len(), 1);
    assert_eq!(order.links[0].span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(order.links[0].attributes.get("link.reason"), Some(&json!("retry of")));
    let resource = order.resource.as_ref().unwrap();
    assert_eq!(resource.service_name(), Some("checkout-service"));
    assert_eq!(resource.attributes.get("deployment.environment.name"), Some(&json!("test")));

    // The same records at AnoSys, through the column mapping.
    let bodies = s.backend.wait_for(2, Duration::from_secs(5));
    assert_eq!(bodies.len(), 2);
    let decoded: Vec<_> = bodies.iter().map(decode).collect();
    let order_body = decoded.iter().find(|d| d.get("name") == Some(&json!("place_order"))).unwrap();
    let pay_body = decoded.iter().find(|d| d.get("name") == Some(&json!("charge_card"))).unwrap();
    assert_eq!(order_body["trace_id"], json!(order.trace_id.to_string()));
    assert_eq!(pay_body["parent_id"], json!(order.span_id.to_string()));
    assert_eq!(pay_body["kind"], json!("CLIENT"));
    assert_eq!(pay_body["status_code"], json!("ERROR"));
    assert_eq!(order_body["service.name"], json!("checkout-service"));
    let links: Value = serde_json::from_str(order_body["links"].as_str().unwrap()).unwrap();
    assert_eq!(links[0]["span_id"], json!("00f067aa0ba902b7"));
    let events: Value = serde_json::from_str(order_body["events"].as_str().unwrap()).unwrap();
    assert_eq!(events[0]["name"], json!("validated"));
    let resource: Value = serde_json::from_str(order_body["otel_resource"].as_str().unwrap()).unwrap();
    assert_eq!(resource["deployment.environment.name"], json!("test"));
    s.provider.shutdown().unwrap();
}

#[test]
fn otel_api_spans_with_exceptions_and_genai_attributes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = setup("otel-api");
    let tracer = s.provider.tracer_with_scope(opentelemetry::InstrumentationScope::builder("genai-lib").with_version("1.2.3").build());
    let mut span = tracer
        .span_builder("chat gpt-4o")
        .with_kind(SpanKind::Client)
        .with_attributes(vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.request.model", "gpt-4o"),
            KeyValue::new("gen_ai.usage.input_tokens", 12),
            KeyValue::new("gen_ai.response.finish_reasons", opentelemetry::Value::Array(vec!["stop"].into_iter().map(opentelemetry::StringValue::from).collect::<Vec<_>>().into())),
        ])
        .start(&tracer);
    span.record_error(&std::io::Error::other("upstream timed out"));
    span.set_status(Status::error("timeout"));
    span.end();
    assert!(anosys::flush(Some(Duration::from_secs(5))).completed);
    let records = stored(&s.db);
    let r = by_name(&records, "chat gpt-4o");
    assert_eq!(r.kind, RecordKind::LlmCall, "a GenAI span is an LLM call");
    assert_eq!(r.attribute("gen_ai.usage.input_tokens"), Some(&json!(12)));
    assert_eq!(r.attribute("gen_ai.response.finish_reasons"), Some(&json!(["stop"])));
    assert_eq!(r.attribute("otel.scope.version"), Some(&json!("1.2.3")));
    let error = r.error.as_ref().unwrap();
    assert_eq!(error.message, "upstream timed out");
    assert_eq!(r.status.message.as_deref(), Some("timeout"));
    let body = decode(&s.backend.wait_for(1, Duration::from_secs(5))[0]);
    assert_eq!(body["gen_ai.request.model"], json!("gpt-4o"));
    assert_eq!(body["error_message"], json!("upstream timed out"));
    s.provider.shutdown().unwrap();
}

#[anosys::logger(source = "checkout")]
fn summarise(order: u32) -> String {
    // An OpenTelemetry span entered inside a logged function is innermost.
    let tracer = opentelemetry::global::tracer("inner");
    tracer.in_span("render_receipt", |_| {
        let request = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
        let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default());
        anosys::capture(call.finish(200, json!({"id": "c", "model": "gpt-4o-mini", "choices": []})));
    });
    format!("order {order}")
}

#[test]
fn records_made_inside_otel_and_tracing_spans_are_their_children() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let s = setup("context");
    opentelemetry::global::set_tracer_provider(s.provider.clone());
    let tracer = s.provider.tracer("app");
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer.clone()));

    // Inside a tracing span: a logged function, and in it an OTel span with
    // an OpenAI call.
    tracing::subscriber::with_default(subscriber, || {
        let request_span = tracing::info_span!("handle_request");
        let _e = request_span.enter();
        assert_eq!(summarise(7), "order 7");
    });
    // Inside an OTel API span, a raw-logged-free record: an OpenAI call.
    let outer = tracer.start("batch_job");
    let cx = Context::current_with_span(outer);
    {
        let _attached = cx.clone().attach();
        let request = json!({"model": "gpt-4o-mini", "input": "x"});
        let call = OpenAiCall::start("https://api.openai.com/v1/embeddings", request, &CaptureOptions::default());
        anosys::capture(call.finish(200, json!({"model": "gpt-4o-mini", "data": []})));
    }
    cx.span().end();
    // And with no span active, a record is a root.
    let lone = OpenAiCall::start("https://api.openai.com/v1/embeddings", json!({"model": "m"}), &CaptureOptions::default());
    anosys::capture(lone.finish(200, json!({"model": "m", "data": []})));
    assert!(anosys::flush(Some(Duration::from_secs(5))).completed);

    let records = stored(&s.db);
    let request = by_name(&records, "handle_request");
    let logged = records.iter().find(|r| r.kind == RecordKind::FunctionCall).unwrap();
    let receipt = by_name(&records, "render_receipt");
    let chat = by_name(&records, "chat gpt-4o-mini");
    assert_eq!(logged.trace_id, request.trace_id);
    assert_eq!(logged.parent_span_id, Some(request.span_id), "a logged function inside a tracing span");
    assert_eq!(receipt.parent_span_id, Some(logged.span_id), "an OTel span inside a logged function");
    assert_eq!(chat.parent_span_id, Some(receipt.span_id), "the innermost wins");
    assert_eq!(chat.trace_id, request.trace_id);

    let job = by_name(&records, "batch_job");
    let embeddings: Vec<_> = records.iter().filter(|r| r.name == "embeddings gpt-4o-mini").collect();
    assert_eq!(embeddings.len(), 1);
    assert_eq!(embeddings[0].parent_span_id, Some(job.span_id));
    assert_eq!(embeddings[0].trace_id, job.trace_id);
    let root = by_name(&records, "embeddings m");
    assert_eq!(root.parent_span_id, None);
    assert_ne!(root.trace_id, job.trace_id);
    s.provider.shutdown().unwrap();
}
