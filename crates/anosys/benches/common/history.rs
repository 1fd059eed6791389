// A chat's history as `bench/proxy_load.sh` sends it, shared by the store
// and redaction benchmarks (include!d; the including file imports json).

/// 61 messages (a system prompt, then users and assistants in turn), about
/// 41 KB of JSON, a digit and two quotes in each sentence.
fn history_messages() -> Vec<serde_json::Value> {
    let mut messages = vec![json!({"role": "system", "content": "You are a helpful assistant. ".repeat(20)})];
    for i in 0..60 {
        let text = format!("Message number {i} with some text about the weather and \"quotes\" and more text. ").repeat(8);
        messages.push(json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": text}));
    }
    messages
}
