//! Raw JSON through the raw logger's record and the AnoSys encoder: never
//! a panic, always valid JSON out.
//!
//! The body is in `fuzz/targets/encode.rs`, shared with the fuzz smoke test.
#![no_main]

include!("../targets/encode.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
