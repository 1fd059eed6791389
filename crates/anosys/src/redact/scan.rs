//! Whether redacting a JSON text would change anything, found without
//! parsing it into a [`Value`](serde_json::Value): its strings and keys
//! are read in place and checked exactly as [`Pass`] checks them in a
//! parsed value. Only a text where something may be found is parsed and
//! redacted; the rest stays text.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{keys, Pass, Redactor, MAX_DEPTH, MIN_SCANNED_KEY_LEN};

impl Redactor {
    /// Whether [`redact_value`](Self::redact_value) could change the value
    /// `json` holds, were it found `depth` levels deep: `false` only when
    /// it certainly would not (nothing to redact in any string or key, no
    /// secret-named key, nothing nested too deep). Text that is not JSON,
    /// and any custom pattern (whose time budget depends on the whole
    /// record), answer `true`.
    pub(crate) fn might_change_json(&self, json: &str, depth: usize) -> bool {
        if !self.enabled {
            return false;
        }
        if !self.custom.is_empty() {
            return true;
        }
        let mut pass = Pass::new(self);
        let mut reader = serde_json::Deserializer::from_str(json);
        Scan { pass: &mut pass, depth }.deserialize(&mut reader).and_then(|()| reader.end()).is_err()
    }
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

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::redact::{Kind, RedactionConfig};

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
                for text in [serde_json::to_string(&response).unwrap(), serde_json::to_string_pretty(&response).unwrap()] {
                    let might = redactor.might_change_json(&text, 1);
                    assert!(might || !changes, "{name}, round {round}: {text}");
                    if might { found += 1 } else { clean += 1 }
                }
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
            assert!(redactor.might_change_json(text, 1), "{text}");
        }
        // Nested as deep as a parser takes (the response is one level in
        // already), and deeper: the parser refuses it, the scan too.
        let nested = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        let deepest = nested(MAX_DEPTH - 1);
        assert!(!redactor.might_change_json(&deepest, 1));
        assert!(!redaction_changes(&redactor, &serde_json::from_str(&deepest).unwrap()));
        assert!(serde_json::from_str::<Value>(&nested(MAX_DEPTH)).is_err());
        assert!(redactor.might_change_json(&nested(MAX_DEPTH), 1));
        // Not JSON: says so (the caller parses, and fails closed).
        assert!(redactor.might_change_json("{\"a\":", 1));
        assert!(redactor.might_change_json("{} {}", 1));
    }
}
