//! [`DeferredCall`]: a [`LiveCall`] whose non-streamed response is made
//! into its record off the caller's thread.
//!
//! A language binding (Python, Node) holds one per call. Starting it only
//! keeps the request; when the response comes, [`DeferredCall::finish_deferred`]
//! hands the request and the response to the engine's extraction thread,
//! which builds the same record [`LiveCall`] would (the same times, ids and
//! parent) and captures it. The caller's thread pays for moving the JSON,
//! not for parsing and extracting it.
//!
//! A stream's events are kept as they come (their text and when each
//! came) and, when the stream is read to its end
//! ([`DeferredCall::end_stream_with`]), accumulated and made into the
//! record on the extraction thread too, with the same time to first chunk
//! and end time. Anything else (an error, a cancel, a stream that keeps
//! more than [`STREAM_KEPT_MAX`] bytes, a `before_send` callback that must
//! see the record on the capturing thread) makes the [`LiveCall`] on the
//! spot (the events kept so far fed to it) and goes on exactly as before.
//!
//! [`crate::flush`], [`crate::shutdown`] and [`crate::counters`] first wait
//! for the calls handed over to be captured.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::{CaptureOptions, LiveCall, RequestBody, ResponseBody};
use crate::record::{context, Record, SpanId, TraceId};

/// A request as the caller has it: JSON already built, JSON text to be
/// parsed (text that is not JSON is kept as a string, as the bindings did),
/// or the body as sent.
#[derive(Debug)]
pub enum RequestJson {
    /// Parsed.
    Value(Value),
    /// JSON text.
    Text(String),
    /// The body as sent on the wire; one that is not JSON (a multipart
    /// upload) is not kept.
    Bytes(Vec<u8>),
}

/// A response body as the binding has it, owned, for the extraction thread.
#[derive(Debug)]
pub enum ResponseJson {
    /// Parsed.
    Value(Value),
    /// JSON text: a body that is not JSON is kept as a string (the bindings'
    /// way with text they are given).
    Text(String),
    /// The raw body, as read off the wire (see [`super::ResponseBody::Bytes`]).
    Bytes(Vec<u8>),
}

#[derive(Debug)]
struct Pending {
    url: String,
    request: RequestJson,
    options: CaptureOptions,
    parent: Option<(TraceId, SpanId)>,
    user_context: Option<Value>,
    start_time: SystemTime,
    /// When the request was sent: a stream's time to first chunk counts
    /// from here.
    sent: Instant,
}

impl Pending {
    /// The [`LiveCall`] it stands for, as if started when it was.
    fn start(self) -> LiveCall {
        let Pending { url, request, options, parent, user_context, start_time, sent } = self;
        let start = |request| start_at(&url, request, &options, parent, user_context, start_time, Some(sent));
        match request {
            RequestJson::Value(value) => start(RequestBody::Json(value)),
            // Read and kept without a `Value` built.
            RequestJson::Text(text) => start(RequestBody::Text(&text)),
            RequestJson::Bytes(bytes) => start(RequestBody::Bytes(&bytes)),
        }
    }
}

/// A [`LiveCall`] started as if at `start_time` (and sent at `sent`, for
/// anything timed from the send), with `user_context`.
fn start_at(
    url: &str,
    request: RequestBody<'_>,
    options: &CaptureOptions,
    parent: Option<(TraceId, SpanId)>,
    user_context: Option<Value>,
    start_time: SystemTime,
    sent: Option<Instant>,
) -> LiveCall {
    let mut call = LiveCall::start(url, request, options, parent);
    if let Some(sent) = sent {
        call.set_sent_at(sent);
    }
    if let Some(record) = call.record_mut() {
        record.start_time = start_time;
        record.end_time = start_time;
        record.user_context = user_context;
    }
    call
}

/// Bytes of a stream's events kept at most before the stream is followed
/// on the caller's thread instead (the events kept so far fed first): a
/// long stream is not held whole twice.
pub const STREAM_KEPT_MAX: usize = 1 << 20;

/// One streamed event as the binding handed it over.
#[derive(Debug)]
enum StreamEvent {
    /// The JSON text of one event (a `data:` payload).
    Data(String),
    /// Raw bytes of the server-sent-events body, split anywhere.
    Bytes(Vec<u8>),
    /// The JSON texts of several events, joined by [`EVENT_SEPARATOR`].
    Run(String),
}

/// What [`DeferredCall::push_data_run`] joins events' JSON texts with:
/// U+001E (record separator, as JSON text sequences use it, RFC 7464),
/// which JSON text never holds (a control character, not whitespace, and
/// escaped inside strings).
pub const EVENT_SEPARATOR: char = '\u{1e}';

/// A streamed call whose events are kept, each with when it came, until
/// the stream ends.
#[derive(Debug)]
struct PendingStream {
    pending: Pending,
    events: Vec<(Instant, StreamEvent)>,
    /// Bytes kept in `events`.
    kept: usize,
}

impl PendingStream {
    /// The [`LiveCall`] it stands for, every event kept fed to it as if
    /// fed when it came.
    fn start(self) -> LiveCall {
        let mut call = self.pending.start();
        for (at, event) in self.events {
            match event {
                StreamEvent::Data(data) => call.push_data_at(&data, at),
                StreamEvent::Bytes(bytes) => call.push_bytes_at(&bytes, at),
                StreamEvent::Run(run) => {
                    for data in run.split(EVENT_SEPARATOR) {
                        call.push_data_at(data, at);
                    }
                }
            }
        }
        call
    }

    /// Whether an event of `len` bytes may be kept too.
    fn has_room(&self, len: usize) -> bool {
        self.kept + len <= STREAM_KEPT_MAX
    }

    /// Keeps `event` of `len` bytes, come now.
    fn keep(&mut self, len: usize, event: StreamEvent) {
        self.kept += len;
        self.events.push((Instant::now(), event));
    }
}

// The pending request boxed, as `LiveCall`'s states are: a binding's object
// holds its call until the language frees the object, well after the call
// has ended (see `live::State`).
#[derive(Debug)]
enum Inner {
    Pending(Box<Pending>),
    /// A stream, its events kept (see the module documentation).
    Streaming(Box<PendingStream>),
    Live(LiveCall),
}

/// An OpenAI-compatible call held by a language binding, whose plain
/// (non-streamed) response is extracted on the engine's extraction thread
/// (see the module documentation). Dropped unfinished, it is recorded as
/// cancelled, as a [`LiveCall`] is.
///
/// ```
/// use anosys::embed::{DeferredCall, RequestJson, ResponseJson};
/// use anosys::sources::openai::CaptureOptions;
///
/// # let dir = std::env::temp_dir().join(format!("anosys-deferred-doc-{}", std::process::id()));
/// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
/// let request = RequestJson::Text(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#.into());
/// let mut call = DeferredCall::start("https://api.openai.com/v1/chat/completions".into(), request, CaptureOptions::default(), None);
/// assert!(!call.is_streaming());
/// let reply = r#"{"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}"#;
/// assert!(call.finish_deferred(200, ResponseJson::Text(reply.into()), true));
/// assert!(!call.finish_deferred(200, ResponseJson::Text(reply.into()), true), "a call ends once");
/// assert_eq!(anosys::flush(None).counters.captured, 1);
/// ```
#[derive(Debug)]
pub struct DeferredCall(Inner);

impl DeferredCall {
    /// Starts a call to `url` with `request`, as a child of `parent` (else
    /// of the current span of this thread, as [`LiveCall::start`] does). A
    /// streamed request starts its [`LiveCall`] at once.
    pub fn start(
        url: String,
        request: RequestJson,
        options: CaptureOptions,
        parent: Option<(TraceId, SpanId)>,
    ) -> Self {
        let streaming = match &request {
            RequestJson::Value(v) => v.get("stream").and_then(Value::as_bool) == Some(true),
            RequestJson::Text(t) => asks_stream(t.as_bytes()),
            RequestJson::Bytes(b) => asks_stream(b),
        };
        DeferredCall::start_known(url, request, options, parent, streaming)
    }

    /// [`DeferredCall::start`] for a call whose caller knows whether it
    /// `streams`: a binding that records a plain call once its whole reply
    /// has come, or knows what it asked for. The request is not read on the
    /// caller's thread to find out (a full scan of its text: tens of µs for
    /// a long history); a stream starts its [`LiveCall`] at once.
    ///
    /// ```
    /// use anosys::sources::openai::{CaptureOptions, DeferredCall, RequestJson};
    ///
    /// let url = "https://api.openai.com/v1/chat/completions";
    /// let request = || RequestJson::Text(r#"{"model":"gpt-4o-mini","messages":[],"stream":true}"#.into());
    /// let plain = DeferredCall::start_known(url.into(), request(), CaptureOptions::default(), None, false);
    /// assert!(!plain.is_streaming());
    /// let stream = DeferredCall::start_known(url.into(), request(), CaptureOptions::default(), None, true);
    /// assert!(stream.is_streaming());
    /// ```
    pub fn start_known(
        url: String,
        request: RequestJson,
        options: CaptureOptions,
        parent: Option<(TraceId, SpanId)>,
        streams: bool,
    ) -> Self {
        let parent = parent.or_else(|| context::current().map(|cx| (cx.trace_id, cx.span_id)));
        let pending =
            Pending { url, request, options, parent, user_context: None, start_time: SystemTime::now(), sent: Instant::now() };
        if streams {
            DeferredCall(Inner::Streaming(Box::new(PendingStream { pending, events: Vec::new(), kept: 0 })))
        } else {
            DeferredCall(Inner::Pending(Box::new(pending)))
        }
    }

    /// Sets the record's user context (before the call ends).
    pub fn set_user_context(&mut self, user_context: Value) {
        match &mut self.0 {
            Inner::Pending(p) => p.user_context = Some(user_context),
            Inner::Streaming(s) => s.pending.user_context = Some(user_context),
            Inner::Live(call) => {
                if let Some(record) = call.record_mut() {
                    record.user_context = Some(user_context);
                }
            }
        }
    }

    /// Moves the call's start back by `elapsed`: for a binding that starts
    /// its `DeferredCall` only when the response has come, the request
    /// having been sent `elapsed` ago (its start time, and the time a
    /// stream's first chunk counts from). Does nothing once the call is
    /// live (started on the caller's thread).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use anosys::embed::{DeferredCall, RequestJson, ResponseJson};
    /// use anosys::sources::openai::CaptureOptions;
    ///
    /// let request = RequestJson::Text(r#"{"model":"gpt-4o-mini","messages":[]}"#.into());
    /// let mut call = DeferredCall::start("https://api.openai.com/v1/chat/completions".into(), request, CaptureOptions::default(), None);
    /// call.backdate(Duration::from_millis(250));
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// call.finish_deferred_into(200, ResponseJson::Text(r#"{"choices":[]}"#.into()), move |r| tx.send(r).unwrap());
    /// let record = rx.recv().unwrap();
    /// let took = record.end_time.duration_since(record.start_time).unwrap();
    /// assert!(took >= Duration::from_millis(250));
    /// assert!(record.start_time <= SystemTime::now() - Duration::from_millis(250));
    /// ```
    pub fn backdate(&mut self, elapsed: Duration) {
        let pending = match &mut self.0 {
            Inner::Pending(p) => p,
            Inner::Streaming(s) => &mut s.pending,
            Inner::Live(_) => return,
        };
        if let (Some(start_time), Some(sent)) = (pending.start_time.checked_sub(elapsed), pending.sent.checked_sub(elapsed)) {
            pending.start_time = start_time;
            pending.sent = sent;
        }
    }

    /// Whether the request asked for a stream (or chunks have arrived).
    pub fn is_streaming(&self) -> bool {
        match &self.0 {
            Inner::Pending(_) => false,
            Inner::Streaming(_) => true,
            Inner::Live(call) => call.is_streaming(),
        }
    }

    /// Whether the call has ended.
    pub fn is_done(&self) -> bool {
        matches!(&self.0, Inner::Live(call) if call.is_done())
    }

    /// The call as a [`LiveCall`], started now if it was not yet (with the
    /// start time it was given): for everything but a deferred finish.
    pub fn live(&mut self) -> &mut LiveCall {
        match std::mem::replace(&mut self.0, Inner::Live(LiveCall::done())) {
            Inner::Pending(p) => self.0 = Inner::Live(p.start()),
            Inner::Streaming(s) => self.0 = Inner::Live(s.start()),
            live => self.0 = live,
        }
        match &mut self.0 {
            Inner::Live(call) => call,
            _ => unreachable!(),
        }
    }

    /// Feeds the JSON text of one streamed event (a `data:` payload): kept
    /// with when it came until the stream ends (see
    /// [`end_stream_with`](Self::end_stream_with)), else fed to the
    /// [`LiveCall`] at once.
    pub fn push_data(&mut self, data: String) {
        if let Inner::Streaming(s) = &mut self.0
            && s.has_room(data.len())
        {
            s.keep(data.len(), StreamEvent::Data(data));
            return;
        }
        self.live().push_data(&data);
    }

    /// Feeds the JSON texts of several streamed events at once, joined by
    /// [`EVENT_SEPARATOR`], as [`push_data`](Self::push_data) does one: a
    /// binding that holds a stream's events after its first (whose time is
    /// the time to first chunk) hands them over in one crossing. They are
    /// kept as one, with when they were handed over.
    ///
    /// ```
    /// use anosys::embed::{DeferredCall, RequestJson, EVENT_SEPARATOR};
    /// use anosys::sources::openai::CaptureOptions;
    ///
    /// # let dir = std::env::temp_dir().join(format!("anosys-deferred-run-doc-{}", std::process::id()));
    /// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
    /// let request = RequestJson::Text(r#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#.into());
    /// let mut call = DeferredCall::start("https://api.openai.com/v1/chat/completions".into(), request, CaptureOptions::default(), None);
    /// let chunk = |text: &str| format!(r#"{{"id":"c1","model":"gpt-4o-mini","choices":[{{"index":0,"delta":{{"content":"{text}"}}}}]}}"#);
    /// call.push_data(chunk("Hel"));
    /// call.push_data_run([chunk("lo"), chunk("!")].join(&EVENT_SEPARATOR.to_string()));
    /// assert!(call.end_stream_with(false, anosys::capture));
    /// assert_eq!(anosys::flush(None).counters.captured, 1);
    /// ```
    pub fn push_data_run(&mut self, run: String) {
        if let Inner::Streaming(s) = &mut self.0
            && s.has_room(run.len())
        {
            s.keep(run.len(), StreamEvent::Run(run));
            return;
        }
        let call = self.live();
        for data in run.split(EVENT_SEPARATOR) {
            call.push_data(data);
        }
    }

    /// Feeds raw bytes of the server-sent-events body, split anywhere, as
    /// [`push_data`](Self::push_data) does an event.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if let Inner::Streaming(s) = &mut self.0
            && s.has_room(bytes.len())
        {
            s.keep(bytes.len(), StreamEvent::Bytes(bytes.to_vec()));
            return;
        }
        self.live().push_bytes(bytes);
    }

    /// Whether [`end_stream_with`](Self::end_stream_with) would hand the
    /// stream over now (given `defer`).
    pub fn can_defer_stream_end(&self) -> bool {
        matches!(self.0, Inner::Streaming(_)) && !crate::global::has_before_send()
    }

    /// Ends a stream read to its end. When `defer` allows it, no global
    /// `before_send` callback is set and its events were kept, the
    /// accumulation and the record are made on the extraction thread and
    /// captured there ([`crate::capture`]), with the end time of now;
    /// otherwise here, as [`LiveCall::end_stream`], the record given to
    /// `submit`. Returns whether the call ended now (`false` once it had
    /// ended).
    ///
    /// ```
    /// use anosys::embed::{DeferredCall, RequestJson};
    /// use anosys::sources::openai::CaptureOptions;
    ///
    /// # let dir = std::env::temp_dir().join(format!("anosys-deferred-stream-doc-{}", std::process::id()));
    /// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
    /// let request = RequestJson::Text(r#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#.into());
    /// let mut call = DeferredCall::start("https://api.openai.com/v1/chat/completions".into(), request, CaptureOptions::default(), None);
    /// assert!(call.is_streaming());
    /// call.push_data(r#"{"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}"#.into());
    /// assert!(call.end_stream_with(true, anosys::capture));
    /// assert!(!call.end_stream_with(true, anosys::capture), "a call ends once");
    /// assert_eq!(anosys::flush(None).counters.captured, 1);
    /// ```
    pub fn end_stream_with(&mut self, defer: bool, submit: impl FnOnce(Record) -> bool) -> bool {
        if defer && self.can_defer_stream_end() {
            let Inner::Streaming(s) = std::mem::replace(&mut self.0, Inner::Live(LiveCall::done())) else {
                unreachable!()
            };
            let end = SystemTime::now();
            run_deferred(Box::new(move || {
                if let Some(mut record) = s.start().end_stream() {
                    record.end_time = end.max(record.start_time);
                    crate::global::capture_without_hook(record);
                }
            }));
            return true;
        }
        self.live().end_stream().is_some_and(submit)
    }

    /// Whether [`finish_deferred`](Self::finish_deferred) would hand the
    /// call over now (given `defer`): the binding need not leave its lock
    /// (Python's GIL) for so little work.
    pub fn can_defer(&self) -> bool {
        matches!(self.0, Inner::Pending(_)) && !crate::global::has_before_send()
    }

    /// Ends a call not yet streaming with its HTTP status and response,
    /// whose record is built and captured ([`crate::capture`]) on the
    /// extraction thread, when `defer` allows it and no global
    /// `before_send` callback is set; otherwise here, as
    /// [`LiveCall::finish`] then [`crate::capture`]. Returns whether the
    /// record was handed over (`false` once the call has ended).
    pub fn finish_deferred(&mut self, status: u16, response: ResponseJson, defer: bool) -> bool {
        self.finish_with(status, response, defer, crate::capture)
    }

    /// [`finish_deferred`](Self::finish_deferred), the record given to
    /// `submit` when it is built here (a binding's own capture path).
    pub fn finish_with(
        &mut self,
        status: u16,
        response: ResponseJson,
        defer: bool,
        submit: impl FnOnce(Record) -> bool,
    ) -> bool {
        if defer && !crate::global::has_before_send() && matches!(self.0, Inner::Pending(_)) {
            return self.finish_elsewhere(status, response, Box::new(|record| {
                crate::global::capture_without_hook(record);
            }));
        }
        finish_live(self.live(), status, response).is_some_and(submit)
    }

    /// Ends a call not yet streaming with its HTTP status and response: its
    /// record is built on the extraction thread and handed to `deliver`
    /// there (whatever `before_send` callback applies is `deliver`'s to
    /// run). A call already live (streaming) is ended here, and `deliver`
    /// called here. Returns whether the call ended now (`false` once it
    /// had ended).
    ///
    /// [`crate::flush`], [`crate::shutdown`], [`crate::counters`] and
    /// [`Pipeline::flush`](crate::Pipeline::flush) first wait for the calls
    /// handed over.
    ///
    /// ```
    /// use anosys::embed::{DeferredCall, RequestJson, ResponseJson};
    /// use anosys::sources::openai::CaptureOptions;
    /// use std::sync::mpsc;
    ///
    /// let request = RequestJson::Bytes(br#"{"model":"gpt-4o-mini","messages":[]}"#.to_vec());
    /// let mut call = DeferredCall::start("https://api.openai.com/v1/chat/completions".into(), request, CaptureOptions::default(), None);
    /// let reply = br#"{"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}"#;
    /// let (tx, rx) = mpsc::channel();
    /// assert!(call.finish_deferred_into(200, ResponseJson::Bytes(reply.to_vec()), move |r| tx.send(r).unwrap()));
    /// let record = rx.recv().unwrap();
    /// assert_eq!(record.output().as_deref(), Some(&serde_json::json!("Hello")));
    /// ```
    pub fn finish_deferred_into(&mut self, status: u16, response: ResponseJson, deliver: impl FnOnce(Record) + Send + 'static) -> bool {
        let deliver: Box<dyn FnOnce(Record) + Send> = Box::new(deliver);
        if let Inner::Pending(_) = self.0 {
            return self.finish_elsewhere(status, response, deliver);
        }
        match finish_live(self.live(), status, response) {
            Some(record) => {
                deliver(record);
                true
            }
            None => false,
        }
    }

    /// Hands a pending call to the extraction thread; `false` (and nothing
    /// done) if it is not pending.
    fn finish_elsewhere(&mut self, status: u16, response: ResponseJson, deliver: Box<dyn FnOnce(Record) + Send>) -> bool {
        let Inner::Pending(_) = self.0 else { return false };
        let Inner::Pending(p) = std::mem::replace(&mut self.0, Inner::Live(LiveCall::done())) else {
            unreachable!()
        };
        let end = SystemTime::now();
        run_deferred(Box::new(move || {
            if let Some(record) = finish(p.start(), status, response, end) {
                deliver(record);
            }
        }));
        true
    }

    /// The call as an [`OpenAiCall`](super::OpenAiCall) not yet ended
    /// (started now, as it was, if it was pending): for a response that
    /// turns out to be a stream. `None` once it is streaming or ended.
    pub fn into_call(mut self) -> Option<super::OpenAiCall> {
        self.live().take_started()
    }
}

impl Drop for DeferredCall {
    fn drop(&mut self) {
        // Never finished: recorded as cancelled, as a `LiveCall` dropped
        // unfinished is (it ends itself on drop).
        if !matches!(self.0, Inner::Live(_)) {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                self.live();
            }));
        }
    }
}

/// A plain (not streamed) call whose whole response has come, for
/// [`PlainCall::hand_over`]: what a binding that records such a call in
/// one step has of it, borrowed.
///
/// ```
/// use std::time::Duration;
/// use anosys::embed::PlainCall;
/// use anosys::sources::openai::{RequestBody, ResponseBody};
///
/// # let dir = std::env::temp_dir().join(format!("anosys-plain-doc-{}", std::process::id()));
/// # let _g = anosys::init_with(anosys::Config::builder().db_path(dir.join("r.db")).build().unwrap()).unwrap();
/// let sent = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#;
/// let read = r#"{"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}"#;
/// let call = PlainCall {
///     url: "https://api.openai.com/v1/chat/completions",
///     request: RequestBody::Bytes(sent),
///     status: 200,
///     response: ResponseBody::Text(read),
///     elapsed: Duration::from_millis(420),
///     ..PlainCall::default()
/// };
/// // Made into its record on the extraction thread (here, unless a
/// // `before_send` callback must see it: then with the function given).
/// let handed_over = match call.hand_over() {
///     Ok(()) => true,
///     Err(call) => call.record_with(anosys::capture),
/// };
/// assert!(handed_over);
/// assert_eq!(anosys::flush(None).counters.captured, 1);
/// ```
#[derive(Debug)]
pub struct PlainCall<'a> {
    /// The URL called.
    pub url: &'a str,
    /// The request body, as sent.
    pub request: RequestBody<'a>,
    /// The response's HTTP status.
    pub status: u16,
    /// The response body, as read.
    pub response: ResponseBody<'a>,
    /// How long before now the request was sent: the record starts then
    /// and ends now.
    pub elapsed: Duration,
    /// The parent span; `None`: the current span of this thread, if any.
    pub parent: Option<(TraceId, SpanId)>,
    /// The record's user context.
    pub user_context: Option<Value>,
    /// The record's `source` (`None`: `openai`).
    pub source: Option<&'a str>,
    /// Whether to capture prompts and replies.
    pub capture_content: bool,
}

impl Default for PlainCall<'_> {
    fn default() -> Self {
        PlainCall {
            url: "",
            request: RequestBody::Bytes(b""),
            status: 200,
            response: ResponseBody::Bytes(b""),
            elapsed: Duration::ZERO,
            parent: None,
            user_context: None,
            source: None,
            capture_content: true,
        }
    }
}

impl PlainCall<'_> {
    /// Hands the call to the engine's extraction thread, which makes it
    /// into its record and captures it ([`crate::capture`], without the
    /// global `before_send` callback, which is not set). Its bodies are
    /// copied into buffers the engine keeps for the next calls: nothing is
    /// allocated on this thread for it, in the usual case, and nothing
    /// made here is freed on another thread (memory freed on another
    /// thread costs the thread that made it, when it collects it, more than
    /// the copy: about half the caller's time in the Python package).
    ///
    /// `Err` gives the call back, nothing done, when its record must be
    /// made on this thread: a global `before_send` callback is set, which
    /// must see it here ([`record_with`](Self::record_with)).
    // The call given back whole: boxing it would allocate on every call.
    #[allow(clippy::result_large_err)]
    pub fn hand_over(self) -> Result<(), Self> {
        if crate::global::has_before_send() {
            return Err(self);
        }
        let (now, sent) = (SystemTime::now(), Instant::now());
        let before = OUTSTANDING.fetch_add(1, Ordering::SeqCst);
        let exec = if before < QUEUE { exec() } else { None };
        let mut job = exec.as_ref().and_then(|e| e.plain_jobs.pop()).unwrap_or_else(PlainJob::new);
        job.fill(self, now, sent);
        match exec {
            Some(exec) => {
                exec.queue.push(Task::Plain(job));
                if before + 1 == WAKE_AT || exec.asleep.load(Ordering::SeqCst) {
                    exec.thread.unpark();
                }
            }
            None => {
                // The queue is full (or no thread could be started): made
                // here, never dropped.
                let _ = catch_unwind(AssertUnwindSafe(|| job.capture()));
                done_one();
            }
        }
        Ok(())
    }

    /// Makes the call into its record on this thread, ending now, and
    /// gives it to `submit` (a binding's capture path); returns what
    /// `submit` returns, or `false` if no record could be made.
    pub fn record_with(self, submit: impl FnOnce(Record) -> bool) -> bool {
        let now = SystemTime::now();
        let start = now.checked_sub(self.elapsed).unwrap_or(now);
        let parent = self.parent.or_else(current_parent);
        let options = CaptureOptions {
            capture_content: self.capture_content,
            source: self.source.unwrap_or("openai").to_owned(),
            ..CaptureOptions::default()
        };
        let times = Times { start, end: now, sent: Instant::now().checked_sub(self.elapsed) };
        let record = plain_record(self.url, self.request, self.status, self.response, &options, parent, self.user_context, times);
        record.is_some_and(submit)
    }
}

fn current_parent() -> Option<(TraceId, SpanId)> {
    context::current().map(|cx| (cx.trace_id, cx.span_id))
}

/// When a plain call started, ended, and was sent (for the clock of
/// anything timed from the send).
#[derive(Debug, Clone, Copy)]
struct Times {
    start: SystemTime,
    end: SystemTime,
    sent: Option<Instant>,
}

/// The record of a plain call, as [`Pending::start`] then [`finish`] make it.
#[allow(clippy::too_many_arguments)]
fn plain_record(
    url: &str,
    request: RequestBody<'_>,
    status: u16,
    response: ResponseBody<'_>,
    options: &CaptureOptions,
    parent: Option<(TraceId, SpanId)>,
    user_context: Option<Value>,
    times: Times,
) -> Option<Record> {
    let mut call = start_at(url, request, options, parent, user_context, times.start, times.sent);
    let mut record = call.finish(status, response)?;
    record.end_time = times.end.max(record.start_time);
    Some(record)
}

/// How a body kept in a [`PlainJob`]'s buffer is read.
#[derive(Debug, Default)]
enum Form {
    /// As bytes off the wire.
    #[default]
    Bytes,
    /// As text (the buffer holds UTF-8).
    Text,
    /// Parsed already (the buffer is empty).
    Json(Value),
}

impl Form {
    /// Copies `body` into `buf`; how to read it back.
    fn keep_request(buf: &mut Vec<u8>, body: RequestBody<'_>) -> Form {
        buf.clear();
        match body {
            RequestBody::Bytes(bytes) => {
                buf.extend_from_slice(bytes);
                Form::Bytes
            }
            RequestBody::Text(text) => {
                buf.extend_from_slice(text.as_bytes());
                Form::Text
            }
            RequestBody::Json(value) => Form::Json(value),
        }
    }

    fn keep_response(buf: &mut Vec<u8>, body: ResponseBody<'_>) -> Form {
        match body {
            ResponseBody::Bytes(bytes) => Form::keep_request(buf, RequestBody::Bytes(bytes)),
            ResponseBody::Text(text) => Form::keep_request(buf, RequestBody::Text(text)),
            ResponseBody::Json(value) => Form::keep_request(buf, RequestBody::Json(value)),
        }
    }

    /// The body kept in `buf`, as it was given (a `Json` form is taken).
    fn request<'a>(&mut self, buf: &'a [u8]) -> RequestBody<'a> {
        match std::mem::take(self) {
            Form::Bytes => RequestBody::Bytes(buf),
            // UTF-8 when it was kept: read as bytes if not, never dropped.
            Form::Text => std::str::from_utf8(buf).map_or(RequestBody::Bytes(buf), RequestBody::Text),
            Form::Json(value) => RequestBody::Json(value),
        }
    }

    fn response<'a>(&mut self, buf: &'a [u8]) -> ResponseBody<'a> {
        match self.request(buf) {
            RequestBody::Bytes(bytes) => ResponseBody::Bytes(bytes),
            RequestBody::Text(text) => ResponseBody::Text(text),
            RequestBody::Json(value) => ResponseBody::Json(value),
        }
    }
}

/// A [`PlainCall`] copied for the extraction thread, into buffers that go
/// back to the next callers once its record is made ([`Exec::plain_jobs`]).
#[derive(Debug)]
struct PlainJob {
    url: String,
    request: Vec<u8>,
    request_form: Form,
    response: Vec<u8>,
    response_form: Form,
    status: u16,
    options: CaptureOptions,
    parent: Option<(TraceId, SpanId)>,
    user_context: Option<Value>,
    times: Times,
}

impl PlainJob {
    /// Buffers larger than this are not kept for the next call.
    const KEEP_MAX: usize = 64 << 10;

    fn new() -> Box<PlainJob> {
        #[cfg(test)]
        tests::PLAIN_JOBS_MADE.fetch_add(1, Ordering::SeqCst);
        Box::new(PlainJob {
            url: String::new(),
            request: Vec::new(),
            request_form: Form::Bytes,
            response: Vec::new(),
            response_form: Form::Bytes,
            status: 0,
            options: CaptureOptions::default(),
            parent: None,
            user_context: None,
            times: Times { start: SystemTime::UNIX_EPOCH, end: SystemTime::UNIX_EPOCH, sent: None },
        })
    }

    /// Copies `call`, which ends at `now` (`sent`: the same instant).
    fn fill(&mut self, call: PlainCall<'_>, now: SystemTime, sent: Instant) {
        self.url.clear();
        self.url.push_str(call.url);
        self.request_form = Form::keep_request(&mut self.request, call.request);
        self.response_form = Form::keep_response(&mut self.response, call.response);
        self.status = call.status;
        self.options.capture_content = call.capture_content;
        let source = call.source.unwrap_or("openai");
        if self.options.source != source {
            self.options.source.clear();
            self.options.source.push_str(source);
        }
        self.parent = call.parent.or_else(current_parent);
        self.user_context = call.user_context;
        self.times = Times { start: now.checked_sub(call.elapsed).unwrap_or(now), end: now, sent: sent.checked_sub(call.elapsed) };
    }

    /// Makes the record and captures it (on the extraction thread).
    fn capture(&mut self) {
        let request = self.request_form.request(&self.request);
        let response = self.response_form.response(&self.response);
        let user_context = self.user_context.take();
        if let Some(record) =
            plain_record(&self.url, request, self.status, response, &self.options, self.parent, user_context, self.times)
        {
            crate::global::capture_without_hook(record);
        }
    }

    /// Whether it is worth keeping for the next call (not grown too large).
    fn reusable(&self) -> bool {
        self.request.capacity() <= Self::KEEP_MAX
            && self.response.capacity() <= Self::KEEP_MAX
            && self.url.capacity() <= Self::KEEP_MAX
    }
}

/// Ends a call started on another thread, at `end` (when its caller saw
/// the response).
fn finish(mut call: LiveCall, status: u16, response: ResponseJson, end: SystemTime) -> Option<Record> {
    let mut record = finish_live(&mut call, status, response)?;
    record.end_time = end.max(record.start_time);
    Some(record)
}

fn finish_live(call: &mut LiveCall, status: u16, response: ResponseJson) -> Option<Record> {
    match response {
        ResponseJson::Value(v) => call.finish(status, v),
        ResponseJson::Text(t) => call.finish(status, t.as_str()),
        ResponseJson::Bytes(b) => call.finish(status, b.as_slice()),
    }
}

/// Whether JSON text of a request has `"stream": true` at its top level.
pub(crate) fn asks_stream(text: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Streams {
        #[serde(default)]
        stream: Option<Value>,
    }
    serde_json::from_slice::<Streams>(text).is_ok_and(|s| s.stream == Some(Value::Bool(true)))
}

type Job = Box<dyn FnOnce() + Send>;

/// What the extraction thread is handed.
enum Task {
    Run(Job),
    /// A plain call, its job kept for the next one once done.
    Plain(Box<PlainJob>),
}

/// The extraction thread and the calls handed to it. A push is a few
/// atomic operations: the thread is not woken for each call (a wake is a
/// syscall and a context switch on the caller's side); it looks every
/// [`TICK`] while calls come, and is woken when [`WAKE_AT`] are waiting,
/// when it went to sleep for good after a quiet second, or by a flush.
struct Exec {
    queue: crossbeam_queue::SegQueue<Task>,
    /// Plain calls' jobs done with, for the next calls ([`PlainCall::hand_over`]);
    /// emptied when the thread goes to sleep for good.
    plain_jobs: crossbeam_queue::ArrayQueue<Box<PlainJob>>,
    /// Parked with no timeout: the next push wakes it.
    asleep: AtomicBool,
    thread: std::thread::Thread,
}

/// Calls handed over and not yet captured (across forks: reset in the child).
static OUTSTANDING: AtomicUsize = AtomicUsize::new(0);
static IDLE: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
static EXEC: Mutex<Option<Arc<Exec>>> = Mutex::new(None);

/// Calls waiting at most: past it, the caller's thread does the work itself
/// (never a dropped record).
const QUEUE: usize = 4096;
/// Waiting calls that wake the thread.
const WAKE_AT: usize = 64;
/// How often the thread looks while calls come.
const TICK: Duration = Duration::from_millis(10);
/// Empty looks before it sleeps until woken.
const QUIET_TICKS: u32 = 100;
/// Plain calls' jobs kept for reuse at most.
const PLAIN_JOBS: usize = 32;

fn done_one() {
    if OUTSTANDING.fetch_sub(1, Ordering::SeqCst) == 1 {
        let _g = IDLE.0.lock().unwrap_or_else(|p| p.into_inner());
        IDLE.1.notify_all();
    }
}

fn run_deferred(job: Job) {
    let before = OUTSTANDING.fetch_add(1, Ordering::SeqCst);
    if before < QUEUE
        && let Some(exec) = exec()
    {
        exec.queue.push(Task::Run(job));
        if before + 1 == WAKE_AT || exec.asleep.load(Ordering::SeqCst) {
            exec.thread.unpark();
        }
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(job));
    done_one();
}

fn exec() -> Option<Arc<Exec>> {
    // `try_lock`: never wait on a lock (one held at a fork stays held in
    // the child); the caller then does the work itself.
    let mut guard = EXEC.try_lock().ok()?;
    if let Some(exec) = guard.as_ref() {
        return Some(exec.clone());
    }
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Exec>>();
    let handle = std::thread::Builder::new()
        .name("anosys-extract".into())
        .spawn(move || {
            let Ok(exec) = rx.recv() else { return };
            let mut quiet = 0;
            loop {
                let mut ran = false;
                while let Some(task) = exec.queue.pop() {
                    match task {
                        Task::Run(job) => {
                            let _ = catch_unwind(AssertUnwindSafe(job));
                        }
                        Task::Plain(mut job) => {
                            let done = catch_unwind(AssertUnwindSafe(|| job.capture()));
                            if done.is_ok() && job.reusable() {
                                // Full: freed here.
                                let _ = exec.plain_jobs.push(job);
                            }
                        }
                    }
                    done_one();
                    ran = true;
                }
                quiet = if ran { 0 } else { quiet + 1 };
                if quiet < QUIET_TICKS {
                    std::thread::park_timeout(TICK);
                    continue;
                }
                exec.asleep.store(true, Ordering::SeqCst);
                // Quiet for a while: the jobs kept go.
                while exec.plain_jobs.pop().is_some() {}
                if OUTSTANDING.load(Ordering::SeqCst) == 0 {
                    std::thread::park();
                }
                exec.asleep.store(false, Ordering::SeqCst);
                quiet = 0;
            }
        })
        .ok()?;
    let exec = Arc::new(Exec {
        queue: crossbeam_queue::SegQueue::new(),
        plain_jobs: crossbeam_queue::ArrayQueue::new(PLAIN_JOBS),
        asleep: AtomicBool::new(false),
        thread: handle.thread().clone(),
    });
    tx.send(exec.clone()).ok()?;
    *guard = Some(exec.clone());
    Some(exec)
}

/// Waits until every call handed over has been captured, or `timeout`
/// passed; whether it got there.
pub(crate) fn wait_idle(timeout: Duration) -> bool {
    if OUTSTANDING.load(Ordering::SeqCst) == 0 {
        return true;
    }
    if let Some(exec) = EXEC.lock().ok().and_then(|g| g.clone()) {
        exec.thread.unpark();
    }
    let deadline = Instant::now() + timeout;
    let mut g = IDLE.0.lock().unwrap_or_else(|p| p.into_inner());
    while OUTSTANDING.load(Ordering::SeqCst) != 0 {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        // Bounded waits: a wake-up missed between the check and the wait
        // costs at most this much.
        g = IDLE.1.wait_timeout(g, (deadline - now).min(Duration::from_millis(5))).unwrap_or_else(|p| p.into_inner()).0;
    }
    true
}

/// In a forked child: the extraction thread is the parent's; forget it and
/// what it held.
pub(crate) fn after_fork_in_child() {
    if let Ok(mut g) = EXEC.try_lock()
        && let Some(exec) = g.take()
    {
        std::mem::forget(exec);
    }
    OUTSTANDING.store(0, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`PlainJob`]s allocated so far (only the test below hands plain
    /// calls over in this binary).
    pub(super) static PLAIN_JOBS_MADE: AtomicUsize = AtomicUsize::new(0);

    /// Plain calls one after another reuse one job, buffers and all; a job
    /// that grew past `KEEP_MAX` is not kept.
    #[test]
    fn plain_calls_reuse_their_jobs() {
        let sent = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#;
        let reply = br#"{"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}"#;
        let call = |request| PlainCall {
            url: "https://api.openai.com/v1/chat/completions",
            request,
            response: ResponseBody::Bytes(reply),
            ..PlainCall::default()
        };
        let made = PLAIN_JOBS_MADE.load(Ordering::SeqCst);
        for _ in 0..50 {
            assert!(call(RequestBody::Bytes(sent)).hand_over().is_ok());
            assert!(wait_idle(Duration::from_secs(10)));
        }
        // One job, or a few if the thread went quiet and let them go (a
        // second without a call) on a very slow machine.
        let reused = PLAIN_JOBS_MADE.load(Ordering::SeqCst) - made;
        assert!((1..=3).contains(&reused), "{reused} jobs made for 50 calls");

        let mut job = PlainJob::new();
        let now = (SystemTime::now(), Instant::now());
        job.fill(call(RequestBody::Bytes(sent)), now.0, now.1);
        assert!(job.reusable());
        let long = vec![b' '; PlainJob::KEEP_MAX + 1];
        job.fill(call(RequestBody::Bytes(&long)), now.0, now.1);
        assert!(!job.reusable());
    }

    #[test]
    fn stream_flag_from_text() {
        assert!(asks_stream(br#"{"model":"m","stream":true}"#));
        assert!(!asks_stream(br#"{"model":"m","stream":false}"#));
        assert!(!asks_stream(br#"{"model":"m","messages":[{"stream":true}]}"#));
        assert!(!asks_stream(b"not json"));
        assert!(!asks_stream(br#"{"stream":"true"}"#));
    }

    /// What a binding's object holds once its call has ended, until the
    /// language frees the object: a pointer or two, not a record inline
    /// (1,056 bytes a call before the states were boxed; Node held 22 MiB
    /// of ended calls after 20,000 calls, until V8 collected them).
    #[test]
    fn a_call_held_by_a_binding_is_small() {
        use std::mem::size_of;
        assert!(size_of::<DeferredCall>() <= 2 * size_of::<usize>(), "{}", size_of::<DeferredCall>());
        assert!(size_of::<LiveCall>() <= 2 * size_of::<usize>(), "{}", size_of::<LiveCall>());
        // A function call keeps its ids (for the binding's context) next to
        // its boxed record.
        assert!(size_of::<crate::embed::LiveFunctionCall>() <= 48, "{}", size_of::<crate::embed::LiveFunctionCall>());
    }
}
