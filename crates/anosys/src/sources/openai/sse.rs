//! An incremental server-sent-events parser.
//!
//! Bytes go in as they arrive from the network, split anywhere; complete
//! events come out. Handles `\n` and `\r\n` line ends, comments and
//! keep-alives (`:` lines), multi-line `data`, `event` and `id` fields, and
//! invalid UTF-8 (replaced, and counted) without ever panicking.

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any (the Responses API names every event).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

impl SseEvent {
    /// Whether this is OpenAI's end-of-stream marker, `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data.trim() == "[DONE]"
    }
}

/// Turns a byte stream into [`SseEvent`]s.
///
/// ```
/// use anosys::sources::openai::sse::SseParser;
/// let mut parser = SseParser::new();
/// let mut events = Vec::new();
/// parser.push(b"data: {\"a\"", |e| events.push(e));
/// parser.push(b":1}\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n", |e| events.push(e));
/// assert_eq!(events[0].data, "{\"a\":1}");
/// assert!(events[1].is_done());
/// ```
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: String,
    has_data: bool,
    invalid_utf8: u64,
}

impl SseParser {
    /// An empty parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lines that held invalid UTF-8 so far (their bad bytes were replaced).
    pub fn invalid_utf8_lines(&self) -> u64 {
        self.invalid_utf8
    }

    /// Feeds `bytes` and calls `on_event` for every event they complete.
    pub fn push(&mut self, bytes: &[u8], mut on_event: impl FnMut(SseEvent)) {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(offset) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + offset;
            let mut line_end = end;
            if line_end > start && self.buf[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            let line = std::mem::take(&mut self.buf);
            self.line(&line[start..line_end], &mut on_event);
            self.buf = line;
            start = end + 1;
        }
        self.buf.drain(..start);
    }

    /// Ends the stream: an event still open (no blank line after it) is
    /// delivered rather than lost.
    pub fn finish(&mut self, mut on_event: impl FnMut(SseEvent)) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let rest = rest.strip_suffix(b"\r").unwrap_or(&rest);
            self.line(rest, &mut on_event);
        }
        self.dispatch(&mut on_event);
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent)) {
        if self.has_data {
            let mut data = std::mem::take(&mut self.data);
            if data.ends_with('\n') {
                data.pop();
            }
            on_event(SseEvent { event: self.event.take(), data, id: self.id.take() });
        }
        self.event = None;
        self.has_data = false;
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return; // comment or keep-alive
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = match std::str::from_utf8(value) {
            Ok(v) => std::borrow::Cow::Borrowed(v),
            Err(_) => {
                self.invalid_utf8 += 1;
                String::from_utf8_lossy(value)
            }
        };
        match field {
            b"data" => {
                self.data.push_str(&value);
                self.data.push('\n');
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            b"id" => self.id = Some(value.into_owned()),
            _ => {} // `retry` and unknown fields are ignored, as the spec says
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(parts: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for part in parts {
            p.push(part, |e| out.push(e));
        }
        p.finish(|e| out.push(e));
        out
    }

    #[test]
    fn fields_comments_and_line_ends() {
        let events = parse_in(&[b"event: response.created\r\ndata: {\"x\":1}\r\n\r\n: ping\n\nid: 7\ndata: a\ndata:b\n\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.as_deref(), Some("response.created"));
        assert_eq!(events[0].data, "{\"x\":1}");
        assert_eq!(events[1].data, "a\nb");
        assert_eq!(events[1].id.as_deref(), Some("7"));
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let text = b"data: {\"a\": \"\xc3\xa9\"}\r\n\r\n:keep-alive\r\n\r\nevent: e\ndata: x\n\ndata: [DONE]\n\n";
        let whole = parse_in(&[text]);
        assert_eq!(whole.len(), 3);
        for i in 0..text.len() {
            for j in i..text.len() {
                assert_eq!(parse_in(&[&text[..i], &text[i..j], &text[j..]]), whole, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn malformed_input_never_panics() {
        let events = parse_in(&[b"data\n\n:\n\ndata: \xff\xfe\n\n\n\n\r\r\ndata: tail-without-blank-line"]);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].data, "");
        assert!(events[1].data.contains('\u{fffd}'));
        assert_eq!(events[2].data, "tail-without-blank-line");
    }
}
