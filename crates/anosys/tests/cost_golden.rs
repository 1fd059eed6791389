//! The golden cost set: each payload of `tests/cost_golden/golden.jsonl`
//! (a usage object as the API sends it, with the cost worked out by hand
//! from the price file's numbers; see `make_golden.py` there) goes through
//! the real OpenAI extraction and `price_record`, and every cost attribute
//! must match within 1e-12 relative.

use anosys::cost::{price_record, PriceTable};
use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use anosys::Record;
use serde_json::{json, Value};

const GOLDEN: &str = include_str!("cost_golden/golden.jsonl");

/// Expected field → the attribute it checks.
const AMOUNTS: [(&str, &str); 6] = [
    ("total", "gen_ai.usage.cost"),
    ("input", "anosys.cost.input"),
    ("cached_input", "anosys.cost.cached_input"),
    ("cache_write", "anosys.cost.cache_write"),
    ("output", "anosys.cost.output"),
    ("reasoning", "anosys.cost.reasoning"),
];

fn path_of(operation: &str) -> &'static str {
    match operation {
        "chat" => "chat/completions",
        "responses" => "responses",
        "completions" => "completions",
        "embeddings" => "embeddings",
        "images" => "images/generations",
        "messages" => "messages",
        other => panic!("unknown operation {other}"),
    }
}

/// The record the extraction makes of the case's request and response.
fn record_of(case: &Value) -> Record {
    let model = case["model"].as_str().expect("model");
    let operation = case["operation"].as_str().expect("operation");
    let mut request = json!({"model": model});
    if let Some(extra) = case.get("request").and_then(Value::as_object) {
        for (k, v) in extra {
            request[k] = v.clone();
        }
    }
    let mut response = json!({"id": "resp-1", "model": case.get("response_model").unwrap_or(&case["model"])});
    match operation {
        "chat" | "completions" => response["choices"] = json!([]),
        "responses" => {
            response["status"] = json!("completed");
            response["output"] = json!([]);
        }
        "images" => {
            let n = case.get("images").and_then(Value::as_u64).unwrap_or(0);
            response["data"] = Value::Array((0..n).map(|i| json!({"url": format!("https://img/{i}.png")})).collect());
        }
        _ => {}
    }
    if !case["usage"].is_null() {
        response["usage"] = case["usage"].clone();
    }
    if let Some(tier) = case.get("service_tier") {
        response["service_tier"] = tier.clone();
    }
    let url = format!("https://api.openai.com/v1/{}", path_of(operation));
    OpenAiCall::start(&url, request, &CaptureOptions::default()).finish(200, response)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// What is wrong with the record's cost attributes, if anything.
fn check(record: &Record, expected: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let status = record.attribute("anosys.cost.status");
    if status != Some(&expected["status"]) {
        problems.push(format!("status {status:?}, expected {}", expected["status"]));
    }
    for (field, attribute) in AMOUNTS {
        let got = record.attribute(attribute).map(|v| v.as_f64().unwrap_or(f64::NAN));
        match (got, expected.get(field).and_then(Value::as_f64)) {
            (Some(g), Some(e)) if close(g, e) => {}
            (None, None) => {}
            (g, e) => problems.push(format!("{attribute} = {g:?}, expected {e:?}")),
        }
    }
    let model = record.attribute("anosys.cost.model");
    if model != expected.get("model") {
        problems.push(format!("anosys.cost.model {model:?}, expected {:?}", expected.get("model")));
    }
    let tier = record.attribute("anosys.cost.tier");
    if tier != expected.get("tier") {
        problems.push(format!("anosys.cost.tier {tier:?}, expected {:?}", expected.get("tier")));
    }
    if expected["status"] == "priced" {
        let source = record.attribute("anosys.cost.price_source").and_then(Value::as_str).unwrap_or("");
        if !source.starts_with("litellm ") {
            problems.push(format!("anosys.cost.price_source {source:?}"));
        }
    }
    problems
}

#[test]
fn every_golden_payload_is_priced_as_worked_out_by_hand() {
    let table = PriceTable::builtin();
    let mut failures = Vec::new();
    let mut count = 0;
    for (n, line) in GOLDEN.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("golden.jsonl line {}: {e}", n + 1));
        let mut record = record_of(&case);
        price_record(table, &mut record);
        let problems = check(&record, &case["expected"]);
        if !problems.is_empty() {
            failures.push(format!("line {} ({} — {}): {}", n + 1, case["model"], case["why"], problems.join("; ")));
        }
        count += 1;
    }
    assert!(count >= 200, "only {count} golden payloads");
    assert!(failures.is_empty(), "{} of {count} golden payloads differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn pricing_the_same_record_twice_gives_the_same_attributes() {
    let table = PriceTable::builtin();
    for line in GOLDEN.lines().take(40) {
        let case: Value = serde_json::from_str(line).unwrap();
        let mut record = record_of(&case);
        price_record(table, &mut record);
        let first = record.attributes.clone();
        price_record(table, &mut record);
        assert_eq!(record.attributes, first, "{}", case["why"]);
    }
}
