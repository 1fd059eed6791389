//! From the model string an API reports to the table's entry.
//!
//! In order, the first that the table has wins:
//!
//! 1. the name as given, then ignoring case (LiteLLM has some keys with a
//!    provider prefix, such as `azure/gpt-4o`: those win over the bare name);
//! 2. for `ft:BASE:org:name:id`, LiteLLM's fine-tune price `ft:BASE` (or
//!    `ft:BASE` with its date removed, or the newest dated `ft:BASE-DATE`),
//!    then `BASE` as its own model by the rules below;
//! 3. the name without a date suffix (`-2024-08-06`, `-20240806`,
//!    `@20240806`, `-0125`, `-latest`);
//! 4. the same, each leading `provider/` segment removed in turn
//!    (`openrouter/openai/gpt-4o` → `openai/gpt-4o` → `gpt-4o`);
//! 5. the newest dated entry of the undated name (`claude-sonnet-4` →
//!    `claude-sonnet-4-20250514`).

use std::fmt;
use std::sync::Arc;

use super::table::{ModelPrice, PriceTable};

/// One rule the resolver applied to find a model's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The name matched a key that differs only in case.
    Case,
    /// A leading provider segment was removed (`"openai/"`).
    ProviderPrefix(String),
    /// A date or version suffix was removed (`"-2024-08-06"`).
    DateSuffix(String),
    /// A fine-tuned model priced by LiteLLM's fine-tune entry of its base.
    FineTuneEntry(String),
    /// A fine-tuned model priced as its base model (no fine-tune price).
    FineTuneBase(String),
    /// An undated name matched the newest dated entry.
    NewestDated(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Case => f.write_str("case ignored"),
            Step::ProviderPrefix(p) => write!(f, "provider prefix {p:?} removed"),
            Step::DateSuffix(s) => write!(f, "date suffix {s:?} removed"),
            Step::FineTuneEntry(k) => write!(f, "fine-tuned model: LiteLLM's fine-tune price {k:?}"),
            Step::FineTuneBase(b) => write!(f, "fine-tuned model priced as its base {b:?}"),
            Step::NewestDated(k) => write!(f, "undated name: newest dated entry {k:?}"),
        }
    }
}

/// Which entry a model string resolved to, and why.
#[derive(Debug, Clone)]
pub struct Resolution {
    key: Arc<str>,
    steps: Vec<Step>,
    price: Arc<ModelPrice>,
}

impl Resolution {
    /// The table's key (`anosys.cost.model`).
    pub fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn key_arc(&self) -> &Arc<str> {
        &self.key
    }

    /// The rules applied, in order (empty: the name is a key).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The entry's prices.
    pub fn price(&self) -> &ModelPrice {
        &self.price
    }

    /// The steps in words, `; `-separated (`"exact match"` when none).
    pub fn explain(&self) -> String {
        if self.steps.is_empty() {
            return "exact match".to_owned();
        }
        self.steps.iter().map(Step::to_string).collect::<Vec<_>>().join("; ")
    }
}

/// Whether `s` is a date suffix: `-YYYY-MM-DD`, `-YYYYMMDD`, `@YYYYMMDD`
/// or `-MMDD`.
pub(crate) fn is_date_suffix(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let month = |t: &str| t.parse::<u32>().is_ok_and(|m| (1..=12).contains(&m));
    let Some(rest) = s.strip_prefix('-').or_else(|| s.strip_prefix('@')) else { return false };
    match rest.len() {
        10 => {
            let b = rest.as_bytes();
            b[4] == b'-'
                && b[7] == b'-'
                && digits(&rest[..4])
                && digits(&rest[5..7])
                && digits(&rest[8..])
                && month(&rest[5..7])
        }
        8 => digits(rest) && rest.starts_with("20") && month(&rest[4..6]),
        4 => s.starts_with('-') && digits(rest) && month(&rest[..2]),
        _ => false,
    }
}

/// `name` without its date (or `-latest`) suffix, and the suffix.
fn strip_date(name: &str) -> Option<(&str, &str)> {
    if let Some(base) = name.strip_suffix("-latest") {
        return Some((base, "-latest"));
    }
    for len in [11, 9, 5] {
        if name.len() > len && name.is_char_boundary(name.len() - len) {
            let (base, suffix) = name.split_at(name.len() - len);
            if is_date_suffix(suffix) {
                return Some((base, suffix));
            }
        }
    }
    None
}

struct Found<'t> {
    key: &'t Arc<str>,
    price: &'t Arc<ModelPrice>,
    steps: Vec<Step>,
}

fn exact<'t>(table: &'t PriceTable, name: &str, mut steps: Vec<Step>) -> Option<Found<'t>> {
    let (key, price) = table.lookup(name)?;
    if **key != *name {
        steps.push(Step::Case);
    }
    Some(Found { key, price, steps })
}

/// Rules 1, 3 and 4 for `name`.
fn plain<'t>(table: &'t PriceTable, name: &str, steps: &[Step]) -> Option<Found<'t>> {
    let mut rest = name;
    let mut steps = steps.to_vec();
    loop {
        if let Some(found) = exact(table, rest, steps.clone()) {
            return Some(found);
        }
        if let Some((base, suffix)) = strip_date(rest) {
            let mut dated = steps.clone();
            dated.push(Step::DateSuffix(suffix.to_owned()));
            if let Some(found) = exact(table, base, dated) {
                return Some(found);
            }
        }
        let (prefix, tail) = rest.split_once('/')?;
        if tail.is_empty() {
            return None;
        }
        steps.push(Step::ProviderPrefix(format!("{prefix}/")));
        rest = tail;
    }
}

/// Rule 5: the newest entry that is `name` (undated) plus a date.
fn newest_dated<'t>(table: &'t PriceTable, name: &str, mut steps: Vec<Step>) -> Option<Found<'t>> {
    let undated = strip_date(name).map_or(name, |(base, _)| base);
    if undated.is_empty() {
        return None;
    }
    // Normalise the dates so `-20250514` and `-2025-05-14` compare as days.
    let day = |k: &str| k[undated.len()..].chars().filter(char::is_ascii_digit).collect::<String>();
    let key =
        table.dated_keys(undated).filter(|k| day(k).len() == 8).max_by(|a, b| day(a).cmp(&day(b)).then(a.cmp(b)))?;
    let (key, price) = table.lookup(key)?;
    steps.push(Step::NewestDated(key.to_string()));
    Some(Found { key, price, steps })
}

pub(crate) fn resolve(table: &PriceTable, model: &str) -> Option<Resolution> {
    let name = model.trim();
    if name.is_empty() {
        return None;
    }
    let found = fine_tune(table, name).or_else(|| {
        plain(table, name, &[]).or_else(|| {
            let bare = name.rsplit('/').next().unwrap_or(name);
            let steps: Vec<Step> = name
                .strip_suffix(bare)
                .filter(|p| !p.is_empty())
                .map(|p| Step::ProviderPrefix(p.to_owned()))
                .into_iter()
                .collect();
            newest_dated(table, bare, steps)
        })
    })?;
    Some(Resolution { key: found.key.clone(), steps: found.steps, price: found.price.clone() })
}

/// Rule 2: `ft:BASE:…`, with or without a provider prefix before `ft:`.
fn fine_tune<'t>(table: &'t PriceTable, name: &str) -> Option<Found<'t>> {
    let start = name.to_ascii_lowercase().find("ft:")?;
    let (prefix, ft) = name.split_at(start);
    if !(prefix.is_empty() || prefix.ends_with('/')) {
        return None;
    }
    let base = ft[3..].split(':').next().filter(|b| !b.is_empty())?;
    let steps: Vec<Step> = (!prefix.is_empty()).then(|| Step::ProviderPrefix(prefix.to_owned())).into_iter().collect();
    let entry = |key: &str| {
        let (k, p) = table.lookup(key)?;
        let mut s = steps.clone();
        s.push(Step::FineTuneEntry(k.to_string()));
        Some(Found { key: k, price: p, steps: s })
    };
    if let Some(found) = entry(&format!("ft:{base}")) {
        return Some(found);
    }
    let undated = strip_date(base).map_or(base, |(b, _)| b);
    if let Some(found) = entry(&format!("ft:{undated}")) {
        return Some(found);
    }
    let ft_undated = format!("ft:{undated}");
    if let Some(found) = newest_dated(table, &ft_undated, Vec::new()) {
        let mut s = steps.clone();
        s.push(Step::FineTuneEntry(found.key.to_string()));
        return Some(Found { steps: s, ..found });
    }
    let mut s = steps;
    s.push(Step::FineTuneBase(base.to_owned()));
    plain(table, base, &s).or_else(|| newest_dated(table, base, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(model: &str) -> (String, Vec<Step>) {
        let r = resolve(PriceTable::builtin(), model).unwrap_or_else(|| panic!("{model} should resolve"));
        (r.key.to_string(), r.steps)
    }

    #[test]
    fn date_suffixes_in_every_form() {
        assert!(is_date_suffix("-2024-08-06") && is_date_suffix("-20240806") && is_date_suffix("@20240806"));
        assert!(is_date_suffix("-0125") && !is_date_suffix("-4096") && !is_date_suffix("-mini"));
        assert!(!is_date_suffix("-2024-13-06") && !is_date_suffix("@0125"));
        assert_eq!(strip_date("gpt-4o-2024-08-06"), Some(("gpt-4o", "-2024-08-06")));
        assert_eq!(strip_date("claude-3-opus@20240229"), Some(("claude-3-opus", "@20240229")));
        assert_eq!(strip_date("gpt-4o"), None);
    }

    #[test]
    fn an_exact_key_wins() {
        assert_eq!(resolved("gpt-4o"), ("gpt-4o".into(), vec![]));
        assert_eq!(resolved("gpt-4o-2024-08-06"), ("gpt-4o-2024-08-06".into(), vec![]));
        // LiteLLM's own prefixed key, not the bare model.
        assert_eq!(resolved("azure/gpt-4o").0, "azure/gpt-4o");
    }

    #[test]
    fn case_is_ignored() {
        assert_eq!(resolved("GPT-4o"), ("gpt-4o".into(), vec![Step::Case]));
    }

    #[test]
    fn provider_prefixes_are_removed() {
        assert_eq!(resolved("openai/gpt-4.1"), ("gpt-4.1".into(), vec![Step::ProviderPrefix("openai/".into())]));
        assert_eq!(
            resolved("acme-gateway/openai/gpt-4.1").1,
            vec![Step::ProviderPrefix("acme-gateway/".into()), Step::ProviderPrefix("openai/".into())]
        );
    }

    #[test]
    fn dates_are_removed_when_the_dated_name_is_unknown() {
        assert_eq!(resolved("gpt-4.1-2031-01-01"), ("gpt-4.1".into(), vec![Step::DateSuffix("-2031-01-01".into())]));
        assert_eq!(resolved("gpt-4.1-20310101").1, vec![Step::DateSuffix("-20310101".into())]);
        assert_eq!(resolved("gpt-4.1@20310101").1, vec![Step::DateSuffix("@20310101".into())]);
        assert_eq!(resolved("o3-0101").0, "o3");
    }

    #[test]
    fn fine_tunes_use_the_fine_tune_price_then_the_base() {
        let (key, steps) = resolved("ft:gpt-4o-mini-2024-07-18:acme:support:AbC123");
        assert_eq!(key, "ft:gpt-4o-mini-2024-07-18");
        assert_eq!(steps, vec![Step::FineTuneEntry("ft:gpt-4o-mini-2024-07-18".into())]);
        // Undated base: the newest dated fine-tune entry.
        assert_eq!(resolved("ft:gpt-4o-mini:acme::AbC123").0, "ft:gpt-4o-mini-2024-07-18");
        // No fine-tune price: the base model.
        let (key, steps) = resolved("ft:gpt-5-mini:acme::x1");
        assert_eq!(key, "gpt-5-mini");
        assert_eq!(steps, vec![Step::FineTuneBase("gpt-5-mini".into())]);
    }

    #[test]
    fn undated_names_take_the_newest_dated_entry() {
        let (key, steps) = resolved("openai/gpt-4o-audio-preview");
        assert_eq!(key, "gpt-4o-audio-preview-2025-06-03");
        assert_eq!(
            steps,
            vec![Step::ProviderPrefix("openai/".into()), Step::NewestDated("gpt-4o-audio-preview-2025-06-03".into())]
        );
    }

    #[test]
    fn unknown_and_empty_names_resolve_to_nothing() {
        let table = PriceTable::builtin();
        assert!(resolve(table, "").is_none());
        assert!(resolve(table, "   ").is_none());
        assert!(resolve(table, "my-own-model").is_none());
        assert!(resolve(table, "ft:").is_none());
        assert!(resolve(table, "/").is_none());
        assert!(resolve(table, "é-2024-08-06").is_none());
    }
}
