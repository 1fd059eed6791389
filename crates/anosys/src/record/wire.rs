//! A [`Record`]'s JSON form: its fields by name, with the request and the
//! response kept as text ([`Record::request_text`],
//! [`Record::response_text`]) written inside `raw` as `raw.request` and
//! `raw.response`, so whoever reads the JSON finds the record as if it had
//! been parsed.

use std::borrow::Cow;
use std::time::SystemTime;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{
    time, Attributes, Caller, ErrorInfo, Event, JsonText, Link, Record, RecordKind, RequestShape, Resource,
    ResponseShape, SpanId, SpanKind, Status, TraceId,
};

/// The key of `raw` a request kept as text is written under.
pub(super) const REQUEST: &str = "request";

/// The key of `raw` a response kept as text is written under.
pub(super) const RESPONSE: &str = "response";

/// The key of `raw` a `raw` that is not an object is kept under when a
/// text kept apart joins it.
pub(super) const VALUE: &str = "value";

/// The record's fields as written, borrowed.
#[derive(Serialize)]
struct Wire<'a> {
    kind: RecordKind,
    name: &'a str,
    span_kind: SpanKind,
    #[serde(with = "time::iso")]
    start_time: SystemTime,
    #[serde(with = "time::iso")]
    end_time: SystemTime,
    trace_id: TraceId,
    span_id: SpanId,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<SpanId>,
    trace_flags: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_state: Option<&'a str>,
    status: &'a Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller: Option<&'a Caller>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_context: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<Written<Raw<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input_in_raw: Option<RequestShape>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_in_raw: Option<ResponseShape>,
    #[serde(skip_serializing_if = "WrittenAttributes::is_empty")]
    attributes: WrittenAttributes<'a>,
    #[serde(skip_serializing_if = "<[Event]>::is_empty")]
    events: &'a [Event],
    #[serde(skip_serializing_if = "<[Link]>::is_empty")]
    links: &'a [Link],
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a Resource>,
}

/// The attributes as written: the record's, then (for the record as
/// [`Record::expand_content`] would make it) those derived from the
/// content it keeps in `raw`, which it does not have (so a key is written
/// once).
struct WrittenAttributes<'a> {
    own: &'a Attributes,
    derived: &'a [(&'static str, Value)],
}

impl WrittenAttributes<'_> {
    fn is_empty(&self) -> bool {
        self.own.is_empty() && self.derived.is_empty()
    }
}

impl Serialize for WrittenAttributes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.own.len() + self.derived.len()))?;
        for (key, value) in self.own {
            map.serialize_entry(key, value)?;
        }
        for (key, value) in self.derived {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `raw` as written: the record's `raw`, with the request and the response
/// kept as text ([`Record::request_text`], [`Record::response_text`])
/// joined to it as `raw.request` and `raw.response` when there are such.
/// Both the record's JSON form and the AnoSys sink's `raw` column are
/// written from this.
pub(crate) enum Raw<'a> {
    /// No text kept apart: `raw` as it is.
    Plain(&'a Value),
    /// `raw`'s entries in the order written, each text kept apart at its
    /// place among the keys (as a parsed `raw` would have it).
    Joined(Vec<(&'a str, RawEntry<'a>)>),
}

/// An entry of a [`Raw::Joined`].
pub(crate) enum RawEntry<'a> {
    /// A value of the record's `raw`.
    Value(&'a Value),
    /// A request or response kept as text.
    Text(&'a JsonText),
}

impl<'a> Raw<'a> {
    /// `raw` and the request and response kept as text, as written.
    fn of(raw: Option<&'a Value>, request: Option<&'a JsonText>, response: Option<&'a JsonText>) -> Option<Self> {
        // In key order, as a parsed `raw` (its keys sorted) has them.
        let texts: Vec<(&'a str, RawEntry<'a>)> =
            [(REQUEST, request), (RESPONSE, response)].into_iter().filter_map(|(key, text)| Some((key, RawEntry::Text(text?)))).collect();
        if texts.is_empty() {
            return raw.map(Raw::Plain);
        }
        Some(Raw::Joined(match raw {
            Some(Value::Object(entries)) => {
                let mut joined = Vec::with_capacity(entries.len() + texts.len());
                // A text wins over an entry of the value under its key.
                let kept_apart = |key: &str| (key == REQUEST && request.is_some()) || (key == RESPONSE && response.is_some());
                let mut texts = texts.into_iter().peekable();
                for (key, value) in entries.iter().filter(|(key, _)| !kept_apart(key)) {
                    while let Some(text) = texts.next_if(|(k, _)| *k < key.as_str()) {
                        joined.push(text);
                    }
                    joined.push((key.as_str(), RawEntry::Value(value)));
                }
                joined.extend(texts);
                joined
            }
            None => texts,
            Some(other) => {
                let mut joined = texts;
                joined.push((VALUE, RawEntry::Value(other)));
                joined
            }
        }))
    }
}

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_raw(self, false, serializer)
    }
}

/// Arrays and objects of about this many bytes of JSON or more are
/// written fast (see [`Content`]).
const FAST_FROM_BYTES: usize = 1024;

/// A value of the record's JSON form: serialised by serde as any value,
/// or, when `fast` (for the record's own JSON text,
/// [`Record::write_json`]), an array or object of
/// [`FAST_FROM_BYTES`] or more written by [`crate::json`]
/// (eight bytes at a time where serde_json looks at each) and handed to
/// serde_json as raw JSON text, which it copies as it is.
#[derive(Clone, Copy)]
struct Content<'a> {
    value: &'a Value,
    fast: bool,
}

impl Serialize for Content<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !self.fast || !matches!(self.value, Value::Array(_) | Value::Object(_)) {
            return self.value.serialize(serializer);
        }
        // A small one is not worth a buffer of its own.
        let size = super::approx_value_size(self.value);
        if size < FAST_FROM_BYTES {
            return self.value.serialize(serializer);
        }
        let mut text = Vec::with_capacity(size + size / 8);
        crate::json::value(&mut text, self.value, false);
        match String::from_utf8(text) {
            // SAFETY: `json::value` writes a `Value` as JSON, byte for byte
            // as serde_json writes it (its tests compare the two on every
            // byte a string can hold and on nested values): JSON text,
            // which is what `from_string_unchecked` asks for. Debug builds
            // check it again (serde_json's own `debug_assert!`).
            Ok(text) => unsafe { RawValue::from_string_unchecked(text) }.serialize(serializer),
            Err(_) => self.value.serialize(serializer),
        }
    }
}

/// `raw` as written, its values [`Content`] (fast or not).
struct Written<T> {
    raw: T,
    fast: bool,
}

impl Serialize for Written<Raw<'_>> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_raw(&self.raw, self.fast, serializer)
    }
}

/// `raw` as written, its values [`Content`], `fast` or not.
fn serialize_raw<S: Serializer>(raw: &Raw<'_>, fast: bool, serializer: S) -> Result<S::Ok, S::Error> {
    let content = |value| Content { value, fast };
    match raw {
        Raw::Plain(value) => content(value).serialize(serializer),
        Raw::Joined(entries) => {
            let mut map = serializer.serialize_map(Some(entries.len()))?;
            for (key, entry) in entries {
                match entry {
                    RawEntry::Value(value) => map.serialize_entry(key, &content(value))?,
                    RawEntry::Text(text) => map.serialize_entry(key, text)?,
                }
            }
            map.end()
        }
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.wire(false).serialize(serializer)
    }
}

impl Record {
    /// Appends the record's JSON form to `buf`: the text
    /// `serde_json::to_writer(buf, &record)` writes, faster for records
    /// holding much content (a long chat history): their arrays and
    /// objects are written eight bytes at a time. What the local store,
    /// the JSON-lines file and the outbox keep.
    ///
    /// ```
    /// use anosys::{Record, RecordKind};
    /// use serde_json::json;
    ///
    /// let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    /// r.input = Some(json!([{"role": "user", "content": "say \"hi\"\n"}]));
    /// let mut text = Vec::new();
    /// r.write_json(&mut text)?;
    /// assert_eq!(text, serde_json::to_vec(&r)?);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn write_json(&self, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(buf, &self.wire(true))
    }

    /// Appends the JSON form of the record as
    /// [`expand_content`](Self::expand_content) would make it (its `input`,
    /// `output` and content attributes written out from what it keeps in
    /// `raw`), the record itself left as it is: nothing is copied, and a
    /// request or response kept as text is written as it is rather than
    /// parsed. A line of the JSON-lines file, which says everything on its
    /// own.
    ///
    /// ```
    /// use anosys::sources::openai::{CaptureOptions, OpenAiCall};
    /// use serde_json::{json, Value};
    ///
    /// let call = OpenAiCall::start(
    ///     "https://api.openai.com/v1/chat/completions",
    ///     br#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}"#,
    ///     &CaptureOptions::default(),
    /// );
    /// let record = call.finish(200, json!({"id": "c1", "model": "gpt-4o",
    ///     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}]}));
    /// assert!(record.input.is_none());
    /// let mut line = Vec::new();
    /// record.write_json_expanded(&mut line)?;
    /// let mut expanded = record.clone();
    /// expanded.expand_content();
    /// let written: Value = serde_json::from_slice(&line)?;
    /// assert_eq!(written, serde_json::to_value(&expanded)?);
    /// assert_eq!(written["input"][0]["content"], "Hi");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn write_json_expanded(&self, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        if self.input_in_raw.is_none() && self.output_in_raw.is_none() {
            // Expanding would only parse the texts into `raw`.
            return self.write_json(buf);
        }
        // As `expand_content` sets them (a field the record has is given
        // back as it is).
        let (input, derived) = self.input_and_derived();
        let output = self.output_given(&derived);
        let content = |value| Content { value, fast: true };
        let mut wire = self.wire(true);
        wire.input = input.as_deref().map(content);
        wire.output = output.as_deref().map(content);
        (wire.input_in_raw, wire.output_in_raw) = (None, None);
        wire.attributes.derived = &derived;
        serde_json::to_writer(buf, &wire)
    }

    /// [`write_json`](Self::write_json) into a new string.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut buf = Vec::with_capacity(self.approx_size());
        self.write_json(&mut buf)?;
        // serde_json writes UTF-8 only.
        String::from_utf8(buf).map_err(serde::ser::Error::custom)
    }

    /// The record's fields as written; `fast`: see [`Content`].
    fn wire<'a>(&'a self, fast: bool) -> Wire<'a> {
        let content = |value: &'a Option<Value>| value.as_ref().map(|value| Content { value, fast });
        Wire {
            kind: self.kind,
            name: &self.name,
            span_kind: self.span_kind,
            start_time: self.start_time,
            end_time: self.end_time,
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            trace_flags: self.trace_flags,
            trace_state: self.trace_state.as_deref(),
            status: &self.status,
            source: self.source.as_deref(),
            input: content(&self.input),
            output: content(&self.output),
            error: self.error.as_ref(),
            caller: self.caller.as_ref(),
            user_context: content(&self.user_context),
            raw: self.raw_written().map(|raw| Written { raw, fast }),
            input_in_raw: self.input_in_raw,
            output_in_raw: self.output_in_raw,
            attributes: WrittenAttributes { own: &self.attributes, derived: &[] },
            events: &self.events,
            links: &self.links,
            resource: self.resource.as_deref(),
        }
    }

    /// The record's `raw` with the request and the response kept as text
    /// ([`request_text`](Self::request_text),
    /// [`response_text`](Self::response_text)) parsed into it as
    /// `raw.request` and `raw.response`: what the record's JSON form holds
    /// as `raw`. Borrowed when there is no such text.
    ///
    /// ```
    /// use anosys::record::JsonText;
    /// use anosys::{Record, RecordKind};
    /// use serde_json::json;
    ///
    /// let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    /// r.request_text = Some(JsonText::compact(br#"{"model": "gpt-4o"}"#)?);
    /// r.response_text = Some(JsonText::compact(br#"{"id": "c1"}"#)?);
    /// let raw = json!({"request": {"model": "gpt-4o"}, "response": {"id": "c1"}});
    /// assert_eq!(r.raw_json().as_deref(), Some(&raw));
    /// assert_eq!(serde_json::to_value(&r)?["raw"], raw);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn raw_json(&self) -> Option<Cow<'_, Value>> {
        if self.request_text.is_none() && self.response_text.is_none() {
            return self.raw.as_ref().map(Cow::Borrowed);
        }
        let mut raw = self.raw.clone();
        for (key, text) in [(REQUEST, &self.request_text), (RESPONSE, &self.response_text)] {
            if let Some(text) = text {
                raw = Some(join(raw, key, parsed(text)));
            }
        }
        raw.map(Cow::Owned)
    }

    /// `raw` as the record's JSON form writes it: with the request and the
    /// response kept as text, when there are such, as they are (no parse).
    pub(crate) fn raw_written(&self) -> Option<Raw<'_>> {
        Raw::of(self.raw.as_ref(), self.request_text.as_ref(), self.response_text.as_ref())
    }

    /// Parses the request kept as text into `raw.request` (see
    /// [`request_text`](Self::request_text)), so `raw` holds it.
    pub(crate) fn request_text_into_raw(&mut self) {
        if let Some(text) = self.request_text.take() {
            self.raw = Some(join(self.raw.take(), REQUEST, parsed(&text)));
        }
    }

    /// Parses the response kept as text into `raw.response` (see
    /// [`response_text`](Self::response_text)), so `raw` holds it.
    pub(crate) fn response_text_into_raw(&mut self) {
        if let Some(text) = self.response_text.take() {
            self.raw = Some(join(self.raw.take(), RESPONSE, parsed(&text)));
        }
    }

    /// Parses both texts kept apart into `raw`, so `raw` holds it all.
    pub(crate) fn texts_into_raw(&mut self) {
        self.request_text_into_raw();
        self.response_text_into_raw();
    }
}

/// The value `text` holds (a string of it, should it not parse: it always
/// does, being JSON).
fn parsed(text: &JsonText) -> Value {
    text.to_value().unwrap_or_else(|_| Value::String(text.as_str().to_owned()))
}

/// `raw` with `value` put in it under `key`, as [`Raw`] writes them.
fn join(raw: Option<Value>, key: &str, value: Value) -> Value {
    match raw {
        Some(Value::Object(mut entries)) => {
            entries.insert(key.to_owned(), value);
            Value::Object(entries)
        }
        None => Value::Object(Map::from_iter([(key.to_owned(), value)])),
        Some(other) => Value::Object(Map::from_iter([(key.to_owned(), value), (VALUE.to_owned(), other)])),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// Any JSON value: strings of every kind of character (quotes,
    /// backslashes, control bytes, text that is not ASCII), numbers of
    /// every kind, nested arrays and objects.
    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "(?s).{0,40}".prop_map(Value::String),
            r#"[a\\"\x00-\x1f\x7fé日]{0,24}"#.prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("(?s).{0,12}", inner), 0..6).prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// `write_json` writes the text serde_json writes for the record,
        /// whatever its values hold.
        #[test]
        fn a_records_json_written_fast_is_serde_jsons(
            input in proptest::option::of(any_value()),
            output in proptest::option::of(any_value()),
            user_context in proptest::option::of(any_value()),
            raw in proptest::option::of(any_value()),
            request in proptest::option::of(any_value()),
            response in proptest::option::of(any_value()),
            big in any::<bool>(),
        ) {
            // Big: each value inside an array with a long text, so that
            // it is past `FAST_FROM_BYTES` and written by `crate::json`.
            let sized = |value: Option<Value>| {
                value.map(|v| if big { json!(["a \"quoted\" \\ text\n".repeat(64), v]) } else { v })
            };
            let mut r = Record::new(RecordKind::LlmCall, "chat \"gpt\"\n");
            r.input = sized(input);
            r.output = sized(output);
            r.user_context = sized(user_context);
            r.raw = sized(raw);
            r.request_text = request.map(|v| JsonText::compact(&serde_json::to_vec(&v).unwrap()).unwrap());
            r.response_text = response.map(|v| JsonText::compact(&serde_json::to_vec(&v).unwrap()).unwrap());
            let mut fast = Vec::new();
            r.write_json(&mut fast).unwrap();
            prop_assert_eq!(String::from_utf8(fast).unwrap(), serde_json::to_string(&r).unwrap());
            prop_assert_eq!(r.to_json().unwrap(), serde_json::to_string(&r).unwrap());
        }
    }

    fn with_text(raw: Option<Value>, response: &str) -> Record {
        let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
        r.raw = raw;
        r.response_text = Some(JsonText::compact(response.as_bytes()).unwrap());
        r
    }

    #[test]
    fn the_text_is_written_as_raw_response_in_its_place_among_the_keys() {
        let r = with_text(Some(json!({"zeta": 1, "request": {"b": 2, "a": 1}, "response": "stale"})), "{ \"y\": 1, \"x\": [true] }");
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""raw":{"request":{"a":1,"b":2},"response":{"y":1,"x":[true]},"zeta":1}"#), "{text}");
        // Read back, `raw` holds it all, parsed; the text wins over a
        // `response` the value had.
        let back: Record = serde_json::from_str(&text).unwrap();
        let whole = json!({"request": {"a": 1, "b": 2}, "response": {"x": [true], "y": 1}, "zeta": 1});
        assert_eq!((back.raw.as_ref(), back.response_text.as_ref()), (Some(&whole), None));
        assert_eq!(r.raw_json().as_deref(), Some(&whole));
        let mut folded = r.clone();
        folded.response_text_into_raw();
        assert_eq!((folded.raw.as_ref(), folded.response_text.as_ref()), (Some(&whole), None));
        assert_eq!(serde_json::to_value(&folded).unwrap(), serde_json::to_value(&r).unwrap());
    }

    #[test]
    fn the_text_joins_a_raw_that_is_absent_or_not_an_object_without_losing_it() {
        for (raw, whole) in [
            (None, json!({"response": [1]})),
            (Some(json!("note")), json!({"response": [1], "value": "note"})),
            (Some(json!([2])), json!({"response": [1], "value": [2]})),
        ] {
            let r = with_text(raw, "[1]");
            assert_eq!(serde_json::to_value(&r).unwrap()["raw"], whole);
            assert_eq!(r.raw_json().as_deref(), Some(&whole));
            let mut folded = r.clone();
            folded.response_text_into_raw();
            assert_eq!(folded.raw, Some(whole));
        }
    }

    #[test]
    fn a_request_and_a_response_kept_as_text_are_each_written_in_their_place() {
        let mut r = with_text(Some(json!({"zeta": 1, "alpha": [2], "request": "stale", "response": "stale"})), "{ \"y\": 1 }");
        r.request_text = Some(JsonText::compact(b"{ \"model\": \"m\", \"messages\": [] }").unwrap());
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""raw":{"alpha":[2],"request":{"model":"m","messages":[]},"response":{"y":1},"zeta":1}"#), "{text}");
        let whole = json!({"alpha": [2], "request": {"model": "m", "messages": []}, "response": {"y": 1}, "zeta": 1});
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!((back.raw.as_ref(), back.request_text.as_ref()), (Some(&whole), None));
        assert_eq!(r.raw_json().as_deref(), Some(&whole));
        // Folded one at a time, or both: the same JSON form.
        let mut folded = r.clone();
        folded.request_text_into_raw();
        assert_eq!((folded.request_text.as_ref(), folded.response_text.is_some()), (None, true));
        assert_eq!(serde_json::to_value(&folded).unwrap(), serde_json::to_value(&r).unwrap());
        folded.texts_into_raw();
        assert_eq!((folded.raw.as_ref(), folded.response_text.as_ref()), (Some(&whole), None));
        assert_eq!(serde_json::to_value(&folded).unwrap(), serde_json::to_value(&r).unwrap());
        // The request alone, with `raw` absent or not an object.
        for (raw, whole) in [
            (None, json!({"request": {"model": "m", "messages": []}})),
            (Some(json!(["v"])), json!({"request": {"model": "m", "messages": []}, "value": ["v"]})),
        ] {
            let mut alone = Record::new(RecordKind::LlmCall, "chat");
            alone.raw = raw;
            alone.request_text = r.request_text.clone();
            assert_eq!(serde_json::to_value(&alone).unwrap()["raw"], whole);
            assert_eq!(alone.raw_json().as_deref(), Some(&whole));
            alone.texts_into_raw();
            assert_eq!(alone.raw, Some(whole));
        }
    }

    /// A record with every field set, the same each time.
    fn full() -> Record {
        use std::time::Duration;
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_900_000_000_000 + s);
        let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
        (r.span_kind, r.start_time, r.end_time) = (SpanKind::Client, at(0), at(1_500));
        (r.trace_id, r.span_id) = (TraceId([7; 16]), SpanId([9; 8]));
        (r.parent_span_id, r.trace_flags, r.trace_state) = (Some(SpanId([3; 8])), 0, Some("k=v".into()));
        r.source = Some("app".into());
        (r.input, r.output, r.user_context) = (Some(json!([1])), Some(json!("out")), Some(json!({"user": "u"})));
        r.fail(ErrorInfo { error_type: "E".into(), message: "m".into(), stack: Some("s".into()) });
        r.caller = Some(Caller { function: Some("f".into()), file: "a.rs".into(), line: 3 });
        r.raw = Some(json!({"request": {"z": 1, "a": [null]}, "response": {"id": "c"}}));
        (r.input_in_raw, r.output_in_raw) = (Some(RequestShape::Chat), Some(ResponseShape::Chat));
        r.set_attribute("b", 1).set_attribute("a", json!({"y": 2, "x": 1}));
        let mut attributes = Attributes::default();
        attributes.insert("e".into(), json!(true));
        r.events.push(Event { name: "ev".into(), time: at(5), attributes: attributes.clone() });
        r.links.push(Link { trace_id: TraceId([1; 16]), span_id: SpanId([2; 8]), trace_state: None, attributes: attributes.clone() });
        r.resource = Some(std::sync::Arc::new(Resource { attributes }));
        r
    }

    #[test]
    fn a_record_without_text_is_written_as_before() {
        // As the derived `Serialize` wrote it (checked on the commit before).
        let written = serde_json::to_string(&full()).unwrap();
        assert_eq!(written, FULL);
        let mut bare = Record::new(RecordKind::Raw, "r");
        (bare.start_time, bare.end_time, bare.trace_id, bare.span_id) = (SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH, TraceId([1; 16]), SpanId([1; 8]));
        assert_eq!(serde_json::to_string(&bare).unwrap(), BARE);
        assert!(matches!(full().raw_json(), Some(Cow::Borrowed(_))));
        // Its response kept as text instead: the same bytes.
        let mut as_text = full();
        if let Some(Value::Object(raw)) = &mut as_text.raw {
            raw.remove(RESPONSE);
        }
        as_text.response_text = Some(JsonText::compact(b"{ \"id\": \"c\" }").unwrap());
        assert_eq!(serde_json::to_string(&as_text).unwrap(), FULL);
        // And its request too.
        if let Some(Value::Object(raw)) = &mut as_text.raw {
            raw.remove(REQUEST);
        }
        as_text.request_text = Some(JsonText::compact(b"{\"a\": [ null ], \"z\": 1}").unwrap());
        assert_eq!(serde_json::to_string(&as_text).unwrap(), FULL);
    }

    /// `write_json_expanded` writes what `expand_content` then
    /// `write_json` write: the same bytes when `raw` holds the request and
    /// response as values, the same JSON when they are kept as text (then
    /// written as they are, not parsed). Whatever fields and content
    /// attributes the record has itself win, as they do in `expand_content`.
    #[test]
    fn a_record_written_expanded_is_the_record_expanded_then_written() {
        let request = json!({"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief"},
            {"role": "user", "content": "Hi \"there\"\n"}], "tools": [{"type": "function", "function": {"name": "f"}}]});
        let response = json!({"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "Hello", "tool_calls": [{"id": "t", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]}}], "usage": {"prompt_tokens": 5, "completion_tokens": 2}});
        let base = || {
            let mut r = full();
            (r.input, r.output) = (None, None);
            r.raw = Some(json!({"request": request, "response": response, "zz": "kept"}));
            r
        };
        let mut cases: Vec<(&str, Record)> = vec![("kept in raw", base())];
        let mut r = base();
        r.input = Some(json!("mine"));
        cases.push(("input set", r));
        let mut r = base();
        r.output = Some(json!("my output"));
        cases.push(("output set", r));
        let mut r = base();
        r.set_attribute("gen_ai.input.messages", "my messages");
        r.set_attribute("gen_ai.output.messages", json!([]));
        cases.push(("content attributes set", r));
        let mut r = base();
        r.output_in_raw = None;
        cases.push(("request only", r));
        let mut r = base();
        r.input_in_raw = None;
        cases.push(("response only", r));
        let mut r = base();
        (r.input_in_raw, r.output_in_raw) = (None, None);
        cases.push(("nothing in raw", r));
        let mut r = base();
        r.raw = Some(json!({"request": {"model": "gpt-4o", "messages": "not a list"}, "response": "not an object", "zz": "kept"}));
        cases.push(("odd content", r));
        for (name, record) in cases {
            let mut expanded = record.clone();
            expanded.expand_content();
            let mut line = Vec::new();
            record.write_json_expanded(&mut line).unwrap();
            assert_eq!(String::from_utf8(line).unwrap(), expanded.to_json().unwrap(), "{name}");
            // The request and the response kept as text instead.
            let mut as_text = record.clone();
            if let Some(Value::Object(raw)) = &mut as_text.raw {
                for (key, text) in [(REQUEST, &mut as_text.request_text), (RESPONSE, &mut as_text.response_text)] {
                    let value = raw.remove(key).unwrap();
                    *text = Some(JsonText::compact(serde_json::to_string_pretty(&value).unwrap().as_bytes()).unwrap());
                }
            }
            let mut line = Vec::new();
            as_text.write_json_expanded(&mut line).unwrap();
            let line: Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(line, serde_json::to_value(&expanded).unwrap(), "{name}, as text");
            assert_eq!(line["raw"]["zz"], "kept", "{name}");
        }
    }

    const FULL: &str = r#"{"kind":"llm_call","name":"chat gpt-4o","span_kind":"CLIENT","start_time":"2025-12-05T02:00:00.000000Z","end_time":"2025-12-05T02:00:00.001500Z","trace_id":"07070707070707070707070707070707","span_id":"0909090909090909","parent_span_id":"0303030303030303","trace_flags":0,"trace_state":"k=v","status":{"code":"ERROR","message":"m"},"source":"app","input":[1],"output":"out","error":{"type":"E","message":"m","stack":"s"},"caller":{"function":"f","file":"a.rs","line":3},"user_context":{"user":"u"},"raw":{"request":{"a":[null],"z":1},"response":{"id":"c"}},"input_in_raw":"chat","output_in_raw":"chat","attributes":{"b":1,"a":{"x":1,"y":2}},"events":[{"name":"ev","time":"2025-12-05T02:00:00.000005Z","attributes":{"e":true}}],"links":[{"trace_id":"01010101010101010101010101010101","span_id":"0202020202020202","attributes":{"e":true}}],"resource":{"e":true}}"#;
    const BARE: &str = r#"{"kind":"raw","name":"r","span_kind":"INTERNAL","start_time":"1970-01-01T00:00:00.000000Z","end_time":"1970-01-01T00:00:00.000000Z","trace_id":"01010101010101010101010101010101","span_id":"0101010101010101","trace_flags":1,"status":{"code":"UNSET"}}"#;
}
