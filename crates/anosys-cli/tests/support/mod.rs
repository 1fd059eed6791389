//! What the proxy tests share: a steerable local upstream on 127.0.0.1
//! (recorded replies, OpenAI-shaped errors, held streams) and a proxy in
//! front of it recording into a temporary SQLite store.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anosys::{Config, Pipeline, Record, SinkKind};
use anosys_cli::proxy::{Proxy, ProxyConfig, Route};
use anosys_cli::replay;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// What the test upstream saw and how it is steered.
#[derive(Default)]
pub struct Upstream {
    /// Every request: path and query, headers, body.
    pub seen: Mutex<Vec<(String, HeaderMap, Bytes)>>,
    /// A stream sends its first event, then waits for this.
    pub gate: Notify,
    pub gated: std::sync::atomic::AtomicBool,
    /// Streams whose body was dropped before their end.
    pub abandoned: AtomicUsize,
    pub abandoned_signal: Notify,
}

/// Signals when a streamed body is dropped before its end.
struct AbandonGuard {
    upstream: Arc<Upstream>,
    done: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.done {
            self.upstream.abandoned.fetch_add(1, Ordering::SeqCst);
            self.upstream.abandoned_signal.notify_waiters();
        }
    }
}

/// OpenAI's documented error bodies for the statuses not in the recordings.
fn openai_error(status: u16) -> (StatusCode, Vec<(&'static str, &'static str)>, Value) {
    let (kind, code, message) = match status {
        401 => ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-test***. You can find your API key at https://platform.openai.com/account/api-keys."),
        429 => ("requests", "rate_limit_exceeded", "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): Limit 3, Used 3, Requested 1."),
        _ => ("server_error", "server_error", "The server had an error while processing your request. Sorry about that!"),
    };
    let headers = if status == 429 { vec![("retry-after", "1"), ("x-ratelimit-remaining-requests", "0")] } else { vec![] };
    (StatusCode::from_u16(status).unwrap(), headers, json!({"error": {"message": message, "type": kind, "param": null, "code": code}}))
}

async fn upstream_answer(State(u): State<Arc<Upstream>>, request: Request) -> Response {
    let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let method = request.method().clone();
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), 64 << 20).await.unwrap();
    u.seen.lock().unwrap().push((path.clone(), headers, body.clone()));
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = json["model"].as_str().unwrap_or("");
    if let Some(status) = model.strip_prefix("error-").and_then(|s| s.parse::<u16>().ok()) {
        let (status, headers, body) = openai_error(status);
        let mut r = Response::builder().status(status).header("content-type", "application/json");
        for (k, v) in headers {
            r = r.header(k, v);
        }
        return r.body(Body::from(body.to_string())).unwrap();
    }
    if model == "slow" {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let only_path = path.split('?').next().unwrap_or_default();
    let Some((reply, _)) = replay::choose(&method, only_path, &json) else {
        return Response::builder().status(404).body(Body::from("{\"error\":{\"message\":\"no\"}}")).unwrap();
    };
    let r = Response::builder().status(reply.status).header("content-type", &reply.content_type).header("x-request-id", "req_test_1");
    if !reply.content_type.starts_with("text/event-stream") {
        return r.body(Body::from(reply.body.clone())).unwrap();
    }
    let events: Vec<Bytes> = reply.body.split_inclusive("\n\n").map(|e| Bytes::from(e.to_owned())).collect();
    // A model ending in "-hold" sends one event and then waits for ever
    // (until the client goes away).
    let gated = u.gated.load(Ordering::SeqCst) || model.ends_with("-hold");
    let guard = AbandonGuard { upstream: u.clone(), done: false };
    let stream = futures_util::stream::unfold((events.into_iter(), 0usize, guard), move |(mut it, i, mut guard)| async move {
        if i == 1 && gated {
            guard.upstream.gate.notified().await;
        }
        match it.next() {
            Some(e) => Some((Ok::<_, std::io::Error>(e), (it, i + 1, guard))),
            None => {
                guard.done = true;
                drop(guard);
                None
            }
        }
    });
    r.body(Body::from_stream(stream)).unwrap()
}

pub struct Setup {
    pub runtime: tokio::runtime::Runtime,
    pub upstream: Arc<Upstream>,
    pub upstream_url: String,
    pub proxy_url: String,
    pub pipeline: Pipeline,
    pub db: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Setup {
    pub fn new(adjust: impl FnOnce(&mut ProxyConfig, &str)) -> Setup {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let upstream = Arc::new(Upstream::default());
        let app = axum::Router::new().fallback(upstream_answer).with_state(upstream.clone());
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let upstream_url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("proxy.db");
        let config = Config::builder()
            .sinks([SinkKind::Sqlite])
            .db_path(&db)
            .flush_interval(Duration::from_millis(10))
            .build()
            .unwrap();
        let pipeline = Pipeline::new(config).unwrap();
        let mut proxy_config = ProxyConfig {
            routes: vec![Route::new("/", &upstream_url).unwrap()],
            access_log: anosys_cli::proxy::AccessLogFormat::Off,
            ..ProxyConfig::default()
        };
        adjust(&mut proxy_config, &upstream_url);
        let proxy = Proxy::new(proxy_config, pipeline.clone()).unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let proxy_url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(proxy.serve(listener, async {
            let _ = stopped.await;
        }));
        Setup { runtime, upstream, upstream_url, proxy_url, pipeline, db, _dir: dir, stop: Some(stop) }
    }

    /// Records in the store once the pipeline has delivered `n` in all.
    pub fn records(&self, n: u64) -> Vec<Record> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.pipeline.counters().delivered < n && std::time::Instant::now() < deadline {
            self.pipeline.flush(Some(Duration::from_millis(200)));
        }
        stored(&self.db)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// The records in the store, oldest first, as every command shows them:
/// the content a record keeps once in `raw` written out into its fields.
pub fn stored(db: &Path) -> Vec<Record> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT record FROM records ORDER BY id").unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(|j| {
        let mut record: Record = serde_json::from_str(&j.unwrap()).unwrap();
        record.expand_content();
        record
    })
    .collect()
}

pub fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say this is a test"}]})
}

/// Reads one HTTP/1.1 answer's head (through the blank line) from a raw
/// connection: the head, and what came after it in the same reads.
pub async fn read_head(stream: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the answer: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let rest = buf.split_off(head_end);
    (String::from_utf8(buf).unwrap(), rest)
}

/// Reads one HTTP/1.1 answer with a `Content-Length` from a raw
/// connection: its status line and its body.
pub async fn read_answer(stream: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 4096];
    let (head, mut buf) = read_head(stream).await;
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .expect("a content-length");
    while buf.len() < length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = head.lines().next().unwrap().to_owned();
    buf.truncate(length);
    (status, buf)
}
