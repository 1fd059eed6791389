//! The outbox's row decoding on arbitrary bytes: never a panic; a row that
//! decodes re-serialises (as the outbox writes it) to a row that decodes to
//! the same record, byte-stable from then on; and the AnoSys encoder takes
//! whatever decodes, writing valid JSON.
//!
//! The body is in `fuzz/targets/outbox_row.rs`, shared with the fuzz smoke test.
#![no_main]

include!("../targets/outbox_row.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| run(data));
