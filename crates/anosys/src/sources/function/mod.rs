//! Function-call records: one per call of a function, with its inputs,
//! output, error or cancellation, caller and trace context.
//!
//! - [`runtime`]: what `#[anosys::logger]` expansions call (re-exported
//!   through `anosys::__private`; public only for the macro, not a stable
//!   API).
//! - [`LiveFunctionCall`]: a call made by code outside Rust (the Python and
//!   Node decorators).
//!
//! Both start their records with [`function_record`] and end them with
//! [`end_with_error`] or [`end_cancelled`], so a function-call record has
//! the same shape whatever the language.

mod live;
pub mod runtime;

/// For the language bindings: see [`crate::embed`].
#[doc(hidden)]
pub use live::LiveFunctionCall;
pub use runtime::*;

use crate::record::{Caller, ErrorInfo, Record, RecordKind, Status};

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
///
/// ```
/// use anosys::{Caller, ErrorInfo, StatusCode};
/// let mut r = anosys::sources::function::function_record("charge", "billing", "app.py", 3, Caller::default());
/// anosys::sources::function::end_with_error(&mut r, ErrorInfo::new("ValueError", "no card"));
/// assert_eq!(r.status.code, StatusCode::Error);
/// assert_eq!(r.attribute("error.type"), Some(&serde_json::json!("ValueError")));
/// ```
pub fn end_with_error(record: &mut Record, error: ErrorInfo) {
    record.set_attribute("error.type", error.error_type.clone());
    record.finish(Status::default());
    record.fail(error);
}

/// Ends a function record whose call was abandoned before it finished (a
/// dropped future, a generator closed early): status `UNSET`,
/// `anosys.outcome = "cancelled"`.
pub fn end_cancelled(record: &mut Record) {
    record.set_attribute("anosys.outcome", "cancelled");
    record.finish(Status::default());
}
