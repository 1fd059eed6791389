//! `anosys ui` in a real browser: Debian's headless Chromium, driven through
//! chromedriver (WebDriver), against the `anosys ui` binary serving a real
//! store. Screenshots of each view land in `target/ui-screenshots/`.

mod command;
mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime};

use anosys::{Record, RecordKind, SpanKind, Status};
use serde_json::{json, Value};
use webdriver::Browser;

/// `anosys ui` on a free port, as a user runs it.
struct Viewer {
    child: Child,
    url: String,
}

impl Viewer {
    fn start(db: &Path) -> Viewer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_anosys"));
        cmd.arg("--db").arg(db).args(["ui", "--listen", &format!("127.0.0.1:{port}")]);
        cmd.env_remove("ANOSYS_UI_TOKEN").stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // It prints its URL once it listens.
        let stderr = child.stderr.take().unwrap();
        let mut line = String::new();
        BufReader::new(stderr).read_line(&mut line).unwrap();
        assert!(line.contains(&format!("http://127.0.0.1:{port}/")), "{line}");
        Viewer { child, url: format!("http://127.0.0.1:{port}/") }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(db: &Path, records: &[Record]) {
    let mut conn = anosys::sinks::sqlite::open(db).unwrap();
    anosys::sinks::sqlite::insert(&mut conn, records).unwrap();
}

fn text_part(text: &str) -> Value {
    json!({"type": "text", "content": text})
}

/// An agent run: a logged function, two LLM calls inside it (the first
/// calls a tool), and a nested function between them.
fn agent_trace(start: SystemTime) -> Vec<Record> {
    let at = |ms: u64| start + Duration::from_millis(ms);
    let mut root = Record::new(RecordKind::FunctionCall, "agent.answer");
    root.source = Some("agent".into());
    root.start_time = at(0);
    root.end_time = at(900);
    root.status = Status::ok();
    let child = |kind: RecordKind, name: &str, parent: &Record, from: u64, to: u64| {
        let mut r = Record::new(kind, name);
        r.trace_id = parent.trace_id;
        r.parent_span_id = Some(parent.span_id);
        r.start_time = at(from);
        r.end_time = at(to);
        r.status = Status::ok();
        r
    };
    let mut first = child(RecordKind::LlmCall, "chat gpt-4o", &root, 10, 300);
    first.span_kind = SpanKind::Client;
    first.source = Some("openai".into());
    first.set_attribute("gen_ai.request.model", "gpt-4o");
    first.set_attribute("gen_ai.usage.input_tokens", 120);
    first.set_attribute("gen_ai.usage.output_tokens", 30);
    first.set_attribute("gen_ai.system_instructions", json!([text_part("You are a weather assistant.")]));
    first.set_attribute("gen_ai.input.messages", json!([{"role": "user", "parts": [text_part("東京の天気を教えて")]}]));
    first.set_attribute(
        "gen_ai.output.messages",
        json!([{"role": "assistant", "finish_reason": "tool_calls", "parts": [
            {"type": "tool_call", "id": "call_weather_1", "name": "get_weather", "arguments": "{\"city\":\"Tokyo\",\"unit\":\"celsius\"}"}
        ]}]),
    );
    let mut tool = child(RecordKind::FunctionCall, "tools.get_weather", &root, 310, 420);
    tool.source = Some("tools".into());
    tool.input = Some(json!({"city": "Tokyo"}));
    tool.output = Some(json!({"temperature": 18}));
    let mut second = child(RecordKind::LlmCall, "chat gpt-4o", &root, 430, 880);
    second.span_kind = SpanKind::Client;
    second.source = Some("openai".into());
    second.set_attribute("gen_ai.request.model", "gpt-4o");
    second.set_attribute("gen_ai.usage.input_tokens", 160);
    second.set_attribute("gen_ai.usage.output_tokens", 20);
    second.set_attribute(
        "gen_ai.input.messages",
        json!([
            {"role": "user", "parts": [text_part("東京の天気を教えて")]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_weather_1", "response": "{\"temperature\":18}"}]}
        ]),
    );
    second.set_attribute(
        "gen_ai.output.messages",
        json!([{"role": "assistant", "finish_reason": "stop", "parts": [text_part("It is **18 °C** in Tokyo 🚀 today.")]}]),
    );
    vec![root, first, tool, second]
}

fn store_with_agent_trace() -> (tempfile::TempDir, PathBuf, Vec<Record>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ui.db");
    // Older background records first, then the agent run (newest).
    let start = SystemTime::now() - Duration::from_secs(600);
    let mut background = Vec::new();
    for i in 0..40u64 {
        let mut r = Record::new(RecordKind::LlmCall, format!("chat gpt-4o-mini #{i}"));
        r.source = Some("openai".into());
        r.set_attribute("gen_ai.request.model", "gpt-4o-mini");
        r.set_attribute("gen_ai.usage.input_tokens", 10 + i as i64);
        r.set_attribute("gen_ai.usage.output_tokens", 4);
        r.set_attribute("gen_ai.usage.cost", 0.0001 * i as f64);
        r.start_time = start + Duration::from_secs(i * 5);
        r.end_time = r.start_time + Duration::from_millis(200 + i * 7);
        r.status = if i % 9 == 0 { Status::error("rate limited") } else { Status::ok() };
        background.push(r);
    }
    write(&db, &background);
    let trace = agent_trace(SystemTime::now() - Duration::from_secs(30));
    write(&db, &trace);
    (dir, db, trace)
}

fn rows(browser: &Browser) -> Vec<String> {
    let v = browser.run(
        "return Array.from(document.querySelectorAll('table.records tbody tr td.name')).map(td => td.textContent)",
        vec![],
    );
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap_or("").to_owned()).collect()
}

#[test]
fn views_keys_and_live_tail_work_in_chromium() {
    let (_dir, db, trace) = store_with_agent_trace();
    let viewer = Viewer::start(&db);
    let browser = Browser::start();
    browser.go(&viewer.url);

    // The list: newest first.
    browser.wait_for("the list", "return document.querySelectorAll('table.records tbody tr').length === 44");
    assert_eq!(rows(&browser)[..4], ["chat gpt-4o", "tools.get_weather", "chat gpt-4o", "agent.answer"]);
    browser.save_screenshot("records");

    // Filters: errors only (every ninth background call).
    browser.run(
        "const s = document.querySelector('select[data-filter=status]'); s.value = 'error'; s.dispatchEvent(new Event('change'));",
        vec![],
    );
    browser.wait_for("errors only", "return document.querySelectorAll('table.records tbody tr').length === 5");
    assert!(rows(&browser).iter().all(|n| n.starts_with("chat gpt-4o-mini")), "{:?}", rows(&browser));
    browser.run(
        "const s = document.querySelector('select[data-filter=status]'); s.value = ''; s.dispatchEvent(new Event('change'));",
        vec![],
    );
    browser.wait_for("all again", "return document.querySelectorAll('table.records tbody tr').length === 44");

    // Keyboard: j j moves the selection, Enter opens, Esc comes back, / searches.
    browser.run("document.activeElement && document.activeElement.blur()", vec![]);
    browser.keys("jj");
    let selected = browser.run("return document.querySelector('tr.selected td.name').textContent", vec![]);
    let third = rows(&browser)[2].clone();
    assert_eq!(selected, third);
    browser.keys("\u{E007}"); // Enter
    browser
        .wait_for("the record", "return location.hash.startsWith('#/record/') && document.querySelector('.detail h2')");
    let title = browser.run("return document.querySelector('.detail h2').textContent", vec![]);
    assert_eq!(title, third);
    browser.keys("\u{E00C}"); // Escape
    browser.wait_for("the list again", "return document.querySelectorAll('table.records tbody tr').length === 44");
    browser.keys("/");
    assert_eq!(browser.run("return document.activeElement.id", vec![]), "search");

    // Search: a CJK phrase, then an emoji (set by script: chromedriver types
    // only the Basic Multilingual Plane).
    browser.type_into("#search", "東京の天気\u{E007}");
    browser.wait_for("the CJK hits", "return document.querySelectorAll('table.records tbody tr').length === 2");
    assert!(rows(&browser).iter().all(|n| n == "chat gpt-4o"), "{:?}", rows(&browser));
    browser.run(
        "const s = document.getElementById('search'); s.value = '🚀'; s.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));",
        vec![],
    );
    browser.wait_for("the emoji hit", "return document.querySelectorAll('table.records tbody tr').length === 1");
    browser.save_screenshot("search");

    // The chat view: the tool call with its arguments as formatted JSON.
    let first_call = &trace[1];
    browser.go(&format!("{}#/record/{}", viewer.url, first_call.span_id));
    browser.wait_for("the chat", "return document.querySelector('.chat .tool-call')");
    let call = browser.run("return document.querySelector('.chat .tool-call').textContent", vec![]);
    let call = call.as_str().unwrap();
    assert!(call.contains("get_weather") && call.contains("call_weather_1"), "{call}");
    assert!(call.contains("\"city\": \"Tokyo\""), "formatted JSON: {call}");
    let roles =
        browser.run("return Array.from(document.querySelectorAll('.chat .msg .role')).map(r => r.textContent)", vec![]);
    assert_eq!(roles, json!(["system", "user", "assistant · tool_calls"]));
    browser.save_screenshot("record");
    // The reply's markdown: bold as an element, the rest as text.
    browser.go(&format!("{}#/record/{}", viewer.url, trace[3].span_id));
    browser.wait_for("the reply", "return document.querySelector('.chat .md strong')");
    assert_eq!(browser.run("return document.querySelector('.chat .md strong').textContent", vec![]), "18 °C");
    assert_eq!(browser.run("return document.querySelectorAll('.chat .tool-result').length", vec![]), 1);

    // The trace: the tree (root, three children) and the waterfall.
    browser.go(&format!("{}#/trace/{}", viewer.url, trace[0].trace_id));
    browser.wait_for("the trace", "return document.querySelectorAll('.span-row').length === 4");
    let tree = browser.run(
        "return Array.from(document.querySelectorAll('.span-row .label')).map(l => [l.querySelector('a').textContent, parseInt(l.style.paddingLeft)])",
        vec![],
    );
    assert_eq!(tree, json!([["agent.answer", 0], ["chat gpt-4o", 16], ["tools.get_weather", 16], ["chat gpt-4o", 16]]));
    let bars = browser.run(
        "return Array.from(document.querySelectorAll('.bar')).map(b => [b.getBoundingClientRect().left, b.getBoundingClientRect().width])",
        vec![],
    );
    let bars: Vec<(f64, f64)> =
        bars.as_array().unwrap().iter().map(|b| (b[0].as_f64().unwrap(), b[1].as_f64().unwrap())).collect();
    // The root spans the whole lane; children start later, in order.
    assert!(bars[0].1 > bars[1].1 && bars[1].0 < bars[2].0 && bars[2].0 < bars[3].0, "{bars:?}");
    browser.save_screenshot("trace");

    // The dashboard: five charts drawn by uPlot, and the tables.
    browser.go(&format!("{}#/dashboard", viewer.url));
    browser.wait_for("the charts", "return document.querySelectorAll('.chart canvas').length === 5");
    let models = browser.run("return document.querySelector('.dashboard table.records tbody').textContent", vec![]);
    assert!(models.as_str().unwrap().contains("gpt-4o-mini"), "{models}");
    browser.save_screenshot("dashboard");

    // Live tail: a record written after the page opened shows up.
    browser.go(&viewer.url);
    browser.wait_for("the list", "return document.querySelectorAll('table.records tbody tr').length === 44");
    browser.click("#live");
    std::thread::sleep(Duration::from_millis(800));
    let mut fresh = Record::new(RecordKind::Raw, "written after the page opened");
    fresh.finish(Status::ok());
    write(&db, &[fresh]);
    browser.wait_for(
        "the live record",
        "return Array.from(document.querySelectorAll('table.records td.name')).some(td => td.textContent === 'written after the page opened')",
    );
    assert_eq!(rows(&browser)[0], "written after the page opened");
}

/// Payloads that bump `window.__xss` if they ever run.
const PAYLOADS: &[&str] = &[
    "<script>window.__xss=(window.__xss||0)+1</script>",
    "<img src=x onerror=\"window.__xss=(window.__xss||0)+1\">",
    "<svg onload=\"window.__xss=(window.__xss||0)+1\"><circle r=5></circle></svg>",
    "<svg><script>window.__xss=(window.__xss||0)+1</script></svg>",
    "\"><iframe src=\"javascript:parent.__xss=(parent.__xss||0)+1\"></iframe>",
    "<a href=\"javascript:window.__xss=(window.__xss||0)+1\">click</a>",
    "[click me](javascript:window.__xss=(window.__xss||0)+1)",
    "<details open ontoggle=\"window.__xss=(window.__xss||0)+1\">",
    "<body onload=\"window.__xss=(window.__xss||0)+1\">",
    "<math><mtext><table><mglyph><style><img src=x onerror=\"window.__xss=(window.__xss||0)+1\">",
    "javascript:window.__xss=(window.__xss||0)+1",
    "<input autofocus onfocus=\"window.__xss=(window.__xss||0)+1\">",
];

#[test]
fn script_payloads_in_captured_content_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("xss.db");
    let mut records = Vec::new();
    let mut root = Record::new(RecordKind::FunctionCall, PAYLOADS[1]);
    root.source = Some(PAYLOADS[2].into());
    root.input = Some(json!({"q": PAYLOADS[0]}));
    root.output = Some(json!(PAYLOADS[3]));
    root.error = Some(anosys::ErrorInfo::new(PAYLOADS[8], PAYLOADS[9]));
    root.status = Status::error(PAYLOADS[4]);
    records.push(root.clone());
    for (i, payload) in PAYLOADS.iter().enumerate() {
        let mut r = Record::new(RecordKind::LlmCall, format!("chat {payload}"));
        r.trace_id = root.trace_id;
        r.parent_span_id = Some(root.span_id);
        r.source = Some(payload.to_string());
        r.set_attribute("gen_ai.request.model", *payload);
        r.set_attribute(format!("app.{i}"), *payload);
        r.set_attribute("gen_ai.input.messages", json!([{"role": payload, "parts": [text_part(payload)]}]));
        r.set_attribute(
            "gen_ai.output.messages",
            json!([{"role": "assistant", "finish_reason": payload, "parts": [
                text_part(&format!("# {payload}\n\n- {payload}\n\n```\n{payload}\n```\n**{payload}** [x]({payload})")),
                {"type": "tool_call", "id": payload, "name": payload, "arguments": json!({"html": payload}).to_string()},
                {"type": payload, "content": payload}
            ]}]),
        );
        r.user_context = Some(json!({"user_id": payload}));
        r.raw = Some(json!({"response": payload}));
        r.finish(Status::ok());
        records.push(r);
    }
    write(&db, &records);
    let viewer = Viewer::start(&db);
    let browser = Browser::start();
    browser.go(&viewer.url);
    browser.wait_for(
        "the list",
        &format!("return document.querySelectorAll('table.records tbody tr').length === {}", records.len()),
    );
    // Counts what would show that something tried to run: payload hits, and
    // anything the Content-Security-Policy had to block.
    browser.run(
        "window.__csp = 0; document.addEventListener('securitypolicyviolation', () => { window.__csp += 1; });",
        vec![],
    );
    let injected = "return document.querySelectorAll('img[src=x], iframe, svg, details, math, input[autofocus], main script').length";
    let mut visits = vec![format!("#/trace/{}", root.trace_id), "#/dashboard".to_owned(), "#/".to_owned()];
    visits.extend(records.iter().map(|r| format!("#/record/{}", r.span_id)));
    for hash in &visits {
        browser.run(&format!("location.hash = {}", json!(hash)), vec![]);
        browser.wait_for(hash, "return document.querySelector('main').textContent.length > 0 && !document.querySelector('main').textContent.startsWith('Loading')");
        // Raw JSON shown too, where there is a record.
        browser.run("const b = Array.from(document.querySelectorAll('button')).find(b => b.textContent === 'Raw JSON'); if (b) b.click();", vec![]);
        assert_eq!(browser.run(injected, vec![]), 0, "an element from a payload on {hash}");
        let links = browser.run(
            "return Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href')).filter(h => !(h.startsWith('#/') || h.startsWith('http://') || h.startsWith('https://')))",
            vec![],
        );
        assert_eq!(links, json!([]), "a link that is not http(s) or in-page on {hash}");
    }
    // The payloads are on the page, as text.
    browser.run(&format!("location.hash = {}", json!(format!("#/record/{}", records[7].span_id))), vec![]);
    browser.wait_for("the record", "return document.querySelector('.chat')");
    let text = browser.run("return document.querySelector('.chat').textContent", vec![]);
    assert!(text.as_str().unwrap().contains(PAYLOADS[6]), "{text}");
    // Clicking every link inside the conversation runs nothing either.
    browser.run("document.querySelectorAll('.chat a').forEach(a => { a.target = ''; a.click(); });", vec![]);
    std::thread::sleep(Duration::from_millis(500));
    browser.save_screenshot("xss");
    let hits = browser.run("return window.__xss || 0", vec![]);
    let blocked = browser.run("return window.__csp", vec![]);
    assert_eq!(hits, 0, "payloads executed");
    assert_eq!(blocked, 0, "the page tried something the CSP blocked");
}
