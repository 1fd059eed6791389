//! [`RecordedBody`]: a response body passed on untouched while its record
//! is built (feature `http-stream`; the async-openai layer and the proxy
//! use it).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::{OpenAiCall, StreamRecorder};
use crate::record::{ErrorInfo, Record};

pub use crate::net::BodyError;

/// A response body as a stream of chunks.
pub type ByteStream = Pin<Box<dyn futures_core::Stream<Item = Result<Bytes, BodyError>> + Send>>;
type Emit = Box<dyn FnOnce(Record) + Send>;

/// Largest body kept to be parsed for the record (the body itself is always
/// passed on whole).
const MAX_CAPTURED: usize = 64 << 20;

pub use crate::net::{error_text, is_timeout, reqwest_message};

/// A body's read error, its type `timeout` or `stream_error`.
///
/// ```
/// use anosys::sources::openai::read_error;
/// let cut = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the upstream closed mid-body");
/// let info = read_error(&cut);
/// assert_eq!((info.error_type.as_str(), info.message.as_str()), ("stream_error", "the upstream closed mid-body"));
/// ```
pub fn read_error(error: &(dyn std::error::Error + 'static)) -> ErrorInfo {
    ErrorInfo::new(if is_timeout(error) { "timeout" } else { "stream_error" }, error_text(error))
}

enum State {
    /// Server-sent events, accumulated event by event.
    Events(Box<StreamRecorder>),
    /// Any other body, kept whole and parsed at its end.
    Whole { call: Option<Box<OpenAiCall>>, status: u16, body: Vec<u8>, emit: Option<Emit> },
}

/// A response body, chunk by chunk and byte for byte, while the call's
/// record is built from it. The record ends exactly once: at the end of the
/// body, on an error, or, if the reader drops the body first (a client that
/// went away), as cancelled.
///
/// ```
/// use anosys::sources::openai::{CaptureOptions, OpenAiCall, RecordedBody};
/// use futures_util::StreamExt;
/// use std::sync::{Arc, Mutex};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let records = Arc::new(Mutex::new(Vec::new()));
/// let keep = records.clone();
/// let request = serde_json::json!({"model": "gpt-4o-mini", "messages": []});
/// let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default());
/// let body = br#"{"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}"#;
/// let chunks = futures_util::stream::iter([Ok(bytes::Bytes::from_static(&body[..20])), Ok(bytes::Bytes::from_static(&body[20..]))]);
/// let mut recorded = RecordedBody::whole(Box::pin(chunks), call, 200, move |r| keep.lock().unwrap().push(r));
/// let mut passed = Vec::new();
/// while let Some(chunk) = recorded.next().await {
///     passed.extend_from_slice(&chunk.unwrap());
/// }
/// assert_eq!(passed, body);
/// assert_eq!(records.lock().unwrap()[0].output().as_deref(), Some(&serde_json::json!("Hi")));
/// # });
/// ```
pub struct RecordedBody {
    inner: ByteStream,
    state: State,
    /// Bytes still to come, when the length was announced: a server that
    /// stops reading at `Content-Length` never polls for the end.
    remaining: Option<u64>,
}

impl std::fmt::Debug for RecordedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordedBody").finish_non_exhaustive()
    }
}

impl RecordedBody {
    /// A server-sent-events body, recorded by `recorder`.
    pub fn events(inner: ByteStream, recorder: StreamRecorder) -> RecordedBody {
        RecordedBody { inner, state: State::Events(Box::new(recorder)), remaining: None }
    }

    /// The body's announced length (`Content-Length`): the record ends as
    /// soon as that many bytes have passed, without waiting for a poll of
    /// the end that a server writing exactly that many may never make.
    pub fn with_length(mut self, length: Option<u64>) -> RecordedBody {
        self.remaining = length;
        if length == Some(0) {
            self.end();
        }
        self
    }

    fn end(&mut self) {
        match &mut self.state {
            State::Events(r) => r.finish(),
            State::Whole { .. } => self.end_whole(End::Finished),
        }
    }

    /// Any other body (JSON, an error page), answered with HTTP `status`:
    /// `call` is finished with it at its end and handed to `emit`.
    pub fn whole(
        inner: ByteStream,
        call: OpenAiCall,
        status: u16,
        emit: impl FnOnce(Record) + Send + 'static,
    ) -> RecordedBody {
        let state = State::Whole { call: Some(Box::new(call)), status, body: Vec::new(), emit: Some(Box::new(emit)) };
        RecordedBody { inner, state, remaining: None }
    }

    fn end_whole(&mut self, how: End) {
        if let State::Whole { call, status, body, emit } = &mut self.state
            && let (Some(call), Some(emit)) = (call.take(), emit.take())
        {
            let record = match how {
                End::Finished => call.finish(*status, body.as_slice()),
                End::Failed(error) => call.fail(error),
                End::Cancelled => call.cancel(),
            };
            *body = Vec::new();
            emit(record);
        }
    }
}

enum End {
    Finished,
    Failed(ErrorInfo),
    Cancelled,
}

impl futures_core::Stream for RecordedBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = this.inner.as_mut().poll_next(cx);
        match (&polled, &mut this.state) {
            (Poll::Ready(Some(Ok(bytes))), State::Events(r)) => r.push_bytes(bytes),
            (Poll::Ready(Some(Ok(bytes))), State::Whole { body, .. }) => {
                if body.len() < MAX_CAPTURED {
                    let room = MAX_CAPTURED - body.len();
                    body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
            }
            (Poll::Ready(Some(Err(e))), State::Events(r)) => r.fail(read_error(&**e)),
            (Poll::Ready(Some(Err(e))), State::Whole { .. }) => this.end_whole(End::Failed(read_error(&**e))),
            (Poll::Ready(None), _) => this.end(),
            (Poll::Pending, _) => {}
        }
        if let (Poll::Ready(Some(Ok(bytes))), Some(left)) = (&polled, this.remaining.as_mut()) {
            *left = left.saturating_sub(bytes.len() as u64);
            if *left == 0 {
                this.end();
            }
        }
        polled
    }
}

impl Drop for RecordedBody {
    fn drop(&mut self) {
        // An SSE recorder ends itself on drop; a whole body is ended here.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.end_whole(End::Cancelled)));
    }
}
