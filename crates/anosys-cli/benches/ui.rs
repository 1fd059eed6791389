//! `anosys ui` on a large store (one million records by default, plus one
//! trace of 5,000): each API query 50 times (p50 and p95 of the answer's
//! time, measured by the client over loopback, so a little above the
//! server's own), next to the same query run directly with SQLite (the
//! baseline, same run); a 5,000-record trace opened and painted in
//! headless Chromium; and the viewer's memory.
//!
//! `cargo bench -p anosys-cli --bench ui` (needs Debian's chromium and
//! chromium-driver for the paint figure); `ANOSYS_BENCH_RECORDS=200000`
//! for a smaller store. The store is built once in the temp folder.

#[path = "../tests/webdriver/mod.rs"]
mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anosys::{ErrorInfo, Record, RecordKind, Status};
use anosys_cli::store::{Filter, Store};
use serde_json::json;

include!("common/big_store.rs");

const TRACE: usize = 5_000;
const RUNS: usize = 50;

/// The big store, and a 5,000-record trace added to it once; the trace id.
fn store() -> (PathBuf, String) {
    let n: usize = std::env::var("ANOSYS_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let path = store_with(n);
    // A copy of the big store with the trace added (the stats benchmark
    // keeps its own).
    let copy = std::env::temp_dir().join(format!("anosys-bench-ui-v2-{n}.db"));
    let marker = copy.with_extension("trace");
    if let (Ok(id), Ok(store)) = (std::fs::read_to_string(&marker), Store::open(&copy))
        && store.count(&Filter { trace: Some(id.clone()), ..Filter::default() }).ok() == Some(TRACE as u64)
    {
        return (copy, id);
    }
    let _ = std::fs::remove_file(&copy);
    std::fs::copy(&path, &copy).expect("copy the store");
    let mut root = Record::new(RecordKind::FunctionCall, "agent.run");
    root.source = Some("agent".into());
    let t0 = SystemTime::now() - Duration::from_secs(3600);
    root.start_time = t0;
    root.end_time = t0 + Duration::from_secs(600);
    root.status = Status::ok();
    let mut records = vec![root.clone()];
    let mut step = root.clone();
    for i in 1..TRACE {
        // Steps of ten: a function, then nine LLM calls inside it.
        let mut r = if i % 10 == 1 {
            Record::new(RecordKind::FunctionCall, format!("agent.step_{}", i / 10))
        } else {
            let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o-mini");
            r.set_attribute("gen_ai.request.model", "gpt-4o-mini");
            r
        };
        r.trace_id = root.trace_id;
        r.parent_span_id = Some(if i % 10 == 1 { root.span_id } else { step.span_id });
        r.start_time = t0 + Duration::from_millis(i as u64 * 100);
        r.end_time = r.start_time + Duration::from_millis(if i % 10 == 1 { 1000 } else { 90 });
        r.status = Status::ok();
        if i % 10 == 1 {
            step = r.clone();
        }
        records.push(r);
    }
    let mut conn = anosys::sinks::sqlite::open(&copy).expect("open");
    anosys::sinks::sqlite::insert(&mut conn, &records).expect("insert");
    drop(conn);
    std::fs::write(&marker, root.trace_id.to_string()).expect("marker");
    (copy, root.trace_id.to_string())
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    (at(0.5), at(0.95))
}

fn time(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm
    percentiles(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    )
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // cargo test --benches, cargo bench --no-run
    }
    let (db, trace_id) = store();
    let n = Store::open(&db).expect("open").count(&Filter::default()).expect("count");
    println!("store: {} ({n} records)", db.display());

    // The viewer, as users run it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_anosys"))
        .arg("--db")
        .arg(&db)
        .args(["ui", "--listen", &format!("127.0.0.1:{port}")])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("anosys ui");
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started_kib = rss_kib(child.id(), "VmRSS:");

    let http = reqwest::blocking::Client::new();
    // The search index: built by the viewer in the background on first use
    // of a store (kept beside it for later runs).
    let indexing = Instant::now();
    loop {
        let info: serde_json::Value = http.get(format!("{base}/api/info")).send().unwrap().json().unwrap();
        if info["search_indexed_upto"] == info["last_id"] {
            println!(
                "search index: caught up with {} rows in {:.1} s ({} MiB on disk)",
                info["last_id"],
                indexing.elapsed().as_secs_f64(),
                std::fs::metadata(format!("{}.search", db.display())).map(|m| m.len() >> 20).unwrap_or(0)
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.execute("ATTACH DATABASE ?1 AS search", [format!("{}.search", db.display())]).unwrap();
    let day_ago =
        (SystemTime::now() - Duration::from_secs(86_400)).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis();
    let columns =
        "id, start_ms, kind, name, source, model, status, input_tokens, output_tokens, duration_ms, trace_id, cost_usd";
    let queries: Vec<(&str, String, String)> = vec![
        ("first page", "/api/records?limit=100".into(), format!("SELECT {columns} FROM records ORDER BY start_ms DESC, id DESC LIMIT 101")),
        (
            "model = gpt-4o",
            "/api/records?limit=100&model=gpt-4o".into(),
            format!("SELECT {columns} FROM records WHERE model = 'gpt-4o' ORDER BY start_ms DESC, id DESC LIMIT 101"),
        ),
        (
            "errors",
            "/api/records?limit=100&status=error".into(),
            format!("SELECT {columns} FROM records WHERE status = 'ERROR' ORDER BY start_ms DESC, id DESC LIMIT 101"),
        ),
        (
            "last 24 h, functions of one source",
            format!("/api/records?limit=100&since={day_ago}&kind=function_call&source=billing"),
            format!("SELECT {columns} FROM records WHERE start_ms >= {day_ago} AND kind = 'function_call' AND source = 'billing' ORDER BY start_ms DESC, id DESC LIMIT 101"),
        ),
        (
            "errors of one model",
            "/api/records?limit=100&status=error&model=o4-mini".into(),
            format!("SELECT {columns} FROM records WHERE status = 'ERROR' AND model = 'o4-mini' ORDER BY start_ms DESC, id DESC LIMIT 101"),
        ),
        (
            "search, common text",
            "/api/records?limit=100&q=password%20reset".into(),
            format!("SELECT {columns} FROM records WHERE record LIKE '%password reset%' ORDER BY start_ms DESC, id DESC LIMIT 101"),
        ),
        (
            "search, text in no record",
            "/api/records?limit=100&q=%E6%9D%B1%E4%BA%AC%E3%81%AE".into(),
            format!("SELECT {columns} FROM records WHERE record LIKE '%東京の%' ORDER BY start_ms DESC, id DESC LIMIT 101"),
        ),
        (
            "search, text in one record",
            "/api/records?limit=100&q=agent.step_499".into(),
            format!("SELECT {columns} FROM records WHERE record LIKE '%agent.step\\_499%' ESCAPE '\\' ORDER BY start_ms DESC, id DESC LIMIT 101"),
        ),
        (
            "one user (about 400 records)",
            "/api/records?limit=100&user=user-7".into(),
            format!("SELECT {columns} FROM records WHERE id IN (SELECT id FROM search.who WHERE user = 'user-7') ORDER BY start_ms DESC, id DESC LIMIT 101"),
        ),
        (
            "one session, errors",
            "/api/records?limit=100&session=s-12345&status=error".into(),
            format!("SELECT {columns} FROM records WHERE status = 'ERROR' AND id IN (SELECT id FROM search.who WHERE session = 's-12345') ORDER BY start_ms DESC, id DESC LIMIT 101"),
        ),
        (
            "facets (models, sources, users, sessions)",
            "/api/facets".into(),
            "WITH RECURSIVE seen(value) AS (SELECT (SELECT min(model) FROM records) UNION ALL
             SELECT (SELECT min(model) FROM records WHERE model > value) FROM seen WHERE value IS NOT NULL)
             SELECT value FROM seen WHERE value IS NOT NULL LIMIT 200"
                .into(),
        ),
        ("info (count)", "/api/info".into(), "SELECT count(*) FROM records".into()),
        (
            "dashboard, last 24 h",
            format!("/api/stats?since={day_ago}"),
            format!("SELECT start_ms, status, duration_ms, input_tokens, output_tokens, cost_usd FROM records WHERE start_ms >= {day_ago}"),
        ),
        (
            "trace of 5,000",
            format!("/api/traces/{trace_id}"),
            format!("SELECT {columns}, span_id, json_extract(record, '$.parent_span_id') FROM records WHERE id IN (SELECT id FROM records WHERE trace_id = '{trace_id}') ORDER BY start_ms, id"),
        ),
    ];
    println!("\n| query ({RUNS} runs) | SQLite alone p50 / p95 | viewer API p50 / p95 | ratio (p95) |");
    println!("|---|---|---|---|");
    for (name, url, sql) in &queries {
        let (s50, s95) = time(RUNS, || {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let mut rows = stmt.query([]).unwrap();
            let mut count = 0;
            while rows.next().unwrap().is_some() {
                count += 1;
            }
            std::hint::black_box(count);
        });
        let (a50, a95) = time(RUNS, || {
            let response = http.get(format!("{base}{url}")).send().unwrap();
            assert!(response.status().is_success(), "{url}: {}", response.status());
            std::hint::black_box(response.bytes().unwrap());
        });
        println!("| {name} | {s50:.1} / {s95:.1} ms | {a50:.1} / {a95:.1} ms | {:.2} |", a95 / s95.max(0.001));
    }

    // The trace, opened and painted in headless Chromium.
    let browser = webdriver::Browser::start();
    browser.go(&format!("{base}/"));
    browser.wait_for("the page", "return document.querySelector('table.records tbody tr')");
    let mut paints = Vec::new();
    for _ in 0..5 {
        browser.go(&format!("{base}/#/"));
        browser.wait_for("the list", "return document.querySelector('table.records tbody tr')");
        let ms = browser.run_async(
            &format!(
                "const done = arguments[arguments.length - 1]; const t0 = performance.now();
                 location.hash = '#/trace/{trace_id}';
                 (function check() {{
                   if (document.querySelectorAll('.span-row').length === {TRACE}) {{
                     requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0));
                   }} else {{ setTimeout(check, 5); }}
                 }})();"
            ),
            vec![],
        );
        paints.push(ms.as_f64().unwrap());
    }
    let (p50, worst) = (percentiles(paints.clone()).0, paints.iter().cloned().fold(0.0, f64::max));
    println!(
        "\ntrace of {TRACE} records opened and painted in Chromium: median {p50:.0} ms, slowest of 5 {worst:.0} ms"
    );
    drop(browser);

    let peak_kib = rss_kib(child.id(), "VmHWM:");
    println!(
        "viewer memory: {:.1} MiB at start, {:.1} MiB peak after every query above ({:.1} MiB added)",
        started_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        (peak_kib.saturating_sub(started_kib)) as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
