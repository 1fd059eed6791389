//! The background thread: its own current-thread Tokio runtime, batching
//! by count, bytes and time, and handing each batch to every sink's lane
//! (see [`lane`](super::lane)); the lanes deliver on their own tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use std::sync::atomic::Ordering;

use super::batch::{Batch, Memory};
use super::pace::Pace;
use super::lane::{LaneHandle, LaneSettings};
use super::process::{Prepared, Steps};
use super::queue::Queue;
use super::sample::Sorted;
use super::{AtomicCounters, Control};
use crate::diag::{self, LogLevel};
use crate::record::{Record, Resource};
use crate::sinks::{ExportContext, Sink};

pub(super) struct Settings {
    pub batch_size: usize,
    pub max_batch_bytes: usize,
    pub flush_interval: Duration,
    pub max_attribute_bytes: usize,
    pub steps: Steps,
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
            let observers = sinks.clone();
            let lanes = sinks
                .into_iter()
                .map(|sink| LaneHandle::spawn(sink, counters.clone(), settings.cx.clone(), &settings.lanes))
                .collect();
            let worker = Worker { queue, memory, lanes, observers, counters, settings };
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
    /// The sinks, each shown every record (for metrics) before sampling.
    observers: Vec<Arc<dyn Sink>>,
    counters: Arc<AtomicCounters>,
    settings: Settings,
}

impl Worker {
    async fn run(mut self, mut control: mpsc::UnboundedReceiver<Control>) {
        let interval = self.settings.flush_interval;
        let mut next_tick = tokio::time::Instant::now() + interval;
        loop {
            tokio::select! {
                biased;
                ctl = control.recv() => match ctl {
                    Some(Control::Flush { deadline, reply }) => {
                        self.drain().await;
                        self.release_held(true);
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
                        self.drain().await;
                        self.release_held(true);
                        let waits: Vec<_> = self.lanes.iter().map(|l| l.shutdown(deadline)).collect();
                        let _ = tokio::time::timeout_at(deadline.into(), async {
                            for w in waits {
                                let _ = w.await;
                            }
                        })
                        .await;
                        // Nothing more will be captured: nothing waits to be freed.
                        self.memory.spent.free_if_idle(true);
                        let _ = reply.try_send(());
                        return;
                    }
                    None => {
                        // Every handle is gone: hand over what is left and stop.
                        self.drain().await;
                        self.release_held(true);
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
                self.dispatch(batch).await;
            }
            if tokio::time::Instant::now() >= next_tick {
                self.drain().await;
                self.release_held(false);
                // Records no capture came to free within an interval.
                self.memory.spent.free_if_idle(false);
                next_tick = tokio::time::Instant::now() + interval;
            }
        }
    }

    /// Up to one batch: by count, and by approximate bytes.
    fn take_batch(&self) -> Vec<(Record, usize)> {
        let mut batch = Vec::with_capacity(self.settings.batch_size.min(self.queue.len().max(1)));
        let mut bytes = 0;
        while batch.len() < self.settings.batch_size && bytes < self.settings.max_batch_bytes {
            match self.queue.pop() {
                Some((r, size)) => {
                    bytes += size;
                    batch.push((r, size));
                }
                None => break,
            }
        }
        batch
    }

    /// Hands everything queued right now to the lanes, in batches.
    async fn drain(&mut self) {
        loop {
            let batch = self.take_batch();
            if batch.is_empty() {
                return;
            }
            self.dispatch(batch).await;
        }
    }

    /// Prepares each record (see [`Prepare`](super::process::Prepare)) on
    /// the blocking pool, shows it to the sinks' metrics, samples, and
    /// hands what is kept to every lane. Batches are prepared one after
    /// another, so they reach the lanes in the order they were captured;
    /// while one is prepared, this thread goes on sending the ones before
    /// it.
    async fn dispatch(&mut self, records: Vec<(Record, usize)>) {
        if records.is_empty() {
            return;
        }
        let (n, bytes) = (records.len(), records.iter().map(|(_, size)| size).sum::<usize>());
        let prepare = self.settings.steps.prepare.clone();
        let resource = self.settings.resource.clone();
        let pace = Pace::new(Some(self.memory.clone()));
        let done = tokio::task::spawn_blocking(move || prepare_all(|r| prepare.record(r), &resource, records, pace));
        let (records, totals) = match done.await {
            Ok(done) => done,
            Err(_) => {
                // Not expected: a step that panics is caught record by record.
                self.lost(n, bytes);
                return;
            }
        };
        if totals.cost_nano_usd > 0 {
            self.counters.cost_nano_usd.fetch_add(totals.cost_nano_usd, Ordering::Relaxed);
        }
        if totals.unpriced > 0 {
            self.counters.unpriced.fetch_add(totals.unpriced, Ordering::Relaxed);
        }
        if totals.panicked > 0 {
            self.lost(totals.panicked, totals.panicked_bytes);
        }
        if totals.cut > 0 {
            diag::once("truncated", LogLevel::Info, || {
                format!(
                    "values above {} bytes are cut, with a visible marker (ANOSYS_MAX_ATTRIBUTE_BYTES)",
                    self.settings.max_attribute_bytes
                )
            });
        }
        if records.is_empty() {
            return;
        }
        let shown: Vec<&Record> = records.iter().map(|(r, _)| r).collect();
        for sink in &self.observers {
            sink.observe(&shown);
        }
        drop(shown);
        let mut sorted = Sorted::default();
        self.settings.steps.sample(records, Instant::now(), &mut sorted);
        self.hand_over(sorted);
    }

    /// Counts `n` records a step panicked on as dropped: what such a
    /// record holds may be half redacted, so it goes nowhere.
    fn lost(&self, n: usize, bytes: usize) {
        self.memory.release(n, bytes);
        self.counters.dropped.fetch_add(n as u64, Ordering::Relaxed);
        diag::once("step-panicked", LogLevel::Warn, || {
            "a record's processing (hiding, pricing, redaction) panicked; the record is dropped and counted".into()
        });
    }

    /// Decides what the sampler holds: all of it, or what waited too long.
    fn release_held(&mut self, all: bool) {
        let mut sorted = Sorted::default();
        self.settings.steps.release_held(all, Instant::now(), &mut sorted);
        self.hand_over(sorted);
    }

    /// Lets go of what sampling dropped (counted) and sends the rest on.
    fn hand_over(&self, sorted: Sorted) {
        if !sorted.dropped.is_empty() {
            let bytes = sorted.dropped.iter().map(|(_, size)| size).sum();
            self.memory.release(sorted.dropped.len(), bytes);
            self.counters.sampled_out.fetch_add(sorted.dropped.len() as u64, Ordering::Relaxed);
        }
        if sorted.kept.is_empty() {
            return;
        }
        // What the sampler held can come out at once: batches of the usual size.
        let mut kept = sorted.kept.into_iter().peekable();
        while kept.peek().is_some() {
            let mut bytes = 0;
            let records: Vec<Record> = kept
                .by_ref()
                .take(self.settings.batch_size)
                .map(|(r, size)| {
                    bytes += size;
                    r
                })
                .collect();
            let batch = Arc::new(Batch::new(records, bytes, self.lanes.len(), self.memory.clone(), self.counters.clone()));
            for lane in &self.lanes {
                lane.offer(batch.clone());
            }
        }
    }
}

/// What [`prepare_all`] added up over a batch.
#[derive(Debug, Default)]
struct Totals {
    cut: usize,
    cost_nano_usd: u64,
    unpriced: u64,
    panicked: usize,
    panicked_bytes: usize,
}

/// The steps (those of [`Prepare`](super::process::Prepare)) on every record of a batch, on the
/// blocking pool, each record on its own: one whose steps panic is left
/// out and counted, the others go on.
fn prepare_all(
    steps: impl Fn(&mut Record) -> Prepared,
    resource: &Arc<Resource>,
    mut records: Vec<(Record, usize)>,
    mut pace: Pace,
) -> (Vec<(Record, usize)>, Totals) {
    let mut totals = Totals::default();
    records.retain_mut(|(record, size)| {
        pace.between();
        if record.resource.is_none() {
            record.resource = Some(resource.clone());
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| steps(record))) {
            Ok(Prepared { cut, cost_nano_usd, unpriced }) => {
                totals.cut += cut;
                totals.cost_nano_usd += cost_nano_usd.unwrap_or(0);
                totals.unpriced += u64::from(unpriced);
                true
            }
            Err(_) => {
                totals.panicked += 1;
                totals.panicked_bytes += *size;
                false
            }
        }
    });
    (records, totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKind;

    #[test]
    fn a_record_whose_steps_panic_is_left_out_and_counted_and_the_rest_go_on() {
        let resource = Arc::new(Resource::default());
        let records = ["first", "poisoned", "third"]
            .into_iter()
            .enumerate()
            .map(|(i, name)| (Record::new(RecordKind::Raw, name), 100 + i))
            .collect();
        let (kept, totals) = prepare_all(
            |r| {
                assert_ne!(r.name, "poisoned", "a step panics on this record");
                r.set_attribute("prepared", true);
                Prepared { cut: 1, cost_nano_usd: Some(5), unpriced: true }
            },
            &resource,
            records,
            Pace::new(None),
        );
        let names: Vec<&str> = kept.iter().map(|(r, _)| r.name.as_str()).collect();
        assert_eq!(names, ["first", "third"]);
        assert!(kept.iter().all(|(r, _)| r.attribute("prepared").is_some() && r.resource.is_some()));
        assert_eq!(kept.iter().map(|(_, size)| *size).collect::<Vec<_>>(), [100, 102]);
        assert_eq!((totals.panicked, totals.panicked_bytes), (1, 101));
        assert_eq!((totals.cut, totals.cost_nano_usd, totals.unpriced), (2, 10, 2));
    }
}
