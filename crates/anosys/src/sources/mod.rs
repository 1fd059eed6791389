//! Sources: the parts that turn something that happened in the application
//! into a [`Record`](crate::Record). They know nothing about sinks.
//!
//! - [`raw`]: arbitrary JSON (`anosys::log_raw`).

pub mod raw;
