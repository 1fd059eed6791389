//! The price table: LiteLLM's price map compiled in, read once, plus the
//! models an override file adds or replaces.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, RwLock};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::resolve::{self, Resolution};

/// LiteLLM's price map, as shipped in the litellm package named by
/// [`SOURCE_VERSION`] (see `src/cost/data/README.md`).
const BUILTIN_JSON: &str = include_str!("data/model_prices_and_context_window.json");

/// The litellm release the built-in prices come from.
pub const SOURCE_VERSION: &str = "1.110.2";

/// The day the built-in prices were copied from that release.
pub const SOURCE_DATE: &str = "2026-12-02";

/// The environment variable that names a price file adding or replacing
/// models (read by the configuration; see [`PriceTable::with_overrides`]).
pub const PRICES_ENV: &str = "ANOSYS_PRICES";

/// Most model strings whose resolution is remembered; past that, new names
/// are resolved each time (still correct, a little slower).
const RESOLUTION_CACHE_LIMIT: usize = 4096;

static BUILTIN: LazyLock<PriceTable> = LazyLock::new(|| {
    let source: Arc<str> =
        format!("litellm {SOURCE_VERSION} model_prices_and_context_window.json {SOURCE_DATE}").into();
    // The compiled-in file is known to parse; should a refresh ever break it,
    // pricing says "unpriced" for everything rather than panicking.
    let models = parse_entries(BUILTIN_JSON, &source, Strictness::SkipBadEntries).unwrap_or_default();
    PriceTable::from_models(models, source)
});

/// A service tier the response says was served (`openai.response.service_tier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tier {
    /// The standard rates (`default`, `auto`, `scale`, or no tier reported).
    #[default]
    Standard,
    /// `flex`: LiteLLM's `*_flex` prices.
    Flex,
    /// `priority`: LiteLLM's `*_priority` prices.
    Priority,
    /// `batch`: LiteLLM's `*_batches` prices.
    Batch,
}

impl Tier {
    /// The tier a response's `service_tier` names; anything unknown is
    /// [`Tier::Standard`].
    ///
    /// ```
    /// use anosys::cost::Tier;
    /// assert_eq!(Tier::from_service_tier("flex"), Tier::Flex);
    /// assert_eq!(Tier::from_service_tier("default"), Tier::Standard);
    /// ```
    pub fn from_service_tier(name: &str) -> Tier {
        let name = name.trim();
        let is = |s: &str| name.eq_ignore_ascii_case(s);
        if is("flex") {
            Tier::Flex
        } else if is("priority") || is("fast") {
            Tier::Priority
        } else if is("batch") || is("batches") {
            Tier::Batch
        } else {
            Tier::Standard
        }
    }

    /// The suffix LiteLLM puts on this tier's price fields (`""` for the
    /// standard rates).
    pub fn field_suffix(self) -> &'static str {
        match self {
            Tier::Standard => "",
            Tier::Flex => "_flex",
            Tier::Priority => "_priority",
            Tier::Batch => "_batches",
        }
    }
}

/// Which price of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKind {
    /// `input_cost_per_token`: uncached input tokens.
    Input,
    /// `output_cost_per_token`: output tokens.
    Output,
    /// `cache_read_input_token_cost`: input tokens read from the cache.
    CacheRead,
    /// `cache_creation_input_token_cost`: input tokens written to the cache.
    CacheWrite,
    /// `output_cost_per_reasoning_token`: reasoning tokens, when the model
    /// prices them apart from other output.
    Reasoning,
}

impl RateKind {
    const ALL: [RateKind; 5] =
        [RateKind::Input, RateKind::Output, RateKind::CacheRead, RateKind::CacheWrite, RateKind::Reasoning];

    /// LiteLLM's field name for this price at the standard tier.
    pub fn field(self) -> &'static str {
        match self {
            RateKind::Input => "input_cost_per_token",
            RateKind::Output => "output_cost_per_token",
            RateKind::CacheRead => "cache_read_input_token_cost",
            RateKind::CacheWrite => "cache_creation_input_token_cost",
            RateKind::Reasoning => "output_cost_per_reasoning_token",
        }
    }
}

/// One token price: its kind, tier and long-context threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    kind: RateKind,
    tier: Tier,
    /// `Some(n)` for `*_above_{n}_tokens`: applies when the prompt has more
    /// than `n` input tokens.
    above: Option<u64>,
    usd_per_token: f64,
}

/// What the table knows about one model: its token prices (per tier and
/// long-context threshold) and its image prices.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    rates: Vec<Rate>,
    per_image: Option<f64>,
    per_pixel: Option<f64>,
    output_per_image_token: Option<f64>,
    mode: Option<Box<str>>,
    provider: Option<Box<str>>,
    source: Arc<str>,
}

impl ModelPrice {
    /// A price of this model: `above` a number of input tokens (a
    /// long-context price) or not, at `tier` exactly (no fallback).
    pub fn rate(&self, kind: RateKind, tier: Tier, above: Option<u64>) -> Option<f64> {
        self.rates.iter().find(|r| r.kind == kind && r.tier == tier && r.above == above).map(|r| r.usd_per_token)
    }

    /// USD per uncached input token at the standard tier.
    pub fn input_per_token(&self) -> Option<f64> {
        self.rate(RateKind::Input, Tier::Standard, None)
    }

    /// USD per output token at the standard tier.
    pub fn output_per_token(&self) -> Option<f64> {
        self.rate(RateKind::Output, Tier::Standard, None)
    }

    /// USD per cached input token at the standard tier (the input price
    /// when the table gives none).
    pub fn cached_input_per_token(&self) -> Option<f64> {
        self.rate(RateKind::CacheRead, Tier::Standard, None).or_else(|| self.input_per_token())
    }

    /// USD per image (`input_cost_per_image`, else `output_cost_per_image`).
    pub fn per_image(&self) -> Option<f64> {
        self.per_image
    }

    /// USD per pixel of an image (`input_cost_per_pixel`, else
    /// `output_cost_per_pixel`).
    pub fn per_pixel(&self) -> Option<f64> {
        self.per_pixel
    }

    /// USD per generated image token (`output_cost_per_image_token`).
    pub fn output_per_image_token(&self) -> Option<f64> {
        self.output_per_image_token
    }

    /// The long-context thresholds this model has prices for (standard or
    /// `tier`), ascending.
    pub fn thresholds(&self, tier: Tier) -> Vec<u64> {
        let mut t: Vec<u64> =
            self.rates.iter().filter(|r| r.tier == Tier::Standard || r.tier == tier).filter_map(|r| r.above).collect();
        t.sort_unstable();
        t.dedup();
        t
    }

    /// Whether any token price is known.
    pub fn prices_tokens(&self) -> bool {
        !self.rates.is_empty() || self.output_per_image_token.is_some()
    }

    /// LiteLLM's `mode` (`chat`, `embedding`, `image_generation`, …).
    pub fn mode(&self) -> Option<&str> {
        self.mode.as_deref()
    }

    /// LiteLLM's `litellm_provider`.
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// Where this price comes from: the built-in LiteLLM snapshot or an
    /// override file.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn source_arc(&self) -> &Arc<str> {
        &self.source
    }
}

/// A price file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// The file could not be read.
    #[error("cannot read price file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a JSON object of models.
    #[error("price file {path} is not a JSON object of models (LiteLLM's model_prices_and_context_window.json schema): {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Where and why parsing stopped.
        source: serde_json::Error,
    },
    /// One model's entry has a price that is not a non-negative number.
    #[error("price file {path}: model {model:?}: {problem}")]
    Entry {
        /// The file.
        path: PathBuf,
        /// The model.
        model: String,
        /// What is wrong.
        problem: String,
    },
}

/// Model prices by name, with the resolver that maps what an API reports
/// (`openai/gpt-4o-2024-08-06`, `ft:gpt-4o-mini:org::id`) to an entry.
///
/// ```
/// use anosys::cost::{Costing, PriceTable, Usage};
///
/// let table = PriceTable::builtin();
/// let usage = Usage { model: "gpt-4o-2024-08-06", input_tokens: Some(1000), output_tokens: Some(100), ..Usage::default() };
/// let Costing::Priced(cost) = table.cost(&usage) else { panic!("gpt-4o is in the table") };
/// assert_eq!(&*cost.model, "gpt-4o-2024-08-06");
/// assert!((cost.total - (1000.0 * 2.5e-6 + 100.0 * 1e-5)).abs() < 1e-15);
/// ```
pub struct PriceTable {
    models: HashMap<Arc<str>, Arc<ModelPrice>>,
    /// Lower-cased name → the table's key, for names that differ only in case.
    lowercase: HashMap<Box<str>, Arc<str>>,
    source: Arc<str>,
    overrides: Option<PathBuf>,
    resolved: RwLock<HashMap<Box<str>, Option<Arc<Resolution>>>>,
}

impl fmt::Debug for PriceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PriceTable")
            .field("models", &self.models.len())
            .field("source", &self.source)
            .field("overrides", &self.overrides)
            .finish()
    }
}

impl PriceTable {
    /// The built-in table (LiteLLM's snapshot), parsed on first use.
    pub fn builtin() -> &'static PriceTable {
        &BUILTIN
    }

    /// The built-in table plus the models of the price file at `path`
    /// (LiteLLM's schema: `{"model": {"input_cost_per_token": …}}`), whose
    /// entries replace the built-in entry of the same name whole. For
    /// negotiated prices and fine-tunes; see `ANOSYS_PRICES`.
    ///
    /// Errors name the file and, for a bad price, the model.
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join(format!("anosys-prices-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("prices.json");
    /// std::fs::write(&path, r#"{"my-fine-tune": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}"#)?;
    /// let table = anosys::cost::PriceTable::with_overrides(&path)?;
    /// assert_eq!(table.resolve("my-fine-tune").unwrap().key(), "my-fine-tune");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_overrides(path: impl AsRef<Path>) -> Result<PriceTable, PriceError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| PriceError::Read { path: path.to_owned(), source })?;
        let source: Arc<str> = format!("override {}", path.display()).into();
        let extra = parse_entries(&text, &source, Strictness::Reject).map_err(|e| match e {
            ParseError::Json(source) => PriceError::Json { path: path.to_owned(), source },
            ParseError::Entry { model, problem } => PriceError::Entry { path: path.to_owned(), model, problem },
        })?;
        let builtin = PriceTable::builtin();
        let mut models: Named = builtin.models.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        models.extend(extra);
        let mut table = PriceTable::from_models(models, builtin.source.clone());
        table.overrides = Some(path.to_owned());
        Ok(table)
    }

    fn from_models(models: Named, source: Arc<str>) -> PriceTable {
        let models: HashMap<Arc<str>, Arc<ModelPrice>> = models.into_iter().collect();
        let mut lowercase = HashMap::new();
        let mut keys: Vec<&Arc<str>> = models.keys().collect();
        keys.sort(); // the same key wins for names that differ only in case, whatever the hash order
        for key in keys {
            let lower = key.to_ascii_lowercase();
            if *lower != **key {
                lowercase.entry(lower.into_boxed_str()).or_insert_with(|| key.clone());
            }
        }
        PriceTable { models, lowercase, source, overrides: None, resolved: RwLock::new(HashMap::new()) }
    }

    /// How many models the table prices.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Where the built-in prices come from (litellm version and date).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The override file, when there is one.
    pub fn overrides(&self) -> Option<&Path> {
        self.overrides.as_deref()
    }

    /// The entry named exactly `key`.
    pub fn get(&self, key: &str) -> Option<&ModelPrice> {
        self.models.get(key).map(|m| &**m)
    }

    /// Every model, in no particular order.
    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelPrice)> {
        self.models.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The entry for a model string as an API reports it, and how it was
    /// found (see [`Resolution`]); `None` when the table does not price it.
    /// Remembered per model string.
    ///
    /// ```
    /// let table = anosys::cost::PriceTable::builtin();
    /// let found = table.resolve("openai/gpt-4o-mini-2024-07-18").unwrap();
    /// assert_eq!(found.key(), "gpt-4o-mini-2024-07-18");
    /// assert_eq!(found.explain(), "provider prefix \"openai/\" removed");
    /// assert!(table.resolve("no-such-model").is_none());
    /// ```
    pub fn resolve(&self, model: &str) -> Option<Arc<Resolution>> {
        if let Ok(cache) = self.resolved.read()
            && let Some(hit) = cache.get(model)
        {
            return hit.clone();
        }
        let found = resolve::resolve(self, model).map(Arc::new);
        if let Ok(mut cache) = self.resolved.write()
            && cache.len() < RESOLUTION_CACHE_LIMIT
        {
            cache.insert(model.into(), found.clone());
        }
        found
    }

    /// The key for `name` exactly, else for a key that differs only in case.
    pub(crate) fn lookup(&self, name: &str) -> Option<(&Arc<str>, &Arc<ModelPrice>)> {
        if let Some(found) = self.models.get_key_value(name) {
            return Some(found);
        }
        let lower = name.to_ascii_lowercase();
        if let Some(found) = self.models.get_key_value(lower.as_str()) {
            return Some(found);
        }
        let key = self.lowercase.get(lower.as_str())?;
        self.models.get_key_value(&**key)
    }

    /// Keys that are `name` followed by a date (`-2024-08-06`, `-20240806`).
    pub(crate) fn dated_keys<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Arc<str>> + 'a {
        self.models.keys().filter(move |k| {
            k.len() > name.len()
                && k.get(..name.len()).is_some_and(|p| p.eq_ignore_ascii_case(name))
                && resolve::is_date_suffix(&k[name.len()..])
        })
    }
}

/// Model entries by name, as parsed.
type Named = Vec<(Arc<str>, Arc<ModelPrice>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// The built-in file: an entry with a bad price is left out.
    SkipBadEntries,
    /// A user's file: an entry with a bad price is an error.
    Reject,
}

#[derive(Debug)]
enum ParseError {
    Json(serde_json::Error),
    Entry { model: String, problem: String },
}

/// One entry as read: its prices, or what was wrong with it.
enum Entry {
    Good(ModelPrice),
    Bad(String),
}

fn parse_entries(text: &str, source: &Arc<str>, strictness: Strictness) -> Result<Named, ParseError> {
    let entries: Entries = serde_json::from_str(text).map_err(ParseError::Json)?;
    let mut out = Vec::with_capacity(entries.0.len());
    for (model, entry) in entries.0 {
        match entry {
            Entry::Good(mut price) => {
                if model == "sample_spec" {
                    continue; // LiteLLM's documentation entry
                }
                price.source = source.clone();
                out.push((Arc::from(model), Arc::new(price)));
            }
            Entry::Bad(problem) => {
                if strictness == Strictness::Reject {
                    return Err(ParseError::Entry { model, problem });
                }
            }
        }
    }
    Ok(out)
}

struct Entries(Vec<(String, Entry)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of model names to prices")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some(model) = map.next_key::<String>()? {
                    out.push((model, map.next_value::<Entry>()?));
                }
                Ok(Entries(out))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a model's prices")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entry, A::Error> {
                let mut price = ModelPrice {
                    rates: Vec::new(),
                    per_image: None,
                    per_pixel: None,
                    output_per_image_token: None,
                    mode: None,
                    provider: None,
                    source: Arc::from(""),
                };
                let mut problem = None;
                let (mut input_image, mut output_image, mut input_pixel, mut output_pixel) = (None, None, None, None);
                while let Some(field) = map.next_key::<String>()? {
                    let wanted = Field::of(&field);
                    if wanted == Field::Ignored {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                    let value = map.next_value::<Value>()?;
                    if let Field::Text(slot) = wanted {
                        let text = value.as_str().map(Box::from);
                        match slot {
                            TextField::Mode => price.mode = text,
                            TextField::Provider => price.provider = text,
                        }
                        continue;
                    }
                    let usd = match price_of(&value) {
                        Ok(Some(usd)) => usd,
                        Ok(None) => continue, // null: no price
                        Err(why) => {
                            problem.get_or_insert_with(|| format!("{field}: {why}"));
                            continue;
                        }
                    };
                    match wanted {
                        Field::Rate { kind, tier, above } => {
                            price.rates.push(Rate { kind, tier, above, usd_per_token: usd })
                        }
                        Field::InputPerImage => input_image = Some(usd),
                        Field::OutputPerImage => output_image = Some(usd),
                        Field::InputPerPixel => input_pixel = Some(usd),
                        Field::OutputPerPixel => output_pixel = Some(usd),
                        Field::OutputPerImageToken => price.output_per_image_token = Some(usd),
                        Field::Ignored | Field::Text(_) => {}
                    }
                }
                if let Some(problem) = problem {
                    return Ok(Entry::Bad(problem));
                }
                price.per_image = input_image.or(output_image);
                price.per_pixel = input_pixel.or(output_pixel);
                Ok(Entry::Good(price))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Entry, E> {
                Ok(Entry::Bad("null instead of an object".into()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Entry, E> {
                Ok(Entry::Bad("a boolean instead of an object".into()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Entry, E> {
                Ok(Entry::Bad("a number instead of an object".into()))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Entry, E> {
                Ok(Entry::Bad("a number instead of an object".into()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Entry, E> {
                Ok(Entry::Bad("a number instead of an object".into()))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Entry, E> {
                Ok(Entry::Bad("a string instead of an object".into()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Entry, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Entry::Bad("an array instead of an object".into()))
            }
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}

/// A price: a non-negative finite number, or a string holding one (as
/// LiteLLM accepts); `null` is no price.
fn price_of(value: &Value) -> Result<Option<f64>, String> {
    let usd = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a usable number"))?,
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| format!("{s:?} is not a number"))?,
        other => return Err(format!("{other} is not a number")),
    };
    if !usd.is_finite() || usd < 0.0 {
        return Err(format!("{usd} is not a price (a finite number of USD, 0 or more)"));
    }
    Ok(Some(usd))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextField {
    Mode,
    Provider,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Rate { kind: RateKind, tier: Tier, above: Option<u64> },
    InputPerImage,
    OutputPerImage,
    InputPerPixel,
    OutputPerPixel,
    OutputPerImageToken,
    Text(TextField),
    Ignored,
}

impl Field {
    /// What a LiteLLM field name means to us: `{rate}[_above_{n}[k]_tokens][_{tier}]`
    /// or one of the image prices; everything else is ignored.
    fn of(name: &str) -> Field {
        match name {
            "input_cost_per_image" => return Field::InputPerImage,
            "output_cost_per_image" => return Field::OutputPerImage,
            "input_cost_per_pixel" => return Field::InputPerPixel,
            "output_cost_per_pixel" => return Field::OutputPerPixel,
            "output_cost_per_image_token" => return Field::OutputPerImageToken,
            "mode" => return Field::Text(TextField::Mode),
            "litellm_provider" => return Field::Text(TextField::Provider),
            _ => {}
        }
        for kind in RateKind::ALL {
            let Some(rest) = name.strip_prefix(kind.field()) else { continue };
            let (rest, tier) = [Tier::Flex, Tier::Priority, Tier::Batch]
                .into_iter()
                .find_map(|t| rest.strip_suffix(t.field_suffix()).map(|r| (r, t)))
                .unwrap_or((rest, Tier::Standard));
            if rest.is_empty() {
                return Field::Rate { kind, tier, above: None };
            }
            let Some(n) = rest.strip_prefix("_above_").and_then(|r| r.strip_suffix("_tokens")) else {
                return Field::Ignored; // _above_1hr (cache lifetime), _cache_hit, other tiers: not used
            };
            let (digits, scale) = match n.strip_suffix('k') {
                Some(d) => (d, 1000),
                None => (n, 1),
            };
            return match digits.parse::<u64>() {
                Ok(v) if !digits.is_empty() => Field::Rate { kind, tier, above: Some(v.saturating_mul(scale)) },
                _ => Field::Ignored,
            };
        }
        Field::Ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_read_as_litellm_writes_them() {
        assert_eq!(
            Field::of("input_cost_per_token"),
            Field::Rate { kind: RateKind::Input, tier: Tier::Standard, above: None }
        );
        assert_eq!(
            Field::of("output_cost_per_token_above_272k_tokens_flex"),
            Field::Rate { kind: RateKind::Output, tier: Tier::Flex, above: Some(272_000) }
        );
        assert_eq!(
            Field::of("cache_read_input_token_cost_above_200k_tokens_batches"),
            Field::Rate { kind: RateKind::CacheRead, tier: Tier::Batch, above: Some(200_000) }
        );
        assert_eq!(Field::of("cache_creation_input_token_cost_above_1hr"), Field::Ignored);
        assert_eq!(Field::of("input_cost_per_token_cache_hit"), Field::Ignored);
        assert_eq!(Field::of("output_cost_per_token_ultrafast"), Field::Ignored);
        assert_eq!(Field::of("max_tokens"), Field::Ignored);
    }

    #[test]
    fn builtin_table_loads_and_skips_the_sample_spec() {
        let table = PriceTable::builtin();
        assert!(table.len() > 4000, "{}", table.len());
        assert!(table.get("sample_spec").is_none());
        assert_eq!(table.get("gpt-4o").and_then(ModelPrice::input_per_token), Some(2.5e-6));
        assert!(table.source().contains(SOURCE_DATE));
    }

    #[test]
    fn a_bad_entry_is_skipped_in_the_builtin_way_and_refused_in_a_users_file() {
        let text = r#"{"good": {"input_cost_per_token": 1e-6}, "bad": {"input_cost_per_token": "cheap"},
                       "negative": {"output_cost_per_token": -1}, "not-an-object": 3, "strings": {"input_cost_per_token": "2e-6"}}"#;
        let source: Arc<str> = "test".into();
        let models = parse_entries(text, &source, Strictness::SkipBadEntries).unwrap();
        let mut names: Vec<&str> = models.iter().map(|(k, _)| &**k).collect();
        names.sort();
        assert_eq!(names, ["good", "strings"]);
        let err = parse_entries(text, &source, Strictness::Reject).unwrap_err();
        assert!(matches!(err, ParseError::Entry { ref model, .. } if model == "bad"), "{err:?}");
    }

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("anosys-cost-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("prices.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn an_override_file_adds_models_and_wins_over_the_builtin_entry() {
        let path = temp_file(
            "good",
            r#"{"gpt-4o": {"input_cost_per_token": 1e-6, "output_cost_per_token": 4e-6},
                "acme-ft-7": {"input_cost_per_token": 3e-6, "output_cost_per_token": 6e-6, "cache_read_input_token_cost": 1e-6}}"#,
        );
        let table = PriceTable::with_overrides(&path).unwrap();
        assert_eq!(table.overrides(), Some(path.as_path()));
        let gpt = table.get("gpt-4o").unwrap();
        assert_eq!(gpt.input_per_token(), Some(1e-6));
        assert_eq!(gpt.rate(RateKind::Input, Tier::Priority, None), None, "the entry is replaced whole");
        assert!(gpt.source().contains("prices.json"), "{}", gpt.source());
        assert_eq!(table.get("acme-ft-7").unwrap().cached_input_per_token(), Some(1e-6));
        assert_eq!(table.get("gpt-4.1").unwrap().source(), PriceTable::builtin().source());
        assert_eq!(table.len(), PriceTable::builtin().len() + 1);
    }

    #[test]
    fn a_malformed_override_file_is_an_error_naming_the_path() {
        let path = temp_file("malformed", r#"{"gpt-4o": {"input_cost_per_token": 1e-6"#);
        let err = PriceTable::with_overrides(&path).unwrap_err();
        assert!(matches!(err, PriceError::Json { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");

        let path = temp_file("array", "[1, 2]");
        let err = PriceTable::with_overrides(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()) && err.contains("JSON object"), "{err}");

        let path = temp_file("bad-price", r#"{"acme": {"output_cost_per_token": "free"}}"#);
        let err = PriceTable::with_overrides(&path).unwrap_err().to_string();
        assert!(
            err.contains(&path.display().to_string())
                && err.contains("\"acme\"")
                && err.contains("output_cost_per_token"),
            "{err}"
        );

        let missing = path.with_file_name("missing.json");
        let err = PriceTable::with_overrides(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.json"), "{err}");
    }
}
