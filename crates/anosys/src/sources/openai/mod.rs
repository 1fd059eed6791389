//! OpenAI-compatible calls → records, named by the OpenTelemetry GenAI
//! semantic conventions (v1.41) and carrying the AnoSys legacy fields.
//!
//! This is the one place that parses OpenAI payloads: the Rust client, the
//! proxy and the Python and Node packages all go through [`OpenAiCall`]
//! (JSON in, [`Record`] out) and, for streams, [`StreamAccumulator`].
//!
//! ```
//! use anosys::sources::openai::{CaptureOptions, OpenAiCall};
//! use serde_json::json;
//!
//! let request = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]});
//! let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default());
//! let response = json!({
//!     "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
//!     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
//!     "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}
//! });
//! let record = call.finish(200, response);
//! assert_eq!(record.name, "chat gpt-4o-mini");
//! assert_eq!(record.attribute("gen_ai.usage.output_tokens"), Some(&json!(2)));
//! assert_eq!(record.output().as_deref(), Some(&json!("Hello!")));
//! ```

#[cfg(feature = "async-openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-openai")))]
pub mod async_openai;
#[cfg(feature = "http-stream")]
mod body;
pub(crate) mod deferred;
mod endpoint;
mod extract;
mod live;
pub mod messages;
pub mod sse;
mod stream;
mod view;

use std::borrow::Cow;

use serde_json::{json, Value};

use endpoint::Endpoint;

/// For the language bindings: see [`crate::embed`].
#[doc(hidden)]
pub use live::LiveCall;
/// For the language bindings: see [`crate::embed`].
#[doc(hidden)]
pub use deferred::{DeferredCall, PlainCall, RequestJson, ResponseJson, EVENT_SEPARATOR, STREAM_KEPT_MAX};
pub use stream::{StreamAccumulator, StreamOutcome, StreamRecorder};
#[cfg(feature = "http-stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-stream")))]
pub use body::{error_text, is_timeout, read_error, reqwest_message, BodyError, ByteStream, RecordedBody};

use crate::record::{ErrorInfo, JsonText, Record, RecordKind, SpanKind, Status};

/// The OpenAI API operation a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `POST …/chat/completions`
    Chat,
    /// `POST …/completions` (legacy)
    TextCompletion,
    /// `POST …/embeddings`
    Embeddings,
    /// `POST …/images/generations`
    ImageGeneration,
    /// `POST …/responses`
    Responses,
    /// Anything else: recorded with its request and response.
    Other,
}

impl Operation {
    /// The operation of a URL path (query ignored), Azure deployment paths
    /// included.
    pub fn from_path(path: &str) -> Operation {
        let path = path.split('?').next().unwrap_or("").trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            Operation::Chat
        } else if path.ends_with("/completions") {
            Operation::TextCompletion
        } else if path.ends_with("/embeddings") {
            Operation::Embeddings
        } else if path.ends_with("/images/generations") {
            Operation::ImageGeneration
        } else if path.ends_with("/responses") {
            Operation::Responses
        } else {
            Operation::Other
        }
    }

    /// `gen_ai.operation.name`: `chat`, `text_completion`, `embeddings`,
    /// `generate_content` (images); the Responses API is `chat`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Chat | Operation::Responses => "chat",
            Operation::TextCompletion => "text_completion",
            Operation::Embeddings => "embeddings",
            Operation::ImageGeneration => "generate_content",
            Operation::Other => "other",
        }
    }
}

/// How calls are captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOptions {
    /// Capture prompts, replies and raw payloads (on by default).
    pub capture_content: bool,
    /// `gen_ai.provider.name`; by default guessed from the host (Azure,
    /// Groq, Mistral, DeepSeek, …), else `openai`.
    pub provider: Option<String>,
    /// The record's `source`.
    pub source: String,
    /// Ask for usage in streams by adding `stream_options.include_usage`
    /// (see [`prepare_request`]). Off by default: it changes what the
    /// caller receives (one more chunk, with no choices).
    pub inject_include_usage: bool,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions { capture_content: true, provider: None, source: "openai".into(), inject_include_usage: false }
    }
}

/// `gen_ai.provider.name` for a host the well-known providers use.
///
/// ```
/// use anosys::sources::openai::provider_for_host;
/// assert_eq!(provider_for_host("groq.com", None), "groq");
/// assert_eq!(provider_for_host("api.GROQ.com", None), "groq");
/// assert_eq!(provider_for_host("my.openai.azure.com", None), "azure.ai.openai");
/// assert_eq!(provider_for_host("notgroq.com", None), "openai");
/// assert_eq!(provider_for_host("localhost", Some(11434)), "ollama");
/// ```
pub fn provider_for_host(host: &str, port: Option<u16>) -> &'static str {
    // `host` is `s` or ends with `.s`, in any case.
    let ends = |s: &str| {
        let Some(start) = host.len().checked_sub(s.len()) else { return false };
        host.get(start..).is_some_and(|tail| tail.eq_ignore_ascii_case(s))
            && (start == 0 || host.as_bytes()[start - 1] == b'.')
    };
    if ends("openai.azure.com") || ends("cognitiveservices.azure.com") {
        "azure.ai.openai"
    } else if ends("groq.com") {
        "groq"
    } else if ends("deepseek.com") {
        "deepseek"
    } else if ends("mistral.ai") {
        "mistral_ai"
    } else if ends("x.ai") {
        "x_ai"
    } else if ends("perplexity.ai") {
        "perplexity"
    } else if ends("generativelanguage.googleapis.com") {
        "gcp.gemini"
    } else if port == Some(11434) {
        "ollama"
    } else {
        "openai"
    }
}

/// Adds `stream_options.include_usage = true` to a streaming chat or
/// completion request when `options` ask for it and the provider accepts it
/// (not Azure, which rejects it on some API versions). Returns whether the
/// request was changed.
pub fn prepare_request(url: &str, request: &mut Value, options: &CaptureOptions) -> bool {
    if !options.inject_include_usage {
        return false;
    }
    let target = Target::of(url, &view::of_value(request), options);
    if !target.streaming || target.provider == "azure.ai.openai" {
        return false;
    }
    if !matches!(target.operation, Operation::Chat | Operation::TextCompletion) {
        return false;
    }
    let Some(obj) = request.as_object_mut() else { return false };
    let so = obj.entry("stream_options").or_insert_with(|| json!({}));
    match so.as_object_mut() {
        Some(so) if so.get("include_usage") != Some(&Value::Bool(true)) => {
            so.insert("include_usage".into(), Value::Bool(true));
            true
        }
        _ => false,
    }
}

/// What a call's URL and request say about it, read the same way for
/// [`prepare_request`] and [`OpenAiCall::start`].
struct Target<'a> {
    /// Host, port and path; `None` when the URL could not be read.
    endpoint: Option<Endpoint<'a>>,
    operation: Operation,
    /// `gen_ai.provider.name`: the configured one, else the host's.
    provider: &'a str,
    /// Whether the request asks for a stream (`"stream": true`).
    streaming: bool,
}

impl<'a> Target<'a> {
    fn of(url: &'a str, request: &view::RequestView<'_>, options: &'a CaptureOptions) -> Target<'a> {
        let endpoint = Endpoint::parse(url);
        let operation = Operation::from_path(endpoint.as_ref().map_or("", |e| &e.path));
        let provider = options.provider.as_deref().unwrap_or_else(|| {
            let (host, port) = endpoint.as_ref().map_or(("", None), |e| (&*e.host, e.port));
            provider_for_host(host, port)
        });
        let streaming = request.stream.0 == Some(true);
        Target { endpoint, operation, provider, streaming }
    }
}

/// A response body as the caller has it, for [`OpenAiCall::finish`]: the
/// bytes read off the wire (JSON expected; anything else is kept as text
/// and marked), JSON text a client handed over, or JSON a client already
/// parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseBody<'a> {
    /// The raw body.
    Bytes(&'a [u8]),
    /// JSON text (a model serialised by a client library): read as
    /// [`Bytes`](Self::Bytes) are, but text that is not JSON is kept as a
    /// plain string, unmarked, as if it had been parsed into one.
    Text(&'a str),
    /// The parsed body.
    Json(Value),
}

/// A request body as the caller has it, for [`OpenAiCall::start`]: the
/// bytes sent on the wire, JSON text a client handed over, or JSON a
/// client already parsed. Bytes and text are read without building a
/// `Value`, and kept, when content is captured, as their text
/// ([`Record::request_text`]).
#[derive(Debug, Clone, PartialEq)]
pub enum RequestBody<'a> {
    /// The raw body (one that is not JSON, a multipart upload, is not
    /// kept).
    Bytes(&'a [u8]),
    /// JSON text (a request serialised by a client library): read as
    /// [`Bytes`](Self::Bytes) are, but text that is not JSON is kept as a
    /// plain string.
    Text(&'a str),
    /// The parsed body.
    Json(Value),
}

/// The forms a body converts from, for [`RequestBody`] and
/// [`ResponseBody`]: text, bytes, and a parsed `Value`.
macro_rules! body_from {
    ($body:ident) => {
        impl<'a> From<&'a str> for $body<'a> {
            fn from(text: &'a str) -> Self {
                $body::Text(text)
            }
        }

        impl<'a> From<&'a [u8]> for $body<'a> {
            fn from(bytes: &'a [u8]) -> Self {
                $body::Bytes(bytes)
            }
        }

        impl<'a, const N: usize> From<&'a [u8; N]> for $body<'a> {
            fn from(bytes: &'a [u8; N]) -> Self {
                $body::Bytes(bytes)
            }
        }

        impl<'a> From<&'a Vec<u8>> for $body<'a> {
            fn from(bytes: &'a Vec<u8>) -> Self {
                $body::Bytes(bytes)
            }
        }

        impl From<Value> for $body<'_> {
            fn from(json: Value) -> Self {
                $body::Json(json)
            }
        }
    };
}

body_from!(ResponseBody);
body_from!(RequestBody);

/// How a call's request is kept.
enum RequestKept {
    Value(Value),
    Text(JsonText),
}

/// One OpenAI-compatible call being captured: start it with the request,
/// finish it with the response (or an error), get its [`Record`].
#[derive(Debug, Clone)]
pub struct OpenAiCall {
    record: Record,
    operation: Operation,
    streaming: bool,
    capture_content: bool,
    /// When the request started: time to first chunk counts from here.
    started: std::time::Instant,
}

impl OpenAiCall {
    /// Starts capturing a call to `url` with `request` (bytes, JSON text or
    /// a parsed `Value`; kept, when content is captured, as the record's
    /// `raw.request`). Never fails: an unparsable URL or an odd request
    /// still gives a record.
    ///
    /// A request given as bytes or text is read straight from them, and
    /// kept as its compacted text ([`Record::request_text`]): a long chat
    /// history is not built into a `Value` to be written out again.
    ///
    /// ```
    /// use anosys::sources::openai::{CaptureOptions, OpenAiCall};
    ///
    /// let sent = br#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}"#;
    /// let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", sent, &CaptureOptions::default());
    /// let record = call.record();
    /// assert_eq!(record.attribute("gen_ai.request.model"), Some(&"gpt-4o-mini".into()));
    /// assert_eq!(record.input().unwrap()[0]["content"], "Hi");
    /// assert_eq!(record.raw_json().unwrap()["request"]["model"], "gpt-4o-mini");
    /// ```
    pub fn start<'a>(url: &str, request: impl Into<RequestBody<'a>>, options: &CaptureOptions) -> OpenAiCall {
        let (bytes, not_json_is_text) = match request.into() {
            RequestBody::Json(request) => return OpenAiCall::start_value(url, request, options),
            RequestBody::Bytes(bytes) => (bytes, false),
            RequestBody::Text(text) => (text.as_bytes(), true),
        };
        if let Some(view) = view::of_bytes::<view::RequestView>(bytes) {
            // serde_json does not look at the bytes of a string it skips:
            // bytes that are not UTF-8 (so not JSON) go the parsed way, as
            // `null`. Kept as text, they are checked while compacted (the
            // view read them whole: they are JSON, not checked again).
            let kept = match options.capture_content {
                true => JsonText::compact_read(bytes).map(Some),
                false => (not_json_is_text || std::str::from_utf8(bytes).is_ok()).then_some(None),
            };
            if let Some(text) = kept {
                let mut call = OpenAiCall::begin(url, &view, options);
                drop(view);
                if let Some(text) = text {
                    call.keep_request(RequestKept::Text(text));
                }
                return call;
            }
        }
        // Not JSON, or a key the view reads written twice: parsed as a
        // whole (text that is not JSON kept as a string, bytes dropped).
        let request = match view::parse_value(bytes) {
            Ok(request) => request,
            Err(_) if not_json_is_text => Value::String(String::from_utf8_lossy(bytes).into_owned()),
            Err(_) => Value::Null,
        };
        OpenAiCall::start_value(url, request, options)
    }

    /// [`start`](Self::start) with a parsed request.
    fn start_value(url: &str, request: Value, options: &CaptureOptions) -> OpenAiCall {
        let view: view::RequestView = view::of_value(&request);
        let mut call = OpenAiCall::begin(url, &view, options);
        drop(view);
        if options.capture_content {
            call.keep_request(RequestKept::Value(request));
        }
        call
    }

    /// The call's record as the request's `view` starts it, without the
    /// request's content.
    fn begin(url: &str, view: &view::RequestView<'_>, options: &CaptureOptions) -> OpenAiCall {
        let Target { endpoint, operation, provider, streaming } = Target::of(url, view, options);
        let path = endpoint.as_ref().map_or("", |e| &e.path);
        let operation_name = match operation {
            Operation::Other => path.trim_matches('/').rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("other"),
            op => op.name(),
        };
        let model = match view.model.get() {
            Some(model) => Some(Cow::Borrowed(model)),
            None => azure_deployment(path).map(Cow::Owned),
        };
        let mut record =
            Record::new(RecordKind::LlmCall, span_name(operation_name, model.as_deref())).with_current_parent();
        record.span_kind = SpanKind::Client;
        record.source = Some(options.source.clone());
        record.set_attribute("gen_ai.operation.name", operation_name.to_owned());
        record.set_attribute("gen_ai.provider.name", provider.to_owned());
        record.set_attribute("gen_ai.system", provider.to_owned());
        if let Some(m) = model {
            record.set_attribute("gen_ai.request.model", m.into_owned());
        }
        if let Some(e) = &endpoint {
            if !e.host.is_empty() {
                record.set_attribute("server.address", e.host.as_ref().to_owned());
            }
            if let Some(p) = e.known_port {
                record.set_attribute("server.port", p);
            }
        }
        if streaming {
            record.set_attribute("gen_ai.request.stream", true);
        }
        record.set_attribute("is_streaming", streaming);
        extract::request_attributes(&mut record, operation, view);
        OpenAiCall {
            started: std::time::Instant::now(),
            record,
            operation,
            streaming,
            capture_content: options.capture_content,
        }
    }

    /// Keeps the request once, as sent: the record's input, input
    /// messages, instructions and tool definitions are read from it
    /// (`Record::input_in_raw`). `raw` is the object the response joins.
    fn keep_request(&mut self, request: RequestKept) {
        let record = &mut self.record;
        match request {
            RequestKept::Value(request) => record.raw = Some(messages::object([("request", request)])),
            RequestKept::Text(text) => {
                record.raw = Some(Value::Object(serde_json::Map::new()));
                record.request_text = Some(text);
            }
        }
        record.input_in_raw = Some(extract::request_shape(self.operation));
    }

    /// Sets when the request was sent, for a call started later than that
    /// (its record made off the request's path): a stream's time to first
    /// chunk counts from here. The record's `start_time` is set apart
    /// ([`record_mut`](Self::record_mut)).
    ///
    /// ```
    /// use anosys::sources::openai::{CaptureOptions, OpenAiCall};
    /// use std::time::{Duration, Instant};
    ///
    /// let sent = Instant::now();
    /// let request = serde_json::json!({"model": "gpt-4o-mini", "stream": true, "messages": []});
    /// let mut call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default());
    /// call.set_sent_at(sent);
    /// let mut stream = call.into_stream();
    /// let event = b"data: {\"id\":\"c\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    /// stream.push_bytes_at(event, sent + Duration::from_millis(250));
    /// let record = stream.finish();
    /// assert_eq!(record.attribute("gen_ai.response.time_to_first_chunk"), Some(&serde_json::json!(0.25)));
    /// ```
    pub fn set_sent_at(&mut self, at: std::time::Instant) {
        self.started = at;
    }

    /// The operation.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// Whether the request asked for a stream.
    pub fn is_streaming(&self) -> bool {
        self.streaming
    }

    /// The record so far.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The record so far, to add what the caller knows (a source, a user,
    /// a remote parent) before the call ends.
    pub fn record_mut(&mut self) -> &mut Record {
        &mut self.record
    }

    /// Finishes with the HTTP status and the response body, raw or parsed
    /// (see [`ResponseBody`]). Status 400 and above, or an `{"error": …}`
    /// body, make an error record; a raw body that is not JSON is kept as
    /// text and marked.
    pub fn finish<'a>(mut self, status: u16, body: impl Into<ResponseBody<'a>>) -> Record {
        let (bytes, not_json_is_text) = match body.into() {
            ResponseBody::Json(v) => return self.finish_value(status, v),
            ResponseBody::Bytes(bytes) => (bytes, false),
            ResponseBody::Text(text) => (text.as_bytes(), true),
        };
        // A successful answer's attributes are read straight from its
        // bytes, and the answer is kept as its text: no `Value` is built
        // (unless parts of it are to be trimmed).
        if status < 400
            && let Some(view) = view::of_bytes::<view::ResponseView>(bytes)
            && !view.is_api_error()
        {
            if !self.capture_content {
                return self.finish_ok(status, view);
            }
            // The view read `bytes` whole: they are JSON (not checked again).
            if !extract::trims_response(self.operation)
                && let Some(text) = JsonText::compact_read(bytes)
            {
                let mut record = self.finish_ok(status, view);
                // Where `keep_response` would put it.
                if let Some(Value::Object(_)) = &record.raw {
                    record.response_text = Some(text);
                }
                return record;
            }
        }
        match view::parse_value(bytes) {
            Ok(v) => self.finish_value(status, v),
            Err(_) => {
                let text = String::from_utf8_lossy(bytes).into_owned();
                if not_json_is_text {
                    return self.finish_value(status, Value::String(text));
                }
                self.record.set_attribute("anosys.response.malformed", true);
                if status >= 400 {
                    self.record.set_attribute("http.response.status_code", status);
                    let message = if text.trim().is_empty() { format!("HTTP {status}") } else { text.clone() };
                    keep_response(&mut self.record, self.capture_content, self.operation, Value::String(text));
                    return self.fail(ErrorInfo::new(status.to_string(), message));
                }
                self.finish_value(status, Value::String(text))
            }
        }
    }

    /// Ends the call with its answer parsed.
    fn finish_value(mut self, status: u16, response: Value) -> Record {
        let view: view::ResponseView = view::of_value(&response);
        if status >= 400 || view.is_api_error() {
            drop(view);
            if status != 0 {
                self.record.set_attribute("http.response.status_code", status);
            }
            let error = error_of(status, &response);
            keep_response(&mut self.record, self.capture_content, self.operation, response);
            return self.fail(error);
        }
        let (operation, keep) = (self.operation, self.capture_content);
        let mut record = self.finish_ok(status, view);
        keep_response(&mut record, keep, operation, response);
        record
    }

    /// Ends a successful call with the attributes `response` gives.
    fn finish_ok(mut self, status: u16, response: view::ResponseView<'_>) -> Record {
        if status != 0 {
            self.record.set_attribute("http.response.status_code", status);
        }
        let found = extract::response(&mut self.record, self.operation, response, self.capture_content);
        self.record.set_attribute("anosys.usage.source", if found { "provider" } else { "missing" });
        self.record.finish(Status::ok());
        self.record
    }

    /// Finishes a call that got no usable HTTP response (a connection
    /// error, a timeout, a body that could not be read), or whose error
    /// response was already made into `error`.
    pub fn fail(mut self, error: ErrorInfo) -> Record {
        self.record.set_attribute("error.type", error.error_type.clone());
        self.record.finish(Status::default());
        self.record.fail(error);
        self.record
    }

    /// The caller went away before the response ended (status `UNSET`,
    /// `anosys.outcome = "cancelled"`, as for an abandoned stream).
    pub fn cancel(mut self) -> Record {
        self.record.set_attribute("anosys.outcome", "cancelled");
        self.record.finish(Status::default());
        self.record
    }

    /// Turns the call into an accumulator for its streamed response.
    pub fn into_stream(self) -> StreamAccumulator {
        StreamAccumulator::new(self)
    }
}

/// Keeps `response` of a call of `operation` beside the request in
/// `record`'s `raw` (when content is captured), as
/// [`extract::raw_response`] trims it. Called once, as a call ends.
fn keep_response(record: &mut Record, capture_content: bool, operation: Operation, response: Value) {
    if capture_content
        && let Some(Value::Object(raw)) = &mut record.raw
    {
        raw.insert("response".into(), extract::raw_response(operation, response));
    }
}

fn span_name(operation: &str, model: Option<&str>) -> String {
    match model {
        Some(m) => format!("{operation} {m}"),
        None => operation.to_owned(),
    }
}

/// The deployment of an Azure path `/openai/deployments/{name}/…`.
fn azure_deployment(path: &str) -> Option<String> {
    let mut parts = path.split('/');
    parts.find(|p| *p == "deployments")?;
    parts.next().filter(|d| !d.is_empty()).map(str::to_owned)
}

/// The error of an error response: the API's error code (or type), else
/// the HTTP status, and its message.
fn error_of(status: u16, body: &Value) -> ErrorInfo {
    let error = body.get("error");
    let field = |k: &str| error.and_then(|e| e.get(k)).and_then(Value::as_str).filter(|s| !s.is_empty());
    let code = error.and_then(|e| e.get("code")).and_then(|c| match c {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let error_type = code
        .or_else(|| field("type").map(str::to_owned))
        .unwrap_or_else(|| if status == 0 { "error".into() } else { status.to_string() });
    let message = field("message")
        .map(str::to_owned)
        .or_else(|| error.and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {status}"));
    ErrorInfo::new(error_type, message)
}
