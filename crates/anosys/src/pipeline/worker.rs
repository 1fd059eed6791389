//! The background thread: its own current-thread Tokio runtime, batching
//! by count, bytes and time, export to every sink with panics contained.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{limits, AtomicCounters, Control};
use crate::diag::{self, LogLevel};
use crate::record::{Record, Resource};
use crate::sinks::{ExportContext, ExportReport, Sink};

pub(super) struct Settings {
    pub batch_size: usize,
    pub max_batch_bytes: usize,
    pub flush_interval: Duration,
    pub max_attribute_bytes: usize,
    pub resource: Arc<Resource>,
}

pub(super) fn spawn(
    rx: mpsc::Receiver<Record>,
    control: mpsc::UnboundedReceiver<Control>,
    sinks: Vec<Arc<dyn Sink>>,
    counters: Arc<AtomicCounters>,
    settings: Settings,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("anosys-worker".into()).spawn(move || {
        let worker = Worker { sinks, counters, settings };
        runtime.block_on(worker.run(rx, control));
        // Let retries still in flight (after a missed deadline) end quietly.
        runtime.shutdown_timeout(Duration::from_millis(100));
    })
}

struct Worker {
    sinks: Vec<Arc<dyn Sink>>,
    counters: Arc<AtomicCounters>,
    settings: Settings,
}

struct Batch {
    records: Vec<Record>,
    bytes: usize,
    counted: usize,
    due: Option<tokio::time::Instant>,
}

impl Batch {
    /// Accounts for records appended since the last call.
    fn account(&mut self, interval: Duration) {
        for r in &self.records[self.counted..] {
            self.bytes += r.approx_size();
        }
        self.counted = self.records.len();
        if self.due.is_none() && !self.records.is_empty() {
            self.due = Some(tokio::time::Instant::now() + interval);
        }
    }

    fn take(&mut self) -> Vec<Record> {
        self.bytes = 0;
        self.counted = 0;
        self.due = None;
        std::mem::take(&mut self.records)
    }
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Record>, mut control: mpsc::UnboundedReceiver<Control>) {
        for sink in &self.sinks {
            let sink = sink.clone();
            tokio::spawn(async move { sink.start().await });
        }
        let s = &self.settings;
        let mut batch = Batch { records: Vec::with_capacity(s.batch_size), bytes: 0, counted: 0, due: None };
        loop {
            let due = batch.due;
            let room = s.batch_size.saturating_sub(batch.records.len()).max(1);
            tokio::select! {
                biased;
                Some(ctl) = control.recv() => match ctl {
                    Control::Flush(reply) => {
                        self.drain(&mut rx, &mut batch, None).await;
                        let _ = reply.try_send(());
                    }
                    Control::Shutdown { deadline, reply } => {
                        rx.close();
                        self.drain(&mut rx, &mut batch, Some(deadline)).await;
                        for sink in &self.sinks {
                            let _ = tokio::time::timeout_at(deadline.into(), sink.shutdown()).await;
                        }
                        let _ = reply.try_send(());
                        return;
                    }
                },
                n = rx.recv_many(&mut batch.records, room) => {
                    if n == 0 {
                        // Every sender is gone: deliver what is left and stop.
                        self.drain(&mut rx, &mut batch, None).await;
                        return;
                    }
                    batch.account(s.flush_interval);
                    if batch.records.len() >= s.batch_size || batch.bytes >= s.max_batch_bytes {
                        self.export(batch.take(), None).await;
                    }
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                    self.export(batch.take(), None).await;
                }
            }
        }
    }

    /// Exports everything queued right now, in batches.
    async fn drain(&self, rx: &mut mpsc::Receiver<Record>, batch: &mut Batch, deadline: Option<Instant>) {
        loop {
            while batch.records.len() < self.settings.batch_size {
                match rx.try_recv() {
                    Ok(r) => batch.records.push(r),
                    Err(_) => break,
                }
            }
            if batch.records.is_empty() {
                return;
            }
            batch.account(self.settings.flush_interval);
            self.export(batch.take(), deadline).await;
        }
    }

    async fn export(&self, mut records: Vec<Record>, deadline: Option<Instant>) {
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
        let cx = ExportContext { deadline };
        let mut total = ExportReport::default();
        for sink in &self.sinks {
            let (sink, batch) = (sink.clone(), records.clone());
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
