//! Terminal output: styles, tables and the formatting of times, durations
//! and token counts.
//!
//! Everything is printed through `anstream`, which drops the colour codes
//! when the output is not a terminal (or `NO_COLOR` is set, or
//! `--color never`).

use std::time::{Duration, UNIX_EPOCH};

use anstyle::{AnsiColor, Style};

/// Bold, for headings.
pub const HEADING: Style = Style::new().bold();
/// Dimmed, for secondary text.
pub const DIM: Style = Style::new().dimmed();
/// Success.
pub const GOOD: Style = AnsiColor::Green.on_default();
/// Failure.
pub const BAD: Style = AnsiColor::Red.on_default().bold();
/// Warnings and hints.
pub const NOTE: Style = AnsiColor::Yellow.on_default();
/// Names and ids worth noticing.
pub const ACCENT: Style = AnsiColor::Cyan.on_default();

/// Writes `text` to stdout (colour codes dropped when colour is off).
/// Unlike `print!`, a closed pipe is an error to return, not a panic.
pub fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = anstream::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// `text` in `style` (the codes are dropped later if colour is off).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// The style for a status code.
pub fn status_style(status: &str) -> Style {
    match status {
        "OK" => GOOD,
        "ERROR" => BAD,
        _ => DIM,
    }
}

/// The short label for a record kind (`llm_call` → `LLM`).
pub fn kind_label(kind: &str) -> &str {
    match kind {
        "llm_call" => "LLM",
        "function_call" => "FUNCTION",
        "raw" => "RAW",
        "span" => "SPAN",
        other => other,
    }
}

/// `2026-11-28 20:41:10.123` (UTC) for ms since the epoch.
pub fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_millis(t).to_string();
    s.trim_end_matches('Z').replacen('T', " ", 1)
}

/// A duration in ms, readably: `0.4ms`, `842ms`, `1.24s`, `2m03s`.
pub fn duration(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "-".into();
    }
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        let s = (ms / 1000.0).round() as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// Tokens in and out: `12/34`, or `-` when unknown.
pub fn tokens(input: Option<i64>, output: Option<i64>) -> String {
    match (input, output) {
        (None, None) => "-".into(),
        (i, o) => format!("{}/{}", i.map_or("-".into(), |v| v.to_string()), o.map_or("-".into(), |v| v.to_string())),
    }
}

/// A large count with thousands separators: `1,234,567`.
/// US dollars, with enough digits for a single call's fraction of a cent
/// (`$0.000125`) and cents for large sums (`$12.40`); `-` for none.
pub fn usd(amount: Option<f64>) -> String {
    match amount {
        None => "-".into(),
        Some(a) if !a.is_finite() => "-".into(),
        Some(0.0) => "$0".into(),
        Some(a) if a >= 100.0 => format!("${a:.0}"),
        Some(a) if a >= 1.0 => format!("${a:.2}"),
        Some(a) => {
            // Three significant digits below a dollar.
            let digits = (-a.log10()).floor().max(0.0) as usize + 3;
            let text = format!("${a:.digits$}");
            let text = text.trim_end_matches('0');
            text.trim_end_matches('.').to_owned()
        }
    }
}

pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// How a column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A plain table: a header row and aligned columns, styled per cell.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<(String, Style)>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(headers: &[(&str, Align)]) -> Table {
        Table { headers: headers.iter().map(|(h, a)| ((*h).to_owned(), *a)).collect(), rows: Vec::new() }
    }

    /// Adds a row (one cell per column, with its style).
    pub fn row(&mut self, cells: Vec<(String, Style)>) {
        self.rows.push(cells);
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, with a trailing newline.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| h.chars().count()).collect();
        for row in &self.rows {
            for (i, (text, _)) in row.iter().enumerate().take(widths.len()) {
                widths[i] = widths[i].max(text.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = (&str, Style)>| {
            let mut first = true;
            let mut pending = String::new();
            for (i, (text, style)) in cells.enumerate() {
                let pad = widths[i].saturating_sub(text.chars().count());
                if !first {
                    pending.push_str("  ");
                }
                first = false;
                let last = i + 1 == widths.len();
                match self.headers[i].1 {
                    Align::Right => {
                        pending.push_str(&" ".repeat(pad));
                        pending.push_str(&paint(style, text));
                    }
                    Align::Left => {
                        pending.push_str(&paint(style, text));
                        if !last {
                            pending.push_str(&" ".repeat(pad));
                        }
                    }
                }
            }
            out.push_str(pending.trim_end());
            out.push('\n');
        };
        line(&mut out, &mut self.headers.iter().map(|(h, _)| (h.as_str(), HEADING)));
        for row in &self.rows {
            line(&mut out, &mut row.iter().map(|(t, s)| (t.as_str(), *s)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(duration(0.42), "0.4ms");
        assert_eq!(duration(842.4), "842ms");
        assert_eq!(duration(1240.0), "1.24s");
        assert_eq!(duration(123_000.0), "2m03s");
        assert_eq!(tokens(Some(12), Some(34)), "12/34");
        assert_eq!(tokens(None, None), "-");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12), "12");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(time(0), "1970-01-01 00:00:00.000");
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
        t.row(vec![("a".into(), Style::new()), ("100".into(), Style::new())]);
        t.row(vec![("long name".into(), Style::new()), ("2".into(), Style::new())]);
        let text = t.render();
        let plain: Vec<String> = text.lines().map(|l| anstream::adapter::strip_str(l).to_string()).collect();
        assert_eq!(plain, ["NAME         N", "a          100", "long name    2"]);
    }
}
