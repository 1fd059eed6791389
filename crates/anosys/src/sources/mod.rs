//! Sources: the parts that turn something that happened in the application
//! into a [`Record`](crate::Record). They know nothing about sinks.
//!
//! - [`openai`]: OpenAI-compatible calls (JSON in, record out), streams
//!   included.
//! - [`raw`]: arbitrary JSON (`anosys::log_raw`).
//! - [`function`]: function calls: of functions marked `#[anosys::logger]`
//!   (its runtime) and of the Python and Node decorators (`LiveFunctionCall`).
//! - `otel` (feature `otel`): OpenTelemetry spans, `tracing` spans through
//!   tracing-opentelemetry.
//! - [`span`]: a finished span as plain data, and its record: the mapping
//!   `otel` and the Python and Node exporters share.

#[doc(hidden)]
pub mod function;
pub mod openai;
#[cfg(feature = "otel")]
#[cfg_attr(docsrs, doc(cfg(feature = "otel")))]
pub mod otel;
pub mod raw;
pub mod span;
