//! `anosys._native`: the Python package's bridge to the Rust engine.
//!
//! The Python side (python/anosys) decides *what* to capture (patching the
//! `openai` package, wrapping decorated functions); everything else runs
//! here, in the same code the Rust client and the proxy use: OpenAI JSON →
//! GenAI semantic-convention extraction and stream aggregation
//! (`anosys::sources::openai`), the function-record shape
//! (`anosys::sources::function`), and the non-blocking delivery pipeline.
//! Heavy work runs with the GIL released.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anosys::embed::{DeferredCall, LiveCall, LiveFunctionCall, PlainCall, RequestJson, ResponseJson};
use anosys::sources::openai::{CaptureOptions, RequestBody, ResponseBody};
use anosys::{Caller, ErrorInfo, Record, SpanId, StartingIndices, TraceId};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use serde_json::{json, Value};

mod convert;
mod original;

use convert::{to_python, to_value};

/// The extension's own allocations: mimalloc (see Cargo.toml), so that
/// what the engine's threads free does not slow the caller's next call.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sends a finished record to the global pipeline without holding the GIL
/// (`None`: the call had ended already).
fn submit(py: Python<'_>, record: Option<Record>) -> bool {
    record.is_some_and(|record| py.detach(move || anosys::capture(record)))
}

fn report(py: Python<'_>, report: anosys::FlushReport) -> PyResult<Bound<'_, PyAny>> {
    let mut value = serde_json::to_value(report.counters).unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut value {
        m.insert("pending".into(), json!(report.pending));
        m.insert("completed".into(), json!(report.completed));
    }
    to_python(py, &value)
}

/// Seconds as a duration: zero if not a positive finite number, at most a day.
fn seconds(timeout: f64) -> Duration {
    if timeout.is_finite() && timeout > 0.0 {
        Duration::from_secs_f64(timeout.min(86_400.0))
    } else {
        Duration::ZERO
    }
}

/// Delivers everything captured so far, waiting up to `timeout` seconds
/// (`None`: the configured shutdown timeout). Returns the pipeline's
/// counters, `pending` and `completed`.
#[pyfunction]
#[pyo3(signature = (timeout = 5.0))]
fn flush(py: Python<'_>, timeout: Option<f64>) -> PyResult<Bound<'_, PyAny>> {
    let r = py.detach(|| anosys::flush(timeout.map(seconds)));
    report(py, r)
}

/// Shuts the pipeline down, delivering what it holds (up to `timeout`
/// seconds; `None`: the configured shutdown timeout). A later capture
/// starts a new one.
#[pyfunction]
#[pyo3(signature = (timeout = None))]
fn shutdown(py: Python<'_>, timeout: Option<f64>) -> PyResult<Bound<'_, PyAny>> {
    let r = py.detach(|| anosys::shutdown(timeout.map(seconds)));
    report(py, r)
}

/// The pipeline's counters.
#[pyfunction]
fn counters(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let value = serde_json::to_value(py.detach(anosys::counters)).unwrap_or_else(|_| json!({}));
    to_python(py, &value)
}

/// Logs arbitrary data as one record (each top-level key its own column).
#[pyfunction]
fn log_raw(py: Python<'_>, data: &Bound<'_, PyAny>) -> bool {
    let value = to_value(data);
    py.detach(move || anosys::log_raw(value))
}

/// Captures finished OpenTelemetry spans, each a dict in the shape of
/// `anosys::sources::span::FinishedSpan` (made by `anosys.otel`): the same
/// mapping as the Rust exporter's. Returns how many were taken; a span
/// that does not fit the shape is left out, and said once. `user_context`
/// (not `None`) is stored with each record.
#[pyfunction]
#[pyo3(signature = (spans, user_context = None))]
fn capture_spans(py: Python<'_>, spans: &Bound<'_, PyAny>, user_context: Option<&Bound<'_, PyAny>>) -> usize {
    let Value::Array(spans) = to_value(spans) else { return 0 };
    let user_context = user_context.filter(|u| !u.is_none()).map(to_value);
    py.detach(move || {
        let mut records = anosys::sources::span::records_from_json(spans);
        if let Some(user_context) = user_context {
            for record in &mut records {
                record.user_context = Some(user_context.clone());
            }
        }
        records.into_iter().map(anosys::capture).filter(|&kept| kept).count()
    })
}

/// `setup_api(path, starting_indices)`: where to send, and the first
/// dynamic slot per type. Raises `ValueError` for an invalid setting.
#[pyfunction]
#[pyo3(signature = (path = None, starting_indices = None))]
fn setup_api(py: Python<'_>, path: Option<String>, starting_indices: Option<&Bound<'_, PyDict>>) -> PyResult<()> {
    let indices = match starting_indices {
        None => None,
        Some(d) => {
            let mut si = StartingIndices::default();
            for (k, v) in d.iter() {
                let k: String = k.extract().map_err(|_| PyValueError::new_err("starting_indices keys must be strings"))?;
                let n: u32 = v
                    .extract()
                    .map_err(|_| PyValueError::new_err(format!("starting_indices[{k:?}] must be a non-negative integer")))?;
                si.set(&k, n).map_err(|e| PyValueError::new_err(e.to_string()))?;
            }
            Some(si)
        }
    };
    py.detach(|| anosys::compat::setup_api(path.as_deref(), indices)).map_err(|e| PyValueError::new_err(anosys::ErrorInfo::from_error(&e).one_line()))
}

/// Sets (or, with `None`, removes) the callback that sees every record
/// before it is queued: called with the record as a dict, it returns the
/// dict (changed or not) or `True` to keep it, `None` or `False` to drop it
/// (counted as `filtered`). An exception in it, or a dict that is no longer
/// a record, drops the record and is reported once on stderr.
#[pyfunction]
#[pyo3(signature = (callback = None))]
fn set_before_send(callback: Option<Py<PyAny>>) -> PyResult<()> {
    let Some(callback) = callback else {
        anosys::clear_before_send();
        return Ok(());
    };
    Python::attach(|py| {
        if !callback.bind(py).is_callable() {
            return Err(PyValueError::new_err("before_send must be callable (or None)"));
        }
        Ok(())
    })?;
    anosys::set_before_send(move |record: &mut Record| Python::attach(|py| before_send(py, &callback, record)));
    Ok(())
}

fn before_send(py: Python<'_>, callback: &Py<PyAny>, record: &mut Record) -> bool {
    let complain = |what: String| {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| eprintln!("anosys: the before_send callback {what}; the records it fails on are dropped"));
        false
    };
    let Ok(value) = serde_json::to_value(&*record) else {
        return complain("got a record that could not be shown to it".into());
    };
    let answer = match to_python(py, &value).and_then(|dict| callback.bind(py).call1((dict,))) {
        Ok(answer) => answer,
        Err(e) => return complain(format!("raised {e}")),
    };
    if answer.is_none() {
        return false;
    }
    if let Ok(keep) = answer.extract::<bool>() {
        return keep;
    }
    match serde_json::from_value::<Record>(to_value(&answer)) {
        Ok(changed) => {
            *record = changed;
            true
        }
        Err(e) => complain(format!("returned something that is not a record ({e})")),
    }
}

/// Called in a forked child (see `os.register_at_fork`): the next capture
/// starts a pipeline of the child's own.
#[pyfunction]
fn after_fork_in_child() {
    anosys::embed::after_fork_in_child();
}

/// Whether prompts, replies, inputs and outputs are captured.
#[pyfunction]
fn capture_content_enabled(py: Python<'_>) -> bool {
    py.detach(anosys::embed::capture_content_enabled)
}

/// Names the SDK in the resource of pipelines started from now on.
#[pyfunction]
#[pyo3(signature = (version, service_name = None))]
fn set_sdk_identity(version: &str, service_name: Option<&str>) {
    anosys::embed::set_sdk_identity("python", version, service_name, Vec::new());
}

/// The trace context a record joins: `(trace_id, span_id)` of its parent.
fn parent_of(parent: Option<&Bound<'_, PyAny>>) -> Option<(TraceId, SpanId)> {
    let parent = parent.filter(|p| !p.is_none())?;
    if let Ok(call) = parent.cast::<FunctionCall>() {
        let call = call.borrow();
        return Some((call.0.trace_id(), call.0.span_id()));
    }
    // A (trace_id, span_id) pair of hex strings, e.g. from OpenTelemetry.
    let (t, s): (String, String) = parent.extract().ok()?;
    Some((TraceId::from_hex(&t)?, SpanId::from_hex(&s)?))
}

/// One call of a decorated function, from entry to return, exception or
/// (generators) early close. Dropped unfinished, it is recorded as
/// cancelled.
#[pyclass(module = "anosys._native")]
struct FunctionCall(LiveFunctionCall);

#[pymethods]
impl FunctionCall {
    #[new]
    #[pyo3(signature = (name, source, file, line, caller_function, caller_file, caller_line, parent = None, args = None, kwargs = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: &str,
        source: &str,
        file: &str,
        line: u32,
        caller_function: Option<String>,
        caller_file: String,
        caller_line: u32,
        parent: Option<&Bound<'_, PyAny>>,
        args: Option<&Bound<'_, PyTuple>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> Self {
        let caller = Caller { function: caller_function, file: caller_file, line: caller_line };
        FunctionCall(LiveFunctionCall::start(name, source, file, line, caller, parent_of(parent), || {
            let args = args.map_or(Value::Array(Vec::new()), |a| to_value(a.as_any()));
            let kwargs = kwargs.map_or(Value::Object(Default::default()), |k| to_value(k.as_any()));
            json!({"args": args, "kwargs": kwargs})
        }))
    }

    /// The trace id (32 hex digits).
    #[getter]
    fn trace_id(&self) -> String {
        self.0.trace_id().to_string()
    }

    /// The span id (16 hex digits): children name it as their parent.
    #[getter]
    fn span_id(&self) -> String {
        self.0.span_id().to_string()
    }

    /// Ends the call with its return value (for generators: what they
    /// yielded).
    fn finish(&mut self, py: Python<'_>, output: &Bound<'_, PyAny>) -> bool {
        let record = self.0.finish(|| to_value(output));
        submit(py, record)
    }

    /// Ends the call with an exception: its type, message and traceback.
    #[pyo3(signature = (error_type, message, traceback = None, output = None))]
    fn fail(
        &mut self,
        py: Python<'_>,
        error_type: &str,
        message: String,
        traceback: Option<String>,
        output: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        if let Some(output) = output {
            self.0.set_output(|| to_value(output));
        }
        let record = self.0.fail(ErrorInfo { stack: traceback, ..ErrorInfo::new(error_type, message) });
        submit(py, record)
    }

    /// Ends a call abandoned before it finished (a generator closed early,
    /// a cancelled coroutine).
    #[pyo3(signature = (output = None))]
    fn cancel(&mut self, output: Option<&Bound<'_, PyAny>>) -> bool {
        if let Some(output) = output {
            self.0.set_output(|| to_value(output));
        }
        self.0.cancel().is_some_and(anosys::capture)
    }
}

/// Ends `call` with a client's exception: with the HTTP `status` and error
/// `body` when the server answered (the body's error is recorded), else with
/// the exception's type and message.
fn fail_call(call: &mut LiveCall, error_type: String, message: String, status: Option<u16>, body: Option<Value>) -> Option<Record> {
    if let (Some(status), Some(body)) = (status, body) {
        return call.finish(status, body);
    }
    if let Some(status) = status {
        call.set_http_status(status);
    }
    call.fail(ErrorInfo::new(error_type, message))
}

/// One OpenAI-compatible call: started with the request, ended with the
/// response, the error, or the stream's chunks. Dropped unfinished, it is
/// recorded as cancelled (an abandoned stream).
///
/// A plain response is made into its record on the engine's extraction
/// thread ([`DeferredCall`]): the caller's thread only converts the request
/// and the reply to JSON.
///
/// A stream's events after its first are held here as the strings Python
/// gave (a reference each) and handed to the engine together, joined by
/// Python, before anything else the call does (or every
/// [`HELD_CHARS`]): one conversion and one copy for them all instead of
/// one each. The first goes at once, for the time to first chunk.
#[pyclass(module = "anosys._native")]
struct OpenAICall {
    call: DeferredCall,
    /// Events' JSON texts not yet handed over.
    held: Vec<Py<PyString>>,
    /// Their length in characters.
    held_chars: usize,
    /// Whether an event's text has been handed over (the first goes at once).
    pushed: bool,
}

/// Held events are handed over once they come to this many characters.
const HELD_CHARS: usize = 64 * 1024;

impl OpenAICall {
    fn new_call(call: DeferredCall) -> Self {
        OpenAICall { call, held: Vec::new(), held_chars: 0, pushed: false }
    }

    /// The call, its held events handed over first.
    fn call(&mut self, py: Python<'_>) -> &mut DeferredCall {
        if !self.held.is_empty() {
            self.hand_over_held(py);
        }
        &mut self.call
    }

    /// Hands the held events to the engine: joined by Python (a copy of
    /// each, no conversion), then converted once.
    fn hand_over_held(&mut self, py: Python<'_>) {
        let held = std::mem::take(&mut self.held);
        self.held_chars = 0;
        let separator = PyString::new(py, anosys::embed::EVENT_SEPARATOR.encode_utf8(&mut [0; 4]));
        let joined = PyList::new(py, &held)
            .and_then(|list| separator.call_method1("join", (list,)))
            .and_then(|joined| Ok(joined.cast_into::<PyString>()?));
        match joined {
            Ok(joined) => self.call.push_data_run(utf8_of(&joined)),
            // Not strings after all (never): one at a time.
            Err(_) => {
                for text in held {
                    self.call.push_data(utf8_of(text.bind(py)));
                }
            }
        }
    }
}

/// A Python string's text: encoded by Python (a copy), checked once.
fn utf8_of(text: &Bound<'_, PyString>) -> String {
    match text.encode_utf8() {
        Ok(bytes) => String::from_utf8(bytes.as_bytes().to_vec()).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        // Lone surrogates: replaced.
        Err(_) => text.to_string_lossy().into_owned(),
    }
}

impl Drop for OpenAICall {
    /// Dropped unfinished, the call is recorded as cancelled with what
    /// arrived: the held events are handed over first.
    fn drop(&mut self) {
        if !self.held.is_empty() {
            Python::attach(|py| self.hand_over_held(py));
        }
    }
}

/// The JSON text of an `openai` model as it came on the wire (API names,
/// only the fields the server sent), or `None` for anything else.
fn model_json(obj: &Bound<'_, PyAny>) -> Option<String> {
    let py = obj.py();
    let kwargs = PyDict::new(py);
    kwargs.set_item("by_alias", true).ok()?;
    kwargs.set_item("exclude_unset", true).ok()?;
    obj.call_method("model_dump_json", (), Some(&kwargs)).ok()?.extract::<String>().ok()
}

/// A response for [`DeferredCall::finish_deferred`]: text and `openai`
/// models as JSON text (parsed off the caller's thread), anything else
/// converted here as [`body_value`] does.
fn response_json(obj: &Bound<'_, PyAny>) -> ResponseJson {
    if let Ok(s) = obj.cast::<PyString>() {
        return ResponseJson::Text(s.to_string_lossy().into_owned());
    }
    if let Ok(b) = obj.cast::<pyo3::types::PyBytes>() {
        // As `body_value` reads bytes, the parsing left to the engine.
        return match std::str::from_utf8(b.as_bytes()) {
            Ok(s) => ResponseJson::Text(s.to_owned()),
            Err(_) => ResponseJson::Value(body_value(obj)),
        };
    }
    match model_json(obj) {
        Some(s) => ResponseJson::Text(s),
        None => ResponseJson::Value(to_value(obj)),
    }
}

fn body_value(obj: &Bound<'_, PyAny>) -> Value {
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_string_lossy();
        return serde_json::from_str(&s).unwrap_or_else(|_| Value::String(s.into_owned()));
    }
    if let Ok(b) = obj.cast::<pyo3::types::PyBytes>() {
        return serde_json::from_slice(b.as_bytes())
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b.as_bytes()).into_owned()));
    }
    match model_json(obj) {
        Some(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        None => to_value(obj),
    }
}

/// The [`DeferredCall`] of a call to `url` with `request` (a dict, or the
/// body as sent: bytes), sent `elapsed` seconds ago.
fn start_call(
    url: &str,
    request: &Bound<'_, PyAny>,
    source: Option<String>,
    parent: Option<&Bound<'_, PyAny>>,
    user_context: Option<&Bound<'_, PyAny>>,
    elapsed: Option<f64>,
    plain: bool,
) -> DeferredCall {
    // What happens here (the engine set up on first use) counts as elapsed too.
    let entered = std::time::Instant::now();
    let request = match request.cast::<pyo3::types::PyBytes>() {
        Ok(body) => RequestJson::Bytes(body.as_bytes().to_vec()),
        Err(_) => RequestJson::Value(to_value(request)),
    };
    let user_context = user_context.filter(|u| !u.is_none()).map(to_value);
    let parent = parent_of(parent);
    let options = CaptureOptions {
        capture_content: anosys::embed::capture_content_enabled(),
        source: source.unwrap_or_else(|| "openai".into()),
        ..CaptureOptions::default()
    };
    let url = url.to_owned();
    // A call recorded in one step has its whole reply: it did not stream.
    let mut call = if plain {
        DeferredCall::start_known(url, request, options, parent, false)
    } else {
        DeferredCall::start(url, request, options, parent)
    };
    if let Some(user_context) = user_context {
        call.set_user_context(user_context);
    }
    call.backdate(elapsed.map_or(Duration::ZERO, seconds) + entered.elapsed());
    call
}

/// The last URL converted to text, with the string it came from: a
/// wrapped method's URL is the same string object call after call (the
/// Python side keeps the one it made), and converting a string allocates
/// twice (the stable ABI before Python 3.10 has no view of a string's
/// UTF-8 text). Holding the string keeps its address from being reused.
static LAST_URL: Mutex<Option<(Py<PyString>, Arc<str>)>> = Mutex::new(None);

/// `url` as text, converted once for as long as the same string comes.
fn url_text(url: &Bound<'_, PyString>) -> PyResult<Arc<str>> {
    let Ok(mut last) = LAST_URL.try_lock() else { return Ok(url.to_cow()?.into()) };
    if let Some((string, text)) = last.as_ref()
        && string.as_ptr() == url.as_ptr()
    {
        return Ok(text.clone());
    }
    let text: Arc<str> = url.to_cow()?.into();
    *last = Some((url.clone().unbind(), text.clone()));
    Ok(text)
}

/// Records a whole plain (not streamed) call in one step, once its
/// response has come: the call to `url` with `request` (the body as sent,
/// bytes, or a dict), sent `elapsed` seconds ago, answered with `status`
/// and `response` (as [`OpenAICall::finish`] takes it). The record is made
/// on the engine's extraction thread (unless a `before_send` callback must
/// see it here). A call that fails, is cancelled or streams goes through an
/// [`OpenAICall`] instead. Returns whether the record was handed over.
#[pyfunction]
#[pyo3(signature = (url, request, elapsed, response, status = 200, parent = None, user_context = None))]
#[allow(clippy::too_many_arguments)]
fn record_openai_call(
    py: Python<'_>,
    url: &Bound<'_, PyString>,
    request: &Bound<'_, PyAny>,
    elapsed: f64,
    response: &Bound<'_, PyAny>,
    status: u16,
    parent: Option<&Bound<'_, PyAny>>,
    user_context: Option<&Bound<'_, PyAny>>,
) -> bool {
    // What happens here (the engine set up on first use) counts as elapsed too.
    let entered = std::time::Instant::now();
    let Ok(url) = url_text(url) else { return false };
    let url = &*url;
    // The usual case: both bodies as bytes, as httpx sent and read them,
    // copied into the engine's buffers for its extraction thread (the
    // answer read as bytes off the wire: one that is not JSON is kept as
    // text and marked).
    if let (Ok(sent), Ok(read)) = (request.cast::<PyBytes>(), response.cast::<PyBytes>()) {
        let elapsed = seconds(elapsed) + entered.elapsed();
        return hand_over_plain(py, url, sent, read, status, elapsed, parent, user_context);
    }
    let mut call = start_call(url, request, None, parent, user_context, Some(elapsed), true);
    let body = response_json(response);
    if call.can_defer() {
        return call.finish_deferred(status, body, true);
    }
    py.detach(|| call.finish_deferred(status, body, true))
}

/// Hands a plain call over to the engine (see [`record_openai_call`]): both
/// bodies as httpx sent and read them, copied into the engine's buffers for
/// its extraction thread; the answer read as bytes off the wire, so one
/// that is not JSON is kept as text and marked.
#[allow(clippy::too_many_arguments)]
fn hand_over_plain(
    py: Python<'_>,
    url: &str,
    sent: &Bound<'_, PyBytes>,
    read: &Bound<'_, PyBytes>,
    status: u16,
    elapsed: Duration,
    parent: Option<&Bound<'_, PyAny>>,
    user_context: Option<&Bound<'_, PyAny>>,
) -> bool {
    let call = PlainCall {
        url,
        request: RequestBody::Bytes(sent.as_bytes()),
        status,
        response: ResponseBody::Bytes(read.as_bytes()),
        elapsed,
        parent: parent_of(parent),
        user_context: user_context.filter(|u| !u.is_none()).map(to_value),
        source: None,
        capture_content: anosys::embed::capture_content_enabled(),
    };
    match call.hand_over() {
        Ok(()) => true,
        // A `before_send` callback sees the record made here.
        Err(call) => py.detach(|| call.record_with(anosys::capture)),
    }
}

/// Whether `create`'s keyword arguments ask for a stream (`stream=True`,
/// or `"stream": True` in `extra_body`).
fn asks_for_stream(kwargs: &Bound<'_, PyDict>) -> PyResult<bool> {
    let py = kwargs.py();
    if kwargs.get_item(pyo3::intern!(py, "stream"))?.is_some_and(|v| v.is(&*pyo3::types::PyBool::new(py, true))) {
        return Ok(true);
    }
    Ok(match kwargs.get_item(pyo3::intern!(py, "extra_body"))? {
        Some(extra) => match extra.cast::<PyDict>() {
            Ok(extra) => extra.get_item(pyo3::intern!(py, "stream"))?.is_some_and(|v| v.is(&*pyo3::types::PyBool::new(py, true))),
            Err(_) => false,
        },
        None => false,
    })
}

/// The last reply `openai` parsed from a body it had read, on this thread,
/// with what its record needs of the exchange (see [`keep`]).
struct Parsed {
    reply: Py<PyAny>,
    /// The request body as sent; `None` when httpx did not keep it (a body
    /// streamed from a file).
    request: Option<Py<PyBytes>>,
    body: Py<PyBytes>,
    status: u16,
}

thread_local! {
    /// One a thread, not a context variable: setting one makes a new
    /// context mapping every time, twice a call. The wrapped method takes
    /// it only when its result is that very reply, so another task's reply
    /// on the same thread is never taken for its own.
    static PARSED: std::cell::RefCell<Option<Parsed>> = const { std::cell::RefCell::new(None) };
}

/// The `_parse` hook's work after `openai` parsed `reply` from
/// `api_response` (its `APIResponse`): keeps the bodies `api_response`
/// read and sent, and its status, for [`record_kept`]; nothing for a
/// stream (whose body is read as it is iterated). Only the bodies are kept,
/// not openai's response object: openai frees that (its httpx response and
/// request with it) in its own code, as it does uninstrumented. Never
/// raises.
fn keep(api_response: &Bound<'_, PyAny>, reply: &Bound<'_, PyAny>) {
    let py = reply.py();
    let kept = (|| -> PyResult<Option<Parsed>> {
        let response = api_response.getattr(pyo3::intern!(py, "http_response"))?;
        // httpx's `content` and `request` properties return these
        // attributes (or raise when they are not there): read directly, no
        // Python function is called; the properties when they are not there.
        let body = match response.getattr_opt(pyo3::intern!(py, "_content"))? {
            Some(body) => body,
            // Raises for a stream, whose body is read as it is iterated:
            // nothing kept.
            None => response.getattr(pyo3::intern!(py, "content"))?,
        };
        let request = match response.getattr_opt(pyo3::intern!(py, "_request"))? {
            Some(request) if !request.is_none() => match request.getattr_opt(pyo3::intern!(py, "_content"))? {
                Some(content) => Some(content),
                // A body streamed from a file: httpx did not keep it.
                None => request.getattr(pyo3::intern!(py, "content")).ok(),
            },
            _ => response.getattr(pyo3::intern!(py, "request")).and_then(|r| r.getattr(pyo3::intern!(py, "content"))).ok(),
        };
        let status = response.getattr(pyo3::intern!(py, "status_code"))?.extract()?;
        Ok(Some(Parsed {
            reply: reply.clone().unbind(),
            request: request.and_then(|c| c.cast_into::<PyBytes>().ok()).map(Bound::unbind),
            body: body.cast_into::<PyBytes>()?.unbind(),
            status,
        }))
    })();
    // The one kept before, if any, is dropped here, with the GIL.
    drop(PARSED.with(|p| p.replace(kept.ok().flatten())));
}

/// `openai`'s `BaseAPIResponse._parse` as the package patches it: a method
/// (bound to an instance as a function is, with the original's name, doc
/// and `__wrapped__` set by `functools.update_wrapper`) that calls the
/// original and keeps what its reply came from ([`keep`]), with no
/// Python frame of its own. Returns or raises what the original did.
#[pyclass(module = "anosys._native", frozen, dict)]
struct ParseHook {
    original: Py<PyAny>,
}

#[pymethods]
impl ParseHook {
    #[new]
    fn new(original: Py<PyAny>) -> Self {
        ParseHook { original }
    }

    /// `original(*args, **kwargs)`, its reply kept.
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(&self, args: &Bound<'py, PyTuple>, kwargs: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyAny>> {
        let py = args.py();
        let parsed = self.original.bind(py).call(args, kwargs)?;
        if let Ok(obj) = args.get_item(0) {
            keep(&obj, &parsed);
        }
        Ok(parsed)
    }

    /// Bound to an instance, as a function is.
    fn __get__<'py>(slf: &Bound<'py, Self>, obj: Option<&Bound<'py, PyAny>>, _owner: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        bind_method(slf.as_any(), obj)
    }
}

/// `method` bound to `obj` (`types.MethodType`), or itself when read from
/// the class.
fn bind_method<'py>(method: &Bound<'py, PyAny>, obj: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    static METHOD_TYPE: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let py = method.py();
    match obj {
        Some(obj) if !obj.is_none() => {
            let method_type = METHOD_TYPE.get_or_try_init(py, || py.import("types")?.getattr("MethodType").map(Bound::unbind))?;
            method_type.bind(py).call1((method, obj))
        }
        _ => Ok(method.clone()),
    }
}

/// What [`record_kept`] did with the reply kept on this thread.
enum Kept {
    /// Handed over (or, when that failed, counted by the engine).
    Recorded,
    /// The reply's body and status; its request body was not kept.
    NoRequest(Py<PyBytes>, u16),
    /// Nothing kept for this reply, or it asked for a stream: not recorded.
    Other,
}

/// The one-step record of a plain reply that `openai` parsed from a body
/// it had read (kept by [`keep`] on this thread), for a URL already
/// text; `result` is what the wrapped method returns, `elapsed` says how
/// long ago the call was sent (asked for when the call is handed over). Records the call (as [`record_openai_call`])
/// and returns `True` when `result` is that very reply, its request body is
/// known and the call did not ask for a stream. When the reply is `result`
/// but its request body was not kept, returns `(response body, status)`,
/// for the caller to record with the request written out from the call's
/// arguments. Otherwise records nothing and returns `False`, for the
/// caller's general path. What was kept is let go either way.
///
/// The parent and the user context are read here, in the call's context,
/// through `context`, five callables of no argument, the ContextVars'
/// `get` methods bound once: `(the decorated call's ContextVar's get,
/// OpenTelemetry's context ContextVar's get or None, the parent's reader or
/// None, the user-context ContextVar's get or None, the user context's
/// reader or None)`. The parent is the parent reader's answer when
/// OpenTelemetry's context is not empty (or cannot be read directly: its
/// getter is None and the reader is not), else the decorated call; the
/// user context is the ContextVar's value, or the reader's answer when
/// there is no ContextVar.
fn record_kept<'py>(
    py: Python<'py>,
    url: &str,
    result: &Bound<'py, PyAny>,
    kwargs: Option<&Bound<'py, PyDict>>,
    context: &Bound<'py, PyTuple>,
    elapsed: impl FnOnce() -> Duration,
) -> PyResult<Kept> {
    let Some(parsed) = PARSED.with(|p| p.borrow_mut().take()) else { return Ok(Kept::Other) };
    if !parsed.reply.is(result) || kwargs.map(asks_for_stream).transpose()?.unwrap_or(false) {
        return Ok(Kept::Other);
    }
    let Some(request) = parsed.request else {
        return Ok(Kept::NoRequest(parsed.body, parsed.status));
    };
    if context.len() != 5 {
        return Err(PyValueError::new_err("the context readers are five callables or None"));
    }
    let reader = |i| context.get_item(i);
    let (current_get, otel_get, parent_reader) = (reader(0)?, reader(1)?, reader(2)?);
    let (user_get, user_reader) = (reader(3)?, reader(4)?);
    let otel_empty = if otel_get.is_none() { parent_reader.is_none() } else { !otel_get.call0()?.is_truthy()? };
    let parent = if otel_empty { current_get.call0()? } else { parent_reader.call0()? };
    let user = if user_get.is_none() { user_reader.call0()? } else { user_get.call0()? };
    let (request, body) = (request.bind(py), parsed.body.bind(py));
    hand_over_plain(py, url, request, body, parsed.status, elapsed(), Some(&parent), Some(&user));
    Ok(Kept::Recorded)
}

/// A method of an `openai` resource (`chat.completions.create`, …) as the
/// package patches it. A sync method is this object itself: bound to an
/// instance as a function is, with the original's name, doc and
/// `__wrapped__` set by `functools.update_wrapper`, and no Python frame of
/// its own. It calls the original method and records the call: a plain
/// reply openai parsed from a body in one step here ([`record_kept`]); an
/// exception through the package's `_record_error_after`, anything else (a
/// stream, a raw response, a reply not parsed from a body) through its
/// `_record_other`, both given the seconds since the call began and the
/// URL. What the caller gets is what the original returned or raised,
/// untouched; a failure to record is never the caller's (but an interrupt
/// meanwhile is, as in Python: [`interrupts_only`]). An async method's
/// Python coroutine uses its [`url`](Self::url) and
/// [`record`](Self::record) around the original's.
#[pyclass(module = "anosys._native", frozen, dict)]
struct PatchedMethod {
    original: Py<PyAny>,
    path: String,
    /// The package's `_openai` module: its context readers and slow paths.
    package: Py<PyAny>,
    /// The last base URL seen, with this method's URL: `str()` of an httpx
    /// URL costs more than the rest of a call's start.
    url: Mutex<Option<SeenUrl>>,
}

/// A client's base URL object (held, so that its address stays its own)
/// and a method's URL made from it, as a Python string and as text.
struct SeenUrl {
    base: Py<PyAny>,
    string: Py<PyString>,
    text: Arc<str>,
}

impl PatchedMethod {
    /// This method's URL for the resource `obj` (its client's base URL
    /// and the API path).
    fn url_of(&self, obj: &Bound<'_, PyAny>) -> PyResult<(Py<PyString>, Arc<str>)> {
        let py = obj.py();
        let client = obj.getattr(pyo3::intern!(py, "_client"))?;
        // The attribute behind the `base_url` property, whose getter
        // imports a module on every call in recent openai versions.
        let base = match client.getattr_opt(pyo3::intern!(py, "_base_url"))? {
            Some(base) if !base.is_none() => base,
            _ => client.getattr(pyo3::intern!(py, "base_url"))?,
        };
        // The lock is held only while no Python code runs (a fork from
        // Python cannot happen then, so a child never finds it held).
        if let Ok(cache) = self.url.try_lock()
            && let Some(seen) = cache.as_ref()
            && seen.base.is(&base)
        {
            return Ok((seen.string.clone_ref(py), seen.text.clone()));
        }
        let base_text = base.str()?;
        let base_text = base_text.to_cow()?;
        let text: Arc<str> = if base_text.ends_with('/') {
            format!("{base_text}{}", self.path).into()
        } else {
            format!("{base_text}/{}", self.path).into()
        };
        let string = PyString::new(py, &text).unbind();
        let seen = Some(SeenUrl { base: base.unbind(), string: string.clone_ref(py), text: text.clone() });
        // The one it replaces is let go after the lock (its objects' last
        // references may run Python code).
        let replaced = match self.url.try_lock() {
            Ok(mut cache) => std::mem::replace(&mut *cache, seen),
            Err(_) => seen,
        };
        drop(replaced);
        Ok((string, text))
    }

    /// Records the call that gave `result` (see the type's doc); raises
    /// only what the package's Python would let through
    /// ([`interrupts_only`]).
    fn record_result<'py>(
        &self,
        url_string: &Bound<'py, PyString>,
        url: &str,
        kwargs: Option<&Bound<'py, PyDict>>,
        result: &Bound<'py, PyAny>,
        elapsed: impl Fn() -> Duration,
    ) -> PyResult<()> {
        let py = result.py();
        // What `_record_other` takes: the reply's `(body, status)` when
        // its request body was not kept, else `False`.
        let kept = match self.readers(py).and_then(|context| record_kept(py, url, result, kwargs, &context, &elapsed)) {
            Ok(Kept::Recorded) => return Ok(()),
            Ok(Kept::NoRequest(body, status)) => match (body, status).into_pyobject(py) {
                Ok(pair) => pair.into_any(),
                Err(_) => return Ok(()),
            },
            Ok(Kept::Other) => pyo3::types::PyBool::new(py, false).to_owned().into_any(),
            Err(e) => return interrupts_only(py, e),
        };
        let kwargs = kwargs.cloned().unwrap_or_else(|| PyDict::new(py));
        match self.package.bind(py).call_method1(
            pyo3::intern!(py, "_record_other"),
            (elapsed().as_secs_f64(), url_string, kwargs, result, kept),
        ) {
            Ok(_) => Ok(()),
            Err(e) => interrupts_only(py, e),
        }
    }

    /// The package's context readers (see [`record_kept`]).
    fn readers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let package = self.package.bind(py);
        let readers = package.getattr(pyo3::intern!(py, "_context_readers"))?;
        let readers = if readers.is_none() { package.call_method0(pyo3::intern!(py, "_make_context_readers"))? } else { readers };
        Ok(readers.cast_into::<PyTuple>()?)
    }
}

#[pymethods]
impl PatchedMethod {
    #[new]
    fn new(original: Py<PyAny>, path: String, package: Py<PyAny>) -> Self {
        PatchedMethod { original, path, package, url: Mutex::new(None) }
    }

    /// Calls the original method as `original(*args, **kwargs)` (the
    /// resource first) and records the call; returns or raises what it did.
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Py<PyAny>> {
        let start = std::time::Instant::now();
        let original = self.original.bind(py);
        let all = args;
        let Ok(obj) = args.get_item(0) else { return Ok(original.call(all, kwargs)?.unbind()) };
        let obj = &obj;
        let Ok((url_string, url)) = self.url_of(obj) else {
            return Ok(original.call(all, kwargs)?.unbind());
        };
        let url_string = url_string.into_bound(py);
        let package = self.package.bind(py);
        let kwargs_or_empty = || kwargs.cloned().unwrap_or_else(|| PyDict::new(py));
        let result = match original.call(all, kwargs) {
            Ok(result) => result,
            Err(error) => {
                let seconds = start.elapsed().as_secs_f64();
                if let Err(e) = package.call_method1(
                    pyo3::intern!(py, "_record_error_after"),
                    (seconds, &url_string, kwargs_or_empty(), error.value(py)),
                ) {
                    interrupts_only(py, e)?;
                }
                return Err(error);
            }
        };
        self.record_result(&url_string, &url, kwargs, &result, || start.elapsed())?;
        Ok(result.unbind())
    }

    /// Bound to an instance, as a function is.
    fn __get__<'py>(slf: &Bound<'py, Self>, obj: Option<&Bound<'py, PyAny>>, _owner: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        bind_method(slf.as_any(), obj)
    }

    /// This method's URL for the resource `obj` (an async method's
    /// wrapper asks before the call).
    fn url(&self, obj: &Bound<'_, PyAny>) -> PyResult<Py<PyString>> {
        Ok(self.url_of(obj)?.0)
    }

    /// Records the call to `url` (as [`url`](Self::url) gave it), begun
    /// `elapsed` seconds ago with `kwargs`, that returned `result` (an
    /// async method's wrapper, after the call); raises only what the
    /// package's Python would let through ([`interrupts_only`]).
    #[pyo3(signature = (elapsed, url, kwargs, result))]
    fn record<'py>(&self, elapsed: f64, url: &Bound<'py, PyString>, kwargs: Option<&Bound<'py, PyDict>>, result: &Bound<'py, PyAny>) -> PyResult<()> {
        let entered = std::time::Instant::now();
        let Ok(text) = url_text(url) else {
            // Not text (lone surrogates): what was kept is let go all the same.
            drop(PARSED.with(|p| p.borrow_mut().take()));
            return Ok(());
        };
        self.record_result(url, &text, kwargs, result, || seconds(elapsed) + entered.elapsed())
    }
}

/// A failure to record is never the caller's, except what Python code of
/// the package's own would not catch either (`except Exception`): a
/// `KeyboardInterrupt` or `SystemExit` raised meanwhile goes on.
fn interrupts_only(py: Python<'_>, error: PyErr) -> PyResult<()> {
    if error.is_instance_of::<pyo3::exceptions::PyException>(py) { Ok(()) } else { Err(error) }
}

#[pymethods]
impl OpenAICall {
    /// Starts the record of a call to `url` with `request`, sent `elapsed`
    /// seconds ago (default: now). Only kept: a plain response and a stream
    /// read to its end are made into their record on the extraction
    /// thread, so nothing here is worth leaving the GIL for.
    #[new]
    #[pyo3(signature = (url, request, source = None, parent = None, user_context = None, elapsed = None))]
    fn new(
        url: &str,
        request: &Bound<'_, PyAny>,
        source: Option<String>,
        parent: Option<&Bound<'_, PyAny>>,
        user_context: Option<&Bound<'_, PyAny>>,
        elapsed: Option<f64>,
    ) -> Self {
        OpenAICall::new_call(start_call(url, request, source, parent, user_context, elapsed, false))
    }

    /// Whether the request asked for a stream.
    #[getter]
    fn streaming(&self) -> bool {
        self.call.is_streaming()
    }

    /// Ends the call with the HTTP status and the response: JSON text,
    /// bytes, a dict, or an `openai` model object.
    #[pyo3(signature = (response, status = 200))]
    fn finish(&mut self, py: Python<'_>, response: &Bound<'_, PyAny>, status: u16) -> bool {
        let call = self.call(py);
        if call.is_done() {
            return false;
        }
        let body = response_json(response);
        if call.can_defer() {
            return call.finish_deferred(status, body, true);
        }
        py.detach(|| call.finish_deferred(status, body, true))
    }

    /// Ends the call (or its stream) with an error that has no response
    /// body, or whose body is `body` (an API error's JSON).
    #[pyo3(signature = (error_type, message, status = None, body = None))]
    fn fail(
        &mut self,
        py: Python<'_>,
        error_type: String,
        message: String,
        status: Option<u16>,
        body: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        let body = body.filter(|b| !b.is_none()).map(body_value);
        let call = self.call(py);
        py.detach(|| fail_call(call.live(), error_type, message, status, body).is_some_and(anosys::capture))
    }

    /// Feeds one streamed chunk: an `openai` chunk or event object, a dict,
    /// or the JSON text of one `data:` line.
    /// A text after the first is held (see [`OpenAICall`]).
    fn push_chunk(&mut self, chunk: &Bound<'_, PyAny>) {
        let py = chunk.py();
        if let Ok(s) = chunk.cast::<PyString>() {
            if !self.pushed {
                self.pushed = true;
                self.call.push_data(utf8_of(s));
                return;
            }
            self.held_chars += s.len().unwrap_or(0);
            self.held.push(s.clone().unbind());
            if self.held_chars >= HELD_CHARS {
                self.hand_over_held(py);
            }
        } else if let Some(json) = model_json(chunk) {
            self.call(py).push_data(json);
        } else {
            self.call(py).live().push_chunk(&to_value(chunk));
        }
    }

    /// The stream was read to its end.
    fn end_stream(&mut self, py: Python<'_>) -> bool {
        let call = self.call(py);
        // Handed to the extraction thread: too little work to leave the GIL for.
        if call.can_defer_stream_end() {
            return call.end_stream_with(true, anosys::capture);
        }
        py.detach(|| call.end_stream_with(true, anosys::capture))
    }

    /// The caller stopped before the end (an early `break`, `close()`);
    /// what arrived is kept.
    fn cancel(&mut self, py: Python<'_>) -> bool {
        let call = self.call(py);
        py.detach(|| call.live().cancel().is_some_and(anosys::capture))
    }
}

/// The native core of the `anosys` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(flush, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(counters, m)?)?;
    m.add_function(wrap_pyfunction!(log_raw, m)?)?;
    m.add_function(wrap_pyfunction!(capture_spans, m)?)?;
    m.add_function(wrap_pyfunction!(setup_api, m)?)?;
    m.add_function(wrap_pyfunction!(after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(capture_content_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(set_sdk_identity, m)?)?;
    m.add_function(wrap_pyfunction!(set_before_send, m)?)?;
    m.add_function(wrap_pyfunction!(record_openai_call, m)?)?;
    m.add_class::<FunctionCall>()?;
    m.add_class::<OpenAICall>()?;
    m.add_class::<PatchedMethod>()?;
    m.add_class::<ParseHook>()?;
    m.add("ENGINE_VERSION", env!("CARGO_PKG_VERSION"))?;
    original::add(m)?;
    Ok(())
}
