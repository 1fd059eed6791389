//! The logging proxy between a real HTTP client and a local upstream on
//! 127.0.0.1, records checked in a real SQLite store.

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
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Notify;

/// What the test upstream saw and how it is steered.
#[derive(Default)]
struct Upstream {
    /// Every request: path and query, headers, body.
    seen: Mutex<Vec<(String, HeaderMap, Bytes)>>,
    /// A stream sends its first event, then waits for this.
    gate: Notify,
    gated: std::sync::atomic::AtomicBool,
    /// Streams whose body was dropped before their end.
    abandoned: AtomicUsize,
    abandoned_signal: Notify,
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
    let gated = u.gated.load(Ordering::SeqCst);
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

struct Setup {
    runtime: tokio::runtime::Runtime,
    upstream: Arc<Upstream>,
    upstream_url: String,
    proxy_url: String,
    pipeline: Pipeline,
    db: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Setup {
    fn new(adjust: impl FnOnce(&mut ProxyConfig, &str)) -> Setup {
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
            access_log: false,
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
    fn records(&self, n: u64) -> Vec<Record> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.pipeline.counters().delivered < n && std::time::Instant::now() < deadline {
            self.pipeline.flush(Duration::from_millis(200));
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

fn stored(db: &Path) -> Vec<Record> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT record FROM records ORDER BY id").unwrap();
    stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(|j| serde_json::from_str(&j.unwrap()).unwrap()).collect()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say this is a test"}]})
}

#[test]
fn a_chat_is_relayed_byte_for_byte_and_recorded() {
    let s = Setup::new(|_, _| {});
    let client = reqwest::Client::new();
    let (direct, proxied) = s.runtime.block_on(async {
        let send = |base: &str| {
            client
                .post(format!("{base}/v1/chat/completions?api-version=1"))
                .bearer_auth("sk-secret-test-key")
                .header("x-anosys-source", "checkout")
                .header("x-anosys-session-id", "sess-7")
                .header("x-anosys-user-id", "user-42")
                .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .json(&chat("gpt-4o-mini"))
                .send()
        };
        let direct = send(&s.upstream_url).await.unwrap();
        let proxied = send(&s.proxy_url).await.unwrap();
        let d = (direct.status(), direct.headers().clone(), direct.bytes().await.unwrap());
        let p = (proxied.status(), proxied.headers().clone(), proxied.bytes().await.unwrap());
        (d, p)
    });
    assert_eq!(proxied.0, direct.0);
    assert_eq!(proxied.2, direct.2, "the body byte for byte");
    for h in ["content-type", "content-length", "x-request-id"] {
        assert_eq!(proxied.1.get(h), direct.1.get(h), "{h}");
    }

    // Upstream saw the same request, without the anosys headers.
    let seen = s.upstream.seen.lock().unwrap();
    let (path, headers, body) = &seen[1];
    assert_eq!(path, "/v1/chat/completions?api-version=1");
    assert_eq!(headers["authorization"], "Bearer sk-secret-test-key");
    assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert!(headers.keys().all(|k| !k.as_str().starts_with("x-anosys-")), "{headers:?}");
    assert_eq!(body, &seen[0].2);
    drop(seen);

    let records = s.records(1);
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.name, "chat gpt-4o-mini");
    assert_eq!(r.status.code, anosys::StatusCode::Ok);
    assert_eq!(r.source.as_deref(), Some("checkout"));
    assert_eq!(r.output, Some(json!("This is a test.")));
    assert_eq!(r.attribute("gen_ai.usage.input_tokens"), Some(&json!(12)));
    assert_eq!(r.attribute("session.id"), Some(&json!("sess-7")));
    assert_eq!(r.attribute("user.id"), Some(&json!("user-42")));
    assert_eq!(r.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(r.parent_span_id.unwrap().to_string(), "00f067aa0ba902b7");
    // The key is forwarded, never kept.
    let file = std::fs::read(&s.db).unwrap();
    let wal = std::fs::read(s.db.with_extension("db-wal")).unwrap_or_default();
    let needle = b"sk-secret-test-key";
    assert!(!file.windows(needle.len()).any(|w| w == needle) && !wal.windows(needle.len()).any(|w| w == needle));
}

#[test]
fn streams_are_relayed_event_by_event() {
    let s = Setup::new(|_, _| {});
    s.upstream.gated.store(true, Ordering::SeqCst);
    let client = reqwest::Client::new();
    let mut body = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}});
    body["messages"] = chat("x")["messages"].clone();
    let received = s.runtime.block_on(async {
        let response = client.post(format!("{}/v1/chat/completions", s.proxy_url)).json(&body).send().await.unwrap();
        assert_eq!(response.headers()["content-type"], "text/event-stream; charset=utf-8");
        let mut stream = response.bytes_stream();
        // The first event arrives while the upstream holds the rest back:
        // nothing is buffered.
        let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("first event").unwrap().unwrap();
        assert!(first.starts_with(b"data: {"), "{first:?}");
        s.upstream.gate.notify_one();
        let mut all = first.to_vec();
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk.unwrap());
        }
        all
    });
    assert_eq!(String::from_utf8(received).unwrap(), replay::reply("chat_stream").body);
    let r = &s.records(1)[0];
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("completed")));
    assert!(r.attribute("anosys.stream.chunks").and_then(Value::as_u64).unwrap() > 3);
    assert_eq!(r.attribute("gen_ai.usage.output_tokens"), Some(&json!(5)));
    assert_eq!(r.output, Some(json!("\"This is a test.\"")));
}

#[test]
fn a_client_leaving_mid_stream_cancels_upstream_and_is_recorded() {
    let s = Setup::new(|_, _| {});
    s.upstream.gated.store(true, Ordering::SeqCst);
    let client = reqwest::Client::new();
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    s.runtime.block_on(async {
        let abandoned = s.upstream.abandoned_signal.notified();
        tokio::pin!(abandoned);
        abandoned.as_mut().enable();
        let response = client.post(format!("{}/v1/chat/completions", s.proxy_url)).json(&body).send().await.unwrap();
        let mut stream = response.bytes_stream();
        let _first = stream.next().await.unwrap().unwrap();
        drop(stream); // the client goes away
        tokio::time::timeout(Duration::from_secs(10), abandoned).await.expect("the upstream request was cancelled");
    });
    assert_eq!(s.upstream.abandoned.load(Ordering::SeqCst), 1);
    let r = &s.records(1)[0];
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("cancelled")));
    assert!(r.attribute("anosys.stream.chunks").and_then(Value::as_u64).unwrap() >= 1);
}

#[test]
fn upstream_errors_reach_the_client_as_given_and_are_recorded() {
    let s = Setup::new(|_, _| {});
    let client = reqwest::Client::new();
    let cases: Vec<(Value, &str, u16)> = vec![
        (json!({"model": "this-model-does-not-exist", "input": "Say this is a test"}), "/v1/responses", 400),
        (chat("error-401"), "/v1/chat/completions", 401),
        (chat("error-429"), "/v1/chat/completions", 429),
        (chat("error-500"), "/v1/chat/completions", 500),
        (chat("no-such-model"), "/v1/chat/completions", 404),
    ];
    for (body, path, status) in &cases {
        let (direct, proxied) = s.runtime.block_on(async {
            let d = client.post(format!("{}{path}", s.upstream_url)).json(body).send().await.unwrap();
            let p = client.post(format!("{}{path}", s.proxy_url)).json(body).send().await.unwrap();
            let d = (d.status().as_u16(), d.headers().clone(), d.bytes().await.unwrap());
            let p = (p.status().as_u16(), p.headers().clone(), p.bytes().await.unwrap());
            (d, p)
        });
        assert_eq!(proxied.0, *status);
        assert_eq!(proxied.0, direct.0);
        assert_eq!(proxied.2, direct.2);
        if *status == 429 {
            assert_eq!(proxied.1["retry-after"], "1");
        }
    }
    let records = s.records(cases.len() as u64);
    assert_eq!(records.len(), cases.len());
    for (r, (_, _, status)) in records.iter().zip(&cases) {
        assert_eq!(r.status.code, anosys::StatusCode::Error, "{r:#?}");
        assert_eq!(r.attribute("http.response.status_code"), Some(&json!(status)));
        assert!(!r.error.as_ref().unwrap().message.is_empty());
    }
    assert_eq!(records[2].error.as_ref().unwrap().error_type, "rate_limit_exceeded");
}

#[test]
fn no_upstream_gives_502_and_a_slow_one_504() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = Setup::new(|c, _| {
        c.routes.push(Route::new("/dead", &format!("http://127.0.0.1:{dead}")).unwrap());
        c.upstream_timeout = Duration::from_millis(500);
    });
    let client = reqwest::Client::new();
    let (bad_gateway, timeout) = s.runtime.block_on(async {
        let a = client.post(format!("{}/dead/v1/chat/completions", s.proxy_url)).json(&chat("gpt-4o-mini")).send().await.unwrap();
        let b = client.post(format!("{}/v1/chat/completions", s.proxy_url)).json(&chat("slow")).send().await.unwrap();
        ((a.status().as_u16(), a.json::<Value>().await.unwrap()), (b.status().as_u16(), b.json::<Value>().await.unwrap()))
    });
    assert_eq!(bad_gateway.0, 502);
    assert_eq!(bad_gateway.1["error"]["code"], "connection_error");
    assert!(bad_gateway.1["error"]["message"].as_str().unwrap().contains("could not reach"));
    assert_eq!(timeout.0, 504);
    assert_eq!(timeout.1["error"]["code"], "timeout");
    let records = s.records(2);
    let kinds: Vec<&str> = records.iter().map(|r| r.error.as_ref().unwrap().error_type.as_str()).collect();
    assert!(kinds.contains(&"connection_error") && kinds.contains(&"timeout"), "{kinds:?}");
}

#[test]
fn too_large_requests_get_413() {
    let s = Setup::new(|c, _| c.max_body_bytes = 1024);
    let client = reqwest::Client::new();
    let big = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let (status, body) = s.runtime.block_on(async {
        let r = client.post(format!("{}/v1/chat/completions", s.proxy_url)).json(&big).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "request_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("1024 bytes"));
    assert!(s.upstream.seen.lock().unwrap().is_empty(), "nothing forwarded");
    assert_eq!(s.records(1)[0].error.as_ref().unwrap().error_type, "request_too_large");
}

#[test]
fn routes_by_prefix_health_and_metrics() {
    let s = Setup::new(|c, upstream| {
        c.routes.push(Route::new("/ollama/v1", &format!("{upstream}/v1")).unwrap());
    });
    let client = reqwest::Client::new();
    let (health, ollama, metrics) = s.runtime.block_on(async {
        let h = client.get(format!("{}/healthz", s.proxy_url)).send().await.unwrap().text().await.unwrap();
        let o = client.post(format!("{}/ollama/v1/embeddings", s.proxy_url)).json(&json!({"model": "text-embedding-3-small", "input": "x"})).send().await.unwrap();
        let o = (o.status().as_u16(), o.bytes().await.unwrap().len());
        let _ = client.post(format!("{}/v1/chat/completions", s.proxy_url)).json(&chat("error-500")).send().await.unwrap().bytes().await;
        let m = client.get(format!("{}/metrics", s.proxy_url)).send().await.unwrap().text().await.unwrap();
        (h, o, m)
    });
    assert_eq!(health, "ok\n");
    assert_eq!(ollama.0, 200);
    assert_eq!(s.upstream.seen.lock().unwrap()[0].0, "/v1/embeddings");
    let records = s.records(2);
    assert_eq!(records[0].attribute("anosys.proxy.route"), Some(&json!("/ollama/v1")));
    for line in [
        "anosys_proxy_requests_total{route=\"/ollama/v1\",method=\"POST\",status=\"200\"} 1",
        "anosys_proxy_requests_total{route=\"/\",method=\"POST\",status=\"500\"} 1",
        "anosys_proxy_errors_total{route=\"/\",error_type=\"server_error\"} 1",
        "anosys_proxy_tokens_total{model=\"text-embedding-3-small\",type=\"input\"} 6",
        "anosys_proxy_request_duration_seconds_count{route=\"/ollama/v1\"} 1",
        "anosys_proxy_in_flight_requests 0",
        "# TYPE anosys_records_dropped_total counter",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

#[test]
fn http2_clients_are_served() {
    let s = Setup::new(|_, _| {});
    let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let (version, status) = s.runtime.block_on(async {
        let r = client.post(format!("{}/v1/chat/completions", s.proxy_url)).json(&chat("gpt-4o-mini")).send().await.unwrap();
        (r.version(), r.status().as_u16())
    });
    assert_eq!(version, reqwest::Version::HTTP_2);
    assert_eq!(status, 200);
    assert_eq!(s.records(1)[0].status.code, anosys::StatusCode::Ok);
}
