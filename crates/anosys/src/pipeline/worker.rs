//! The background thread: its own current-thread Tokio runtime, batching
//! by count, bytes and time, export to every sink with panics contained.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::queue::Queue;
use super::{limits, AtomicCounters, Control};
use crate::diag::{self, LogLevel};
use crate::record::{Record, Resource};
use crate::sinks::{ExportContext, ExportReport, Sink};

pub(super) struct Settings {
    pub batch_size: usize,
    pub max_batch_bytes: usize,
    pub flush_interval: Duration,
    pub max_attribute_bytes: usize,
    pub log_level: diag::LogLevel,
    pub resource: Arc<Resource>,
    pub cx: ExportContext,
}

pub(super) fn spawn(
    queue: Arc<Queue>,
    control: mpsc::UnboundedReceiver<Control>,
    sinks: Vec<Arc<dyn Sink>>,
    counters: Arc<AtomicCounters>,
    settings: Settings,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    // The pipeline's own log level on every thread that does its work.
    let level = settings.log_level;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || diag::set_thread_level(level))
        .build()?;
    std::thread::Builder::new().name("anosys-worker".into()).spawn(move || {
        diag::set_thread_level(level);
        // The HTTP stack the sinks use (hyper, h2) emits `tracing` spans and
        // events. Where the application sends its tracing spans into anosys
        // (tracing-opentelemetry + AnosysSpanExporter), they would come back
        // here as records, be delivered, emit more: a feedback loop. The
        // worker's own telemetry goes nowhere.
        #[cfg(feature = "otel")]
        let _silenced = tracing::subscriber::set_default(tracing::subscriber::NoSubscriber::default());
        let worker = Worker { queue, sinks, counters, settings };
        runtime.block_on(worker.run(control));
        // Let retries still in flight (after a missed deadline) end quietly.
        runtime.shutdown_timeout(Duration::from_millis(100));
    })
}

struct Worker {
    queue: Arc<Queue>,
    sinks: Vec<Arc<dyn Sink>>,
    counters: Arc<AtomicCounters>,
    settings: Settings,
}

impl Worker {
    async fn run(self, mut control: mpsc::UnboundedReceiver<Control>) {
        for sink in &self.sinks {
            let sink = sink.clone();
            tokio::spawn(async move { sink.start().await });
        }
        let interval = self.settings.flush_interval;
        let mut next_tick = tokio::time::Instant::now() + interval;
        loop {
            tokio::select! {
                biased;
                ctl = control.recv() => match ctl {
                    Some(Control::Flush(reply)) => {
                        self.drain().await;
                        let _ = reply.try_send(());
                        continue;
                    }
                    Some(Control::Shutdown { deadline, reply }) => {
                        self.drain().await;
                        for sink in &self.sinks {
                            let _ = tokio::time::timeout_at(deadline.into(), sink.shutdown()).await;
                        }
                        let _ = reply.try_send(());
                        return;
                    }
                    None => {
                        // Every handle is gone: deliver what is left and stop.
                        self.drain().await;
                        return;
                    }
                },
                _ = self.queue.notify.notified() => {}
                _ = tokio::time::sleep_until(next_tick) => {}
            }
            self.queue.rearm();
            while self.queue.len() >= self.settings.batch_size {
                let batch = self.take_batch();
                self.export(batch).await;
            }
            if tokio::time::Instant::now() >= next_tick {
                self.drain().await;
                next_tick = tokio::time::Instant::now() + interval;
            }
        }
    }

    /// Up to one batch: by count, and by approximate bytes.
    fn take_batch(&self) -> Vec<Record> {
        let mut batch = Vec::with_capacity(self.settings.batch_size.min(self.queue.len().max(1)));
        let mut bytes = 0;
        while batch.len() < self.settings.batch_size && bytes < self.settings.max_batch_bytes {
            match self.queue.pop() {
                Some(r) => {
                    bytes += r.approx_size();
                    batch.push(r);
                }
                None => break,
            }
        }
        batch
    }

    /// Exports everything queued right now, in batches.
    async fn drain(&self) {
        loop {
            let batch = self.take_batch();
            if batch.is_empty() {
                return;
            }
            self.export(batch).await;
        }
    }

    async fn export(&self, mut records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let mut cut = 0;
        for r in &mut records {
            if r.resource.is_none() {
                r.resource = Some(self.settings.resource.clone());
            }
            cut += limits::cap_record(r, self.settings.max_attribute_bytes);
        }
        if cut > 0 {
            diag::once("truncated", LogLevel::Info, || {
                format!(
                    "values above {} bytes are cut, with a visible marker (ANOSYS_MAX_ATTRIBUTE_BYTES)",
                    self.settings.max_attribute_bytes
                )
            });
        }
        let n = records.len();
        let records = Arc::new(records);
        let mut total = ExportReport::default();
        for sink in &self.sinks {
            let (sink, batch, cx) = (sink.clone(), records.clone(), self.settings.cx.clone());
            let name = sink.name().to_owned();
            let report = match tokio::spawn(async move { sink.export(&batch, cx).await }).await {
                Ok(r) => r,
                Err(_) => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    diag::once(&format!("panic-{name}"), LogLevel::Error, || {
                        format!("the {name} sink panicked; its batches are counted as failed")
                    });
                    ExportReport { failed: n, ..Default::default() }
                }
            };
            total.failed = total.failed.max(report.failed.min(n));
            total.kept_in_fallback = total.kept_in_fallback.max(report.kept_in_fallback.min(n));
            total.retried += report.retried;
        }
        let kept = total.kept_in_fallback.min(n - total.failed);
        let c = &self.counters;
        c.retried.fetch_add(total.retried as u64, Ordering::Relaxed);
        c.failed.fetch_add(total.failed as u64, Ordering::Relaxed);
        c.kept_in_fallback.fetch_add(kept as u64, Ordering::Relaxed);
        c.delivered.fetch_add((n - total.failed - kept) as u64, Ordering::Release);
    }
}
