//! Finding secrets in one text: a literal prefilter (Aho-Corasick over
//! anchors such as `sk-`, `AKIA`, `eyJ`, `-----BEGIN`, `://`, `password`)
//! and hand-written checks at each anchor; one pass over the digits for
//! cards and IPv4 addresses; regular expressions only for the opt-in phone
//! and IPv6 forms. Every check costs time linear in the text.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

use super::config::{Kind, KindSet};
use super::keys::{self, KeyClass};

/// What a found span is replaced by and counted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    /// A built-in kind.
    Kind(Kind),
    /// The custom pattern of this index.
    Custom(usize),
    /// A value that could not be scanned within the limits.
    Unscanned,
}

impl Label {
    /// Lower sorts first among spans starting and ending alike: a specific
    /// kind wins over a bearer token or a secret-named value.
    fn rank(self) -> u8 {
        match self {
            Label::Kind(Kind::SecretKey) => 2,
            Label::Kind(Kind::BearerToken) => 1,
            _ => 0,
        }
    }
}

/// A span of text to replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) label: Label,
}

#[derive(Debug, Clone, Copy)]
enum Anchor {
    Sk,
    GoogleKey,
    AwsKey,
    Github,
    GithubPat,
    Slack,
    Bearer,
    Jwt,
    PrivateKey,
    Url,
    Email,
}

/// The built-in detectors for one set of kinds.
#[derive(Debug, Clone)]
pub(crate) struct Detectors {
    kinds: KindSet,
    anchors: Option<AhoCorasick>,
    anchor_of: Vec<Anchor>,
    digits: bool,
    phone: Option<Regex>,
    ipv6: Option<Regex>,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Whether `at` follows an escape such as `\n` or `\t` (JSON or a log
/// line written escaped), which ends a word even though its last byte is a
/// letter.
fn after_escape(b: &[u8], at: usize) -> bool {
    at >= 2 && b[at - 2] == b'\\' && matches!(b[at - 1], b'n' | b't' | b'r' | b'b' | b'f')
}

/// Whether a token may start at `at`: the byte before is not part of a word.
fn left_ok(b: &[u8], at: usize) -> bool {
    at == 0 || !is_word(b[at - 1]) || after_escape(b, at)
}

/// The end of the run of bytes matching `pred` from `from`, at most `cap` long.
fn run(b: &[u8], from: usize, cap: usize, pred: impl Fn(u8) -> bool) -> usize {
    let limit = b.len().min(from.saturating_add(cap));
    let mut i = from;
    while i < limit && pred(b[i]) {
        i += 1;
    }
    i
}

fn has_digit_or_upper(body: &[u8]) -> bool {
    body.iter().any(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

/// Random-looking: a digit or capital, and a long alphanumeric stretch or
/// a long body (kebab-case words are neither).
fn random_looking(body: &[u8]) -> bool {
    let longest = body.split(|c| !c.is_ascii_alphanumeric()).map(<[u8]>::len).max().unwrap_or(0);
    has_digit_or_upper(body) && (longest >= 16 || body.len() >= 40)
}

impl Detectors {
    pub(crate) fn new(kinds: KindSet) -> Detectors {
        let mut patterns: Vec<&'static str> = Vec::new();
        let mut anchor_of = Vec::new();
        let mut add = |on: bool, anchor: Anchor, words: &[&'static str]| {
            if on {
                for w in words {
                    patterns.push(w);
                    anchor_of.push(anchor);
                }
            }
        };
        add(kinds.has(Kind::OpenaiKey) || kinds.has(Kind::AnthropicKey), Anchor::Sk, &["sk-"]);
        add(kinds.has(Kind::GoogleApiKey), Anchor::GoogleKey, &["AIza"]);
        add(kinds.has(Kind::AwsAccessKey), Anchor::AwsKey, &["AKIA", "ASIA"]);
        add(kinds.has(Kind::GithubToken), Anchor::Github, &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]);
        add(kinds.has(Kind::GithubToken), Anchor::GithubPat, &["github_pat_"]);
        add(kinds.has(Kind::SlackToken), Anchor::Slack, &["xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-"]);
        add(kinds.has(Kind::BearerToken), Anchor::Bearer, &["Bearer", "bearer", "BEARER"]);
        add(kinds.has(Kind::Jwt), Anchor::Jwt, &["eyJ"]);
        add(kinds.has(Kind::PrivateKey), Anchor::PrivateKey, &["-----BEGIN "]);
        add(kinds.has(Kind::UrlPassword), Anchor::Url, &["://"]);
        add(kinds.has(Kind::Email), Anchor::Email, &["@"]);
        let anchors = (!patterns.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .expect("the built-in anchors are valid")
        });
        let phone = kinds.has(Kind::Phone).then(|| {
            Regex::new(concat!(
                r"\+[1-9][0-9]{0,2}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){1,4}",
                r"|\([0-9]{3}\) ?[0-9]{3}[ .-][0-9]{4}",
                r"|[0-9]{3}[.-][0-9]{3}[.-][0-9]{4}",
            ))
            .expect("the phone pattern is valid")
        });
        let ipv6 = kinds.has(Kind::Ip).then(|| {
            Regex::new(r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f.]*(?:%[0-9a-z]+)?").expect("the IPv6 pattern is valid")
        });
        Detectors { kinds, anchors, anchor_of, digits: kinds.has(Kind::CreditCard) || kinds.has(Kind::Ip), phone, ipv6 }
    }

    /// Texts shorter than this hold no built-in secret (`pwd=abc`, `::1`).
    pub(crate) fn min_len(&self) -> usize {
        if self.kinds.has(Kind::Ip) {
            3
        } else {
            7
        }
    }

    /// Cheap check: could anything be found in `text`? (An anchor occurs, or
    /// a digit when cards, phones or addresses are looked for.)
    pub(crate) fn might_match(&self, text: &str) -> bool {
        let b = text.as_bytes();
        self.anchors.as_ref().is_some_and(|ac| ac.is_match(text))
            || ((self.digits || self.phone.is_some()) && next_digit(b, 0).is_some())
            || (self.ipv6.is_some() && text.contains(':'))
            || (self.kinds.has(Kind::SecretKey)
                && memchr::memchr2_iter(b':', b'=', b).any(|sep| key_before(b, sep).is_some()))
    }

    /// Adds the spans of every built-in secret in `text` to `hits`.
    pub(crate) fn find(&self, text: &str, hits: &mut Vec<Hit>) {
        let b = text.as_bytes();
        if let Some(ac) = &self.anchors {
            let mut covered = 0;
            for m in ac.find_iter(text) {
                let at = m.start();
                if at < covered {
                    continue;
                }
                let found = match self.anchor_of[m.pattern().as_usize()] {
                    Anchor::Sk => self.sk(b, at),
                    Anchor::GoogleKey => google_key(b, at),
                    Anchor::AwsKey => aws_key(b, at),
                    Anchor::Github => github(b, at),
                    Anchor::GithubPat => github_pat(b, at),
                    Anchor::Slack => slack(b, at),
                    Anchor::Bearer => {
                        // The token may be a JWT or a key, more specific.
                        if let Some((start, end)) = bearer(b, at) {
                            hits.push(Hit { start, end, label: Label::Kind(Kind::BearerToken) });
                        }
                        continue;
                    }
                    Anchor::Jwt => jwt(b, at),
                    Anchor::PrivateKey => private_key(text, at),
                    Anchor::Url => url_password(b, at),
                    Anchor::Email => email(b, at),
                };
                if let Some((start, end, kind)) = found {
                    covered = end;
                    hits.push(Hit { start, end, label: Label::Kind(kind) });
                }
            }
        }
        if self.kinds.has(Kind::SecretKey) {
            for sep in memchr::memchr2_iter(b':', b'=', b) {
                if let Some((start, end, kind)) = self.key_value(b, sep) {
                    hits.push(Hit { start, end, label: Label::Kind(kind) });
                }
            }
        }
        if self.digits && b.len() >= 7 {
            self.digit_runs(b, hits);
        }
        if let Some(phone) = &self.phone {
            for m in phone.find_iter(text) {
                let (s, e) = (m.start(), m.end());
                let digits = b[s..e].iter().filter(|c| c.is_ascii_digit()).count();
                let before_ok =
                    s == 0 || !(is_word(b[s - 1]) || matches!(b[s - 1], b'.' | b'+' | b'-')) || after_escape(b, s);
                let after_ok =
                    e == b.len() || !(is_word(b[e]) || (b[e] == b'.' && b.get(e + 1).is_some_and(u8::is_ascii_digit)));
                if (7..=15).contains(&digits) && before_ok && after_ok {
                    hits.push(Hit { start: s, end: e, label: Label::Kind(Kind::Phone) });
                }
            }
        }
        if let Some(ipv6) = &self.ipv6
            && text.contains(':')
        {
            for m in ipv6.find_iter(text) {
                let s = m.start();
                let mut e = m.end();
                while e > s && b[e - 1] == b'.' {
                    e -= 1;
                }
                let before_ok = s == 0 || !(is_word(b[s - 1]) || matches!(b[s - 1], b':' | b'.')) || after_escape(b, s);
                let after_ok = e == b.len() || !(is_word(b[e]) || b[e] == b':');
                let address = text[s..e].split('%').next().unwrap_or_default();
                let has_hex = address.bytes().any(|c| c.is_ascii_hexdigit());
                if before_ok && after_ok && has_hex && address.parse::<std::net::Ipv6Addr>().is_ok() {
                    hits.push(Hit { start: s, end: e, label: Label::Kind(Kind::Ip) });
                }
            }
        }
    }

    fn sk(&self, b: &[u8], at: usize) -> Option<(usize, usize, Kind)> {
        if b.get(at..at + 3)? != b"sk-" || !left_ok(b, at) {
            return None;
        }
        let end = run(b, at + 3, 1024, is_token);
        let body = &b[at + 3..end];
        if let Some(rest) = body.strip_prefix(b"ant-") {
            return (self.kinds.has(Kind::AnthropicKey) && rest.len() >= 20 && random_looking(rest)).then_some((
                at,
                end,
                Kind::AnthropicKey,
            ));
        }
        (self.kinds.has(Kind::OpenaiKey) && body.len() >= 20 && random_looking(body)).then_some((
            at,
            end,
            Kind::OpenaiKey,
        ))
    }

    /// The value of a secret-named key written `key=value` or `key: value`
    /// (quoted or not) around the anchor at `at`.
    /// The value of a secret-named key written `key=value` or `key: value`
    /// (the name and the value quoted or not), `sep` being the `=` or `:`.
    fn key_value(&self, b: &[u8], sep: usize) -> Option<(usize, usize, Kind)> {
        let class = key_before(b, sep)?;
        let i = run(b, sep + 1, 16, |c| c == b' ' || c == b'\t');
        let line_end = run(b, i, 4096, |c| c != b'\n' && c != b'\r');
        let (mut vs, mut ve) = match b.get(i) {
            Some(b'\\') if b.get(i + 1) == Some(&b'"') => {
                let close = b[i + 2..line_end].windows(2).position(|w| w == b"\\\"");
                (i + 2, close.map_or(line_end, |c| i + 2 + c))
            }
            Some(&q @ (b'"' | b'\'')) => {
                let mut j = i + 1;
                while j < line_end && !(b[j] == q && b[j - 1] != b'\\') {
                    j += 1;
                }
                (i + 1, j)
            }
            _ if class == KeyClass::Header => (i, line_end),
            _ => {
                let e = run(b, i, 1024, |c| !c.is_ascii_whitespace() && !matches!(c, b'"' | b'\'' | b'&' | b'`'));
                let mut e = e;
                while e > i && matches!(b[e - 1], b',' | b';' | b')' | b']' | b'}' | b'>' | b'.') {
                    e -= 1;
                }
                (i, e)
            }
        };
        if class == KeyClass::Header {
            while ve > vs && b[ve - 1].is_ascii_whitespace() {
                ve -= 1;
            }
            let value = &b[vs..ve];
            let scheme_end = run(value, 0, 16, |c| c.is_ascii_alphabetic());
            if scheme_end > 0 && value.get(scheme_end) == Some(&b' ') {
                let scheme = &value[..scheme_end];
                if scheme.eq_ignore_ascii_case(b"bearer") {
                    let kind = if self.kinds.has(Kind::BearerToken) { Kind::BearerToken } else { Kind::SecretKey };
                    // A placeholder (`Bearer <token>`, `Bearer $KEY`) is not a token.
                    let token_start = run(b, vs + scheme_end, 16, |c| c == b' ');
                    let token_end = run(b, token_start, ve - token_start, is_bearer_token);
                    return (token_end == ve && ve - token_start >= 3).then_some((token_start, ve, kind));
                }
                if ["basic", "digest", "token", "negotiate", "ntlm", "apikey"]
                    .iter()
                    .any(|s| scheme.eq_ignore_ascii_case(s.as_bytes()))
                {
                    vs = run(b, vs + scheme_end, 16, |c| c == b' ');
                }
            }
        }
        let value = &b[vs..ve];
        let long_enough = match class {
            KeyClass::Password => value.len() >= 3,
            KeyClass::Token => value.len() >= 8 && !value.iter().all(u8::is_ascii_digit),
            KeyClass::Header => !value.is_empty(),
        };
        let placeholder = value.starts_with(b"[REDACTED:")
            || value.iter().all(|c| matches!(c, b'*' | b'x' | b'X' | b'.' | b'-' | b'#'))
            || ["null", "none", "nil", "true", "false", "undefined", "redacted", "<redacted>"]
                .iter()
                .any(|w| value.eq_ignore_ascii_case(w.as_bytes()));
        (long_enough && !placeholder).then_some((vs, ve, Kind::SecretKey))
    }

    /// Cards and IPv4 addresses: one pass over the digit runs.
    fn digit_runs(&self, b: &[u8], hits: &mut Vec<Hit>) {
        let cards = self.kinds.has(Kind::CreditCard);
        let ip = self.kinds.has(Kind::Ip);
        let n = b.len();
        let mut i = 0;
        while i < n {
            let Some(start) = next_digit(b, i) else { break };
            // The end of this run of digits.
            i = run(b, start, usize::MAX, |c| c.is_ascii_digit());
            if start == 0 || !(is_word(b[start - 1]) || b[start - 1] == b'.') || after_escape(b, start) {
                // A card's first group is 4 digits, or the whole number
                // (13 or more; see `best_card`).
                let first_group = i - start;
                if cards
                    && (first_group == 4 || first_group >= 13)
                    && let Some(end) = card(b, start)
                {
                    hits.push(Hit { start, end, label: Label::Kind(Kind::CreditCard) });
                    i = end;
                    continue;
                }
                if ip && let Some(end) = ipv4(b, start) {
                    hits.push(Hit { start, end, label: Label::Kind(Kind::Ip) });
                    i = end;
                    continue;
                }
            }
        }
    }
}

/// The class of the secret-named key written before the `=` or `:` at
/// `sep` (`password=`, `"api_key": `, `Set-Cookie:`), if it is one.
fn key_before(b: &[u8], sep: usize) -> Option<KeyClass> {
    // `scheme://` is no key.
    if b[sep] == b':' && b.get(sep + 1..sep + 3) == Some(b"//") {
        return None;
    }
    let mut end = sep;
    while end > 0 && sep - end < 16 && matches!(b[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    if end > 0 && matches!(b[end - 1], b'"' | b'\'') {
        end -= 1;
        // An escaped quote: `{\"password\": …}` inside a string.
        if end > 0 && b[end - 1] == b'\\' {
            end -= 1;
        }
    }
    let is_ident = |c: u8| is_token(c) || c == b'.';
    let mut start = end;
    while start > 0 && end - start < 64 && is_ident(b[start - 1]) {
        start -= 1;
    }
    if start < end && after_escape(b, start + 1) {
        start += 1;
    }
    // `scheme://name:password@host` is the URL detector's.
    if start == end || b[..start].ends_with(b"//") {
        return None;
    }
    let name = std::str::from_utf8(&b[start..end]).ok()?;
    keys::classify(name)
}

fn google_key(b: &[u8], at: usize) -> Option<(usize, usize, Kind)> {
    if b.get(at..at + 4)? != b"AIza" || !left_ok(b, at) {
        return None;
    }
    let end = run(b, at + 4, 64, is_token);
    (end - at - 4 >= 35).then_some((at, end, Kind::GoogleApiKey))
}

fn aws_key(b: &[u8], at: usize) -> Option<(usize, usize, Kind)> {
    let prefix = b.get(at..at + 4)?;
    if (prefix != b"AKIA" && prefix != b"ASIA") || !left_ok(b, at) {
        return None;
    }
    let end = run(b, at + 4, 17, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let after_ok = b.get(end).is_none_or(|c| !c.is_ascii_alphanumeric());
    (end - at - 4 == 16 && after_ok).then_some((at, end, Kind::AwsAccessKey))
}

fn github(b: &[u8], at: usize) -> Option<(usize, usize, Kind)> {
    let prefix = b.get(at..at + 4)?;
    if !matches!(prefix, b"ghp_" | b"gho_" | b"ghu_" | b"ghs_" | b"ghr_") || !left_ok(b, at) {
        return None;
    }
    let end = run(b, at + 4, 255, |c| c.is_ascii_alphanumeric());
    (end - at - 4 >= 30).then_some((at, end, Kind::GithubToken))
}

fn github_pat(b: &[u8], at: usize) -> Option<(usize, usize, Kind)> {
    if b.get(at..at + 11)? != b"github_pat_" || !left_ok(b, at) {
        return None;
    }
    let end = run(b, at + 11, 255, is_word);
    (end - at - 11 >= 22).then_some((at, end, Kind::GithubToken))
}

fn slack(b: &[u8], at: usize) -> Option<(usize, usize, Kind)> {
    if b.get(at..at + 3)? != b"xox" || !left_ok(b, at) {
        return None;
    }
    let end = run(b, at + 5, 255, |c| c.is_ascii_alphanumeric() || c == b'-');
    let body = &b[at + 5..end];
    (body.len() >= 10 && body.iter().any(u8::is_ascii_digit)).then_some((at, end, Kind::SlackToken))
}

/// The characters of an RFC 6750 bearer token.
fn is_bearer_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._~+/=-".contains(&c)
}

/// The token after `Bearer ` (any case): 8 or more token characters with a
/// digit, or 20 or more of mixed case.
fn bearer(b: &[u8], at: usize) -> Option<(usize, usize)> {
    if !left_ok(b, at) || b.get(at + 6).is_some_and(|&c| is_word(c)) {
        return None;
    }
    let token_start = run(b, at + 6, 8, |c| c == b' ' || c == b'\t');
    if token_start == at + 6 {
        return None;
    }
    let mut end = run(b, token_start, 8192, is_bearer_token);
    while end > token_start && b[end - 1] == b'.' {
        end -= 1;
    }
    let token = &b[token_start..end];
    let digit = token.iter().any(u8::is_ascii_digit);
    let mixed = token.iter().any(u8::is_ascii_uppercase) && token.iter().any(u8::is_ascii_lowercase);
    (token.len() >= 8 && (digit || (token.len() >= 20 && mixed))).then_some((token_start, end))
}

fn jwt(b: &[u8], at: usize) -> Option<(usize, usize, Kind)> {
    if b.get(at..at + 3)? != b"eyJ" || !(at == 0 || !is_token(b[at - 1]) || after_escape(b, at)) {
        return None;
    }
    let header_end = run(b, at, 8192, is_token);
    if header_end - at < 10 || b.get(header_end) != Some(&b'.') {
        return None;
    }
    let payload_end = run(b, header_end + 1, 1 << 20, is_token);
    if payload_end - header_end - 1 < 2 || b.get(payload_end) != Some(&b'.') {
        return None;
    }
    let mut end = run(b, payload_end + 1, 8192, is_token);
    // An encrypted token (JWE) has five parts.
    for _ in 0..2 {
        if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(|&c| is_token(c)) {
            end = run(b, end + 1, 1 << 20, is_token);
        }
    }
    Some((at, end, Kind::Jwt))
}

/// `-----BEGIN … PRIVATE KEY-----` to the end of its `-----END …-----`, or
/// to the end of the text when there is none (a truncated key).
fn private_key(text: &str, at: usize) -> Option<(usize, usize, Kind)> {
    let b = text.as_bytes();
    let label_start = at + "-----BEGIN ".len();
    let label_end = run(b, label_start, 64, |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' ');
    if b.get(label_end..label_end + 5)? != b"-----" || !text[label_start..label_end].contains("PRIVATE KEY") {
        return None;
    }
    let body = label_end + 5;
    let end = match text[body..].find("-----END") {
        Some(e) => {
            let after = body + e + "-----END".len();
            match text[after..].find("-----") {
                Some(close) if close <= 80 => after + close + 5,
                _ => b.len(),
            }
        }
        None => b.len(),
    };
    Some((at, end, Kind::PrivateKey))
}

/// The password of `scheme://user:password@host`: the userinfo of the
/// authority (before its last `@`), after its first `:`.
fn url_password(b: &[u8], at: usize) -> Option<(usize, usize, Kind)> {
    let mut scheme = at;
    while scheme > 0 && at - scheme < 32 && (b[scheme - 1].is_ascii_alphanumeric() || b"+.-".contains(&b[scheme - 1])) {
        scheme -= 1;
    }
    if scheme == at || !b[scheme].is_ascii_alphabetic() {
        return None;
    }
    let from = at + 3;
    let end = run(b, from, 2048, |c| !c.is_ascii_whitespace() && !b"/?#\"'<>`\\|{}^".contains(&c));
    let authority = &b[from..end];
    let at_sign = from + authority.iter().rposition(|&c| c == b'@')?;
    let colon = from + b[from..at_sign].iter().position(|&c| c == b':')?;
    let password = &b[colon + 1..at_sign];
    (!password.is_empty() && !password.starts_with(b"[REDACTED") && at_sign + 1 < end).then_some((
        colon + 1,
        at_sign,
        Kind::UrlPassword,
    ))
}

fn email(b: &[u8], at: usize) -> Option<(usize, usize, Kind)> {
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let mut start = at;
    while start > 0 && at - start < 64 && local(b[start - 1]) {
        start -= 1;
    }
    while start < at && b[start] == b'.' {
        start += 1;
    }
    if start == at {
        return None;
    }
    let mut end = run(b, at + 1, 255, |c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = &b[at + 1..end];
    let tld = domain.rsplit(|&c| c == b'.').next()?;
    let valid = domain.contains(&b'.')
        && !domain.starts_with(b".")
        && !domain.windows(2).any(|w| w == b"..")
        && tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic);
    valid.then_some((start, end, Kind::Email))
}

/// The position of the first ASCII digit at or after `from`: 32 bytes at a
/// time past those without one (a test the compiler makes into vector
/// instructions), then eight bytes at a time.
pub(crate) fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    const HIGHS: u64 = ONES * 128;
    let mut i = from;
    while let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<32>) {
        if chunk.iter().fold(0u8, |any, &c| any | u8::from(c.wrapping_sub(b'0') < 10)) != 0 {
            break;
        }
        i += 32;
    }
    while i + 8 <= b.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(word);
        // Bytes strictly between b'/' and b':' (bit twiddling hacks'
        // `hasbetween`, exact for ASCII; non-ASCII bytes are excluded).
        let low = x & (ONES * 127);
        let found = (ONES * (127 + u64::from(b':')) - low) & !x & (low + ONES * (127 - u64::from(b'/'))) & HIGHS;
        if found != 0 {
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i..].iter().position(u8::is_ascii_digit).map(|p| i + p)
}

/// A card number starting at `start` (a digit not preceded by a word
/// character): 13 to 19 digits, ungrouped or grouped by spaces or dashes in
/// fours (or 4-6-5, 4-6-4), passing Luhn, with a card network's prefix and
/// length. Groups after a valid number (an expiry date) do not stop it.
pub(crate) fn card(b: &[u8], start: usize) -> Option<usize> {
    let mut digits = [0u8; 19];
    let mut count = 0;
    let mut groups: [(usize, usize); 8] = [(0, 0); 8]; // (digits so far, end) after each group
    let mut lengths = [0usize; 8];
    let mut group_count = 0;
    let mut separator = None;
    let mut i = start;
    loop {
        let group_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if count == 19 {
                // Longer than any card: the group is not complete.
                return best_card(b, &digits, &groups[..group_count], &lengths[..group_count]);
            }
            digits[count] = b[i] - b'0';
            count += 1;
            i += 1;
        }
        if group_count == groups.len() {
            break;
        }
        groups[group_count] = (count, i);
        lengths[group_count] = i - group_start;
        group_count += 1;
        match b.get(i) {
            Some(&c @ (b' ' | b'-'))
                if b.get(i + 1).is_some_and(u8::is_ascii_digit) && separator.is_none_or(|s| s == c) =>
            {
                separator = Some(c);
                i += 1;
            }
            _ => break,
        }
    }
    best_card(b, &digits, &groups[..group_count], &lengths[..group_count])
}

fn best_card(b: &[u8], digits: &[u8; 19], groups: &[(usize, usize)], lengths: &[usize]) -> Option<usize> {
    for k in (1..=groups.len()).rev() {
        let (count, end) = groups[k - 1];
        if !(13..=19).contains(&count) {
            continue;
        }
        let shape = &lengths[..k];
        let shape_ok = k == 1
            || shape == [4, 6, 5]
            || shape == [4, 6, 4]
            || (shape[..k - 1].iter().all(|&l| l == 4) && (1..=4).contains(&shape[k - 1]));
        let after_ok = match b.get(end) {
            None => true,
            Some(&c) if c.is_ascii_digit() || is_word(c) => false,
            Some(b'.') => !b.get(end + 1).is_some_and(u8::is_ascii_digit),
            Some(_) => true,
        };
        let number = &digits[..count];
        if shape_ok && after_ok && plausible_issuer(number) && luhn(number) {
            return Some(end);
        }
    }
    None
}

/// Whether the number starts like a card network's and has its length.
fn plausible_issuer(d: &[u8]) -> bool {
    let len = d.len();
    let two = d[0] * 10 + d[1];
    match two {
        40..=49 => matches!(len, 13 | 16 | 19),
        51..=55 | 22..=27 => len == 16,
        34 | 37 => len == 15,
        30 | 36 | 38 | 39 => (14..=19).contains(&len),
        35 => (16..=19).contains(&len),
        60 | 62 | 64 | 65 => (16..=19).contains(&len),
        50 | 56..=58 | 63 | 67 => (13..=19).contains(&len),
        _ => false,
    }
}

/// The Luhn checksum of card numbers.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 {
                    twice - 9
                } else {
                    twice
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A dotted IPv4 address starting at `start`.
fn ipv4(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    for octet in 0..4 {
        let end = run(b, i, 4, |c| c.is_ascii_digit());
        if end == i || end - i > 3 {
            return None;
        }
        let value: u32 = std::str::from_utf8(&b[i..end]).ok()?.parse().ok()?;
        if value > 255 {
            return None;
        }
        i = end;
        if octet < 3 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    let after_ok = match b.get(i) {
        None => true,
        Some(&c) if is_word(c) => false,
        Some(b'.') => !b.get(i + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    };
    after_ok.then_some(i)
}

/// Sorts `hits` and merges overlapping ones (the first, by start, longest
/// and most specific, names the merged span), so that no part of a found
/// secret is left out.
pub(crate) fn merge(hits: &mut Vec<Hit>) {
    hits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)).then(a.label.rank().cmp(&b.label.rank())));
    let mut merged: Vec<Hit> = Vec::with_capacity(hits.len());
    for hit in hits.drain(..) {
        match merged.last_mut() {
            Some(last) if hit.start < last.end => last.end = last.end.max(hit.end),
            _ => merged.push(hit),
        }
    }
    *hits = merged;
}
