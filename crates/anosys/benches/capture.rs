//! The caller's cost (build and enqueue one typical record) and the
//! encoder's cost (a 30-field record to an AnoSys body), each next to a
//! baseline measured in the same run. System allocator.
//!
//! Run: `cargo bench -p anosys --bench capture`

include!("common/capture_body.rs");
