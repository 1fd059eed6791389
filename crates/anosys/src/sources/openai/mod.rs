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
//! let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", &request, &CaptureOptions::default());
//! let response = json!({
//!     "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
//!     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
//!     "usage": {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10}
//! });
//! let record = call.finish_json(200, &response);
//! assert_eq!(record.name, "chat gpt-4o-mini");
//! assert_eq!(record.attribute("gen_ai.usage.output_tokens"), Some(&json!(2)));
//! assert_eq!(record.output, Some(json!("Hello!")));
//! ```

#[cfg(feature = "async-openai")]
#[cfg_attr(docsrs, doc(cfg(feature = "async-openai")))]
pub mod async_openai;
#[cfg(feature = "http-stream")]
mod body;
mod extract;
mod live;
pub mod messages;
pub mod sse;
mod stream;

use serde_json::{json, Value};

pub use live::LiveCall;
pub use stream::{StreamAccumulator, StreamOutcome, StreamRecorder};
#[cfg(feature = "http-stream")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-stream")))]
pub use body::{reqwest_message, ByteStream, RecordedBody};

use crate::record::{ErrorInfo, Record, RecordKind, SpanKind, Status};

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
pub fn provider_for_host(host: &str, port: Option<u16>) -> &'static str {
    let host = host.to_ascii_lowercase();
    let ends = |s: &str| host == s || host.ends_with(&format!(".{s}"));
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
    let Ok(parsed) = reqwest::Url::parse(url) else { return false };
    let op = Operation::from_path(parsed.path());
    let provider = options
        .provider
        .clone()
        .unwrap_or_else(|| provider_for_host(parsed.host_str().unwrap_or(""), parsed.port()).to_owned());
    let streaming = request.get("stream").and_then(Value::as_bool) == Some(true);
    if !options.inject_include_usage || !streaming || provider == "azure.ai.openai" {
        return false;
    }
    if !matches!(op, Operation::Chat | Operation::TextCompletion) {
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

/// One OpenAI-compatible call being captured: start it with the request,
/// finish it with the response (or an error), get its [`Record`].
#[derive(Debug, Clone)]
pub struct OpenAiCall {
    record: Record,
    operation: Operation,
    request: Option<Value>,
    streaming: bool,
    capture_content: bool,
    /// When the request started: time to first chunk counts from here.
    started: std::time::Instant,
}

impl OpenAiCall {
    /// Starts capturing a call to `url` with JSON `request`. Never fails:
    /// an unparsable URL or an odd request still gives a record.
    pub fn start(url: &str, request: &Value, options: &CaptureOptions) -> OpenAiCall {
        let kept = options.capture_content.then(|| request.clone());
        Self::start_inner(url, request, kept, options)
    }

    /// [`start`](Self::start) taking the request by value (saves a copy
    /// when content is captured).
    pub fn start_owned(url: &str, request: Value, options: &CaptureOptions) -> OpenAiCall {
        let mut call = Self::start_inner(url, &request, None, options);
        if options.capture_content {
            call.request = Some(request);
        }
        call
    }

    fn start_inner(url: &str, request: &Value, kept: Option<Value>, options: &CaptureOptions) -> OpenAiCall {
        let parsed = reqwest::Url::parse(url).ok();
        let path = parsed.as_ref().map_or("", |u| u.path());
        let operation = Operation::from_path(path);
        let operation_name = match operation {
            Operation::Other => path.trim_matches('/').rsplit('/').next().filter(|s| !s.is_empty()).unwrap_or("other").to_owned(),
            op => op.name().to_owned(),
        };
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| azure_deployment(path));
        let mut record = Record::new(RecordKind::LlmCall, span_name(&operation_name, model.as_deref())).with_current_parent();
        record.span_kind = SpanKind::Client;
        record.source = Some(options.source.clone());
        record.set_attribute("gen_ai.operation.name", operation_name.clone());
        let (host, port) = match &parsed {
            Some(u) => (u.host_str().unwrap_or("").to_owned(), u.port_or_known_default()),
            None => (String::new(), None),
        };
        let provider = options
            .provider
            .clone()
            .unwrap_or_else(|| provider_for_host(&host, parsed.as_ref().and_then(|u| u.port())).to_owned());
        record.set_attribute("gen_ai.provider.name", provider.clone());
        record.set_attribute("gen_ai.system", provider);
        if let Some(m) = &model {
            record.set_attribute("gen_ai.request.model", m.clone());
        }
        if !host.is_empty() {
            record.set_attribute("server.address", host);
        }
        if let Some(p) = port {
            record.set_attribute("server.port", p);
        }
        let streaming = request.get("stream").and_then(Value::as_bool) == Some(true);
        if streaming {
            record.set_attribute("gen_ai.request.stream", true);
        }
        record.set_attribute("is_streaming", streaming);
        extract::request_attributes(&mut record, operation, request);
        if options.capture_content {
            extract::request_content(&mut record, operation, request);
        }
        OpenAiCall {
            started: std::time::Instant::now(),
            record,
            operation,
            request: kept,
            streaming,
            capture_content: options.capture_content,
        }
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

    /// Finishes with an HTTP status and a body that should be JSON; a body
    /// that is not is kept as text and marked.
    pub fn finish(self, status: u16, body: &[u8]) -> Record {
        match serde_json::from_slice::<Value>(body) {
            Ok(v) => self.finish_owned(status, v),
            Err(_) => {
                let text = String::from_utf8_lossy(body).into_owned();
                let mut call = self;
                call.record.set_attribute("anosys.response.malformed", true);
                if status >= 400 {
                    call.record.set_attribute("http.response.status_code", status);
                    let message = if text.trim().is_empty() { format!("HTTP {status}") } else { text.clone() };
                    call.raw(Value::String(text));
                    call.error(status.to_string(), message)
                } else {
                    call.finish_owned(status, Value::String(text))
                }
            }
        }
    }

    /// Finishes with an HTTP status and its parsed JSON body. Status 400 and
    /// above, or an `{"error": …}` body, make an error record.
    pub fn finish_json(self, status: u16, response: &Value) -> Record {
        self.finish_owned(status, response.clone())
    }

    /// [`finish_json`](Self::finish_json) taking the body by value.
    pub fn finish_owned(mut self, status: u16, response: Value) -> Record {
        if status != 0 {
            self.record.set_attribute("http.response.status_code", status);
        }
        let api_error = response.get("error").filter(|e| e.is_object() && response.get("choices").is_none());
        if status >= 400 || api_error.is_some() {
            let (error_type, message) = error_of(status, &response);
            self.raw(extract::raw_response(self.operation, response));
            return self.error(error_type, message);
        }
        let found = extract::response(&mut self.record, self.operation, &response, self.capture_content);
        self.record.set_attribute("anosys.usage.source", if found { "provider" } else { "missing" });
        self.raw(extract::raw_response(self.operation, response));
        self.record.finish(Status::ok());
        self.record
    }

    /// Finishes a call that got no HTTP response: a connection error, a
    /// timeout, a cancelled request.
    pub fn fail(self, error_type: impl Into<String>, message: impl Into<String>) -> Record {
        self.error(error_type.into(), message.into())
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

    /// Keeps the request and `response` as the record's `raw` (when content
    /// is captured). Called once, as the call ends.
    fn raw(&mut self, response: Value) {
        if let Some(request) = self.request.take() {
            self.record.raw = Some(messages::object([("request", request), ("response", response)]));
        }
    }

    fn error(mut self, error_type: String, message: String) -> Record {
        self.record.set_attribute("error.type", error_type.clone());
        self.record.finish(Status::default());
        self.record.fail(ErrorInfo { error_type, message, stack: None });
        self.record
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

/// `(error.type, message)` of an error response: the API's error code (or
/// type), else the HTTP status.
fn error_of(status: u16, body: &Value) -> (String, String) {
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
    (error_type, message)
}
