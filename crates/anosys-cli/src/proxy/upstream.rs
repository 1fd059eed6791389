//! The proxy's HTTP client to its upstreams: the engine's shared client
//! ([`anosys::net::HttpClient`]: hyper's pooled client, or reqwest when an
//! outbound proxy is set in the environment), with the proxy's read
//! timeout on every response body.
//!
//! The answer is the status and headers, and the body as an
//! [`anosys::sources::openai::ByteStream`] that fails with an I/O
//! `TimedOut` error when the upstream sends nothing for the read timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anosys::net::{ClientOptions, HttpClient, SendError};
use anosys::sources::openai::{BodyError, ByteStream};
use bytes::Bytes;
use http::{HeaderMap, Method, Response};

pub use anosys::net::ClientError;

/// The client every request of a proxy shares.
#[derive(Debug)]
pub(crate) struct Upstream {
    client: HttpClient,
    /// The longest silence in a response body.
    read_timeout: Duration,
}

/// Idle connections kept per upstream, at most.
const POOL_IDLE_PER_HOST: usize = 64;

impl Upstream {
    fn options() -> ClientOptions {
        ClientOptions::default().max_idle_per_host(POOL_IDLE_PER_HOST)
    }

    /// The client for this environment: through reqwest when an outbound
    /// proxy variable is set, hyper's own otherwise. `read_timeout` is the
    /// longest silence in a response body.
    pub(crate) fn from_env(read_timeout: Duration) -> Result<Upstream, ClientError> {
        Ok(Upstream { client: HttpClient::new(&Self::options())?, read_timeout })
    }

    /// hyper's pooled client.
    #[cfg(test)]
    pub(crate) fn direct(read_timeout: Duration) -> Result<Upstream, ClientError> {
        Ok(Upstream { client: HttpClient::direct(&Self::options())?, read_timeout })
    }

    /// reqwest, which honours the outbound proxy variables.
    #[cfg(test)]
    pub(crate) fn proxied(read_timeout: Duration) -> Result<Upstream, ClientError> {
        Ok(Upstream { client: HttpClient::proxied(&Self::options())?, read_timeout })
    }

    /// Sends a request to `url` (absolute, `http` or `https`) and returns
    /// the answer once its head has come.
    pub(crate) fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl Future<Output = Result<Response<ByteStream>, SendError>> + Send + 'static {
        let read_timeout = self.read_timeout;
        let sent = match url.parse::<http::Uri>() {
            Ok(uri) => Ok(self.client.send(method, uri, headers, body)),
            Err(e) => Err(e),
        };
        async move {
            let sent = sent.map_err(SendError::from)?;
            let (head, body) = sent.await?.into_parts();
            let body: ByteStream = Box::pin(Chunks::new(super::Coalesced::new(body), Some(read_timeout)));
            Ok(Response::from_parts(head, body))
        }
    }
}

/// A response body's data frames as a stream (trailers are skipped), failing
/// when nothing comes for the read timeout.
///
/// The timer is not reset on every chunk: a chunk only notes its time, and
/// a timer that fires early is set again from the last chunk's time.
struct Chunks<B> {
    body: B,
    timeout: Option<Duration>,
    last: Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Timed out: the stream has ended.
    done: bool,
}

impl<B> Chunks<B> {
    fn new(body: B, timeout: Option<Duration>) -> Chunks<B> {
        Chunks { body, timeout, last: Instant::now(), timer: None, done: false }
    }

    /// Whether the read timeout passed with nothing read (and, if not, the
    /// timer set to wake this task when it would).
    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.timeout else { return false };
        let due = tokio::time::Instant::from_std(self.last + timeout);
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if Instant::now() >= self.last + timeout {
                return true;
            }
            // Fired for an older chunk: wait from the last one.
            timer.as_mut().reset(tokio::time::Instant::from_std(self.last + timeout));
        }
    }
}

impl<B> futures_util::Stream for Chunks<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        if this.timeout.is_some() {
                            this.last = Instant::now();
                        }
                        return Poll::Ready(Some(Ok(data)));
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => break,
            }
        }
        if this.timed_out(cx) {
            let seconds = this.timeout.unwrap_or_default().as_secs_f64();
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, format!("the upstream sent nothing for {seconds} s"));
            this.done = true;
            this.timer = None;
            return Poll::Ready(Some(Err(late.into())));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anosys::net::is_timeout;
    use futures_util::StreamExt as _;

    /// An upstream on loopback: `/answer` says hello in two chunks,
    /// `/silent` sends its head and one chunk, then nothing.
    async fn serve() -> std::net::SocketAddr {
        use axum::routing::any;
        let app = axum::Router::new()
            .route(
                "/answer",
                any(|headers: HeaderMap, body: Bytes| async move {
                    let said = format!(
                        "{} {} {}",
                        headers.get("x-test").and_then(|v| v.to_str().ok()).unwrap_or("-"),
                        headers.get("host").is_some(),
                        String::from_utf8_lossy(&body)
                    );
                    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from("hello ")), Ok(Bytes::from(said))]);
                    axum::body::Body::from_stream(chunks)
                }),
            )
            .route(
                "/silent",
                any(|| async {
                    let first = futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("{")) });
                    axum::body::Body::from_stream(first.chain(futures_util::stream::pending()))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    async fn read(mut body: ByteStream) -> (Vec<u8>, Option<BodyError>) {
        let mut all = Vec::new();
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => all.extend_from_slice(&bytes),
                Err(e) => return (all, Some(e)),
            }
        }
        (all, None)
    }

    fn both(read_timeout: Duration) -> [Upstream; 2] {
        [Upstream::direct(read_timeout).unwrap(), Upstream::proxied(read_timeout).unwrap()]
    }

    #[tokio::test]
    async fn both_clients_send_what_they_are_given_and_pass_the_answer_on() {
        let addr = serve().await;
        for upstream in both(Duration::from_secs(5)) {
            let mut headers = HeaderMap::new();
            headers.insert("x-test", http::HeaderValue::from_static("kept"));
            let url = format!("http://{addr}/answer");
            let answer = upstream.send(Method::POST, &url, headers, Bytes::from("the body")).await.unwrap();
            assert_eq!(answer.status(), 200, "{upstream:?}");
            let (bytes, error) = read(answer.into_body()).await;
            assert!(error.is_none(), "{upstream:?}: {error:?}");
            assert_eq!(String::from_utf8(bytes).unwrap(), "hello kept true the body", "{upstream:?}");
        }
    }

    #[tokio::test]
    async fn a_silent_body_ends_in_a_timeout_after_what_it_sent() {
        let addr = serve().await;
        for upstream in both(Duration::from_millis(300)) {
            let url = format!("http://{addr}/silent");
            let answer = upstream.send(Method::GET, &url, HeaderMap::new(), Bytes::new()).await.unwrap();
            let started = Instant::now();
            let (bytes, error) = read(answer.into_body()).await;
            assert_eq!(bytes, b"{", "{upstream:?}");
            let error = error.expect("a timeout");
            assert!(is_timeout(&*error), "{upstream:?}: {error:?}");
            assert!(started.elapsed() >= Duration::from_millis(250), "{upstream:?}: {:?}", started.elapsed());
            let info = anosys::sources::openai::read_error(&*error);
            assert_eq!(info.error_type, "timeout", "{upstream:?}");
        }
    }

    #[tokio::test]
    async fn unreachable_and_unusable_upstreams_give_a_clear_error_without_the_url() {
        // A port nothing listens on: bind one, then close it.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let plain = serve().await;
        for upstream in both(Duration::from_secs(5)) {
            let url = format!("http://{closed}/v1/chat?api_key=secret");
            let e = upstream.send(Method::POST, &url, HeaderMap::new(), Bytes::new()).await.err().expect("an error");
            assert!(!e.is_timeout() && e.is_connect(), "{upstream:?}: {e:?}");
            assert!(e.to_string().to_lowercase().contains("refused"), "{upstream:?}: {e:?}");
            assert!(!e.to_string().contains("secret"), "{upstream:?}: {e:?}");
            // TLS spoken to a plain HTTP server: the handshake fails.
            let url = format!("https://{plain}/answer");
            let e = upstream.send(Method::GET, &url, HeaderMap::new(), Bytes::new()).await.err().expect("an error");
            assert!(!e.is_timeout(), "{upstream:?}: {e:?}");
            assert!(!e.to_string().is_empty(), "{upstream:?}");
        }
        let e = Upstream::direct(Duration::from_secs(5))
            .unwrap()
            .send(Method::GET, "http://bad host/", HeaderMap::new(), Bytes::new())
            .await
            .err()
            .expect("an error");
        assert!(e.to_string().contains("invalid"), "{e:?}");
    }
}
