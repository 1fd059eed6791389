//! The command line: every subcommand, flag and `--help` text.
// Doc comments here are also the --help text, which prints URLs as written.
#![allow(rustdoc::bare_urls)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::proxy::AccessLogFormat;

const ABOUT: &str = "LLM observability for OpenAI-style APIs.

Every LLM call and every logged function of your application becomes one
record. With no AnoSys account, records are kept in a local SQLite store
(ANOSYS_DB, default .anosys/anosys.db); these commands browse it.";

const EXAMPLES: &str = "Examples:
  anosys demo                      capture a scripted app's calls, locally
  anosys logs --since 1h           what happened in the last hour
  anosys stats                     calls, errors, tokens and latency per model
  anosys show 12                   one record in full
  anosys ui                        look at traces, conversations and cost in your browser";

/// The `anosys` command.
#[derive(Debug, Parser)]
#[command(name = "anosys", version, about = ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    /// The local store to read or write [default: $ANOSYS_DB, else .anosys/anosys.db]
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// When to use colour.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    pub color: ColorWhen,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// When writing to a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorWhen {
    /// Makes this choice for everything printed from now on.
    pub fn write_global(self) {
        let choice = match self {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        };
        choice.write_global();
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a small scripted application against a local OpenAI-compatible
    /// server and show what was captured.
    ///
    /// The server replays recorded OpenAI answers: a chat, a streamed chat
    /// that calls tools, an embedding and an API error. A logged function
    /// that fails and a raw event complete the picture. Records go where
    /// your configuration sends them: the local store when ANOSYS_API_KEY
    /// and ANOSYS_API_URL are unset.
    #[command(after_help = "Examples:
  anosys demo                                  replayed answers, local store
  anosys demo --db /tmp/demo.db                into another store
  OPENAI_API_KEY=sk-... anosys demo --live     the real OpenAI API (costs a few tokens)")]
    Demo(DemoArgs),

    /// Run the OpenAI-compatible logging proxy: point any OpenAI client's
    /// base URL at it and every call is recorded.
    ///
    /// Requests are forwarded unchanged and answers come back byte for
    /// byte, streams event by event. Records go where your configuration
    /// sends them (the local store by default). GET /healthz answers ok;
    /// GET /metrics gives Prometheus metrics. SIGINT or SIGTERM stops it
    /// gracefully.
    #[command(after_help = "Examples:
  anosys proxy                                         127.0.0.1:4000 -> https://api.openai.com
  OPENAI_BASE_URL=http://127.0.0.1:4000/v1 python app.py   then run your app against it
  anosys proxy --listen 0.0.0.0:8080 --upstream https://my-resource.openai.azure.com
  anosys proxy --route /openai=https://api.openai.com --route /ollama/v1=http://127.0.0.1:11434/v1")]
    Proxy(ProxyArgs),

    /// Run the demo's local OpenAI-compatible server on its own: it answers
    /// chat completions (plain, streamed, with tools), embeddings and
    /// responses with recorded OpenAI replies. For trying clients and the
    /// proxy without an OpenAI key.
    #[command(after_help = "Examples:
  anosys demo-server --listen 127.0.0.1:4001
  anosys proxy --upstream http://127.0.0.1:4001     then OPENAI_BASE_URL=http://127.0.0.1:4000/v1")]
    DemoServer(DemoServerArgs),

    /// List stored records as a table, newest first.
    #[command(after_help = "Examples:
  anosys logs                                  the 50 newest records
  anosys logs --since 2h --status error        failures of the last two hours
  anosys logs --model 'gpt-4o*' --limit 200    globs match models and sources
  anosys logs --trace 4bf92f35                 one trace (an id or its prefix)
  anosys logs --json | jq .name                whole records, one JSON per line")]
    Logs(LogsArgs),

    /// Show one record in full: timing, ids, model, tokens, input, output,
    /// error, attributes and events.
    #[command(after_help = "Examples:
  anosys show 12                   by the ID column of `anosys logs`
  anosys show 00f067aa0ba902b7     by span id (or a unique prefix of one)
  anosys show 12 --json            the record exactly as stored")]
    Show(ShowArgs),

    /// Summarise: calls, error rate, tokens and p50/p95/p99 latency and time
    /// to first chunk per model; the same per source for logged functions.
    #[command(after_help = "Examples:
  anosys stats                     everything stored
  anosys stats --since 24h         the last day
  anosys stats --source billing    one part of the application
  anosys stats --json              machine-readable")]
    Stats(StatsArgs),

    /// Write stored records to a file or stdout, oldest first.
    #[command(after_help = "Examples:
  anosys export --format jsonl -o records.jsonl    whole records
  anosys export --format csv --since 7d > week.csv the indexed fields, for spreadsheets")]
    Export(ExportArgs),

    /// Send stored records to AnoSys or to an OpenTelemetry (OTLP) backend,
    /// oldest first: records kept locally while a backend was unreachable,
    /// or from before you had one.
    #[command(after_help = "Examples:
  ANOSYS_API_KEY=... anosys send                       everything stored, to AnoSys
  ANOSYS_API_KEY=... anosys send --since 1h --status error
  OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 anosys send --to otlp
  OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc anosys send --to otlp
  ANOSYS_API_KEY=... anosys send --outbox              what waits in the outbox for AnoSys, now")]
    Send(SendArgs),

    /// What the local store holds and what waits in its outbox for each
    /// remote destination (AnoSys, OTLP): records, bytes, the oldest one's
    /// age and the last delivery error.
    #[command(after_help = "Examples:
  anosys status            the store and its outbox
  anosys status --json     machine-readable")]
    Status(StatusArgs),

    /// Model prices used to put a USD cost on LLM calls: list them, or
    /// look one model up as an API reports it and see which entry it
    /// resolves to and why.
    ///
    /// Prices come from LiteLLM's price map, compiled in; a price file
    /// (--prices, else ANOSYS_PRICES) in the same JSON schema adds models
    /// or replaces them whole, for negotiated prices and fine-tunes.
    #[command(after_help = "Examples:
  anosys prices                              every model, USD per million tokens
  anosys prices --filter gpt-4o              models whose name contains gpt-4o
  anosys prices openai/gpt-4o-2024-08-06     which entry, why, and its prices by tier
  anosys prices ft:gpt-4o-mini:acme::x1 --prices my-prices.json")]
    Prices(PricesArgs),

    /// Open a local web viewer of the store: records and traces, each
    /// call's conversation, cost and latency over time; live as
    /// applications write.
    ///
    /// Everything is served from this binary (nothing is fetched from the
    /// internet). It listens on 127.0.0.1 only, unless given another
    /// address and a token, which every request must then carry.
    #[command(after_help = "Examples:
  anosys ui                                   http://127.0.0.1:4100 (or a free port)
  anosys ui --db /tmp/demo.db --listen 127.0.0.1:8080
  ANOSYS_UI_TOKEN=$(openssl rand -hex 16) anosys ui --listen 0.0.0.0:4100   then open /?token=...")]
    Ui(UiArgs),
}

/// `anosys ui`.
#[derive(Debug, Clone, Default, Args)]
pub struct UiArgs {
    /// Address to listen on [default: 127.0.0.1:4100, or a free port if taken]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,

    /// Require this token on every request (needed to listen on a
    /// non-loopback address) [default: $ANOSYS_UI_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

/// Which records a command looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct FilterArgs {
    /// Only records newer than this: a duration (30m, 2h, 7d) or a time
    /// (2026-11-28, 2026-11-28T14:00:00Z).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,

    /// Only this model (a glob: 'gpt-4o*').
    #[arg(long)]
    pub model: Option<String>,

    /// Only this outcome.
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,

    /// Only this source (a glob).
    #[arg(long)]
    pub source: Option<String>,

    /// Only this trace (a trace id or a prefix of one).
    #[arg(long, value_name = "TRACE_ID")]
    pub trace: Option<String>,

    /// Only this kind of record.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,

    /// Only this user's records: `user_id` in the user context, or the
    /// `user.id` attribute (the proxy's x-anosys-user-id header).
    #[arg(long)]
    pub user: Option<String>,

    /// Only this session's records: `session_id` in the user context, or
    /// the `session.id` attribute.
    #[arg(long)]
    pub session: Option<String>,
}

/// A record's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// Succeeded.
    Ok,
    /// Failed.
    Error,
    /// Nothing was said.
    Unset,
}

/// A kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// LLM calls.
    Llm,
    /// Logged functions.
    Function,
    /// Raw events.
    Raw,
    /// OpenTelemetry spans.
    Span,
}

impl From<StatusArg> for anosys::StatusCode {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Ok => anosys::StatusCode::Ok,
            StatusArg::Error => anosys::StatusCode::Error,
            StatusArg::Unset => anosys::StatusCode::Unset,
        }
    }
}

impl From<KindArg> for anosys::RecordKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Llm => anosys::RecordKind::LlmCall,
            KindArg::Function => anosys::RecordKind::FunctionCall,
            KindArg::Raw => anosys::RecordKind::Raw,
            KindArg::Span => anosys::RecordKind::Span,
        }
    }
}

/// `anosys demo`.
#[derive(Debug, Clone, Default, Args)]
pub struct DemoArgs {
    /// Call the real OpenAI API (needs OPENAI_API_KEY) instead of the local
    /// replay server.
    #[arg(long)]
    pub live: bool,
}

/// `anosys proxy`.
#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4000", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,

    /// Where requests go (paths are appended unchanged) [default: https://api.openai.com, unless --route is given]
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,

    /// More upstreams by path prefix: PREFIX=URL, the prefix replaced by the
    /// URL's path (repeatable).
    #[arg(long = "route", value_name = "PREFIX=URL")]
    pub routes: Vec<String>,

    /// Largest request body accepted, in MiB (413 above).
    #[arg(long, default_value_t = 32, value_name = "MIB")]
    pub max_body_mb: usize,

    /// Longest wait for the upstream's answer to start, and longest
    /// silence within it, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub upstream_timeout: u64,

    /// After SIGINT or SIGTERM, how long in-flight requests may finish, in
    /// seconds.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub shutdown_grace: u64,

    /// Longest wait for a request head, in seconds: a client that sends
    /// nothing or half a head is disconnected (0: no limit).
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    pub header_timeout: u64,

    /// Longest wait for the next request on a kept-alive connection, in
    /// seconds; it is closed after that (0: no limit).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub idle_timeout: u64,

    /// Most client connections open at once; more wait until one closes
    /// (0: no limit).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,

    /// The access log on stderr, one line per request: json, text or off.
    /// Written in batches off the request path; flushed at exit.
    #[arg(long, value_enum, default_value_t = AccessLogFormat::Json, env = "ANOSYS_PROXY_ACCESS_LOG", value_name = "FORMAT")]
    pub access_log: AccessLogFormat,

    /// No access log (the same as --access-log off).
    #[arg(long)]
    pub quiet: bool,

    /// Also serve the web viewer (`anosys ui`) of the store the proxy
    /// writes, on its own loopback address (--ui-listen).
    #[arg(long)]
    pub ui: bool,

    /// Where the viewer listens with --ui [default: 127.0.0.1:4100, or a free port if taken]
    #[arg(long, value_name = "ADDR", requires = "ui")]
    pub ui_listen: Option<std::net::SocketAddr>,
}

/// `anosys demo-server`.
#[derive(Debug, Clone, Args)]
pub struct DemoServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4001", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,

    /// Wait before each answer starts, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub first_byte_ms: u64,

    /// Wait between the events of a stream, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub event_ms: u64,
}

/// `anosys logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,

    /// At most this many records.
    #[arg(long, short = 'n', default_value_t = 50)]
    pub limit: usize,

    /// Whole records as JSON, one per line, instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `anosys show`.
#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The record: its ID in `anosys logs`, or its span id.
    pub id: String,

    /// The record exactly as stored, as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `anosys stats`.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,

    /// The figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `anosys status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The figures as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Whole records, one JSON object per line.
    Jsonl,
    /// The indexed fields and the error, one row per record.
    Csv,
}

/// `anosys export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,

    /// Write here instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Where `anosys send` delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Destination {
    /// The AnoSys API (ANOSYS_API_KEY or ANOSYS_API_URL).
    Anosys,
    /// An OpenTelemetry backend over OTLP (OTEL_EXPORTER_OTLP_ENDPOINT,
    /// OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_HEADERS).
    Otlp,
}

/// `anosys send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filter: FilterArgs,

    /// Where to send.
    #[arg(long, value_enum, default_value_t = Destination::Anosys)]
    pub to: Destination,

    /// Send what waits in the outbox for that destination (records a
    /// process could not deliver), now, without waiting out its backoff;
    /// instead of the stored records. Delivered rows leave the outbox.
    #[arg(long)]
    pub outbox: bool,
}

/// `anosys prices`.
#[derive(Debug, Clone, Args)]
pub struct PricesArgs {
    /// A model to look up, as an API reports it (prefixes, dates and ft:
    /// names are resolved as when pricing).
    pub model: Option<String>,

    /// Only models whose name contains this (case ignored).
    #[arg(long, short = 'f', value_name = "TEXT", conflicts_with = "model")]
    pub filter: Option<String>,

    /// A price file adding or replacing models [default: $ANOSYS_PRICES]
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,

    /// As JSON.
    #[arg(long)]
    pub json: bool,
}
