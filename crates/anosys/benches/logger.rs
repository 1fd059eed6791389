//! `#[anosys::logger]` on a no-op function, against the bare function and
//! against `#[tracing::instrument]` with no subscriber, in the same run.
//! System allocator.
//!
//! Run: `cargo bench -p anosys --bench logger`

include!("common/logger_body.rs");
