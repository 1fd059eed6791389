//! [`LiveCall`]: an OpenAI call held by a language binding (Python, Node)
//! between the request and the end of its response or stream.

use serde_json::Value;

use super::{CaptureOptions, OpenAiCall, ResponseBody, StreamAccumulator};
use crate::record::{ErrorInfo, Record, SpanId, TraceId};

// Boxed: a binding's object holds its call after it has ended, until the
// language's collector frees the object (V8 knows nothing of memory behind
// it): an ended call must be small. Inline, every `LiveCall` (and
// `DeferredCall`) was 1,056 bytes; Node held 22 MiB of ended calls after
// 20,000 calls, until a collection.
#[derive(Debug)]
enum State {
    Started(Box<OpenAiCall>),
    Streaming(Box<StreamAccumulator>),
    Done,
}

/// An OpenAI-compatible call owned by code outside Rust: started with the
/// request, it moves in place to its response, its error or its stream and
/// ends exactly once. Each ending returns the record (`None` once the call
/// has ended) for the caller to submit ([`crate::capture`]); a call dropped
/// unfinished (an abandoned stream, a request whose promise was never
/// awaited) is sent to the global pipeline as cancelled.
///
/// The Python and Node packages hold one per call; their wrappers only
/// decide when to call which method.
///
/// ```
/// use anosys::embed::LiveCall;
/// use anosys::sources::openai::CaptureOptions;
/// use serde_json::json;
///
/// let request = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
/// let mut call = LiveCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default(), None);
/// assert!(call.is_streaming());
/// call.push_data(r#"{"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#);
/// call.push_data(r#"{"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#);
/// let record = call.end_stream().unwrap();
/// assert_eq!(record.output().as_deref(), Some(&json!("Hello")));
/// assert!(call.end_stream().is_none(), "a call ends once");
/// ```
#[derive(Debug)]
pub struct LiveCall {
    state: State,
}

impl LiveCall {
    /// Starts capturing a call to `url` with `request` (bytes, JSON text or
    /// a parsed `Value`, as [`OpenAiCall::start`] takes it), as a child of
    /// `parent` (trace id, span id) when given.
    pub fn start<'a>(
        url: &str,
        request: impl Into<super::RequestBody<'a>>,
        options: &CaptureOptions,
        parent: Option<(TraceId, SpanId)>,
    ) -> LiveCall {
        let mut call = OpenAiCall::start(url, request, options);
        if let Some((trace, span)) = parent {
            call.record_mut().set_parent(trace, span);
        }
        LiveCall { state: State::Started(Box::new(call)) }
    }

    /// A call that has ended already (a placeholder).
    pub(crate) fn done() -> LiveCall {
        LiveCall { state: State::Done }
    }

    /// The record so far, before the response (to add a user context);
    /// `None` once streaming or ended.
    pub fn record_mut(&mut self) -> Option<&mut Record> {
        match &mut self.state {
            State::Started(call) => Some(call.record_mut()),
            _ => None,
        }
    }

    /// Whether the request asked for a stream (or chunks have arrived).
    pub fn is_streaming(&self) -> bool {
        match &self.state {
            State::Started(call) => call.is_streaming(),
            State::Streaming(_) => true,
            State::Done => false,
        }
    }

    /// Whether the call has ended.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Records the HTTP status the response came with, before the call
    /// ends (an error that carries a status but no body).
    pub fn set_http_status(&mut self, status: u16) {
        match &mut self.state {
            State::Started(call) => {
                call.record_mut().set_attribute("http.response.status_code", status);
            }
            State::Streaming(acc) => acc.set_http_status(status),
            State::Done => {}
        }
    }

    /// Ends the call with its HTTP status and response body, raw or parsed
    /// (see [`OpenAiCall::finish`]). Once streaming, the stream ends
    /// instead (as [`end_stream`](Self::end_stream)).
    pub fn finish<'a>(&mut self, status: u16, body: impl Into<ResponseBody<'a>>) -> Option<Record> {
        match self.take() {
            State::Started(call) => Some(call.finish(status, body)),
            State::Streaming(acc) => Some(acc.finish()),
            State::Done => None,
        }
    }

    /// Ends the call, or its stream, with an error that has no usable
    /// response (a connection error, a timeout, a broken stream).
    pub fn fail(&mut self, error: ErrorInfo) -> Option<Record> {
        match self.take() {
            State::Started(call) => Some(call.fail(error)),
            State::Streaming(acc) => Some(acc.fail(error)),
            State::Done => None,
        }
    }

    /// Ends a streamed response that was read to its end: the
    /// [`finish`](Self::finish) of a stream, whose body came through the
    /// `push_*` methods.
    pub fn end_stream(&mut self) -> Option<Record> {
        match self.take() {
            State::Started(call) => Some(call.into_stream().finish()),
            State::Streaming(acc) => Some(acc.finish()),
            State::Done => None,
        }
    }

    /// The caller stopped before the end (an early `break`, an abort):
    /// recorded as cancelled, keeping what arrived.
    pub fn cancel(&mut self) -> Option<Record> {
        match self.take() {
            State::Started(call) if call.is_streaming() => Some(call.into_stream().cancel()),
            State::Started(call) => Some(call.cancel()),
            State::Streaming(acc) => Some(acc.cancel()),
            State::Done => None,
        }
    }

    fn accumulator(&mut self) -> Option<&mut StreamAccumulator> {
        if let State::Started(_) = self.state {
            let State::Started(call) = self.take() else { unreachable!() };
            self.state = State::Streaming(Box::new(call.into_stream()));
        }
        match &mut self.state {
            State::Streaming(acc) => Some(acc),
            _ => None,
        }
    }

    /// Feeds the JSON text of one streamed event (a `data:` payload).
    pub fn push_data(&mut self, data: &str) {
        if let Some(acc) = self.accumulator() {
            acc.push_data(data);
        }
    }

    /// Feeds raw bytes of a server-sent-events body, split anywhere.
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        if let Some(acc) = self.accumulator() {
            acc.push_bytes(bytes);
        }
    }

    /// Sets when the request was sent (see [`OpenAiCall::set_sent_at`]),
    /// before the response or stream.
    pub(crate) fn set_sent_at(&mut self, at: std::time::Instant) {
        if let State::Started(call) = &mut self.state {
            call.set_sent_at(at);
        }
    }

    /// [`push_data`](Self::push_data) of an event that came `at`, fed
    /// later: the time to first chunk counts to `at`.
    pub(crate) fn push_data_at(&mut self, data: &str, at: std::time::Instant) {
        if let Some(acc) = self.accumulator() {
            acc.push_data_at(data, at);
        }
    }

    /// [`push_bytes`](Self::push_bytes) of bytes that came `at`, fed later.
    pub(crate) fn push_bytes_at(&mut self, bytes: &[u8], at: std::time::Instant) {
        if let Some(acc) = self.accumulator() {
            acc.push_bytes_at(bytes, at);
        }
    }

    /// Feeds one streamed event already parsed.
    pub fn push_chunk(&mut self, chunk: &Value) {
        if let Some(acc) = self.accumulator() {
            acc.push_chunk(chunk);
        }
    }

    /// The call, if it has neither streamed nor ended (it is then ended
    /// here: this `LiveCall` records nothing more).
    pub(crate) fn take_started(&mut self) -> Option<OpenAiCall> {
        match self.take() {
            State::Started(call) => Some(*call),
            other => {
                self.state = other;
                None
            }
        }
    }

    fn take(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Done)
    }
}

impl Drop for LiveCall {
    fn drop(&mut self) {
        if let Some(record) = self.cancel() {
            crate::capture(record);
        }
    }
}
