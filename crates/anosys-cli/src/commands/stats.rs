//! `anosys stats`: per model and per source figures.

use anstyle::Style;

use super::{filter, CliError};
use crate::cli::StatsArgs;
use crate::output::{self, paint, Align, Table, BAD, DIM, HEADING};
use crate::store::{GroupStats, Percentiles, Stats, Store};

pub(super) fn run(store: &Store, args: StatsArgs) -> Result<(), CliError> {
    let stats = store.stats(&filter(&args.filter)?)?;
    if args.json {
        let text = serde_json::to_string_pretty(&stats).map_err(|e| CliError::new(e.to_string()))?;
        return Ok(output::emit(&format!("{text}\n"))?);
    }
    Ok(output::emit(&render(&stats))?)
}

fn pct(p: Option<Percentiles>) -> [String; 3] {
    match p {
        Some(p) => [output::duration(p.p50), output::duration(p.p95), output::duration(p.p99)],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

fn table(first: &str, groups: &[GroupStats], with_tokens: bool) -> Table {
    let mut headers = vec![(first, Align::Left), ("CALLS", Align::Right), ("ERRORS", Align::Right)];
    if with_tokens {
        headers.extend([("TOKENS IN", Align::Right), ("TOKENS OUT", Align::Right), ("COST", Align::Right)]);
    }
    headers.extend([("P50", Align::Right), ("P95", Align::Right), ("P99", Align::Right)]);
    if with_tokens {
        headers.extend([("TTFC P50", Align::Right), ("TTFC P95", Align::Right), ("TTFC P99", Align::Right)]);
    }
    let mut t = Table::new(&headers);
    let plain = Style::new();
    for g in groups {
        let errors = format!("{} ({:.1}%)", output::count(g.errors), g.error_rate * 100.0);
        let mut row = vec![
            (output::truncate(&g.key, 40), plain),
            (output::count(g.calls), plain),
            (errors, if g.errors > 0 { BAD } else { plain }),
        ];
        if with_tokens {
            row.push((output::count(g.input_tokens), plain));
            row.push((output::count(g.output_tokens), plain));
            row.push((output::usd((g.priced_calls > 0).then_some(g.cost_usd)), plain));
        }
        row.extend(pct(g.latency_ms).into_iter().map(|s| (s, plain)));
        if with_tokens {
            row.extend(pct(g.time_to_first_chunk_ms).into_iter().map(|s| (s, plain)));
        }
        t.row(row);
    }
    t
}

/// The readable report.
pub fn render(stats: &Stats) -> String {
    let mut out = String::new();
    if stats.records == 0 {
        out.push_str(&paint(DIM, "no records match\n"));
        return out;
    }
    if !stats.models.is_empty() {
        out.push_str(&format!("{}\n", paint(HEADING, "LLM calls by model")));
        out.push_str(&table("MODEL", &stats.models, true).render());
    }
    if !stats.sources.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{}\n", paint(HEADING, "Logged functions by source")));
        out.push_str(&table("SOURCE", &stats.sources, false).render());
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&paint(
        DIM,
        format!(
            "{} records ({} other: raw events and spans), {} in all; latency is the call's duration, TTFC the time to the first streamed chunk\n",
            output::count(stats.records),
            output::count(stats.other_records),
            output::usd(Some(stats.cost_usd))
        ),
    ));
    out
}
