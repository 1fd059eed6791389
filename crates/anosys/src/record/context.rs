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

/// A W3C `traceparent` header: the remote parent's trace id, span id and
/// trace flags. `None` for anything malformed, an all-zero id, or the
/// invalid version `ff` (as the W3C spec requires).
///
/// ```
/// use anosys::record::context::parse_traceparent;
/// let (trace, parent, flags) =
///     parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(parent.to_string(), "00f067aa0ba902b7");
/// assert_eq!(flags, 1);
/// assert!(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// assert!(parse_traceparent("garbage").is_none());
/// ```
pub fn parse_traceparent(header: &str) -> Option<(TraceId, SpanId, u8)> {
    let mut parts = header.trim().split('-');
    let version = parts.next()?;
    let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let hex2 = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    if !hex2(version) || version == "ff" || !hex2(flags) {
        return None;
    }
    // Version 00 has exactly four fields; later versions may add more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    if trace.bytes().any(|b| b.is_ascii_uppercase()) || span.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let trace = TraceId::from_hex(trace).filter(|t| t.0 != [0; 16])?;
    let span = SpanId::from_hex(span).filter(|s| s.0 != [0; 8])?;
    Some((trace, span, u8::from_str_radix(flags, 16).ok()?))
}
