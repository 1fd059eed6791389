//! Redaction of secrets and personal data in captured records, before any
//! sink sees them.
//!
//! A [`Redactor`] scans every string of a [`Record`]: the name, source and
//! status message, input, output, raw payload (a response kept as text
//! included: it is read in place, and parsed only when something in it is
//! to be replaced) and user context (through
//! nested JSON arrays and objects, and JSON objects or arrays encoded inside
//! strings, such as tool-call arguments), the error's type, message and
//! stack, the caller, every attribute (values, and names of 13 bytes or
//! more but those that are `&'static str`), the events' and links' attributes, and the record's own resource
//! when it has one. Each secret found is replaced by `[REDACTED:<kind>]`
//! (a URL keeps everything but its password, `Bearer ` keeps the word), and
//! a record where anything was replaced gets the attribute
//! `anosys.redacted`, a JSON object of counts by kind.
//!
//! What is looked for is a [`RedactionConfig`]: the built-in [`Kind`]s
//! (API keys of OpenAI, Anthropic, Google, AWS, GitHub, Slack; bearer
//! tokens, JWTs, private keys, URL passwords, card numbers and the values of
//! keys named like secrets, on by default; e-mail addresses, phone numbers
//! and IP addresses, opt-in) and custom named regular expressions, from code
//! or from `ANOSYS_REDACT` and `ANOSYS_REDACT_PATTERNS` (see
//! [`RedactionConfig::from_env_values`]).
//!
//! ```
//! use anosys::redact::{Redactor, RedactionConfig};
//! use anosys::{Record, RecordKind};
//! use serde_json::json;
//!
//! let redactor = Redactor::new(&RedactionConfig::default())?;
//! let mut record = Record::new(RecordKind::LlmCall, "chat gpt-4o");
//! record.input = Some(json!([{"role": "user", "parts": [{"type": "text",
//!     "content": "my key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"}]}]));
//! record.set_attribute("gen_ai.request.max_tokens", 256);
//! record.set_attribute("http.request.header.authorization", "Bearer abc123def456ghi789");
//!
//! let found = redactor.redact_record(&mut record);
//! assert_eq!(found.count("openai_key"), 1);
//! assert_eq!(found.count("secret_key"), 1);
//! assert_eq!(record.input.as_ref().unwrap()[0]["parts"][0]["content"], "my key is [REDACTED:openai_key]");
//! assert_eq!(record.attribute("gen_ai.request.max_tokens"), Some(&json!(256)));
//! assert_eq!(record.attribute("anosys.redacted"), Some(&json!({"openai_key": 1, "secret_key": 1})));
//! # Ok::<(), anosys::redact::RedactError>(())
//! ```
//!
//! # Cost and limits
//!
//! The built-in kinds cost time linear in the text: a literal prefilter
//! finds anchors (`sk-`, `AKIA`, `eyJ`, `-----BEGIN`, `://`, `bearer`,
//! `password`, …) and checks run only there; cards and IPv4 addresses take
//! one pass over the digits. A record without secrets costs a few
//! microseconds.
//!
//! Custom patterns use the [`regex`](https://docs.rs/regex) crate, whose
//! matching is linear in the text too, and are limited besides (see
//! [`RedactionConfig::with_custom_limits`]). The limits **fail closed**: a
//! string longer than the size cap, and every string still to scan once the
//! record's time budget is spent, is replaced whole by
//! `[REDACTED:unscanned]` and counted as `unscanned`. So is a value nested
//! more than 128 levels deep. Redaction never lets an unscanned string
//! through, never blocks and never panics.

mod config;
mod keys;
mod scan;
#[cfg(test)]
mod tests;
mod text;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Map, Value};

pub use config::{
    Kind, RedactError, RedactionConfig, DEFAULT_CUSTOM_BUDGET, DEFAULT_MAX_CUSTOM_SCAN_LEN, PATTERNS_VARIABLE,
    REDACT_VARIABLE, UNSCANNED,
};

use crate::record::{Attributes, Record, Resource};
use text::{Detectors, Hit, Label};

/// The attribute a redacted record carries: a JSON object of counts by
/// kind, e.g. `{"openai_key": 1, "secret_key": 2}`.
pub const REDACTED_ATTRIBUTE: &str = "anosys.redacted";

/// How deep nested arrays and objects are followed; deeper values are
/// replaced whole (`unscanned`).
const MAX_DEPTH: usize = 128;

/// How many levels of JSON inside strings are opened.
const MAX_STRING_NESTING: u8 = 4;

/// Names of keys shorter than this are not scanned (no secret fits).
const MIN_SCANNED_KEY_LEN: usize = 13;

/// What a redaction replaced: counts by kind name (a built-in
/// [`Kind::name`], a custom pattern's name, or [`UNSCANNED`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redactions {
    counts: Vec<(Cow<'static, str>, usize)>,
}

impl Redactions {
    /// Whether nothing was replaced.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// How many replacements were made in all.
    pub fn total(&self) -> usize {
        self.counts.iter().map(|(_, n)| n).sum()
    }

    /// How many secrets of the kind (or custom pattern) named `name` were
    /// replaced.
    pub fn count(&self, name: &str) -> usize {
        self.counts.iter().find(|(n, _)| n == name).map_or(0, |(_, c)| *c)
    }

    /// The counts, by name in alphabetical order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        self.counts.iter().map(|(n, c)| (n.as_ref(), *c))
    }

    /// Adds `count` replacements of `name`.
    pub fn add(&mut self, name: impl Into<Cow<'static, str>>, count: usize) {
        let name = name.into();
        match self.counts.binary_search_by(|(n, _)| n.as_ref().cmp(name.as_ref())) {
            Ok(i) => self.counts[i].1 += count,
            Err(i) => self.counts.insert(i, (name, count)),
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Redactions) {
        for (name, count) in &other.counts {
            self.add(name.clone(), *count);
        }
    }

    /// The counts as the JSON object of [`REDACTED_ATTRIBUTE`].
    pub fn to_json(&self) -> Value {
        Value::Object(self.counts.iter().map(|(n, c)| (n.to_string(), Value::from(*c))).collect())
    }
}

/// Finds and replaces secrets in records, JSON values and text.
///
/// Built once from a [`RedactionConfig`] (compiling its patterns), then
/// shared: every method takes `&self`.
///
/// ```
/// use anosys::redact::{Redactor, RedactionConfig};
///
/// let redactor = Redactor::new(&RedactionConfig::from_env_values(Some("default,email"), None)?)?;
/// let (text, found) = redactor.redact_str("mail ann@example.com, db postgres://app:s3cr3t@db:5432/prod");
/// assert_eq!(text, "mail [REDACTED:email], db postgres://app:[REDACTED:url_password]@db:5432/prod");
/// assert_eq!((found.count("email"), found.count("url_password")), (1, 1));
///
/// let (text, found) = redactor.redact_str("max_tokens: 512, risk-averse task-list");
/// assert!(found.is_empty() && matches!(text, std::borrow::Cow::Borrowed(_)));
/// # Ok::<(), anosys::redact::RedactError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Redactor {
    enabled: bool,
    secret_keys: bool,
    detectors: Detectors,
    custom: Vec<(Arc<str>, Regex)>,
    max_custom_scan_len: usize,
    custom_budget: Duration,
    last_resource: LastResource,
}

/// The last resource [`Redactor::redact_record`] redacted (see
/// `redact_resource`); a clone of the redactor starts without one.
#[derive(Debug, Default)]
struct LastResource(std::sync::Mutex<Option<ResourceSeen>>);

impl Clone for LastResource {
    fn clone(&self) -> Self {
        LastResource::default()
    }
}

#[derive(Debug)]
struct ResourceSeen {
    /// The resource as records hold it: weak, so that it is freed with
    /// its last record, yet its memory is kept, so that no other resource
    /// can take its address while it is remembered here.
    resource: std::sync::Weak<Resource>,
    /// It redacted, when anything in it was.
    redacted: Option<Arc<Resource>>,
    /// What was found in it.
    counts: Vec<(Label, usize)>,
}

impl Redactor {
    /// A redactor for `config`; fails when a custom pattern has an invalid
    /// name or regular expression.
    pub fn new(config: &RedactionConfig) -> Result<Redactor, RedactError> {
        let custom = config
            .patterns()
            .iter()
            .map(|(name, regex)| Ok((Arc::from(name.as_str()), config::check_pattern(None, name, regex)?)))
            .collect::<Result<Vec<_>, RedactError>>()?;
        let (max_custom_scan_len, custom_budget) = config.custom_limits();
        Ok(Redactor {
            enabled: config.is_enabled(),
            secret_keys: config.has_kind(Kind::SecretKey),
            detectors: Detectors::new(config.kind_set()),
            custom,
            max_custom_scan_len,
            custom_budget,
            last_resource: LastResource::default(),
        })
    }

    /// Whether the redactor changes anything (`false` for
    /// [`RedactionConfig::off`]).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Redacts every string of `record` (see the [module](self) for which)
    /// and, when anything was replaced, sets [`REDACTED_ATTRIBUTE`] to the
    /// counts (added to those of an earlier redaction).
    pub fn redact_record(&self, record: &mut Record) -> Redactions {
        if !self.enabled {
            return Redactions::default();
        }
        let earlier = record.attributes.shift_remove(REDACTED_ATTRIBUTE);
        let mut pass = Pass::new(self);
        pass.string(&mut record.name);
        if let Some(source) = &mut record.source {
            pass.string(source);
        }
        if let Some(message) = &mut record.status.message {
            pass.string(message);
        }
        if let Some(state) = &mut record.trace_state {
            pass.string(state);
        }
        // A request or response kept as text stays text unless something
        // in it is to be redacted: then it is parsed into `raw`, redacted
        // with the rest.
        if let Some(text) = &record.request_text
            && self.might_change_json(text.as_str(), 1)
        {
            record.request_text_into_raw();
        }
        if let Some(text) = &record.response_text
            && self.might_change_json(text.as_str(), 1)
        {
            record.response_text_into_raw();
        }
        for value in
            [&mut record.input, &mut record.output, &mut record.user_context, &mut record.raw].into_iter().flatten()
        {
            pass.value(value, 0);
        }
        if let Some(error) = &mut record.error {
            pass.string(&mut error.error_type);
            pass.string(&mut error.message);
            if let Some(stack) = &mut error.stack {
                pass.string(stack);
            }
        }
        if let Some(caller) = &mut record.caller {
            if let Some(function) = &mut caller.function {
                pass.string(function);
            }
            pass.string(&mut caller.file);
        }
        pass.attributes(&mut record.attributes);
        for event in &mut record.events {
            pass.string(&mut event.name);
            pass.attributes(&mut event.attributes);
        }
        for link in &mut record.links {
            if let Some(state) = &mut link.trace_state {
                pass.string(state);
            }
            pass.attributes(&mut link.attributes);
        }
        if let Some(resource) = &mut record.resource {
            self.redact_resource(resource, &mut pass);
        }
        let found = pass.finish();
        let mut all = found.clone();
        if let Some(Value::Object(earlier)) = &earlier {
            for (name, count) in earlier {
                all.add(name.clone(), count.as_u64().and_then(|c| usize::try_from(c).ok()).unwrap_or(0));
            }
        }
        if !all.is_empty() {
            record.attributes.insert(Cow::Borrowed(REDACTED_ATTRIBUTE), all.to_json());
        } else if let Some(earlier) = earlier {
            record.attributes.insert(Cow::Borrowed(REDACTED_ATTRIBUTE), earlier);
        }
        found
    }

    /// Redacts a record's resource, counting what it found into `pass`.
    /// Records share their pipeline's resource: the last one redacted is
    /// remembered with what it came to, so that each record does not copy
    /// and scan it again.
    fn redact_resource(&self, resource: &mut Arc<Resource>, pass: &mut Pass<'_>) {
        let mut last = self.last_resource.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = match last.as_ref() {
            Some(seen) if std::ptr::eq(seen.resource.as_ptr(), Arc::as_ptr(resource)) => seen,
            _ => {
                let mut own = Pass::new(self);
                let mut attributes = resource.attributes.clone();
                own.attributes(&mut attributes);
                let redacted = (own.total > 0).then(|| Arc::new(Resource { attributes }));
                last.insert(ResourceSeen { resource: Arc::downgrade(resource), redacted, counts: own.counts })
            }
        };
        for &(label, n) in &known.counts {
            pass.count_n(label, n);
        }
        if let Some(redacted) = &known.redacted {
            *resource = redacted.clone();
        }
    }

    /// Redacts every string inside `value` (and the values of secret-named
    /// keys of its objects). JSON inside a string is written back only when
    /// something in it was replaced, compact, its object keys in
    /// `serde_json`'s order (sorted unless its `preserve_order` feature is on).
    ///
    /// ```
    /// use anosys::redact::{Redactor, RedactionConfig};
    /// use serde_json::json;
    ///
    /// let redactor = Redactor::new(&RedactionConfig::default())?;
    /// let mut call = json!({"type": "tool_call", "name": "login",
    ///     "arguments": "{\"user\":\"ann\",\"password\":\"hunter22\"}"});
    /// let found = redactor.redact_value(&mut call);
    /// assert_eq!(found.count("secret_key"), 1);
    /// let arguments: serde_json::Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    /// assert_eq!(arguments, json!({"user": "ann", "password": "[REDACTED:secret_key]"}));
    /// # Ok::<(), anosys::redact::RedactError>(())
    /// ```
    pub fn redact_value(&self, value: &mut Value) -> Redactions {
        if !self.enabled {
            return Redactions::default();
        }
        let mut pass = Pass::new(self);
        pass.value(value, 0);
        pass.finish()
    }

    /// `text` with every secret replaced (borrowed when there was none), and
    /// what was replaced.
    ///
    /// ```
    /// use anosys::redact::{Redactor, RedactionConfig};
    ///
    /// let redactor = Redactor::new(&RedactionConfig::default())?;
    /// let (text, found) = redactor.redact_str("curl -H 'Authorization: Bearer 9f8e7d6c5b4a3f2e1d0c' https://api.example.com");
    /// assert_eq!(text, "curl -H 'Authorization: Bearer [REDACTED:bearer_token]' https://api.example.com");
    /// assert_eq!(found.count("bearer_token"), 1);
    /// # Ok::<(), anosys::redact::RedactError>(())
    /// ```
    pub fn redact_str<'a>(&self, text: &'a str) -> (Cow<'a, str>, Redactions) {
        if !self.enabled {
            return (Cow::Borrowed(text), Redactions::default());
        }
        let mut pass = Pass::new(self);
        let redacted = pass.text(text);
        let found = pass.finish();
        (redacted.map_or(Cow::Borrowed(text), Cow::Owned), found)
    }

    fn label_name(&self, label: Label) -> Cow<'static, str> {
        match label {
            Label::Kind(kind) => Cow::Borrowed(kind.name()),
            Label::Custom(i) => {
                Cow::Owned(self.custom.get(i).map_or_else(|| UNSCANNED.to_owned(), |(n, _)| n.to_string()))
            }
            Label::Unscanned => Cow::Borrowed(UNSCANNED),
        }
    }
}

/// The replacement text for `label`.
fn marker(redactor: &Redactor, label: Label) -> String {
    format!("[REDACTED:{}]", redactor.label_name(label))
}

fn is_marker(text: &str) -> bool {
    text.starts_with("[REDACTED:") && text.ends_with(']') && !text[1..].contains('[')
}

/// One redaction: its counts, time budget and scratch space.
struct Pass<'r> {
    redactor: &'r Redactor,
    counts: Vec<(Label, usize)>,
    total: usize,
    deadline: Option<Instant>,
    nesting: u8,
    hits: Vec<Hit>,
}

impl<'r> Pass<'r> {
    fn new(redactor: &'r Redactor) -> Pass<'r> {
        let deadline = (!redactor.custom.is_empty()).then(|| Instant::now() + redactor.custom_budget);
        Pass { redactor, counts: Vec::new(), total: 0, deadline, nesting: 0, hits: Vec::new() }
    }

    fn count(&mut self, label: Label) {
        self.count_n(label, 1);
    }

    fn count_n(&mut self, label: Label, n: usize) {
        self.total += n;
        match self.counts.iter_mut().find(|(l, _)| *l == label) {
            Some((_, count)) => *count += n,
            None => self.counts.push((label, n)),
        }
    }

    fn finish(self) -> Redactions {
        let mut found = Redactions::default();
        for (label, count) in &self.counts {
            found.add(self.redactor.label_name(*label), *count);
        }
        found
    }

    fn out_of_time(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn string(&mut self, s: &mut String) {
        if let Some(redacted) = self.text(s) {
            *s = redacted;
        }
    }

    /// The redacted text, `None` when nothing was found.
    fn text(&mut self, s: &str) -> Option<String> {
        if s.len() < self.redactor.detectors.min_len() && self.redactor.custom.is_empty() {
            return None;
        }
        let trimmed = s.trim();
        let json_like = matches!(
            (trimmed.as_bytes().first(), trimmed.as_bytes().last()),
            (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))
        ) && trimmed.len() >= 2;
        if json_like
            && self.nesting < MAX_STRING_NESTING
            && (!self.redactor.custom.is_empty()
                || trimmed.contains('\\')
                || self.redactor.detectors.might_match(trimmed))
            && let Ok(mut value) = serde_json::from_str::<Value>(trimmed)
        {
            let before = self.total;
            self.nesting += 1;
            self.value(&mut value, 0);
            self.nesting -= 1;
            return (self.total != before).then(|| {
                serde_json::to_string(&value).unwrap_or_else(|_| {
                    self.count(Label::Unscanned);
                    marker(self.redactor, Label::Unscanned)
                })
            });
        }
        self.plain(s)
    }

    /// Text taken as text (not opened as JSON).
    fn plain(&mut self, s: &str) -> Option<String> {
        let redactor = self.redactor;
        let mut hits = std::mem::take(&mut self.hits);
        hits.clear();
        if s.len() >= redactor.detectors.min_len() {
            redactor.detectors.find(s, &mut hits);
        }
        if !redactor.custom.is_empty() {
            if s.len() > redactor.max_custom_scan_len || self.out_of_time() {
                return Some(self.unscanned());
            }
            for (i, (_, regex)) in redactor.custom.iter().enumerate() {
                if i > 0 && self.out_of_time() {
                    return Some(self.unscanned());
                }
                hits.extend(regex.find_iter(s).filter(|m| !m.is_empty()).map(|m| Hit {
                    start: m.start(),
                    end: m.end(),
                    label: Label::Custom(i),
                }));
            }
        }
        if hits.is_empty() {
            self.hits = hits;
            return None;
        }
        text::merge(&mut hits);
        let mut out = String::with_capacity(s.len() + 16 * hits.len());
        let mut from = 0;
        for hit in &hits {
            // Spans end on character boundaries (their ends are ASCII or
            // regex matches); a defect here must not leak the secret.
            match (s.get(from..hit.start), s.is_char_boundary(hit.end)) {
                (Some(before), true) => out.push_str(before),
                _ => {
                    self.hits = Vec::new();
                    return Some(self.unscanned());
                }
            }
            out.push_str(&marker(redactor, hit.label));
            self.count(hit.label);
            from = hit.end;
        }
        out.push_str(&s[from..]);
        self.hits = hits;
        Some(out)
    }

    fn unscanned(&mut self) -> String {
        self.count(Label::Unscanned);
        marker(self.redactor, Label::Unscanned)
    }

    fn value(&mut self, value: &mut Value, depth: usize) {
        if depth > MAX_DEPTH && matches!(value, Value::Array(_) | Value::Object(_)) {
            *value = Value::String(self.unscanned());
            return;
        }
        match value {
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                for item in items {
                    self.value(item, depth + 1);
                }
            }
            Value::Object(map) => self.object(map, depth),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn object(&mut self, map: &mut Map<String, Value>, depth: usize) {
        let mut renames: Vec<(usize, String)> = Vec::new();
        for (i, (key, value)) in map.iter_mut().enumerate() {
            self.entry(key, value, depth);
            if key.len() >= MIN_SCANNED_KEY_LEN
                && let Some(new) = self.plain(key)
            {
                renames.push((i, new));
            }
        }
        if !renames.is_empty() {
            let old = std::mem::take(map);
            let mut renames = renames.into_iter().peekable();
            for (i, (key, value)) in old.into_iter().enumerate() {
                let key = match renames.next_if(|(j, _)| *j == i) {
                    Some((_, new)) => new,
                    None => key,
                };
                map.insert(key, value);
            }
        }
    }

    fn attributes(&mut self, attributes: &mut Attributes) {
        let mut renames: Vec<(usize, String)> = Vec::new();
        for (i, (key, value)) in attributes.iter_mut().enumerate() {
            let secret = match key {
                Cow::Borrowed(name) => self.redactor.secret_keys && keys::classify_static(name).is_some(),
                Cow::Owned(name) => self.redactor.secret_keys && keys::classify(name).is_some(),
            };
            self.entry_classified(secret, value, 0);
            // A borrowed key is a `&'static str` of the program: no secret.
            if matches!(key, Cow::Owned(_))
                && key.len() >= MIN_SCANNED_KEY_LEN
                && let Some(new) = self.plain(key)
            {
                renames.push((i, new));
            }
        }
        if !renames.is_empty() {
            let old = std::mem::take(attributes);
            let mut renames = renames.into_iter().peekable();
            let mut rebuilt = Attributes::with_capacity_and_hasher(old.len(), Default::default());
            for (i, (key, value)) in old.into_iter().enumerate() {
                let key = match renames.next_if(|(j, _)| *j == i) {
                    Some((_, new)) => Cow::Owned(new),
                    None => key,
                };
                rebuilt.insert(key, value);
            }
            *attributes = rebuilt;
        }
    }

    /// One key and its value: the value of a secret-named key is replaced
    /// whole, any other is scanned.
    fn entry(&mut self, key: &str, value: &mut Value, depth: usize) {
        self.entry_classified(self.redactor.secret_keys && keys::classify(key).is_some(), value, depth);
    }

    /// [`entry`](Self::entry) of a key already classified: `secret` if
    /// its value is to be replaced whole.
    fn entry_classified(&mut self, secret: bool, value: &mut Value, depth: usize) {
        if secret {
            self.secret(value, depth);
        } else {
            self.value(value, depth + 1);
        }
    }

    /// Replaces every string (and number) inside the value of a
    /// secret-named key.
    fn secret(&mut self, value: &mut Value, depth: usize) {
        match value {
            Value::String(s) if s.is_empty() || is_marker(s) => {}
            Value::String(_) | Value::Number(_) => {
                self.count(Label::Kind(Kind::SecretKey));
                *value = Value::String(marker(self.redactor, Label::Kind(Kind::SecretKey)));
            }
            Value::Array(_) | Value::Object(_) if depth > MAX_DEPTH => {
                *value = Value::String(self.unscanned());
            }
            Value::Array(items) => {
                for item in items {
                    self.secret(item, depth + 1);
                }
            }
            Value::Object(map) => {
                for (_, item) in map.iter_mut() {
                    self.secret(item, depth + 1);
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
    }
}
