//! Record → one flat AnoSys JSON object.
//!
//! Known keys go to the fixed columns of [`mapping`];
//! unknown keys get dynamic `cvs`/`cvn`/`cvb` slots from the process-wide
//! [`SlotRegistry`]; the full mapping, taken after this record's slots were
//! assigned, travels in `otel_schema_url`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::mapping::{self, ColumnType};
use crate::config::StartingIndices;
use crate::diag::{self, LogLevel};
use crate::record::time::{epoch_millis, to_iso};
use crate::record::{Record, Resource, StatusCode};

/// The type family of a dynamic slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotType {
    /// `cvs`: strings, lists and maps.
    String,
    /// `cvn`: integers and floats.
    Number,
    /// `cvb`: booleans.
    Bool,
}

impl SlotType {
    fn of(value: &Value) -> SlotType {
        match value {
            Value::Bool(_) => SlotType::Bool,
            Value::Number(_) => SlotType::Number,
            _ => SlotType::String,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            SlotType::String => "cvs",
            SlotType::Number => "cvn",
            SlotType::Bool => "cvb",
        }
    }

    fn max(self) -> u32 {
        match self {
            SlotType::String => mapping::MAX_STRING_SLOT,
            SlotType::Number => mapping::MAX_NUMBER_SLOT,
            SlotType::Bool => mapping::MAX_BOOL_SLOT,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug)]
struct RegistryState {
    /// key → assigned slot (dynamic keys only; bounded by the slot count,
    /// so a fast non-keyed hash is safe).
    assigned: mapping::FastMap<String, Arc<str>>,
    /// insertion order of `assigned`, for a stable mapping document.
    order: Vec<(String, Arc<str>)>,
    used: HashSet<Arc<str>>,
    next: [u32; 3],
    /// The whole mapping as a JSON string literal (quoted and escaped,
    /// ready to splice into a body), rebuilt only when it changes.
    mapping_json: Option<Arc<str>>,
    /// The same literal followed by the body's closing brace: the end of
    /// every body (see [`Encoder::encode_wire`]), rebuilt with it.
    mapping_tail: Option<Arc<str>>,
}

/// The process-wide registry of dynamic slots: a key keeps its slot for the
/// life of the process and two keys never share one.
///
/// ```
/// use anosys::sinks::anosys::{SlotRegistry, SlotType};
/// let registry = SlotRegistry::new();
/// let a = registry.slot_for("customer.tier", SlotType::String).unwrap();
/// let b = registry.slot_for("order.total", SlotType::Number).unwrap();
/// assert_eq!(&*a, "cvs100");
/// assert_eq!(&*b, "cvn4"); // cvn3 is server.port's
/// assert_eq!(registry.slot_for("customer.tier", SlotType::String), Some(a));
/// ```
#[derive(Debug)]
pub struct SlotRegistry {
    state: Mutex<RegistryState>,
}

impl Default for SlotRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl SlotRegistry {
    /// An empty registry with the default starting indices.
    pub fn new() -> Self {
        Self::with_starting_indices(StartingIndices::default())
    }

    /// An empty registry whose dynamic slots start at `indices` (the
    /// original SDK's `starting_indices`; each AnoSys sink has its own).
    ///
    /// ```
    /// use anosys::sinks::anosys::{SlotRegistry, SlotType};
    /// let registry = SlotRegistry::with_starting_indices(anosys::StartingIndices { string: 150, number: 3, boolean: 1 });
    /// assert_eq!(&*registry.slot_for("customer.tier", SlotType::String).unwrap(), "cvs150");
    /// ```
    pub fn with_starting_indices(indices: StartingIndices) -> Self {
        let d = indices;
        SlotRegistry {
            state: Mutex::new(RegistryState {
                assigned: mapping::FastMap::default(),
                order: Vec::new(),
                used: HashSet::new(),
                next: [d.string.max(1), d.number.max(1), d.boolean.max(1)],
                mapping_json: None,
                mapping_tail: None,
            }),
        }
    }

    /// The registry of this process for `indices`: AnoSys sinks with the
    /// same starting indices share one, so a key has one slot and a slot
    /// one key in everything the process sends; sinks with other indices
    /// have their own, so one pipeline's settings never move another's
    /// columns.
    pub fn shared(indices: StartingIndices) -> Arc<SlotRegistry> {
        static SHARED: Mutex<Vec<(StartingIndices, Arc<SlotRegistry>)>> = Mutex::new(Vec::new());
        let mut all = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, registry)) = all.iter().find(|(i, _)| *i == indices) {
            return registry.clone();
        }
        let registry = Arc::new(SlotRegistry::with_starting_indices(indices));
        all.push((indices, registry.clone()));
        registry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where new keys start (the seed's `starting_indices`). Keys already
    /// assigned keep their slots; reserved and used slots are still skipped.
    pub fn set_starting_indices(&self, indices: StartingIndices) {
        let mut s = self.lock();
        s.next = [indices.string.max(1), indices.number.max(1), indices.boolean.max(1)];
    }

    /// The slot of `key`, assigning the next free one of `ty` on first use;
    /// `None` when that type's slots have run out.
    pub fn slot_for(&self, key: &str, ty: SlotType) -> Option<Arc<str>> {
        Self::assign(&mut self.lock(), key, ty)
    }

    fn assign(s: &mut RegistryState, key: &str, ty: SlotType) -> Option<Arc<str>> {
        if let Some(slot) = s.assigned.get(key) {
            return Some(slot.clone());
        }
        let i = ty.index();
        while s.next[i] <= ty.max() {
            let candidate = format!("{}{}", ty.prefix(), s.next[i]);
            s.next[i] += 1;
            if mapping::is_reserved_slot(&candidate) || s.used.contains(candidate.as_str()) {
                continue;
            }
            let slot: Arc<str> = candidate.into();
            s.used.insert(slot.clone());
            s.assigned.insert(key.to_owned(), slot.clone());
            s.order.push((key.to_owned(), slot.clone()));
            s.mapping_json = None;
            s.mapping_tail = None;
            return Some(slot);
        }
        None
    }

    fn mapping_json(s: &mut RegistryState) -> Arc<str> {
        if let Some(json) = &s.mapping_json {
            return json.clone();
        }
        let mut map = Map::new();
        for (k, c) in mapping::FIXED_SLOTS {
            map.insert((*k).to_owned(), Value::String((*c).to_owned()));
        }
        for (k, c) in &s.order {
            map.insert(k.clone(), Value::String(c.to_string()));
        }
        let literal = Value::String(Value::Object(map).to_string()).to_string();
        let literal: Arc<str> = literal.into();
        s.mapping_json = Some(literal.clone());
        literal
    }

    /// The mapping literal and the body's closing brace, cached: the same
    /// `Arc` until a slot is assigned.
    fn mapping_tail(s: &mut RegistryState) -> Arc<str> {
        if let Some(tail) = &s.mapping_tail {
            return tail.clone();
        }
        let tail: Arc<str> = format!("{}}}", Self::mapping_json(s)).into();
        s.mapping_tail = Some(tail.clone());
        tail
    }

    /// The whole mapping (fixed and dynamic) as a JSON object, as sent in
    /// `otel_schema_url`.
    pub fn mapping_document(&self) -> String {
        let literal = Self::mapping_json(&mut self.lock());
        serde_json::from_str::<String>(&literal).unwrap_or_default()
    }
}

/// Attribute keys whose content already has a column of its own and is not
/// repeated in the `attributes` (cvs18) summary.
const CONTENT_KEYS: &[&str] = &[
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "llm_input",
    "llm_output",
    "llm_input_messages",
    "llm_output_messages",
    "raw",
];

/// JSON text of a value: strings as they are, everything else serialised.
/// A record's stable id, `<trace id>-<span id>`: the `anosys_record_id`
/// column, the same on every delivery of the record.
///
/// ```
/// let record = anosys::Record::new(anosys::RecordKind::Raw, "r");
/// let id = anosys::sinks::anosys::encode::record_id(&record);
/// assert_eq!(id, format!("{}-{}", record.trace_id, record.span_id));
/// ```
pub fn record_id(record: &Record) -> String {
    format!("{}-{}", record.trace_id, record.span_id)
}

pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        // Straight into a byte buffer: `Display` goes through a formatter
        // adapter, several times slower for large values.
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Coerces `value` to `column`'s type; `None` when it cannot be without
/// losing it (it then goes to the overflow column).
fn coerce(column: &str, value: &Value) -> Option<Value> {
    match mapping::column_type(column) {
        ColumnType::Text | ColumnType::Json | ColumnType::Timestamp => Some(Value::String(text_of(value))),
        ColumnType::Number => match value {
            Value::Number(_) => Some(value.clone()),
            Value::String(s) => {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Some(Value::from(i))
                } else {
                    t.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::from)
                }
            }
            _ => None,
        },
        ColumnType::Boolean => match value {
            Value::Bool(_) => Some(value.clone()),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(Value::Bool(true)),
                "false" | "0" | "no" => Some(Value::Bool(false)),
                _ => None,
            },
            Value::Number(n) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
                Some(Value::Bool(n.as_u64() == Some(1)))
            }
            _ => None,
        },
    }
}

/// Builds AnoSys objects from records.
#[derive(Debug, Clone, Copy)]
pub struct Encoder<'r> {
    registry: &'r SlotRegistry,
}

struct Out {
    map: Map<String, Value>,
    overflow: Map<String, Value>,
}

impl Out {
    /// Puts `value` into `column`, or into the overflow object under `key`
    /// when the column is taken or the value does not fit its type.
    fn put(&mut self, key: &str, column: Option<&str>, value: &Value) {
        if value.is_null() {
            return;
        }
        match column {
            Some(column) => match (coerce(column, value), self.map.get(column)) {
                (Some(v), None) => {
                    self.map.insert(column.to_owned(), v);
                }
                // The same value is already in its column (an alias key).
                (Some(v), Some(existing)) if *existing == v => {}
                _ => {
                    self.overflow.insert(key.to_owned(), value.clone());
                }
            },
            _ => {
                self.overflow.insert(key.to_owned(), value.clone());
            }
        }
    }

    /// Puts a value built for this record into `key`'s fixed column; text
    /// going to a text column is moved in, not copied.
    fn fixed(&mut self, key: &str, value: Value) {
        let column = mapping::fixed_column(key);
        if let (Some(column), Value::String(_)) = (column, &value) {
            let text = matches!(mapping::column_type(column), ColumnType::Text | ColumnType::Json | ColumnType::Timestamp);
            if text && !self.map.contains_key(column) {
                self.map.insert(column.to_owned(), value);
                return;
            }
        }
        self.put(key, column, &value);
    }

    /// Puts a value of the record's own into `key`'s fixed column (coerced
    /// from the reference: a large input or output is serialised once, never
    /// cloned first).
    fn fixed_ref(&mut self, key: &str, value: &Value) {
        self.put(key, mapping::fixed_column(key), value);
    }
}

impl<'r> Encoder<'r> {
    /// An encoder assigning dynamic slots from `registry`.
    pub fn with_registry(registry: &'r SlotRegistry) -> Self {
        Encoder { registry }
    }

    /// The flat AnoSys object for `record`. `resource` stands in when the
    /// record has none; `observed` is when the pipeline took the record.
    pub fn encode(&self, record: &Record, resource: &Resource, observed: SystemTime) -> Map<String, Value> {
        let (mut map, tail) = self.encode_parts(record, resource, observed);
        let literal = tail.strip_suffix('}').unwrap_or(&tail);
        let mapping = serde_json::from_str::<String>(literal).unwrap_or_default();
        map.insert("otel_schema_url".to_owned(), Value::String(mapping));
        map
    }

    /// The request body for `record`: the same object as
    /// [`encode`](Self::encode), serialised, with the cached mapping spliced
    /// in rather than escaped again for every record.
    pub fn encode_to_vec(&self, record: &Record, resource: &Resource, observed: SystemTime) -> Vec<u8> {
        let (mut body, tail) = self.encode_wire(record, resource, observed);
        if body.is_empty() {
            return body;
        }
        body.extend_from_slice(tail.as_bytes());
        body
    }

    /// The request body for `record` in two parts, the body being `head`
    /// followed by `tail`: `head` is the record's own (everything up to
    /// `"otel_schema_url":`), `tail` the mapping and the closing brace,
    /// shared by every body encoded until the next slot is assigned (the
    /// same `Arc`). The outbox keeps a body this way, the tail once.
    /// `head` is empty if the object could not be serialised (never
    /// expected).
    ///
    /// ```
    /// use anosys::sinks::anosys::{Encoder, SlotRegistry};
    /// let registry = SlotRegistry::new();
    /// let encoder = Encoder::with_registry(&registry);
    /// let record = anosys::Record::new(anosys::RecordKind::Raw, "r");
    /// let now = std::time::SystemTime::now();
    /// let (mut head, tail) = encoder.encode_wire(&record, &anosys::Resource::default(), now);
    /// head.extend_from_slice(tail.as_bytes());
    /// let body: serde_json::Value = serde_json::from_slice(&head)?;
    /// assert_eq!(body["otel_schema_url"].as_str(), Some(registry.mapping_document().as_str()));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn encode_wire(&self, record: &Record, resource: &Resource, observed: SystemTime) -> (Vec<u8>, Arc<str>) {
        let (map, tail) = self.encode_parts(record, resource, observed);
        let mut body = Vec::with_capacity(1024 + tail.len());
        if serde_json::to_writer(&mut body, &map).is_err() || body.last() != Some(&b'}') {
            return (Vec::new(), tail);
        }
        body.pop();
        if map.is_empty() {
            body.extend_from_slice(b"\"otel_schema_url\":");
        } else {
            body.extend_from_slice(b",\"otel_schema_url\":");
        }
        (body, tail)
    }

    /// The object without `otel_schema_url`, and the mapping as an escaped
    /// JSON string literal followed by `}` (the body's tail).
    fn encode_parts(&self, record: &Record, resource: &Resource, observed: SystemTime) -> (Map<String, Value>, Arc<str>) {
        let resource = record.resource.as_deref().unwrap_or(resource);
        let mut out = Out { map: Map::new(), overflow: Map::new() };

        out.fixed("name", Value::String(record.name.clone()));
        out.fixed("trace_id", Value::String(record.trace_id.to_string()));
        out.fixed("span_id", Value::String(record.span_id.to_string()));
        out.fixed("anosys.record_id", Value::String(record_id(record)));
        if let Some(parent) = record.parent_span_id {
            out.fixed("parent_id", Value::String(parent.to_string()));
        }
        out.fixed("trace_state", Value::String(format!("{:02x}", record.trace_flags)));
        out.fixed("start_time", Value::String(to_iso(record.start_time)));
        out.fixed("end_time", Value::String(to_iso(record.end_time)));
        out.fixed("cvn1", Value::from(epoch_millis(record.start_time)));
        out.fixed("cvn2", Value::from(epoch_millis(record.end_time)));
        out.fixed("otel_duration_ms", Value::from(record.duration().as_secs_f64() * 1000.0));
        out.fixed("kind", Value::String(record.span_kind.as_str().to_owned()));
        let mut status = Map::new();
        status.insert("status_code".into(), Value::String(record.status.code.as_str().into()));
        if let Some(m) = &record.status.message {
            status.insert("description".into(), Value::String(m.clone()));
        }
        out.fixed("status", Value::Object(status));
        out.fixed("status_code", Value::String(record.status.code.as_str().to_owned()));
        let status_message = match (&record.status.code, &record.status.message) {
            (StatusCode::Error, Some(m)) => Some(Value::String(m.clone())),
            _ => record.attribute("gen_ai.response.id").cloned(),
        };
        if let Some(m) = status_message {
            out.fixed("resp_id", m);
        }
        if !record.events.is_empty() {
            out.fixed("events", serde_json::to_value(&record.events).unwrap_or(Value::Null));
        }
        if !record.links.is_empty() {
            out.fixed("links", serde_json::to_value(&record.links).unwrap_or(Value::Null));
        }
        if !resource.attributes.is_empty() {
            out.fixed("otel_resource", serde_json::to_value(&resource.attributes).unwrap_or(Value::Null));
        }
        if let Some(service) = resource.service_name() {
            out.fixed("service.name", Value::String(service.to_owned()));
        }
        out.fixed("otel_observed_timestamp", Value::String(to_iso(observed)));
        out.fixed("otel_record_type", Value::String(mapping::RECORD_TYPE.to_owned()));
        out.fixed("gen_ai.span.kind", Value::String(record.kind.label().to_owned()));
        if let Some(source) = &record.source {
            out.fixed("source", Value::String(source.clone()));
        }
        if let Some(input) = &record.input {
            out.fixed_ref("input", input);
        }
        if let Some(output) = &record.output {
            out.fixed_ref("output", output);
        }
        if let Some(error) = &record.error {
            out.fixed("error", Value::String("true".into()));
            out.fixed("error_type", Value::String(error.error_type.clone()));
            out.fixed("error_message", Value::String(error.message.clone()));
            if let Some(stack) = &error.stack {
                out.fixed("error_stack", Value::String(stack.clone()));
            }
        }
        if let Some(caller) = &record.caller {
            out.fixed("caller", serde_json::to_value(caller).unwrap_or(Value::Null));
        }
        if let Some(ctx) = &record.user_context {
            out.fixed_ref("user_context", ctx);
        }
        if let Some(state) = &record.trace_state {
            out.overflow.insert("trace_state".into(), Value::String(state.clone()));
        }

        // Dynamic slots and the mapping snapshot, under one short lock.
        let (slots, mapping_json) = {
            let mut state = self.registry.lock();
            let slots: Vec<Option<Arc<str>>> = record
                .attributes
                .iter()
                .map(|(key, value)| {
                    if value.is_null() || mapping::fixed_column(key).is_some() {
                        None
                    } else {
                        let ty = SlotType::of(value);
                        let slot = SlotRegistry::assign(&mut state, key, ty);
                        if slot.is_none() {
                            let once_key = match ty {
                                SlotType::String => "overflow-cvs",
                                SlotType::Number => "overflow-cvn",
                                SlotType::Bool => "overflow-cvb",
                            };
                            diag::once(once_key, LogLevel::Warn, || {
                                format!(
                                    "all dynamic {} slots are taken; further keys of that type go into the `{}` JSON field",
                                    ty.prefix(),
                                    mapping::OVERFLOW_COLUMN
                                )
                            });
                        }
                        slot
                    }
                })
                .collect();
            (slots, SlotRegistry::mapping_tail(&mut state))
        };

        let mut summary = Map::new();
        for ((key, value), slot) in record.attributes.iter().zip(&slots) {
            if value.is_null() {
                continue;
            }
            match mapping::fixed_column(key) {
                Some(column) => out.put(key, Some(column), value),
                None => out.put(key, slot.as_deref(), value),
            }
            if !CONTENT_KEYS.contains(&key.as_ref()) {
                summary.insert(key.to_string(), value.clone());
            }
        }
        if !summary.is_empty() {
            out.fixed("attributes", Value::Object(summary));
        }
        if let Some(raw) = &record.raw {
            out.fixed_ref("raw", raw);
        }
        if !out.overflow.is_empty() {
            let overflow = std::mem::take(&mut out.overflow);
            out.map.insert(mapping::OVERFLOW_COLUMN.to_owned(), Value::String(Value::Object(overflow).to_string()));
        }
        (out.map, mapping_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;
    use serde_json::json;

    fn encode(registry: &SlotRegistry, record: &Record) -> Map<String, Value> {
        Encoder::with_registry(registry).encode(record, &Resource::default(), SystemTime::now())
    }

    #[test]
    fn first_dynamic_slots_skip_the_reserved_ones() {
        let r = SlotRegistry::new();
        assert_eq!(r.slot_for("a", SlotType::String).as_deref(), Some("cvs100"));
        assert_eq!(r.slot_for("b", SlotType::Number).as_deref(), Some("cvn4"));
        assert_eq!(r.slot_for("c", SlotType::Bool).as_deref(), Some("cvb3"));
        assert_eq!(r.slot_for("d", SlotType::String).as_deref(), Some("cvs101"));
        assert_eq!(r.slot_for("a", SlotType::Number).as_deref(), Some("cvs100"), "a key keeps its slot");
    }

    #[test]
    fn starting_indices_still_skip_reserved_and_used_slots() {
        let r = SlotRegistry::new();
        r.set_starting_indices(StartingIndices { string: 10, number: 1, boolean: 1 });
        assert_eq!(r.slot_for("s1", SlotType::String).as_deref(), Some("cvs13"));
        assert_eq!(r.slot_for("s2", SlotType::String).as_deref(), Some("cvs20"));
        assert_eq!(r.slot_for("n1", SlotType::Number).as_deref(), Some("cvn4"));
        r.set_starting_indices(StartingIndices { string: 13, number: 4, boolean: 3 });
        assert_eq!(r.slot_for("s3", SlotType::String).as_deref(), Some("cvs21"));
        assert_eq!(r.slot_for("n2", SlotType::Number).as_deref(), Some("cvn5"));
    }

    #[test]
    fn slots_run_out_into_the_overflow_field() {
        let r = SlotRegistry::new();
        for i in 0..99 {
            assert!(r.slot_for(&format!("k{i}"), SlotType::String).is_some(), "{i}");
        }
        assert_eq!(r.slot_for("one.too.many", SlotType::String), None);
        let mut rec = Record::new(RecordKind::Raw, "raw");
        rec.set_attribute("k5", "kept in its slot");
        rec.set_attribute("one.too.many", "kept in the overflow");
        let out = encode(&r, &rec);
        assert_eq!(out["cvs105"], "kept in its slot");
        let overflow: Value = serde_json::from_str(out[mapping::OVERFLOW_COLUMN].as_str().unwrap()).unwrap();
        assert_eq!(overflow, json!({"one.too.many": "kept in the overflow"}));
        assert!(!out.contains_key("cvs199"));
    }

    #[test]
    fn values_that_do_not_fit_their_column_are_kept_in_the_overflow() {
        let r = SlotRegistry::new();
        let mut rec = Record::new(RecordKind::Raw, "raw");
        rec.set_attribute("count", 1);
        encode(&r, &rec);
        let mut rec = Record::new(RecordKind::Raw, "raw");
        rec.set_attribute("count", "many");
        rec.set_attribute("gen_ai.request.temperature", "0.5");
        rec.set_attribute("gen_ai.request.max_tokens", json!({"oops": true}));
        rec.input = Some(json!("typed input"));
        rec.set_attribute("input", "attribute named input");
        let out = encode(&r, &rec);
        assert!(!out.contains_key("cvn4"));
        assert_eq!(out["gen_ai_request_temperature"], 0.5);
        assert_eq!(out["llm_input"], "typed input");
        let overflow: Value = serde_json::from_str(out[mapping::OVERFLOW_COLUMN].as_str().unwrap()).unwrap();
        assert_eq!(
            overflow,
            json!({"count": "many", "gen_ai.request.max_tokens": {"oops": true}, "input": "attribute named input"})
        );
    }

    #[test]
    fn the_mapping_sent_decodes_the_record_it_travels_with() {
        let r = SlotRegistry::new();
        let mut rec = Record::new(RecordKind::Raw, "raw");
        rec.set_attribute("fresh.key", "v");
        let out = encode(&r, &rec);
        let mapping: Map<String, Value> = serde_json::from_str(out["otel_schema_url"].as_str().unwrap()).unwrap();
        let column = mapping["fresh.key"].as_str().unwrap();
        assert_eq!(out[column], "v");
        assert_eq!(mapping.len(), mapping::FIXED_SLOTS.len() + 1);
    }

    #[test]
    fn any_value_encodes_without_panicking() {
        let r = SlotRegistry::new();
        let mut rec = Record::new(RecordKind::Raw, "");
        rec.set_attribute("", "");
        rec.set_attribute("n", f64::MAX);
        rec.set_attribute("neg", i64::MIN);
        rec.set_attribute("u", u64::MAX);
        rec.set_attribute("deep", json!([[[[{"a": [null, 1.5e300, "\u{0}"]}]]]]));
        rec.set_attribute("gen_ai.usage.input_tokens", "NaN");
        rec.end_time = std::time::UNIX_EPOCH;
        let out = encode(&r, &rec);
        assert_eq!(out["otel_duration_ms"], 0.0);
        assert!(out.contains_key("otel_attributes"));
    }

    #[test]
    fn the_spliced_body_is_the_encoded_object() {
        let r = SlotRegistry::new();
        let mut rec = Record::new(RecordKind::LlmCall, "chat \"quoted\"");
        rec.set_attribute("x.y", json!({"k": "v\n"}));
        let t = SystemTime::now();
        let body: Value = serde_json::from_slice(&Encoder::with_registry(&r).encode_to_vec(&rec, &Resource::default(), t)).unwrap();
        let object = Value::Object(Encoder::with_registry(&r).encode(&rec, &Resource::default(), t));
        assert_eq!(body, object);
        assert_eq!(
            serde_json::from_str::<Value>(body["otel_schema_url"].as_str().unwrap()).unwrap(),
            serde_json::from_str::<Value>(&r.mapping_document()).unwrap()
        );
    }

    fn random_value(rng: &mut fastrand::Rng, depth: u32) -> Value {
        match rng.u8(0..if depth > 3 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.bool()),
            2 => Value::from(rng.i64(..)),
            3 => Value::from(f64::from_bits(rng.u64(..))), // NaN and infinities become null
            4 => Value::String((0..rng.usize(0..40)).map(|_| rng.char(..)).collect()),
            5 => Value::Array((0..rng.usize(0..4)).map(|_| random_value(rng, depth + 1)).collect()),
            _ => Value::Object(
                (0..rng.usize(0..4)).map(|_| (rng.alphanumeric().to_string(), random_value(rng, depth + 1))).collect(),
            ),
        }
    }

    #[test]
    fn random_records_encode_to_valid_json_without_panicking() {
        let r = SlotRegistry::new();
        let mut rng = fastrand::Rng::with_seed(7);
        let keys: Vec<String> = (0..400)
            .map(|i| match i % 4 {
                0 => mapping::FIXED_SLOTS[i % mapping::FIXED_SLOTS.len()].0.to_owned(),
                _ => format!("k{}", rng.u16(..400)),
            })
            .collect();
        for _ in 0..2000 {
            let mut rec = Record::new(RecordKind::Raw, "r");
            for _ in 0..rng.usize(0..12) {
                let key = keys[rng.usize(..keys.len())].clone();
                rec.set_attribute(key, random_value(&mut rng, 0));
            }
            rec.input = Some(random_value(&mut rng, 0));
            rec.raw = Some(random_value(&mut rng, 0));
            crate::pipeline::limits::cap_record(&mut rec, 256);
            let body = Encoder::with_registry(&r).encode_to_vec(&rec, &Resource::default(), SystemTime::now());
            let parsed: Value = serde_json::from_slice(&body).expect("valid JSON");
            assert!(parsed.get("otel_schema_url").is_some());
        }
    }
}
