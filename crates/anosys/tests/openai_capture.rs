//! The OpenAI extraction module and stream accumulator, driven by the
//! recorded real OpenAI exchanges.

mod support;

use anosys::sources::openai::{prepare_request, CaptureOptions, OpenAiCall};
use anosys::{ErrorInfo, Record, StatusCode};
use serde_json::{json, Value};
use support::cassette::{self, Exchange};

fn capture_with(x: &Exchange, options: &CaptureOptions) -> Record {
    let call = OpenAiCall::start(&x.uri, x.request.clone(), options);
    if x.is_sse() {
        let mut stream = call.into_stream();
        stream.push_bytes(&x.body);
        stream.finish()
    } else {
        call.finish(x.status, &x.body)
    }
}

/// The record of `x`, its content written out into its fields (a record
/// keeps the request once, in `raw`; the sinks write it out the same way).
fn capture(x: &Exchange) -> Record {
    let mut r = capture_with(x, &CaptureOptions::default());
    r.expand_content();
    r
}

fn attr<'a>(r: &'a Record, key: &str) -> &'a Value {
    r.attribute(key).unwrap_or_else(|| panic!("{key} missing in {:#?}", r.attributes))
}

#[test]
fn chat_completion_fields() {
    let r = capture(&cassette::first("test_chat_completion_with_content"));
    assert_eq!(r.name, "chat gpt-4o-mini");
    assert_eq!(r.span_kind, anosys::SpanKind::Client);
    assert_eq!(r.kind, anosys::RecordKind::LlmCall);
    assert_eq!(r.status.code, StatusCode::Ok);
    for (k, v) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!("openai")),
        ("gen_ai.system", json!("openai")),
        ("gen_ai.request.model", json!("gpt-4o-mini")),
        ("gen_ai.response.model", json!("gpt-4o-mini-2024-07-18")),
        ("gen_ai.response.id", json!("chatcmpl-ASYMQRl3A3DXL9FWCK9tnGRcKIO7q")),
        ("gen_ai.response.finish_reasons", json!(["stop"])),
        ("gen_ai.usage.input_tokens", json!(12)),
        ("gen_ai.usage.output_tokens", json!(5)),
        ("gen_ai.usage.total_tokens", json!(17)),
        ("gen_ai.usage.cache_read.input_tokens", json!(0)),
        ("gen_ai.usage.reasoning.output_tokens", json!(0)),
        ("openai.response.system_fingerprint", json!("fp_0ba0d124f1")),
        ("server.address", json!("api.openai.com")),
        ("server.port", json!(443)),
        ("is_streaming", json!(false)),
        ("http.response.status_code", json!(200)),
        ("anosys.usage.source", json!("provider")),
        (
            "gen_ai.input.messages",
            json!([{"role": "user", "parts": [{"type": "text", "content": "Say this is a test"}]}]),
        ),
        (
            "gen_ai.output.messages",
            json!([{"role": "assistant", "parts": [{"type": "text", "content": "This is a test."}], "finish_reason": "stop"}]),
        ),
    ] {
        assert_eq!(attr(&r, k), &v, "{k}");
    }
    assert!(r.attribute("gen_ai.request.stream").is_none());
    assert!(r.attribute("gen_ai.request.choice.count").is_none());
    assert_eq!(r.input, Some(json!([{"role": "user", "content": "Say this is a test"}])));
    assert_eq!(r.output, Some(json!("This is a test.")));

    // As captured, the request is held once, in `raw`, and the input and
    // its messages are read from it.
    let kept = capture_with(&cassette::first("test_chat_completion_with_content"), &CaptureOptions::default());
    assert_eq!(kept.input_in_raw, Some(anosys::record::RequestShape::Chat));
    assert!(kept.input.is_none() && kept.attribute("gen_ai.input.messages").is_none());
    assert_eq!(kept.input().as_deref(), r.input.as_ref());
    assert_eq!(kept.input_messages().as_deref(), r.attribute("gen_ai.input.messages"));
    assert_eq!(kept.raw.as_ref().unwrap()["request"]["messages"], r.input.clone().unwrap());
    // The response likewise: the reply and its messages are read from it.
    assert_eq!(kept.output_in_raw, Some(anosys::record::ResponseShape::Chat));
    assert!(kept.output.is_none() && kept.attribute("gen_ai.output.messages").is_none());
    assert_eq!(kept.output().as_deref(), r.output.as_ref());
    assert_eq!(kept.output_messages().as_deref(), r.attribute("gen_ai.output.messages"));
    let raw = r.raw.as_ref().unwrap();
    assert_eq!(raw["request"]["model"], "gpt-4o-mini");
    assert_eq!(raw["response"]["id"], "chatcmpl-ASYMQRl3A3DXL9FWCK9tnGRcKIO7q");
}

#[test]
fn a_stream_gives_the_record_the_plain_call_gives() {
    let r = capture(&cassette::first("test_chat_completion_streaming"));
    assert_eq!(r.status.code, StatusCode::Ok);
    assert_eq!(r.output, Some(json!("\"This is a test.\"")));
    assert_eq!(attr(&r, "gen_ai.request.stream"), &json!(true));
    assert_eq!(attr(&r, "is_streaming"), &json!(true));
    assert_eq!(attr(&r, "gen_ai.response.id"), &json!("chatcmpl-ASYMZ4oSykiIFK4lXLReDiKyAjsQl"));
    assert_eq!(attr(&r, "gen_ai.response.model"), &json!("gpt-4-0613"));
    assert_eq!(attr(&r, "gen_ai.response.finish_reasons"), &json!(["stop"]));
    assert_eq!(attr(&r, "gen_ai.usage.input_tokens"), &json!(12));
    assert_eq!(attr(&r, "gen_ai.usage.output_tokens"), &json!(5));
    assert_eq!(attr(&r, "anosys.usage.source"), &json!("provider"));
    assert_eq!(attr(&r, "anosys.stream.chunks"), &json!(8));
    assert_eq!(attr(&r, "anosys.outcome"), &json!("completed"));
    assert!(attr(&r, "gen_ai.response.time_to_first_chunk").as_f64().unwrap() >= 0.0);

    // Without include_usage the tokens are honestly missing.
    let r = capture(&cassette::first("test_chat_completion_streaming_not_complete"));
    assert_eq!(attr(&r, "anosys.usage.source"), &json!("missing"));
    assert!(r.attribute("gen_ai.usage.input_tokens").is_none());
    assert_eq!(r.output, Some(json!("This is a test.")));
}

#[test]
fn streamed_tool_calls_are_assembled_by_index() {
    let x = cassette::first("test_chat_completion_multiple_tools_streaming_with_content");
    let r = capture(&x);
    let out = attr(&r, "gen_ai.output.messages");
    let parts = out[0]["parts"].as_array().unwrap();
    let calls: Vec<&Value> = parts.iter().filter(|p| p["type"] == "tool_call").collect();
    assert_eq!(calls.len(), 2, "{out:#}");
    assert_eq!(calls[0]["id"], "call_fHCjJqt9Pysde6vcJcvbXGBx");
    assert_eq!(calls[0]["name"], "get_current_weather");
    assert_eq!(calls[0]["arguments"], json!({"location": "Seattle, WA"}));
    assert_eq!(calls[1]["name"], "get_current_weather");
    assert_eq!(calls[1]["arguments"], json!({"location": "San Francisco, CA"}));
    assert_eq!(attr(&r, "gen_ai.response.finish_reasons"), &json!(["tool_calls"]));
    assert_eq!(attr(&r, "gen_ai.request.tool_choice"), &json!("auto"));
    let tools = attr(&r, "gen_ai.tool.definitions");
    assert_eq!(tools[0]["name"], "get_current_weather");
    assert_eq!(tools[0]["type"], "function");
    assert!(tools[0]["parameters"]["properties"]["location"].is_object());
    // The same call, not streamed, gives the same tool calls.
    let plain = capture(&cassette::first("test_chat_completion_tool_calls_with_content"));
    let plain_calls: Vec<Value> = attr(&plain, "gen_ai.output.messages")[0]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] == "tool_call")
        .map(|p| p["arguments"].clone())
        .collect();
    assert_eq!(plain_calls, vec![json!({"location": "Seattle, WA"}), json!({"location": "San Francisco, CA"})]);
}

#[test]
fn several_choices_stream_into_several_messages() {
    let r = capture(&cassette::first("test_chat_completion_multiple_choices_streaming"));
    assert_eq!(attr(&r, "gen_ai.request.choice.count"), &json!(2));
    assert_eq!(attr(&r, "gen_ai.response.finish_reasons"), &json!(["stop", "stop"]));
    let out = attr(&r, "gen_ai.output.messages").as_array().unwrap().clone();
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|m| m["parts"][0]["content"].as_str().unwrap().len() > 20));
    assert_eq!(attr(&r, "gen_ai.usage.output_tokens"), &json!(104));
    assert_eq!(
        attr(&r, "gen_ai.input.messages")[0],
        json!({"role": "system", "parts": [{"type": "text", "content": "You're a helpful assistant."}]})
    );
}

#[test]
fn api_errors_keep_the_request() {
    let r = capture(&cassette::first("test_chat_completion_404"));
    assert_eq!(r.status.code, StatusCode::Error);
    assert_eq!(attr(&r, "error.type"), &json!("model_not_found"));
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.error_type, "model_not_found");
    assert_eq!(e.message, "The model `this-model-does-not-exist` does not exist or you do not have access to it.");
    assert_eq!(attr(&r, "http.response.status_code"), &json!(404));
    assert_eq!(attr(&r, "gen_ai.request.model"), &json!("this-model-does-not-exist"));
    assert_eq!(r.name, "chat this-model-does-not-exist");
    assert!(r.attribute("gen_ai.input.messages").is_some());

    let r = capture(&cassette::first("test_responses_create_api_error"));
    assert_eq!(attr(&r, "error.type"), &json!("model_not_found"));
    assert_eq!(attr(&r, "http.response.status_code"), &json!(400));

    // An error body with no code falls back to the HTTP status.
    let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", json!({"model": "m"}), &Default::default());
    let r = call.finish(502, b"<html>bad gateway</html>");
    assert_eq!(attr(&r, "error.type"), &json!("502"));
    assert_eq!(r.error.unwrap().message, "<html>bad gateway</html>");
}

#[test]
fn embeddings_fields() {
    let r = capture(&cassette::first("test_embeddings_with_dimensions"));
    assert_eq!(r.name, "embeddings text-embedding-3-small");
    assert_eq!(attr(&r, "gen_ai.operation.name"), &json!("embeddings"));
    assert_eq!(attr(&r, "gen_ai.embeddings.dimension.count"), &json!(512));
    assert_eq!(attr(&r, "gen_ai.usage.input_tokens"), &json!(8));
    assert_eq!(r.input, Some(json!("This is a test for embeddings with dimensions")));
    // The vectors are not copied into `raw`.
    let raw = r.raw.unwrap().to_string();
    assert!(raw.contains("[anosys: 512 floats not kept]"), "{raw}");

    let r = capture(&cassette::first("test_embeddings_with_encoding_format"));
    assert_eq!(attr(&r, "gen_ai.request.encoding_formats"), &json!(["base64"]));
    // The vector as base64 text (what the official clients ask for unless
    // told otherwise): 6,144 bytes of little-endian floats.
    assert_eq!(attr(&r, "gen_ai.embeddings.dimension.count"), &json!(1536));
    assert_eq!(r.output, Some(json!("1 embedding(s) of 1536 dimensions")));
    let raw = r.raw.unwrap().to_string();
    assert!(raw.contains("[anosys: 1536 floats not kept]"), "{raw}");
    assert!(!raw.contains("DK6fO8qE"), "{raw}");
}

#[test]
fn responses_api_fields() {
    let r = capture(&cassette::first("test_responses_create_reports_reasoning_tokens"));
    assert_eq!(r.name, "chat gpt-5.4");
    assert_eq!(attr(&r, "gen_ai.request.max_tokens"), &json!(300));
    assert_eq!(attr(&r, "gen_ai.usage.input_tokens"), &json!(44));
    assert_eq!(attr(&r, "gen_ai.usage.output_tokens"), &json!(288));
    assert_eq!(attr(&r, "gen_ai.usage.reasoning.output_tokens"), &json!(9));
    assert_eq!(attr(&r, "gen_ai.response.finish_reasons"), &json!(["stop"]));
    assert!(r.output.as_ref().unwrap().as_str().unwrap().contains("[1,3,5],[2,4,6]"));

    let r = capture(&cassette::first("test_responses_create_captures_tool_call_content"));
    assert_eq!(attr(&r, "gen_ai.response.finish_reasons"), &json!(["tool_calls"]));
    assert_eq!(attr(&r, "gen_ai.request.tool_choice"), &json!("{\"name\":\"get_current_weather\",\"type\":\"function\"}"));
    let part = &attr(&r, "gen_ai.output.messages")[0]["parts"][0];
    assert_eq!(part, &json!({"type": "tool_call", "id": "call_90uO5LcGP5vTBTCrjyhYtWsA", "name": "get_current_weather", "arguments": {"location": "Seattle, WA"}}));
    assert_eq!(attr(&r, "gen_ai.tool.definitions")[0]["name"], "get_current_weather");

    let r = capture(&cassette::first("test_responses_create_streaming"));
    assert_eq!(r.status.code, StatusCode::Ok);
    assert_eq!(r.output, Some(json!("This is a test.")));
    assert_eq!(attr(&r, "gen_ai.system_instructions"), &json!([{"type": "text", "content": "You are a helpful assistant."}]));
    assert_eq!(attr(&r, "openai.request.service_tier"), &json!("default"));
    assert_eq!(attr(&r, "gen_ai.usage.input_tokens"), &json!(22));
    assert_eq!(attr(&r, "gen_ai.usage.total_tokens"), &json!(28));
    assert_eq!(attr(&r, "anosys.outcome"), &json!("completed"));
}

#[test]
fn every_recorded_exchange_gives_exactly_one_sound_record() {
    let names = cassette::names();
    assert!(names.len() >= 70);
    let mut seen = 0;
    for name in names {
        for x in cassette::load(&name) {
            let r = capture(&x);
            seen += 1;
            assert!(!r.name.is_empty(), "{name}");
            assert!(r.attribute("gen_ai.operation.name").is_some(), "{name}");
            if x.status >= 400 {
                assert_eq!(r.status.code, StatusCode::Error, "{name}");
                assert!(r.attribute("error.type").is_some(), "{name}");
            } else {
                assert_eq!(r.status.code, StatusCode::Ok, "{name}: {:?}", r.error);
                assert!(r.attribute("gen_ai.response.model").is_some(), "{name}");
            }
            // Without content capture, no prompt or reply is kept.
            let quiet = capture_with(&x, &CaptureOptions { capture_content: false, ..Default::default() });
            assert!(quiet.input.is_none() && quiet.output.is_none() && quiet.raw.is_none(), "{name}");
            for k in ["gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions"] {
                assert!(quiet.attribute(k).is_none(), "{name}: {k}");
            }
            assert_eq!(quiet.attribute("gen_ai.usage.input_tokens"), r.attribute("gen_ai.usage.input_tokens"), "{name}");
        }
    }
    assert!(seen >= 70);
}

/// The record of a stream, minus what depends on timing.
fn comparable(mut r: Record) -> Value {
    r.expand_content();
    r.attributes.shift_remove("gen_ai.response.time_to_first_chunk");
    json!({"attributes": r.attributes, "output": r.output, "status": r.status, "error": r.error, "name": r.name})
}

#[test]
fn any_split_of_a_recorded_stream_gives_the_same_record() {
    let mut rng = fastrand::Rng::with_seed(42);
    let streams: Vec<Exchange> = cassette::names()
        .iter()
        .flat_map(|n| cassette::load(n))
        .filter(Exchange::is_sse)
        .collect();
    assert!(streams.len() >= 15, "{}", streams.len());
    for x in &streams {
        let whole = comparable(capture_with(x, &CaptureOptions::default()));
        for _ in 0..25 {
            let call = OpenAiCall::start(&x.uri, x.request.clone(), &CaptureOptions::default());
            let mut stream = call.into_stream();
            let mut rest = &x.body[..];
            while !rest.is_empty() {
                let n = rng.usize(1..=rest.len().min(64));
                stream.push_bytes(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(comparable(stream.finish()), whole, "{}", x.name);
        }
    }
}

fn chunks_of(x: &Exchange) -> Vec<&[u8]> {
    let text = std::str::from_utf8(&x.body).unwrap();
    text.split_inclusive("\n\n").map(str::as_bytes).collect()
}

#[test]
fn a_dropped_stream_keeps_its_partial_content() {
    let x = cassette::first("test_chat_completion_streaming");
    let call = OpenAiCall::start(&x.uri, x.request.clone(), &CaptureOptions::default());
    let mut stream = call.into_stream();
    for c in &chunks_of(&x)[..4] {
        stream.push_bytes(c);
    }
    let r = stream.cancel();
    assert_eq!(attr(&r, "anosys.outcome"), &json!("cancelled"));
    assert_eq!(r.status.code, StatusCode::Unset);
    assert_eq!(r.output().as_deref(), Some(&json!("\"This is a")));
    assert_eq!(attr(&r, "anosys.stream.chunks"), &json!(4));
    assert_eq!(attr(&r, "anosys.usage.source"), &json!("missing"));
}

#[test]
fn a_stream_cut_before_done_is_an_error_with_its_partial_content() {
    let x = cassette::first("test_chat_completion_streaming");
    let mut stream = OpenAiCall::start(&x.uri, x.request.clone(), &CaptureOptions::default()).into_stream();
    for c in &chunks_of(&x)[..3] {
        stream.push_bytes(c);
    }
    let r = stream.finish();
    assert_eq!(r.status.code, StatusCode::Error);
    assert_eq!(attr(&r, "error.type"), &json!("incomplete_stream"));
    assert_eq!(r.output().as_deref(), Some(&json!("\"This is")));
}

#[test]
fn a_lone_surrogate_in_a_stream_event_reads_as_the_replacement_character() {
    let request = br#"{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}"#;
    let mut stream = OpenAiCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default()).into_stream();
    stream.push_bytes(br#"data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"lone \ud83c half, "}}]}"#);
    stream.push_bytes(b"\n\n");
    stream.push_bytes(br#"data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"a pair \ud83c\udf89"},"finish_reason":"stop"}]}"#);
    stream.push_bytes(b"\n\ndata: [DONE]\n\n");
    let r = stream.finish();
    assert_eq!(r.status.code, StatusCode::Ok);
    assert_eq!(r.attribute("anosys.stream.malformed_events"), None);
    assert_eq!(r.output().as_deref(), Some(&json!("lone \u{fffd} half, a pair 🎉")));
    assert_eq!(attr(&r, "gen_ai.response.id"), &json!("c1"));
}

#[test]
fn an_error_mid_stream_is_recorded_with_what_came_before() {
    let x = cassette::first("test_chat_completion_streaming");
    let mut stream = OpenAiCall::start(&x.uri, x.request.clone(), &CaptureOptions::default()).into_stream();
    for c in &chunks_of(&x)[..3] {
        stream.push_bytes(c);
    }
    stream.push_bytes(b"data: {\"error\": {\"message\": \"The server had an error\", \"type\": \"server_error\", \"code\": null}}\n\n");
    stream.push_bytes(b"data: not json at all\n\n");
    let r = stream.finish();
    assert_eq!(r.status.code, StatusCode::Error);
    assert_eq!(attr(&r, "error.type"), &json!("server_error"));
    assert_eq!(r.error.as_ref().unwrap().message, "The server had an error");
    assert_eq!(attr(&r, "anosys.outcome"), &json!("error"));
    assert_eq!(attr(&r, "anosys.stream.malformed_events"), &json!(1));
    assert_eq!(r.output().as_deref(), Some(&json!("\"This is")));

    // A broken connection.
    let mut stream = OpenAiCall::start(&x.uri, x.request.clone(), &CaptureOptions::default()).into_stream();
    stream.push_bytes(chunks_of(&x)[1]);
    let r = stream.fail(ErrorInfo::new("connection_reset", "connection reset by peer"));
    assert_eq!(attr(&r, "error.type"), &json!("connection_reset"));
    assert_eq!(r.output().as_deref(), Some(&json!("\"This")));
}

#[test]
fn the_recorder_ends_each_stream_exactly_once() {
    use anosys::sources::openai::StreamRecorder;
    use std::sync::{Arc, Mutex};
    let x = cassette::first("test_chat_completion_streaming");
    let start = || OpenAiCall::start(&x.uri, x.request.clone(), &CaptureOptions::default()).into_stream();
    type Got = Arc<Mutex<Vec<Record>>>;
    let recorder = |got: &Got| {
        let g = got.clone();
        StreamRecorder::new(start(), move |r| g.lock().unwrap().push(r))
    };
    // Exhausted, then dropped.
    let got: Got = Default::default();
    let mut r = recorder(&got);
    r.push_bytes(&x.body);
    r.finish();
    r.finish();
    r.fail(ErrorInfo::new("late", "ignored"));
    drop(r);
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(got.lock().unwrap()[0].attribute("anosys.outcome"), Some(&json!("completed")));
    // Broken, then dropped.
    let got: Got = Default::default();
    let mut r = recorder(&got);
    r.push_bytes(chunks_of(&x)[1]);
    r.fail(ErrorInfo::new("timeout", "read timed out"));
    drop(r);
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(got.lock().unwrap()[0].attribute("error.type"), Some(&json!("timeout")));
    // Dropped after [DONE] arrived but before the caller saw the end: completed.
    let got: Got = Default::default();
    let mut r = recorder(&got);
    r.push_bytes(&x.body);
    drop(r);
    assert_eq!(got.lock().unwrap()[0].attribute("anosys.outcome"), Some(&json!("completed")));
    // Dropped mid-way: cancelled.
    let got: Got = Default::default();
    let mut r = recorder(&got);
    r.push_bytes(chunks_of(&x)[1]);
    drop(r);
    assert_eq!(got.lock().unwrap()[0].attribute("anosys.outcome"), Some(&json!("cancelled")));
}

#[test]
fn providers_and_include_usage_injection() {
    let opts = CaptureOptions { inject_include_usage: true, ..Default::default() };
    let mut req = json!({"model": "gpt-4o", "stream": true, "messages": []});
    assert!(prepare_request("https://api.openai.com/v1/chat/completions", &mut req, &opts));
    assert_eq!(req["stream_options"]["include_usage"], true);
    assert!(!prepare_request("https://api.openai.com/v1/chat/completions", &mut req, &opts), "already set");
    let mut azure = json!({"stream": true, "messages": []});
    assert!(!prepare_request("https://x.openai.azure.com/openai/deployments/gpt4/chat/completions?api-version=2024-02-01", &mut azure, &opts));
    assert!(azure.get("stream_options").is_none());
    let mut plain = json!({"stream": false});
    assert!(!prepare_request("https://api.openai.com/v1/chat/completions", &mut plain, &opts));
    let mut off = json!({"stream": true});
    assert!(!prepare_request("https://api.openai.com/v1/chat/completions", &mut off, &CaptureOptions::default()));

    let call = OpenAiCall::start(
        "https://x.openai.azure.com/openai/deployments/gpt4/chat/completions?api-version=2024-02-01",
        json!({"messages": []}),
        &Default::default(),
    );
    assert_eq!(call.record().attribute("gen_ai.provider.name"), Some(&json!("azure.ai.openai")));
    assert_eq!(call.record().attribute("gen_ai.request.model"), Some(&json!("gpt4")));
    let local = OpenAiCall::start("http://127.0.0.1:11434/v1/chat/completions", json!({"model": "llama3"}), &Default::default());
    assert_eq!(local.record().attribute("gen_ai.provider.name"), Some(&json!("ollama")));
    assert_eq!(local.record().attribute("server.port"), Some(&json!(11434)));
    let custom = CaptureOptions { provider: Some("vllm".into()), ..Default::default() };
    let vllm = OpenAiCall::start("http://10.0.0.5:8000/v1/completions", json!({"model": "m", "prompt": "p"}), &custom);
    assert_eq!(vllm.record().attribute("gen_ai.provider.name"), Some(&json!("vllm")));
    assert_eq!(vllm.record().attribute("gen_ai.operation.name"), Some(&json!("text_completion")));
    let other = OpenAiCall::start("https://api.openai.com/v1/moderations", json!({"input": "x"}), &Default::default());
    assert_eq!(other.record().name, "moderations");
    let r = other.finish(200, br#"{"id": "modr-1", "model": "omni-moderation", "results": []}"#);
    assert_eq!(r.output().as_deref(), Some(&json!({"id": "modr-1", "model": "omni-moderation", "results": []})));
}

#[test]
fn records_are_children_of_the_current_span() {
    use anosys::record::context::{enter, SpanContext};
    let cx = SpanContext { trace_id: anosys::TraceId::random(), span_id: anosys::SpanId::random() };
    let _entered = enter(cx);
    let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", json!({"model": "m"}), &Default::default());
    assert_eq!(call.record().trace_id, cx.trace_id);
    assert_eq!(call.record().parent_span_id, Some(cx.span_id));
}

fn sse(events: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for e in events {
        out.push_str(&format!("data: {e}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

#[test]
fn streamed_refusals_logprobs_and_legacy_function_calls() {
    let request = json!({"model": "gpt-4o", "stream": true, "logprobs": true, "messages": [{"role": "user", "content": "x"}]});
    let mut s = OpenAiCall::start("https://api.openai.com/v1/chat/completions", request, &Default::default()).into_stream();
    s.push_bytes(&sse(&[
        json!({"id": "c", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"role": "assistant", "refusal": "I can"}, "logprobs": {"content": [{"token": "I", "logprob": -0.1}]}}]}),
        json!({"choices": [{"index": 0, "delta": {"refusal": "'t help."}, "logprobs": {"content": [{"token": " can't", "logprob": -0.2}]}}]}),
        json!({"choices": [{"index": 1, "delta": {"function_call": {"name": "lookup", "arguments": "{\"q\""}}}]}),
        json!({"choices": [{"index": 1, "delta": {"function_call": {"arguments": ": 1}"}}, "finish_reason": "function_call"}]}),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ]));
    let r = s.finish();
    let out = r.output_messages().unwrap();
    assert_eq!(out[0]["parts"], json!([{"type": "refusal", "content": "I can't help."}]));
    assert_eq!(out[1]["parts"], json!([{"type": "tool_call", "name": "lookup", "arguments": {"q": 1}}]));
    assert_eq!(attr(&r, "gen_ai.response.finish_reasons"), &json!(["stop", "function_call"]));
    let raw = &r.raw.as_ref().unwrap()["response"]["choices"][0];
    assert_eq!(raw["logprobs"]["content"].as_array().unwrap().len(), 2);
    assert_eq!(raw["message"]["refusal"], "I can't help.");
}

#[test]
fn legacy_completions_and_images() {
    let request = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi", "max_tokens": 7, "stop": "\n", "n": 2});
    let call = OpenAiCall::start("https://api.openai.com/v1/completions", request, &Default::default());
    let r = call.finish(200, json!({
        "id": "cmpl-1", "model": "gpt-3.5-turbo-instruct",
        "choices": [{"index": 0, "text": "Hi!", "finish_reason": "stop"}, {"index": 1, "text": "Hello", "finish_reason": "length"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    }));
    assert_eq!(r.name, "text_completion gpt-3.5-turbo-instruct");
    assert_eq!(attr(&r, "gen_ai.request.stop_sequences"), &json!(["\n"]));
    assert_eq!(attr(&r, "gen_ai.request.max_tokens"), &json!(7));
    assert_eq!(attr(&r, "gen_ai.request.choice.count"), &json!(2));
    assert_eq!(attr(&r, "gen_ai.response.finish_reasons"), &json!(["stop", "length"]));
    assert_eq!(r.input_messages().as_deref(), Some(&json!([{"role": "user", "parts": [{"type": "text", "content": "Say hi"}]}])));
    assert_eq!(r.output_messages().unwrap()[1]["parts"][0]["content"], "Hello");

    let request = json!({"model": "dall-e-3", "prompt": "a red fox", "n": 1, "size": "1024x1024"});
    let call = OpenAiCall::start("https://api.openai.com/v1/images/generations", request, &Default::default());
    let b64 = "A".repeat(10_000);
    let r = call.finish(200, json!({"created": 1, "data": [
        {"url": "https://img.example/fox.png", "revised_prompt": "a red fox in snow"},
        {"b64_json": b64}
    ]}));
    assert_eq!(r.name, "generate_content dall-e-3");
    assert_eq!(attr(&r, "gen_ai.output.type"), &json!("image"));
    let parts = &attr(&r, "gen_ai.output.messages")[0]["parts"];
    assert_eq!(parts[0], json!({"type": "file_data", "modality": "image", "uri": "https://img.example/fox.png", "revised_prompt": "a red fox in snow"}));
    assert_eq!(parts[1]["content"], "[anosys: base64 image of 10000 bytes not kept]");
    assert!(!r.raw.as_ref().unwrap().to_string().contains(&"A".repeat(100)));
    assert_eq!(attr(&r, "anosys.usage.source"), &json!("missing"));
}

/// What a record says apart from its ids, times and content.
fn described(r: &Record) -> Value {
    let mut attributes = r.attributes.clone();
    for k in ["gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.tool.definitions"] {
        attributes.shift_remove(k);
    }
    attributes.sort_keys();
    json!({"attributes": attributes, "status": r.status, "error": r.error, "name": r.name, "kind": r.span_kind})
}

/// Finishes a call to `uri` with `request` three ways: capture off, the
/// answer's bytes (read without building a `Value`); capture off, the
/// answer already parsed; capture on, its bytes. All three must say the
/// same about the call.
fn three_ways(uri: &str, request: &Value, status: u16, body: &[u8]) -> [Value; 3] {
    let quiet = CaptureOptions { capture_content: false, ..Default::default() };
    let from_bytes = OpenAiCall::start(uri, request.clone(), &quiet).finish(status, body);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let from_value = match parsed {
        Some(v) => OpenAiCall::start(uri, request.clone(), &quiet).finish(status, v),
        None => OpenAiCall::start(uri, request.clone(), &quiet).finish(status, body),
    };
    let kept = OpenAiCall::start(uri, request.clone(), &CaptureOptions::default()).finish(status, body);
    [described(&from_bytes), described(&from_value), described(&kept)]
}

/// What a record holds and writes, less ids and times: its content as
/// every reader gives it, its JSON form, and the same expanded.
fn held(r: &Record) -> Value {
    let mut json = serde_json::to_value(r).unwrap();
    for key in ["trace_id", "span_id", "start_time", "end_time"] {
        json.as_object_mut().unwrap().remove(key);
    }
    let mut expanded = r.clone();
    expanded.expand_content();
    // Written expanded without copying: the same as expanded then written.
    let mut line = Vec::new();
    r.write_json_expanded(&mut line).unwrap();
    let line: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(line, serde_json::from_str::<Value>(&expanded.to_json().unwrap()).unwrap());
    json!({"json": json, "raw": r.raw_json(), "input": r.input(), "output": r.output(),
        "input_messages": r.input_messages(), "output_messages": r.output_messages(), "derived": r.derived_attributes(),
        "expanded": {"input": expanded.input, "output": expanded.output, "attributes": expanded.attributes, "raw": expanded.raw}})
}

/// Starts a call to `uri` with the request `sent` given three ways (its
/// bytes, its JSON text, the `Value` it parses to), capturing content, and
/// finishes each with `answer`. All three must hold and write the same;
/// returns how many kept the request as text (bytes and text that are
/// JSON do, unless a key the record reads is written twice).
fn requests_three_ways(uri: &str, sent: &[u8], status: u16, answer: &[u8]) -> usize {
    let options = CaptureOptions::default();
    let parsed = serde_json::from_slice::<Value>(sent);
    let from_bytes = OpenAiCall::start(uri, sent, &options).finish(status, answer);
    let expected = OpenAiCall::start(uri, parsed.as_ref().cloned().unwrap_or(Value::Null), &options).finish(status, answer);
    let shown = String::from_utf8_lossy(sent);
    assert_eq!(held(&from_bytes), held(&expected), "as bytes: {shown}");
    assert!(parsed.is_ok() || from_bytes.request_text.is_none(), "only JSON is kept as text: {shown}");
    let mut kept = usize::from(from_bytes.request_text.is_some());
    // Capture off: the same attributes, nothing kept.
    let quiet = CaptureOptions { capture_content: false, ..Default::default() };
    let from_bytes = OpenAiCall::start(uri, sent, &quiet).finish(status, answer);
    let expected = OpenAiCall::start(uri, parsed.as_ref().cloned().unwrap_or(Value::Null), &quiet).finish(status, answer);
    assert_eq!(held(&from_bytes), held(&expected), "capture off: {shown}");
    if let Ok(text) = std::str::from_utf8(sent) {
        let from_text = OpenAiCall::start(uri, text, &options).finish(status, answer);
        let value = parsed.unwrap_or_else(|_| Value::String(text.to_owned()));
        let expected = OpenAiCall::start(uri, value, &options).finish(status, answer);
        assert_eq!(held(&from_text), held(&expected), "as text: {text}");
        kept += usize::from(from_text.request_text.is_some());
    }
    kept
}

#[test]
fn a_request_read_from_its_bytes_says_what_the_parsed_request_says() {
    let (mut seen, mut as_text) = (0, 0);
    for name in cassette::names() {
        for x in cassette::load(&name) {
            // As a client sends it, and pretty-printed.
            for sent in [serde_json::to_vec(&x.request).unwrap(), serde_json::to_vec_pretty(&x.request).unwrap()] {
                as_text += requests_three_ways(&x.uri, &sent, x.status, &x.body);
                seen += 2;
            }
        }
    }
    assert!(seen >= 80, "{seen}");
    assert_eq!(as_text, seen, "every request that is JSON is kept as its text");
    // The text is the request compacted, written as `raw.request`.
    let x = cassette::first("test_chat_completion_tool_calls_with_content");
    let sent = serde_json::to_vec_pretty(&x.request).unwrap();
    let r = OpenAiCall::start(&x.uri, &sent, &CaptureOptions::default()).finish(x.status, &x.body);
    assert_eq!(r.request_text.as_ref().unwrap().as_str(), serde_json::to_string(&x.request).unwrap().as_str());
    assert!(r.to_json().unwrap().contains(&format!("\"raw\":{{\"request\":{}", serde_json::to_string(&x.request).unwrap())));
    // Without content capture nothing of it is kept.
    let quiet = CaptureOptions { capture_content: false, ..Default::default() };
    let r = OpenAiCall::start(&x.uri, &sent, &quiet).finish(x.status, &x.body);
    assert_eq!((r.request_text, r.raw, r.input_in_raw), (None, None, None));
}

#[test]
fn odd_requests_read_the_same_from_bytes_and_parsed() {
    let chat = "https://api.openai.com/v1/chat/completions";
    let answer = br#"{"id": "c1", "model": "m", "choices": [{"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}]}"#;
    let requests: &[&[u8]] = &[
        // A key the view reads written twice: parsed whole, the last wins.
        br#"{"model": "a", "model": "b", "messages": []}"#,
        // A key it does not read written twice: kept as sent, read as the
        // last.
        br#"{"model": "a", "messages": [{"role": "user", "content": "one"}], "messages": [{"role": "user", "content": "two"}]}"#,
        // Escapes, text that is not ASCII, fields of other types.
        br#"{"model": "gpt-\u0034o", "messages": [{"role": "user", "content": "caf\u00e9 \"q\" \\ \n \u65e5"}], "stream": "yes", "temperature": [1]}"#,
        br#"{"messages": null, "instructions": "Be brief.", "tools": [{"type": "function", "function": {"name": "f"}}]}"#,
        // Not an object, not JSON, nothing, not UTF-8.
        br#"[1, 2]"#,
        br#""just text""#,
        b"not json {",
        b"",
        b"{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}",
    ];
    for sent in requests {
        requests_three_ways(chat, sent, 200, answer);
    }
    let r = OpenAiCall::start(chat, requests[1], &CaptureOptions::default()).finish(200, &answer[..]);
    assert_eq!(r.input().unwrap()[0]["content"], "two");
    let r = OpenAiCall::start(chat, requests[0], &CaptureOptions::default()).finish(200, &answer[..]);
    assert_eq!((r.attribute("gen_ai.request.model"), r.request_text.is_none()), (Some(&json!("b")), true));
}

/// Finishes a call to `uri` with `request`, capturing content, two ways:
/// with the answer's bytes (kept as text when it can be) and with the
/// answer already parsed (kept as a `Value`). Returns what each record
/// holds and writes (its content as every reader gives it, and its JSON
/// form, less ids and times), and whether the first kept the answer as text.
fn kept_two_ways(uri: &str, request: &Value, status: u16, body: &[u8]) -> ([Value; 2], bool) {
    let options = CaptureOptions::default();
    let as_text = OpenAiCall::start(uri, request.clone(), &options).finish(status, body);
    let as_value = match serde_json::from_slice::<Value>(body) {
        Ok(v) => OpenAiCall::start(uri, request.clone(), &options).finish(status, v),
        Err(_) => OpenAiCall::start(uri, request.clone(), &options).finish(status, body),
    };
    let content = held;
    // Handed as JSON text (as the packages hand a client's model), the
    // same; text that is not JSON is kept as a plain string.
    if let Ok(text) = std::str::from_utf8(body) {
        let from_text = OpenAiCall::start(uri, request.clone(), &options).finish(status, text);
        let parsed = serde_json::from_slice::<Value>(body).unwrap_or_else(|_| Value::String(text.to_owned()));
        let expected = OpenAiCall::start(uri, request.clone(), &options).finish(status, parsed);
        assert_eq!(content(&from_text), content(&expected), "as text: {text}");
        assert_eq!(from_text.response_text.is_some(), as_text.response_text.is_some());
    }
    ([content(&as_text), content(&as_value)], as_text.response_text.is_some())
}

#[test]
fn an_answer_read_from_its_bytes_says_what_the_parsed_answer_says() {
    let (mut seen, mut as_text) = (0, 0);
    for name in cassette::names() {
        for x in cassette::load(&name).into_iter().filter(|x| !x.is_sse()) {
            let [bytes, value, kept] = three_ways(&x.uri, &x.request, x.status, &x.body);
            assert_eq!(bytes, value, "{name}");
            assert_eq!(bytes, kept, "{name}");
            let ([text, parsed], kept_text) = kept_two_ways(&x.uri, &x.request, x.status, &x.body);
            assert_eq!(text, parsed, "{name}");
            as_text += usize::from(kept_text);
            seen += 1;
        }
    }
    assert!(seen >= 40, "{seen}");
    // Every successful answer but embeddings and images (whose vectors and
    // base64 are trimmed from the parsed form) is kept as text.
    assert!(as_text >= 30, "{as_text} of {seen}");
}

#[test]
fn odd_fields_read_the_same_from_bytes_and_from_a_parsed_answer() {
    let chat = "https://api.openai.com/v1/chat/completions";
    let request = json!({"model": "gpt-4o", "temperature": "hot", "max_tokens": null, "max_completion_tokens": 9,
        "stop": null, "n": 1.0, "tool_choice": ["x"], "user": 7, "response_format": "json_object",
        "text": {"format": {"type": "json_schema"}}, "seed": -3, "top_p": 0.25});
    let bodies: &[&[u8]] = &[
        // Fields of unexpected types, nulls, non-object items.
        br#"{"id": 5, "model": "m", "choices": [3, {"finish_reason": null}, {"finish_reason": "stop"}, {"finish_reason": {"x": 1}}],
            "usage": {"prompt_tokens": null, "input_tokens": 10, "cache_read_input_tokens": 5, "completion_tokens": "2",
                      "output_tokens": 2.5, "total_tokens": [1], "prompt_tokens_details": 4,
                      "input_tokens_details": {"cached_tokens": 3}, "completion_tokens_details": {"reasoning_tokens": 1e2}}}"#,
        // A key repeated: its last value counts, as in a parsed `Value`.
        br#"{"model": "a", "model": "b", "choices": [], "usage": {"prompt_tokens": 1, "prompt_tokens": 2}}"#,
        // Escapes in the strings read.
        br#"{"id": "chat\u0063mpl-\"1\"", "model": "m\n", "choices": [{"finish_reason": "st\u00f6p"}], "usage": "none"}"#,
        // An error object beside choices is no API error; without them it is.
        br#"{"error": {"message": "x"}, "choices": null, "model": "m"}"#,
        br#"{"error": {"message": "nope", "type": "invalid_request_error", "code": "bad"}}"#,
        br#"{"error": "text", "model": "m"}"#,
        // Not an object at all, and not JSON.
        br#"[1, 2]"#,
        br#""just text""#,
        b"not json {",
        b"",
    ];
    for body in bodies {
        for status in [200, 0, 500] {
            let [bytes, value, kept] = three_ways(chat, &request, status, body);
            let shown = String::from_utf8_lossy(body);
            assert_eq!(bytes, value, "{status} {shown}");
            assert_eq!(bytes, kept, "{status} {shown}");
            let ([text, parsed], _) = kept_two_ways(chat, &request, status, body);
            assert_eq!(text, parsed, "{status} {shown}");
        }
    }
    let [r, ..] = three_ways(chat, &request, 200, bodies[0]);
    let a = &r["attributes"];
    assert_eq!(a["gen_ai.request.max_tokens"], json!(9), "the first number of the three");
    assert_eq!(a["gen_ai.request.top_p"], json!(0.25));
    assert_eq!(a["gen_ai.request.seed"], json!(-3));
    assert_eq!(a["gen_ai.output.type"], json!("json"), "from text.format when response_format is no object");
    assert!(a.get("gen_ai.request.temperature").is_none() && a.get("user.id").is_none());
    assert!(a.get("gen_ai.request.choice.count").is_none(), "1.0 is not an integer");
    assert_eq!(a["gen_ai.response.finish_reasons"], json!(["stop", {"x": 1}]));
    assert!(a.get("gen_ai.response.id").is_none());
    // `prompt_tokens` is there (null): not Anthropic's shape, no cache reads added.
    assert_eq!(a["gen_ai.usage.input_tokens"], json!(10));
    assert_eq!(a["gen_ai.usage.output_tokens"], json!(2.5));
    assert_eq!(a["gen_ai.usage.cache_read.input_tokens"], json!(3), "details before the top-level count");
    assert_eq!(a["gen_ai.usage.reasoning.output_tokens"], json!(100.0));
    let [r, ..] = three_ways(chat, &request, 200, bodies[1]);
    assert_eq!(r["attributes"]["gen_ai.response.model"], json!("b"));
    assert_eq!(r["attributes"]["gen_ai.usage.input_tokens"], json!(2));
    let [r, ..] = three_ways(chat, &request, 200, bodies[2]);
    assert_eq!(r["attributes"]["gen_ai.response.id"], json!("chatcmpl-\"1\""));
    assert_eq!(r["attributes"]["gen_ai.response.finish_reasons"], json!(["stöp"]));
    assert_eq!(r["attributes"]["anosys.usage.source"], json!("missing"));
    let [r, ..] = three_ways(chat, &request, 200, bodies[3]);
    assert_eq!(r["status"]["code"], three_ways(chat, &request, 200, br#"{"model": "m", "choices": []}"#)[0]["status"]["code"]);
    let [r, ..] = three_ways(chat, &request, 200, bodies[4]);
    assert_eq!(r["error"]["type"], json!("bad"));
}
