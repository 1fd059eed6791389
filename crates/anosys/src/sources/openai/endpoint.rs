//! The parts of a call's URL its record uses: host, port and path.
//!
//! Every captured call starts by reading its URL. A full URL parser
//! (`url::Url`, with IDNA, IPv4 forms and path normalisation) took 270–480
//! ns a call, and its parts were then copied, for URLs that are nearly
//! always plain `https://host/v1/chat/completions`. Such URLs are split
//! here in place (110–150 ns); anything else goes to `url::Url`, so the
//! parts are exactly what it gives (a test checks both ways agree).

use std::borrow::Cow;

/// Host, port and path of a call's URL, as `url::Url` reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint<'a> {
    /// The host, lowercase (`Url::host_str`); empty when there is none.
    pub(super) host: Cow<'a, str>,
    /// The port written in the URL unless it is the scheme's default
    /// (`Url::port`).
    pub(super) port: Option<u16>,
    /// The port written, else the scheme's default
    /// (`Url::port_or_known_default`).
    pub(super) known_port: Option<u16>,
    /// The path, without query or fragment (`Url::path`).
    pub(super) path: Cow<'a, str>,
}

impl<'a> Endpoint<'a> {
    /// The parts of `url`; `None` when it is not an absolute URL.
    pub(super) fn parse(url: &'a str) -> Option<Endpoint<'a>> {
        Endpoint::plain(url).or_else(|| Endpoint::parsed(url))
    }

    /// Through `url::Url`, for any URL.
    fn parsed(url: &str) -> Option<Endpoint<'static>> {
        let u = reqwest::Url::parse(url).ok()?;
        Some(Endpoint {
            host: Cow::Owned(u.host_str().unwrap_or("").to_owned()),
            port: u.port(),
            known_port: u.port_or_known_default(),
            path: Cow::Owned(u.path().to_owned()),
        })
    }

    /// A plain `http(s)://host[:port]/path[?query][#fragment]`, split in
    /// place: `None` for anything `url::Url` might read differently (user
    /// info, IP addresses other than a dotted quad, IDNA labels, escapes in
    /// the host, dot segments or characters it would escape in the path).
    fn plain(url: &'a str) -> Option<Endpoint<'a>> {
        let (rest, default) = if let Some(rest) = url.strip_prefix("https://") {
            (rest, 443)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (rest, 80)
        } else {
            return None;
        };
        let end = rest.bytes().position(|b| matches!(b, b'/' | b'?' | b'#')).unwrap_or(rest.len());
        let (authority, after) = rest.split_at(end);
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if !plain_host(host) {
            return None;
        }
        let written = match port {
            None => None,
            Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(u16::try_from(p.parse::<u32>().ok()?).ok()?)
            }
            Some(_) => return None,
        };
        let path = &after[..after.bytes().position(|b| matches!(b, b'?' | b'#')).unwrap_or(after.len())];
        if !plain_path(path) {
            return None;
        }
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        };
        Some(Endpoint {
            host,
            port: written.filter(|p| *p != default),
            known_port: Some(written.unwrap_or(default)),
            path: Cow::Borrowed(if path.is_empty() { "/" } else { path }),
        })
    }
}

/// Letters, digits and hyphens in dot-separated labels, none empty, none an
/// IDNA label, and a last label that is not a number, unless the whole host
/// is a dotted quad written the one way `url::Url` writes it back.
fn plain_host(host: &str) -> bool {
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return false;
    }
    let (mut labels, mut octets, mut last) = (0, 0, "");
    for label in host.split('.') {
        if label.is_empty() || label.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--")) {
            return false;
        }
        labels += 1;
        // A decimal from 0 to 255 with no leading zero.
        let octet = label.bytes().all(|b| b.is_ascii_digit())
            && (label == "0" || !label.starts_with('0'))
            && label.parse::<u32>().is_ok_and(|n| n <= 255);
        octets += usize::from(octet);
        last = label;
    }
    // A number in the last label makes it an IPv4 address.
    !last.as_bytes()[0].is_ascii_digit() || (labels == 4 && octets == 4)
}

/// A path `url::Url` keeps as written: only characters it does not escape,
/// and no `.` or `..` segment (plain or escaped) for it to resolve.
fn plain_path(path: &str) -> bool {
    let allowed = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',')
            || matches!(b, b';' | b'=' | b':' | b'@' | b'/' | b'%')
    };
    (path.is_empty() || path.starts_with('/'))
        && path.bytes().all(allowed)
        && !path.split('/').any(|segment| dot_segment(segment.as_bytes()))
}

/// `.` or `..`, each dot written plain or as `%2e` (either case).
fn dot_segment(mut segment: &[u8]) -> bool {
    let mut dots = 0;
    while !segment.is_empty() {
        segment = match segment {
            [b'.', rest @ ..] => rest,
            [b'%', b'2', e, rest @ ..] if e.eq_ignore_ascii_case(&b'e') => rest,
            _ => return false,
        };
        dots += 1;
    }
    dots == 1 || dots == 2
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    /// What `url::Url` reads, for comparison.
    fn reference(url: &str) -> Option<Endpoint<'static>> {
        Endpoint::parsed(url)
    }

    #[test]
    fn plain_urls_are_split_in_place_as_url_reads_them() {
        let plain = [
            "https://api.openai.com/v1/chat/completions",
            "https://API.OpenAI.com/v1/chat/completions?api-version=1#x",
            "http://127.0.0.1:8080/v1/embeddings",
            "http://localhost:11434/v1/chat/completions",
            "https://api.openai.com:443/v1/responses",
            "http://example.com:443/a",
            "https://example.com:0080/a",
            "https://my-res.openai.azure.com/openai/deployments/gpt4/chat/completions?api-version=2024-06-01",
            "https://example.com",
            "https://example.com?x=1",
            "https://example.com#frag",
            "https://example.com/v1/a%20b/c:d@e",
            "https://1password.com/v1/x",
            "http://10.0.0.255/x",
            "http://0.0.0.0/x",
        ];
        for url in plain {
            let quick = Endpoint::plain(url).unwrap_or_else(|| panic!("{url} is plain"));
            assert_eq!(Some(quick), reference(url), "{url}");
        }
    }

    #[test]
    fn anything_else_goes_to_url_and_reads_the_same() {
        let other = [
            "https://user:secret@example.com/x",
            "https://[::1]:8080/v1/chat/completions",
            "http://127.1/x",
            "http://0x7f.0.0.1/x",
            "http://010.0.0.1/x",
            "http://256.0.0.1/x",
            "http://api.123/x",
            "https://xn--nxasmq6b.com/x",
            "https://exa_mple.com/x",
            "https://example.com./x",
            "https://example.com:/x",
            "https://example.com:99999/x",
            "https://example.com/a/../b",
            "https://example.com/a/./b",
            "https://example.com/a/%2E%2e/b",
            "https://example.com/a b",
            "https://example.com/a\\b",
            "https://example.com/ü",
            "https://exämple.com/x",
            "HTTPS://example.com/x",
            "ftp://example.com/x",
            "/v1/chat/completions",
            "not a url",
            "",
        ];
        for url in other {
            assert_eq!(Endpoint::plain(url), None, "{url} is left to url::Url");
            assert_eq!(Endpoint::parse(url), reference(url), "{url}");
        }
    }

    #[test]
    fn dot_segments_are_found_however_written() {
        for segment in [".", "..", "%2e", "%2E", ".%2e", "%2e.", "%2E%2e"] {
            assert!(super::dot_segment(segment.as_bytes()), "{segment}");
        }
        for segment in ["", "...", "a", ".a", "a.", "%2", "%2f", "%2e%2e%2e", "v1", "%2ex"] {
            assert!(!super::dot_segment(segment.as_bytes()), "{segment}");
        }
    }

    /// URLs made of pieces from each part's awkward cases: whenever the
    /// quick split answers, it answers what `url::Url` does.
    #[test]
    fn the_quick_split_never_disagrees_with_url() {
        let schemes = ["http://", "https://", "HTTP://", "https:/"];
        let hosts = [
            "a.com",
            "A.Com",
            "a..b",
            ".a",
            "a.",
            "1.2.3.4",
            "1.2.3",
            "01.2.3.4",
            "a-b.c1",
            "x.9",
            "xn--a.b",
            "a_b",
            "",
            "-a.b",
            "a-.b",
            "localhost",
            "a.b.c.d.e",
            "1a.2b",
        ];
        let ports = ["", ":", ":0", ":80", ":443", ":8080", ":65535", ":65536", ":00080", ":x"];
        let paths =
            ["", "/", "/v1/chat/completions", "/a/./b", "/a/..", "/%2e/", "/a%41", "/a b", "/a|b", "/é", "?q=1", "#f"];
        let mut checked = 0;
        for scheme in schemes {
            for host in hosts {
                for port in ports {
                    for path in paths {
                        let url = format!("{scheme}{host}{port}{path}");
                        if let Some(quick) = Endpoint::plain(&url) {
                            assert_eq!(Some(quick), reference(&url), "{url}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 250, "only {checked} URLs took the quick split");
    }
}
