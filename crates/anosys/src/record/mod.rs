//! The [`Record`]: one captured event, the only thing sources hand to the
//! pipeline and the only thing sinks receive.
//!
//! A record has a few typed fields every sink understands (times, ids,
//! status, input/output, error, caller, source) and an open, ordered map of
//! extra [`attributes`](Record::attributes) named by the OpenTelemetry
//! semantic conventions (`gen_ai.request.model`, `server.port`, …) or by the
//! user. Sources build records; only sinks encode them.

mod content;
pub mod context;
mod ids;
mod json_text;
pub mod time;
mod wire;
pub(crate) use wire::{Raw, RawEntry};

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use content::{RequestShape, ResponseShape, INPUT_MESSAGES, OUTPUT_MESSAGES, SYSTEM_INSTRUCTIONS, TOOL_DEFINITIONS};
pub use ids::{SpanId, TraceId};
pub use json_text::JsonText;

/// Attribute key: static for the well-known names, owned for user keys.
pub type Key = Cow<'static, str>;

/// An ordered map of attribute names to JSON values, hashed with
/// [`AttributeHasher`].
///
/// Make one with `Attributes::default()` or
/// `Attributes::with_capacity_and_hasher(n, Default::default())`.
///
/// ```
/// let mut attributes = anosys::record::Attributes::default();
/// attributes.insert("gen_ai.request.model".into(), "gpt-4o-mini".into());
/// assert_eq!(attributes["gen_ai.request.model"], "gpt-4o-mini");
/// ```
pub type Attributes = IndexMap<Key, Value, AttributeHasher>;

/// How [`Attributes`] hash their names: a fast hash seeded once per
/// process ([foldhash](https://docs.rs/foldhash)'s), not the standard
/// library's SipHash, which took several times as long for the short names
/// attributes have (every record inserts a dozen or more and reads them
/// again in the pipeline's steps and the sinks). The seed is random, so
/// names chosen to collide cannot be planned in advance.
#[derive(Debug, Clone, Default)]
pub struct AttributeHasher(foldhash::fast::RandomState);

impl std::hash::BuildHasher for AttributeHasher {
    type Hasher = AttributeHash;

    #[inline]
    fn build_hasher(&self) -> AttributeHash {
        AttributeHash(self.0.build_hasher())
    }
}

/// The hasher [`AttributeHasher`] builds.
#[derive(Clone)]
pub struct AttributeHash(foldhash::fast::FoldHasher<'static>);

impl std::fmt::Debug for AttributeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttributeHash")
    }
}

impl std::hash::Hasher for AttributeHash {
    #[inline]
    fn finish(&self) -> u64 {
        self.0.finish()
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.0.write_u16(i);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0.write_u32(i);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0.write_u64(i);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.0.write_u128(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0.write_usize(i);
    }
}

/// What a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A call to a language model (chat, completion, embeddings, images, …).
    LlmCall,
    /// A call of a function marked for logging.
    FunctionCall,
    /// Arbitrary JSON handed to the raw logger.
    Raw,
    /// A span taken in from OpenTelemetry or `tracing`.
    Span,
}

impl RecordKind {
    /// The serialized name (`llm_call`, `function_call`, `raw`, `span`), as
    /// the local store and exports write it.
    ///
    /// ```
    /// assert_eq!(anosys::RecordKind::LlmCall.as_str(), "llm_call");
    /// assert_eq!(serde_json::to_value(anosys::RecordKind::FunctionCall).unwrap(), "function_call");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::LlmCall => "llm_call",
            RecordKind::FunctionCall => "function_call",
            RecordKind::Raw => "raw",
            RecordKind::Span => "span",
        }
    }

    /// Upper-case label (`LLM`, `FUNCTION`, `RAW`, `SPAN`), as AnoSys shows it.
    pub fn label(self) -> &'static str {
        match self {
            RecordKind::LlmCall => "LLM",
            RecordKind::FunctionCall => "FUNCTION",
            RecordKind::Raw => "RAW",
            RecordKind::Span => "SPAN",
        }
    }
}

/// The OpenTelemetry span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SpanKind {
    /// In-process work (the default).
    #[default]
    Internal,
    /// An outgoing request, such as a call to an LLM API.
    Client,
    /// Handling of an incoming request.
    Server,
    /// Sending a message.
    Producer,
    /// Receiving a message.
    Consumer,
}

impl SpanKind {
    /// Upper-case name (`CLIENT`, `INTERNAL`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Internal => "INTERNAL",
            SpanKind::Client => "CLIENT",
            SpanKind::Server => "SERVER",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
        }
    }
}

/// OpenTelemetry status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum StatusCode {
    /// Nothing was said about success.
    #[default]
    Unset,
    /// The operation succeeded.
    Ok,
    /// The operation failed.
    Error,
}

impl StatusCode {
    /// `UNSET`, `OK` or `ERROR`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "UNSET",
            StatusCode::Ok => "OK",
            StatusCode::Error => "ERROR",
        }
    }
}

/// Status of the captured operation: a code and, for errors, a message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Status {
    /// The status code.
    pub code: StatusCode,
    /// A human-readable description, usually set with [`StatusCode::Error`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Status {
    /// `OK`, no message.
    pub fn ok() -> Self {
        Status { code: StatusCode::Ok, message: None }
    }

    /// `ERROR` with a message.
    pub fn error(message: impl Into<String>) -> Self {
        Status { code: StatusCode::Error, message: Some(message.into()) }
    }
}

/// A failure captured with a record.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The error's type: a Rust type name, an exception class, an API error
    /// code or an HTTP status.
    #[serde(rename = "type")]
    pub error_type: String,
    /// The error's message.
    pub message: String,
    /// The cause chain, traceback or backtrace, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

impl ErrorInfo {
    /// An error of `error_type` with `message` and no stack.
    ///
    /// ```
    /// let e = anosys::ErrorInfo::new("timeout", "no answer within 30 s");
    /// assert_eq!((e.error_type.as_str(), e.stack), ("timeout", None));
    /// ```
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> ErrorInfo {
        ErrorInfo { error_type: error_type.into(), message: message.into(), stack: None }
    }

    /// A Rust error: its message (`Display`) and, as the stack, its cause
    /// chain (`source()`, one `caused by: …` line per cause). The type is
    /// `E`'s name; replace it when a better one is known.
    ///
    /// ```
    /// #[derive(Debug)]
    /// struct Saving(std::io::Error);
    /// impl std::fmt::Display for Saving {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         f.write_str("could not save")
    ///     }
    /// }
    /// impl std::error::Error for Saving {
    ///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
    ///         Some(&self.0)
    ///     }
    /// }
    ///
    /// let e = anosys::ErrorInfo::from_error(&Saving(std::io::Error::other("disk full")));
    /// assert!(e.error_type.ends_with("Saving"));
    /// assert_eq!(e.message, "could not save");
    /// assert_eq!(e.stack.as_deref(), Some("caused by: disk full"));
    /// ```
    pub fn from_error<E: std::error::Error + ?Sized>(error: &E) -> ErrorInfo {
        let mut chain = String::new();
        let mut next = error.source();
        while let Some(cause) = next {
            if !chain.is_empty() {
                chain.push('\n');
            }
            chain.push_str("caused by: ");
            chain.push_str(&cause.to_string());
            next = cause.source();
        }
        ErrorInfo {
            error_type: std::any::type_name::<E>().to_owned(),
            message: error.to_string(),
            stack: (!chain.is_empty()).then_some(chain),
        }
    }

    /// The message followed by the causes [`from_error`](Self::from_error)
    /// found, `: `-separated: one line for a log or an error message.
    ///
    /// ```
    /// #[derive(Debug)]
    /// struct Saving(std::io::Error);
    /// impl std::fmt::Display for Saving {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("could not save") }
    /// }
    /// impl std::error::Error for Saving {
    ///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> { Some(&self.0) }
    /// }
    /// let e = anosys::ErrorInfo::from_error(&Saving(std::io::Error::other("disk full")));
    /// assert_eq!(e.one_line(), "could not save: disk full");
    /// ```
    pub fn one_line(&self) -> String {
        let mut text = self.message.clone();
        for cause in self.stack.iter().flat_map(|s| s.lines()).filter_map(|l| l.strip_prefix("caused by: ")) {
            text.push_str(": ");
            text.push_str(cause);
        }
        text
    }
}

/// Where a captured call was made from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Caller {
    /// The calling function, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Source file.
    pub file: String,
    /// Line in the file.
    pub line: u32,
}

/// A timestamped event inside a record (an OpenTelemetry span event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event name.
    pub name: String,
    /// When it happened.
    #[serde(with = "time::iso")]
    pub time: SystemTime,
    /// Event attributes.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub attributes: Attributes,
}

/// A link from a record to another span (an OpenTelemetry span link): a
/// batch job linking the requests it serves, a message linking its sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The linked span's trace.
    pub trace_id: TraceId,
    /// The linked span.
    pub span_id: SpanId,
    /// Its W3C `tracestate`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_state: Option<String>,
    /// Link attributes.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub attributes: Attributes,
}

/// Describes the process that produced records (`service.name`, SDK name
/// and version, …). Shared by every record of a pipeline.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Resource {
    /// Resource attributes, by OpenTelemetry name.
    pub attributes: Attributes,
}

impl Resource {
    /// The `service.name` attribute, if set.
    pub fn service_name(&self) -> Option<&str> {
        self.attributes.get("service.name").and_then(Value::as_str)
    }
}

/// One captured event: an LLM call, a logged function call, a raw event or
/// a span.
///
/// ```
/// use anosys::{Record, RecordKind, Status};
/// use serde_json::json;
///
/// let mut record = Record::new(RecordKind::FunctionCall, "billing.charge");
/// record.source = Some("billing".into());
/// record.input = Some(json!([42]));
/// record.set_attribute("customer.tier", "gold");
/// record.finish(Status::ok());
/// assert!(record.duration() >= std::time::Duration::ZERO);
/// ```
///
/// Its JSON form (as the local store, the outbox and the JSON-lines sink
/// write it) is its fields by name, with
/// [`request_text`](Self::request_text) and
/// [`response_text`](Self::response_text) written inside `raw`, as
/// `raw.request` and `raw.response`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Record {
    /// What the record describes.
    pub kind: RecordKind,
    /// Span name, e.g. `chat gpt-4o` or a function's path.
    pub name: String,
    /// OpenTelemetry span kind.
    #[serde(default)]
    pub span_kind: SpanKind,
    /// When the operation started.
    #[serde(with = "time::iso")]
    pub start_time: SystemTime,
    /// When the operation ended.
    #[serde(with = "time::iso")]
    pub end_time: SystemTime,
    /// W3C trace id.
    pub trace_id: TraceId,
    /// W3C span id of this record.
    pub span_id: SpanId,
    /// Span id of the parent, when the record has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<SpanId>,
    /// W3C trace flags (bit 0: sampled).
    #[serde(default = "sampled")]
    pub trace_flags: u8,
    /// W3C `tracestate`, when one was propagated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_state: Option<String>,
    /// Outcome.
    #[serde(default)]
    pub status: Status,
    /// Which part of the application produced the record (the decorator's
    /// `source`, or an integration's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Inputs: a function's arguments, an LLM call's prompt. An LLM call
    /// captured with its content keeps its prompt in `raw` only and leaves
    /// this `None` (see [`input_in_raw`](Self::input_in_raw)): read it with
    /// [`Record::input()`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// Output: a return value, an LLM's reply. An LLM call captured with
    /// its content keeps its reply in `raw` only and leaves this `None`
    /// (see [`output_in_raw`](Self::output_in_raw)): read it with
    /// [`Record::output()`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The failure, when the operation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Where the call came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<Caller>,
    /// Whatever the application attaches about the user or session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_context: Option<Value>,
    /// The raw payload (raw logger data, or a request/response pair). An
    /// LLM call may keep its request and response apart, as text, in
    /// [`request_text`](Self::request_text) and
    /// [`response_text`](Self::response_text): read the whole with
    /// [`Record::raw_json()`].
    #[serde(default)]
    pub raw: Option<Value>,
    /// An LLM call's request kept as the JSON text it was sent as
    /// (compacted), instead of parsed into `raw.request`: it is written as
    /// `raw.request` (see [`Record::raw_json()`]), and [`Record::input()`]
    /// and the other readers parse it when they need its parts. Records
    /// read back from JSON hold it in `raw` again.
    #[serde(skip)]
    pub request_text: Option<JsonText>,
    /// An LLM call's response kept as the JSON text it came in (compacted),
    /// instead of parsed into `raw.response`: it is written as
    /// `raw.response` (see [`Record::raw_json()`]), and
    /// [`Record::output()`] and the other readers parse it when they need
    /// its parts. Records read back from JSON hold it in `raw` again.
    #[serde(skip)]
    pub response_text: Option<JsonText>,
    /// Set when the request is kept once, in `raw.request` (`{"request": …,
    /// "response": …}`), instead of again in [`input`](Self::input) and the
    /// `gen_ai.input.messages`, `gen_ai.system_instructions` and
    /// `gen_ai.tool.definitions` attributes: which part of the request is
    /// the input. [`Record::input()`], [`Record::input_messages()`] and
    /// [`Record::derived_attributes()`] read them from there, the sinks
    /// write them from there, and [`Record::expand_content()`] writes them
    /// out into the fields.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "content::known_shape")]
    pub input_in_raw: Option<RequestShape>,
    /// Set when the response is kept once, in `raw.response`, instead of
    /// again in [`output`](Self::output) and the `gen_ai.output.messages`
    /// attribute: how to read them from it ([`Record::output()`],
    /// [`Record::output_messages()`], [`Record::derived_attributes()`],
    /// [`Record::expand_content()`]).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "content::known_shape")]
    pub output_in_raw: Option<ResponseShape>,
    /// Every other attribute, by semantic-convention or user name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub attributes: Attributes,
    /// Span events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Links to other spans.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// The producing process; the pipeline fills in its own when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Arc<Resource>>,
}

fn sampled() -> u8 {
    1
}

impl Record {
    /// A record with every field empty and nothing allocated: what is left
    /// in a batch's place once a record was taken out to be freed, and
    /// what [`Record::new`] fills in.
    pub(crate) fn spent() -> Self {
        Record {
            kind: RecordKind::Raw,
            name: String::new(),
            span_kind: SpanKind::Internal,
            start_time: SystemTime::UNIX_EPOCH,
            end_time: SystemTime::UNIX_EPOCH,
            trace_id: TraceId([0; 16]),
            span_id: SpanId([0; 8]),
            parent_span_id: None,
            trace_flags: 0,
            trace_state: None,
            status: Status::default(),
            source: None,
            input: None,
            output: None,
            error: None,
            caller: None,
            user_context: None,
            raw: None,
            request_text: None,
            response_text: None,
            input_in_raw: None,
            output_in_raw: None,
            attributes: Attributes::default(),
            events: Vec::new(),
            links: Vec::new(),
            resource: None,
        }
    }

    /// A new record starting now, with a fresh trace and span id, status
    /// `UNSET` and end time equal to its start time.
    pub fn new(kind: RecordKind, name: impl Into<String>) -> Self {
        let now = SystemTime::now();
        Record {
            kind,
            name: name.into(),
            start_time: now,
            end_time: now,
            trace_id: TraceId::random(),
            span_id: SpanId::random(),
            trace_flags: 1,
            // An LLM call's record holds 12-16 attributes, and the
            // pipeline adds up to 6 (cost, redaction): made with room for
            // 24 at once, so that the pipeline's thread never grows or
            // replaces the map the caller's thread allocated (the record
            // comes back to a capturing thread to be freed: `batch::Spent`).
            // Building one costs about 18% more than with room for 16, and
            // submitting it a third less (`benches/capture.rs`).
            attributes: Attributes::with_capacity_and_hasher(if kind == RecordKind::LlmCall { 24 } else { 0 }, AttributeHasher::default()),
            // Everything else empty.
            ..Record::spent()
        }
    }

    /// Sets an attribute, replacing any earlier value of the same key.
    /// `null` values are kept here and skipped by the sinks.
    pub fn set_attribute(&mut self, key: impl Into<Key>, value: impl Into<Value>) -> &mut Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// An attribute's value.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }

    /// The model of an LLM call: the one that answered
    /// (`gen_ai.response.model`), else the one asked for.
    ///
    /// ```
    /// let mut r = anosys::Record::new(anosys::RecordKind::LlmCall, "chat gpt-4o");
    /// r.set_attribute("gen_ai.request.model", "gpt-4o");
    /// assert_eq!(r.model(), Some("gpt-4o"));
    /// r.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06");
    /// assert_eq!(r.model(), Some("gpt-4o-2024-08-06"));
    /// ```
    pub fn model(&self) -> Option<&str> {
        self.attribute("gen_ai.response.model")
            .or_else(|| self.attribute("gen_ai.request.model"))
            .and_then(Value::as_str)
    }

    /// Makes the record a child of the current span (see [`context`]), if
    /// there is one.
    pub fn with_current_parent(mut self) -> Self {
        if let Some(cx) = context::current() {
            self.set_parent(cx.trace_id, cx.span_id);
        }
        self
    }

    /// Marks the record as a child of `trace_id`/`parent`.
    pub fn with_parent(mut self, trace_id: TraceId, parent: SpanId) -> Self {
        self.set_parent(trace_id, parent);
        self
    }

    /// Makes the record a child of `parent` in trace `trace_id` (a record
    /// already started, such as an OpenAI call's, or a remote parent).
    ///
    /// ```
    /// use anosys::{Record, RecordKind, SpanId, TraceId};
    /// let (trace, parent) = (TraceId::random(), SpanId::random());
    /// let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    /// r.set_parent(trace, parent);
    /// assert_eq!((r.trace_id, r.parent_span_id), (trace, Some(parent)));
    /// ```
    pub fn set_parent(&mut self, trace_id: TraceId, parent: SpanId) {
        self.trace_id = trace_id;
        self.parent_span_id = Some(parent);
    }

    /// Ends the record now with `status`.
    pub fn finish(&mut self, status: Status) {
        self.end_time = SystemTime::now().max(self.start_time);
        self.status = status;
    }

    /// Records a failure: sets `error` and an `ERROR` status with its message.
    pub fn fail(&mut self, error: ErrorInfo) {
        self.status = Status::error(error.message.clone());
        self.error = Some(error);
    }

    /// `end_time - start_time` (zero if the clock went backwards).
    pub fn duration(&self) -> Duration {
        self.end_time.duration_since(self.start_time).unwrap_or_default()
    }

    /// A cheap estimate of the record's encoded size in bytes, used to cut
    /// batches by size.
    pub fn approx_size(&self) -> usize {
        let opt = |v: &Option<Value>| v.as_ref().map_or(0, approx_value_size);
        256 + self.name.len()
            + opt(&self.input)
            + opt(&self.output)
            + opt(&self.raw)
            + self.request_text.as_ref().map_or(0, JsonText::len)
            + self.response_text.as_ref().map_or(0, JsonText::len)
            + opt(&self.user_context)
            + self.error.as_ref().map_or(0, |e| {
                e.error_type.len() + e.message.len() + e.stack.as_ref().map_or(0, String::len)
            })
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + approx_value_size(v) + 4)
                .sum::<usize>()
            + self.events.iter().map(|e| 64 + e.name.len()).sum::<usize>()
            + self.links.len() * 96
    }
}

/// Rough JSON size of a value.
pub(crate) fn approx_value_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|v| approx_value_size(v) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o.iter().map(|(k, v)| k.len() + 4 + approx_value_size(v)).sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn record_round_trips_through_json() {
        let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
        r.span_kind = SpanKind::Client;
        r.set_attribute("gen_ai.request.model", "gpt-4o");
        r.set_attribute("gen_ai.usage.input_tokens", 12);
        r.input = Some(json!({"messages": []}));
        r.fail(ErrorInfo { error_type: "429".into(), message: "slow down".into(), stack: None });
        let text = serde_json::to_string(&r).unwrap();
        let back: Record = serde_json::from_str(&text).unwrap();
        // SystemTime loses sub-microsecond precision in ISO form.
        assert_eq!(back.name, r.name);
        assert_eq!(back.trace_id, r.trace_id);
        assert_eq!(back.attributes, r.attributes);
        assert_eq!(back.status, Status::error("slow down"));
        assert_eq!(back.span_kind, SpanKind::Client);
        assert!(text.contains("\"kind\":\"llm_call\""));
    }
}
