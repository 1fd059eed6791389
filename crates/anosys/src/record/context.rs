//! The current trace context: which span new records are children of.
//!
//! anosys's own spans (`#[anosys::logger]` calls) are a thread-local stack,
//! entered for each poll of an async call. With the `otel` feature, an
//! active OpenTelemetry span counts too (and so does a `tracing` span, whose
//! OpenTelemetry context tracing-opentelemetry activates on enter): the
//! innermost of the two is the parent.

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

/// One entered anosys span, with the OpenTelemetry span that was active
/// when it was entered (an OpenTelemetry span active now but not then was
/// entered inside it, and is the innermost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    cx: SpanContext,
    foreign_at_entry: Option<SpanContext>,
}

thread_local! {
    static STACK: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// The active OpenTelemetry span on this thread, if any.
#[cfg(feature = "otel")]
fn foreign() -> Option<SpanContext> {
    use opentelemetry::trace::TraceContextExt;
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| SpanContext { trace_id: TraceId(sc.trace_id().to_bytes()), span_id: SpanId(sc.span_id().to_bytes()) })
}

#[cfg(not(feature = "otel"))]
fn foreign() -> Option<SpanContext> {
    None
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
    let top = STACK.try_with(|s| s.borrow().last().copied()).ok().flatten();
    let foreign = foreign();
    match (top, foreign) {
        (Some(top), Some(f)) if top.foreign_at_entry != Some(f) => Some(f),
        (Some(top), _) => Some(top.cx),
        (None, f) => f,
    }
}

/// Makes `cx` the current span on this thread until the guard drops.
///
/// With the `otel` feature it is also the active OpenTelemetry span
/// context meanwhile, so OpenTelemetry (and `tracing`) spans started inside
/// a logged function are its children too.
pub fn enter(cx: SpanContext) -> EnteredSpan {
    let entry = Entry { cx, foreign_at_entry: foreign() };
    let _ = STACK.try_with(|s| s.borrow_mut().push(entry));
    EnteredSpan {
        entry,
        #[cfg(feature = "otel")]
        _otel: attach_otel(cx),
        _not_send: std::marker::PhantomData,
    }
}

#[cfg(feature = "otel")]
fn attach_otel(cx: SpanContext) -> opentelemetry::ContextGuard {
    use opentelemetry::trace::{SpanContext as OtelSpanContext, SpanId as OtelSpanId, TraceContextExt, TraceFlags, TraceId as OtelTraceId};
    let current = opentelemetry::Context::current();
    let span = OtelSpanContext::new(
        OtelTraceId::from_bytes(cx.trace_id.0),
        OtelSpanId::from_bytes(cx.span_id.0),
        TraceFlags::SAMPLED,
        false,
        current.span().span_context().trace_state().clone(),
    );
    current.with_remote_span_context(span).attach()
}

/// Leaves the span when dropped. Not `Send`: it belongs to its thread.
#[derive(Debug)]
pub struct EnteredSpan {
    entry: Entry,
    #[cfg(feature = "otel")]
    _otel: opentelemetry::ContextGuard,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for EnteredSpan {
    fn drop(&mut self) {
        let _ = STACK.try_with(|s| {
            let mut s = s.borrow_mut();
            if let Some(pos) = s.iter().rposition(|c| *c == self.entry) {
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
