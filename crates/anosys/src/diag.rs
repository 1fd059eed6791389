//! anosys's own diagnostics: a few lines on stderr, never per record, never
//! a secret. The level comes from `ANOSYS_LOG_LEVEL` (see [`crate::Config`]).

use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Serialize};

/// How much anosys says about itself on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Nothing at all.
    Off = 0,
    /// Only failures that lose data or stop delivery.
    Error = 1,
    /// Also problems anosys worked around.
    Warn = 2,
    /// Also one-time notices such as where records go (the default).
    #[default]
    Info = 3,
    /// Also per-batch delivery details.
    Debug = 4,
}

impl LogLevel {
    /// Parses `off`, `error`, `warn`/`warning`, `info`, `debug`/`trace`
    /// (any case).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" | "0" => LogLevel::Off,
            "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" | "trace" => LogLevel::Debug,
            _ => return None,
        })
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static ONCE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

pub(crate) fn set_level(level: LogLevel) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub(crate) fn enabled(level: LogLevel) -> bool {
    level != LogLevel::Off && level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one line if `level` is enabled.
pub(crate) fn log(level: LogLevel, message: &str) {
    if !enabled(level) {
        return;
    }
    let tag = match level {
        LogLevel::Error => "error",
        LogLevel::Warn => "warning",
        LogLevel::Debug => "debug",
        _ => "info",
    };
    let _ = writeln!(std::io::stderr().lock(), "anosys {tag}: {message}");
}

/// Writes a line only the first time `key` is seen in this process.
pub(crate) fn once(key: &str, level: LogLevel, message: impl FnOnce() -> String) {
    if !enabled(level) {
        return;
    }
    let first = {
        let mut seen = ONCE.lock().unwrap_or_else(|p| p.into_inner());
        seen.get_or_insert_with(HashSet::new).insert(key.to_owned())
    };
    if first {
        log(level, &message());
    }
}
