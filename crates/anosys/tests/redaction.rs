//! Redaction with the default kinds: a corpus of texts with secrets (each
//! with the kinds and counts expected) and of look-alikes that must pass
//! unchanged (`tests/redaction/*.json`), and a property test that no secret
//! of a default kind survives in a record, its JSON (the jsonl sink), the
//! AnoSys body or (with the `otlp` feature) the OTLP span.
//!
//! Token-shaped secrets are written `{name}` in the corpus and put together
//! here, so that the repository holds nothing a secret scanner would flag.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anosys::record::JsonText;
use anosys::redact::{Kind, RedactionConfig, Redactor, REDACTED_ATTRIBUTE};
use anosys::sinks::anosys::{Encoder, SlotRegistry};
use anosys::{ErrorInfo, Record, RecordKind, Resource};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};

const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn chars(rng: &mut fastrand::Rng, alphabet: &[u8], len: usize) -> String {
    let mut s: String = (0..len).map(|_| alphabet[rng.usize(..alphabet.len())] as char).collect();
    // Real keys are random: a digit among them (forced, for short ones).
    if len > 4 && !s.bytes().any(|b| b.is_ascii_digit()) {
        let at = rng.usize(..len);
        s.replace_range(at..at + 1, "7");
    }
    s
}

fn chars_in(rng: &mut fastrand::Rng, alphabet: &[u8], lens: std::ops::Range<usize>) -> String {
    let len = rng.usize(lens);
    chars(rng, alphabet, len)
}

fn pem(label: &str, lines: &[&str], newline: &str) -> String {
    let mut s = format!("-----BEGIN {label}-----{newline}");
    for line in lines {
        s.push_str(line);
        s.push_str(newline);
    }
    s.push_str(&format!("-----END {label}-----"));
    s
}

const PEM_LINES: [&str; 3] = [
    "MIIEowIBAAKCAQEAx4UbaDzY0a9xJ5lqL3Hk2pT1c7QwZ8mN6vB4rE2sY9uI0oP3",
    "aS5dF7gH9jK1lZ3xC5vB7nM9qW2eR4tY6uI8oP0aS2dF4gH6jK8lZ0xC2vB4nM6",
    "qW8eR0tY2uI4oP6aS8dF0gH2jK4lZ6xC8vB0nM2qW4eR6tY8uI0oP2aS4dF6gH8",
];

/// The token-shaped secrets the corpus names `{name}`.
fn placeholders() -> Vec<(&'static str, String)> {
    let cat = |parts: &[&str]| parts.concat();
    let run = "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zQ7rS9tU1vW3xY5zA";
    vec![
        ("{openai}", cat(&["sk", "-", run])),
        ("{openai_proj}", cat(&["sk", "-proj-", run, "_T3Blbk", "FJ-", run, run])),
        ("{openai_svc}", cat(&["sk", "-svcacct-", run, "-", run])),
        ("{openai_admin}", cat(&["sk", "-admin-", run, "_", run])),
        ("{anthropic}", cat(&["sk", "-ant-api03-", run, "-", run, "_xYAA"])),
        ("{google}", cat(&["AI", "za", "SyD3f6hIj9kLm2nOp5qRs8tUv1wXy4z_-Q0"])),
        ("{aws}", cat(&["AK", "IA", "Q3EGRZ7WMPX4KD2T"])),
        ("{aws_sts}", cat(&["AS", "IA", "Z7WMPX4KD2TQ3EGR"])),
        ("{github}", cat(&["gh", "p_", &run[..36]])),
        ("{github_oauth}", cat(&["gh", "o_", &run[2..38]])),
        ("{github_user}", cat(&["gh", "u_", &run[4..40]])),
        ("{github_server}", cat(&["gh", "s_", &run[6..42]])),
        ("{github_refresh}", cat(&["gh", "r_", &run[8..44]])),
        ("{github_pat}", cat(&["github", "_pat_", "11ABCDEFG0", &run[..12], "_", run, &run[..11]])),
        ("{slack_bot}", cat(&["xo", "xb-", "2938475610-5647382910-", &run[..24]])),
        ("{slack_user}", cat(&["xo", "xp-", "2938475610-5647382910-1234567-", &run[..32]])),
        ("{slack_app}", cat(&["xo", "xa-", "2-", &run[..30]])),
        (
            "{jwt}",
            cat(&[
                "ey",
                "JhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.",
                "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.",
                "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
            ]),
        ),
        ("{jwt_unsigned}", cat(&["ey", "JhbGciOiJub25lIn0.", "eyJzdWIiOiJhZG1pbiJ9."])),
        ("{pem_rsa}", pem("RSA PRIVATE KEY", &PEM_LINES, "\n")),
        ("{pem_ec}", pem("EC PRIVATE KEY", &PEM_LINES[..2], "\n")),
        ("{pem_openssh}", pem("OPENSSH PRIVATE KEY", &PEM_LINES, "\n")),
        ("{pem_pkcs8}", pem("PRIVATE KEY", &PEM_LINES[1..], "\n")),
        ("{pem_encrypted}", pem("ENCRYPTED PRIVATE KEY", &PEM_LINES, "\r\n")),
        ("{pem_escaped}", pem("PRIVATE KEY", &PEM_LINES, "\\n")),
    ]
}

#[derive(Deserialize)]
struct Secrets {
    secrets: Vec<SecretCase>,
}

#[derive(Deserialize)]
struct SecretCase {
    text: String,
    kinds: BTreeMap<String, usize>,
}

#[derive(Deserialize)]
struct Lookalikes {
    lookalikes: Vec<Lookalike>,
}

#[derive(Deserialize)]
struct Lookalike {
    text: String,
    why: String,
}

fn corpus<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/redaction/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn defaults() -> Redactor {
    Redactor::new(&RedactionConfig::default()).unwrap()
}

/// The part of a secret that must not be seen: a private key's body lines,
/// or the whole text.
fn cores(secret: &str) -> Vec<String> {
    if secret.starts_with("-----BEGIN") {
        PEM_LINES.iter().filter(|l| secret.contains(*l)).map(|l| l.to_string()).collect()
    } else {
        vec![secret.to_owned()]
    }
}

#[test]
fn every_secret_of_the_corpus_is_redacted_with_its_kind_and_count() {
    let redactor = defaults();
    let cases = corpus::<Secrets>("secrets.json").secrets;
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let placeholders = placeholders();
    let mut failures = Vec::new();
    for case in &cases {
        let mut text = case.text.clone();
        let mut used = Vec::new();
        for (name, value) in &placeholders {
            if text.contains(name) {
                text = text.replace(name, value);
                used.push(value.clone());
            }
        }
        assert!(!text.contains("{openai") && !text.contains("{pem") && !text.contains("{github"), "{text}");
        let (redacted, found) = redactor.redact_str(&text);
        let counts: BTreeMap<String, usize> = found.iter().map(|(k, n)| (k.to_owned(), n)).collect();
        let leaked: Vec<String> =
            used.iter().flat_map(|s| cores(s)).filter(|c| redacted.contains(c.as_str())).collect();
        if counts != case.kinds || !leaked.is_empty() {
            failures.push(format!("{text:?}\n  -> {redacted:?}\n  found {counts:?}, expected {:?}", case.kinds));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn no_lookalike_of_the_corpus_is_redacted() {
    let redactor = defaults();
    let cases = corpus::<Lookalikes>("lookalikes.json").lookalikes;
    assert!(cases.len() >= 100, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let (redacted, found) = redactor.redact_str(&case.text);
        if !found.is_empty() || redacted != case.text {
            failures.push(format!("{:?} ({})\n  -> {redacted:?}", case.text, case.why));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} look-alikes redacted:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn lookalikes_in_a_record_leave_it_unchanged() {
    let redactor = defaults();
    let mut record = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    let texts: Vec<Value> =
        corpus::<Lookalikes>("lookalikes.json").lookalikes.into_iter().map(|l| Value::String(l.text)).collect();
    record.input = Some(json!([{"role": "user", "parts": [{"type": "text", "content": texts}]}]));
    record.set_attribute("gen_ai.request.max_tokens", 256);
    record.set_attribute("gen_ai.usage.input_tokens", 42);
    let before = record.clone();
    assert!(redactor.redact_record(&mut record).is_empty());
    assert_eq!(record, before);
    assert!(record.attribute(REDACTED_ATTRIBUTE).is_none());
}

/// One secret of a default kind, random in its shape: the text to embed
/// and the part that must not survive.
fn secret(kind: Kind, rng: &mut fastrand::Rng) -> (String, String) {
    let plain = |s: String| (s.clone(), s);
    match kind {
        Kind::OpenaiKey => {
            let prefix = ["", "proj-", "svcacct-", "admin-"][rng.usize(..4)];
            let body = if prefix.is_empty() { chars(rng, BASE62, 48) } else { chars_in(rng, BASE64URL, 60..160) };
            plain(format!("sk-{prefix}{body}"))
        }
        Kind::AnthropicKey => plain(format!("sk-ant-api03-{}", chars(rng, BASE64URL, 95))),
        Kind::GoogleApiKey => plain(format!("AIza{}", chars(rng, BASE64URL, 35))),
        Kind::AwsAccessKey => plain(format!(
            "{}{}",
            ["AKIA", "ASIA"][rng.usize(..2)],
            chars(rng, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
        )),
        Kind::GithubToken => {
            if rng.bool() {
                plain(format!("{}{}", ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"][rng.usize(..5)], chars(rng, BASE62, 36)))
            } else {
                plain(format!("github_pat_{}_{}", chars(rng, BASE62, 22), chars(rng, BASE62, 59)))
            }
        }
        Kind::SlackToken => plain(format!(
            "xox{}-{}-{}-{}",
            ["b", "p", "a", "r", "s"][rng.usize(..5)],
            rng.u64(1_000_000_000..9_999_999_999),
            rng.u64(1_000_000_000..9_999_999_999),
            chars(rng, BASE62, 24)
        )),
        Kind::BearerToken => {
            let token = chars_in(rng, BASE62, 20..60);
            (format!("{} {token}", ["Bearer", "bearer", "BEARER"][rng.usize(..3)]), token)
        }
        Kind::Jwt => plain(format!(
            "eyJ{}.eyJ{}.{}",
            chars_in(rng, BASE64URL, 17..40),
            chars_in(rng, BASE64URL, 20..120),
            chars(rng, BASE64URL, 43)
        )),
        Kind::PrivateKey => {
            let label = ["RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY"][rng.usize(..4)];
            let body = chars(rng, BASE64, 64);
            (format!("-----BEGIN {label}-----\n{body}\n{}\n-----END {label}-----", chars(rng, BASE64, 40)), body)
        }
        Kind::UrlPassword => {
            let password = chars_in(rng, BASE62, 10..24);
            let scheme = ["postgres", "https", "redis", "mongodb+srv", "amqp"][rng.usize(..5)];
            (format!("{scheme}://svc_{}:{password}@db{}.internal:5432/app", rng.u16(..), rng.u8(..)), password)
        }
        Kind::CreditCard => {
            let (prefix, len) = [
                ("4", 16),
                ("4", 13),
                ("51", 16),
                ("55", 16),
                ("2221", 16),
                ("34", 15),
                ("37", 15),
                ("6011", 16),
                ("65", 16),
            ][rng.usize(..9)];
            let mut digits: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
            while digits.len() < len - 1 {
                digits.push(rng.u8(0..10));
            }
            // The check digit that makes the Luhn sum a multiple of ten.
            let sum: u32 = digits
                .iter()
                .rev()
                .enumerate()
                .map(|(i, &d)| {
                    let d = u32::from(d);
                    if i % 2 == 0 {
                        if d * 2 > 9 {
                            d * 2 - 9
                        } else {
                            d * 2
                        }
                    } else {
                        d
                    }
                })
                .sum();
            digits.push(((10 - sum % 10) % 10) as u8);
            let text: String = digits.iter().map(|d| (b'0' + d) as char).collect();
            let grouped = if len == 16 && rng.bool() {
                let sep = [" ", "-"][rng.usize(..2)];
                text.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(sep)
            } else {
                text.clone()
            };
            (grouped.clone(), grouped)
        }
        Kind::SecretKey => {
            let value = chars_in(rng, BASE62, 10..30);
            let name =
                ["password", "api_key", "client_secret", "access_token", "DB_PASSWORD", "apiKey"][rng.usize(..6)];
            (format!("{name}={value}"), value)
        }
        other => unreachable!("{other} is not a default kind"),
    }
}

const DEFAULT_KINDS: [Kind; 12] = [
    Kind::OpenaiKey,
    Kind::AnthropicKey,
    Kind::GoogleApiKey,
    Kind::AwsAccessKey,
    Kind::GithubToken,
    Kind::SlackToken,
    Kind::BearerToken,
    Kind::Jwt,
    Kind::PrivateKey,
    Kind::UrlPassword,
    Kind::CreditCard,
    Kind::SecretKey,
];

const WORDS: [&str; 16] = [
    "please",
    "check",
    "why",
    "the",
    "deploy",
    "fails",
    "with",
    "this",
    "config",
    "and",
    "log",
    "output",
    "here",
    "is",
    "risk-averse",
    "task-list",
];

fn prose(rng: &mut fastrand::Rng, secret: &str) -> String {
    let words = |rng: &mut fastrand::Rng| {
        (0..rng.usize(0..8)).map(|_| WORDS[rng.usize(..WORDS.len())]).collect::<Vec<_>>().join(" ")
    };
    let before = [" ", "\n", " (", ": ", "\"", "'", "\t", "="][rng.usize(..8)];
    let after = [" ", "\n", ") ", ", ", ". ", "\"", "'", "; "][rng.usize(..8)];
    format!("{}{before}{secret}{after}{}", words(rng), words(rng))
}

/// A record carrying `text` in one of many places and forms.
fn record_with(rng: &mut fastrand::Rng, kind: Kind, text: &str, secret_value: &str) -> Record {
    let mut record = Record::new(RecordKind::LlmCall, "chat gpt-4o");
    record.set_attribute("gen_ai.request.max_tokens", 256);
    record.set_attribute("gen_ai.usage.input_tokens", 42);
    let prose = prose(rng, text);
    // The form: prose, a JSON object, tool-call arguments (JSON in a
    // string), chat messages, or the value of a secret-named JSON key.
    let value = match rng.usize(..5) {
        0 => Value::String(prose),
        1 => json!({"note": prose, "n": 3}),
        2 => json!({"type": "tool_call", "name": "run", "id": "call_1",
            "arguments": json!({"query": prose, "limit": 10, "nested": [prose]}).to_string()}),
        3 => json!([{"role": "user", "parts": [{"type": "text", "content": prose}]}]),
        _ if kind == Kind::SecretKey => json!({"config": {"password": secret_value, "max_tokens": 5}}),
        _ => json!({"type": "tool_call", "name": "run", "arguments": json!({"text": prose}).to_string()}),
    };
    match rng.usize(..10) {
        0 => record.input = Some(value),
        1 => record.output = Some(value),
        2 => {
            record.set_attribute("gen_ai.input.messages", value);
        }
        3 => {
            record.set_attribute("gen_ai.output.messages", json!([{"role": "assistant", "parts": [value]}]));
        }
        4 => record.user_context = Some(value),
        5 => record.raw = Some(value),
        6 => record.fail(ErrorInfo { error_type: "ValueError".into(), message: value.to_string(), stack: None }),
        9 if rng.bool() => {
            // An LLM call's response kept as the text it came in.
            let response = json!({"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": value}}]});
            record.raw = Some(json!({"request": {"model": "gpt-4o"}}));
            record.response_text = Some(JsonText::compact(&serde_json::to_vec_pretty(&response).unwrap()).unwrap());
        }
        9 => {
            // An LLM call's request kept as the text it was sent as.
            let request = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": value}]});
            record.raw = Some(json!({}));
            record.request_text = Some(JsonText::compact(&serde_json::to_vec_pretty(&request).unwrap()).unwrap());
        }
        7 => {
            record.fail(ErrorInfo::new("boom", "failed"));
            if let Some(error) = &mut record.error {
                error.stack = Some(format!("Traceback:\n  {value}"));
            }
        }
        _ => {
            record.set_attribute("gen_ai.tool.definitions", Value::String(value.to_string()));
        }
    }
    record
}

/// Everything a sink would send for `record`, as text.
fn sent(record: &Record) -> Vec<(&'static str, String)> {
    let registry = SlotRegistry::new();
    let body = Encoder::with_registry(&registry).encode_to_vec(record, &Resource::default(), SystemTime::now());
    #[allow(unused_mut)]
    let mut all = vec![
        ("record JSON (jsonl sink)", serde_json::to_string(record).unwrap()),
        ("AnoSys body", String::from_utf8_lossy(&body).into_owned()),
    ];
    #[cfg(feature = "otlp")]
    {
        let scope = anosys::sinks::otlp::convert::scope();
        all.push(("OTLP span", format!("{:?}", anosys::sinks::otlp::convert::span_data(record, &scope))));
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_default_kind_secret_survives_in_what_sinks_send(kind in 0..DEFAULT_KINDS.len(), seed in any::<u64>()) {
        let redactor = defaults();
        let kind = DEFAULT_KINDS[kind];
        let mut rng = fastrand::Rng::with_seed(seed);
        let (text, core) = secret(kind, &mut rng);
        let mut record = record_with(&mut rng, kind, &text, &core);
        // The secret is there before.
        prop_assert!(sent(&record).iter().any(|(_, s)| s.contains(core.as_str())) || kind == Kind::PrivateKey);
        let found = redactor.redact_record(&mut record);
        prop_assert!(!found.is_empty(), "{kind} {text:?} not found in {record:?}");
        prop_assert!(record.attribute(REDACTED_ATTRIBUTE).is_some());
        for (sink, body) in sent(&record) {
            prop_assert!(!body.contains(core.as_str()), "{kind} secret {core:?} survives in the {sink}: {body}");
        }
        prop_assert_eq!(record.attribute("gen_ai.request.max_tokens"), Some(&json!(256)));
        prop_assert_eq!(record.attribute("gen_ai.usage.input_tokens"), Some(&json!(42)));
    }
}

#[test]
fn a_request_or_response_kept_as_text_is_redacted_as_the_same_parsed() {
    let redactor = defaults();
    let mut rng = fastrand::Rng::with_seed(11);
    let (mut stayed_text, mut parsed_for_it) = (0, 0);
    for round in 0..800 {
        let kind = DEFAULT_KINDS[rng.usize(..DEFAULT_KINDS.len())];
        let (text, core) = secret(kind, &mut rng);
        let content = match rng.usize(..3) {
            0 => json!(prose(&mut rng, &text)),
            1 => json!({"type": "function", "function": {"name": "f", "arguments": json!({"q": prose(&mut rng, &text)}).to_string()}}),
            _ => json!(prose(&mut rng, "nothing secret here")),
        };
        let quiet = json!(prose(&mut rng, "nothing secret here either"));
        // The secret in the request (a user's message) or in the response.
        let in_request = rng.bool();
        let (asked, answered) = if in_request { (content, quiet) } else { (quiet, content) };
        let request = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": asked}]});
        let response = json!({"id": "c1", "choices": [{"index": 0, "message": {"role": "assistant", "content": answered}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5}});
        let mut as_text = Record::new(RecordKind::LlmCall, "chat gpt-4o");
        as_text.raw = Some(json!({}));
        as_text.request_text = Some(JsonText::compact(&serde_json::to_vec_pretty(&request).unwrap()).unwrap());
        as_text.response_text = Some(JsonText::compact(&serde_json::to_vec_pretty(&response).unwrap()).unwrap());
        let mut parsed = as_text.clone();
        parsed.expand_content();
        assert!(parsed.request_text.is_none() && parsed.response_text.is_none() && parsed.raw_json() == as_text.raw_json());
        let (found_in_text, found_parsed) = (redactor.redact_record(&mut as_text), redactor.redact_record(&mut parsed));
        assert_eq!(found_in_text, found_parsed, "round {round}");
        assert_eq!(as_text.raw_json(), parsed.raw_json(), "round {round}");
        assert_eq!(serde_json::to_value(&as_text).unwrap(), serde_json::to_value(&parsed).unwrap(), "round {round}");
        if found_in_text.is_empty() {
            assert!(as_text.request_text.is_some() && as_text.response_text.is_some(), "round {round}: nothing found, so no parse");
            stayed_text += 1;
        } else {
            assert!(!serde_json::to_string(&as_text).unwrap().contains(core.as_str()), "round {round}");
            // Only the text the secret was in is parsed.
            assert_eq!((as_text.request_text.is_some(), as_text.response_text.is_some()), (!in_request, in_request), "round {round}");
            parsed_for_it += 1;
        }
    }
    assert!(stayed_text > 100 && parsed_for_it > 200, "{stayed_text} {parsed_for_it}");
}
