//! Record → one flat AnoSys JSON object.
//!
//! Known keys go to the fixed columns of [`mapping`];
//! unknown keys get dynamic `cvs`/`cvn`/`cvb` slots from the process-wide
//! [`SlotRegistry`]; the full mapping, taken after this record's slots were
//! assigned, travels in `otel_schema_url`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::mapping::{self, ColumnType};
use crate::config::StartingIndices;
use crate::diag::{self, LogLevel};
use crate::json;
use crate::record::time::{epoch_millis, Iso};
#[cfg(test)]
use crate::record::time::to_iso;
use crate::record::{Raw, RawEntry, Record, Resource, StatusCode};

/// The type family of a dynamic slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SlotType {
    /// `cvs`: strings, lists and maps.
    String,
    /// `cvn`: integers and floats.
    Number,
    /// `cvb`: booleans.
    Bool,
}

impl SlotType {
    fn of(value: &Value) -> SlotType {
        match value {
            Value::Bool(_) => SlotType::Bool,
            Value::Number(_) => SlotType::Number,
            _ => SlotType::String,
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            SlotType::String => "cvs",
            SlotType::Number => "cvn",
            SlotType::Bool => "cvb",
        }
    }

    fn max(self) -> u32 {
        match self {
            SlotType::String => mapping::MAX_STRING_SLOT,
            SlotType::Number => mapping::MAX_NUMBER_SLOT,
            SlotType::Bool => mapping::MAX_BOOL_SLOT,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug)]
struct RegistryState {
    /// key → assigned slot (dynamic keys only; bounded by the slot count,
    /// so a fast non-keyed hash is safe).
    assigned: mapping::FastMap<String, (Arc<str>, ColumnType)>,
    /// key → where it goes (fixed column or slot), for keys that have a
    /// column: one lookup per attribute (bounded like `assigned`, plus the
    /// fixed keys).
    resolved: mapping::FastMap<String, Placed>,
    /// The same for keys that are `&'static str`, by their address and
    /// length (which always hold the same text): no hashing of the text, no
    /// comparing it. At most [`ADDRESSES_MAX`] entries.
    by_address: mapping::FastMap<(usize, usize), Placed>,
    /// insertion order of `assigned`, for a stable mapping document.
    order: Vec<(String, Arc<str>)>,
    used: HashSet<Arc<str>>,
    next: [u32; 3],
    /// The whole mapping as a JSON string literal (quoted and escaped,
    /// ready to splice into a body), rebuilt only when it changes.
    mapping_json: Option<Arc<str>>,
    /// The same literal followed by the body's closing brace: the end of
    /// every body (see [`Encoder::encode_wire`]), rebuilt with it.
    mapping_tail: Option<Arc<str>>,
}

/// The process-wide registry of dynamic slots: a key keeps its slot for the
/// life of the process and two keys never share one.
///
/// ```
/// use anosys::sinks::anosys::{SlotRegistry, SlotType};
/// let registry = SlotRegistry::new();
/// let a = registry.slot_for("customer.tier", SlotType::String).unwrap();
/// let b = registry.slot_for("order.total", SlotType::Number).unwrap();
/// assert_eq!(&*a, "cvs100");
/// assert_eq!(&*b, "cvn4"); // cvn3 is server.port's
/// assert_eq!(registry.slot_for("customer.tier", SlotType::String), Some(a));
/// ```
#[derive(Debug)]
pub struct SlotRegistry {
    state: Mutex<RegistryState>,
}

impl Default for SlotRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl SlotRegistry {
    /// An empty registry with the default starting indices.
    pub fn new() -> Self {
        Self::with_starting_indices(StartingIndices::default())
    }

    /// An empty registry whose dynamic slots start at `indices` (the
    /// original SDK's `starting_indices`; each AnoSys sink has its own).
    ///
    /// ```
    /// use anosys::sinks::anosys::{SlotRegistry, SlotType};
    /// let registry = SlotRegistry::with_starting_indices(anosys::StartingIndices { string: 150, number: 3, boolean: 1 });
    /// assert_eq!(&*registry.slot_for("customer.tier", SlotType::String).unwrap(), "cvs150");
    /// ```
    pub fn with_starting_indices(indices: StartingIndices) -> Self {
        let d = indices;
        SlotRegistry {
            state: Mutex::new(RegistryState {
                assigned: mapping::FastMap::default(),
                resolved: mapping::FastMap::default(),
                by_address: mapping::FastMap::default(),
                order: Vec::new(),
                used: HashSet::new(),
                next: [d.string.max(1), d.number.max(1), d.boolean.max(1)],
                mapping_json: None,
                mapping_tail: None,
            }),
        }
    }

    /// The registry of this process for `indices`: AnoSys sinks with the
    /// same starting indices share one, so a key has one slot and a slot
    /// one key in everything the process sends; sinks with other indices
    /// have their own, so one pipeline's settings never move another's
    /// columns.
    pub fn shared(indices: StartingIndices) -> Arc<SlotRegistry> {
        static SHARED: Mutex<Vec<(StartingIndices, Arc<SlotRegistry>)>> = Mutex::new(Vec::new());
        let mut all = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, registry)) = all.iter().find(|(i, _)| *i == indices) {
            return registry.clone();
        }
        let registry = Arc::new(SlotRegistry::with_starting_indices(indices));
        all.push((indices, registry.clone()));
        registry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where new keys start (the seed's `starting_indices`). Keys already
    /// assigned keep their slots; reserved and used slots are still skipped.
    pub fn set_starting_indices(&self, indices: StartingIndices) {
        let mut s = self.lock();
        s.next = [indices.string.max(1), indices.number.max(1), indices.boolean.max(1)];
    }

    /// The slot of `key`, assigning the next free one of `ty` on first use;
    /// `None` when that type's slots have run out.
    pub fn slot_for(&self, key: &str, ty: SlotType) -> Option<Arc<str>> {
        Self::assign(&mut self.lock(), key, ty).map(|(slot, _)| slot)
    }

    /// The slot of `key` and its column's type, assigned on first use.
    fn assign(s: &mut RegistryState, key: &str, ty: SlotType) -> Option<(Arc<str>, ColumnType)> {
        if let Some(slot) = s.assigned.get(key) {
            return Some(slot.clone());
        }
        let i = ty.index();
        while s.next[i] <= ty.max() {
            let candidate = format!("{}{}", ty.prefix(), s.next[i]);
            s.next[i] += 1;
            if mapping::is_reserved_slot(&candidate) || s.used.contains(candidate.as_str()) {
                continue;
            }
            let column_type = mapping::column_type(&candidate);
            let slot: Arc<str> = candidate.into();
            s.used.insert(slot.clone());
            s.assigned.insert(key.to_owned(), (slot.clone(), column_type));
            s.order.push((key.to_owned(), slot.clone()));
            s.mapping_json = None;
            s.mapping_tail = None;
            return Some((slot, column_type));
        }
        None
    }

    fn mapping_json(s: &mut RegistryState) -> Arc<str> {
        if let Some(json) = &s.mapping_json {
            return json.clone();
        }
        let mut map = Map::new();
        for (k, c) in mapping::FIXED_SLOTS {
            map.insert((*k).to_owned(), Value::String((*c).to_owned()));
        }
        for (k, c) in &s.order {
            map.insert(k.clone(), Value::String(c.to_string()));
        }
        let literal = Value::String(Value::Object(map).to_string()).to_string();
        let literal: Arc<str> = literal.into();
        s.mapping_json = Some(literal.clone());
        literal
    }

    /// The mapping literal and the body's closing brace, cached: the same
    /// `Arc` until a slot is assigned.
    fn mapping_tail(s: &mut RegistryState) -> Arc<str> {
        if let Some(tail) = &s.mapping_tail {
            return tail.clone();
        }
        let tail: Arc<str> = format!("{}}}", Self::mapping_json(s)).into();
        s.mapping_tail = Some(tail.clone());
        tail
    }

    /// The whole mapping (fixed and dynamic) as a JSON object, as sent in
    /// `otel_schema_url`.
    pub fn mapping_document(&self) -> String {
        let literal = Self::mapping_json(&mut self.lock());
        serde_json::from_str::<String>(&literal).unwrap_or_default()
    }
}

/// Attribute keys whose content already has a column of its own and is not
/// repeated in the `attributes` (cvs18) summary.
const CONTENT_KEYS: &[&str] = &[
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.tool.definitions",
    "llm_input",
    "llm_output",
    "llm_input_messages",
    "llm_output_messages",
    "raw",
];

/// JSON text of a value: strings as they are, everything else serialised.
/// A record's stable id, `<trace id>-<span id>`: the `anosys_record_id`
/// column, the same on every delivery of the record.
///
/// ```
/// let record = anosys::Record::new(anosys::RecordKind::Raw, "r");
/// let id = anosys::sinks::anosys::encode::record_id(&record);
/// assert_eq!(id, format!("{}-{}", record.trace_id, record.span_id));
/// ```
pub fn record_id(record: &Record) -> String {
    format!("{}-{}", record.trace_id, record.span_id)
}

pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        // Straight into a byte buffer: `Display` goes through a formatter
        // adapter, several times slower for large values.
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Coerces `value` to `column`'s type; `None` when it cannot be without
/// losing it (it then goes to the overflow column).
fn coerce(ty: ColumnType, value: &Value) -> Option<Value> {
    match ty {
        ColumnType::Text | ColumnType::Json | ColumnType::Timestamp => Some(Value::String(text_of(value))),
        ColumnType::Number => match value {
            Value::Number(_) => Some(value.clone()),
            Value::String(s) => {
                let t = s.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Some(Value::from(i))
                } else {
                    t.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::from)
                }
            }
            _ => None,
        },
        ColumnType::Boolean => match value {
            Value::Bool(_) => Some(value.clone()),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(Value::Bool(true)),
                "false" | "0" | "no" => Some(Value::Bool(false)),
                _ => None,
            },
            Value::Number(n) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
                Some(Value::Bool(n.as_u64() == Some(1)))
            }
            _ => None,
        },
    }
}

fn is_text(ty: ColumnType) -> bool {
    matches!(ty, ColumnType::Text | ColumnType::Json | ColumnType::Timestamp)
}

/// Appends `s` as a JSON string literal.
fn write_str(buf: &mut Vec<u8>, s: &str) {
    json::string(buf, s, false);
}

/// Appends `value` serialised.
fn write_json(buf: &mut Vec<u8>, value: &Value) {
    json::value(buf, value, false);
}

/// Appends the JSON string literal of `value` serialised (a text column
/// holding JSON).
fn write_text(buf: &mut Vec<u8>, value: &Value) {
    buf.push(b'"');
    json::value(buf, value, true);
    buf.push(b'"');
}

/// Appends the JSON string literal of a `raw` joined to a response kept as
/// text ([`Raw::Joined`]), as [`write_text`] would write it parsed, except
/// that the text keeps its own order of keys and spelling of numbers.
fn write_raw_text(buf: &mut Vec<u8>, entries: &[(&str, RawEntry<'_>)]) {
    buf.extend_from_slice(b"\"{");
    for (i, (key, entry)) in entries.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        json::string(buf, key, true);
        buf.push(b':');
        match entry {
            RawEntry::Value(value) => json::value(buf, value, true),
            RawEntry::Text(text) => json::text(buf, text.as_str(), true),
        }
    }
    buf.extend_from_slice(b"}\"");
}

/// Appends a text column's value: a string as it is, anything else
/// serialised, then quoted.
fn write_text_of(buf: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => write_str(buf, s),
        other => write_text(buf, other),
    }
}

/// Sorts `indices` (of entries of `attributes`) by key, trying first the
/// order `last` that sorted the last ones this thread sorted: records of
/// one kind carry the same keys in the same order, so a check that the
/// keys are in order (one comparison a key) most often replaces the sort
/// (several a key). `last` is then the order used.
fn sort_by_key_text(attributes: &crate::record::Attributes, indices: &mut Vec<u32>, last: &mut Vec<u32>) {
    let key = |i: u32| attributes.get_index(i as usize).map_or("", |(k, _)| k.as_ref());
    // `indices` come in the attributes' order, so ascending; `last` has
    // no index twice: of the same length and all found, it is a
    // reordering of them.
    if last.len() == indices.len()
        && last.iter().all(|i| indices.binary_search(i).is_ok())
        && last.windows(2).all(|w| key(w[0]) < key(w[1]))
    {
        indices.clear();
        indices.extend_from_slice(last);
        return;
    }
    // Attribute keys are unique.
    indices.sort_unstable_by(|a, b| key(*a).cmp(key(*b)));
    last.clear();
    last.extend_from_slice(indices);
}

/// Where a value goes: a fixed column, a dynamic slot (which no other key
/// of the record can take) with its type, or nowhere (the overflow).
#[derive(Debug, Clone, Copy)]
enum Col<'c> {
    Fixed(mapping::FixedColumn),
    Slot(&'c str, ColumnType),
    None,
}

impl Col<'_> {
    fn fixed(key: &str) -> Self {
        mapping::fixed(key).map_or(Col::None, Col::Fixed)
    }
}

/// One column written into a body: where its value starts and ends.
struct Column {
    value: std::ops::Range<usize>,
}

/// A body's bookkeeping, kept by each encoding thread between bodies
/// rather than allocated for each.
#[derive(Default)]
struct Spare {
    columns: Vec<Column>,
    fixed_at: Vec<u16>,
    /// Where each attribute goes.
    placed: Vec<Placed>,
    /// The attributes of the `attributes` summary column, by index.
    summary: Vec<u32>,
    /// The order that sorted the last summary (see [`sort_by_key_text`]).
    order: Vec<u32>,
}

thread_local! {
    static SPARE: std::cell::Cell<Spare> = const {
        std::cell::Cell::new(Spare {
            columns: Vec::new(),
            fixed_at: Vec::new(),
            placed: Vec::new(),
            summary: Vec::new(),
            order: Vec::new(),
        })
    };
}

/// No column written yet (in [`Body::fixed_at`]).
const FREE: u16 = u16::MAX;

/// An AnoSys object written straight to bytes, one column at a time: a
/// column is written once (a later value for a taken column is dropped
/// when it is the same, kept in the overflow object when it is not), so
/// the object is the one a map of columns would give, without the map.
struct Body {
    buf: Vec<u8>,
    columns: Vec<Column>,
    /// For each fixed column (by number), its index in `columns`.
    fixed_at: Vec<u16>,
    overflow: Map<String, Value>,
    compare: Vec<u8>,
}

impl Body {
    /// A body with room for `capacity` bytes, its bookkeeping in `columns`
    /// and `fixed_at` (what the last body on this thread left, see
    /// [`into_bytes`](Self::into_bytes)).
    fn new(capacity: usize, mut columns: Vec<Column>, mut fixed_at: Vec<u16>) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.push(b'{');
        columns.clear();
        fixed_at.clear();
        fixed_at.resize(mapping::fixed_column_count(), FREE);
        Body { buf, columns, fixed_at, overflow: Map::new(), compare: Vec::new() }
    }

    /// The bytes written, and the bookkeeping to reuse.
    fn into_bytes(self) -> (Vec<u8>, Vec<Column>, Vec<u16>) {
        (self.buf, self.columns, self.fixed_at)
    }

    /// The index in `columns` of a fixed column already written.
    fn taken(&self, column: mapping::FixedColumn) -> Option<usize> {
        self.fixed_at.get(column.id).filter(|at| **at != FREE).map(|at| usize::from(*at))
    }

    /// Writes a new column, its value written by `value`.
    fn column(&mut self, column: Col<'_>, value: impl FnOnce(&mut Vec<u8>)) {
        let name = match column {
            Col::Fixed(f) => f.name,
            Col::Slot(name, _) => name,
            Col::None => return,
        };
        // Column names (fixed ones and `cv*` slots) have nothing to escape
        // (a test checks every one).
        self.buf.reserve(name.len() + 4);
        if self.buf.len() > 1 {
            self.buf.push(b',');
        }
        self.buf.push(b'"');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
        let start = self.buf.len();
        value(&mut self.buf);
        if let Col::Fixed(f) = column
            && let Some(at) = self.fixed_at.get_mut(f.id)
        {
            *at = u16::try_from(self.columns.len()).unwrap_or(FREE);
        }
        self.columns.push(Column { value: start..self.buf.len() });
    }

    /// Whether the taken column `at` already holds what `value` writes.
    fn holds(&mut self, at: usize, value: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mut compare = std::mem::take(&mut self.compare);
        compare.clear();
        value(&mut compare);
        let same = self.columns.get(at).and_then(|c| self.buf.get(c.value.clone())) == Some(&compare[..]);
        self.compare = compare;
        same
    }

    /// Puts `value` into `column`, or into the overflow object under `key`
    /// when the column is taken (by another value) or the value does not
    /// fit the column's type.
    fn put(&mut self, key: &str, column: Col<'_>, value: &Value) {
        if value.is_null() {
            return;
        }
        let (ty, taken) = match column {
            Col::Fixed(f) => (f.ty, self.taken(f)),
            Col::Slot(_, ty) => (ty, None),
            Col::None => {
                self.overflow.insert(key.to_owned(), value.clone());
                return;
            }
        };
        if is_text(ty) {
            match taken {
                None => self.column(column, |b| write_text_of(b, value)),
                Some(at) => {
                    if !self.holds(at, |b| write_text_of(b, value)) {
                        self.overflow.insert(key.to_owned(), value.clone());
                    }
                }
            }
            return;
        }
        match (coerce(ty, value), taken) {
            (Some(v), None) => self.column(column, |b| write_json(b, &v)),
            (Some(v), Some(at)) if self.holds(at, |b| write_json(b, &v)) => {}
            _ => {
                self.overflow.insert(key.to_owned(), value.clone());
            }
        }
    }

    /// Puts text built for this record into `key`'s fixed column.
    fn fixed_str(&mut self, key: &str, column: Col<'_>, text: &str) {
        match column {
            Col::Fixed(f) if is_text(f.ty) && self.taken(f).is_none() => {
                self.column(Col::Fixed(f), |b| write_str(b, text));
            }
            column => self.put(key, column, &Value::String(text.to_owned())),
        }
    }

    /// Puts a value into `key`'s fixed column.
    fn fixed(&mut self, key: &str, column: Col<'_>, value: &Value) {
        self.put(key, column, value);
    }
}

/// A short text formatted on the stack (ids, times).
struct Text {
    bytes: [u8; 64],
    len: usize,
}

impl Default for Text {
    fn default() -> Self {
        Text { bytes: [0; 64], len: 0 }
    }
}

impl std::fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Text {
    /// The text of `args`; if it does not fit, as `to_string` would
    /// give it (never expected: ids and times are short).
    fn format(&mut self, args: std::fmt::Arguments<'_>) -> &str {
        if std::fmt::Write::write_fmt(self, args).is_err() {
            self.len = 0;
        }
        // Only whole `str`s were copied in.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

}

/// The fixed columns of the keys every record writes, looked up once.
struct Known {
    name: Col<'static>,
    trace_id: Col<'static>,
    span_id: Col<'static>,
    record_id: Col<'static>,
    parent_id: Col<'static>,
    trace_state: Col<'static>,
    start_time: Col<'static>,
    end_time: Col<'static>,
    cvn1: Col<'static>,
    cvn2: Col<'static>,
    duration: Col<'static>,
    kind: Col<'static>,
    status: Col<'static>,
    status_code: Col<'static>,
    resp_id: Col<'static>,
    observed: Col<'static>,
    record_type: Col<'static>,
    span_kind: Col<'static>,
    source: Col<'static>,
    input: Col<'static>,
    output: Col<'static>,
    attributes: Col<'static>,
    raw: Col<'static>,
}

impl Known {
    fn get() -> &'static Known {
        static KNOWN: std::sync::LazyLock<Known> = std::sync::LazyLock::new(|| Known {
            name: Col::fixed("name"),
            trace_id: Col::fixed("trace_id"),
            span_id: Col::fixed("span_id"),
            record_id: Col::fixed("anosys.record_id"),
            parent_id: Col::fixed("parent_id"),
            trace_state: Col::fixed("trace_state"),
            start_time: Col::fixed("start_time"),
            end_time: Col::fixed("end_time"),
            cvn1: Col::fixed("cvn1"),
            cvn2: Col::fixed("cvn2"),
            duration: Col::fixed("otel_duration_ms"),
            kind: Col::fixed("kind"),
            status: Col::fixed("status"),
            status_code: Col::fixed("status_code"),
            resp_id: Col::fixed("resp_id"),
            observed: Col::fixed("otel_observed_timestamp"),
            record_type: Col::fixed("otel_record_type"),
            span_kind: Col::fixed("gen_ai.span.kind"),
            source: Col::fixed("source"),
            input: Col::fixed("input"),
            output: Col::fixed("output"),
            attributes: Col::fixed("attributes"),
            raw: Col::fixed("raw"),
        });
        &KNOWN
    }
}

/// Where an attribute goes (resolved under the registry's lock), and
/// whether it is repeated in the attribute summary (not when its content
/// has a column of its own).
#[derive(Debug, Clone, Copy)]
struct Placed {
    column: Col<'static>,
    summary: bool,
}

/// A dynamic slot's name for the life of the process: `cvs1`-`cvs198`,
/// `cvn1`-`cvn99`, `cvb1`-`cvb99`, made once, so that where a key goes is a
/// plain copy (no reference count).
fn static_slot_name(name: &str) -> Option<&'static str> {
    static NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        [SlotType::String, SlotType::Number, SlotType::Bool]
            .into_iter()
            .flat_map(|ty| (1..=ty.max()).map(move |n| format!("{}{n}", ty.prefix())))
            .collect()
    });
    NAMES.iter().find(|n| *n == name).map(String::as_str)
}

/// How many `&'static str` keys' addresses the registry remembers (a
/// program has a bounded number of literals; a bound all the same).
const ADDRESSES_MAX: usize = 4096;

/// Builds AnoSys objects from records.
#[derive(Debug, Clone, Copy)]
pub struct Encoder<'r> {
    registry: &'r SlotRegistry,
    encryption: Option<&'r super::encrypt::Encryption>,
}

impl<'r> Encoder<'r> {
    /// An encoder assigning dynamic slots from `registry`.
    pub fn with_registry(registry: &'r SlotRegistry) -> Self {
        Encoder { registry, encryption: None }
    }

    /// The same encoder, encrypting the columns `encryption` names (see
    /// [`encrypt`](super::encrypt)); `None` encrypts nothing.
    ///
    /// ```
    /// use anosys::sinks::anosys::encrypt::{decrypt, derive_key, Encryption};
    /// use anosys::sinks::anosys::{Encoder, SlotRegistry};
    /// let mut record = anosys::Record::new(anosys::RecordKind::FunctionCall, "f");
    /// record.input = Some(serde_json::json!(["a secret argument"]));
    /// let (registry, encryption) = (SlotRegistry::new(), Encryption::new("passphrase", ["llm_input"]));
    /// let encoder = Encoder::with_registry(&registry).encrypting(Some(&encryption));
    /// let body = encoder.encode(&record, &anosys::Resource::default(), std::time::SystemTime::now());
    /// let sealed = body["llm_input"].as_str().unwrap();
    /// assert!(sealed.starts_with("enc:"));
    /// assert_eq!(decrypt(sealed, &derive_key("passphrase")).unwrap(), r#"["a secret argument"]"#);
    /// ```
    pub fn encrypting(self, encryption: Option<&'r super::encrypt::Encryption>) -> Self {
        Encoder { encryption, ..self }
    }

    /// The flat AnoSys object for `record`. `resource` stands in when the
    /// record has none; `observed` is when the pipeline took the record.
    /// (The object is parsed back from [`encode_to_vec`](Self::encode_to_vec),
    /// the form the sink sends.)
    pub fn encode(&self, record: &Record, resource: &Resource, observed: SystemTime) -> Map<String, Value> {
        serde_json::from_slice(&self.encode_to_vec(record, resource, observed)).unwrap_or_default()
    }

    /// The request body for `record`: the same object as
    /// [`encode`](Self::encode), written straight to bytes in one pass, with
    /// the cached mapping spliced in rather than escaped again for every
    /// record.
    pub fn encode_to_vec(&self, record: &Record, resource: &Resource, observed: SystemTime) -> Vec<u8> {
        let (mut body, tail) = self.encode_wire(record, resource, observed);
        if body.is_empty() {
            return body;
        }
        body.extend_from_slice(tail.as_bytes());
        body
    }

    /// The request body for `record` in two parts, the body being `head`
    /// followed by `tail`: `head` is the record's own (everything up to
    /// `"otel_schema_url":`), `tail` the mapping and the closing brace,
    /// shared by every body encoded until the next slot is assigned (the
    /// same `Arc`). The outbox keeps a body this way, the tail once.
    /// `head` is empty if the object could not be serialised (never
    /// expected).
    ///
    /// ```
    /// use anosys::sinks::anosys::{Encoder, SlotRegistry};
    /// let registry = SlotRegistry::new();
    /// let encoder = Encoder::with_registry(&registry);
    /// let record = anosys::Record::new(anosys::RecordKind::Raw, "r");
    /// let now = std::time::SystemTime::now();
    /// let (mut head, tail) = encoder.encode_wire(&record, &anosys::Resource::default(), now);
    /// head.extend_from_slice(tail.as_bytes());
    /// let body: serde_json::Value = serde_json::from_slice(&head)?;
    /// assert_eq!(body["otel_schema_url"].as_str(), Some(registry.mapping_document().as_str()));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn encode_wire(&self, record: &Record, resource: &Resource, observed: SystemTime) -> (Vec<u8>, Arc<str>) {
        let resource = record.resource.as_deref().unwrap_or(resource);
        // This thread's bookkeeping from the last body.
        let Spare { columns, fixed_at, mut placed, mut summary, mut order } = SPARE.take();
        // Dynamic slots and the mapping snapshot, under one short lock.
        let tail = self.slots(record, &mut placed);
        let k = Known::get();
        // Room for a head like the last one and the tail, so that the body
        // is not copied as it grows (a hint: any size is written right).
        static LAST_HEAD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(2048);
        let hint = LAST_HEAD.load(std::sync::atomic::Ordering::Relaxed);
        let mut out = Body::new(hint + hint / 8 + tail.len(), columns, fixed_at);
        // Ids and times are formatted on the stack, not into fresh strings.
        let mut text = Text::default();
        let ids = text.format(format_args!("{}-{}", record.trace_id, record.span_id));
        // 32 hex digits, `-`, 16 hex digits.
        let (trace_id, span_id) = (ids.get(..32).unwrap_or_default(), ids.get(33..).unwrap_or_default());
        out.fixed_str("name", k.name, &record.name);
        out.fixed_str("trace_id", k.trace_id, trace_id);
        out.fixed_str("span_id", k.span_id, span_id);
        out.fixed_str("anosys.record_id", k.record_id, ids);
        if let Some(parent) = record.parent_span_id {
            out.fixed_str("parent_id", k.parent_id, Text::default().format(format_args!("{parent}")));
        }
        out.fixed_str("trace_state", k.trace_state, Text::default().format(format_args!("{:02x}", record.trace_flags)));
        out.fixed_str("start_time", k.start_time, Iso::of(record.start_time).as_str());
        out.fixed_str("end_time", k.end_time, Iso::of(record.end_time).as_str());
        out.fixed("cvn1", k.cvn1, &Value::from(epoch_millis(record.start_time)));
        out.fixed("cvn2", k.cvn2, &Value::from(epoch_millis(record.end_time)));
        out.fixed("otel_duration_ms", k.duration, &Value::from(record.duration().as_secs_f64() * 1000.0));
        out.fixed_str("kind", k.kind, record.span_kind.as_str());
        let code = record.status.code.as_str();
        match k.status {
            // `{"description":…,"status_code":…}`, as a map of the two
            // would be written (its keys in order).
            Col::Fixed(f) if is_text(f.ty) && out.taken(f).is_none() => out.column(Col::Fixed(f), |b| {
                b.extend_from_slice(b"\"{");
                if let Some(m) = &record.status.message {
                    b.extend_from_slice(b"\\\"description\\\":");
                    json::string(b, m, true);
                    b.push(b',');
                }
                b.extend_from_slice(b"\\\"status_code\\\":");
                json::string(b, code, true);
                b.extend_from_slice(b"}\"");
            }),
            _ => {
                let mut status = Map::new();
                status.insert("status_code".into(), Value::String(code.into()));
                if let Some(m) = &record.status.message {
                    status.insert("description".into(), Value::String(m.clone()));
                }
                out.fixed("status", k.status, &Value::Object(status));
            }
        }
        out.fixed_str("status_code", k.status_code, code);
        match (&record.status.code, &record.status.message) {
            (StatusCode::Error, Some(m)) => out.fixed_str("resp_id", k.resp_id, m),
            _ => {
                if let Some(id) = record.attribute("gen_ai.response.id") {
                    out.fixed("resp_id", k.resp_id, id);
                }
            }
        }
        // Records' own types become maps (keys in order) as the backend has
        // always received them; rare enough to go through `Value`.
        if !record.events.is_empty() {
            out.fixed("events", Col::fixed("events"), &serde_json::to_value(&record.events).unwrap_or(Value::Null));
        }
        if !record.links.is_empty() {
            out.fixed("links", Col::fixed("links"), &serde_json::to_value(&record.links).unwrap_or(Value::Null));
        }
        if !resource.attributes.is_empty() {
            out.fixed(
                "otel_resource",
                Col::fixed("otel_resource"),
                &serde_json::to_value(&resource.attributes).unwrap_or(Value::Null),
            );
        }
        if let Some(service) = resource.service_name() {
            out.fixed_str("service.name", Col::fixed("service.name"), service);
        }
        out.fixed_str("otel_observed_timestamp", k.observed, Iso::of(observed).as_str());
        out.fixed_str("otel_record_type", k.record_type, mapping::RECORD_TYPE);
        out.fixed_str("gen_ai.span.kind", k.span_kind, record.kind.label());
        if let Some(source) = &record.source {
            out.fixed_str("source", k.source, source);
        }
        // Content kept in `raw` (see `Record::input_in_raw`) is written out
        // where its fields would be.
        let (input, derived) = record.input_and_derived();
        if let Some(input) = input {
            out.fixed("input", k.input, &input);
        }
        if let Some(output) = record.output_given(&derived) {
            out.fixed("output", k.output, &output);
        }
        if let Some(error) = &record.error {
            out.fixed_str("error", Col::fixed("error"), "true");
            out.fixed_str("error_type", Col::fixed("error_type"), &error.error_type);
            out.fixed_str("error_message", Col::fixed("error_message"), &error.message);
            if let Some(stack) = &error.stack {
                out.fixed_str("error_stack", Col::fixed("error_stack"), stack);
            }
        }
        if let Some(caller) = &record.caller {
            out.fixed("caller", Col::fixed("caller"), &serde_json::to_value(caller).unwrap_or(Value::Null));
        }
        if let Some(ctx) = &record.user_context {
            out.fixed("user_context", Col::fixed("user_context"), ctx);
        }
        if let Some(state) = &record.trace_state {
            out.overflow.insert("trace_state".into(), Value::String(state.clone()));
        }

        for (key, value) in &derived {
            out.put(key, Col::fixed(key), value);
        }
        summary.clear();
        for (i, ((key, value), placed)) in record.attributes.iter().zip(&placed).enumerate() {
            if value.is_null() {
                continue;
            }
            out.put(key, placed.column, value);
            if placed.summary {
                summary.extend(u32::try_from(i));
            }
        }
        if !summary.is_empty() {
            // A map's keys come out in order.
            sort_by_key_text(&record.attributes, &mut summary, &mut order);
            let entries = summary.iter().filter_map(|i| record.attributes.get_index(*i as usize)).map(|(k, v)| (k.as_ref(), v));
            match k.attributes {
                Col::Fixed(f) if is_text(f.ty) && out.taken(f).is_none() => {
                    out.column(Col::Fixed(f), |b| {
                        b.push(b'"');
                        json::object(b, entries, true);
                        b.push(b'"');
                    });
                }
                column => {
                    let map = entries.map(|(k, v)| (k.to_owned(), v.clone())).collect();
                    out.put("attributes", column, &Value::Object(map));
                }
            }
        }
        match (record.raw_written(), k.raw) {
            // A response kept as text goes into the column as it is (no
            // parse), with the rest of `raw` around it.
            (Some(Raw::Joined(entries)), Col::Fixed(f)) if is_text(f.ty) && out.taken(f).is_none() => {
                out.column(Col::Fixed(f), |b| write_raw_text(b, &entries));
            }
            (Some(Raw::Plain(raw)), column) => out.fixed("raw", column, raw),
            (Some(Raw::Joined(_)), column) => {
                if let Some(raw) = record.raw_json() {
                    out.fixed("raw", column, &raw);
                }
            }
            (None, _) => {}
        }
        if !out.overflow.is_empty() {
            // No key's column is the overflow column (a test says so), so
            // it is free here.
            let overflow = Value::Object(std::mem::take(&mut out.overflow));
            out.column(Col::Slot(mapping::OVERFLOW_COLUMN, ColumnType::Json), |b| write_text(b, &overflow));
        }

        let (mut body, columns, fixed_at) = out.into_bytes();
        SPARE.set(Spare { columns, fixed_at, placed, summary, order });
        if body.len() > 1 {
            body.extend_from_slice(b",\"otel_schema_url\":");
        } else {
            body.extend_from_slice(b"\"otel_schema_url\":");
        }
        if let Some(encryption) = self.encryption {
            encryption.apply_to_head(&mut body);
        }
        LAST_HEAD.store(body.len().clamp(1024, 1 << 20), std::sync::atomic::Ordering::Relaxed);
        (body, tail)
    }

    /// Where each attribute goes (its fixed column, else its dynamic slot,
    /// assigned on first use), into `placed`, and the body's tail, under one
    /// short lock.
    fn slots(&self, record: &Record, placed: &mut Vec<Placed>) -> Arc<str> {
        let mut state = self.registry.lock();
        placed.clear();
        placed.extend(record.attributes.iter().map(|(key, value)| {
            if value.is_null() {
                return Placed { column: Col::None, summary: false };
            }
            let address = match key {
                std::borrow::Cow::Borrowed(text) => Some((text.as_ptr() as usize, text.len())),
                std::borrow::Cow::Owned(_) => None,
            };
            if let Some(placed) = address.and_then(|a| state.by_address.get(&a)) {
                return *placed;
            }
            let placed = match state.resolved.get(key.as_ref()) {
                Some(placed) => *placed,
                None => {
                    let column = match mapping::fixed(key) {
                        Some(f) => Col::Fixed(f),
                        None => Self::assign_slot(&mut state, key, value),
                    };
                    let placed = Placed { column, summary: !CONTENT_KEYS.contains(&key.as_ref()) };
                    if !matches!(placed.column, Col::None) {
                        state.resolved.insert(key.to_string(), placed);
                    }
                    placed
                }
            };
            if let Some(address) = address
                && !matches!(placed.column, Col::None)
                && state.by_address.len() < ADDRESSES_MAX
            {
                state.by_address.insert(address, placed);
            }
            placed
        }));
        SlotRegistry::mapping_tail(&mut state)
    }

    /// The dynamic slot of a key with no fixed column, assigned on first
    /// use; `None` (said once) when its type's slots have run out.
    fn assign_slot(state: &mut RegistryState, key: &str, value: &Value) -> Col<'static> {
        let ty = SlotType::of(value);
        // Every name `assign` gives is one of the static ones.
        match SlotRegistry::assign(state, key, ty)
            .and_then(|(slot, column_type)| Some((static_slot_name(&slot)?, column_type)))
        {
            Some((slot, column_type)) => Col::Slot(slot, column_type),
            None => {
                let once_key = match ty {
                    SlotType::String => "overflow-cvs",
                    SlotType::Number => "overflow-cvn",
                    SlotType::Bool => "overflow-cvb",
                };
                diag::once(once_key, LogLevel::Warn, || {
                    format!(
                        "all dynamic {} slots are taken; further keys of that type go into the `{}` JSON field",
                        ty.prefix(),
                        mapping::OVERFLOW_COLUMN
                    )
                });
                Col::None
            }
        }
    }
}

/// The encoder as it was before bodies were written straight to bytes
/// (a map of columns, then serialised): the reference the one-pass
/// encoder is compared with.
#[cfg(test)]
mod reference {
    use super::*;

    /// Builds AnoSys objects from records.
    pub(super) struct Encoder<'r> {
        registry: &'r SlotRegistry,
    }

    struct Out {
        map: Map<String, Value>,
        overflow: Map<String, Value>,
    }

    impl Out {
        /// Puts `value` into `column`, or into the overflow object under `key`
        /// when the column is taken or the value does not fit its type.
        fn put(&mut self, key: &str, column: Option<&str>, value: &Value) {
            if value.is_null() {
                return;
            }
            match column {
                Some(column) => match (coerce(mapping::column_type(column), value), self.map.get(column)) {
                    (Some(v), None) => {
                        self.map.insert(column.to_owned(), v);
                    }
                    // The same value is already in its column (an alias key).
                    (Some(v), Some(existing)) if *existing == v => {}
                    _ => {
                        self.overflow.insert(key.to_owned(), value.clone());
                    }
                },
                _ => {
                    self.overflow.insert(key.to_owned(), value.clone());
                }
            }
        }

        /// Puts a value built for this record into `key`'s fixed column; text
        /// going to a text column is moved in, not copied.
        fn fixed(&mut self, key: &str, value: Value) {
            let column = mapping::fixed_column(key);
            if let (Some(column), Value::String(_)) = (column, &value) {
                let text =
                    matches!(mapping::column_type(column), ColumnType::Text | ColumnType::Json | ColumnType::Timestamp);
                if text && !self.map.contains_key(column) {
                    self.map.insert(column.to_owned(), value);
                    return;
                }
            }
            self.put(key, column, &value);
        }

        /// Puts a value of the record's own into `key`'s fixed column (coerced
        /// from the reference: a large input or output is serialised once, never
        /// cloned first).
        fn fixed_ref(&mut self, key: &str, value: &Value) {
            self.put(key, mapping::fixed_column(key), value);
        }
    }

    impl<'r> Encoder<'r> {
        /// An encoder assigning dynamic slots from `registry`.
        pub fn with_registry(registry: &'r SlotRegistry) -> Self {
            Encoder { registry }
        }

        /// The flat AnoSys object for `record`. `resource` stands in when the
        /// record has none; `observed` is when the pipeline took the record.
        pub fn encode(&self, record: &Record, resource: &Resource, observed: SystemTime) -> Map<String, Value> {
            let (mut map, tail) = self.encode_parts(record, resource, observed);
            let literal = tail.strip_suffix('}').unwrap_or(&tail);
            let mapping = serde_json::from_str::<String>(literal).unwrap_or_default();
            map.insert("otel_schema_url".to_owned(), Value::String(mapping));
            map
        }

        /// The object without `otel_schema_url`, and the mapping as an escaped
        /// JSON string literal followed by `}` (the body's tail).
        fn encode_parts(
            &self,
            record: &Record,
            resource: &Resource,
            observed: SystemTime,
        ) -> (Map<String, Value>, Arc<str>) {
            let resource = record.resource.as_deref().unwrap_or(resource);
            let mut out = Out { map: Map::new(), overflow: Map::new() };

            out.fixed("name", Value::String(record.name.clone()));
            out.fixed("trace_id", Value::String(record.trace_id.to_string()));
            out.fixed("span_id", Value::String(record.span_id.to_string()));
            out.fixed("anosys.record_id", Value::String(record_id(record)));
            if let Some(parent) = record.parent_span_id {
                out.fixed("parent_id", Value::String(parent.to_string()));
            }
            out.fixed("trace_state", Value::String(format!("{:02x}", record.trace_flags)));
            out.fixed("start_time", Value::String(to_iso(record.start_time)));
            out.fixed("end_time", Value::String(to_iso(record.end_time)));
            out.fixed("cvn1", Value::from(epoch_millis(record.start_time)));
            out.fixed("cvn2", Value::from(epoch_millis(record.end_time)));
            out.fixed("otel_duration_ms", Value::from(record.duration().as_secs_f64() * 1000.0));
            out.fixed("kind", Value::String(record.span_kind.as_str().to_owned()));
            let mut status = Map::new();
            status.insert("status_code".into(), Value::String(record.status.code.as_str().into()));
            if let Some(m) = &record.status.message {
                status.insert("description".into(), Value::String(m.clone()));
            }
            out.fixed("status", Value::Object(status));
            out.fixed("status_code", Value::String(record.status.code.as_str().to_owned()));
            let status_message = match (&record.status.code, &record.status.message) {
                (StatusCode::Error, Some(m)) => Some(Value::String(m.clone())),
                _ => record.attribute("gen_ai.response.id").cloned(),
            };
            if let Some(m) = status_message {
                out.fixed("resp_id", m);
            }
            if !record.events.is_empty() {
                out.fixed("events", serde_json::to_value(&record.events).unwrap_or(Value::Null));
            }
            if !record.links.is_empty() {
                out.fixed("links", serde_json::to_value(&record.links).unwrap_or(Value::Null));
            }
            if !resource.attributes.is_empty() {
                out.fixed("otel_resource", serde_json::to_value(&resource.attributes).unwrap_or(Value::Null));
            }
            if let Some(service) = resource.service_name() {
                out.fixed("service.name", Value::String(service.to_owned()));
            }
            out.fixed("otel_observed_timestamp", Value::String(to_iso(observed)));
            out.fixed("otel_record_type", Value::String(mapping::RECORD_TYPE.to_owned()));
            out.fixed("gen_ai.span.kind", Value::String(record.kind.label().to_owned()));
            if let Some(source) = &record.source {
                out.fixed("source", Value::String(source.clone()));
            }
            if let Some(input) = record.input() {
                out.fixed_ref("input", &input);
            }
            if let Some(output) = record.output() {
                out.fixed_ref("output", &output);
            }
            if let Some(error) = &record.error {
                out.fixed("error", Value::String("true".into()));
                out.fixed("error_type", Value::String(error.error_type.clone()));
                out.fixed("error_message", Value::String(error.message.clone()));
                if let Some(stack) = &error.stack {
                    out.fixed("error_stack", Value::String(stack.clone()));
                }
            }
            if let Some(caller) = &record.caller {
                out.fixed("caller", serde_json::to_value(caller).unwrap_or(Value::Null));
            }
            if let Some(ctx) = &record.user_context {
                out.fixed_ref("user_context", ctx);
            }
            if let Some(state) = &record.trace_state {
                out.overflow.insert("trace_state".into(), Value::String(state.clone()));
            }

            // Dynamic slots and the mapping snapshot, under one short lock.
            let (slots, mapping_json) = {
                let mut state = self.registry.lock();
                let slots: Vec<Option<&str>> = record
                    .attributes
                    .iter()
                    .map(|(key, value)| {
                        if value.is_null() || mapping::fixed_column(key).is_some() {
                            None
                        } else {
                            match super::Encoder::assign_slot(&mut state, key, value) {
                                Col::Slot(slot, _) => Some(slot),
                                _ => None,
                            }
                        }
                    })
                    .collect();
                (slots, SlotRegistry::mapping_tail(&mut state))
            };

            for (key, value) in record.derived_attributes() {
                out.put(key, mapping::fixed_column(key), &value);
            }
            let mut summary = Map::new();
            for ((key, value), slot) in record.attributes.iter().zip(&slots) {
                if value.is_null() {
                    continue;
                }
                match mapping::fixed_column(key) {
                    Some(column) => out.put(key, Some(column), value),
                    None => out.put(key, slot.as_deref(), value),
                }
                if !CONTENT_KEYS.contains(&key.as_ref()) {
                    summary.insert(key.to_string(), value.clone());
                }
            }
            if !summary.is_empty() {
                out.fixed("attributes", Value::Object(summary));
            }
            // A response kept as text is written as it is, into a free
            // column; else `raw` is written parsed.
            let column = mapping::fixed_column("raw");
            let free = column.is_some_and(|c| !out.map.contains_key(c));
            match (record.raw_written(), column) {
                (Some(raw @ Raw::Joined(_)), Some(column)) if free => {
                    out.map.insert(column.to_owned(), Value::String(serde_json::to_string(&raw).unwrap_or_default()));
                }
                _ => {
                    if let Some(raw) = record.raw_json() {
                        out.fixed_ref("raw", &raw);
                    }
                }
            }
            if !out.overflow.is_empty() {
                let overflow = std::mem::take(&mut out.overflow);
                out.map.insert(mapping::OVERFLOW_COLUMN.to_owned(), Value::String(Value::Object(overflow).to_string()));
            }
            (out.map, mapping_json)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordKind, RequestShape, ResponseShape};
    use serde_json::json;

    fn encode(registry: &SlotRegistry, record: &Record) -> Map<String, Value> {
        Encoder::with_registry(registry).encode(record, &Resource::default(), SystemTime::now())
    }

    #[test]
    fn column_names_have_nothing_to_escape() {
        // `Body::column` writes names as they are.
        let names = mapping::FIXED_SLOTS
            .iter()
            .map(|(_, column)| *column)
            .chain([mapping::OVERFLOW_COLUMN, "otel_schema_url"])
            .chain(["cvs1", "cvs198", "cvn99", "cvb1"].into_iter().filter_map(static_slot_name));
        let mut count = 0;
        for name in names {
            let mut quoted = Vec::new();
            json::string(&mut quoted, name, false);
            assert_eq!(quoted, format!("\"{name}\"").into_bytes(), "{name}");
            count += 1;
        }
        assert!(count > mapping::FIXED_SLOTS.len());
    }

    #[test]
    fn every_slot_name_is_a_static_one() {
        for (ty, max) in [(SlotType::String, mapping::MAX_STRING_SLOT), (SlotType::Number, 99), (SlotType::Bool, 99)] {
            for n in 1..=max {
                let name = format!("{}{n}", ty.prefix());
                assert_eq!(static_slot_name(&name), Some(name.as_str()));
            }
        }
        assert_eq!(static_slot_name("cvs199"), None);
    }

    #[test]
    fn first_dynamic_slots_skip_the_reserved_ones() {
        let r = SlotRegistry::new();
        assert_eq!(r.slot_for("a", SlotType::String).as_deref(), Some("cvs100"));
        assert_eq!(r.slot_for("b", SlotType::Number).as_deref(), Some("cvn4"));
        assert_eq!(r.slot_for("c", SlotType::Bool).as_deref(), Some("cvb3"));
        assert_eq!(r.slot_for("d", SlotType::String).as_deref(), Some("cvs101"));
        assert_eq!(r.slot_for("a", SlotType::Number).as_deref(), Some("cvs100"), "a key keeps its slot");
    }

    #[test]
    fn starting_indices_still_skip_reserved_and_used_slots() {
        let r = SlotRegistry::new();
        r.set_starting_indices(StartingIndices { string: 10, number: 1, boolean: 1 });
        assert_eq!(r.slot_for("s1", SlotType::String).as_deref(), Some("cvs13"));
        assert_eq!(r.slot_for("s2", SlotType::String).as_deref(), Some("cvs20"));
        assert_eq!(r.slot_for("n1", SlotType::Number).as_deref(), Some("cvn4"));
        r.set_starting_indices(StartingIndices { string: 13, number: 4, boolean: 3 });
        assert_eq!(r.slot_for("s3", SlotType::String).as_deref(), Some("cvs21"));
        assert_eq!(r.slot_for("n2", SlotType::Number).as_deref(), Some("cvn5"));
    }

    #[test]
    fn slots_run_out_into_the_overflow_field() {
        let r = SlotRegistry::new();
        for i in 0..99 {
            assert!(r.slot_for(&format!("k{i}"), SlotType::String).is_some(), "{i}");
        }
        assert_eq!(r.slot_for("one.too.many", SlotType::String), None);
        let mut rec = Record::new(RecordKind::Raw, "raw");
        rec.set_attribute("k5", "kept in its slot");
        rec.set_attribute("one.too.many", "kept in the overflow");
        let out = encode(&r, &rec);
        assert_eq!(out["cvs105"], "kept in its slot");
        let overflow: Value = serde_json::from_str(out[mapping::OVERFLOW_COLUMN].as_str().unwrap()).unwrap();
        assert_eq!(overflow, json!({"one.too.many": "kept in the overflow"}));
        assert!(!out.contains_key("cvs199"));
    }

    #[test]
    fn values_that_do_not_fit_their_column_are_kept_in_the_overflow() {
        let r = SlotRegistry::new();
        let mut rec = Record::new(RecordKind::Raw, "raw");
        rec.set_attribute("count", 1);
        encode(&r, &rec);
        let mut rec = Record::new(RecordKind::Raw, "raw");
        rec.set_attribute("count", "many");
        rec.set_attribute("gen_ai.request.temperature", "0.5");
        rec.set_attribute("gen_ai.request.max_tokens", json!({"oops": true}));
        rec.input = Some(json!("typed input"));
        rec.set_attribute("input", "attribute named input");
        let out = encode(&r, &rec);
        assert!(!out.contains_key("cvn4"));
        assert_eq!(out["gen_ai_request_temperature"], 0.5);
        assert_eq!(out["llm_input"], "typed input");
        let overflow: Value = serde_json::from_str(out[mapping::OVERFLOW_COLUMN].as_str().unwrap()).unwrap();
        assert_eq!(
            overflow,
            json!({"count": "many", "gen_ai.request.max_tokens": {"oops": true}, "input": "attribute named input"})
        );
    }

    #[test]
    fn a_request_kept_once_gives_the_body_its_written_out_fields_give() {
        use crate::sources::openai::OpenAiCall;
        let request = json!({
            "model": "gpt-4o", "instructions": "Be brief.",
            "input": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
        });
        let call = OpenAiCall::start("https://api.openai.com/v1/responses", request, &Default::default());
        let kept = call.finish(200, json!({"id": "resp_1", "model": "gpt-4o", "status": "completed",
            "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]}],
            "usage": {"input_tokens": 20, "output_tokens": 2, "total_tokens": 22}}));
        assert!(kept.input_in_raw.is_some() && kept.input.is_none());
        let mut expanded = kept.clone();
        expanded.expand_content();
        let r = SlotRegistry::new();
        let (a, b) = (encode(&r, &kept), encode(&r, &expanded));
        for column in ["llm_input", "gen_ai_input_messages", "gen_ai_system_instructions", "gen_ai_tool_definitions"] {
            assert!(a.contains_key(column), "{column} missing");
        }
        assert_eq!(a["gen_ai_input_messages"], b["gen_ai_input_messages"]);
        // Everything else is the same but the time each was encoded at.
        let (mut a, mut b) = (a, b);
        a.remove("otel_observed_timestamp");
        b.remove("otel_observed_timestamp");
        assert_eq!(a, b);
    }

    #[test]
    fn the_mapping_sent_decodes_the_record_it_travels_with() {
        let r = SlotRegistry::new();
        let mut rec = Record::new(RecordKind::Raw, "raw");
        rec.set_attribute("fresh.key", "v");
        let out = encode(&r, &rec);
        let mapping: Map<String, Value> = serde_json::from_str(out["otel_schema_url"].as_str().unwrap()).unwrap();
        let column = mapping["fresh.key"].as_str().unwrap();
        assert_eq!(out[column], "v");
        assert_eq!(mapping.len(), mapping::FIXED_SLOTS.len() + 1);
    }

    #[test]
    fn any_value_encodes_without_panicking() {
        let r = SlotRegistry::new();
        let mut rec = Record::new(RecordKind::Raw, "");
        rec.set_attribute("", "");
        rec.set_attribute("n", f64::MAX);
        rec.set_attribute("neg", i64::MIN);
        rec.set_attribute("u", u64::MAX);
        rec.set_attribute("deep", json!([[[[{"a": [null, 1.5e300, "\u{0}"]}]]]]));
        rec.set_attribute("gen_ai.usage.input_tokens", "NaN");
        rec.end_time = std::time::UNIX_EPOCH;
        let out = encode(&r, &rec);
        assert_eq!(out["otel_duration_ms"], 0.0);
        assert!(out.contains_key("otel_attributes"));
    }

    #[test]
    fn the_spliced_body_is_the_encoded_object() {
        let r = SlotRegistry::new();
        let mut rec = Record::new(RecordKind::LlmCall, "chat \"quoted\"");
        rec.set_attribute("x.y", json!({"k": "v\n"}));
        let t = SystemTime::now();
        let body: Value =
            serde_json::from_slice(&Encoder::with_registry(&r).encode_to_vec(&rec, &Resource::default(), t)).unwrap();
        let object = Value::Object(Encoder::with_registry(&r).encode(&rec, &Resource::default(), t));
        assert_eq!(body, object);
        assert_eq!(
            serde_json::from_str::<Value>(body["otel_schema_url"].as_str().unwrap()).unwrap(),
            serde_json::from_str::<Value>(&r.mapping_document()).unwrap()
        );
    }

    fn random_value(rng: &mut fastrand::Rng, depth: u32) -> Value {
        match rng.u8(0..if depth > 3 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.bool()),
            2 => Value::from(rng.i64(..)),
            3 => Value::from(f64::from_bits(rng.u64(..))), // NaN and infinities become null
            4 => Value::String((0..rng.usize(0..40)).map(|_| rng.char(..)).collect()),
            5 => Value::Array((0..rng.usize(0..4)).map(|_| random_value(rng, depth + 1)).collect()),
            _ => Value::Object(
                (0..rng.usize(0..4)).map(|_| (rng.alphanumeric().to_string(), random_value(rng, depth + 1))).collect(),
            ),
        }
    }

    /// A record with a bit of everything, from `rng`: fixed keys, alias
    /// keys whose columns are taken, values of the wrong type, errors,
    /// events, links, a resource, quotes and control characters.
    fn varied_record(rng: &mut fastrand::Rng, keys: &[String]) -> Record {
        let mut rec = Record::new(if rng.bool() { RecordKind::LlmCall } else { RecordKind::Raw }, "r \"q\" \\ \n");
        for _ in 0..rng.usize(0..16) {
            let key = keys[rng.usize(..keys.len())].clone();
            rec.set_attribute(key, random_value(rng, 0));
        }
        if rng.bool() {
            rec.set_attribute("gen_ai.response.id", random_value(rng, 3));
        }
        if rng.u8(0..4) == 0 {
            rec.set_attribute("input", "an attribute named input");
        }
        rec.input = rng.bool().then(|| random_value(rng, 0));
        rec.output = rng.bool().then(|| random_value(rng, 0));
        rec.raw = rng.bool().then(|| random_value(rng, 0));
        if rng.u8(0..3) == 0 {
            // A call keeping its input in `raw.request`, as OpenAI capture does.
            let messages = serde_json::json!([{"role": "user", "content": random_value(rng, 3)}]);
            let reply = serde_json::json!({"role": "assistant", "content": random_value(rng, 3)});
            let response = serde_json::json!({"choices": [{"index": 0, "message": reply, "finish_reason": "stop"}]});
            rec.raw = Some(serde_json::json!({"request": {"messages": messages}, "response": response}));
            rec.input_in_raw = Some(crate::record::RequestShape::Chat);
            rec.output_in_raw = rng.bool().then_some(crate::record::ResponseShape::Chat);
            if rng.bool() {
                // The answer kept as its text, as OpenAI capture keeps it:
                // upstream's order of keys and spelling of numbers.
                let text = format!(
                    r#"{{ "object": "chat.completion", "choices": {}, "created": 1.0e9, "id": "c\"1\\" }}"#,
                    response["choices"]
                );
                if let Some(raw) = rec.raw.as_mut().and_then(Value::as_object_mut) {
                    raw.remove("response");
                }
                rec.response_text = Some(crate::record::JsonText::compact(text.as_bytes()).unwrap());
            }
            if rng.bool() {
                // The request kept as its text, as the proxy and the
                // packages keep it: the client's order of keys.
                let text = format!(r#"{{ "model": "gpt-4o", "messages": {messages}, "n": 1 }}"#);
                if let Some(raw) = rec.raw.as_mut().and_then(Value::as_object_mut) {
                    raw.remove("request");
                }
                rec.request_text = Some(crate::record::JsonText::compact(text.as_bytes()).unwrap());
            }
        } else if rng.u8(0..4) == 0 {
            // Text beside a `raw` of any kind (none, not an object, ...).
            let text = serde_json::to_vec(&random_value(rng, 1)).unwrap();
            match rng.u8(0..3) {
                0 => rec.response_text = Some(crate::record::JsonText::compact(&text).unwrap()),
                1 => rec.request_text = Some(crate::record::JsonText::compact(&text).unwrap()),
                _ => {
                    rec.request_text = Some(crate::record::JsonText::compact(&text).unwrap());
                    rec.response_text = Some(crate::record::JsonText::compact(b"[1, {\"a\": 2}]").unwrap());
                }
            }
        }
        rec.user_context = rng.bool().then(|| random_value(rng, 2));
        rec.source = rng.bool().then(|| "src\u{1}".to_owned());
        rec.trace_state = rng.bool().then(|| "k=v".to_owned());
        if rng.bool() {
            rec.parent_span_id = Some(crate::record::SpanId::random());
        }
        match rng.u8(0..3) {
            0 => rec.status = crate::record::Status::ok(),
            1 => rec.status = crate::record::Status::error("it \"failed\"\t"),
            _ => {}
        }
        if rng.bool() {
            rec.error = Some(crate::record::ErrorInfo {
                error_type: "E".into(),
                message: "bad \u{7f}".into(),
                stack: rng.bool().then(|| "at x\nat y".to_owned()),
            });
        }
        if rng.bool() {
            rec.caller = Some(crate::record::Caller { function: Some("f".into()), file: "a.rs".into(), line: 3 });
        }
        if rng.bool() {
            let mut attributes = crate::record::Attributes::default();
            attributes.insert("k".into(), random_value(rng, 2));
            rec.events.push(crate::record::Event { name: "ev".into(), time: SystemTime::now(), attributes });
        }
        if rng.u8(0..4) == 0 {
            let mut resource = Resource::default();
            resource.attributes.insert("service.name".into(), Value::String("svc".into()));
            resource.attributes.insert("z".into(), random_value(rng, 2));
            rec.resource = Some(Arc::new(resource));
        }
        crate::pipeline::limits::cap_record(&mut rec, 256);
        rec
    }

    #[test]
    fn the_one_pass_body_is_the_object_the_map_of_columns_gave() {
        let keys: Vec<String> = {
            let mut rng = fastrand::Rng::with_seed(11);
            (0..300)
                .map(|i| match i % 3 {
                    0 => mapping::FIXED_SLOTS[rng.usize(..mapping::FIXED_SLOTS.len())].0.to_owned(),
                    _ => format!("k{}", rng.u16(..300)),
                })
                .collect()
        };
        // The same slots in both: each registry sees the same keys in the
        // same order.
        let (new, old) = (SlotRegistry::new(), SlotRegistry::new());
        let mut rng = fastrand::Rng::with_seed(3);
        for i in 0..3000 {
            let rec = varied_record(&mut rng, &keys);
            let t = SystemTime::now();
            let (mut head, tail) = Encoder::with_registry(&new).encode_wire(&rec, &Resource::default(), t);
            head.extend_from_slice(tail.as_bytes());
            let body: Value = serde_json::from_slice(&head).expect("valid JSON");
            let expected = Value::Object(reference::Encoder::with_registry(&old).encode(&rec, &Resource::default(), t));
            assert_eq!(body, expected, "record {i}: {rec:?}");
        }
    }

    #[test]
    fn any_record_keeping_its_content_in_raw_encodes_as_its_written_out_form() {
        // Keys of every kind but those sharing a column with the content
        // (which of two values a column keeps depends on their order).
        const CONTENT_COLUMNS: &[&str] = &[
            "llm_input",
            "llm_output",
            "gen_ai_input_messages",
            "gen_ai_output_messages",
            "gen_ai_system_instructions",
            "gen_ai_tool_definitions",
        ];
        let fixed: Vec<&str> =
            mapping::FIXED_SLOTS.iter().filter(|(_, c)| !CONTENT_COLUMNS.contains(c)).map(|(k, _)| *k).collect();
        let mut rng = fastrand::Rng::with_seed(17);
        let keys: Vec<String> = (0..200)
            .map(|i| if i % 3 == 0 { fixed[rng.usize(..fixed.len())].to_owned() } else { format!("k{}", rng.u16(..200)) })
            .collect();
        let r = SlotRegistry::new();
        for i in 0..1000 {
            let mut rec = varied_record(&mut rng, &keys);
            rec.attributes.retain(|k, _| k != "input" && k != "output");
            let text = || random_value(&mut fastrand::Rng::with_seed(i), 3);
            let (request, shape) = match i % 3 {
                0 => (json!({"messages": [{"role": "user", "content": text()}], "tools": [{"type": "function", "function": {"name": "f"}}]}), RequestShape::Chat),
                1 => (json!({"input": text(), "instructions": "Be brief."}), RequestShape::Responses),
                _ => (json!({"prompt": text()}), RequestShape::Prompt),
            };
            let (response, reply) = match i % 3 {
                0 => (json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text()}, "finish_reason": "stop"}]}), ResponseShape::Chat),
                1 => (json!({"status": "completed", "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hi"}]}]}), ResponseShape::Responses),
                _ => (json!({"choices": [{"index": 0, "text": text()}]}), ResponseShape::Completion),
            };
            rec.raw = Some(json!({"request": request}));
            (rec.request_text, rec.response_text) = (None, None);
            if i % 4 < 2 {
                // The request kept as its text.
                rec.raw = Some(json!({}));
                rec.request_text = Some(crate::record::JsonText::compact(&serde_json::to_vec(&request).unwrap()).unwrap());
            }
            if i % 2 == 0 {
                rec.raw.as_mut().unwrap()["response"] = response;
            } else {
                // Kept as its text (serde_json's, so in the order its parse has).
                rec.response_text = Some(crate::record::JsonText::compact(&serde_json::to_vec(&response).unwrap()).unwrap());
            }
            rec.input_in_raw = Some(shape);
            rec.output_in_raw = rng.bool().then_some(reply);
            let mut expanded = rec.clone();
            expanded.expand_content();
            assert!(expanded.input.is_some() || rec.input().is_none(), "{rec:?}");
            let t = SystemTime::now();
            let encode = |r: &Record, registry: &SlotRegistry| -> Value {
                serde_json::from_slice(&Encoder::with_registry(registry).encode_to_vec(r, &Resource::default(), t))
                    .unwrap()
            };
            assert_eq!(encode(&rec, &r), encode(&expanded, &r), "record {i}: {rec:?}");
        }
    }

    #[test]
    fn a_request_kept_as_text_goes_into_the_raw_column_as_it_is() {
        let r = SlotRegistry::new();
        let mut rec = Record::new(RecordKind::LlmCall, "chat gpt-4o");
        rec.raw = Some(json!({"zeta": [1]}));
        rec.request_text = Some(crate::record::JsonText::compact(br#"{"note": "a \"quote\"", "model": "gpt-4o"}"#).unwrap());
        rec.input_in_raw = Some(crate::record::RequestShape::Whole);
        let body: Value = serde_json::from_slice(&Encoder::with_registry(&r).encode_to_vec(
            &rec,
            &Resource::default(),
            SystemTime::now(),
        ))
        .unwrap();
        assert_eq!(body["cvs199"], r#"{"request":{"note":"a \"quote\"","model":"gpt-4o"},"zeta":[1]}"#);
        // The input read from it (here the whole request), as JSON text.
        let input: Value = serde_json::from_str(body["llm_input"].as_str().unwrap()).unwrap();
        assert_eq!(input, json!({"note": "a \"quote\"", "model": "gpt-4o"}));
    }

    #[test]
    fn a_response_kept_as_text_goes_into_the_raw_column_as_it_is() {
        let r = SlotRegistry::new();
        let mut rec = Record::new(RecordKind::LlmCall, "chat gpt-4o");
        rec.raw = Some(json!({"request": {"model": "gpt-4o", "note": "a \"quote\""}, "zeta": [1]}));
        let text = br#"{"id": "c\"1", "created": 1.50e2, "choices": [{"message": {"content": "a\\b\n"}}]}"#;
        rec.response_text = Some(crate::record::JsonText::compact(text).unwrap());
        rec.output_in_raw = Some(crate::record::ResponseShape::Chat);
        let body: Value = serde_json::from_slice(&Encoder::with_registry(&r).encode_to_vec(
            &rec,
            &Resource::default(),
            SystemTime::now(),
        ))
        .unwrap();
        let column = body["cvs199"].as_str().unwrap();
        // Upstream's order and spelling, inside `raw` in its place.
        assert_eq!(
            column,
            r#"{"request":{"model":"gpt-4o","note":"a \"quote\""},"response":{"id":"c\"1","created":1.50e2,"choices":[{"message":{"content":"a\\b\n"}}]},"zeta":[1]}"#
        );
        assert_eq!(serde_json::from_str::<Value>(column).unwrap(), *rec.raw_json().unwrap());
        assert_eq!(body["llm_output"], "a\\b\n");
    }

    #[test]
    fn no_key_goes_to_the_overflow_column() {
        // The encoder writes the overflow column last, without looking
        // whether a key took it first.
        assert!(mapping::FIXED_SLOTS.iter().all(|(_, column)| *column != mapping::OVERFLOW_COLUMN));
        assert!(!mapping::OVERFLOW_COLUMN.starts_with("cv"), "never a dynamic slot");
    }

    #[test]
    fn random_records_encode_to_valid_json_without_panicking() {
        let r = SlotRegistry::new();
        let mut rng = fastrand::Rng::with_seed(7);
        let keys: Vec<String> = (0..400)
            .map(|i| match i % 4 {
                0 => mapping::FIXED_SLOTS[i % mapping::FIXED_SLOTS.len()].0.to_owned(),
                _ => format!("k{}", rng.u16(..400)),
            })
            .collect();
        for _ in 0..2000 {
            let mut rec = Record::new(RecordKind::Raw, "r");
            for _ in 0..rng.usize(0..12) {
                let key = keys[rng.usize(..keys.len())].clone();
                rec.set_attribute(key, random_value(&mut rng, 0));
            }
            rec.input = Some(random_value(&mut rng, 0));
            rec.raw = Some(random_value(&mut rng, 0));
            crate::pipeline::limits::cap_record(&mut rec, 256);
            let body = Encoder::with_registry(&r).encode_to_vec(&rec, &Resource::default(), SystemTime::now());
            let parsed: Value = serde_json::from_slice(&body).expect("valid JSON");
            assert!(parsed.get("otel_schema_url").is_some());
        }
    }
}
