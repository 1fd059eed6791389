//! [`LiveCall`]: an OpenAI call held by a language binding (Python, Node)
//! between the request and the end of its response or stream.

use serde_json::Value;

use super::{CaptureOptions, OpenAiCall, StreamAccumulator};
use crate::record::{Record, SpanId, TraceId};

// One per call, moved between states in place: no gain in boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum State {
    Started(OpenAiCall),
    Streaming(StreamAccumulator),
    Done,
}

/// An OpenAI-compatible call owned by code outside Rust: started with the
/// request, it moves in place to its response, its error or its stream,
/// sends its record to the global pipeline exactly once, and is recorded as
/// cancelled if dropped unfinished (an abandoned stream, a request whose
/// promise was never awaited).
///
/// The Python and Node packages hold one per call; their wrappers only
/// decide when to call which method.
///
/// ```
/// use anosys::sources::openai::{CaptureOptions, LiveCall};
/// use serde_json::json;
///
/// let request = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "Hi"}]});
/// let mut call = LiveCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default(), None);
/// assert!(call.is_streaming());
/// call.push_data(r#"{"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#);
/// call.push_data(r#"{"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#);
/// let record = call.end_stream_record().unwrap();
/// assert_eq!(record.output, Some(json!("Hello")));
/// assert!(call.end_stream_record().is_none(), "a call ends once");
/// ```
#[derive(Debug)]
pub struct LiveCall {
    state: State,
}

impl LiveCall {
    /// Starts capturing a call to `url` with JSON `request`, as a child of
    /// `parent` (trace id, span id) when given.
    pub fn start(url: &str, request: Value, options: &CaptureOptions, parent: Option<(TraceId, SpanId)>) -> LiveCall {
        let mut call = OpenAiCall::start_owned(url, request, options);
        if let Some((trace, span)) = parent {
            call.record_mut().set_parent(trace, span);
        }
        LiveCall { state: State::Started(call) }
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

    /// Ends the call with its HTTP status and JSON body (status 400 and up,
    /// or an `{"error": …}` body, make an error record). Returns whether the
    /// record was accepted by the pipeline.
    pub fn finish(&mut self, status: u16, body: Value) -> bool {
        self.finish_record(status, body).is_some_and(crate::capture)
    }

    /// [`finish`](Self::finish), returning the record instead of sending it.
    pub fn finish_record(&mut self, status: u16, body: Value) -> Option<Record> {
        match self.take() {
            State::Started(call) => Some(call.finish_owned(status, body)),
            State::Streaming(acc) => Some(acc.finish()),
            State::Done => None,
        }
    }

    /// Ends the call with its HTTP status and the raw response body (JSON
    /// expected; anything else is kept as text and marked).
    pub fn finish_bytes(&mut self, status: u16, body: &[u8]) -> bool {
        let record = match self.take() {
            State::Started(call) => call.finish(status, body),
            State::Streaming(acc) => acc.finish(),
            State::Done => return false,
        };
        crate::capture(record)
    }

    /// Ends the call, or its stream, with an error: with the HTTP `status`
    /// and error `body` when the server answered, else with the error's
    /// type and message (a connection error, a timeout, a broken stream).
    pub fn fail(&mut self, error_type: String, message: String, status: Option<u16>, body: Option<Value>) -> bool {
        self.fail_record(error_type, message, status, body).is_some_and(crate::capture)
    }

    /// [`fail`](Self::fail), returning the record instead of sending it.
    pub fn fail_record(&mut self, error_type: String, message: String, status: Option<u16>, body: Option<Value>) -> Option<Record> {
        Some(match self.take() {
            State::Started(call) => match (status, body) {
                (Some(status), Some(body)) => call.finish_owned(status, body),
                (Some(status), None) => {
                    let mut call = call;
                    call.record_mut().set_attribute("http.response.status_code", status);
                    call.fail(error_type, message)
                }
                _ => call.fail(error_type, message),
            },
            State::Streaming(acc) => acc.fail(error_type, message),
            State::Done => return None,
        })
    }

    fn accumulator(&mut self) -> Option<&mut StreamAccumulator> {
        if let State::Started(_) = self.state {
            let State::Started(call) = self.take() else { unreachable!() };
            self.state = State::Streaming(call.into_stream());
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

    /// Feeds one streamed event already parsed.
    pub fn push_chunk(&mut self, chunk: &Value) {
        if let Some(acc) = self.accumulator() {
            acc.push_chunk(chunk);
        }
    }

    /// The stream was read to its end.
    pub fn end_stream(&mut self) -> bool {
        self.end_stream_record().is_some_and(crate::capture)
    }

    /// [`end_stream`](Self::end_stream), returning the record.
    pub fn end_stream_record(&mut self) -> Option<Record> {
        match self.take() {
            State::Started(call) => Some(call.into_stream().finish()),
            State::Streaming(acc) => Some(acc.finish()),
            State::Done => None,
        }
    }

    /// The caller stopped before the end (an early `break`, an abort):
    /// recorded as cancelled, keeping what arrived.
    pub fn cancel(&mut self) -> bool {
        self.cancel_record().is_some_and(crate::capture)
    }

    /// [`cancel`](Self::cancel), returning the record.
    pub fn cancel_record(&mut self) -> Option<Record> {
        match self.take() {
            State::Started(call) if call.is_streaming() => Some(call.into_stream().cancel()),
            State::Started(call) => Some(call.cancel()),
            State::Streaming(acc) => Some(acc.cancel()),
            State::Done => None,
        }
    }

    fn take(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Done)
    }
}

impl Drop for LiveCall {
    fn drop(&mut self) {
        if let Some(record) = self.cancel_record() {
            crate::capture(record);
        }
    }
}
