//! The OTLP sink: records as OpenTelemetry spans, to any OTLP backend (a
//! collector, Jaeger, Tempo, Honeycomb, Datadog…), over HTTP/protobuf or
//! gRPC with the `opentelemetry-otlp` exporter. Enable the `otlp` feature.
//!
//! Configuration follows the OpenTelemetry variables:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (base URL; `/v1/traces` is added for HTTP)
//! or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is),
//! `OTEL_EXPORTER_OTLP_PROTOCOL` / `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`
//! (`http/protobuf`, the default, or `grpc`), `OTEL_EXPORTER_OTLP_HEADERS`
//! (or `_TRACES_HEADERS`) and `OTEL_SERVICE_NAME`, all read by
//! [`Config`]; the exporter itself also reads its compression variables.
//! See [`convert`] for how a record becomes a span.
//!
//! One attempt per export, like the AnoSys sink: spans that could not be
//! delivered for a reason that may pass are reported for another try, and
//! the pipeline keeps them in the durable outbox and sends them again with
//! backoff. An HTTP 4xx other than 408 and 429 (or a gRPC status no retry
//! fixes) is refused for good. Each span keeps its trace and span id on
//! every delivery, so a backend can drop a duplicate.
//!
//! The LLM records also feed the GenAI client metrics (duration, token
//! usage, time to first chunk), sent to the same backend periodically and
//! at shutdown; see [`metrics`]. `OTEL_METRICS_EXPORTER=none` turns them
//! off.

pub mod convert;
pub mod metrics;
mod transport;

pub use transport::OtlpError;

use std::sync::Arc;

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use transport::{LazyExporter, Transport};

use super::{BoxFuture, Destination, ExportContext, ExportReport, Sink};
use crate::config::Config;
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
    transport: Transport,
    exporter: LazyExporter<opentelemetry_otlp::SpanExporter>,
    scope: InstrumentationScope,
    /// The GenAI client metrics, unless turned off.
    metrics: Option<metrics::GenAiMetrics>,
}

impl std::fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSink").field("protocol", &self.transport.protocol).field("endpoint", &self.transport.endpoint).finish_non_exhaustive()
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
        OtlpSink {
            transport: Transport::new(config, config.otlp_traces_endpoint.as_deref(), "traces"),
            exporter: LazyExporter::new(),
            scope: convert::scope(),
            metrics: config.otlp_metrics.then(|| metrics::GenAiMetrics::new(config)),
        }
    }

    /// Where spans are sent.
    pub fn endpoint(&self) -> &str {
        &self.transport.endpoint
    }

    /// The GenAI client metrics, unless `otlp_metrics` is off.
    pub fn metrics(&self) -> Option<&metrics::GenAiMetrics> {
        self.metrics.as_ref()
    }

    /// Sends one resource's spans, once.
    async fn send(
        &self,
        exporter: &mut opentelemetry_otlp::SpanExporter,
        resource: &Resource,
        spans: Vec<SpanData>,
        cx: &ExportContext,
    ) -> Outcome {
        exporter.set_resource(&convert::resource(resource));
        let result = tokio::select! {
            r = exporter.export(spans) => r,
            _ = cx.deadline_passed() => return Outcome::Retry { uncertain: true },
        };
        let message = match result {
            Ok(()) => return Outcome::Delivered,
            Err(e) => e.to_string(),
        };
        if !retryable(&message) {
            diag::once(&format!("otlp-rejected-{message}"), LogLevel::Error, || {
                format!("the OTLP endpoint {} refused spans ({message}); they are not retried", self.transport.endpoint)
            });
            return Outcome::Rejected;
        }
        diag::log(LogLevel::Debug, &format!("OTLP export to {} failed: {message}", self.transport.endpoint));
        let lower = message.to_ascii_lowercase();
        let uncertain = lower.contains("timeout") || lower.contains("timed out") || lower.contains("deadline");
        Outcome::Retry { uncertain }
    }
}

enum Outcome {
    Delivered,
    Rejected,
    Retry { uncertain: bool },
}

impl Sink for OtlpSink {
    fn name(&self) -> &str {
        "otlp"
    }

    fn describe(&self) -> String {
        let mut line =
            format!("records are exported as OTLP spans to {} ({})", self.transport.endpoint, self.transport.protocol);
        if let Some(m) = &self.metrics {
            line += &format!(", GenAI client metrics to {} every {}", m.endpoint(), humantime::format_duration(m.interval()));
        }
        line
    }

    fn destination(&self) -> Option<Destination> {
        let t = &self.transport;
        let identity = format!("{}\n{}\n{:?}", t.endpoint, t.protocol, t.headers);
        Some(Destination::new("otlp", &identity, format!("OTLP at {} ({})", t.endpoint, t.protocol)))
    }

    fn start(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(m) = &self.metrics {
                m.run().await;
            }
        })
    }

    fn observe(&self, records: &[&Record]) {
        if let Some(m) = &self.metrics {
            records.iter().for_each(|r| m.record(r));
        }
    }

    fn export<'a>(&'a self, batch: &'a [Record], cx: ExportContext) -> BoxFuture<'a, ExportReport> {
        Box::pin(async move {
            let mut report = ExportReport::default();
            let mut exporter = match self.exporter.lock(|| self.transport.span_exporter()).await {
                Ok(exporter) => exporter,
                Err(error) => {
                    diag::once("otlp-build", LogLevel::Error, || {
                        format!("cannot set up OTLP export to {}: {}", self.transport.endpoint, diag::chain(&error))
                    });
                    return ExportReport::retry_all(batch.len());
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
                match self.send(&mut exporter, &resource, spans, &cx).await {
                    Outcome::Delivered => {}
                    Outcome::Rejected => report.failed += members.len(),
                    Outcome::Retry { uncertain } => {
                        if uncertain {
                            report.uncertain.extend(&members);
                        }
                        report.retry.extend(members);
                    }
                }
            }
            report.retry.sort_unstable();
            report.uncertain.sort_unstable();
            report
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(m) = &self.metrics {
                m.shutdown().await;
            }
            if let Some(exporter) = self.exporter.built().await {
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
