//! Configuration: a builder in code, or the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `ANOSYS_API_KEY` | AnoSys key, resolved in the background to the log URL | none |
//! | `ANOSYS_API_URL` | log URL; overrides the key and everything else | none |
//! | `ANOSYS_RESOLVER_URL` | key resolver | `https://console.anosys.ai/api/resolveapikeys` |
//! | `ANOSYS_LOG_LEVEL` | `off`, `error`, `warn`, `info`, `debug` | `info` |
//! | `ANOSYS_CAPTURE_CONTENT` | capture prompts, replies, inputs and outputs (`true`/`false`) | `true` |
//! | `ANOSYS_QUEUE_SIZE` | records waiting for delivery before new ones are dropped | `4096` |
//! | `ANOSYS_BATCH_SIZE` | records handed to the sinks at once | `256` |
//! | `ANOSYS_FLUSH_INTERVAL_MS` | longest a record waits for its batch to fill | `1000` |
//! | `ANOSYS_MAX_ATTRIBUTE_BYTES` | cap on one attribute, cut with a visible marker | `65536` |
//! | `ANOSYS_SINKS` | `auto`, or a comma list of `anosys`, `sqlite`, `jsonl`, `stdout` | `auto` |
//! | `ANOSYS_DB` | the embedded SQLite store (the default sink) | `.anosys/anosys.db` |
//! | `ANOSYS_JSONL_PATH` | file of the JSON-lines sink | `.anosys/records.jsonl` |
//! | `ANOSYS_MAX_IN_FLIGHT` | concurrent POSTs to AnoSys | `8` |
//! | `ANOSYS_TIMEOUT_MS` | one HTTP request's timeout | `10000` |
//! | `ANOSYS_RETRY_MAX_ELAPSED_MS` | how long a batch is retried before it is kept in the embedded sink | `60000` |
//! | `ANOSYS_SHUTDOWN_TIMEOUT_MS` | how long exit and a dropped guard wait for delivery | `5000` |
//! | `OTEL_SERVICE_NAME` | `service.name` of the resource | the executable's name |
//! | `OTEL_RESOURCE_ATTRIBUTES` | more resource attributes, `key=value,…` (`service.version=1.4.2`) | none |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | OTLP base URL (feature `otlp`) | none |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | OTLP traces URL, used as is | none |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` (or `_TRACES_PROTOCOL`) | `http/protobuf` or `grpc` | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` | OTLP metrics URL, used as is | the base URL (+ `/v1/metrics` for HTTP) |
//! | `OTEL_METRICS_EXPORTER` | comma list; the OTLP sink sends GenAI client metrics unless it leaves out `otlp` (`none` turns them off) | `otlp` |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | milliseconds between two metrics exports (and one at shutdown) | `60000` |
//!
//! `auto` sinks: AnoSys when a key or URL is set, OTLP when an OTLP
//! endpoint is set (feature `otlp`), otherwise the embedded store (SQLite;
//! the JSON-lines file when built without the `sqlite` feature). Records a
//! remote sink cannot take are kept in the embedded store.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::diag::LogLevel;

/// Default key resolver.
pub const DEFAULT_RESOLVER_URL: &str = "https://console.anosys.ai/api/resolveapikeys";
/// Default file of the JSON-lines sink, relative to the working directory.
pub const DEFAULT_JSONL_PATH: &str = ".anosys/records.jsonl";
/// Default file of the SQLite store, relative to the working directory.
pub const DEFAULT_DB_PATH: &str = ".anosys/anosys.db";

/// An AnoSys API key. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the one place that sends it (the resolver).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A built-in sink that configuration can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkKind {
    /// The AnoSys HTTP API.
    Anosys,
    /// Append JSON lines to a file.
    Jsonl,
    /// The embedded SQLite store (the default with no AnoSys account).
    Sqlite,
    /// Readable lines on stdout.
    Stdout,
    /// OpenTelemetry spans over OTLP (feature `otlp`).
    Otlp,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP (`http/protobuf`), the OpenTelemetry default.
    #[default]
    HttpProtobuf,
    /// gRPC (`grpc`).
    Grpc,
}

impl SinkKind {
    /// The embedded store of this build: SQLite, or the JSON-lines file
    /// without the `sqlite` feature.
    pub fn embedded() -> SinkKind {
        if cfg!(feature = "sqlite") { SinkKind::Sqlite } else { SinkKind::Jsonl }
    }
}

/// Which sinks the pipeline runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SinkSelection {
    /// AnoSys when a key or URL is configured, otherwise the embedded store.
    #[default]
    Auto,
    /// Exactly these.
    Only(Vec<SinkKind>),
}

/// Starting indices of the dynamic `cvs`/`cvn`/`cvb` slots (the seed SDK's
/// `starting_indices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartingIndices {
    /// First `cvs` slot for strings, lists and maps (default 100).
    pub string: u32,
    /// First `cvn` slot for numbers (default 3).
    pub number: u32,
    /// First `cvb` slot for booleans (default 1).
    pub boolean: u32,
}

impl Default for StartingIndices {
    fn default() -> Self {
        StartingIndices { string: 100, number: 3, boolean: 1 }
    }
}

impl StartingIndices {
    /// Sets the first slot of one type by the name bindings use:
    /// `"string"` (or `"str"`, `"cvs"`), `"number"` (`"num"`, `"cvn"`) or
    /// `"bool"` (`"boolean"`, `"cvb"`).
    ///
    /// ```
    /// let mut indices = anosys::StartingIndices::default();
    /// indices.set("number", 10).unwrap();
    /// assert_eq!(indices.number, 10);
    /// assert!(indices.set("colour", 1).is_err());
    /// ```
    pub fn set(&mut self, kind: &str, first: u32) -> Result<(), ConfigError> {
        match kind {
            "string" | "str" | "cvs" => self.string = first,
            "number" | "num" | "cvn" => self.number = first,
            "bool" | "boolean" | "cvb" => self.boolean = first,
            other => {
                return Err(ConfigError {
                    variable: "starting_indices".into(),
                    value: other.to_owned(),
                    expected: "the key \"string\", \"number\" or \"bool\"".into(),
                });
            }
        }
        Ok(())
    }
}

/// An invalid configuration value: names the variable and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable or builder setting.
    pub variable: String,
    /// The rejected value (secrets are never shown).
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {:?} is invalid: expected {}", self.variable, self.value, self.expected)
    }
}

impl std::error::Error for ConfigError {}

/// Everything the pipeline needs. Build it with [`Config::builder`] or
/// [`Config::from_env`].
///
/// ```
/// use std::time::Duration;
/// let config = anosys::Config::builder()
///     .api_url("http://127.0.0.1:9/log")
///     .queue_size(10_000)
///     .flush_interval(Duration::from_millis(200))
///     .build()
///     .unwrap();
/// assert_eq!(config.queue_size, 10_000);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// AnoSys API key (resolved in the background to the log URL).
    pub api_key: Option<ApiKey>,
    /// AnoSys log URL; wins over the key.
    pub api_url: Option<String>,
    /// Key resolver URL.
    pub resolver_url: String,
    /// anosys's own stderr verbosity.
    pub log_level: LogLevel,
    /// Capture prompts, replies, inputs and outputs.
    pub capture_content: bool,
    /// Bounded queue length.
    pub queue_size: usize,
    /// Records per batch.
    pub batch_size: usize,
    /// Approximate bytes per batch.
    pub max_batch_bytes: usize,
    /// Longest wait for a batch to fill.
    pub flush_interval: Duration,
    /// Cap on one attribute's encoded size.
    pub max_attribute_bytes: usize,
    /// Sinks to run.
    pub sinks: SinkSelection,
    /// File of the JSON-lines sink.
    pub jsonl_path: PathBuf,
    /// File of the SQLite store.
    pub db_path: PathBuf,
    /// Concurrent POSTs to AnoSys.
    pub max_in_flight: usize,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// How long failed deliveries are retried.
    pub retry_max_elapsed: Duration,
    /// How long exit and a dropped guard wait for delivery.
    pub shutdown_timeout: Duration,
    /// `service.name` of the resource.
    pub service_name: Option<String>,
    /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`,
    /// `service.version`, …); `service_name` wins over a `service.name`
    /// given here.
    pub resource_attributes: Vec<(String, String)>,
    /// Starting indices of dynamic slots.
    pub starting_indices: Option<StartingIndices>,
    /// OTLP base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub otlp_endpoint: Option<String>,
    /// OTLP traces URL, used as is (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`).
    pub otlp_traces_endpoint: Option<String>,
    /// OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
    pub otlp_protocol: OtlpProtocol,
    /// OTLP metrics URL, used as is (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`);
    /// by default the base URL, plus `/v1/metrics` for HTTP.
    pub otlp_metrics_endpoint: Option<String>,
    /// Whether the OTLP sink also exports the GenAI client metrics
    /// (`OTEL_METRICS_EXPORTER`; `none` turns them off).
    pub otlp_metrics: bool,
    /// Time between two metrics exports (`OTEL_METRIC_EXPORT_INTERVAL`,
    /// milliseconds); the last one is at shutdown.
    pub otlp_metric_export_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            api_key: None,
            api_url: None,
            resolver_url: DEFAULT_RESOLVER_URL.to_owned(),
            log_level: LogLevel::Info,
            capture_content: true,
            queue_size: 4096,
            batch_size: 256,
            max_batch_bytes: 8 * 1024 * 1024,
            flush_interval: Duration::from_millis(1000),
            max_attribute_bytes: 64 * 1024,
            sinks: SinkSelection::Auto,
            jsonl_path: PathBuf::from(DEFAULT_JSONL_PATH),
            db_path: PathBuf::from(DEFAULT_DB_PATH),
            max_in_flight: 8,
            request_timeout: Duration::from_secs(10),
            retry_max_elapsed: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(5),
            service_name: None,
            resource_attributes: Vec::new(),
            starting_indices: None,
            otlp_endpoint: None,
            otlp_traces_endpoint: None,
            otlp_protocol: OtlpProtocol::HttpProtobuf,
            otlp_metrics_endpoint: None,
            otlp_metrics: true,
            otlp_metric_export_interval: Duration::from_millis(60_000),
        }
    }
}

impl Config {
    /// A builder starting from the defaults (the environment is not read).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder { config: Config::default() }
    }

    /// The defaults overridden by the environment.
    ///
    /// ```
    /// // With no ANOSYS_* variables set this is the default configuration.
    /// let config = anosys::Config::from_env();
    /// assert!(config.is_ok());
    /// ```
    pub fn from_env() -> Result<Config, ConfigError> {
        ConfigBuilder::from_env()?.build()
    }

    /// The sinks `Auto` stands for under this configuration.
    pub fn resolved_sinks(&self) -> Vec<SinkKind> {
        match &self.sinks {
            SinkSelection::Only(list) => list.clone(),
            SinkSelection::Auto => {
                let mut sinks = Vec::new();
                if self.api_url.is_some() || self.api_key.is_some() {
                    sinks.push(SinkKind::Anosys);
                }
                if cfg!(feature = "otlp") && (self.otlp_endpoint.is_some() || self.otlp_traces_endpoint.is_some()) {
                    sinks.push(SinkKind::Otlp);
                }
                if sinks.is_empty() {
                    sinks.push(SinkKind::embedded());
                }
                sinks
            }
        }
    }
}

/// Builds a [`Config`]; every setter has an `ANOSYS_*` variable.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    config: Config,
}

fn invalid(variable: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError { variable: variable.to_owned(), value: value.to_owned(), expected: expected.to_owned() }
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key1=value1,key2=value2`, values
/// percent-encoded (W3C Baggage octets).
fn parse_resource_attributes(value: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let bad = || invalid("OTEL_RESOURCE_ATTRIBUTES", value, "comma-separated key=value pairs (values percent-encoded)");
    let mut out = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(bad)?;
        let k = k.trim();
        if k.is_empty() {
            return Err(bad());
        }
        let v = percent_encoding::percent_decode_str(v.trim()).decode_utf8().map_err(|_| bad())?;
        out.push((k.to_owned(), v.into_owned()));
    }
    Ok(out)
}

fn parse_bool(variable: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(invalid(variable, value, "true or false (also 1/0, yes/no, on/off)")),
    }
}

fn parse_count(variable: &str, value: &str, min: usize, max: usize) -> Result<usize, ConfigError> {
    match value.trim().parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(variable, value, &format!("a whole number from {min} to {max}"))),
    }
}

fn parse_millis(variable: &str, value: &str, min: u64, max: u64) -> Result<Duration, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Duration::from_millis(n)),
        _ => Err(invalid(variable, value, &format!("milliseconds, a whole number from {min} to {max}"))),
    }
}

fn check_url(variable: &str, value: &str) -> Result<(), ConfigError> {
    match reqwest::Url::parse(value) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        _ => Err(invalid(variable, value, "an absolute http:// or https:// URL")),
    }
}

/// `OTEL_METRICS_EXPORTER`: a comma list of the exporters the
/// OpenTelemetry spec names; metrics go out over OTLP when it holds `otlp`.
fn parse_metrics_exporter(variable: &str, value: &str) -> Result<bool, ConfigError> {
    let mut otlp = false;
    for part in value.split(',') {
        match part.trim().to_ascii_lowercase().as_str() {
            "otlp" => otlp = true,
            "none" | "console" | "prometheus" | "" => {}
            _ => return Err(invalid(variable, value, "otlp or none (a comma list; console and prometheus are ignored)")),
        }
    }
    Ok(otlp)
}

fn parse_sinks(variable: &str, value: &str) -> Result<SinkSelection, ConfigError> {
    let value_trim = value.trim();
    if value_trim.is_empty() || value_trim.eq_ignore_ascii_case("auto") {
        return Ok(SinkSelection::Auto);
    }
    let mut list = Vec::new();
    for part in value_trim.split(',') {
        let kind = match part.trim().to_ascii_lowercase().as_str() {
            "anosys" => SinkKind::Anosys,
            "jsonl" => SinkKind::Jsonl,
            "sqlite" if cfg!(feature = "sqlite") => SinkKind::Sqlite,
            "stdout" => SinkKind::Stdout,
            "otlp" if cfg!(feature = "otlp") => SinkKind::Otlp,
            _ => {
                return Err(invalid(
                    variable,
                    value,
                    if cfg!(feature = "otlp") {
                        "auto, or a comma list of anosys, sqlite, jsonl, stdout, otlp"
                    } else {
                        "auto, or a comma list of anosys, sqlite, jsonl, stdout (otlp needs the `otlp` feature)"
                    },
                ));
            }
        };
        if !list.contains(&kind) {
            list.push(kind);
        }
    }
    Ok(SinkSelection::Only(list))
}

impl ConfigBuilder {
    /// A builder starting from the defaults overridden by the process
    /// environment.
    pub fn from_env() -> Result<ConfigBuilder, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) with variables read through `lookup`
    /// (for tests and embedding).
    ///
    /// ```
    /// let err = anosys::ConfigBuilder::from_lookup(|name| {
    ///     (name == "ANOSYS_QUEUE_SIZE").then(|| "lots".to_string())
    /// })
    /// .unwrap_err();
    /// assert_eq!(err.variable, "ANOSYS_QUEUE_SIZE");
    /// assert!(err.to_string().contains("a whole number"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<ConfigBuilder, ConfigError> {
        let mut c = Config::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("ANOSYS_API_KEY") {
            c.api_key = Some(ApiKey::new(v.trim()));
        }
        if let Some(v) = get("ANOSYS_API_URL") {
            check_url("ANOSYS_API_URL", v.trim())?;
            c.api_url = Some(v.trim().to_owned());
        }
        if let Some(v) = get("ANOSYS_RESOLVER_URL") {
            check_url("ANOSYS_RESOLVER_URL", v.trim())?;
            c.resolver_url = v.trim().to_owned();
        }
        if let Some(v) = get("ANOSYS_LOG_LEVEL") {
            c.log_level = LogLevel::parse(&v)
                .ok_or_else(|| invalid("ANOSYS_LOG_LEVEL", &v, "off, error, warn, info or debug"))?;
        }
        if let Some(v) = get("ANOSYS_CAPTURE_CONTENT") {
            c.capture_content = parse_bool("ANOSYS_CAPTURE_CONTENT", &v)?;
        }
        if let Some(v) = get("ANOSYS_QUEUE_SIZE") {
            c.queue_size = parse_count("ANOSYS_QUEUE_SIZE", &v, 1, 10_000_000)?;
        }
        if let Some(v) = get("ANOSYS_BATCH_SIZE") {
            c.batch_size = parse_count("ANOSYS_BATCH_SIZE", &v, 1, 100_000)?;
        }
        if let Some(v) = get("ANOSYS_FLUSH_INTERVAL_MS") {
            c.flush_interval = parse_millis("ANOSYS_FLUSH_INTERVAL_MS", &v, 1, 3_600_000)?;
        }
        if let Some(v) = get("ANOSYS_MAX_ATTRIBUTE_BYTES") {
            c.max_attribute_bytes = parse_count("ANOSYS_MAX_ATTRIBUTE_BYTES", &v, 256, 1 << 30)?;
        }
        if let Some(v) = get("ANOSYS_SINKS") {
            c.sinks = parse_sinks("ANOSYS_SINKS", &v)?;
        }
        if let Some(v) = get("ANOSYS_JSONL_PATH") {
            c.jsonl_path = PathBuf::from(v.trim());
        }
        if let Some(v) = get("ANOSYS_DB") {
            c.db_path = PathBuf::from(v.trim());
        }
        if let Some(v) = get("ANOSYS_MAX_IN_FLIGHT") {
            c.max_in_flight = parse_count("ANOSYS_MAX_IN_FLIGHT", &v, 1, 1024)?;
        }
        if let Some(v) = get("ANOSYS_TIMEOUT_MS") {
            c.request_timeout = parse_millis("ANOSYS_TIMEOUT_MS", &v, 1, 600_000)?;
        }
        if let Some(v) = get("ANOSYS_RETRY_MAX_ELAPSED_MS") {
            c.retry_max_elapsed = parse_millis("ANOSYS_RETRY_MAX_ELAPSED_MS", &v, 0, 86_400_000)?;
        }
        if let Some(v) = get("ANOSYS_SHUTDOWN_TIMEOUT_MS") {
            c.shutdown_timeout = parse_millis("ANOSYS_SHUTDOWN_TIMEOUT_MS", &v, 0, 600_000)?;
        }
        if let Some(v) = get("OTEL_SERVICE_NAME") {
            c.service_name = Some(v.trim().to_owned());
        }
        if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
            c.resource_attributes = parse_resource_attributes(&v)?;
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            check_url("OTEL_EXPORTER_OTLP_ENDPOINT", v.trim())?;
            c.otlp_endpoint = Some(v.trim().to_owned());
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            check_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", v.trim())?;
            c.otlp_traces_endpoint = Some(v.trim().to_owned());
        }
        if let Some(v) = get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
            check_url("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", v.trim())?;
            c.otlp_metrics_endpoint = Some(v.trim().to_owned());
        }
        if let Some(v) = get("OTEL_METRICS_EXPORTER") {
            c.otlp_metrics = parse_metrics_exporter("OTEL_METRICS_EXPORTER", &v)?;
        }
        if let Some(v) = get("OTEL_METRIC_EXPORT_INTERVAL") {
            c.otlp_metric_export_interval = parse_millis("OTEL_METRIC_EXPORT_INTERVAL", &v, 1, 86_400_000)?;
        }
        for variable in ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] {
            if let Some(v) = get(variable) {
                c.otlp_protocol = match v.trim() {
                    "http/protobuf" => OtlpProtocol::HttpProtobuf,
                    "grpc" => OtlpProtocol::Grpc,
                    _ => return Err(invalid(variable, &v, "http/protobuf or grpc")),
                };
            }
        }
        Ok(ConfigBuilder { config: c })
    }

    /// AnoSys API key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_key = Some(ApiKey::new(key));
        self
    }
    /// AnoSys log URL (wins over the key).
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.config.api_url = Some(url.into());
        self
    }
    /// Key resolver URL.
    pub fn resolver_url(mut self, url: impl Into<String>) -> Self {
        self.config.resolver_url = url.into();
        self
    }
    /// anosys's own stderr verbosity.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.config.log_level = level;
        self
    }
    /// Capture content (prompts, replies, inputs, outputs) or not.
    pub fn capture_content(mut self, on: bool) -> Self {
        self.config.capture_content = on;
        self
    }
    /// Bounded queue length.
    pub fn queue_size(mut self, n: usize) -> Self {
        self.config.queue_size = n;
        self
    }
    /// Records per batch.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.config.batch_size = n;
        self
    }
    /// Approximate bytes per batch.
    pub fn max_batch_bytes(mut self, n: usize) -> Self {
        self.config.max_batch_bytes = n;
        self
    }
    /// Longest wait for a batch to fill.
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.config.flush_interval = d;
        self
    }
    /// Cap on one attribute's size.
    pub fn max_attribute_bytes(mut self, n: usize) -> Self {
        self.config.max_attribute_bytes = n;
        self
    }
    /// Run exactly these built-in sinks.
    pub fn sinks(mut self, sinks: impl IntoIterator<Item = SinkKind>) -> Self {
        self.config.sinks = SinkSelection::Only(sinks.into_iter().collect());
        self
    }
    /// File of the JSON-lines sink.
    pub fn jsonl_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.jsonl_path = path.into();
        self
    }
    /// File of the SQLite store.
    pub fn db_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.db_path = path.into();
        self
    }
    /// Concurrent POSTs to AnoSys.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n;
        self
    }
    /// Timeout of one HTTP request.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.config.request_timeout = d;
        self
    }
    /// How long failed deliveries are retried.
    pub fn retry_max_elapsed(mut self, d: Duration) -> Self {
        self.config.retry_max_elapsed = d;
        self
    }
    /// How long exit and a dropped guard wait for delivery.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.config.shutdown_timeout = d;
        self
    }
    /// `service.name` of the resource.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.config.service_name = Some(name.into());
        self
    }
    /// `service.version` of the resource.
    pub fn service_version(self, version: impl Into<String>) -> Self {
        self.resource_attribute("service.version", version)
    }
    /// One more resource attribute (as `OTEL_RESOURCE_ATTRIBUTES` gives them).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.config.resource_attributes.retain(|(k, _)| *k != key);
        self.config.resource_attributes.push((key, value.into()));
        self
    }
    /// Starting indices of dynamic slots.
    pub fn starting_indices(mut self, indices: StartingIndices) -> Self {
        self.config.starting_indices = Some(indices);
        self
    }
    /// OTLP base URL (`http://host:4318`; `/v1/traces` is added for HTTP).
    pub fn otlp_endpoint(mut self, url: impl Into<String>) -> Self {
        self.config.otlp_endpoint = Some(url.into());
        self
    }
    /// OTLP traces URL, used as is.
    pub fn otlp_traces_endpoint(mut self, url: impl Into<String>) -> Self {
        self.config.otlp_traces_endpoint = Some(url.into());
        self
    }
    /// OTLP transport.
    pub fn otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.config.otlp_protocol = protocol;
        self
    }
    /// OTLP metrics URL, used as is (by default the base URL, plus
    /// `/v1/metrics` for HTTP).
    pub fn otlp_metrics_endpoint(mut self, url: impl Into<String>) -> Self {
        self.config.otlp_metrics_endpoint = Some(url.into());
        self
    }
    /// Whether the OTLP sink also exports the GenAI client metrics (on by
    /// default).
    pub fn otlp_metrics(mut self, on: bool) -> Self {
        self.config.otlp_metrics = on;
        self
    }
    /// Time between two metrics exports (the last one is at shutdown).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = anosys::Config::builder().otlp_metric_export_interval(Duration::from_secs(10)).build()?;
    /// assert_eq!(config.otlp_metric_export_interval, Duration::from_secs(10));
    /// # Ok::<(), anosys::ConfigError>(())
    /// ```
    pub fn otlp_metric_export_interval(mut self, d: Duration) -> Self {
        self.config.otlp_metric_export_interval = d;
        self
    }

    /// Checks every value and returns the configuration.
    pub fn build(self) -> Result<Config, ConfigError> {
        let c = self.config;
        if let Some(url) = &c.api_url {
            check_url("api_url (ANOSYS_API_URL)", url)?;
        }
        check_url("resolver_url (ANOSYS_RESOLVER_URL)", &c.resolver_url)?;
        let positive = |name: &str, n: usize| {
            if n == 0 { Err(invalid(name, "0", "a number above 0")) } else { Ok(()) }
        };
        positive("queue_size (ANOSYS_QUEUE_SIZE)", c.queue_size)?;
        positive("batch_size (ANOSYS_BATCH_SIZE)", c.batch_size)?;
        positive("max_in_flight (ANOSYS_MAX_IN_FLIGHT)", c.max_in_flight)?;
        positive("max_batch_bytes", c.max_batch_bytes)?;
        if c.max_attribute_bytes < 256 {
            return Err(invalid(
                "max_attribute_bytes (ANOSYS_MAX_ATTRIBUTE_BYTES)",
                &c.max_attribute_bytes.to_string(),
                "at least 256",
            ));
        }
        if c.flush_interval.is_zero() {
            return Err(invalid("flush_interval (ANOSYS_FLUSH_INTERVAL_MS)", "0", "a duration above 0"));
        }
        if c.otlp_metric_export_interval.is_zero() {
            return Err(invalid(
                "otlp_metric_export_interval (OTEL_METRIC_EXPORT_INTERVAL)",
                "0",
                "a duration above 0",
            ));
        }
        if c.sinks == SinkSelection::Only(Vec::new()) {
            return Err(invalid("sinks (ANOSYS_SINKS)", "", "at least one of anosys, sqlite, jsonl, stdout"));
        }
        for (name, url) in [
            ("otlp_endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)", &c.otlp_endpoint),
            ("otlp_traces_endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)", &c.otlp_traces_endpoint),
            ("otlp_metrics_endpoint (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)", &c.otlp_metrics_endpoint),
        ] {
            if let Some(url) = url {
                check_url(name, url)?;
            }
        }
        if c.resolved_sinks().contains(&SinkKind::Otlp) && !cfg!(feature = "otlp") {
            return Err(invalid("sinks (ANOSYS_SINKS)", "otlp", "a build with the `otlp` feature"));
        }
        if c.resolved_sinks().contains(&SinkKind::Anosys) && c.api_url.is_none() && c.api_key.is_none() {
            return Err(invalid(
                "sinks (ANOSYS_SINKS)",
                "anosys",
                "ANOSYS_API_KEY or ANOSYS_API_URL to be set when the anosys sink is chosen",
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_every_variable() {
        let c = ConfigBuilder::from_lookup(env(&[
            ("ANOSYS_API_KEY", "secret-key"),
            ("ANOSYS_API_URL", "http://127.0.0.1:1/log"),
            ("ANOSYS_LOG_LEVEL", "debug"),
            ("ANOSYS_CAPTURE_CONTENT", "off"),
            ("ANOSYS_QUEUE_SIZE", "10"),
            ("ANOSYS_BATCH_SIZE", "5"),
            ("ANOSYS_FLUSH_INTERVAL_MS", "20"),
            ("ANOSYS_SINKS", "anosys, stdout"),
            ("ANOSYS_JSONL_PATH", "/tmp/x.jsonl"),
            ("OTEL_SERVICE_NAME", "svc"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.version=1.4.2, deployment.environment.name=prod%20eu,service.name=other"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(
            c.resource_attributes,
            [("service.version", "1.4.2"), ("deployment.environment.name", "prod eu"), ("service.name", "other")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let resource = crate::pipeline::resource_for(&c);
        assert_eq!(resource.service_name(), Some("svc"), "OTEL_SERVICE_NAME wins");
        assert_eq!(resource.attributes["deployment.environment.name"], "prod eu");
        assert_eq!(c.api_url.as_deref(), Some("http://127.0.0.1:1/log"));
        assert_eq!(c.log_level, LogLevel::Debug);
        assert!(!c.capture_content);
        assert_eq!((c.queue_size, c.batch_size), (10, 5));
        assert_eq!(c.flush_interval, Duration::from_millis(20));
        assert_eq!(c.sinks, SinkSelection::Only(vec![SinkKind::Anosys, SinkKind::Stdout]));
        assert_eq!(c.service_name.as_deref(), Some("svc"));
        assert!(!format!("{c:?}").contains("secret-key"));
    }

    #[test]
    fn errors_name_the_variable_and_what_it_accepts() {
        for (var, val, expect) in [
            ("ANOSYS_QUEUE_SIZE", "0", "from 1"),
            ("ANOSYS_CAPTURE_CONTENT", "maybe", "true or false"),
            ("ANOSYS_API_URL", "not a url", "http://"),
            ("ANOSYS_SINKS", "kafka", "jsonl"),
            ("ANOSYS_LOG_LEVEL", "loud", "debug"),
            ("ANOSYS_FLUSH_INTERVAL_MS", "-1", "milliseconds"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.version", "key=value"),
            ("OTEL_RESOURCE_ATTRIBUTES", "=x", "key=value"),
        ] {
            let e = ConfigBuilder::from_lookup(env(&[(var, val)])).unwrap_err();
            assert_eq!(e.variable, var);
            assert!(e.to_string().contains(expect), "{e}");
        }
        let e = ConfigBuilder::from_lookup(env(&[("ANOSYS_SINKS", "anosys")])).unwrap().build().unwrap_err();
        assert!(e.to_string().contains("ANOSYS_API_KEY"), "{e}");
    }

    #[test]
    fn reads_the_otlp_metrics_variables() {
        let c = Config::default();
        assert!(c.otlp_metrics);
        assert_eq!(c.otlp_metric_export_interval, Duration::from_secs(60));
        assert_eq!(c.otlp_metrics_endpoint, None);
        let c = ConfigBuilder::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://127.0.0.1:4318/custom/metrics"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "250"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ]))
        .unwrap()
        .build()
        .unwrap();
        assert_eq!(c.otlp_metrics_endpoint.as_deref(), Some("http://127.0.0.1:4318/custom/metrics"));
        assert_eq!(c.otlp_metric_export_interval, Duration::from_millis(250));
        assert!(!c.otlp_metrics);
        for (value, on) in [("otlp", true), ("OTLP", true), ("prometheus", false), ("console, otlp", true)] {
            let c = ConfigBuilder::from_lookup(env(&[("OTEL_METRICS_EXPORTER", value)])).unwrap().build().unwrap();
            assert_eq!(c.otlp_metrics, on, "{value}");
        }
        for (var, val, expect) in [
            ("OTEL_METRICS_EXPORTER", "statsd", "otlp or none"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "0", "milliseconds"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4318", "http://"),
        ] {
            let e = ConfigBuilder::from_lookup(env(&[(var, val)])).unwrap_err();
            assert_eq!(e.variable, var);
            assert!(e.to_string().contains(expect), "{e}");
        }
        assert!(Config::builder().otlp_metric_export_interval(Duration::ZERO).build().is_err());
    }

    #[test]
    fn auto_sinks_follow_credentials() {
        assert_eq!(Config::default().resolved_sinks(), vec![SinkKind::embedded()]);
        let c = Config::builder().api_key("k").build().unwrap();
        assert_eq!(c.resolved_sinks(), vec![SinkKind::Anosys]);
    }
}
