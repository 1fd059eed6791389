//! Records as OpenTelemetry spans: [`span_data`] and [`resource`].
//!
//! An LLM or function record becomes a span with its real start and end
//! times, ids, parent, kind and status. Its attributes keep their
//! semantic-convention names (`gen_ai.*`, `code.*`, `error.type`); what the
//! conventions have no name for goes under `anosys.*`. Structured values
//! (messages, tool definitions, maps) are sent as JSON strings, as the GenAI
//! conventions ask for on spans; lists of one primitive type stay arrays. An
//! error also becomes an `exception` event.

use std::borrow::Cow;

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind as OtelKind, Status as OtelStatus, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value as OtelValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use serde_json::Value;

use crate::record::{Record, RecordKind, Resource, SpanKind, StatusCode};

/// The instrumentation scope of every span anosys exports.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("anosys").with_version(env!("CARGO_PKG_VERSION")).build()
}

/// A JSON value as an attribute value (`None` for null).
pub fn value(v: &Value) -> Option<OtelValue> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => OtelValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => OtelValue::I64(i),
            None => OtelValue::F64(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => OtelValue::String(s.clone().into()),
        Value::Array(items) => homogeneous_array(items).unwrap_or_else(|| OtelValue::String(v.to_string().into())),
        Value::Object(_) => OtelValue::String(v.to_string().into()),
    })
}

/// A list of strings, bools, integers or numbers as an OTel array; anything
/// mixed or nested is `None` (and is sent as JSON instead).
fn homogeneous_array(items: &[Value]) -> Option<OtelValue> {
    if items.is_empty() {
        return None;
    }
    if items.iter().all(Value::is_string) {
        let v: Vec<StringValue> = items.iter().filter_map(|i| i.as_str()).map(|s| s.to_owned().into()).collect();
        return Some(OtelValue::Array(Array::String(v)));
    }
    if items.iter().all(Value::is_boolean) {
        return Some(OtelValue::Array(Array::Bool(items.iter().filter_map(Value::as_bool).collect())));
    }
    if items.iter().all(|i| i.as_i64().is_some()) {
        return Some(OtelValue::Array(Array::I64(items.iter().filter_map(Value::as_i64).collect())));
    }
    if items.iter().all(Value::is_number) {
        return Some(OtelValue::Array(Array::F64(items.iter().filter_map(Value::as_f64).collect())));
    }
    None
}

fn json_string(v: &Value) -> OtelValue {
    match v {
        Value::String(s) => OtelValue::String(s.clone().into()),
        other => OtelValue::String(other.to_string().into()),
    }
}

fn kind(k: SpanKind) -> OtelKind {
    match k {
        SpanKind::Internal => OtelKind::Internal,
        SpanKind::Client => OtelKind::Client,
        SpanKind::Server => OtelKind::Server,
        SpanKind::Producer => OtelKind::Producer,
        SpanKind::Consumer => OtelKind::Consumer,
    }
}

/// The span for one record.
pub fn span_data(r: &Record, scope: &InstrumentationScope) -> SpanData {
    let trace_state = r.trace_state.as_deref().and_then(|s| s.parse::<TraceState>().ok()).unwrap_or_default();
    let context = SpanContext::new(
        TraceId::from_bytes(r.trace_id.0),
        SpanId::from_bytes(r.span_id.0),
        TraceFlags::new(r.trace_flags),
        false,
        trace_state,
    );
    let mut attributes: Vec<KeyValue> = Vec::with_capacity(r.attributes.len() + 8);
    let has = |k: &str| r.attributes.contains_key(k);
    for (k, v) in &r.attributes {
        if let Some(v) = value(v) {
            attributes.push(KeyValue::new(k.to_string(), v));
        }
    }
    for (k, v) in r.derived_attributes() {
        if let Some(v) = value(&v) {
            attributes.push(KeyValue::new(k, v));
        }
    }
    attributes.push(KeyValue::new("anosys.record.kind", r.kind.as_str()));
    if let Some(s) = &r.source {
        attributes.push(KeyValue::new("anosys.source", s.clone()));
    }
    // LLM records carry their content as gen_ai.input/output.messages
    // already; other records' inputs and outputs have no convention name.
    if r.kind != RecordKind::LlmCall {
        if let Some(i) = r.input() {
            attributes.push(KeyValue::new("anosys.input", json_string(&i)));
        }
        if let Some(o) = r.output() {
            attributes.push(KeyValue::new("anosys.output", json_string(&o)));
        }
    }
    if let Some(c) = &r.caller {
        if !has("code.function.name")
            && let Some(f) = &c.function
        {
            attributes.push(KeyValue::new("code.function.name", f.clone()));
        }
        if !has("code.file.path") {
            attributes.push(KeyValue::new("code.file.path", c.file.clone()));
        }
        if !has("code.line.number") {
            attributes.push(KeyValue::new("code.line.number", i64::from(c.line)));
        }
    }
    if let Some(u) = &r.user_context {
        attributes.push(KeyValue::new("anosys.user_context", json_string(u)));
    }
    let mut events: Vec<Event> = r
        .events
        .iter()
        .map(|e| {
            let attrs = e
                .attributes
                .iter()
                .filter_map(|(k, v)| value(v).map(|v| KeyValue::new(k.to_string(), v)))
                .collect();
            Event::new(e.name.clone(), e.time, attrs, 0)
        })
        .collect();
    if let Some(e) = &r.error {
        if !has("error.type") {
            attributes.push(KeyValue::new("error.type", e.error_type.clone()));
        }
        let mut attrs = vec![
            KeyValue::new("exception.type", e.error_type.clone()),
            KeyValue::new("exception.message", e.message.clone()),
        ];
        if let Some(stack) = &e.stack {
            attrs.push(KeyValue::new("exception.stacktrace", stack.clone()));
        }
        events.push(Event::new("exception", r.end_time, attrs, 0));
    }
    let status = match r.status.code {
        StatusCode::Unset => OtelStatus::Unset,
        StatusCode::Ok => OtelStatus::Ok,
        StatusCode::Error => OtelStatus::error(
            r.status.message.clone().or_else(|| r.error.as_ref().map(|e| e.message.clone())).unwrap_or_default(),
        ),
    };
    SpanData {
        span_context: context,
        parent_span_id: r.parent_span_id.map_or(SpanId::INVALID, |p| SpanId::from_bytes(p.0)),
        parent_span_is_remote: false,
        span_kind: kind(r.span_kind),
        name: Cow::Owned(r.name.clone()),
        start_time: r.start_time,
        end_time: r.end_time,
        attributes,
        dropped_attributes_count: 0,
        events: span_events(events),
        links: span_links(r),
        status,
        instrumentation_scope: scope.clone(),
    }
}

fn span_links(r: &Record) -> SpanLinks {
    let mut l = SpanLinks::default();
    l.links = r
        .links
        .iter()
        .map(|link| {
            let state = link.trace_state.as_deref().and_then(|s| s.parse::<TraceState>().ok()).unwrap_or_default();
            let cx = SpanContext::new(
                TraceId::from_bytes(link.trace_id.0),
                SpanId::from_bytes(link.span_id.0),
                TraceFlags::SAMPLED,
                false,
                state,
            );
            let attrs = link.attributes.iter().filter_map(|(k, v)| value(v).map(|v| KeyValue::new(k.to_string(), v))).collect();
            opentelemetry::trace::Link::new(cx, attrs, 0)
        })
        .collect();
    l
}

fn span_events(events: Vec<Event>) -> SpanEvents {
    let mut e = SpanEvents::default();
    e.events = events;
    e
}

/// An anosys resource as an OpenTelemetry one (no attribute added or
/// detected: the pipeline already filled in service and SDK names).
pub fn resource(r: &Resource) -> opentelemetry_sdk::Resource {
    let attrs: Vec<KeyValue> =
        r.attributes.iter().filter_map(|(k, v)| value(v).map(|v| KeyValue::new(k.to_string(), v))).collect();
    opentelemetry_sdk::Resource::builder_empty().with_attributes(attrs).build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_keep_their_types_and_structures_become_json() {
        assert_eq!(value(&json!("a")), Some(OtelValue::from("a")));
        assert_eq!(value(&json!(3)), Some(OtelValue::I64(3)));
        assert_eq!(value(&json!(0.5)), Some(OtelValue::F64(0.5)));
        assert_eq!(value(&json!(true)), Some(OtelValue::Bool(true)));
        assert_eq!(value(&Value::Null), None);
        assert_eq!(value(&json!(["stop", "length"])), Some(OtelValue::Array(Array::String(vec!["stop".into(), "length".into()]))));
        assert_eq!(value(&json!([1, 2])), Some(OtelValue::Array(Array::I64(vec![1, 2]))));
        assert_eq!(value(&json!([1, 2.5])), Some(OtelValue::Array(Array::F64(vec![1.0, 2.5]))));
        assert_eq!(value(&json!([{"role": "user"}])), Some(OtelValue::from("[{\"role\":\"user\"}]")));
        assert_eq!(value(&json!([1, "a"])), Some(OtelValue::from("[1,\"a\"]")));
        assert_eq!(value(&json!({"k": 1})), Some(OtelValue::from("{\"k\":1}")));
    }

    #[test]
    fn a_request_kept_once_gives_the_span_its_written_out_fields_give() {
        let request = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]});
        let call = crate::sources::openai::OpenAiCall::start(
            "https://api.openai.com/v1/chat/completions",
            request,
            &Default::default(),
        );
        let kept = call.finish(200, json!({"id": "c1", "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}]}));
        let mut expanded = kept.clone();
        expanded.expand_content();
        let attributes = |r: &Record| {
            let mut kv: Vec<(String, String)> = span_data(r, &scope())
                .attributes
                .into_iter()
                .map(|kv| (kv.key.to_string(), format!("{:?}", kv.value)))
                .collect();
            kv.sort();
            kv
        };
        let (a, b) = (attributes(&kept), attributes(&expanded));
        assert!(a.iter().any(|(k, v)| k == "gen_ai.input.messages" && v.contains("Hi")), "{a:?}");
        assert!(a.iter().any(|(k, _)| k == "gen_ai.tool.definitions"), "{a:?}");
        assert_eq!(a, b);
    }
}
