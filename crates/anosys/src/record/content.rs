//! Content kept once: an LLM call's request and response are held in the
//! record's `raw` only. Its legacy `input` and `output` and its content
//! attributes (`gen_ai.input.messages`, `gen_ai.system_instructions`,
//! `gen_ai.tool.definitions`, `gen_ai.output.messages`) are read from
//! there when a sink writes them.
//!
//! A chat request that carries a conversation's history is most of a
//! record's bytes. Held three times (as sent in `raw`, as the legacy
//! `input`, as semantic-convention messages), every step paid for each
//! copy: building them on the caller's thread, redacting them, storing
//! them. Held once, redaction covers the one copy, the local store keeps
//! one, and the sinks that send the other forms build them as they write.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Record;
use crate::sources::openai::messages;

/// The attribute the input messages are sent as.
pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// The attribute system instructions (the Responses API's `instructions`)
/// are sent as.
pub const SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
/// The attribute tool definitions are sent as.
pub const TOOL_DEFINITIONS: &str = "gen_ai.tool.definitions";
/// The attribute the output messages are sent as.
pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";

/// Which part of `raw.request` is an LLM call's input, by the API's
/// request shape (see [`Record::input_in_raw`]).
///
/// ```
/// use anosys::record::RequestShape;
/// use serde_json::json;
///
/// let request = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]});
/// assert_eq!(RequestShape::Chat.input_of(&request), Some(&json!([{"role": "user", "content": "Hi"}])));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestShape {
    /// Chat Completions: `messages`.
    Chat,
    /// Legacy completions and image generation: `prompt`.
    Prompt,
    /// The Responses API: `input`.
    Responses,
    /// Embeddings: `input` (texts, not messages).
    Embeddings,
    /// Any other API: the whole request.
    Whole,
}

impl RequestShape {
    /// The input inside `request`, as sent (`None` when absent or `null`).
    pub fn input_of(self, request: &Value) -> Option<&Value> {
        let input = match self {
            RequestShape::Chat => request.get("messages"),
            RequestShape::Prompt => request.get("prompt"),
            RequestShape::Responses | RequestShape::Embeddings => request.get("input"),
            RequestShape::Whole => Some(request),
        };
        input.filter(|v| !v.is_null())
    }

    /// [`input_of`](Self::input_of) an owned request, taken out of it.
    fn into_input(self, mut request: Value) -> Option<Value> {
        let key = match self {
            RequestShape::Chat => "messages",
            RequestShape::Prompt => "prompt",
            RequestShape::Responses | RequestShape::Embeddings => "input",
            RequestShape::Whole => return Some(request).filter(|v| !v.is_null()),
        };
        request.get_mut(key).map(Value::take).filter(|v| !v.is_null())
    }

    /// The semantic-convention input messages of `request`, built from it
    /// (`None` for shapes without messages).
    pub fn messages_of(self, request: &Value) -> Option<Value> {
        let input = self.input_of(request)?;
        match self {
            RequestShape::Chat => messages::chat_input(input),
            RequestShape::Prompt => messages::prompt_input(input),
            RequestShape::Responses => messages::responses_input(input),
            RequestShape::Embeddings | RequestShape::Whole => None,
        }
    }
}

/// How to read an LLM call's output from `raw.response`, by the API it
/// came from (see [`Record::output_in_raw`]).
///
/// ```
/// use anosys::record::ResponseShape;
/// use serde_json::json;
///
/// let response = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}]});
/// let messages = ResponseShape::Chat.messages_of(&response).unwrap();
/// assert_eq!(messages[0]["parts"][0]["content"], "Hello");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseShape {
    /// Chat Completions: `choices[].message`.
    Chat,
    /// Legacy completions: `choices[].text`.
    Completion,
    /// The Responses API: `output` items.
    Responses,
    /// Any other API: the whole response is the output.
    Whole,
}

impl ResponseShape {
    /// The semantic-convention output messages of `response`, built from
    /// it (`None` for [`Whole`](Self::Whole)).
    pub fn messages_of(self, response: &Value) -> Option<Value> {
        messages::output_of(self, response)
    }
}

/// Reads an optional shape, taking one this build does not know (written
/// by a newer version into a store or outbox) as `None`: the record stays
/// readable, its content still in `raw`.
pub(super) fn known_shape<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Option::<Value>::deserialize(deserializer)?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}

impl Record {
    /// The request an LLM call's input is kept in, when the record keeps
    /// its input there: [`request_text`](Self::request_text) parsed, else
    /// `raw.request`.
    fn request_in_raw(&self) -> Option<(RequestShape, Cow<'_, Value>)> {
        let shape = self.input_in_raw?;
        if let Some(text) = &self.request_text {
            return text.to_value().ok().map(|request| (shape, Cow::Owned(request)));
        }
        Some((shape, Cow::Borrowed(self.raw.as_ref()?.get("request")?)))
    }

    /// The response an LLM call's output is kept in, when the record keeps
    /// its output there: [`response_text`](Self::response_text) parsed,
    /// else `raw.response`.
    fn response_in_raw(&self) -> Option<(ResponseShape, Cow<'_, Value>)> {
        let shape = self.output_in_raw?;
        if let Some(text) = &self.response_text {
            return text.to_value().ok().map(|response| (shape, Cow::Owned(response)));
        }
        Some((shape, Cow::Borrowed(self.raw.as_ref()?.get("response")?)))
    }

    /// The output messages built from the response the record keeps its
    /// output in (`None` for [`ResponseShape::Whole`]); a response kept as
    /// text is read for the parts they are built from only.
    fn output_messages_in_raw(&self) -> Option<Value> {
        let shape = self.output_in_raw?;
        if shape == ResponseShape::Whole {
            return None;
        }
        match &self.response_text {
            Some(text) => messages::output_of_text(shape, text.as_str()),
            None => shape.messages_of(self.raw.as_ref()?.get("response")?),
        }
    }

    /// The record's output: the [`output`](Self::output) field, else the
    /// legacy output read from `raw.response` (see
    /// [`output_in_raw`](Self::output_in_raw)): the reply's text when it is
    /// one message of text, else its messages. Sinks read a record's output
    /// through this.
    ///
    /// ```
    /// use anosys::record::ResponseShape;
    /// use anosys::{Record, RecordKind};
    /// use serde_json::json;
    ///
    /// let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    /// r.raw = Some(json!({"response": {"choices": [{"message": {"role": "assistant", "content": "Hello"}}]}}));
    /// r.output_in_raw = Some(ResponseShape::Chat);
    /// assert!(r.output.is_none());
    /// assert_eq!(r.output().as_deref(), Some(&json!("Hello")));
    /// ```
    pub fn output(&self) -> Option<Cow<'_, Value>> {
        if let Some(output) = &self.output {
            return Some(Cow::Borrowed(output));
        }
        if self.output_in_raw == Some(ResponseShape::Whole) {
            return self.response_in_raw().map(|(_, response)| response);
        }
        self.output_messages_in_raw().map(|messages| Cow::Owned(messages::into_legacy_output(messages)))
    }

    /// [`output`](Self::output()) when `derived` is this record's
    /// [`derived_attributes`](Self::derived_attributes): the output
    /// messages already built there are not built again.
    pub(crate) fn output_given<'a>(&'a self, derived: &'a [(&'static str, Value)]) -> Option<Cow<'a, Value>> {
        if self.output.is_none()
            && let Some((_, messages)) = derived.iter().find(|(k, _)| *k == OUTPUT_MESSAGES)
        {
            return Some(messages::legacy_output_of(messages));
        }
        self.output()
    }

    /// `gen_ai.output.messages`: the attribute, else the messages built
    /// from the response kept in `raw` (a new value each call).
    pub fn output_messages(&self) -> Option<Cow<'_, Value>> {
        match self.attributes.get(OUTPUT_MESSAGES) {
            Some(messages) => Some(Cow::Borrowed(messages)),
            None => self.output_messages_in_raw().map(Cow::Owned),
        }
    }

    /// The record's input: the [`input`](Self::input) field, else the part
    /// of `raw.request` it is kept in (see [`input_in_raw`](Self::input_in_raw)).
    /// Sinks read a record's input through this.
    ///
    /// ```
    /// use anosys::record::RequestShape;
    /// use anosys::{Record, RecordKind};
    /// use serde_json::json;
    ///
    /// let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    /// r.raw = Some(json!({"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}}));
    /// r.input_in_raw = Some(RequestShape::Chat);
    /// assert!(r.input.is_none());
    /// assert_eq!(r.input().as_deref(), Some(&json!([{"role": "user", "content": "Hi"}])));
    /// ```
    pub fn input(&self) -> Option<Cow<'_, Value>> {
        if let Some(input) = &self.input {
            return Some(Cow::Borrowed(input));
        }
        match self.request_in_raw()? {
            (shape, Cow::Borrowed(request)) => shape.input_of(request).map(Cow::Borrowed),
            (shape, Cow::Owned(request)) => shape.into_input(request).map(Cow::Owned),
        }
    }

    /// [`input`](Self::input()) and the
    /// [`derived_attributes`](Self::derived_attributes), reading a request
    /// kept as text once for both (what a sink writing both calls).
    pub(crate) fn input_and_derived(&self) -> (Option<Cow<'_, Value>>, Vec<(&'static str, Value)>) {
        match self.request_in_raw() {
            Some((shape, Cow::Owned(request))) => {
                let derived = self.derived_from(Some((shape, &request)));
                let input = match &self.input {
                    Some(input) => Some(Cow::Borrowed(input)),
                    None => shape.into_input(request).map(Cow::Owned),
                };
                (input, derived)
            }
            borrowed => {
                let derived = self.derived_from(borrowed.as_ref().map(|(shape, request)| (*shape, request.as_ref())));
                (self.input(), derived)
            }
        }
    }

    /// `gen_ai.input.messages`: the attribute, else the messages built from
    /// the request kept in `raw` (a new value each call).
    ///
    /// ```
    /// use anosys::record::RequestShape;
    /// use anosys::{Record, RecordKind};
    /// use serde_json::json;
    ///
    /// let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    /// r.raw = Some(json!({"request": {"messages": [{"role": "user", "content": "Hi"}]}}));
    /// r.input_in_raw = Some(RequestShape::Chat);
    /// assert!(r.attribute("gen_ai.input.messages").is_none());
    /// let messages = r.input_messages().unwrap();
    /// assert_eq!(messages[0]["parts"][0]["content"], "Hi");
    /// ```
    pub fn input_messages(&self) -> Option<Cow<'_, Value>> {
        match self.attributes.get(INPUT_MESSAGES) {
            Some(messages) => Some(Cow::Borrowed(messages)),
            None => self.request_in_raw().and_then(|(shape, request)| shape.messages_of(&request)).map(Cow::Owned),
        }
    }

    /// The content attributes a sink writes besides
    /// [`attributes`](Self::attributes), built from the request and the
    /// response kept in `raw` ([`input_in_raw`](Self::input_in_raw),
    /// [`output_in_raw`](Self::output_in_raw)): `gen_ai.input.messages`,
    /// `gen_ai.system_instructions`, `gen_ai.tool.definitions` and
    /// `gen_ai.output.messages`, each when the request or response has it
    /// and the record has no attribute of that name. Empty (and free) for
    /// any other record.
    ///
    /// ```
    /// use anosys::record::RequestShape;
    /// use anosys::{Record, RecordKind};
    /// use serde_json::json;
    ///
    /// let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    /// r.raw = Some(json!({"request": {
    ///     "messages": [{"role": "user", "content": "Hi"}],
    ///     "tools": [{"type": "function", "function": {"name": "get_weather"}}],
    /// }}));
    /// r.input_in_raw = Some(RequestShape::Chat);
    /// let keys: Vec<&str> = r.derived_attributes().iter().map(|(k, _)| *k).collect();
    /// assert_eq!(keys, ["gen_ai.input.messages", "gen_ai.tool.definitions"]);
    /// ```
    pub fn derived_attributes(&self) -> Vec<(&'static str, Value)> {
        let request = self.request_in_raw();
        self.derived_from(request.as_ref().map(|(shape, request)| (*shape, request.as_ref())))
    }

    /// [`derived_attributes`](Self::derived_attributes), given the request
    /// the input is kept in (parsed, if it was kept as text).
    fn derived_from(&self, request: Option<(RequestShape, &Value)>) -> Vec<(&'static str, Value)> {
        if request.is_none() && self.output_in_raw.is_none() {
            return Vec::new();
        }
        let missing = |key: &str| !self.attributes.contains_key(key);
        let mut derived = Vec::with_capacity(4);
        if let Some((shape, request)) = request {
            if missing(INPUT_MESSAGES)
                && let Some(m) = shape.messages_of(request)
            {
                derived.push((INPUT_MESSAGES, m));
            }
            if missing(SYSTEM_INSTRUCTIONS)
                && let Some(i) = request.get("instructions").and_then(Value::as_str)
            {
                derived.push((SYSTEM_INSTRUCTIONS, messages::instructions(i)));
            }
            if missing(TOOL_DEFINITIONS)
                && let Some(t) = request.get("tools").and_then(messages::tool_definitions)
            {
                derived.push((TOOL_DEFINITIONS, t));
            }
        }
        if missing(OUTPUT_MESSAGES)
            && let Some(m) = self.output_messages_in_raw()
        {
            derived.push((OUTPUT_MESSAGES, m));
        }
        derived
    }

    /// Writes out what the record keeps in `raw` only: sets `input`,
    /// `output` and the [`derived_attributes`](Self::derived_attributes)
    /// from `raw` and forgets [`input_in_raw`](Self::input_in_raw) and
    /// [`output_in_raw`](Self::output_in_raw), so the record's fields say
    /// everything on their own (for a `before_send` callback, an export, a
    /// value about to be cut). A request and a response kept as text
    /// ([`request_text`](Self::request_text),
    /// [`response_text`](Self::response_text)) are parsed into
    /// `raw.request` and `raw.response`. Nothing changes for a record
    /// without them.
    ///
    /// ```
    /// use anosys::record::RequestShape;
    /// use anosys::{Record, RecordKind};
    /// use serde_json::json;
    ///
    /// let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    /// r.raw = Some(json!({"request": {"messages": [{"role": "user", "content": "Hi"}]}}));
    /// r.input_in_raw = Some(RequestShape::Chat);
    /// r.expand_content();
    /// assert_eq!(r.input_in_raw, None);
    /// assert_eq!(r.input, Some(json!([{"role": "user", "content": "Hi"}])));
    /// assert!(r.attribute("gen_ai.input.messages").is_some());
    /// ```
    pub fn expand_content(&mut self) {
        // The texts are parsed once, into `raw`, and everything is read
        // from there (read from the texts first, the request was parsed
        // twice).
        self.texts_into_raw();
        if self.input_in_raw.is_none() && self.output_in_raw.is_none() {
            return;
        }
        let (input, derived) = self.input_and_derived();
        // Read from `raw` (a field already set is borrowed: kept as it is).
        let input = match input {
            Some(Cow::Owned(input)) => Some(input),
            Some(Cow::Borrowed(input)) if self.input.is_none() => Some(input.clone()),
            _ => None,
        };
        if input.is_some() {
            self.input = input;
        }
        if self.output.is_none() {
            self.output = self.output_given(&derived).map(Cow::into_owned);
        }
        (self.input_in_raw, self.output_in_raw) = (None, None);
        for (key, value) in derived {
            self.attributes.insert(Cow::Borrowed(key), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;
    use serde_json::json;

    fn kept(shape: RequestShape, request: Value) -> Record {
        let mut r = Record::new(RecordKind::LlmCall, "call");
        r.raw = Some(json!({"request": request, "response": {"id": "x"}}));
        r.input_in_raw = Some(shape);
        r
    }

    #[test]
    fn each_shape_reads_its_own_part_of_the_request() {
        let prompt = kept(RequestShape::Prompt, json!({"prompt": "Say hi"}));
        assert_eq!(prompt.input().as_deref(), Some(&json!("Say hi")));
        assert_eq!(prompt.input_messages().unwrap()[0]["parts"][0]["content"], "Say hi");
        let responses = kept(RequestShape::Responses, json!({"input": "Hello"}));
        assert_eq!(responses.input().as_deref(), Some(&json!("Hello")));
        assert_eq!(responses.input_messages().unwrap()[0]["role"], "user");
        let embeddings = kept(RequestShape::Embeddings, json!({"input": ["a", "b"]}));
        assert_eq!((embeddings.input().as_deref(), embeddings.input_messages()), (Some(&json!(["a", "b"])), None));
        let whole = kept(RequestShape::Whole, json!({"file": "f.jsonl"}));
        assert_eq!(whole.input().as_deref(), Some(&json!({"file": "f.jsonl"})));
        let null = kept(RequestShape::Chat, json!({"messages": null}));
        assert_eq!((null.input().as_deref(), null.input_messages()), (None, None));
    }

    #[test]
    fn fields_set_on_the_record_win_over_what_raw_holds() {
        let mut r = kept(RequestShape::Chat, json!({"messages": [{"role": "user", "content": "Hi"}]}));
        r.input = Some(json!("mine"));
        r.set_attribute(INPUT_MESSAGES, json!("my messages"));
        assert_eq!(r.input().as_deref(), Some(&json!("mine")));
        assert_eq!(r.input_messages().as_deref(), Some(&json!("my messages")));
        assert!(r.derived_attributes().is_empty());
        r.expand_content();
        assert_eq!(
            (r.input.as_ref(), r.attribute(INPUT_MESSAGES)),
            (Some(&json!("mine")), Some(&json!("my messages")))
        );
    }

    #[test]
    fn a_record_without_its_request_has_no_input() {
        let mut r = kept(RequestShape::Chat, json!({"messages": []}));
        r.raw = Some(json!({"response": {}}));
        assert_eq!((r.input(), r.input_messages()), (None, None));
        r.expand_content();
        assert_eq!((r.input.as_ref(), r.input_in_raw, r.attribute(INPUT_MESSAGES)), (None, None, None));
    }

    #[test]
    fn the_view_survives_the_records_json_form() {
        let r = kept(RequestShape::Chat, json!({"messages": [{"role": "user", "content": "Hi"}]}));
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"input_in_raw\":\"chat\"") && !text.contains("\"input\":"), "{text}");
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back.input(), r.input());
        let newer = text.replace("\"input_in_raw\":\"chat\"", "\"input_in_raw\":\"audio\"");
        let back: Record = serde_json::from_str(&newer).unwrap();
        assert_eq!((back.input_in_raw, back.raw), (None, r.raw.clone()), "a shape from a newer version");
        let mut plain = Record::new(RecordKind::Raw, "plain");
        plain.input = Some(json!(1));
        assert!(!serde_json::to_string(&plain).unwrap().contains("input_in_raw"));
    }
}

#[cfg(test)]
mod derived_tests {
    use super::*;
    use crate::record::RecordKind;
    use serde_json::json;

    #[test]
    fn instructions_and_tools_are_built_from_the_request_unless_set() {
        let mut r = Record::new(RecordKind::LlmCall, "chat");
        r.raw = Some(json!({"request": {
            "input": "Hi", "instructions": "Be brief.",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        }}));
        r.input_in_raw = Some(RequestShape::Responses);
        let derived = r.derived_attributes();
        let keys: Vec<&str> = derived.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [INPUT_MESSAGES, SYSTEM_INSTRUCTIONS, TOOL_DEFINITIONS]);
        assert_eq!(derived[1].1, messages::instructions("Be brief."));
        r.set_attribute(TOOL_DEFINITIONS, "mine");
        assert_eq!(r.derived_attributes().len(), 2);
        r.expand_content();
        assert!(r.derived_attributes().is_empty());
        assert_eq!(r.attribute(TOOL_DEFINITIONS), Some(&json!("mine")));
        assert_eq!(r.attribute(SYSTEM_INSTRUCTIONS), Some(&messages::instructions("Be brief.")));
    }
}
