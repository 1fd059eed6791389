//! # anosys
//!
//! LLM observability for OpenAI-style APIs. Every LLM call, every marked
//! function and every raw event becomes one [`Record`], delivered in the
//! background without slowing or breaking the application: to AnoSys, or
//! with no account at all to an embedded local sink.
//!
//! Data flows one way: **[`sources`] → [`Record`] → [`pipeline`] →
//! [`sinks`]**.
//!
//! ```
//! use serde_json::json;
//!
//! # let dir = std::env::temp_dir().join(format!("anosys-lib-doc-{}", std::process::id()));
//! let config = anosys::Config::builder()
//!     .db_path(dir.join("anosys.db")) // the embedded store, the default with no API key
//!     .build()?;
//! let guard = anosys::init_with(config)?;
//!
//! anosys::log_raw(json!({"event": "signup", "plan": "pro"}));
//!
//! let report = guard.shutdown(); // also happens when the guard is dropped
//! assert_eq!(report.counters.delivered, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Without `init`, the first capture starts a pipeline from the environment
//! (see [`Config`]), and everything queued is delivered when the process
//! exits.

#![warn(missing_docs)]

pub mod config;
mod diag;
mod global;
pub mod pipeline;
pub mod record;
pub mod sinks;
pub mod sources;

#[cfg(feature = "macros")]
pub use anosys_macros::logger;

/// Used by the code `#[anosys::logger]` generates; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::sources::function::*;
}

pub use config::{ApiKey, Config, ConfigBuilder, ConfigError, OtlpProtocol, SinkKind, SinkSelection, StartingIndices};
pub use diag::LogLevel;
pub use global::{after_fork_in_child, capture, capture_content_enabled, counters, flush, flush_within_shutdown_timeout, init, init_with, install, log_raw, log_raw_serialize, setup_api, shutdown, Guard};
pub use pipeline::{Counters, FlushReport, InitError, Pipeline, PipelineBuilder};
pub use record::{Caller, ErrorInfo, Event, Link, Record, RecordKind, Resource, SpanId, SpanKind, Status, StatusCode, TraceId};
