//! A batch on its way through the sinks' lanes: the records, the memory
//! they hold against `ANOSYS_QUEUE_MAX_BYTES` (given back when the last
//! lane lets go of the batch), and the tally that counts each record once
//! when every lane has said what became of it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_queue::SegQueue;

use super::AtomicCounters;
use crate::record::Record;

/// Records (and their bytes) held in memory, from the queue to the last
/// lane, against the bounds `ANOSYS_QUEUE_SIZE` and `ANOSYS_QUEUE_MAX_BYTES`;
/// and the records the lanes are done with, handed back to be freed by the
/// threads that capture (see [`Spent`]).
#[derive(Debug)]
pub(crate) struct Memory {
    used: AtomicUsize,
    records: AtomicUsize,
    max: usize,
    max_records: usize,
    pub(crate) spent: Spent,
}

impl Memory {
    pub(crate) fn new(max: usize, max_records: usize) -> Self {
        Memory { used: AtomicUsize::new(0), records: AtomicUsize::new(0), max, max_records, spent: Spent::default() }
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

    /// Whether more than a quarter of the records the pipeline may hold
    /// wait in memory: it is falling behind (see `pace`).
    pub(crate) fn behind(&self) -> bool {
        self.records.load(Ordering::Relaxed) > self.max_records / 4
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
    /// Shared, not copied, by the lanes (and their outbox writes).
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
        self.memory.spent.keep(std::mem::take(&mut self.records), self.bytes);
    }
}

/// Records the lanes are done with, freed a few at a time by the threads
/// that capture (each [`submit`](super::Pipeline::submit) frees one, or
/// two when many wait, see [`Spent::free_after_submit`]) rather than on
/// the pipeline's threads.
///
/// Why: a record is allocated on the caller's thread. With the system
/// allocator (glibc), freeing it on another thread returns each block to
/// the caller's arena under that arena's lock, which the caller needs for
/// its next allocation: a tight capture loop spent most of its time
/// waiting there. Freed where they were made, the blocks go back through
/// the caller's own per-thread cache.
///
/// What waits here is bounded ([`Spent::MAX_RECORDS`], [`Spent::MAX_BYTES`]:
/// past them a batch is freed where it is let go, as before), and the
/// pipeline's thread frees it all when no capture took any for a flush
/// interval, so an application that stops capturing holds nothing here.
#[derive(Debug, Default)]
pub(crate) struct Spent {
    batches: SegQueue<(Arc<[Record]>, usize)>,
    /// Records and bytes waiting (`bytes` as the queue counted them).
    records: AtomicUsize,
    bytes: AtomicUsize,
    /// The batch being freed, and how far.
    current: Mutex<Option<(Arc<[Record]>, usize)>>,
    /// Whether a capture freed anything since the pipeline last looked.
    taken: AtomicBool,
}

impl Spent {
    /// At most this many records wait to be freed.
    pub(crate) const MAX_RECORDS: usize = 4096;
    /// At most about this many bytes of records wait to be freed.
    pub(crate) const MAX_BYTES: usize = 4 << 20;

    /// Takes a batch the lanes are done with, or frees it here if too much
    /// waits already.
    fn keep(&self, records: Arc<[Record]>, bytes: usize) {
        let n = records.len();
        if n == 0 {
            return;
        }
        let waiting = self.records.fetch_add(n, Ordering::AcqRel);
        let waiting_bytes = self.bytes.fetch_add(bytes, Ordering::AcqRel);
        if waiting + n > Self::MAX_RECORDS || waiting_bytes + bytes > Self::MAX_BYTES {
            self.records.fetch_sub(n, Ordering::AcqRel);
            self.bytes.fetch_sub(bytes, Ordering::AcqRel);
            return;
        }
        self.batches.push((records, bytes));
    }

    /// What a capture frees: one record, as many as it made, so that the
    /// blocks go back to the thread's own cache and its next record is
    /// made from them (freeing two at a time overflowed glibc's per-thread
    /// cache into its slower bins: 2.8 against 2.1 us a capture in
    /// `benches/capture.rs`); two when what waits is near
    /// [`MAX_RECORDS`](Self::MAX_RECORDS) (several capturing threads take
    /// turns at freeing, so one each can fall behind), so that it goes
    /// down while capture goes on rather than spill over to be freed on
    /// the pipeline's thread.
    pub(crate) fn free_after_submit(&self) {
        let waiting = self.records.load(Ordering::Acquire);
        if waiting > 0 {
            self.free(if waiting > Self::MAX_RECORDS - Self::MAX_RECORDS / 8 { 2 } else { 1 });
        }
    }

    /// Frees up to `n` waiting records, on the calling thread; nothing if
    /// another thread is freeing right now.
    pub(crate) fn free(&self, n: usize) {
        if self.records.load(Ordering::Acquire) == 0 {
            return;
        }
        let Ok(mut current) = self.current.try_lock() else { return };
        self.taken.store(true, Ordering::Relaxed);
        let mut left = n;
        while left > 0 {
            let Some((batch, next)) = current.as_mut() else {
                match self.batches.pop() {
                    Some((batch, bytes)) => {
                        self.bytes.fetch_sub(bytes, Ordering::AcqRel);
                        *current = Some((batch, 0));
                        continue;
                    }
                    None => return,
                }
            };
            let len = batch.len();
            match Arc::get_mut(batch) {
                // One record at a time, so no capture pays for a whole batch.
                Some(records) if *next < len => {
                    let take = left.min(len - *next);
                    for r in &mut records[*next..*next + take] {
                        drop(std::mem::replace(r, Record::spent()));
                    }
                    *next += take;
                    // The next two to be freed, in two stages: their
                    // blocks were last written on the pipeline's core, and
                    // `free` reading each block's header waited for it to
                    // come over (most of a capture's time in `free`).
                    if let Some(r) = records.get(*next) {
                        prefetch_values(r);
                    }
                    if let Some(r) = records.get(*next + 1) {
                        prefetch_entries(r);
                    }
                    left -= take;
                    self.records.fetch_sub(take, Ordering::AcqRel);
                }
                // Still shared (a sink holds it): let go of this hold only.
                None => {
                    self.records.fetch_sub(len - *next, Ordering::AcqRel);
                    *next = len;
                }
                Some(_) => {}
            }
            if *next >= len {
                *current = None;
            }
        }
    }

    /// Frees everything waiting if no capture took any since the last
    /// call (the pipeline's thread calls it every flush interval), or
    /// always when `all`.
    pub(crate) fn free_if_idle(&self, all: bool) {
        if self.taken.swap(false, Ordering::Relaxed) && !all {
            return;
        }
        // Nothing if a capture is freeing right now: it goes on.
        self.free(usize::MAX);
        // This was not a capture taking some.
        self.taken.store(false, Ordering::Relaxed);
    }
}

/// Asks the processor to start bringing `address` into its cache: a hint,
/// which never faults nor reads anything the program sees.
#[inline(always)]
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` is a hint: it cannot fault, whatever the
    // address, and changes nothing the program can observe.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// The first stage for a record freed two captures from now: its name,
/// its source and its attribute entries (an entry is a cache line), which
/// the second stage reads.
fn prefetch_entries(record: &Record) {
    /// A cache line on the processors this is for.
    const LINE: usize = 64;
    prefetch(record.name.as_ptr());
    if let Some(source) = &record.source {
        prefetch(source.as_ptr());
    }
    let entries = record.attributes.as_slice();
    let start = std::ptr::from_ref(entries).cast::<u8>();
    for offset in (0..std::mem::size_of_val(entries)).step_by(LINE) {
        prefetch(start.wrapping_add(offset));
    }
}

/// The second stage, for the record freed at the next capture: the blocks
/// its attributes' keys and values own, whose headers `free` reads.
fn prefetch_values(record: &Record) {
    for (key, value) in &record.attributes {
        if let std::borrow::Cow::Owned(key) = key {
            prefetch(key.as_ptr());
        }
        prefetch_value(value);
    }
    for value in [&record.input, &record.output, &record.raw].into_iter().flatten() {
        prefetch_value(value);
    }
    for text in [&record.request_text, &record.response_text].into_iter().flatten() {
        prefetch(text.as_str().as_ptr());
    }
}

/// The block a text or a list owns (a map's nodes are not reachable).
fn prefetch_value(value: &serde_json::Value) {
    match value {
        serde_json::Value::String(text) => prefetch(text.as_ptr()),
        serde_json::Value::Array(items) => prefetch(items.as_ptr().cast()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordKind, Resource};

    /// `n` records that each hold a clone of `marker`: its count says how
    /// many are not freed yet.
    fn records(n: usize, marker: &Arc<Resource>) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let mut r = Record::new(RecordKind::Raw, format!("r{i}"));
                r.resource = Some(marker.clone());
                r
            })
            .collect()
    }

    fn batch(memory: &Arc<Memory>, records: Vec<Record>) -> Batch {
        let n = records.len();
        for _ in 0..n {
            assert!(memory.reserve(100));
        }
        Batch::new(records, n * 100, 1, memory.clone(), Arc::new(AtomicCounters::default()))
    }

    #[test]
    fn a_batch_let_go_is_freed_a_few_records_at_a_time_by_captures() {
        let memory = Arc::new(Memory::new(1 << 30, 100_000));
        let marker = Arc::new(Resource::default());
        drop(batch(&memory, records(5, &marker)));
        // Given back to the bounds at once, freed later.
        assert_eq!(memory.used.load(Ordering::Acquire), 0);
        assert_eq!(Arc::strong_count(&marker), 6);
        memory.spent.free(2);
        assert_eq!(Arc::strong_count(&marker), 4);
        memory.spent.free(2);
        memory.spent.free(2);
        assert_eq!(Arc::strong_count(&marker), 1);
        assert_eq!(memory.spent.records.load(Ordering::Acquire), 0);
        assert!(memory.spent.current.lock().unwrap().is_none());
        // Nothing waiting: freeing is a no-op.
        memory.spent.free(2);
    }

    #[test]
    fn a_capture_frees_one_record_and_two_when_the_bound_is_near() {
        let memory = Arc::new(Memory::new(1 << 30, 100_000));
        let marker = Arc::new(Resource::default());
        drop(batch(&memory, records(3, &marker)));
        memory.spent.free_after_submit();
        assert_eq!(Arc::strong_count(&marker), 3, "one freed");
        memory.spent.free_after_submit();
        memory.spent.free_after_submit();
        assert_eq!(Arc::strong_count(&marker), 1);
        memory.spent.free_after_submit();
        assert_eq!(memory.spent.records.load(Ordering::Acquire), 0);

        let near = Spent::MAX_RECORDS - Spent::MAX_RECORDS / 8 + 2;
        drop(batch(&memory, records(near, &marker)));
        memory.spent.free_after_submit();
        assert_eq!(Arc::strong_count(&marker), 1 + near - 2, "two freed near the bound");
        memory.spent.free_after_submit();
        assert_eq!(Arc::strong_count(&marker), 1 + near - 3, "then one again");
    }

    #[test]
    fn past_its_bound_a_batch_is_freed_where_it_is_let_go() {
        let memory = Arc::new(Memory::new(1 << 30, 100_000));
        let marker = Arc::new(Resource::default());
        drop(batch(&memory, records(Spent::MAX_RECORDS, &marker)));
        assert_eq!(Arc::strong_count(&marker), 1 + Spent::MAX_RECORDS, "the first fits and waits");
        drop(batch(&memory, records(1, &marker)));
        assert_eq!(Arc::strong_count(&marker), 1 + Spent::MAX_RECORDS, "the next is freed at once");
        // Bytes bound too.
        let memory = Arc::new(Memory::new(1 << 30, 100_000));
        let big = Batch::new(records(1, &marker), Spent::MAX_BYTES + 1, 1, memory.clone(), Default::default());
        assert!(memory.reserve(Spent::MAX_BYTES + 1));
        drop(big);
        assert_eq!(Arc::strong_count(&marker), 1 + Spent::MAX_RECORDS);
    }

    #[test]
    fn records_a_sink_still_holds_are_left_to_it() {
        let memory = Arc::new(Memory::new(1 << 30, 100_000));
        let marker = Arc::new(Resource::default());
        let b = batch(&memory, records(3, &marker));
        let held = b.records.clone();
        drop(b);
        memory.spent.free(1);
        assert_eq!(memory.spent.records.load(Ordering::Acquire), 0, "let go of, not freed");
        assert_eq!(held.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["r0", "r1", "r2"]);
        assert_eq!(Arc::strong_count(&marker), 4);
        drop(held);
        assert_eq!(Arc::strong_count(&marker), 1);
    }

    #[test]
    fn the_pipeline_thread_frees_what_no_capture_came_for() {
        let memory = Arc::new(Memory::new(1 << 30, 100_000));
        let marker = Arc::new(Resource::default());
        drop(batch(&memory, records(10, &marker)));
        memory.spent.free(2);
        // A capture took some since the last look: left to captures.
        memory.spent.free_if_idle(false);
        assert_eq!(Arc::strong_count(&marker), 9);
        // None since: all freed.
        memory.spent.free_if_idle(false);
        assert_eq!(Arc::strong_count(&marker), 1);
        drop(batch(&memory, records(4, &marker)));
        memory.spent.free(1);
        memory.spent.free_if_idle(true);
        assert_eq!(Arc::strong_count(&marker), 1, "all, when asked");
    }
}
