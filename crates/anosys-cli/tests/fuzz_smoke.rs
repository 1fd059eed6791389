//! The fuzz smoke run, on the stable toolchain in the ordinary debug test
//! build (so CI runs it as part of `cargo test --workspace`, with nothing
//! extra to build).
//!
//! Each cargo-fuzz target's body (`fuzz/targets/<target>.rs`, the same code
//! `cargo fuzz` runs) is included here in its own module. A test per target
//! then:
//!
//! 1. replays every input of the kept corpus (`fuzz/corpus/<target>/`);
//! 2. runs mutations of those inputs (bit flips, byte overwrites, inserts
//!    and deletions with interesting bytes and tokens, splices of two
//!    inputs, truncations) from a seeded random generator, for a bounded
//!    time and a bounded number of inputs.
//!
//! This is a replay and blind-mutation smoke run: there is no coverage
//! feedback, so it finds shallow bugs near the corpus, nothing deep. The
//! coverage-guided runs are `scripts/fuzz-smoke.sh` and
//! `scripts/fuzz-long.sh` (cargo-fuzz, libFuzzer).
//!
//! Knobs (environment):
//!
//! - `ANOSYS_FUZZ_SMOKE_SECONDS`: mutation time per target (default 2;
//!   0 replays the corpus only);
//! - `ANOSYS_FUZZ_SMOKE_MAX_INPUTS`: most mutated inputs per target
//!   (default 200000);
//! - `ANOSYS_FUZZ_SMOKE_SEED`: the generator's seed (printed on every run;
//!   by default taken from the clock), to replay a failing run's sequence.
//!
//! An input that panics is written to
//! `target/fuzz-smoke-failures/<target>-<hash>` (under `CARGO_TARGET_DIR`
//! when that is set), and the test fails naming the target, the file and
//! the panic message. Reproduce with `cargo fuzz run <target> <file>` in
//! `fuzz/`, or by adding the file to the target's corpus and rerunning this
//! test.

use std::cell::{Cell, RefCell};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod sse {
    include!("../../../fuzz/targets/sse.rs");
}
mod extract {
    include!("../../../fuzz/targets/extract.rs");
}
mod encode {
    include!("../../../fuzz/targets/encode.rs");
}
mod outbox_row {
    include!("../../../fuzz/targets/outbox_row.rs");
}
mod proxy_request {
    include!("../../../fuzz/targets/proxy_request.rs");
}

#[test]
fn fuzz_smoke_sse() {
    smoke("sse", sse::run);
}

#[test]
fn fuzz_smoke_extract() {
    smoke("extract", extract::run);
}

#[test]
fn fuzz_smoke_encode() {
    smoke("encode", encode::run);
}

#[test]
fn fuzz_smoke_outbox_row() {
    smoke("outbox_row", outbox_row::run);
}

#[test]
fn fuzz_smoke_proxy_request() {
    smoke("proxy_request", proxy_request::run);
}

/// Largest mutated input, in bytes.
const MAX_LEN: usize = 64 << 10;

/// Bytes that tend to matter to JSON, SSE and HTTP parsers.
const INTERESTING_BYTES: &[u8] = b"\0\xff\x7f\x80\xc3\xe9\"{}[]:,\\\n\r =?/#%.-0123456789eEnutf";

/// Tokens inserted or written over the input.
const TOKENS: &[&[u8]] = &[
    b"null",
    b"true",
    b"false",
    b"\"\"",
    b"{}",
    b"[]",
    b"{\"",
    b"\":",
    b"\\u0000",
    b"\\ud800",
    b"\\udfff\\ud800",
    b"-0",
    b"1e999",
    b"-1e-999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"0.000000000000000000001",
    b"data: ",
    b"data: [DONE]\n\n",
    b"event: ",
    b"\n\n",
    b"\r\n",
    b"\r",
    b": comment\n",
    b"id: ",
    b"retry: ",
    b"\xef\xbb\xbf",
    "é".as_bytes(),
    "€".as_bytes(),
    "😀".as_bytes(),
    b"\xf4\x8f\xbf\xbf",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xff\xfe",
    b"/",
    b"//",
    b"/../",
    b"%2F",
    b"%",
    b"?",
    b"#",
    b"=",
    b"/groq",
    b"/groq/",
    b"/ollama/v1",
    b"/ollama/v1/chat/completions",
    b"/v1/chat/completions",
    b"/v1/responses",
    b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    b"http://h:1/p",
    b"https://",
    b"\"model\":",
    b"\"stream\":true",
    b"\"messages\":[",
    b"\"content\":",
    b"\"usage\":{",
    b"\"choices\":[",
    b"\"attributes\":{",
    b"\"span_id\":\"",
    b"\"trace_id\":\"",
];

/// Runs the smoke for one target: the corpus, then mutations.
fn smoke(target: &str, run: fn(&[u8])) {
    install_quiet_hook();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let corpus = read_corpus(&root.join("corpus").join(target));
    assert!(!corpus.is_empty(), "the kept corpus of {target} (fuzz/corpus/{target}/) is empty or missing");

    let seconds: f64 = env_number("ANOSYS_FUZZ_SMOKE_SECONDS", 2.0);
    let max_inputs: u64 = env_number("ANOSYS_FUZZ_SMOKE_MAX_INPUTS", 200_000);
    let seed: u64 = std::env::var("ANOSYS_FUZZ_SMOKE_SEED")
        .ok()
        .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("ANOSYS_FUZZ_SMOKE_SEED={s:?} is not a u64")))
        .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));

    // 1. The kept corpus, every input.
    let started = Instant::now();
    let mut replayed = 0usize;
    for input in &corpus {
        check(target, run, input, None);
        replayed += 1;
    }
    let replay_time = started.elapsed();
    assert_eq!(replayed, corpus.len(), "{target}: every corpus input runs");

    // 2. Mutations, from a generator seeded per target.
    let mut hasher = DefaultHasher::new();
    target.hash(&mut hasher);
    let mut rng = fastrand::Rng::with_seed(seed ^ hasher.finish());
    let budget = Duration::from_secs_f64(seconds.max(0.0));
    let started = Instant::now();
    let mut mutated = 0u64;
    let mut input = Vec::new();
    while mutated < max_inputs && started.elapsed() < budget {
        // Mostly a fresh corpus input; sometimes the last mutant again, so
        // mutations stack.
        if mutated == 0 || rng.u8(..) < 200 {
            input.clear();
            input.extend_from_slice(&corpus[rng.usize(..corpus.len())]);
        }
        for _ in 0..1 + rng.usize(..4) {
            mutate(&mut rng, &mut input, &corpus);
        }
        check(target, run, &input, Some(seed));
        mutated += 1;
    }
    let mutate_time = started.elapsed();
    if budget > Duration::ZERO && max_inputs > 0 {
        assert!(mutated > 0, "{target}: no mutated input ran");
    }

    let rate = |n: f64, t: Duration| if t.as_secs_f64() > 0.0 { n / t.as_secs_f64() } else { 0.0 };
    println!(
        "fuzz smoke {target}: {replayed} corpus inputs in {:.2}s ({:.0}/s), {mutated} mutated inputs in {:.2}s ({:.0}/s), seed {seed} \
         (ANOSYS_FUZZ_SMOKE_SEED={seed} replays it)",
        replay_time.as_secs_f64(),
        rate(replayed as f64, replay_time),
        mutate_time.as_secs_f64(),
        rate(mutated as f64, mutate_time),
    );
}

/// Every file of `dir`, sorted by name (so runs are repeatable).
fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("cannot read corpus file {}: {e}", p.display())))
        .collect()
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("{name}={s:?} is not a number")),
        Err(_) => default,
    }
}

thread_local! {
    /// Set while a fuzz input runs: the quiet hook keeps its panic message
    /// here instead of printing it.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A panic hook that, on a thread running a fuzz input, records the message
/// and location instead of printing it (a failure reports it once, with the
/// input's file); other panics go to the default hook.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(a panic without a message)".to_owned());
                let at = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{at}")));
            } else {
                default(info);
            }
        }));
    });
}

/// Runs one input; on a panic, saves it and fails the test.
fn check(target: &str, run: fn(&[u8]), input: &[u8], seed: Option<u64>) {
    CATCHING.with(|c| c.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run(input)));
    CATCHING.with(|c| c.set(false));
    if outcome.is_ok() {
        return;
    }
    let message = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "(no message)".to_owned());
    let mut hasher = DefaultHasher::new();
    input.hash(&mut hasher);
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("fuzz-smoke-failures");
    let path = dir.join(format!("{target}-{:016x}", hasher.finish()));
    let saved = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input));
    let path = path.canonicalize().unwrap_or(path);
    let origin = match seed {
        Some(seed) => format!("a mutated input (ANOSYS_FUZZ_SMOKE_SEED={seed})"),
        None => "a kept corpus input".to_owned(),
    };
    let saved = match saved {
        Ok(()) => format!("saved to {}", path.display()),
        Err(e) => format!("could not be saved to {}: {e}", path.display()),
    };
    panic!("fuzz target {target} panicked on {origin}, {} bytes, {saved}: {message}", input.len());
}

/// One random change to `input`.
fn mutate(rng: &mut fastrand::Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let byte = |rng: &mut fastrand::Rng| {
        if rng.bool() { INTERESTING_BYTES[rng.usize(..INTERESTING_BYTES.len())] } else { rng.u8(..) }
    };
    let len = input.len();
    match rng.u8(..11) {
        // Flip a bit.
        0 if len > 0 => {
            let i = rng.usize(..len);
            input[i] ^= 1 << rng.u8(..8);
        }
        // Overwrite a byte.
        1 if len > 0 => {
            let i = rng.usize(..len);
            input[i] = byte(rng);
        }
        // Insert a byte (sometimes a run of it).
        2 => {
            let b = byte(rng);
            let n = if rng.u8(..8) == 0 { 1 + rng.usize(..64) } else { 1 };
            let at = rng.usize(..=len);
            input.splice(at..at, std::iter::repeat_n(b, n));
        }
        // Delete a range.
        3 if len > 0 => {
            let at = rng.usize(..len);
            let n = 1 + rng.usize(..(len - at).min(16));
            input.drain(at..at + n);
        }
        // Insert a token.
        4 | 5 => {
            let token = TOKENS[rng.usize(..TOKENS.len())];
            let at = rng.usize(..=len);
            input.splice(at..at, token.iter().copied());
        }
        // Write a token over the input.
        6 if len > 0 => {
            let token = TOKENS[rng.usize(..TOKENS.len())];
            let at = rng.usize(..len);
            let end = (at + token.len()).min(len);
            input.splice(at..end, token.iter().copied());
        }
        // Splice: this input's head, another input's tail.
        7 => {
            let other = &corpus[rng.usize(..corpus.len())];
            let cut = rng.usize(..=len);
            let from = rng.usize(..=other.len());
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        // Truncate.
        8 if len > 0 => {
            input.truncate(rng.usize(..len));
        }
        // Duplicate a chunk.
        9 if len > 0 => {
            let at = rng.usize(..len);
            let n = 1 + rng.usize(..(len - at).min(256));
            let chunk = input[at..at + n].to_vec();
            let to = rng.usize(..=len);
            input.splice(to..to, chunk);
        }
        // The first bytes steer most targets (flags, split points, URLs).
        10 if len > 0 => {
            input[0] = rng.u8(..);
        }
        _ => input.push(byte(rng)),
    }
    input.truncate(MAX_LEN);
}
