//! `anosys`: see `anosys --help`.

fn main() -> std::process::ExitCode {
    anosys_cli::run(std::env::args_os())
}
