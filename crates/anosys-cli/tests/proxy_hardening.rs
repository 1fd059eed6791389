//! The proxy as a server on a network: a header-read timeout, an idle
//! keep-alive timeout and a cap on open connections, over real TCP on
//! 127.0.0.1 (raw sockets where a well-behaved client cannot misbehave).

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anosys::Record;
use anosys_cli::replay;
use futures_util::StreamExt;
use serde_json::json;
use support::{chat, read_answer, read_head, Setup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy (in front of the test upstream) with these timeouts.
fn setup(header: Duration, idle: Duration) -> Setup {
    Setup::new(|c, _| {
        c.header_timeout = Some(header);
        c.idle_timeout = Some(idle);
    })
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

/// One `GET path` on a kept-alive connection: the status line and body.
async fn get(stream: &mut TcpStream, path: &str) -> (String, String) {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: proxy\r\n\r\n").as_bytes()).await.unwrap();
    let (status, body) = read_answer(stream).await;
    (status, String::from_utf8(body).unwrap())
}

/// How long until the server closes `stream` (end of file or reset), if
/// within `limit`; anything it sends meanwhile is ignored.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut chunk = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

async fn metrics(proxy_url: &str) -> String {
    reqwest::get(format!("{proxy_url}/metrics")).await.unwrap().text().await.unwrap()
}

#[test]
fn half_request_heads_are_dropped_after_the_header_timeout_while_others_are_served() {
    let s = setup(Duration::from_secs(1), Duration::from_secs(60));
    let proxy = addr(&s.proxy_url);
    s.runtime.block_on(async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let proxy = proxy.clone();
            tasks.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(&proxy).await.unwrap();
                // A quarter send nothing at all, the rest half a head.
                if i % 4 != 0 {
                    stream.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: proxy\r\nContent-Ty").await.unwrap();
                }
                closed_within(&mut stream, Duration::from_secs(10)).await
            }));
        }
        // Meanwhile a normal client is served.
        let response =
            reqwest::Client::new().post(format!("{}/v1/chat/completions", s.proxy_url)).json(&chat("gpt-4o-mini")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.text().await.unwrap().contains("This is a test."));
        for (i, task) in tasks.into_iter().enumerate() {
            let closed = task.await.unwrap();
            assert!(closed.is_some(), "connection {i} was still open after 10 s");
        }
        let all_closed = started.elapsed();
        // One second of header timeout, and a margin for a loaded machine.
        assert!(all_closed >= Duration::from_millis(900), "closed before the timeout: {all_closed:?}");
        assert!(all_closed < Duration::from_secs(6), "took {all_closed:?}");
        let m = metrics(&s.proxy_url).await;
        assert!(m.contains("anosys_proxy_connections_expired_total{reason=\"header_timeout\"} 200"), "{m}");
        assert!(m.contains("anosys_proxy_connections_expired_total{reason=\"idle_timeout\"} 0"), "{m}");
    });
    assert_eq!(s.records(1).len(), 1);
}

#[test]
fn a_half_head_on_a_kept_alive_connection_is_dropped_after_the_header_timeout() {
    let s = setup(Duration::from_secs(1), Duration::from_secs(60));
    s.runtime.block_on(async {
        let mut stream = TcpStream::connect(addr(&s.proxy_url)).await.unwrap();
        let (status, body) = get(&mut stream, "/healthz").await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok\n"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
        let closed = closed_within(&mut stream, Duration::from_secs(10)).await.expect("closed");
        assert!(closed >= Duration::from_millis(900) && closed < Duration::from_secs(5), "closed after {closed:?}");
    });
}

#[test]
fn an_idle_kept_alive_connection_is_reused_then_closed_after_the_idle_timeout() {
    // The header timeout is shorter than the idle one: waiting between
    // requests is not waiting for a head.
    let s = setup(Duration::from_millis(500), Duration::from_secs(2));
    s.runtime.block_on(async {
        let mut stream = TcpStream::connect(addr(&s.proxy_url)).await.unwrap();
        assert_eq!(get(&mut stream, "/healthz").await.1, "ok\n");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        // Still open past the header timeout: kept alive and reused.
        assert_eq!(get(&mut stream, "/healthz").await.1, "ok\n");
        let closed = closed_within(&mut stream, Duration::from_secs(10)).await.expect("closed when idle");
        assert!(closed >= Duration::from_millis(1800) && closed < Duration::from_secs(6), "closed after {closed:?}");
        let m = metrics(&s.proxy_url).await;
        assert!(m.contains("anosys_proxy_connections_expired_total{reason=\"idle_timeout\"} 1"), "{m}");
    });
}

#[test]
fn a_stream_longer_than_the_timeouts_is_not_cut_and_keep_alive_still_works() {
    let s = setup(Duration::from_secs(1), Duration::from_secs(1));
    s.upstream.gated.store(true, Ordering::SeqCst);
    let mut body = json!({"model": "gpt-4o-mini", "stream": true});
    body["messages"] = chat("x")["messages"].clone();
    let client = reqwest::Client::new();
    let received = s.runtime.block_on(async {
        let response = client.post(format!("{}/v1/chat/completions", s.proxy_url)).json(&body).send().await.unwrap();
        let mut stream = response.bytes_stream();
        let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("first event").unwrap().unwrap();
        // Silence for three times the header and idle timeouts.
        tokio::time::sleep(Duration::from_secs(3)).await;
        s.upstream.gate.notify_one();
        let mut all = first.to_vec();
        while let Some(chunk) = stream.next().await {
            all.extend_from_slice(&chunk.expect("the stream was not cut"));
        }
        all
    });
    assert_eq!(String::from_utf8(received).unwrap(), replay::reply("chat_stream").body);
    s.upstream.gated.store(false, Ordering::SeqCst);
    // Two more calls on the kept-alive connection: one connection in all
    // (with a moment for the client to put it back in its pool).
    s.runtime.block_on(async {
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let r = client.post(format!("{}/v1/chat/completions", s.proxy_url)).json(&chat("gpt-4o-mini")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
        }
        let m = metrics(&s.proxy_url).await;
        // The client's pooled connection, and the one asking for /metrics.
        assert!(m.contains("anosys_proxy_open_connections 2"), "{m}");
        assert!(m.contains("anosys_proxy_connections_expired_total{reason=\"header_timeout\"} 0"), "{m}");
        assert!(m.contains("anosys_proxy_connections_expired_total{reason=\"idle_timeout\"} 0"), "{m}");
    });
    let records = s.records(3);
    assert_eq!(records.len(), 3);
    // The stream's record, wherever it landed among the three (the store
    // keeps them in the order they were made).
    let streamed: Vec<&Record> = records.iter().filter(|r| r.attribute("gen_ai.request.stream") == Some(&json!(true))).collect();
    assert_eq!(streamed.len(), 1, "{records:?}");
    assert_eq!(streamed[0].attribute("anosys.outcome"), Some(&json!("completed")));
}

#[test]
fn an_http2_connection_gets_the_idle_timeout_between_requests_not_the_header_timeout() {
    let s = setup(Duration::from_millis(300), Duration::from_millis(1500));
    let client = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    s.runtime.block_on(async {
        for pause in [0, 800] {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let r = client.post(format!("{}/v1/chat/completions", s.proxy_url)).json(&chat("gpt-4o-mini")).send().await.unwrap();
            assert_eq!((r.version(), r.status().as_u16()), (reqwest::Version::HTTP_2, 200));
            r.bytes().await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = metrics(&s.proxy_url).await;
            if m.contains("anosys_proxy_connections_expired_total{reason=\"idle_timeout\"} 1") {
                assert!(m.contains("anosys_proxy_connections_expired_total{reason=\"header_timeout\"} 0"), "{m}");
                break;
            }
            assert!(Instant::now() < deadline, "the idle HTTP/2 connection was not closed:\n{m}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// `anosys proxy --max-connections N` as a child process (its log is its
/// stderr).
struct CappedProxy {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl CappedProxy {
    fn start(max_connections: usize) -> CappedProxy {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("anosys"))
            .arg("--db")
            .arg(dir.path().join("proxy.db"))
            .args(["proxy", "--quiet", "--listen", &addr, "--upstream", "http://127.0.0.1:9"])
            .args(["--max-connections", &max_connections.to_string(), "--header-timeout", "30", "--idle-timeout", "60"])
            .args(["--shutdown-grace", "1"])
            .env_remove("ANOSYS_API_KEY")
            .env_remove("ANOSYS_API_URL")
            .env_remove("ANOSYS_SINKS")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "the proxy did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        CappedProxy { child, addr, _dir: dir }
    }

    /// SIGTERM, then its stderr (at most 20 s).
    fn stop(mut self) -> String {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the proxy did not stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Whether `stream` gets any answer within `wait`.
async fn answered_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(wait, stream.peek(&mut byte)).await, Ok(Ok(n)) if n > 0)
}

#[test]
fn at_the_connection_cap_new_connections_wait_and_it_is_said_once() {
    let proxy = CappedProxy::start(2);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let addr = proxy.addr.clone();
    rt.block_on(async {
        // Time for the readiness probe's connection to be gone; then two
        // kept-alive connections, each served, fill the cap.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut first = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(get(&mut first, "/healthz").await.1, "ok\n");
        let mut second = TcpStream::connect(&addr).await.unwrap();
        assert_eq!(get(&mut second, "/healthz").await.1, "ok\n");

        // Two more connect (the kernel's backlog takes them) but are not
        // served while the two are open.
        let mut third = TcpStream::connect(&addr).await.unwrap();
        third.write_all(b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n").await.unwrap();
        let mut fourth = TcpStream::connect(&addr).await.unwrap();
        fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: proxy\r\n\r\n").await.unwrap();
        assert!(!answered_within(&mut third, Duration::from_millis(700)).await, "served over the cap");
        assert!(!answered_within(&mut fourth, Duration::from_millis(100)).await, "served over the cap");

        // One closes: the next waiting one is served, the other still waits.
        drop(first);
        assert!(answered_within(&mut third, Duration::from_secs(10)).await, "not served after a slot freed");
        assert!(!answered_within(&mut fourth, Duration::from_millis(500)).await, "served over the cap");
        drop(second);
        assert!(answered_within(&mut fourth, Duration::from_secs(10)).await, "not served after a slot freed");
        drop(third);
        drop(fourth);

        // All closed (the cap recovered), then reached again: said again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            assert_eq!(get(&mut s, "/healthz").await.1, "ok\n");
            held.push(s);
        }
        let mut over = TcpStream::connect(&addr).await.unwrap();
        over.write_all(b"GET /metrics HTTP/1.1\r\nHost: proxy\r\n\r\n").await.unwrap();
        assert!(!answered_within(&mut over, Duration::from_millis(700)).await, "served over the cap");
        let (_, m) = get(&mut held[0], "/metrics").await;
        assert!(m.contains("anosys_proxy_connection_limit_reached_total 2"), "{m}");
        assert!(m.contains("anosys_proxy_open_connections 2"), "{m}");
    });
    let stderr = proxy.stop();
    let said: Vec<&str> = stderr.lines().filter(|l| l.contains("connection limit reached")).collect();
    assert_eq!(said.len(), 2, "once per time the cap was reached:\n{stderr}");
    let line: serde_json::Value = serde_json::from_str(said[0]).unwrap();
    assert_eq!(line["level"], "warn");
    assert_eq!(line["max_connections"], 2);
    assert!(line["detail"].as_str().unwrap().contains("--max-connections"), "{line}");
}

/// The handler is called without axum's router, which used to give an
/// answer of known size its `Content-Length` and take the body off the
/// answer to a `HEAD`: both still happen (the proxy's own `/healthz`
/// answer, relayed `HEAD`s), and the connection stays usable after them.
#[test]
fn answers_have_their_length_and_answers_to_head_have_no_body() {
    let s = setup(Duration::from_secs(5), Duration::from_secs(60));
    s.runtime.block_on(async {
        let mut stream = TcpStream::connect(addr(&s.proxy_url)).await.unwrap();
        let (status, body) = get(&mut stream, "/healthz").await;
        assert!(status.contains("200"), "{status}");
        assert_eq!(body, "ok\n");
        // HEADs are relayed (the test upstream answers 404 with a JSON
        // error): heads only, each with its length.
        for path in ["/healthz", "/v1/models"] {
            stream.write_all(format!("HEAD {path} HTTP/1.1\r\nHost: proxy\r\n\r\n").as_bytes()).await.unwrap();
            let (head, after) = read_head(&mut stream).await;
            assert!(after.is_empty(), "{path}: a body after the head: {after:?}");
            let head = head.to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 404") && head.contains("content-length: 26\r\n"), "{path}: {head}");
        }
        // Had a body followed either head, this answer would not parse.
        let (status, body) = get(&mut stream, "/healthz").await;
        assert!(status.contains("200"), "{status}");
        assert_eq!(body, "ok\n");
        // A relayed answer with a body keeps the upstream's length.
        let (status, body) = get(&mut stream, "/v1/models").await;
        assert!(status.contains("404"), "{status}");
        assert!(String::from_utf8_lossy(body.as_bytes()).contains("error"), "{body}");
    });
}
