//! OpenTelemetry intake: any OpenTelemetry span, from any instrumented Rust
//! code (and from `tracing`, through tracing-opentelemetry), becomes a
//! [`Record`] in the anosys pipeline, and from there goes on to AnoSys
//! (with the AnoSys column mapping), the local store, or OTLP. This is the
//! seed SDK's "all OpenTelemetry traces" behaviour. Enable the `otel`
//! feature.
//!
//! Plug [`AnosysSpanExporter`] into an `opentelemetry_sdk` tracer provider,
//! as any exporter:
//!
//! ```
//! use anosys::sources::otel::AnosysSpanExporter;
//! use opentelemetry::trace::{Tracer, TracerProvider as _};
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//!
//! # let dir = std::env::temp_dir().join(format!("anosys-otel-doc-{}", std::process::id()));
//! # let _guard = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
//! let provider = SdkTracerProvider::builder().with_simple_exporter(AnosysSpanExporter::new()).build();
//! provider.tracer("checkout").in_span("charge card", |_cx| {
//!     // ... records made here (an OpenAI call, a logged function) are
//!     // children of this span
//! });
//! provider.shutdown().unwrap(); // delivers what the pipeline holds
//! ```
//!
//! How a span maps: its name, trace and span ids, parent, start and end
//! times, kind, status (an `ERROR` status with an `exception` event also
//! fills the record's error type, message and stack), events, links,
//! attributes (OpenTelemetry values as JSON), the instrumentation scope (as
//! the record's `source` and `otel.scope.name`/`otel.scope.version`) and
//! the provider's resource. A span carrying `gen_ai.operation.name` (from
//! another GenAI instrumentation) becomes an LLM-call record, the others
//! span records.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{SpanKind as OtelKind, Status as OtelStatus};
use opentelemetry::{Array, KeyValue, Value as OtelValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use serde_json::{Number, Value};

use crate::record::{Attributes, ErrorInfo, Event, Link, Record, RecordKind, Resource, SpanId, SpanKind, Status, StatusCode, TraceId};

/// An `opentelemetry_sdk` span exporter that captures every span into the
/// global anosys pipeline. See the [module docs](self).
#[derive(Debug, Default)]
pub struct AnosysSpanExporter {
    resource: Option<Arc<Resource>>,
}

impl AnosysSpanExporter {
    /// An exporter into the global pipeline (started from the environment
    /// on first use, or by [`crate::init_with`]).
    pub fn new() -> Self {
        AnosysSpanExporter::default()
    }
}

impl SpanExporter for AnosysSpanExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        for span in batch {
            // A full queue is counted as a drop by the pipeline; the
            // application's tracing never sees an error from anosys.
            crate::capture(record_of(span, self.resource.clone()));
        }
        std::future::ready(Ok(()))
    }

    fn force_flush(&self) -> OTelSdkResult {
        crate::flush(None);
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        crate::flush(Some(timeout));
        Ok(())
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        let mut r = Resource::default();
        for (k, v) in resource.iter() {
            r.attributes.insert(k.as_str().to_owned().into(), json(v));
        }
        self.resource = Some(Arc::new(r));
    }
}

/// An OpenTelemetry attribute value as JSON.
pub fn json(value: &OtelValue) -> Value {
    fn num(f: f64) -> Value {
        Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
    }
    match value {
        OtelValue::Bool(b) => Value::Bool(*b),
        OtelValue::I64(i) => Value::from(*i),
        OtelValue::F64(f) => num(*f),
        OtelValue::String(s) => Value::String(s.as_str().to_owned()),
        OtelValue::Array(Array::Bool(v)) => Value::Array(v.iter().map(|b| Value::Bool(*b)).collect()),
        OtelValue::Array(Array::I64(v)) => Value::Array(v.iter().map(|i| Value::from(*i)).collect()),
        OtelValue::Array(Array::F64(v)) => Value::Array(v.iter().map(|f| num(*f)).collect()),
        OtelValue::Array(Array::String(v)) => Value::Array(v.iter().map(|s| Value::String(s.as_str().to_owned())).collect()),
        // Kinds added to OpenTelemetry after this was written.
        other => Value::String(other.to_string()),
    }
}

fn attributes<'a>(kvs: impl IntoIterator<Item = &'a KeyValue>) -> Attributes {
    kvs.into_iter().map(|kv| (kv.key.as_str().to_owned().into(), json(&kv.value))).collect()
}

fn kind(k: &OtelKind) -> SpanKind {
    match k {
        OtelKind::Client => SpanKind::Client,
        OtelKind::Server => SpanKind::Server,
        OtelKind::Producer => SpanKind::Producer,
        OtelKind::Consumer => SpanKind::Consumer,
        OtelKind::Internal => SpanKind::Internal,
    }
}

/// One span as a record (see the [module docs](self) for the mapping).
pub fn record_of(span: SpanData, resource: Option<Arc<Resource>>) -> Record {
    let attrs = attributes(&span.attributes);
    let is_llm = attrs.contains_key("gen_ai.operation.name");
    let mut r = Record::new(if is_llm { RecordKind::LlmCall } else { RecordKind::Span }, span.name.into_owned());
    r.span_kind = kind(&span.span_kind);
    r.start_time = span.start_time;
    r.end_time = span.end_time.max(span.start_time);
    let cx = &span.span_context;
    r.trace_id = TraceId(cx.trace_id().to_bytes());
    r.span_id = SpanId(cx.span_id().to_bytes());
    r.parent_span_id = (span.parent_span_id != opentelemetry::trace::SpanId::INVALID).then(|| SpanId(span.parent_span_id.to_bytes()));
    r.trace_flags = cx.trace_flags().to_u8();
    let state = cx.trace_state().header();
    r.trace_state = (!state.is_empty()).then_some(state);
    r.attributes = attrs;
    let scope = &span.instrumentation_scope;
    if !scope.name().is_empty() {
        r.source = Some(scope.name().to_owned());
        r.attributes.insert("otel.scope.name".into(), Value::String(scope.name().to_owned()));
    }
    if let Some(v) = scope.version() {
        r.attributes.insert("otel.scope.version".into(), Value::String(v.to_string()));
    }
    if span.dropped_attributes_count > 0 {
        r.attributes.insert("otel.dropped_attributes_count".into(), Value::from(span.dropped_attributes_count));
    }
    r.events = span
        .events
        .iter()
        .map(|e| Event { name: e.name.to_string(), time: e.timestamp, attributes: attributes(&e.attributes) })
        .collect();
    r.links = span
        .links
        .iter()
        .map(|l| {
            let state = l.span_context.trace_state().header();
            Link {
                trace_id: TraceId(l.span_context.trace_id().to_bytes()),
                span_id: SpanId(l.span_context.span_id().to_bytes()),
                trace_state: (!state.is_empty()).then_some(state),
                attributes: attributes(&l.attributes),
            }
        })
        .collect();
    r.status = match span.status {
        OtelStatus::Unset => Status::default(),
        OtelStatus::Ok => Status::ok(),
        OtelStatus::Error { description } => {
            Status { code: StatusCode::Error, message: (!description.is_empty()).then(|| description.into_owned()) }
        }
    };
    if r.status.code == StatusCode::Error {
        r.error = Some(error_of(&r));
    }
    r.resource = resource;
    r
}

/// The failure of an `ERROR` span: its `exception` event if it has one,
/// else `error.type` and the status description.
fn error_of(r: &Record) -> ErrorInfo {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let exception = r.events.iter().rev().find(|e| e.name == "exception");
    let attr = |k: &str| exception.and_then(|e| e.attributes.get(k));
    ErrorInfo {
        error_type: text(attr("exception.type"))
            .or_else(|| text(r.attributes.get("error.type")))
            .unwrap_or_else(|| "error".to_owned()),
        message: text(attr("exception.message")).or_else(|| r.status.message.clone()).unwrap_or_default(),
        stack: text(attr("exception.stacktrace")),
    }
}
