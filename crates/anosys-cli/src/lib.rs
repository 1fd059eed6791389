//! The `anosys` command: a demo, the OpenAI-compatible logging proxy, and
//! browsing, summarising, exporting and replaying what the embedded local
//! store holds.
//!
//! The binary is a thin shell over [`run`]; the modules are public so the
//! tests and benchmarks use the same code.

pub mod cli;
pub mod commands;
pub mod output;
pub mod proxy;
pub mod replay;
pub mod store;
pub mod ui;

use std::process::ExitCode;

use clap::Parser;

pub use commands::CliError;

/// Parses `args` and runs the command, printing errors the way the binary
/// does. Returns the process exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    cli.color.write_global();
    match commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.silent => ExitCode::SUCCESS,
        Err(e) => {
            e.print();
            ExitCode::FAILURE
        }
    }
}
