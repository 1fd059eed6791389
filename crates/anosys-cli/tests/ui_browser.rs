//! `anosys ui` in a real browser: Debian's headless Chromium, driven through
//! chromedriver (WebDriver), against the `anosys ui` binary serving a real
//! store. Screenshots of each view land in `target/ui-screenshots/`.

#[path = "../../anosys/tests/support/cassette.rs"]
#[allow(dead_code)]
mod cassette;
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
    let mut run = vec![root, first, tool, second];
    for r in &mut run {
        r.user_context = Some(json!({"user_id": "u-agent", "session_id": "s-1"}));
    }
    run
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
    // A custom time range (from and until, local time), then all time.
    browser.run(
        "const s = document.querySelector('select[data-filter=since]'); s.value = 'custom'; s.dispatchEvent(new Event('change'));
         const from = document.querySelector('input[data-filter=from]'), until = document.querySelector('input[data-filter=until]');
         from.value = '2001-01-01T00:00'; until.value = '2001-01-02T00:00'; until.dispatchEvent(new Event('change'));",
        vec![],
    );
    browser.wait_for("an empty range", "return document.querySelector('p.muted').textContent === 'No records match.'");
    browser.run(
        "const s = document.querySelector('select[data-filter=since]'); s.value = ''; s.dispatchEvent(new Event('change'));",
        vec![],
    );
    browser.wait_for("all again", "return document.querySelectorAll('table.records tbody tr').length === 44");
    // A user filter (Enter applies it): the agent's records have a user.
    browser.type_into("input[data-filter=user]", "u-agent\u{E007}");
    browser.wait_for("the user's records", "return document.querySelectorAll('table.records tbody tr').length === 4");
    browser.run(
        "const u = document.querySelector('input[data-filter=user]'); u.value = ''; u.dispatchEvent(new Event('change'));",
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
        browser.run("return Array.from(document.querySelectorAll('.chat .msg .role .who')).map(r => r.textContent)", vec![]);
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

/// The record the capture makes of a recorded exchange (streams read as
/// they arrived).
fn recorded(name: &str) -> Record {
    use anosys::sources::openai::{CaptureOptions, OpenAiCall};
    let x = cassette::first(name);
    let call = OpenAiCall::start(&x.uri, x.request.clone(), &CaptureOptions::default());
    let mut r = if x.is_sse() {
        let mut stream = call.into_stream();
        stream.push_bytes(&x.body);
        stream.finish()
    } else {
        call.finish(x.status, &x.body)
    };
    r.source = Some(name.to_owned());
    r
}

/// The text of every element matching `css`.
fn texts(browser: &Browser, css: &str) -> Vec<String> {
    let v = browser.run(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)",
        vec![json!(css)],
    );
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap_or("").to_owned()).collect()
}

#[test]
fn recorded_conversations_and_error_chains_render_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    // Recorded exchanges: the Responses API (a tool call, instructions, a
    // stream, reasoning, an API error) and Chat Completions (tool calls,
    // streamed tool calls).
    let names = [
        "test_responses_create_captures_tool_call_content",
        "test_responses_create_with_content_shapes",
        "test_responses_create_streaming_captures_content",
        "test_responses_create_reports_reasoning_tokens",
        "test_responses_create_api_error",
        "test_chat_completion_tool_calls_with_content",
        "test_chat_completion_multiple_tools_streaming_with_content",
    ];
    let mut records: Vec<Record> = names.iter().map(|n| recorded(n)).collect();
    // A second Responses turn: the recorded tool call and the tool's
    // output sent back as input, answered by a recorded reply.
    let first_turn = cassette::first(names[0]);
    let call_item = serde_json::from_slice::<Value>(&first_turn.body).unwrap()["output"][0].clone();
    let mut second = cassette::first(names[1]);
    second.request["input"] = json!([
        {"role": "user", "content": [{"type": "input_text", "text": "What's the weather in Seattle right now?"}]},
        call_item.clone(),
        {"type": "function_call_output", "call_id": call_item["call_id"], "output": "{\"temperature\": \"11 C\", \"sky\": \"rain\"}"},
    ]);
    let call = anosys::sources::openai::OpenAiCall::start(
        &second.uri,
        second.request.clone(),
        &anosys::sources::openai::CaptureOptions::default(),
    );
    records.push(call.finish(second.status, &second.body));
    // Failed functions: a Rust error with its sources, and a Python
    // exception raised from another.
    let mut rust = Record::new(RecordKind::FunctionCall, "store.save");
    rust.fail(anosys::ErrorInfo::from_error(&WrapError("write the batch", std::io::Error::other("disk full"))));
    let mut python = Record::new(RecordKind::FunctionCall, "app.lookup");
    python.fail(anosys::ErrorInfo {
        error_type: "LookupFailed".into(),
        message: "no such user".into(),
        stack: Some(
            "Traceback (most recent call last):\n  File \"app.py\", line 3, in lookup\n    return users[key]\nKeyError: 'u-42'\n\n\
             The above exception was the direct cause of the following exception:\n\n\
             Traceback (most recent call last):\n  File \"app.py\", line 5, in lookup\n    raise LookupFailed(\"no such user\") from e\n\
             LookupFailed: no such user\n"
                .into(),
        ),
    });
    records.push(rust);
    records.push(python);
    write(&db, &records);

    let viewer = Viewer::start(&db);
    let browser = Browser::start();
    let open = |r: &Record, what: &str, ready: &str| {
        browser.go(&format!("{}#/record/{}", viewer.url, r.span_id));
        browser.wait_for(what, &format!("return document.querySelector('.detail') && document.querySelector({ready:?})"));
    };
    let body = |x: &cassette::Exchange| serde_json::from_slice::<Value>(&x.body).unwrap();

    // Responses API, a forced tool call: the question, then the call with
    // its arguments as formatted JSON.
    open(&records[0], "the tool call", ".chat .tool-call");
    assert_eq!(texts(&browser, ".chat .msg .who"), ["user", "assistant · tool_calls"]);
    assert!(texts(&browser, ".chat .role-user")[0].contains("What's the weather in Seattle right now?"));
    let call = &texts(&browser, ".chat .tool-call")[0];
    let arguments: Value = serde_json::from_str(call_item["arguments"].as_str().unwrap()).unwrap();
    assert!(call.contains("get_current_weather"), "{call}");
    assert!(call.contains(&serde_json::to_string_pretty(&arguments).unwrap()), "formatted arguments: {call}");
    browser.save_screenshot("responses-tool-call");

    // Instructions as the system message, the reply as the assistant's.
    open(&records[1], "the reply", ".chat .role-assistant");
    let reply = body(&cassette::first(names[1]))["output"][0]["content"][0]["text"].as_str().unwrap().to_owned();
    assert_eq!(texts(&browser, ".chat .msg .who")[..2], ["system", "user"]);
    assert!(texts(&browser, ".chat .role-system")[0].contains("You are a helpful assistant."));
    assert!(texts(&browser, ".chat .role-assistant")[0].contains(&reply), "{reply}");

    // A stream: the deltas shown as one reply.
    open(&records[2], "the streamed reply", ".chat .role-assistant");
    let stream = cassette::first(names[2]);
    let streamed: String = String::from_utf8_lossy(&stream.body)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(!streamed.is_empty());
    assert!(texts(&browser, ".chat .role-assistant")[0].contains(&streamed), "{streamed}");

    // Reasoning tokens among the usage.
    open(&records[3], "the usage", "section");
    let usage = browser.run(
        "return Array.from(document.querySelectorAll('section')).find(s => s.querySelector('h3').textContent === 'Usage and cost').textContent",
        vec![],
    );
    let reasoning = body(&cassette::first(names[3]))["usage"]["output_tokens_details"]["reasoning_tokens"].as_i64().unwrap();
    assert!(usage.as_str().unwrap().contains("reasoning") && usage.as_str().unwrap().contains(&reasoning.to_string()), "{usage}");

    // The API's error, with its type and message.
    open(&records[4], "the error", ".error-box");
    let error = &texts(&browser, ".error-box")[0];
    assert!(error.contains("The requested model 'this-model-does-not-exist' does not exist."), "{error}");

    // Chat Completions: the assistant's tool calls, and streamed ones.
    open(&records[5], "the tool calls", ".chat .tool-call");
    let expected = body(&cassette::first(names[5]))["choices"][0]["message"]["tool_calls"].as_array().unwrap().len();
    assert_eq!(texts(&browser, ".chat .tool-call").len(), expected);
    open(&records[6], "the streamed tool calls", ".chat .tool-call");
    let streamed_calls = texts(&browser, ".chat .tool-call");
    assert!(streamed_calls.len() >= 2, "{streamed_calls:?}");
    assert!(streamed_calls.iter().all(|c| c.contains("{\n")), "arguments formatted: {streamed_calls:?}");

    // The second Responses turn: question, call, the tool's output, reply.
    open(&records[7], "the tool result", ".chat .tool-result");
    assert_eq!(texts(&browser, ".chat .msg .who")[..4], ["system", "user", "assistant", "tool"]);
    assert!(texts(&browser, ".chat .tool-result")[0].contains("11 C"));
    browser.save_screenshot("responses-second-turn");

    // Copy buttons on each message.
    assert_eq!(browser.run("return document.querySelectorAll('.chat .msg .role button').length", vec![]), json!(texts(&browser, ".chat .msg").len()));

    // Error chains: a Rust error's source, a Python exception's cause.
    open(&records[8], "the Rust error", ".error-box");
    assert_eq!(texts(&browser, ".error-box .chain li"), ["caused by disk full"]);
    open(&records[9], "the Python error", ".error-box");
    assert_eq!(texts(&browser, ".error-box .chain li"), ["caused by KeyError: 'u-42'"]);
    assert!(texts(&browser, ".error-box details pre")[0].contains("raise LookupFailed"));
    browser.save_screenshot("error-chain");
}

/// An error with a message of its own and a source.
#[derive(Debug)]
struct WrapError(&'static str, std::io::Error);

impl std::fmt::Display for WrapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for WrapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.1)
    }
}
