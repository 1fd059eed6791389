// The `extract` fuzz target's body, shared by the cargo-fuzz target
// (fuzz/fuzz_targets/extract.rs) and the stable fuzz smoke test
// (crates/anosys-cli/tests/fuzz_smoke.rs), which both `include!` it: so
// no inner attributes or `//!` comments here.
//
// The extraction module on arbitrary request and response bodies, for
// every operation: never a panic, always one record.

use anosys::sources::openai::{CaptureOptions, OpenAiCall};

const URLS: &[&str] = &[
    "https://api.openai.com/v1/chat/completions",
    "https://api.openai.com/v1/completions",
    "https://api.openai.com/v1/embeddings",
    "https://api.openai.com/v1/images/generations",
    "https://api.openai.com/v1/responses",
    "https://api.openai.com/v1/moderations",
    "not a url",
];

/// Runs one fuzz input; panics on a finding.
pub fn run(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let url = URLS[data[0] as usize % URLS.len()];
    let status = [200u16, 400, 404, 429, 500][data[1] as usize % 5];
    let rest = &data[2..];
    let cut = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    let request: serde_json::Value = serde_json::from_slice(&rest[..cut]).unwrap_or(serde_json::Value::Null);
    let response = rest.get(cut + 1..).unwrap_or(&[]);
    let call = OpenAiCall::start(url, request, &CaptureOptions::default());
    let record = call.finish(status, response);
    assert!(!record.name.is_empty() || url == "not a url");
}
