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
//! let report = guard.shutdown(None); // also happens when the guard is dropped
//! assert_eq!(report.counters.delivered, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Without `init`, the first capture starts a pipeline from the environment
//! (see [`Config`]), and everything queued is delivered when the process
//! exits.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
pub mod cost;
mod diag;
mod json;
mod global;
pub mod net;
pub mod pipeline;
pub mod record;
pub mod redact;
pub mod resource;
pub mod sinks;
pub mod sources;

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use anosys_macros::logger;

/// Used by the code `#[anosys::logger]` generates; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::sources::function::*;
}

/// For users of the original AnoSys SDKs: its entry points, under their
/// names.
pub mod compat {
    pub use crate::global::setup_api;
}

/// What the Python and Node.js packages build on: not needed in Rust
/// programs, and not part of the stable API.
///
/// - [`set_sdk_identity`](crate::embed::set_sdk_identity): the package's language, version and default
///   `service.name`, for the resource of pipelines started afterwards;
/// - [`capture_content_enabled`](crate::embed::capture_content_enabled): whether to convert content at all before
///   handing it to the engine;
/// - [`after_fork_in_child`](crate::embed::after_fork_in_child): forget the parent's pipelines in a forked
///   child;
/// - [`LiveCall`](crate::embed::LiveCall) and [`LiveFunctionCall`](crate::embed::LiveFunctionCall): an OpenAI call or a decorated
///   function held across the language boundary from start to end;
/// - [`DeferredCall`](crate::embed::DeferredCall): a [`LiveCall`](crate::embed::LiveCall) whose plain response is made into
///   its record on the engine's extraction thread, off the caller's;
/// - [`PlainCall`](crate::embed::PlainCall): a plain call whose whole response has come, recorded in one
///   step on the extraction thread, its bodies copied into buffers the engine reuses.
#[doc(hidden)]
pub mod embed {
    pub use crate::global::{after_fork_in_child, capture_content_enabled, capture_through};
    pub use crate::resource::set_sdk_identity;
    pub use crate::sources::function::LiveFunctionCall;
    pub use crate::sources::openai::{DeferredCall, LiveCall, PlainCall, RequestJson, ResponseJson, EVENT_SEPARATOR};
}

pub use config::{ApiKey, Config, ConfigBuilder, ConfigError, OtlpProtocol, SinkKind, SinkSelection, StartingIndices};
pub use diag::LogLevel;
pub use global::{
    capture, clear_before_send, counters, flush, init, init_with, log_raw, log_raw_serialize, set_before_send, shutdown, Guard,
};
pub use pipeline::{BeforeSend, Counters, FlushReport, InitError, Pipeline, PipelineBuilder};
pub use record::{Caller, ErrorInfo, Event, Link, Record, RecordKind, Resource, SpanId, SpanKind, Status, StatusCode, TraceId};
