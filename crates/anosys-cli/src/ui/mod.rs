//! `anosys ui`: a local web viewer over the store, served from this binary.
//!
//! The page and everything it loads are compiled in ([`assets`]); it talks
//! to a small JSON API under `/api/` ([`api`]) that reads the store the
//! same way `anosys logs` and `stats` do (read-only, while applications
//! keep writing to it).
//!
//! Safety, since captured content is hostile input:
//! - every response carries a strict Content-Security-Policy (scripts and
//!   styles from this server only, no inline script, nothing framed, no
//!   form posts, no other origin contacted);
//! - the server answers only requests whose `Host` names a loopback address
//!   or `localhost`, unless a token is set (a page on another site cannot
//!   reach it through DNS rebinding);
//! - a non-loopback listen address is refused unless a token is set, and
//!   then every request must carry it ([`Access`]);
//! - the page shows every captured string as text.

pub mod api;
pub mod assets;
pub mod search;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The Content-Security-Policy of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// The cookie that carries the token once the page was opened with
/// `?token=`.
const TOKEN_COOKIE: &str = "anosys_ui_token";

/// Who may use the viewer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Required on every request when set: `Authorization: Bearer TOKEN`,
    /// the `anosys_ui_token` cookie, or `?token=TOKEN` (which sets the
    /// cookie, so the page's own requests carry it).
    pub token: Option<String>,
}

impl Access {
    /// Whether the viewer may listen on `addr`: loopback always; any other
    /// address only with a token.
    pub fn check_listen(&self, addr: SocketAddr) -> Result<(), String> {
        if addr.ip().is_loopback() || self.token.as_deref().is_some_and(|t| !t.is_empty()) {
            return Ok(());
        }
        Err(format!(
            "refusing to serve the viewer on {addr}: it is not a loopback address, and anyone who can reach it \
             would read every prompt and reply; set a token (--token or ANOSYS_UI_TOKEN) to require it on every request"
        ))
    }
}

/// What the viewer's handlers share: the store's path, who may use it, and
/// a few open read-only connections to the store, reused.
#[derive(Debug)]
pub struct Viewer {
    db: PathBuf,
    access: Access,
    idle: std::sync::Mutex<Vec<crate::store::Store>>,
    index: search::SearchIndex,
    /// Rows up to this id are in the search index (0: none yet).
    indexed_upto: std::sync::atomic::AtomicI64,
    scan_budget: std::time::Duration,
}

/// Most idle connections kept open.
const IDLE_STORES: usize = 4;

/// The page cache of each of the viewer's store connections, KiB.
const STORE_CACHE_KIB: u32 = 1024;

impl Viewer {
    /// A viewer of the store at `db`.
    pub fn new(db: PathBuf, access: Access) -> Viewer {
        let index = search::SearchIndex::for_store(&db);
        let upto = index.indexed_upto().unwrap_or(0);
        Viewer {
            db,
            access,
            idle: std::sync::Mutex::new(Vec::new()),
            index,
            indexed_upto: std::sync::atomic::AtomicI64::new(upto),
            scan_budget: crate::store::SCAN_BUDGET,
        }
    }

    /// How long a search scans the store newest first before it asks the
    /// index ([`crate::store::SCAN_BUDGET`] by default; zero: the index
    /// answers whatever it covers). For tests and benchmarks that compare
    /// the two ways.
    pub fn with_scan_budget(mut self, budget: std::time::Duration) -> Viewer {
        self.scan_budget = budget;
        self
    }

    /// The search index's progress: the row it covers up to (0: none).
    pub fn indexed_upto(&self) -> i64 {
        self.indexed_upto.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The search index's file and the row it covers up to, once it covers
    /// any.
    pub(crate) fn search_index(&self) -> Option<(std::path::PathBuf, i64)> {
        let upto = self.indexed_upto.load(std::sync::atomic::Ordering::Acquire);
        (upto > 0).then(|| (self.index.path().to_owned(), upto))
    }

    /// Extends the search index by up to `max` rows; whether it has caught
    /// up with the store.
    fn index_some(&self, max: usize) -> bool {
        match self.index.catch_up(max) {
            Ok(Some(p)) => {
                self.indexed_upto.store(p.indexed_upto, std::sync::atomic::Ordering::Release);
                p.indexed_upto >= p.last_id
            }
            Ok(None) => true,
            Err(e) => {
                // Said once; search scans the store meanwhile.
                static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
                if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    anstream::eprintln!(
                        "warning: the viewer cannot keep its search index at {} ({e}); search scans the store instead",
                        self.index.path().display()
                    );
                }
                true
            }
        }
    }

    /// The store's path.
    pub fn db(&self) -> &std::path::Path {
        &self.db
    }

    /// Runs `f` with an open store (a kept connection, else a new one);
    /// `Ok(None)` when there is no store yet.
    pub(crate) fn with_store<T>(
        &self,
        f: impl FnOnce(&mut crate::store::Store) -> T,
    ) -> Result<Option<T>, crate::store::StoreError> {
        let kept = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut store = match kept {
            Some(store) => store,
            None => match crate::store::Store::open(&self.db) {
                Ok(store) => {
                    // Up to IDLE_STORES connections stay open: each keeps a
                    // small cache (the OS caches the file anyway).
                    store.set_cache_kib(STORE_CACHE_KIB)?;
                    store
                }
                Err(crate::store::StoreError::Missing(_)) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        let index = self.search_index();
        if store.use_index(index.as_ref().map(|(path, upto)| (path.as_path(), *upto))).is_err() {
            // Filters read the records themselves instead.
            store.use_index(None)?;
        }
        let out = f(&mut store);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_STORES {
            idle.push(store);
        }
        Ok(Some(out))
    }
}

/// The viewer: the page, its assets and the API, behind the access checks
/// and security headers.
pub fn router(viewer: Viewer) -> Router {
    router_of(Arc::new(viewer))
}

fn router_of(viewer: Arc<Viewer>) -> Router {
    Router::new()
        .merge(assets::router())
        .nest("/api", api::router(viewer.clone()))
        .layer(middleware::from_fn_with_state(viewer, guard))
}

/// The port `anosys ui` tries first (a free one when it is taken).
pub const DEFAULT_PORT: u16 = 4100;

/// Serves the viewer on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    viewer: Viewer,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let viewer = Arc::new(viewer);
    // The search index, kept up with the store in the background.
    let indexer = tokio::spawn(keep_indexing(viewer.clone()));
    let served = axum::serve(listener, router_of(viewer)).with_graceful_shutdown(shutdown).await;
    indexer.abort();
    served
}

/// Rows indexed per transaction.
const INDEX_BATCH: usize = 5_000;

async fn keep_indexing(viewer: Arc<Viewer>) {
    loop {
        let v = viewer.clone();
        let caught_up = tokio::task::spawn_blocking(move || v.index_some(INDEX_BATCH)).await.unwrap_or(true);
        if caught_up {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

/// Binds `addr`, or when none is given 127.0.0.1:[`DEFAULT_PORT`], else a
/// free loopback port.
pub async fn bind(addr: Option<SocketAddr>) -> std::io::Result<tokio::net::TcpListener> {
    match addr {
        Some(addr) => tokio::net::TcpListener::bind(addr).await,
        None => match tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, DEFAULT_PORT)).await {
            Ok(l) => Ok(l),
            Err(_) => tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await,
        },
    }
}

/// Checks `Host` and the token, and adds the security headers.
async fn guard(State(viewer): State<Arc<Viewer>>, request: Request, next: Next) -> Response {
    let token = viewer.access.token.as_deref().filter(|t| !t.is_empty());
    let mut set_cookie = None;
    match token {
        None => {
            if !loopback_host(request.headers()) {
                return refuse(StatusCode::FORBIDDEN, "the viewer answers requests for localhost or 127.0.0.1 only");
            }
        }
        Some(token) => {
            let offered_query = query_token(request.uri().query());
            let offered = bearer(request.headers()).or_else(|| cookie(request.headers())).or(offered_query.clone());
            if !offered.is_some_and(|o| constant_time_eq(o.as_bytes(), token.as_bytes())) {
                return refuse(StatusCode::UNAUTHORIZED, "this viewer needs its token: open it with ?token=TOKEN");
            }
            if offered_query.is_some() {
                set_cookie =
                    HeaderValue::from_str(&format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")).ok();
            }
        }
    }
    let mut response = next.run(request).await;
    secure(response.headers_mut());
    if let Some(c) = set_cookie {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    let mut response = (status, message).into_response();
    secure(response.headers_mut());
    response
}

/// The headers every answer carries.
fn secure(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(headers, header::HeaderName::from_static("cross-origin-resource-policy"), "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
}

/// Whether `Host` names this machine by a loopback address or `localhost`.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| percent_decode(v))
}

/// Decodes `%XX` escapes and `+` (as a space) of a query value.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_tokens() {
        let host = |h: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_str(h).unwrap());
            loopback_host(&m)
        };
        assert!(host("127.0.0.1:4100") && host("localhost:1") && host("[::1]:80") && host("LOCALHOST"));
        assert!(!host("evil.example:4100") && !host("10.0.0.1:4100") && !host("127.0.0.1.evil.example"));
        assert_eq!(query_token(Some("a=1&token=s%3Dx+y")), Some("s=x y".to_owned()));
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        let open = Access::default();
        assert!(open.check_listen("127.0.0.1:1".parse().unwrap()).is_ok());
        assert!(open.check_listen("0.0.0.0:1".parse().unwrap()).unwrap_err().contains("ANOSYS_UI_TOKEN"));
        assert!(Access { token: Some("t".into()) }.check_listen("0.0.0.0:1".parse().unwrap()).is_ok());
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"a", b"ab")
        );
    }
}
