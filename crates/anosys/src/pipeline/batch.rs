//! A batch on its way through the sinks' lanes: the records, the memory
//! they hold against `ANOSYS_QUEUE_MAX_BYTES` (given back when the last
//! lane lets go of the batch), and the tally that counts each record once
//! when every lane has said what became of it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::AtomicCounters;
use crate::record::Record;

/// Records (and their bytes) held in memory, from the queue to the last
/// lane, against the bounds `ANOSYS_QUEUE_SIZE` and `ANOSYS_QUEUE_MAX_BYTES`.
#[derive(Debug)]
pub(crate) struct Memory {
    used: AtomicUsize,
    records: AtomicUsize,
    max: usize,
    max_records: usize,
}

impl Memory {
    pub(crate) fn new(max: usize, max_records: usize) -> Self {
        Memory { used: AtomicUsize::new(0), records: AtomicUsize::new(0), max, max_records }
    }

    /// Takes one record of `bytes`; `false` (nothing taken) when that
    /// would pass a bound. A record bigger than the whole bound still
    /// passes when nothing else is held.
    pub(crate) fn reserve(&self, bytes: usize) -> bool {
        if self.records.fetch_add(1, Ordering::AcqRel) >= self.max_records {
            self.records.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        let before = self.used.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > self.max && before > 0 {
            self.used.fetch_sub(bytes, Ordering::AcqRel);
            self.records.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Gives back `records` records of `bytes` in all.
    pub(crate) fn release(&self, records: usize, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.records.fetch_sub(records, Ordering::AcqRel);
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }
}

/// What one lane did with a batch (counts of its records).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    /// Refused for good.
    pub failed: usize,
    /// Kept in the outbox for later delivery.
    pub kept: usize,
    /// Dropped (the lane fell behind, or could not keep them).
    pub dropped: usize,
}

pub(crate) struct Batch {
    /// Shared with the sinks' exports as they are (never copied).
    pub records: Arc<[Record]>,
    pub bytes: usize,
    memory: Arc<Memory>,
    counters: Arc<AtomicCounters>,
    lanes_left: AtomicUsize,
    failed: AtomicUsize,
    kept: AtomicUsize,
    dropped: AtomicUsize,
}

impl Batch {
    pub(crate) fn new(
        records: Vec<Record>,
        bytes: usize,
        lanes: usize,
        memory: Arc<Memory>,
        counters: Arc<AtomicCounters>,
    ) -> Self {
        Batch {
            records: records.into(),
            bytes,
            memory,
            counters,
            lanes_left: AtomicUsize::new(lanes),
            failed: AtomicUsize::new(0),
            kept: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// One lane is done with the batch. The last one counts every record
    /// once: dropped by any lane, else refused by any, else kept by any,
    /// else delivered.
    pub(crate) fn settle(&self, outcome: Outcome) {
        self.failed.fetch_max(outcome.failed, Ordering::AcqRel);
        self.kept.fetch_max(outcome.kept, Ordering::AcqRel);
        self.dropped.fetch_max(outcome.dropped, Ordering::AcqRel);
        if self.lanes_left.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let n = self.records.len();
        let dropped = self.dropped.load(Ordering::Acquire).min(n);
        let failed = self.failed.load(Ordering::Acquire).min(n - dropped);
        let kept = self.kept.load(Ordering::Acquire).min(n - dropped - failed);
        let c = &self.counters;
        c.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        c.failed.fetch_add(failed as u64, Ordering::Relaxed);
        c.kept_in_outbox.fetch_add(kept as u64, Ordering::Relaxed);
        c.delivered.fetch_add((n - dropped - failed - kept) as u64, Ordering::Release);
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.memory.release(self.records.len(), self.bytes);
    }
}
