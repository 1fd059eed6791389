//! The HTTP client the AnoSys sink and the `anosys proxy` share.
//!
//! Requests go out on hyper's pooled client (HTTP/1.1 connections kept
//! alive per host; HTTP/2 when a TLS server offers it by ALPN), with
//! rustls and the system's trust store (the same roots and crypto provider
//! reqwest uses). It sends exactly what it is given: no default headers,
//! no redirects followed (but by
//! [`send_following_redirects`](HttpClient::send_following_redirects)),
//! no retries, no decompression, no timeouts but the connect timeout
//! (callers bound a request as they need).
//!
//! When an outbound proxy is configured in the environment
//! (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, any case), requests go
//! through reqwest instead, which honours those variables and `NO_PROXY`.
//! Both ways give the same answer: the status, the headers and the body
//! ([`ResponseBody`]).
//!
//! ```
//! use anosys::net::{ClientOptions, HttpClient};
//! use http_body_util::BodyExt as _;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! # let addr = listener.local_addr().unwrap();
//! # tokio::spawn(async move {
//! #     use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
//! #     let (mut socket, _) = listener.accept().await.unwrap();
//! #     let mut request = [0u8; 1024];
//! #     let _ = socket.read(&mut request).await.unwrap();
//! #     socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
//! # });
//! let client = HttpClient::direct(&ClientOptions::default())?;
//! let uri: http::Uri = format!("http://{addr}/log").parse()?;
//! let response = client.send(http::Method::POST, uri, http::HeaderMap::new(), "{}".into()).await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "ok");
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! # }).unwrap();
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Why reading a body failed: any error (reqwest's, hyper's, an I/O
/// error), boxed.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Environment variables that set an outbound proxy (reqwest reads them).
const PROXY_VARIABLES: &[&str] = &["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"];

/// How an [`HttpClient`] connects and keeps its connections.
///
/// ```
/// use std::time::Duration;
/// let options = anosys::net::ClientOptions::default().connect_timeout(Duration::from_secs(5)).max_idle_per_host(32);
/// assert_eq!(options.connect_timeout_value(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    max_idle_per_host: usize,
}

impl Default for ClientOptions {
    /// A 10 s connect timeout; up to 64 idle connections a host, each kept
    /// 90 s.
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            max_idle_per_host: 64,
        }
    }
}

impl ClientOptions {
    /// The longest wait for a TCP (and TLS) connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an idle kept-alive connection is kept.
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Most idle connections kept per host. Keep it at least the number
    /// of requests in flight at once: a smaller pool closes a connection
    /// after nearly every request and opens another for the next.
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.max_idle_per_host = n;
        self
    }

    /// The connect timeout set.
    pub fn connect_timeout_value(&self) -> Duration {
        self.connect_timeout
    }
}

/// Why an [`HttpClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The system's trust store could not be used.
    #[error("cannot set up TLS with the system's certificates")]
    Tls(#[source] rustls::Error),
    /// reqwest refused its settings (the outbound proxy's client).
    #[error("cannot build the HTTP client")]
    Reqwest(#[source] reqwest::Error),
}

/// A request that got no answer.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use anosys::net::{ClientOptions, HttpClient};
/// // A port nothing listens on.
/// let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
/// let client = HttpClient::direct(&ClientOptions::default()).unwrap();
/// let uri = format!("http://{closed}/log?key=secret").parse().unwrap();
/// let error = client.send(http::Method::GET, uri, http::HeaderMap::new(), bytes::Bytes::new()).await.unwrap_err();
/// assert!(error.is_connect() && !error.is_timeout());
/// assert!(!error.to_string().contains("secret"));
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct SendError {
    timeout: bool,
    connect: bool,
    message: String,
}

impl SendError {
    fn from_error(e: &(dyn std::error::Error + 'static), connect: bool) -> SendError {
        SendError { timeout: is_timeout(e), connect, message: error_text(e) }
    }

    /// Whether it timed out (connecting), rather than failed.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    /// Whether no connection was made: the request certainly did not
    /// arrive.
    pub fn is_connect(&self) -> bool {
        self.connect
    }
}

impl std::fmt::Display for SendError {
    /// What happened, on one line, without the request's URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SendError {}

impl From<http::uri::InvalidUri> for SendError {
    /// A URL the request could not be sent to (the error does not quote it).
    fn from(e: http::uri::InvalidUri) -> SendError {
        SendError { timeout: false, connect: true, message: format!("invalid URL: {e}") }
    }
}

/// The HTTP client: hyper's own, or reqwest's for an outbound proxy.
/// Cloning it is cheap and shares its connections.
#[derive(Clone)]
pub struct HttpClient {
    inner: std::sync::Arc<Inner>,
}

// One per client, behind its `Arc`: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Direct(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
    Proxied(reqwest::Client),
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match *self.inner {
            Inner::Direct(_) => "HttpClient::Direct",
            Inner::Proxied(_) => "HttpClient::Proxied",
        })
    }
}

/// Whether an outbound proxy is set in the environment.
fn proxy_in_env() -> bool {
    PROXY_VARIABLES.iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

impl HttpClient {
    /// The client for this environment: through reqwest when an outbound
    /// proxy variable is set, hyper's own otherwise.
    ///
    /// ```
    /// use anosys::net::{ClientOptions, HttpClient};
    /// let client = HttpClient::new(&ClientOptions::default())?;
    /// println!("through an outbound proxy: {}", client.is_proxied());
    /// # Ok::<(), anosys::net::ClientError>(())
    /// ```
    pub fn new(options: &ClientOptions) -> Result<HttpClient, ClientError> {
        if proxy_in_env() {
            HttpClient::proxied(options)
        } else {
            HttpClient::direct(options)
        }
    }

    /// hyper's pooled client.
    ///
    /// ```
    /// let client = anosys::net::HttpClient::direct(&anosys::net::ClientOptions::default()).unwrap();
    /// assert!(!client.is_proxied());
    /// ```
    pub fn direct(options: &ClientOptions) -> Result<HttpClient, ClientError> {
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
        http.set_connect_timeout(Some(options.connect_timeout));
        let connector = HttpsConnector::from((http, tls));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(HttpClient { inner: std::sync::Arc::new(Inner::Direct(client)) })
    }

    /// reqwest, which honours the outbound proxy variables.
    ///
    /// ```
    /// let client = anosys::net::HttpClient::proxied(&anosys::net::ClientOptions::default()).unwrap();
    /// assert!(client.is_proxied());
    /// ```
    pub fn proxied(options: &ClientOptions) -> Result<HttpClient, ClientError> {
        reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(options.pool_idle_timeout)
            .pool_max_idle_per_host(options.max_idle_per_host)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map(|c| HttpClient { inner: std::sync::Arc::new(Inner::Proxied(c)) })
            .map_err(|e| ClientError::Reqwest(e.without_url()))
    }

    /// Whether requests go through reqwest (an outbound proxy is set).
    pub fn is_proxied(&self) -> bool {
        matches!(*self.inner, Inner::Proxied(_))
    }

    /// Sends a request to `uri` (absolute, `http` or `https`) and returns
    /// the answer once its head has come; its body is read from
    /// [`Response::into_body`].
    pub fn send(
        &self,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl Future<Output = Result<Response<ResponseBody>, SendError>> + Send + 'static {
        let sent = match &*self.inner {
            Inner::Direct(client) => {
                let mut request = Request::new(Full::new(body));
                *request.method_mut() = method;
                *request.headers_mut() = headers;
                *request.uri_mut() = uri;
                Sent::Direct(client.request(request))
            }
            Inner::Proxied(client) => {
                let sent = client.request(method, uri.to_string()).headers(headers).body(body).send();
                Sent::Proxied(Box::pin(sent))
            }
        };
        async move {
            match sent {
                Sent::Direct(sent) => {
                    let response = sent.await.map_err(|e| SendError::from_error(&e, e.is_connect()))?;
                    Ok(response.map(|b| ResponseBody { inner: Body::Hyper(b) }))
                }
                Sent::Proxied(sent) => {
                    let response = sent.await.map_err(|e| SendError::from_error(&e, e.is_connect()))?;
                    let response: Response<reqwest::Body> = response.into();
                    Ok(response.map(|b| ResponseBody { inner: Body::Reqwest(b) }))
                }
            }
        }
    }
}

/// Redirects [`HttpClient::send_following_redirects`] follows for one
/// request, at most (as many as reqwest's default policy).
pub const MAX_REDIRECTS: usize = 10;

impl HttpClient {
    /// Sends like [`send`](Self::send), and follows the redirects that keep
    /// the request whole: 307 and 308 always (the same method, headers and
    /// body), and 301, 302 and 303 for `GET` and `HEAD` only (for other
    /// methods they are the answer: a `POST` turned into a `GET` would
    /// lose its body). A relative `Location` is read against the URL that
    /// answered. At most [`MAX_REDIRECTS`] are followed; the redirects'
    /// own bodies are read to their end, so their connections go back to
    /// the pool. The last answer comes back with its body unread.
    pub async fn send_following_redirects(
        &self,
        method: Method,
        mut uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<ResponseBody>, SendError> {
        let mut followed = 0;
        loop {
            let response = self.send(method.clone(), uri.clone(), headers.clone(), body.clone()).await?;
            let next = if followed < MAX_REDIRECTS { redirect_target(&method, &uri, &response) } else { None };
            let Some(next) = next else { return Ok(response) };
            let _ = http_body_util::BodyExt::collect(response.into_body()).await;
            followed += 1;
            uri = next;
        }
    }
}

/// Where `response` redirects the request `method` sent to `from`, when it
/// is a redirect [`HttpClient::send_following_redirects`] follows.
fn redirect_target(method: &Method, from: &Uri, response: &Response<ResponseBody>) -> Option<Uri> {
    use http::StatusCode;
    let follows = match response.status() {
        StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => true,
        StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER => {
            matches!(*method, Method::GET | Method::HEAD)
        }
        _ => false,
    };
    if !follows {
        return None;
    }
    let location = response.headers().get(http::header::LOCATION)?.to_str().ok()?;
    let next = reqwest::Url::parse(&from.to_string()).ok()?.join(location).ok()?;
    if !matches!(next.scheme(), "http" | "https") {
        return None;
    }
    next.as_str().parse().ok()
}

/// A request on its way.
enum Sent {
    Direct(hyper_util::client::legacy::ResponseFuture),
    Proxied(Pin<Box<dyn Future<Output = reqwest::Result<reqwest::Response>> + Send>>),
}

/// A response's body from an [`HttpClient`], as an [`http_body::Body`].
pub struct ResponseBody {
    inner: Body,
}

enum Body {
    Hyper(hyper::body::Incoming),
    Reqwest(reqwest::Body),
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseBody")
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BodyError>>> {
        match &mut self.inner {
            Body::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Body::Reqwest(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Body::Hyper(b) => b.is_end_stream(),
            Body::Reqwest(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.inner {
            Body::Hyper(b) => b.size_hint(),
            Body::Reqwest(b) => b.size_hint(),
        }
    }
}

/// A reqwest error's text without its URL (which may carry a key in its
/// query string).
///
/// ```
/// # async fn f() {
/// let e = reqwest::get("http://127.0.0.1:9/?api_key=secret").await.unwrap_err();
/// assert!(!anosys::net::reqwest_message(&e).contains("secret"));
/// # }
/// ```
pub fn reqwest_message(e: &reqwest::Error) -> String {
    let text = e.to_string();
    match e.url() {
        Some(u) => text.replace(u.as_str(), "<url>"),
        None => text,
    }
}

/// Whether `error`, or any error under it, is a timeout: a reqwest
/// timeout, or an I/O error of kind `TimedOut`.
///
/// ```
/// use anosys::net::is_timeout;
/// let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "nothing for 600 s");
/// assert!(is_timeout(&late));
/// assert!(!is_timeout(&std::io::Error::other("reset")));
/// ```
pub fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_timeout)
            || e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// `error` and its causes on one line (`a: b: c`), a cause left out when
/// the text before already ends with it, and the URL of a reqwest error
/// replaced by `<url>` (it may carry a key in its query string).
///
/// ```
/// use anosys::net::error_text;
/// let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// assert_eq!(error_text(&refused), "connection refused");
/// ```
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let part = match e.downcast_ref::<reqwest::Error>() {
            Some(r) => reqwest_message(r),
            None => e.to_string(),
        };
        if !text.ends_with(part.as_str()) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}
