//! One lane per sink: its own task and its own bounded buffer, so a down,
//! slow or panicking sink never holds up another one, a flush or the
//! caller.
//!
//! A remote sink's lane has a durable outbox (the embedded store): a batch
//! it cannot deliver now (connection refused, timeout, 5xx, 429), or one
//! that arrives while the destination is known to be down or the lane's
//! buffer is full, is written there at once. The lane drains the outbox,
//! oldest first with backoff, as soon as the destination answers again,
//! and at start (records kept by an earlier process). Without an outbox
//! (off, not in this build, or its store unusable) a batch is retried in
//! memory for `ANOSYS_RETRY_MAX_ELAPSED_MS`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::batch::{Batch, Outcome};
use super::AtomicCounters;
use crate::diag::{self, LogLevel};
use crate::record::Record;
use crate::sinks::{backoff, ExportContext, ExportReport, Sink};

pub(crate) enum LaneMsg {
    Batch(Arc<Batch>),
    Flush(oneshot::Sender<()>),
    /// Rows were written to the lane's outbox from outside the lane (a
    /// batch spilled because the lane was full): drain them.
    Backlog,
    Shutdown { deadline: Instant, reply: oneshot::Sender<()> },
}

/// The dispatcher's side of a lane.
pub(crate) struct LaneHandle {
    pub name: String,
    tx: mpsc::UnboundedSender<LaneMsg>,
    held: Arc<AtomicUsize>,
    held_records: Arc<AtomicUsize>,
    max_held: usize,
    max_held_records: usize,
    outbox: Option<Arc<store::OutboxCell>>,
    counters: Arc<AtomicCounters>,
}

pub(crate) struct LaneSettings {
    pub batch_size: usize,
    pub max_held: usize,
    pub max_held_records: usize,
    pub retry_max_elapsed: Duration,
    pub request_timeout: Duration,
    pub outbox: Option<(std::path::PathBuf, usize)>,
}

impl LaneHandle {
    /// Starts the lane of `sink` on the current runtime.
    pub(crate) fn spawn(
        sink: Arc<dyn Sink>,
        counters: Arc<AtomicCounters>,
        cx: ExportContext,
        settings: &LaneSettings,
    ) -> LaneHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let held = Arc::new(AtomicUsize::new(0));
        let held_records = Arc::new(AtomicUsize::new(0));
        let outbox = store::cell(&*sink, settings);
        let lane = Lane {
            name: sink.name().to_owned(),
            sink,
            rx,
            held: held.clone(),
            held_records: held_records.clone(),
            outbox: outbox.clone(),
            counters: counters.clone(),
            cx,
            batch_size: settings.batch_size.max(1),
            retry_max_elapsed: settings.retry_max_elapsed,
            lease: Duration::from_secs(30) + settings.request_timeout * 2,
            attempt: 0,
            down_until: None,
            // Rows kept by an earlier process: only where a store exists
            // (a healthy start never creates one).
            backlog: outbox.is_some() && settings.outbox.as_ref().is_some_and(|(path, _)| path.exists()),
            stopping: false,
        };
        let name = lane.name.clone();
        tokio::spawn(lane.run());
        // A sink with an outbox spills to it past its share of memory; one
        // without (a local sink) may use all of it, since dropping sooner
        // would save nothing.
        let (max_held, max_held_records) = match outbox {
            Some(_) => (settings.max_held, settings.max_held_records),
            None => (usize::MAX, usize::MAX),
        };
        LaneHandle { name, tx, held, held_records, max_held, max_held_records, outbox, counters }
    }

    /// Hands the lane a batch; when its buffer is full the batch goes to
    /// the outbox instead (or is dropped and counted, with none).
    pub(crate) fn offer(&self, batch: Arc<Batch>) {
        let held = self.held.load(Ordering::Acquire);
        let held_records = self.held_records.load(Ordering::Acquire);
        let full = held + batch.bytes > self.max_held || held_records + batch.records.len() > self.max_held_records;
        if held_records > 0 && full {
            let name = self.name.clone();
            match &self.outbox {
                Some(outbox) => {
                    let (outbox, counters, lane) = (outbox.clone(), self.counters.clone(), self.tx.clone());
                    tokio::spawn(async move {
                        let all = (0..batch.records.len()).map(|i| (i, false)).collect();
                        let outcome = store::spill(&outbox, &counters, batch.records.clone(), all).await;
                        let kept = outcome.unwrap_or(0);
                        if kept > 0 {
                            let _ = lane.send(LaneMsg::Backlog);
                        }
                        let dropped = batch.records.len() - kept;
                        if dropped > 0 {
                            diag::once(&format!("lane-full-{name}"), LogLevel::Warn, || {
                                format!("the {name} sink is behind and its outbox cannot keep more: records are dropped and counted")
                            });
                        }
                        batch.settle(Outcome { kept, dropped, ..Default::default() });
                    });
                }
                None => {
                    diag::once(&format!("lane-full-{name}"), LogLevel::Warn, || {
                        format!("the {name} sink is behind (its buffer is full): records are dropped and counted (ANOSYS_QUEUE_MAX_BYTES)")
                    });
                    batch.settle(Outcome { dropped: batch.records.len(), ..Default::default() });
                }
            }
            return;
        }
        self.held.fetch_add(batch.bytes, Ordering::AcqRel);
        self.held_records.fetch_add(batch.records.len(), Ordering::AcqRel);
        if let Err(mpsc::error::SendError(LaneMsg::Batch(batch))) = self.tx.send(LaneMsg::Batch(batch)) {
            // The lane is gone (never expected): count, never lose silently.
            self.held.fetch_sub(batch.bytes, Ordering::AcqRel);
            self.held_records.fetch_sub(batch.records.len(), Ordering::AcqRel);
            batch.settle(Outcome { failed: batch.records.len(), ..Default::default() });
        }
    }

    /// Resolves when the lane has dealt with everything offered before.
    pub(crate) fn flush(&self) -> oneshot::Receiver<()> {
        let (reply, done) = oneshot::channel();
        let _ = self.tx.send(LaneMsg::Flush(reply));
        done
    }

    /// Asks the lane to finish by `deadline`; resolves when it has.
    pub(crate) fn shutdown(&self, deadline: Instant) -> oneshot::Receiver<()> {
        let (reply, done) = oneshot::channel();
        let _ = self.tx.send(LaneMsg::Shutdown { deadline, reply });
        done
    }
}

struct Lane {
    name: String,
    sink: Arc<dyn Sink>,
    rx: mpsc::UnboundedReceiver<LaneMsg>,
    held: Arc<AtomicUsize>,
    held_records: Arc<AtomicUsize>,
    outbox: Option<Arc<store::OutboxCell>>,
    counters: Arc<AtomicCounters>,
    cx: ExportContext,
    batch_size: usize,
    retry_max_elapsed: Duration,
    lease: Duration,
    /// Failed attempts in a row.
    attempt: u32,
    /// No attempt before this (the destination is down, or asked to wait).
    down_until: Option<Instant>,
    /// The outbox may hold rows for this destination.
    backlog: bool,
    stopping: bool,
}

impl Lane {
    async fn run(mut self) {
        loop {
            let drain_at = (self.backlog && !self.stopping && self.outbox.is_some())
                .then(|| self.down_until.unwrap_or_else(Instant::now));
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(LaneMsg::Batch(batch)) => {
                        self.deliver(&batch).await;
                        self.held.fetch_sub(batch.bytes, Ordering::AcqRel);
                        self.held_records.fetch_sub(batch.records.len(), Ordering::AcqRel);
                    }
                    Some(LaneMsg::Flush(reply)) => {
                        let _ = reply.send(());
                    }
                    Some(LaneMsg::Backlog) => self.backlog = true,
                    Some(LaneMsg::Shutdown { deadline, reply }) => {
                        self.stopping = true;
                        self.drain_before(deadline).await;
                        let _ = tokio::time::timeout_at(deadline.into(), self.sink.shutdown()).await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                _ = sleep_until_opt(drain_at) => self.drain_some().await,
            }
        }
    }

    /// At shutdown: sends what waits in the outbox while the deadline
    /// leaves time for it and the destination answers (three failed tries
    /// in a row end it); the rest stays there for the next process.
    async fn drain_before(&mut self, deadline: Instant) {
        let mut failures = 0;
        while self.backlog && self.outbox.is_some() && failures < 3 {
            let limit = self.cx.deadline().unwrap_or(deadline).min(deadline);
            let at = self.down_until.unwrap_or_else(Instant::now);
            if at >= limit {
                return;
            }
            tokio::time::sleep_until(at.into()).await;
            let before = self.attempt;
            self.drain_some().await;
            if self.attempt > before {
                failures += 1;
            }
        }
    }

    fn is_down(&self) -> bool {
        self.down_until.is_some_and(|t| Instant::now() < t)
    }

    /// One attempt failed: wait longer before the next.
    fn went_down(&mut self, retry_after: Option<Duration>) {
        let wait = backoff(self.attempt).max(retry_after.unwrap_or_default());
        self.attempt = self.attempt.saturating_add(1);
        self.down_until = Some(Instant::now() + wait);
    }

    fn came_up(&mut self) {
        self.attempt = 0;
        self.down_until = None;
    }

    /// The sink's export of `records` on its own task, a panic contained.
    async fn export(&self, records: Arc<[Record]>) -> Option<ExportReport> {
        let (sink, cx) = (self.sink.clone(), self.cx.clone());
        match tokio::spawn(async move { sink.export_shared(records, cx).await }).await {
            Ok(report) => Some(report),
            Err(_) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                let name = &self.name;
                diag::once(&format!("panic-{name}"), LogLevel::Error, || {
                    format!("the {name} sink panicked; its batches are counted as failed")
                });
                None
            }
        }
    }

    async fn deliver(&mut self, batch: &Arc<Batch>) {
        let n = batch.records.len();
        // The destination is known to be down: straight to the outbox,
        // behind what is already waiting there.
        if (self.is_down() || self.stopping && self.backlog)
            && let Some(outbox) = &self.outbox
        {
            let all = (0..n).map(|i| (i, false)).collect();
            if let Some(kept) = store::spill(outbox, &self.counters, batch.records.clone(), all).await {
                self.backlog = true;
                batch.settle(Outcome { kept, dropped: n - kept, ..Default::default() });
                return;
            }
        }
        let records = batch.records.clone();
        let Some(report) = self.export(records.clone()).await else {
            batch.settle(Outcome { failed: n, ..Default::default() });
            return;
        };
        let mut outcome = Outcome { failed: report.failed.min(n), ..Default::default() };
        if report.retry.is_empty() {
            self.came_up();
            batch.settle(outcome);
            return;
        }
        self.went_down(report.retry_after);
        if let Some(outbox) = &self.outbox {
            let picks = report.retry.iter().map(|&i| (i, report.uncertain.binary_search(&i).is_ok())).collect();
            if let Some(kept) = store::spill(outbox, &self.counters, records.clone(), picks).await {
                self.backlog = true;
                outcome.kept = kept;
                outcome.dropped = report.retry.len() - kept;
                batch.settle(outcome);
                return;
            }
        }
        // No outbox to keep them in: retry in memory, for a while.
        let (failed, kept_trying) = self.retry_in_memory(&records, report).await;
        outcome.failed = (outcome.failed + failed).min(n);
        outcome.dropped = kept_trying;
        batch.settle(outcome);
    }

    /// Retries `report.retry` with backoff until delivered, refused, the
    /// retry budget is spent or a shutdown deadline nears. Returns how many
    /// were refused and how many are given up (counted as dropped).
    async fn retry_in_memory(&mut self, records: &Arc<[Record]>, mut report: ExportReport) -> (usize, usize) {
        let started = Instant::now();
        let mut failed = 0;
        loop {
            let wait = self.down_until.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or_default();
            let out_of_budget = started.elapsed() + wait > self.retry_max_elapsed;
            let past_deadline = self.cx.deadline().is_some_and(|d| Instant::now() + wait >= d);
            if out_of_budget || past_deadline || (!self.cx.sleep(wait).await && self.cx.deadline().is_some_and(|d| Instant::now() + wait >= d)) {
                let name = &self.name;
                diag::once(&format!("gave-up-{name}"), LogLevel::Error, || {
                    format!("the {name} sink could not deliver in time and there is no outbox to keep records in: they are dropped and counted")
                });
                return (failed, report.retry.len());
            }
            self.counters.retried.fetch_add(report.retry.len() as u64, Ordering::Relaxed);
            let again: Arc<[Record]> = report.retry.iter().map(|&i| records[i].clone()).collect();
            let Some(next) = self.export(again).await else {
                return (failed + report.retry.len(), 0);
            };
            failed += next.failed;
            if next.retry.is_empty() {
                self.came_up();
                return (failed, 0);
            }
            self.went_down(next.retry_after);
            report.retry = next.retry.iter().map(|&i| report.retry[i]).collect();
        }
    }

    /// Sends the oldest rows of the outbox that are due.
    async fn drain_some(&mut self) {
        let Some(outbox) = self.outbox.clone() else { return };
        // While the destination is down, probe with a few rows only.
        let limit = if self.attempt > 0 { 8.min(self.batch_size) } else { self.batch_size };
        let claimed = match outbox.claim(limit, self.lease).await {
            Ok(c) => c,
            Err(()) => {
                self.went_down(None);
                return;
            }
        };
        if claimed.rows.is_empty() {
            match claimed.next_due {
                Some(due) => {
                    let wait = due.duration_since(std::time::SystemTime::now()).unwrap_or_default();
                    self.down_until = Some(Instant::now() + wait.max(Duration::from_millis(50)));
                }
                None => self.backlog = false,
            }
            return;
        }
        let mut settle = crate::sinks::outbox::Settle::default();
        let mut ids = Vec::with_capacity(claimed.rows.len());
        let mut uncertain = Vec::with_capacity(claimed.rows.len());
        let mut records = Vec::with_capacity(claimed.rows.len());
        for row in claimed.rows {
            match row.record {
                Ok(r) => {
                    ids.push(row.id);
                    uncertain.push(row.uncertain);
                    records.push(r);
                }
                Err(reason) => {
                    settle.failed.push(row.id);
                    self.counters.outbox_failed.fetch_add(1, Ordering::Relaxed);
                    diag::once("outbox-unreadable", LogLevel::Error, || {
                        format!("a record in the outbox could not be read back ({reason}); it is removed and counted as failed")
                    });
                }
            }
        }
        self.counters.retried.fetch_add(records.len() as u64, Ordering::Relaxed);
        let n = records.len();
        let report = match self.export(records.into()).await {
            Some(r) => r,
            None => ExportReport::failed_all(n),
        };
        let mut retry = vec![false; n];
        for &i in &report.retry {
            if let Some(slot) = retry.get_mut(i) {
                *slot = true;
            }
        }
        let mut duplicates = 0;
        for (i, &id) in ids.iter().enumerate() {
            if retry[i] {
                settle.retry.push((id, report.uncertain.binary_search(&i).is_ok()));
            } else {
                settle.delivered.push(id);
                duplicates += usize::from(uncertain[i]);
            }
        }
        let failed = report.failed.min(settle.delivered.len());
        let delivered = settle.delivered.len() - failed;
        if report.retry.is_empty() {
            self.came_up();
        } else {
            self.went_down(report.retry_after);
            settle.next_try = self.down_until.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or_default();
            settle.error = Some(format!("{} of {n} records not delivered", report.retry.len()));
        }
        let c = &self.counters;
        c.outbox_delivered.fetch_add(delivered as u64, Ordering::Relaxed);
        c.outbox_failed.fetch_add(failed as u64, Ordering::Relaxed);
        c.duplicates.fetch_add(duplicates.min(delivered) as u64, Ordering::Relaxed);
        outbox.settle(settle, &self.counters).await;
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(feature = "sqlite")]
mod store {
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use super::{AtomicCounters, LaneSettings};
    use crate::diag::{self, LogLevel};
    use crate::record::Record;
    use crate::sinks::outbox::{Claimed, Entry, Outbox, OutboxError, Settle};
    use crate::sinks::{Destination, Sink};

    /// A destination's outbox, opened on first use on the blocking pool,
    /// reopened after an error.
    pub(crate) struct OutboxCell {
        path: std::path::PathBuf,
        destination: Destination,
        max_bytes: u64,
        outbox: Mutex<Option<Outbox>>,
    }

    pub(crate) struct Claim {
        pub rows: Vec<Claimed>,
        pub next_due: Option<SystemTime>,
    }

    pub(super) fn cell(sink: &dyn Sink, settings: &LaneSettings) -> Option<Arc<OutboxCell>> {
        let destination = sink.destination()?;
        let (path, max) = settings.outbox.clone()?;
        (max > 0).then(|| {
            Arc::new(OutboxCell { path, destination, max_bytes: max as u64, outbox: Mutex::new(None) })
        })
    }

    impl OutboxCell {
        /// Runs `f` with the outbox on the blocking pool; `Err(())` (logged
        /// once) when it cannot be opened or used.
        async fn with<T: Send + 'static>(
            self: &Arc<Self>,
            f: impl FnOnce(&mut Outbox) -> Result<T, OutboxError> + Send + 'static,
        ) -> Result<T, ()> {
            let cell = self.clone();
            let done = tokio::task::spawn_blocking(move || {
                let mut guard = cell.outbox.lock().unwrap_or_else(|p| p.into_inner());
                if guard.is_none() {
                    *guard = Some(Outbox::open(&cell.path, &cell.destination, cell.max_bytes)?);
                }
                let Some(outbox) = guard.as_mut() else { unreachable!("opened above") };
                let result = f(outbox);
                if result.is_err() {
                    *guard = None;
                }
                result
            })
            .await;
            match done {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => {
                    let what = if e.is_disk_full() { "the disk is full" } else { "it cannot be used" };
                    diag::once(&format!("outbox-{}", self.path.display()), LogLevel::Error, || {
                        format!(
                            "{}; {what}: records a remote sink cannot deliver now are retried in memory, and dropped and counted when that runs out",
                            diag::chain(&e)
                        )
                    });
                    Err(())
                }
                Err(_) => Err(()),
            }
        }

        pub(crate) async fn claim(self: &Arc<Self>, limit: usize, lease: Duration) -> Result<Claim, ()> {
            self.with(move |o| {
                let rows = o.claim(limit, lease)?;
                let next_due = if rows.is_empty() { o.next_due()? } else { None };
                Ok(Claim { rows, next_due })
            })
            .await
        }

        pub(crate) async fn settle(self: &Arc<Self>, settle: Settle, counters: &AtomicCounters) {
            if let Ok(records) = self
                .with(move |o| {
                    o.settle(&settle)?;
                    o.records()
                })
                .await
            {
                counters.in_outbox.store(records, Ordering::Relaxed);
            }
        }
    }

    /// Writes the records at `picks` (position, and whether an attempt may
    /// have delivered it) to the outbox; how many were kept, or `None` when
    /// the outbox cannot be used.
    pub(crate) async fn spill(
        cell: &Arc<OutboxCell>,
        counters: &AtomicCounters,
        records: Arc<[Record]>,
        picks: Vec<(usize, bool)>,
    ) -> Option<usize> {
        let (put, waiting) = cell
            .with(move |o| {
                let entries: Vec<Entry<'_>> =
                    picks.iter().map(|&(i, uncertain)| Entry { record: &records[i], uncertain }).collect();
                let put = o.put(&entries)?;
                Ok((put, o.records()?))
            })
            .await
            .ok()?;
        counters.in_outbox.store(waiting, Ordering::Relaxed);
        if put.dropped_oldest > 0 {
            counters.outbox_dropped.fetch_add(put.dropped_oldest as u64, Ordering::Relaxed);
            diag::once("outbox-full", LogLevel::Warn, || {
                "the outbox is full (ANOSYS_OUTBOX_MAX_BYTES): its oldest records are dropped and counted".into()
            });
        }
        Some(put.written)
    }
}

#[cfg(not(feature = "sqlite"))]
mod store {
    //! This build has no embedded store: no outbox.
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use super::{AtomicCounters, LaneSettings};
    use crate::record::Record;
    use crate::sinks::outbox::{Claimed, Settle};
    use crate::sinks::Sink;

    pub(crate) enum OutboxCell {}

    pub(crate) struct Claim {
        pub rows: Vec<Claimed>,
        pub next_due: Option<SystemTime>,
    }

    pub(super) fn cell(_: &dyn Sink, settings: &LaneSettings) -> Option<Arc<OutboxCell>> {
        let _ = &settings.outbox;
        None
    }

    impl OutboxCell {
        pub(crate) async fn claim(self: &Arc<Self>, _: usize, _: Duration) -> Result<Claim, ()> {
            match **self {}
        }
        pub(crate) async fn settle(self: &Arc<Self>, _: Settle, _: &AtomicCounters) {
            match **self {}
        }
    }

    pub(crate) async fn spill(
        cell: &Arc<OutboxCell>,
        _: &AtomicCounters,
        _: Arc<[Record]>,
        _: Vec<(usize, bool)>,
    ) -> Option<usize> {
        match **cell {}
    }
}
