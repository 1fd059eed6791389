//! A thread that takes work off the request path in batches.
//!
//! A request only pushes an item onto a queue: a short, uncontended lock,
//! no syscall, and no wake-up while the thread is already collecting. The
//! thread sleeps until the first item after a quiet spell, collects for its
//! window, then hands everything queued to its handler at once, in push
//! order. Under load it thus wakes at most once per window, whatever the
//! request rate. [`Worker::flush`] runs the handler on the caller's thread
//! for what is queued; dropping the worker stops the thread after it has
//! handled every item.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// What handles a batch: the items, and how many were dropped (queue full)
/// since the last batch.
pub(crate) type Handler<T> = Box<dyn FnMut(Vec<T>, u64) + Send>;

struct State<T> {
    items: Vec<T>,
    /// The thread waits for a first item: a push must wake it.
    idle: bool,
    stop: bool,
    dropped: u64,
}

struct Queue<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
    /// Held while a batch is handled, so batches keep their order whoever
    /// handles them (the thread, or a flush).
    handler: Mutex<Handler<T>>,
    window: Duration,
    max: usize,
}

impl<T> Queue<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Handles whatever is queued now.
    fn drain(&self) {
        let mut handler = self.handler.lock().unwrap_or_else(|p| p.into_inner());
        let (items, dropped) = {
            let mut s = self.state();
            (std::mem::take(&mut s.items), std::mem::take(&mut s.dropped))
        };
        if !items.is_empty() || dropped > 0 {
            handler(items, dropped);
        }
    }

    fn run(&self) {
        loop {
            {
                let mut s = self.state();
                while s.items.is_empty() && !s.stop {
                    s.idle = true;
                    s = self.wake.wait(s).unwrap_or_else(|p| p.into_inner());
                }
                s.idle = false;
                if !s.stop && !self.window.is_zero() {
                    s = self.wake.wait_timeout_while(s, self.window, |s| !s.stop).unwrap_or_else(|p| p.into_inner()).0;
                }
                if s.stop {
                    drop(s);
                    self.drain();
                    return;
                }
            }
            self.drain();
        }
    }
}

/// See the module's doc.
pub(crate) struct Worker<T> {
    queue: Arc<Queue<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    /// A worker thread named `name`, collecting for `window` before each
    /// batch, holding at most `max` items (more are dropped and counted).
    pub(crate) fn new(name: &str, window: Duration, max: usize, handler: Handler<T>) -> Worker<T> {
        let queue = Arc::new(Queue {
            state: Mutex::new(State { items: Vec::new(), idle: true, stop: false, dropped: 0 }),
            wake: Condvar::new(),
            handler: Mutex::new(handler),
            window,
            max,
        });
        let q = queue.clone();
        let thread = std::thread::Builder::new().name(name.into()).spawn(move || q.run()).ok();
        Worker { queue, thread }
    }

    /// Queues one item; `false` if the queue was full and it was dropped
    /// (and counted).
    pub(crate) fn push(&self, item: T) -> bool {
        match self.try_push(item) {
            Ok(()) => true,
            Err(_) => {
                self.queue.state().dropped += 1;
                false
            }
        }
    }

    /// Queues one item, or gives it back if the queue is full.
    pub(crate) fn try_push(&self, item: T) -> Result<(), T> {
        let q = &self.queue;
        let mut s = q.state();
        if s.items.len() >= q.max {
            return Err(item);
        }
        s.items.push(item);
        let wake = s.idle || s.stop;
        s.idle = false;
        drop(s);
        if wake {
            if self.thread.is_some() {
                q.wake.notify_one();
            } else {
                // No thread (it could not be started): now.
                q.drain();
            }
        }
        Ok(())
    }

    /// Handles every queued item now, on the calling thread.
    pub(crate) fn flush(&self) {
        self.queue.drain();
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        self.queue.state().stop = true;
        self.queue.wake.notify_one();
        if let Some(t) = self.thread.take() {
            if t.thread().id() == std::thread::current().id() {
                // Dropped by its own handler: the thread handles what is
                // left and stops as soon as the handler returns.
                return;
            }
            let _ = t.join();
        }
        self.queue.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_handled_in_order_in_batches_and_all_by_the_drop() {
        let seen = Arc::new(Mutex::new((Vec::new(), 0usize)));
        let s = seen.clone();
        let worker = Worker::new(
            "test",
            Duration::from_millis(20),
            1 << 20,
            Box::new(move |items: Vec<u32>, _| {
                let mut s = s.lock().unwrap();
                s.0.extend(items);
                s.1 += 1;
            }),
        );
        for i in 0..10_000 {
            assert!(worker.push(i));
        }
        drop(worker);
        let s = seen.lock().unwrap();
        assert_eq!(s.0, (0..10_000).collect::<Vec<_>>());
        assert!(s.1 < 100, "{} batches", s.1);
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let dropped = Arc::new(Mutex::new(0u64));
        let d = dropped.clone();
        // A long window: the pushes below all land in the first one.
        let worker =
            Worker::new("test", Duration::from_secs(5), 2, Box::new(move |_: Vec<u8>, n| *d.lock().unwrap() += n));
        let pushed: Vec<bool> = (0..5).map(|i| worker.push(i)).collect();
        assert_eq!(pushed, [true, true, false, false, false]);
        worker.flush();
        assert_eq!(*dropped.lock().unwrap(), 3);
        drop(worker);
    }
}
