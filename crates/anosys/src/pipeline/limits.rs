//! Size caps applied on the background thread before export.

use serde_json::Value;

use crate::record::{approx_value_size, JsonText, Record};

/// Marker appended to anything cut: `…[truncated by anosys: kept K of N bytes]`.
pub fn marker(kept: usize, total: usize) -> String {
    format!("…[truncated by anosys: kept {kept} of {total} bytes]")
}

fn cap_string(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let total = s.len();
    cut_text(s, max, total);
    true
}

/// Cuts `s` to at most `max` bytes on a character boundary and appends
/// the marker for a whole text of `total` bytes.
fn cut_text(s: &mut String, max: usize, total: usize) {
    let keep = s.floor_char_boundary(max);
    s.truncate(keep);
    s.push_str(&marker(keep, total));
    // The text stays with the record until it is delivered: it should not
    // hold on to the room the whole text took.
    s.shrink_to_fit();
}

/// The start of a value's JSON text: the first bytes (up to `keep`), and
/// how long the whole text is. Serialising a big value this way holds no
/// more than `keep` bytes of it.
struct Prefix {
    bytes: Vec<u8>,
    keep: usize,
    total: usize,
}

impl std::io::Write for Prefix {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.total += buf.len();
        let room = self.keep.saturating_sub(self.bytes.len());
        self.bytes.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A list or map's JSON text cut to about `max` bytes (on a character
/// boundary) with the marker; `None` if the whole text fits.
fn cut_json(value: &Value, max: usize) -> Option<String> {
    // A character is at most 4 bytes: 4 more bytes show where the last
    // one that fits ends.
    let mut prefix = Prefix { bytes: Vec::with_capacity(max.saturating_add(4).min(1 << 20)), keep: max.saturating_add(4), total: 0 };
    serde_json::to_writer(&mut prefix, value).ok()?;
    if prefix.total <= max {
        return None;
    }
    // The kept bytes may end inside a character: the text is what comes
    // before it (at least `max` bytes, as a character is at most 4).
    let mut bytes = prefix.bytes;
    if let Err(e) = std::str::from_utf8(&bytes) {
        bytes.truncate(e.valid_up_to());
    }
    let mut text = String::from_utf8(bytes).ok()?;
    cut_text(&mut text, max, prefix.total);
    Some(text)
}

/// Caps one value at about `max` bytes of JSON. Strings are cut; lists and
/// maps that are too big become their JSON text, cut. Returns whether
/// anything was cut.
pub fn cap_value(value: &mut Value, max: usize) -> bool {
    match value {
        Value::String(s) => cap_string(s, max),
        Value::Array(_) | Value::Object(_) if approx_value_size(value) > max => match cut_json(value, max) {
            Some(text) => {
                *value = Value::String(text);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Caps every content field and attribute of `record`; returns how many
/// fields were cut.
pub fn cap_record(record: &mut Record, max: usize) -> usize {
    let texts = [&record.request_text, &record.response_text];
    let raw_size = record.raw.as_ref().map_or(0, approx_value_size)
        + texts.iter().map(|text| text.as_ref().map_or(0, JsonText::len)).sum::<usize>();
    if (record.input_in_raw.is_some() || record.output_in_raw.is_some() || texts.iter().any(|text| text.is_some()))
        && raw_size > max
    {
        // `raw` is about to become cut text: the content kept in it is
        // written out first, each part to be cut on its own like any other
        // field (and a request or response kept as text parsed into it, to
        // be cut with the rest).
        record.expand_content();
    }
    let mut cut = 0;
    for v in [&mut record.input, &mut record.output, &mut record.raw, &mut record.user_context]
        .into_iter()
        .flatten()
    {
        cut += cap_value(v, max) as usize;
    }
    for v in record.attributes.values_mut() {
        cut += cap_value(v, max) as usize;
    }
    if let Some(e) = &mut record.error {
        cut += cap_string(&mut e.message, max) as usize;
        if let Some(stack) = &mut e.stack {
            cut += cap_string(stack, max) as usize;
        }
    }
    cut += cap_string(&mut record.name, max.min(1024)) as usize;
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cuts_on_char_boundaries_with_marker() {
        let mut v = Value::String("é".repeat(1000));
        assert!(cap_value(&mut v, 301));
        let s = v.as_str().unwrap();
        assert!(s.starts_with("éé"));
        assert!(s.ends_with("kept 300 of 2000 bytes]"), "{s}");
        let mut big = json!({"messages": ["x".repeat(5000)]});
        assert!(cap_value(&mut big, 500));
        assert!(big.as_str().unwrap().contains("truncated by anosys"));
        let mut small = json!({"a": 1});
        assert!(!cap_value(&mut small, 500));
        assert_eq!(small, json!({"a": 1}));
    }

    #[test]
    fn a_list_or_map_is_cut_as_its_whole_text_would_be_without_holding_it() {
        // The reference: the whole text, then cut.
        let whole = |v: &Value, max: usize| {
            let mut text = v.to_string();
            cap_string(&mut text, max).then_some(text)
        };
        let values = [
            json!({"pad": "x".repeat(100_000), "seq": 7}),
            json!(["é".repeat(3000), "€".repeat(2000), "𝄞".repeat(1000), {"k": [1, 2.5, true, null]}]),
            json!({"text": "a\"b\\c\n\u{1}".repeat(500)}),
            json!([1, 2, 3]),
        ];
        for v in &values {
            for max in [0, 1, 5, 17, 99, 100, 101, 1000, 4097, 9000, 150_000] {
                let cut = cut_json(v, max);
                assert_eq!(cut, whole(v, max), "max {max}");
                if let Some(text) = cut {
                    // No room kept for the text that was cut away.
                    assert!(text.capacity() <= max + 80, "{} for max {max}", text.capacity());
                }
            }
        }
        let mut big = json!({"pad": "x".repeat(100_000)});
        assert!(cap_value(&mut big, 65_536));
        assert!(big.as_str().unwrap().ends_with("kept 65536 of 100010 bytes]"), "{}", &big.as_str().unwrap()[65_536..]);
    }

    #[test]
    fn a_cut_string_gives_back_the_room_it_took() {
        let mut v = Value::String("x".repeat(100_000));
        assert!(cap_value(&mut v, 1000));
        let Value::String(s) = &v else { unreachable!() };
        assert!(s.capacity() < 1100, "{}", s.capacity());
    }

    #[test]
    fn content_kept_in_a_raw_too_big_is_written_out_before_raw_is_cut() {
        use crate::sources::openai::OpenAiCall;
        let history: Vec<Value> =
            (0..40).map(|i| json!({"role": "user", "content": format!("message {i} ").repeat(20)})).collect();
        let request = json!({"model": "gpt-4o", "messages": history});
        let sent = serde_json::to_vec(&request).unwrap();
        // The request parsed, and kept as the text it was sent as.
        for as_text in [false, true] {
            let url = "https://api.openai.com/v1/chat/completions";
            let call = match as_text {
                false => OpenAiCall::start(url, request.clone(), &Default::default()),
                true => OpenAiCall::start(url, &sent, &Default::default()),
            };
            let mut r = call.finish(200, json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Short."}}]}));
            assert!(r.input_in_raw.is_some() && r.output_in_raw.is_some());
            assert_eq!(r.request_text.is_some(), as_text);
            let cut = cap_record(&mut r, 2048);
            // `raw` became cut text; what was read from it is in the
            // fields, each cut on its own, and the reply (small) is whole.
            assert!(r.request_text.is_none());
            assert!(r.raw.as_ref().unwrap().as_str().unwrap().contains("truncated by anosys"));
            assert_eq!((r.input_in_raw, r.output_in_raw), (None, None));
            assert!(r.input.as_ref().unwrap().as_str().unwrap().starts_with("[{\"content\":\"message 0 "));
            assert!(r.attribute("gen_ai.input.messages").unwrap().as_str().unwrap().contains("truncated by anosys"));
            assert_eq!(r.output, Some(json!("Short.")));
            assert_eq!(r.attribute("gen_ai.output.messages").unwrap()[0]["parts"][0]["content"], "Short.");
            assert_eq!(cut, 3, "raw, input and the input messages");
        }
    }

    #[test]
    fn a_response_kept_as_text_is_cut_with_raw() {
        use crate::sources::openai::OpenAiCall;
        let call = OpenAiCall::start(
            "https://api.openai.com/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}),
            &Default::default(),
        );
        let long = "word ".repeat(2_000);
        let body = serde_json::to_vec_pretty(&json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": long}}]})).unwrap();
        let mut r = call.finish(200, &body);
        assert!(r.response_text.is_some() && r.raw.as_ref().unwrap().get("response").is_none());
        let cut = cap_record(&mut r, 2048);
        // The text was parsed into `raw` and cut with it; the reply read
        // from it first is cut on its own.
        assert!(r.response_text.is_none());
        let raw = r.raw.as_ref().unwrap().as_str().unwrap();
        assert!(raw.contains("truncated by anosys") && raw.contains("\"response\""), "{raw}");
        assert!(r.output.as_ref().unwrap().as_str().unwrap().contains("truncated by anosys"));
        assert_eq!(cut, 3, "raw, output and the output messages");
        // A small one stays text.
        let call = OpenAiCall::start("https://api.openai.com/v1/chat/completions", json!({"messages": []}), &Default::default());
        let mut small = call.finish(200, br#"{"choices": []}"#);
        assert_eq!(cap_record(&mut small, 2048), 0);
        assert!(small.response_text.is_some());
    }
}
