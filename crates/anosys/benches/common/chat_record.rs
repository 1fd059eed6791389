// A typical 4 KB chat record, shared by the redaction and steps benchmarks
// (include!d; the including file imports json, Record, RecordKind, SpanKind, Status).

const PARAGRAPH: &str = "The quarterly report shows revenue of 4.2 million, up 12% on last year, with \
the strongest growth in the north-east region. Operating costs rose 3% (mostly cloud spend), and the \
team closed 148 tickets in March. Please summarise the key risks for the board meeting on 2024-06-14, \
keeping the answer under 200 words and in a risk-averse tone. ";

/// A chat record of about 4 KB of JSON, as the OpenAI source builds it;
/// `secrets` adds a key, a card and a password to the conversation.
fn chat_record(secrets: bool) -> Record {
    let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o-mini");
    r.span_kind = SpanKind::Client;
    r.source = Some("openai".into());
    let user = if secrets {
        format!(
            "{PARAGRAPH} My key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zQ7rS9tU1vW3x and card 4111 1111 1111 1111."
        )
    } else {
        format!("{PARAGRAPH} {PARAGRAPH}")
    };
    let arguments = if secrets {
        json!({"query": "revenue by region", "year": 2024, "password": "hunter22"}).to_string()
    } else {
        json!({"query": "revenue by region", "year": 2024, "limit": 10}).to_string()
    };
    let messages = json!([
        {"role": "system", "parts": [{"type": "text", "content": "You are a careful financial analyst. Answer briefly."}]},
        {"role": "user", "parts": [{"type": "text", "content": user}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_8f7e6d5c4b3a", "name": "search_reports", "arguments": arguments}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_8f7e6d5c4b3a", "response": PARAGRAPH}]},
    ]);
    let output =
        json!([{"role": "assistant", "finish_reason": "stop", "parts": [{"type": "text", "content": PARAGRAPH}]}]);
    r.set_attribute("gen_ai.operation.name", "chat");
    r.set_attribute("gen_ai.provider.name", "openai");
    r.set_attribute("gen_ai.request.model", "gpt-4o-mini");
    r.set_attribute("gen_ai.request.temperature", 0.2);
    r.set_attribute("gen_ai.request.max_tokens", 512);
    r.set_attribute("gen_ai.response.id", "chatcmpl-AbC123xyz789");
    r.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18");
    r.set_attribute("gen_ai.response.finish_reasons", json!(["stop"]));
    r.set_attribute("gen_ai.usage.input_tokens", 812);
    r.set_attribute("gen_ai.usage.output_tokens", 164);
    r.set_attribute("server.address", "api.openai.com");
    r.set_attribute("server.port", 443);
    r.set_attribute(
        "gen_ai.system_instructions",
        json!([{"type": "text", "content": "You are a careful financial analyst."}]),
    );
    r.set_attribute(
        "gen_ai.tool.definitions",
        json!([{"type": "function", "name": "search_reports", "description": "Search the quarterly reports by topic and year.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "year": {"type": "integer"}, "limit": {"type": "integer"}}}}]),
    );
    r.set_attribute("gen_ai.input.messages", messages.clone());
    r.set_attribute("gen_ai.output.messages", output.clone());
    r.input = Some(messages);
    r.output = Some(output);
    r.finish(Status::ok());
    r
}
