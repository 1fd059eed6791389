//! [`LiveFunctionCall`]: a function call held by a language binding (the
//! Python and Node decorators) from entry to return, throw or close.

use serde_json::Value;

use super::{end_cancelled, end_with_error, function_record};
use crate::record::{Caller, ErrorInfo, Record, SpanId, Status, TraceId};

/// A function call recorded by code outside Rust (the Python and Node
/// decorators): started on entry, ended once with its output, its error or
/// as cancelled. Each ending returns the record (`None` once the call has
/// ended) for the caller to submit ([`crate::capture`]); a call dropped
/// unfinished is sent to the global pipeline as cancelled.
///
/// Inputs and outputs are kept only when content capture is on
/// ([`crate::embed::capture_content_enabled`]); they are built lazily, so nothing
/// is converted when it is off.
///
/// ```
/// use anosys::{Caller, ErrorInfo};
/// use anosys::embed::LiveFunctionCall;
/// use serde_json::json;
///
/// let caller = Caller { function: Some("main".into()), file: "app.js".into(), line: 7 };
/// let mut call = LiveFunctionCall::start("charge", "billing", "app.js", 3, caller, None, || json!({"args": [42]}));
/// let error = ErrorInfo { stack: Some("TypeError: no card\n    at charge".into()), ..ErrorInfo::new("TypeError", "no card") };
/// let record = call.fail(error).unwrap();
/// assert_eq!(record.attribute("error.type"), Some(&json!("TypeError")));
/// assert!(call.finish(|| json!(null)).is_none(), "a call ends once");
/// ```
#[derive(Debug)]
pub struct LiveFunctionCall {
    /// Boxed: a binding's object holds the call until the language frees
    /// the object, well after it has ended (see `openai::live::State`).
    record: Option<Box<Record>>,
    trace_id: TraceId,
    span_id: SpanId,
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
        parent: Option<(TraceId, SpanId)>,
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
        LiveFunctionCall { trace_id: record.trace_id, span_id: record.span_id, record: Some(Box::new(record)), content }
    }

    /// The trace this call belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This call's span id: children name it as their parent.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// Whether inputs and outputs are captured.
    pub fn content(&self) -> bool {
        self.content
    }

    /// What the call produced before it [`fail`](Self::fail)ed or was
    /// [`cancel`](Self::cancel)led (a generator's items), when content is
    /// captured.
    pub fn set_output(&mut self, output: impl FnOnce() -> Value) {
        if let Some(record) = self.record.as_mut().filter(|_| self.content) {
            record.output = Some(output());
        }
    }

    /// Ends the call with its return value.
    pub fn finish(&mut self, output: impl FnOnce() -> Value) -> Option<Record> {
        self.set_output(output);
        let mut record = *self.record.take()?;
        record.finish(Status::ok());
        Some(record)
    }

    /// Ends the call with an error: its type, message and stack (with what
    /// it produced before, if [`set_output`](Self::set_output) said).
    pub fn fail(&mut self, error: ErrorInfo) -> Option<Record> {
        let mut record = *self.record.take()?;
        end_with_error(&mut record, error);
        Some(record)
    }

    /// Ends a call abandoned before it finished (a generator closed early,
    /// a cancelled coroutine), keeping what [`set_output`](Self::set_output)
    /// said it produced.
    pub fn cancel(&mut self) -> Option<Record> {
        let mut record = *self.record.take()?;
        end_cancelled(&mut record);
        Some(record)
    }
}

impl Drop for LiveFunctionCall {
    fn drop(&mut self) {
        if let Some(record) = self.cancel() {
            crate::capture(record);
        }
    }
}
