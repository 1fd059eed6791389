//! The value types settings hold: the API key, the sinks, the OTLP
//! transport and the slot starting indices.

use std::fmt;
use std::str::FromStr;

use super::error::ConfigError;

/// An AnoSys API key. Its `Debug` and `Display` never show it.
///
/// ```
/// let key = anosys::ApiKey::new("sk-secret");
/// assert_eq!(format!("{key} {key:?}"), "<redacted> ApiKey(<redacted>)");
/// assert_eq!(key.expose(), "sk-secret");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the one place that sends it (the resolver).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A built-in sink that configuration can name.
///
/// ```
/// use anosys::SinkKind;
/// assert_eq!("sqlite".parse::<SinkKind>(), Ok(SinkKind::Sqlite));
/// assert_eq!(SinkKind::Otlp.as_str(), "otlp");
/// assert!("kafka".parse::<SinkKind>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SinkKind {
    /// The AnoSys HTTP API.
    Anosys,
    /// The embedded SQLite store (the default with no AnoSys account;
    /// feature `sqlite`).
    Sqlite,
    /// Append JSON lines to a file.
    Jsonl,
    /// Readable lines on stdout.
    Stdout,
    /// OpenTelemetry spans over OTLP (feature `otlp`).
    Otlp,
}

impl SinkKind {
    /// Every built-in sink, in the order documentation lists them.
    pub const ALL: [SinkKind; 5] = [SinkKind::Anosys, SinkKind::Sqlite, SinkKind::Jsonl, SinkKind::Stdout, SinkKind::Otlp];

    /// The name configuration uses (`ANOSYS_SINKS`).
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Anosys => "anosys",
            SinkKind::Sqlite => "sqlite",
            SinkKind::Jsonl => "jsonl",
            SinkKind::Stdout => "stdout",
            SinkKind::Otlp => "otlp",
        }
    }

    /// Whether this build has the sink (`sqlite` and `otlp` are features).
    pub fn is_available(self) -> bool {
        let needs_feature = |kind, built: bool| self != kind || built;
        needs_feature(SinkKind::Sqlite, cfg!(feature = "sqlite")) && needs_feature(SinkKind::Otlp, cfg!(feature = "otlp"))
    }

    /// The embedded store of this build: SQLite, or the JSON-lines file
    /// without the `sqlite` feature.
    pub fn embedded() -> SinkKind {
        if cfg!(feature = "sqlite") { SinkKind::Sqlite } else { SinkKind::Jsonl }
    }

    /// What `ANOSYS_SINKS` accepts in this build, for error messages.
    pub(crate) fn accepted() -> String {
        let names: Vec<&str> = SinkKind::ALL.iter().filter(|k| k.is_available()).map(|k| k.as_str()).collect();
        let missing: Vec<String> = SinkKind::ALL
            .iter()
            .filter(|k| !k.is_available())
            .map(|k| format!("{} needs the `{}` feature", k.as_str(), k.as_str()))
            .collect();
        let mut text = format!("auto, or a comma list of {}", names.join(", "));
        if !missing.is_empty() {
            text.push_str(&format!(" ({})", missing.join("; ")));
        }
        text
    }
}

impl fmt::Display for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of [`SinkKind::ALL`] or [`OtlpProtocol`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name {name:?}: expected {expected}")]
pub struct UnknownName {
    name: String,
    expected: &'static str,
}

impl FromStr for SinkKind {
    type Err = UnknownName;

    /// Parses a sink name (any case, surrounding spaces ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        SinkKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownName { name: s.to_owned(), expected: "anosys, sqlite, jsonl, stdout or otlp" })
    }
}

/// The OTLP transport.
///
/// ```
/// use anosys::OtlpProtocol;
/// assert_eq!("grpc".parse::<OtlpProtocol>(), Ok(OtlpProtocol::Grpc));
/// assert_eq!(OtlpProtocol::default().as_str(), "http/protobuf");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// Protobuf over HTTP (`http/protobuf`), the OpenTelemetry default.
    #[default]
    HttpProtobuf,
    /// gRPC (`grpc`).
    Grpc,
}

impl OtlpProtocol {
    /// The name `OTEL_EXPORTER_OTLP_PROTOCOL` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::Grpc => "grpc",
        }
    }
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OtlpProtocol {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "grpc" => Ok(OtlpProtocol::Grpc),
            other => Err(UnknownName { name: other.to_owned(), expected: "http/protobuf or grpc" }),
        }
    }
}

/// Which sinks the pipeline runs.
///
/// ```
/// use anosys::{SinkKind, SinkSelection};
/// assert_eq!("auto".parse::<SinkSelection>(), Ok(SinkSelection::Auto));
/// assert_eq!("sqlite, stdout".parse::<SinkSelection>(), Ok(SinkSelection::Only(vec![SinkKind::Sqlite, SinkKind::Stdout])));
/// assert_eq!(SinkSelection::Only(vec![SinkKind::Anosys, SinkKind::Otlp]).to_string(), "anosys,otlp");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SinkSelection {
    /// AnoSys when a key or URL is configured, OTLP when an OTLP endpoint
    /// is (feature `otlp`), otherwise the embedded store.
    #[default]
    Auto,
    /// Exactly these.
    Only(Vec<SinkKind>),
}

impl fmt::Display for SinkSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkSelection::Auto => f.write_str("auto"),
            SinkSelection::Only(list) => {
                let names: Vec<&str> = list.iter().map(|k| k.as_str()).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

impl FromStr for SinkSelection {
    type Err = UnknownName;

    /// `auto` (or nothing), or a comma list of sink names; repeats are
    /// dropped.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("auto") {
            return Ok(SinkSelection::Auto);
        }
        let mut list = Vec::new();
        for part in s.split(',') {
            let kind: SinkKind = part.parse()?;
            if !list.contains(&kind) {
                list.push(kind);
            }
        }
        Ok(SinkSelection::Only(list))
    }
}

/// Starting indices of the dynamic `cvs`/`cvn`/`cvb` slots of the AnoSys
/// encoding (the original SDK's `starting_indices`).
///
/// ```
/// let indices: anosys::StartingIndices = "string=200, number=10".parse()?;
/// assert_eq!((indices.string, indices.number, indices.boolean), (200, 10, 1));
/// assert_eq!(indices.to_string(), "string=200,number=10,bool=1");
/// # Ok::<(), anosys::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartingIndices {
    /// First `cvs` slot for strings, lists and maps (default 100).
    pub string: u32,
    /// First `cvn` slot for numbers (default 3).
    pub number: u32,
    /// First `cvb` slot for booleans (default 1).
    pub boolean: u32,
}

impl Default for StartingIndices {
    fn default() -> Self {
        StartingIndices { string: 100, number: 3, boolean: 1 }
    }
}

impl StartingIndices {
    /// Sets the first slot of one type by the name bindings use:
    /// `"string"` (or `"str"`, `"cvs"`), `"number"` (`"num"`, `"cvn"`) or
    /// `"bool"` (`"boolean"`, `"cvb"`). Slots are numbered from 1.
    ///
    /// ```
    /// let mut indices = anosys::StartingIndices::default();
    /// indices.set("number", 10).unwrap();
    /// assert_eq!(indices.number, 10);
    /// assert!(indices.set("colour", 1).is_err());
    /// assert!(indices.set("string", 0).is_err());
    /// ```
    pub fn set(&mut self, kind: &str, first: u32) -> Result<(), ConfigError> {
        let slot = match kind.trim() {
            "string" | "str" | "cvs" => &mut self.string,
            "number" | "num" | "cvn" => &mut self.number,
            "bool" | "boolean" | "cvb" => &mut self.boolean,
            other => return Err(super::settings::starting_indices_error(other)),
        };
        if first == 0 {
            return Err(super::settings::starting_indices_error(&format!("{kind}=0")));
        }
        *slot = first;
        Ok(())
    }
}

impl fmt::Display for StartingIndices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "string={},number={},bool={}", self.string, self.number, self.boolean)
    }
}

impl FromStr for StartingIndices {
    type Err = ConfigError;

    /// `string=100,number=3,bool=1`; types left out keep their default.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut indices = StartingIndices::default();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, first) = pair.split_once('=').ok_or_else(|| super::settings::starting_indices_error(s))?;
            let first: u32 = first.trim().parse().map_err(|_| super::settings::starting_indices_error(s))?;
            indices.set(kind, first).map_err(|_| super::settings::starting_indices_error(s))?;
        }
        Ok(indices)
    }
}
