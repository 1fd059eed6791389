//! The current trace context: which span new records are children of.
//!
//! A thread-local stack for now; the function-logging and OpenTelemetry
//! issues extend it to async tasks and to OpenTelemetry's own context.

use std::cell::RefCell;

use super::{SpanId, TraceId};

/// The ids a child record takes from its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace all records of one operation share.
    pub trace_id: TraceId,
    /// The parent's span id.
    pub span_id: SpanId,
}

thread_local! {
    static STACK: RefCell<Vec<SpanContext>> = const { RefCell::new(Vec::new()) };
}

/// The innermost entered span on this thread, if any.
///
/// ```
/// use anosys::record::context::{self, SpanContext};
/// use anosys::{SpanId, TraceId};
/// assert!(context::current().is_none());
/// let cx = SpanContext { trace_id: TraceId::random(), span_id: SpanId::random() };
/// let guard = context::enter(cx);
/// assert_eq!(context::current(), Some(cx));
/// drop(guard);
/// assert!(context::current().is_none());
/// ```
pub fn current() -> Option<SpanContext> {
    STACK.try_with(|s| s.borrow().last().copied()).ok().flatten()
}

/// Makes `cx` the current span on this thread until the guard drops.
pub fn enter(cx: SpanContext) -> EnteredSpan {
    let _ = STACK.try_with(|s| s.borrow_mut().push(cx));
    EnteredSpan { cx, _not_send: std::marker::PhantomData }
}

/// Leaves the span when dropped. Not `Send`: it belongs to its thread.
#[derive(Debug)]
pub struct EnteredSpan {
    cx: SpanContext,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnteredSpan {
    fn drop(&mut self) {
        let _ = STACK.try_with(|s| {
            let mut s = s.borrow_mut();
            if let Some(pos) = s.iter().rposition(|c| *c == self.cx) {
                s.remove(pos);
            }
        });
    }
}
