//! Sinks: where records end up. Every sink implements [`Sink`]; the
//! pipeline hands each one batches of finished records.
//!
//! Shipped: [`AnosysSink`] (the AnoSys HTTP API, which owns the AnoSys
//! encoding), [`JsonlSink`] (a JSON-lines file, the embedded default) and
//! [`StdoutSink`] (readable lines). Several can run together.

pub mod anosys;
mod jsonl;
mod stdout;

use std::future::Future;
use std::pin::Pin;

pub use anosys::AnosysSink;
pub use jsonl::JsonlSink;
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

/// Information the pipeline passes with every batch.
#[derive(Debug, Clone, Copy)]
pub struct ExportContext {
    /// Set during shutdown: the sink should stop retrying by then and keep
    /// what it could not deliver in its fallback.
    pub deadline: Option<std::time::Instant>,
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
