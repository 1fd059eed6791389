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

        impl $ty {
            /// The id's lower-case hex digits, in a buffer on the stack
            /// (what [`Display`](fmt::Display) writes, without a `String`
            /// for each id: ids are written several times per record).
            pub(crate) fn hex_digits(&self) -> [u8; $len * 2] {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let mut text = [0u8; $len * 2];
                for (i, b) in self.0.iter().enumerate() {
                    text[2 * i] = HEX[usize::from(b >> 4)];
                    text[2 * i + 1] = HEX[usize::from(b & 0x0f)];
                }
                text
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Written once: a `write!` per byte goes through the
                // formatting machinery for every one.
                let text = self.hex_digits();
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
    /// A random, non-zero trace id.
    ///
    /// All 16 bytes are random, as OpenTelemetry's SDKs make them: the
    /// samplers read the last 8, and people and tools tell traces apart by
    /// the first few hex digits. (Ids beginning with the time, as AWS X-Ray
    /// makes them, would let the local store's trace index grow at its
    /// end, 2.7x the records a second on a large store, but every trace
    /// begun in the same second would then share its first 8 digits.)
    ///
    /// ```
    /// use anosys::TraceId;
    /// assert_ne!(TraceId::random(), TraceId::random());
    /// ```
    pub fn random() -> Self {
        TraceId(Self::random_bytes())
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
    fn new_trace_ids_are_random_in_every_byte() {
        let ids: Vec<TraceId> = (0..2_000).map(|_| TraceId::random()).collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Every bit is set in about half of the ids, the first ones (what
        // people read) as much as the last (what samplers read).
        for bit in 0..128 {
            let set = ids.iter().filter(|id| u128::from_be_bytes(id.0) >> bit & 1 == 1).count();
            assert!((800..1_200).contains(&set), "bit {bit}: {set} of 2000");
        }
        let prefixes: std::collections::HashSet<_> = ids.iter().map(|id| id.to_string()[..8].to_owned()).collect();
        assert!(prefixes.len() > 1_990, "first 8 digits tell traces apart");
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
