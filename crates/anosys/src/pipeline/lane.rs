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

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::batch::{Batch, Outcome};
use super::AtomicCounters;
use crate::diag::{self, LogLevel};
use crate::record::Record;
use crate::sinks::outbox::{Sending, Settle};
use crate::sinks::{backoff, ExportContext, ExportReport, Sink};

pub(crate) enum LaneMsg {
    Batch(Arc<Batch>),
    /// Answer once every batch sent before is dealt with; by `deadline`
    /// the caller stops waiting.
    Flush {
        deadline: Instant,
        reply: oneshot::Sender<()>,
    },
    /// Rows were written to the lane's outbox from outside the lane (a
    /// batch spilled because the lane was full): drain them.
    Backlog,
    Shutdown {
        deadline: Instant,
        reply: oneshot::Sender<()>,
    },
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
    /// Every batch goes to the outbox before it is sent.
    pub write_ahead: bool,
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
        let outbox = store::cell(&*sink, settings, &cx);
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
            drain_wait: None,
            // Rows kept by an earlier process: only where a store exists
            // (a healthy start never creates one).
            backlog: outbox.is_some() && settings.outbox.as_ref().is_some_and(|(path, _)| path.exists()),
            stopping: false,
            write_ahead: settings.write_ahead,
            batches: BTreeMap::new(),
            next_seq: 0,
            waiting: VecDeque::new(),
            jobs: JoinSet::new(),
            drains: 0,
            drain_turn: None,
            flushes: Vec::new(),
            shutdown: None,
            stop_wait: None,
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
                                format!(
                                    "the {name} sink is behind and its outbox cannot keep more: records are dropped and counted"
                                )
                            });
                        }
                        batch.settle(Outcome { kept, dropped, ..Default::default() });
                    });
                }
                None => {
                    diag::once(&format!("lane-full-{name}"), LogLevel::Warn, || {
                        format!(
                            "the {name} sink is behind (its buffer is full): records are dropped and counted (ANOSYS_QUEUE_MAX_BYTES)"
                        )
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
    pub(crate) fn flush(&self, deadline: Instant) -> oneshot::Receiver<()> {
        let (reply, done) = oneshot::channel();
        let _ = self.tx.send(LaneMsg::Flush { deadline, reply });
        done
    }

    /// Asks the lane to finish by `deadline`; resolves when it has.
    pub(crate) fn shutdown(&self, deadline: Instant) -> oneshot::Receiver<()> {
        let (reply, done) = oneshot::channel();
        let _ = self.tx.send(LaneMsg::Shutdown { deadline, reply });
        done
    }
}

/// Exports one lane runs at once: deliveries, in-memory retries and
/// outbox drains together. (A sink may have as many exports at once, each
/// with its own requests in flight: the AnoSys sink keeps as many
/// connections open.)
pub(crate) const MAX_JOBS: usize = 4;
/// Outbox drains among them: two, one sending while the next claims its
/// rows (and the one before settles), so the destination is never left
/// waiting on the store. Their sends take turns, in the order of their
/// claims (see [`Lane::start_drain`]): rows still go out oldest first, with
/// no more requests in flight than one export has, and a write to the
/// outbox (of a batch that cannot be sent) queues behind at most the two
/// drains' claim and settle.
const MAX_DRAINS: usize = 2;
/// How long a flush waits on an export in flight before the lane counts
/// its sink as slow and hands what the flush waits for to the outbox (the
/// export goes on; rows it delivers are removed from the outbox again).
const FLUSH_GRACE: Duration = Duration::from_secs(1);

/// A batch the lane holds, from its arrival until its export is over.
struct Held {
    batch: Arc<Batch>,
    /// When its export started (`None`: waiting for a free slot).
    started: Option<Instant>,
    /// Being retried in memory (no outbox to keep it in).
    retrying: bool,
    /// Its rows in the outbox, leased to this lane, once a flush handed it
    /// over (position in the batch, row id): the batch is settled as kept
    /// then, and the export's outcome settles the rows.
    handed_over: Option<Vec<(usize, i64)>>,
    /// Its rows in the outbox, leased to this lane, written before its send
    /// (write-ahead): removed when delivered, left there (and counted as
    /// kept) when not.
    journal: Option<Vec<(usize, i64)>>,
    /// Its export failed while an earlier batch's was still on its way:
    /// the report, kept until the earlier one is settled, so that batches
    /// reach the outbox in the order they were captured (the outbox drops
    /// its oldest rows when full and sends its oldest first).
    deferred: Option<ExportReport>,
}

impl Held {
    /// Its export started and its records are neither on disk (written
    /// ahead, or handed over by a flush) nor retried in memory: if it
    /// fails, it still has to reach the outbox.
    fn in_flight(&self) -> bool {
        self.started.is_some() && self.handed_over.is_none() && self.journal.is_none() && !self.retrying
    }
}

/// A finished job.
enum Done {
    Deliver { seq: u64, report: Option<ExportReport> },
    Retried { seq: u64, failed: usize, dropped: usize },
    Drain { job: DrainJob, report: Option<ExportReport> },
}

/// Rows claimed from the outbox, on their way.
struct DrainJob {
    ids: Vec<i64>,
    uncertain: Vec<bool>,
    settle: Settle,
    /// Not sent: the drain before it was told to try again (the lane
    /// counted that failure already).
    skipped: bool,
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
    /// No look at the outbox before this (nothing in it was due).
    drain_wait: Option<Instant>,
    /// The outbox may hold rows for this destination.
    backlog: bool,
    stopping: bool,
    write_ahead: bool,
    /// Batches held, by order of arrival.
    batches: BTreeMap<u64, Held>,
    next_seq: u64,
    /// Batches waiting for a free slot.
    waiting: VecDeque<u64>,
    jobs: JoinSet<Done>,
    drains: usize,
    /// Resolves when the send of the last drain started is over: `true`
    /// when nothing of it is to be tried again. The next drain sends after
    /// it.
    drain_turn: Option<oneshot::Receiver<bool>>,
    /// Flushes waiting: every batch before `upto` must be dealt with.
    flushes: Vec<FlushWait>,
    shutdown: Option<(Instant, oneshot::Sender<()>)>,
    /// What a shutdown waits for: every batch before `upto`, asked at
    /// `arrived`, due by `deadline`. A slow sink hands these to the outbox
    /// as it does for a flush, while there is time left to write them.
    stop_wait: Option<(u64, Instant, Instant)>,
}

struct FlushWait {
    upto: u64,
    arrived: Instant,
    deadline: Instant,
    reply: oneshot::Sender<()>,
}

impl Lane {
    async fn run(mut self) {
        loop {
            self.start_jobs().await;
            self.answer_flushes();
            if let Some((deadline, _)) = &self.shutdown
                && ((self.batches.is_empty() && self.jobs.is_empty()) || Instant::now() >= *deadline)
            {
                break;
            }
            let drain_at = self.drain_due();
            let hand_over_at = self.hand_over_due();
            let stop_at = self.shutdown.as_ref().map(|(d, _)| *d);
            tokio::select! {
                msg = self.rx.recv(), if self.shutdown.is_none() => match msg {
                    Some(msg) => self.receive(msg),
                    None => return,
                },
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    // The jobs' own tasks never panic (the sink's export runs
                    // on a task of its own); an abort is not expected.
                    if let Ok(done) = done {
                        self.finish(done).await;
                    }
                }
                _ = sleep_until_opt(drain_at) => self.start_drain().await,
                _ = sleep_until_opt(hand_over_at) => {
                    self.hand_over().await;
                    self.keep_deferred(false).await;
                }
                _ = sleep_until_opt(stop_at) => {}
            }
        }
        // Failed batches still waiting for their turn.
        self.keep_deferred(true).await;
        // Sends cut off by the deadline: what was written ahead is kept.
        for h in self.batches.values_mut() {
            if let Some(rows) = h.journal.take() {
                let n = h.batch.records.len();
                h.batch.settle(Outcome { kept: rows.len(), dropped: n - rows.len(), ..Default::default() });
            }
        }
        if let Some((deadline, reply)) = self.shutdown.take() {
            self.drain_before(deadline).await;
            let _ = tokio::time::timeout_at(deadline.into(), self.sink.shutdown()).await;
            let _ = reply.send(());
        }
    }

    fn receive(&mut self, msg: LaneMsg) {
        match msg {
            LaneMsg::Batch(batch) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.batches.insert(
                    seq,
                    Held { batch, started: None, retrying: false, handed_over: None, journal: None, deferred: None },
                );
                self.waiting.push_back(seq);
            }
            LaneMsg::Flush { deadline, reply } => {
                self.flushes.push(FlushWait { upto: self.next_seq, arrived: Instant::now(), deadline, reply });
            }
            LaneMsg::Backlog => {
                self.backlog = true;
                self.drain_wait = None;
            }
            LaneMsg::Shutdown { deadline, reply } => {
                self.stopping = true;
                self.stop_wait = Some((self.next_seq, Instant::now(), deadline));
                self.shutdown = Some((deadline, reply));
            }
        }
    }

    /// Answers the flushes whose batches are all dealt with (delivered,
    /// refused, or kept in the outbox).
    fn answer_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let first_open = self.batches.iter().find(|(_, h)| h.handed_over.is_none()).map(|(&seq, _)| seq);
        let (done, open): (Vec<_>, Vec<_>) =
            self.flushes.drain(..).partition(|f| first_open.is_none_or(|seq| seq >= f.upto));
        self.flushes = open;
        for f in done {
            let _ = f.reply.send(());
        }
    }

    /// What flushes and a shutdown wait for: (every batch before `upto`,
    /// asked at, due by).
    fn waits(&self) -> impl Iterator<Item = (u64, Instant, Instant)> + '_ {
        self.flushes.iter().map(|f| (f.upto, f.arrived, f.deadline)).chain(self.stop_wait)
    }

    /// When the lane should hand what flushes and a shutdown wait for to
    /// the outbox: an export they wait on has taken longer than
    /// [`FLUSH_GRACE`] (or half their time).
    fn hand_over_due(&self) -> Option<Instant> {
        self.outbox.as_ref()?;
        let upto = self.waits().map(|(upto, _, _)| upto).max()?;
        let oldest = self
            .batches
            .range(..upto)
            .filter(|(_, h)| h.handed_over.is_none() && !h.retrying && h.deferred.is_none())
            .filter_map(|(_, h)| h.started)
            .min()?;
        let patience =
            self.waits().map(|(_, arrived, deadline)| arrived + deadline.saturating_duration_since(arrived) / 2).min();
        Some(patience.map_or(oldest + FLUSH_GRACE, |p| p.min(oldest + FLUSH_GRACE)))
    }

    /// The sink is slow and a flush (or shutdown) waits: keeps the batches it waits for
    /// in the outbox. Those not started go there as if the destination
    /// were down; those in flight are kept leased to this lane while their
    /// export goes on.
    async fn hand_over(&mut self) {
        let Some(outbox) = self.outbox.clone() else {
            return;
        };
        let Some(upto) = self.waits().map(|(upto, _, _)| upto).max() else {
            return;
        };
        let seqs: Vec<u64> = self
            .batches
            .range(..upto)
            .filter(|(_, h)| h.handed_over.is_none() && !h.retrying && h.deferred.is_none())
            .map(|(&seq, _)| seq)
            .collect();
        let name = self.name.clone();
        diag::once(&format!("slow-{name}"), LogLevel::Warn, || {
            format!("the {name} sink is slow: a flush or shutdown keeps what it waits for in the outbox, to be sent from there")
        });
        for seq in seqs {
            let Some(h) = self.batches.get(&seq) else {
                continue;
            };
            let batch = h.batch.clone();
            let n = batch.records.len();
            if h.started.is_none() && h.journal.is_none() {
                let all = (0..n).map(|i| (i, false)).collect();
                let Some(kept) = store::spill(&outbox, &self.counters, batch.records.clone(), all).await else {
                    return;
                };
                self.waiting.retain(|&s| s != seq);
                self.backlog = true;
                batch.settle(Outcome { kept, dropped: n - kept, ..Default::default() });
                self.release(seq);
            } else {
                let journal = self.batches.get_mut(&seq).and_then(|h| h.journal.take());
                let rows = match journal {
                    Some(rows) => rows,
                    None => {
                        let records = batch.records.clone();
                        let Some(rows) = store::keep_leased(&outbox, &self.counters, records, self.lease, true).await
                        else {
                            return;
                        };
                        rows
                    }
                };
                batch.settle(Outcome { kept: rows.len(), dropped: n - rows.len(), ..Default::default() });
                if let Some(h) = self.batches.get_mut(&seq) {
                    h.handed_over = Some(rows);
                }
            }
        }
    }

    /// Starts what waits, as far as there are free slots; straight to the
    /// outbox while the destination is known to be down.
    async fn start_jobs(&mut self) {
        // Written ahead: what waits is on disk before anything else.
        if self.write_ahead
            && let Some(outbox) = self.outbox.clone()
        {
            let unwritten: Vec<u64> = (self.waiting.iter().copied())
                .filter(|seq| self.batches.get(seq).is_some_and(|h| h.journal.is_none()))
                .collect();
            for seq in unwritten {
                let Some(records) = self.batches.get(&seq).map(|h| h.batch.records.clone()) else { continue };
                let rows = store::keep_leased(&outbox, &self.counters, records, self.lease, false).await;
                if let Some(h) = self.batches.get_mut(&seq) {
                    h.journal = rows;
                }
            }
        }
        while let Some(&seq) = self.waiting.front() {
            let Some(batch) = self.batches.get(&seq).map(|h| h.batch.clone()) else {
                self.waiting.pop_front();
                continue;
            };
            let n = batch.records.len();
            if (self.is_down() || self.stopping && self.backlog)
                && let Some(outbox) = &self.outbox
            {
                // Written ahead (or handed over by a flush) already: left
                // there, for a drain to send.
                let (journal, handed_over) = match self.batches.get_mut(&seq) {
                    Some(h) => (h.journal.take(), h.handed_over.take()),
                    None => (None, None),
                };
                let counted = handed_over.is_some();
                if let Some(rows) = journal.or(handed_over) {
                    let next_try = self.wait_left();
                    let settle = Settle {
                        retry: rows.iter().map(|&(_, id)| (id, false)).collect(),
                        next_try,
                        ..Default::default()
                    };
                    outbox.settle(settle, &self.counters).await;
                    self.waiting.pop_front();
                    self.backlog = true;
                    if !counted {
                        batch.settle(Outcome { kept: rows.len(), dropped: n - rows.len(), ..Default::default() });
                    }
                    self.release(seq);
                    continue;
                }
                // Behind what is already waiting there, and behind earlier
                // batches still on their way (they go first if they fail).
                if self.unsettled_before(seq) {
                    return;
                }
                let all = (0..n).map(|i| (i, false)).collect();
                if let Some(kept) = store::spill(outbox, &self.counters, batch.records.clone(), all).await {
                    self.waiting.pop_front();
                    self.backlog = true;
                    batch.settle(Outcome { kept, dropped: n - kept, ..Default::default() });
                    self.release(seq);
                    continue;
                }
            }
            // At shutdown one at a time, as the deadline may cut sends off
            // and what they leave must still be written to the outbox.
            let max_jobs = if self.stopping { 1 } else { MAX_JOBS };
            if self.jobs.len() >= max_jobs {
                return;
            }
            self.waiting.pop_front();
            if let Some(h) = self.batches.get_mut(&seq) {
                h.started = Some(Instant::now());
            }
            let export = export_apart(&self.sink, &self.cx, batch.records.clone());
            self.jobs.spawn(async move {
                let report = export.await;
                Done::Deliver { seq, report }
            });
        }
    }

    /// The lane is done with batch `seq`.
    fn release(&mut self, seq: u64) {
        if let Some(h) = self.batches.remove(&seq) {
            self.held.fetch_sub(h.batch.bytes, Ordering::AcqRel);
            self.held_records.fetch_sub(h.batch.records.len(), Ordering::AcqRel);
        }
    }

    /// A sink's export panicked: counted, logged once.
    fn panicked(&self, n: usize) -> ExportReport {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let name = &self.name;
        diag::once(&format!("panic-{name}"), LogLevel::Error, || {
            format!("the {name} sink panicked; its batches are counted as failed")
        });
        ExportReport::failed_all(n)
    }

    /// Whether a batch before `seq` is still on its way (its export not
    /// over, or over and waiting to be kept): what fails after it must
    /// reach the outbox after it.
    fn unsettled_before(&self, seq: u64) -> bool {
        self.batches.range(..seq).any(|(_, h)| h.in_flight())
    }

    /// Keeps failed batches whose turn has come (every earlier one is
    /// settled or on disk) in the outbox, oldest first; with `all`, every
    /// one that waits (the lane is stopping).
    async fn keep_deferred(&mut self, all: bool) {
        let mut ready = Vec::new();
        for (&seq, h) in &self.batches {
            if h.deferred.is_some() {
                ready.push(seq);
            } else if !all && h.in_flight() {
                break;
            }
        }
        for seq in ready {
            let Some(report) = self.batches.get_mut(&seq).and_then(|h| h.deferred.take()) else { continue };
            self.keep_failed(seq, report).await;
        }
    }

    async fn finish(&mut self, done: Done) {
        self.finish_one(done).await;
        self.keep_deferred(false).await;
    }

    async fn finish_one(&mut self, done: Done) {
        match done {
            Done::Deliver { seq, report } => self.delivered(seq, report).await,
            Done::Retried { seq, failed, dropped } => {
                if let Some(h) = self.batches.get(&seq) {
                    h.batch.settle(Outcome { failed, dropped, ..Default::default() });
                }
                self.release(seq);
            }
            Done::Drain { job, report } => {
                self.drains -= 1;
                self.drain_wait = None;
                let n = job.ids.len();
                let report = report.unwrap_or_else(|| self.panicked(n));
                self.drained(job, report).await;
            }
        }
    }

    /// A delivery's export is over.
    async fn delivered(&mut self, seq: u64, report: Option<ExportReport>) {
        let Some(h) = self.batches.get_mut(&seq) else {
            return;
        };
        let (batch, handed_over, journal) = (h.batch.clone(), h.handed_over.take(), h.journal.take());
        let n = batch.records.len();
        let report = report.unwrap_or_else(|| self.panicked(n));
        if report.retry.is_empty() {
            self.came_up();
        } else {
            self.went_down(report.retry_after);
        }
        // A flush kept its records in the outbox already: settle the rows.
        if let Some(rows) = handed_over {
            let (ids, mut at_rows) = at_rows(&rows, &report);
            // Kept while the send was on its way: a retry may duplicate it.
            at_rows.uncertain = (0..rows.len()).collect();
            let uncertain = vec![false; rows.len()];
            self.drained(DrainJob { ids, uncertain, settle: Default::default(), skipped: false }, at_rows).await;
            self.release(seq);
            return;
        }
        let mut outcome = Outcome { failed: report.failed.min(n), ..Default::default() };
        // Written ahead: the rows delivered (or refused) leave the outbox,
        // the others stay there, kept.
        if let (Some(rows), Some(outbox)) = (journal, self.outbox.clone()) {
            let (ids, at_rows) = at_rows(&rows, &report);
            let (mut settle, _) = Settle::after(&ids, &vec![false; ids.len()], &at_rows);
            if !settle.retry.is_empty() {
                self.backlog = true;
                settle.next_try = self.wait_left();
                settle.error = Some(format!("{} of {n} records not delivered", report.retry.len()));
            }
            outcome.kept = settle.retry.len();
            // Records the outbox could not take (never expected).
            outcome.dropped = report.retry.len().saturating_sub(settle.retry.len());
            outbox.settle(settle, &self.counters).await;
            batch.settle(outcome);
            self.release(seq);
            return;
        }
        if report.retry.is_empty() {
            batch.settle(outcome);
            self.release(seq);
            return;
        }
        if self.outbox.is_some() && self.unsettled_before(seq) {
            if let Some(h) = self.batches.get_mut(&seq) {
                h.deferred = Some(report);
            }
            return;
        }
        self.keep_failed(seq, report).await;
    }

    /// Batch `seq` was not (all) delivered: keeps what failed in the
    /// outbox, or retries it in memory where there is none.
    async fn keep_failed(&mut self, seq: u64, report: ExportReport) {
        let Some(batch) = self.batches.get(&seq).map(|h| h.batch.clone()) else {
            return;
        };
        let n = batch.records.len();
        let mut outcome = Outcome { failed: report.failed.min(n), ..Default::default() };
        if let Some(outbox) = &self.outbox {
            let picks = report.retry.iter().map(|&i| (i, report.uncertain.binary_search(&i).is_ok())).collect();
            if let Some(kept) = store::spill(outbox, &self.counters, batch.records.clone(), picks).await {
                self.backlog = true;
                outcome.kept = kept;
                outcome.dropped = report.retry.len() - kept;
                batch.settle(outcome);
                self.release(seq);
                return;
            }
        }
        // No outbox to keep them in: retry in memory, for a while, on a
        // job of its own.
        if let Some(h) = self.batches.get_mut(&seq) {
            h.retrying = true;
        }
        let retry = InMemoryRetry {
            name: self.name.clone(),
            sink: self.sink.clone(),
            cx: self.cx.clone(),
            counters: self.counters.clone(),
            max_elapsed: self.retry_max_elapsed,
            attempt: self.attempt,
            wait: self.wait_left(),
        };
        let (records, first_failed) = (batch.records.clone(), outcome.failed);
        self.jobs.spawn(async move {
            let (failed, dropped) = retry.run(&records, report).await;
            Done::Retried { seq, failed: (first_failed + failed).min(records.len()), dropped }
        });
    }

    /// At shutdown: sends what waits in the outbox while the deadline
    /// leaves time for it and the destination answers (three failed tries
    /// in a row end it); the rest stays there for the next process.
    async fn drain_before(&mut self, deadline: Instant) {
        let mut failures = 0;
        while self.backlog && self.outbox.is_some() && failures < 3 {
            let limit = self.cx.deadline().unwrap_or(deadline).min(deadline);
            let at = self.next_drain_at();
            if at >= limit {
                return;
            }
            tokio::time::sleep_until(at.into()).await;
            let before = self.attempt;
            if let Some((job, rows)) = self.claim().await {
                let n = rows.len();
                let report = export_rows(&self.sink, &self.cx, rows).await;
                let report = report.unwrap_or_else(|| self.panicked(n));
                self.drained(job, report).await;
            }
            if self.attempt > before {
                failures += 1;
            }
        }
    }

    /// How long the destination asked to be left alone, from now.
    fn wait_left(&self) -> Duration {
        self.down_until.map(|t| t.saturating_duration_since(Instant::now())).unwrap_or_default()
    }

    fn is_down(&self) -> bool {
        self.down_until.is_some_and(|t| Instant::now() < t)
    }

    fn next_drain_at(&self) -> Instant {
        let now = Instant::now();
        self.down_until.unwrap_or(now).max(self.drain_wait.unwrap_or(now))
    }

    /// When to look at the outbox next, if there is reason to.
    fn drain_due(&self) -> Option<Instant> {
        // While the destination is down, one probe at a time.
        let drains = if self.attempt > 0 { 1 } else { MAX_DRAINS };
        (self.backlog && !self.stopping && self.outbox.is_some() && self.drains < drains && self.jobs.len() < MAX_JOBS)
            .then(|| self.next_drain_at())
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

    /// Starts sending the oldest rows of the outbox that are due.
    ///
    /// A drain may claim while the one before it sends, but sends only
    /// once that send is over (its turn), so that requests go out in the
    /// order rows were claimed, oldest first; when the one before is told
    /// to try again, it sends nothing and its rows are tried again with
    /// them.
    async fn start_drain(&mut self) {
        let Some((mut job, rows)) = self.claim().await else {
            return;
        };
        let (sent, turn) = oneshot::channel();
        // Only a drain still in flight holds this one back: the outcome of
        // one the lane has settled is taken into account already.
        let before = self.drain_turn.replace(turn).filter(|_| self.drains > 0);
        self.drains += 1;
        let (sink, cx, counters) = (self.sink.clone(), self.cx.clone(), self.counters.clone());
        self.jobs.spawn(async move {
            // A drain that is gone (its task ended) is no reason to wait.
            let go = match before {
                Some(before) => before.await.unwrap_or(true),
                None => true,
            };
            if !go {
                let n = rows.len();
                counters.retried.fetch_sub(n as u64, Ordering::Relaxed);
                job.skipped = true;
                let _ = sent.send(false);
                return Done::Drain { job, report: Some(ExportReport::retry_all(n)) };
            }
            let report = export_rows(&sink, &cx, rows).await;
            let _ = sent.send(report.as_ref().is_none_or(|r| r.retry.is_empty()));
            Done::Drain { job, report }
        });
    }

    /// Leases the oldest rows that are due; `None` when there are none (the
    /// next look is planned) or the outbox cannot be used.
    async fn claim(&mut self) -> Option<(DrainJob, Sending)> {
        let outbox = self.outbox.clone()?;
        // While the destination is down, probe with a few rows only.
        let limit = if self.attempt > 0 { 8.min(self.batch_size) } else { self.batch_size };
        let claimed = match outbox.claim(limit, self.lease).await {
            Ok(c) => c,
            Err(()) => {
                self.went_down(None);
                return None;
            }
        };
        if claimed.rows.is_empty() {
            match claimed.next_due {
                Some(due) => {
                    let wait = due.duration_since(std::time::SystemTime::now()).unwrap_or_default();
                    self.drain_wait = Some(Instant::now() + wait.max(Duration::from_millis(50)));
                }
                // Rows of drains in flight come back if they fail.
                None if self.drains > 0 => self.drain_wait = Some(Instant::now() + Duration::from_millis(100)),
                None => self.backlog = false,
            }
            return None;
        }
        let mut rows = Sending::new(claimed.rows);
        let mut job = DrainJob {
            ids: rows.ids.clone(),
            uncertain: rows.uncertain.clone(),
            settle: Default::default(),
            skipped: false,
        };
        for (id, reason) in std::mem::take(&mut rows.unreadable) {
            job.settle.failed.push(id);
            self.counters.outbox_failed.fetch_add(1, Ordering::Relaxed);
            diag::once("outbox-unreadable", LogLevel::Error, || {
                format!("a record in the outbox could not be read back ({reason}); it is removed and counted as failed")
            });
        }
        self.counters.retried.fetch_add(rows.len() as u64, Ordering::Relaxed);
        Some((job, rows))
    }

    /// Settles outbox rows after an attempt at them.
    async fn drained(&mut self, job: DrainJob, report: ExportReport) {
        let Some(outbox) = self.outbox.clone() else { return };
        let (mut settle, done) = Settle::after(&job.ids, &job.uncertain, &report);
        // Rows that could not be read back were settled as failed already.
        settle.failed.extend(job.settle.failed);
        if job.skipped {
            // Not sent: back with the rows of the drain before, at its
            // time (which may be settled after this one: then the wait
            // starts here, so no drain takes these rows before its own).
            if !self.is_down() {
                self.went_down(None);
            }
            self.backlog = true;
            settle.next_try = self.wait_left();
        } else if report.retry.is_empty() {
            self.came_up();
        } else {
            self.went_down(report.retry_after);
            self.backlog = true;
            settle.next_try = self.wait_left();
            settle.error = Some(format!("{} of {} records not delivered", done.retry, job.ids.len()));
        }
        let c = &self.counters;
        c.outbox_delivered.fetch_add(done.delivered as u64, Ordering::Relaxed);
        c.outbox_failed.fetch_add(done.failed as u64, Ordering::Relaxed);
        c.duplicates.fetch_add(done.duplicates as u64, Ordering::Relaxed);
        outbox.settle(settle, &self.counters).await;
    }
}

/// Retries of a batch in memory, for a lane with no outbox to keep it in.
struct InMemoryRetry {
    name: String,
    sink: Arc<dyn Sink>,
    cx: ExportContext,
    counters: Arc<AtomicCounters>,
    max_elapsed: Duration,
    attempt: u32,
    /// Before the first retry.
    wait: Duration,
}

impl InMemoryRetry {
    /// Retries `report.retry` with backoff until delivered, refused, the
    /// retry budget is spent or a shutdown deadline nears. Returns how many
    /// were refused and how many are given up (counted as dropped).
    async fn run(mut self, records: &Arc<[Record]>, mut report: ExportReport) -> (usize, usize) {
        let started = Instant::now();
        let mut failed = 0;
        let mut wait = self.wait;
        loop {
            let out_of_budget = started.elapsed() + wait > self.max_elapsed;
            let past_deadline = self.cx.deadline().is_some_and(|d| Instant::now() + wait >= d);
            if out_of_budget
                || past_deadline
                || (!self.cx.sleep(wait).await && self.cx.deadline().is_some_and(|d| Instant::now() + wait >= d))
            {
                let name = &self.name;
                diag::once(&format!("gave-up-{name}"), LogLevel::Error, || {
                    format!(
                        "the {name} sink could not deliver in time and there is no outbox to keep records in: they are dropped and counted"
                    )
                });
                return (failed, report.retry.len());
            }
            self.counters.retried.fetch_add(report.retry.len() as u64, Ordering::Relaxed);
            let again: Arc<[Record]> = report.retry.iter().map(|&i| records[i].clone()).collect();
            let Some(next) = export_apart(&self.sink, &self.cx, again).await else {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                return (failed + report.retry.len(), 0);
            };
            failed += next.failed;
            if next.retry.is_empty() {
                return (failed, 0);
            }
            wait = backoff(self.attempt).max(next.retry_after.unwrap_or_default());
            self.attempt = self.attempt.saturating_add(1);
            report.retry = next.retry.iter().map(|&i| report.retry[i]).collect();
        }
    }
}

/// `report`, about a batch, as it applies to that batch's outbox rows
/// `rows` (position in the batch, row id): the row ids, and the report
/// with positions among them.
fn at_rows(rows: &[(usize, i64)], report: &ExportReport) -> (Vec<i64>, ExportReport) {
    let among = |of: &[usize]| -> Vec<usize> {
        rows.iter().enumerate().filter(|(_, (i, _))| of.binary_search(i).is_ok()).map(|(k, _)| k).collect()
    };
    let ids = rows.iter().map(|&(_, id)| id).collect();
    let report = ExportReport {
        failed: report.failed,
        retry: among(&report.retry),
        uncertain: among(&report.uncertain),
        retry_after: report.retry_after,
    };
    (ids, report)
}

/// The sink's export of `records`, on a task of its own so that a panic in
/// the sink is contained (`None`).
fn export_apart(
    sink: &Arc<dyn Sink>,
    cx: &ExportContext,
    records: Arc<[Record]>,
) -> impl std::future::Future<Output = Option<ExportReport>> + Send + 'static {
    let (sink, cx) = (sink.clone(), cx.clone());
    let task = tokio::spawn(async move { sink.export_shared(records, cx).await });
    async move { task.await.ok() }
}

/// The sink's export of claimed outbox rows, on a task of its own like
/// [`export_apart`].
fn export_rows(
    sink: &Arc<dyn Sink>,
    cx: &ExportContext,
    rows: Sending,
) -> impl std::future::Future<Output = Option<ExportReport>> + Send + 'static {
    let (sink, cx) = (sink.clone(), cx.clone());
    let task = tokio::spawn(async move { rows.export(&*sink, cx).await });
    async move { task.await.ok() }
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
    use crate::sinks::outbox::{Claimed, Entry, Outbox, OutboxError, Settle, WireEncoder};
    use crate::sinks::{Destination, ExportContext, Sink};

    /// A destination's outbox, opened on first use on the blocking pool,
    /// reopened after an error.
    pub(crate) struct OutboxCell {
        path: std::path::PathBuf,
        destination: Destination,
        max_bytes: u64,
        /// The sink's own form for rows, if it has one.
        wire: Option<Arc<dyn WireEncoder>>,
        /// The lane's context: writing a batch gives way as its sink does.
        cx: ExportContext,
        outbox: Mutex<Option<Outbox>>,
        /// Uses of the outbox in the order they were asked for (a fair
        /// lock, held across the blocking call): a batch written first is
        /// older in the outbox, whatever thread gets to the store first.
        order: tokio::sync::Mutex<()>,
    }

    pub(crate) struct Claim {
        pub rows: Vec<Claimed>,
        pub next_due: Option<SystemTime>,
    }

    pub(super) fn cell(sink: &dyn Sink, settings: &LaneSettings, cx: &ExportContext) -> Option<Arc<OutboxCell>> {
        let destination = sink.destination()?;
        let (path, max) = settings.outbox.clone()?;
        let wire = sink.wire_encoder();
        (max > 0).then(|| {
            Arc::new(OutboxCell {
                path,
                destination,
                max_bytes: max as u64,
                wire,
                cx: cx.clone(),
                outbox: Mutex::new(None),
                order: Default::default(),
            })
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
            let _turn = self.order.lock().await;
            let done = tokio::task::spawn_blocking(move || {
                let mut guard = cell.outbox.lock().unwrap_or_else(|p| p.into_inner());
                if guard.is_none() {
                    let mut outbox = Outbox::open(&cell.path, &cell.destination, cell.max_bytes)?;
                    outbox.set_wire(cell.wire.clone());
                    outbox.set_context(cell.cx.clone());
                    *guard = Some(outbox);
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

    /// Keeps every record of a batch whose send goes on (or is about to
    /// start), leased to this lane so no drain sends it meanwhile, and
    /// marked `uncertain` (a send in flight may arrive): the rows written
    /// (position, row id), or `None` when the outbox cannot be used.
    pub(crate) async fn keep_leased(
        cell: &Arc<OutboxCell>,
        counters: &AtomicCounters,
        records: Arc<[Record]>,
        lease: Duration,
        uncertain: bool,
    ) -> Option<Vec<(usize, i64)>> {
        let (put, rows, waiting) = cell
            .with(move |o| {
                let entries: Vec<Entry<'_>> = records.iter().map(|record| Entry { record, uncertain }).collect();
                let (put, rows) = o.put_claimed(&entries, lease)?;
                Ok((put, rows, o.records()?))
            })
            .await
            .ok()?;
        counters.in_outbox.store(waiting, Ordering::Relaxed);
        if put.dropped_oldest > 0 {
            counters.outbox_dropped.fetch_add(put.dropped_oldest as u64, Ordering::Relaxed);
        }
        Some(rows)
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

    pub(super) fn cell(_: &dyn Sink, settings: &LaneSettings, _: &crate::sinks::ExportContext) -> Option<Arc<OutboxCell>> {
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

    pub(crate) async fn keep_leased(
        cell: &Arc<OutboxCell>,
        _: &AtomicCounters,
        _: Arc<[Record]>,
        _: Duration,
        _: bool,
    ) -> Option<Vec<(usize, i64)>> {
        match **cell {}
    }
}
