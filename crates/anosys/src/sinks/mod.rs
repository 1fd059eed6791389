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

/// What became of one exported batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportReport {
    /// Records this sink could not deliver and did not keep anywhere.
    pub failed: usize,
    /// Records this sink could not deliver but kept in its fallback (the
    /// embedded sink).
    pub kept_in_fallback: usize,
    /// Delivery attempts repeated after a retryable failure.
    pub retried: usize,
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
}

impl ExportContext {
    /// A context with no shutdown in sight.
    pub fn new() -> Self {
        Self::default()
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

/// Hands records a sink could not deliver to its fallback (counted as kept,
/// or as failed if the fallback fails too); with no fallback they are
/// counted as failed.
pub(crate) async fn keep_in(
    fallback: Option<&Arc<dyn Sink>>,
    records: Vec<Record>,
    cx: ExportContext,
    report: &mut ExportReport,
) {
    if records.is_empty() {
        return;
    }
    match fallback {
        Some(fallback) => {
            let n = records.len();
            let r = fallback.export(&records, cx).await;
            report.failed += r.failed;
            report.kept_in_fallback += n - r.failed.min(n);
        }
        None => report.failed += records.len(),
    }
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
    HttpClient(#[source] reqwest::Error),
    /// The sink needs a feature this build leaves out.
    #[error("the {0} sink needs the `{0}` feature, which this build leaves out")]
    NotInThisBuild(crate::config::SinkKind),
    /// The pipeline would have no sink at all.
    #[error("no sink configured (ANOSYS_SINKS, or a sink added to the pipeline builder)")]
    NoSink,
}

/// A destination for records.
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

    /// Delivers a batch. Runs on the pipeline's background thread, never on
    /// the caller's. Must not panic; a panic is caught and the batch counted
    /// as failed.
    fn export<'a>(&'a self, batch: &'a [Record], cx: ExportContext) -> BoxFuture<'a, ExportReport>;

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
