//! Request and response JSON → record attributes.

use serde_json::{json, Value};

use super::messages;
use super::Operation;
use crate::record::{Record, RequestShape, ResponseShape};

fn num(v: Option<&Value>) -> Option<Value> {
    v.filter(|v| v.is_number()).cloned()
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Request parameters (not content).
pub(super) fn request_attributes(record: &mut Record, op: Operation, req: &Value) {
    let set = |r: &mut Record, k: &'static str, v: Option<Value>| {
        if let Some(v) = v {
            r.set_attribute(k, v);
        }
    };
    set(record, "gen_ai.request.temperature", num(req.get("temperature")));
    set(record, "gen_ai.request.top_p", num(req.get("top_p")));
    set(record, "gen_ai.request.top_k", num(req.get("top_k")));
    let max_tokens = ["max_completion_tokens", "max_tokens", "max_output_tokens"].iter().find_map(|k| num(req.get(*k)));
    set(record, "gen_ai.request.max_tokens", max_tokens);
    set(record, "gen_ai.request.frequency_penalty", num(req.get("frequency_penalty")));
    set(record, "gen_ai.request.presence_penalty", num(req.get("presence_penalty")));
    set(record, "gen_ai.request.seed", num(req.get("seed")));
    match req.get("stop") {
        Some(Value::String(s)) => set(record, "gen_ai.request.stop_sequences", Some(json!([s]))),
        Some(Value::Array(a)) => set(record, "gen_ai.request.stop_sequences", Some(Value::Array(a.clone()))),
        _ => {}
    }
    // Reported only when it is not the default of 1.
    if let Some(n) = req.get("n").and_then(Value::as_u64).filter(|n| *n != 1) {
        record.set_attribute("gen_ai.request.choice.count", n);
    }
    if let Some(f) = str_of(req, "encoding_format") {
        record.set_attribute("gen_ai.request.encoding_formats", json!([f]));
    }
    if let Some(d) = num(req.get("dimensions")) {
        record.set_attribute("gen_ai.embeddings.dimension.count", d);
    }
    match req.get("tool_choice") {
        Some(Value::String(s)) => record.set_attribute("gen_ai.request.tool_choice", s.clone()),
        Some(v @ Value::Object(_)) => record.set_attribute("gen_ai.request.tool_choice", v.to_string()),
        _ => &mut *record,
    };
    if let Some(tier) = str_of(req, "service_tier") {
        record.set_attribute("openai.request.service_tier", tier.to_owned());
    }
    if op == Operation::ImageGeneration {
        if let Some(size) = str_of(req, "size") {
            record.set_attribute("openai.request.image.size", size.to_owned());
        }
        if let Some(quality) = str_of(req, "quality") {
            record.set_attribute("openai.request.image.quality", quality.to_owned());
        }
    }
    if let Some(user) = str_of(req, "user") {
        record.set_attribute("user.id", user.to_owned());
    }
    let format = req
        .get("response_format")
        .and_then(|f| str_of(f, "type"))
        .or_else(|| req.get("text").and_then(|t| t.get("format")).and_then(|f| str_of(f, "type")));
    let output_type = match (op, format) {
        (Operation::ImageGeneration, _) => Some("image"),
        (_, Some("json_object" | "json_schema")) => Some("json"),
        (_, Some("text")) => Some("text"),
        _ => None,
    };
    if let Some(t) = output_type {
        record.set_attribute("gen_ai.output.type", t);
    }
}

/// Which part of a request of `op` is its input.
pub(super) fn request_shape(op: Operation) -> RequestShape {
    match op {
        Operation::Chat => RequestShape::Chat,
        Operation::TextCompletion | Operation::ImageGeneration => RequestShape::Prompt,
        Operation::Responses => RequestShape::Responses,
        Operation::Embeddings => RequestShape::Embeddings,
        Operation::Other => RequestShape::Whole,
    }
}

/// Token usage in any of the OpenAI shapes. Returns whether usage was found.
pub(super) fn usage(record: &mut Record, usage: Option<&Value>) -> bool {
    let Some(u) = usage.filter(|u| u.is_object()) else {
        return false;
    };
    let first = |keys: &[&str]| keys.iter().find_map(|k| u.get(*k).filter(|v| v.is_number()).cloned());
    let mut input = first(&["prompt_tokens", "input_tokens"]);
    // Anthropic's own shape: `input_tokens` leaves out the cache reads and
    // writes, which the conventions count as part of the input.
    let anthropic = u.get("prompt_tokens").is_none();
    let top_read = first(&["cache_read_input_tokens"]);
    let top_write = first(&["cache_creation_input_tokens"]);
    if anthropic && let Some(n) = input.as_ref().and_then(Value::as_u64) {
        let extra = [&top_read, &top_write].iter().filter_map(|v| v.as_ref().and_then(Value::as_u64)).sum::<u64>();
        if extra > 0 {
            input = Some(n.saturating_add(extra).into());
        }
    }
    let output = first(&["completion_tokens", "output_tokens"]);
    let found = input.is_some() || output.is_some();
    if let Some(v) = input {
        record.set_attribute("gen_ai.usage.input_tokens", v);
    }
    if let Some(v) = output {
        record.set_attribute("gen_ai.usage.output_tokens", v);
    }
    if let Some(v) = first(&["total_tokens"]) {
        record.set_attribute("gen_ai.usage.total_tokens", v);
    }
    let detail = |outer: &[&str], inner: &str| {
        outer.iter().find_map(|o| u.get(*o).and_then(|d| d.get(inner)).filter(|v| v.is_number()).cloned())
    };
    if let Some(v) = detail(&["prompt_tokens_details", "input_tokens_details"], "cached_tokens").or(top_read) {
        record.set_attribute("gen_ai.usage.cache_read.input_tokens", v);
    }
    let write = top_write
        .or_else(|| detail(&["prompt_tokens_details", "input_tokens_details"], "cache_creation_tokens"))
        .or_else(|| detail(&["prompt_tokens_details", "input_tokens_details"], "cache_write_tokens"));
    if let Some(v) = write {
        record.set_attribute("gen_ai.usage.cache_creation.input_tokens", v);
    }
    if let Some(v) = detail(&["completion_tokens_details", "output_tokens_details"], "reasoning_tokens") {
        record.set_attribute("gen_ai.usage.reasoning.output_tokens", v);
    }
    found
}

fn response_common(record: &mut Record, resp: &Value) {
    if let Some(id) = str_of(resp, "id") {
        record.set_attribute("gen_ai.response.id", id.to_owned());
    }
    if let Some(model) = str_of(resp, "model") {
        record.set_attribute("gen_ai.response.model", model.to_owned());
    }
    if let Some(fp) = str_of(resp, "system_fingerprint") {
        record.set_attribute("openai.response.system_fingerprint", fp.to_owned());
    }
    if let Some(tier) = str_of(resp, "service_tier") {
        record.set_attribute("openai.response.service_tier", tier.to_owned());
    }
}

/// A successful response. Returns whether usage was found.
pub(super) fn response(record: &mut Record, op: Operation, resp: &Value, content: bool) -> bool {
    response_common(record, resp);
    let choices: &[Value] = resp.get("choices").and_then(Value::as_array).map_or(&[], Vec::as_slice);
    match op {
        Operation::Chat | Operation::TextCompletion => {
            let reasons: Vec<Value> = choices.iter().filter_map(|c| c.get("finish_reason")).filter(|r| !r.is_null()).cloned().collect();
            if !reasons.is_empty() {
                record.set_attribute("gen_ai.response.finish_reasons", Value::Array(reasons));
            }
            if content {
                // Read from the response kept in `raw` (`Record::output_in_raw`).
                record.output_in_raw =
                    Some(if op == Operation::Chat { ResponseShape::Chat } else { ResponseShape::Completion });
            }
        }
        Operation::Responses => {
            let reason = messages::responses_finish_reason(resp);
            record.set_attribute("gen_ai.response.finish_reasons", json!([reason]));
            if content {
                record.output_in_raw = Some(ResponseShape::Responses);
            }
        }
        Operation::Embeddings => {
            let data = resp.get("data").and_then(Value::as_array);
            let dims = data.and_then(|d| d.first()).and_then(|e| e.get("embedding")).and_then(Value::as_array).map(Vec::len);
            if let (Some(d), None) = (dims, record.attribute("gen_ai.embeddings.dimension.count")) {
                record.set_attribute("gen_ai.embeddings.dimension.count", d);
            }
            if content {
                let n = data.map_or(0, Vec::len);
                record.output = Some(json!(format!("{n} embedding(s) of {} dimensions", dims.unwrap_or(0))));
            }
        }
        Operation::ImageGeneration => {
            if let Some(data) = resp.get("data").and_then(Value::as_array) {
                record.set_attribute("openai.response.image.count", data.len());
            }
            if content {
                let parts: Vec<Value> = resp
                    .get("data")
                    .and_then(Value::as_array)
                    .map(|d| d.iter().map(image_part).collect())
                    .unwrap_or_default();
                // Built here: `raw` keeps a marker in place of a base64
                // image, and the part says how big the image was.
                let out = json!([{"role": "assistant", "parts": parts, "finish_reason": "stop"}]);
                record.output = Some(messages::legacy_output(&out));
                record.set_attribute("gen_ai.output.messages", out);
            }
        }
        Operation::Other => {
            if content {
                record.output_in_raw = Some(ResponseShape::Whole);
            }
        }
    }
    usage(record, resp.get("usage"))
}

fn image_part(image: &Value) -> Value {
    let mut part = match (str_of(image, "url"), str_of(image, "b64_json")) {
        (Some(url), _) => json!({"type": "file_data", "modality": "image", "uri": url}),
        (None, Some(b64)) => json!({"type": "blob", "modality": "image", "mime_type": "image/png",
            "content": format!("[anosys: base64 image of {} bytes not kept]", b64.len())}),
        _ => json!({"type": "file_data", "modality": "image"}),
    };
    if let (Some(p), Value::Object(o)) = (image.get("revised_prompt"), &mut part) {
        o.insert("revised_prompt".into(), p.clone());
    }
    part
}

/// The raw response kept for `raw`: embedding vectors and base64 images
/// are replaced by a visible marker rather than sent in full.
pub(super) fn raw_response(op: Operation, mut resp: Value) -> Value {
    if let Some(data) = resp.get_mut("data").and_then(Value::as_array_mut) {
        for item in data {
            match op {
                Operation::Embeddings => {
                    if let Some(e) = item.get_mut("embedding") {
                        let n = e.as_array().map_or(0, Vec::len);
                        *e = json!(format!("[anosys: {n} floats not kept]"));
                    }
                }
                Operation::ImageGeneration => {
                    if let Some(b) = item.get_mut("b64_json") {
                        let n = b.as_str().map_or(0, str::len);
                        *b = json!(format!("[anosys: base64 image of {n} bytes not kept]"));
                    }
                }
                _ => {}
            }
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::record::Record;
    use crate::sources::openai::{CaptureOptions, OpenAiCall};

    fn finish(path: &str, request: Value, response: Value) -> Record {
        let call = OpenAiCall::start(&format!("https://api.openai.com/v1/{path}"), request, &CaptureOptions::default());
        call.finish(200, response)
    }

    fn attr(r: &Record, key: &str) -> Option<Value> {
        r.attribute(key).cloned()
    }

    #[test]
    fn cache_writes_are_read_in_every_shape() {
        let req = json!({"model": "m", "messages": []});
        let shapes = [
            json!({"prompt_tokens": 100, "completion_tokens": 1, "cache_creation_input_tokens": 30}),
            json!({"prompt_tokens": 100, "completion_tokens": 1, "prompt_tokens_details": {"cache_creation_tokens": 30}}),
            json!({"prompt_tokens": 100, "completion_tokens": 1, "prompt_tokens_details": {"cache_write_tokens": 30}}),
        ];
        for usage in shapes {
            let r = finish("chat/completions", req.clone(), json!({"model": "m", "choices": [], "usage": usage}));
            assert_eq!(attr(&r, "gen_ai.usage.cache_creation.input_tokens"), Some(json!(30)), "{usage}");
            assert_eq!(attr(&r, "gen_ai.usage.input_tokens"), Some(json!(100)), "prompt_tokens already include them");
        }
    }

    #[test]
    fn anthropic_input_tokens_gain_the_cache_reads_and_writes() {
        let usage = json!({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 200, "cache_creation_input_tokens": 40});
        let r = finish("messages", json!({"model": "claude-sonnet-4-5"}), json!({"model": "claude-sonnet-4-5", "usage": usage}));
        assert_eq!(attr(&r, "gen_ai.usage.input_tokens"), Some(json!(250)));
        assert_eq!(attr(&r, "gen_ai.usage.cache_read.input_tokens"), Some(json!(200)));
        assert_eq!(attr(&r, "gen_ai.usage.cache_creation.input_tokens"), Some(json!(40)));
    }

    #[test]
    fn image_calls_record_size_quality_and_count() {
        let req = json!({"model": "dall-e-3", "prompt": "a cat", "size": "1024x1792", "quality": "hd", "n": 2});
        let resp = json!({"created": 1, "data": [{"url": "https://x/1.png"}, {"url": "https://x/2.png"}]});
        let r = finish("images/generations", req, resp);
        assert_eq!(attr(&r, "openai.request.image.size"), Some(json!("1024x1792")));
        assert_eq!(attr(&r, "openai.request.image.quality"), Some(json!("hd")));
        assert_eq!(attr(&r, "openai.response.image.count"), Some(json!(2)));
        let chat = finish("chat/completions", json!({"model": "m", "size": "big"}), json!({"choices": []}));
        assert_eq!(attr(&chat, "openai.request.image.size"), None, "only image calls");
    }
}
