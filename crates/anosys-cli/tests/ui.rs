//! `anosys ui`: the viewer's API and its safety checks, against real
//! stores (the demo's, and generated ones) over real HTTP on 127.0.0.1.

mod command;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anosys::{Record, RecordKind, SpanKind, Status};
use anosys_cli::ui::{self, Access, Viewer};
use command::anosys;
use serde_json::{json, Value};

/// A viewer on a free loopback port, served by its own runtime thread.
struct Server {
    base: String,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(db: &Path, token: Option<&str>) -> Server {
        Server::serve(Viewer::new(db.to_owned(), Access { token: token.map(str::to_owned) }))
    }

    fn serve(viewer: Viewer) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(ui::serve(listener, viewer, std::future::pending()));
        Server { base, _runtime: runtime }
    }

    fn get(&self, path: &str) -> reqwest::blocking::Response {
        client().get(format!("{}{path}", self.base)).send().unwrap()
    }

    fn json(&self, path: &str) -> Value {
        let response = self.get(path);
        let status = response.status();
        let body: Value = response.json().unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

fn temp_store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    (dir, db)
}

const MODELS: [&str; 3] = ["gpt-4o-mini", "gpt-4o", "o3-mini"];

/// `n` records a second apart: LLM calls over three models, every fifth
/// failing, every seventh a logged function of source `billing`.
fn generated(n: usize, start: SystemTime) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let at = start + Duration::from_secs(i as u64);
            let mut r = if i % 7 == 0 {
                let mut r = Record::new(RecordKind::FunctionCall, format!("billing.charge_{i}"));
                r.source = Some("billing".into());
                r.input = Some(json!({"i": i}));
                r
            } else {
                let model = MODELS[i % 3];
                let mut r = Record::new(RecordKind::LlmCall, format!("chat {model}"));
                r.span_kind = SpanKind::Client;
                r.source = Some("openai".into());
                r.set_attribute("gen_ai.request.model", model);
                r.set_attribute("gen_ai.usage.input_tokens", 10 + i as i64);
                r.set_attribute("gen_ai.usage.output_tokens", 5);
                r.set_attribute(
                    "gen_ai.input.messages",
                    json!([{"role": "user", "parts": [{"type": "text", "content": format!("question number {i}")}]}]),
                );
                r
            };
            r.start_time = at;
            r.end_time = at + Duration::from_millis(100 + i as u64);
            r.status = if i % 5 == 0 { Status::error("it failed") } else { Status::ok() };
            r
        })
        .collect()
}

fn write(db: &Path, records: &[Record]) {
    let mut conn = anosys::sinks::sqlite::open(db).unwrap();
    anosys::sinks::sqlite::insert(&mut conn, records).unwrap();
}

fn ids(page: &Value) -> Vec<i64> {
    page["records"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[test]
fn pages_cover_every_record_once_newest_first() {
    let (_dir, db) = temp_store();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    write(&db, &generated(250, start));
    let server = Server::start(&db, None);
    let info = server.json("/api/info");
    assert_eq!((info["records"].as_u64(), info["last_id"].as_i64()), (Some(250), Some(250)));

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = server.json(&format!("/api/records?limit=100&cursor={cursor}"));
        seen.extend(ids(&page));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    // Newest first: the generated records start one second apart, in id order.
    assert_eq!(seen, (1..=250).rev().collect::<Vec<i64>>());

    let first = &server.json("/api/records?limit=1")["records"][0];
    assert_eq!(first["name"], "chat gpt-4o-mini");
    assert_eq!(first["input_tokens"], 259);
    assert_eq!(first["start_ms"], 1_800_000_249_000i64);
}

#[test]
fn filters_narrow_the_list() {
    let (_dir, db) = temp_store();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let records = generated(210, start);
    write(&db, &records);
    let server = Server::start(&db, None);
    let count =
        |query: &str| server.json(&format!("/api/records?limit=1000&{query}"))["records"].as_array().unwrap().len();
    let expect =
        |keep: &dyn Fn(usize, &Record) -> bool| records.iter().enumerate().filter(|(i, r)| keep(*i, r)).count();

    assert_eq!(count("model=gpt-4o"), expect(&|_, r| r.attribute("gen_ai.request.model") == Some(&json!("gpt-4o"))));
    assert_eq!(count("model=gpt-4o*"), expect(&|_, r| r.kind == RecordKind::LlmCall && !r.name.contains("o3")));
    assert_eq!(count("status=error"), expect(&|i, _| i % 5 == 0));
    assert_eq!(count("kind=function_call&source=billing"), 30);
    assert_eq!(count("kind=llm_call&status=ok"), expect(&|i, _| i % 7 != 0 && i % 5 != 0));
    // Times: ms since the epoch, half-open [since, until).
    assert_eq!(count("since=1800000100000&until=1800000110000"), 10);
    assert_eq!(count("q=question%20number%2043"), 1);
    assert_eq!(count("q=question%20number%2042"), 0); // a logged function, not a chat

    // Faceted values, in alphabetical order.
    let facets = server.json("/api/facets");
    let models: BTreeSet<&str> = MODELS.into_iter().collect();
    assert_eq!(facets["models"], json!(models.into_iter().collect::<Vec<_>>()));
    assert_eq!(facets["sources"], json!(["billing", "openai"]));

    // Bad filters are a 400 with a reason, never a server error.
    for bad in ["kind=everything", "status=fine", "trace=xyz!", "cursor=nonsense", "since=yesterday"] {
        let response = server.get(&format!("/api/records?{bad}"));
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().unwrap();
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{bad}: {body}");
    }
}

#[test]
fn search_finds_text_in_any_script() {
    let (_dir, db) = temp_store();
    let start = SystemTime::now() - Duration::from_secs(60);
    let mut records = generated(20, start);
    let phrases = ["東京の天気を教えて", "ما هو الطقس اليوم", "ship it 🚀🔥 today", "100% _literal_ match\\"];
    for (r, phrase) in records.iter_mut().zip(phrases) {
        r.output = Some(json!([{"role": "assistant", "parts": [{"type": "text", "content": phrase}]}]));
    }
    write(&db, &records);
    let server = Server::start(&db, None);
    for (i, phrase) in phrases.iter().enumerate() {
        // A part of each phrase.
        let part: String = phrase.chars().skip(1).take(5).collect();
        let url = format!("/api/records?q={}", urlencode(&part));
        let found = server.json(&url);
        assert_eq!(ids(&found), vec![i as i64 + 1], "{part}");
    }
    // LIKE wildcards in the query are literal.
    assert_eq!(ids(&server.json(&format!("/api/records?q={}", urlencode("0% _l")))), vec![4]);
    assert!(ids(&server.json(&format!("/api/records?q={}", urlencode("%")))).len() == 1);
}

/// Every page of a search, as (id, start) pairs.
fn all_pages(server: &Server, query: &str) -> Vec<i64> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = server.json(&format!("/api/records?limit=40&{query}&cursor={cursor}"));
        out.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return out,
        }
    }
}

/// Viewers of one store starting together (threads here; processes take
/// the same lock) each find the index made once: none fails making it
/// again, and together they index every row.
#[test]
fn viewers_starting_together_make_the_search_index_once() {
    let (_dir, db) = temp_store();
    write(&db, &generated(200, SystemTime::now() - Duration::from_secs(3600)));
    for round in 0..5 {
        let _ = std::fs::remove_file(db.with_extension("db.search"));
        let start = std::sync::Barrier::new(6);
        let results: Vec<_> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        let index = ui::search::SearchIndex::for_store(&db);
                        start.wait();
                        index.catch_up(50)
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for result in &results {
            assert!(matches!(result, Ok(Some(_))), "round {round}: {result:?}");
        }
        let furthest = results.iter().filter_map(|r| r.as_ref().ok().copied().flatten()).map(|p| p.indexed_upto).max();
        let last = results[0].as_ref().ok().copied().flatten().map(|p| p.last_id);
        assert_eq!(furthest, last, "round {round}: six catch-ups of 50 rows cover 200");
    }
}

#[test]
fn the_search_index_answers_as_the_scan_does() {
    let (_dir, db) = temp_store();
    let start = SystemTime::now() - Duration::from_secs(3600);
    let texts = [
        "東京の天気を教えて",
        "ما هو الطقس اليوم",
        "ship it 🚀🔥 today",
        "she said \"no\" twice",
        "C:\\temp\\x",
        "MiXeD CaSe WoRdS",
    ];
    let mut records = generated(300, start);
    for (i, r) in records.iter_mut().enumerate() {
        r.output = Some(json!([{"role": "assistant", "parts": [{"type": "text", "content": texts[i % texts.len()]}]}]));
    }
    write(&db, &records);
    let scanning = Server::serve(Viewer::new(db.clone(), Access::default()));
    let indexed = Server::serve(Viewer::new(db.clone(), Access::default()).with_scan_budget(Duration::ZERO));
    let caught_up = |server: &Server| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let info = server.json("/api/info");
            if info["search_indexed_upto"] == info["last_id"] {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the index never caught up: {info}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    caught_up(&indexed);
    assert!(db.with_extension("db.search").exists());
    // Rows written after the index was built are found too (by the scan of
    // what the index does not cover yet, or by the index once it has them).
    let mut later = generated(30, SystemTime::now());
    for r in &mut later {
        r.output = Some(json!("東京の天気を教えて, later"));
    }
    write(&db, &later);
    let queries = [
        "東京の天気",
        "الطقس",
        "🚀🔥",
        "said \"no\"",
        "C:\\temp",
        "mixed case",
        "question number 1",
        "later",
        "nowhere at all",
        "天気を教",
        "question",
        "it failed",
    ];
    for q in queries {
        for filter in ["", "&status=error", "&model=gpt-4o", "&kind=llm_call&since=2h"] {
            let query = format!("q={}{filter}", urlencode(q));
            let expected = all_pages(&scanning, &query);
            assert_eq!(all_pages(&indexed, &query), expected, "{query}");
        }
    }
    // What each finds is what it should.
    assert_eq!(all_pages(&indexed, &format!("q={}", urlencode("東京の天気"))).len(), 50 + 30);
    assert_eq!(all_pages(&indexed, &format!("q={}", urlencode("mixed case"))).len(), 50);
    assert_eq!(all_pages(&indexed, &format!("q={}", urlencode("said \"no\""))).len(), 50);
    caught_up(&indexed);
    assert_eq!(all_pages(&indexed, &format!("q={}", urlencode("later"))).len(), 30);
}

/// Gives record `i` a user and session four ways: in the user context
/// (`user_id`, or a numeric `userId`), as attributes, or none.
fn with_people(records: &mut [Record], from: usize) {
    for (i, r) in records.iter_mut().enumerate() {
        match (from + i) % 4 {
            0 => r.user_context = Some(json!({"user_id": "u-1", "session_id": "s-A", "plan": "pro"})),
            1 => r.user_context = Some(json!({"userId": 42, "sessionId": "s-B"})),
            2 => {
                r.set_attribute("user.id", "u-1");
                r.set_attribute("session.id", "s-A");
            }
            _ => {}
        }
    }
}

#[test]
fn users_and_sessions_filter_the_list_from_the_index_and_from_the_records() {
    let (_dir, db) = temp_store();
    let mut records = generated(200, SystemTime::now() - Duration::from_secs(3600));
    with_people(&mut records, 0);
    write(&db, &records);
    // Row ids follow the records' order, newest last.
    let expected = |n: usize, wanted: &[usize]| -> Vec<i64> {
        (0..n).rev().filter(|i| wanted.contains(&(i % 4))).map(|i| i as i64 + 1).collect()
    };
    let server = Server::serve(Viewer::new(db.clone(), Access::default()).with_scan_budget(Duration::ZERO));
    let check = |n: usize| {
        assert_eq!(all_pages(&server, "user=u-1"), expected(n, &[0, 2]));
        assert_eq!(all_pages(&server, "user=42"), expected(n, &[1]));
        assert_eq!(all_pages(&server, "session=s-A"), expected(n, &[0, 2]));
        assert_eq!(all_pages(&server, "session=s-B&user=42"), expected(n, &[1]));
        assert_eq!(all_pages(&server, "session=s-B&user=u-1"), Vec::<i64>::new());
        assert_eq!(all_pages(&server, "user=nobody"), Vec::<i64>::new());
        // With other filters and search, and in the stats.
        let errors: Vec<i64> = expected(n, &[0, 2]).into_iter().filter(|id| (id - 1) % 5 == 0).collect();
        assert_eq!(all_pages(&server, "user=u-1&status=error"), errors);
        let stats = server.json("/api/stats?user=42");
        assert_eq!(stats["totals"]["records"], json!(expected(n, &[1]).len()));
    };
    // Whatever the index covers by now (the rest is read from the records).
    check(200);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.json("/api/info")["search_indexed_upto"] != json!(200) {
        assert!(std::time::Instant::now() < deadline, "the index never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
    check(200);
    let facets = server.json("/api/facets");
    assert_eq!(facets["users"], json!(["u-1", "42"]));
    assert_eq!(facets["sessions"].as_array().unwrap().len(), 2);
    // Rows newer than the index: read from the records until it has them.
    let mut later = generated(40, SystemTime::now() - Duration::from_secs(60));
    with_people(&mut later, 200);
    write(&db, &later);
    check(240);
    // The command line filters the same way, with no index.
    let logs = command::stdout(anosys(&db).args(["logs", "--json", "--limit", "1000", "--user", "42", "--session", "s-B"]));
    assert_eq!(logs.lines().count(), expected(240, &[1]).len());
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn the_demo_store_reads_as_the_demo_wrote_it() {
    let (dir, db) = temp_store();
    anosys(&db).arg("demo").current_dir(dir.path()).assert().success();
    let server = Server::start(&db, None);
    let all = all_pages(&server, "");
    assert_eq!(all.len(), 9);
    assert_eq!(server.json("/api/info")["records"], 9);
    // The kinds the demo made, through the kind filter.
    let count = |query: &str| all_pages(&server, query).len();
    assert_eq!((count("kind=llm_call"), count("kind=function_call"), count("kind=raw")), (4, 4, 1));
    // Its streamed chat with two tool calls: in a trace under its logged
    // function, and in full by id.
    let llm = server.json("/api/records?kind=llm_call&limit=10");
    let mut streamed = None;
    for summary in llm["records"].as_array().unwrap() {
        let full = server.json(&format!("/api/records/{}", summary["id"]));
        if full["record"]["attributes"]["anosys.stream.chunks"].is_number() {
            streamed = Some((summary.clone(), full));
        }
    }
    let (summary, full) = streamed.expect("the demo's streamed chat");
    assert!(summary["time_to_first_chunk_ms"].as_f64().unwrap() >= 150.0, "{summary}");
    let trace = server.json(&format!("/api/traces/{}", summary["trace_id"].as_str().unwrap()));
    let spans = trace["records"].as_array().unwrap();
    let parent = spans.iter().find(|s| s["span_id"] == full["record"]["parent_span_id"]).expect("its parent in the trace");
    assert!(parent["name"].as_str().unwrap().ends_with("::weather_report"), "{parent}");
    // The dashboard's figures add up to the list's.
    let stats = server.json("/api/stats");
    assert_eq!(stats["totals"]["records"], 9);
    let calls: u64 = stats["series"].as_array().unwrap().iter().map(|b| b["calls"].as_u64().unwrap()).sum();
    assert_eq!(calls, 9);
    // The facets name the demo's models.
    let facets = server.json("/api/facets");
    assert!(!facets["models"].as_array().unwrap().is_empty(), "{facets}");
}

#[test]
fn a_trace_comes_with_its_tree_and_a_record_in_full() {
    let (_dir, db) = temp_store();
    let mut root = Record::new(RecordKind::FunctionCall, "answer_question");
    root.source = Some("app".into());
    let mut child = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    child.trace_id = root.trace_id;
    child.parent_span_id = Some(root.span_id);
    child.set_attribute("gen_ai.request.model", "gpt-4o");
    child.set_attribute(
        "gen_ai.output.messages",
        json!([{"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "lookup", "arguments": "{\"q\":\"x\"}"}]}]),
    );
    child.finish(Status::ok());
    root.finish(Status::ok());
    let other = Record::new(RecordKind::Raw, "elsewhere");
    write(&db, &[root.clone(), child.clone(), other]);
    let server = Server::start(&db, None);

    let trace = server.json(&format!("/api/traces/{}", root.trace_id));
    let spans = trace["records"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0]["span_id"], root.span_id.to_string());
    assert_eq!(spans[0]["parent_span_id"], Value::Null);
    assert_eq!(spans[1]["parent_span_id"], root.span_id.to_string());
    assert_eq!(spans[1]["model"], "gpt-4o");
    assert_eq!(trace["truncated"], false);

    // By row id and by span id, the record as stored.
    let by_row = server.json("/api/records/2");
    let by_span = server.json(&format!("/api/records/{}", child.span_id));
    assert_eq!(by_row, by_span);
    let tool_call = &by_row["record"]["attributes"]["gen_ai.output.messages"][0]["parts"][0];
    assert_eq!(tool_call["name"], "lookup");

    assert_eq!(server.get("/api/records/999").status(), 404);
    assert_eq!(server.get("/api/traces/0af7651916cd43dd8448eb211c80319c").status(), 404);
    assert_eq!(server.get("/api/traces/not-a-trace").status(), 400);
    assert_eq!(server.get("/api/nothing-here").status(), 404);
}

#[test]
fn stats_add_up_over_time_and_per_model() {
    let (_dir, db) = temp_store();
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let records = generated(120, start);
    write(&db, &records);
    let server = Server::start(&db, None);
    let stats = server.json("/api/stats?since=1800000000000&until=1800000120000&buckets=12");
    assert_eq!(stats["bucket_ms"], 10_000);
    let series = stats["series"].as_array().unwrap();
    assert_eq!(series.len(), 12);
    let calls: u64 = series.iter().map(|b| b["calls"].as_u64().unwrap()).sum();
    let errors: u64 = series.iter().map(|b| b["errors"].as_u64().unwrap()).sum();
    let input: u64 = series.iter().map(|b| b["input_tokens"].as_u64().unwrap()).sum();
    assert_eq!(calls, 120);
    assert_eq!(errors, 24);
    let expected_input: i64 = records.iter().filter_map(|r| r.attribute("gen_ai.usage.input_tokens")?.as_i64()).sum();
    assert_eq!(input as i64, expected_input);
    // The first ten seconds: durations 100..=109 ms.
    assert_eq!(series[0]["latency_ms"]["p50"], 104.0);
    assert_eq!(stats["totals"]["records"], 120);
    let per_model: u64 =
        stats["totals"]["models"].as_array().unwrap().iter().map(|m| m["calls"].as_u64().unwrap()).sum();
    assert_eq!(per_model, records.iter().filter(|r| r.kind == RecordKind::LlmCall).count() as u64);
}

#[test]
fn the_live_stream_sends_records_written_after_it_opened() {
    let (_dir, db) = temp_store();
    write(&db, &generated(3, SystemTime::now()));
    let server = Server::start(&db, None);
    let mut response = client().get(format!("{}/api/stream", server.base)).send().unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    // Written after the stream opened: only these arrive.
    std::thread::sleep(Duration::from_millis(700));
    let mut fresh = Record::new(RecordKind::Raw, "written later");
    fresh.finish(Status::ok());
    write(&db, &[fresh]);
    let mut text = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 4096];
    while !text.contains("written later") && std::time::Instant::now() < deadline {
        use std::io::Read;
        let n = response.read(&mut buf).unwrap();
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(text.contains("event: record"), "{text}");
    assert!(text.contains("written later"), "{text}");
    assert!(!text.contains("chat gpt-4o"), "{text}");
}

#[test]
fn every_answer_carries_the_security_headers_and_only_local_assets() {
    let (_dir, db) = temp_store();
    let server = Server::start(&db, None);
    // No store yet: an empty list, not an error.
    assert_eq!(server.json("/api/records")["records"], json!([]));
    assert_eq!(server.json("/api/info")["exists"], false);
    for path in ui::assets::paths().chain(["/api/info", "/api/records", "/api/nothing"]) {
        let response = server.get(path);
        let csp = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert_eq!(csp, ui::CONTENT_SECURITY_POLICY, "{path}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"), "{csp}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["x-frame-options"], "DENY");
    }
    let page = server.get("/").text().unwrap();
    // Everything the page loads is served by the viewer itself.
    for line in page.lines().filter(|l| l.contains("src=") || l.contains("href=")) {
        assert!(!line.contains("//"), "the page refers elsewhere: {line}");
    }
    let script = server.get("/assets/app.js").text().unwrap();
    let code: String = script.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    for sink in [".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
        assert!(!code.contains(sink), "app.js uses {sink}");
    }
}

#[test]
fn only_loopback_hosts_are_answered_without_a_token() {
    let (_dir, db) = temp_store();
    let server = Server::start(&db, None);
    let with_host =
        |host: &str| client().get(format!("{}/api/info", server.base)).header("host", host).send().unwrap().status();
    assert_eq!(with_host("localhost:4100"), 200);
    assert_eq!(with_host("127.0.0.1"), 200);
    // DNS rebinding: a page of another site, resolved to 127.0.0.1.
    assert_eq!(with_host("attacker.example:4100"), 403);
    assert_eq!(with_host("127.0.0.1.nip.io"), 403);
}

#[test]
fn a_token_is_required_on_every_request_when_set() {
    let (_dir, db) = temp_store();
    let server = Server::start(&db, Some("s3cret-token"));
    let url = |path: &str| format!("{}{path}", server.base);
    assert_eq!(client().get(url("/api/info")).send().unwrap().status(), 401);
    assert_eq!(client().get(url("/")).send().unwrap().status(), 401);
    assert_eq!(client().get(url("/api/info")).bearer_auth("wrong").send().unwrap().status(), 401);
    assert_eq!(client().get(url("/api/info")).bearer_auth("s3cret-token").send().unwrap().status(), 200);
    // Opening the page with ?token= sets a cookie the page's requests carry.
    let opened = client().get(url("/?token=s3cret-token")).send().unwrap();
    assert_eq!(opened.status(), 200);
    let cookie = opened.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(client().get(url("/api/records")).header("cookie", pair).send().unwrap().status(), 200);
    // With a token, any Host is answered (it is what protects the viewer).
    let other =
        client().get(url("/api/info")).header("host", "viewer.lan:4100").bearer_auth("s3cret-token").send().unwrap();
    assert_eq!(other.status(), 200);
}

#[test]
fn the_command_refuses_a_public_address_without_a_token() {
    let (_dir, db) = temp_store();
    let out = anosys(&db).args(["ui", "--listen", "0.0.0.0:0"]).env_remove("ANOSYS_UI_TOKEN").assert().failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("not a loopback address") && stderr.contains("ANOSYS_UI_TOKEN"), "{stderr}");
}

#[test]
fn secrets_never_reach_the_page() {
    // Through the engine, as an application captures: redaction runs before
    // the store, so the viewer has nothing to leak.
    let (_dir, db) = temp_store();
    let config = anosys::Config::builder().db_path(&db).log_level(anosys::LogLevel::Off).build().unwrap();
    let pipeline = anosys::Pipeline::new(config).unwrap();
    let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    r.set_attribute("gen_ai.request.model", "gpt-4o");
    r.set_attribute(
        "gen_ai.input.messages",
        json!([{"role": "user", "parts": [{"type": "text", "content": "my key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zQ7rS9tU1vW3x"}]}]),
    );
    r.raw = Some(json!({"request": {"headers": {"authorization": "Bearer sk-live-abcdefghijklmnopqrstuvwx"}}}));
    r.finish(Status::ok());
    assert!(pipeline.submit(r));
    assert!(pipeline.shutdown(Some(Duration::from_secs(10))).completed);
    let server = Server::start(&db, None);
    let body = server.get("/api/records/1").text().unwrap();
    assert!(body.contains("[REDACTED:"), "{body}");
    assert!(!body.contains("sk-proj-Ab3d") && !body.contains("sk-live-abc"), "{body}");
}

#[test]
fn the_proxy_serves_the_viewer_of_its_store_with_ui() {
    use std::io::{BufRead, BufReader};
    let (dir, db) = temp_store();
    write(&db, &generated(5, SystemTime::now()));
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (proxy_port, ui_port) = (free(), free());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_anosys"))
        .arg("--db")
        .arg(&db)
        .args(["proxy", "--quiet", "--listen", &format!("127.0.0.1:{proxy_port}"), "--upstream", "http://127.0.0.1:9"])
        .args(["--ui", "--ui-listen", &format!("127.0.0.1:{ui_port}")])
        .current_dir(dir.path())
        .env_remove("ANOSYS_API_KEY")
        .env_remove("ANOSYS_API_URL")
        .env_remove("ANOSYS_UI_TOKEN")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("anosys ui") {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        said.push_str(&line);
    }
    assert!(said.contains(&format!("http://127.0.0.1:{ui_port}/")), "{said}");
    let info: Value = client().get(format!("http://127.0.0.1:{ui_port}/api/info")).send().unwrap().json().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(info["records"], 5, "{info}");
    assert_eq!(info["db"], db.display().to_string());
}
