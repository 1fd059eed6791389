//! The bounded, lock-free queue between callers and the worker.
//!
//! A push is a few atomic operations: no lock, no syscall. The worker is
//! woken only when a full batch is waiting; otherwise it collects on its
//! own timer, so a steady trickle of records costs the caller no wake-ups.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_queue::SegQueue;
use tokio::sync::Notify;

use crate::record::Record;

pub(crate) struct Queue {
    items: SegQueue<(Record, usize)>,
    len: AtomicUsize,
    capacity: usize,
    wake_at: usize,
    wake_pending: AtomicBool,
    pub(crate) notify: Notify,
}

impl Queue {
    pub(crate) fn new(capacity: usize, wake_at: usize) -> Self {
        Queue {
            items: SegQueue::new(),
            len: AtomicUsize::new(0),
            capacity,
            wake_at: wake_at.max(1),
            wake_pending: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Adds a record of about `size` bytes; `false` (and the record
    /// dropped) when the queue is full.
    pub(crate) fn push(&self, record: Record, size: usize) -> bool {
        let before = self.len.fetch_add(1, Ordering::AcqRel);
        if before >= self.capacity {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.items.push((record, size));
        if before + 1 >= self.wake_at
            && !self.wake_pending.load(Ordering::Relaxed)
            && !self.wake_pending.swap(true, Ordering::AcqRel)
        {
            self.notify.notify_one();
        }
        true
    }

    pub(crate) fn pop(&self) -> Option<(Record, usize)> {
        let r = self.items.pop()?;
        self.len.fetch_sub(1, Ordering::AcqRel);
        Some(r)
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Called by the worker once it is awake and about to look.
    pub(crate) fn rearm(&self) {
        self.wake_pending.store(false, Ordering::Release);
    }
}
