//! `anosys demo`: a small scripted application, instrumented, against a
//! local OpenAI-compatible server (or the real API with `--live`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anosys::sources::openai::async_openai::client;
use anosys::SinkKind;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{CreateChatCompletionRequest, CreateChatCompletionResponse};
use async_openai::types::embeddings::CreateEmbeddingRequest;
use async_openai::Client;
use futures_util::StreamExt;
use serde_json::{json, Value};

use super::CliError;
use crate::cli::DemoArgs;
use crate::output::{self, paint, ACCENT, BAD, DIM, GOOD, HEADING};
use crate::replay::{Pacing, ReplayServer};
use crate::store::{Filter, Store};

/// How fast the replay server answers: roughly like the real API.
const PACING: Pacing = Pacing { first_byte: Duration::from_millis(150), between_events: Duration::from_millis(12) };

fn say(text: impl AsRef<str>) {
    // The demo keeps going if stdout goes away; records still get delivered.
    let _ = output::emit(text.as_ref());
}

fn request<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, OpenAIError> {
    serde_json::from_value(body).map_err(|e| OpenAIError::InvalidArgument(e.to_string()))
}

/// Step 1: a plain chat, inside a logged function.
#[anosys::logger(source = "assistant", skip(client))]
async fn answer(client: &Client<OpenAIConfig>, question: &str) -> Result<String, OpenAIError> {
    let request: CreateChatCompletionRequest =
        request(json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}))?;
    let response: CreateChatCompletionResponse = client.chat().create(request).await?;
    Ok(response.choices.into_iter().next().and_then(|c| c.message.content).unwrap_or_default())
}

/// A tool call the model asked for.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct ToolCall {
    name: String,
    arguments: String,
}

/// Step 2: a streamed chat that calls tools, printed as it arrives.
#[anosys::logger(source = "assistant", skip(client))]
async fn weather_report(client: &Client<OpenAIConfig>, question: &str) -> Result<Vec<ToolCall>, OpenAIError> {
    let request: CreateChatCompletionRequest = request(json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [
            {"role": "system", "content": "You're a helpful assistant."},
            {"role": "user", "content": question}
        ],
        "tool_choice": "auto",
        "tools": [{"type": "function", "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string", "description": "The city and state, e.g. Boston, MA"}},
                "required": ["location"],
                "additionalProperties": false
            }
        }}]
    }))?;
    let mut stream = client.chat().create_stream(request).await?;
    let mut calls: BTreeMap<u32, ToolCall> = BTreeMap::new();
    while let Some(chunk) = stream.next().await {
        for choice in chunk?.choices {
            if let Some(text) = choice.delta.content {
                say(paint(DIM, text));
            }
            for part in choice.delta.tool_calls.unwrap_or_default() {
                let call = calls.entry(part.index).or_default();
                if let Some(f) = part.function {
                    call.name.push_str(f.name.as_deref().unwrap_or(""));
                    call.arguments.push_str(f.arguments.as_deref().unwrap_or(""));
                }
            }
        }
    }
    Ok(calls.into_values().collect())
}

/// Step 3: an embedding.
#[anosys::logger(source = "search", skip(client))]
async fn embed_document(client: &Client<OpenAIConfig>, text: &str) -> Result<usize, OpenAIError> {
    let request: CreateEmbeddingRequest = request(json!({"model": "text-embedding-3-small", "input": text}))?;
    let response = client.embeddings().create(request).await?;
    Ok(response.data.first().map_or(0, |e| e.embedding.len()))
}

/// Why a payment failed.
#[derive(Debug)]
struct IssuerDeclined {
    code: &'static str,
}

impl std::fmt::Display for IssuerDeclined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the issuer answered {} (do not honour)", self.code)
    }
}

impl std::error::Error for IssuerDeclined {}

/// The error of step 5.
#[derive(Debug)]
struct CardDeclined {
    source: IssuerDeclined,
}

impl std::fmt::Display for CardDeclined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the card was declined")
    }
}

impl std::error::Error for CardDeclined {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Step 5: a logged function that fails.
#[anosys::logger(source = "billing")]
fn charge_card(customer: &str, amount_cents: u64) -> Result<String, CardDeclined> {
    std::thread::sleep(Duration::from_millis(3 + amount_cents % 5));
    let _ = customer;
    Err(CardDeclined { source: IssuerDeclined { code: "05" } })
}

fn step(n: u32, what: &str) {
    say(format!("{} {}  ", paint(HEADING, format!("{n}.")), paint(HEADING, format!("{what:<16}"))));
}

fn failed(e: impl std::fmt::Display) {
    say(format!("{} {e}\n", paint(BAD, "✗")));
}

async fn script(client: &Client<OpenAIConfig>) {
    step(1, "chat");
    match answer(client, "Say this is a test").await {
        Ok(text) => say(format!("{} {}\n", paint(GOOD, "✓"), text.trim())),
        Err(e) => failed(e),
    }

    step(2, "streamed chat");
    say(paint(DIM, "tools: get_current_weather  "));
    match weather_report(client, "What's the weather in Seattle and San Francisco today?").await {
        Ok(calls) => {
            let calls: Vec<String> = calls.iter().map(|c| format!("{}({})", c.name, c.arguments)).collect();
            say(format!("{} the model asked for {}\n", paint(GOOD, "✓"), calls.join(", ")));
        }
        Err(e) => failed(e),
    }

    step(3, "embedding");
    match embed_document(client, "This is a test for embeddings").await {
        Ok(n) => say(format!("{} a vector of {n} numbers\n", paint(GOOD, "✓"))),
        Err(e) => failed(e),
    }

    step(4, "API error");
    let bad: Result<CreateChatCompletionRequest, _> = request(json!({
        "model": "this-model-does-not-exist",
        "messages": [{"role": "user", "content": "Say this is a test"}]
    }));
    match async { client.chat().create(bad?).await }.await {
        Ok(_) => say(format!("{} unexpectedly answered\n", paint(BAD, "?"))),
        Err(e) => say(format!("{} {}\n", paint(GOOD, "✓ the API refused, as expected:"), e)),
    }

    step(5, "logged function");
    match charge_card("cus_42", 1999) {
        Ok(_) => say(format!("{} unexpectedly succeeded\n", paint(BAD, "?"))),
        Err(e) => say(format!("{} charge_card failed, as expected: {e}\n", paint(GOOD, "✓"))),
    }

    step(6, "raw event");
    let event = json!({"event": "demo.finished", "user_id": "u-123", "plan": "pro", "llm_calls": 4});
    anosys::log_raw(event.clone());
    say(format!("{} {event}\n", paint(GOOD, "✓")));
}

fn openai_config(live: bool, server: Option<&ReplayServer>) -> Result<OpenAIConfig, CliError> {
    if !live {
        let base = server.map(ReplayServer::base_url).unwrap_or_default();
        return Ok(OpenAIConfig::new().with_api_base(base).with_api_key("sk-demo-not-a-real-key"));
    }
    let key = std::env::var("OPENAI_API_KEY").ok().filter(|k| !k.trim().is_empty()).ok_or_else(|| {
        CliError::new("--live calls the real OpenAI API and needs OPENAI_API_KEY")
            .hint("export OPENAI_API_KEY=sk-... and run again, or run `anosys demo` without --live (replayed answers)")
    })?;
    let base = std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| "https://api.openai.com/v1".to_owned());
    Ok(OpenAIConfig::new().with_api_base(base).with_api_key(key))
}

pub(super) fn run(db: Option<PathBuf>, args: DemoArgs) -> Result<(), CliError> {
    let mut builder = anosys::ConfigBuilder::from_env()?;
    if let Some(db) = db {
        builder = builder.db_path(db);
    }
    let config = builder.build()?;
    let db_path = config.db_path().to_path_buf();
    let stores_locally = config.resolved_sinks().contains(&SinkKind::Sqlite);
    let guard = anosys::init_with(config).map_err(|e| {
        CliError::new(format!("cannot start capturing: {e}")).hint("check the ANOSYS_* environment variables")
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("cannot start the async runtime: {e}")))?;
    let started_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);

    runtime.block_on(async {
        let server = if args.live {
            None
        } else {
            Some(ReplayServer::start(PACING).await.map_err(|e| {
                CliError::new(format!("cannot start the local OpenAI-compatible server: {e}"))
                    .hint("the demo listens on 127.0.0.1; check that loopback networking is available")
            })?)
        };
        let config = openai_config(args.live, server.as_ref())?;
        match &server {
            Some(s) => say(format!(
                "{} a scripted app calls a local OpenAI-compatible server at {} (recorded OpenAI answers)\n\n",
                paint(HEADING, "anosys demo:"),
                paint(ACCENT, s.base_url())
            )),
            None => say(format!("{} a scripted app calls the OpenAI API (live)\n\n", paint(HEADING, "anosys demo:"))),
        }
        script(&client(config)).await;
        Ok::<(), CliError>(())
    })?;
    drop(runtime);

    let destinations: Vec<String> = guard.pipeline().map(|p| p.destinations().to_vec()).unwrap_or_default();
    let report = guard.shutdown(None);
    let c = report.counters;
    say(format!(
        "\n{} {} records: {} delivered, {} kept in the outbox, {} failed, {} dropped\n",
        paint(HEADING, "Captured:"),
        c.captured,
        c.delivered,
        c.kept_in_outbox,
        c.failed,
        c.dropped
    ));
    for d in &destinations {
        say(format!("  {d}\n"));
    }
    if stores_locally && let Ok(store) = Store::open(&db_path) {
        let rows = store.latest(&Filter { since_ms: Some(started_ms), ..Filter::default() }, 20)?;
        if !rows.is_empty() {
            say("\n");
            say(super::logs::table(&rows).render());
        }
        let id = rows.iter().find(|r| r.kind == "llm_call").map_or(1, |r| r.id);
        let db_flag = match std::env::var_os("ANOSYS_DB") {
            None if db_path.ends_with(".anosys/anosys.db") => String::new(),
            Some(p) if std::path::Path::new(&p) == db_path => String::new(),
            _ => format!(" --db {}", db_path.display()),
        };
        say(format!(
            "\n{}\n  anosys logs{db_flag}            everything stored, newest first\n  anosys show {id}{db_flag}          one record in full\n  anosys stats{db_flag}           calls, errors, tokens and latency per model\n  anosys ui{db_flag}              look at them in your browser (traces, conversations, cost)\n",
            paint(HEADING, "Next:")
        ));
    }
    if c.failed > 0 || c.dropped > 0 {
        return Err(CliError::new(format!("{} records were not delivered", c.failed + c.dropped))
            .hint("ANOSYS_LOG_LEVEL=debug anosys demo shows why"));
    }
    Ok(())
}
