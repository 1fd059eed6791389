//! async-openai clients recorded through the tower layer, against a local
//! upstream replaying recorded OpenAI exchanges.

mod support;

use std::sync::Arc;
use std::time::Duration;

use anosys::sources::openai::async_openai::{client_with, AnosysLayer, AnosysService};
use anosys::sources::openai::CaptureOptions;
use anosys::{Pipeline, Record, StatusCode};
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use futures_util::StreamExt;
use serde_json::{json, Value};
use support::cassette;
use support::upstream::Upstream;
use support::MemorySink;

struct Harness {
    upstream: Upstream,
    pipeline: Pipeline,
    memory: Arc<MemorySink>,
    client: async_openai::Client<OpenAIConfig>,
}

fn config(upstream: &Upstream) -> OpenAIConfig {
    OpenAIConfig::new().with_api_base(upstream.base_url()).with_api_key("sk-test-not-a-real-key")
}

fn harness_with(options: CaptureOptions) -> Harness {
    let upstream = Upstream::start();
    let (pipeline, memory) = support::memory_pipeline();
    let layer = AnosysLayer::new().options(options).pipeline(pipeline.clone());
    let client = client_with(config(&upstream), layer);
    Harness { upstream, pipeline, memory, client }
}

fn harness() -> Harness {
    harness_with(CaptureOptions::default())
}

impl Harness {
    fn records(&self) -> Vec<Record> {
        let report = self.pipeline.flush(Some(Duration::from_secs(10)));
        assert!(report.completed);
        self.memory.records.lock().unwrap().clone()
    }

    fn one_record(&self) -> Record {
        let mut records = self.records();
        assert_eq!(records.len(), 1, "{records:#?}");
        records.remove(0)
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_create_is_recorded_and_returned_unchanged() {
    let h = harness();
    let x = cassette::first("test_chat_completion_with_content");
    h.upstream.serve(x.clone());
    let response = h.client.chat().create(typed(&x.request)).await.unwrap();
    assert_eq!(response.choices[0].message.content.as_deref(), Some("This is a test."));
    assert_eq!(response.usage.as_ref().unwrap().total_tokens, 17);
    let r = h.one_record();
    assert_eq!(r.name, "chat gpt-4o-mini");
    assert_eq!(r.status.code, StatusCode::Ok);
    assert_eq!(r.output, Some(json!("This is a test.")));
    assert_eq!(r.attribute("gen_ai.usage.input_tokens"), Some(&json!(12)));
    assert_eq!(r.attribute("server.address"), Some(&json!("127.0.0.1")));
    assert_eq!(r.attribute("server.port"), Some(&json!(h.upstream.addr.port())));
    assert_eq!(r.attribute("http.response.status_code"), Some(&json!(200)));
    // The key went upstream, never into the record.
    assert!(!serde_json::to_string(&r).unwrap().contains("sk-test-not-a-real-key"));
}

#[tokio::test(flavor = "current_thread")]
async fn a_consumed_stream_is_recorded_once_with_its_tool_calls() {
    let h = harness();
    let x = cassette::first("test_chat_completion_multiple_tools_streaming_with_content");
    h.upstream.serve(x.clone());
    let mut stream = h.client.chat().create_stream(typed(&x.request)).await.unwrap();
    let mut seen = 0;
    let mut arguments = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        seen += 1;
        for c in &chunk.choices {
            for t in c.delta.tool_calls.iter().flatten() {
                if t.index == 1 {
                    arguments.push_str(t.function.as_ref().and_then(|f| f.arguments.as_deref()).unwrap_or(""));
                }
            }
        }
    }
    drop(stream);
    assert_eq!(arguments, "{\"location\": \"San Francisco, CA\"}");
    let r = h.one_record();
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("completed")));
    assert_eq!(r.attribute("anosys.stream.chunks"), Some(&json!(seen)));
    let parts = r.attribute("gen_ai.output.messages").unwrap()[0]["parts"].clone();
    let calls: Vec<&Value> = parts.as_array().unwrap().iter().filter(|p| p["type"] == "tool_call").collect();
    assert_eq!(calls[1]["arguments"], json!({"location": "San Francisco, CA"}));
    assert_eq!(r.attribute("gen_ai.usage.total_tokens").and_then(Value::as_u64).map(|t| t > 0), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaking_out_of_a_stream_records_it_as_cancelled() {
    let h = harness();
    h.upstream.pause_between_events(Duration::from_millis(50));
    let x = cassette::first("test_chat_completion_streaming");
    h.upstream.serve(x.clone());
    let mut stream = h.client.chat().create_stream(typed(&x.request)).await.unwrap();
    let mut text = String::new();
    for _ in 0..3 {
        let chunk = stream.next().await.unwrap().unwrap();
        text.push_str(chunk.choices[0].delta.content.as_deref().unwrap_or(""));
    }
    drop(stream); // the caller breaks out of its loop
    let r = tokio::task::spawn_blocking(move || {
        // The record arrives once the body is dropped inside the client.
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let records = h.records();
            if !records.is_empty() || std::time::Instant::now() > end {
                return records;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!(r.attribute("anosys.outcome"), Some(&json!("cancelled")));
    assert_eq!(r.status.code, StatusCode::Unset);
    // What the caller saw is what the record kept (maybe one event more,
    // already read from the socket).
    let kept = r.output.as_ref().unwrap().as_str().unwrap();
    assert!(kept.starts_with(&text), "{kept:?} vs {text:?}");
    assert!(kept.len() < "\"This is a test.\"".len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_recorded_and_returned_unchanged() {
    let h = harness();
    let x = cassette::first("test_chat_completion_404");
    h.upstream.serve(x.clone());
    let err = h.client.chat().create(typed(&x.request)).await.unwrap_err();
    match err {
        OpenAIError::ApiError(e) => assert_eq!(e.api_error.code.as_deref(), Some("model_not_found")),
        other => panic!("unexpected {other:?}"),
    }
    let r = h.one_record();
    assert_eq!(r.status.code, StatusCode::Error);
    assert_eq!(r.attribute("error.type"), Some(&json!("model_not_found")));
    assert_eq!(r.attribute("http.response.status_code"), Some(&json!(404)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_and_responses_are_recorded() {
    let h = harness();
    let x = cassette::first("test_embeddings_with_dimensions");
    h.upstream.serve(x.clone());
    let e = h.client.embeddings().create(typed(&x.request)).await.unwrap();
    assert_eq!(e.data[0].embedding.len(), 512);

    let x = cassette::first("test_responses_create_captures_tool_call_content");
    h.upstream.serve(x.clone());
    let resp = h.client.responses().create(typed(&x.request)).await.unwrap();
    assert_eq!(resp.id, "resp_0bedf6e1ffba28050069e2f401ae1c8196be360fd5993c96de");

    let x = cassette::first("test_responses_create_streaming");
    h.upstream.serve(x.clone());
    let mut stream = h.client.responses().create_stream(typed(&x.request)).await.unwrap();
    let mut events = 0;
    while let Some(event) = stream.next().await {
        event.unwrap();
        events += 1;
    }
    assert!(events > 3);

    // Plain calls are made into records on the extraction thread, so they
    // may reach the pipeline after a stream that started later.
    let mut records = h.records();
    records.sort_by_key(|r| r.start_time);
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].name, "embeddings text-embedding-3-small");
    assert_eq!(records[0].attribute("gen_ai.embeddings.dimension.count"), Some(&json!(512)));
    assert_eq!(records[1].attribute("gen_ai.response.finish_reasons"), Some(&json!(["tool_calls"])));
    assert_eq!(records[2].output, Some(json!("This is a test.")));
    assert_eq!(records[2].attribute("anosys.stream.chunks"), Some(&json!(events)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_usage_is_injected_only_when_asked() {
    let h = harness_with(CaptureOptions { inject_include_usage: true, ..Default::default() });
    let x = cassette::first("test_chat_completion_streaming_not_complete");
    assert!(x.request.get("stream_options").is_none());
    h.upstream.serve(x.clone());
    let mut stream = h.client.chat().create_stream(typed(&x.request)).await.unwrap();
    while stream.next().await.is_some() {}
    drop(stream);
    assert_eq!(h.upstream.seen()[0].1["stream_options"]["include_usage"], true);
    assert_eq!(h.one_record().attribute("anosys.outcome"), Some(&json!("completed")));

    let plain = harness();
    plain.upstream.serve(x.clone());
    let mut stream = plain.client.chat().create_stream(typed(&x.request)).await.unwrap();
    while stream.next().await.is_some() {}
    assert!(plain.upstream.seen()[0].1.get("stream_options").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_recorded_as_an_error() {
    let (pipeline, memory) = support::memory_pipeline();
    let port = support::free_port();
    let service = tower::Layer::layer(
        &AnosysLayer::new().pipeline(pipeline.clone()),
        async_openai::middleware::ReqwestService::new(reqwest::Client::new()),
    );
    let _: &AnosysService<_> = &service;
    let client = async_openai::Client::with_config(
        OpenAIConfig::new().with_api_base(format!("http://127.0.0.1:{port}/v1")).with_api_key("k"),
    )
    .with_http_service(service);
    let x = cassette::first("test_chat_completion_with_content");
    let err = client.chat().create(typed(&x.request)).await.unwrap_err();
    assert!(matches!(err, OpenAIError::Reqwest(_)), "{err:?}");
    pipeline.flush(Some(Duration::from_secs(10)));
    let r = memory.records.lock().unwrap()[0].clone();
    assert_eq!(r.status.code, StatusCode::Error);
    assert_eq!(r.attribute("error.type"), Some(&json!("connection_error")));
    assert!(!r.error.unwrap().message.contains(&port.to_string()), "the URL is not in the message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_generation_is_recorded() {
    let h = harness();
    let request = json!({"model": "dall-e-3", "prompt": "a red fox", "n": 1, "size": "1024x1024"});
    h.upstream.serve(cassette::Exchange {
        name: "image".into(),
        method: "POST".into(),
        uri: String::new(),
        request: request.clone(),
        status: 200,
        content_type: "application/json".into(),
        body: serde_json::to_vec(&json!({"created": 1731368630, "data": [
            {"url": "https://img.example/fox.png", "revised_prompt": "a red fox in the snow"}
        ]}))
        .unwrap(),
    });
    let images = h.client.images().generate(typed(&request)).await.unwrap();
    assert_eq!(images.data.len(), 1);
    assert_eq!(h.upstream.seen()[0].0, "/v1/images/generations");
    let r = h.one_record();
    assert_eq!(r.name, "generate_content dall-e-3");
    assert_eq!(r.attribute("gen_ai.output.type"), Some(&json!("image")));
    assert_eq!(r.attribute("gen_ai.output.messages").unwrap()[0]["parts"][0]["uri"], "https://img.example/fox.png");
}

/// A harness whose pipeline notes, in each record, the thread that handed
/// it over.
fn harness_noting_threads() -> Harness {
    let upstream = Upstream::start();
    let (builder, memory) = support::memory_builder();
    let pipeline = builder
        .before_send(|r| {
            r.set_attribute("test.thread", std::thread::current().name().unwrap_or("?").to_owned());
            true
        })
        .build()
        .unwrap();
    let client = client_with(config(&upstream), AnosysLayer::new().pipeline(pipeline.clone()));
    Harness { upstream, pipeline, memory, client }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_call_is_made_into_its_record_off_the_callers_thread_the_same_as_on_it() {
    let h = harness_noting_threads();
    let x = cassette::first("test_chat_completion_tool_calls_with_content");
    h.upstream.serve(x.clone());
    let response = h.client.chat().create(typed(&x.request)).await.unwrap();
    assert!(response.choices[0].message.tool_calls.is_some());
    let deferred = h.one_record();
    assert_eq!(deferred.attribute("test.thread"), Some(&json!("anosys-extract")));

    // The record made on the spot from what the upstream saw and answered.
    let (_, sent) = h.upstream.seen().remove(0);
    let url = format!("{}/chat/completions", h.upstream.base_url());
    let call = anosys::sources::openai::OpenAiCall::start(&url, sent, &CaptureOptions::default());
    let mut direct = call.finish(x.status, x.body.as_slice());
    direct.expand_content();
    for r in [&deferred, &direct] {
        assert!(r.end_time >= r.start_time);
    }
    // Less what the pipeline adds (the thread, the cost).
    let mut attributes = deferred.attributes.clone();
    attributes.retain(|k, _| !(k == "test.thread" || k == "gen_ai.usage.cost" || k.starts_with("anosys.cost.")));
    assert_eq!(attributes, direct.attributes);
    assert_eq!((&deferred.name, &deferred.kind, &deferred.status), (&direct.name, &direct.kind, &direct.status));
    assert_eq!((&deferred.input, &deferred.output), (&direct.input, &direct.output));
    assert_eq!(deferred.raw, direct.raw);

    // A stream's record is made as it is read, on the caller's side.
    let h = harness_noting_threads();
    let x = cassette::first("test_chat_completion_streaming_not_complete");
    h.upstream.serve(x.clone());
    let mut stream = h.client.chat().create_stream(typed(&x.request)).await.unwrap();
    while stream.next().await.is_some() {}
    let r = h.one_record();
    assert_ne!(r.attribute("test.thread"), Some(&json!("anosys-extract")));
    assert!(r.attribute("anosys.stream.chunks").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_before_its_answer_is_recorded_as_cancelled() {
    // A server that accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (pipeline, memory) = support::memory_pipeline();
    let client = client_with(
        OpenAIConfig::new().with_api_base(format!("http://{}/v1", silent.local_addr().unwrap())).with_api_key("k"),
        AnosysLayer::new().pipeline(pipeline.clone()),
    );
    let x = cassette::first("test_chat_completion_with_content");
    let request: async_openai::types::chat::CreateChatCompletionRequest = typed(&x.request);
    let gave_up = tokio::time::timeout(Duration::from_millis(300), client.chat().create(request)).await;
    assert!(gave_up.is_err(), "the call was still waiting");
    pipeline.flush(Some(Duration::from_secs(10)));
    let records = memory.records.lock().unwrap().clone();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].attribute("anosys.outcome"), Some(&json!("cancelled")));
    assert_eq!(records[0].attribute("gen_ai.request.model"), Some(&json!("gpt-4o-mini")));
}
