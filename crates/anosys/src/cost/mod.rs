//! Cost in USD of LLM calls, from the usage a provider reports and
//! LiteLLM's price map (compiled in; a file named by `ANOSYS_PRICES` adds
//! or replaces models).
//!
//! [`price_record`] prices an [`RecordKind::LlmCall`] record in place;
//! [`PriceTable::cost`] prices a [`Usage`] without a record.
//!
//! ```
//! use anosys::cost::{price_record, PriceTable};
//! use anosys::sources::openai::{CaptureOptions, OpenAiCall};
//! use serde_json::json;
//!
//! let request = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]});
//! let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default());
//! let mut record = call.finish(200, json!({
//!     "model": "gpt-4o-mini-2024-07-18", "choices": [],
//!     "usage": {"prompt_tokens": 2000, "completion_tokens": 100,
//!               "prompt_tokens_details": {"cached_tokens": 1024}}
//! }));
//! price_record(PriceTable::builtin(), &mut record);
//!
//! // 976 uncached at $0.15/M, 1024 cached at $0.075/M, 100 out at $0.60/M
//! let total = record.attribute("gen_ai.usage.cost").and_then(|v| v.as_f64()).unwrap();
//! assert!((total - (976.0 * 1.5e-7 + 1024.0 * 7.5e-8 + 100.0 * 6e-7)).abs() < 1e-15);
//! assert_eq!(record.attribute("anosys.cost.status"), Some(&json!("priced")));
//! assert_eq!(record.attribute("anosys.cost.model"), Some(&json!("gpt-4o-mini-2024-07-18")));
//! ```
//!
//! # How a call is priced
//!
//! - The model is the response's (`gen_ai.response.model`), else the
//!   request's; it is resolved to a table entry by [`PriceTable::resolve`]
//!   (provider prefixes, dates, `ft:` fine-tunes, case).
//! - `gen_ai.usage.input_tokens` includes cache reads
//!   (`gen_ai.usage.cache_read.input_tokens`) and cache writes
//!   (`gen_ai.usage.cache_creation.input_tokens`): reads are priced at
//!   `cache_read_input_token_cost`, writes at
//!   `cache_creation_input_token_cost` (each the input price when the table
//!   has none), and only the rest at the input price. Nothing is counted
//!   twice; if reads and writes exceed the input, the rest is zero.
//! - `gen_ai.usage.output_tokens` includes reasoning tokens
//!   (`gen_ai.usage.reasoning.output_tokens`): `anosys.cost.reasoning` is
//!   their share of `anosys.cost.output`, at
//!   `output_cost_per_reasoning_token` when the model has one, else the
//!   output price.
//! - The tier the response says was served (`openai.response.service_tier`:
//!   `flex`, `priority`, `batch`) selects LiteLLM's `_flex`, `_priority`,
//!   `_batches` prices, each falling back to the standard price the table
//!   has for that kind; `default`, `auto`, `scale` or none are the standard
//!   prices. The tier asked for is not used.
//! - Long context, as LiteLLM does it: when the input tokens are more than a
//!   threshold the model has prices for (`*_above_200k_tokens`,
//!   `*_above_272k_tokens`, …; at or above for xAI models), every token of
//!   the call (input, cached, cache writes, output) is priced at that
//!   threshold's price, where the model has one for that kind (the highest
//!   such threshold wins). The tier's threshold price comes first
//!   (`input_cost_per_token_above_272k_tokens_flex`), then the standard one.
//! - Images: with token usage and token prices (gpt-image), by tokens, the
//!   output at `output_cost_per_image_token`; otherwise by image, from the
//!   entries `{quality}/{size}/{model}` or `{size}/{model}`
//!   (`openai.request.image.quality`, `openai.request.image.size`, default
//!   `1024x1024`) times `openai.response.image.count`: `input_cost_per_image`
//!   or `output_cost_per_image` per image, else `input_cost_per_pixel` per
//!   pixel; that cost is `anosys.cost.output`.
//! - Embeddings: input tokens at the input price (their output price is 0).
//!
//! Each part is `tokens × price` in `f64`, not rounded; `gen_ai.usage.cost`
//! is their sum (input + cached input + cache writes + output).
//!
//! # What a record gets
//!
//! | attribute | when |
//! | --- | --- |
//! | `anosys.cost.status` | always on LLM calls: `priced`, `unpriced` (model unknown or not named: no cost at all, never a silent 0), `no_usage` (no token or image counts), `invalid_usage` (a count that is negative, fractional or not a number) |
//! | `gen_ai.usage.cost` | priced: the total in USD |
//! | `anosys.cost.input`, `anosys.cost.output` | priced |
//! | `anosys.cost.cached_input`, `anosys.cost.cache_write`, `anosys.cost.reasoning` | priced, when there were such tokens |
//! | `anosys.cost.model` | priced: the table key used |
//! | `anosys.cost.price_source` | priced: the built-in snapshot (`litellm 1.110.2 model_prices_and_context_window.json 2026-12-02`) or `override PATH` |
//! | `anosys.cost.tier` | priced at a tier other than standard |

mod resolve;
mod table;

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

pub use resolve::{Resolution, Step};
pub use table::{ModelPrice, PriceError, PriceTable, RateKind, Tier, PRICES_ENV, SOURCE_DATE, SOURCE_VERSION};

use crate::record::{Record, RecordKind};

/// What a call used, as the pricing needs it. Token counts include their
/// parts: `input_tokens` includes cache reads and writes, `output_tokens`
/// includes reasoning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage<'a> {
    /// The model string as reported (resolved by [`PriceTable::resolve`]).
    pub model: &'a str,
    /// All input tokens.
    pub input_tokens: Option<u64>,
    /// All output tokens.
    pub output_tokens: Option<u64>,
    /// Input tokens read from the cache (part of `input_tokens`).
    pub cache_read_tokens: u64,
    /// Input tokens written to the cache (part of `input_tokens`).
    pub cache_write_tokens: u64,
    /// Reasoning tokens (part of `output_tokens`).
    pub reasoning_tokens: u64,
    /// The tier the response says was served.
    pub tier: Tier,
    /// Images generated, for models priced by image.
    pub images: Option<Images<'a>>,
}

/// Generated images, for models priced per image or pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Images<'a> {
    /// How many were returned.
    pub count: u64,
    /// The requested size, `1024x1024` (or `1024-x-1024`); `None` for the
    /// API's default, `1024x1024`.
    pub size: Option<&'a str>,
    /// The requested quality (`standard`, `hd`, `low`, `medium`, `high`).
    pub quality: Option<&'a str>,
}

/// The cost of one call, by part, in USD.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    /// Everything: input + cached input + cache writes + output.
    pub total: f64,
    /// Uncached input tokens.
    pub input: f64,
    /// Input tokens read from the cache.
    pub cached_input: f64,
    /// Input tokens written to the cache.
    pub cache_write: f64,
    /// Output tokens (reasoning included), or the images generated.
    pub output: f64,
    /// The reasoning tokens' share of `output`.
    pub reasoning: f64,
    /// The table key the model resolved to.
    pub model: Arc<str>,
    /// Where the prices come from.
    pub source: Arc<str>,
    /// The tier whose prices were used (standard when the model has none for
    /// the tier served).
    pub tier: Tier,
    /// The long-context threshold crossed, if any.
    pub above_tokens: Option<u64>,
}

/// The outcome of pricing a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Costing {
    /// Priced.
    Priced(Cost),
    /// The model is unknown to the table (or not named).
    Unpriced,
    /// No token or image counts.
    NoUsage,
    /// A count is negative, fractional or not a number: it names the attribute.
    InvalidUsage(&'static str),
}

impl Costing {
    /// `anosys.cost.status`: `priced`, `unpriced`, `no_usage` or `invalid_usage`.
    pub fn status(&self) -> &'static str {
        match self {
            Costing::Priced(_) => "priced",
            Costing::Unpriced => "unpriced",
            Costing::NoUsage => "no_usage",
            Costing::InvalidUsage(_) => "invalid_usage",
        }
    }
}

/// The rates that apply to one call.
#[derive(Debug, Clone, Copy)]
struct Rates {
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
    reasoning: f64,
    tier: Tier,
}

/// The price of `kind` at `tier`, else the standard one (as LiteLLM falls
/// back).
fn base_rate(price: &ModelPrice, kind: RateKind, tier: Tier) -> Option<f64> {
    price.rate(kind, tier, None).or_else(|| price.rate(kind, Tier::Standard, None))
}

fn above_rate(price: &ModelPrice, kind: RateKind, tier: Tier, above: u64) -> Option<f64> {
    price.rate(kind, tier, Some(above)).or_else(|| match tier {
        // A batch price without its own threshold price stays the batch price.
        Tier::Batch if price.rate(kind, Tier::Batch, None).is_some() => None,
        _ => price.rate(kind, Tier::Standard, Some(above)),
    })
}

fn rates_for(price: &ModelPrice, tier: Tier, input_tokens: u64) -> (Rates, Option<u64>) {
    // The tier is "used" when the model has any price for it.
    let has_tier = tier != Tier::Standard
        && [RateKind::Input, RateKind::Output, RateKind::CacheRead, RateKind::CacheWrite]
            .iter()
            .any(|k| price.rate(*k, tier, None).is_some());
    let tier = if has_tier { tier } else { Tier::Standard };
    let mut input = base_rate(price, RateKind::Input, tier);
    let mut output = base_rate(price, RateKind::Output, tier);
    let mut cache_read = base_rate(price, RateKind::CacheRead, tier);
    let mut cache_write = base_rate(price, RateKind::CacheWrite, tier);
    let inclusive = price.provider() == Some("xai");
    let mut crossed = None;
    for threshold in price.thresholds(tier) {
        let over = input_tokens > threshold || (inclusive && input_tokens == threshold);
        if !over {
            continue;
        }
        crossed = Some(threshold);
        let pick = |kind, current: Option<f64>| above_rate(price, kind, tier, threshold).or(current);
        input = pick(RateKind::Input, input);
        output = pick(RateKind::Output, output);
        cache_read = pick(RateKind::CacheRead, cache_read);
        cache_write = pick(RateKind::CacheWrite, cache_write);
    }
    let input = input.unwrap_or(0.0);
    let mut output = output.unwrap_or(0.0);
    if output == 0.0
        && let Some(image) = price.output_per_image_token()
    {
        output = image; // image models: every output token is an image token
    }
    let reasoning = price
        .rate(RateKind::Reasoning, tier, None)
        .or_else(|| {
            (tier == Tier::Standard || price.rate(RateKind::Output, tier, None).is_none())
                .then(|| price.rate(RateKind::Reasoning, Tier::Standard, None))
                .flatten()
        })
        .unwrap_or(output);
    let rates = Rates {
        input,
        output,
        cache_read: cache_read.unwrap_or(input),
        cache_write: cache_write.unwrap_or(input),
        reasoning,
        tier,
    };
    (rates, crossed)
}

/// `1024x1024` or `1024-x-1024` → (`1024-x-1024`, pixels).
fn image_size(size: &str) -> Option<(String, u64)> {
    let (w, h) = size.split_once("-x-").or_else(|| size.split_once('x'))?;
    let (w, h) = (w.trim().parse::<u64>().ok()?, h.trim().parse::<u64>().ok()?);
    Some((format!("{w}-x-{h}"), w.saturating_mul(h)))
}

impl PriceTable {
    /// Prices `usage` (see the [module documentation](self) for the rules).
    ///
    /// ```
    /// use anosys::cost::{Costing, PriceTable, Tier, Usage};
    ///
    /// let usage = Usage { model: "gpt-5", input_tokens: Some(10_000), output_tokens: Some(2_000),
    ///                     reasoning_tokens: 1_500, tier: Tier::Flex, ..Usage::default() };
    /// let Costing::Priced(cost) = PriceTable::builtin().cost(&usage) else { unreachable!() };
    /// assert!((cost.input - 10_000.0 * 6.25e-7).abs() < 1e-15); // flex price
    /// assert!((cost.reasoning - 1_500.0 * 5e-6).abs() < 1e-15); // part of cost.output
    /// assert!((cost.output - 2_000.0 * 5e-6).abs() < 1e-15);
    /// assert_eq!(PriceTable::builtin().cost(&Usage { model: "gpt-5", ..Usage::default() }), Costing::NoUsage);
    /// ```
    pub fn cost(&self, usage: &Usage) -> Costing {
        let has_tokens = usage.input_tokens.is_some() || usage.output_tokens.is_some();
        let image_count = usage.images.map(|i| i.count);
        if !has_tokens && image_count.is_none() {
            return Costing::NoUsage;
        }
        let Some(found) = self.resolve(usage.model) else {
            return match usage.images.filter(|_| !has_tokens) {
                Some(images) => self.cost_per_image(usage.model, images).unwrap_or(Costing::Unpriced),
                None => Costing::Unpriced,
            };
        };
        let price = found.price();
        if !has_tokens || !price.prices_tokens() {
            if let Some(images) = usage.images
                && let Some(costing) = self.cost_per_image(usage.model, images)
            {
                return costing;
            }
            // No token prices (an entry priced per image, second or
            // character only): unpriced rather than a silent 0.
            return Costing::Unpriced;
        }
        let input_tokens = usage.input_tokens.unwrap_or(0);
        let output_tokens = usage.output_tokens.unwrap_or(0);
        let (rates, above_tokens) = rates_for(price, usage.tier, input_tokens);
        let cache_read = usage.cache_read_tokens.min(input_tokens);
        let cache_write = usage.cache_write_tokens.min(input_tokens - cache_read);
        let uncached = input_tokens - cache_read - cache_write;
        let reasoning_tokens = usage.reasoning_tokens.min(output_tokens);
        let input = uncached as f64 * rates.input;
        let cached_input = cache_read as f64 * rates.cache_read;
        let cache_write = cache_write as f64 * rates.cache_write;
        let reasoning = reasoning_tokens as f64 * rates.reasoning;
        let output = (output_tokens - reasoning_tokens) as f64 * rates.output + reasoning;
        Costing::Priced(Cost {
            total: input + cached_input + cache_write + output,
            input,
            cached_input,
            cache_write,
            output,
            reasoning,
            model: found.key_arc().clone(),
            source: price.source_arc().clone(),
            tier: rates.tier,
            above_tokens,
        })
    }

    /// Per-image pricing: `{quality}/{size}/{model}`, then `{size}/{model}`,
    /// each tried through the resolver (so `openai/dall-e-3` works too).
    fn cost_per_image(&self, model: &str, images: Images) -> Option<Costing> {
        let (size, pixels) = image_size(images.size.unwrap_or("1024x1024"))?;
        let model = model.trim();
        let (prefix, bare) = match model.rfind('/') {
            Some(i) => model.split_at(i + 1),
            None => ("", model),
        };
        let mut names = Vec::with_capacity(4);
        if let Some(q) = images.quality.map(str::trim).filter(|q| !q.is_empty() && *q != "auto") {
            names.push(format!("{prefix}{q}/{size}/{bare}"));
        }
        names.push(format!("{prefix}{size}/{bare}"));
        for name in names {
            let Some(found) = self.lookup(&name).map(|(k, p)| (k.clone(), p.clone())) else { continue };
            let (key, price) = found;
            let output = if let Some(each) = price.per_image() {
                images.count as f64 * each
            } else if let Some(each) = price.per_pixel() {
                images.count as f64 * pixels as f64 * each
            } else {
                continue;
            };
            return Some(Costing::Priced(Cost {
                total: output,
                input: 0.0,
                cached_input: 0.0,
                cache_write: 0.0,
                output,
                reasoning: 0.0,
                model: key,
                source: price.source_arc().clone(),
                tier: Tier::Standard,
                above_tokens: None,
            }));
        }
        None
    }
}

/// The attributes [`price_record`] writes.
pub mod attributes {
    /// Total cost in USD (OpenTelemetry-style name).
    pub const TOTAL: &str = "gen_ai.usage.cost";
    /// Uncached input tokens.
    pub const INPUT: &str = "anosys.cost.input";
    /// Input tokens read from the cache.
    pub const CACHED_INPUT: &str = "anosys.cost.cached_input";
    /// Input tokens written to the cache.
    pub const CACHE_WRITE: &str = "anosys.cost.cache_write";
    /// Output tokens (reasoning included) or images.
    pub const OUTPUT: &str = "anosys.cost.output";
    /// The reasoning tokens' share of the output cost.
    pub const REASONING: &str = "anosys.cost.reasoning";
    /// The table key the model resolved to.
    pub const MODEL: &str = "anosys.cost.model";
    /// Where the prices come from.
    pub const PRICE_SOURCE: &str = "anosys.cost.price_source";
    /// The tier priced, when not standard.
    pub const TIER: &str = "anosys.cost.tier";
    /// `priced`, `unpriced`, `no_usage` or `invalid_usage`.
    pub const STATUS: &str = "anosys.cost.status";

    pub(super) const ALL: [&str; 10] =
        [TOTAL, INPUT, CACHED_INPUT, CACHE_WRITE, OUTPUT, REASONING, MODEL, PRICE_SOURCE, TIER, STATUS];
}

/// A token count attribute: absent is `Ok(None)`; a non-negative integer
/// (an integral float too) is the count; anything else is an error.
fn count(record: &Record, key: &'static str) -> Result<Option<u64>, &'static str> {
    match record.attribute(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => {
                Ok(Some(f as u64))
            }
            _ => Err(key),
        },
        Some(_) => Err(key),
    }
}

/// The record's usage, or the attribute that makes it unusable.
fn usage_of(record: &Record) -> Result<Usage<'_>, &'static str> {
    let text = |key: &str| record.attribute(key).and_then(Value::as_str);
    let images = count(record, "openai.response.image.count")?.map(|n| Images {
        count: n,
        size: text("openai.request.image.size"),
        quality: text("openai.request.image.quality"),
    });
    Ok(Usage {
        model: record.model().unwrap_or(""),
        input_tokens: count(record, "gen_ai.usage.input_tokens")?,
        output_tokens: count(record, "gen_ai.usage.output_tokens")?,
        cache_read_tokens: count(record, "gen_ai.usage.cache_read.input_tokens")?.unwrap_or(0),
        cache_write_tokens: count(record, "gen_ai.usage.cache_creation.input_tokens")?.unwrap_or(0),
        reasoning_tokens: count(record, "gen_ai.usage.reasoning.output_tokens")?.unwrap_or(0),
        tier: text("openai.response.service_tier").map_or(Tier::Standard, Tier::from_service_tier),
        images,
    })
}

/// Prices an LLM call record in place: sets `gen_ai.usage.cost`, the
/// `anosys.cost.*` parts, the table key and price source, and
/// `anosys.cost.status` (see the [module documentation](self)). Records of
/// other kinds are left alone; pricing a record again replaces what an
/// earlier pricing wrote.
///
/// ```
/// use anosys::cost::{price_record, PriceTable};
/// use anosys::{Record, RecordKind};
/// use serde_json::json;
///
/// let mut record = Record::new(RecordKind::LlmCall, "chat my-own-model");
/// record.set_attribute("gen_ai.request.model", "my-own-model");
/// record.set_attribute("gen_ai.usage.input_tokens", 10);
/// price_record(PriceTable::builtin(), &mut record);
/// assert_eq!(record.attribute("anosys.cost.status"), Some(&json!("unpriced")));
/// assert_eq!(record.attribute("gen_ai.usage.cost"), None); // never a silent 0
/// ```
pub fn price_record(table: &PriceTable, record: &mut Record) {
    if record.kind != RecordKind::LlmCall {
        return;
    }
    if record.attributes.contains_key(attributes::STATUS) {
        record.attributes.retain(|k, _| !attributes::ALL.contains(&k.as_ref()));
    }
    let costing = match usage_of(record) {
        Ok(usage) => table.cost(&usage),
        Err(key) => Costing::InvalidUsage(key),
    };
    let set = |record: &mut Record, key: &'static str, value: Value| {
        record.attributes.insert(Cow::Borrowed(key), value);
    };
    if let Costing::Priced(cost) = &costing {
        set(record, attributes::TOTAL, cost.total.into());
        set(record, attributes::INPUT, cost.input.into());
        let usage_has = |r: &Record, key: &str| r.attribute(key).and_then(Value::as_f64).is_some_and(|n| n > 0.0);
        if usage_has(record, "gen_ai.usage.cache_read.input_tokens") {
            set(record, attributes::CACHED_INPUT, cost.cached_input.into());
        }
        if usage_has(record, "gen_ai.usage.cache_creation.input_tokens") {
            set(record, attributes::CACHE_WRITE, cost.cache_write.into());
        }
        set(record, attributes::OUTPUT, cost.output.into());
        if usage_has(record, "gen_ai.usage.reasoning.output_tokens") {
            set(record, attributes::REASONING, cost.reasoning.into());
        }
        set(record, attributes::MODEL, Value::String(String::from(&*cost.model)));
        set(record, attributes::PRICE_SOURCE, Value::String(String::from(&*cost.source)));
        if cost.tier != Tier::Standard {
            let tier = match cost.tier {
                Tier::Flex => "flex",
                Tier::Priority => "priority",
                Tier::Batch => "batch",
                Tier::Standard => "standard",
            };
            set(record, attributes::TIER, tier.into());
        }
    }
    set(record, attributes::STATUS, costing.status().into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn llm(attrs: &[(&'static str, Value)]) -> Record {
        let mut r = Record::new(RecordKind::LlmCall, "chat");
        for (k, v) in attrs {
            r.set_attribute(*k, v.clone());
        }
        r
    }

    fn priced(table: &PriceTable, usage: Usage) -> Cost {
        match table.cost(&usage) {
            Costing::Priced(c) => c,
            other => panic!("{usage:?}: {other:?}"),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300)
    }

    #[test]
    fn cached_tokens_are_part_of_the_input_and_never_counted_twice() {
        let c = priced(
            PriceTable::builtin(),
            Usage {
                model: "gpt-4o",
                input_tokens: Some(1000),
                output_tokens: Some(0),
                cache_read_tokens: 400,
                ..Usage::default()
            },
        );
        assert!(close(c.input, 600.0 * 2.5e-6) && close(c.cached_input, 400.0 * 1.25e-6), "{c:?}");
        assert!(close(c.total, c.input + c.cached_input));
    }

    #[test]
    fn more_cached_than_input_is_clamped() {
        let c = priced(
            PriceTable::builtin(),
            Usage {
                model: "gpt-4o",
                input_tokens: Some(10),
                cache_read_tokens: 50,
                cache_write_tokens: 5,
                ..Usage::default()
            },
        );
        assert_eq!((c.input, c.cache_write), (0.0, 0.0));
        assert!(close(c.cached_input, 10.0 * 1.25e-6));
    }

    #[test]
    fn the_served_tier_is_priced_and_falls_back_to_standard() {
        let t = PriceTable::builtin();
        let u = Usage { model: "gpt-4o", input_tokens: Some(100), output_tokens: Some(10), ..Usage::default() };
        let priority = priced(t, Usage { tier: Tier::Priority, ..u });
        assert!(close(priority.input, 100.0 * 4.25e-6) && priority.tier == Tier::Priority);
        let flex = priced(t, Usage { tier: Tier::Flex, ..u }); // gpt-4o has no flex price
        assert!(close(flex.input, 100.0 * 2.5e-6) && flex.tier == Tier::Standard);
    }

    #[test]
    fn long_context_prices_every_token_above_the_threshold() {
        let t = PriceTable::builtin();
        let u = Usage {
            model: "gpt-5.4",
            input_tokens: Some(300_000),
            output_tokens: Some(1000),
            cache_read_tokens: 100_000,
            ..Usage::default()
        };
        let c = priced(t, u);
        assert_eq!(c.above_tokens, Some(272_000));
        assert!(
            close(c.input, 200_000.0 * 5e-6)
                && close(c.cached_input, 100_000.0 * 5e-7)
                && close(c.output, 1000.0 * 2.25e-5)
        );
        let at = priced(t, Usage { input_tokens: Some(272_000), ..u });
        assert_eq!(at.above_tokens, None, "strictly above");
    }

    #[test]
    fn absurd_counts_give_finite_costs() {
        let c = priced(
            PriceTable::builtin(),
            Usage {
                model: "gpt-4o",
                input_tokens: Some(u64::MAX),
                output_tokens: Some(u64::MAX),
                reasoning_tokens: u64::MAX,
                ..Usage::default()
            },
        );
        assert!(c.total.is_finite() && c.total > 0.0);
    }

    #[test]
    fn records_get_a_status_in_every_case() {
        let t = PriceTable::builtin();
        let status = |r: &Record| r.attribute("anosys.cost.status").cloned();
        let mut r = llm(&[("gen_ai.request.model", json!("gpt-4o"))]);
        price_record(t, &mut r);
        assert_eq!(status(&r), Some(json!("no_usage")));
        for bad in [json!(-3), json!(1.5), json!("12"), json!(true)] {
            let mut r = llm(&[("gen_ai.request.model", json!("gpt-4o")), ("gen_ai.usage.input_tokens", bad.clone())]);
            price_record(t, &mut r);
            assert_eq!(status(&r), Some(json!("invalid_usage")), "{bad}");
            assert!(r.attribute("gen_ai.usage.cost").is_none());
        }
        let mut r = llm(&[("gen_ai.usage.input_tokens", json!(3))]);
        price_record(t, &mut r);
        assert_eq!(status(&r), Some(json!("unpriced")), "no model named");
        let mut f = Record::new(RecordKind::FunctionCall, "f");
        price_record(t, &mut f);
        assert!(f.attributes.is_empty());
    }

    #[test]
    fn pricing_again_replaces_the_earlier_attributes() {
        let t = PriceTable::builtin();
        let mut r = llm(&[
            ("gen_ai.request.model", json!("o3")),
            ("gen_ai.usage.input_tokens", json!(10)),
            ("gen_ai.usage.output_tokens", json!(10)),
            ("gen_ai.usage.reasoning.output_tokens", json!(5)),
        ]);
        price_record(t, &mut r);
        assert!(r.attribute("anosys.cost.reasoning").is_some());
        r.set_attribute("gen_ai.request.model", "unknown-model");
        price_record(t, &mut r);
        assert_eq!(r.attribute("anosys.cost.status"), Some(&json!("unpriced")));
        assert!(r.attribute("anosys.cost.reasoning").is_none() && r.attribute("gen_ai.usage.cost").is_none());
    }

    #[test]
    fn an_entry_without_token_prices_leaves_token_usage_unpriced() {
        let usage = Usage { model: "aiml/dall-e-3", input_tokens: Some(10), ..Usage::default() };
        assert_eq!(PriceTable::builtin().cost(&usage), Costing::Unpriced, "not a silent 0");
    }

    #[test]
    fn the_response_model_wins_over_the_request_model() {
        let t = PriceTable::builtin();
        let mut r = llm(&[
            ("gen_ai.request.model", json!("gpt-4o")),
            ("gen_ai.response.model", json!("gpt-4o-mini-2024-07-18")),
            ("gen_ai.usage.input_tokens", json!(1)),
        ]);
        price_record(t, &mut r);
        assert_eq!(r.attribute("anosys.cost.model"), Some(&json!("gpt-4o-mini-2024-07-18")));
    }
}
