//! The extraction module on arbitrary request and response bodies, for
//! every operation: never a panic, always one record.
//!
//! The body is in `fuzz/targets/extract.rs`, shared with the fuzz smoke test.
#![no_main]

include!("../targets/extract.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
