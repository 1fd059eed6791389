//! The access log: one line per request on stderr, as JSON or as text, or
//! none.
//!
//! Off the request path: a request only pushes its entry onto a queue (a
//! short uncontended lock, no syscall, no wake-up while the writer is
//! busy). A thread of its own formats the entries and writes them in
//! batches, one `write` per batch: it sleeps until the first entry after a
//! quiet spell, then collects for [`BATCH_WINDOW`] before writing, so under
//! load it wakes at most about twenty times a second whatever the request
//! rate. Lines are kept in request-end order. The queue is emptied when the
//! server stops ([`AccessLog::flush`]) and when the log is dropped, so no
//! line is lost at shutdown.
//!
//! Secrets never reach it: the path is logged without its query string,
//! and no header is logged.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anosys::{SpanId, TraceId};

use super::worker::Worker;

/// How long the writer collects entries before it writes them.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// Most entries waiting to be written; past this (stderr blocked), entries
/// are counted and dropped, and one line says how many.
const MAX_QUEUED: usize = 65_536;

/// The access log's format (`--access-log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AccessLogFormat {
    /// No access log.
    Off,
    /// One JSON object a line.
    #[default]
    Json,
    /// One readable line: time, method, path, status, duration, then key=value pairs.
    Text,
}

/// One finished request, as the access log tells it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub time: SystemTime,
    pub method: axum::http::Method,
    pub path: String,
    pub route: String,
    pub status: u16,
    pub duration_ms: f64,
    pub model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub error_type: Option<String>,
    pub outcome: Option<String>,
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

#[derive(serde::Serialize)]
struct JsonLine<'a> {
    time: String,
    level: &'static str,
    msg: &'static str,
    method: &'a str,
    path: &'a str,
    route: &'a str,
    status: u16,
    duration_ms: f64,
    model: Option<&'a str>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    error_type: Option<&'a str>,
    outcome: Option<&'a str>,
    trace_id: String,
    span_id: String,
}

impl Entry {
    /// Appends this entry's line, with its newline, to `out`.
    fn write_line(&self, format: AccessLogFormat, out: &mut Vec<u8>) {
        let time = humantime::format_rfc3339_millis(self.time).to_string();
        let duration_ms = (self.duration_ms * 10.0).round() / 10.0;
        match format {
            AccessLogFormat::Off => return,
            AccessLogFormat::Json => {
                let line = JsonLine {
                    time,
                    level: if self.error_type.is_some() { "warn" } else { "info" },
                    msg: "request",
                    method: self.method.as_str(),
                    path: &self.path,
                    route: &self.route,
                    status: self.status,
                    duration_ms,
                    model: self.model.as_deref(),
                    input_tokens: self.input_tokens,
                    output_tokens: self.output_tokens,
                    error_type: self.error_type.as_deref(),
                    outcome: self.outcome.as_deref(),
                    trace_id: self.trace_id.to_string(),
                    span_id: self.span_id.to_string(),
                };
                // Serialising to a Vec of plain fields cannot fail.
                let _ = serde_json::to_writer(&mut *out, &line);
            }
            AccessLogFormat::Text => {
                use std::io::Write as _;
                let _ = write!(
                    out,
                    "{time} {} {} {} {duration_ms}ms route={}",
                    self.method, self.path, self.status, self.route
                );
                let words = [
                    ("model", self.model.as_deref()),
                    ("error", self.error_type.as_deref()),
                    ("outcome", self.outcome.as_deref()),
                ];
                for (k, v) in words {
                    if let Some(v) = v {
                        let _ = write!(out, " {k}={}", quoted(v));
                    }
                }
                for (k, v) in [("in", self.input_tokens), ("out", self.output_tokens)] {
                    if let Some(v) = v {
                        let _ = write!(out, " {k}={v}");
                    }
                }
                let _ = write!(out, " trace={} span={}", self.trace_id, self.span_id);
            }
        }
        out.push(b'\n');
    }
}

/// A value as one word: quoted (JSON string rules) if it holds a space, a
/// quote, `=` or a control character, else as it is.
fn quoted(v: &str) -> std::borrow::Cow<'_, str> {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=') {
        serde_json::to_string(v).map(Into::into).unwrap_or_else(|_| "\"?\"".into())
    } else {
        v.into()
    }
}

/// Writes one batch of entries, in one write.
fn write_batch(format: AccessLogFormat, out: &mut dyn Write, scratch: &mut Vec<u8>, entries: &[Entry], dropped: u64) {
    scratch.clear();
    for e in entries {
        e.write_line(format, scratch);
    }
    if dropped > 0 {
        let line = serde_json::json!({
            "time": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            "level": "warn",
            "msg": "access log lines dropped",
            "dropped": dropped,
            "detail": "stderr could not keep up; the records themselves are not affected",
        });
        scratch.extend_from_slice(line.to_string().as_bytes());
        scratch.push(b'\n');
    }
    // Nowhere to report a failed write to stderr.
    let _ = out.write_all(scratch).and_then(|_| out.flush());
    if scratch.capacity() > 1 << 20 {
        *scratch = Vec::new();
    }
}

/// The proxy's access log (see the module's doc); the writer thread stops,
/// after writing every queued line, when it is dropped.
pub struct AccessLog {
    format: AccessLogFormat,
    worker: Option<Worker<Entry>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").field("format", &self.format).finish()
    }
}

impl AccessLog {
    /// An access log in `format` on stderr.
    pub fn stderr(format: AccessLogFormat) -> AccessLog {
        AccessLog::new(format, Box::new(std::io::stderr()))
    }

    /// An access log in `format` written to `out` (unbuffered is fine: each
    /// batch is one write).
    pub fn new(format: AccessLogFormat, mut out: Box<dyn Write + Send>) -> AccessLog {
        if format == AccessLogFormat::Off {
            return AccessLog { format, worker: None };
        }
        let mut scratch = Vec::with_capacity(16 << 10);
        let handler = Box::new(move |entries: Vec<Entry>, dropped| {
            write_batch(format, &mut *out, &mut scratch, &entries, dropped)
        });
        AccessLog { format, worker: Some(Worker::new("anosys-access-log", BATCH_WINDOW, MAX_QUEUED, handler)) }
    }

    /// Its format.
    pub fn format(&self) -> AccessLogFormat {
        self.format
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.worker.is_some()
    }

    /// Queues one request's line.
    pub(crate) fn push(&self, entry: Entry) {
        if let Some(w) = &self.worker {
            w.push(entry);
        }
    }

    /// Writes every queued line now, on the calling thread.
    pub fn flush(&self) {
        if let Some(w) = &self.worker {
            w.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>, Arc<Mutex<usize>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            *self.1.lock().unwrap() += 1;
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn entry(i: u16) -> Entry {
        Entry {
            time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123),
            method: axum::http::Method::POST,
            path: "/v1/chat/completions".into(),
            route: "/".into(),
            status: 200 + i % 2,
            duration_ms: 12.345,
            model: Some("gpt-4o-mini".into()),
            input_tokens: Some(12),
            output_tokens: None,
            error_type: (i == 1).then(|| "rate limit".into()),
            outcome: Some("completed".into()),
            trace_id: TraceId([0xab; 16]),
            span_id: SpanId([0xcd; 8]),
        }
    }

    #[test]
    fn every_line_is_written_in_order_in_few_writes_and_none_is_lost_at_drop() {
        let out = Shared::default();
        let log = AccessLog::new(AccessLogFormat::Json, Box::new(out.clone()));
        for i in 0..1000 {
            log.push(entry(i));
        }
        drop(log);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 1000);
        assert!(lines.iter().enumerate().all(|(i, l)| l["status"] == 200 + (i as u64 % 2)));
        assert!(*out.1.lock().unwrap() < 10, "{} writes", out.1.lock().unwrap());
        assert_eq!(lines[0]["duration_ms"], 12.3);
        assert_eq!(lines[0]["time"], "2025-11-24T16:00:00.123Z");
        assert_eq!(lines[0]["trace_id"], "ab".repeat(16));
        assert_eq!(lines[1]["level"], "warn");
    }

    #[test]
    fn text_lines_are_one_readable_line_with_quoted_values() {
        let out = Shared::default();
        let log = AccessLog::new(AccessLogFormat::Text, Box::new(out.clone()));
        log.push(entry(1));
        log.flush();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            format!(
                "2025-11-24T16:00:00.123Z POST /v1/chat/completions 201 12.3ms route=/ model=gpt-4o-mini error=\"rate limit\" outcome=completed in=12 trace={} span={}\n",
                "ab".repeat(16),
                "cd".repeat(8)
            )
        );
        drop(log);
    }

    #[test]
    fn off_writes_nothing_and_starts_no_thread() {
        let out = Shared::default();
        let log = AccessLog::new(AccessLogFormat::Off, Box::new(out.clone()));
        assert!(!log.enabled());
        log.push(entry(0));
        drop(log);
        assert!(out.0.lock().unwrap().is_empty());
    }
}
