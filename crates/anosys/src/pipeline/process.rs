//! What the pipeline does to each record in the background before any sink
//! sees it, the same for every language and every source: content the
//! settings hide is taken out, LLM calls are priced, secrets are redacted,
//! oversized values are cut (these on the blocking pool, see [`Prepare`]),
//! every record is shown to the sinks' metrics, and the sampler decides
//! which traces go on (these on the worker's thread).

use std::time::Instant;

use serde_json::Value;

use std::sync::Arc;

use super::limits;
use super::sample::{Sampler, Sorted};
use crate::config::Config;
use crate::cost::{self, PriceTable};
use crate::redact::Redactor;
use crate::record::{Record, RecordKind};

/// Content the settings hide (OpenInference's `OPENINFERENCE_HIDE_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hiding {
    pub inputs: bool,
    pub outputs: bool,
    pub input_messages: bool,
    pub output_messages: bool,
}

impl Hiding {
    pub(crate) fn from_config(config: &Config) -> Hiding {
        Hiding {
            inputs: config.hide_inputs,
            outputs: config.hide_outputs,
            input_messages: config.hide_input_messages,
            output_messages: config.hide_output_messages,
        }
    }

    fn any(&self) -> bool {
        self.inputs || self.outputs || self.input_messages || self.output_messages
    }

    /// Takes the hidden content out of `record` and lists what was hidden
    /// in `anosys.content.hidden`.
    fn apply(&self, record: &mut Record) {
        // What is hidden is named by the fields it was in.
        record.expand_content();
        let mut hidden: Vec<Value> = Vec::new();
        let mut take = |record: &mut Record, key: &'static str| {
            if record.attributes.shift_remove(key).is_some() {
                hidden.push(key.into());
            }
        };
        if self.inputs || self.input_messages {
            take(record, "gen_ai.input.messages");
            take(record, "gen_ai.system_instructions");
        }
        if self.outputs || self.output_messages {
            take(record, "gen_ai.output.messages");
        }
        if self.inputs && record.input.take().is_some() {
            hidden.push("input".into());
        }
        if self.outputs && record.output.take().is_some() {
            hidden.push("output".into());
        }
        // An LLM call keeps the request and response as they came in `raw`.
        if record.kind == RecordKind::LlmCall
            && let Some(Value::Object(raw)) = &mut record.raw
        {
            for (on, key) in [(self.inputs, "request"), (self.outputs, "response")] {
                if on && raw.remove(key).is_some() {
                    hidden.push(format!("raw.{key}").into());
                }
            }
        }
        if !hidden.is_empty() {
            record.set_attribute("anosys.content.hidden", Value::Array(hidden));
        }
    }
}

/// The prices LLM calls are priced with.
pub(crate) enum Prices {
    /// The built-in table.
    Builtin,
    /// The built-in table with the models of `ANOSYS_PRICES`.
    Custom(Arc<PriceTable>),
}

impl Prices {
    /// The prices `config` names: the built-in table, plus its price file.
    pub(crate) fn from_config(config: &Config) -> Result<Prices, cost::PriceError> {
        match &config.prices {
            None => Ok(Prices::Builtin),
            Some(path) => Ok(Prices::Custom(Arc::new(PriceTable::with_overrides(path)?))),
        }
    }

    fn table(&self) -> &PriceTable {
        match self {
            Prices::Builtin => PriceTable::builtin(),
            Prices::Custom(t) => t,
        }
    }
}

/// The steps, set up once from the configuration.
pub(crate) struct Steps {
    /// What is done to each record on its own (shared with the thread
    /// that does it, see [`Prepare`]).
    pub prepare: Arc<Prepare>,
    pub sampler: Option<Sampler>,
}

/// The steps done to each record on its own: hiding, pricing, redaction
/// and the size cap. They need nothing but the record, so they run on the
/// blocking pool, next to the sinks' encoding, and the worker's thread
/// keeps to batching and sending.
pub(crate) struct Prepare {
    pub hiding: Hiding,
    pub prices: Prices,
    /// `None` when redaction is off.
    pub redactor: Option<Redactor>,
    pub max_attribute_bytes: usize,
}

/// What [`Prepare::record`] did, for the counters and diagnostics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Prepared {
    /// Values cut to the attribute size cap.
    pub cut: usize,
    /// The call's cost, in billionths of a US dollar, when priced.
    pub cost_nano_usd: Option<u64>,
    /// An LLM call with usage whose model has no price.
    pub unpriced: bool,
}

impl Prepare {
    /// Everything done to one record on its own, before sampling.
    pub(crate) fn record(&self, record: &mut Record) -> Prepared {
        // The steps add attributes to the map the caller's thread made (an
        // LLM call's has room for what cost adds). Not moved into a map of
        // this thread's: the record goes back to a capturing thread to be
        // freed (`batch::Spent`), and with the system allocator a map made
        // here and freed there waits on this thread's arena lock. Measured
        // (`benches/logger.rs`, glibc): 2.9 us a logged call with the move,
        // 1.7 us without.
        if self.hiding.any() {
            self.hiding.apply(record);
        }
        cost::price_record(self.prices.table(), record);
        if let Some(redactor) = &self.redactor {
            redactor.redact_record(record);
        }
        let cut = limits::cap_record(record, self.max_attribute_bytes);
        let cost_nano_usd = record
            .attribute("gen_ai.usage.cost")
            .and_then(Value::as_f64)
            .filter(|c| c.is_finite() && *c >= 0.0)
            .map(|c| (c * 1e9).round() as u64);
        let unpriced = record.attribute("anosys.cost.status").and_then(Value::as_str) == Some("unpriced");
        Prepared { cut, cost_nano_usd, unpriced }
    }
}

impl Steps {
    /// Sorts prepared records into kept and sampled out.
    pub(crate) fn sample(&mut self, records: Vec<(Record, usize)>, now: Instant, out: &mut Sorted) {
        match &mut self.sampler {
            None => out.kept.extend(records),
            Some(sampler) => {
                for (record, size) in records {
                    sampler.offer(record, size, now, out);
                }
                sampler.expire(now, out);
            }
        }
    }

    /// Decides what the sampler holds: every trace (`all`, at a flush or
    /// shutdown) or those that waited too long.
    pub(crate) fn release_held(&mut self, all: bool, now: Instant, out: &mut Sorted) {
        if let Some(sampler) = &mut self.sampler {
            if all {
                sampler.decide_all(out);
            } else {
                sampler.expire(now, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hiding_takes_out_what_it_names_and_says_so() {
        let mut r = Record::new(RecordKind::LlmCall, "chat");
        r.input = Some("the request".into());
        r.output = Some("the reply".into());
        r.set_attribute("gen_ai.input.messages", "[…]");
        r.set_attribute("gen_ai.output.messages", "[…]");
        r.set_attribute("gen_ai.request.model", "gpt-4o");
        let only_messages = Hiding { input_messages: true, ..Hiding::default() };
        let mut a = r.clone();
        only_messages.apply(&mut a);
        assert!(a.attribute("gen_ai.input.messages").is_none());
        assert!(a.input.is_some() && a.output.is_some() && a.attribute("gen_ai.output.messages").is_some());
        assert_eq!(a.attribute("anosys.content.hidden"), Some(&serde_json::json!(["gen_ai.input.messages"])));

        let everything = Hiding { inputs: true, outputs: true, ..Hiding::default() };
        everything.apply(&mut r);
        assert!(r.input.is_none() && r.output.is_none());
        assert!(r.attribute("gen_ai.output.messages").is_none());
        assert_eq!(r.attribute("gen_ai.request.model"), Some(&Value::from("gpt-4o")));
        assert_eq!(r.attribute("anosys.content.hidden").and_then(Value::as_array).map(Vec::len), Some(4));
        let mut call = Record::new(RecordKind::LlmCall, "chat");
        call.raw = Some(serde_json::json!({"request": {"messages": []}, "response": {"choices": []}}));
        Hiding { outputs: true, ..Hiding::default() }.apply(&mut call);
        assert_eq!(call.raw, Some(serde_json::json!({"request": {"messages": []}})));
        // A response kept as text is hidden as well.
        let mut call = Record::new(RecordKind::LlmCall, "chat");
        call.raw = Some(serde_json::json!({"request": {"messages": []}}));
        call.response_text = Some(crate::record::JsonText::compact(br#"{"choices": []}"#).unwrap());
        Hiding { outputs: true, ..Hiding::default() }.apply(&mut call);
        assert_eq!((call.raw, call.response_text), (Some(serde_json::json!({"request": {"messages": []}})), None));
    }
}
