//! Runtime support for `#[anosys::logger]`: one record per call of a marked
//! function, with inputs, output, errors, panics, cancellation, caller,
//! duration, thread and the trace context its children join.
//!
//! The macro expands to calls into this module; its items are public only
//! for that and are not a stable API.

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

use crate::record::context::{self, EnteredSpan, SpanContext};
use crate::record::{Caller, ErrorInfo, Record, RecordKind, Status};

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

fn chain_of(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut chain = Vec::new();
    let mut next = error.source();
    while let Some(cause) = next {
        chain.push(format!("caused by: {cause}"));
        next = cause.source();
    }
    (!chain.is_empty()).then(|| chain.join("\n"))
}

/// `anyhow::Error`, `eyre::Report` and `Box<dyn Error>` print their cause
/// chain and, when one was captured, their backtrace with `{:?}`.
fn boxed_error<T: Debug + ?Sized>(outer: &T, inner: &(dyn std::error::Error + 'static)) -> (String, Option<String>) {
    let debug = format!("{outer:?}");
    let stack = if debug.to_ascii_lowercase().contains("backtrace") { Some(debug) } else { chain_of(inner) };
    (inner.to_string(), stack)
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
        let mut chain = Vec::new();
        let mut next = self.0.source();
        while let Some(cause) = next {
            chain.push(format!("caused by: {cause}"));
            next = cause.source();
        }
        (self.0.to_string(), (!chain.is_empty()).then(|| chain.join("\n")))
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

/// A function-call record starting now, shaped the same for every
/// language: the span name, `source`, `code.*` attributes of the
/// definition and the caller. The Rust macro and the Python and Node
/// packages' decorators all start their records here.
///
/// ```
/// use anosys::Caller;
/// let caller = Caller { function: Some("main".into()), file: "app.py".into(), line: 12 };
/// let r = anosys::sources::function::function_record("app.charge", "billing", "app.py", 3, caller);
/// assert_eq!(r.source.as_deref(), Some("billing"));
/// assert_eq!(r.attribute("code.line.number"), Some(&serde_json::json!(3)));
/// ```
pub fn function_record(name: &str, source: &str, file: &str, line: u32, caller: Caller) -> Record {
    let mut record = Record::new(RecordKind::FunctionCall, name);
    record.source = Some(source.to_owned());
    record.set_attribute("code.function.name", name.to_owned());
    record.set_attribute("code.file.path", file.to_owned());
    record.set_attribute("code.line.number", line);
    record.caller = Some(caller);
    record
}

/// Ends a function record with a failure: `error.type`, the error and an
/// `ERROR` status (an exception, an `Err`, a panic).
pub fn end_with_error(record: &mut Record, error_type: &str, message: String, stack: Option<String>) {
    record.set_attribute("error.type", error_type.to_owned());
    record.finish(Status::default());
    record.fail(ErrorInfo { error_type: error_type.to_owned(), message, stack });
}

/// Ends a function record whose call was abandoned before it finished (a
/// dropped future, a generator closed early): status `UNSET`,
/// `anosys.outcome = "cancelled"`.
pub fn end_cancelled(record: &mut Record) {
    record.set_attribute("anosys.outcome", "cancelled");
    record.finish(Status::default());
}

/// A function call recorded by code outside Rust (the Python and Node
/// decorators): started on entry, ended once with its output, its error or
/// as cancelled, and recorded as cancelled if dropped unfinished.
///
/// Inputs and outputs are kept only when content capture is on
/// ([`crate::embed::capture_content_enabled`]); they are built lazily, so nothing
/// is converted when it is off.
///
/// ```
/// use anosys::Caller;
/// use anosys::sources::function::LiveFunctionCall;
/// use serde_json::json;
///
/// let caller = Caller { function: Some("main".into()), file: "app.js".into(), line: 7 };
/// let mut call = LiveFunctionCall::start("charge", "billing", "app.js", 3, caller, None, || json!({"args": [42]}));
/// let record = call.fail_record("TypeError", "no card".into(), Some("TypeError: no card\n    at charge".into()), || None).unwrap();
/// assert_eq!(record.attribute("error.type"), Some(&json!("TypeError")));
/// assert!(call.finish_record(|| json!(null)).is_none(), "a call ends once");
/// ```
#[derive(Debug)]
pub struct LiveFunctionCall {
    record: Option<Record>,
    trace_id: crate::TraceId,
    span_id: crate::SpanId,
    content: bool,
}

impl LiveFunctionCall {
    /// Starts the record of a call of `name` (defined at `file:line`) made
    /// from `caller`, as a child of `parent` (trace id, span id) if given.
    pub fn start(
        name: &str,
        source: &str,
        file: &str,
        line: u32,
        caller: Caller,
        parent: Option<(crate::TraceId, crate::SpanId)>,
        input: impl FnOnce() -> Value,
    ) -> LiveFunctionCall {
        let mut record = function_record(name, source, file, line, caller);
        if let Some((trace, span)) = parent {
            record.set_parent(trace, span);
        }
        let content = crate::embed::capture_content_enabled();
        if content {
            record.input = Some(input());
        }
        LiveFunctionCall { trace_id: record.trace_id, span_id: record.span_id, record: Some(record), content }
    }

    /// The trace this call belongs to.
    pub fn trace_id(&self) -> crate::TraceId {
        self.trace_id
    }

    /// This call's span id: children name it as their parent.
    pub fn span_id(&self) -> crate::SpanId {
        self.span_id
    }

    /// Whether inputs and outputs are captured.
    pub fn content(&self) -> bool {
        self.content
    }

    /// Ends the call with its return value; returns whether the pipeline
    /// took the record.
    pub fn finish(&mut self, output: impl FnOnce() -> Value) -> bool {
        self.finish_record(output).is_some_and(crate::capture)
    }

    /// [`finish`](Self::finish), returning the record instead of sending it.
    pub fn finish_record(&mut self, output: impl FnOnce() -> Value) -> Option<Record> {
        let mut record = self.record.take()?;
        if self.content {
            record.output = Some(output());
        }
        record.finish(Status::ok());
        Some(record)
    }

    /// Ends the call with an error: its type, message and stack, and what
    /// it produced before failing (a generator's items), if anything.
    pub fn fail(&mut self, error_type: &str, message: String, stack: Option<String>, output: impl FnOnce() -> Option<Value>) -> bool {
        self.fail_record(error_type, message, stack, output).is_some_and(crate::capture)
    }

    /// [`fail`](Self::fail), returning the record instead of sending it.
    pub fn fail_record(
        &mut self,
        error_type: &str,
        message: String,
        stack: Option<String>,
        output: impl FnOnce() -> Option<Value>,
    ) -> Option<Record> {
        let mut record = self.record.take()?;
        if self.content {
            record.output = output();
        }
        end_with_error(&mut record, error_type, message, stack);
        Some(record)
    }

    /// Ends a call abandoned before it finished (a generator closed early,
    /// a cancelled coroutine), keeping what it produced.
    pub fn cancel(&mut self, output: impl FnOnce() -> Option<Value>) -> bool {
        let Some(mut record) = self.record.take() else { return false };
        if self.content {
            record.output = output();
        }
        end_cancelled(&mut record);
        crate::capture(record)
    }
}

impl Drop for LiveFunctionCall {
    fn drop(&mut self) {
        if let Some(mut record) = self.record.take() {
            end_cancelled(&mut record);
            crate::capture(record);
        }
    }
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
        end_with_error(&mut self.record, error_type, message, stack);
        self.submit();
    }

    /// Ends with a panic (which then goes on unchanged).
    pub fn finish_panic(mut self, payload: &(dyn Any + Send)) {
        let location = LAST_PANIC.try_with(|p| p.borrow_mut().take()).ok().flatten();
        let message = panic_message(payload);
        self.record.set_attribute("error.type", "panic");
        self.record.set_attribute("anosys.outcome", "panicked");
        self.record.finish(Status::default());
        self.record.fail(ErrorInfo {
            error_type: "panic".into(),
            message,
            stack: location.map(|l| format!("panicked at {l}")),
        });
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
