//! The proxy's request side on an arbitrary route spec, path and query,
//! trace header and body: route parsing and selection, the upstream URL,
//! and the record the request starts (the shared OpenAI extraction), the
//! way `anosys proxy` does it; and `Route::target` of every route on
//! every path. Never a panic.
//!
//! Input: one flags byte, then `spec \0 path?query \0 traceparent \0 body`.
//!
//! The body is in `fuzz/targets/proxy_request.rs`, shared with the fuzz smoke test.
#![no_main]

include!("../targets/proxy_request.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
