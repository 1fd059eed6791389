//! Raw JSON through the raw logger's record and the AnoSys encoder: never
//! a panic, always valid JSON out.
#![no_main]

use anosys::sinks::anosys::{Encoder, SlotRegistry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let mut record = anosys::sources::raw::raw_record(value);
    anosys::pipeline::limits::cap_record(&mut record, 4096);
    let registry = &SlotRegistry::new();
    let body = Encoder::with_registry(registry).encode_to_vec(&record, &anosys::Resource::default(), std::time::SystemTime::now());
    serde_json::from_slice::<serde_json::Value>(&body).expect("the encoder writes valid JSON");
});
