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

    /// `json` compacted, for JSON that `serde_json` has just read whole
    /// without an error: it is not checked again. `None` when it is not
    /// UTF-8 (`serde_json` does not look at the bytes of a string it
    /// skips).
    ///
    /// Only for bytes read by a type whose reading never swallows an error
    /// (every serde derive; the OpenAI views, which skip what they do not
    /// name with [`IgnoredAny`](serde::de::IgnoredAny) or read it whole):
    /// such a reading succeeds only on one well-formed JSON value, checked
    /// at least as strictly as [`compact`](Self::compact) checks it.
    pub(crate) fn compact_read(json: &[u8]) -> Option<JsonText> {
        let text = String::from_utf8(compact(json)).ok()?;
        // SAFETY: `json` is one well-formed JSON value (read whole by
        // serde_json, no error swallowed, UTF-8 checked just above), and
        // compacting it removed only whitespace between its tokens and
        // wrote lone surrogates' escapes as `\ufffd`, escapes as long and
        // as valid (see `compact`), so `text` is one well-formed JSON value with no
        // whitespace around it: `from_string_unchecked`'s contract. Debug
        // builds check it again (serde_json's own `debug_assert!`).
        Some(JsonText(unsafe { RawValue::from_string_unchecked(text) }))
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
///
/// What lies between two runs of whitespace is copied in one piece (a
/// compact body in one copy); a run of whitespace (a pretty-printed
/// answer's indentation) is skipped whole, a string's body by `memchr`;
/// each byte's kind is looked up in a table rather than matched (a jump
/// table the branch predictor misses).
///
/// A `\u` escape of a lone surrogate (half of a UTF-16 pair without the
/// other, which JavaScript's `JSON.stringify` and Python's `json.dumps`
/// write for a string holding one) is written `\ufffd`: the text stays
/// JSON and parses (serde_json refuses such an escape when it builds a
/// string, and the record's content would be lost for one character).
fn compact(json: &[u8]) -> Vec<u8> {
    let mut surrogates = false;
    let out = compact_tokens(json, &mut surrogates);
    match surrogates {
        true => crate::json::lone_surrogates_replaced(&out).unwrap_or(out),
        false => out,
    }
}

/// [`compact`] but for lone surrogates; `surrogates` is set when a string
/// holds a `\u` escape of a surrogate (lone or in a pair).
fn compact_tokens(json: &[u8], surrogates: &mut bool) -> Vec<u8> {
    let kind = |i: usize| json.get(i).map(|b| KIND[usize::from(*b)]);
    let mut out = Vec::with_capacity(json.len());
    // `json[copied..i]` is kept, not yet copied.
    let (mut copied, mut i) = (0, 0);
    while let Some(k) = kind(i) {
        match k {
            SPACE => {
                out.extend_from_slice(&json[copied..i]);
                i += 1;
                // Indentation: spaces eight at a time, then byte by byte.
                while let Some(word) = json.get(i..).and_then(<[u8]>::first_chunk::<8>) {
                    let not_spaces = u64::from_le_bytes(*word) ^ u64::from_le_bytes([b' '; 8]);
                    i += not_spaces.trailing_zeros() as usize / 8;
                    if not_spaces != 0 {
                        break;
                    }
                }
                while kind(i) == Some(SPACE) {
                    i += 1;
                }
                if out.last().is_some_and(|b| KIND[usize::from(*b)] == BARE) && kind(i) == Some(BARE) {
                    out.push(b' ');
                }
                copied = i;
            }
            QUOTE => i = string_end(json, i + 1, surrogates),
            _ => i += 1,
        }
    }
    out.extend_from_slice(&json[copied..]);
    out
}

/// A byte's kind for [`compact`]: whitespace, part of a bare word (a
/// number, `true`, `false`, `null`, or what is not JSON), punctuation, or
/// the quote that opens a string.
const SPACE: u8 = 0;
const BARE: u8 = 1;
const PUNCTUATION: u8 = 2;
const QUOTE: u8 = 3;
static KIND: [u8; 256] = {
    let mut kind = [BARE; 256];
    let mut i = 0;
    while i < 6 {
        kind[b"{}[],:"[i] as usize] = PUNCTUATION;
        i += 1;
    }
    kind[b'"' as usize] = QUOTE;
    kind[b' ' as usize] = SPACE;
    kind[b'\n' as usize] = SPACE;
    kind[b'\r' as usize] = SPACE;
    kind[b'\t' as usize] = SPACE;
    kind
};

/// Where the string whose body starts at `from` ends: just past its closing
/// quote, or the end of `json` for a string left open. Sets `surrogates`
/// when the string holds a `\u` escape of a surrogate (`\uD800` to
/// `\uDFFF`).
fn string_end(json: &[u8], mut from: usize, surrogates: &mut bool) -> usize {
    loop {
        match memchr::memchr2(b'"', b'\\', json.get(from..).unwrap_or_default()) {
            Some(at) if json[from + at] == b'\\' => {
                from += at;
                if let Some([b'u', b'd' | b'D', b'8' | b'9' | b'a'..=b'f' | b'A'..=b'F']) = json.get(from + 1..from + 4) {
                    *surrogates = true;
                }
                from += 2;
            }
            Some(at) => return from + at + 1,
            None => return json.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacting_keeps_what_strings_hold_and_drops_the_rest() {
        let cases: [(&[u8], &str); 7] = [
            (b" [ 1 , 2.5e3 ,\ttrue , null ]\r\n", "[1,2.5e3,true,null]"),
            (br#"{ "a b" : "c \" d" , "e" : "\\" }"#, r#"{"a b":"c \" d","e":"\\"}"#),
            (br#""ends with a backslash \\""#, r#""ends with a backslash \\""#),
            ("{ \"é\" : \"日本 語\" }".as_bytes(), "{\"é\":\"日本 語\"}"),
            (b"\"\\u0022 \\n\"", "\"\\u0022 \\n\""),
            (b"{}", "{}"),
            (b"{\n        \"a\" :  \t         1 ,\n\t  \t        \"b\":[ 1 ,                 2 ]}", r#"{"a":1,"b":[1,2]}"#),
        ];
        for (json, expected) in cases {
            let text = JsonText::compact(json).unwrap();
            assert_eq!(text.as_str(), expected);
            let parsed: Value = serde_json::from_slice(json).unwrap();
            assert_eq!(text.to_value().unwrap(), parsed);
        }
    }

    #[test]
    fn a_lone_surrogate_is_kept_as_the_replacement_character() {
        let sent = br#"{ "messages": [ { "content": "lone \ud800 high, \uDC01 low, a pair \ud83c\udf89, \\ud800 no escape" } ] }"#;
        for text in [JsonText::compact(sent).unwrap(), JsonText::compact_read(sent).unwrap()] {
            assert_eq!(text.as_str(), r#"{"messages":[{"content":"lone \ufffd high, \ufffd low, a pair \ud83c\udf89, \\ud800 no escape"}]}"#);
            assert_eq!(text.to_value().unwrap()["messages"][0]["content"], "lone \u{fffd} high, \u{fffd} low, a pair 🎉, \\ud800 no escape");
        }
        // Only surrogates: the text is as it was.
        assert_eq!(JsonText::compact(br#"["\u00e9 \ud83c\udf89"]"#).unwrap().as_str(), r#"["\u00e9 \ud83c\udf89"]"#);
    }

    /// The byte-by-byte compaction this module first had, as a reference.
    fn compact_by_byte(json: &[u8]) -> Vec<u8> {
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

    use proptest::strategy::Strategy;

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(4000))]
        /// Runs of whitespace skipped whole give what skipping byte by byte
        /// gave, on any bytes: strings left open or ending in a backslash,
        /// whitespace runs between bare words, bytes that are not ASCII.
        #[test]
        fn compacting_by_runs_is_compacting_by_byte(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    3 => proptest::sample::select(&b" \n\r\t\"\\{}[],:a1e"[..]).prop_map(|b| vec![b]),
                    1 => proptest::num::u8::ANY.prop_map(|b| vec![b]),
                    // Indentation, skipped eight spaces at a time.
                    1 => (1..24usize).prop_map(|n| vec![b' '; n]),
                ],
                0..120,
            )
        ) {
            let json = pieces.concat();
            proptest::prop_assert_eq!(compact(&json), compact_by_byte(&json));
        }
    }

    #[test]
    fn what_is_not_json_is_refused() {
        for bad in [&b""[..], b"{", b"\"open", b"[1,]", b"{\"a\":1}x", b"\"\xff\"", b"tru e", b"1 2", b"[1\n\t2]", b"nul  l"] {
            assert!(JsonText::compact(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
