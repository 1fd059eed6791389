//! Readable lines on stdout, for development.

use std::io::Write;

use super::{BoxFuture, ExportContext, ExportReport, Sink};
use crate::record::time::to_iso;
use crate::record::Record;
use crate::sinks::anosys::encode::text_of;

/// Prints one readable line per record on stdout:
/// time, kind, name, status, duration, source and a few attributes.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdoutSink;

const SHOWN: &[(&str, &str)] = &[
    ("gen_ai.request.model", "model"),
    ("gen_ai.usage.input_tokens", "in"),
    ("gen_ai.usage.output_tokens", "out"),
];

impl StdoutSink {
    /// The line for one record.
    pub fn line(record: &Record) -> String {
        let mut line = format!(
            "{} {:<8} {} {} {:.1}ms",
            to_iso(record.start_time),
            record.kind.label(),
            record.name,
            record.status.code.as_str(),
            record.duration().as_secs_f64() * 1000.0,
        );
        if let Some(s) = &record.source {
            line.push_str(&format!(" source={s}"));
        }
        for (key, label) in SHOWN {
            if let Some(v) = record.attribute(key) {
                line.push_str(&format!(" {label}={}", text_of(v)));
            }
        }
        if let Some(e) = &record.error {
            line.push_str(&format!(" error={}: {}", e.error_type, e.message));
        }
        let mut extra = String::new();
        for (k, v) in record.attributes.iter().filter(|(k, _)| !SHOWN.iter().any(|(s, _)| s == k)) {
            extra.push_str(&format!(" {k}={}", text_of(v)));
            if extra.len() > 160 {
                extra.truncate(extra.floor_char_boundary(160));
                extra.push('…');
                break;
            }
        }
        line.push_str(&extra);
        line.push_str(&format!(" trace={}", record.trace_id));
        line
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        "stdout"
    }

    fn describe(&self) -> String {
        "records are printed on stdout".into()
    }

    fn export<'a>(&'a self, batch: &'a [Record], _cx: ExportContext) -> BoxFuture<'a, ExportReport> {
        let mut text = String::new();
        for r in batch {
            text.push_str(&Self::line(r));
            text.push('\n');
        }
        let failed = match std::io::stdout().lock().write_all(text.as_bytes()) {
            Ok(()) => 0,
            Err(_) => batch.len(),
        };
        Box::pin(async move { ExportReport { failed, ..Default::default() } })
    }
}
