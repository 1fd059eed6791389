// The `outbox_row` fuzz target's body, shared by the cargo-fuzz target
// (fuzz/fuzz_targets/outbox_row.rs) and the stable fuzz smoke test
// (crates/anosys-cli/tests/fuzz_smoke.rs), which both `include!` it: so
// no inner attributes or `//!` comments here.
//
// The outbox's row decoding on arbitrary bytes: never a panic; a row that
// decodes re-serialises (as the outbox writes it) to a row that decodes to
// the same record, byte-stable from then on; and the AnoSys encoder takes
// whatever decodes, writing valid JSON.

use anosys::sinks::anosys::{Encoder, SlotRegistry};
use anosys::sinks::outbox::decode;

/// Runs one fuzz input; panics on a finding.
pub fn run(data: &[u8]) {
    let Ok(mut record) = decode(data) else { return };

    // The outbox writes rows with serde_json::to_string; a row it wrote
    // must read back.
    let row = serde_json::to_string(&record).expect("a decoded record serialises");
    let again = decode(row.as_bytes()).unwrap_or_else(|e| panic!("a written row does not decode: {e}\n{row}"));
    assert_eq!(again.span_id, record.span_id);
    assert_eq!(again.trace_id, record.trace_id);
    assert_eq!(again.parent_span_id, record.parent_span_id);
    assert_eq!(again.name, record.name);
    assert_eq!(again.kind, record.kind);
    assert_eq!(again.attributes, record.attributes);
    // Stable: writing the read-back record gives the same row.
    let row2 = serde_json::to_string(&again).expect("a decoded record serialises");
    assert_eq!(row, row2, "the row changes on a second round trip");

    // What a destination's lane does with it.
    anosys::pipeline::limits::cap_record(&mut record, 4096);
    let registry = &SlotRegistry::new();
    let body = Encoder::with_registry(registry).encode_to_vec(&record, &anosys::Resource::default(), std::time::SystemTime::now());
    serde_json::from_slice::<serde_json::Value>(&body).expect("the encoder writes valid JSON");
}
