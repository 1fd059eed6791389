//! Request and response JSON → record attributes, read through the typed
//! views of [`super::view`] (from a body's bytes or a parsed `Value` alike).

use serde_json::{json, Value};

use super::messages;
use super::view::{DataItem, EmbeddingSize, Num, RequestView, ResponseView, Usage};
use super::Operation;
use crate::record::{Record, RequestShape, ResponseShape};

/// Request parameters (not content).
pub(super) fn request_attributes(record: &mut Record, op: Operation, req: &RequestView<'_>) {
    let set = |r: &mut Record, k: &'static str, v: &Num| {
        if let Some(v) = v.json() {
            r.set_attribute(k, v);
        }
    };
    set(record, "gen_ai.request.temperature", &req.temperature);
    set(record, "gen_ai.request.top_p", &req.top_p);
    set(record, "gen_ai.request.top_k", &req.top_k);
    if let Some(max) = [&req.max_completion_tokens, &req.max_tokens, &req.max_output_tokens].into_iter().find(|n| n.value.is_some()) {
        set(record, "gen_ai.request.max_tokens", max);
    }
    set(record, "gen_ai.request.frequency_penalty", &req.frequency_penalty);
    set(record, "gen_ai.request.presence_penalty", &req.presence_penalty);
    set(record, "gen_ai.request.seed", &req.seed);
    match req.stop.get() {
        Some(Value::String(s)) => record.set_attribute("gen_ai.request.stop_sequences", json!([s])),
        Some(a @ Value::Array(_)) => record.set_attribute("gen_ai.request.stop_sequences", a),
        _ => &mut *record,
    };
    // Reported only when it is not the default of 1.
    if let Some(n) = req.n.as_u64().filter(|n| *n != 1) {
        record.set_attribute("gen_ai.request.choice.count", n);
    }
    if let Some(f) = req.encoding_format.get() {
        record.set_attribute("gen_ai.request.encoding_formats", json!([f]));
    }
    if let Some(d) = req.dimensions.json() {
        record.set_attribute("gen_ai.embeddings.dimension.count", d);
    }
    match req.tool_choice.get() {
        Some(Value::String(s)) => record.set_attribute("gen_ai.request.tool_choice", s),
        Some(v @ Value::Object(_)) => record.set_attribute("gen_ai.request.tool_choice", v.to_string()),
        _ => &mut *record,
    };
    if let Some(tier) = req.service_tier.get() {
        record.set_attribute("openai.request.service_tier", tier.to_owned());
    }
    if op == Operation::ImageGeneration {
        if let Some(size) = req.size.get() {
            record.set_attribute("openai.request.image.size", size.to_owned());
        }
        if let Some(quality) = req.quality.get() {
            record.set_attribute("openai.request.image.quality", quality.to_owned());
        }
    }
    if let Some(user) = req.user.get() {
        record.set_attribute("user.id", user.to_owned());
    }
    let format = req.response_format.get().and_then(|f| f.kind.get()).or_else(|| {
        req.text.get().and_then(|t| t.format.get()).and_then(|f| f.kind.get())
    });
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

/// Token usage in any of the OpenAI shapes (`None`: the response has no
/// `usage` object). Returns whether usage was found.
pub(super) fn usage(record: &mut Record, usage: Option<&Usage>) -> bool {
    let Some(u) = usage else {
        return false;
    };
    let first = |nums: &[&Num]| nums.iter().find_map(|n| n.json());
    let mut input = first(&[&u.prompt_tokens, &u.input_tokens]);
    // Anthropic's own shape: `input_tokens` leaves out the cache reads and
    // writes, which the conventions count as part of the input.
    let anthropic = !u.prompt_tokens.present;
    let top_read = u.cache_read_input_tokens.json();
    let top_write = u.cache_creation_input_tokens.json();
    if anthropic && let Some(n) = input.as_ref().and_then(Value::as_u64) {
        let extra = [&top_read, &top_write].iter().filter_map(|v| v.as_ref().and_then(Value::as_u64)).sum::<u64>();
        if extra > 0 {
            input = Some(n.saturating_add(extra).into());
        }
    }
    let output = first(&[&u.completion_tokens, &u.output_tokens]);
    let found = input.is_some() || output.is_some();
    if let Some(v) = input {
        record.set_attribute("gen_ai.usage.input_tokens", v);
    }
    if let Some(v) = output {
        record.set_attribute("gen_ai.usage.output_tokens", v);
    }
    if let Some(v) = u.total_tokens.json() {
        record.set_attribute("gen_ai.usage.total_tokens", v);
    }
    let inputs = [u.prompt_tokens_details.get(), u.input_tokens_details.get()];
    let input_detail = |pick: fn(&super::view::InputDetails) -> &Num| inputs.iter().flatten().find_map(|d| pick(d).json());
    if let Some(v) = input_detail(|d| &d.cached_tokens).or(top_read) {
        record.set_attribute("gen_ai.usage.cache_read.input_tokens", v);
    }
    let write = top_write
        .or_else(|| input_detail(|d| &d.cache_creation_tokens))
        .or_else(|| input_detail(|d| &d.cache_write_tokens));
    if let Some(v) = write {
        record.set_attribute("gen_ai.usage.cache_creation.input_tokens", v);
    }
    let reasoning = [u.completion_tokens_details.get(), u.output_tokens_details.get()]
        .into_iter()
        .flatten()
        .find_map(|d| d.reasoning_tokens.json());
    if let Some(v) = reasoning {
        record.set_attribute("gen_ai.usage.reasoning.output_tokens", v);
    }
    found
}

fn response_common(record: &mut Record, resp: &ResponseView<'_>) {
    if let Some(id) = resp.id.get() {
        record.set_attribute("gen_ai.response.id", id.to_owned());
    }
    if let Some(model) = resp.model.get() {
        record.set_attribute("gen_ai.response.model", model.to_owned());
    }
    if let Some(fp) = resp.system_fingerprint.get() {
        record.set_attribute("openai.response.system_fingerprint", fp.to_owned());
    }
    if let Some(tier) = resp.service_tier.get() {
        record.set_attribute("openai.response.service_tier", tier.to_owned());
    }
}

/// A successful response. Returns whether usage was found.
pub(super) fn response(record: &mut Record, op: Operation, mut resp: ResponseView<'_>, content: bool) -> bool {
    response_common(record, &resp);
    match op {
        Operation::Chat | Operation::TextCompletion => {
            let reasons = std::mem::take(&mut resp.choices.finish_reasons);
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
            let called = resp.output.items().iter().any(|i| i.get().and_then(|i| i.kind.get()) == Some("function_call"));
            let reason = messages::finish_reason_of_responses(
                resp.status.get(),
                resp.incomplete_details.get().and_then(|d| d.reason.get()),
                called,
            );
            record.set_attribute("gen_ai.response.finish_reasons", json!([reason]));
            if content {
                record.output_in_raw = Some(ResponseShape::Responses);
            }
        }
        Operation::Embeddings => {
            let data = resp.data.items.as_deref();
            let dims = data.and_then(|d| d.first()).and_then(|e| e.get()?.embedding.0);
            if let (Some(d), None) = (dims, record.attribute("gen_ai.embeddings.dimension.count")) {
                record.set_attribute("gen_ai.embeddings.dimension.count", d);
            }
            if content {
                let n = data.map_or(0, <[_]>::len);
                record.output = Some(json!(format!("{n} embedding(s) of {} dimensions", dims.unwrap_or(0))));
            }
        }
        Operation::ImageGeneration => {
            if let Some(data) = &resp.data.items {
                record.set_attribute("openai.response.image.count", data.len());
            }
            if content {
                let parts: Vec<Value> = resp.data.items().iter().map(|i| image_part(i.get())).collect();
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
    usage(record, resp.usage.get())
}

/// An image of `data` as an output part (`None`: an item that is not an
/// object).
fn image_part(image: Option<&DataItem<'_>>) -> Value {
    let (url, b64) = image.map_or((None, None), |i| (i.url.get(), i.b64_json.get()));
    let mut part = match (url, b64) {
        (Some(url), _) => json!({"type": "file_data", "modality": "image", "uri": url}),
        (None, Some(b64)) => json!({"type": "blob", "modality": "image", "mime_type": "image/png",
            "content": format!("[anosys: base64 image of {} bytes not kept]", b64.len())}),
        _ => json!({"type": "file_data", "modality": "image"}),
    };
    if let (Some(p), Value::Object(o)) = (image.and_then(|i| i.revised_prompt.get()), &mut part) {
        o.insert("revised_prompt".into(), p);
    }
    part
}

/// The raw response kept for `raw`: embedding vectors and base64 images
/// are replaced by a visible marker rather than sent in full.
/// Whether [`raw_response`] may change a response of `op`.
pub(super) fn trims_response(op: Operation) -> bool {
    matches!(op, Operation::Embeddings | Operation::ImageGeneration)
}

pub(super) fn raw_response(op: Operation, mut resp: Value) -> Value {
    if let Some(data) = resp.get_mut("data").and_then(Value::as_array_mut) {
        for item in data {
            match op {
                Operation::Embeddings => {
                    if let Some(e) = item.get_mut("embedding") {
                        let n = EmbeddingSize::of_value(e).unwrap_or(0);
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
