//! The AnoSys sink against a real HTTP server on 127.0.0.1.

mod support;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use anosys::{
    Config, ConfigBuilder, ErrorInfo, LogLevel, Pipeline, Record, RecordKind, Resource, SpanId, SpanKind, Status,
    TraceId,
};
use serde_json::{json, Value};
use support::{decode, free_port, temp_dir, Backend, Reply};

const WAIT: Duration = Duration::from_secs(20);

fn config(url: &str, dir: &std::path::Path) -> ConfigBuilder {
    Config::builder()
        .api_url(url)
        .flush_interval(Duration::from_millis(20))
        .jsonl_path(dir.join("fallback.jsonl"))
        .db_path(dir.join("kept.db"))
        .log_level(LogLevel::Off)
}

fn llm_record() -> Record {
    let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    r.span_kind = SpanKind::Client;
    r.start_time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000);
    r.end_time = r.start_time + Duration::from_millis(1500);
    r.trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    r.span_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
    r.parent_span_id = SpanId::from_hex("53995c3f42cd8ad8");
    r.source = Some("tests".into());
    r.input = Some(json!([{"role": "user", "content": "hi"}]));
    r.output = Some(json!("hello"));
    r.set_attribute("gen_ai.request.model", "gpt-4o");
    r.set_attribute("gen_ai.request.temperature", 0.2);
    r.set_attribute("gen_ai.usage.input_tokens", 12);
    r.set_attribute("gen_ai.response.finish_reasons", json!(["stop"]));
    r.set_attribute("gen_ai.response.id", "chatcmpl-1");
    r.set_attribute("server.address", "api.openai.com");
    r.set_attribute("server.port", 443);
    r.set_attribute("is_streaming", true);
    r.set_attribute("gen_ai.request.seed", Value::Null);
    let mut resource = Resource::default();
    resource.attributes.insert("service.name".into(), json!("svc"));
    r.resource = Some(Arc::new(resource));
    r.status = Status::ok();
    r
}

#[test]
fn posts_one_flat_object_per_record_with_the_fixed_table() {
    let backend = Backend::start();
    let dir = temp_dir("exact");
    let pipeline = Pipeline::new(config(&backend.url(), &dir).build().unwrap()).unwrap();
    assert!(pipeline.submit(llm_record()));
    let report = pipeline.shutdown(Some(WAIT));
    assert!(report.completed);
    assert_eq!(report.counters.delivered, 1);

    let hits = backend.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].headers["content-type"], "application/json");
    assert!(hits[0].headers["user-agent"].to_str().unwrap().starts_with("anosys-rust/"));
    assert!(hits[0].headers.get("authorization").is_none());
    let mut body = backend.accepted().remove(0);

    let observed = body.remove("otel_observed_timestamp").unwrap();
    assert!(anosys::record::time::from_iso(observed.as_str().unwrap()).is_some());
    let mapping = body.remove("otel_schema_url").unwrap();
    let mapping: serde_json::Map<String, Value> = serde_json::from_str(mapping.as_str().unwrap()).unwrap();
    assert_eq!(mapping["gen_ai.request.model"], "gen_ai_request_model");
    assert_eq!(mapping["source"], "cvs200");

    // The pipeline prices the call before the sink sees it.
    let mut priced = llm_record();
    anosys::cost::price_record(anosys::cost::PriceTable::builtin(), &mut priced);
    let cost = priced.attribute("gen_ai.usage.cost").cloned().expect("gpt-4o has a price");
    let mut summary = json!({
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.response.id": "chatcmpl-1",
        "server.address": "api.openai.com",
        "server.port": 443,
        "is_streaming": true,
        "gen_ai.usage.cost": cost.clone(),
    });
    let cost_parts: Vec<(String, Value)> = priced
        .attributes
        .iter()
        .filter(|(k, _)| k.starts_with("anosys.cost."))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    for (k, v) in &cost_parts {
        summary[k.as_str()] = v.clone();
    }
    let expected = json!({
        "otel_name": "chat gpt-4o",
        "otel_trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "otel_span_id": "00f067aa0ba902b7",
        "otel_parent_span_id": "53995c3f42cd8ad8",
        "otel_trace_flags": "01",
        "otel_start_time": "2023-11-14T22:13:20.000000Z",
        "otel_end_time": "2023-11-14T22:13:21.500000Z",
        "cvn1": 1_700_000_000_000u64,
        "cvn2": 1_700_000_001_500u64,
        "otel_duration_ms": 1500.0,
        "otel_kind": "CLIENT",
        "otel_status": "{\"status_code\":\"OK\"}",
        "otel_status_code": "OK",
        "otel_status_message": "chatcmpl-1",
        "otel_resource": "{\"service.name\":\"svc\"}",
        "cvs17": "svc",
        "otel_record_type": "AnoSys Trace",
        "cvs19": "LLM",
        "cvs200": "tests",
        "llm_input": json!([{"role": "user", "content": "hi"}]).to_string(),
        "llm_output": "hello",
        "gen_ai_request_model": "gpt-4o",
        "gen_ai_request_temperature": 0.2,
        "gen_ai_usage_input_tokens": 12,
        "gen_ai_response_finish_reasons": "[\"stop\"]",
        "gen_ai_response_id": "chatcmpl-1",
        "cvs14": "api.openai.com",
        "cvn3": 443,
        "cvb2": true,
        "cvs18": summary.to_string(),
        "anosys_record_id": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "gen_ai_usage_cost": cost,
    });
    let mut expected = expected;
    for (k, v) in cost_parts {
        let column = mapping[&k].as_str().unwrap().to_owned();
        expected[column] = v;
    }
    assert_eq!(Value::Object(body), expected);
}

#[test]
fn errors_fill_the_error_columns() {
    let backend = Backend::start();
    let dir = temp_dir("errors");
    let pipeline = Pipeline::new(config(&backend.url(), &dir).build().unwrap()).unwrap();
    let mut r = Record::new(RecordKind::FunctionCall, "billing::charge");
    r.fail(ErrorInfo {
        error_type: "CardDeclined".into(),
        message: "card declined".into(),
        stack: Some("caused by: issuer said no".into()),
    });
    r.caller = Some(anosys::Caller { function: Some("main".into()), file: "src/main.rs".into(), line: 7 });
    r.user_context = Some(json!({"session_id": "s1"}));
    r.set_attribute("error.type", "CardDeclined");
    pipeline.submit(r);
    pipeline.shutdown(Some(WAIT));
    let body = backend.accepted().remove(0);
    assert_eq!(body["cvs3"], "true");
    assert_eq!(body["cvs10"], "CardDeclined");
    assert_eq!(body["cvs11"], "card declined");
    assert_eq!(body["cvs12"], "caused by: issuer said no");
    assert_eq!(body["otel_status_code"], "ERROR");
    assert_eq!(body["otel_status_message"], "card declined");
    assert_eq!(body["cvs4"], json!({"function": "main", "file": "src/main.rs", "line": 7}).to_string());
    assert_eq!(body["cvs5"], "{\"session_id\":\"s1\"}");
    assert_eq!(body["cvs19"], "FUNCTION");
    // error.type has the same column and value as error_type: no overflow.
    assert!(!body.contains_key("otel_attributes"), "{body:?}");
}

#[test]
fn unknown_keys_get_typed_slots_that_decode_and_nulls_are_skipped() {
    let backend = Backend::start();
    let dir = temp_dir("dynamic");
    let pipeline = Pipeline::new(config(&backend.url(), &dir).build().unwrap()).unwrap();
    let data = json!({
        "dyn_test.plan": "pro",
        "dyn_test.seats": 3,
        "dyn_test.ratio": 0.5,
        "dyn_test.trial": false,
        "dyn_test.tags": ["a", "b"],
        "dyn_test.meta": {"k": 1},
        "dyn_test.nothing": null,
    });
    pipeline.submit(anosys::sources::raw::raw_record(data.clone()));
    pipeline.submit(anosys::sources::raw::raw_record(json!({"dyn_test.seats": 4, "dyn_test.plan": "team"})));
    pipeline.shutdown(Some(WAIT));
    let mut bodies = backend.accepted();
    assert_eq!(bodies.len(), 2);
    // Up to eight POSTs are in flight at once: the arrival order is not fixed.
    if decode(&bodies[0])["dyn_test.seats"] != 3 {
        bodies.swap(0, 1);
    }
    let mapping: serde_json::Map<String, Value> =
        serde_json::from_str(bodies[0]["otel_schema_url"].as_str().unwrap()).unwrap();
    let slot = |k: &str| mapping[k].as_str().unwrap().to_owned();
    assert!(slot("dyn_test.plan").starts_with("cvs"));
    assert!(slot("dyn_test.tags").starts_with("cvs"));
    assert!(slot("dyn_test.meta").starts_with("cvs"));
    assert!(slot("dyn_test.seats").starts_with("cvn"));
    assert!(slot("dyn_test.ratio").starts_with("cvn"));
    assert!(slot("dyn_test.trial").starts_with("cvb"));
    assert!(!mapping.contains_key("dyn_test.nothing"));
    for s in ["cvn1", "cvn2", "cvn3", "cvb1", "cvb2", "cvs199", "cvs200"] {
        assert!(!mapping.iter().any(|(k, v)| v == s && k.starts_with("dyn_test")), "{s} reused");
    }
    let first = decode(&bodies[0]);
    assert_eq!(first["dyn_test.plan"], "pro");
    assert_eq!(first["dyn_test.seats"], 3);
    assert_eq!(first["dyn_test.ratio"], 0.5);
    assert_eq!(first["dyn_test.trial"], false);
    assert_eq!(first["dyn_test.tags"], "[\"a\",\"b\"]");
    assert_eq!(first["dyn_test.meta"], "{\"k\":1}");
    assert_eq!(first["raw"], data.to_string());
    // The second record reuses the same slots: keys never move.
    let second = decode(&bodies[1]);
    assert_eq!(bodies[1][&slot("dyn_test.seats")], 4);
    assert_eq!(second["dyn_test.plan"], "team");
}

#[test]
fn retries_500_then_delivers() {
    let backend = Backend::start();
    backend.plan([Reply::status(500), Reply::status(503)]);
    let dir = temp_dir("retry500");
    let pipeline = Pipeline::new(config(&backend.url(), &dir).build().unwrap()).unwrap();
    pipeline.submit(anosys::sources::raw::raw_record(json!({"event": "retry"})));
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(backend.hits().iter().map(|h| h.status).collect::<Vec<_>>(), vec![500, 503, 200]);
    // Kept in the outbox after the 500, sent from it before shutdown ended.
    assert_eq!((report.counters.kept_in_outbox, report.counters.outbox_delivered), (1, 1), "{report:?}");
    assert_eq!(report.counters.in_outbox, 0);
    assert_eq!(report.counters.retried, 2);
    assert_eq!(report.counters.failed, 0);
    // The same record each time, by its stable id.
    let hits = backend.hits();
    let id = |body: &[u8]| serde_json::from_slice::<Value>(body).unwrap()["anosys_record_id"].clone();
    assert_eq!(id(&hits[0].body), id(&hits[2].body));
    assert!(id(&hits[0].body).is_string());
}

#[test]
fn honours_retry_after_on_429() {
    let backend = Backend::start();
    backend.plan([Reply::status(429).retry_after("1")]);
    let dir = temp_dir("retry429");
    let pipeline = Pipeline::new(config(&backend.url(), &dir).build().unwrap()).unwrap();
    pipeline.submit(anosys::sources::raw::raw_record(json!({"event": "slow down"})));
    let report = pipeline.shutdown(Some(WAIT));
    let hits = backend.hits();
    assert_eq!(hits.iter().map(|h| h.status).collect::<Vec<_>>(), vec![429, 200]);
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}, Retry-After said 1s");
    assert_eq!(report.counters.outbox_delivered, 1);
}

#[test]
fn does_not_retry_400() {
    let backend = Backend::start();
    backend.plan([Reply::status(400)]);
    let dir = temp_dir("no400");
    let pipeline = Pipeline::new(config(&backend.url(), &dir).build().unwrap()).unwrap();
    pipeline.submit(anosys::sources::raw::raw_record(json!({"event": "bad"})));
    pipeline.submit(anosys::sources::raw::raw_record(json!({"event": "good"})));
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(backend.hits().len(), 2);
    assert_eq!(report.counters.failed, 1);
    assert_eq!(report.counters.delivered, 1);
    assert_eq!(report.counters.retried, 0);
    assert_eq!(report.pending, 0);
}

#[test]
fn follows_307_and_308_redirects_with_the_record_and_gives_up_on_a_loop() {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::post;
    let backend = Backend::start();
    let target = backend.url();
    // `/moved` sends to the backend (absolute), `/hop` to `/moved`
    // (relative), `/loop` to itself, `/gone` with a 301 (a POST turned into
    // a GET would deliver nothing, so it is not followed).
    let app = axum::Router::new()
        .route("/hop", post(|| async { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/moved")]).into_response() }))
        .route("/moved", post(move || async move { (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, target)]).into_response() }))
        .route("/loop", post(|| async { (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, "/loop")]).into_response() }))
        .route("/gone", post(|| async { (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/moved")]).into_response() }));
    let redirects = support::LocalServer::start(0, app);
    let dir = temp_dir("redirects");
    let url = format!("http://{}/hop", redirects.addr);
    let pipeline = Pipeline::new(config(&url, &dir).build().unwrap()).unwrap();
    pipeline.submit(anosys::sources::raw::raw_record(json!({"event": "redirected"})));
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!((report.counters.delivered, report.counters.failed), (1, 0), "{:?}", report.counters);
    let accepted = backend.accepted();
    assert_eq!(accepted.len(), 1);
    assert!(accepted[0].values().any(|v| v.as_str().is_some_and(|s| s.contains("redirected"))), "{:?}", accepted[0]);

    for (path, dir) in [("loop", temp_dir("redirect-loop")), ("gone", temp_dir("redirect-301"))] {
        let url = format!("http://{}/{path}", redirects.addr);
        let pipeline = Pipeline::new(config(&url, &dir).build().unwrap()).unwrap();
        pipeline.submit(anosys::sources::raw::raw_record(json!({"event": path})));
        let report = pipeline.shutdown(Some(WAIT));
        assert_eq!((report.counters.delivered, report.counters.failed), (0, 1), "{path}: {:?}", report.counters);
    }
    assert_eq!(backend.accepted().len(), 1);
}

#[test]
fn backend_down_then_up_loses_nothing() {
    let port = free_port();
    let dir = temp_dir("downup");
    let url = format!("http://127.0.0.1:{port}/log");
    let pipeline = Pipeline::new(config(&url, &dir).build().unwrap()).unwrap();
    for i in 0..20 {
        pipeline.submit(anosys::sources::raw::raw_record(json!({"event": "down", "i": i})));
    }
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(pipeline.counters().delivered, 0);
    let backend = Backend::start_on(port);
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.kept_in_outbox, 20, "{report:?}");
    assert_eq!(report.counters.outbox_delivered, 20, "{report:?}");
    assert!(report.counters.retried > 0);
    let mut seen: Vec<i64> = backend.accepted().iter().map(|b| decode(b)["i"].as_i64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..20).collect::<Vec<_>>());
    assert!(support::outboxed(&dir.join("kept.db")).is_empty());
}

#[test]
fn unreachable_backend_keeps_records_in_the_outbox() {
    let port = free_port();
    let dir = temp_dir("keep");
    let url = format!("http://127.0.0.1:{port}/log");
    let pipeline = Pipeline::new(config(&url, &dir).build().unwrap()).unwrap();
    for i in 0..5 {
        pipeline.submit(anosys::sources::raw::raw_record(json!({"event": "kept", "i": i})));
    }
    let report = pipeline.shutdown(Some(Duration::from_secs(2)));
    assert_eq!(report.counters.kept_in_outbox, 5, "{report:?}");
    assert_eq!(report.counters.in_outbox, 5, "{report:?}");
    assert_eq!(report.pending, 0);
    let records = support::outboxed(&dir.join("kept.db"));
    assert_eq!(records.len(), 5);
    assert_eq!(records[3].attribute("i"), Some(&json!(3)));
}

#[test]
fn full_queue_drops_and_counts_without_blocking() {
    let backend = Backend::start();
    *backend.shared.default_reply.lock().unwrap() = Some(Reply::status(200).delay(Duration::from_millis(300)));
    let dir = temp_dir("full");
    // No outbox: what the sink cannot take is dropped and counted.
    let c = config(&backend.url(), &dir).queue_size(4).batch_size(1).max_in_flight(1).outbox_max_bytes(0).build().unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    let mut accepted = 0;
    for i in 0..200 {
        accepted += pipeline.submit(anosys::sources::raw::raw_record(json!({"i": i}))) as u64;
    }
    let during = pipeline.counters();
    assert_eq!(during.captured, 200);
    assert!(during.dropped >= 150, "{during:?}");
    // Refused at the queue, or dropped later by the sink's full buffer.
    assert!(during.dropped >= 200 - accepted, "{during:?}");
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.delivered + report.counters.dropped, 200, "{report:?}");
    assert_eq!(backend.accepted().len() as u64, report.counters.delivered);
}

fn key_config(key: &str, backend: &Backend, dir: &std::path::Path) -> Config {
    Config::builder()
        .api_key(key)
        .resolver_url(backend.resolver_url())
        .flush_interval(Duration::from_millis(20))
        .jsonl_path(dir.join("fallback.jsonl"))
        .db_path(dir.join("kept.db"))
        .log_level(LogLevel::Off)
        .build()
        .unwrap()
}

#[test]
fn resolves_the_key_in_the_background() {
    let backend = Backend::start();
    *backend.shared.resolver_reply.lock().unwrap() = Some((200, json!({"apiUrl": backend.url()}).to_string()));
    let dir = temp_dir("resolve");
    let c = key_config("k&y /+secret", &backend, &dir);
    let pipeline = Pipeline::new(c).unwrap();
    pipeline.submit(anosys::sources::raw::raw_record(json!({"event": "resolved"})));
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.delivered, 1);
    assert_eq!(*backend.shared.resolver_keys.lock().unwrap(), vec!["k&y /+secret".to_string()]);
    assert_eq!(backend.accepted().len(), 1);
    assert!(!format!("{pipeline:?}").contains("secret"));
}

#[test]
fn the_key_is_resolved_through_a_redirect() {
    use axum::extract::RawQuery;
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let backend = Backend::start();
    *backend.shared.resolver_reply.lock().unwrap() = Some((200, json!({"apiUrl": backend.url()}).to_string()));
    // The resolver moved: its old address answers 302 to the new one, with
    // the query (and so the key) carried over.
    let moved_to = backend.resolver_url();
    let app = axum::Router::new().route(
        "/old-resolve",
        axum::routing::get(move |RawQuery(query): RawQuery| async move {
            let location = format!("{moved_to}?{}", query.unwrap_or_default());
            (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
        }),
    );
    let old = support::LocalServer::start(0, app);
    let dir = temp_dir("resolve-redirect");
    let c = Config::builder()
        .api_key("moved-key")
        .resolver_url(format!("http://{}/old-resolve", old.addr))
        .flush_interval(Duration::from_millis(20))
        .jsonl_path(dir.join("fallback.jsonl"))
        .db_path(dir.join("kept.db"))
        .log_level(LogLevel::Off)
        .build()
        .unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    pipeline.submit(anosys::sources::raw::raw_record(json!({"event": "resolved after a redirect"})));
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.delivered, 1, "{:?}", report.counters);
    assert_eq!(*backend.shared.resolver_keys.lock().unwrap(), vec!["moved-key".to_string()]);
    assert_eq!(backend.accepted().len(), 1);
}

#[test]
fn failed_resolution_keeps_records_locally_and_posts_nowhere() {
    let backend = Backend::start();
    *backend.shared.resolver_reply.lock().unwrap() = Some((401, "{\"error\":\"bad key\"}".into()));
    let dir = temp_dir("resolvefail");
    let c = key_config("wrong", &backend, &dir);
    let pipeline = Pipeline::new(c).unwrap();
    for i in 0..3 {
        pipeline.submit(anosys::sources::raw::raw_record(json!({"i": i})));
    }
    let report = pipeline.shutdown(Some(Duration::from_secs(2)));
    assert_eq!(report.counters.kept_in_outbox, 3, "{report:?}");
    assert!(backend.hits().is_empty());
    assert_eq!(support::outboxed(&dir.join("kept.db")).len(), 3);
}

#[test]
fn big_values_are_cut_with_a_visible_marker() {
    let backend = Backend::start();
    let dir = temp_dir("cut");
    let c = config(&backend.url(), &dir).max_attribute_bytes(1000).build().unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    let mut r = Record::new(RecordKind::LlmCall, "chat big");
    r.output = Some(json!("x".repeat(50_000)));
    r.set_attribute("gen_ai.output.messages", json!([{"role": "assistant", "content": "y".repeat(50_000)}]));
    pipeline.submit(r);
    pipeline.shutdown(Some(WAIT));
    let body = backend.accepted().remove(0);
    let out = body["llm_output"].as_str().unwrap();
    assert!(out.len() < 1100 && out.ends_with("kept 1000 of 50000 bytes]"), "{}", &out[out.len() - 60..]);
    assert!(body["gen_ai_output_messages"].as_str().unwrap().contains("…[truncated by anosys: kept 1000 of"));
}

#[test]
fn jsonl_and_stdout_sinks_run_together_with_anosys() {
    let backend = Backend::start();
    let dir = temp_dir("multi");
    let c = config(&backend.url(), &dir)
        .sinks([anosys::SinkKind::Anosys, anosys::SinkKind::Jsonl, anosys::SinkKind::Stdout])
        .build()
        .unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    assert_eq!(pipeline.destinations().len(), 3);
    let mut r = llm_record();
    r.start_time = std::time::SystemTime::now();
    r.end_time = r.start_time;
    pipeline.submit(r.clone());
    let report = pipeline.shutdown(Some(WAIT));
    assert_eq!(report.counters.delivered, 1);
    assert_eq!(backend.accepted().len(), 1);
    let line = std::fs::read_to_string(dir.join("fallback.jsonl")).unwrap();
    let back: Record = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(back.trace_id, r.trace_id);
    // What the pipeline adds: the call's price.
    let mut priced = r.clone();
    anosys::cost::price_record(anosys::cost::PriceTable::builtin(), &mut priced);
    assert_eq!(back.attributes, priced.attributes);
    assert!(anosys::sinks::StdoutSink::line(&r).contains("model=gpt-4o"));
}

#[test]
fn shutdown_cuts_retries_short_and_keeps_the_rest_in_the_outbox() {
    // Backend down: the batch is in its retry loop (budget 60 s) when the
    // process shuts down with 1 s to go.
    let port = free_port();
    let dir = temp_dir("shutdown-down");
    let url = format!("http://127.0.0.1:{port}/log");
    let pipeline = Pipeline::new(config(&url, &dir).build().unwrap()).unwrap();
    for i in 0..10 {
        pipeline.submit(anosys::sources::raw::raw_record(json!({"i": i})));
    }
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(pipeline.counters().delivered, 0);
    let report = pipeline.shutdown(Some(Duration::from_secs(1)));
    assert!(report.completed, "{report:?}");
    assert_eq!(report.counters.kept_in_outbox, 10);
    assert_eq!(report.pending, 0);
    assert_eq!(support::outboxed(&dir.join("kept.db")).len(), 10);
}

#[test]
fn shutdown_does_not_wait_for_a_hanging_backend() {
    let backend = Backend::start();
    *backend.shared.default_reply.lock().unwrap() = Some(Reply::status(200).delay(Duration::from_secs(30)));
    let dir = temp_dir("shutdown-hang");
    let pipeline = Pipeline::new(config(&backend.url(), &dir).build().unwrap()).unwrap();
    for i in 0..3 {
        pipeline.submit(anosys::sources::raw::raw_record(json!({"i": i})));
    }
    std::thread::sleep(Duration::from_millis(200));
    let report = pipeline.shutdown(Some(Duration::from_secs(1)));
    assert!(report.completed, "{report:?}");
    assert_eq!(report.counters.kept_in_outbox, 3);
    assert_eq!(report.pending, 0);
}

#[test]
fn a_slow_key_resolution_never_holds_up_shutdown() {
    let backend = Backend::start();
    *backend.shared.resolver_reply.lock().unwrap() = Some((200, json!({"apiUrl": backend.url()}).to_string()));
    *backend.shared.resolver_delay.lock().unwrap() = Duration::from_secs(30);
    let dir = temp_dir("slow-resolve");
    let pipeline = Pipeline::new(key_config("k", &backend, &dir)).unwrap();
    for i in 0..4 {
        pipeline.submit(anosys::sources::raw::raw_record(json!({"i": i})));
    }
    std::thread::sleep(Duration::from_millis(200));
    // Far below the resolver's 30 s, with room for the fallback store to be
    // created on a loaded machine (the sinks stop 500 ms before it).
    let started = std::time::Instant::now();
    let report = pipeline.shutdown(Some(Duration::from_secs(3)));
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(report.completed, "{report:?}");
    assert_eq!(report.counters.kept_in_outbox, 4);
    assert!(backend.hits().is_empty());
}

/// Building a pipeline changes nothing outside it: two pipelines with
/// different slot starting indices, running at once, each put a new key
/// where their own configuration says.
#[test]
fn two_pipelines_keep_their_own_starting_indices() {
    let backend_a = Backend::start();
    let backend_b = Backend::start();
    let dir = temp_dir("two-indices");
    let moved = anosys::StartingIndices { string: 150, number: 50, boolean: 30 };
    let a = Pipeline::new(config(&backend_a.url(), &dir).starting_indices(moved).build().unwrap()).unwrap();
    let b = Pipeline::new(config(&backend_b.url(), &dir).build().unwrap()).unwrap();
    for p in [&a, &b] {
        p.submit(anosys::sources::raw::raw_record(json!({"customer_tier": "gold", "seats": 7, "trial": true})));
    }
    assert!(a.shutdown(Some(WAIT)).completed);
    assert!(b.shutdown(Some(WAIT)).completed);
    let slots = |backend: &Backend| {
        let body = backend.accepted().pop().expect("one body");
        let key_of = |value: Value| {
            let found = body.iter().find(|(_, v)| **v == value).map(|(k, _)| k.clone());
            found.unwrap_or_else(|| panic!("{value} is not in {body:?}"))
        };
        (key_of(json!("gold")), key_of(json!(7)), key_of(json!(true)))
    };
    assert_eq!(slots(&backend_a), ("cvs150".to_owned(), "cvn50".to_owned(), "cvb30".to_owned()));
    // B's sink shares the process's default-indices registry with the
    // other tests here, so its slots are the next free ones from the
    // defaults: below where A's start, never A's.
    let (s, n, b) = slots(&backend_b);
    let number = |slot: &str| slot[3..].parse::<u32>().unwrap();
    assert!((100..150).contains(&number(&s)) && (3..50).contains(&number(&n)) && (1..30).contains(&number(&b)), "{s} {n} {b}");
}

#[test]
fn a_large_batch_is_encoded_off_the_delivery_thread_and_delivered_whole() {
    // Batches of 16 records and more are encoded on the blocking pool while
    // the first requests are in flight; one of them fails once.
    let backend = Backend::start();
    backend.plan([Reply::status(200), Reply::status(503)]);
    let dir = temp_dir("large-batch");
    let pipeline = Pipeline::new(config(&backend.url(), &dir).batch_size(100).build().unwrap()).unwrap();
    for i in 0..100 {
        assert!(pipeline.submit(anosys::sources::raw::raw_record(json!({"i": i}))));
    }
    let report = pipeline.shutdown(Some(WAIT));
    assert!(report.completed, "{report:?}");
    let accepted = backend.accepted();
    let ids: std::collections::BTreeSet<&str> =
        accepted.iter().map(|body| body["anosys_record_id"].as_str().unwrap()).collect();
    assert_eq!((accepted.len(), ids.len()), (100, 100), "{report:?}");
    let c = &report.counters;
    // The one refused, and any batch that came while the lane was down,
    // went through the outbox.
    assert_eq!(c.delivered + c.outbox_delivered, 100, "{c:?}");
    assert_eq!((c.outbox_delivered, c.failed, c.in_outbox), (c.kept_in_outbox, 0, 0), "{c:?}");
    assert!(c.kept_in_outbox >= 1, "{c:?}");
}
