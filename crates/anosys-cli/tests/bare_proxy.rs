//! The `bare_proxy` example (the floor `bench/proxy_load.sh` measures the
//! logging proxy against) passes requests and answers through unchanged,
//! and answers 502 when its upstream cannot be reached.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::any;
use axum::Router;

/// The example's binary: `cargo test` builds examples next to the test
/// binaries; when only this test was built (`--test bare_proxy`, nextest),
/// it is built here.
fn example() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("examples").join("bare_proxy");
    if !bin.exists() {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--quiet", "-p", "anosys-cli", "--example", "bare_proxy"]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().unwrap().success(), "cargo build --example bare_proxy failed");
    }
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the example in front of `upstream` and waits until it listens.
fn start(upstream: &str) -> (Running, String) {
    let bin = example();
    assert!(bin.exists(), "{} was not built (cargo builds examples with the tests)", bin.display());
    let port = free_port();
    let child = Command::new(bin)
        .args([format!("127.0.0.1:{port}"), upstream.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "bare_proxy did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    (running, format!("http://127.0.0.1:{port}"))
}

#[test]
fn requests_and_answers_pass_through_unchanged() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let upstream = runtime.block_on(async {
        let echo = any(|method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
            let seen = format!(
                "{method} {uri} x-test={} host={}\n",
                headers.get("x-test").and_then(|v| v.to_str().ok()).unwrap_or("-"),
                headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("-"),
            );
            ([("x-upstream", "yes")], [seen.into_bytes(), body.to_vec()].concat())
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, Router::new().fallback(echo)).await });
        addr
    });
    let (_proxy, base) = start(&format!("http://{upstream}"));
    let client = reqwest::blocking::Client::new();
    let body = vec![b'x'; 200_000];
    let answer = client
        .post(format!("{base}/v1/chat/completions?debug=1"))
        .header("x-test", "kept")
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers().get("x-upstream").unwrap(), "yes");
    let bytes = answer.bytes().unwrap();
    let head = format!("POST /v1/chat/completions?debug=1 x-test=kept host={upstream}\n");
    assert_eq!(&bytes[..head.len()], head.as_bytes(), "{:?}", String::from_utf8_lossy(&bytes[..head.len()]));
    assert_eq!(&bytes[head.len()..], &body[..], "the body came back whole");
}

#[test]
fn an_unreachable_upstream_is_a_502() {
    let (_proxy, base) = start(&format!("http://127.0.0.1:{}", free_port()));
    let answer = reqwest::blocking::Client::new().get(format!("{base}/v1/models")).send().unwrap();
    assert_eq!(answer.status(), 502);
}
