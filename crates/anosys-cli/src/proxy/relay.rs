//! The relay path's capture, kept off the request's task.
//!
//! The request's body is forwarded as it came and kept by reference; it is
//! not parsed on the request's path. A non-streamed answer is passed on
//! chunk by chunk, untouched; the chunks are kept by reference (no copy),
//! and when the body ends (its last announced byte, its end, an error, or
//! the client leaving) the request, the chunks and how it ended go to the
//! capture thread, which parses both bodies, builds the record and ends the
//! request (metrics, access log, pipeline). A stream of events goes the
//! same way, each chunk kept with when it arrived: the thread feeds them to
//! the stream accumulator with those times (its time to first chunk).
//!
//! Times are taken when things happen, not when the thread gets to them:
//! the record's end time and the request's duration are those of the last
//! byte.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use anosys::sources::openai::{read_error, BodyError};
use anosys::ErrorInfo;
use bytes::Bytes;

use super::forward::{CallStart, Finisher};
use super::worker::Worker;

/// Largest body kept to be parsed for the record (the body itself is always
/// passed on whole), as the capture module's own limit.
const MAX_CAPTURED: usize = 64 << 20;

/// How long the capture thread collects before it works through a batch:
/// one wake-up for all the requests that end meanwhile. Nothing waits for
/// it: times are taken as things happen, and `/metrics` first ends what is
/// queued.
///
/// 20 ms: at 500 requests/s, 2 ms woke the thread for nearly every request,
/// and its CPU per request was 52 µs (woken, its caches cold); 20 ms
/// brings ten or so a batch, and 22 µs. The records wait that much longer
/// in memory, well within the pipeline's own flush interval.
const WINDOW: Duration = Duration::from_millis(20);

/// Most requests waiting for their record; past that (the thread cannot
/// keep up) a request ends on its own task instead.
const MAX_QUEUED: usize = 16_384;

/// How a body ended.
pub(crate) enum End {
    Finished,
    Failed(ErrorInfo),
    Cancelled,
}

/// One request's end, for the capture thread: the record is made from the
/// request, the answer's chunks and how it ended.
pub(crate) struct Job {
    call: Box<CallStart>,
    status: u16,
    chunks: Vec<Bytes>,
    /// For a stream, when each chunk arrived (its time to first chunk).
    arrivals: Option<Vec<Instant>>,
    end: End,
    at: (Instant, SystemTime),
    finisher: Finisher,
}

impl Job {
    fn run(self) {
        let Job { call, status, chunks, arrivals, end, at, finisher } = self;
        let call = call.call();
        let mut record = match arrivals {
            Some(arrivals) => {
                let mut stream = call.into_stream();
                stream.set_http_status(status);
                for (bytes, arrived) in chunks.iter().zip(arrivals) {
                    stream.push_bytes_at(bytes, arrived);
                }
                match end {
                    End::Finished => stream.finish(),
                    End::Failed(error) => stream.fail(error),
                    End::Cancelled => stream.cancel(),
                }
            }
            None => match end {
                End::Finished => {
                    let body: std::borrow::Cow<'_, [u8]> = match chunks.as_slice() {
                        [] => (&[][..]).into(),
                        [one] => one[..].into(),
                        many => many.concat().into(),
                    };
                    call.finish(status, &*body)
                }
                End::Failed(error) => call.fail(error),
                End::Cancelled => call.cancel(),
            },
        };
        record.end_time = at.1.max(record.start_time);
        finisher.finish_at(record, at.0);
    }
}

/// The capture thread.
pub(crate) struct Capture {
    worker: Worker<Job>,
}

impl Capture {
    pub(crate) fn new() -> Capture {
        // A panic in one record's capture loses that record, not the thread.
        let run = |job: Job| drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run())));
        let handler = Box::new(move |jobs: Vec<Job>, _dropped| jobs.into_iter().for_each(run));
        Capture { worker: Worker::new("anosys-proxy-capture", WINDOW, MAX_QUEUED, handler) }
    }

    /// Ends a request on the capture thread, or runs it now when the
    /// queue is full.
    pub(crate) fn push_or_run(&self, job: Job) {
        if let Err(job) = self.worker.try_push(job) {
            job.run();
        }
    }

    /// Ends every queued request now.
    pub(crate) fn flush(&self) {
        self.worker.flush();
    }
}

/// An answer on its way to the client, whole or a stream of events: its
/// chunks are kept (by reference) for the capture thread, and a stream's
/// with when each arrived.
pub(crate) struct RelayedBody {
    inner: anosys::sources::openai::ByteStream,
    pending: Option<(Box<CallStart>, Finisher)>,
    status: u16,
    chunks: Vec<Bytes>,
    arrivals: Option<Vec<Instant>>,
    kept: usize,
    /// Bytes still to come, when the length was announced: a server that
    /// stops reading at `Content-Length` never polls for the end.
    remaining: Option<u64>,
    shared: std::sync::Arc<super::Shared>,
}

impl RelayedBody {
    /// The answer `inner` to `call`, with HTTP `status`, a stream of
    /// server-sent events if `events`.
    pub(crate) fn new(
        inner: anosys::sources::openai::ByteStream,
        call: Box<CallStart>,
        finisher: Finisher,
        (status, events): (u16, bool),
        length: Option<u64>,
        shared: std::sync::Arc<super::Shared>,
    ) -> RelayedBody {
        let mut body = RelayedBody {
            inner,
            pending: Some((call, finisher)),
            status,
            chunks: Vec::new(),
            arrivals: events.then(Vec::new),
            kept: 0,
            remaining: length,
            shared,
        };
        if length == Some(0) {
            body.end(End::Finished);
        }
        body
    }

    fn end(&mut self, end: End) {
        if let Some((call, finisher)) = self.pending.take() {
            let at = (Instant::now(), SystemTime::now());
            let chunks = std::mem::take(&mut self.chunks);
            let arrivals = self.arrivals.take();
            self.shared.capture.push_or_run(Job { call, status: self.status, chunks, arrivals, end, at, finisher });
        }
    }
}

impl futures_util::Stream for RelayedBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = this.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(bytes))) => {
                if this.pending.is_some() && this.kept < MAX_CAPTURED {
                    let room = MAX_CAPTURED - this.kept;
                    let keep = if bytes.len() <= room { bytes.clone() } else { bytes.slice(..room) };
                    this.kept += keep.len();
                    this.chunks.push(keep);
                    if let Some(arrivals) = this.arrivals.as_mut() {
                        arrivals.push(Instant::now());
                    }
                }
                if let Some(left) = this.remaining.as_mut() {
                    *left = left.saturating_sub(bytes.len() as u64);
                    if *left == 0 {
                        this.end(End::Finished);
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => this.end(End::Failed(read_error(&**e))),
            Poll::Ready(None) => this.end(End::Finished),
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for RelayedBody {
    fn drop(&mut self) {
        self.end(End::Cancelled);
    }
}
