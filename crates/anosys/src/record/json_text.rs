//! JSON kept as text: an LLM call's response as it came off the wire,
//! compacted, rather than parsed into a [`serde_json::Value`].
//!
//! Parsing an answer into a `Value` builds a tree of maps and strings that
//! the common path (the local store, an OTLP export without content
//! messages) only writes back out; kept as text, it is copied once and
//! written as it is. Whatever needs its parts (the output messages, a
//! redaction that found something, a cut) parses it then.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

/// A JSON value kept as compact text (no whitespace between its tokens),
/// checked to be JSON when made.
///
/// Serialising one with `serde_json` writes the text as it is; any other
/// serializer gets it the way `serde_json` hands a
/// [`RawValue`](serde_json::value::RawValue) to one.
///
/// ```
/// use anosys::record::JsonText;
///
/// let text = JsonText::compact(b"{\n  \"id\": \"c1\",\n  \"note\": \"two  spaces\"\n}")?;
/// assert_eq!(text.as_str(), r#"{"id":"c1","note":"two  spaces"}"#);
/// assert_eq!(text.to_value()?["id"], "c1");
/// assert!(JsonText::compact(b"{\"id\": ").is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct JsonText(Box<RawValue>);

impl JsonText {
    /// `json` with the whitespace between its tokens taken out; an error
    /// when it is not one JSON value.
    pub fn compact(json: &[u8]) -> Result<JsonText, serde_json::Error> {
        let compacted = compact(json);
        let text = match String::from_utf8(compacted) {
            Ok(text) => text,
            // Not UTF-8: the parser says where, as it would for the bytes.
            Err(e) => return Err(serde_json::from_slice::<Value>(e.as_bytes()).err().unwrap_or_else(not_utf8)),
        };
        RawValue::from_string(text).map(JsonText)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The text's length in bytes.
    pub fn len(&self) -> usize {
        self.as_str().len()
    }

    /// Whether the text is empty (never, for a JSON value).
    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }

    /// The value the text holds, parsed.
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.as_str())
    }
}

fn not_utf8() -> serde_json::Error {
    serde::de::Error::custom("invalid UTF-8")
}

impl PartialEq for JsonText {
    fn eq(&self, other: &JsonText) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonText").field(&self.as_str()).finish()
    }
}

impl Serialize for JsonText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// `json` without the whitespace between its tokens. The tokens are the
/// same, so the result is JSON exactly when `json` is: whitespace between
/// two bare words (`tru e`, `1 2`), never found in JSON, is kept as one
/// space rather than joining them.
fn compact(json: &[u8]) -> Vec<u8> {
    let bare = |byte: u8| !matches!(byte, b'{' | b'}' | b'[' | b']' | b',' | b':' | b'"' | b' ' | b'\n' | b'\r' | b'\t');
    let mut out = Vec::with_capacity(json.len());
    let mut i = 0;
    while let Some(&byte) = json.get(i) {
        match byte {
            b' ' | b'\n' | b'\r' | b'\t' => {
                i += 1;
                if out.last().is_some_and(|b| bare(*b)) && json.get(i).is_some_and(|b| bare(*b)) {
                    out.push(b' ');
                }
            }
            b'"' => {
                // A string, copied whole: up to the quote that ends it.
                let start = i;
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', json.get(i..).unwrap_or_default()) {
                        Some(at) if json[i + at] == b'\\' => i += at + 2,
                        Some(at) => {
                            i += at + 1;
                            break;
                        }
                        None => {
                            i = json.len();
                            break;
                        }
                    }
                }
                out.extend_from_slice(&json[start..i.min(json.len())]);
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacting_keeps_what_strings_hold_and_drops_the_rest() {
        let cases: [(&[u8], &str); 6] = [
            (b" [ 1 , 2.5e3 ,\ttrue , null ]\r\n", "[1,2.5e3,true,null]"),
            (br#"{ "a b" : "c \" d" , "e" : "\\" }"#, r#"{"a b":"c \" d","e":"\\"}"#),
            (br#""ends with a backslash \\""#, r#""ends with a backslash \\""#),
            ("{ \"é\" : \"日本 語\" }".as_bytes(), "{\"é\":\"日本 語\"}"),
            (b"\"\\u0022 \\n\"", "\"\\u0022 \\n\""),
            (b"{}", "{}"),
        ];
        for (json, expected) in cases {
            let text = JsonText::compact(json).unwrap();
            assert_eq!(text.as_str(), expected);
            let parsed: Value = serde_json::from_slice(json).unwrap();
            assert_eq!(text.to_value().unwrap(), parsed);
        }
    }

    #[test]
    fn what_is_not_json_is_refused() {
        for bad in [&b""[..], b"{", b"\"open", b"[1,]", b"{\"a\":1}x", b"\"\xff\"", b"tru e", b"1 2", b"[1\n\t2]", b"nul  l"] {
            assert!(JsonText::compact(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
