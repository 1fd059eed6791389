//! Unit tests of the redactor: the environment syntax, secret-named keys,
//! Luhn, URL passwords, JSON inside strings and the fail-closed limits.

use std::time::Duration;

use serde_json::json;

use super::text::{card, luhn, next_digit};
use super::*;
use crate::record::{ErrorInfo, Event, Record, RecordKind};

fn defaults() -> Redactor {
    Redactor::new(&RedactionConfig::default()).expect("the defaults are valid")
}

fn redact(redactor: &Redactor, text: &str) -> String {
    redactor.redact_str(text).0.into_owned()
}

#[test]
fn env_values_turn_kinds_on_and_off_relative_to_the_defaults() {
    let config = RedactionConfig::from_env_values(None, None).unwrap();
    assert_eq!(config, RedactionConfig::default());
    assert!(config.has_kind(Kind::CreditCard) && !config.has_kind(Kind::Email));

    let config = RedactionConfig::from_env_values(Some(" default, email ,-credit_card "), None).unwrap();
    assert!(config.has_kind(Kind::Email) && !config.has_kind(Kind::CreditCard) && config.has_kind(Kind::OpenaiKey));

    let config = RedactionConfig::from_env_values(Some("ALL,-ip"), None).unwrap();
    assert!(config.has_kind(Kind::Phone) && config.has_kind(Kind::Email) && !config.has_kind(Kind::Ip));

    let config = RedactionConfig::from_env_values(Some("none,jwt,+private_key"), None).unwrap();
    assert_eq!(config.kinds().collect::<Vec<_>>(), [Kind::Jwt, Kind::PrivateKey]);

    for off in ["off", "OFF", "false", "0", "no"] {
        assert!(!RedactionConfig::from_env_values(Some(off), Some(r#"{"x":"y"}"#)).unwrap().is_enabled());
    }
    for on in ["on", "", "  ", "true"] {
        assert_eq!(RedactionConfig::from_env_values(Some(on), None).unwrap(), RedactionConfig::default());
    }
    assert_eq!(
        RedactionConfig::from_env_values(Some("email"), None).unwrap(),
        RedactionConfig::default().with_kind(Kind::Email)
    );
}

#[test]
fn an_unknown_kind_is_an_error_naming_the_variable_and_the_valid_kinds() {
    let error = RedactionConfig::from_env_values(Some("default,emails"), None).unwrap_err();
    assert_eq!(error, RedactError::UnknownKind { variable: "ANOSYS_REDACT", item: "emails".into() });
    let message = error.to_string();
    assert!(message.starts_with("ANOSYS_REDACT: unknown redaction kind `emails`"), "{message}");
    for kind in Kind::ALL {
        assert!(message.contains(kind.name()), "{message} lacks {kind}");
    }
    assert!(RedactionConfig::from_env_values(Some("-nope"), None).is_err());
    assert!(RedactionConfig::from_env_values(Some("off,email"), None).is_err());
}

#[test]
fn custom_patterns_come_as_a_json_object() {
    let config =
        RedactionConfig::from_env_values(None, Some(r#"{"employee_id": "EMP-[0-9]{6}", "ticket": "(?i)tkt-\\d{4}"}"#))
            .unwrap();
    let redactor = Redactor::new(&config).unwrap();
    let (text, found) = redactor.redact_str("EMP-123456 opened TKT-0042 and emp-123456");
    assert_eq!(text, "[REDACTED:employee_id] opened [REDACTED:ticket] and emp-123456");
    assert_eq!((found.count("employee_id"), found.count("ticket")), (1, 1));
    assert!(RedactionConfig::from_env_values(None, Some("  ")).unwrap().patterns().is_empty());
}

#[test]
fn invalid_patterns_are_errors_naming_the_variable_and_the_pattern() {
    let error = RedactionConfig::from_env_values(None, Some(r#"{"employee_id": "EMP-[0-9"}"#)).unwrap_err();
    assert!(
        matches!(&error, RedactError::InvalidRegex { variable: Some("ANOSYS_REDACT_PATTERNS"), name, .. } if name == "employee_id")
    );
    assert!(error
        .to_string()
        .starts_with("ANOSYS_REDACT_PATTERNS: pattern `employee_id` is not a valid regular expression"));

    let error = RedactionConfig::from_env_values(None, Some("EMP-[0-9]{6}")).unwrap_err();
    assert!(error.to_string().starts_with("ANOSYS_REDACT_PATTERNS: expected a JSON object"), "{error}");
    let error = RedactionConfig::from_env_values(None, Some(r#"{"n": 5}"#)).unwrap_err();
    assert!(error.to_string().contains("`n` is not a string"), "{error}");
    for bad_name in ["Employee", "", "jwt", "unscanned", "a-b"] {
        let patterns = json!({ bad_name: "x" }).to_string();
        let error = RedactionConfig::from_env_values(None, Some(&patterns)).unwrap_err();
        assert!(matches!(error, RedactError::InvalidPatternName { .. }), "{bad_name}: {error}");
        assert!(error.to_string().starts_with("ANOSYS_REDACT_PATTERNS: pattern name"), "{error}");
    }
    // Given in code, the error says so instead of naming a variable.
    let error = Redactor::new(&RedactionConfig::default().with_pattern("x", "(")).unwrap_err();
    assert!(error.to_string().starts_with("custom redaction: pattern `x`"), "{error}");
}

#[test]
fn luhn_accepts_valid_numbers_only() {
    let digits = |s: &str| s.bytes().map(|b| b - b'0').collect::<Vec<u8>>();
    for valid in ["4111111111111111", "5500005555555559", "378282246310005", "6011111111111117", "79927398713"] {
        assert!(luhn(&digits(valid)), "{valid}");
    }
    for invalid in ["4111111111111112", "1234567812345678", "79927398710"] {
        assert!(!luhn(&digits(invalid)), "{invalid}");
    }
}

#[test]
fn cards_are_found_with_or_without_groups() {
    let r = defaults();
    assert_eq!(redact(&r, "card 4111 1111 1111 1111 exp 12/29"), "card [REDACTED:credit_card] exp 12/29");
    assert_eq!(redact(&r, "4111-1111-1111-1111"), "[REDACTED:credit_card]");
    assert_eq!(redact(&r, "amex 3782 822463 10005."), "amex [REDACTED:credit_card].");
    assert_eq!(redact(&r, "n=5500005555555559;"), "n=[REDACTED:credit_card];");
    assert_eq!(redact(&r, "4111 1111 1111 1111 1229"), "[REDACTED:credit_card] 1229");
    assert_eq!(redact(&r, "visa 4222222222222 (13 digits)"), "visa [REDACTED:credit_card] (13 digits)");
    // Luhn fails, wrong issuer, too long, a decimal, odd grouping.
    for kept in [
        "4111 1111 1111 1112",
        "1234567812345670",
        "41111111111111111111",
        "3.4111111111111111",
        "41 11 11 11 11 11 11 11",
        "order 9111111111111111",
    ] {
        assert_eq!(redact(&r, kept), kept);
    }
}

#[test]
fn only_the_password_of_a_url_is_replaced() {
    let r = defaults();
    assert_eq!(
        redact(&r, "postgres://app:p%40ss@db.internal:5432/prod?sslmode=require"),
        "postgres://app:[REDACTED:url_password]@db.internal:5432/prod?sslmode=require"
    );
    assert_eq!(redact(&r, "redis://:hunter2@cache:6379/0"), "redis://:[REDACTED:url_password]@cache:6379/0");
    assert_eq!(redact(&r, "https://user:pa:ss@host/x@y"), "https://user:[REDACTED:url_password]@host/x@y");
    for kept in [
        "https://example.com:8443/path",
        "ssh://git@github.com/org/repo.git",
        "https://user:@host/",
        "https://medium.com/@writer",
        "git@github.com:org/repo.git",
        "https://example.com/a:b@c",
    ] {
        assert_eq!(redact(&r, kept), kept);
    }
}

#[test]
fn secret_named_keys_have_their_values_redacted_wherever_they_are() {
    let r = defaults();
    let mut value = json!({
        "model": "gpt-4o",
        "max_tokens": 256,
        "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
        "config": {"db": {"password": "hunter22", "pin_password": 123456, "empty_password": "", "enabled_password": true}},
        "headers": {"Authorization": "Basic dXNlcjpwYXNz", "Cookie": ["a=1", "b=2"], "Accept": "text/plain"},
        "token_count": 5,
        "tokens": 7,
        "apiKey": "abc",
    });
    let found = r.redact_value(&mut value);
    assert_eq!(found.count("secret_key"), 6, "{value:#}");
    assert_eq!(value["max_tokens"], 256);
    assert_eq!(value["usage"]["total_tokens"], 42);
    assert_eq!(value["config"]["db"]["password"], "[REDACTED:secret_key]");
    assert_eq!(value["config"]["db"]["pin_password"], "[REDACTED:secret_key]");
    assert_eq!(value["config"]["db"]["empty_password"], "");
    assert_eq!(value["config"]["db"]["enabled_password"], true);
    assert_eq!(value["headers"]["Cookie"], json!(["[REDACTED:secret_key]", "[REDACTED:secret_key]"]));
    assert_eq!(value["headers"]["Accept"], "text/plain");
    assert_eq!((value["token_count"].clone(), value["tokens"].clone()), (json!(5), json!(7)));
    assert_eq!(value["apiKey"], "[REDACTED:secret_key]");
}

#[test]
fn secret_named_keys_are_found_in_text() {
    let r = defaults();
    for (text, expected) in [
        ("password=hunter22 next", "password=[REDACTED:secret_key] next"),
        ("DB_PASSWORD: 'c0rrect horse'", "DB_PASSWORD: '[REDACTED:secret_key]'"),
        (r#"{"client_secret": "abc123", "n": 1"#, r#"{"client_secret": "[REDACTED:secret_key]", "n": 1"#),
        ("export API_KEY=abcdef123;", "export API_KEY=[REDACTED:secret_key];"),
        ("access_token=eyz0123456789&x=1", "access_token=[REDACTED:secret_key]&x=1"),
        ("Cookie: session=abc; theme=dark\nAccept: */*", "Cookie: [REDACTED:secret_key]\nAccept: */*"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [REDACTED:secret_key]"),
        ("Authorization: Bearer abc", "Authorization: Bearer [REDACTED:bearer_token]"),
    ] {
        assert_eq!(redact(&r, text), expected, "{text}");
    }
    for kept in [
        "max_tokens: 512",
        "tokens: 5",
        "token: 512",
        "prompt_tokens=12, completion_tokens=30",
        "the password is wrong",
        "password: null",
        "password=",
        "secret_name: prod-db",
        "monkey: banana",
        "key: value",
        "Each token: a unit of text",
    ] {
        assert_eq!(redact(&r, kept), kept, "{kept}");
    }
}

#[test]
fn json_in_strings_is_opened_redacted_and_written_back_only_when_changed() {
    let r = defaults();
    let mut call = json!({"type": "tool_call", "name": "deploy", "arguments":
        "{\"env\": \"prod\", \"credentials\": {\"user\": \"ci\", \"token\": \"t0k3n-abcdefgh\"}, \"note\": \"key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z\"}"});
    let found = r.redact_value(&mut call);
    assert_eq!((found.count("secret_key"), found.count("openai_key")), (2, 1));
    let arguments: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        arguments,
        json!({"env": "prod", "credentials": {"user": "[REDACTED:secret_key]", "token": "[REDACTED:secret_key]"},
            "note": "key [REDACTED:openai_key]"})
    );

    // Unchanged JSON keeps its exact text (spacing, number forms).
    let text = "{ \"max_tokens\" : 1e3, \"city\": \"Paris 75001\" }";
    let mut untouched = json!({"arguments": text});
    assert!(r.redact_value(&mut untouched).is_empty());
    assert_eq!(untouched["arguments"], text);

    // Escapes that hide a secret from a text scan are seen once parsed.
    let hidden = json!({"q": "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"}).to_string().replace("sk-", "\\u0073k-");
    let (text, found) = r.redact_str(&hidden);
    assert_eq!(found.count("openai_key"), 1, "{text}");
    // A JSON array of strings, and a string that only looks like JSON.
    assert_eq!(redact(&r, "[\"AKIAIOSFODNN7EXAMPLE\"]"), "[\"[REDACTED:aws_access_key]\"]");
    assert_eq!(redact(&r, "{not json: AKIAIOSFODNN7EXAMPLE}"), "{not json: [REDACTED:aws_access_key]}");
}

#[test]
fn custom_patterns_fail_closed_past_their_size_cap_and_time_budget() {
    let config = RedactionConfig::default()
        .with_pattern("employee_id", "EMP-[0-9]{6}")
        .with_custom_limits(64, DEFAULT_CUSTOM_BUDGET);
    let r = Redactor::new(&config).unwrap();
    let long = format!("{} EMP-123456", "x".repeat(100));
    let (text, found) = r.redact_str(&long);
    assert_eq!((text.as_ref(), found.count(UNSCANNED)), ("[REDACTED:unscanned]", 1));
    assert_eq!(redact(&r, "short EMP-123456"), "short [REDACTED:employee_id]");

    // No time at all: every string that needs a custom scan is replaced.
    let config = RedactionConfig::default()
        .with_pattern("employee_id", "EMP-[0-9]{6}")
        .with_custom_limits(1 << 20, Duration::ZERO);
    let r = Redactor::new(&config).unwrap();
    let mut record = Record::new(RecordKind::FunctionCall, "f");
    record.input = Some(json!(["hello", 42]));
    let found = r.redact_record(&mut record);
    assert_eq!(found.count(UNSCANNED), 2, "the name and the input string");
    assert_eq!(record.input, Some(json!(["[REDACTED:unscanned]", 42])));
    assert_eq!(record.attribute(REDACTED_ATTRIBUTE), Some(&json!({"unscanned": 2})));

    // Without custom patterns there is no budget to run out of.
    let r = Redactor::new(&RedactionConfig::default().with_custom_limits(0, Duration::ZERO)).unwrap();
    assert_eq!(redact(&r, "plain text"), "plain text");
}

#[test]
fn a_slow_custom_pattern_is_cut_off_by_the_budget() {
    // A large input and a pattern the lazy DFA struggles with: the first
    // strings take the budget, the rest are replaced, nothing blocks.
    let config = RedactionConfig::default()
        .with_pattern("slow", r"(?:\w+\s+){5,}\d{30}")
        .with_custom_limits(1 << 20, Duration::from_millis(5));
    let r = Redactor::new(&config).unwrap();
    let chunk = "lorem ipsum dolor sit amet ".repeat(4000);
    let mut value = Value::Array((0..50).map(|_| Value::String(chunk.clone())).collect());
    let started = std::time::Instant::now();
    let found = r.redact_value(&mut value);
    assert!(started.elapsed() < Duration::from_secs(5));
    let unscanned = found.count(UNSCANNED);
    assert!(unscanned > 0, "50 strings of 100 KB in 5 ms");
    assert_eq!(value.as_array().unwrap().iter().filter(|v| *v == "[REDACTED:unscanned]").count(), unscanned);
}

#[test]
fn deep_values_fail_closed() {
    let r = defaults();
    let mut value = json!("AKIAIOSFODNN7EXAMPLE");
    for _ in 0..200 {
        value = json!([value]);
    }
    let found = r.redact_value(&mut value);
    assert_eq!(found.count(UNSCANNED), 1);
    assert!(!value.to_string().contains("AKIA"));
}

#[test]
fn every_field_of_a_record_is_scanned_and_the_counts_are_attached() {
    let r = defaults();
    let key = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z";
    let mut record = Record::new(RecordKind::LlmCall, format!("chat {key}"));
    record.source = Some(key.into());
    record.input = Some(json!({"messages": [{"role": "user", "content": key}]}));
    record.output = Some(json!(key));
    record.user_context = Some(json!({"note": key}));
    record.raw = Some(json!([key]));
    record.trace_state = Some(format!("vendor={key}"));
    record.fail(ErrorInfo { error_type: key.into(), message: key.into(), stack: Some(key.into()) });
    record.caller = Some(crate::record::Caller { function: Some(key.into()), file: key.into(), line: 1 });
    record.set_attribute("gen_ai.system_instructions", key);
    record.set_attribute(format!("attr {key}"), 1);
    record.events.push(Event {
        name: key.into(),
        time: std::time::SystemTime::now(),
        attributes: [(Cow::Borrowed("e"), json!(key))].into_iter().collect(),
    });
    record.links.push(crate::record::Link {
        trace_id: crate::TraceId::random(),
        span_id: crate::SpanId::random(),
        trace_state: Some(key.into()),
        attributes: [(Cow::Borrowed("l"), json!(key))].into_iter().collect(),
    });
    let mut resource = Resource::default();
    resource.attributes.insert(Cow::Borrowed("deployment.key_hint"), json!(key));
    record.resource = Some(Arc::new(resource));

    let found = r.redact_record(&mut record);
    let encoded = serde_json::to_string(&record).unwrap();
    assert!(!encoded.contains("Ab3dEf6h"), "{encoded}");
    assert_eq!(found.count("openai_key"), 20, "{encoded}");
    assert_eq!(record.attribute(REDACTED_ATTRIBUTE), Some(&json!({"openai_key": 20})));
    assert!(record.attributes.contains_key("attr [REDACTED:openai_key]"));

    // A second pass finds nothing more and keeps the counts.
    let again = r.redact_record(&mut record);
    assert!(again.is_empty());
    assert_eq!(record.attribute(REDACTED_ATTRIBUTE), Some(&json!({"openai_key": 20})));
}

#[test]
fn records_sharing_a_resource_each_get_it_redacted_and_counted() {
    let r = defaults();
    let key = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z";
    let mut with_key = Resource::default();
    with_key.attributes.insert(Cow::Borrowed("deployment.key_hint"), json!(key));
    with_key.attributes.insert(Cow::Borrowed("service.name"), json!("billing"));
    let with_key = Arc::new(with_key);
    let mut clean = Resource::default();
    clean.attributes.insert(Cow::Borrowed("service.name"), json!("billing"));
    let clean = Arc::new(clean);

    let mut redacted = Vec::new();
    // The same resource for several records, another between them, then
    // the first again: each record gets what its resource comes to.
    for resource in [&with_key, &with_key, &clean, &with_key, &clean, &clean] {
        let mut record = Record::new(RecordKind::LlmCall, "chat gpt-4o-mini");
        record.resource = Some(Arc::clone(resource));
        let found = r.redact_record(&mut record);
        let held = record.resource.clone().expect("a resource");
        if Arc::ptr_eq(resource, &clean) {
            assert!(found.is_empty());
            assert!(Arc::ptr_eq(&held, &clean), "a clean resource is left as it is, not copied");
            assert_eq!(record.attribute(REDACTED_ATTRIBUTE), None);
        } else {
            assert_eq!(found.count("openai_key"), 1);
            assert_eq!(record.attribute(REDACTED_ATTRIBUTE), Some(&json!({"openai_key": 1})));
            assert_eq!(held.attributes["deployment.key_hint"], json!("[REDACTED:openai_key]"));
            assert_eq!(held.attributes["service.name"], json!("billing"));
            redacted.push(held);
        }
    }
    assert_eq!(redacted.len(), 3);
    // The shared resource was redacted once and the records share the result.
    assert!(Arc::ptr_eq(&redacted[0], &redacted[1]));
    assert_eq!(with_key.attributes["deployment.key_hint"], json!(key), "the original is not changed");
    // A clone of the redactor does the same from scratch.
    let mut record = Record::new(RecordKind::LlmCall, "chat gpt-4o-mini");
    record.resource = Some(Arc::clone(&with_key));
    assert_eq!(r.clone().redact_record(&mut record).count("openai_key"), 1);
    assert_eq!(record.resource.as_ref().unwrap().attributes["deployment.key_hint"], json!("[REDACTED:openai_key]"));
}

#[test]
fn a_clean_record_is_left_as_it_was() {
    let r = defaults();
    let mut record = Record::new(RecordKind::LlmCall, "chat gpt-4o-mini");
    record.set_attribute("gen_ai.request.max_tokens", 256);
    record.set_attribute("gen_ai.usage.input_tokens", 42);
    record.input =
        Some(json!([{"role": "user", "content": "What is 2+2? Order #12345678, see https://example.com/a"}]));
    let before = record.clone();
    assert!(r.redact_record(&mut record).is_empty());
    assert_eq!(record, before);
}

#[test]
fn turned_off_it_changes_nothing() {
    let r = Redactor::new(&RedactionConfig::off()).unwrap();
    assert!(!r.is_enabled());
    let mut record = Record::new(RecordKind::Raw, "AKIAIOSFODNN7EXAMPLE");
    assert!(r.redact_record(&mut record).is_empty());
    assert_eq!(record.name, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(r.redact_str("AKIAIOSFODNN7EXAMPLE").0, "AKIAIOSFODNN7EXAMPLE");
}

#[test]
fn opt_in_kinds() {
    let r = Redactor::new(&RedactionConfig::all()).unwrap();
    for (text, expected) in [
        ("write to ann.lee+ai@mail.example.co.uk.", "write to [REDACTED:email]."),
        ("call +1 415-555-2671 now", "call [REDACTED:phone] now"),
        ("call (415) 555-2671", "call [REDACTED:phone]"),
        ("from 192.168.1.20:8080", "from [REDACTED:ip]:8080"),
        ("v6 2001:db8::8a2e:370:7334 ok", "v6 [REDACTED:ip] ok"),
        ("loopback ::1.", "loopback [REDACTED:ip]."),
    ] {
        assert_eq!(redact(&r, text), expected, "{text}");
    }
    for kept in ["version 1.2.3.4.5", "at 10:30:00", "std::vector", "2024-01-15", "300.1.1.1", "user@localhost"] {
        assert_eq!(redact(&r, kept), kept, "{kept}");
    }
}

#[test]
fn never_panics_on_odd_text() {
    let r = Redactor::new(&RedactionConfig::all().with_pattern("x", "é+")).unwrap();
    for text in [
        "sk-",
        "AKIA",
        "eyJ",
        "eyJ.",
        "-----BEGIN ",
        "-----BEGIN PRIVATE KEY-----",
        "://",
        "a://",
        "@",
        "@.",
        "Bearer",
        "bearer ",
        "password=",
        "password:\"",
        "é sk-ééé",
        "ghp_",
        "github_pat_",
        "xoxb-",
        "4",
        "4111 ",
        "::",
        "é@é.éé",
        "token=\"abc\\",
        "{",
        "[]",
        "{\"a\":",
        "\u{0}",
    ] {
        let _ = r.redact_str(text);
        let _ = r.redact_str(&format!("é{text}é"));
    }
}

/// Only a run of 4 digits, or of 13 or more, can start a card (the digit
/// pass looks for one nowhere else): numbers of every card length with a
/// card network's prefix and a valid check digit, cut into groups of
/// every length, by spaces or dashes.
#[test]
fn a_card_starts_with_a_group_of_four_digits_or_is_one_group() {
    let mut rng = fastrand::Rng::with_seed(5);
    let mut found = [0usize; 20];
    for _ in 0..200_000 {
        let len = rng.usize(13..=19);
        let prefix: &[u8] = [&[4][..], &[5, 1], &[3, 4], &[3, 6], &[6, 5], &[2, 2], &[5, 0]][rng.usize(..7)];
        let mut digits: Vec<u8> = prefix.iter().copied().chain((prefix.len()..len).map(|_| rng.u8(..10))).collect();
        // The check digit that makes the number pass Luhn.
        digits[len - 1] = (0..10).find(|&d| {
            digits[len - 1] = d;
            luhn(&digits)
        }).unwrap();
        let separator = if rng.bool() { b' ' } else { b'-' };
        let mut text = Vec::new();
        let mut first_group = None;
        let mut at = 0;
        while at < len {
            let group = rng.usize(1..=len - at).min(if rng.bool() { 4 } else { 19 });
            text.extend(digits[at..at + group].iter().map(|d| b'0' + d));
            first_group.get_or_insert(group);
            at += group;
            if at < len {
                text.push(separator);
            }
        }
        text.extend_from_slice(b" end");
        if card(&text, 0).is_some() {
            let first = first_group.unwrap();
            assert!(first == 4 || first >= 13, "{}", String::from_utf8_lossy(&text));
            found[first] += 1;
        }
    }
    // Both kinds were found, many times.
    assert!(found[4] > 1_000 && found[13..].iter().sum::<usize>() > 1_000, "{found:?}");
}

#[test]
fn the_digit_search_agrees_with_a_plain_one() {
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..4000 {
        // Short texts dense with digits, and longer ones with few.
        let (len, one_in) = if round % 2 == 0 { (rng.usize(0..40), 10) } else { (rng.usize(0..200), 80) };
        let bytes: Vec<u8> =
            (0..len).map(|_| if rng.u8(..one_in) == 0 { rng.u8(b'0'..=b'9') } else { rng.u8(..) }).collect();
        for from in 0..=len {
            let expected = bytes[from..].iter().position(u8::is_ascii_digit).map(|p| from + p);
            assert_eq!(next_digit(&bytes, from), expected, "{bytes:?} from {from}");
        }
    }
}

#[test]
fn escaped_json_inside_text_has_its_secret_values_found() {
    let r = defaults();
    let line = r#"tool call arguments="{\"user\": \"ann\", \"password\": \"hunter22\"}" failed"#;
    assert_eq!(
        redact(&r, line),
        r#"tool call arguments="{\"user\": \"ann\", \"password\": \"[REDACTED:secret_key]\"}" failed"#
    );
}
