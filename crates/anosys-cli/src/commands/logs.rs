//! `anosys logs`: recent records as a table.

use std::io::Write;

use anstyle::Style;

use super::{filter, CliError};
use crate::cli::LogsArgs;
use crate::output::{self, paint, Align, Table, ACCENT, DIM};
use crate::store::{Store, Summary};

pub(super) fn run(store: &Store, args: LogsArgs) -> Result<(), CliError> {
    let filter = filter(&args.filter)?;
    if args.json {
        let mut out = std::io::stdout().lock();
        for stored in store.latest_full(&filter, args.limit)? {
            // The record as stored, with its row id in front.
            let line = match stored.json.strip_prefix('{') {
                Some(rest) if rest.trim_start().starts_with('"') => format!("{{\"id\":{},{rest}", stored.id),
                _ => format!("{{\"id\":{},\"record\":{}}}", stored.id, serde_json::Value::String(stored.json)),
            };
            writeln!(out, "{line}")?;
        }
        return Ok(());
    }
    let rows = store.latest(&filter, args.limit)?;
    if rows.is_empty() {
        let total = store.count(&Default::default())?;
        output::emit(&format!("{}\n", paint(DIM, format!("no records match (the store holds {})", output::count(total)))))?;
        return Ok(());
    }
    output::emit(&table(&rows).render())?;
    let matching = store.count(&filter)?;
    if matching > rows.len() as u64 {
        output::emit(&format!(
            "{}\n",
            paint(DIM, format!("{} of {} matching records; --limit shows more", rows.len(), output::count(matching)))
        ))?;
    }
    Ok(())
}

/// The `anosys logs` table for these rows.
pub fn table(rows: &[Summary]) -> Table {
    let mut t = Table::new(&[
        ("ID", Align::Right),
        ("TIME (UTC)", Align::Left),
        ("KIND", Align::Left),
        ("NAME", Align::Left),
        ("SOURCE", Align::Left),
        ("MODEL", Align::Left),
        ("TOKENS IN/OUT", Align::Right),
        ("COST", Align::Right),
        ("DURATION", Align::Right),
        ("STATUS", Align::Left),
    ]);
    let plain = Style::new();
    for r in rows {
        t.row(vec![
            (r.id.to_string(), ACCENT),
            (output::time(r.start_ms), DIM),
            (output::kind_label(&r.kind).to_owned(), plain),
            (output::truncate(&r.name, 40), plain),
            (output::truncate(r.source.as_deref().unwrap_or("-"), 24), plain),
            (output::truncate(r.model.as_deref().unwrap_or("-"), 32), plain),
            (output::tokens(r.input_tokens, r.output_tokens), plain),
            (output::usd(r.cost_usd), plain),
            (output::duration(r.duration_ms), plain),
            (r.status.clone(), output::status_style(&r.status)),
        ]);
    }
    t
}
