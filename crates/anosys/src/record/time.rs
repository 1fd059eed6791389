//! Timestamps as AnoSys and OpenTelemetry JSON expect them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// ISO 8601 / RFC 3339 in UTC with microseconds and a `Z`,
/// e.g. `2026-11-28T18:04:09.123456Z`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
/// assert_eq!(anosys::record::time::to_iso(t), "2023-11-14T22:13:20.123000Z");
/// ```
pub fn to_iso(t: SystemTime) -> String {
    // Times before 1970 cannot be formatted by humantime; clamp them.
    let t = t.max(UNIX_EPOCH);
    humantime::format_rfc3339_micros(t).to_string()
}

/// Parses RFC 3339 (`Z` or no offset); `None` if it is not a timestamp.
pub fn from_iso(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()
}

/// Milliseconds since the Unix epoch.
pub fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64
}

/// Serde adapter writing [`SystemTime`] as ISO 8601.
pub mod iso {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as ISO 8601.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::to_iso(*t))
    }

    /// Deserializes from ISO 8601.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::from_iso(&s).ok_or_else(|| serde::de::Error::custom("invalid ISO 8601 timestamp"))
    }
}
