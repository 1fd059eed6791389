//! Runtime support for `#[anosys::logger]`: one record per call of a marked
//! function, with inputs, output, errors, panics, cancellation, caller,
//! duration, thread and the trace context its children join.
//!
//! The macro expands to calls into this module (through
//! `anosys::__private`); its items are public only for that and are not a
//! stable API.

use std::any::Any;
use std::cell::RefCell;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use serde::Serialize;
use serde_json::Value;

use super::{end_cancelled, end_with_error, function_record};
use crate::record::context::{self, EnteredSpan, SpanContext};
use crate::record::{Caller, ErrorInfo, Record, Status};

/// What the macro knows about a function at compile time.
#[derive(Debug)]
pub struct CallSite {
    /// The function's name.
    pub name: &'static str,
    /// `module_path!()` where it is defined.
    pub module_path: &'static str,
    /// The `source` argument, if given.
    pub source: Option<&'static str>,
    /// Where the function is defined.
    pub file: &'static str,
    /// The line of its definition.
    pub line: u32,
    /// Whether it is `async` (its caller is then the definition site).
    pub is_async: bool,
}

/// Wraps a value to capture it as JSON: through `Serialize` when it has
/// it, else `Debug`, else its type name (no bound on the user's types).
pub struct Capture<'a, T: ?Sized>(pub &'a T);

/// Highest priority: `Serialize`.
pub trait CaptureSerialize {
    /// The captured value.
    fn anosys_capture(&self) -> Value;
}
impl<T: Serialize + ?Sized> CaptureSerialize for &&Capture<'_, T> {
    fn anosys_capture(&self) -> Value {
        match catch_unwind(AssertUnwindSafe(|| serde_json::to_value(self.0))) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => Value::String(format!("<unserializable {}: {e}>", std::any::type_name::<T>())),
            Err(_) => Value::String(format!("<{} panicked while serialising>", std::any::type_name::<T>())),
        }
    }
}

/// Second: `Debug`.
pub trait CaptureDebug {
    /// The captured value.
    fn anosys_capture(&self) -> Value;
}
impl<T: Debug + ?Sized> CaptureDebug for &Capture<'_, T> {
    fn anosys_capture(&self) -> Value {
        match catch_unwind(AssertUnwindSafe(|| format!("{:?}", self.0))) {
            Ok(s) => Value::String(s),
            Err(_) => Value::String(format!("<{} panicked while formatting>", std::any::type_name::<T>())),
        }
    }
}

/// Last: the type's name.
pub trait CaptureTypeName {
    /// The captured value.
    fn anosys_capture(&self) -> Value;
}
impl<T: ?Sized> CaptureTypeName for Capture<'_, T> {
    fn anosys_capture(&self) -> Value {
        Value::String(format!("<{}>", std::any::type_name::<T>()))
    }
}

/// Describes an error: `std::error::Error` (message and `source()` chain),
/// else `Display`, else `Debug`, else the type name.
pub struct Describe<'a, T: ?Sized>(pub &'a T);

/// `anyhow::Error`, `eyre::Report` and `Box<dyn Error>` print their cause
/// chain and, when one was captured, their backtrace with `{:?}`.
fn boxed_error<T: Debug + ?Sized>(outer: &T, inner: &(dyn std::error::Error + 'static)) -> (String, Option<String>) {
    let error = ErrorInfo::from_error(inner);
    let debug = format!("{outer:?}");
    let stack = if debug.to_ascii_lowercase().contains("backtrace") { Some(debug) } else { error.stack };
    (error.message, stack)
}

/// First: error handles that deref to `dyn Error + Send + Sync` (anyhow,
/// eyre, `Box<dyn Error + Send + Sync>`).
pub trait DescribeBoxedSendError {
    /// (message, cause chain or backtrace)
    fn anosys_describe(&self) -> (String, Option<String>);
}
impl<T> DescribeBoxedSendError for &&&&&Describe<'_, T>
where
    T: std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static> + Debug + ?Sized,
{
    fn anosys_describe(&self) -> (String, Option<String>) {
        boxed_error(self.0, &**self.0)
    }
}

/// Then `Box<dyn Error>`.
pub trait DescribeBoxedError {
    /// (message, cause chain or backtrace)
    fn anosys_describe(&self) -> (String, Option<String>);
}
impl<T> DescribeBoxedError for &&&&Describe<'_, T>
where
    T: std::ops::Deref<Target = dyn std::error::Error + 'static> + Debug + ?Sized,
{
    fn anosys_describe(&self) -> (String, Option<String>) {
        boxed_error(self.0, &**self.0)
    }
}

/// Then `std::error::Error`.
pub trait DescribeError {
    /// (message, cause chain)
    fn anosys_describe(&self) -> (String, Option<String>);
}
impl<T: std::error::Error + ?Sized> DescribeError for &&&Describe<'_, T> {
    fn anosys_describe(&self) -> (String, Option<String>) {
        let error = ErrorInfo::from_error(self.0);
        (error.message, error.stack)
    }
}

/// Second: `Display`.
pub trait DescribeDisplay {
    /// (message, cause chain)
    fn anosys_describe(&self) -> (String, Option<String>);
}
impl<T: Display + ?Sized> DescribeDisplay for &&Describe<'_, T> {
    fn anosys_describe(&self) -> (String, Option<String>) {
        // `{:#}` shows anyhow's and eyre's whole chain on one line; the
        // alternate `Debug` of those types carries the backtrace.
        (self.0.to_string(), None)
    }
}

/// Third: `Debug`.
pub trait DescribeDebug {
    /// (message, cause chain)
    fn anosys_describe(&self) -> (String, Option<String>);
}
impl<T: Debug + ?Sized> DescribeDebug for &Describe<'_, T> {
    fn anosys_describe(&self) -> (String, Option<String>) {
        (format!("{:?}", self.0), None)
    }
}

/// Last: the type's name.
pub trait DescribeTypeName {
    /// (message, cause chain)
    fn anosys_describe(&self) -> (String, Option<String>);
}
impl<T: ?Sized> DescribeTypeName for Describe<'_, T> {
    fn anosys_describe(&self) -> (String, Option<String>) {
        (std::any::type_name::<T>().to_owned(), None)
    }
}

/// The name of `E` in a `Result<T, E>`.
pub fn error_type_name<T, E>(_: &Result<T, E>) -> &'static str {
    std::any::type_name::<E>()
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}
static PANIC_HOOK: Once = Once::new();

/// Chains a panic hook that notes where a panic happened (the payload does
/// not say), then calls the hook that was there before.
fn note_panic_locations() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(l) = info.location() {
                let _ = LAST_PANIC.try_with(|p| *p.borrow_mut() = Some(format!("{}:{}:{}", l.file(), l.line(), l.column())));
            }
            previous(info);
        }));
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "Box<dyn Any>".to_owned())
}

/// One call in progress.
pub struct ActiveCall {
    record: Record,
    content: bool,
    /// The global pipeline when the call started (looked up once).
    pipeline: Option<crate::pipeline::Pipeline>,
}

impl ActiveCall {
    /// Starts the record: a child of the current span.
    pub fn start(site: &'static CallSite, caller: Option<&'static Location<'static>>) -> ActiveCall {
        note_panic_locations();
        let name = format!("{}::{}", site.module_path, site.name);
        let caller = match caller {
            Some(l) => Caller { function: None, file: l.file().to_owned(), line: l.line() },
            // async functions: the definition site (see the macro's docs)
            None => Caller { function: Some(site.name.to_owned()), file: site.file.to_owned(), line: site.line },
        };
        let source = site.source.unwrap_or(site.module_path);
        let mut record = function_record(&name, source, site.file, site.line, caller).with_current_parent();
        if let Some(name) = std::thread::current().name() {
            record.set_attribute("thread.name", name.to_owned());
        }
        let pipeline = crate::global::global();
        let content = pipeline.as_ref().is_none_or(|p| p.capture_content());
        ActiveCall { record, content, pipeline }
    }

    /// Whether inputs and outputs are captured.
    pub fn content(&self) -> bool {
        self.content
    }

    /// Sets the inputs (a JSON array).
    pub fn inputs(&mut self, inputs: Vec<Value>) {
        self.record.input = Some(Value::Array(inputs));
    }

    /// Adds a `fields(key = value)` attribute.
    pub fn field(&mut self, key: &'static str, value: Value) {
        self.record.set_attribute(key, value);
    }

    /// The context children of this call join.
    pub fn span_context(&self) -> SpanContext {
        SpanContext { trace_id: self.record.trace_id, span_id: self.record.span_id }
    }

    /// Makes this call the current span on this thread.
    pub fn enter(&self) -> EnteredSpan {
        context::enter(self.span_context())
    }

    /// Ends with a plain return value.
    pub fn finish_value(mut self, output: impl FnOnce() -> Value) {
        if self.content {
            self.record.output = Some(output());
        }
        self.end(Status::ok());
    }

    /// Ends with `Ok(value)`.
    pub fn finish_ok(self, output: impl FnOnce() -> Value) {
        self.finish_value(output);
    }

    /// Ends with `Err(e)`.
    pub fn finish_err(mut self, error_type: &str, (message, stack): (String, Option<String>)) {
        end_with_error(&mut self.record, ErrorInfo { error_type: error_type.to_owned(), message, stack });
        self.submit();
    }

    /// Ends with a panic (which then goes on unchanged).
    pub fn finish_panic(mut self, payload: &(dyn Any + Send)) {
        let location = LAST_PANIC.try_with(|p| p.borrow_mut().take()).ok().flatten();
        let message = panic_message(payload);
        let stack = location.map(|l| format!("panicked at {l}"));
        end_with_error(&mut self.record, ErrorInfo { stack, ..ErrorInfo::new("panic", message) });
        self.record.set_attribute("anosys.outcome", "panicked");
        self.submit();
    }

    /// Ends an async call dropped before it finished.
    pub fn finish_cancelled(mut self) {
        end_cancelled(&mut self.record);
        self.submit();
    }

    fn end(mut self, status: Status) {
        self.record.finish(status);
        self.submit();
    }

    fn submit(self) {
        if let Some(p) = &self.pipeline {
            p.submit(self.record);
        }
    }
}

/// Runs a sync body inside the call: enters its span, catches a panic
/// to record it, then lets it go on.
pub fn run_sync<R>(call: ActiveCall, body: impl FnOnce() -> R, done: impl FnOnce(ActiveCall, &R)) -> R {
    let entered = call.enter();
    let result = catch_unwind(AssertUnwindSafe(body));
    drop(entered);
    match result {
        Ok(value) => {
            done(call, &value);
            value
        }
        Err(payload) => {
            call.finish_panic(&*payload);
            std::panic::resume_unwind(payload)
        }
    }
}

/// The future of a logged async function: enters the call's span on every
/// poll, records the output, a panic, or (when dropped first) cancellation.
pub struct LoggedFuture<F: Future, D: FnOnce(ActiveCall, &F::Output)> {
    inner: Pin<Box<F>>,
    call: Option<(ActiveCall, D)>,
}

impl<F: Future, D: FnOnce(ActiveCall, &F::Output)> LoggedFuture<F, D> {
    /// Wraps `inner`.
    pub fn new(call: ActiveCall, inner: F, done: D) -> Self {
        LoggedFuture { inner: Box::pin(inner), call: Some((call, done)) }
    }
}

impl<F: Future, D: FnOnce(ActiveCall, &F::Output)> Future for LoggedFuture<F, D> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: nothing here is structurally pinned: `inner` is a
        // `Pin<Box<_>>` and `call` is never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let entered = this.call.as_ref().map(|(c, _)| c.enter());
        let polled = catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll(cx)));
        drop(entered);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                if let Some((call, done)) = this.call.take() {
                    done(call, &value);
                }
                Poll::Ready(value)
            }
            Err(payload) => {
                if let Some((call, _)) = this.call.take() {
                    call.finish_panic(&*payload);
                }
                std::panic::resume_unwind(payload)
            }
        }
    }
}

impl<F: Future, D: FnOnce(ActiveCall, &F::Output)> Drop for LoggedFuture<F, D> {
    fn drop(&mut self) {
        if let Some((call, _)) = self.call.take() {
            call.finish_cancelled();
        }
    }
}
