//! How a setting's value is read from text, checked and shown. Each
//! setting names one kind; the environment path parses with it and both
//! paths (builder and environment) check with it, so the two accept the
//! same values.

use std::path::PathBuf;
use std::time::Duration;

use super::types::{ApiKey, OtlpProtocol, SinkSelection, StartingIndices};
use crate::diag::LogLevel;

/// A kind of value. `parse` returns `None` for text that is not of the
/// kind at all; `check` holds for values in range; `expected` describes
/// both for error messages.
pub(crate) trait Kind {
    type Value;
    fn parse(&self, text: &str) -> Option<Self::Value>;
    fn check(&self, _value: &Self::Value) -> bool {
        true
    }
    fn expected(&self) -> String;
    fn show(&self, value: &Self::Value) -> String;
    /// Whether text of this kind must never be shown.
    fn is_secret(&self) -> bool {
        false
    }
}

/// A whole number in `min..=max`.
pub(crate) struct Count(pub usize, pub usize);

impl Kind for Count {
    type Value = usize;
    fn parse(&self, text: &str) -> Option<usize> {
        text.trim().parse().ok()
    }
    fn check(&self, value: &usize) -> bool {
        (self.0..=self.1).contains(value)
    }
    fn expected(&self) -> String {
        format!("a whole number from {} to {}", self.0, self.1)
    }
    fn show(&self, value: &usize) -> String {
        value.to_string()
    }
}

/// A duration written as whole milliseconds in `min..=max`.
pub(crate) struct Millis(pub u64, pub u64);

impl Kind for Millis {
    type Value = Duration;
    fn parse(&self, text: &str) -> Option<Duration> {
        text.trim().parse().ok().map(Duration::from_millis)
    }
    fn check(&self, value: &Duration) -> bool {
        // Below a millisecond (but not zero) counts as 1 ms.
        let ms = value.as_millis().max(u128::from(!value.is_zero()));
        (u128::from(self.0)..=u128::from(self.1)).contains(&ms)
    }
    fn expected(&self) -> String {
        format!("milliseconds, a whole number from {} to {}", self.0, self.1)
    }
    fn show(&self, value: &Duration) -> String {
        value.as_millis().to_string()
    }
}

/// `true`/`false` (also 1/0, yes/no, on/off).
pub(crate) struct Flag;

impl Kind for Flag {
    type Value = bool;
    fn parse(&self, text: &str) -> Option<bool> {
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => None,
        }
    }
    fn expected(&self) -> String {
        "true or false (also 1/0, yes/no, on/off)".into()
    }
    fn show(&self, value: &bool) -> String {
        value.to_string()
    }
}

/// A share from 0 to 1 (also written as a percentage, `25%`).
pub(crate) struct Ratio;

impl Kind for Ratio {
    type Value = f64;
    fn parse(&self, text: &str) -> Option<f64> {
        let text = text.trim();
        match text.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().ok().map(|p| p / 100.0),
            None => text.parse().ok(),
        }
    }
    fn check(&self, value: &f64) -> bool {
        (0.0..=1.0).contains(value)
    }
    fn expected(&self) -> String {
        "a number from 0 to 1 (or a percentage, 25%)".into()
    }
    fn show(&self, value: &f64) -> String {
        value.to_string()
    }
}

/// An amount of US dollars, zero or more.
pub(crate) struct Usd;

impl Kind for Usd {
    type Value = f64;
    fn parse(&self, text: &str) -> Option<f64> {
        text.trim().trim_start_matches('$').parse().ok()
    }
    fn check(&self, value: &f64) -> bool {
        value.is_finite() && *value >= 0.0
    }
    fn expected(&self) -> String {
        "US dollars, a number of 0 or more (0.05)".into()
    }
    fn show(&self, value: &f64) -> String {
        value.to_string()
    }
}

/// An absolute `http://` or `https://` URL.
pub(crate) struct Url;

impl Kind for Url {
    type Value = String;
    fn parse(&self, text: &str) -> Option<String> {
        Some(text.trim().to_owned())
    }
    fn check(&self, value: &String) -> bool {
        matches!(reqwest::Url::parse(value), Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some())
    }
    fn expected(&self) -> String {
        "an absolute http:// or https:// URL".into()
    }
    fn show(&self, value: &String) -> String {
        value.clone()
    }
}

/// Non-empty text.
pub(crate) struct Text;

impl Kind for Text {
    type Value = String;
    fn parse(&self, text: &str) -> Option<String> {
        Some(text.trim().to_owned())
    }
    fn check(&self, value: &String) -> bool {
        !value.trim().is_empty()
    }
    fn expected(&self) -> String {
        "non-empty text".into()
    }
    fn show(&self, value: &String) -> String {
        value.clone()
    }
}

/// A file path.
pub(crate) struct FilePath;

impl Kind for FilePath {
    type Value = PathBuf;
    fn parse(&self, text: &str) -> Option<PathBuf> {
        Some(PathBuf::from(text.trim()))
    }
    fn check(&self, value: &PathBuf) -> bool {
        !value.as_os_str().is_empty()
    }
    fn expected(&self) -> String {
        "a file path".into()
    }
    fn show(&self, value: &PathBuf) -> String {
        value.display().to_string()
    }
}

/// A secret: never shown.
pub(crate) struct Secret;

impl Kind for Secret {
    type Value = ApiKey;
    fn parse(&self, text: &str) -> Option<ApiKey> {
        Some(ApiKey::new(text.trim()))
    }
    fn check(&self, value: &ApiKey) -> bool {
        !value.expose().trim().is_empty()
    }
    fn expected(&self) -> String {
        "a non-empty key".into()
    }
    fn show(&self, _: &ApiKey) -> String {
        "<redacted>".into()
    }
    fn is_secret(&self) -> bool {
        true
    }
}

/// An optional value of kind `K`: `None` is always valid.
pub(crate) struct Optional<K>(pub K);

impl<K: Kind> Kind for Optional<K> {
    type Value = Option<K::Value>;
    fn parse(&self, text: &str) -> Option<Self::Value> {
        self.0.parse(text).map(Some)
    }
    fn check(&self, value: &Self::Value) -> bool {
        value.as_ref().is_none_or(|v| self.0.check(v))
    }
    fn expected(&self) -> String {
        self.0.expected()
    }
    fn show(&self, value: &Self::Value) -> String {
        value.as_ref().map_or_else(|| "none".into(), |v| self.0.show(v))
    }
    fn is_secret(&self) -> bool {
        self.0.is_secret()
    }
}

/// anosys's own verbosity.
pub(crate) struct Level;

impl Kind for Level {
    type Value = LogLevel;
    fn parse(&self, text: &str) -> Option<LogLevel> {
        LogLevel::parse(text)
    }
    fn expected(&self) -> String {
        "off, error, warn, info or debug".into()
    }
    fn show(&self, value: &LogLevel) -> String {
        value.as_str().into()
    }
}

/// `auto` or a comma list of sinks this build has, at least one.
pub(crate) struct Sinks;

impl Kind for Sinks {
    type Value = SinkSelection;
    fn parse(&self, text: &str) -> Option<SinkSelection> {
        text.parse().ok()
    }
    fn check(&self, value: &SinkSelection) -> bool {
        match value {
            SinkSelection::Auto => true,
            SinkSelection::Only(list) => !list.is_empty() && list.iter().all(|k| k.is_available()),
        }
    }
    fn expected(&self) -> String {
        super::types::SinkKind::accepted()
    }
    fn show(&self, value: &SinkSelection) -> String {
        value.to_string()
    }
}

/// The OTLP transport.
pub(crate) struct Protocol;

impl Kind for Protocol {
    type Value = OtlpProtocol;
    fn parse(&self, text: &str) -> Option<OtlpProtocol> {
        text.parse().ok()
    }
    fn expected(&self) -> String {
        "http/protobuf or grpc".into()
    }
    fn show(&self, value: &OtlpProtocol) -> String {
        value.as_str().into()
    }
}

/// `OTEL_METRICS_EXPORTER`: a comma list of the exporters the
/// OpenTelemetry spec names; metrics go out over OTLP when it holds `otlp`.
pub(crate) struct MetricsExporter;

impl Kind for MetricsExporter {
    type Value = bool;
    fn parse(&self, text: &str) -> Option<bool> {
        let mut otlp = false;
        for part in text.split(',') {
            match part.trim().to_ascii_lowercase().as_str() {
                "otlp" => otlp = true,
                "none" | "console" | "prometheus" | "" => {}
                _ => return None,
            }
        }
        Some(otlp)
    }
    fn expected(&self) -> String {
        "otlp or none (a comma list; console and prometheus are ignored)".into()
    }
    fn show(&self, value: &bool) -> String {
        if *value { "otlp" } else { "none" }.into()
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key1=value1,key2=value2`, values
/// percent-encoded (W3C Baggage octets).
pub(crate) struct ResourceAttributes;

impl Kind for ResourceAttributes {
    type Value = Vec<(String, String)>;
    fn parse(&self, text: &str) -> Option<Self::Value> {
        let mut out = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=')?;
            let v = percent_encoding::percent_decode_str(v.trim()).decode_utf8().ok()?;
            out.push((k.trim().to_owned(), v.into_owned()));
        }
        Some(out)
    }
    fn check(&self, value: &Self::Value) -> bool {
        value.iter().all(|(k, _)| !k.trim().is_empty())
    }
    fn expected(&self) -> String {
        "comma-separated key=value pairs (values percent-encoded)".into()
    }
    fn show(&self, value: &Self::Value) -> String {
        let pairs: Vec<String> = value
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)))
            .collect();
        pairs.join(",")
    }
}

/// Slot starting indices, `string=100,number=3,bool=1`.
pub(crate) struct Indices;

impl Kind for Indices {
    type Value = StartingIndices;
    fn parse(&self, text: &str) -> Option<StartingIndices> {
        text.parse().ok()
    }
    fn check(&self, value: &StartingIndices) -> bool {
        value.string > 0 && value.number > 0 && value.boolean > 0
    }
    fn expected(&self) -> String {
        "string=N,number=N,bool=N with each N from 1 (types left out keep their default)".into()
    }
    fn show(&self, value: &StartingIndices) -> String {
        value.to_string()
    }
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `key1=value1,key2=value2`, values
/// percent-encoded; values are secrets (they often carry a token).
pub(crate) struct Headers;

impl Kind for Headers {
    type Value = Vec<(String, String)>;
    fn parse(&self, text: &str) -> Option<Self::Value> {
        ResourceAttributes.parse(text)
    }
    fn check(&self, value: &Self::Value) -> bool {
        value.iter().all(|(k, _)| !k.trim().is_empty() && http_header_name(k))
    }
    fn expected(&self) -> String {
        "comma-separated key=value pairs (header names; values percent-encoded)".into()
    }
    fn show(&self, value: &Self::Value) -> String {
        let keys: Vec<String> = value.iter().map(|(k, _)| format!("{k}=<redacted>")).collect();
        keys.join(",")
    }
    fn is_secret(&self) -> bool {
        true
    }
}

/// Whether `name` is a valid HTTP header name (RFC 9110 token).
fn http_header_name(name: &str) -> bool {
    name.trim().bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
