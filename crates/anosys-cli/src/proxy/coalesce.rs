//! An answer's chunks passed on together when they came together.
//!
//! hyper's HTTP/1.1 client hands a response body over one chunk at a time:
//! its connection's task decodes a chunk, puts it in a one-place channel,
//! and decodes the next only after the reader has taken it. A server
//! relaying that body then writes each chunk to its client in a system call
//! of its own. An upstream that sends a stream's nine events in one packet
//! thus cost the proxy nine `writev`s and the client nine wake-ups, where
//! nginx reads the packet and writes it once: `strace -c` of our bare stack
//! counted 10.5 `writev`s a streamed chat against 2 `recvfrom`s, and its
//! CPU a streamed chat was twice nginx's (plain chats: 1.1-1.4×).
//!
//! [`Coalesced`] keeps what comes while tasks ready to run still have their
//! turn (the connection's task among them, handing over what it has
//! already read), and passes it on as one chunk when their turn is over:
//! when the runtime's worker has nothing else to run (tokio's deferred
//! wake-up, the one [`tokio::task::yield_now`] uses) or at its next
//! periodic check of the I/O driver, whichever comes first. A chunk that
//! comes alone is passed on alone, a turn later; nothing waits for a chunk
//! that has not come.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};

/// Most bytes kept before they are passed on without waiting for the turn
/// to end: a large answer arriving fast is passed on in pieces this size.
pub const MOST_KEPT: usize = 64 << 10;

/// A response body whose data frames are passed on together when several
/// are ready one after another; any other frame, an error and the end come
/// after the data before them, in order.
///
/// ```
/// use anosys_cli::proxy::Coalesced;
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, StreamBody};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let events = ["data: 1\n\n", "data: 2\n\n", "data: [DONE]\n\n"];
/// let frames = futures_util::stream::iter(events.map(|e| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(e)))));
/// let body = Coalesced::new(StreamBody::new(frames));
/// // All three were ready at once: they come as one chunk.
/// let chunks: Vec<Bytes> = body.into_data_stream().map(|c| c.unwrap()).collect::<Vec<_>>().await;
/// assert_eq!(chunks, [Bytes::from("data: 1\n\ndata: 2\n\ndata: [DONE]\n\n")]);
/// # });
/// # use futures_util::StreamExt as _;
/// ```
pub struct Coalesced<B: Body> {
    inner: B,
    kept: Vec<Bytes>,
    kept_len: usize,
    /// What came after the kept data (another frame, an error, the end),
    /// given out once the data has been.
    after: Option<Option<Result<Frame<Bytes>, B::Error>>>,
    /// The turn the kept data waits for, while it waits.
    turn: Option<Turn>,
    waiting: bool,
}

// Nothing in a `Coalesced` is pinned but `inner`, itself `Unpin` where this
// is (what comes after the data, an error among it, is only moved).
impl<B: Body + Unpin> Unpin for Coalesced<B> {}

impl<B: Body> Coalesced<B> {
    /// `inner`, its data frames passed on together when they come together.
    pub fn new(inner: B) -> Coalesced<B> {
        Coalesced { inner, kept: Vec::new(), kept_len: 0, after: None, turn: None, waiting: false }
    }

    /// The kept data, as one chunk.
    fn take(&mut self) -> Frame<Bytes> {
        self.waiting = false;
        let len = std::mem::take(&mut self.kept_len);
        let data = match self.kept.len() {
            1 => self.kept.pop().unwrap_or_default(),
            _ => {
                let mut all = Vec::with_capacity(len);
                for part in self.kept.drain(..) {
                    all.extend_from_slice(&part);
                }
                Bytes::from(all)
            }
        };
        Frame::data(data)
    }

    /// Whether the turn the kept data waits for is over; starts one if none
    /// is under way.
    fn turn_over(&mut self, cx: &mut Context<'_>) -> bool {
        let turn = self.turn.get_or_insert_with(Turn::new);
        turn.state.task.register(cx.waker());
        if !self.waiting {
            self.waiting = true;
            turn.state.over.store(false, Ordering::SeqCst);
            // Polled once, `yield_now` asks the runtime to wake the given
            // waker when its worker next runs out of tasks or checks the
            // I/O driver (at once outside a tokio runtime); the future
            // itself is not needed after.
            let mut turn_ends = std::pin::pin!(tokio::task::yield_now());
            let _ = turn_ends.as_mut().poll(&mut Context::from_waker(&turn.waker));
            return false;
        }
        turn.state.over.load(Ordering::SeqCst)
    }
}

impl<B> Body for Coalesced<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if this.kept.is_empty()
            && let Some(after) = this.after.take()
        {
            return Poll::Ready(after);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if data.is_empty() {
                            continue;
                        }
                        this.kept_len += data.len();
                        this.kept.push(data);
                        if this.kept_len >= MOST_KEPT {
                            return Poll::Ready(Some(Ok(this.take())));
                        }
                    }
                    Err(frame) if this.kept.is_empty() => return Poll::Ready(Some(Ok(frame))),
                    Err(frame) => {
                        this.after = Some(Some(Ok(frame)));
                        return Poll::Ready(Some(Ok(this.take())));
                    }
                },
                Poll::Ready(other) if this.kept.is_empty() => return Poll::Ready(other),
                Poll::Ready(other) => {
                    this.after = Some(other);
                    return Poll::Ready(Some(Ok(this.take())));
                }
                Poll::Pending if this.kept.is_empty() => return Poll::Pending,
                Poll::Pending => {
                    return match this.turn_over(cx) {
                        true => Poll::Ready(Some(Ok(this.take()))),
                        false => Poll::Pending,
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.kept.is_empty() && self.after.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + self.kept_len as u64);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + self.kept_len as u64);
        }
        hint
    }
}

/// The end of a turn of the runtime: a waker it is given to wake, which
/// notes that it was and wakes the body's task.
struct Turn {
    state: Arc<TurnState>,
    waker: Waker,
}

struct TurnState {
    over: AtomicBool,
    task: AtomicWaker,
}

impl Turn {
    fn new() -> Turn {
        let state = Arc::new(TurnState { over: AtomicBool::new(false), task: AtomicWaker::new() });
        Turn { waker: Waker::from(state.clone()), state }
    }
}

impl Wake for TurnState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.over.store(true, Ordering::SeqCst);
        self.task.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, Empty, StreamBody};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    const EVENTS: usize = 9;

    fn event(i: usize) -> String {
        format!("data: {{\"i\":{i},\"choices\":[{{\"delta\":{{\"content\":\"word {i}\"}}}}]}}\n\n")
    }

    fn chunk(text: &str) -> String {
        format!("{:x}\r\n{text}\r\n", text.len())
    }

    const HEAD: &str = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

    /// An upstream on loopback that reads one request and answers with
    /// what `answer` writes on the socket.
    async fn upstream<F, Fut>(answer: F) -> String
    where
        F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut buf = [0; 1024];
                match socket.read(&mut buf).await.unwrap() {
                    0 => return,
                    n => request.extend_from_slice(&buf[..n]),
                }
            }
            answer(socket).await;
        });
        url
    }

    async fn answer_of(url: &str) -> Coalesced<hyper::body::Incoming> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let answer = client.get(url.parse().unwrap()).await.unwrap();
        Coalesced::new(answer.into_body())
    }

    /// Every data chunk of `body` until it ends or fails, read on a task
    /// of the runtime (as the proxy's server reads it: the test's own
    /// `block_on` thread is no worker of the runtime, and has no turn to
    /// wait for).
    async fn chunks_of<B>(body: B) -> (Vec<Bytes>, Option<B::Error>)
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Send,
    {
        tokio::spawn(read_chunks(body)).await.unwrap()
    }

    async fn read_chunks<B>(mut body: B) -> (Vec<Bytes>, Option<B::Error>)
    where
        B: Body<Data = Bytes> + Unpin,
    {
        let mut chunks = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => chunks.extend(frame.into_data().ok()),
                Err(e) => return (chunks, Some(e)),
            }
        }
        (chunks, None)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_that_come_in_one_packet_are_passed_on_together() {
        let all: String = (0..EVENTS).map(event).collect();
        let written: String = (0..EVENTS).map(|i| chunk(&event(i))).collect();
        let url = upstream(move |mut socket| async move {
            socket.write_all(format!("{HEAD}{written}0\r\n\r\n").as_bytes()).await.unwrap();
        })
        .await;
        let (chunks, error) = chunks_of(answer_of(&url).await).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(chunks.concat(), all.as_bytes());
        // hyper's client hands them over one by one (nine chunks without
        // this); here they are one or two (the first may go alone).
        assert!(chunks.len() <= 2, "{} chunks for {EVENTS} events that came together", chunks.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_that_comes_alone_is_passed_on_without_waiting_for_the_next() {
        let (seen_tx, seen_rx) = tokio::sync::oneshot::channel::<()>();
        let url = upstream(move |mut socket| async move {
            socket.write_all(format!("{HEAD}{}", chunk(&event(0))).as_bytes()).await.unwrap();
            // The next event only once the first has reached the reader: a
            // body that waited for more would wait here forever.
            let _ = seen_rx.await;
            socket.write_all(format!("{}0\r\n\r\n", chunk(&event(1))).as_bytes()).await.unwrap();
        })
        .await;
        let mut body = answer_of(&url).await;
        let (first, body) = tokio::spawn(async move {
            let first = tokio::time::timeout(std::time::Duration::from_secs(20), body.frame()).await;
            (first, body)
        })
        .await
        .unwrap();
        let first = first.expect("the first event, alone");
        assert_eq!(first.unwrap().unwrap().into_data().unwrap(), event(0).as_bytes());
        seen_tx.send(()).unwrap();
        let (rest, error) = chunks_of(body).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(rest.concat(), event(1).as_bytes());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_data_before_a_broken_answer_comes_before_its_error() {
        let url = upstream(move |mut socket| async move {
            let written = format!("{HEAD}{}{}4\r\nda", chunk(&event(0)), chunk(&event(1)));
            socket.write_all(written.as_bytes()).await.unwrap();
            // Closed in the middle of a chunk.
        })
        .await;
        let (chunks, error) = chunks_of(answer_of(&url).await).await;
        assert!(error.is_some(), "a body cut short fails");
        let got = chunks.concat();
        let both = format!("{}{}", event(0), event(1));
        assert!(got.starts_with(both.as_bytes()), "{:?}", String::from_utf8_lossy(&got));
        assert!(got.len() <= both.len() + 2, "{:?}", String::from_utf8_lossy(&got));
    }

    fn ready_frames(frames: Vec<Frame<Bytes>>) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        StreamBody::new(futures_util::stream::iter(frames.into_iter().map(Ok)))
    }

    #[tokio::test]
    async fn trailers_and_the_end_come_after_the_data_before_them() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", http::HeaderValue::from_static("abc"));
        let frames = vec![Frame::data(Bytes::from("one ")), Frame::data(Bytes::from("two")), Frame::trailers(trailers.clone())];
        let mut body = Coalesced::new(ready_frames(frames));
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "one two");
        let second = body.frame().await.unwrap().unwrap();
        assert_eq!(second.into_trailers().unwrap(), trailers);
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_large_answer_ready_at_once_is_passed_on_in_pieces() {
        let piece = Bytes::from(vec![b'x'; 4096]);
        let frames = (0..100).map(|_| Frame::data(piece.clone())).collect();
        let body = Coalesced::new(ready_frames(frames));
        assert_eq!(body.size_hint().lower(), 0);
        let (chunks, error) = read_chunks(body).await;
        assert!(error.is_none());
        assert_eq!(chunks.iter().map(Bytes::len).sum::<usize>(), 100 * 4096);
        assert!(chunks.iter().all(|c| c.len() < MOST_KEPT + 4096), "{:?}", chunks.iter().map(Bytes::len).collect::<Vec<_>>());
        assert!(chunks.len() >= (100 * 4096) / (MOST_KEPT + 4096));
    }

    #[test]
    fn outside_a_tokio_runtime_a_kept_chunk_waits_one_poll() {
        // One chunk, then nothing yet.
        let mut sent = false;
        let frames = futures_util::stream::poll_fn(move |_| match std::mem::replace(&mut sent, true) {
            false => Poll::Ready(Some(Ok::<_, std::io::Error>(Frame::data(Bytes::from("alone"))))),
            true => Poll::Pending,
        });
        let mut body = Coalesced::new(StreamBody::new(frames));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => assert_eq!(frame.into_data().unwrap(), "alone"),
            other => panic!("{other:?}"),
        }
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
    }
}
