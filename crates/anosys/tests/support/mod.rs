//! A real HTTP server on 127.0.0.1 standing in for the AnoSys backend and
//! its key resolver.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

pub mod cassette;
pub mod otlp;
pub mod upstream;

/// A scripted reply: status, optional Retry-After, optional delay.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply { status, retry_after: None, delay: Duration::ZERO }
    }
    pub fn retry_after(mut self, v: &str) -> Self {
        self.retry_after = Some(v.to_owned());
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// One POST the backend saw.
#[derive(Clone, Debug)]
pub struct Hit {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub status: u16,
}

#[derive(Default)]
pub struct Shared {
    pub hits: Mutex<Vec<Hit>>,
    pub plan: Mutex<VecDeque<Reply>>,
    /// Reply used once the plan is empty.
    pub default_reply: Mutex<Option<Reply>>,
    pub resolver_keys: Mutex<Vec<String>>,
    /// What the resolver answers: (status, body).
    pub resolver_reply: Mutex<Option<(u16, String)>>,
    /// How long the resolver takes to answer.
    pub resolver_delay: Mutex<Duration>,
}

/// An axum app served on 127.0.0.1 by its own runtime, stopped on drop
/// (also inside an async test).
pub struct LocalServer {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl LocalServer {
    /// Serves `app` on `port` (0 for any free one). Binds without
    /// `block_on`, so async tests can start one too.
    pub fn start(port: u16, app: Router) -> LocalServer {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
        LocalServer { addr, runtime: Some(runtime) }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

pub struct Backend {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    _server: LocalServer,
}

async fn log(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let reply = {
        let next = s.plan.lock().unwrap().pop_front();
        next.or_else(|| s.default_reply.lock().unwrap().clone()).unwrap_or(Reply::status(200))
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    s.hits.lock().unwrap().push(Hit { at: Instant::now(), headers, body, status: reply.status });
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), "{}").into_response();
    if let Some(v) = reply.retry_after {
        resp.headers_mut().insert("retry-after", HeaderValue::from_str(&v).unwrap());
    }
    resp
}

async fn resolve(State(s): State<Arc<Shared>>, Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    s.resolver_keys.lock().unwrap().push(q.get("apikey").cloned().unwrap_or_default());
    let delay = *s.resolver_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let (status, body) = s.resolver_reply.lock().unwrap().clone().unwrap_or((404, "{}".into()));
    (StatusCode::from_u16(status).unwrap(), body).into_response()
}

impl Backend {
    /// Starts on a free loopback port.
    pub fn start() -> Backend {
        Self::start_on(0)
    }

    /// Starts on `port` (0 for any).
    pub fn start_on(port: u16) -> Backend {
        let shared = Arc::new(Shared::default());
        let app = Router::new().route("/log", post(log)).route("/resolve", get(resolve)).with_state(shared.clone());
        let server = LocalServer::start(port, app);
        Backend { addr: server.addr, shared, _server: server }
    }

    pub fn url(&self) -> String {
        format!("http://{}/log", self.addr)
    }

    pub fn resolver_url(&self) -> String {
        format!("http://{}/resolve", self.addr)
    }

    pub fn plan(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.plan.lock().unwrap().extend(replies);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.shared.hits.lock().unwrap().clone()
    }

    /// Bodies of the POSTs answered with 2xx, as JSON.
    pub fn accepted(&self) -> Vec<serde_json::Map<String, Value>> {
        self.hits()
            .into_iter()
            .filter(|h| (200..300).contains(&h.status))
            .map(|h| match serde_json::from_slice(&h.body).unwrap() {
                Value::Object(m) => m,
                other => panic!("body is not one flat object: {other}"),
            })
            .collect()
    }

    /// Waits (bounded) until `n` records were accepted.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<serde_json::Map<String, Value>> {
        let end = Instant::now() + timeout;
        loop {
            let got = self.accepted();
            if got.len() >= n || Instant::now() > end {
                return got;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A free loopback port with nothing listening on it (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("anosys-test-{name}-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Decodes a posted object through its own `otel_schema_url` mapping:
/// logical key → value.
pub fn decode(body: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    let mapping: serde_json::Map<String, Value> =
        serde_json::from_str(body["otel_schema_url"].as_str().unwrap()).unwrap();
    let mut out = serde_json::Map::new();
    for (key, column) in mapping {
        if let Some(v) = body.get(column.as_str().unwrap()) {
            out.insert(key, v.clone());
        }
    }
    out
}

/// A sink keeping every record in memory.
#[derive(Default)]
pub struct MemorySink {
    pub records: Mutex<Vec<anosys::Record>>,
}

impl anosys::sinks::Sink for MemorySink {
    fn name(&self) -> &str {
        "memory"
    }
    fn export<'a>(
        &'a self,
        batch: &'a [anosys::Record],
        _: anosys::sinks::ExportContext,
    ) -> anosys::sinks::BoxFuture<'a, anosys::sinks::ExportReport> {
        // As every sink writes a record: content kept once in `raw` written
        // out into its fields (`Record::expand_content`).
        self.records.lock().unwrap().extend(batch.iter().cloned().map(|mut r| {
            r.expand_content();
            r
        }));
        Box::pin(async { anosys::sinks::ExportReport::default() })
    }
}

/// A pipeline delivering into a [`MemorySink`].
pub fn memory_pipeline() -> (anosys::Pipeline, Arc<MemorySink>) {
    let (builder, memory) = memory_builder();
    (builder.build().unwrap(), memory)
}

/// A pipeline builder whose only sink is memory (for `anosys::init_with`).
#[allow(dead_code)]
pub fn memory_builder() -> (anosys::PipelineBuilder, Arc<MemorySink>) {
    let memory = Arc::new(MemorySink::default());
    let config = anosys::Config::builder().log_level(anosys::LogLevel::Off).build().unwrap();
    (anosys::Pipeline::builder(config).without_builtin_sinks().sink(memory.clone()), memory)
}

/// The records in a SQLite store, oldest first.
pub fn stored(db: &std::path::Path) -> Vec<anosys::Record> {
    let conn = anosys::sinks::sqlite::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT record FROM records ORDER BY id").unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(|r| serde_json::from_str(&r.unwrap()).unwrap()).collect()
}

/// The records waiting in the outboxes of the store at `db`, oldest first.
/// Rows kept as AnoSys request bodies are read back into the fields tests
/// look at (name, ids, attributes, raw); rows of records as they are.
pub fn outboxed(db: &std::path::Path) -> Vec<anosys::Record> {
    let conn = anosys::sinks::sqlite::open(db).unwrap();
    let mut out = Vec::new();
    for stats in anosys::sinks::outbox::list(&conn).unwrap() {
        let id: i64 =
            conn.query_row("SELECT id FROM outbox_destinations WHERE key = ?1", [&stats.key], |r| r.get(0)).unwrap();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT o.record, o.format, t.text FROM outbox_{id} o LEFT JOIN outbox_tails t ON t.id = o.tail ORDER BY o.id"
            ))
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Option<String>>(2)?)))
            .unwrap();
        for row in rows {
            let (text, format, tail) = row.unwrap();
            let record = match format {
                0 => serde_json::from_str::<anosys::Record>(&text).unwrap(),
                _ => record_of_body(&format!("{text}{}", tail.unwrap())),
            };
            out.push(record);
        }
    }
    out
}

/// A record with what an AnoSys body says of it: name, ids, attributes
/// (the `cvs18` summary) and raw (`cvs199`).
pub fn record_of_body(body: &str) -> anosys::Record {
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    let mut record = serde_json::to_value(anosys::Record::new(anosys::RecordKind::Raw, "")).unwrap();
    record["name"] = body["otel_name"].clone();
    record["trace_id"] = body["otel_trace_id"].clone();
    record["span_id"] = body["otel_span_id"].clone();
    if let Some(attributes) = body["cvs18"].as_str() {
        record["attributes"] = serde_json::from_str(attributes).unwrap();
    }
    if let Some(raw) = body["cvs199"].as_str() {
        record["raw"] = serde_json::from_str(raw).unwrap();
    }
    serde_json::from_value(record).unwrap()
}
