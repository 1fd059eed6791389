//! The OpenAI-compatible logging proxy: any OpenAI client, in any language,
//! is observed by pointing its base URL here.
//!
//! Every request is forwarded as it came (method, path, query, headers,
//! body) and the upstream's answer is returned unchanged: status, headers
//! and body, byte for byte, streamed as it arrives (what arrives together
//! is written together: [`Coalesced`]). Known OpenAI endpoints
//! are recorded by the OpenAI capture module (the same extraction the Rust
//! client uses); anything else still gets a record with its request and
//! response. Two changes are made on the way: `x-anosys-*` headers are
//! taken out (they go into the record), and `accept-encoding: identity` is
//! asked upstream so the proxy can read what it relays.

pub mod access_log;
mod coalesce;
mod relay;
mod worker;
mod forward;
pub mod metrics;
mod server;
mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anosys::Pipeline;
use axum::Router;
use tokio::net::TcpListener;

pub use access_log::{AccessLog, AccessLogFormat};
pub use coalesce::Coalesced;
pub use metrics::Metrics;
pub use upstream::ClientError;

/// One upstream and the path prefix it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Path prefix on the proxy (`/` for everything else).
    pub prefix: String,
    /// The upstream's base URL; the rest of the path is appended to it.
    pub upstream: reqwest::Url,
}

impl Route {
    /// A route; `prefix` is normalised to start with `/` and not end with one.
    ///
    /// ```
    /// use anosys_cli::proxy::Route;
    /// let r = Route::new("/ollama/v1/", "http://127.0.0.1:11434/v1").unwrap();
    /// assert_eq!(r.target("/ollama/v1/chat/completions", Some("a=1")).as_str(), "http://127.0.0.1:11434/v1/chat/completions?a=1");
    /// let openai = Route::new("/", "https://api.openai.com").unwrap();
    /// assert_eq!(openai.target("/v1/embeddings", None).as_str(), "https://api.openai.com/v1/embeddings");
    /// ```
    pub fn new(prefix: &str, upstream: &str) -> Result<Route, ProxyError> {
        let bad = |source: Option<Box<dyn std::error::Error + Send + Sync>>| ProxyError::BadUpstream { url: upstream.to_owned(), source };
        let url = reqwest::Url::parse(upstream).map_err(|e| bad(Some(Box::new(e))))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(bad(None));
        }
        let upstream = url;
        let prefix = format!("/{}", prefix.trim_matches('/'));
        Ok(Route { prefix, upstream })
    }

    /// Parses `PREFIX=URL` (the `--route` flag).
    pub fn parse(spec: &str) -> Result<Route, ProxyError> {
        let (prefix, url) = spec.split_once('=').ok_or_else(|| ProxyError::BadRoute { spec: spec.to_owned() })?;
        Route::new(prefix, url)
    }

    fn matches(&self, path: &str) -> bool {
        self.prefix == "/"
            || path == self.prefix
            || (path.starts_with(&self.prefix) && path.as_bytes().get(self.prefix.len()) == Some(&b'/'))
    }

    /// The upstream URL for a request to `path` with `query`: the path after
    /// the prefix, appended to the upstream's path.
    ///
    /// Total: a path this route does not match (see [`select_route`]) is
    /// appended whole, and no path (multi-byte characters, a path shorter
    /// than the prefix) makes it panic.
    ///
    /// ```
    /// use anosys_cli::proxy::Route;
    /// let groq = Route::new("/groq", "https://api.groq.com/openai/v1").unwrap();
    /// assert_eq!(groq.target("/groq/models", None).as_str(), "https://api.groq.com/openai/v1/models");
    /// assert_eq!(groq.target("/gé", None).as_str(), "https://api.groq.com/openai/v1/g%C3%A9");
    /// ```
    pub fn target(&self, path: &str, query: Option<&str>) -> reqwest::Url {
        let rest = self.rest(path);
        let mut url = self.upstream.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{rest}"));
        url.set_query(query);
        url
    }

    /// The part of `path` appended to the upstream's path: what follows the
    /// prefix, or the whole path when the route does not match it.
    fn rest<'p>(&self, path: &'p str) -> &'p str {
        // `matches` means `path` starts with the prefix, so stripping it
        // cuts at a character boundary.
        match path.strip_prefix(self.prefix.as_str()) {
            Some(rest) if self.prefix != "/" && self.matches(path) => rest,
            _ => path,
        }
    }

    /// [`target`](Self::target) as text, written in one go when the URL
    /// parser would change nothing: a path after the prefix made of
    /// characters a path keeps as they are, with no dot or percent-encoded
    /// segment to resolve, and a query likewise (the usual
    /// `/v1/chat/completions`). Anything else goes through `target`. A
    /// request made the URL and then parsed it again for its `Uri`; this
    /// saves the first (about 0.5 µs of the 1 µs both took).
    pub(crate) fn target_text(&self, path: &str, query: Option<&str>) -> String {
        self.target_as_is(path, query).unwrap_or_else(|| self.target(path, query).into())
    }

    fn target_as_is(&self, path: &str, query: Option<&str>) -> Option<String> {
        let upstream = &self.upstream;
        if upstream.query().is_some() || upstream.fragment().is_some() {
            return None;
        }
        let rest = self.rest(path);
        let plain_path = rest.starts_with('/')
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&()*+,;=:@/%".contains(&b))
            && !rest.split('/').any(|segment| segment.starts_with(['.', '%']));
        // A query keeps every visible ASCII character but these.
        let plain_query = query.is_none_or(|q| q.bytes().all(|b| b.is_ascii_graphic() && !b"\"#<>'".contains(&b)));
        if !(plain_path && plain_query) {
            return None;
        }
        // With no query or fragment, the upstream's text ends with its path.
        let whole = upstream.as_str();
        let origin = whole.get(..whole.len() - upstream.path().len())?;
        let base = upstream.path().trim_end_matches('/');
        let mut url = String::with_capacity(origin.len() + base.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
        url.push_str(origin);
        url.push_str(base);
        url.push_str(rest);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        Some(url)
    }
}

/// The route of a request to `path`: the longest matching prefix wins, `/`
/// matches everything else.
pub fn select_route<'r>(routes: &'r [Route], path: &str) -> Option<&'r Route> {
    routes.iter().filter(|r| r.matches(path)).max_by_key(|r| if r.prefix == "/" { 0 } else { r.prefix.len() })
}

/// Why a proxy could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// An upstream that is not an absolute `http://` or `https://` URL.
    #[error("{url:?} is not an http:// or https:// URL")]
    BadUpstream {
        /// What was given.
        url: String,
        /// Why it does not parse, when it does not.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A `--route` that is not `PREFIX=URL`.
    #[error("{spec:?} is not PREFIX=URL (e.g. /ollama/v1=http://127.0.0.1:11434/v1)")]
    BadRoute {
        /// What was given.
        spec: String,
    },
    /// No route at all.
    #[error("no upstream: give --upstream URL or --route PREFIX=URL")]
    NoUpstream,
    /// The HTTP client to the upstreams could not be built.
    #[error("cannot build the HTTP client to the upstreams")]
    HttpClient(#[source] upstream::ClientError),
}

/// How the proxy runs.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Routes; the longest matching prefix wins.
    pub routes: Vec<Route>,
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Longest wait for the upstream's response headers, and longest silence
    /// in a response body (504 when the headers do not come in time).
    pub upstream_timeout: Duration,
    /// How long in-flight requests may finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// The access log on stderr: a line per request, JSON or text, or
    /// none. Written off the request path, in batches.
    pub access_log: AccessLogFormat,
    /// Longest wait for a request head: from the accept to the end of the
    /// first head, and from the first byte of a later head to its end. A
    /// client that sends nothing or half a head is disconnected. `None`: no
    /// limit.
    pub header_timeout: Option<Duration>,
    /// Longest wait for the next request on a kept-alive connection; it is
    /// closed after that. `None`: no limit.
    pub idle_timeout: Option<Duration>,
    /// Most client connections open at once; more wait (in the listen
    /// backlog) until one closes, and one log line says the cap was
    /// reached. `None`: no limit.
    pub max_connections: Option<usize>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            routes: Vec::new(),
            max_body_bytes: 32 << 20,
            upstream_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(30),
            access_log: AccessLogFormat::Json,
            header_timeout: Some(Duration::from_secs(5)),
            idle_timeout: Some(Duration::from_secs(60)),
            max_connections: Some(1024),
        }
    }
}

/// What every request handler shares.
pub(crate) struct Shared {
    config: ProxyConfig,
    client: upstream::Upstream,
    pipeline: Pipeline,
    metrics: Metrics,
    access_log: AccessLog,
    /// Ends requests off their tasks.
    capture: relay::Capture,
}

impl Shared {
    fn route(&self, path: &str) -> Option<&Route> {
        select_route(&self.config.routes, path)
    }
}

/// See [`Proxy::drain_handle`].
pub struct Drain(Arc<Shared>);

impl Drain {
    /// Ends every queued request now.
    pub fn drain(&self) {
        self.0.capture.flush();
        self.0.access_log.flush();
    }
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Drain")
    }
}

/// A running proxy's parts, before it serves.
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy recording into `pipeline`.
    pub fn new(config: ProxyConfig, pipeline: Pipeline) -> Result<Proxy, ProxyError> {
        Self::with_access_log(config, pipeline, None)
    }

    /// A proxy recording into `pipeline`, its access log (in the
    /// configured format) written to `out` instead of stderr.
    pub fn with_access_log(config: ProxyConfig, pipeline: Pipeline, out: Option<Box<dyn std::io::Write + Send>>) -> Result<Proxy, ProxyError> {
        if config.routes.is_empty() {
            return Err(ProxyError::NoUpstream);
        }
        let client = upstream::Upstream::from_env(config.upstream_timeout).map_err(ProxyError::HttpClient)?;
        let access_log = match out {
            Some(out) => AccessLog::new(config.access_log, out),
            None => AccessLog::stderr(config.access_log),
        };
        Ok(Proxy { shared: Arc::new(Shared { config, client, pipeline, metrics: Metrics::default(), access_log, capture: relay::Capture::new() }) })
    }

    /// A handle that ends, on the calling thread, every request whose end
    /// is still queued (records to the pipeline, lines to the access log).
    /// Call it after the runtime the proxy served on is dropped and before
    /// the pipeline is shut down: requests cut off as the runtime stops are
    /// ended then.
    pub fn drain_handle(&self) -> Drain {
        Drain(self.shared.clone())
    }

    /// The axum app (for embedding in another server).
    pub fn router(&self) -> Router {
        Router::new().fallback(forward::handle).with_state(self.shared.clone())
    }

    /// Serves on `listener` (HTTP/1.1 and HTTP/2) until `shutdown` resolves,
    /// then lets in-flight requests finish for up to the configured grace
    /// period. Records of requests cut off are kept, marked cancelled.
    ///
    /// Connections are held to the configured header and idle timeouts and
    /// the cap on open connections (see [`ProxyConfig`]); at the cap, new
    /// connections wait in the listen backlog rather than being refused.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        server::serve(self.shared, listener, shutdown).await
    }

    /// The address to give clients for `addr` (`http://127.0.0.1:4000`).
    pub fn base_url(addr: SocketAddr) -> String {
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_and_paths_map() {
        let routes = [
            Route::new("/", "https://api.openai.com").unwrap(),
            Route::new("/ollama/v1", "http://127.0.0.1:11434/v1").unwrap(),
            Route::new("/ollama", "http://127.0.0.1:9").unwrap(),
        ];
        let shared = |p: &str| select_route(&routes, p).unwrap().clone();
        assert_eq!(shared("/ollama/v1/chat/completions").prefix, "/ollama/v1");
        assert_eq!(shared("/ollama/api/tags").prefix, "/ollama");
        assert_eq!(shared("/ollamax/v1").prefix, "/");
        assert_eq!(shared("/v1/chat/completions").prefix, "/");
        assert_eq!(
            shared("/ollama/v1/chat/completions").target("/ollama/v1/chat/completions", None).as_str(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        assert!(matches!(Route::parse("nonsense"), Err(ProxyError::BadRoute { .. })));
        assert!(matches!(Route::parse("/x=ftp://host"), Err(ProxyError::BadUpstream { source: None, .. })));
        assert!(matches!(Route::parse("/x=not a url"), Err(ProxyError::BadUpstream { source: Some(_), .. })));
        assert!(select_route(&routes[1..], "/v1/chat/completions").is_none());
    }

    /// `target_text` writes what `target` makes, character for character,
    /// whether it takes its own way or `target`'s: paths and queries the
    /// URL parser keeps as they are, and ones it changes (dot segments,
    /// percent-encoded dots, characters it encodes, a backslash).
    #[test]
    fn target_text_is_target_as_text() {
        let routes = [
            Route::new("/", "https://api.openai.com").unwrap(),
            Route::new("/", "http://127.0.0.1:9/v1/").unwrap(),
            Route::new("/groq", "https://api.groq.com/openai/v1").unwrap(),
            Route::new("/é", "http://127.0.0.1:9/v1").unwrap(),
            Route::new("/q", "http://127.0.0.1:9/v1?key=1").unwrap(),
            Route::new("/f", "http://127.0.0.1:9/v1#part").unwrap(),
            Route::new("/", "http://[::1]:8080").unwrap(),
        ];
        let paths = [
            "/v1/chat/completions", "/groq/chat/completions", "/groq", "/groq/", "/", "", "/é/chat", "/q/x", "/f/x",
            "/a/./b", "/a/../b", "/..", "/.", "/a/%2e%2e/b", "/a/%2E/b", "/a/.hidden", "/a%20b", "/a b", "/a\\b",
            "/a\"b", "/a#b", "/a<b>", "/a`b", "/a{b}", "/a?b", "//x", "/a//b", "/gé", "/g😀", "/~user/x@y:z;w=1",
            "/a'b", "/a%", "/%zz", "relative",
        ];
        let queries = [
            None, Some(""), Some("a=1"), Some("a=1&b=2"), Some("a=%20b"), Some("a=é"), Some("a b"), Some("a=\"x\""),
            Some("a=<b>"), Some("a='b'"), Some("a=#b"), Some("a={b}|c^d`e"), Some("a=\\b"), Some("a=1?b=2"),
        ];
        let mut taken = 0;
        for route in &routes {
            for path in paths {
                for query in queries {
                    let expected = route.target(path, query).to_string();
                    assert_eq!(route.target_text(path, query), expected, "{route:?} {path:?} {query:?}");
                    taken += usize::from(route.target_as_is(path, query).is_some());
                }
            }
        }
        // The usual requests take the short way.
        assert!(routes[0].target_as_is("/v1/chat/completions", None).is_some());
        assert!(routes[2].target_as_is("/groq/chat/completions", Some("api-version=2024-10-21")).is_some());
        assert!(taken > 100, "{taken}");
    }

    /// `target` on paths its route does not match, with multi-byte
    /// characters where the prefix would end: no panic (it sliced the path
    /// at the prefix's byte length, 5, inside the "é" of "/grqé/v1" or the
    /// "😀" of "/g😀"), the path kept whole.
    #[test]
    fn target_is_total_on_non_matching_and_non_ascii_paths() {
        let groq = Route::new("/groq/", "https://api.groq.com/openai/v1").unwrap();
        assert_eq!(groq.prefix, "/groq");
        for path in ["/gé", "/géq/x", "/grqé/v1", "/g😀", "/gro", "", "é", "/", "/groqé", "/grö", "/😀😀", "/groq😀"] {
            let url = groq.target(path, None);
            assert!(url.as_str().starts_with("https://api.groq.com/openai/v1"), "{path:?} -> {url}");
        }
        assert_eq!(groq.target("/gé", None).as_str(), "https://api.groq.com/openai/v1/g%C3%A9");
        assert_eq!(groq.target("/gro", Some("a=é")).as_str(), "https://api.groq.com/openai/v1/gro?a=%C3%A9");
        // Matching paths, non-ASCII after the prefix: the rest is appended.
        assert_eq!(groq.target("/groq/é", None).as_str(), "https://api.groq.com/openai/v1/%C3%A9");
        assert_eq!(groq.target("/groq", None).as_str(), "https://api.groq.com/openai/v1");
        // A non-ASCII prefix.
        let accent = Route::new("/é", "http://127.0.0.1:9/v1").unwrap();
        assert_eq!(accent.target("/é/chat", None).as_str(), "http://127.0.0.1:9/v1/chat");
        assert_eq!(accent.target("/e", None).as_str(), "http://127.0.0.1:9/v1/e");
        assert_eq!(select_route(std::slice::from_ref(&accent), "/éa"), None);
    }
}
