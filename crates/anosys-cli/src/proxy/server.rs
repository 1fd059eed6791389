//! The proxy's HTTP server: an accept loop with a cap on open connections,
//! and per connection a watchdog for the header-read and idle keep-alive
//! timeouts, over hyper's HTTP/1.1 and HTTP/2 (the protocol is detected per
//! connection).
//!
//! The timeouts only ever apply while a connection waits for a request:
//!
//! - **Header timeout**: from the accept until the first request's head is
//!   read, and from the first byte of each later HTTP/1.1 request head until
//!   that head is complete. A connection that sends nothing, or half a head,
//!   is closed (without an answer) when it runs out.
//! - **Idle timeout**: from the end of a response until the next request
//!   starts (its first byte for HTTP/1.1, its stream for HTTP/2). An idle
//!   connection is closed gracefully when it runs out (HTTP/2: `GOAWAY`).
//!
//! While a request is being answered (its body read, its response streamed,
//! for as long as it takes) neither runs: the upstream timeout governs that.
//!
//! hyper's own `header_read_timeout` is not used: it runs whenever an
//! HTTP/1.1 connection waits for a head, idle keep-alive connections
//! included, so it cannot tell a slow head from an idle connection.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use futures_util::task::AtomicWaker;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Shared;

/// Why a connection was closed by the server before the client closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No complete request head within the header timeout.
    Header,
    /// No new request within the idle timeout.
    Idle,
}

impl Expiry {
    /// The label in `/metrics`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Expiry::Header => "header_timeout",
            Expiry::Idle => "idle_timeout",
        }
    }
}

/// One connection's state, as the watchdog sees it.
struct ConnState {
    /// The connection's task is polling the connection: what changes
    /// meanwhile is seen by the watchdog right after (it runs in the same
    /// poll), so nothing needs waking.
    polling: bool,
    /// Requests being answered (HTTP/2 runs several at once).
    active: usize,
    /// Whether any request has started on this connection.
    served: bool,
    /// HTTP/2: bytes between requests (pings, settings) are not a head.
    http2: bool,
    /// The accept, or the end of the last response.
    idle_since: Instant,
    /// The first byte read since the connection became idle (HTTP/1.1).
    head_started: Option<Instant>,
}

/// What the IO wrapper, the service and the watchdog of one connection
/// share.
///
/// A change only wakes the connection's task when it comes from outside
/// that task's poll (an HTTP/2 stream's task ending its request). From
/// within (every HTTP/1.1 change: a request's start, its end, the first
/// byte of the next head), a wake would be the task waking itself, which
/// tokio answers by handing the task to another of its threads: a futex
/// wake and two context switches per request, for nothing, since the
/// watchdog looks at the state again as soon as the connection is polled.
struct Activity {
    state: Mutex<ConnState>,
    /// Set while an idle HTTP/1.1 connection waits for its next head's first
    /// byte: reads check this flag only, and lock only for that one byte.
    armed: AtomicBool,
    /// The connection's task, for a change made from another task.
    task: AtomicWaker,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new(ConnState {
                polling: false,
                active: 0,
                served: false,
                http2: false,
                idle_since: Instant::now(),
                head_started: None,
            }),
            armed: AtomicBool::new(false),
            task: AtomicWaker::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(&self, http2: bool) {
        let mut s = self.lock();
        s.active += 1;
        s.served = true;
        s.http2 |= http2;
        s.head_started = None;
        self.armed.store(false, Ordering::Relaxed);
        self.changed(s);
    }

    /// After a change: wakes the connection's task unless it is polling.
    fn changed(&self, s: std::sync::MutexGuard<'_, ConnState>) {
        let wake = !s.polling;
        drop(s);
        if wake {
            self.task.wake();
        }
    }

    fn end(&self) {
        let mut s = self.lock();
        s.active = s.active.saturating_sub(1);
        if s.active == 0 {
            s.idle_since = Instant::now();
            s.head_started = None;
            self.armed.store(!s.http2, Ordering::Relaxed);
        }
        self.changed(s);
    }

    /// Bytes came in.
    fn read(&self) {
        if self.armed.load(Ordering::Relaxed) && self.armed.swap(false, Ordering::Relaxed) {
            let mut s = self.lock();
            if s.active == 0 && s.head_started.is_none() {
                s.head_started = Some(Instant::now());
            }
            self.changed(s);
        }
    }

    /// Marks the connection as being polled by its task (changes made
    /// meanwhile wake nothing).
    fn polling(&self) {
        self.lock().polling = true;
    }

    /// Marks the poll done, and says when the connection is closed if
    /// nothing changes, and why.
    fn polled(&self, header: Option<Duration>, idle: Option<Duration>) -> Option<(Instant, Expiry)> {
        let mut s = self.lock();
        s.polling = false;
        if s.active > 0 {
            None
        } else if !s.served {
            header.map(|d| (s.idle_since + d, Expiry::Header))
        } else if let Some(started) = s.head_started {
            header.map(|d| (started + d, Expiry::Header))
        } else {
            idle.map(|d| (s.idle_since + d, Expiry::Idle))
        }
    }
}

/// The watchdog of one connection: whether it has waited too long for a
/// request, checked after each poll of the connection (the task is woken
/// by its timer, or by a change from another task).
struct Watchdog {
    activity: Arc<Activity>,
    timeouts: Timeouts,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Watchdog {
    /// Polls `conn` (marked as being polled), then checks the deadline:
    /// `Ready(Ok(()))` when the connection is done, `Ready(Err(why))` when
    /// it has waited too long for a request (`check` false: not checked).
    fn poll<F: Future>(&mut self, conn: Pin<&mut F>, check: bool, cx: &mut Context<'_>) -> Poll<Result<(), Expiry>> {
        // Registered first: a change from another task after the check
        // below wakes this task.
        self.activity.task.register(cx.waker());
        self.activity.polling();
        let done = conn.poll(cx).is_ready();
        let deadline = self.activity.polled(self.timeouts.header, self.timeouts.idle);
        if done {
            return Poll::Ready(Ok(()));
        }
        let Some((at, why)) = deadline.filter(|_| check) else {
            self.timer = None;
            return Poll::Pending;
        };
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        if Instant::now() >= at || timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(why));
        }
        Poll::Pending
    }
}

/// A request being answered, until its response body is done or dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The socket, telling the watchdog when bytes come in.
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The handler for one connection, marking each request busy until its
/// response body is done.
///
/// Every request goes to [`forward::handle`](super::forward::handle), called
/// directly: an axum `Router` with that handler as its only route (what
/// [`Proxy::router`](super::Proxy::router) gives for embedding) would
/// clone, route and box each request on the way to it.
#[derive(Clone)]
struct ConnService {
    shared: Arc<Shared>,
    activity: Arc<Activity>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.activity.begin(request.version() == hyper::Version::HTTP_2);
        let busy = Busy(self.activity.clone());
        let shared = self.shared.clone();
        let method = request.method().clone();
        Box::pin(async move {
            let mut response = super::forward::handle(axum::extract::State(shared), request.map(Body::new)).await;
            as_axum_answers(&method, &mut response);
            // The closure owns `busy`: the request ends when hyper drops the
            // body, after its last byte or when the client leaves.
            Ok(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _busy = &busy;
                    frame
                }))
            }))
        })
    }
}

/// What axum's router does to an answer on its way out, done here since
/// the handler is called directly: a body of known size gets its
/// `Content-Length` (unless it has one), the answer to a `HEAD` loses its
/// body (after its length is set), and a successful answer to `CONNECT`
/// has no body and no length.
fn as_axum_answers(method: &http::Method, response: &mut hyper::Response<Body>) {
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    use http_body::Body as _;
    if *method == http::Method::CONNECT && response.status().is_success() {
        let headers = response.headers();
        if headers.contains_key(CONTENT_LENGTH) || headers.contains_key(TRANSFER_ENCODING) || response.body().size_hint().lower() != 0 {
            *response.body_mut() = Body::empty();
        }
        return;
    }
    if !response.headers().contains_key(CONTENT_LENGTH)
        && let Some(size) = response.body().size_hint().exact()
    {
        response.headers_mut().insert(CONTENT_LENGTH, http::HeaderValue::from(size));
    }
    if *method == http::Method::HEAD {
        *response.body_mut() = Body::empty();
    }
}

/// The timeouts of every connection.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Option<Duration>,
    idle: Option<Duration>,
}

async fn serve_connection(stream: TcpStream, timeouts: Timeouts, mut stop: watch::Receiver<()>, shared: Arc<Shared>) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched { io: stream, activity: activity.clone() });
    let mut builder = Builder::new(TokioExecutor::new());
    // Off: the watchdog below does it, telling a slow head from an idle
    // keep-alive connection (see the module's doc).
    builder.http1().header_read_timeout(None);
    let conn = builder.serve_connection_with_upgrades(io, ConnService { shared: shared.clone(), activity: activity.clone() });
    tokio::pin!(conn);
    let mut watchdog = Watchdog { activity, timeouts, timer: None };
    let stop_changed = stop.changed();
    tokio::pin!(stop_changed);
    let (mut stopping, mut closing) = (false, false);
    std::future::poll_fn(|cx| loop {
        if !stopping && stop_changed.as_mut().poll(cx).is_ready() {
            stopping = true;
            conn.as_mut().graceful_shutdown();
        }
        match watchdog.poll(conn.as_mut(), !closing, cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(()),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(why)) => {
                shared.metrics.connection_expired(why);
                match why {
                    // Dropped: the head may never complete.
                    Expiry::Header => return Poll::Ready(()),
                    // Closed at once when idle; a request that raced in is
                    // still answered. Polled again for the close.
                    Expiry::Idle => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    })
    .await;
}

/// An open connection, counted in `/metrics` and holding its slot under
/// the cap until it ends (also when it is cut off at shutdown).
struct Open(Arc<Shared>, #[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl Open {
    fn new(shared: Arc<Shared>, permit: Option<OwnedSemaphorePermit>) -> Open {
        shared.metrics.connection_opened();
        Open(shared, permit)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.metrics.connection_closed();
    }
}

/// Says once that the connection cap was reached, again only after the
/// open connections fell well below it (a quarter of the slots free) and
/// the cap was reached again.
struct CapNotice {
    max: usize,
    said: bool,
}

impl CapNotice {
    fn reached(&mut self, shared: &Shared) {
        if self.said {
            return;
        }
        self.said = true;
        shared.metrics.connection_limit_reached();
        let line = json!({
            "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "level": "warn",
            "msg": "connection limit reached",
            "max_connections": self.max,
            "detail": format!(
                "{} connections are open and a new one has to wait until one closes; raise the limit with --max-connections (0: no limit)",
                self.max
            ),
        });
        eprintln!("{line}");
    }

    fn free(&mut self, free_slots: usize) {
        if free_slots >= (self.max / 4).max(1) {
            self.said = false;
        }
    }
}

/// An accept error other than a connection's own (e.g. `EMFILE`): said
/// once, then the loop waits a second before it accepts again (as hyper
/// and axum do).
fn accept_failed(error: &io::Error, said: &mut bool) {
    if *said {
        return;
    }
    *said = true;
    let line = json!({
        "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "level": "warn",
        "msg": "cannot accept connections",
        "error": error.to_string(),
        "detail": "retrying every second; if too many files are open, raise the limit (ulimit -n) or lower --max-connections",
    });
    eprintln!("{line}");
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset)
}

/// The accept loop until `shutdown`, then the graceful end: the listener
/// is closed, idle connections are closed, in-flight requests may finish
/// within the grace period; what is still open then is dropped (its
/// records end as cancelled).
///
/// At the connection cap, new connections **wait** (they are not
/// refused): the one just accepted waits for a slot, unserved, and the loop
/// accepts no other meanwhile, so the next ones queue in the kernel's
/// listen backlog; each is served as soon as a connection closes. Clients
/// of an LLM proxy are mostly SDKs whose calls cost money and time; a burst
/// over the cap is better delayed than failed, and the header and idle
/// timeouts keep slots from being held by connections that do nothing.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let config = &shared.config;
    let timeouts = Timeouts { header: config.header_timeout, idle: config.idle_timeout };
    let slots = config.max_connections.map(|n| (Arc::new(Semaphore::new(n.max(1))), n.max(1)));
    let mut notice = CapNotice { max: slots.as_ref().map_or(0, |s| s.1), said: false };
    let mut accept_error_said = false;
    let (stop_tx, stop_rx) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    accept_error_said = false;
                    stream
                }
                Err(e) => {
                    if !is_connection_error(&e) {
                        accept_failed(&e, &mut accept_error_said);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // At the cap, this connection waits, unserved, for a slot; the
        // loop accepts no other meanwhile, so the next ones wait in the
        // listen backlog.
        let permit = match &slots {
            None => None,
            Some((slots, _)) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    notice.free(slots.available_permits() + 1);
                    Some(permit)
                }
                Err(_) => {
                    notice.reached(&shared);
                    tokio::select! {
                        permit = slots.clone().acquire_owned() => permit.ok(),
                        _ = &mut shutdown => break,
                    }
                }
            },
        };
        // Streamed events go out as they come, not held for more.
        let _ = stream.set_nodelay(true);
        let open = Open::new(shared.clone(), permit);
        let stop = stop_rx.clone();
        connections.spawn(async move {
            serve_connection(stream, timeouts, stop, open.0.clone()).await;
            drop(open);
        });
    }
    drop(listener);
    let _ = stop_tx.send(());
    let grace = shared.config.shutdown_grace;
    let _ = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    // What is still open is cut off here (its records end as cancelled),
    // then every access-log line is written.
    drop(connections);
    shared.capture.flush();
    shared.access_log.flush();
    Ok(())
}
