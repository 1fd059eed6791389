//! OpenAI message shapes → the GenAI semantic-convention message JSON
//! (`gen_ai.input.messages`, `gen_ai.output.messages`,
//! `gen_ai.system_instructions`, `gen_ai.tool.definitions`).
//!
//! A message is `{"role": …, "parts": [...]}`; output messages add
//! `finish_reason`. Parts: `text`, `tool_call` (`id`, `name`, `arguments`),
//! `tool_call_response` (`id`, `response`), `blob` (`modality`,
//! `mime_type`, base64 `content`), `file_data` (`modality`, `uri` or
//! `file_id`), and for anything else a generic part keeping its own type.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use crate::record::ResponseShape;

/// A JSON object of already-built values. `json!` would serialize each
/// `Value` argument again (a deep copy); this moves them.
pub(crate) fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let mut map = Map::with_capacity(N);
    for (key, value) in entries {
        map.insert(key.to_owned(), value);
    }
    Value::Object(map)
}

fn text_part(text: &str) -> Value {
    json!({"type": "text", "content": text})
}

/// Tool-call arguments: parsed JSON when they are JSON, the text otherwise.
pub fn arguments(raw: &Value) -> Value {
    match raw {
        Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or_else(|_| Value::String(s.clone())),
        Value::Null => Value::Null,
        other => other.clone(),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// `data:image/png;base64,....` → (mime, payload).
fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, payload) = rest.split_once(',')?;
    let mime = meta.strip_suffix(";base64")?;
    Some((mime, payload))
}

fn modality_of(mime: &str) -> &'static str {
    if mime.starts_with("audio/") {
        "audio"
    } else if mime.starts_with("video/") {
        "video"
    } else {
        "image"
    }
}

fn url_part(url: &str, default_modality: &str) -> Value {
    match data_url(url) {
        Some((mime, payload)) => {
            json!({"type": "blob", "modality": modality_of(mime), "mime_type": mime, "content": payload})
        }
        None => json!({"type": "file_data", "modality": default_modality, "uri": url}),
    }
}

/// One content part of a Chat Completions or Responses message.
fn content_part(part: &Value) -> Value {
    let kind = str_of(part, "type").unwrap_or("");
    match kind {
        "text" | "input_text" | "output_text" => text_part(str_of(part, "text").unwrap_or("")),
        "refusal" => json!({"type": "refusal", "content": str_of(part, "refusal").unwrap_or("")}),
        "image_url" => {
            let url = part.get("image_url").and_then(|u| u.get("url").or(Some(u))).and_then(Value::as_str);
            url.map_or_else(|| part.clone(), |u| url_part(u, "image"))
        }
        "input_image" => match (str_of(part, "image_url"), str_of(part, "file_id")) {
            (Some(u), _) => url_part(u, "image"),
            (None, Some(id)) => json!({"type": "file_data", "modality": "image", "file_id": id}),
            _ => part.clone(),
        },
        "input_audio" => {
            let audio = part.get("input_audio").unwrap_or(part);
            let format = str_of(audio, "format").unwrap_or("wav");
            json!({"type": "blob", "modality": "audio", "mime_type": format!("audio/{format}"),
                   "content": str_of(audio, "data").unwrap_or("")})
        }
        "file" | "input_file" => {
            let file = part.get("file").unwrap_or(part);
            match (str_of(file, "file_id"), str_of(file, "file_data"), str_of(file, "file_url")) {
                (Some(id), _, _) => json!({"type": "file_data", "modality": "file", "file_id": id}),
                (_, Some(data), _) => match data_url(data) {
                    Some((mime, payload)) => json!({"type": "blob", "modality": "file", "mime_type": mime, "content": payload}),
                    None => json!({"type": "blob", "modality": "file", "content": data}),
                },
                (_, _, Some(url)) => json!({"type": "file_data", "modality": "file", "uri": url}),
                _ => part.clone(),
            }
        }
        _ => part.clone(),
    }
}

fn content_parts(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) => vec![text_part(s)],
        Value::Array(parts) => parts.iter().map(content_part).collect(),
        Value::Null => Vec::new(),
        other => vec![json!({"type": "text", "content": other.to_string()})],
    }
}

fn tool_call_part(call: &Value) -> Value {
    let function = call.get("function").unwrap_or(call);
    let mut part = Map::new();
    part.insert("type".into(), json!("tool_call"));
    // The Responses API links a call to its output by `call_id`, not by
    // the item's own `id`.
    if let Some(id) = call.get("call_id").or_else(|| call.get("id")).filter(|v| !v.is_null()) {
        part.insert("id".into(), id.clone());
    }
    part.insert("name".into(), function.get("name").cloned().unwrap_or(Value::Null));
    part.insert("arguments".into(), arguments(function.get("arguments").unwrap_or(&Value::Null)));
    Value::Object(part)
}

/// A Chat Completions message (request side, or a response choice's
/// `message`) as a semantic-convention message.
pub fn chat_message(message: &Value) -> Value {
    let role = str_of(message, "role").unwrap_or("user");
    let mut parts = Vec::new();
    match role {
        "tool" => parts.push(json!({
            "type": "tool_call_response",
            "id": message.get("tool_call_id").cloned().unwrap_or(Value::Null),
            "response": message.get("content").cloned().unwrap_or(Value::Null),
        })),
        "function" => parts.push(json!({
            "type": "tool_call_response",
            "name": message.get("name").cloned().unwrap_or(Value::Null),
            "response": message.get("content").cloned().unwrap_or(Value::Null),
        })),
        _ => {
            parts.extend(content_parts(message.get("content").unwrap_or(&Value::Null)));
            if let Some(refusal) = str_of(message, "refusal") {
                parts.push(json!({"type": "refusal", "content": refusal}));
            }
            if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
                parts.extend(calls.iter().map(tool_call_part));
            }
            if let Some(call) = message.get("function_call").filter(|c| c.is_object()) {
                parts.push(tool_call_part(call));
            }
        }
    }
    let role = if role == "function" { "tool" } else { role };
    let mut out = Map::new();
    out.insert("role".into(), json!(role));
    out.insert("parts".into(), Value::Array(parts));
    if let Some(name) = message.get("name").filter(|_| role != "tool") {
        out.insert("name".into(), name.clone());
    }
    Value::Object(out)
}

/// `gen_ai.input.messages` of a Chat Completions request.
pub fn chat_input(messages: &Value) -> Option<Value> {
    Some(Value::Array(messages.as_array()?.iter().map(chat_message).collect()))
}

/// `gen_ai.output.messages` of a Chat Completions response.
pub fn chat_output(choices: &[Value]) -> Value {
    Value::Array(
        choices
            .iter()
            .map(|choice| {
                let mut m = chat_message(choice.get("message").unwrap_or(&Value::Null));
                if let Value::Object(o) = &mut m {
                    o.insert("role".into(), json!("assistant"));
                    o.insert("finish_reason".into(), choice.get("finish_reason").cloned().unwrap_or(Value::Null));
                }
                m
            })
            .collect(),
    )
}

/// `gen_ai.input.messages` of a legacy completion or an image prompt.
pub fn prompt_input(prompt: &Value) -> Option<Value> {
    let texts: Vec<Value> = match prompt {
        Value::String(s) => vec![text_part(s)],
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(text_part).collect(),
        _ => return None,
    };
    Some(json!([{"role": "user", "parts": texts}]))
}

/// `gen_ai.output.messages` of a legacy completion.
pub fn completion_output(choices: &[Value]) -> Value {
    Value::Array(
        choices
            .iter()
            .map(|c| {
                json!({"role": "assistant", "parts": [text_part(str_of(c, "text").unwrap_or(""))],
                       "finish_reason": c.get("finish_reason").cloned().unwrap_or(Value::Null)})
            })
            .collect(),
    )
}

/// One input item of the Responses API.
fn responses_item(item: &Value) -> Value {
    match str_of(item, "type") {
        Some("function_call") => json!({"role": "assistant", "parts": [tool_call_part(item)]}),
        Some("function_call_output") | Some("custom_tool_call_output") => json!({"role": "tool", "parts": [{
            "type": "tool_call_response",
            "id": item.get("call_id").cloned().unwrap_or(Value::Null),
            "response": item.get("output").cloned().unwrap_or(Value::Null),
        }]}),
        Some("message") | None => json!({
            "role": str_of(item, "role").unwrap_or("user"),
            "parts": content_parts(item.get("content").unwrap_or(&Value::Null)),
        }),
        Some(_) => object([("role", "user".into()), ("parts", Value::Array(vec![item.clone()]))]),
    }
}

/// `gen_ai.input.messages` of a Responses request.
pub fn responses_input(input: &Value) -> Option<Value> {
    match input {
        Value::String(s) => Some(json!([{"role": "user", "parts": [text_part(s)]}])),
        Value::Array(items) => Some(Value::Array(items.iter().map(responses_item).collect())),
        _ => None,
    }
}

/// The output items of a Responses response as one assistant message.
pub fn responses_output(output: &[Value], finish_reason: &str) -> Value {
    let mut parts = Vec::new();
    for item in output {
        match str_of(item, "type") {
            Some("message") => {
                if let Some(content) = item.get("content").and_then(Value::as_array) {
                    parts.extend(content.iter().map(content_part));
                }
            }
            Some("function_call") | Some("custom_tool_call") => parts.push(tool_call_part(item)),
            Some("reasoning") => {
                let summary: Vec<&str> = item
                    .get("summary")
                    .and_then(Value::as_array)
                    .map(|s| s.iter().filter_map(|p| str_of(p, "text")).collect())
                    .unwrap_or_default();
                parts.push(json!({"type": "reasoning", "content": summary.join("\n")}));
            }
            _ => parts.push(item.clone()),
        }
    }
    json!([{"role": "assistant", "parts": parts, "finish_reason": finish_reason}])
}

/// `gen_ai.system_instructions` from a plain instructions string.
pub fn instructions(text: &str) -> Value {
    json!([text_part(text)])
}

/// `gen_ai.tool.definitions`: Chat (`{"type", "function": {…}}`) and
/// Responses (flat) tool lists in one flat shape.
pub fn tool_definitions(tools: &Value) -> Option<Value> {
    let tools = tools.as_array()?;
    Some(Value::Array(
        tools
            .iter()
            .map(|tool| match tool.get("function") {
                Some(Value::Object(function)) => {
                    let mut flat = function.clone();
                    flat.insert("type".into(), tool.get("type").cloned().unwrap_or(json!("function")));
                    Value::Object(flat)
                }
                _ => tool.clone(),
            })
            .collect(),
    ))
}

/// `gen_ai.output.messages` of a `response` of the API `shape` names
/// (`None` for [`ResponseShape::Whole`], which has no messages).
pub fn output_of(shape: ResponseShape, response: &Value) -> Option<Value> {
    let items = |key: &str| response.get(key).and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    match shape {
        ResponseShape::Chat => Some(chat_output(items("choices"))),
        ResponseShape::Completion => Some(completion_output(items("choices"))),
        ResponseShape::Responses => Some(responses_output(items("output"), &responses_finish_reason(response))),
        ResponseShape::Whole => None,
    }
}

/// [`output_of`] a response given as JSON text (an object), reading from it
/// only the parts output messages are built from: the rest is skipped, not
/// built into a [`Value`]. Text that is not an object is read whole.
pub(crate) fn output_of_text(shape: ResponseShape, text: &str) -> Option<Value> {
    /// Every key [`output_of`] reads (and [`responses_finish_reason`]).
    #[derive(serde::Deserialize)]
    struct Parts {
        choices: Option<Value>,
        output: Option<Value>,
        status: Option<Value>,
        incomplete_details: Option<Value>,
    }
    let parts = text.trim_start().starts_with('{').then(|| serde_json::from_str::<Parts>(text).ok()).flatten();
    let Some(parts) = parts else {
        return output_of(shape, &serde_json::from_str(text).ok()?);
    };
    let response: Map<String, Value> = [
        ("choices", parts.choices),
        ("output", parts.output),
        ("status", parts.status),
        ("incomplete_details", parts.incomplete_details),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some((key.to_owned(), value?)))
    .collect();
    output_of(shape, &Value::Object(response))
}

/// The legacy output (`llm_output`) of output messages: the text of a
/// single message without tool calls, else the messages themselves.
pub fn legacy_output(messages: &Value) -> Value {
    legacy_output_of(messages).into_owned()
}

/// [`legacy_output`] of messages no longer needed: them, not a copy.
pub(crate) fn into_legacy_output(messages: Value) -> Value {
    if let Cow::Owned(text) = legacy_output_of(&messages) {
        return text;
    }
    messages
}

/// [`legacy_output`], borrowing the messages when it is them.
pub(crate) fn legacy_output_of(messages: &Value) -> Cow<'_, Value> {
    match first_text(messages) {
        Some(text) if messages.as_array().is_some_and(|a| a.len() == 1) && !has_tool_call(messages) => {
            Cow::Owned(Value::String(text))
        }
        _ => Cow::Borrowed(messages),
    }
}

fn has_tool_call(out: &Value) -> bool {
    out.as_array().is_some_and(|msgs| {
        msgs.iter().any(|m| {
            m.get("parts").and_then(Value::as_array).is_some_and(|p| p.iter().any(|p| str_of(p, "type") == Some("tool_call")))
        })
    })
}

/// Why a Responses API response ended, in Chat Completions terms.
pub(crate) fn responses_finish_reason(resp: &Value) -> String {
    let output = resp.get("output").and_then(Value::as_array);
    let called = output.is_some_and(|o| o.iter().any(|i| str_of(i, "type") == Some("function_call")));
    finish_reason_of_responses(
        str_of(resp, "status"),
        resp.get("incomplete_details").and_then(|d| str_of(d, "reason")),
        called,
    )
}

/// Why a Responses API response ended, in Chat Completions terms, from its
/// `status`, `incomplete_details.reason` and whether an output item is a
/// `function_call`.
pub(crate) fn finish_reason_of_responses(status: Option<&str>, incomplete: Option<&str>, called: bool) -> String {
    match status {
        Some("completed") => if called { "tool_calls" } else { "stop" }.to_owned(),
        Some("incomplete") => incomplete.unwrap_or("incomplete").to_owned(),
        Some("failed") => "error".to_owned(),
        Some(other) => other.to_owned(),
        None => "unknown".to_owned(),
    }
}

/// The text of the first output message's text parts (the legacy
/// `llm_output`), or `None` when it has none.
pub fn first_text(messages: &Value) -> Option<String> {
    let parts = messages.get(0)?.get("parts")?.as_array()?;
    let texts: Vec<&str> = parts
        .iter()
        .filter(|p| str_of(p, "type") == Some("text"))
        .filter_map(|p| str_of(p, "content"))
        .collect();
    (!texts.is_empty()).then(|| texts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_read_from_text_is_output_read_from_the_parsed_value() {
        let texts = [
            r#"{"id":"c1","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}],"usage":{"total_tokens":3}}"#,
            r#"{"choices":[{"index":0,"text":"Once"}],"model":"m"}"#,
            r#"{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[{"type":"message","content":[{"type":"output_text","text":"Hi"}]}]}"#,
            r#"{"status":"completed","output":[{"type":"function_call","name":"f","arguments":"{}","call_id":"c"}]}"#,
            // Nulls, wrong types, a key given twice (the parsed value keeps
            // the last), nothing to read, not an object.
            r#"{"choices":null,"output":7,"status":["x"],"incomplete_details":"no"}"#,
            r#"{"choices":[{"message":{"content":"first"}}],"choices":[{"message":{"content":"last"}}]}"#,
            r#"{"choices":[{"message":{"content":"a"}}],"status":"completed","status":"failed","output":[]}"#,
            r#"{}"#,
            r#"[[{"message":{"content":"in an array"}}],[],"completed",null]"#,
            r#""a string""#,
            r#"{"choices": [ {"message": {"content": "spaced \" \\ \u00e9"}} ] }"#,
        ];
        for text in texts {
            let value: Value = serde_json::from_str(text).unwrap();
            for shape in [ResponseShape::Chat, ResponseShape::Completion, ResponseShape::Responses, ResponseShape::Whole] {
                assert_eq!(output_of_text(shape, text), output_of(shape, &value), "{shape:?} {text}");
            }
        }
        assert_eq!(output_of_text(ResponseShape::Chat, "{not json"), None);
    }

    #[test]
    fn chat_messages_of_every_kind() {
        let messages = json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
        ]);
        assert_eq!(
            chat_input(&messages).unwrap(),
            json!([
                {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                {"role": "user", "parts": [
                    {"type": "text", "content": "What is this?"},
                    {"type": "file_data", "modality": "image", "uri": "https://x/cat.png"},
                    {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "AAAA"}
                ]},
                {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "look", "arguments": {"q": 1}}]},
                {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "a cat"}]}
            ])
        );
    }

    #[test]
    fn tools_are_flattened() {
        let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}, {"type": "web_search"}]);
        assert_eq!(
            tool_definitions(&tools).unwrap(),
            json!([{"type": "function", "name": "f", "parameters": {"type": "object"}}, {"type": "web_search"}])
        );
    }
}
