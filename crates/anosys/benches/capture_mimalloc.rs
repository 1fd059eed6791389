//! The same benchmarks as `capture.rs`, with mimalloc as the global
//! allocator: records are built on the caller's thread and freed on the
//! worker's, which glibc's allocator makes costly.
//!
//! Run: `cargo bench -p anosys --bench capture_mimalloc`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

include!("common/capture_body.rs");
