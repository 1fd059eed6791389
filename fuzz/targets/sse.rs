// The `sse` fuzz target's body, shared by the cargo-fuzz target
// (fuzz/fuzz_targets/sse.rs) and the stable fuzz smoke test
// (crates/anosys-cli/tests/fuzz_smoke.rs), which both `include!` it: so
// no inner attributes or `//!` comments here.
//
// The SSE parser and the stream accumulator on arbitrary bytes, split at
// an arbitrary point: never a panic, and the split never changes the
// events.

use anosys::sources::openai::sse::SseParser;
use anosys::sources::openai::{CaptureOptions, OpenAiCall};

/// Runs one fuzz input; panics on a finding.
pub fn run(data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let split = data[0] as usize % data.len();
    let body = &data[1..];
    let split = split.min(body.len());

    let collect = |parts: &[&[u8]]| {
        let mut p = SseParser::new();
        let mut events = Vec::new();
        for part in parts {
            p.push(part, |e| events.push(e));
        }
        p.finish(|e| events.push(e));
        events
    };
    assert_eq!(collect(&[body]), collect(&[&body[..split], &body[split..]]));

    for url in ["https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1/responses"] {
        let request = serde_json::json!({"model": "m", "stream": true});
        let mut stream = OpenAiCall::start(url, request, &CaptureOptions::default()).into_stream();
        stream.push_bytes(&body[..split]);
        stream.push_bytes(&body[split..]);
        let _ = stream.finish();
    }
}
