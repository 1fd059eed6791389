//! The logging proxy between a real HTTP client and a local upstream on
//! 127.0.0.1, records checked in a real SQLite store.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use anosys_cli::proxy::Route;
use anosys_cli::replay;
use futures_util::StreamExt;
use serde_json::{json, Value};
use support::{chat, read_answer, Setup};

#[test]
fn a_chat_is_relayed_byte_for_byte_and_recorded() {
    let s = Setup::new(|_, _| {});
    let client = reqwest::Client::new();
    let (direct, proxied) = s.runtime.block_on(async {
        let send = |base: &str| {
            client
                .post(format!("{base}/v1/chat/completions?api-version=1&key=query-secret-key"))
                .bearer_auth("sk-secret-test-key")
                .header("api-key", "azure-secret-key")
                .header("x-anosys-source", "checkout")
                .header("x-anosys-session-id", "sess-7")
                .header("x-anosys-user-id", "user-42")
                .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .json(&chat("gpt-4o-mini"))
                .send()
        };
        let direct = send(&s.upstream_url).await.unwrap();
        let d = (direct.status(), direct.headers().clone(), direct.bytes().await.unwrap());
        let sent = std::time::SystemTime::now();
        let proxied = send(&s.proxy_url).await.unwrap();
        let p = (proxied.status(), proxied.headers().clone(), proxied.bytes().await.unwrap());
        (d, (p.0, p.1, p.2, sent, std::time::SystemTime::now()))
    });
    assert_eq!(proxied.0, direct.0);
    assert_eq!(proxied.2, direct.2, "the body byte for byte");
    for h in ["content-type", "content-length", "x-request-id"] {
        assert_eq!(proxied.1.get(h), direct.1.get(h), "{h}");
    }

    // Upstream saw the same request, without the anosys headers.
    let seen = s.upstream.seen.lock().unwrap();
    let (path, headers, body) = &seen[1];
    assert_eq!(path, "/v1/chat/completions?api-version=1&key=query-secret-key");
    assert_eq!(headers["authorization"], "Bearer sk-secret-test-key");
    assert_eq!(headers["api-key"], "azure-secret-key");
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
    // Its times are the request's, though it is made on the capture thread.
    let (sent, received) = (proxied.3, proxied.4);
    assert!(sent <= r.start_time && r.start_time <= r.end_time && r.end_time <= received, "{sent:?} {r:?} {received:?}");
    // Keys are forwarded, never kept.
    let file = std::fs::read(&s.db).unwrap();
    let wal = std::fs::read(s.db.with_extension("db-wal")).unwrap_or_default();
    for needle in [&b"sk-secret-test-key"[..], b"azure-secret-key", b"query-secret-key"] {
        let found = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!found(&file) && !found(&wal), "{} reached the store", String::from_utf8_lossy(needle));
    }
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
        tokio::time::sleep(Duration::from_millis(300)).await;
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
    // The record is made once the stream has ended, but its times are
    // those the events came at: the first at once, the rest 300 ms later.
    let first_chunk = r.attribute("gen_ai.response.time_to_first_chunk").and_then(Value::as_f64).unwrap();
    let duration = r.end_time.duration_since(r.start_time).unwrap();
    assert!(first_chunk < 0.25, "{first_chunk}");
    assert!(duration >= Duration::from_millis(300), "{duration:?}");
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
    let mut records = s.records(cases.len() as u64);
    assert_eq!(records.len(), cases.len());
    // In request order (the store's order is the order records were
    // delivered, which batches running side by side need not keep).
    records.sort_by_key(|r| r.start_time);
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

    // Streamed with no Content-Length: known too large by counting.
    let (status, body) = s.runtime.block_on(async {
        let bytes = serde_json::to_vec(&big).unwrap();
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(512).map(|c| Ok(c.to_vec())).collect();
        let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let r = client.post(format!("{}/v1/chat/completions", s.proxy_url)).body(streamed).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "request_too_large");
    assert!(s.upstream.seen.lock().unwrap().is_empty(), "nothing forwarded");
}

/// Request bodies that come in pieces, with a length or chunked, slowly,
/// or after `100 Continue`: each is forwarded whole, recorded, and the
/// connection they came on is kept for the next request (the body is read
/// to its last byte, no more).
#[test]
fn request_bodies_in_pieces_are_forwarded_whole_on_one_kept_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Setup::new(|_, _| {});
    let addr = s.proxy_url.trim_start_matches("http://").to_owned();
    let bodies: Vec<Vec<u8>> = ["gpt-4o-mini", "gpt-4.1-nano", "gpt-4o"]
        .iter()
        .map(|m| serde_json::to_vec(&json!({"model": m, "messages": [{"role": "user", "content": "y".repeat(3000)}]})).unwrap())
        .collect();
    let head = |extra: &str| format!("POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n{extra}\r\n");
    let pause = || tokio::time::sleep(Duration::from_millis(30));
    let ok = "HTTP/1.1 200 OK";
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // 1: a length, the body in three writes.
        stream.write_all(head(&format!("content-length: {}\r\n", bodies[0].len())).as_bytes()).await.unwrap();
        for piece in bodies[0].chunks(bodies[0].len() / 3 + 1) {
            pause().await;
            stream.write_all(piece).await.unwrap();
        }
        assert_eq!(read_answer(&mut stream).await.0, ok);
        // 2: chunked, in four chunks.
        stream.write_all(head("transfer-encoding: chunked\r\n").as_bytes()).await.unwrap();
        for piece in bodies[1].chunks(bodies[1].len() / 4 + 1) {
            pause().await;
            stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await.unwrap();
            stream.write_all(piece).await.unwrap();
            stream.write_all(b"\r\n").await.unwrap();
        }
        pause().await;
        stream.write_all(b"0\r\n\r\n").await.unwrap();
        assert_eq!(read_answer(&mut stream).await.0, ok);
        // 3: `Expect: 100-continue`: the body is sent once the proxy asks
        // for it (the body is read on a task apart from the connection's).
        let expect = format!("content-length: {}\r\nexpect: 100-continue\r\n", bodies[2].len());
        stream.write_all(head(&expect).as_bytes()).await.unwrap();
        let mut interim = Vec::new();
        while !interim.ends_with(b"\r\n\r\n") {
            interim.push(stream.read_u8().await.expect("the connection closed before 100 Continue"));
        }
        assert!(interim.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&interim));
        stream.write_all(&bodies[2]).await.unwrap();
        assert_eq!(read_answer(&mut stream).await.0, ok);
    };
    s.runtime.block_on(async { tokio::time::timeout(Duration::from_secs(30), exchange).await.expect("the three exchanges within 30 s") });

    let seen: Vec<Vec<u8>> = s.upstream.seen.lock().unwrap().iter().map(|(_, _, body)| body.to_vec()).collect();
    assert_eq!(seen, bodies, "each body forwarded whole, in order");
    let mut models: Vec<String> = s.records(3).iter().map(|r| r.attribute("gen_ai.request.model").unwrap().as_str().unwrap().to_owned()).collect();
    models.sort();
    assert_eq!(models, ["gpt-4.1-nano", "gpt-4o", "gpt-4o-mini"]);
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
        let (version, status) = (r.version(), r.status().as_u16());
        // Read to the end: a response dropped unread resets the HTTP/2
        // stream, and under load that can reach the proxy before the body
        // has gone through (a cancelled call, status UNSET).
        r.bytes().await.unwrap();
        (version, status)
    });
    assert_eq!(version, reqwest::Version::HTTP_2);
    assert_eq!(status, 200);
    assert_eq!(s.records(1)[0].status.code, anosys::StatusCode::Ok);
}

/// `anosys proxy` as a child process in front of `upstream`.
struct ProxyProcess {
    child: std::process::Child,
    /// Reads stderr as it comes (a full pipe would stop the proxy).
    stderr: std::thread::JoinHandle<String>,
    url: String,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl ProxyProcess {
    fn start(upstream: &str, grace_secs: u32) -> ProxyProcess {
        Self::start_with(upstream, grace_secs, &["--quiet"], &[])
    }

    /// With more flags and environment variables.
    fn start_with(upstream: &str, grace_secs: u32, flags: &[&str], env: &[(&str, &str)]) -> ProxyProcess {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("proxy.db");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("anosys"))
            .arg("--db")
            .arg(&db)
            .args(["proxy", "--listen", &format!("127.0.0.1:{port}"), "--upstream", upstream])
            .args(flags)
            .args(["--shutdown-grace", &grace_secs.to_string()])
            .env_remove("ANOSYS_PROXY_ACCESS_LOG")
            .envs(env.iter().copied())
            .env_remove("ANOSYS_API_KEY")
            .env_remove("ANOSYS_API_URL")
            .env_remove("ANOSYS_SINKS")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            text
        });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !healthy(&format!("{url}/healthz")) {
            assert!(std::time::Instant::now() < deadline, "the proxy did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        ProxyProcess { child, stderr, url, db, _dir: dir }
    }

    fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
    }

    /// Waits (at most 20 s) for the exit; returns success and stderr.
    fn wait(mut self) -> (bool, String, Vec<anosys::Record>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "the proxy did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = self.child.wait().unwrap();
        (status.success(), self.stderr.join().unwrap(), support::stored(&self.db))
    }
}

/// Whether `url` answers 2xx (on a single-use runtime: the proxy is
/// another process).
fn healthy(url: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { reqwest::get(url).await.is_ok_and(|r| r.status().is_success()) })
}

#[test]
fn sigterm_lets_in_flight_streams_finish_and_flushes_records() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let pacing = replay::Pacing { first_byte: Duration::ZERO, between_events: Duration::from_millis(60) };
    let upstream = runtime.block_on(replay::ReplayServer::start(pacing)).unwrap();
    let proxy = ProxyProcess::start(&format!("http://{}", upstream.addr()), 20);
    let body = json!({"model": "gpt-4", "stream": true, "messages": [{"role": "user", "content": "Say this is a test"}]});
    let received = runtime.block_on(async {
        let response =
            reqwest::Client::new().post(format!("{}/v1/chat/completions", proxy.url)).json(&body).send().await.unwrap();
        let mut stream = response.bytes_stream();
        let mut all = stream.next().await.unwrap().unwrap().to_vec();
        proxy.terminate(); // mid-stream
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk.unwrap());
        }
        all
    });
    assert_eq!(String::from_utf8(received).unwrap(), replay::reply("chat_stream").body, "the stream finished");
    let (ok, stderr, records) = proxy.wait();
    assert!(ok, "{stderr}");
    assert!(stderr.contains("1 records captured, 1 delivered"), "{stderr}");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].attribute("anosys.outcome"), Some(&json!("completed")));
}

#[test]
fn streams_still_open_at_the_deadline_are_recorded_as_cancelled() {
    let s = Setup::new(|_, _| {});
    let proxy = ProxyProcess::start(&s.upstream_url, 1);
    let body = json!({"model": "gpt-4o-mini-hold", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    s.runtime.block_on(async {
        let response =
            reqwest::Client::new().post(format!("{}/v1/chat/completions", proxy.url)).json(&body).send().await.unwrap();
        let mut stream = response.bytes_stream();
        let _first = stream.next().await.unwrap().unwrap();
        proxy.terminate();
        // The proxy gives up on the held stream after its one-second grace.
        while let Some(Ok(_)) = stream.next().await {}
    });
    let (ok, stderr, records) = proxy.wait();
    assert!(ok, "{stderr}");
    assert_eq!(records.len(), 1, "{stderr}");
    assert_eq!(records[0].attribute("anosys.outcome"), Some(&json!("cancelled")));
}

#[test]
fn a_client_leaving_before_the_answer_starts_is_recorded_as_cancelled() {
    let s = Setup::new(|_, _| {});
    let client = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let metrics = s.runtime.block_on(async {
        let gave_up = client.post(format!("{}/v1/chat/completions", s.proxy_url)).json(&chat("slow")).send().await;
        assert!(gave_up.unwrap_err().is_timeout());
        // The proxy notices when it next touches the connection; give it the
        // upstream's three seconds at most.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let m = reqwest::get(format!("{}/metrics", s.proxy_url)).await.unwrap().text().await.unwrap();
            if m.contains("status=\"499\"") || std::time::Instant::now() > deadline {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(metrics.contains("anosys_proxy_requests_total{route=\"/\",method=\"POST\",status=\"499\"} 1"), "{metrics}");
    let r = &s.records(1)[0];
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("cancelled")));
    assert_eq!(r.name, "chat slow");
}

/// `n` chat calls (every fifth streamed) through `proxy`, 20 at a time, with
/// a key in the header and in the query string; then SIGTERM at once, and
/// the proxy's exit: success, stderr, records.
fn calls_then_stop(proxy: ProxyProcess, runtime: &tokio::runtime::Runtime, n: usize) -> (bool, String, Vec<anosys::Record>) {
    let client = reqwest::Client::new();
    runtime.block_on(async {
        let calls = (0..n).map(|i| {
            let mut body = chat("gpt-4o-mini");
            if i % 5 == 0 {
                body["stream"] = json!(true);
            }
            client
                .post(format!("{}/v1/chat/completions?key=query-secret-key", proxy.url))
                .bearer_auth("sk-secret-test-key")
                .json(&body)
                .send()
        });
        let responses: Vec<_> = futures_util::stream::iter(calls).buffer_unordered(20).collect().await;
        for r in responses {
            let r = r.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
    });
    // At once: lines still queued must be written at the exit.
    proxy.terminate();
    proxy.wait()
}

/// The access-log lines of a proxy's stderr (the banner and the stop line
/// left out).
fn request_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("/v1/chat/completions")).collect()
}

#[test]
fn the_json_access_log_has_a_line_per_request_none_lost_at_shutdown_and_no_secret() {
    let s = Setup::new(|_, _| {});
    let proxy = ProxyProcess::start_with(&s.upstream_url, 20, &[], &[]);
    let (ok, stderr, records) = calls_then_stop(proxy, &s.runtime, 300);
    assert!(ok, "{stderr}");
    assert_eq!(records.len(), 300);
    let lines = request_lines(&stderr);
    assert_eq!(lines.len(), 300, "{stderr}");
    let mut traces = std::collections::HashSet::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["msg"], "request");
        assert_eq!(v["level"], "info");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/v1/chat/completions", "no query string");
        assert_eq!(v["route"], "/");
        assert_eq!(v["status"], 200);
        assert!(v["model"].as_str().is_some_and(|m| m.starts_with("gpt-")), "{line}");
        assert!(v["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v["span_id"].as_str().unwrap().len(), 16);
        traces.insert(v["trace_id"].as_str().unwrap().to_owned());
    }
    // One line per request: each of the records' traces once.
    let recorded: std::collections::HashSet<String> = records.iter().map(|r| r.trace_id.to_string()).collect();
    assert_eq!(traces, recorded);
    // The plain calls' usage (the streamed replay may not report it).
    assert!(lines.iter().filter(|l| l.contains("\"input_tokens\":12")).count() >= 240, "{stderr}");
    for secret in ["sk-secret-test-key", "query-secret-key"] {
        assert!(!stderr.contains(secret), "{secret} was logged");
    }
}

#[test]
fn the_text_access_log_has_one_readable_line_per_request() {
    let s = Setup::new(|_, _| {});
    // Chosen by the environment variable.
    let proxy = ProxyProcess::start_with(&s.upstream_url, 20, &[], &[("ANOSYS_PROXY_ACCESS_LOG", "text")]);
    let (ok, stderr, records) = calls_then_stop(proxy, &s.runtime, 50);
    assert!(ok, "{stderr}");
    assert_eq!(records.len(), 50);
    let lines = request_lines(&stderr);
    assert_eq!(lines.len(), 50, "{stderr}");
    for line in &lines {
        let words: Vec<&str> = line.split(' ').collect();
        assert!(words[0].ends_with('Z') && words[0].contains('T'), "{line}");
        assert_eq!(&words[1..4], ["POST", "/v1/chat/completions", "200"], "{line}");
        assert!(words[4].ends_with("ms") && words[4].trim_end_matches("ms").parse::<f64>().is_ok(), "{line}");
        assert_eq!(words[5], "route=/", "{line}");
        assert!(words.iter().any(|w| w.starts_with("model=gpt-")), "{line}");
        assert!(words.iter().any(|w| w.starts_with("trace=") && w.len() == 6 + 32), "{line}");
        assert!(!line.starts_with('{'), "{line}");
    }
    assert!(lines.iter().filter(|l| l.contains(" in=12 ")).count() >= 40, "{stderr}");
    assert!(!stderr.contains("sk-secret-test-key") && !stderr.contains("query-secret-key"));
}

#[test]
fn the_access_log_off_writes_no_line() {
    let s = Setup::new(|_, _| {});
    for flags in [&["--access-log", "off"][..], &["--quiet"][..]] {
        let proxy = ProxyProcess::start_with(&s.upstream_url, 20, flags, &[]);
        let (ok, stderr, records) = calls_then_stop(proxy, &s.runtime, 20);
        assert!(ok, "{stderr}");
        assert_eq!(records.len(), 20);
        assert!(request_lines(&stderr).is_empty(), "{flags:?}: {stderr}");
        assert!(stderr.contains("20 records captured, 20 delivered"), "{stderr}");
    }
}
