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

    let records = h.records();
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
