//! An outbound proxy set in the environment (`HTTP_PROXY`) carries what the
//! AnoSys sink sends: the key's resolution and the records. The stand-in
//! backend on 127.0.0.1 is also the proxy: it takes the absolute-form
//! requests a proxy gets and answers them itself, so a record for a host
//! that does not exist (`.invalid`) arrives only if it went through it.
//!
//! Alone in its test binary: it sets a process-wide environment variable
//! before anything reads it.

mod support;

use std::time::Duration;

use anosys::{Config, LogLevel, Pipeline, Record, RecordKind, Status};
use support::{temp_dir, Backend};

#[test]
fn records_and_key_resolution_go_through_the_proxy_in_the_environment() {
    let backend = Backend::start();
    // SAFETY: the only test of this binary, run before any thread that
    // reads the environment is started.
    unsafe {
        std::env::set_var("HTTP_PROXY", format!("http://{}", backend.addr));
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
    let dir = temp_dir("outbound-proxy");
    let base = || {
        Config::builder()
            .flush_interval(Duration::from_millis(20))
            .db_path(dir.join("kept.db"))
            .log_level(LogLevel::Off)
    };

    // A URL whose host cannot be resolved: only the proxy can take it.
    let pipeline = Pipeline::new(base().api_url("http://anosys.invalid/log").build().unwrap()).unwrap();
    let mut record = Record::new(RecordKind::Raw, "through the proxy");
    record.finish(Status::ok());
    assert!(pipeline.submit(record));
    let report = pipeline.shutdown(Some(Duration::from_secs(20)));
    assert_eq!((report.counters.delivered, report.counters.in_outbox), (1, 0), "{:?}", report.counters);
    let hits = backend.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].headers["host"], "anosys.invalid");
    assert_eq!(backend.accepted()[0]["otel_name"], "through the proxy");

    // A key resolved through the proxy too (the resolver's host cannot be
    // resolved either; the resolver answers with the backend's own URL).
    let resolved = serde_json::json!({"apiUrl": "http://resolved.invalid/log"}).to_string();
    *backend.shared.resolver_reply.lock().unwrap() = Some((200, resolved));
    let config = base().api_key("k-123").resolver_url("http://resolver.invalid/resolve").build().unwrap();
    let pipeline = Pipeline::new(config).unwrap();
    let mut record = Record::new(RecordKind::Raw, "resolved through the proxy");
    record.finish(Status::ok());
    assert!(pipeline.submit(record));
    let report = pipeline.shutdown(Some(Duration::from_secs(20)));
    assert_eq!(report.counters.delivered, 1, "{:?}", report.counters);
    assert_eq!(*backend.shared.resolver_keys.lock().unwrap(), vec!["k-123".to_string()]);
    let hits = backend.hits();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[1].headers["host"], "resolved.invalid");
}
