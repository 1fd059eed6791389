//! What the command-line tests share: the `anosys` binary with a clean
//! environment.
#![allow(dead_code)]

use std::path::Path;

use assert_cmd::Command;

/// `anosys` with a clean environment: no AnoSys account, no OTLP backend,
/// the given store.
pub fn anosys(db: &Path) -> Command {
    let mut cmd = Command::cargo_bin("anosys").unwrap();
    for var in [
        "ANOSYS_API_KEY",
        "ANOSYS_API_URL",
        "ANOSYS_SINKS",
        "ANOSYS_DB",
        "OPENAI_API_KEY",
        "NO_COLOR",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("--db").arg(db);
    cmd
}

/// Runs `cmd`, which must succeed, and returns what it printed.
pub fn stdout(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).unwrap()
}
