//! `anosys prices`: the model prices costs are computed with, listed or
//! looked up one model at a time.

use std::path::PathBuf;

use anosys::cost::{ModelPrice, PriceTable, RateKind, Resolution, Tier, PRICES_ENV};
use anstyle::Style;
use serde_json::{json, Value};

use super::CliError;
use crate::cli::PricesArgs;
use crate::output::{self, paint, Align, Table, DIM, HEADING};

const TIERS: [(Tier, &str); 4] =
    [(Tier::Standard, "standard"), (Tier::Flex, "flex"), (Tier::Priority, "priority"), (Tier::Batch, "batch")];

pub(super) fn run(args: PricesArgs) -> Result<(), CliError> {
    let with_overrides = load(args.prices.clone())?;
    let table = with_overrides.as_ref().unwrap_or(PriceTable::builtin());
    match &args.model {
        Some(model) => look_up(table, model, args.json),
        None => list(table, args.filter.as_deref(), args.json),
    }
}

/// The built-in table plus the price file of `--prices` or `ANOSYS_PRICES`;
/// `None` when there is no such file (the built-in table alone).
fn load(flag: Option<PathBuf>) -> Result<Option<PriceTable>, CliError> {
    let (path, from_env) = match flag {
        Some(p) => (Some(p), false),
        None => (std::env::var_os(PRICES_ENV).filter(|v| !v.is_empty()).map(PathBuf::from), true),
    };
    let Some(path) = path else { return Ok(None) };
    PriceTable::with_overrides(&path).map(Some).map_err(|e| {
        let hint = if from_env {
            format!("fix the file or unset {PRICES_ENV}")
        } else {
            "fix the file given to --prices".to_owned()
        };
        CliError::new(e.to_string()).hint(hint)
    })
}

/// USD per million tokens, or `-`.
fn per_million(usd_per_token: Option<f64>) -> String {
    match usd_per_token {
        Some(p) => {
            let m = p * 1e6;
            // Enough digits for $0.0025/M and for $150/M alike, without float noise.
            let text = format!("{m:.6}");
            let text = text.trim_end_matches('0');
            let text = text.strip_suffix('.').unwrap_or(text);
            format!("${text}")
        }
        None => "-".to_owned(),
    }
}

fn source_line(table: &PriceTable) -> String {
    let mut line =
        format!("{} {} ({} models)", paint(HEADING, "Prices"), table.source(), output::count(table.len() as u64));
    if let Some(path) = table.overrides() {
        line += &format!("\n{} {}", paint(HEADING, "Overrides"), path.display());
    }
    line + "\n"
}

fn list(table: &PriceTable, filter: Option<&str>, json_out: bool) -> Result<(), CliError> {
    let needle = filter.map(str::to_lowercase);
    let mut models: Vec<(&str, &ModelPrice)> =
        table.models().filter(|(k, _)| needle.as_deref().is_none_or(|n| k.to_lowercase().contains(n))).collect();
    models.sort_by(|a, b| a.0.cmp(b.0));
    if json_out {
        let rows: Vec<Value> = models
            .iter()
            .map(|(k, p)| {
                json!({"model": k, "mode": p.mode(), "input_per_million": p.input_per_token().map(|v| v * 1e6),
                       "cached_input_per_million": p.cached_input_per_token().map(|v| v * 1e6),
                       "output_per_million": p.output_per_token().map(|v| v * 1e6), "source": p.source()})
            })
            .collect();
        let value =
            json!({"source": table.source(), "overrides": table.overrides(), "count": table.len(), "models": rows});
        return Ok(output::emit(&format!("{value}\n"))?);
    }
    let mut text = source_line(table);
    if models.is_empty() {
        text += &format!("\nno model name contains {:?}\n", filter.unwrap_or(""));
        return Ok(output::emit(&text)?);
    }
    let mut t = Table::new(&[
        ("MODEL", Align::Left),
        ("MODE", Align::Left),
        ("INPUT $/1M", Align::Right),
        ("CACHED $/1M", Align::Right),
        ("OUTPUT $/1M", Align::Right),
    ]);
    let plain = Style::new();
    for (key, price) in &models {
        t.row(vec![
            ((*key).to_owned(), HEADING),
            (price.mode().unwrap_or("-").to_owned(), DIM),
            (per_million(price.input_per_token()), plain),
            (per_million(price.cached_input_per_token()), plain),
            (per_million(price.output_per_token().or(price.output_per_image_token())), plain),
        ]);
    }
    text += "\n";
    text += &t.render();
    if filter.is_some() {
        text += &format!("\n{} of {} models\n", output::count(models.len() as u64), output::count(table.len() as u64));
    }
    Ok(output::emit(&text)?)
}

/// The rows of a model's price table: each tier it has prices for, each
/// long-context threshold.
fn rate_rows(price: &ModelPrice) -> Vec<(String, [Option<f64>; 5])> {
    let kinds = [RateKind::Input, RateKind::CacheRead, RateKind::CacheWrite, RateKind::Output, RateKind::Reasoning];
    let mut rows = Vec::new();
    for (tier, name) in TIERS {
        let mut thresholds = vec![None];
        thresholds.extend(price.thresholds(tier).into_iter().map(Some));
        for above in thresholds {
            let rates = kinds.map(|k| price.rate(k, tier, above));
            if rates.iter().all(Option::is_none) {
                continue;
            }
            let label = match above {
                Some(n) if n % 1000 == 0 => format!("{name}, above {}k tokens", n / 1000),
                Some(n) => format!("{name}, above {n} tokens"),
                None => name.to_owned(),
            };
            rows.push((label, rates));
        }
    }
    rows
}

fn look_up(table: &PriceTable, model: &str, json_out: bool) -> Result<(), CliError> {
    let Some(found) = table.resolve(model) else {
        return Err(CliError::new(format!("no price known for model {model:?}")).hint(format!(
            "`anosys prices --filter PART` lists the models known; add it to a price file given by --prices or {PRICES_ENV}"
        )));
    };
    if json_out {
        return Ok(output::emit(&format!("{}\n", lookup_json(model, &found)))?);
    }
    let price = found.price();
    let mut text = format!("{} {}\n", paint(HEADING, "Model"), found.key());
    if found.key() != model {
        text += &format!("{} {model:?}: {}\n", paint(HEADING, "From"), found.explain());
    }
    text += &format!("{} {}\n", paint(HEADING, "Source"), price.source());
    if let Some(mode) = price.mode() {
        text += &format!("{} {mode}\n", paint(HEADING, "Mode"));
    }
    let rows = rate_rows(price);
    if !rows.is_empty() {
        let mut t = Table::new(&[
            ("USD PER 1M TOKENS", Align::Left),
            ("INPUT", Align::Right),
            ("CACHED", Align::Right),
            ("CACHE WRITE", Align::Right),
            ("OUTPUT", Align::Right),
            ("REASONING", Align::Right),
        ]);
        for (label, rates) in rows {
            let mut row = vec![(label, HEADING)];
            row.extend(rates.map(|r| (per_million(r), Style::new())));
            t.row(row);
        }
        text += "\n";
        text += &t.render();
    }
    if let Some(each) = price.output_per_image_token() {
        text += &format!("output image tokens: {} per 1M\n", per_million(Some(each)));
    }
    if let Some(each) = price.per_image() {
        text += &format!("per image: ${each}\n");
    }
    if let Some(each) = price.per_pixel() {
        text += &format!("per pixel: ${each}\n");
    }
    Ok(output::emit(&text)?)
}

fn lookup_json(model: &str, found: &Resolution) -> Value {
    let price = found.price();
    let rows: Vec<Value> = rate_rows(price)
        .into_iter()
        .map(|(label, r)| {
            let m = |v: Option<f64>| v.map(|v| v * 1e6);
            json!({"prices": label, "input_per_million": m(r[0]), "cached_input_per_million": m(r[1]),
                   "cache_write_per_million": m(r[2]), "output_per_million": m(r[3]), "reasoning_per_million": m(r[4])})
        })
        .collect();
    json!({
        "query": model, "model": found.key(), "why": found.explain(),
        "steps": found.steps().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "source": price.source(), "mode": price.mode(), "rates": rows,
        "per_image": price.per_image(), "per_pixel": price.per_pixel(),
        "output_per_image_token": price.output_per_image_token(),
    })
}
