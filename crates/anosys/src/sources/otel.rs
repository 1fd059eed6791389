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

use super::span::{unix_nanos, FinishedSpan, Scope, SpanEvent, SpanLink, SpanStatus};
use crate::record::{Attributes, Record, Resource, SpanId, SpanKind, StatusCode, TraceId};

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

/// One span as a record (see the [module docs](self) for the mapping,
/// made by [`FinishedSpan::into_record_with`], shared with the Python and
/// Node exporters).
pub fn record_of(span: SpanData, resource: Option<Arc<Resource>>) -> Record {
    let cx = &span.span_context;
    let mut finished = FinishedSpan::new(
        span.name.into_owned(),
        TraceId(cx.trace_id().to_bytes()),
        SpanId(cx.span_id().to_bytes()),
        span.start_time,
        span.end_time,
    );
    finished.kind = kind(&span.span_kind);
    finished.parent_span_id =
        (span.parent_span_id != opentelemetry::trace::SpanId::INVALID).then(|| SpanId(span.parent_span_id.to_bytes()));
    finished.trace_flags = cx.trace_flags().to_u8();
    finished.trace_state = Some(cx.trace_state().header());
    finished.attributes = attributes(&span.attributes);
    finished.dropped_attributes_count = span.dropped_attributes_count;
    let scope = &span.instrumentation_scope;
    finished.scope = Some(Scope { name: scope.name().to_owned(), version: scope.version().map(|v| v.to_string()) });
    finished.events = span
        .events
        .iter()
        .map(|e| SpanEvent { name: e.name.to_string(), time_unix_nano: unix_nanos(e.timestamp), attributes: attributes(&e.attributes) })
        .collect();
    finished.links = span
        .links
        .iter()
        .map(|l| SpanLink {
            trace_id: TraceId(l.span_context.trace_id().to_bytes()),
            span_id: SpanId(l.span_context.span_id().to_bytes()),
            trace_state: Some(l.span_context.trace_state().header()),
            attributes: attributes(&l.attributes),
        })
        .collect();
    finished.status = match span.status {
        OtelStatus::Unset => SpanStatus::default(),
        OtelStatus::Ok => SpanStatus { code: StatusCode::Ok, description: None },
        OtelStatus::Error { description } => {
            SpanStatus { code: StatusCode::Error, description: Some(description.into_owned()) }
        }
    };
    finished.into_record_with(resource)
}
