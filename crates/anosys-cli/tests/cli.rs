//! The `anosys` binary, run as a user runs it, on temporary stores.

mod command;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anosys::Record;
use assert_cmd::Command;
use command::{anosys, stdout};
use predicates::prelude::*;
use rusqlite::Connection;
use serde_json::Value;



/// Every record in the store, by row id, read directly with SQLite.
fn stored(db: &Path) -> Vec<(i64, Record)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT id, record FROM records ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|r| {
            let (id, json) = r.unwrap();
            // As every command shows it: the input kept in `raw` written out.
            let mut record: Record = serde_json::from_str(&json).unwrap();
            record.expand_content();
            (id, record)
        })
        .collect()
}

fn demo_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    anosys(&db).arg("demo").current_dir(dir.path()).assert().success();
    (dir, db)
}

fn model(r: &Record) -> Option<&str> {
    r.model()
}

#[test]
fn demo_captures_the_scripted_app() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let out = stdout(anosys(&db).arg("demo").current_dir(dir.path()));
    assert!(out.contains("records are stored in"), "{out}");
    assert!(out.contains(&db.display().to_string()), "{out}");
    assert!(out.contains("anosys show"), "{out}");

    let records: Vec<Record> = stored(&db).into_iter().map(|(_, r)| r).collect();
    let kinds = |k: &str| records.iter().filter(|r| serde_json::to_value(r.kind).unwrap() == k).count();
    assert_eq!((kinds("llm_call"), kinds("function_call"), kinds("raw")), (4, 4, 1), "{records:#?}");

    // The streamed chat with tool calls, aggregated, inside its logged function.
    let streamed = records.iter().find(|r| r.attribute("anosys.stream.chunks").is_some()).expect("a streamed chat");
    let calls: Vec<&str> = streamed.output.as_ref().unwrap()[0]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["get_current_weather", "get_current_weather"]);
    // The demo server thinks for 150 ms before answering: time to first
    // chunk counts from the request, so it includes that wait.
    assert!(streamed.attribute("gen_ai.response.time_to_first_chunk").and_then(Value::as_f64).unwrap() >= 0.150);
    assert!(streamed.attribute("gen_ai.usage.output_tokens").and_then(Value::as_i64).unwrap() > 0);
    let parent = records.iter().find(|r| r.name.ends_with("::weather_report")).unwrap();
    assert_eq!(streamed.parent_span_id, Some(parent.span_id));
    assert_eq!(streamed.trace_id, parent.trace_id);

    // The API error and the failing function are errors, with what went wrong.
    let errors: Vec<&Record> = records.iter().filter(|r| r.status.code == anosys::StatusCode::Error).collect();
    assert_eq!(errors.len(), 2);
    let api = errors.iter().find(|r| r.kind == anosys::RecordKind::LlmCall).unwrap();
    assert_eq!(model(api), Some("this-model-does-not-exist"));
    assert!(api.error.as_ref().unwrap().message.contains("does not exist"));
    let card = errors.iter().find(|r| r.kind == anosys::RecordKind::FunctionCall).unwrap();
    assert_eq!(card.source.as_deref(), Some("billing"));
    assert!(card.error.as_ref().unwrap().stack.as_ref().unwrap().contains("issuer answered 05"));

    let embedding = records.iter().find(|r| r.name.starts_with("embeddings")).unwrap();
    assert_eq!(model(embedding), Some("text-embedding-3-small"));
    let raw = records.iter().find(|r| r.kind == anosys::RecordKind::Raw).unwrap();
    assert_eq!(raw.raw.as_ref().unwrap()["event"], "demo.finished");

    // Every LLM call with usage is priced; the failed one has no usage.
    let priced: Vec<f64> =
        records.iter().filter_map(|r| r.attribute("gen_ai.usage.cost").and_then(Value::as_f64)).collect();
    assert_eq!(priced.len(), 3, "{records:#?}");
    assert_eq!(api.attribute("anosys.cost.status"), Some(&serde_json::json!("no_usage")));
    // ... and logs, stats and show say what it cost.
    let logs = stdout(anosys(&db).arg("logs"));
    assert!(logs.contains("COST") && logs.contains("$0.0"), "{logs}");
    let stats: Value = serde_json::from_str(&stdout(anosys(&db).args(["stats", "--json"]))).unwrap();
    let total = stats["cost_usd"].as_f64().unwrap();
    assert!((total - priced.iter().sum::<f64>()).abs() < 1e-12, "{stats}");
    let per_model: f64 = stats["models"].as_array().unwrap().iter().map(|m| m["cost_usd"].as_f64().unwrap()).sum();
    assert!((per_model - total).abs() < 1e-12, "{stats}");
    let text = stdout(anosys(&db).arg("stats"));
    assert!(text.contains("COST") && text.contains("in all"), "{text}");
    let show = stdout(anosys(&db).args(["show", &streamed.span_id.to_string()]));
    assert!(show.contains("cost") && show.contains("output $"), "{show}");
}

#[test]
fn live_demo_without_a_key_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    anosys(&dir.path().join("x.db"))
        .args(["demo", "--live"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("needs OPENAI_API_KEY").and(predicate::str::contains("hint:")));
}

#[test]
fn logs_lists_and_filters() {
    let (_dir, db) = demo_store();
    let records = stored(&db);
    let rows = |args: &[&str]| -> Vec<String> {
        let out = stdout(anosys(&db).arg("logs").args(args));
        out.lines().skip(1).map(str::to_owned).collect()
    };

    let all = rows(&[]);
    assert_eq!(all.len(), records.len());
    let header = stdout(anosys(&db).arg("logs"));
    for column in ["ID", "TIME (UTC)", "KIND", "SOURCE", "MODEL", "TOKENS IN/OUT", "DURATION", "STATUS"] {
        assert!(header.lines().next().unwrap().contains(column), "{header}");
    }
    // Newest first: the first row is the latest start (the highest id
    // among equal starts; records may be stored out of start order).
    let start_ms = |r: &anosys::Record| r.start_time.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let newest = records.iter().max_by_key(|(id, r)| (start_ms(r), *id)).map(|(id, _)| *id).unwrap();
    assert!(all[0].trim_start().starts_with(&newest.to_string()));

    let errors = rows(&["--status", "error"]);
    let expected = records.iter().filter(|(_, r)| r.status.code == anosys::StatusCode::Error).count();
    assert_eq!(errors.len(), expected);
    assert!(errors.iter().all(|l| l.ends_with("ERROR")));

    assert_eq!(rows(&["--model", "text-embedding*"]).len(), 1);
    assert_eq!(rows(&["--source", "billing"]).len(), 1);
    assert_eq!(rows(&["--kind", "raw"]).len(), 1);
    let (_, answer) = records.iter().find(|(_, r)| r.name.ends_with("::answer")).unwrap();
    let trace = answer.trace_id.to_string();
    assert_eq!(rows(&["--trace", &trace]).len(), 2, "the function and its chat");
    assert_eq!(rows(&["--trace", &trace[..8]]).len(), 2);
    assert_eq!(rows(&["--since", "1h"]).len(), records.len());
    assert!(stdout(anosys(&db).args(["logs", "--since", "2999-01-01"])).contains("no records match"));

    // --limit, and the note saying there is more.
    let limited = stdout(anosys(&db).args(["logs", "--limit", "3"]));
    assert_eq!(limited.lines().filter(|l| l.contains("202")).count(), 3);
    assert!(limited.contains(&format!("3 of {} matching records", records.len())));

    // --json: whole records with their id, one per line.
    let json = stdout(anosys(&db).args(["logs", "--json", "--kind", "llm"]));
    let lines: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    for line in lines {
        let (_, r) = records.iter().find(|(id, _)| line["id"] == *id).unwrap();
        let mut without_id = line.as_object().unwrap().clone();
        without_id.remove("id");
        assert_eq!(serde_json::from_value::<Record>(Value::Object(without_id)).unwrap(), *r);
    }
}

#[test]
fn show_prints_one_record_in_full() {
    let (_dir, db) = demo_store();
    let records = stored(&db);
    let (id, streamed) = records.iter().find(|(_, r)| r.attribute("anosys.stream.chunks").is_some()).unwrap();
    let out = stdout(anosys(&db).args(["show", &id.to_string()]));
    for expected in [
        streamed.name.as_str(),
        &streamed.trace_id.to_string(),
        &streamed.parent_span_id.unwrap().to_string(),
        "get_current_weather",
        "San Francisco, CA",
        "gen_ai.operation.name",
        "first chunk",
        "tokens",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from\n{out}");
    }
    // By span id prefix, the same record.
    let by_span = stdout(anosys(&db).args(["show", &streamed.span_id.to_string()[..10]]));
    assert_eq!(by_span, out);
    // --json is the record as stored, its content written out.
    let json = stdout(anosys(&db).args(["show", &id.to_string(), "--json"]));
    assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), *streamed);

    let (fid, failed) = records.iter().find(|(_, r)| r.name.ends_with("::charge_card")).unwrap();
    let out = stdout(anosys(&db).args(["show", &fid.to_string()]));
    assert!(out.contains(&failed.error.as_ref().unwrap().message), "{out}");
    assert!(out.contains("issuer answered 05"), "{out}");

    anosys(&db)
        .args(["show", "999999"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no record with id 999999").and(predicate::str::contains("anosys logs")));
}

/// Records with known durations, models and outcomes, written by the sink's
/// own insert.
fn synthetic_store(path: &Path) -> Vec<Record> {
    let mut conn = anosys::sinks::sqlite::open(path).unwrap();
    let mut records = Vec::new();
    let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for i in 1..=200u64 {
        let llm = i <= 100;
        let mut r = Record::new(
            if llm { anosys::RecordKind::LlmCall } else { anosys::RecordKind::FunctionCall },
            if llm { "chat m" } else { "f" },
        );
        let ms = if llm { i } else { i - 100 };
        r.start_time = t0;
        r.end_time = t0 + std::time::Duration::from_millis(ms);
        if llm {
            r.source = Some("openai".into());
            r.set_attribute("gen_ai.request.model", if i % 2 == 0 { "even-model" } else { "odd-model" });
            r.set_attribute("gen_ai.usage.input_tokens", i);
            r.set_attribute("gen_ai.usage.output_tokens", 2 * i);
            r.set_attribute("gen_ai.response.time_to_first_chunk", i as f64 / 10_000.0);
        } else {
            r.source = Some(if i % 4 == 0 { "billing" } else { "search" }.into());
        }
        if i % 10 == 0 {
            r.fail(anosys::ErrorInfo { error_type: "E".into(), message: format!("failure {i}"), stack: None });
        } else {
            r.status = anosys::Status::ok();
        }
        records.push(r);
    }
    anosys::sinks::sqlite::insert(&mut conn, &records).unwrap();
    records
}

fn nearest_rank(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

#[test]
fn stats_per_model_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let records = synthetic_store(&db);
    let json: Value = serde_json::from_str(&stdout(anosys(&db).args(["stats", "--json"]))).unwrap();
    assert_eq!(json["records"], 200);

    // Every figure recomputed here from the records themselves.
    let mut groups: HashMap<(bool, String), Vec<&Record>> = HashMap::new();
    for r in &records {
        let llm = r.kind == anosys::RecordKind::LlmCall;
        let key = if llm { model(r).unwrap().to_owned() } else { r.source.clone().unwrap() };
        groups.entry((llm, key)).or_default().push(r);
    }
    for ((llm, key), rs) in groups {
        let list = &json[if llm { "models" } else { "sources" }];
        let g = list.as_array().unwrap().iter().find(|g| g["key"] == key.as_str()).unwrap();
        let errors = rs.iter().filter(|r| r.error.is_some()).count();
        assert_eq!(g["calls"], rs.len(), "{key}");
        assert_eq!(g["errors"], errors, "{key}");
        assert!((g["error_rate"].as_f64().unwrap() - errors as f64 / rs.len() as f64).abs() < 1e-9);
        let durations: Vec<f64> = rs.iter().map(|r| r.duration().as_secs_f64() * 1000.0).collect();
        for p in ["p50", "p95", "p99"] {
            let q = p[1..].parse::<f64>().unwrap() / 100.0;
            assert!((g["latency_ms"][p].as_f64().unwrap() - nearest_rank(durations.clone(), q)).abs() < 1e-6, "{key} {p}");
        }
        if llm {
            let tokens: i64 = rs.iter().map(|r| r.attribute("gen_ai.usage.input_tokens").unwrap().as_i64().unwrap()).sum();
            assert_eq!(g["input_tokens"], tokens);
            assert_eq!(g["output_tokens"], 2 * tokens);
            let ttfc: Vec<f64> =
                rs.iter().map(|r| r.attribute("gen_ai.response.time_to_first_chunk").unwrap().as_f64().unwrap() * 1000.0).collect();
            let got = g["time_to_first_chunk_ms"]["p95"].as_f64().unwrap();
            assert!((got - nearest_rank(ttfc, 0.95)).abs() < 1e-6);
        } else {
            assert!(g["time_to_first_chunk_ms"].is_null());
        }
    }

    let text = stdout(anosys(&db).arg("stats"));
    for expected in ["LLM calls by model", "even-model", "odd-model", "Logged functions by source", "billing", "P99", "TTFC P50"] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    let filtered: Value =
        serde_json::from_str(&stdout(anosys(&db).args(["stats", "--json", "--model", "even-*"]))).unwrap();
    assert_eq!(filtered["models"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["models"][0]["calls"], 50);
}

#[test]
fn export_jsonl_and_csv() {
    let (dir, db) = demo_store();
    let records = stored(&db);

    let file = dir.path().join("out.jsonl");
    anosys(&db)
        .args(["export", "--format", "jsonl", "-o"])
        .arg(&file)
        .assert()
        .success()
        .stderr(predicate::str::contains(format!("exported {} records", records.len())));
    let exported: Vec<Record> =
        std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Oldest first (by start millisecond, then row id), each record whole.
    let mut by_time = records.clone();
    by_time.sort_by_key(|(id, r)| (r.start_time.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis(), *id));
    let expected: Vec<Record> = by_time.into_iter().map(|(_, r)| r).collect();
    assert!(exported == expected, "export differs from the store");

    let csv_text = stdout(anosys(&db).args(["export", "--format", "csv", "--status", "error"]));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let errors: Vec<&(i64, Record)> = records.iter().filter(|(_, r)| r.error.is_some()).collect();
    assert_eq!(rows.len(), errors.len());
    for row in rows {
        let (_, r) = errors.iter().find(|(id, _)| id.to_string() == row[col("id")]).unwrap();
        assert_eq!(&row[col("status")], "ERROR");
        assert_eq!(&row[col("error_message")], r.error.as_ref().unwrap().message.as_str());
        assert_eq!(&row[col("span_id")], r.span_id.to_string().as_str());
        assert_eq!(&row[col("model")], model(r).unwrap_or(""));
    }
}

/// A stand-in AnoSys ingestion endpoint on 127.0.0.1 that keeps every body
/// and answers `status`.
struct Backend {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    _runtime: tokio::runtime::Runtime,
}

fn backend(status: u16) -> Backend {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = bodies.clone();
    let app = axum::Router::new().route(
        "/log",
        axum::routing::post(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(serde_json::from_slice::<Value>(&body).unwrap());
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/log", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, app).await });
    Backend { url, bodies, _runtime: runtime }
}

#[test]
fn send_replays_stored_records_to_anosys() {
    let (_dir, db) = demo_store();
    let records = stored(&db);
    let ok = backend(200);
    let out = stdout(anosys(&db).arg("send").env("ANOSYS_API_URL", &ok.url));
    assert!(out.contains(&format!("{n} delivered", n = records.len())), "{out}");
    let sent: BTreeSet<String> =
        ok.bodies.lock().unwrap().iter().map(|b| b["otel_span_id"].as_str().unwrap().to_owned()).collect();
    let kept: BTreeSet<String> = records.iter().map(|(_, r)| r.span_id.to_string()).collect();
    assert_eq!(sent, kept);

    // Filters apply.
    let errors_only = backend(200);
    stdout(anosys(&db).args(["send", "--status", "error"]).env("ANOSYS_API_URL", &errors_only.url));
    assert_eq!(errors_only.bodies.lock().unwrap().len(), 2);

    // A backend that refuses: counted as failed, exit 1, the store untouched.
    let refusing = backend(400);
    anosys(&db)
        .arg("send")
        .env("ANOSYS_API_URL", &refusing.url)
        .assert()
        .failure()
        .stdout(predicate::str::contains(format!("{} failed", records.len())))
        .stderr(predicate::str::contains("were not delivered").and(predicate::str::contains("run the same command again")));
    assert_eq!(stored(&db).len(), records.len());
}

/// A stand-in OTLP/HTTP receiver on 127.0.0.1 keeping every span.
struct OtlpReceiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>,
    _runtime: tokio::runtime::Runtime,
}

fn otlp_receiver() -> OtlpReceiver {
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
    use prost::Message;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let keep = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                for rs in request.resource_spans {
                    for ss in rs.scope_spans {
                        keep.lock().unwrap().extend(ss.spans);
                    }
                }
                ExportTraceServiceResponse::default().encode_to_vec()
            }
        }),
    );
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    runtime.spawn(async move { axum::serve(listener, app).await });
    OtlpReceiver { endpoint, spans, _runtime: runtime }
}

#[test]
fn send_replays_stored_records_to_an_otlp_backend() {
    let (_dir, db) = demo_store();
    let records = stored(&db);
    let receiver = otlp_receiver();
    let out = stdout(anosys(&db).args(["send", "--to", "otlp"]).env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint));
    assert!(out.contains(&format!("{n} delivered", n = records.len())), "{out}");
    assert!(out.contains("/v1/traces (http/protobuf)"), "{out}");
    let spans = receiver.spans.lock().unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let sent: BTreeSet<(String, String, String)> =
        spans.iter().map(|s| (hex(&s.span_id), hex(&s.parent_span_id), s.name.clone())).collect();
    let kept: BTreeSet<(String, String, String)> = records
        .iter()
        .map(|(_, r)| (r.span_id.to_string(), r.parent_span_id.map(|p| p.to_string()).unwrap_or_default(), r.name.clone()))
        .collect();
    assert_eq!(sent, kept);

    anosys(&db)
        .args(["send", "--to", "otlp"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .assert()
        .failure()
        .stderr(predicate::str::contains("OTEL_EXPORTER_OTLP_ENDPOINT"));
}

#[test]
fn helpful_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    anosys(&missing)
        .arg("logs")
        .assert()
        .failure()
        .stderr(predicate::str::contains("no local store").and(predicate::str::contains("anosys demo")));
    assert!(!missing.exists(), "reading never creates a store");

    let (_dir, db) = demo_store();
    anosys(&db)
        .args(["logs", "--since", "last tuesday"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--since").and(predicate::str::contains("2h")));
    anosys(&db).arg("send").assert().failure().stderr(predicate::str::contains("ANOSYS_API_KEY"));
    anosys(&db).args(["logs", "--trace", "not-hex"]).assert().failure().stderr(predicate::str::contains("trace id"));
    anosys(&db).args(["logs", "--status", "maybe"]).assert().code(2);
}

#[test]
fn every_help_has_examples() {
    for sub in [None, Some("demo"), Some("logs"), Some("show"), Some("stats"), Some("export"), Some("send")] {
        let mut cmd = Command::cargo_bin("anosys").unwrap();
        if let Some(s) = sub {
            cmd.arg(s);
        }
        cmd.arg("--help")
            .assert()
            .success()
            .stdout(predicate::str::contains("Examples:\n").and(predicate::str::is_match(r"\n  [A-Z_=a-z./:-]*\s?anosys ").unwrap()));
    }
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let (_dir, db) = demo_store();
    // Not a terminal (a pipe): no escape codes.
    let piped = stdout(anosys(&db).arg("logs"));
    assert!(!piped.contains('\x1b'));
    let forced = stdout(anosys(&db).args(["logs", "--color", "always"]));
    assert!(forced.contains("\x1b["));
    assert_eq!(anstream::adapter::strip_str(&forced).to_string(), piped);
}

#[test]
fn an_older_store_is_read_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v1.db");
    {
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(anosys::sinks::sqlite::MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        let mut r = Record::new(anosys::RecordKind::LlmCall, "chat old-model");
        r.set_attribute("gen_ai.request.model", "old-model");
        r.status = anosys::Status::ok();
        conn.execute(
            "INSERT INTO records (start_ms, end_ms, duration_ms, kind, name, source, model, status, input_tokens,
             output_tokens, trace_id, span_id, record) VALUES (?1, ?1, 0, 'llm_call', ?2, NULL, 'old-model', 'OK', 1, 2, ?3, ?4, ?5)",
            rusqlite::params![
                r.start_time.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64,
                r.name,
                r.trace_id.to_string(),
                r.span_id.to_string(),
                serde_json::to_string(&r).unwrap()
            ],
        )
        .unwrap();
    }
    let bytes = std::fs::read(&db).unwrap();
    let out = stdout(anosys(&db).arg("logs"));
    assert!(out.contains("old-model"), "{out}");
    let out = stdout(anosys(&db).args(["stats", "--json"]));
    assert!(out.contains("old-model"), "{out}");
    // Reading neither migrates nor marks it.
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    let version: i64 = Connection::open(&db).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 1);
}

#[test]
fn two_demos_writing_one_store_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let spawn = || {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("anosys"))
            .arg("--db")
            .arg(&db)
            .arg("demo")
            .env_remove("ANOSYS_API_KEY")
            .env_remove("ANOSYS_API_URL")
            .env_remove("ANOSYS_SINKS")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let records = stored(&db);
    assert_eq!(records.len(), 18);
    let spans: BTreeSet<String> = records.iter().map(|(_, r)| r.span_id.to_string()).collect();
    assert_eq!(spans.len(), 18);
    let check: String =
        Connection::open(&db).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn status_shows_what_waits_in_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("status.db");
    // No store yet: said plainly, nothing created.
    let text = stdout(anosys(&db).arg("status"));
    assert!(text.contains("nothing is waiting for delivery"), "{text}");
    assert!(!db.exists());

    let destination = anosys::sinks::Destination::new("anosys", "http://127.0.0.1:9/log?k=secret", "AnoSys at http://127.0.0.1:9");
    let mut outbox = anosys::sinks::outbox::Outbox::open(&db, &destination, 1 << 20).unwrap();
    let records: Vec<Record> = (0..3).map(|i| anosys::sources::raw::raw_record(serde_json::json!({"i": i}))).collect();
    let entries: Vec<_> = records.iter().map(|record| anosys::sinks::outbox::Entry { record, uncertain: false }).collect();
    outbox.put(&entries).unwrap();
    let claimed = outbox.claim(1, std::time::Duration::from_secs(30)).unwrap();
    outbox
        .settle(&anosys::sinks::outbox::Settle {
            retry: vec![(claimed[0].id, false)],
            error: Some("1 of 1 records not delivered".into()),
            ..Default::default()
        })
        .unwrap();
    drop(outbox);

    let text = stdout(anosys(&db).arg("status"));
    assert!(text.contains("AnoSys at http://127.0.0.1:9"), "{text}");
    assert!(text.contains("1 of 1 records not delivered"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    let json: Value = serde_json::from_str(&stdout(anosys(&db).args(["status", "--json"]))).unwrap();
    assert_eq!(json["outbox"][0]["records"], 3, "{json}");
    assert_eq!(json["records"], 0);
}

#[test]
fn send_outbox_delivers_what_waits_there_now() {
    use anosys::sinks::outbox::{Entry, Outbox, Settle};
    use anosys::sinks::Sink;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outbox.db");
    let down = backend(503);
    let up = backend(200);
    // Both stand-ins are one destination to the outbox only if their URL is
    // the same: the rows are kept for the one that is down, and sent to it.
    let destination_of = |url: &str| {
        let config = anosys::Config::builder().api_url(url).build().unwrap();
        anosys::sinks::AnosysSink::new(&config).unwrap().destination().unwrap()
    };

    // Nothing kept yet: said plainly.
    stdout(anosys(&db).arg("demo"));
    let text = stdout(anosys(&db).args(["send", "--outbox"]).env("ANOSYS_API_URL", &up.url));
    assert!(text.contains("nothing waits in the outbox"), "{text}");

    let records: Vec<Record> = (0..5).map(|i| anosys::sources::raw::raw_record(serde_json::json!({"i": i}))).collect();
    for (url, uncertain_first) in [(&down.url, false), (&up.url, true)] {
        let mut outbox = Outbox::open(&db, &destination_of(url), 1 << 20).unwrap();
        let entries: Vec<_> =
            records.iter().enumerate().map(|(i, record)| Entry { record, uncertain: i == 0 && uncertain_first }).collect();
        outbox.put(&entries).unwrap();
        // Two rows are backing off for an hour: a send by hand does not wait.
        let claimed = outbox.claim(2, std::time::Duration::from_secs(30)).unwrap();
        outbox
            .settle(&Settle {
                retry: claimed.iter().map(|c| (c.id, false)).collect(),
                next_try: std::time::Duration::from_secs(3600),
                ..Default::default()
            })
            .unwrap();
    }

    // A filter makes no sense here.
    anosys(&db)
        .args(["send", "--outbox", "--since", "1h"])
        .env("ANOSYS_API_URL", &up.url)
        .assert()
        .failure()
        .stderr(predicate::str::contains("takes no filter"));

    // The destination is down: said so, exit 1, every row still there.
    anosys(&db)
        .args(["send", "--outbox"])
        .env("ANOSYS_API_URL", &down.url)
        .assert()
        .failure()
        .stderr(predicate::str::contains("5 records wait in the outbox"));
    assert!(!down.bodies.lock().unwrap().is_empty());

    // Up: all five delivered, the earlier uncertain one counted as a
    // possible duplicate, the outbox empty; the other destination's rows
    // untouched.
    let text = stdout(anosys(&db).args(["send", "--outbox"]).env("ANOSYS_API_URL", &up.url));
    assert!(text.contains("5 delivered") && text.contains("0 left"), "{text}");
    assert!(text.contains("1 of them may have been delivered before"), "{text}");
    let sent: BTreeSet<String> =
        up.bodies.lock().unwrap().iter().map(|b| b["anosys_record_id"].as_str().unwrap().to_owned()).collect();
    let kept: BTreeSet<String> = records.iter().map(anosys::sinks::anosys::encode::record_id).collect();
    assert_eq!(sent, kept);
    let json: Value = serde_json::from_str(&stdout(anosys(&db).args(["status", "--json"]))).unwrap();
    let waiting: Vec<u64> = json["outbox"].as_array().unwrap().iter().map(|o| o["records"].as_u64().unwrap()).collect();
    assert_eq!(waiting.iter().sum::<u64>(), 5, "{json}");
    assert!(waiting.contains(&0), "{json}");
}
