//! A finished span from any OpenTelemetry SDK, as plain data, and how it
//! becomes a [`Record`]: the one mapping behind the Rust exporter
//! ([`otel`](super) with the `otel` feature) and the Python and Node
//! exporters, which hand their SDK's spans over as JSON in this shape (so
//! they need no Rust OpenTelemetry crates).
//!
//! How a span maps: its name, trace and span ids, parent, start and end
//! times, kind, status (an `ERROR` status with an `exception` event also
//! fills the record's error type, message and stack), events, links,
//! attributes, the instrumentation scope (as the record's `source` and
//! `otel.scope.name`/`otel.scope.version`) and the resource. A span
//! carrying `gen_ai.operation.name` (from a GenAI instrumentation, such as
//! OpenTelemetry's or OpenInference's OpenAI instrumentation) becomes an
//! LLM-call record, the others span records.
//!
//! ```
//! use anosys::sources::span::FinishedSpan;
//! use anosys::RecordKind;
//!
//! let span: FinishedSpan = serde_json::from_value(serde_json::json!({
//!     "name": "chat gpt-4o-mini",
//!     "kind": "CLIENT",
//!     "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
//!     "span_id": "00f067aa0ba902b7",
//!     "parent_span_id": "53995c3f42cd8ad8",
//!     "start_time_unix_nano": 1_700_000_000_000_000_000u64,
//!     "end_time_unix_nano": 1_700_000_001_500_000_000u64,
//!     "attributes": {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12},
//!     "status": {"code": "OK"},
//!     "scope": {"name": "opentelemetry.instrumentation.openai_v2", "version": "2.1b0"},
//! }))?;
//! let record = span.into_record();
//! assert_eq!(record.kind, RecordKind::LlmCall);
//! assert_eq!(record.duration().as_millis(), 1500);
//! assert_eq!(record.source.as_deref(), Some("opentelemetry.instrumentation.openai_v2"));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::Value;

use crate::record::{
    Attributes, ErrorInfo, Event, Link, Record, RecordKind, Resource, SpanId, SpanKind, Status, StatusCode, TraceId,
};

/// A finished span. Times are nanoseconds since the Unix epoch, as
/// OpenTelemetry keeps them; attribute values are JSON (OpenTelemetry's
/// strings, numbers, booleans and arrays of them).
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct FinishedSpan {
    /// The span's name.
    pub name: String,
    /// Its kind (`INTERNAL` when not given).
    #[serde(default)]
    pub kind: SpanKind,
    /// Its trace.
    pub trace_id: TraceId,
    /// The span itself.
    pub span_id: SpanId,
    /// Its parent, when it has one.
    #[serde(default)]
    pub parent_span_id: Option<SpanId>,
    /// W3C trace flags (bit 0: sampled).
    #[serde(default = "sampled")]
    pub trace_flags: u8,
    /// W3C `tracestate`, when there is one.
    #[serde(default)]
    pub trace_state: Option<String>,
    /// When it started.
    #[serde(deserialize_with = "nanos")]
    pub start_time_unix_nano: u64,
    /// When it ended (its start, if earlier).
    #[serde(deserialize_with = "nanos")]
    pub end_time_unix_nano: u64,
    /// Its attributes.
    #[serde(default)]
    pub attributes: Attributes,
    /// Attributes the SDK dropped (over its limits).
    #[serde(default)]
    pub dropped_attributes_count: u32,
    /// Its events.
    #[serde(default)]
    pub events: Vec<SpanEvent>,
    /// Its links.
    #[serde(default)]
    pub links: Vec<SpanLink>,
    /// Its status.
    #[serde(default)]
    pub status: SpanStatus,
    /// The instrumentation scope that made it.
    #[serde(default)]
    pub scope: Option<Scope>,
    /// The resource of the process that made it, when the SDK says.
    #[serde(default)]
    pub resource: Option<Attributes>,
}

fn sampled() -> u8 {
    1
}

/// Nanoseconds as a number or, as OTLP/JSON writes 64-bit integers (and
/// JavaScript must, past 2^53), a decimal string.
fn nanos<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Nanos {
        Number(u64),
        Text(String),
    }
    match Nanos::deserialize(d)? {
        Nanos::Number(n) => Ok(n),
        Nanos::Text(t) => {
            t.trim().parse().map_err(|_| serde::de::Error::custom(format!("{t:?} is not a time in nanoseconds")))
        }
    }
}

/// A span event.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct SpanEvent {
    /// Its name (`exception` for a recorded exception).
    pub name: String,
    /// When it happened, nanoseconds since the Unix epoch.
    #[serde(deserialize_with = "nanos")]
    pub time_unix_nano: u64,
    /// Its attributes.
    #[serde(default)]
    pub attributes: Attributes,
}

/// A link to another span.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct SpanLink {
    /// The linked span's trace.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
    /// Its `tracestate`, if any.
    #[serde(default)]
    pub trace_state: Option<String>,
    /// The link's attributes.
    #[serde(default)]
    pub attributes: Attributes,
}

/// A span's status.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct SpanStatus {
    /// `UNSET`, `OK` or `ERROR`.
    #[serde(default)]
    pub code: StatusCode,
    /// What went wrong, for `ERROR`.
    #[serde(default)]
    pub description: Option<String>,
}

/// An instrumentation scope: the library that made a span.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct Scope {
    /// Its name.
    pub name: String,
    /// Its version.
    #[serde(default)]
    pub version: Option<String>,
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// Nanoseconds since the Unix epoch (0 before it, saturating far after).
pub(crate) fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl FinishedSpan {
    /// A span with no attributes, events or links: fill in the rest
    /// field by field.
    pub fn new(
        name: impl Into<String>,
        trace_id: TraceId,
        span_id: SpanId,
        start: SystemTime,
        end: SystemTime,
    ) -> Self {
        FinishedSpan {
            name: name.into(),
            kind: SpanKind::Internal,
            trace_id,
            span_id,
            parent_span_id: None,
            trace_flags: 1,
            trace_state: None,
            start_time_unix_nano: unix_nanos(start),
            end_time_unix_nano: unix_nanos(end),
            attributes: Attributes::default(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            links: Vec::new(),
            status: SpanStatus::default(),
            scope: None,
            resource: None,
        }
    }

    /// The record of this span (see the [module docs](self)). The span's
    /// resource, if it has one, is the record's.
    pub fn into_record(self) -> Record {
        let resource = self.resource.clone().map(|attributes| Arc::new(Resource { attributes }));
        self.into_record_with(resource)
    }

    /// The record of this span, with `resource` as its resource (the
    /// exporter's, shared by its spans) instead of the span's own.
    pub fn into_record_with(self, resource: Option<Arc<Resource>>) -> Record {
        let is_llm = self.attributes.contains_key("gen_ai.operation.name");
        let mut r = Record::new(if is_llm { RecordKind::LlmCall } else { RecordKind::Span }, self.name);
        r.span_kind = self.kind;
        r.start_time = time(self.start_time_unix_nano);
        r.end_time = time(self.end_time_unix_nano.max(self.start_time_unix_nano));
        r.trace_id = self.trace_id;
        r.span_id = self.span_id;
        r.parent_span_id = self.parent_span_id;
        r.trace_flags = self.trace_flags;
        r.trace_state = self.trace_state.filter(|s| !s.is_empty());
        r.attributes = self.attributes;
        if let Some(scope) = self.scope.filter(|s| !s.name.is_empty()) {
            r.source = Some(scope.name.clone());
            r.attributes.insert("otel.scope.name".into(), Value::String(scope.name));
            if let Some(v) = scope.version {
                r.attributes.insert("otel.scope.version".into(), Value::String(v));
            }
        }
        if self.dropped_attributes_count > 0 {
            r.attributes.insert("otel.dropped_attributes_count".into(), Value::from(self.dropped_attributes_count));
        }
        r.events = self
            .events
            .into_iter()
            .map(|e| Event { name: e.name, time: time(e.time_unix_nano), attributes: e.attributes })
            .collect();
        r.links = self
            .links
            .into_iter()
            .map(|l| Link {
                trace_id: l.trace_id,
                span_id: l.span_id,
                trace_state: l.trace_state.filter(|s| !s.is_empty()),
                attributes: l.attributes,
            })
            .collect();
        r.status = match self.status.code {
            StatusCode::Unset => Status::default(),
            StatusCode::Ok => Status::ok(),
            StatusCode::Error => {
                Status { code: StatusCode::Error, message: self.status.description.filter(|d| !d.is_empty()) }
            }
        };
        if r.status.code == StatusCode::Error {
            r.error = Some(error_of(&r));
        }
        r.resource = resource;
        r
    }
}

/// The records of spans given as JSON (the Python and Node exporters hand
/// their SDK's spans over this way), for the caller to capture. A span
/// that does not fit [`FinishedSpan`] is left out, and said once.
///
/// ```
/// let spans = vec![serde_json::json!({
///     "name": "work", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
///     "start_time_unix_nano": "1700000000000000000", "end_time_unix_nano": 1_700_000_000_100_000_000u64,
/// }), serde_json::json!({"name": "no ids"})];
/// let records = anosys::sources::span::records_from_json(spans);
/// assert_eq!(records.len(), 1);
/// assert_eq!(records[0].duration().as_millis(), 100);
/// ```
pub fn records_from_json(spans: Vec<Value>) -> Vec<Record> {
    spans
        .into_iter()
        .filter_map(|span| match serde_json::from_value::<FinishedSpan>(span) {
            Ok(span) => Some(span.into_record()),
            Err(e) => {
                crate::diag::once("span-json", crate::diag::LogLevel::Warn, || {
                    format!("a span handed to anosys could not be read and is left out: {e}")
                });
                None
            }
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_failed_span_from_json_keeps_everything() {
        let span: FinishedSpan = serde_json::from_value(json!({
            "name": "charge card",
            "kind": "SERVER",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "00f067aa0ba902b7",
            "trace_flags": 0,
            "trace_state": "vendor=1",
            "start_time_unix_nano": 1_700_000_000_000_000_000u64,
            "end_time_unix_nano": 1_699_999_999_000_000_000u64,
            "attributes": {"http.route": "/pay", "retries": 2, "ok": false, "tags": ["a", "b"]},
            "dropped_attributes_count": 3,
            "events": [{"name": "exception", "time_unix_nano": 1_700_000_000_500_000_000u64,
                        "attributes": {"exception.type": "CardDeclined", "exception.message": "declined",
                                       "exception.stacktrace": "Traceback ..."}}],
            "links": [{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
                       "attributes": {"why": "batch"}}],
            "status": {"code": "ERROR", "description": "payment failed"},
            "scope": {"name": "billing"},
            "resource": {"service.name": "shop"},
        }))
        .unwrap();
        let r = span.into_record();
        assert_eq!((r.kind, r.span_kind), (RecordKind::Span, SpanKind::Server));
        assert_eq!(r.end_time, r.start_time, "an end before the start is the start");
        assert_eq!((r.trace_flags, r.trace_state.as_deref()), (0, Some("vendor=1")));
        assert_eq!(r.parent_span_id, None);
        assert_eq!(r.attribute("tags"), Some(&json!(["a", "b"])));
        assert_eq!(r.attribute("otel.dropped_attributes_count"), Some(&json!(3)));
        assert_eq!(r.attribute("otel.scope.name"), Some(&json!("billing")));
        assert_eq!(r.attribute("otel.scope.version"), None);
        assert_eq!(r.source.as_deref(), Some("billing"));
        assert_eq!(r.events[0].attributes["exception.type"], "CardDeclined");
        assert_eq!(r.links[0].span_id.to_string(), "b7ad6b7169203331");
        assert_eq!(r.status, Status::error("payment failed"));
        let e = r.error.as_ref().unwrap();
        assert_eq!(
            (e.error_type.as_str(), e.message.as_str(), e.stack.as_deref()),
            ("CardDeclined", "declined", Some("Traceback ..."))
        );
        assert_eq!(r.resource.as_ref().unwrap().service_name(), Some("shop"));
    }

    #[test]
    fn times_may_be_decimal_strings_as_in_otlp_json() {
        let span: FinishedSpan = serde_json::from_value(json!({
            "name": "x", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
            "start_time_unix_nano": "1700000000000000001", "end_time_unix_nano": 1_700_000_000_000_000_002u64,
            "events": [{"name": "e", "time_unix_nano": "1700000000000000003"}],
        }))
        .unwrap();
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_001);
        assert_eq!(span.events[0].time_unix_nano, 1_700_000_000_000_000_003);
        let bad = json!({"name": "x", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7",
                         "start_time_unix_nano": "soon", "end_time_unix_nano": 0});
        assert!(serde_json::from_value::<FinishedSpan>(bad).is_err());
    }

    #[test]
    fn bad_ids_are_refused() {
        let bad = json!({"name": "x", "trace_id": "00000000000000000000000000000000", "span_id": "00f067aa0ba902b7",
                         "start_time_unix_nano": 0, "end_time_unix_nano": 0});
        assert!(serde_json::from_value::<FinishedSpan>(bad).is_err());
    }
}
