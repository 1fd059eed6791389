//! W3C trace-context identifiers.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 16-byte W3C trace id, shown as 32 lower-case hex digits.
///
/// ```
/// use anosys::TraceId;
/// let id = TraceId::random();
/// assert_eq!(id.to_string().len(), 32);
/// assert_eq!(TraceId::from_hex(&id.to_string()), Some(id));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte W3C span id, shown as 16 lower-case hex digits.
///
/// ```
/// use anosys::SpanId;
/// let id = SpanId::random();
/// assert_eq!(SpanId::from_hex(&id.to_string()), Some(id));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

macro_rules! hex_id {
    ($ty:ident, $len:expr) => {
        impl $ty {
            /// Random bytes, never all zero.
            fn random_bytes() -> [u8; $len] {
                let mut bytes = [0u8; $len];
                loop {
                    for chunk in bytes.chunks_mut(8) {
                        let r = fastrand::u64(..).to_le_bytes();
                        chunk.copy_from_slice(&r[..chunk.len()]);
                    }
                    if bytes.iter().any(|b| *b != 0) {
                        return bytes;
                    }
                }
            }

            /// Parses lower- or upper-case hex of exactly the right length;
            /// `None` for anything else, including the all-zero (invalid) id.
            pub fn from_hex(hex: &str) -> Option<Self> {
                let raw = hex.as_bytes();
                if raw.len() != $len * 2 {
                    return None;
                }
                let mut bytes = [0u8; $len];
                for (i, pair) in raw.chunks(2).enumerate() {
                    let hi = (pair[0] as char).to_digit(16)?;
                    let lo = (pair[1] as char).to_digit(16)?;
                    bytes[i] = (hi * 16 + lo) as u8;
                }
                if bytes.iter().all(|b| *b == 0) {
                    return None;
                }
                Some(Self(bytes))
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Into a buffer, then written once: a `write!` per byte goes
                // through the formatting machinery for every one, and ids
                // are written several times per record sent.
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut text = [0u8; $len * 2];
                for (i, b) in self.0.iter().enumerate() {
                    text[2 * i] = HEX[usize::from(b >> 4)];
                    text[2 * i + 1] = HEX[usize::from(b & 0x0f)];
                }
                // Only ASCII hex digits were written.
                f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($ty))
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::from_hex(&s).ok_or_else(|| {
                    serde::de::Error::custom(concat!("invalid ", stringify!($ty), " hex"))
                })
            }
        }
    };
}

hex_id!(TraceId, 16);
hex_id!(SpanId, 8);

impl TraceId {
    /// A new trace id: the current Unix time in seconds (4 bytes,
    /// big-endian), then 12 random bytes, as AWS X-Ray makes them.
    ///
    /// The W3C Trace Context asks only the right-most 7 bytes to be random
    /// (OpenTelemetry's ratio sampler and ours read the last 8). Ids of new
    /// traces then sort by when they began, so an index of them (the local
    /// store's) grows at its end instead of touching a random page for
    /// every record, which made the store several times slower once it
    /// held more than its cache.
    ///
    /// ```
    /// use anosys::TraceId;
    /// let (a, b) = (TraceId::random(), TraceId::random());
    /// assert_ne!(a, b);
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    /// let began = u64::from(u32::from_be_bytes(a.0[..4].try_into().unwrap()));
    /// assert!(now.abs_diff(began) <= 1);
    /// ```
    pub fn random() -> Self {
        let mut bytes = Self::random_bytes();
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Past 2106 the seconds wrap; the id stays non-zero, as the W3C
        // asks, through its random part.
        bytes[..4].copy_from_slice(&(secs as u32).to_be_bytes());
        if bytes[4..].iter().all(|b| *b == 0) {
            bytes[15] = 1;
        }
        TraceId(bytes)
    }
}

impl SpanId {
    /// A random, non-zero span id.
    ///
    /// ```
    /// assert_ne!(anosys::SpanId::random(), anosys::SpanId::random());
    /// ```
    pub fn random() -> Self {
        SpanId(Self::random_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_trace_ids_begin_with_the_time_and_are_otherwise_random() {
        let ids: Vec<TraceId> = (0..2_000).map(|_| TraceId::random()).collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        for id in &ids {
            let began = u64::from(u32::from_be_bytes(id.0[..4].try_into().unwrap()));
            assert!(now.abs_diff(began) <= 2, "{id}");
        }
        // The bytes the samplers read (the last 8) are spread evenly: each
        // bit is set in about half of the ids.
        for bit in 0..64 {
            let set = ids.iter().filter(|id| u64::from_be_bytes(id.0[8..].try_into().unwrap()) >> bit & 1 == 1).count();
            assert!((800..1_200).contains(&set), "bit {bit}: {set} of 2000");
        }
    }

    #[test]
    fn round_trips_and_rejects_bad_hex() {
        let t = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(TraceId::from_hex("00000000000000000000000000000000").is_none());
        assert!(TraceId::from_hex("4bf92f").is_none());
        assert!(SpanId::from_hex("00f067aa0ba902bz").is_none());
        assert_eq!(
            serde_json::to_string(&SpanId::from_hex("00f067aa0ba902b7").unwrap()).unwrap(),
            "\"00f067aa0ba902b7\""
        );
    }
}
