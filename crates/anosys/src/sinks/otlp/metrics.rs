//! The OpenTelemetry GenAI client metrics (semantic conventions v1.41), sent
//! over OTLP next to the spans.
//!
//! Spans say what each call did; dashboards and alerts want aggregates:
//! latency percentiles, token spend, time to first chunk, per model and per
//! provider, without storing or scanning every span. So every LLM record
//! (`RecordKind::LlmCall`) the OTLP sink exports is also measured:
//!
//! | metric | unit | value |
//! |---|---|---|
//! | `gen_ai.client.operation.duration` | `s` | end time minus start time |
//! | `gen_ai.client.token.usage` | `{token}` | `gen_ai.usage.input_tokens` (`gen_ai.token.type = "input"`) and `gen_ai.usage.output_tokens` (`"output"`), when the record has them |
//! | `gen_ai.client.operation.time_to_first_chunk` | `s` | `gen_ai.response.time_to_first_chunk`, which only streamed calls have |
//! | `anosys.client.cost` | `USD` | `gen_ai.usage.cost`, the call's price as anosys computed it (a monotonic sum, not a histogram) |
//!
//! Each measurement carries, when the record has them,
//! `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
//! `gen_ai.response.model`, `server.address`, `server.port`, and (on
//! duration and time to first chunk, as the conventions list it)
//! `error.type` for a failed call. The histograms use the bucket boundaries
//! the conventions advise ([`DURATION_BOUNDARIES`], [`TOKEN_BOUNDARIES`]).
//!
//! The metrics have the spans' resource (the first LLM record's: one
//! process has one) and the instrumentation scope `anosys` with the crate
//! version. They are aggregated by the OpenTelemetry SDK with cumulative
//! temporality (the OTLP default) and read through a manual reader: no
//! thread of their own. The OTLP sink sends them with the
//! `opentelemetry-otlp` metric exporter on the pipeline's runtime, every
//! `OTEL_METRIC_EXPORT_INTERVAL` (see [`GenAiMetrics::run`]) and once more
//! at shutdown, so a short-lived process still delivers them. A failed
//! export is logged once and not retried: the next one carries the same
//! cumulative totals. `OTEL_METRICS_EXPORTER=none` turns the metrics off.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::MetricExporter;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter as _;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality};
use serde_json::Value;

use super::convert;
use super::transport::{LazyExporter, OtlpError, Transport};
use crate::config::Config;
use crate::diag::{self, LogLevel};
use crate::record::{Record, RecordKind, Resource, StatusCode};

/// Name of the operation duration histogram.
pub const OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// Name of the token usage histogram.
pub const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// Name of the time-to-first-chunk histogram (streamed calls).
pub const TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
/// Name of the cost counter (US dollars).
pub const COST: &str = "anosys.client.cost";

/// Bucket boundaries of the two duration histograms, in seconds, as the
/// GenAI conventions advise.
pub const DURATION_BOUNDARIES: [f64; 14] =
    [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

/// Bucket boundaries of the token usage histogram, as the GenAI
/// conventions advise.
pub const TOKEN_BOUNDARIES: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

/// Record attributes copied onto every measurement, when present.
const COMMON_ATTRIBUTES: [&str; 7] = [
    "gen_ai.operation.name",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.response.model",
    "server.address",
    "server.port",
    "error.type",
];

/// One of the GenAI client instruments: three histograms and the cost sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Instrument {
    /// `gen_ai.client.operation.duration`, seconds.
    OperationDuration,
    /// `gen_ai.client.token.usage`, tokens (an integer histogram).
    TokenUsage,
    /// `gen_ai.client.operation.time_to_first_chunk`, seconds.
    TimeToFirstChunk,
    /// `anosys.client.cost`, US dollars (a monotonic sum).
    Cost,
}

impl Instrument {
    /// The metric name.
    pub fn name(self) -> &'static str {
        match self {
            Instrument::OperationDuration => OPERATION_DURATION,
            Instrument::TokenUsage => TOKEN_USAGE,
            Instrument::TimeToFirstChunk => TIME_TO_FIRST_CHUNK,
            Instrument::Cost => COST,
        }
    }

    /// The UCUM unit: `s`, `{token}` or `USD`.
    pub fn unit(self) -> &'static str {
        match self {
            Instrument::TokenUsage => "{token}",
            Instrument::Cost => "USD",
            _ => "s",
        }
    }

    /// The explicit bucket boundaries (none for the cost sum).
    pub fn boundaries(self) -> &'static [f64] {
        match self {
            Instrument::TokenUsage => &TOKEN_BOUNDARIES,
            Instrument::Cost => &[],
            _ => &DURATION_BOUNDARIES,
        }
    }

    /// The description sent with the metric.
    pub fn description(self) -> &'static str {
        match self {
            Instrument::OperationDuration => "GenAI operation duration.",
            Instrument::TokenUsage => "Number of input and output tokens used.",
            Instrument::TimeToFirstChunk => "Time to receive the first chunk of a streamed GenAI response.",
            Instrument::Cost => "Cost of GenAI operations in US dollars, as priced by anosys.",
        }
    }
}

/// One value for one histogram, with its attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    /// The histogram it goes to.
    pub instrument: Instrument,
    /// Seconds, or a whole number of tokens.
    pub value: f64,
    /// The attributes of its data point.
    pub attributes: Vec<KeyValue>,
}

/// A count of tokens: a non-negative whole number (a float is rounded).
fn token_count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f.round() as u64))
}

fn seconds(v: &Value) -> Option<f64> {
    v.as_f64().filter(|s| s.is_finite() && *s >= 0.0)
}

/// The measurements one record gives: none unless it is an LLM call; else
/// its duration, its input and output token counts when it has them, and
/// its time to first chunk when it was streamed.
///
/// ```
/// use anosys::sinks::otlp::metrics::{measurements, Instrument};
/// use anosys::sources::openai::{CaptureOptions, OpenAiCall};
/// use opentelemetry::KeyValue;
/// use serde_json::json;
///
/// let request = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]});
/// let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", request, &CaptureOptions::default());
/// let record = call.finish(200, json!({
///     "model": "gpt-4o-mini-2024-07-18",
///     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
///     "usage": {"prompt_tokens": 8, "completion_tokens": 2}
/// }));
/// let m = measurements(&record);
/// let kinds: Vec<Instrument> = m.iter().map(|m| m.instrument).collect();
/// assert_eq!(kinds, [Instrument::OperationDuration, Instrument::TokenUsage, Instrument::TokenUsage]);
/// assert_eq!(m[1].value, 8.0);
/// assert!(m[1].attributes.contains(&KeyValue::new("gen_ai.token.type", "input")));
/// assert!(m[2].attributes.contains(&KeyValue::new("gen_ai.response.model", "gpt-4o-mini-2024-07-18")));
/// ```
pub fn measurements(record: &Record) -> Vec<Measurement> {
    if record.kind != RecordKind::LlmCall {
        return Vec::new();
    }
    let mut attributes: Vec<KeyValue> = Vec::with_capacity(COMMON_ATTRIBUTES.len() + 1);
    for key in COMMON_ATTRIBUTES {
        if let Some(v) = record.attribute(key).and_then(convert::value) {
            attributes.push(KeyValue::new(key, v));
        }
    }
    // A failed call without the attribute still says what failed.
    if record.attribute("error.type").is_none()
        && record.status.code == StatusCode::Error
        && let Some(e) = &record.error
    {
        attributes.push(KeyValue::new("error.type", e.error_type.clone()));
    }
    let mut out = Vec::with_capacity(4);
    if let Ok(d) = record.end_time.duration_since(record.start_time) {
        let value = d.as_secs_f64();
        out.push(Measurement { instrument: Instrument::OperationDuration, value, attributes: attributes.clone() });
    }
    for (key, kind) in [("gen_ai.usage.input_tokens", "input"), ("gen_ai.usage.output_tokens", "output")] {
        if let Some(n) = record.attribute(key).and_then(token_count) {
            // The conventions list no `error.type` on token usage.
            let mut attrs: Vec<KeyValue> = attributes.iter().filter(|kv| kv.key.as_str() != "error.type").cloned().collect();
            attrs.push(KeyValue::new("gen_ai.token.type", kind));
            out.push(Measurement { instrument: Instrument::TokenUsage, value: n as f64, attributes: attrs });
        }
    }
    if let Some(cost) = record.attribute("gen_ai.usage.cost").and_then(Value::as_f64).filter(|c| c.is_finite() && *c >= 0.0) {
        let attrs: Vec<KeyValue> = attributes.iter().filter(|kv| kv.key.as_str() != "error.type").cloned().collect();
        out.push(Measurement { instrument: Instrument::Cost, value: cost, attributes: attrs });
    }
    if let Some(s) = record.attribute("gen_ai.response.time_to_first_chunk").and_then(seconds) {
        out.push(Measurement { instrument: Instrument::TimeToFirstChunk, value: s, attributes });
    }
    out
}

/// A [`ManualReader`] shared with the meter provider, so that
/// [`GenAiMetrics`] keeps a handle to collect from (the provider takes its
/// readers by value).
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }

    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// The meter provider and its histograms, made with the first LLM record.
struct Instruments {
    provider: SdkMeterProvider,
    reader: SharedReader,
    duration: Histogram<f64>,
    tokens: Histogram<u64>,
    time_to_first_chunk: Histogram<f64>,
    cost: Counter<f64>,
}

impl Instruments {
    fn new(resource: &Resource, scope: InstrumentationScope) -> Instruments {
        let reader = SharedReader(Arc::new(ManualReader::builder().with_temporality(Temporality::Cumulative).build()));
        let provider = SdkMeterProvider::builder()
            .with_resource(convert::resource(resource))
            .with_reader(reader.clone())
            .build();
        let meter = provider.meter_with_scope(scope);
        let f64_histogram = |i: Instrument| {
            meter
                .f64_histogram(i.name())
                .with_unit(i.unit())
                .with_description(i.description())
                .with_boundaries(i.boundaries().to_vec())
                .build()
        };
        let duration = f64_histogram(Instrument::OperationDuration);
        let time_to_first_chunk = f64_histogram(Instrument::TimeToFirstChunk);
        let t = Instrument::TokenUsage;
        let tokens = meter
            .u64_histogram(t.name())
            .with_unit(t.unit())
            .with_description(t.description())
            .with_boundaries(t.boundaries().to_vec())
            .build();
        let c = Instrument::Cost;
        let cost = meter.f64_counter(c.name()).with_unit(c.unit()).with_description(c.description()).build();
        Instruments { provider, reader, duration, tokens, time_to_first_chunk, cost }
    }
}

/// The GenAI client metrics of the LLM records one OTLP sink exports, and
/// their export. See the [module docs](self).
///
/// [`record`](Self::record) measures a record (cheap, no I/O);
/// [`run`](Self::run) exports periodically and [`shutdown`](Self::shutdown)
/// exports once more, both on the caller's Tokio runtime.
///
/// ```
/// use anosys::sinks::otlp::metrics::GenAiMetrics;
/// let config = anosys::Config::builder().otlp_endpoint("http://127.0.0.1:4318").build()?;
/// let metrics = GenAiMetrics::new(&config);
/// assert_eq!(metrics.endpoint(), "http://127.0.0.1:4318/v1/metrics");
/// assert!(!metrics.has_measured());
/// # Ok::<(), anosys::ConfigError>(())
/// ```
pub struct GenAiMetrics {
    transport: Transport,
    interval: Duration,
    scope: InstrumentationScope,
    instruments: OnceLock<Instruments>,
    /// Held across collect and send, so exports never overlap and arrive
    /// in order.
    exporter: LazyExporter<MetricExporter>,
    closed: AtomicBool,
}

impl std::fmt::Debug for GenAiMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenAiMetrics")
            .field("protocol", &self.transport.protocol)
            .field("endpoint", &self.transport.endpoint)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl GenAiMetrics {
    /// Metrics for the OTLP settings in `config`: the protocol of the
    /// spans, `otlp_metrics_endpoint` as is, else the base endpoint (plus
    /// `/v1/metrics` for HTTP), exported every
    /// `otlp_metric_export_interval`. Nothing is built or connected until
    /// the first LLM record and the first export.
    pub fn new(config: &Config) -> GenAiMetrics {
        GenAiMetrics {
            transport: Transport::new(config, config.otlp_metrics_endpoint.as_deref(), "metrics"),
            interval: config.otlp_metric_export_interval,
            scope: convert::scope(),
            instruments: OnceLock::new(),
            exporter: LazyExporter::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Where metrics are sent.
    pub fn endpoint(&self) -> &str {
        &self.transport.endpoint
    }

    /// Time between two periodic exports.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether an LLM record has been measured yet (before that, nothing is
    /// exported).
    pub fn has_measured(&self) -> bool {
        self.instruments.get().is_some()
    }

    /// Measures one record (see [`measurements`]); anything but an LLM
    /// call is ignored. The first LLM record's resource becomes the
    /// metrics' resource.
    pub fn record(&self, record: &Record) {
        let measured = measurements(record);
        if measured.is_empty() {
            return;
        }
        let instruments = self.instruments.get_or_init(|| {
            let resource = record.resource.as_deref().cloned().unwrap_or_default();
            Instruments::new(&resource, self.scope.clone())
        });
        for m in measured {
            match m.instrument {
                Instrument::OperationDuration => instruments.duration.record(m.value, &m.attributes),
                Instrument::TokenUsage => instruments.tokens.record(m.value as u64, &m.attributes),
                Instrument::TimeToFirstChunk => instruments.time_to_first_chunk.record(m.value, &m.attributes),
                Instrument::Cost => instruments.cost.add(m.value, &m.attributes),
            }
        }
    }

    /// Collects the totals so far and sends them, once. Returns how many
    /// metrics were sent (0 before the first LLM record), or why they were
    /// not (also logged, once).
    pub async fn export(&self) -> Result<usize, OtlpError> {
        let Some(instruments) = self.instruments.get() else {
            return Ok(0);
        };
        let endpoint = &self.transport.endpoint;
        let exporter = match self.exporter.lock(|| self.transport.metric_exporter()).await {
            Ok(exporter) => exporter,
            Err(error) => {
                diag::once("otlp-metrics-build", LogLevel::Error, || {
                    format!("cannot set up the export of GenAI metrics to {endpoint}: {}", diag::chain(&error))
                });
                return Err(error);
            }
        };
        let mut rm = ResourceMetrics::default();
        if let Err(e) = instruments.reader.collect(&mut rm) {
            let error = OtlpError::Collect(Arc::new(e));
            diag::log(LogLevel::Debug, &diag::chain(&error));
            return Err(error);
        }
        let count: usize = rm.scope_metrics().map(|s| s.metrics().count()).sum();
        if count == 0 {
            return Ok(0);
        }
        match exporter.export(&rm).await {
            Ok(()) => Ok(count),
            Err(e) => {
                let error = OtlpError::Export(Arc::new(e));
                let reason = diag::chain(&error);
                diag::once("otlp-metrics-export", LogLevel::Warn, || {
                    format!("GenAI metrics could not be sent to {endpoint} ({reason}); the next export carries the same totals")
                });
                diag::log(LogLevel::Debug, &format!("OTLP metrics export to {endpoint} failed: {reason}"));
                Err(error)
            }
        }
    }

    /// Exports every [`interval`](Self::interval) until
    /// [`shutdown`](Self::shutdown) (the first export one interval after
    /// the call). Spawn it on the runtime the exports should use.
    pub async fn run(&self) {
        let start = tokio::time::Instant::now() + self.interval;
        let mut ticks = tokio::time::interval_at(start, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let _ = self.export().await;
        }
    }

    /// The last export, then the exporter and meter provider are closed;
    /// later calls do nothing.
    pub async fn shutdown(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.export().await;
        if let Some(instruments) = self.instruments.get() {
            let _ = instruments.provider.shutdown();
        }
        if let Some(exporter) = self.exporter.built().await {
            let _ = exporter.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OtlpProtocol;
    use crate::record::ErrorInfo;
    use serde_json::json;

    fn llm() -> Record {
        let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o");
        r.set_attribute("gen_ai.operation.name", "chat");
        r.set_attribute("gen_ai.provider.name", "openai");
        r.set_attribute("gen_ai.request.model", "gpt-4o");
        r.set_attribute("server.port", 443);
        r
    }

    fn has(m: &Measurement, key: &str, value: impl Into<opentelemetry::Value>) -> bool {
        m.attributes.contains(&KeyValue::new(key.to_owned(), value.into()))
    }

    #[test]
    fn only_llm_records_are_measured() {
        assert!(measurements(&Record::new(RecordKind::FunctionCall, "f")).is_empty());
        let m = measurements(&llm());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].instrument, Instrument::OperationDuration);
        assert!(has(&m[0], "server.port", 443i64));
        assert!(!m[0].attributes.iter().any(|kv| kv.key.as_str() == "gen_ai.response.model"));
    }

    #[test]
    fn tokens_time_to_first_chunk_and_errors() {
        let mut r = llm();
        r.set_attribute("gen_ai.usage.input_tokens", 12);
        r.set_attribute("gen_ai.usage.output_tokens", 3.0);
        r.set_attribute("gen_ai.response.time_to_first_chunk", 0.25);
        r.fail(ErrorInfo { error_type: "timeout".into(), message: "too slow".into(), stack: None });
        let m = measurements(&r);
        let tokens: Vec<_> = m.iter().filter(|m| m.instrument == Instrument::TokenUsage).collect();
        assert_eq!(tokens.len(), 2);
        assert!(tokens[0].value == 12.0 && has(tokens[0], "gen_ai.token.type", "input"));
        assert!(tokens[1].value == 3.0 && has(tokens[1], "gen_ai.token.type", "output"));
        let ttfc = m.iter().find(|m| m.instrument == Instrument::TimeToFirstChunk).unwrap();
        assert_eq!(ttfc.value, 0.25);
        let timed: Vec<_> = m.iter().filter(|m| m.instrument != Instrument::TokenUsage).collect();
        assert!(timed.iter().all(|m| has(m, "error.type", "timeout")));
        assert!(tokens.iter().all(|m| !m.attributes.iter().any(|kv| kv.key.as_str() == "error.type")));
        // The attribute wins over the error's type.
        r.set_attribute("error.type", "rate_limit_exceeded");
        let m = measurements(&r);
        let timed: Vec<_> = m.iter().filter(|m| m.instrument != Instrument::TokenUsage).collect();
        assert!(timed.iter().all(|m| has(m, "error.type", "rate_limit_exceeded") && !has(m, "error.type", "timeout")));
        r.set_attribute("gen_ai.usage.input_tokens", json!(-1));
        assert_eq!(measurements(&r).iter().filter(|m| m.instrument == Instrument::TokenUsage).count(), 1);
    }

    #[test]
    fn instruments_describe_the_conventions() {
        assert_eq!(Instrument::TokenUsage.unit(), "{token}");
        assert_eq!(Instrument::TimeToFirstChunk.boundaries(), &DURATION_BOUNDARIES);
        assert_eq!(TOKEN_BOUNDARIES[13], (1u64 << 26) as f64);
    }

    #[test]
    fn endpoints_mirror_the_traces_ones() {
        let c = Config::builder().otlp_endpoint("http://collector:4317/").otlp_protocol(OtlpProtocol::Grpc);
        let c = c.build().unwrap();
        assert_eq!(GenAiMetrics::new(&c).endpoint(), "http://collector:4317");
        let c = Config::builder().otlp_metrics_endpoint("http://m:9/x").build().unwrap();
        assert_eq!(GenAiMetrics::new(&c).endpoint(), "http://m:9/x");
        assert_eq!(GenAiMetrics::new(&Config::default()).endpoint(), "http://localhost:4318/v1/metrics");
    }

    #[test]
    fn collects_with_the_first_records_resource() {
        let metrics = GenAiMetrics::new(&Config::default());
        let mut r = llm();
        let attributes = [("service.name".into(), json!("svc"))].into_iter().collect();
        r.resource = Some(Arc::new(Resource { attributes }));
        metrics.record(&r);
        metrics.record(&llm());
        let mut rm = ResourceMetrics::default();
        metrics.instruments.get().unwrap().reader.collect(&mut rm).unwrap();
        assert_eq!(rm.resource().get(&opentelemetry::Key::from("service.name")), Some("svc".into()));
        let scope = rm.scope_metrics().next().unwrap();
        assert_eq!(scope.scope().name(), "anosys");
        assert_eq!(scope.metrics().map(|m| m.name()).collect::<Vec<_>>(), [OPERATION_DURATION]);
    }
}
