//! Procedural macros for [anosys](https://docs.rs/anosys).
//!
//! This crate is the proc-macro half of the `anosys` facade, in the way
//! `tracing-attributes` is to `tracing`: users depend on `anosys` and use
//! its re-exports, never on this crate directly. The `#[anosys::logger]`
//! function attribute lands here (see the function-logging issue); until
//! then the crate exports nothing.
