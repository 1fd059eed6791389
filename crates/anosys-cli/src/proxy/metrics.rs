//! The proxy's `/metrics`, in the Prometheus text format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use anosys::Counters;

/// The GenAI semantic conventions' buckets for `gen_ai.client.operation.duration`
/// (seconds).
pub const DURATION_BUCKETS: &[f64] =
    &[0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, value: f64, buckets: &[f64]) {
        if self.counts.is_empty() {
            self.counts = vec![0; buckets.len()];
        }
        for (i, b) in buckets.iter().enumerate() {
            if value <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += value;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (route, method, status) → requests.
    requests: BTreeMap<(String, String, u16), u64>,
    /// (route, kind) → failures: upstream unreachable, timeouts, error records.
    errors: BTreeMap<(String, String), u64>,
    /// (model, input|output) → tokens.
    tokens: BTreeMap<(String, &'static str), u64>,
    /// route → request duration in seconds.
    duration: BTreeMap<String, Histogram>,
    /// route → time to first chunk of streams, in seconds.
    ttfc: BTreeMap<String, Histogram>,
    in_flight: i64,
    /// Client connections open now.
    open_connections: i64,
    /// Why the server closed connections: header or idle timeout.
    expired: BTreeMap<&'static str, u64>,
    /// Times the connection cap was reached (once per episode).
    limit_reached: u64,
}

/// What one finished request adds to the metrics.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Route prefix.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Status answered to the client.
    pub status: u16,
    /// Seconds from request to the end of the response.
    pub seconds: f64,
    /// The error kind, when the call failed.
    pub error: Option<String>,
    /// Model, when known.
    pub model: Option<String>,
    /// Prompt and completion tokens, when reported.
    pub tokens: (Option<u64>, Option<u64>),
    /// Time to first chunk of a stream, in seconds.
    pub time_to_first_chunk: Option<f64>,
}

/// The proxy's counters and histograms.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else if v > 0.0 { "+Inf".into() } else { "NaN".into() }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request started.
    pub fn started(&self) {
        self.lock().in_flight += 1;
    }

    /// A request ended.
    pub fn finished(&self, o: Observation) {
        let mut m = self.lock();
        m.in_flight -= 1;
        *m.requests.entry((o.route.clone(), o.method, o.status)).or_default() += 1;
        if let Some(kind) = o.error {
            *m.errors.entry((o.route.clone(), kind)).or_default() += 1;
        }
        let model = o.model.unwrap_or_else(|| "unknown".into());
        if let Some(t) = o.tokens.0 {
            *m.tokens.entry((model.clone(), "input")).or_default() += t;
        }
        if let Some(t) = o.tokens.1 {
            *m.tokens.entry((model, "output")).or_default() += t;
        }
        m.duration.entry(o.route.clone()).or_default().observe(o.seconds, DURATION_BUCKETS);
        if let Some(t) = o.time_to_first_chunk {
            m.ttfc.entry(o.route).or_default().observe(t, DURATION_BUCKETS);
        }
    }

    /// A client connection was accepted.
    pub(crate) fn connection_opened(&self) {
        self.lock().open_connections += 1;
    }

    /// A client connection ended.
    pub(crate) fn connection_closed(&self) {
        self.lock().open_connections -= 1;
    }

    /// The server closed a connection that waited too long for a request.
    pub(crate) fn connection_expired(&self, why: super::server::Expiry) {
        *self.lock().expired.entry(why.as_str()).or_default() += 1;
    }

    /// The connection cap was reached.
    pub(crate) fn connection_limit_reached(&self) {
        self.lock().limit_reached += 1;
    }

    /// The text `/metrics` answers, with the pipeline's counters.
    pub fn render(&self, pipeline: &Counters) -> String {
        let m = self.lock();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP anosys_proxy_requests_total Requests answered, by route, method and status.");
        let _ = writeln!(out, "# TYPE anosys_proxy_requests_total counter");
        for ((route, method, status), n) in &m.requests {
            let _ = writeln!(
                out,
                "anosys_proxy_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        let _ = writeln!(out, "# HELP anosys_proxy_errors_total Failed calls, by route and error type.");
        let _ = writeln!(out, "# TYPE anosys_proxy_errors_total counter");
        for ((route, kind), n) in &m.errors {
            let _ = writeln!(out, "anosys_proxy_errors_total{{route=\"{}\",error_type=\"{}\"}} {n}", escape(route), escape(kind));
        }
        let _ = writeln!(out, "# HELP anosys_proxy_tokens_total Tokens reported by the upstream, by model and type.");
        let _ = writeln!(out, "# TYPE anosys_proxy_tokens_total counter");
        for ((model, kind), n) in &m.tokens {
            let _ = writeln!(out, "anosys_proxy_tokens_total{{model=\"{}\",type=\"{kind}\"}} {n}", escape(model));
        }
        for (name, help, hists) in [
            ("anosys_proxy_request_duration_seconds", "Time from request to the end of the response.", &m.duration),
            ("anosys_proxy_time_to_first_chunk_seconds", "Time from request to the first chunk of a stream.", &m.ttfc),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} histogram");
            for (route, h) in hists {
                let route = escape(route);
                for (i, b) in DURATION_BUCKETS.iter().enumerate() {
                    let _ = writeln!(out, "{name}_bucket{{route=\"{route}\",le=\"{}\"}} {}", number(*b), h.counts[i]);
                }
                let _ = writeln!(out, "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {}", number(h.sum));
                let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {}", h.count);
            }
        }
        let _ = writeln!(out, "# HELP anosys_proxy_in_flight_requests Requests being answered now.");
        let _ = writeln!(out, "# TYPE anosys_proxy_in_flight_requests gauge");
        let _ = writeln!(out, "anosys_proxy_in_flight_requests {}", m.in_flight);
        let _ = writeln!(out, "# HELP anosys_proxy_open_connections Client connections open now.");
        let _ = writeln!(out, "# TYPE anosys_proxy_open_connections gauge");
        let _ = writeln!(out, "anosys_proxy_open_connections {}", m.open_connections);
        let _ = writeln!(out, "# HELP anosys_proxy_connections_expired_total Connections the proxy closed while waiting for a request, by reason.");
        let _ = writeln!(out, "# TYPE anosys_proxy_connections_expired_total counter");
        for reason in ["header_timeout", "idle_timeout"] {
            let n = m.expired.get(reason).copied().unwrap_or(0);
            let _ = writeln!(out, "anosys_proxy_connections_expired_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP anosys_proxy_connection_limit_reached_total Times the cap on open connections was reached.");
        let _ = writeln!(out, "# TYPE anosys_proxy_connection_limit_reached_total counter");
        let _ = writeln!(out, "anosys_proxy_connection_limit_reached_total {}", m.limit_reached);
        for (name, help, v) in [
            ("anosys_records_captured_total", "Records handed to the pipeline.", pipeline.captured),
            ("anosys_records_delivered_total", "Records delivered by every sink.", pipeline.delivered),
            ("anosys_records_dropped_total", "Records dropped (queue full, a sink behind with no outbox).", pipeline.dropped),
            ("anosys_records_failed_total", "Records a sink refused for good.", pipeline.failed),
            ("anosys_records_kept_in_outbox_total", "Records kept in the durable outbox for later delivery.", pipeline.kept_in_outbox),
            ("anosys_outbox_delivered_total", "Records sent from the outbox.", pipeline.outbox_delivered),
            ("anosys_outbox_dropped_total", "Oldest records dropped from a full outbox.", pipeline.outbox_dropped),
            ("anosys_outbox_duplicates_total", "Records sent again after an unanswered attempt.", pipeline.duplicates),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        for (s, status) in [(0.015, 200), (0.5, 200), (100.0, 500)] {
            m.started();
            m.finished(Observation {
                route: "/".into(),
                method: "POST".into(),
                status,
                seconds: s,
                error: (status == 500).then(|| "server_error".into()),
                model: Some("gpt-4o".into()),
                tokens: (Some(10), Some(5)),
                time_to_first_chunk: None,
            });
        }
        let text = m.render(&Counters::default());
        assert!(text.contains("anosys_proxy_request_duration_seconds_bucket{route=\"/\",le=\"0.01\"} 0"), "{text}");
        assert!(text.contains("anosys_proxy_request_duration_seconds_bucket{route=\"/\",le=\"0.02\"} 1"));
        assert!(text.contains("anosys_proxy_request_duration_seconds_bucket{route=\"/\",le=\"0.64\"} 2"));
        assert!(text.contains("anosys_proxy_request_duration_seconds_bucket{route=\"/\",le=\"81.92\"} 2"));
        assert!(text.contains("anosys_proxy_request_duration_seconds_bucket{route=\"/\",le=\"+Inf\"} 3"));
        assert!(text.contains("anosys_proxy_request_duration_seconds_count{route=\"/\"} 3"));
        assert!(text.contains("anosys_proxy_requests_total{route=\"/\",method=\"POST\",status=\"200\"} 2"));
        assert!(text.contains("anosys_proxy_errors_total{route=\"/\",error_type=\"server_error\"} 1"));
        assert!(text.contains("anosys_proxy_tokens_total{model=\"gpt-4o\",type=\"input\"} 30"));
        assert!(text.contains("anosys_proxy_in_flight_requests 0"));
    }
}
