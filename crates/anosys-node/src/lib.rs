//! The native addon of the `anosys` npm package.
//!
//! The JavaScript side (`lib/`) decides *what* to capture: it wraps the
//! `openai` client's methods and decorated functions, and hands requests,
//! responses, streamed events, inputs and outputs over as JSON text
//! (`JSON.stringify` is V8's fastest way out). Everything else runs here, in
//! the same code the Rust client, the proxy and the Python package use:
//! OpenAI JSON → GenAI semantic-convention extraction and stream
//! aggregation ([`anosys::embed::LiveCall`]), the function-record
//! shape ([`anosys::embed::LiveFunctionCall`]) and the
//! non-blocking delivery pipeline.

use std::collections::HashMap;
use std::time::Duration;

use anosys::embed::{DeferredCall, LiveFunctionCall, PlainCall, RequestJson, ResponseJson};
use anosys::sources::openai::{CaptureOptions, RequestBody, ResponseBody};
use anosys::{Caller, ErrorInfo, Record, SpanId, StartingIndices, TraceId};
use napi::bindgen_prelude::*;
use napi::JsString;
use napi_derive::napi;
use serde_json::{json, Value};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Parses JSON text from JavaScript; text that is not JSON is kept as a
/// string (never an error: capture must not break the caller).
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn millis(timeout_ms: Option<f64>) -> Option<Duration> {
    timeout_ms.map(|t| if t.is_finite() && t > 0.0 { Duration::from_secs_f64(t.min(86_400_000.0) / 1000.0) } else { Duration::ZERO })
}

fn report(report: anosys::FlushReport) -> Value {
    let mut value = serde_json::to_value(report.counters).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut value {
        m.insert("pending".into(), json!(report.pending));
        m.insert("completed".into(), json!(report.completed));
    }
    value
}

fn flush_now(timeout: Option<Duration>) -> Value {
    report(anosys::flush(timeout))
}

/// A flush on libuv's thread pool: the event loop keeps running.
pub struct FlushTask(Option<Duration>);

impl Task for FlushTask {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        Ok(flush_now(self.0).to_string())
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }
}

/// Delivers everything captured so far, waiting up to `timeoutMs`
/// (default: the configured shutdown timeout) off the main thread.
/// Resolves to the JSON text of the pipeline's counters with `pending` and
/// `completed`.
#[napi]
pub fn flush(timeout_ms: Option<f64>) -> AsyncTask<FlushTask> {
    AsyncTask::new(FlushTask(millis(timeout_ms)))
}

/// [`flush`], blocking: for the `exit` event, where nothing async runs.
#[napi(ts_return_type = "Record<string, number | boolean>")]
pub fn flush_sync(timeout_ms: Option<f64>) -> Value {
    flush_now(millis(timeout_ms))
}

/// Shuts the pipeline down, delivering what it holds (up to `timeoutMs`;
/// default: the configured shutdown timeout). A later capture starts a new
/// one.
#[napi(ts_return_type = "Record<string, number | boolean>")]
pub fn shutdown_sync(timeout_ms: Option<f64>) -> Value {
    report(anosys::shutdown(millis(timeout_ms)))
}

/// The pipeline's counters (captured, delivered, dropped by reason).
#[napi(ts_return_type = "Record<string, number>")]
pub fn counters() -> Value {
    serde_json::to_value(anosys::counters()).unwrap_or_else(|_| json!({}))
}

/// Logs arbitrary data (JSON text) as one record.
#[napi]
pub fn log_raw(env: Env, json: String) -> bool {
    submit(&env, Some(anosys::sources::raw::raw_record(parse(&json))))
}

/// Captures finished OpenTelemetry spans, JSON text of an array of spans in
/// the shape of `anosys::sources::span::FinishedSpan` (made by
/// `lib/otel.js`): the same mapping as the Rust exporter's. Returns how
/// many were taken.
#[napi]
pub fn capture_spans(env: Env, json: String) -> u32 {
    let Ok(Value::Array(spans)) = serde_json::from_str::<Value>(&json) else { return 0 };
    let records = anosys::sources::span::records_from_json(spans);
    records.into_iter().map(|r| submit(&env, Some(r))).filter(|&kept| kept).count() as u32
}

/// Where to send, and the first dynamic slot per type. Throws for an
/// invalid setting.
#[napi]
pub fn setup_api(path: Option<String>, starting_indices: Option<HashMap<String, f64>>) -> Result<()> {
    let indices = match starting_indices {
        None => None,
        Some(map) => {
            let mut si = StartingIndices::default();
            for (kind, n) in map {
                if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX)) {
                    return Err(Error::new(
                        Status::InvalidArg,
                        format!("startingIndices.{kind} must be a non-negative integer, not {n}"),
                    ));
                }
                si.set(&kind, n as u32).map_err(|e| Error::new(Status::InvalidArg, e.to_string()))?;
            }
            Some(si)
        }
    };
    anosys::compat::setup_api(path.as_deref(), indices).map_err(|e| Error::new(Status::InvalidArg, anosys::ErrorInfo::from_error(&e).one_line()))
}

/// Whether prompts, replies, inputs and outputs are captured.
#[napi]
pub fn capture_content_enabled() -> bool {
    anosys::embed::capture_content_enabled()
}

/// Names the SDK and the application in the resource of pipelines started
/// from now on: `telemetry.sdk.language = "nodejs"`, the package version,
/// and the application's `service.name` and `service.version` (from its
/// package.json) unless `OTEL_SERVICE_NAME` or the configuration say
/// otherwise.
#[napi]
pub fn set_sdk_identity(version: String, service_name: Option<String>, service_version: Option<String>) {
    let extra = service_version.map(|v| vec![("service.version".to_owned(), Value::String(v))]).unwrap_or_default();
    anosys::embed::set_sdk_identity("nodejs", &version, service_name.as_deref(), extra);
}

/// Sends a finished record to the global pipeline (`None`: the call had
/// ended already), through the `beforeSend` callback when one is set;
/// returns whether the pipeline took it.
fn submit(env: &Env, record: Option<Record>) -> bool {
    let Some(record) = record else { return false };
    if BEFORE_SEND.with(|h| h.borrow().is_none()) {
        return anosys::capture(record);
    }
    anosys::embed::capture_through(record, &|r: &mut Record| before_send(env, r))
}

thread_local! {
    /// The JavaScript `beforeSend` callback (see `lib/runtime.js`): it takes
    /// the record's JSON text and answers `null` (drop), `"true"` (keep as
    /// it is) or the changed record's JSON text. It lives on the JavaScript
    /// thread, the only one that captures records.
    static BEFORE_SEND: std::cell::RefCell<Option<FunctionRef<String, Option<String>>>> = const { std::cell::RefCell::new(None) };
}

/// Sets (or, with no function, removes) the callback every record goes
/// through before it is queued (see `BEFORE_SEND`).
#[napi]
pub fn set_before_send(callback: Option<Function<String, Option<String>>>) -> Result<()> {
    let callback = callback.map(|f| f.create_ref()).transpose()?;
    BEFORE_SEND.with(|h| *h.borrow_mut() = callback);
    Ok(())
}

fn before_send(env: &Env, record: &mut Record) -> bool {
    let complain = |what: String| {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| eprintln!("anosys: the beforeSend callback {what}; the records it fails on are dropped"));
        false
    };
    let Ok(text) = serde_json::to_string(&*record) else {
        return complain("got a record that could not be shown to it".into());
    };
    let answer = BEFORE_SEND.with(|h| match h.borrow().as_ref() {
        None => Ok(Some("true".to_owned())),
        Some(f) => f.borrow_back(env).and_then(|f| f.call(text)),
    });
    match answer.as_ref().map(Option::as_deref) {
        Err(e) => complain(format!("threw {}", e.reason)),
        Ok(None) => false,
        Ok(Some("true")) => true,
        Ok(Some(changed)) => match serde_json::from_str::<Record>(changed) {
            Ok(changed) => {
                *record = changed;
                true
            }
            Err(e) => complain(format!("returned something that is not a record ({e})")),
        },
    }
}

/// The engine's version.
#[napi]
pub fn engine_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

fn parent_of(trace_id: Option<String>, span_id: Option<String>) -> Option<(TraceId, SpanId)> {
    Some((TraceId::from_hex(&trace_id?)?, SpanId::from_hex(&span_id?)?))
}

/// One call of a decorated function, from entry to return or throw.
/// Garbage-collected unfinished, it is recorded as cancelled.
#[napi(custom_finalize)]
pub struct FunctionCall(LiveFunctionCall);

impl ObjectFinalize for FunctionCall {
    fn finalize(mut self, env: Env) -> Result<()> {
        submit(&env, self.0.cancel());
        Ok(())
    }
}

#[napi]
impl FunctionCall {
    /// Starts the record. `input` is the JSON text of the inputs, given
    /// only when content is captured.
    #[napi(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        source: String,
        file: String,
        line: u32,
        caller_function: Option<String>,
        caller_file: String,
        caller_line: u32,
        parent_trace_id: Option<String>,
        parent_span_id: Option<String>,
        input: Option<String>,
    ) -> Self {
        let caller = Caller { function: caller_function, file: caller_file, line: caller_line };
        let parent = parent_of(parent_trace_id, parent_span_id);
        FunctionCall(LiveFunctionCall::start(&name, &source, &file, line, caller, parent, || {
            input.as_deref().map_or(Value::Null, parse)
        }))
    }

    /// The trace id (32 hex digits).
    #[napi(getter)]
    pub fn trace_id(&self) -> String {
        self.0.trace_id().to_string()
    }

    /// The span id (16 hex digits): children name it as their parent.
    #[napi(getter)]
    pub fn span_id(&self) -> String {
        self.0.span_id().to_string()
    }

    /// Whether inputs and outputs are captured.
    #[napi(getter)]
    pub fn content(&self) -> bool {
        self.0.content()
    }

    /// Ends the call with its return value (JSON text).
    #[napi]
    pub fn finish(&mut self, env: Env, output: Option<String>) -> bool {
        submit(&env, self.0.finish(|| output.as_deref().map_or(Value::Null, parse)))
    }

    /// Ends the call with a thrown error: its name, message and stack, and
    /// what it produced before (a generator's items, JSON text).
    #[napi]
    pub fn fail(
        &mut self,
        env: Env,
        error_type: String,
        message: String,
        stack: Option<String>,
        output: Option<String>,
    ) -> bool {
        if let Some(output) = output {
            self.0.set_output(|| parse(&output));
        }
        submit(&env, self.0.fail(ErrorInfo { stack, ..ErrorInfo::new(error_type, message) }))
    }

    /// Ends a call abandoned before it finished (a generator closed
    /// early), keeping what it produced (JSON text).
    #[napi]
    pub fn cancel(&mut self, env: Env, output: Option<String>) -> bool {
        if let Some(output) = output {
            self.0.set_output(|| parse(&output));
        }
        submit(&env, self.0.cancel())
    }
}

/// The [`DeferredCall`] of a call to `url` with `request` (JSON text),
/// sent `elapsed_ms` ago.
fn start_call(
    url: String,
    request: String,
    source: Option<String>,
    parent: Option<(TraceId, SpanId)>,
    user_context: Option<String>,
    elapsed_ms: Option<f64>,
    streaming: Option<bool>,
) -> DeferredCall {
    // What happens here (the engine set up on first use) counts as elapsed too.
    let entered = std::time::Instant::now();
    let options = CaptureOptions {
        capture_content: anosys::embed::capture_content_enabled(),
        source: source.unwrap_or_else(|| "openai".into()),
        ..CaptureOptions::default()
    };
    let request = RequestJson::Text(request);
    // Whether it streams, when the caller knows (a call recorded in one
    // step has its whole reply: it did not); else read from the request.
    let mut call = match streaming {
        Some(streams) => DeferredCall::start_known(url, request, options, parent, streams),
        None => DeferredCall::start(url, request, options, parent),
    };
    if let Some(user) = user_context {
        call.set_user_context(parse(&user));
    }
    call.backdate(millis(elapsed_ms).unwrap_or_default() + entered.elapsed());
    call
}

/// Records a whole plain (not streamed) call in one step, once its
/// response has come: the call to `url` with `request` (JSON text), sent
/// `elapsedMs` ago, answered with `status` and `response` (JSON text). The
/// event loop hands the text over; the record is made on the engine's
/// extraction thread (unless a `beforeSend` callback must see it here).
/// What a call that fails, is cancelled or streams goes through instead is
/// an [`OpenAiCall`]. Returns whether the record was handed over.
#[napi(js_name = "recordOpenAICall")]
#[allow(clippy::too_many_arguments)]
pub fn record_openai_call(
    env: Env,
    url: JsString,
    request: JsString,
    elapsed_ms: f64,
    status: u32,
    response: JsString,
    parent_trace_id: Option<String>,
    parent_span_id: Option<String>,
    user_context: Option<String>,
) -> Result<bool> {
    // What happens here (the engine set up on first use) counts as elapsed too.
    let entered = std::time::Instant::now();
    // The text is read into this thread's buffers, then copied into the
    // engine's for its extraction thread: nothing allocated or freed a call.
    with_text_buffers(|[url_buf, request_buf, response_buf]| {
        let call = PlainCall {
            url: read_utf8(&env, &url, url_buf)?,
            request: RequestBody::Text(read_utf8(&env, &request, request_buf)?),
            status: u16::try_from(status).unwrap_or(0),
            response: ResponseBody::Text(read_utf8(&env, &response, response_buf)?),
            elapsed: millis(Some(elapsed_ms)).unwrap_or_default() + entered.elapsed(),
            parent: parent_of(parent_trace_id, parent_span_id),
            user_context: user_context.map(|u| parse(&u)),
            source: None,
            capture_content: anosys::embed::capture_content_enabled(),
        };
        let call = match may_defer() {
            true => match call.hand_over() {
                Ok(()) => return Ok(true),
                Err(call) => call,
            },
            false => call,
        };
        // A `beforeSend` callback sees the record made here.
        Ok(call.record_with(|r| submit(&env, Some(r))))
    })
}

thread_local! {
    /// The texts of a plain call (URL, request, response) as UTF-8, kept
    /// on the JavaScript thread between calls.
    static TEXT_BUFFERS: std::cell::Cell<[Vec<u8>; 3]> = std::cell::Cell::default();
}

/// Past this many bytes a text buffer is freed after its call, not kept.
const TEXT_BUFFER_KEPT: usize = 256 * 1024;

/// Runs `f` with this thread's text buffers (empty ones for a call made
/// while they are in use, from a `beforeSend` callback), then keeps them.
fn with_text_buffers<R>(f: impl FnOnce(&mut [Vec<u8>; 3]) -> R) -> R {
    let mut buffers = TEXT_BUFFERS.with(std::cell::Cell::take);
    let out = f(&mut buffers);
    for buf in &mut buffers {
        if buf.len() > TEXT_BUFFER_KEPT {
            *buf = Vec::new();
        }
    }
    // (Gone while the thread exits: then they are freed.)
    let _ = TEXT_BUFFERS.try_with(|slot| slot.set(buffers));
    out
}

/// A JavaScript string's text as UTF-8, written into `buf` in one pass.
/// (napi-rs's `String` asks V8 for the UTF-8 length first, a pass over the
/// whole text, then allocates a zeroed buffer for a second pass.) `buf`
/// only grows, zeroed once: V8 is given room for the longest UTF-8 the
/// string can have.
fn read_utf8<'b>(env: &Env, text: &JsString, buf: &'b mut Vec<u8>) -> Result<&'b str> {
    let (env, value) = (env.raw(), text.raw());
    let mut units = 0;
    // The length in UTF-16 units, which V8 knows without a pass.
    check_status!(unsafe { napi::sys::napi_get_value_string_utf16(env, value, std::ptr::null_mut(), 0, &mut units) })?;
    // A unit is at most 3 bytes of UTF-8 (a surrogate pair, 2 units, is
    // 4; a lone surrogate becomes U+FFFD, 3), and napi ends the text with
    // a NUL.
    let room = units.saturating_mul(3).saturating_add(1);
    if buf.len() < room {
        buf.resize(room, 0);
    }
    let mut written = 0;
    check_status!(unsafe { napi::sys::napi_get_value_string_utf8(env, value, buf.as_mut_ptr().cast(), room, &mut written) })?;
    std::str::from_utf8(&buf[..written.min(room - 1)]).map_err(|e| Error::new(Status::InvalidArg, format!("a string that is not UTF-8: {e}")))
}

/// One OpenAI-compatible call: started with the request, ended with the
/// response, the error, or the stream's events. Garbage-collected
/// unfinished, it is recorded as cancelled. A plain response is made into
/// its record on the engine's extraction thread ([`DeferredCall`]) unless a
/// `beforeSend` callback must see it here: the event loop only hands over
/// the JSON text.
#[napi(js_name = "OpenAICall", custom_finalize)]
pub struct OpenAiCall(DeferredCall);

/// Whether a record may be made off the JavaScript thread: not when the
/// `beforeSend` callback, which only runs here, must see it.
fn may_defer() -> bool {
    BEFORE_SEND.with(|h| h.borrow().is_none())
}

impl ObjectFinalize for OpenAiCall {
    fn finalize(mut self, env: Env) -> Result<()> {
        submit(&env, self.0.live().cancel());
        Ok(())
    }
}

#[napi]
impl OpenAiCall {
    /// Starts the record of a call to `url` with `request` (JSON text),
    /// sent `elapsedMs` ago (default: now); `streaming` says whether it
    /// asked for a stream, when the caller knows (else the request is read
    /// for it).
    #[napi(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        url: String,
        request: String,
        source: Option<String>,
        parent_trace_id: Option<String>,
        parent_span_id: Option<String>,
        user_context: Option<String>,
        elapsed_ms: Option<f64>,
        streaming: Option<bool>,
    ) -> Self {
        OpenAiCall(start_call(url, request, source, parent_of(parent_trace_id, parent_span_id), user_context, elapsed_ms, streaming))
    }

    /// Whether the request asked for a stream.
    #[napi(getter)]
    pub fn streaming(&self) -> bool {
        self.0.is_streaming()
    }

    /// Ends the call with the HTTP status and the response (JSON text).
    #[napi]
    pub fn finish(&mut self, env: Env, status: u32, response: String) -> bool {
        let status = u16::try_from(status).unwrap_or(0);
        self.0.finish_with(status, ResponseJson::Text(response), may_defer(), |r| submit(&env, Some(r)))
    }

    /// Ends the call (or its stream) with an error: with the status and the
    /// error body (JSON text) when the server answered.
    #[napi]
    pub fn fail(
        &mut self,
        env: Env,
        error_type: String,
        message: String,
        status: Option<u32>,
        body: Option<String>,
    ) -> bool {
        let status = status.and_then(|s| u16::try_from(s).ok()).filter(|s| *s > 0);
        let call = self.0.live();
        let record = match (status, body) {
            // The server answered: its error body says what went wrong.
            (Some(status), Some(body)) => call.finish(status, parse(&body)),
            (status, _) => {
                if let Some(status) = status {
                    call.set_http_status(status);
                }
                call.fail(ErrorInfo::new(error_type, message))
            }
        };
        submit(&env, record)
    }

    /// Ends the call with the HTTP status and the raw response body (what
    /// the application read itself through `.asResponse()`).
    #[napi]
    pub fn finish_bytes(&mut self, env: Env, status: u32, body: &[u8]) -> bool {
        let status = u16::try_from(status).unwrap_or(0);
        self.0.finish_with(status, ResponseJson::Bytes(body.to_vec()), may_defer(), |r| submit(&env, Some(r)))
    }

    /// Feeds raw bytes of the server-sent-events body, split anywhere.
    #[napi]
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.0.push_bytes(bytes);
    }

    /// Feeds the JSON text of one streamed event.
    #[napi]
    pub fn push_data(&mut self, data: String) {
        self.0.push_data(data);
    }

    /// The stream was read to its end.
    #[napi]
    pub fn end_stream(&mut self, env: Env) -> bool {
        self.0.end_stream_with(may_defer(), |r| submit(&env, Some(r)))
    }

    /// The caller stopped before the end (an early `break`, an abort);
    /// what arrived is kept.
    #[napi]
    pub fn cancel(&mut self, env: Env) -> bool {
        submit(&env, self.0.live().cancel())
    }
}
