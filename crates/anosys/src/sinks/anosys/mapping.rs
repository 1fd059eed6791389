//! The AnoSys column table: the one place that says which logical key goes
//! to which backend column, and how each column is typed.
//!
//! It follows `BASE_KEY_MAPPING` and `OTEL_AI_VALID_TYPES` of the newest
//! public AnoSys SDK (anosys-sdk-core 1.0.14). MAPPINGS.md documents it; a
//! test checks the document lists every row.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// How a backend column is typed; values are coerced to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Free text: strings as they are, lists and maps as JSON, numbers and
    /// booleans as their JSON text.
    Text,
    /// A number (`double` in the backend).
    Number,
    /// A boolean.
    Boolean,
    /// JSON text: lists and maps serialised, strings as they are.
    Json,
    /// ISO 8601 timestamp text.
    Timestamp,
}

/// Logical key → backend column, exactly as the SDK's `BASE_KEY_MAPPING`.
pub const FIXED_SLOTS: &[(&str, &str)] = &[
    // Schema and metadata
    ("custom_mapping", "otel_schema_url"),
    ("otel_observed_timestamp", "otel_observed_timestamp"),
    ("otel_record_type", "otel_record_type"),
    // anosys's own: the record's stable id (trace and span id), the same on
    // every delivery, so the backend can drop a duplicate.
    ("anosys.record_id", "anosys_record_id"),
    // Timing
    ("cvn1", "cvn1"),
    ("cvn2", "cvn2"),
    ("otel_duration_ms", "otel_duration_ms"),
    // Trace and span identifiers
    ("name", "otel_name"),
    ("trace_id", "otel_trace_id"),
    ("span_id", "otel_span_id"),
    ("trace_state", "otel_trace_flags"),
    ("parent_id", "otel_parent_span_id"),
    ("start_time", "otel_start_time"),
    ("end_time", "otel_end_time"),
    ("kind", "otel_kind"),
    // Status
    ("status", "otel_status"),
    ("status_code", "otel_status_code"),
    ("resp_id", "otel_status_message"),
    // Resource
    ("otel_resource", "otel_resource"),
    // GenAI: general and system
    ("gen_ai.system", "gen_ai_system"),
    ("gen_ai.provider.name", "gen_ai_provider_name"),
    ("gen_ai.operation.name", "gen_ai_operation_name"),
    ("server.address", "cvs14"),
    ("server.port", "cvn3"),
    ("error.type", "cvs10"),
    ("llm_model_name", "cvs16"),
    ("service.name", "cvs17"),
    ("attributes", "cvs18"),
    ("gen_ai.span.kind", "cvs19"),
    // GenAI: request
    ("gen_ai.request.model", "gen_ai_request_model"),
    ("gen_ai.request.temperature", "gen_ai_request_temperature"),
    ("gen_ai.request.top_p", "gen_ai_request_top_p"),
    ("gen_ai.request.top_k", "gen_ai_request_top_k"),
    ("gen_ai.request.max_tokens", "gen_ai_request_max_tokens"),
    ("gen_ai.request.frequency_penalty", "gen_ai_request_frequency_penalty"),
    ("gen_ai.request.presence_penalty", "gen_ai_request_presence_penalty"),
    ("gen_ai.request.stop_sequences", "gen_ai_request_stop_sequences"),
    ("gen_ai.request.seed", "gen_ai_request_seed"),
    ("gen_ai.request.choice.count", "gen_ai_request_choice_count"),
    ("gen_ai.request.encoding_formats", "gen_ai_request_encoding_formats"),
    // GenAI: response and usage
    ("gen_ai.response.model", "gen_ai_response_model"),
    ("gen_ai.response.id", "gen_ai_response_id"),
    ("gen_ai.response.finish_reasons", "gen_ai_response_finish_reasons"),
    ("gen_ai.usage.input_tokens", "gen_ai_usage_input_tokens"),
    ("gen_ai.usage.output_tokens", "gen_ai_usage_output_tokens"),
    ("gen_ai.usage.total_tokens", "gen_ai_usage_total_tokens"),
    // anosys's own: the call's cost in US dollars (the breakdown,
    // `anosys.cost.*`, goes to dynamic slots).
    ("gen_ai.usage.cost", "gen_ai_usage_cost"),
    ("gen_ai.output.type", "gen_ai_output_type"),
    // GenAI: content
    ("gen_ai.input.messages", "gen_ai_input_messages"),
    ("gen_ai.output.messages", "gen_ai_output_messages"),
    ("gen_ai.system_instructions", "gen_ai_system_instructions"),
    ("gen_ai.tool.definitions", "gen_ai_tool_definitions"),
    // GenAI: agents
    ("gen_ai.agent.id", "gen_ai_agent_id"),
    ("gen_ai.agent.name", "gen_ai_agent_name"),
    ("gen_ai.agent.description", "gen_ai_agent_description"),
    ("gen_ai.conversation.id", "gen_ai_conversation_id"),
    ("gen_ai.data_source.id", "gen_ai_data_source_id"),
    // GenAI: embeddings
    ("gen_ai.embeddings.dimension.count", "gen_ai_embeddings_dimension_count"),
    // Legacy LLM fields
    ("llm_tools", "llm_tools"),
    ("llm_system", "llm_system"),
    ("llm_input", "llm_input"),
    ("llm_output", "llm_output"),
    ("llm_model", "llm_model"),
    ("llm_invocation_parameters", "llm_invocation_parameters"),
    ("llm_token_count", "llm_token_count"),
    ("llm_input_messages", "gen_ai_input_messages"),
    ("llm_output_messages", "gen_ai_output_messages"),
    // Function logging
    ("input", "llm_input"),
    ("output", "llm_output"),
    ("error", "cvs3"),
    ("caller", "cvs4"),
    ("error_type", "cvs10"),
    ("error_message", "cvs11"),
    ("error_stack", "cvs12"),
    // Source tracking
    ("raw", "cvs199"),
    ("from_source", "cvs200"),
    ("source", "cvs200"),
    ("is_streaming", "cvb2"),
    ("is_agent", "cvb1"),
    ("events", "otel_events"),
    ("links", "otel_links"),
    ("user_context", "cvs5"),
    ("gen_ai.request.tool_choice", "cvs15"),
];

/// Column types, as the SDK's `OTEL_AI_VALID_TYPES` has them (plus the
/// timestamps). Columns not listed are typed by prefix: `cvs` text, `cvn`
/// number, `cvb` boolean; anything else is text.
pub const COLUMN_TYPES: &[(&str, ColumnType)] = &[
    ("otel_observed_timestamp", ColumnType::Timestamp),
    ("otel_start_time", ColumnType::Timestamp),
    ("otel_end_time", ColumnType::Timestamp),
    ("otel_resource", ColumnType::Json),
    ("otel_duration_ms", ColumnType::Number),
    ("otel_attributes", ColumnType::Json),
    ("otel_events", ColumnType::Json),
    ("otel_links", ColumnType::Json),
    ("llm_tools", ColumnType::Json),
    ("llm_token_count", ColumnType::Json),
    ("llm_invocation_parameters", ColumnType::Json),
    ("gen_ai_request_temperature", ColumnType::Number),
    ("gen_ai_request_top_p", ColumnType::Number),
    ("gen_ai_request_top_k", ColumnType::Number),
    ("gen_ai_request_max_tokens", ColumnType::Number),
    ("gen_ai_request_frequency_penalty", ColumnType::Number),
    ("gen_ai_request_presence_penalty", ColumnType::Number),
    ("gen_ai_request_seed", ColumnType::Number),
    ("gen_ai_request_choice_count", ColumnType::Number),
    ("gen_ai_usage_input_tokens", ColumnType::Number),
    ("gen_ai_usage_output_tokens", ColumnType::Number),
    ("gen_ai_usage_total_tokens", ColumnType::Number),
    ("gen_ai_usage_cost", ColumnType::Number),
    ("gen_ai_embeddings_dimension_count", ColumnType::Number),
    ("gen_ai_request_stop_sequences", ColumnType::Json),
    ("gen_ai_request_encoding_formats", ColumnType::Json),
    ("gen_ai_response_finish_reasons", ColumnType::Json),
    ("gen_ai_input_messages", ColumnType::Json),
    ("gen_ai_output_messages", ColumnType::Json),
    ("gen_ai_system_instructions", ColumnType::Json),
    ("gen_ai_tool_definitions", ColumnType::Json),
];

/// The JSON column that holds, as one object, every key that could not get
/// a slot of its own (its type's slots ran out, its value did not fit its
/// column's type, or its column was already taken in this record).
pub const OVERFLOW_COLUMN: &str = "otel_attributes";

/// Value of `otel_record_type`.
pub const RECORD_TYPE: &str = "AnoSys Trace";

/// Highest dynamic slot index per prefix (inclusive). `cvs199` and
/// `cvs200` are reserved, so strings stop at 198.
pub const MAX_STRING_SLOT: u32 = 198;
/// Highest dynamic `cvn` slot.
pub const MAX_NUMBER_SLOT: u32 = 99;
/// Highest dynamic `cvb` slot.
pub const MAX_BOOL_SLOT: u32 = 99;

/// A fast non-keyed hash (FxHash's, eight bytes at a time): the lookups
/// below run for every attribute of every record, and their keys are
/// short, fixed and not attacker-chosen, so SipHash's flooding resistance
/// buys nothing here.
#[derive(Default, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
}

/// A map with [`Fnv`] hashing, for small maps of known or bounded keys.
pub(crate) type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// A fixed column as the encoder needs it, resolved once per key: its
/// name, its type, and a small number of its own (the same for every key
/// that shares the column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FixedColumn {
    pub name: &'static str,
    pub ty: ColumnType,
    pub id: usize,
}

static FIXED_INDEX: LazyLock<FastMap<&'static str, FixedColumn>> = LazyLock::new(|| {
    let mut ids: FastMap<&'static str, usize> = FastMap::default();
    FIXED_SLOTS
        .iter()
        .map(|(key, column)| {
            let next = ids.len();
            let id = *ids.entry(column).or_insert(next);
            (*key, FixedColumn { name: column, ty: column_type(column), id })
        })
        .collect()
});
static TYPE_INDEX: LazyLock<FastMap<&'static str, ColumnType>> =
    LazyLock::new(|| COLUMN_TYPES.iter().copied().collect());
static RESERVED: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| FIXED_SLOTS.iter().map(|(_, c)| *c).collect());

/// The fixed column of a known key, with its type and number.
pub(crate) fn fixed(key: &str) -> Option<FixedColumn> {
    FIXED_INDEX.get(key).copied()
}

/// How many distinct fixed columns there are (their numbers are below it).
pub(crate) fn fixed_column_count() -> usize {
    RESERVED.len()
}

/// The column a known key goes to.
pub fn fixed_column(key: &str) -> Option<&'static str> {
    FIXED_INDEX.get(key).map(|c| c.name)
}

/// The type of a column.
pub fn column_type(column: &str) -> ColumnType {
    if let Some(t) = TYPE_INDEX.get(column) {
        return *t;
    }
    let digits = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    if column.strip_prefix("cvn").is_some_and(digits) {
        ColumnType::Number
    } else if column.strip_prefix("cvb").is_some_and(digits) {
        ColumnType::Boolean
    } else {
        ColumnType::Text
    }
}

/// Whether `column` is a `cvs`/`cvn`/`cvb` slot that the fixed table uses.
pub fn is_reserved_slot(column: &str) -> bool {
    RESERVED.contains(column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_md_lists_every_row() {
        let doc = include_str!("../../../../../MAPPINGS.md");
        for (key, column) in FIXED_SLOTS {
            let row = format!("| `{key}` | `{column}` |");
            assert!(doc.contains(&row), "MAPPINGS.md lacks {row}");
        }
        assert!(doc.contains(OVERFLOW_COLUMN));
    }

    #[test]
    fn column_types_follow_the_sdk() {
        assert_eq!(column_type("gen_ai_usage_input_tokens"), ColumnType::Number);
        assert_eq!(column_type("gen_ai_input_messages"), ColumnType::Json);
        assert_eq!(column_type("otel_start_time"), ColumnType::Timestamp);
        assert_eq!(column_type("cvn42"), ColumnType::Number);
        assert_eq!(column_type("cvb7"), ColumnType::Boolean);
        assert_eq!(column_type("cvs3"), ColumnType::Text);
        assert_eq!(column_type("cvnx"), ColumnType::Text);
        assert!(is_reserved_slot("cvn3") && is_reserved_slot("cvb1") && is_reserved_slot("cvs200"));
        assert!(!is_reserved_slot("cvs100"));
    }
}
