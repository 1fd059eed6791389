//! The SSE parser and the stream accumulator on arbitrary bytes, split at
//! an arbitrary point: never a panic, and the split never changes the
//! events.
//!
//! The body is in `fuzz/targets/sse.rs`, shared with the fuzz smoke test.
#![no_main]

include!("../targets/sse.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
