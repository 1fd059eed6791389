//! `anosys show ID`: one record in full.

use std::fmt::Write as _;

use anosys::Record;
use serde_json::Value;

use super::CliError;
use crate::cli::ShowArgs;
use crate::output::{self, paint, ACCENT, BAD, DIM, HEADING};
use crate::store::Store;

pub(super) fn run(store: &Store, args: ShowArgs) -> Result<(), CliError> {
    let stored = store.get(&args.id)?;
    if args.json {
        let pretty = serde_json::from_str::<Value>(&stored.json)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or(stored.json);
        return Ok(output::emit(&format!("{pretty}\n"))?);
    }
    let record = stored.record().map_err(|e| {
        CliError::new(format!("record {} is stored but cannot be read: {e}", stored.id))
            .hint(format!("`anosys show {} --json` prints it as stored", stored.id))
    })?;
    Ok(output::emit(&render(stored.id, &record))?)
}

fn ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Pretty JSON, indented by `indent` spaces; strings print as they are.
fn block(value: &Value, indent: usize) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        v => serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()),
    };
    let pad = " ".repeat(indent);
    let mut out = String::new();
    for line in text.lines() {
        let _ = writeln!(out, "{pad}{line}");
    }
    out
}

fn field(out: &mut String, label: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "  {}{value}", paint(DIM, format!("{label:<13}")));
}

/// The readable form of one record.
pub fn render(id: i64, r: &Record) -> String {
    let mut out = String::new();
    let status = r.status.code.as_str();
    let _ = writeln!(
        out,
        "{}  {}",
        paint(HEADING, &r.name),
        paint(DIM, format!("#{id} · {} · {} · ", r.kind.label(), r.span_kind.as_str()))
            + &paint(output::status_style(status), status)
    );
    field(
        &mut out,
        "time",
        format!(
            "{} → {}  ({})",
            output::time(ms(r.start_time)),
            output::time(ms(r.end_time)),
            output::duration(r.duration().as_secs_f64() * 1000.0)
        ),
    );
    field(&mut out, "trace", paint(ACCENT, r.trace_id));
    let span = match r.parent_span_id {
        Some(p) => format!("{}  (parent {p})", paint(ACCENT, r.span_id)),
        None => paint(ACCENT, r.span_id),
    };
    field(&mut out, "span", span);
    if let Some(s) = &r.source {
        field(&mut out, "source", s);
    }
    if let Some(c) = &r.caller {
        let f = c.function.as_deref().map(|f| format!("{f} at ")).unwrap_or_default();
        field(&mut out, "caller", format!("{f}{}:{}", c.file, c.line));
    }
    if let Some(m) = r.model() {
        field(&mut out, "model", m);
    }
    let tokens = (r.attribute("gen_ai.usage.input_tokens"), r.attribute("gen_ai.usage.output_tokens"));
    if tokens.0.is_some() || tokens.1.is_some() {
        let n = |v: Option<&Value>| v.map_or("-".to_owned(), |v| v.to_string());
        field(&mut out, "tokens", format!("{} in, {} out", n(tokens.0), n(tokens.1)));
    }
    if let Some(line) = cost_line(r) {
        field(&mut out, "cost", line);
    }
    if let Some(t) = r.attribute("gen_ai.response.time_to_first_chunk").and_then(Value::as_f64) {
        field(&mut out, "first chunk", output::duration(t * 1000.0));
    }
    if let Some(e) = &r.error {
        field(&mut out, "error", paint(BAD, format!("{}: {}", e.error_type, e.message)));
        if let Some(stack) = &e.stack {
            out.push_str(&paint(DIM, block(&Value::String(stack.clone()), 17)));
        }
    } else if let Some(m) = &r.status.message {
        field(&mut out, "status", m);
    }
    let sections: [(&str, Option<&Value>); 4] = [
        ("input", r.input.as_ref()),
        ("output", r.output.as_ref()),
        ("user context", r.user_context.as_ref()),
        ("raw", r.raw.as_ref()),
    ];
    for (title, value) in sections {
        if let Some(v) = value {
            let _ = writeln!(out, "\n{}", paint(HEADING, title));
            out.push_str(&block(v, 2));
        }
    }
    if !r.attributes.is_empty() {
        let _ = writeln!(out, "\n{}", paint(HEADING, "attributes"));
        let width = r.attributes.keys().map(|k| k.len()).max().unwrap_or(0).min(48);
        for (k, v) in &r.attributes {
            let text = match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let _ = writeln!(out, "  {}  {}", paint(DIM, format!("{k:<width$}")), output::truncate(&text, 200));
        }
    }
    if !r.events.is_empty() {
        let _ = writeln!(out, "\n{}", paint(HEADING, "events"));
        for e in &r.events {
            let attrs = if e.attributes.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&e.attributes).unwrap_or_default()
            };
            let _ = writeln!(out, "  {}  {}  {}", paint(DIM, output::time(ms(e.time))), e.name, output::truncate(&attrs, 200));
        }
    }
    if let Some(res) = &r.resource
        && !res.attributes.is_empty()
    {
        let _ = writeln!(out, "\n{}", paint(HEADING, "resource"));
        for (k, v) in &res.attributes {
            let text = match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let _ = writeln!(out, "  {}  {text}", paint(DIM, k));
        }
    }
    out
}

/// `$0.00123 (input $0.001, cached input $0.0001, output $0.00013)`, or
/// why there is no cost.
fn cost_line(r: &anosys::Record) -> Option<String> {
    let amount = |key: &str| r.attribute(key).and_then(Value::as_f64);
    match r.attribute("anosys.cost.status").and_then(Value::as_str) {
        Some("unpriced") => {
            return Some(paint(DIM, "unknown: no price for this model (anosys prices; ANOSYS_PRICES adds one)"));
        }
        Some("no_usage") => return Some(paint(DIM, "unknown: the call reported no usage")),
        _ => {}
    }
    let total = amount("gen_ai.usage.cost")?;
    let parts: Vec<String> = [
        ("input", "anosys.cost.input"),
        ("cached input", "anosys.cost.cached_input"),
        ("cache write", "anosys.cost.cache_write"),
        ("output", "anosys.cost.output"),
        ("of it reasoning", "anosys.cost.reasoning"),
    ]
    .iter()
    .filter_map(|(label, key)| amount(key).map(|a| format!("{label} {}", output::usd(Some(a)))))
    .collect();
    let mut line = output::usd(Some(total));
    if !parts.is_empty() {
        line += &paint(DIM, format!("  ({})", parts.join(", ")));
    }
    Some(line)
}
