//! The background thread: its own current-thread Tokio runtime, batching
//! by count, bytes and time, and handing each batch to every sink's lane
//! (see [`lane`](super::lane)); the lanes deliver on their own tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::batch::{Batch, Memory};
use super::lane::{LaneHandle, LaneSettings};
use super::queue::Queue;
use super::{limits, AtomicCounters, Control};
use crate::diag::{self, LogLevel};
use crate::record::{Record, Resource};
use crate::sinks::{ExportContext, Sink};

pub(super) struct Settings {
    pub batch_size: usize,
    pub max_batch_bytes: usize,
    pub flush_interval: Duration,
    pub max_attribute_bytes: usize,
    pub log_level: diag::LogLevel,
    pub resource: Arc<Resource>,
    pub cx: ExportContext,
    pub lanes: LaneSettings,
}

pub(super) fn spawn(
    queue: Arc<Queue>,
    memory: Arc<Memory>,
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
        runtime.block_on(async move {
            for sink in &sinks {
                let sink = sink.clone();
                tokio::spawn(async move { sink.start().await });
            }
            let lanes = sinks
                .into_iter()
                .map(|sink| LaneHandle::spawn(sink, counters.clone(), settings.cx.clone(), &settings.lanes))
                .collect();
            let worker = Worker { queue, memory, lanes, counters, settings };
            worker.run(control).await;
        });
        // Let exports still in flight (after a missed deadline) end quietly.
        runtime.shutdown_timeout(Duration::from_millis(100));
    })
}

struct Worker {
    queue: Arc<Queue>,
    memory: Arc<Memory>,
    lanes: Vec<LaneHandle>,
    counters: Arc<AtomicCounters>,
    settings: Settings,
}

impl Worker {
    async fn run(self, mut control: mpsc::UnboundedReceiver<Control>) {
        let interval = self.settings.flush_interval;
        let mut next_tick = tokio::time::Instant::now() + interval;
        loop {
            tokio::select! {
                biased;
                ctl = control.recv() => match ctl {
                    Some(Control::Flush { deadline, reply }) => {
                        self.drain();
                        let waits: Vec<_> = self.lanes.iter().map(|l| l.flush(deadline)).collect();
                        tokio::spawn(async move {
                            for w in waits {
                                let _ = w.await;
                            }
                            let _ = reply.try_send(());
                        });
                        continue;
                    }
                    Some(Control::Shutdown { deadline, reply }) => {
                        self.drain();
                        let waits: Vec<_> = self.lanes.iter().map(|l| l.shutdown(deadline)).collect();
                        let _ = tokio::time::timeout_at(deadline.into(), async {
                            for w in waits {
                                let _ = w.await;
                            }
                        })
                        .await;
                        let _ = reply.try_send(());
                        return;
                    }
                    None => {
                        // Every handle is gone: hand over what is left and stop.
                        self.drain();
                        let deadline = Instant::now() + Duration::from_secs(5);
                        let waits: Vec<_> = self.lanes.iter().map(|l| l.shutdown(deadline)).collect();
                        let _ = tokio::time::timeout_at(deadline.into(), async {
                            for w in waits {
                                let _ = w.await;
                            }
                        })
                        .await;
                        return;
                    }
                },
                _ = self.queue.notify.notified() => {}
                _ = tokio::time::sleep_until(next_tick) => {}
            }
            self.queue.rearm();
            while self.queue.len() >= self.settings.batch_size {
                let batch = self.take_batch();
                self.dispatch(batch);
            }
            if tokio::time::Instant::now() >= next_tick {
                self.drain();
                next_tick = tokio::time::Instant::now() + interval;
            }
        }
    }

    /// Up to one batch: by count, and by approximate bytes.
    fn take_batch(&self) -> (Vec<Record>, usize) {
        let mut batch = Vec::with_capacity(self.settings.batch_size.min(self.queue.len().max(1)));
        let mut bytes = 0;
        while batch.len() < self.settings.batch_size && bytes < self.settings.max_batch_bytes {
            match self.queue.pop() {
                Some((r, size)) => {
                    bytes += size;
                    batch.push(r);
                }
                None => break,
            }
        }
        (batch, bytes)
    }

    /// Hands everything queued right now to the lanes, in batches.
    fn drain(&self) {
        loop {
            let batch = self.take_batch();
            if batch.0.is_empty() {
                return;
            }
            self.dispatch(batch);
        }
    }

    fn dispatch(&self, (mut records, bytes): (Vec<Record>, usize)) {
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
        let batch = Arc::new(Batch::new(records, bytes, self.lanes.len(), self.memory.clone(), self.counters.clone()));
        for lane in &self.lanes {
            lane.offer(batch.clone());
        }
    }
}
