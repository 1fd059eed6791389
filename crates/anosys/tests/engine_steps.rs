//! What the background thread does to records before the sinks, through a
//! real pipeline into a real JSON-lines file and SQLite store: LLM calls
//! priced (built-in prices, and a price file of ANOSYS_PRICES), unpriced
//! models marked, content hidden as OpenInference's variables say.

mod support;

use std::path::Path;
use std::time::Duration;

use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use anosys::{Config, ConfigBuilder, InitError, LogLevel, Pipeline, Record, SinkKind};
use serde_json::{json, Value};
use support::temp_dir;

const URL: &str = "http://127.0.0.1:9/v1/chat/completions";

fn chat(model: &str, prompt: &str, usage: Value) -> Record {
    let request = json!({"model": model, "messages": [{"role": "user", "content": prompt}]});
    let call = OpenAiCall::start(URL, request, &CaptureOptions::default());
    call.finish(
        200,
        json!({
            "id": "chatcmpl-1", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
            "usage": usage
        }),
    )
}

fn config(dir: &Path) -> ConfigBuilder {
    Config::builder()
        .log_level(LogLevel::Off)
        .sinks([SinkKind::Jsonl, SinkKind::Sqlite])
        .jsonl_path(dir.join("records.jsonl"))
        .db_path(dir.join("anosys.db"))
}

fn written(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn by_model<'a>(records: &'a [Value], model: &str) -> &'a Value {
    records.iter().find(|r| r["attributes"]["gen_ai.request.model"] == model).unwrap()
}

#[test]
fn llm_calls_are_priced_before_the_sinks_see_them() {
    let dir = temp_dir("steps-cost");
    let prices = dir.join("prices.json");
    std::fs::create_dir_all(&dir).unwrap();
    // A negotiated price for gpt-4o and a fine-tune of our own.
    std::fs::write(
        &prices,
        r#"{"gpt-4o": {"input_cost_per_token": 1e-6, "output_cost_per_token": 4e-6, "cache_read_input_token_cost": 5e-7},
            "acme-support-v2": {"input_cost_per_token": 3e-6, "output_cost_per_token": 6e-6}}"#,
    )
    .unwrap();
    let pipeline = Pipeline::new(config(&dir).prices(&prices).build().unwrap()).unwrap();
    let usage = json!({"prompt_tokens": 1000, "completion_tokens": 100, "prompt_tokens_details": {"cached_tokens": 400}});
    for model in ["gpt-4o", "acme-support-v2", "gpt-4o-mini", "no-such-model-anywhere"] {
        pipeline.submit(chat(model, "Hi", usage.clone()));
    }
    let report = pipeline.shutdown(Some(Duration::from_secs(10)));
    assert_eq!(report.counters.delivered, 4);
    let records = written(&dir);

    // 600 uncached input at 1e-6, 400 cached at 5e-7, 100 output at 4e-6.
    let gpt4o = &by_model(&records, "gpt-4o")["attributes"];
    let expected = 600.0 * 1e-6 + 400.0 * 5e-7 + 100.0 * 4e-6;
    assert!((gpt4o["gen_ai.usage.cost"].as_f64().unwrap() - expected).abs() < 1e-15, "{gpt4o}");
    assert!(gpt4o["anosys.cost.price_source"].as_str().unwrap().contains("prices.json"), "{gpt4o}");
    assert_eq!(gpt4o["anosys.cost.status"], "priced");
    // A model only the file knows.
    let tune = &by_model(&records, "acme-support-v2")["attributes"];
    let expected = 1000.0 * 3e-6 + 100.0 * 6e-6;
    assert!((tune["gen_ai.usage.cost"].as_f64().unwrap() - expected).abs() < 1e-15, "{tune}");
    // The built-in prices still price the rest.
    let mini = &by_model(&records, "gpt-4o-mini")["attributes"];
    assert!(mini["gen_ai.usage.cost"].as_f64().unwrap() > 0.0, "{mini}");
    assert!(mini["anosys.cost.price_source"].as_str().unwrap().starts_with("litellm"), "{mini}");
    // Never a silent 0.
    let unknown = &by_model(&records, "no-such-model-anywhere")["attributes"];
    assert_eq!(unknown["anosys.cost.status"], "unpriced");
    assert!(unknown.get("gen_ai.usage.cost").is_none(), "{unknown}");

    // The counters add the cost of the priced calls up.
    let total: f64 = records.iter().filter_map(|r| r["attributes"]["gen_ai.usage.cost"].as_f64()).sum();
    assert!((report.counters.cost_usd - total).abs() < 1e-8, "{} vs {total}", report.counters.cost_usd);
    assert_eq!(report.counters.unpriced, 1);

    // The store has the cost in its own column.
    let db = rusqlite::Connection::open(dir.join("anosys.db")).unwrap();
    let stored: f64 = db.query_row("SELECT sum(cost_usd) FROM records", [], |r| r.get(0)).unwrap();
    assert!((stored - total).abs() < 1e-12);
}

#[test]
fn a_price_file_that_cannot_be_used_is_an_error_naming_it() {
    let dir = temp_dir("steps-bad-prices");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("prices.json");
    std::fs::write(&bad, "{ not json").unwrap();
    let err = Pipeline::new(config(&dir).prices(&bad).build().unwrap()).unwrap_err();
    assert!(matches!(err, InitError::Prices(_)), "{err:?}");
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(chain.contains("ANOSYS_PRICES") && chain.contains("prices.json"), "{chain}");
    let missing = dir.join("missing.json");
    let err = Pipeline::new(config(&dir).prices(&missing).build().unwrap()).unwrap_err();
    assert!(std::error::Error::source(&err).unwrap().to_string().contains("missing.json"), "{err:?}");
}

#[test]
fn content_is_hidden_as_openinference_variables_say() {
    let dir = temp_dir("steps-hide");
    let env = |name: &str| {
        [("OPENINFERENCE_HIDE_INPUT_MESSAGES", "true"), ("OPENINFERENCE_HIDE_OUTPUTS", "1")]
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let c = ConfigBuilder::from_lookup(env)
        .unwrap()
        .log_level(LogLevel::Off)
        .sinks([SinkKind::Jsonl])
        .jsonl_path(dir.join("records.jsonl"))
        .build()
        .unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    pipeline.submit(chat("gpt-4o-mini", "the user's private question", json!({"prompt_tokens": 5, "completion_tokens": 2})));
    pipeline.shutdown(Some(Duration::from_secs(10)));
    let text = std::fs::read_to_string(dir.join("records.jsonl")).unwrap();
    let r: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let a = &r["attributes"];
    assert!(a.get("gen_ai.input.messages").is_none() && a.get("gen_ai.output.messages").is_none(), "{a}");
    assert!(r.get("output").is_none() || r["output"].is_null(), "{r}");
    // Hiding input messages leaves the request itself (input), as OpenInference does.
    assert!(text.contains("the user's private question"));
    assert!(!text.contains("Hello!"), "the reply is hidden");
    assert_eq!(
        a["anosys.content.hidden"],
        json!(["gen_ai.input.messages", "gen_ai.output.messages", "output", "raw.response"])
    );
    // Usage and cost stay.
    assert!(a["gen_ai.usage.cost"].as_f64().unwrap() > 0.0);
}

#[test]
fn secrets_are_redacted_before_any_sink_writes_them() {
    let dir = temp_dir("steps-redact");
    let key = ["sk-proj-", "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zA7"].concat();
    let c = config(&dir).redact("default,email").build().unwrap();
    let pipeline = Pipeline::new(c).unwrap();
    let prompt = format!("my key is {key}, mail me at jane.doe@example.com");
    pipeline.submit(chat("gpt-4o-mini", &prompt, json!({"prompt_tokens": 5, "completion_tokens": 2})));
    let report = pipeline.shutdown(Some(Duration::from_secs(10)));
    assert_eq!(report.counters.delivered, 1);
    let jsonl = std::fs::read_to_string(dir.join("records.jsonl")).unwrap();
    let db = rusqlite::Connection::open(dir.join("anosys.db")).unwrap();
    let stored: String = db.query_row("SELECT record FROM records", [], |r| r.get(0)).unwrap();
    for written in [&jsonl, &stored] {
        assert!(!written.contains(&key) && !written.contains("jane.doe@example.com"), "{written}");
        assert!(written.contains("[REDACTED:openai_key]") && written.contains("[REDACTED:email]"), "{written}");
    }
    let r: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert!(r["attributes"]["anosys.redacted"]["openai_key"].as_u64().unwrap() >= 1, "{r}");
    // The store keeps the request once, in `raw`, redacted once; the JSON
    // line writes the input and its messages out, from the redacted copy.
    assert_eq!(stored.matches("[REDACTED:openai_key]").count(), 1, "{stored}");
    assert!(stored.contains("\"input_in_raw\":\"chat\"") && !stored.contains("\"input\":"), "{stored}");
    assert!(r.get("input_in_raw").is_none(), "{r}");
    for content in [&r["input"][0]["content"], &r["attributes"]["gen_ai.input.messages"][0]["parts"][0]["content"]] {
        assert!(content.as_str().unwrap().contains("[REDACTED:openai_key]"), "{r}");
    }
    // Usage and cost are untouched.
    assert_eq!(r["attributes"]["gen_ai.usage.input_tokens"], 5);
}

#[test]
fn broken_redaction_settings_are_an_error_naming_the_variable() {
    let dir = temp_dir("steps-bad-redact");
    let err = Pipeline::new(config(&dir).redact_patterns(r#"{"ticket": "TKT-[0-9"}"#).build().unwrap()).unwrap_err();
    assert!(matches!(err, InitError::Redaction(_)), "{err:?}");
    assert!(err.to_string().contains("ANOSYS_REDACT_PATTERNS") && err.to_string().contains("ticket"), "{err}");
    let err = Pipeline::new(config(&dir).redact("passwords").build().unwrap()).unwrap_err();
    assert!(err.to_string().contains("ANOSYS_REDACT"), "{err}");
    // Off means off.
    let pipeline = Pipeline::new(config(&dir).redact("off").build().unwrap()).unwrap();
    let key = ["sk-proj-", "Zz3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zA7"].concat();
    pipeline.submit(chat("gpt-4o-mini", &key, json!({"prompt_tokens": 5, "completion_tokens": 2})));
    pipeline.shutdown(Some(Duration::from_secs(10)));
    assert!(std::fs::read_to_string(dir.join("records.jsonl")).unwrap().contains(&key));
}
