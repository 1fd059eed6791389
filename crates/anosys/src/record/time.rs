//! Timestamps as AnoSys and OpenTelemetry JSON expect them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// ISO 8601 / RFC 3339 in UTC with microseconds and a `Z`,
/// e.g. `2026-11-28T18:04:09.123456Z`. Times before 1970 are written as
/// 1970-01-01T00:00:00.000000Z, times after year 9999 as its last
/// microsecond.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
/// assert_eq!(anosys::record::time::to_iso(t), "2023-11-14T22:13:20.123000Z");
/// ```
pub fn to_iso(t: SystemTime) -> String {
    Iso::of(t).as_str().to_owned()
}

/// The last second RFC 3339 can write (9999-12-31T23:59:59); later times
/// are written as it.
const LAST_SECOND: u64 = 253_402_300_799;

/// [`to_iso`]'s text on the stack: a timestamp is written for every record
/// several times (its start and end, when it was taken), so without an
/// allocation and without going through `fmt`.
pub(crate) struct Iso {
    bytes: [u8; 27],
}

impl Iso {
    /// `t` as RFC 3339 in UTC with microseconds; times before 1970 as its
    /// first microsecond, times after 9999 as its last.
    pub(crate) fn of(t: SystemTime) -> Iso {
        let mut since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        if since.as_secs() > LAST_SECOND {
            since = Duration::new(LAST_SECOND, 999_999_000);
        }
        let secs = since.as_secs();
        let (days, second_of_day) = (secs / 86_400, secs % 86_400);
        // Days to a civil date (Howard Hinnant's `civil_from_days`), for
        // days on or after 1970-01-01.
        let z = days + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u64::from(month <= 2);
        let mut b = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut n: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, second_of_day / 3_600);
        put(14, 2, second_of_day / 60 % 60);
        put(17, 2, second_of_day % 60);
        put(20, 6, u64::from(since.subsec_micros()));
        Iso { bytes: b }
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and separators were written.
        std::str::from_utf8(&self.bytes).unwrap_or_default()
    }
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
        s.serialize_str(super::Iso::of(*t).as_str())
    }

    /// Deserializes from ISO 8601.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::from_iso(&s).ok_or_else(|| serde::de::Error::custom("invalid ISO 8601 timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn humantime(t: SystemTime) -> String {
        humantime::format_rfc3339_micros(t.max(UNIX_EPOCH)).to_string()
    }

    #[test]
    fn timestamps_are_written_as_humantime_writes_them() {
        let mut seconds: Vec<u64> =
            vec![0, 59, 60, 86_399, 86_400, 951_782_400, 951_868_800, 4_107_542_400, LAST_SECOND];
        // Every day's first and last second from 1970 into 2400 (leap
        // years, centuries, 2000 and 2400), and some seconds in between.
        let mut day = 0;
        while day < 157_000 {
            seconds.extend([day * 86_400, day * 86_400 + 86_399, day * 86_400 + 45_296]);
            day += 1;
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seconds.push(x % (LAST_SECOND + 1));
        }
        for (i, secs) in seconds.into_iter().enumerate() {
            let t = UNIX_EPOCH + Duration::new(secs, (i as u32 % 1_000) * 1_000_999 % 1_000_000_000);
            assert_eq!(to_iso(t), humantime(t), "{secs}");
        }
    }

    #[test]
    fn times_before_1970_and_after_9999_are_written_as_before() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(to_iso(before), "1970-01-01T00:00:00.000000Z");
        // humantime panics past 9999 (as this did before it wrote its own).
        let after = UNIX_EPOCH + Duration::from_secs(LAST_SECOND * 2);
        assert_eq!(to_iso(after), "9999-12-31T23:59:59.999999Z");
    }
}
