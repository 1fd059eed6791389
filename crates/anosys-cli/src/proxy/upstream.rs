//! The proxy's HTTP client to its upstreams.
//!
//! Requests go out on hyper's pooled client (HTTP/1.1 connections kept
//! alive per upstream; HTTP/2 when a TLS upstream offers it by ALPN), with
//! rustls and the system's trust store (the same roots and crypto provider
//! reqwest uses). It sends exactly what it is given: no default headers,
//! no redirects followed, no retries, no decompression.
//!
//! When an outbound proxy is configured in the environment
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, any case), requests go
//! through reqwest instead, which honours those variables and `NO_PROXY`.
//!
//! Both ways give the same answer: the status and headers, and the body as
//! an [`anosys::sources::openai::ByteStream`] that fails with an I/O
//! `TimedOut` error when the upstream sends nothing for the read timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anosys::sources::openai::{error_text, is_timeout, BodyError, ByteStream};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The longest wait for a TCP (and TLS) connection to an upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle kept-alive connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Most idle connections kept per upstream.
const POOL_IDLE_PER_HOST: usize = 64;

/// Environment variables that set an outbound proxy (reqwest reads them).
const PROXY_VARIABLES: &[&str] = &["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

/// Why the HTTP client to the upstreams could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The system's trust store could not be used.
    #[error("cannot set up TLS with the system's certificates")]
    Tls(#[source] rustls::Error),
    /// reqwest refused its settings.
    #[error("cannot build the HTTP client")]
    Reqwest(#[source] reqwest::Error),
}

/// A request that got no answer.
#[derive(Debug)]
pub(crate) struct SendError {
    /// Whether it timed out (connecting or waiting), rather than failed.
    pub(crate) timeout: bool,
    /// What happened, on one line, without the request's URL.
    pub(crate) message: String,
}

impl SendError {
    fn from_error(e: &(dyn std::error::Error + 'static)) -> SendError {
        SendError { timeout: is_timeout(e), message: error_text(e) }
    }
}

/// The client every request of a proxy shares.
pub(crate) enum Upstream {
    /// hyper's pooled client.
    Direct { client: Box<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>, read_timeout: Duration },
    /// reqwest, for an outbound proxy set in the environment.
    Proxied(reqwest::Client),
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Upstream::Direct { .. } => "Upstream::Direct",
            Upstream::Proxied(_) => "Upstream::Proxied",
        })
    }
}

impl Upstream {
    /// The client for this environment: through reqwest when an outbound
    /// proxy variable is set, hyper's own otherwise. `read_timeout` is the
    /// longest silence in a response body.
    pub(crate) fn from_env(read_timeout: Duration) -> Result<Upstream, ClientError> {
        let proxied = PROXY_VARIABLES.iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if proxied { Upstream::proxied(read_timeout) } else { Upstream::direct(read_timeout) }
    }

    /// hyper's pooled client.
    pub(crate) fn direct(read_timeout: Duration) -> Result<Upstream, ClientError> {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        // As reqwest: a crypto provider installed by the process, else aws-lc-rs.
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(ClientError::Tls)?
            .with_platform_verifier()
            .map_err(ClientError::Tls)?
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = HttpsConnector::from((http, tls));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Upstream::Direct { client: Box::new(client), read_timeout })
    }

    /// reqwest, which honours the outbound proxy variables.
    pub(crate) fn proxied(read_timeout: Duration) -> Result<Upstream, ClientError> {
        reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(read_timeout)
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map(Upstream::Proxied)
            .map_err(ClientError::Reqwest)
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
        let prepared = match self {
            Upstream::Direct { client, read_timeout } => {
                let mut request = Request::new(Full::new(body));
                *request.method_mut() = method;
                *request.headers_mut() = headers;
                url.parse::<http::Uri>()
                    .map(|uri| {
                        *request.uri_mut() = uri;
                        Sent::Direct(client.request(request), *read_timeout)
                    })
                    .map_err(|e| SendError::from_error(&e))
            }
            Upstream::Proxied(client) => Ok(Sent::Proxied(Box::pin(client.request(method, url).headers(headers).body(body).send()))),
        };
        async move {
            match prepared? {
                Sent::Direct(sent, read_timeout) => {
                    let (head, body) = sent.await.map_err(|e| SendError::from_error(&e))?.into_parts();
                    let body: ByteStream = Box::pin(Chunks::new(body, Some(read_timeout)));
                    Ok(Response::from_parts(head, body))
                }
                Sent::Proxied(sent) => {
                    let response: Response<reqwest::Body> = sent.await.map_err(|e| SendError::from_error(&e))?.into();
                    let (head, body) = response.into_parts();
                    // reqwest keeps its own read timeout.
                    let body: ByteStream = Box::pin(Chunks::new(body, None));
                    Ok(Response::from_parts(head, body))
                }
            }
        }
    }
}

/// A request on its way.
enum Sent {
    Direct(hyper_util::client::legacy::ResponseFuture, Duration),
    Proxied(Pin<Box<dyn Future<Output = reqwest::Result<reqwest::Response>> + Send>>),
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
            assert!(!e.timeout, "{upstream:?}: {e:?}");
            assert!(e.message.to_lowercase().contains("refused"), "{upstream:?}: {e:?}");
            assert!(!e.message.contains("secret"), "{upstream:?}: {e:?}");
            // TLS spoken to a plain HTTP server: the handshake fails.
            let url = format!("https://{plain}/answer");
            let e = upstream.send(Method::GET, &url, HeaderMap::new(), Bytes::new()).await.err().expect("an error");
            assert!(!e.timeout, "{upstream:?}: {e:?}");
            assert!(!e.message.is_empty(), "{upstream:?}");
        }
        let e = Upstream::direct(Duration::from_secs(5))
            .unwrap()
            .send(Method::GET, "http://bad host/", HeaderMap::new(), Bytes::new())
            .await
            .err()
            .expect("an error");
        assert!(e.message.contains("invalid"), "{e:?}");
    }
}
