//! The OTLP sink: records as OpenTelemetry spans, to any OTLP backend (a
//! collector, Jaeger, Tempo, Honeycomb, Datadog…), over HTTP/protobuf or
//! gRPC with the `opentelemetry-otlp` exporter. Enable the `otlp` feature.
//!
//! Configuration follows the OpenTelemetry variables:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL; `/v1/traces` is added for HTTP)
//! or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is),
//! `OTEL_EXPORTER_OTLP_PROTOCOL` / `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`
//! (`http/protobuf`, the default, or `grpc`), and `OTEL_SERVICE_NAME`; the
//! exporter itself reads `OTEL_EXPORTER_OTLP_HEADERS` (and `_TRACES_`),
//! compression and timeout variables. See [`convert`] for how a record
//! becomes a span.
//!
//! A batch that fails is retried with backoff until the retry budget or
//! the shutdown deadline runs out, then kept in the fallback (the embedded
//! store), like the AnoSys sink. An HTTP 4xx other than 408 and 429 is not
//! retried.
//!
//! The LLM records also feed the GenAI client metrics (duration, token
//! usage, time to first chunk), sent to the same backend periodically and
//! at shutdown; see [`metrics`]. `OTEL_METRICS_EXPORTER=none` turns them
//! off.

pub mod convert;
pub mod metrics;

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_otlp::{Protocol, RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};

use super::{backoff, keep_in, BoxFuture, ExportContext, ExportReport, Sink};
use crate::config::{Config, OtlpProtocol};
use crate::diag::{self, LogLevel};
use crate::record::{Record, Resource};

/// Records as OTLP spans. See the [module docs](self).
///
/// ```
/// use anosys::sinks::OtlpSink;
/// let config = anosys::Config::builder().otlp_endpoint("http://127.0.0.1:4318").build()?;
/// let sink = OtlpSink::new(&config);
/// assert_eq!(sink.endpoint(), "http://127.0.0.1:4318/v1/traces");
/// # Ok::<(), anosys::ConfigError>(())
/// ```
pub struct OtlpSink {
    protocol: OtlpProtocol,
    endpoint: String,
    timeout: Duration,
    retry_max_elapsed: Duration,
    /// Built on first use, inside the pipeline's runtime (gRPC channels
    /// need one). Export calls never overlap, as the exporter requires.
    exporter: tokio::sync::Mutex<Option<Result<opentelemetry_otlp::SpanExporter, String>>>,
    fallback: Option<Arc<dyn Sink>>,
    scope: InstrumentationScope,
    /// The GenAI client metrics, unless turned off.
    metrics: Option<metrics::GenAiMetrics>,
}

impl std::fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSink").field("protocol", &self.protocol).field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

/// The URL of one signal (`traces`, `metrics`): its own endpoint as is
/// when set (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, …), else the base
/// endpoint (or the protocol's default), plus `/v1/{signal}` for HTTP.
pub(crate) fn signal_endpoint(config: &Config, own: Option<&str>, signal: &str) -> String {
    if let Some(full) = own {
        return full.to_owned();
    }
    let default_base = match config.otlp_protocol {
        OtlpProtocol::HttpProtobuf => "http://localhost:4318",
        OtlpProtocol::Grpc => "http://localhost:4317",
    };
    let base = config.otlp_endpoint.as_deref().unwrap_or(default_base).trim_end_matches('/');
    match config.otlp_protocol {
        OtlpProtocol::HttpProtobuf => format!("{base}/v1/{signal}"),
        OtlpProtocol::Grpc => base.to_owned(),
    }
}

/// Whether an export error is worth retrying.
fn retryable(message: &str) -> bool {
    // The HTTP exporter says "... failed with status code: 400".
    let status = message
        .rsplit("status code: ")
        .next()
        .filter(|_| message.contains("status code: "))
        .and_then(|s| s.trim().get(..3))
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(s) if (400..500).contains(&s) => s == 408 || s == 429,
        _ => {
            // gRPC codes that no retry fixes.
            let m = message.to_ascii_lowercase().replace([' ', '_'], "");
            !["invalidargument", "unauthenticated", "permissiondenied", "unimplemented"].iter().any(|c| m.contains(c))
        }
    }
}

impl OtlpSink {
    /// A sink for the OTLP settings in `config`. Nothing is connected until
    /// the first batch.
    pub fn new(config: &Config) -> OtlpSink {
        let endpoint = signal_endpoint(config, config.otlp_traces_endpoint.as_deref(), "traces");
        OtlpSink {
            protocol: config.otlp_protocol,
            endpoint,
            timeout: config.request_timeout,
            retry_max_elapsed: config.retry_max_elapsed,
            exporter: tokio::sync::Mutex::new(None),
            fallback: None,
            scope: convert::scope(),
            metrics: config.otlp_metrics.then(|| metrics::GenAiMetrics::new(config)),
        }
    }

    /// Keeps what cannot be delivered in `fallback` instead of dropping it.
    pub fn with_fallback(mut self, fallback: Arc<dyn Sink>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Where spans are sent.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The GenAI client metrics, unless `otlp_metrics` is off.
    pub fn metrics(&self) -> Option<&metrics::GenAiMetrics> {
        self.metrics.as_ref()
    }

    fn build(&self) -> Result<opentelemetry_otlp::SpanExporter, String> {
        let built = match self.protocol {
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(&self.endpoint)
                .with_timeout(self.timeout)
                // One retry policy, ours: it knows the budget, the shutdown
                // deadline and the fallback.
                .with_retry_policy(RetryPolicy::disabled())
                .build(),
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_protocol(Protocol::Grpc)
                .with_endpoint(&self.endpoint)
                .with_timeout(self.timeout)
                .with_retry_policy(RetryPolicy::disabled())
                .build(),
        };
        built.map_err(|e| e.to_string())
    }

    /// Sends one resource's spans, retrying; returns whether they were
    /// delivered, and how many retries it took.
    async fn send(
        &self,
        exporter: &mut opentelemetry_otlp::SpanExporter,
        resource: &Resource,
        spans: Vec<SpanData>,
        cx: &ExportContext,
    ) -> (Outcome, usize) {
        exporter.set_resource(&convert::resource(resource));
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let result = tokio::select! {
                r = exporter.export(spans.clone()) => r,
                _ = cx.deadline_passed() => return (Outcome::OutOfTime, attempt as usize),
            };
            let message = match result {
                Ok(()) => return (Outcome::Delivered, attempt as usize),
                Err(e) => e.to_string(),
            };
            if !retryable(&message) {
                diag::once(&format!("otlp-rejected-{message}"), LogLevel::Error, || {
                    format!("the OTLP endpoint {} refused spans ({message}); they are not retried", self.endpoint)
                });
                return (Outcome::Rejected, attempt as usize);
            }
            diag::log(LogLevel::Debug, &format!("OTLP export to {} failed: {message}", self.endpoint));
            let wait = backoff(attempt);
            let out_of_budget = started.elapsed() + wait > self.retry_max_elapsed;
            let past_deadline = cx.deadline().is_some_and(|d| Instant::now() + wait >= d);
            let wake = Instant::now() + wait;
            let out_of_time = out_of_budget
                || past_deadline
                // A shutdown began while waiting: go on only if its deadline
                // leaves room for another try.
                || (!cx.sleep(wait).await && cx.deadline().is_some_and(|d| wake >= d));
            if out_of_time {
                diag::once("otlp-unreachable", LogLevel::Error, || {
                    format!("the OTLP endpoint {} could not be reached in time ({message})", self.endpoint)
                });
                return (Outcome::OutOfTime, attempt as usize);
            }
            tokio::time::sleep_until(wake.into()).await;
            attempt += 1;
        }
    }
}

enum Outcome {
    Delivered,
    Rejected,
    OutOfTime,
}

impl Sink for OtlpSink {
    fn name(&self) -> &str {
        "otlp"
    }

    fn describe(&self) -> String {
        let protocol = match self.protocol {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::Grpc => "grpc",
        };
        let mut line = format!("records are exported as OTLP spans to {} ({protocol})", self.endpoint);
        if let Some(m) = &self.metrics {
            line += &format!(", GenAI client metrics to {} every {}", m.endpoint(), humantime::format_duration(m.interval()));
        }
        line
    }

    fn start(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(m) = &self.metrics {
                m.run().await;
            }
        })
    }

    fn export<'a>(&'a self, batch: &'a [Record], cx: ExportContext) -> BoxFuture<'a, ExportReport> {
        Box::pin(async move {
            if let Some(m) = &self.metrics {
                batch.iter().for_each(|r| m.record(r));
            }
            let mut report = ExportReport::default();
            let mut guard = self.exporter.lock().await;
            let exporter = match guard.get_or_insert_with(|| self.build()) {
                Ok(exporter) => exporter,
                Err(reason) => {
                    diag::once("otlp-build", LogLevel::Error, || {
                        format!("cannot set up OTLP export to {}: {reason}", self.endpoint)
                    });
                    keep_in(self.fallback.as_ref(), batch.to_vec(), cx, &mut report).await;
                    return report;
                }
            };
            // One export per resource (a batch nearly always has one).
            let empty = Arc::new(Resource::default());
            let mut groups: Vec<(Arc<Resource>, Vec<usize>)> = Vec::new();
            for (i, r) in batch.iter().enumerate() {
                let res = r.resource.as_ref().unwrap_or(&empty);
                match groups.iter_mut().find(|(g, _)| Arc::ptr_eq(g, res) || **g == **res) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((res.clone(), vec![i])),
                }
            }
            for (resource, members) in groups {
                let spans: Vec<SpanData> = members.iter().map(|&i| convert::span_data(&batch[i], &self.scope)).collect();
                let (outcome, retried) = self.send(exporter, &resource, spans, &cx).await;
                report.retried += retried * members.len();
                match outcome {
                    Outcome::Delivered => {}
                    Outcome::Rejected => report.failed += members.len(),
                    Outcome::OutOfTime => {
                        let records = members.iter().map(|&i| batch[i].clone()).collect();
                        keep_in(self.fallback.as_ref(), records, cx.clone(), &mut report).await;
                    }
                }
            }
            report
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(m) = &self.metrics {
                m.shutdown().await;
            }
            if let Some(Ok(exporter)) = self.exporter.lock().await.as_mut() {
                let _ = exporter.shutdown();
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_errors_are_retried() {
        assert!(!retryable("HTTP export failed with status code: 400"));
        assert!(!retryable("HTTP export failed with status code: 401"));
        assert!(retryable("HTTP export failed with status code: 429"));
        assert!(retryable("HTTP export failed with status code: 503"));
        assert!(retryable("HTTP export failed: network error"));
        assert!(!retryable("export error: status: Unauthenticated, message: \"bad key\""));
        assert!(!retryable("status: InvalidArgument, message: \"bad span\""));
        assert!(retryable("export error: status: Unavailable, message: \"connection refused\""));
    }
}
