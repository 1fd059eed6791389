// The `encode` fuzz target's body, shared by the cargo-fuzz target
// (fuzz/fuzz_targets/encode.rs) and the stable fuzz smoke test
// (crates/anosys-cli/tests/fuzz_smoke.rs), which both `include!` it: so
// no inner attributes or `//!` comments here.
//
// Raw JSON through the raw logger's record and the AnoSys encoder: never
// a panic, always valid JSON out.

use anosys::sinks::anosys::{Encoder, SlotRegistry};

/// Runs one fuzz input; panics on a finding.
pub fn run(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let mut record = anosys::sources::raw::raw_record(value);
    anosys::pipeline::limits::cap_record(&mut record, 4096);
    let registry = &SlotRegistry::new();
    let body = Encoder::with_registry(registry).encode_to_vec(&record, &anosys::Resource::default(), std::time::SystemTime::now());
    serde_json::from_slice::<serde_json::Value>(&body).expect("the encoder writes valid JSON");
}
