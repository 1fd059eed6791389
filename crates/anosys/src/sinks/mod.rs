//! Sinks: where records end up. Every sink implements [`Sink`]; the
//! pipeline hands each one batches of finished records.
//!
//! Shipped: [`AnosysSink`] (the AnoSys HTTP API, which owns the AnoSys
//! encoding), `SqliteSink` (the embedded store, feature `sqlite`),
//! `OtlpSink` (OpenTelemetry spans over OTLP, feature `otlp`),
//! [`JsonlSink`] (a JSON-lines file) and [`StdoutSink`] (readable lines).
//! Several can run together.

pub mod anosys;
mod jsonl;
mod local;
pub mod outbox;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub mod otlp;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
mod stdout;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use anosys::AnosysSink;
pub use jsonl::JsonlSink;
#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use otlp::OtlpSink;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteSink;
pub use stdout::StdoutSink;

use crate::record::Record;

/// A boxed, sendable future (sinks are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What became of one exported batch: one attempt, no retries inside the
/// sink. Whatever is worth another try is listed in [`retry`](Self::retry);
/// the pipeline keeps those records in the sink's durable outbox (see
/// [`Sink::destination`]) and tries again with backoff.
///
/// ```
/// use anosys::sinks::ExportReport;
/// let report = ExportReport::retry_all(3);
/// assert_eq!(report.retry, vec![0, 1, 2]);
/// assert_eq!(ExportReport::failed_all(3).failed, 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Records the destination refused for good (an HTTP 4xx other than
    /// 408 and 429, an invalid argument, a local write that failed): never
    /// tried again, counted as failed.
    pub failed: usize,
    /// Positions in the batch of records not delivered for a reason that
    /// may pass (connection refused, timeout, HTTP 5xx, 408 or 429).
    pub retry: Vec<usize>,
    /// Of [`retry`](Self::retry), those whose attempt may have reached the
    /// destination all the same (sent, but no answer in time): delivering
    /// them again may make a duplicate, which is counted.
    pub uncertain: Vec<usize>,
    /// How long the destination asked to be left alone (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl ExportReport {
    /// Every one of `n` records refused for good.
    pub fn failed_all(n: usize) -> Self {
        ExportReport { failed: n, ..Default::default() }
    }

    /// Every one of `n` records worth another try.
    pub fn retry_all(n: usize) -> Self {
        ExportReport { retry: (0..n).collect(), ..Default::default() }
    }
}

/// Where a remote sink sends: the identity its durable outbox is kept
/// under, shared by every process that sends to the same place.
///
/// ```
/// use anosys::sinks::Destination;
/// let d = Destination::new("anosys", "https://api.example.com/log?key=secret", "AnoSys at https://api.example.com");
/// assert!(d.key().starts_with("anosys:"));
/// assert!(!d.key().contains("secret"));
/// assert_eq!(d, Destination::new("anosys", "https://api.example.com/log?key=secret", "other label"));
/// ```
#[derive(Debug, Clone)]
pub struct Destination {
    key: String,
    label: String,
}

impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Destination {}

impl Destination {
    /// The destination of a `kind` of sink whose full target (URL, key,
    /// headers: anything that makes two targets different) is `identity`.
    /// Only a hash of `identity` is kept, so it may hold secrets; `label`
    /// is shown to people and must not.
    pub fn new(kind: &str, identity: &str, label: impl Into<String>) -> Self {
        Destination { key: format!("{kind}:{:016x}", fnv1a(identity.as_bytes())), label: label.into() }
    }

    /// The stable identity: the kind and a hash of the target.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What to show for it.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// FNV-1a, 64 bits: stable across builds and platforms (the outbox's
/// destination keys must not change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[derive(Debug, Default)]
struct ShutdownSignal {
    deadline: std::sync::Mutex<Option<Instant>>,
    notify: tokio::sync::Notify,
}

/// What the pipeline passes with every batch: whether, and by when, it is
/// shutting down. The deadline can be set while a batch is being exported;
/// a sink that retries should check [`deadline`](Self::deadline) and sleep
/// with [`sleep`](Self::sleep), and keep what it could not deliver in its
/// fallback before the deadline passes.
#[derive(Debug, Clone, Default)]
pub struct ExportContext {
    signal: Arc<ShutdownSignal>,
    /// The pipeline's records in memory, by which a sink's long stretches
    /// of work on a batch give way (`None` outside a pipeline).
    memory: Option<Arc<crate::pipeline::Memory>>,
}

impl ExportContext {
    /// A context with no shutdown in sight.
    pub fn new() -> Self {
        Self::default()
    }

    /// The context of the pipeline whose records are `memory`.
    pub(crate) fn of_pipeline(memory: Arc<crate::pipeline::Memory>) -> Self {
        ExportContext { memory: Some(memory), ..Self::default() }
    }

    /// A stretch of work on a batch that gives way to the application's
    /// threads as the pipeline's own steps do (see `pipeline::pace`).
    pub(crate) fn pace(&self) -> crate::pipeline::Pace {
        crate::pipeline::Pace::new(self.memory.clone())
    }

    /// When the pipeline must be done, once it is shutting down.
    pub fn deadline(&self) -> Option<Instant> {
        *self.signal.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the shutdown: sets the deadline and wakes every [`sleep`](Self::sleep).
    pub fn set_deadline(&self, deadline: Instant) {
        *self.signal.deadline.lock().unwrap_or_else(|p| p.into_inner()) = Some(deadline);
        self.signal.notify.notify_waiters();
    }

    /// Resolves once a shutdown deadline is set.
    pub async fn shutdown_requested(&self) {
        loop {
            let notified = self.signal.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.deadline().is_some() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when the shutdown deadline has passed (never, if no
    /// shutdown starts). Race work against it to stop in time.
    pub async fn deadline_passed(&self) {
        loop {
            match self.deadline() {
                Some(d) => return tokio::time::sleep_until(d.into()).await,
                None => self.shutdown_requested().await,
            }
        }
    }

    /// Sleeps for `duration`, or less when a shutdown starts meanwhile.
    /// Returns `false` when cut short.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => true,
            _ = self.shutdown_requested() => false,
        }
    }
}

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How long to wait before retry number `attempt` (from 0): exponential
/// from 100 ms to 10 s, with jitter in the upper half.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16)).min(BACKOFF_MAX);
    let half = exp / 2;
    half + Duration::from_micros(fastrand::u64(0..=half.as_micros() as u64))
}

/// Why a built-in sink could not be built.
///
/// ```
/// let config = anosys::Config::builder().api_url("http://127.0.0.1:9/log").build()?;
/// let config_without_url = anosys::Config::default();
/// assert!(anosys::sinks::AnosysSink::new(&config).is_ok());
/// let err = anosys::sinks::AnosysSink::new(&config_without_url).unwrap_err();
/// assert!(matches!(err, anosys::sinks::SinkError::MissingCredentials));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The AnoSys sink was chosen without a key or URL.
    #[error("the AnoSys sink needs ANOSYS_API_KEY or ANOSYS_API_URL")]
    MissingCredentials,
    /// The HTTP client could not be built (TLS roots, resolver).
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] crate::net::ClientError),
    /// The sink needs a feature this build leaves out.
    #[error("the {0} sink needs the `{0}` feature, which this build leaves out")]
    NotInThisBuild(crate::config::SinkKind),
    /// The pipeline would have no sink at all.
    #[error("no sink configured (ANOSYS_SINKS, or a sink added to the pipeline builder)")]
    NoSink,
}

/// A place records are delivered to.
///
/// ```
/// use anosys::sinks::{BoxFuture, ExportContext, ExportReport, Sink};
/// use anosys::Record;
/// use std::sync::{Arc, Mutex};
///
/// /// Keeps records in memory.
/// struct Memory(Arc<Mutex<Vec<Record>>>);
///
/// impl Sink for Memory {
///     fn name(&self) -> &str { "memory" }
///     fn export<'a>(&'a self, batch: &'a [Record], _: ExportContext) -> BoxFuture<'a, ExportReport> {
///         self.0.lock().unwrap().extend_from_slice(batch);
///         Box::pin(async { ExportReport::default() })
///     }
/// }
/// ```
pub trait Sink: Send + Sync + 'static {
    /// Short name for diagnostics.
    fn name(&self) -> &str;

    /// Delivers a batch, in one attempt: what is worth another try goes in
    /// [`ExportReport::retry`], and the pipeline tries again later (from
    /// the durable outbox when the sink has a [`destination`](Self::destination)).
    /// Runs on the pipeline's background thread, on the sink's own task, never
    /// on the caller's thread. Must not panic; a panic is caught and the
    /// batch counted as failed.
    fn export<'a>(&'a self, batch: &'a [Record], cx: ExportContext) -> BoxFuture<'a, ExportReport>;

    /// [`export`](Self::export) of a batch the sink may keep past the
    /// call (the pipeline shares its batches this way): a sink can then
    /// hand the records to other threads, as the AnoSys sink encodes them
    /// off the background thread. The default calls `export`.
    fn export_shared(&self, batch: Arc<[Record]>, cx: ExportContext) -> BoxFuture<'_, ExportReport> {
        Box::pin(async move { self.export(&batch, cx).await })
    }

    /// Shown every record once, on the background thread, after the
    /// engine prepared it (priced, redacted) and before sampling decides
    /// whether it is exported: a sink that aggregates (the OTLP sink's
    /// metrics) counts every call here, sampled out or not, and never
    /// twice (a batch sent again from the outbox is not shown again).
    /// Must be quick and must not panic. The default does nothing.
    fn observe(&self, _records: &[&Record]) {}

    /// For a remote sink, where it sends: records it cannot deliver now are
    /// kept on disk under this identity (the embedded store's outbox) and
    /// sent when the destination answers again, by this process or the
    /// next one using the same store. `None` (the default) for local sinks.
    fn destination(&self) -> Option<Destination> {
        None
    }

    /// How this sink keeps records in its outbox when not as records: a
    /// sink that sends each record in an encoded form of its own can keep
    /// that, ready to send again with [`export_wire`](Self::export_wire)
    /// (the AnoSys sink keeps its request bodies). `None` (the default)
    /// keeps the records.
    fn wire_encoder(&self) -> Option<Arc<dyn outbox::WireEncoder>> {
        None
    }

    /// Sends bodies its [`wire_encoder`](Self::wire_encoder) made (kept in
    /// the outbox), in one attempt, reporting by position like
    /// [`export`](Self::export). The default, for sinks that never make
    /// any, asks for another try of each (never a lost record).
    fn export_wire(&self, bodies: Arc<[bytes::Bytes]>, _cx: ExportContext) -> BoxFuture<'_, ExportReport> {
        Box::pin(async move { ExportReport::retry_all(bodies.len()) })
    }

    /// Called once on the background thread when the pipeline starts, and
    /// run alongside it (the AnoSys sink resolves its key here).
    fn start(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Called once when the pipeline shuts down, after the last batch.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// One line saying where records go, printed once at start.
    fn describe(&self) -> String {
        format!("records go to the {} sink", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) <= BACKOFF_BASE);
        assert!(backoff(3) >= BACKOFF_BASE * 4);
        assert!(backoff(40) <= BACKOFF_MAX);
    }
}
