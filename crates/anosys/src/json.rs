//! JSON written straight into a buffer, byte for byte as `serde_json`
//! writes it, either as JSON or as the inside of a JSON string literal (an
//! AnoSys text column holding JSON: its quotes and backslashes escaped
//! again). The AnoSys encoder writes its bodies with it, and a record's
//! JSON form its arrays and objects ([`Record::write_json`]).
//!
//! Most of what records hold is strings, most of them with nothing to escape.
//! `serde_json` looks at each byte in turn; this looks at eight at a time
//! and copies each run with nothing to escape in one go, and writes a value
//! kept in a text column in one pass rather than through a formatter.
//!
//! Also, for JSON read: [`lone_surrogates_replaced`], the escapes of lone
//! surrogates that serde_json refuses written as U+FFFD.

use serde_json::Value;

#[cfg(doc)]
use crate::Record;

/// One in each byte.
const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of each byte.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is below `0x20`, `"` or `\\`
/// (the bytes JSON escapes), and perhaps of bytes after the first such one
/// (a borrow between bytes starts only at a byte that matches): its lowest
/// set bit, if any, is exactly the first byte to escape.
#[inline]
fn escapes_in(word: u64) -> u64 {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | quote | backslash) & HIGHS
}

#[cfg(test)]
fn is_escaped(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Copies the bytes at the start of `bytes` that need no escape to the
/// end of `buf`, and says how many they were.
///
/// A word of eight is read, tested and written as one: a run with nothing
/// to escape costs a load and a store a word, and a short string no call
/// to `memcpy`. A word holding a byte to escape is written whole too, and
/// `buf` cut back to its clean part.
#[inline]
fn copy_clean_prefix(buf: &mut Vec<u8>, bytes: &[u8]) -> usize {
    let mut clean = 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        buf.extend_from_slice(&word);
        let found = escapes_in(u64::from_le_bytes(word));
        if found != 0 {
            let kept = (found.trailing_zeros() / 8) as usize;
            buf.truncate(buf.len() - 8 + kept);
            return clean + kept;
        }
        clean += 8;
    }
    let rest = chunks.remainder();
    if rest.is_empty() {
        return clean;
    }
    let word = if bytes.len() >= 8 {
        // The last eight bytes, those already copied shifted out and the
        // room filled with a byte that needs no escape.
        let mut last = [0u8; 8];
        last.copy_from_slice(&bytes[bytes.len() - 8..]);
        let gone = 8 * (8 - rest.len());
        (u64::from_le_bytes(last) >> gone) | ((ONES * u64::from(b'a')) << (64 - gone))
    } else {
        // A short string: put together in a register (a copy to memory and
        // a load of the whole word would stall on the partial writes).
        let mut word = ONES * u64::from(b'a');
        for (i, byte) in rest.iter().enumerate() {
            let shift = 8 * i;
            word = (word & !(0xff << shift)) | (u64::from(*byte) << shift);
        }
        word
    };
    buf.extend_from_slice(&word.to_le_bytes());
    let found = escapes_in(word);
    let kept = if found != 0 { (found.trailing_zeros() / 8) as usize } else { rest.len() };
    buf.truncate(buf.len() - 8 + kept);
    clean + kept
}

/// Appends the escape of one byte that needs it; `twice`: that escape's
/// own backslashes and quotes escaped again.
fn push_escape(buf: &mut Vec<u8>, byte: u8, twice: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let unicode;
    let once: &[u8] = match byte {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        0x08 => b"\\b",
        0x09 => b"\\t",
        0x0a => b"\\n",
        0x0c => b"\\f",
        0x0d => b"\\r",
        _ => {
            unicode = [b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]];
            &unicode
        }
    };
    if !twice {
        buf.extend_from_slice(once);
        return;
    }
    for b in once {
        if matches!(b, b'"' | b'\\') {
            buf.push(b'\\');
        }
        buf.push(*b);
    }
}

/// Appends the inside of `s`'s string literal.
fn escape(buf: &mut Vec<u8>, s: &str, twice: bool) {
    let mut bytes = s.as_bytes();
    loop {
        let clean = copy_clean_prefix(buf, bytes);
        let Some((byte, rest)) = bytes.get(clean..).and_then(<[u8]>::split_first) else {
            return;
        };
        push_escape(buf, *byte, twice);
        bytes = rest;
    }
}

fn quote(buf: &mut Vec<u8>, twice: bool) {
    if twice {
        buf.extend_from_slice(b"\\\"");
    } else {
        buf.push(b'"');
    }
}

/// Appends `s` as a JSON string literal; `twice`: as that literal would
/// be written inside another string.
pub(crate) fn string(buf: &mut Vec<u8>, s: &str, twice: bool) {
    // Room for the quotes and the whole words written past the end.
    buf.reserve(s.len() + 12);
    quote(buf, twice);
    escape(buf, s, twice);
    quote(buf, twice);
}

/// Appends `value` serialised; `twice`: as its JSON text would be written
/// inside a string.
pub(crate) fn value(buf: &mut Vec<u8>, value: &Value, twice: bool) {
    match value {
        Value::Null => buf.extend_from_slice(b"null"),
        Value::Bool(true) => buf.extend_from_slice(b"true"),
        Value::Bool(false) => buf.extend_from_slice(b"false"),
        // Digits, signs, `.`, `e`: nothing to escape. Writing to a `Vec`
        // cannot fail.
        Value::Number(n) => {
            let _ = serde_json::to_writer(&mut *buf, n);
        }
        Value::String(s) => string(buf, s, twice),
        Value::Array(items) => {
            buf.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                self::value(buf, item, twice);
            }
            buf.push(b']');
        }
        Value::Object(map) => object(buf, map.iter().map(|(k, v)| (k.as_str(), v)), twice),
    }
}

/// Appends `text`, JSON text already valid, as it is; `twice`: as it
/// would be written inside a string.
pub(crate) fn text(buf: &mut Vec<u8>, text: &str, twice: bool) {
    if twice {
        // Valid JSON holds no control character (its strings escape them):
        // only quotes and backslashes get a backslash. In JSON text they
        // are dense (two to each key), so they are found with `memchr2`
        // rather than by words (`escape`, for strings, where they are rare).
        let bytes = text.as_bytes();
        buf.reserve(bytes.len() + bytes.len() / 4 + 8);
        let mut clean = 0;
        for at in memchr::memchr2_iter(b'"', b'\\', bytes) {
            buf.extend_from_slice(&bytes[clean..at]);
            buf.push(b'\\');
            clean = at;
        }
        buf.extend_from_slice(&bytes[clean..]);
    } else {
        buf.extend_from_slice(text.as_bytes());
    }
}

/// Appends an object of `entries`, in their order.
pub(crate) fn object<'a>(buf: &mut Vec<u8>, entries: impl Iterator<Item = (&'a str, &'a Value)>, twice: bool) {
    buf.push(b'{');
    for (i, (key, item)) in entries.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        string(buf, key, twice);
        buf.push(b':');
        value(buf, item, twice);
    }
    buf.push(b'}');
}

/// `bytes` with every `\uXXXX` escape of a lone surrogate written
/// `\ufffd`; `None` when there is none.
pub(crate) fn lone_surrogates_replaced(bytes: &[u8]) -> Option<Vec<u8>> {
    let unit = |at: usize| -> Option<u16> {
        let hex = bytes.get(at..at + 6)?;
        let digits = hex.strip_prefix(b"\\u")?;
        if !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let mut out: Option<Vec<u8>> = None;
    let (mut at, mut copied) = (0, 0);
    while let Some(found) = bytes.get(at..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        at += found;
        match unit(at) {
            Some(0xD800..=0xDBFF) if matches!(unit(at + 6), Some(0xDC00..=0xDFFF)) => at += 12,
            Some(0xD800..=0xDFFF) => {
                let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                out.extend_from_slice(&bytes[copied..at]);
                out.extend_from_slice(b"\\ufffd");
                at += 6;
                copied = at;
            }
            Some(_) => at += 6,
            // Any other escape: two bytes (an escaped backslash is not the
            // start of another escape).
            None => at += 2,
        }
    }
    let mut out = out?;
    out.extend_from_slice(&bytes[copied..]);
    Some(out)
}
#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `serde_json` writes for `v`, and that text as a string's inside.
    fn expected(v: &Value) -> (String, String) {
        let once = serde_json::to_string(v).unwrap();
        let as_string = serde_json::to_string(&once).unwrap();
        (once, as_string[1..as_string.len() - 1].to_owned())
    }

    fn written(v: &Value, twice: bool) -> String {
        let mut buf = Vec::new();
        value(&mut buf, v, twice);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn every_byte_is_escaped_as_serde_json_escapes_it() {
        // Each byte below 0x80 alone, at every offset within a word, and
        // with multibyte text around it.
        for byte in 0u8..0x80 {
            for offset in 0..17 {
                let s = format!("{}{}é{}", "a".repeat(offset), byte as char, "b".repeat(17 - offset));
                let v = Value::String(s);
                let (once, twice) = expected(&v);
                assert_eq!(written(&v, false), once, "byte {byte:#x} at {offset}");
                assert_eq!(written(&v, true), twice, "byte {byte:#x} at {offset}, twice");
            }
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let values = [
            json!(null),
            json!(true),
            json!([false, 0, -1, 1.5, 1e300, u64::MAX, i64::MIN, 0.1]),
            json!({"a\"b": {"c\\d": ["\u{1}\n\t\r\u{8}\u{c}\u{1f}\u{7f}", "日本語 \"quoted\" \\ back"]}, "": []}),
            json!({}),
            json!("a long run of plain text with nothing in it to escape at all, then one \" quote"),
            json!([[[{"deep": [1, {"x": "y"}]}]]]),
        ];
        for v in values {
            let (once, twice) = expected(&v);
            assert_eq!(written(&v, false), once);
            assert_eq!(written(&v, true), twice);
            // The same text given as JSON text.
            for (twice, expected) in [(false, &once), (true, &twice)] {
                let mut buf = Vec::new();
                text(&mut buf, &once, twice);
                assert_eq!(String::from_utf8(buf).unwrap(), *expected);
            }
        }
    }

    #[test]
    fn the_word_test_finds_exactly_the_first_byte_json_escapes() {
        // Every byte in every position of a word of otherwise plain bytes,
        // and next to bytes at 0x80 and above (a borrow must not spill).
        for fill in [b'a', 0x80, 0xff, 0x20, b'#', b']'] {
            for byte in 0..=255u8 {
                for at in 0..8 {
                    let mut word = [fill; 8];
                    word[at] = byte;
                    let first = word.iter().position(|b| is_escaped(*b)).map_or(8, |i| i as u32);
                    let found = escapes_in(u64::from_le_bytes(word));
                    let got = if found == 0 { 8 } else { found.trailing_zeros() / 8 };
                    assert_eq!(got, first, "fill {fill:#x} byte {byte:#x} at {at}");
                }
            }
        }
        // Two chosen bytes anywhere in a word: the first is found.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                for (i, j) in [(0, 1), (0, 7), (2, 5), (6, 7), (3, 4)] {
                    let mut word = [b'x'; 8];
                    word[i] = a;
                    word[j] = b;
                    let first = word.iter().position(|b| is_escaped(*b)).map_or(8, |i| i as u32);
                    let found = escapes_in(u64::from_le_bytes(word));
                    assert_eq!(
                        if found == 0 { 8 } else { found.trailing_zeros() / 8 },
                        first,
                        "{a:#x} at {i}, {b:#x} at {j}"
                    );
                }
            }
        }
    }
}
