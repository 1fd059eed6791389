//! anosys's own diagnostics: a few lines on stderr, never per record, never
//! a secret. The level comes from `ANOSYS_LOG_LEVEL` (see [`crate::Config`]).

use std::collections::HashSet;
use std::io::Write;
use std::cell::Cell;
use std::sync::{Mutex, OnceLock};

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
    /// The level's name, as `ANOSYS_LOG_LEVEL` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }

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

static ONCE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

thread_local! {
    /// The level of the pipeline whose work runs on this thread (its
    /// worker, or a caller inside [`with_level`]).
    static THREAD_LEVEL: Cell<Option<LogLevel>> = const { Cell::new(None) };
}

/// The level outside any pipeline: `ANOSYS_LOG_LEVEL`, else `info`.
fn process_level() -> LogLevel {
    static LEVEL: OnceLock<LogLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        std::env::var("ANOSYS_LOG_LEVEL").ok().and_then(|v| LogLevel::parse(&v)).unwrap_or_default()
    })
}

/// Makes `level` the level of everything this thread logs from now on: a
/// pipeline's worker threads call it with the pipeline's level, so two
/// pipelines never change each other's verbosity.
pub(crate) fn set_thread_level(level: LogLevel) {
    THREAD_LEVEL.with(|l| l.set(Some(level)));
}

/// Runs `f` with `level` as this thread's level (for a pipeline's work on
/// the caller's thread).
pub(crate) fn with_level<R>(level: LogLevel, f: impl FnOnce() -> R) -> R {
    /// Puts the thread's level back, also if `f` panics.
    struct Restore(Option<LogLevel>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_LEVEL.with(|l| l.set(self.0));
        }
    }
    let _restore = Restore(THREAD_LEVEL.with(|l| l.replace(Some(level))));
    f()
}

pub(crate) fn enabled(level: LogLevel) -> bool {
    let threshold = THREAD_LEVEL.with(Cell::get).unwrap_or_else(process_level);
    level != LogLevel::Off && level <= threshold
}

/// An error and each of its causes, `: `-separated, for a message.
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    crate::record::ErrorInfo::from_error(error).one_line()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each pipeline's threads log at its own level; one never changes
    /// another's.
    #[test]
    fn levels_are_per_thread_not_per_process() {
        let quiet = std::thread::spawn(|| {
            set_thread_level(LogLevel::Off);
            std::thread::sleep(std::time::Duration::from_millis(50));
            (enabled(LogLevel::Error), enabled(LogLevel::Debug))
        });
        let chatty = std::thread::spawn(|| {
            set_thread_level(LogLevel::Debug);
            std::thread::sleep(std::time::Duration::from_millis(50));
            (enabled(LogLevel::Error), enabled(LogLevel::Debug))
        });
        assert_eq!(quiet.join().unwrap(), (false, false));
        assert_eq!(chatty.join().unwrap(), (true, true));
        let inside = with_level(LogLevel::Warn, || (enabled(LogLevel::Warn), enabled(LogLevel::Info)));
        assert_eq!(inside, (true, false));
        assert!(!enabled(LogLevel::Off));
    }
}
