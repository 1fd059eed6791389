//! `#[anosys::logger]` adds no warning to a user's crate.
//!
//! trybuild's pass cases do not deny warnings, so this checks a real crate:
//! tests/macro_warnings/, every form the attribute supports, once with
//! `-D warnings` (rustc's lints) and once with
//! `cargo clippy -- -D warnings -W clippy::pedantic`. That crate is clean
//! without the attributes; any warning is the expansion's.
//!
//! The crate is copied under this test's target directory
//! (`target/tmp/macro-warnings`, with its own target dir there) together
//! with the workspace's Cargo.lock, and checked `--offline`: it uses the
//! workspace's locked dependencies, already fetched. Both runs are checks
//! (lints run before code generation), so they share their dependencies:
//! the first run builds those (a few minutes on two cores), later runs
//! take seconds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const CRATE: &str = "tests/macro_warnings";

/// Writes `contents` to `path` unless it already holds them (an unchanged
/// copy keeps its mtime, so cargo keeps its fingerprint).
fn write_if_changed(path: &Path, contents: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(contents) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}

/// The crate's copy, with `anosys` depended on by absolute path.
fn prepare(work: &Path) -> PathBuf {
    let anosys = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = anosys.join(CRATE);
    let dir = work.join("crate");
    let manifest = std::fs::read_to_string(source.join("Cargo.toml")).unwrap();
    let relative = r#"path = "../..""#;
    assert!(manifest.contains(relative), "{CRATE}/Cargo.toml should depend on anosys by `{relative}`");
    let manifest = manifest.replace(relative, &format!("path = {:?}", anosys.display().to_string()));
    write_if_changed(&dir.join("Cargo.toml"), manifest.as_bytes());
    write_if_changed(&dir.join("src/main.rs"), &std::fs::read(source.join("src/main.rs")).unwrap());
    // The workspace's lock: the same dependency versions, all fetched
    // (cargo drops the entries this crate does not use).
    let lock = std::fs::read(anosys.join("../../Cargo.lock")).expect("the workspace's Cargo.lock");
    write_if_changed(&dir.join("Cargo.lock"), &lock);
    dir
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    // Whatever cargo test was given for this workspace's own build.
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cargo <subcommand> <args>` in `dir`; its output if it failed.
fn run(what: &str, dir: &Path, target: &Path, subcommand: &str, args: &[&str]) -> Result<(), String> {
    let started = Instant::now();
    let out = cargo()
        .arg(subcommand)
        .arg("--offline")
        .arg("--target-dir")
        .arg(target)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running cargo: {e}"));
    eprintln!("{what}: {:.1?}", started.elapsed());
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`cargo {subcommand} {}` on {CRATE} ({what}) failed: {}\n\
         A warning here comes from the expansion of #[anosys::logger] (the crate is clean without it).\n\
         --- stderr ---\n{}\n--- stdout ---\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    ))
}

#[test]
fn expansion_is_warning_free() {
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("macro-warnings");
    let dir = prepare(&work);
    let target = work.join("target");
    let mut failures = Vec::new();

    // rustc's lints, denied, for the crate alone (its dependencies keep
    // their own lint levels, as they would for a user).
    failures.extend(run("rustc -D warnings", &dir, &target, "rustc", &["--profile", "check", "--", "-D", "warnings"]).err());

    let clippy = cargo().args(["clippy", "--version"]).output();
    match clippy {
        Ok(out) if out.status.success() => failures.extend(
            run(
                "clippy -D warnings -W clippy::pedantic",
                &dir,
                &target,
                "clippy",
                &["--", "-D", "warnings", "-W", "clippy::pedantic"],
            )
            .err(),
        ),
        Ok(out) => failures.push(format!(
            "`cargo clippy` is not available ({}), so the clippy half of this check cannot run; \
             install it with `rustup component add clippy`\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => failures.push(format!("running `cargo clippy --version`: {e}")),
    }

    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
