//! `anosys export`: stored records to JSON lines or CSV, oldest first.

use std::fs::File;
use std::io::{BufWriter, Write};

use serde_json::Value;

use super::{filter, progress, CliError};
use crate::cli::{ExportArgs, Format};
use crate::output;
use crate::store::{Store, Stored};

/// The CSV columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "start_time",
    "end_time",
    "duration_ms",
    "kind",
    "name",
    "source",
    "model",
    "status",
    "input_tokens",
    "output_tokens",
    "time_to_first_chunk_ms",
    "trace_id",
    "span_id",
    "parent_span_id",
    "error_type",
    "error_message",
];

pub(super) fn run(store: &Store, args: ExportArgs) -> Result<(), CliError> {
    let filter = filter(&args.filter)?;
    let total = store.count(&filter)?;
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(File::create(path).map_err(|e| {
            CliError::new(format!("cannot write {}: {e}", path.display())).hint("check the folder exists and is writable")
        })?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let bar = progress(total, "exporting");
    let mut written = 0u64;
    match args.format {
        Format::Jsonl => store.for_each(&filter, |s: Stored| -> Result<(), CliError> {
            out.write_all(s.json.as_bytes())?;
            out.write_all(b"\n")?;
            written += 1;
            bar.inc(1);
            Ok(())
        })?,
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut out);
            csv.write_record(CSV_COLUMNS).map_err(csv_error)?;
            store.for_each(&filter, |s: Stored| -> Result<(), CliError> {
                csv.write_record(csv_row(&s)).map_err(csv_error)?;
                written += 1;
                bar.inc(1);
                Ok(())
            })?;
            csv.flush()?;
        }
    }
    out.flush()?;
    bar.finish_and_clear();
    if let Some(path) = &args.output {
        anstream::eprintln!("exported {} records to {}", output::count(written), path.display());
    }
    Ok(())
}

fn csv_error(e: csv::Error) -> CliError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io.into(),
        other => CliError::new(format!("writing CSV failed: {other:?}")),
    }
}

/// One CSV row (see [`CSV_COLUMNS`]); a record that cannot be parsed keeps
/// its id and says so in `error_message`.
fn csv_row(s: &Stored) -> Vec<String> {
    let r = match s.record() {
        Ok(r) => r,
        Err(e) => {
            let mut row = vec![String::new(); CSV_COLUMNS.len()];
            row[0] = s.id.to_string();
            row[CSV_COLUMNS.len() - 1] = format!("unreadable record: {e}");
            return row;
        }
    };
    let attr = |k: &str| match r.attribute(k) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let ttfc = r.attribute("gen_ai.response.time_to_first_chunk").and_then(Value::as_f64);
    vec![
        s.id.to_string(),
        humantime::format_rfc3339_micros(r.start_time).to_string(),
        humantime::format_rfc3339_micros(r.end_time).to_string(),
        format!("{:.3}", r.duration().as_secs_f64() * 1000.0),
        r.kind.as_str().to_owned(),
        r.name.clone(),
        r.source.clone().unwrap_or_default(),
        r.model().unwrap_or_default().to_owned(),
        r.status.code.as_str().to_owned(),
        attr("gen_ai.usage.input_tokens"),
        attr("gen_ai.usage.output_tokens"),
        ttfc.map(|s| format!("{:.3}", s * 1000.0)).unwrap_or_default(),
        r.trace_id.to_string(),
        r.span_id.to_string(),
        r.parent_span_id.map(|p| p.to_string()).unwrap_or_default(),
        r.error.as_ref().map(|e| e.error_type.clone()).unwrap_or_default(),
        r.error.as_ref().map(|e| e.message.clone()).unwrap_or_default(),
    ]
}
