//! Streamed responses: chunks in, one record out, exactly once.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::sse::{SseEvent, SseParser};
use super::{OpenAiCall, Operation};
use crate::record::{ErrorInfo, Record, Status, StatusCode};

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// It ended normally (`[DONE]`, or the Responses API's final event).
    Completed,
    /// The API sent an error, the connection broke, or the stream stopped
    /// before its end.
    Error,
    /// The caller dropped the stream before its end.
    Cancelled,
}

impl StreamOutcome {
    fn as_str(self) -> &'static str {
        match self {
            StreamOutcome::Completed => "completed",
            StreamOutcome::Error => "error",
            StreamOutcome::Cancelled => "cancelled",
        }
    }
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    system_fingerprint: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    service_tier: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChunkChoice<'a>>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(default)]
    index: usize,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    logprobs: Option<Value>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
    #[serde(borrow, default)]
    function_call: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(default)]
    index: Option<usize>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Default, Debug)]
struct ToolCallAcc {
    index: usize,
    id: Option<String>,
    kind: Option<String>,
    name: String,
    arguments: String,
}

#[derive(Default, Debug)]
struct ChoiceAcc {
    index: usize,
    role: Option<String>,
    content: String,
    refusal: String,
    tool_calls: Vec<ToolCallAcc>,
    function_call: Option<(String, String)>,
    finish_reason: Option<String>,
    logprobs: Vec<Value>,
}

impl ChoiceAcc {
    fn to_choice(&self, op: Operation) -> Value {
        let mut choice = Map::new();
        choice.insert("index".into(), json!(self.index));
        if op == Operation::TextCompletion {
            choice.insert("text".into(), json!(self.content));
        } else {
            let mut message = Map::new();
            message.insert("role".into(), json!(self.role.as_deref().unwrap_or("assistant")));
            let no_text = self.content.is_empty()
                && (!self.tool_calls.is_empty() || self.function_call.is_some() || !self.refusal.is_empty());
            message.insert("content".into(), if no_text { Value::Null } else { json!(self.content) });
            if !self.refusal.is_empty() {
                message.insert("refusal".into(), json!(self.refusal));
            }
            if !self.tool_calls.is_empty() {
                let calls: Vec<Value> = self
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "type": c.kind.as_deref().unwrap_or("function"),
                               "function": {"name": c.name, "arguments": c.arguments}})
                    })
                    .collect();
                message.insert("tool_calls".into(), Value::Array(calls));
            }
            if let Some((name, arguments)) = &self.function_call {
                message.insert("function_call".into(), json!({"name": name, "arguments": arguments}));
            }
            choice.insert("message".into(), Value::Object(message));
        }
        choice.insert("finish_reason".into(), json!(self.finish_reason));
        if !self.logprobs.is_empty() {
            choice.insert("logprobs".into(), super::messages::object([("content", Value::Array(self.logprobs.clone()))]));
        }
        Value::Object(choice)
    }
}

/// One streamed event, as text or already parsed.
#[derive(Clone, Copy)]
enum Event<'a> {
    Text(&'a str),
    Parsed(&'a Value),
}

impl<'a> Event<'a> {
    /// As JSON (a Responses API event).
    fn value(self) -> serde_json::Result<Cow<'a, Value>> {
        match self {
            Event::Text(text) => serde_json::from_str(text).map(Cow::Owned),
            Event::Parsed(value) => Ok(Cow::Borrowed(value)),
        }
    }

    /// As a chat or completion chunk (strings borrowed where they can be).
    fn chunk(self) -> serde_json::Result<Chunk<'a>> {
        match self {
            Event::Text(text) => serde_json::from_str(text),
            Event::Parsed(value) => Chunk::deserialize(value),
        }
    }
}

/// Takes a streamed response one event (or chunk) at a time and at the end
/// gives the record a non-streaming call would have given, plus time to
/// first chunk, chunk count and how the stream ended.
///
/// Nothing here buffers the stream: the caller forwards each chunk as it
/// arrives and hands a reference here; only the deltas are appended.
///
/// ```
/// use anosys::sources::openai::{CaptureOptions, OpenAiCall};
/// use serde_json::json;
///
/// let request = json!({"model": "gpt-4", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
/// let mut stream = OpenAiCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default())
///     .into_stream();
/// stream.push_bytes(b"data: {\"id\":\"c1\",\"model\":\"gpt-4\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n");
/// stream.push_bytes(b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
/// let record = stream.finish();
/// assert_eq!(record.output().as_deref(), Some(&json!("Hello")));
/// assert_eq!(record.attribute("gen_ai.response.finish_reasons"), Some(&json!(["stop"])));
/// ```
#[derive(Debug)]
pub struct StreamAccumulator {
    call: OpenAiCall,
    parser: SseParser,
    started: Instant,
    first_chunk: Option<Duration>,
    chunks: u64,
    malformed: u64,
    id: Option<String>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    service_tier: Option<String>,
    choices: Vec<ChoiceAcc>,
    usage: Option<Value>,
    /// Responses API: the latest full `response` object, and text deltas.
    response: Option<Value>,
    response_text: String,
    done: bool,
    error: Option<ErrorInfo>,
}

impl StreamAccumulator {
    pub(super) fn new(call: OpenAiCall) -> Self {
        StreamAccumulator {
            // From the request, not from the response headers.
            started: call.started,
            call,
            parser: SseParser::new(),
            first_chunk: None,
            chunks: 0,
            malformed: 0,
            id: None,
            model: None,
            system_fingerprint: None,
            service_tier: None,
            choices: Vec::new(),
            usage: None,
            response: None,
            response_text: String::new(),
            done: false,
            error: None,
        }
    }

    /// Records the HTTP status the stream came with.
    pub fn set_http_status(&mut self, status: u16) {
        self.call.record.set_attribute("http.response.status_code", status);
    }

    /// Data events seen so far (`[DONE]` not counted).
    pub fn chunk_count(&self) -> u64 {
        self.chunks
    }

    /// Whether the stream announced its end (`[DONE]`, a final Responses
    /// event, or an error).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Feeds raw bytes of the SSE body, split anywhere.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        let mut parser = std::mem::take(&mut self.parser);
        parser.push(bytes, |e| self.push_event(&e));
        self.parser = parser;
    }

    /// [`push_bytes`](Self::push_bytes) for bytes that arrived `at`, fed
    /// later (a stream recorded off the path that relayed it): the time to
    /// first chunk is counted to `at`, not to now.
    pub fn push_bytes_at(&mut self, bytes: &[u8], at: Instant) {
        if self.first_chunk.is_none() {
            let before = self.chunks;
            self.push_bytes(bytes);
            if self.chunks > before {
                self.first_chunk = Some(at.saturating_duration_since(self.started));
            }
        } else {
            self.push_bytes(bytes);
        }
    }

    /// Feeds one parsed server-sent event.
    pub fn push_event(&mut self, event: &SseEvent) {
        if event.is_done() {
            self.done = true;
            return;
        }
        if event.data.trim().is_empty() {
            return;
        }
        self.push_data(&event.data);
    }

    /// Feeds one chunk's JSON text (the `data:` of one event).
    pub fn push_data(&mut self, data: &str) {
        self.push(Event::Text(data));
    }

    /// [`push_data`](Self::push_data) of an event that came `at`, fed
    /// later: the time to first chunk is counted to `at`, not to now.
    pub(crate) fn push_data_at(&mut self, data: &str, at: Instant) {
        let first = self.first_chunk.is_none();
        self.push_data(data);
        if first && self.first_chunk.is_some() {
            self.first_chunk = Some(at.saturating_duration_since(self.started));
        }
    }

    /// Feeds one chunk a typed client already parsed.
    pub fn push_chunk(&mut self, chunk: &Value) {
        self.push(Event::Parsed(chunk));
    }

    fn push(&mut self, event: Event<'_>) {
        self.saw_chunk();
        let mut read = self.read(event);
        // A `\u` escape of a lone surrogate (which serde_json refuses when
        // it builds a string): read again with U+FFFD in its place.
        if read.is_err()
            && let Event::Text(text) = event
            && let Some(repaired) = crate::json::lone_surrogates_replaced(text.as_bytes())
            && let Ok(repaired) = String::from_utf8(repaired)
        {
            read = self.read(Event::Text(&repaired));
        }
        if read.is_err() {
            self.malformed += 1;
        }
    }

    /// Reads one event into what the stream holds so far; an error (and
    /// nothing read) when it is not a chunk or event.
    fn read(&mut self, event: Event<'_>) -> serde_json::Result<()> {
        if self.call.operation == Operation::Responses {
            event.value().map(|v| self.responses_event(&v))
        } else {
            event.chunk().map(|c| self.chunk(c))
        }
    }

    fn saw_chunk(&mut self) {
        self.chunks += 1;
        if self.first_chunk.is_none() {
            self.first_chunk = Some(self.started.elapsed());
        }
    }

    fn chunk(&mut self, chunk: Chunk<'_>) {
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            self.error = Some(super::error_of(0, &json!({ "error": error })));
            self.done = true;
            return;
        }
        let keep = |slot: &mut Option<String>, v: Option<Cow<'_, str>>| {
            if let (None, Some(v)) = (&slot, v) {
                *slot = Some(v.into_owned());
            }
        };
        keep(&mut self.id, chunk.id);
        keep(&mut self.model, chunk.model);
        keep(&mut self.system_fingerprint, chunk.system_fingerprint);
        keep(&mut self.service_tier, chunk.service_tier);
        if let Some(u) = chunk.usage.filter(|u| !u.is_null()) {
            self.usage = Some(u);
        }
        for c in chunk.choices.unwrap_or_default() {
            let pos = match self.choices.iter().position(|a| a.index == c.index) {
                Some(p) => p,
                None => {
                    self.choices.push(ChoiceAcc { index: c.index, ..Default::default() });
                    self.choices.len() - 1
                }
            };
            let acc = &mut self.choices[pos];
            if let Some(text) = c.text {
                acc.content.push_str(&text);
            }
            if let Some(reason) = c.finish_reason {
                acc.finish_reason = Some(reason.into_owned());
            }
            if let Some(lp) = c.logprobs.as_ref().and_then(|l| l.get("content")).and_then(Value::as_array) {
                acc.logprobs.extend(lp.iter().cloned());
            }
            let Some(delta) = c.delta else { continue };
            if let Some(role) = delta.role {
                acc.role = Some(role.into_owned());
            }
            if let Some(content) = delta.content {
                acc.content.push_str(&content);
            }
            if let Some(refusal) = delta.refusal {
                acc.refusal.push_str(&refusal);
            }
            if let Some(f) = delta.function_call {
                let fc = acc.function_call.get_or_insert_with(Default::default);
                if let Some(n) = f.name {
                    fc.0.push_str(&n);
                }
                if let Some(a) = f.arguments {
                    fc.1.push_str(&a);
                }
            }
            for t in delta.tool_calls.unwrap_or_default() {
                let index = t.index.unwrap_or(acc.tool_calls.len().saturating_sub(1));
                let call = match acc.tool_calls.iter_mut().position(|c| c.index == index) {
                    Some(p) => &mut acc.tool_calls[p],
                    None => {
                        acc.tool_calls.push(ToolCallAcc { index, ..Default::default() });
                        acc.tool_calls.last_mut().expect("just pushed")
                    }
                };
                if let Some(id) = t.id {
                    call.id = Some(id.into_owned());
                }
                if let Some(k) = t.kind {
                    call.kind = Some(k.into_owned());
                }
                if let Some(f) = t.function {
                    if let Some(n) = f.name {
                        call.name.push_str(&n);
                    }
                    if let Some(a) = f.arguments {
                        call.arguments.push_str(&a);
                    }
                }
            }
        }
    }

    fn responses_event(&mut self, event: &Value) {
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "response.output_text.delta" => {
                if let Some(d) = event.get("delta").and_then(Value::as_str) {
                    self.response_text.push_str(d);
                }
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                self.response = event.get("response").cloned();
                self.done = true;
            }
            "error" => {
                self.error = Some(super::error_of(0, &json!({ "error": event })));
                self.done = true;
            }
            _ => {
                if let Some(r) = event.get("response").filter(|r| r.is_object()) {
                    self.response = Some(r.clone());
                }
                if event.get("error").is_some_and(Value::is_object) && kind.is_empty() {
                    self.error = Some(super::error_of(0, event));
                    self.done = true;
                }
            }
        }
    }

    /// The response a non-streaming call would have returned, from what
    /// arrived so far.
    fn aggregated(&self) -> Value {
        if self.call.operation == Operation::Responses {
            let mut response = self.response.clone().unwrap_or_else(|| json!({}));
            let has_output = response.get("output").and_then(Value::as_array).is_some_and(|o| !o.is_empty());
            if !has_output && !self.response_text.is_empty() {
                response["output"] = json!([{"type": "message", "role": "assistant",
                    "content": [{"type": "output_text", "text": self.response_text}]}]);
            }
            if !self.done && response.get("status").and_then(Value::as_str) == Some("in_progress") {
                response["status"] = json!("incomplete");
            }
            return response;
        }
        let mut choices: Vec<&ChoiceAcc> = self.choices.iter().collect();
        choices.sort_by_key(|c| c.index);
        let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::String);
        super::messages::object([
            ("id", text(&self.id)),
            ("model", text(&self.model)),
            ("system_fingerprint", text(&self.system_fingerprint)),
            ("service_tier", text(&self.service_tier)),
            ("choices", Value::Array(choices.iter().map(|c| c.to_choice(self.call.operation)).collect())),
            ("usage", self.usage.clone().unwrap_or(Value::Null)),
        ])
    }

    fn into_record(mut self, outcome: StreamOutcome, error: Option<ErrorInfo>) -> Record {
        let mut parser = std::mem::take(&mut self.parser);
        parser.finish(|e| self.push_event(&e));
        let aggregated = self.aggregated();
        let (first_chunk, chunks, malformed) = (self.first_chunk, self.chunks, self.malformed);
        let error = error.or(self.error.take());
        let mut response = aggregated;
        if error.is_some() {
            // The stream's own error wins over a partial response's.
            if let Some(o) = response.as_object_mut() {
                o.remove("error");
            }
        }
        let mut record = self.call.finish(0, response);
        if let Some(t) = first_chunk {
            record.set_attribute("gen_ai.response.time_to_first_chunk", t.as_secs_f64());
        }
        record.set_attribute("anosys.stream.chunks", chunks);
        if malformed > 0 {
            record.set_attribute("anosys.stream.malformed_events", malformed);
        }
        let outcome = if error.is_some() || record.status.code == StatusCode::Error { StreamOutcome::Error } else { outcome };
        record.set_attribute("anosys.outcome", outcome.as_str());
        match (outcome, error) {
            (_, Some(error)) => {
                record.set_attribute("error.type", error.error_type.clone());
                record.fail(error);
            }
            (StreamOutcome::Cancelled, None) => record.status = Status::default(),
            _ => {}
        }
        record
    }

    /// The stream ended (the body is exhausted). A chat stream that stopped
    /// before `[DONE]` with a choice unfinished is recorded as an error.
    pub fn finish(self) -> Record {
        let unfinished = !self.done
            && self.error.is_none()
            && match self.call.operation {
                Operation::Responses => true,
                _ => self.choices.is_empty() || self.choices.iter().any(|c| c.finish_reason.is_none()),
            };
        if unfinished {
            let error = ErrorInfo::new("incomplete_stream", "the stream ended before its last event");
            return self.into_record(StreamOutcome::Error, Some(error));
        }
        self.into_record(StreamOutcome::Completed, None)
    }

    /// The stream broke (connection error, timeout, a client-side error);
    /// what arrived is kept.
    pub fn fail(self, error: ErrorInfo) -> Record {
        self.into_record(StreamOutcome::Error, Some(error))
    }

    /// The caller dropped the stream before its end; what arrived is kept.
    pub fn cancel(self) -> Record {
        if self.done {
            return self.finish();
        }
        self.into_record(StreamOutcome::Cancelled, None)
    }
}

/// Ends a stream's record exactly once, whatever happens to the stream, and
/// hands it to the emit target it was made with: [`finish`](Self::finish),
/// [`fail`](Self::fail), [`cancel`](Self::cancel), or, when it is dropped
/// first (the caller broke out of the loop, the task was cancelled),
/// recorded as cancelled. Wrap it in the stream type a client returns.
///
/// ```
/// use anosys::sources::openai::{CaptureOptions, OpenAiCall, StreamRecorder};
/// use std::sync::{Arc, Mutex};
///
/// let got = Arc::new(Mutex::new(Vec::new()));
/// let sink = got.clone();
/// let request = serde_json::json!({"model": "gpt-4", "stream": true, "messages": []});
/// let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default());
/// let mut recorder = StreamRecorder::new(call.into_stream(), move |r| sink.lock().unwrap().push(r));
/// recorder.push_bytes(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\n");
/// drop(recorder); // the caller stopped reading
/// let records = got.lock().unwrap();
/// assert_eq!(records.len(), 1);
/// assert_eq!(records[0].attribute("anosys.outcome"), Some(&serde_json::json!("cancelled")));
/// ```
pub struct StreamRecorder {
    state: Option<(StreamAccumulator, Emit)>,
}

/// Where a finished stream's record goes.
type Emit = Box<dyn FnOnce(Record) + Send>;

impl std::fmt::Debug for StreamRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRecorder").field("open", &self.state.is_some()).finish()
    }
}

impl StreamRecorder {
    /// Records through `emit` (usually [`crate::capture`]).
    pub fn new(accumulator: StreamAccumulator, emit: impl FnOnce(Record) + Send + 'static) -> Self {
        StreamRecorder { state: Some((accumulator, Box::new(emit))) }
    }

    /// The accumulator, while the stream is open.
    pub fn accumulator(&mut self) -> Option<&mut StreamAccumulator> {
        self.state.as_mut().map(|(a, _)| a)
    }

    /// Feeds raw SSE bytes (ignored once the record is ended).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if let Some(a) = self.accumulator() {
            a.push_bytes(bytes);
        }
    }

    /// The stream is exhausted: ends the record (once).
    pub fn finish(&mut self) {
        if let Some((a, emit)) = self.state.take() {
            emit(a.finish());
        }
    }

    /// The stream broke: ends the record as an error (once).
    pub fn fail(&mut self, error: ErrorInfo) {
        if let Some((a, emit)) = self.state.take() {
            emit(a.fail(error));
        }
    }

    /// The caller stopped reading: ends the record as cancelled (once),
    /// keeping what arrived.
    pub fn cancel(&mut self) {
        if let Some((a, emit)) = self.state.take() {
            emit(a.cancel());
        }
    }

    /// Whether the record was ended already.
    pub fn is_ended(&self) -> bool {
        self.state.is_none()
    }
}

impl Drop for StreamRecorder {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.cancel()));
    }
}
