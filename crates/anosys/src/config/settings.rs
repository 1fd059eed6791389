//! Every setting, defined once: its name (the builder method and the
//! getter), type, default, environment variable, the kind of value it takes
//! (which parses and range-checks it on both the builder and the
//! environment path), its documented default and one line of doc. The
//! `Config` struct, its `Default`, the getters, the builder's setters, the
//! [`env`](mod@env) constants, the environment reader, the checks and the README's
//! table all come from this list (see `define.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::define::{check_setting, parse_setting, settings, typed, Setting};
use super::error::ConfigError;
use super::kinds::*;
use super::types::{ApiKey, OtlpProtocol, SinkKind, SinkSelection, StartingIndices};
use super::ConfigBuilder;
use crate::diag::LogLevel;

/// Default key resolver.
pub const DEFAULT_RESOLVER_URL: &str = "https://console.anosys.ai/api/resolveapikeys";
/// Default file of the JSON-lines sink, relative to the working directory.
pub const DEFAULT_JSONL_PATH: &str = ".anosys/records.jsonl";
/// Default file of the SQLite store, relative to the working directory.
pub const DEFAULT_DB_PATH: &str = ".anosys/anosys.db";

settings! {
    /// Everything a pipeline needs. Build it with [`Config::builder`] or
    /// [`Config::from_env`]; read it with the getters. Every setting has a
    /// builder method and an environment variable, and both accept the same
    /// values ([`Config::validate`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = anosys::Config::builder()
    ///     .api_url("http://127.0.0.1:9/log")
    ///     .queue_size(10_000)
    ///     .flush_interval(Duration::from_millis(200))
    ///     .build()?;
    /// assert_eq!(config.queue_size(), 10_000);
    /// assert!(anosys::Config::builder().queue_size(0).build().is_err());
    /// # Ok::<(), anosys::ConfigError>(())
    /// ```
    pub struct Config;

    /// AnoSys API key, resolved in the background to the log URL
    api_key: Option<ApiKey> = None;
        env ANOSYS_API_KEY; kind Optional(Secret); shown "none";
        set(key: impl Into<String>) = Some(ApiKey::new(key));
        get(c) -> Option<&ApiKey> = c.api_key.as_ref();

    /// AnoSys log URL; wins over the key
    api_url: Option<String> = None;
        env ANOSYS_API_URL; kind Optional(Url); shown "none";
        set(url: impl Into<String>) = Some(url.into());
        get(c) -> Option<&str> = c.api_url.as_deref();

    /// the key resolver (`GET {url}?apikey=…`, answering `apiUrl`, else `url`)
    resolver_url: String = DEFAULT_RESOLVER_URL.to_owned();
        env ANOSYS_RESOLVER_URL; kind Url; shown "`https://console.anosys.ai/api/resolveapikeys`";
        set(url: impl Into<String>) = url.into();
        get(c) -> &str = &c.resolver_url;

    /// anosys's own messages on stderr: `off`, `error`, `warn`, `info`, `debug`
    log_level: LogLevel = LogLevel::Info;
        env ANOSYS_LOG_LEVEL; kind Level; shown "`info`";
        set(level: LogLevel) = level;
        get(c) -> LogLevel = c.log_level;

    /// capture prompts, replies, inputs and outputs (`true`/`false`)
    capture_content: bool = true;
        env ANOSYS_CAPTURE_CONTENT; kind Flag; shown "`true`";
        set(on: bool) = on;
        get(c) -> bool = c.capture_content;

    /// leave out inputs (the request or arguments, input messages and system instructions), as OpenInference's variable says
    hide_inputs: bool = false;
        env OPENINFERENCE_HIDE_INPUTS; kind Flag; shown "`false`";
        set(on: bool) = on;
        get(c) -> bool = c.hide_inputs;

    /// leave out outputs (the reply or return value, output messages)
    hide_outputs: bool = false;
        env OPENINFERENCE_HIDE_OUTPUTS; kind Flag; shown "`false`";
        set(on: bool) = on;
        get(c) -> bool = c.hide_outputs;

    /// leave out the input messages and system instructions of LLM calls
    hide_input_messages: bool = false;
        env OPENINFERENCE_HIDE_INPUT_MESSAGES; kind Flag; shown "`false`";
        set(on: bool) = on;
        get(c) -> bool = c.hide_input_messages;

    /// leave out the output messages of LLM calls
    hide_output_messages: bool = false;
        env OPENINFERENCE_HIDE_OUTPUT_MESSAGES; kind Flag; shown "`false`";
        set(on: bool) = on;
        get(c) -> bool = c.hide_output_messages;

    /// which secrets are redacted from every record before any sink sees it: `off`, or a comma list over the defaults (`default,email,-credit_card`; kinds: `openai_key`, `anthropic_key`, `google_api_key`, `aws_access_key`, `github_token`, `slack_token`, `bearer_token`, `jwt`, `private_key`, `url_password`, `credit_card`, `secret_key`, opt-in `email`, `phone`, `ip`; `all`, `none`)
    redact: Option<String> = None;
        env ANOSYS_REDACT; kind Optional(Text); shown "the default kinds";
        set(kinds: impl Into<String>) = Some(kinds.into());
        get(c) -> Option<&str> = c.redact.as_deref();

    /// more secrets to redact: a JSON object of names to regular expressions (`{"employee_id": "EMP-[0-9]{6}"}`)
    redact_patterns: Option<String> = None;
        env ANOSYS_REDACT_PATTERNS; kind Optional(Text); shown "none";
        set(patterns: impl Into<String>) = Some(patterns.into());
        get(c) -> Option<&str> = c.redact_patterns.as_deref();

    /// a price file in LiteLLM's schema whose models add to or replace the built-in prices (negotiated prices, fine-tunes); see `anosys prices`
    prices: Option<PathBuf> = None;
        env ANOSYS_PRICES; kind Optional(FilePath); shown "none";
        set(path: impl Into<PathBuf>) = Some(path.into());
        get(c) -> Option<&Path> = c.prices.as_deref();

    /// share of traces kept, from 0 to 1, chosen by trace id as OpenTelemetry's `traceidratio` does (the same traces in every process); when unset, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` are read
    sample_rate: f64 = 1.0;
        env ANOSYS_SAMPLE_RATE; kind Ratio; shown "`1`";
        set(rate: f64) = rate;
        get(c) -> f64 = c.sample_rate;

    /// keep every trace with an error, whatever the sample rate
    keep_errors: bool = true;
        env ANOSYS_KEEP_ERRORS; kind Flag; shown "`true`";
        set(on: bool) = on;
        get(c) -> bool = c.keep_errors;

    /// keep every trace with a record slower than this, in milliseconds, whatever the sample rate
    keep_slower_than: Option<Duration> = None;
        env ANOSYS_KEEP_SLOWER_THAN_MS; kind Optional(Millis(0, 86_400_000)); shown "none";
        set(duration: Duration) = Some(duration);
        get(c) -> Option<Duration> = c.keep_slower_than;

    /// keep every trace whose LLM calls cost more than this many US dollars in all, whatever the sample rate
    keep_costlier_than: Option<f64> = None;
        env ANOSYS_KEEP_COSTLIER_THAN_USD; kind Optional(Usd); shown "none";
        set(usd: f64) = Some(usd);
        get(c) -> Option<f64> = c.keep_costlier_than;

    /// records waiting for delivery before new ones are dropped (and counted)
    queue_size: usize = 4096;
        env ANOSYS_QUEUE_SIZE; kind Count(1, 10_000_000); shown "`4096`";
        set(records: usize) = records;
        get(c) -> usize = c.queue_size;

    /// approximate bytes of records held in memory (queue and sinks' buffers) before new ones are dropped (and counted)
    queue_max_bytes: usize = 64 * 1024 * 1024;
        env ANOSYS_QUEUE_MAX_BYTES; kind Count(64 * 1024, 1 << 40); shown "`67108864`";
        set(bytes: usize) = bytes;
        get(c) -> usize = c.queue_max_bytes;

    /// bytes the outbox (records waiting on disk for a remote sink) may hold before its oldest are dropped (and counted); `0` turns it off
    outbox_max_bytes: usize = 1024 * 1024 * 1024;
        env ANOSYS_OUTBOX_MAX_BYTES; kind Count(0, 1 << 44); shown "`1073741824`";
        set(bytes: usize) = bytes;
        get(c) -> usize = c.outbox_max_bytes;

    /// write every batch for a remote sink to the outbox before sending it (and remove it once delivered), so that a `kill -9` loses only records not yet handed to the sinks; `anosys proxy` turns it on unless this is set
    outbox_write_ahead: bool = false;
        env ANOSYS_OUTBOX_WRITE_AHEAD; kind Flag; shown "`false`";
        set(on: bool) = on;
        get(c) -> bool = c.outbox_write_ahead;

    /// records handed to the sinks at once
    batch_size: usize = 256;
        env ANOSYS_BATCH_SIZE; kind Count(1, 100_000); shown "`256`";
        set(records: usize) = records;
        get(c) -> usize = c.batch_size;

    /// approximate encoded bytes of one batch
    max_batch_bytes: usize = 8 * 1024 * 1024;
        env ANOSYS_MAX_BATCH_BYTES; kind Count(1024, 1 << 30); shown "`8388608`";
        set(bytes: usize) = bytes;
        get(c) -> usize = c.max_batch_bytes;

    /// longest a record waits for its batch to fill, in milliseconds
    flush_interval: Duration = Duration::from_millis(1000);
        env ANOSYS_FLUSH_INTERVAL_MS; kind Millis(1, 3_600_000); shown "`1000`";
        set(interval: Duration) = interval;
        get(c) -> Duration = c.flush_interval;

    /// cap on one attribute's encoded size, cut with a visible marker
    max_attribute_bytes: usize = 64 * 1024;
        env ANOSYS_MAX_ATTRIBUTE_BYTES; kind Count(256, 1 << 30); shown "`65536`";
        set(bytes: usize) = bytes;
        get(c) -> usize = c.max_attribute_bytes;

    /// `auto`, or a comma list of `anosys`, `sqlite`, `jsonl`, `stdout`, `otlp` (see below)
    sinks: SinkSelection = SinkSelection::Auto;
        env ANOSYS_SINKS; kind Sinks; shown "`auto`";
        set(sinks: impl IntoIterator<Item = SinkKind>) = SinkSelection::Only(sinks.into_iter().collect());
        get(c) -> &SinkSelection = &c.sinks;

    /// the embedded SQLite store (the default sink)
    db_path: PathBuf = PathBuf::from(DEFAULT_DB_PATH);
        env ANOSYS_DB; kind FilePath; shown "`.anosys/anosys.db`";
        set(path: impl Into<PathBuf>) = path.into();
        get(c) -> &Path = &c.db_path;

    /// file of the JSON-lines sink
    jsonl_path: PathBuf = PathBuf::from(DEFAULT_JSONL_PATH);
        env ANOSYS_JSONL_PATH; kind FilePath; shown "`.anosys/records.jsonl`";
        set(path: impl Into<PathBuf>) = path.into();
        get(c) -> &Path = &c.jsonl_path;

    /// concurrent POSTs to AnoSys
    max_in_flight: usize = 8;
        env ANOSYS_MAX_IN_FLIGHT; kind Count(1, 1024); shown "`8`";
        set(requests: usize) = requests;
        get(c) -> usize = c.max_in_flight;

    /// one HTTP request's timeout, in milliseconds
    request_timeout: Duration = Duration::from_secs(10);
        env ANOSYS_TIMEOUT_MS; kind Millis(1, 600_000); shown "`10000`";
        set(timeout: Duration) = timeout;
        get(c) -> Duration = c.request_timeout;

    /// how long a remote sink retries a batch in memory when the outbox cannot keep it (off, or its store unwritable), in milliseconds
    retry_max_elapsed: Duration = Duration::from_secs(60);
        env ANOSYS_RETRY_MAX_ELAPSED_MS; kind Millis(0, 86_400_000); shown "`60000`";
        set(elapsed: Duration) = elapsed;
        get(c) -> Duration = c.retry_max_elapsed;

    /// how long exit, a dropped guard and `flush(None)` wait for delivery, in milliseconds
    shutdown_timeout: Duration = Duration::from_secs(5);
        env ANOSYS_SHUTDOWN_TIMEOUT_MS; kind Millis(0, 600_000); shown "`5000`";
        set(timeout: Duration) = timeout;
        get(c) -> Duration = c.shutdown_timeout;

    /// first dynamic `cvs`/`cvn`/`cvb` slots of the AnoSys encoding
    starting_indices: StartingIndices = StartingIndices::default();
        env ANOSYS_STARTING_INDICES; kind Indices; shown "`string=100,number=3,bool=1`";
        set(indices: StartingIndices) = indices;
        get(c) -> StartingIndices = c.starting_indices;

    /// a passphrase: the AnoSys sink then encrypts the content columns of each body (AES-256-CBC under its SHA-256, sent as `enc:` and Base64), as the original AnoSys SDKs do; `null`, `none` and `undefined` mean unset
    encryption_key: Option<ApiKey> = None;
        env ANOSYS_ENCRYPTION_KEY; kind Optional(Secret); shown "none";
        set(passphrase: impl Into<String>) = Some(ApiKey::new(passphrase));
        get(c) -> Option<&ApiKey> = c.encryption_key.as_ref();

    /// the AnoSys columns encrypted when `encryption_key` is set, comma-separated (the original SDKs' other spelling, `ANOSYS_ENCRYPTES_COLUMNS`, is read when this is unset)
    encrypted_columns: Option<String> = None;
        env ANOSYS_ENCRYPTED_COLUMNS; kind Optional(Text); shown "the content columns (`llm_input`, `llm_output`, the GenAI messages, `raw`, …)";
        set(columns: impl Into<String>) = Some(columns.into());
        get(c) -> Option<&str> = c.encrypted_columns.as_deref();

    /// `service.name` of the resource
    service_name: Option<String> = None;
        env OTEL_SERVICE_NAME; kind Optional(Text); shown "the executable's name";
        set(name: impl Into<String>) = Some(name.into());
        get(c) -> Option<&str> = c.service_name.as_deref();

    /// more resource attributes, `key=value,…` (`service.version=1.4.2`); `service_name` wins over a `service.name` here
    resource_attributes: Vec<(String, String)> = Vec::new();
        env OTEL_RESOURCE_ATTRIBUTES; kind ResourceAttributes; shown "none";
        set(attributes: impl IntoIterator<Item = (String, String)>) = attributes.into_iter().collect();
        get(c) -> &[(String, String)] = &c.resource_attributes;

    /// OTLP base URL (feature `otlp`); `/v1/traces` and `/v1/metrics` are added for HTTP
    otlp_endpoint: Option<String> = None;
        env OTEL_EXPORTER_OTLP_ENDPOINT; kind Optional(Url); shown "none";
        set(url: impl Into<String>) = Some(url.into());
        get(c) -> Option<&str> = c.otlp_endpoint.as_deref();

    /// OTLP traces URL, used as is
    otlp_traces_endpoint: Option<String> = None;
        env OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; kind Optional(Url); shown "none";
        set(url: impl Into<String>) = Some(url.into());
        get(c) -> Option<&str> = c.otlp_traces_endpoint.as_deref();

    /// OTLP metrics URL, used as is (by default the base URL, plus `/v1/metrics` for HTTP)
    otlp_metrics_endpoint: Option<String> = None;
        env OTEL_EXPORTER_OTLP_METRICS_ENDPOINT; kind Optional(Url); shown "none";
        set(url: impl Into<String>) = Some(url.into());
        get(c) -> Option<&str> = c.otlp_metrics_endpoint.as_deref();

    /// the OTLP transport, `http/protobuf` or `grpc`
    otlp_protocol: OtlpProtocol = OtlpProtocol::HttpProtobuf;
        env OTEL_EXPORTER_OTLP_PROTOCOL | OTEL_EXPORTER_OTLP_TRACES_PROTOCOL; kind Protocol; shown "`http/protobuf`";
        set(protocol: OtlpProtocol) = protocol;
        get(c) -> OtlpProtocol = c.otlp_protocol;

    /// headers sent with every OTLP export, `key=value,…` (values are never logged)
    otlp_headers: Vec<(String, String)> = Vec::new();
        env OTEL_EXPORTER_OTLP_HEADERS | OTEL_EXPORTER_OTLP_TRACES_HEADERS; kind Headers; shown "none";
        set(headers: impl IntoIterator<Item = (String, String)>) = headers.into_iter().collect();
        get(c) -> &[(String, String)] = &c.otlp_headers;

    /// whether the OTLP sink also sends the GenAI client metrics: a comma list, metrics go out unless it leaves out `otlp` (`none` turns them off)
    otlp_metrics: bool = true;
        env OTEL_METRICS_EXPORTER; kind MetricsExporter; shown "`otlp`";
        set(on: bool) = on;
        get(c) -> bool = c.otlp_metrics;

    /// time between two metrics exports (and one at shutdown), in milliseconds
    otlp_metric_export_interval: Duration = Duration::from_millis(60_000);
        env OTEL_METRIC_EXPORT_INTERVAL; kind Millis(1, 86_400_000); shown "`60000`";
        set(interval: Duration) = interval;
        get(c) -> Duration = c.otlp_metric_export_interval;
}

/// The error of an unreadable starting-indices text or key.
pub(crate) fn starting_indices_error(value: &str) -> ConfigError {
    ConfigError::new("starting_indices", env::ANOSYS_STARTING_INDICES, value, Indices.expected())
}
