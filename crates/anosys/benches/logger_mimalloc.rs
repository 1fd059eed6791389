//! The same as `logger.rs` with mimalloc as the global allocator.
//!
//! Run: `cargo bench -p anosys --bench logger_mimalloc`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

include!("common/logger_body.rs");
