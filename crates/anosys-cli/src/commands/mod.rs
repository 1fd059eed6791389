//! One module per subcommand, and what they share: errors with a hint,
//! finding the store, turning flags into a [`Filter`].

mod demo;
mod export;
mod logs;
mod prices;
mod proxy;
mod send;
mod show;
mod stats;
mod status;
mod ui;

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anstream::eprintln;

use anosys::{RecordKind, StatusCode};

use crate::cli::{Cli, Command, FilterArgs};
use crate::output::{paint, BAD, NOTE};
use crate::store::{Filter, Store, StoreError};

/// A failed command: what went wrong and, when we know, what to do next.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The reader went away (`anosys logs | head`): not worth a message.
    pub silent: bool,
}

impl CliError {
    /// An error with no hint.
    pub fn new(message: impl Into<String>) -> CliError {
        CliError { message: message.into(), hint: None, silent: false }
    }

    /// `context`, then the error and each of its causes.
    pub fn caused_by(context: &str, error: &(dyn std::error::Error + 'static)) -> CliError {
        CliError::new(format!("{context}: {}", anosys::ErrorInfo::from_error(error).one_line()))
    }

    /// Adds what the user can do next.
    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }

    /// Prints the error (and hint) to stderr.
    pub fn print(&self) {
        if self.silent {
            return;
        }
        eprintln!("{} {}", paint(BAD, "error:"), self.message);
        if let Some(h) = &self.hint {
            eprintln!("  {} {h}", paint(NOTE, "hint:"));
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for CliError {}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let hint = match &e {
            StoreError::Missing(_) => Some(
                "run `anosys demo` to create one, or point --db or ANOSYS_DB at your application's store".to_owned(),
            ),
            StoreError::Open(e) => match e {
                anosys::sinks::sqlite::StoreError::Foreign { .. } | anosys::sinks::sqlite::StoreError::NotADatabase { .. } => {
                    Some("point --db or ANOSYS_DB at an anosys store (the default is .anosys/anosys.db), not at another application's file".to_owned())
                }
                anosys::sinks::sqlite::StoreError::Damaged { .. } => Some(
                    "the next app (or `anosys demo`) that writes to it moves it aside as <name>.corrupt-<time> and starts a new store".to_owned(),
                ),
                _ => Some("check that the file is an anosys store (made by the SQLite sink) and readable".to_owned()),
            },
            StoreError::NotFound(_) => Some("`anosys logs` lists records with their ids".to_owned()),
            StoreError::Query(_) => None,
        };
        CliError { message: e.to_string(), hint, silent: false }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        let mut err = CliError::new(e.to_string());
        err.silent = e.kind() == std::io::ErrorKind::BrokenPipe;
        err
    }
}

impl From<anosys::ConfigError> for CliError {
    fn from(e: anosys::ConfigError) -> Self {
        CliError::new(e.to_string()).hint(format!("fix or unset {}", e.variable()))
    }
}

impl From<anosys::InitError> for CliError {
    fn from(e: anosys::InitError) -> Self {
        match e {
            anosys::InitError::Config(e) => e.into(),
            e => CliError::caused_by("cannot start capturing", &e).hint("check the ANOSYS_* and OTEL_* environment variables"),
        }
    }
}

/// Runs the parsed command.
pub fn dispatch(cli: Cli) -> Result<(), CliError> {
    let db = cli.db;
    match cli.command {
        Command::Demo(args) => demo::run(db, args),
        Command::Proxy(args) => proxy::run(db, args),
        Command::DemoServer(args) => proxy::demo_server(args),
        Command::Logs(args) => logs::run(&open_store(db)?, args),
        Command::Show(args) => show::run(&open_store(db)?, args),
        Command::Stats(args) => stats::run(&open_store(db)?, args),
        Command::Export(args) => export::run(&open_store(db)?, args),
        Command::Send(args) => send::run(&open_store(db)?, args),
        Command::Status(args) => status::run(&store_path(db)?, args),
        Command::Prices(args) => prices::run(args),
        Command::Ui(args) => ui::run(db, args),
    }
}

/// The store path: `--db`, else the configuration's (ANOSYS_DB or the
/// default).
pub fn store_path(db: Option<PathBuf>) -> Result<PathBuf, CliError> {
    match db {
        Some(p) => Ok(p),
        None => Ok(anosys::Config::from_env()?.db_path().to_path_buf()),
    }
}

fn open_store(db: Option<PathBuf>) -> Result<Store, CliError> {
    Ok(Store::open(&store_path(db)?)?)
}

/// Parses `--since`: a duration back from `now` (`30m`, `2h`, `7d`) or a
/// time (`2026-11-28`, `2026-11-28 14:00`, RFC 3339), as ms since the epoch.
pub fn parse_since(text: &str, now: SystemTime) -> Result<i64, CliError> {
    let text = text.trim();
    let at = if let Ok(d) = humantime::parse_duration(text) {
        now.checked_sub(d).unwrap_or(UNIX_EPOCH)
    } else {
        let full = match text.len() {
            10 => format!("{text}T00:00:00Z"),
            16 => format!("{text}:00"),
            _ => text.to_owned(),
        };
        humantime::parse_rfc3339_weak(&full)
            .or_else(|_| humantime::parse_rfc3339(&full))
            .map_err(|_| {
                CliError::new(format!("--since {text:?} is neither a duration nor a time"))
                    .hint("use a duration such as 30m, 2h or 7d, or a UTC time such as 2026-11-28 or 2026-11-28T14:00:00Z")
            })?
    };
    Ok(at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as i64)
}

/// The store filter for the flags.
pub fn filter(args: &FilterArgs) -> Result<Filter, CliError> {
    let since_ms = args.since.as_deref().map(|s| parse_since(s, SystemTime::now())).transpose()?;
    if let Some(t) = &args.trace
        && !t.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Err(CliError::new(format!("--trace {t:?} is not a trace id"))
            .hint("trace ids are 32 hex digits; `anosys show ID` prints a record's"));
    }
    Ok(Filter {
        since_ms,
        model: args.model.clone(),
        status: args.status.map(|s| StatusCode::from(s).as_str().to_owned()),
        source: args.source.clone(),
        trace: args.trace.clone(),
        kind: args.kind.map(|k| RecordKind::from(k).as_str().to_owned()),
        user: args.user.clone(),
        session: args.session.clone(),
        ..Filter::default()
    })
}

/// A progress bar on stderr for `len` items (hidden when stderr is not a
/// terminal).
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    let style = indicatif::ProgressStyle::with_template(&format!(
        "{{spinner}} {what} [{{bar:30}}] {{human_pos}}/{{human_len}} ({{per_sec}}, {{eta}} left)"
    ))
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_since("2h", now).unwrap(), (1_000_000 - 7200) * 1000);
        assert_eq!(parse_since("7d", now).unwrap(), (1_000_000 - 7 * 86400) * 1000);
        assert_eq!(parse_since("1970-01-02", now).unwrap(), 86_400_000);
        assert_eq!(parse_since("1970-01-02 01:00", now).unwrap(), 90_000_000);
        assert_eq!(parse_since("1970-01-02T00:00:01Z", now).unwrap(), 86_401_000);
        let e = parse_since("yesterday", now).unwrap_err();
        assert!(e.hint.unwrap().contains("2h"));
    }
}
