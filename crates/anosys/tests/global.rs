//! The process-wide API: init, the guard, exit, setup_api, async callers.
//! Tests here share the global pipeline, so they take a lock.

mod support;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anosys::{Config, LogLevel, StartingIndices};
use serde_json::json;
use support::{decode, temp_dir, Backend};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs this test binary again as a child that only runs `test_name`.
fn run_child(test_name: &str, backend: &Backend) -> std::process::Output {
    child(test_name).env("ANOSYS_API_URL", backend.url()).output().unwrap()
}

fn child(test_name: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("ANOSYS_TEST_CHILD", "1")
        // Nothing would be sent before exit without the exit-time flush.
        .env("ANOSYS_FLUSH_INTERVAL_MS", "600000")
        .env("ANOSYS_BATCH_SIZE", "100000")
        .env("ANOSYS_LOG_LEVEL", "off")
        .env_remove("ANOSYS_API_KEY")
        .env_remove("ANOSYS_API_URL");
    c
}

fn in_child() -> bool {
    std::env::var_os("ANOSYS_TEST_CHILD").is_some()
}

/// Child entry point: captures without `init` and exits at once.
#[test]
fn child_captures_and_exits_without_init() {
    if !in_child() {
        return;
    }
    for i in 0..50 {
        anosys::log_raw(json!({"child": "no-init", "i": i}));
    }
    std::process::exit(0);
}

/// Child entry point: `init()`, captures, returns (the guard drops).
#[test]
fn child_captures_with_guard() {
    if !in_child() {
        return;
    }
    let _guard = anosys::init().unwrap();
    for i in 0..50 {
        anosys::log_raw(json!({"child": "guard", "i": i}));
    }
}

/// Child entry point: three records with whatever key the parent set.
#[test]
fn child_captures_three() {
    if !in_child() {
        return;
    }
    for i in 0..3 {
        anosys::log_raw(json!({"child": "key", "i": i}));
    }
}

#[test]
fn an_unresolvable_key_keeps_records_locally_and_is_never_printed() {
    if in_child() {
        return;
    }
    const KEY: &str = "sk-anosys-very-secret-4242";
    let backend = Backend::start();
    *backend.shared.resolver_reply.lock().unwrap() = Some((401, "{}".into()));
    let unreachable = format!("http://127.0.0.1:{}/resolve", support::free_port());
    for (resolver, says) in [(backend.resolver_url(), "HTTP 401"), (unreachable, "cannot reach 127.0.0.1")] {
        let dir = temp_dir("secret");
        let out = child("child_captures_three")
            .env("ANOSYS_API_KEY", KEY)
            .env("ANOSYS_RESOLVER_URL", &resolver)
            .env("ANOSYS_LOG_LEVEL", "debug")
            .env("ANOSYS_DB", dir.join("kept.db"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("could not resolve ANOSYS_API_KEY") && stderr.contains(says), "{stderr}");
        assert!(stderr.contains("kept.db"), "{stderr}");
        assert!(!stderr.contains(KEY) && !String::from_utf8_lossy(&out.stdout).contains(KEY));
        let kept = support::outboxed(&dir.join("kept.db"));
        assert_eq!(kept.len(), 3);
        assert!(!serde_json::to_string(&kept).unwrap().contains(KEY));
    }
    assert!(backend.hits().is_empty(), "nothing is posted to a guessed address");
    assert_eq!(backend.shared.resolver_keys.lock().unwrap().as_slice(), [KEY]);
}

#[test]
fn a_short_lived_child_process_delivers_every_record() {
    if in_child() {
        return;
    }
    for (name, tag) in [("child_captures_and_exits_without_init", "no-init"), ("child_captures_with_guard", "guard")] {
        let backend = Backend::start();
        let out = run_child(name, &backend);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let bodies = backend.wait_for(50, Duration::from_secs(5));
        assert_eq!(bodies.len(), 50, "{name}");
        let mut seen: Vec<i64> = bodies
            .iter()
            .map(|b| {
                let d = decode(b);
                assert_eq!(d["child"], tag);
                d["i"].as_i64().unwrap()
            })
            .collect();
        seen.sort();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }
}

#[test]
fn setup_api_sets_the_url_and_starting_indices() {
    if in_child() {
        return;
    }
    let _s = serial();
    let backend = Backend::start();
    anosys::compat::setup_api(Some(&backend.url()), Some(StartingIndices { string: 150, number: 40, boolean: 20 })).unwrap();
    anosys::log_raw(json!({"setup.s": "x", "setup.n": 1, "setup.b": true}));
    let report = anosys::shutdown(Some(Duration::from_secs(10)));
    assert_eq!(report.counters.delivered, 1);
    let body = backend.accepted().remove(0);
    let mapping: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(body["otel_schema_url"].as_str().unwrap()).unwrap();
    assert_eq!(mapping["setup.s"], "cvs150");
    assert_eq!(mapping["setup.n"], "cvn40");
    assert_eq!(mapping["setup.b"], "cvb20");
    assert_eq!(body["cvs150"], "x");
    assert!(anosys::compat::setup_api(Some("not a url"), None).unwrap_err().to_string().contains("http"));
}

#[derive(Debug)]
struct Exploding;

impl serde::Serialize for Exploding {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("user Serialize impl panics")
    }
}

#[tokio::test(flavor = "current_thread")]
#[allow(clippy::await_holding_lock)] // the lock only serialises tests
async fn works_inside_a_current_thread_runtime_and_survives_panicking_input() {
    if in_child() {
        return;
    }
    let _s = serial();
    let backend = Backend::start();
    let dir = temp_dir("async");
    let config = Config::builder()
        .api_url(backend.url())
        .jsonl_path(dir.join("f.jsonl"))
        .log_level(LogLevel::Off)
        .build()
        .unwrap();
    let guard = anosys::init_with(config).unwrap();
    assert!(anosys::log_raw(json!({"event": "in runtime"})));
    assert!(anosys::log_raw_serialize(&json!({"event": "serialize"})));
    // A panicking Serialize never reaches the caller.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    assert!(!anosys::log_raw_serialize(&Exploding));
    std::panic::set_hook(prev);
    tokio::task::yield_now().await;
    let flushed = anosys::flush(Some(Duration::from_secs(10)));
    assert!(flushed.completed);
    assert_eq!(flushed.counters.delivered, 2);
    let report = guard.shutdown(None);
    assert_eq!(report.counters.captured, 2);
    assert_eq!(backend.accepted().len(), 2);
    // Captures after the guard's shutdown are dropped and counted.
    assert!(!anosys::log_raw(json!({"event": "late"})));
    assert_eq!(anosys::counters().dropped, 1);
}

/// A deferred call (the Python and Node packages' way) dropped before it
/// ended is recorded as cancelled, not lost; one handed over is captured
/// by the time `flush` returns.
#[test]
fn a_deferred_call_dropped_unfinished_is_recorded_as_cancelled() {
    use anosys::embed::{DeferredCall, RequestJson, ResponseJson};
    use anosys::sources::openai::CaptureOptions;
    let _serial = serial();
    let (builder, memory) = support::memory_builder();
    let guard = anosys::init_with(builder).unwrap();
    let url = "https://api.openai.com/v1/chat/completions";
    let request = || RequestJson::Bytes(br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#.to_vec());
    drop(DeferredCall::start(url.into(), request(), CaptureOptions::default(), None));
    let mut done = DeferredCall::start(url.into(), request(), CaptureOptions::default(), None);
    let reply = br#"{"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}"#;
    assert!(done.finish_deferred(200, ResponseJson::Bytes(reply.to_vec()), true));
    drop(done);
    assert_eq!(anosys::flush(Some(Duration::from_secs(10))).counters.captured, 2);
    let records = memory.records.lock().unwrap().clone();
    let outcomes: Vec<_> = records.iter().map(|r| r.attribute("anosys.outcome").cloned()).collect();
    assert!(outcomes.contains(&Some(json!("cancelled"))), "{outcomes:?}");
    assert!(records.iter().any(|r| r.output == Some(json!("Hello"))), "{records:#?}");
    assert!(records.iter().all(|r| r.attribute("gen_ai.request.model") == Some(&json!("gpt-4o-mini"))));
    drop(guard);
}

/// The record of a stream, minus what depends on timing.
fn comparable(mut r: anosys::Record) -> serde_json::Value {
    r.expand_content();
    r.attributes.shift_remove("gen_ai.response.time_to_first_chunk");
    // What the pipeline adds (the price) is not the stream's.
    r.attributes.retain(|k, _| !k.starts_with("anosys.cost.") && k != "gen_ai.usage.cost");
    json!({"attributes": r.attributes, "output": r.output, "status": r.status, "error": r.error, "name": r.name})
}

/// A stream read to its end through a `DeferredCall` (the Python and Node
/// packages' way: its events kept as they come, the record made on the
/// extraction thread) gives the record a `LiveCall` fed the same events
/// gives, for every recorded stream, fed as raw bytes or as events.
#[test]
fn a_deferred_stream_gives_the_record_a_live_one_gives() {
    use anosys::embed::{DeferredCall, LiveCall, RequestJson};
    use anosys::sources::openai::CaptureOptions;
    use support::cassette::{self, Exchange};
    let _serial = serial();
    let (builder, memory) = support::memory_builder();
    let guard = anosys::init_with(builder).unwrap();
    let streams: Vec<Exchange> = cassette::names().iter().flat_map(|n| cassette::load(n)).filter(Exchange::is_sse).collect();
    assert!(streams.len() >= 15, "{}", streams.len());
    let mut expected = Vec::new();
    let mut deferred_ends = 0;
    for (i, x) in streams.iter().enumerate() {
        let text = std::str::from_utf8(&x.body).unwrap();
        let events: Vec<&str> = text.split_inclusive("\n\n").collect();
        let mut live = LiveCall::start(&x.uri, x.request.clone(), &CaptureOptions::default(), None);
        let mut deferred =
            DeferredCall::start(x.uri.clone(), RequestJson::Value(x.request.clone()), CaptureOptions::default(), None);
        for event in &events {
            live.push_bytes(event.as_bytes());
            // Every other stream as the `data:` payloads (Node's openai
            // hands over parsed events), the rest as raw bytes.
            match event.trim_end().strip_prefix("data: ") {
                Some(data) if i % 2 == 0 && data != "[DONE]" && !data.contains('\n') => deferred.push_data(data.to_owned()),
                // `[DONE]`, an event with an `event:` line: as the body has it.
                _ => deferred.push_bytes(event.as_bytes()),
            }
        }
        expected.push(comparable(live.end_stream().unwrap()));
        deferred_ends += usize::from(deferred.can_defer_stream_end());
        assert!(deferred.end_stream_with(true, anosys::capture), "{}", x.name);
        assert!(!deferred.end_stream_with(true, anosys::capture), "a call ends once");
    }
    assert!(deferred_ends >= 15, "{deferred_ends} of {} streams handed over", streams.len());
    assert_eq!(anosys::flush(Some(Duration::from_secs(10))).counters.captured, streams.len() as u64);
    let records = memory.records.lock().unwrap().clone();
    let got: Vec<_> = records.into_iter().map(comparable).collect();
    assert_eq!(got.len(), expected.len());
    for (x, (got, expected)) in streams.iter().zip(got.iter().zip(&expected)) {
        assert_eq!(got, expected, "{}", x.name);
    }
    drop(guard);
}

/// A deferred stream's time to first chunk counts to when its first event
/// came, and its end to when the stream ended, not to when the extraction
/// thread made the record; a stream that keeps more than `STREAM_KEPT_MAX`
/// bytes is followed on the caller's thread from then on, every event
/// recorded; one dropped unfinished is recorded as cancelled with what
/// arrived.
#[test]
fn a_deferred_stream_keeps_its_times_its_size_bound_and_its_partial_content() {
    use anosys::embed::{DeferredCall, RequestJson};
    use anosys::sources::openai::{CaptureOptions, STREAM_KEPT_MAX};
    use std::time::SystemTime;
    let _serial = serial();
    let (builder, memory) = support::memory_builder();
    let guard = anosys::init_with(builder).unwrap();
    let url = "https://api.openai.com/v1/chat/completions";
    let request = || RequestJson::Text(r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]}"#.into());
    let chunk = |content: &str, finish: Option<&str>| {
        json!({"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]})
            .to_string()
    };

    // Times.
    let mut timed = DeferredCall::start(url.into(), request(), CaptureOptions::default(), None);
    std::thread::sleep(Duration::from_millis(60));
    timed.push_data(chunk("Hel", None));
    std::thread::sleep(Duration::from_millis(100));
    timed.push_data(chunk("lo", Some("stop")));
    let before_end = SystemTime::now();
    assert!(timed.end_stream_with(true, anosys::capture));
    let after_end = SystemTime::now();

    // Past the bound: 3,000 events of about 700 bytes (2 MiB).
    let piece = "x".repeat(600);
    let mut long = DeferredCall::start(url.into(), request(), CaptureOptions::default(), None);
    for i in 0..3000 {
        long.push_data(chunk(&piece, (i == 2999).then_some("stop")));
    }
    assert!(!long.can_defer_stream_end(), "past {STREAM_KEPT_MAX} bytes the stream is followed here");
    assert!(long.end_stream_with(true, anosys::capture));

    // Dropped after two events.
    let mut dropped = DeferredCall::start(url.into(), request(), CaptureOptions::default(), None);
    dropped.push_data(chunk("This is", None));
    dropped.push_data(chunk(" a", None));
    drop(dropped);

    assert_eq!(anosys::flush(Some(Duration::from_secs(10))).counters.captured, 3);
    let mut records = memory.records.lock().unwrap().clone();
    records.iter_mut().for_each(anosys::Record::expand_content);
    let find = |output: &str| records.iter().find(|r| r.output == Some(json!(output))).unwrap_or_else(|| panic!("{records:#?}"));
    let timed = find("Hello");
    let first = timed.attribute("gen_ai.response.time_to_first_chunk").and_then(serde_json::Value::as_f64).unwrap();
    assert!((0.055..0.155).contains(&first), "time to first chunk {first}");
    assert!(timed.end_time >= before_end && timed.end_time <= after_end, "{:?} not in {before_end:?}..{after_end:?}", timed.end_time);
    assert!(timed.duration() >= Duration::from_millis(160), "{:?}", timed.duration());
    // Its content is past the record's size limits; every event counted.
    let long = records.iter().find(|r| r.attribute("anosys.stream.chunks") == Some(&json!(3000))).expect("the long stream");
    assert_eq!(long.attribute("gen_ai.response.finish_reasons"), Some(&json!(["stop"])));
    assert_eq!(long.attribute("anosys.outcome"), Some(&json!("completed")));
    let dropped = find("This is a");
    assert_eq!(dropped.attribute("anosys.outcome"), Some(&json!("cancelled")));
    assert_eq!(dropped.attribute("anosys.stream.chunks"), Some(&json!(2)));
    drop(guard);
}

/// A plain call handed over whole (`PlainCall`, the Python and Node
/// packages' one-step way: its bodies copied into the engine's reused
/// buffers, its record made on the extraction thread) gives the record a
/// `LiveCall` on this thread gives, for every recorded reply that is not a
/// stream, errors included; with the times, parent, user context and
/// source it was given. A call whose bodies are not JSON keeps them: as
/// text, unmarked, when given as text; marked when given as bytes. With a
/// `before_send` callback set, the call is given back, to be made on this
/// thread (`record_with`), where the callback sees it.
#[test]
fn a_plain_call_handed_over_gives_the_record_a_live_one_gives() {
    use anosys::embed::{LiveCall, PlainCall};
    use anosys::sources::openai::{CaptureOptions, RequestBody, ResponseBody};
    use anosys::{SpanId, TraceId};
    use std::time::SystemTime;
    use support::cassette::{self, Exchange};
    let _serial = serial();
    let (builder, memory) = support::memory_builder();
    let guard = anosys::init_with(builder).unwrap();
    let plain: Vec<Exchange> = cassette::names().iter().flat_map(|n| cassette::load(n)).filter(|x| !x.is_sse()).collect();
    assert!(plain.len() >= 20, "{}", plain.len());
    let comparable = |mut r: anosys::Record| {
        r.expand_content();
        r.attributes.retain(|k, _| !k.starts_with("anosys.cost.") && k != "gen_ai.usage.cost");
        json!({"attributes": r.attributes, "input": r.input, "output": r.output, "raw": r.raw_json(), "status": r.status, "error": r.error, "name": r.name, "source": r.source})
    };
    let mut expected = Vec::new();
    for (i, x) in plain.iter().enumerate() {
        let sent = serde_json::to_vec(&x.request).unwrap();
        let mut live = LiveCall::start(&x.uri, sent.as_slice(), &CaptureOptions::default(), None);
        expected.push(comparable(live.finish(x.status, x.body.as_slice()).unwrap()));
        // Every other call as text, as Node hands them over.
        let text = std::str::from_utf8(&sent).unwrap();
        let (request, response) = match (i % 2, std::str::from_utf8(&x.body)) {
            (0, Ok(body)) => (RequestBody::Text(text), ResponseBody::Text(body)),
            _ => (RequestBody::Bytes(&sent), ResponseBody::Bytes(&x.body)),
        };
        let call = PlainCall { url: &x.uri, request, status: x.status, response, ..PlainCall::default() };
        assert!(call.hand_over().is_ok(), "{}", x.name);
    }
    assert_eq!(anosys::flush(Some(Duration::from_secs(10))).counters.captured, plain.len() as u64);
    let got: Vec<_> = memory.records.lock().unwrap().drain(..).map(comparable).collect();
    assert_eq!(got.len(), expected.len());
    for (x, (got, expected)) in plain.iter().zip(got.iter().zip(&expected)) {
        assert_eq!(got, expected, "{}", x.name);
    }

    // What the caller gives: times, parent, user context, source.
    let (trace, span) = (TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
    let reply = br#"{"id":"c1","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}]}"#;
    let sent = br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}"#;
    let before = SystemTime::now();
    let call = PlainCall {
        url: "https://api.openai.com/v1/chat/completions",
        request: RequestBody::Bytes(sent),
        response: ResponseBody::Bytes(reply),
        elapsed: Duration::from_millis(1500),
        parent: Some((trace, span)),
        user_context: Some(json!({"user_id": "u-7"})),
        source: Some("billing"),
        ..PlainCall::default()
    };
    assert!(call.hand_over().is_ok());
    // Not JSON: text unmarked, bytes marked.
    let not_json = |response| PlainCall { url: "https://api.openai.com/v1/chat/completions", request: RequestBody::Bytes(sent), response, ..PlainCall::default() };
    assert!(not_json(ResponseBody::Text("<html>upstream down</html>")).hand_over().is_ok());
    assert!(not_json(ResponseBody::Bytes(b"<html>upstream down</html>")).hand_over().is_ok());
    let after = SystemTime::now();
    assert_eq!(anosys::flush(Some(Duration::from_secs(10))).counters.captured, plain.len() as u64 + 3);
    let records: Vec<_> = memory.records.lock().unwrap().drain(..).collect();
    let given = &records[0];
    let took = Duration::from_millis(1500);
    assert!(given.start_time >= before - took && given.start_time <= after - took, "{:?} {before:?}", given.start_time);
    assert!(given.end_time >= before && given.end_time <= after, "{:?}", given.end_time);
    assert_eq!((given.trace_id, given.parent_span_id), (trace, Some(span)));
    assert_eq!(given.user_context, Some(json!({"user_id": "u-7"})));
    assert_eq!(given.source.as_deref(), Some("billing"));
    assert_eq!(given.output(), Some(std::borrow::Cow::Owned(json!("Hello"))));
    let (text, bytes) = (&records[1], &records[2]);
    assert_eq!(text.raw_json().unwrap()["response"], json!("<html>upstream down</html>"));
    assert_eq!(text.attribute("anosys.response.malformed"), None);
    assert_eq!(bytes.raw_json().unwrap()["response"], json!("<html>upstream down</html>"));
    assert_eq!(bytes.attribute("anosys.response.malformed"), Some(&json!(true)));
    assert!(records.iter().all(|r| r.source.is_some()));
    assert_eq!(records[1].source.as_deref(), Some("openai"), "the default source again, after a call that set its own");

    // A `before_send` callback sees it on this thread.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    anosys::set_before_send(move |r: &mut anosys::Record| {
        keep.lock().unwrap().push(std::thread::current().id());
        r.set_attribute("team", "search");
        true
    });
    let call = PlainCall { url: "https://api.openai.com/v1/chat/completions", request: RequestBody::Bytes(sent), response: ResponseBody::Bytes(reply), ..PlainCall::default() };
    let call = call.hand_over().expect_err("made on this thread when a before_send callback is set");
    assert!(call.record_with(anosys::capture));
    anosys::clear_before_send();
    assert_eq!(*seen.lock().unwrap(), vec![std::thread::current().id()]);
    anosys::flush(Some(Duration::from_secs(10)));
    let records: Vec<_> = memory.records.lock().unwrap().drain(..).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].attribute("team"), Some(&json!("search")));
    drop(guard);
}
