//! The SSE parser and the stream accumulator on arbitrary bytes, split at
//! an arbitrary point: never a panic, and the split never changes the
//! events.
#![no_main]

use anosys::sources::openai::sse::SseParser;
use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
