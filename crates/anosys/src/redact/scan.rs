//! Whether redacting a JSON text would change anything, found without
//! parsing it into a [`Value`](serde_json::Value): its strings and keys
//! are read in place and checked exactly as [`Pass`] checks them in a
//! parsed value. Only a text where something may be found is parsed and
//! redacted; the rest stays text.
//!
//! The text is a [`JsonText`]: one well-formed JSON value, compact. So it
//! is walked rather than parsed: a string's end is found by `memchr`, a
//! string without escapes is checked where it lies, one with escapes is
//! unescaped into a buffer kept for the walk, and outside strings only the
//! brackets are counted.

use super::{keys, Pass, Redactor, MAX_DEPTH, MIN_SCANNED_KEY_LEN};
use crate::record::JsonText;

/// How many arrays and objects serde_json opens inside each other before
/// it refuses the text (its recursion limit, 128 levels): a text that
/// deep is answered `true`, as the parse that would follow fails.
const PARSER_LEVELS: usize = 128;

impl Redactor {
    /// Whether [`redact_value`](Self::redact_value) could change the value
    /// `json` holds, were it found `depth` levels deep: `false` only when
    /// it certainly would not (nothing to redact in any string or key, no
    /// secret-named key, nothing nested too deep). Any custom pattern
    /// (whose time budget depends on the whole record), and anything the
    /// walk does not expect (an escape serde_json would refuse), answer
    /// `true`.
    pub(crate) fn might_change_json(&self, json: &JsonText, depth: usize) -> bool {
        if !self.enabled {
            return false;
        }
        if !self.custom.is_empty() {
            return true;
        }
        might_change(&mut Pass::new(self), json.as_str(), depth)
    }
}

/// [`Redactor::might_change_json`] of the compact JSON `json`, with `pass`
/// (whose counts are thrown away).
fn might_change(pass: &mut Pass<'_>, json: &str, depth: usize) -> bool {
    let b = json.as_bytes();
    let mut unescaped = String::new();
    // Arrays and objects open around the current token.
    let mut levels = 0usize;
    let mut i = 0;
    while let Some(&byte) = b.get(i) {
        match byte {
            b'"' => {
                let Some((end, escaped)) = string_end(b, i + 1) else { return true };
                let body = &json[i + 1..end];
                let text = match escaped {
                    false => body,
                    true if unescape(body, &mut unescaped).is_some() => unescaped.as_str(),
                    true => return true,
                };
                // In compact JSON a key's closing quote is followed by its colon.
                let found = match b.get(end + 1) == Some(&b':') {
                    // As `Pass::object` checks a key: a secret-named key
                    // (its value would be replaced; counted as found whatever
                    // the value), or a long key holding a secret.
                    true => {
                        (pass.redactor.secret_keys && keys::classify(text).is_some())
                            || (text.len() >= MIN_SCANNED_KEY_LEN && pass.plain(text).is_some())
                    }
                    // As `Pass::value` checks a string (opening JSON inside it).
                    false => pass.text(text).is_some(),
                };
                if found {
                    return true;
                }
                i = end + 1;
            }
            b'[' | b'{' => {
                // This array or object is a value `depth + levels` deep.
                if depth + levels > MAX_DEPTH || levels + 1 >= PARSER_LEVELS {
                    return true;
                }
                levels += 1;
                i += 1;
            }
            b']' | b'}' => {
                levels = levels.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    false
}

/// The closing quote of the string whose body starts at `from`, and
/// whether the body holds an escape; `None` for a string left open.
fn string_end(b: &[u8], mut from: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', b.get(from..)?)?;
        if b[at] == b'"' {
            return Some((at, escaped));
        }
        escaped = true;
        from = at + 2;
    }
}

/// `body` (a JSON string's, between its quotes) with its escapes read,
/// into `out`; `None` for an escape serde_json would refuse (a lone
/// surrogate, an unknown letter).
fn unescape(body: &str, out: &mut String) -> Option<()> {
    out.clear();
    let b = body.as_bytes();
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'\\', &b[from..]).map(|k| from + k) {
        out.push_str(&body[from..at]);
        from = at + 2;
        let c = match *b.get(at + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = hex4(b.get(from..from + 4)?)?;
                from += 4;
                if (0xD800..0xDC00).contains(&unit) {
                    // The first half of a pair: the second must follow.
                    if b.get(from..from + 2)? != b"\\u" {
                        return None;
                    }
                    let low = hex4(b.get(from + 2..from + 6)?)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    from += 6;
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                } else {
                    // A lone second half is no character: `None`.
                    char::from_u32(unit)?
                }
            }
            _ => return None,
        };
        out.push(c);
    }
    out.push_str(&body[from..]);
    Some(())
}

/// The number four hex digits spell.
fn hex4(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0, |n, &d| Some(n * 16 + char::from(d).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde_json::{json, Value};

    use super::*;
    use crate::redact::{Kind, RedactionConfig};

    /// The scan as it was before the walk: serde_json reads the text and
    /// hands each string and key to the same checks. The walk must answer
    /// as it does, for every text.
    fn parsed_scan(redactor: &Redactor, json: &str, depth: usize) -> bool {
        if !redactor.enabled {
            return false;
        }
        if !redactor.custom.is_empty() {
            return true;
        }
        let mut pass = Pass::new(redactor);
        let mut reader = serde_json::Deserializer::from_str(json);
        Scan { pass: &mut pass, depth }.deserialize(&mut reader).and_then(|()| reader.end()).is_err()
    }

    /// The error a scan stops at: something would be redacted.
    const FOUND: &str = "something to redact";

    /// Checks one value, `depth` levels deep, with `pass` (whose counts are
    /// thrown away).
    struct Scan<'p, 'r> {
        pass: &'p mut Pass<'r>,
        depth: usize,
    }

    impl<'de> DeserializeSeed<'de> for Scan<'_, '_> {
        type Value = ();

        fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Scan<'_, '_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("JSON")
        }

        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }

        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }

        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }

        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }

        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
            // As `Pass::value` checks a string (opening JSON inside it).
            match self.pass.text(text) {
                Some(_) => Err(E::custom(FOUND)),
                None => Ok(()),
            }
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
            if self.depth > MAX_DEPTH {
                return Err(de::Error::custom(FOUND));
            }
            while items.next_element_seed(Scan { pass: &mut *self.pass, depth: self.depth + 1 })?.is_some() {}
            Ok(())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
            if self.depth > MAX_DEPTH {
                return Err(de::Error::custom(FOUND));
            }
            while entries.next_key_seed(Key { pass: &mut *self.pass })?.is_some() {
                entries.next_value_seed(Scan { pass: &mut *self.pass, depth: self.depth + 1 })?;
            }
            Ok(())
        }
    }

    /// Checks an object's key, as `Pass::object` does: a secret-named key
    /// (whose value would be replaced; counted as found whatever the value),
    /// or a long key holding a secret.
    struct Key<'p, 'r> {
        pass: &'p mut Pass<'r>,
    }

    impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
        type Value = ();

        fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Key<'_, '_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a key")
        }

        fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
            let secret_named = self.pass.redactor.secret_keys && keys::classify(key).is_some();
            if secret_named || (key.len() >= MIN_SCANNED_KEY_LEN && self.pass.plain(key).is_some()) {
                return Err(E::custom(FOUND));
            }
            Ok(())
        }
    }

    /// Texts a response may hold: plain words, secrets of each default
    /// kind and opt-in ones, JSON inside text, markers, odd characters.
    const LEAVES: &[&str] = &[
        "",
        "Hello",
        "The weather in Seattle is 12 degrees",
        "risk-averse task-list, max_tokens 512",
        "my key is sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "AKIAIOSFODNN7EXAMPLE",
        "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "card 4111 1111 1111 1111 please",
        "db postgres://app:s3cr3t@db:5432/prod",
        "Authorization: Bearer 9f8e7d6c5b4a3f2e1d0c",
        "write to ann@example.com or call +1 415 555 0100 from 10.1.2.3",
        "{\"user\":\"ann\",\"password\":\"hunter22\"}",
        "{\"city\":\"Seattle\",\"unit\":\"celsius\"}",
        "[1, 2, {\"q\": \"sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789\"}]",
        "[REDACTED:secret_key]",
        "line\nbreak \"quoted\" \\ back\u{1F600}",
        "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----",
        "1712345678",
    ];

    const KEYS: &[&str] = &[
        "id", "content", "role", "arguments", "password", "api_key", "authorization", "max_tokens",
        "prompt_tokens", "a_rather_long_key_name", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "secret",
    ];

    fn leaf(rng: &mut fastrand::Rng) -> Value {
        match rng.usize(..8) {
            0 => json!(rng.i64(-5..100_000)),
            1 => json!(rng.f64()),
            2 => json!(rng.bool()),
            3 => Value::Null,
            _ => json!(LEAVES[rng.usize(..LEAVES.len())]),
        }
    }

    fn value(rng: &mut fastrand::Rng, depth: usize) -> Value {
        if depth > 4 || rng.usize(..3) == 0 {
            return leaf(rng);
        }
        if rng.bool() {
            Value::Array((0..rng.usize(..4)).map(|_| value(rng, depth + 1)).collect())
        } else {
            Value::Object(
                (0..rng.usize(..4)).map(|_| (KEYS[rng.usize(..KEYS.len())].to_owned(), value(rng, depth + 1))).collect(),
            )
        }
    }

    /// Whether redacting `response` as a record's `raw.response` changes
    /// anything.
    fn redaction_changes(redactor: &Redactor, response: &Value) -> bool {
        let before = json!({"request": {"model": "gpt-4o"}, "response": response});
        let mut after = before.clone();
        let found = redactor.redact_value(&mut after);
        !found.is_empty() || after != before
    }

    fn configs() -> Vec<(&'static str, Redactor)> {
        let make = |config: RedactionConfig| Redactor::new(&config).unwrap();
        vec![
            ("default", make(RedactionConfig::default())),
            ("all", make(RedactionConfig::all())),
            ("no secret keys", make(RedactionConfig::default().without_kind(Kind::SecretKey))),
            ("off", make(RedactionConfig::off())),
            ("custom", make(RedactionConfig::default().with_pattern("ticket", "TICKET-[0-9]+"))),
        ]
    }

    #[test]
    fn nothing_found_in_the_text_means_nothing_changes_in_the_value() {
        let mut rng = fastrand::Rng::with_seed(7);
        for (name, redactor) in configs() {
            let (mut clean, mut found) = (0, 0);
            for round in 0..3_000 {
                let response = value(&mut rng, 0);
                let changes = redaction_changes(&redactor, &response);
                let text = JsonText::compact(serde_json::to_string_pretty(&response).unwrap().as_bytes()).unwrap();
                let might = redactor.might_change_json(&text, 1);
                assert!(might || !changes, "{name}, round {round}: {text:?}");
                assert_eq!(might, parsed_scan(&redactor, text.as_str(), 1), "{name}, round {round}: {text:?}");
                if might { found += 1 } else { clean += 1 }
            }
            // Neither answer is given every time, but where it must be.
            match name {
                "off" => assert_eq!(found, 0),
                "custom" => assert_eq!(clean, 0),
                _ => assert!(clean > 1_000 && found > 1_000, "{name}: {clean} clean, {found} found"),
            }
        }
    }

    #[test]
    fn escapes_and_depth_are_read_as_the_parser_reads_them() {
        let redactor = Redactor::new(&RedactionConfig::default()).unwrap();
        // A secret spelt with escapes, and a key spelt so.
        for text in [
            r#"{"content":"sk\u002dproj\u002dAb3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"}"#,
            r#"{"pass\u0077ord":"x"}"#,
            r#"{"a":"postgres:\/\/app:s3cr3t@db\/prod"}"#,
        ] {
            let parsed: Value = serde_json::from_str(text).unwrap();
            assert!(redaction_changes(&redactor, &parsed), "{text}");
            assert!(redactor.might_change_json(&JsonText::compact(text.as_bytes()).unwrap(), 1), "{text}");
        }
        // Nested as deep as a parser takes (the response is one level in
        // already), and deeper: the parser refuses it, the scan too.
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        let deepest = nested(MAX_DEPTH - 1);
        assert!(!redactor.might_change_json(&JsonText::compact(deepest.as_bytes()).unwrap(), 1));
        assert!(!redaction_changes(&redactor, &serde_json::from_str(&deepest).unwrap()));
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH)).is_err());
        // Deeper than the parser takes, no JsonText holds; the walk still
        // answers as the parser would, read in place.
        let mut pass = Pass::new(&redactor);
        assert!(!might_change(&mut pass, &deepest, 1));
        assert!(might_change(&mut pass, &nested(MAX_DEPTH), 1));
        // Found deeper in: a response already `depth` levels in.
        let three = nested(3);
        assert!(!might_change(&mut pass, &three, MAX_DEPTH - 2));
        assert!(might_change(&mut pass, &three, MAX_DEPTH - 1));
        assert!(!parsed_scan(&redactor, &three, MAX_DEPTH - 2));
        assert!(parsed_scan(&redactor, &three, MAX_DEPTH - 1));
    }

    /// Text that is not JSON never reaches the walk (a `JsonText` is
    /// JSON), but the walk reads any text without panicking, and answers
    /// as the parser does whenever the text is JSON.
    #[test]
    fn the_walk_reads_any_text_without_panicking() {
        let redactor = Redactor::new(&RedactionConfig::default()).unwrap();
        let pieces = ["\"", "\\", "\\u", "d83d", "\\ude00", "{", "}", "[", "]", ":", ",", "é", "中", "😀", "a", "0", " ", "sk-", "password"];
        let mut rng = fastrand::Rng::with_seed(11);
        let mut pass = Pass::new(&redactor);
        for _ in 0..20_000 {
            let text: String = (0..rng.usize(..24)).map(|_| pieces[rng.usize(..pieces.len())]).collect();
            let might = might_change(&mut pass, &text, 1);
            if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() && !text.contains(char::is_whitespace) {
                assert_eq!(might, parsed_scan(&redactor, &text, 1), "{text}");
            }
        }
    }

    /// Escapes in strings and keys, read as serde_json reads them: every
    /// escape, pairs of surrogates, escapes that spell a secret or a
    /// secret-named key, and the escapes serde_json refuses (a lone half of
    /// a pair, which `JsonText::compact` writes as `\ufffd`).
    #[test]
    fn escapes_are_unescaped_as_serde_json_reads_them() {
        let mut out = String::new();
        for body in [
            r#"plain"#,
            r#"a\"b\\c\/d\be\ff\ng\rh\ti"#,
            r#"\u0041\u00e9\u4e2d\ud83d\ude00 end"#,
            r#"\\u0041 (a backslash, then u0041)"#,
            r#"\"\"\\\\"#,
        ] {
            let expected: String = serde_json::from_str(&format!("\"{body}\"")).unwrap();
            assert_eq!(unescape(body, &mut out), Some(()), "{body}");
            assert_eq!(out, expected, "{body}");
        }
        for body in [r#"\ud83d alone"#, r#"\ude00"#, r#"\ud83d\u0041"#, r#"\x41"#, r#"\u12"#, r#"\u12g4"#] {
            assert!(serde_json::from_str::<String>(&format!("\"{body}\"")).is_err(), "{body}");
            assert_eq!(unescape(body, &mut out), None, "{body}");
        }
        let redactor = Redactor::new(&RedactionConfig::default()).unwrap();
        for (text, changes) in [
            (r#"{"a":"\u0073k-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"}"#, true),
            (r#"{"api\u005fkey":"abc"}"#, true),
            (r#"{"note":"he said \"hello\" twice\nand left"}"#, false),
            (r#"{"note":"he said \"hello\" twice","n":[1,2.5,true,null,{"k":"v"}]}"#, false),
        ] {
            let json = JsonText::compact(text.as_bytes()).unwrap();
            assert_eq!(redactor.might_change_json(&json, 1), changes, "{text}");
            assert_eq!(parsed_scan(&redactor, json.as_str(), 1), changes, "{text}");
        }
    }
}
