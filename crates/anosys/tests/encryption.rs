//! `ANOSYS_ENCRYPTION_KEY`: the AnoSys sink encrypts the content columns,
//! as the original AnoSys SDKs do, before a body leaves the process or is
//! kept in the outbox. Against a real HTTP server on 127.0.0.1.

mod support;

use std::time::Duration;

use anosys::sinks::anosys::encrypt::{decrypt, derive_key, DEFAULT_ENCRYPTED_COLUMNS};
use anosys::{Caller, Config, ConfigBuilder, LogLevel, Pipeline, Record, RecordKind, Status};
use serde_json::{json, Map, Value};
use support::{free_port, temp_dir, Backend};

const WAIT: Duration = Duration::from_secs(20);
const PASSPHRASE: &str = "correct horse battery staple";
const MARKER: &str = "PLAINTEXT-MARKER-7431";

fn config(url: &str, dir: &std::path::Path) -> ConfigBuilder {
    Config::builder()
        .api_url(url)
        .flush_interval(Duration::from_millis(20))
        .db_path(dir.join("kept.db"))
        .log_level(LogLevel::Off)
}

/// A function call with every kind of content: arguments, return value,
/// caller, user context, raw payload.
fn record() -> Record {
    let mut r = Record::new(RecordKind::FunctionCall, "billing.charge");
    r.input = Some(json!([format!("card holder {MARKER}")]));
    r.output = Some(json!({"charged": true, "note": MARKER}));
    r.caller = Some(Caller { function: Some("main".into()), file: "app.py".into(), line: 12 });
    r.user_context = Some(json!({"session_id": "s-1", "user_id": "u-42"}));
    r.raw = Some(json!({"request": MARKER}));
    r.set_attribute("customer.tier", "gold");
    r.finish(Status::ok());
    r
}

fn bodies(backend: &Backend) -> Vec<Map<String, Value>> {
    backend.shared.hits.lock().unwrap().iter().map(|h| serde_json::from_slice(&h.body).unwrap()).collect()
}

#[test]
fn content_columns_arrive_encrypted_and_decrypt_to_what_would_have_been_sent() {
    let (plain_backend, sealed_backend) = (Backend::start(), Backend::start());
    let dir = temp_dir("encrypt-columns");
    let plain = Pipeline::new(config(&plain_backend.url(), &dir.join("plain")).build().unwrap()).unwrap();
    let sealed =
        Pipeline::new(config(&sealed_backend.url(), &dir.join("sealed")).encryption_key(PASSPHRASE).build().unwrap())
            .unwrap();
    let r = record();
    assert!(plain.submit(r.clone()));
    assert!(sealed.submit(r));
    assert!(plain.shutdown(Some(WAIT)).completed);
    assert!(sealed.shutdown(Some(WAIT)).completed);
    let (plain, sealed) = (&bodies(&plain_backend)[0], &bodies(&sealed_backend)[0]);

    let key = derive_key(PASSPHRASE);
    let mut encrypted = Vec::new();
    for (column, value) in plain {
        let other = &sealed[column];
        if DEFAULT_ENCRYPTED_COLUMNS.contains(&column.as_str()) {
            let text = other.as_str().unwrap();
            assert!(text.starts_with("enc:"), "{column}: {text}");
            assert_eq!(decrypt(text, &key).as_deref(), Ok(value.as_str().unwrap()), "{column}");
            encrypted.push(column.as_str());
        } else if !column.contains("observed") {
            assert_eq!(other, value, "{column} is not to be encrypted");
        }
    }
    encrypted.sort();
    assert_eq!(encrypted, ["cvs199", "cvs4", "cvs5", "llm_input", "llm_output"]);
    assert!(!serde_json::to_string(sealed).unwrap().contains(MARKER));
    // The body still says what its columns are.
    assert_eq!(sealed["otel_schema_url"], plain["otel_schema_url"]);
}

#[test]
fn chosen_columns_only_and_the_original_spelling_of_the_variable() {
    let backend = Backend::start();
    let dir = temp_dir("encrypt-chosen");
    let lookup = |name: &str| match name {
        "ANOSYS_ENCRYPTION_KEY" => Some(PASSPHRASE.to_owned()),
        "ANOSYS_ENCRYPTES_COLUMNS" => Some("llm_output, cvs4".to_owned()),
        _ => None,
    };
    let builder = anosys::ConfigBuilder::from_lookup(lookup).unwrap();
    let config = builder
        .api_url(backend.url())
        .flush_interval(Duration::from_millis(20))
        .db_path(dir.join("kept.db"))
        .log_level(LogLevel::Off)
        .build()
        .unwrap();
    let pipeline = Pipeline::new(config).unwrap();
    assert!(pipeline.submit(record()));
    assert!(pipeline.shutdown(Some(WAIT)).completed);
    let body = &bodies(&backend)[0];
    let key = derive_key(PASSPHRASE);
    assert!(decrypt(body["cvs4"].as_str().unwrap(), &key).unwrap().contains("app.py"));
    assert!(decrypt(body["llm_output"].as_str().unwrap(), &key).unwrap().contains(MARKER));
    assert!(body["llm_input"].as_str().unwrap().contains(MARKER), "not chosen, so not encrypted");
}

#[test]
fn records_kept_for_later_are_encrypted_on_disk_and_delivered_so() {
    let port = free_port();
    let dir = temp_dir("encrypt-outbox");
    let url = format!("http://127.0.0.1:{port}/log");
    let pipeline = Pipeline::new(config(&url, &dir).encryption_key(PASSPHRASE).build().unwrap()).unwrap();
    for _ in 0..3 {
        assert!(pipeline.submit(record()));
    }
    let report = pipeline.shutdown(Some(Duration::from_secs(2)));
    assert_eq!(report.counters.kept_in_outbox, 3, "{report:?}");
    // Nothing of the content is readable in the store's files.
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()), "{} holds the content", path.display());
    }
    // The next process delivers them, still encrypted.
    let backend = Backend::start_on(port);
    let next = Pipeline::new(config(&url, &dir).encryption_key(PASSPHRASE).build().unwrap()).unwrap();
    let report = next.shutdown(Some(WAIT));
    assert_eq!(report.counters.outbox_delivered, 3, "{report:?}");
    let key = derive_key(PASSPHRASE);
    for body in bodies(&backend) {
        assert!(decrypt(body["llm_input"].as_str().unwrap(), &key).unwrap().contains(MARKER));
        assert!(!serde_json::to_string(&body).unwrap().contains(MARKER));
    }
}
