//! `#[anosys::logger]` end to end: calls delivered by the AnoSys sink to
//! the local test backend, checked in the posted bodies.

mod support;

use std::time::Duration;

use anosys::{Config, LogLevel};
use serde_json::{json, Map, Value};
use support::{decode, temp_dir, Backend};

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

#[anosys::logger(source = "e2e", skip(secret), fields(tenant = "acme"))]
fn step(n: u32, secret: &str) -> Result<u32, Refused> {
    if n == 0 || secret.is_empty() {
        return Err(Refused);
    }
    Ok(n * 10)
}

#[anosys::logger(source = "e2e")]
fn crash() -> u32 {
    panic!("crashed on purpose")
}

#[anosys::logger(source = "e2e")]
async fn child(n: u32) -> u32 {
    tokio::task::yield_now().await;
    n + 1
}

#[anosys::logger(source = "e2e")]
async fn parent(n: u32) -> u32 {
    child(n).await + child(n + 1).await
}

#[anosys::logger(source = "e2e")]
async fn never_done() -> u32 {
    tokio::time::sleep(Duration::from_secs(60)).await;
    0
}

fn by_name<'a>(bodies: &'a [Map<String, Value>], name: &str) -> Vec<&'a Map<String, Value>> {
    bodies.iter().filter(|b| b["otel_name"].as_str().is_some_and(|n| n.ends_with(&format!("::{name}")))).collect()
}

#[test]
fn logged_calls_reach_the_backend() {
    let backend = Backend::start();
    let dir = temp_dir("logger-e2e");
    let config = Config::builder()
        .api_url(backend.url())
        .flush_interval(Duration::from_millis(20))
        .jsonl_path(dir.join("kept.jsonl"))
        .log_level(LogLevel::Off)
        .build()
        .unwrap();
    let guard = anosys::init_with(config).unwrap();
    // Quiet panic output; anosys chains its own hook onto this one at the
    // first logged call (a hook set later would replace it and the panic's
    // location would be unknown, its message still recorded).
    std::panic::set_hook(Box::new(|_| {}));

    assert_eq!(step(4, "s3cr3t-value").unwrap(), 40);
    assert!(step(0, "s3cr3t-value").is_err());
    assert!(std::panic::catch_unwind(crash).is_err());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    assert_eq!(rt.block_on(parent(1)), 5);
    assert!(rt.block_on(async { tokio::time::timeout(Duration::from_millis(20), never_done()).await }).is_err());
    drop(rt);

    let report = guard.shutdown(None);
    assert_eq!(report.counters.delivered, 7, "{report:?}");
    let bodies = backend.accepted();
    assert!(!bodies.iter().any(|b| Value::Object(b.clone()).to_string().contains("s3cr3t-value")));

    let steps = by_name(&bodies, "step");
    assert_eq!(steps.len(), 2);
    let ok = steps.iter().find(|b| !b.contains_key("cvs3")).unwrap();
    assert_eq!(ok["llm_input"], "[4]");
    assert_eq!(ok["llm_output"], "40");
    assert_eq!(ok["cvs200"], "e2e");
    assert_eq!(ok["cvs19"], "FUNCTION");
    assert_eq!(decode(ok)["tenant"], "acme");
    let caller: Value = serde_json::from_str(ok["cvs4"].as_str().unwrap()).unwrap();
    assert!(caller["file"].as_str().unwrap().ends_with("tests/logger_backend.rs"));
    let err = steps.iter().find(|b| b.contains_key("cvs3")).unwrap();
    assert_eq!(err["cvs3"], "true");
    assert_eq!(err["cvs10"], "logger_backend::Refused");
    assert_eq!(err["cvs11"], "refused");
    assert_eq!(err["otel_status_code"], "ERROR");

    let crash = by_name(&bodies, "crash")[0];
    assert_eq!(crash["cvs10"], "panic");
    assert_eq!(crash["cvs11"], "crashed on purpose");
    assert!(crash["cvs12"].as_str().unwrap().contains("tests/logger_backend.rs:"));

    let parent = by_name(&bodies, "parent")[0];
    let children = by_name(&bodies, "child");
    assert_eq!(children.len(), 2);
    for c in children {
        assert_eq!(c["otel_parent_span_id"], parent["otel_span_id"]);
        assert_eq!(c["otel_trace_id"], parent["otel_trace_id"]);
    }
    assert_eq!(parent["llm_output"], "5");

    let cancelled = by_name(&bodies, "never_done")[0];
    assert_eq!(decode(cancelled)["anosys.outcome"], json!("cancelled"));
    assert_eq!(cancelled["otel_status_code"], "UNSET");
}
