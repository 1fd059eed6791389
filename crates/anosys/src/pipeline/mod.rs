//! The delivery pipeline: a queue the caller pushes into without ever
//! blocking, bounded by count and by bytes, and one background thread that
//! batches records by count, size and time and hands each batch to every
//! sink's lane. Each sink delivers on its own task from its own bounded
//! buffer, so a down or slow sink never holds up another one; a remote
//! sink keeps what it cannot deliver now in a durable outbox on disk and
//! sends it when the destination answers again (see the `sinks::outbox` module).
//!
//! The caller's cost is building the record and one non-blocking enqueue:
//! no network, disk or lock held across I/O. It works from plain sync code
//! and from inside any Tokio runtime (the worker runs its own runtime on
//! its own thread). When the queue is full, new records are dropped and
//! counted.

mod batch;
mod lane;
pub mod limits;
mod pace;
mod process;
mod queue;
mod sample;
mod worker;

pub use sample::keeps_trace_id;


use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{Config, SinkKind};
use crate::diag::{self, LogLevel};
use crate::record::{Record, Resource};
use crate::sinks::{AnosysSink, ExportContext, JsonlSink, Sink, SinkError, StdoutSink};

pub(crate) use lane::MAX_JOBS as EXPORTS_AT_ONCE;
pub(crate) use batch::Memory;
pub(crate) use pace::Pace;

/// Counts of what the pipeline did with records, since it started.
///
/// Every record captured ends as exactly one of `delivered`, `dropped`,
/// `failed`, `kept_in_outbox`, `sampled_out` or `filtered`, or is still
/// `pending`. What was kept in
/// the outbox is then counted again as it leaves it: `outbox_delivered`,
/// `outbox_failed` or `outbox_dropped` (these also count records an earlier
/// process kept, which this one delivered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counters {
    /// Records handed to the pipeline.
    pub captured: u64,
    /// Records every sink accepted at once.
    pub delivered: u64,
    /// Records dropped: the queue was full (by count or bytes), a sink fell
    /// behind with no outbox to keep its records, the pipeline had shut
    /// down, or the record's processing (hiding, pricing, redaction)
    /// panicked on it.
    pub dropped: u64,
    /// Repeated delivery attempts (records sent again).
    pub retried: u64,
    /// Records a sink refused for good (an HTTP 4xx, a failed local write).
    pub failed: u64,
    /// Records a remote sink could not deliver at once, kept in its
    /// durable outbox on disk to be sent later.
    pub kept_in_outbox: u64,
    /// Records sent from the outbox.
    pub outbox_delivered: u64,
    /// Records from the outbox refused for good, or unreadable.
    pub outbox_failed: u64,
    /// Records dropped from the outbox, oldest first, because it was full
    /// (`ANOSYS_OUTBOX_MAX_BYTES`).
    pub outbox_dropped: u64,
    /// Records sent again after an attempt whose answer never came: the
    /// destination may have them twice (each carries a stable id to drop
    /// the duplicate by).
    pub duplicates: u64,
    /// Records waiting in the outbox for this pipeline's destinations, as
    /// last seen (written by any process using the store).
    pub in_outbox: u64,
    /// Internal errors (a panicking sink or serialiser), each counted once.
    pub errors: u64,
    /// Records left out by sampling (`ANOSYS_SAMPLE_RATE`); the metrics
    /// still count them.
    pub sampled_out: u64,
    /// Records the application's `before_send` callback chose not to keep.
    pub filtered: u64,
    /// Cost in US dollars of the LLM calls captured, as priced
    /// (`gen_ai.usage.cost`), sampled out ones included.
    pub cost_usd: f64,
    /// LLM calls with usage whose model has no known price
    /// (`anosys.cost.status = "unpriced"`).
    pub unpriced: u64,
}

impl FlushReport {
    /// The report of a flush with no pipeline running: nothing to do.
    pub(crate) fn empty() -> Self {
        FlushReport { counters: Counters::default(), pending: 0, completed: true }
    }
}

impl Counters {
    /// Records captured but not yet delivered, dropped, failed or kept.
    pub fn pending(&self) -> u64 {
        self.captured.saturating_sub(
            self.delivered + self.dropped + self.failed + self.kept_in_outbox + self.sampled_out + self.filtered,
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct AtomicCounters {
    captured: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    kept_in_outbox: AtomicU64,
    outbox_delivered: AtomicU64,
    outbox_failed: AtomicU64,
    outbox_dropped: AtomicU64,
    duplicates: AtomicU64,
    in_outbox: AtomicU64,
    errors: AtomicU64,
    sampled_out: AtomicU64,
    filtered: AtomicU64,
    /// In billionths of a US dollar.
    cost_nano_usd: AtomicU64,
    unpriced: AtomicU64,
}

impl AtomicCounters {
    fn snapshot(&self) -> Counters {
        let l = |a: &AtomicU64| a.load(Ordering::Acquire);
        Counters {
            captured: l(&self.captured),
            delivered: l(&self.delivered),
            dropped: l(&self.dropped),
            retried: l(&self.retried),
            failed: l(&self.failed),
            kept_in_outbox: l(&self.kept_in_outbox),
            outbox_delivered: l(&self.outbox_delivered),
            outbox_failed: l(&self.outbox_failed),
            outbox_dropped: l(&self.outbox_dropped),
            duplicates: l(&self.duplicates),
            in_outbox: l(&self.in_outbox),
            errors: l(&self.errors),
            sampled_out: l(&self.sampled_out),
            filtered: l(&self.filtered),
            cost_usd: l(&self.cost_nano_usd) as f64 / 1e9,
            unpriced: l(&self.unpriced),
        }
    }
}

/// What a [`Pipeline::flush`] or [`Pipeline::shutdown`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FlushReport {
    /// Counters after the flush.
    pub counters: Counters,
    /// Records still waiting (queued, or being sent) when it returned; those
    /// in the outbox are in `counters.in_outbox`.
    pub pending: u64,
    /// `false` when the deadline passed before everything queued was handed
    /// to the sinks.
    pub completed: bool,
}

pub(crate) enum Control {
    Flush { deadline: Instant, reply: std::sync::mpsc::SyncSender<()> },
    Shutdown { deadline: Instant, reply: std::sync::mpsc::SyncSender<()> },
}

pub(crate) struct Inner {
    queue: Arc<queue::Queue>,
    memory: Arc<batch::Memory>,
    cx: ExportContext,
    control: mpsc::UnboundedSender<Control>,
    counters: Arc<AtomicCounters>,
    closed: AtomicBool,
    queue_size: usize,
    shutdown_timeout: Duration,
    capture_content: bool,
    before_send: Option<BeforeSend>,
    log_level: LogLevel,
    description: Vec<String>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A running pipeline. Cheap to clone; all clones feed the same queue.
///
/// ```
/// use anosys::{Config, Pipeline, Record, RecordKind, SinkKind};
/// let dir = std::env::temp_dir().join(format!("anosys-doc-{}", std::process::id()));
/// let config = Config::builder()
///     .sinks([SinkKind::Jsonl])
///     .jsonl_path(dir.join("records.jsonl"))
///     .build()?;
/// let pipeline = Pipeline::new(config)?;
/// pipeline.submit(Record::new(RecordKind::Raw, "hello"));
/// let report = pipeline.shutdown(None); // waits up to the configured shutdown timeout
/// assert_eq!(report.counters.delivered, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("sinks", &self.inner.description).finish_non_exhaustive()
    }
}

/// Why a pipeline could not start.
///
/// ```
/// let config = anosys::Config::default();
/// let err = anosys::Pipeline::builder(config).without_builtin_sinks().build().unwrap_err();
/// assert!(matches!(err, anosys::InitError::Sink(anosys::sinks::SinkError::NoSink)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A sink could not be built.
    #[error("cannot start an anosys sink")]
    Sink(#[source] crate::sinks::SinkError),
    /// The background thread could not be started.
    #[error("cannot start the anosys background thread")]
    Thread(#[source] std::io::Error),
    /// The redaction settings are invalid (an unknown kind in
    /// `ANOSYS_REDACT`, a pattern of `ANOSYS_REDACT_PATTERNS` that does not
    /// compile); the error names the variable and the pattern.
    #[error(transparent)]
    Redaction(crate::redact::RedactError),
    /// The price file (`ANOSYS_PRICES`) cannot be used.
    #[error("cannot use the price file of ANOSYS_PRICES")]
    Prices(#[source] crate::cost::PriceError),
}

/// A callback that sees each record before it is queued (see
/// [`PipelineBuilder::before_send`]).
pub type BeforeSend = Arc<dyn Fn(&mut Record) -> bool + Send + Sync>;

/// Builds a [`Pipeline`] with extra sinks, another resource or a
/// [`before_send`](Self::before_send) callback.
pub struct PipelineBuilder {
    config: Config,
    extra: Vec<Arc<dyn Sink>>,
    builtin: bool,
    resource: Option<Resource>,
    before_send: Option<BeforeSend>,
    redaction: Option<crate::redact::RedactionConfig>,
}

/// The local sink of `kind` (SQLite store or JSON-lines file).
fn embedded_sink(config: &Config, kind: SinkKind) -> Arc<dyn Sink> {
    match kind {
        #[cfg(feature = "sqlite")]
        SinkKind::Sqlite => Arc::new(crate::sinks::SqliteSink::new(&config.db_path)),
        _ => Arc::new(JsonlSink::new(&config.jsonl_path)),
    }
}

impl From<Config> for PipelineBuilder {
    fn from(config: Config) -> Self {
        Pipeline::builder(config)
    }
}

impl PipelineBuilder {
    /// The configuration the pipeline will be built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Adds a sink next to the configured ones.
    pub fn sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.extra.push(sink);
        self
    }

    /// Runs only the sinks added with [`sink`](Self::sink).
    pub fn without_builtin_sinks(mut self) -> Self {
        self.builtin = false;
        self
    }

    /// Uses `resource` for records that carry none.
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = Some(resource);
        self
    }

    /// Calls `callback` with each record before it is queued, on the
    /// thread that captured it: it may change the record (remove a field,
    /// mask a value the built-in redaction does not know) and returns
    /// whether to keep it. Records it turns down are counted as
    /// `filtered`. It runs on the caller's thread, so keep it quick; the
    /// engine's own redaction, pricing and sampling run later, on the
    /// background thread. A callback that panics is caught: the record is
    /// dropped (counted as `filtered`, and once in `errors`), since the
    /// policy it applies could not be applied.
    ///
    /// ```
    /// use anosys::{Config, Pipeline, Record, RecordKind, SinkKind};
    /// let dir = std::env::temp_dir().join(format!("anosys-doc-before-send-{}", std::process::id()));
    /// let config = Config::builder().sinks([SinkKind::Jsonl]).jsonl_path(dir.join("r.jsonl")).build()?;
    /// let pipeline = Pipeline::builder(config)
    ///     .before_send(|record: &mut Record| {
    ///         record.attributes.shift_remove("customer.email");
    ///         record.name != "health-check"
    ///     })
    ///     .build()?;
    /// pipeline.submit(Record::new(RecordKind::Raw, "health-check"));
    /// pipeline.submit(Record::new(RecordKind::Raw, "order"));
    /// let report = pipeline.shutdown(None);
    /// assert_eq!((report.counters.delivered, report.counters.filtered), (1, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn before_send(mut self, callback: impl Fn(&mut Record) -> bool + Send + Sync + 'static) -> Self {
        self.before_send = Some(Arc::new(callback));
        self
    }

    /// Redacts what `redaction` says instead of what the `redact` and
    /// `redact_patterns` settings (`ANOSYS_REDACT`,
    /// `ANOSYS_REDACT_PATTERNS`) say: code wins over the environment.
    ///
    /// ```
    /// use anosys::redact::{Kind, RedactionConfig};
    /// let config = anosys::Config::builder().sinks([anosys::SinkKind::Stdout]).build()?;
    /// let redaction = RedactionConfig::default().with_kind(Kind::Email).with_pattern("order", "ORD-[0-9]{8}");
    /// let pipeline = anosys::Pipeline::builder(config).redaction(redaction).build()?;
    /// # pipeline.shutdown(None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redaction(mut self, redaction: crate::redact::RedactionConfig) -> Self {
        self.redaction = Some(redaction);
        self
    }

    /// Checks the configuration ([`Config::validate`]), starts the
    /// background thread and returns the pipeline. Never touches the
    /// network: key resolution happens on the background thread. Changes
    /// nothing outside this pipeline: its log level, slot starting indices
    /// and resource are its own.
    pub fn build(self) -> Result<Pipeline, InitError> {
        let config = self.config;
        config.validate()?;
        let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
        if self.builtin {
            for kind in config.resolved_sinks() {
                sinks.push(match kind {
                    SinkKind::Anosys => Arc::new(AnosysSink::new(&config).map_err(InitError::Sink)?),
                    SinkKind::Jsonl => embedded_sink(&config, kind),
                    #[cfg(feature = "sqlite")]
                    SinkKind::Sqlite => embedded_sink(&config, kind),
                    SinkKind::Stdout => Arc::new(StdoutSink),
                    #[cfg(feature = "otlp")]
                    SinkKind::Otlp => Arc::new(crate::sinks::OtlpSink::new(&config)),
                    #[cfg(not(feature = "otlp"))]
                    SinkKind::Otlp => return Err(InitError::Sink(SinkError::NotInThisBuild(kind))),
                    #[cfg(not(feature = "sqlite"))]
                    SinkKind::Sqlite => {
                        return Err(InitError::Sink(SinkError::NotInThisBuild(kind)));
                    }
                });
            }
        }
        sinks.extend(self.extra);
        if sinks.is_empty() {
            return Err(InitError::Sink(SinkError::NoSink));
        }
        let description: Vec<String> = sinks.iter().map(|s| s.describe()).collect();
        let resource = Arc::new(self.resource.unwrap_or_else(|| crate::resource::resource_for(&config)));
        let queue = Arc::new(queue::Queue::new(config.queue_size, config.batch_size));
        let memory = Arc::new(batch::Memory::new(config.queue_max_bytes, config.queue_size));
        let (control, control_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(AtomicCounters::default());
        let cx = ExportContext::of_pipeline(memory.clone());
        let settings = worker::Settings {
            batch_size: config.batch_size,
            max_batch_bytes: config.max_batch_bytes,
            flush_interval: config.flush_interval,
            max_attribute_bytes: config.max_attribute_bytes,
            steps: process::Steps {
                prepare: Arc::new(process::Prepare {
                    hiding: process::Hiding::from_config(&config),
                    prices: process::Prices::from_config(&config).map_err(InitError::Prices)?,
                    redactor: {
                        let redaction = match self.redaction {
                            Some(r) => r,
                            None => crate::redact::RedactionConfig::from_env_values(
                                config.redact.as_deref(),
                                config.redact_patterns.as_deref(),
                            )
                            .map_err(InitError::Redaction)?,
                        };
                        let redactor = crate::redact::Redactor::new(&redaction).map_err(InitError::Redaction)?;
                        redaction.is_enabled().then_some(redactor)
                    },
                    max_attribute_bytes: config.max_attribute_bytes,
                }),
                sampler: (config.sample_rate < 1.0).then(|| {
                    sample::Sampler::new(sample::Policy {
                        rate: config.sample_rate,
                        keep_errors: config.keep_errors,
                        keep_slower_than: config.keep_slower_than,
                        keep_costlier_than: config.keep_costlier_than,
                        // Long enough for an agent's run, short enough that
                        // held records do not pile up.
                        max_wait: Duration::from_secs(60).max(config.flush_interval),
                        max_traces: (config.queue_size / 4).max(64),
                    })
                }),
            },
            log_level: config.log_level,
            resource,
            cx: cx.clone(),
            lanes: lane::LaneSettings {
                batch_size: config.batch_size,
                // A sink may fall behind by a quarter of the memory bound
                // before its batches go to its outbox (or are dropped).
                max_held: config.queue_max_bytes / 4,
                max_held_records: (config.queue_size / 4).max(config.batch_size),
                retry_max_elapsed: config.retry_max_elapsed,
                request_timeout: config.request_timeout,
                outbox: Some((config.db_path.clone(), config.outbox_max_bytes)),
                write_ahead: config.outbox_write_ahead,
            },
        };
        let handle = worker::spawn(queue.clone(), memory.clone(), control_rx, sinks, counters.clone(), settings)
            .map_err(InitError::Thread)?;
        let where_to = description.join("; ");
        diag::with_level(config.log_level, || {
            if config.api_url.is_none()
                && config.api_key.is_none()
                && config.sinks == crate::config::SinkSelection::Auto
            {
                diag::once(&format!("where-{where_to}"), LogLevel::Info, || {
                    format!("no ANOSYS_API_KEY or ANOSYS_API_URL set: {where_to}")
                });
            } else {
                diag::once(&format!("where-{where_to}"), LogLevel::Debug, || where_to.clone());
            }
        });
        Ok(Pipeline {
            inner: Arc::new(Inner {
                queue,
                memory,
                cx,
                control,
                counters,
                closed: AtomicBool::new(false),
                queue_size: config.queue_size,
                shutdown_timeout: config.shutdown_timeout,
                capture_content: config.capture_content,
                before_send: self.before_send,
                log_level: config.log_level,
                description,
                worker: Mutex::new(Some(handle)),
            }),
        })
    }
}

impl Inner {
    /// Runs the `before_send` callback; a panic in it drops the record.
    fn keeps(&self, callback: &dyn Fn(&mut Record) -> bool, record: &mut Record) -> bool {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(record))) {
            Ok(keep) => keep,
            Err(_) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                diag::with_level(self.log_level, || {
                    diag::once("before-send-panic", LogLevel::Error, || {
                        "the before_send callback panicked; the records it panics on are dropped (counted as filtered)"
                            .into()
                    })
                });
                false
            }
        }
    }
}

impl Pipeline {
    /// A pipeline with the sinks `config` names.
    pub fn new(config: Config) -> Result<Pipeline, InitError> {
        Self::builder(config).build()
    }

    /// A builder, to add sinks or set the resource.
    pub fn builder(config: Config) -> PipelineBuilder {
        PipelineBuilder { config, extra: Vec::new(), builtin: true, resource: None, before_send: None, redaction: None }
    }

    /// Queues a record for delivery without blocking. Returns `false` (and
    /// counts a drop) when the queue is full or the pipeline is shut down.
    pub fn submit(&self, record: Record) -> bool {
        self.submit_through(record, None)
    }

    /// [`submit`](Self::submit), with one more callback after the
    /// pipeline's own `before_send` (the global one of [`crate::set_before_send`]).
    pub(crate) fn submit_through(&self, mut record: Record, extra: Option<&dyn Fn(&mut Record) -> bool>) -> bool {
        let inner = &*self.inner;
        inner.counters.captured.fetch_add(1, Ordering::Relaxed);
        // Records the pipeline is done with are freed here, by the thread
        // that most likely made them (see `batch::Spent`).
        inner.memory.spent.free_after_submit();
        let own = inner.before_send.as_deref().map(|f| f as &dyn Fn(&mut Record) -> bool);
        if own.is_some() || extra.is_some() {
            // A callback sees every field filled in, as it always has: the
            // content an LLM call keeps in `raw` only is written out for it.
            record.expand_content();
        }
        for callback in [own, extra].into_iter().flatten() {
            if !inner.keeps(callback, &mut record) {
                inner.counters.filtered.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        if inner.closed.load(Ordering::Acquire) {
            inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
            diag::with_level(inner.log_level, || {
                diag::once("closed", LogLevel::Warn, || "a record was captured after shutdown and is dropped".into());
            });
            return false;
        }
        let size = record.approx_size();
        if !inner.memory.reserve(size) {
            inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
            diag::with_level(inner.log_level, || {
                diag::once("queue-bytes", LogLevel::Warn, || {
                    format!(
                        "records waiting for delivery hold {} bytes or {} records; new records are dropped and counted (raise ANOSYS_QUEUE_MAX_BYTES or ANOSYS_QUEUE_SIZE?)",
                        inner.memory.max(),
                        inner.queue_size
                    )
                })
            });
            return false;
        }
        if inner.queue.push(record, size) {
            return true;
        }
        inner.memory.release(1, size);
        inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
        diag::with_level(inner.log_level, || {
            diag::once("queue-full", LogLevel::Warn, || {
                format!(
                    "the delivery queue is full ({} records); new records are dropped and counted (raise ANOSYS_QUEUE_SIZE?)",
                    inner.queue_size
                )
            })
        });
        false
    }

    /// Whether sources should capture content (prompts, replies, inputs,
    /// outputs).
    pub fn capture_content(&self) -> bool {
        self.inner.capture_content
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.inner.counters.snapshot()
    }

    /// One line per sink saying where records go.
    pub fn destinations(&self) -> &[String] {
        &self.inner.description
    }

    fn report(&self, completed: bool) -> FlushReport {
        let counters = self.counters();
        FlushReport { counters, pending: counters.pending(), completed }
    }

    /// Hands everything queued so far to the sinks and waits until they
    /// are done with it, or until `timeout` (`None`: the configured
    /// shutdown timeout, `ANOSYS_SHUTDOWN_TIMEOUT_MS`).
    ///
    /// A slow remote sink does not hold it up: what such a sink has been
    /// sending for a second (or half the timeout, if that is shorter) is
    /// kept in its outbox and counted there (`kept_in_outbox`), and the
    /// send goes on; what it delivers is removed from the outbox again.
    ///
    /// Calls whose records are still being made on the extraction thread
    /// (the async-openai layer's plain calls, see
    /// [`DeferredCall`](crate::embed::DeferredCall)) are waited for first.
    pub fn flush(&self, timeout: Option<Duration>) -> FlushReport {
        let timeout = timeout.unwrap_or(self.inner.shutdown_timeout);
        crate::sources::openai::deferred::wait_idle(timeout);
        let (reply, done) = std::sync::mpsc::sync_channel(1);
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        if self.inner.control.send(Control::Flush { deadline, reply }).is_err() {
            return self.report(true);
        }
        let completed = done.recv_timeout(timeout).is_ok();
        self.report(completed)
    }

    /// Stops taking records, delivers what is queued and waits until done
    /// or `timeout` (`None`: the configured shutdown timeout). Records
    /// captured afterwards are dropped and counted. Calling it again
    /// returns at once. As [`flush`](Self::flush), it first waits for
    /// the records still being made on the extraction thread.
    pub fn shutdown(&self, timeout: Option<Duration>) -> FlushReport {
        let timeout = timeout.unwrap_or(self.inner.shutdown_timeout);
        crate::sources::openai::deferred::wait_idle(timeout);
        self.inner.closed.store(true, Ordering::Release);
        let deadline = Instant::now() + timeout;
        // Sinks must stop earlier, to leave time for keeping what is
        // undelivered in their outbox: a fifth of the time, at most 2 s (a
        // backlog of big records takes a while to write).
        let sinks_deadline = deadline - (timeout / 5).min(Duration::from_secs(2));
        if self.inner.cx.deadline().is_none_or(|d| sinks_deadline < d) {
            self.inner.cx.set_deadline(sinks_deadline);
        }
        let (reply, done) = std::sync::mpsc::sync_channel(1);
        if self.inner.control.send(Control::Shutdown { deadline, reply }).is_err() {
            return self.report(true);
        }
        let completed = done.recv_timeout(timeout).is_ok();
        if completed {
            let handle = self.inner.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(h) = handle {
                let _ = h.join();
            }
        }
        self.report(completed)
    }
}
