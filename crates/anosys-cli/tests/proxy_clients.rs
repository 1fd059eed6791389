//! The official `openai` clients, Python and npm, pointed at the proxy,
//! with a local upstream replaying the recorded replies; every record is
//! checked in the local store.
//!
//! The clients are installed by `scripts/test.sh` (which `.ci/run` calls):
//! a virtualenv in `target/test-venv` and `node_modules` in
//! `tests/clients`.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anosys::{Record, StatusCode};
use serde_json::{json, Value};
use support::Setup;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ANOSYS_TEST_PYTHON") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv/bin/python");
    if venv.exists() { venv } else { "python3".into() }
}

/// Runs a client script (bounded to two minutes) and returns its JSON lines
/// by case.
fn run_client(program: &Path, script: &str, base_url: &str, install_hint: &str) -> HashMap<String, Value> {
    let mut child = Command::new(program)
        .arg(clients_dir().join(script))
        .arg(base_url)
        .current_dir(clients_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {install_hint}", program.display()));
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{script} did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed ({install_hint}):\n{stdout}\n{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .map(|v| (v["case"].as_str().unwrap().to_owned(), v))
        .collect()
}

fn summary(records: &[Record]) -> Vec<(Option<&Value>, Option<&Value>, &str)> {
    records.iter().map(|r| (r.attribute("session.id"), r.attribute("anosys.outcome"), r.status.code.as_str())).collect()
}

fn by_session<'a>(records: &'a [Record], session: &str) -> &'a Record {
    let found: Vec<&Record> = records.iter().filter(|r| r.attribute("session.id") == Some(&json!(session))).collect();
    assert_eq!(found.len(), 1, "records for {session}: {found:#?}");
    found[0]
}

/// What both clients must produce, client side and in the store.
fn check_common(prefix: &str, source: &str, seen: &HashMap<String, Value>, records: &[Record], db: &Path, key: &str) {
    assert_eq!(seen["chat"]["content"], "This is a test.");
    assert_eq!(seen["stream_tools"]["tool_calls"], json!(["get_current_weather", "get_current_weather"]));
    assert_eq!(seen["stream_tools"]["completion_tokens"], 51);
    assert!(seen["early_break"]["first_chunk_id"].is_string());
    assert_eq!(seen["embeddings"]["dimensions"], 1536);
    for (case, status) in [("error_400", 400), ("error_401", 401), ("error_429", 429), ("error_500", 500)] {
        assert_eq!(seen[case]["status"], status, "{case}: {}", seen[case]);
    }

    let r = by_session(records, &format!("{prefix}-chat"));
    assert_eq!(r.status.code, StatusCode::Ok);
    assert_eq!(r.name, "chat gpt-4o-mini");
    assert_eq!(r.source.as_deref(), Some(source));
    assert_eq!(r.output, Some(json!("This is a test.")));
    assert_eq!(r.attribute("gen_ai.usage.input_tokens"), Some(&json!(12)));

    let r = by_session(records, &format!("{prefix}-stream_tools"));
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("completed")));
    assert_eq!(r.attribute("gen_ai.usage.output_tokens"), Some(&json!(51)));
    assert_eq!(r.attribute("gen_ai.response.finish_reasons"), Some(&json!(["tool_calls"])));
    let parts = &r.output.as_ref().unwrap()[0]["parts"];
    assert_eq!(parts[1]["arguments"], json!({"location": "San Francisco, CA"}));

    let r = by_session(records, &format!("{prefix}-early_break"));
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("cancelled")), "{r:#?}");

    let r = by_session(records, &format!("{prefix}-embeddings"));
    assert_eq!(r.status.code, StatusCode::Ok);
    assert_eq!(r.attribute("gen_ai.embeddings.dimension.count"), Some(&json!(1536)));

    for (case, status, error_type) in [
        ("error_400", 400, "model_not_found"),
        ("error_401", 401, "invalid_api_key"),
        ("error_429", 429, "rate_limit_exceeded"),
        ("error_500", 500, "server_error"),
    ] {
        let r = by_session(records, &format!("{prefix}-{case}"));
        assert_eq!(r.status.code, StatusCode::Error, "{case}");
        assert_eq!(r.attribute("http.response.status_code"), Some(&json!(status)), "{case}");
        assert_eq!(r.error.as_ref().unwrap().error_type, error_type, "{case}");
    }

    // The API key went to the upstream, never into the store.
    let bytes = [std::fs::read(db).unwrap(), std::fs::read(db.with_extension("db-wal")).unwrap_or_default()].concat();
    assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()), "the API key reached the store");
}

#[test]
fn the_official_python_client_through_the_proxy() {
    let s = Setup::new(|_, _| {});
    let seen = run_client(
        &python(),
        "python_client.py",
        &format!("{}/v1", s.proxy_url),
        "install it with: python3 -m venv target/test-venv && target/test-venv/bin/pip install -r crates/anosys-cli/tests/clients/requirements.txt (scripts/test.sh does)",
    );
    let records = s.records(10);
    assert_eq!(records.len(), 10, "{:?}", summary(&records));
    check_common("py", "python-app", &seen, &records, &s.db, "sk-test-python-key");
    assert_eq!(seen["error_429"]["error"], "RateLimitError");
    assert_eq!(seen["error_401"]["error"], "AuthenticationError");
    assert_eq!(seen["async_chat"]["content"], "This is a test.");
    assert_eq!(seen["async_stream"]["content"], "\"This is a test.\"");
    let r = by_session(&records, "py-async_stream");
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("completed")));
    assert_eq!(r.output, Some(json!("\"This is a test.\"")));
    // Every request kept its headers upstream, minus the anosys ones.
    for (_, headers, _) in s.upstream.seen.lock().unwrap().iter() {
        assert_eq!(headers["authorization"], "Bearer sk-test-python-key");
        assert!(headers.get("x-anosys-session-id").is_none());
    }
}

#[test]
fn the_official_npm_client_through_the_proxy() {
    let node_modules = clients_dir().join("node_modules/openai");
    assert!(
        node_modules.exists(),
        "the openai npm package is missing: run npm ci --prefix crates/anosys-cli/tests/clients (scripts/test.sh does)"
    );
    let s = Setup::new(|_, _| {});
    let seen = run_client(
        Path::new("node"),
        "node_client.mjs",
        &format!("{}/v1", s.proxy_url),
        "needs Node 20 and npm ci --prefix crates/anosys-cli/tests/clients",
    );
    let records = s.records(9);
    assert_eq!(records.len(), 9, "{:?}", summary(&records));
    check_common("js", "node-app", &seen, &records, &s.db, "sk-test-node-key");
    assert_eq!(seen["error_429"]["error"], "RateLimitError");
    assert!(seen["abort"]["first_chunk_id"].is_string());
    let r = by_session(&records, "js-abort");
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("cancelled")), "{r:#?}");
}
