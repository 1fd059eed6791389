// What the engine benchmarks capture (included by several benches).

/// What an instrumented chat call builds: 12 attributes and content.
fn typical_record() -> Record {
    let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o-mini");
    r.span_kind = SpanKind::Client;
    r.source = Some("openai".into());
    r.set_attribute("gen_ai.operation.name", "chat");
    r.set_attribute("gen_ai.provider.name", "openai");
    r.set_attribute("gen_ai.system", "openai");
    r.set_attribute("gen_ai.request.model", "gpt-4o-mini");
    r.set_attribute("gen_ai.request.temperature", 0.7);
    r.set_attribute("gen_ai.request.max_tokens", 256);
    r.set_attribute("gen_ai.response.id", "chatcmpl-AbC123");
    r.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18");
    r.set_attribute("gen_ai.response.finish_reasons", json!(["stop"]));
    r.set_attribute("gen_ai.usage.input_tokens", 42);
    r.set_attribute("gen_ai.usage.output_tokens", 17);
    r.set_attribute("server.address", "api.openai.com");
    r.input = Some(json!([{"role": "user", "content": "Say this is a test"}]));
    r.output = Some(json!("This is a test."));
    r.finish(Status::ok());
    r
}
