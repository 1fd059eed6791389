//! Typed, borrowing views of the parts of OpenAI request and response JSON
//! that become a record's attributes.
//!
//! Each view reads, through one serde derive, either straight from a body's
//! bytes (strings borrowed, every part it does not name skipped, no
//! `serde_json::Value` built) or from a `Value` already parsed: the
//! attributes of a call come from one reading whatever form its JSON is in.
//!
//! A field of another JSON type than the one expected reads as absent, as
//! `value.get(key).and_then(Value::as_str)` would: an odd field never makes
//! the whole view fail. Bytes that are not one JSON value, or that repeat a
//! key, do fail: the caller then parses a `Value` (which keeps a repeated
//! key's last value) and reads the view from it.
//!
//! No view swallows an error from the deserializer: read from bytes, one
//! succeeds only on one well-formed JSON value (each part read or skipped by
//! serde_json, which checks what it skips). Capture relies on it to keep an
//! answer as JSON text without checking it again
//! ([`JsonText::compact_read`](crate::record::JsonText)); a test mutates
//! answers byte by byte to hold it to that.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Number, Value};

/// Any JSON value, reduced to what a view keeps of it: a string (borrowed
/// when the input allows), a number as written, a bool, `null`, or an array
/// or object: built into a `Value` when `KEEP`, skipped otherwise.
#[derive(Debug, Clone, PartialEq)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num(Number),
    Bool(bool),
    Null,
    /// An array or an object (`None`: skipped).
    Compound(Option<Value>),
}

impl Scalar<'_> {
    fn read<'de: 'a, 'a, D: Deserializer<'de>, const KEEP: bool>(deserializer: D) -> Result<Scalar<'a>, D::Error> {
        use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
        struct V<'a, const KEEP: bool>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a, const KEEP: bool> Visitor<'de> for V<'a, KEEP> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Number::from_f64(v).map_or(Scalar::Null, Scalar::Num))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                if KEEP {
                    return Value::deserialize(SeqAccessDeserializer::new(seq)).map(|v| Scalar::Compound(Some(v)));
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Compound(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                if KEEP {
                    return Value::deserialize(MapAccessDeserializer::new(map)).map(|v| Scalar::Compound(Some(v)));
                }
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Compound(None))
            }
        }
        deserializer.deserialize_any(V::<KEEP>(PhantomData))
    }
}

/// What a field of an array or object type does with a value of its type;
/// a value of any other type gives [`other`](Shape::other).
trait Shape<'de>: Sized {
    type Out;
    /// For a value of another type.
    fn other(self) -> Self::Out;
    /// For an object; skipped by default.
    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.other())
    }
    /// For an array; skipped by default.
    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.other())
    }
    /// For a string; as another type by default.
    fn str(self, _text: &str) -> Self::Out {
        self.other()
    }
}

/// Reads any JSON value with `shape`.
fn by_shape<'de, D: Deserializer<'de>, S: Shape<'de>>(deserializer: D, shape: S) -> Result<S::Out, D::Error> {
    struct V<S>(S);
    impl<'de, S: Shape<'de>> Visitor<'de> for V<S> {
        type Value = S::Out;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            self.0.map(map)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            self.0.seq(seq)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok(self.0.str(text))
        }
        fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
            Ok(self.0.str(text))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(self.0.other())
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(self.0.other())
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(self.0.other())
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(self.0.other())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(self.0.other())
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(self.0.other())
        }
    }
    deserializer.deserialize_any(V(shape))
}

/// A string field: `None` when absent or of another type.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Text<'a>(pub(super) Option<Cow<'a, str>>);

impl Text<'_> {
    pub(super) fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Text(match Scalar::read::<D, false>(deserializer)? {
            Scalar::Str(s) => Some(s),
            _ => None,
        }))
    }
}

/// A number field, kept as written (integer or float). `present` says the
/// key was there at all, whatever its value.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Num {
    pub(super) present: bool,
    pub(super) value: Option<Number>,
}

impl Num {
    /// The number as a JSON value, when it is one.
    pub(super) fn json(&self) -> Option<Value> {
        self.value.clone().map(Value::Number)
    }

    pub(super) fn as_u64(&self) -> Option<u64> {
        self.value.as_ref().and_then(Number::as_u64)
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Num {
            present: true,
            value: match Scalar::read::<D, false>(deserializer)? {
                Scalar::Num(n) => Some(n),
                _ => None,
            },
        })
    }
}

/// A bool field: `None` when absent or of another type.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(super) struct Flag(pub(super) Option<bool>);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Flag(match Scalar::read::<D, false>(deserializer)? {
            Scalar::Bool(b) => Some(b),
            _ => None,
        }))
    }
}

/// A field whose value is copied into an attribute as it is, most often a
/// string: a string is borrowed when the input allows, anything else kept
/// as a `Value`. `None` when absent; `null` reads as `Value::Null`.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Loose<'a>(Option<Scalar<'a>>);

impl Loose<'_> {
    /// The value, when the field is there (`null` included).
    pub(super) fn get(&self) -> Option<Value> {
        Some(match self.0.as_ref()? {
            Scalar::Str(s) => Value::String(s.as_ref().to_owned()),
            Scalar::Num(n) => Value::Number(n.clone()),
            Scalar::Bool(b) => Value::Bool(*b),
            Scalar::Null | Scalar::Compound(None) => Value::Null,
            Scalar::Compound(Some(v)) => v.clone(),
        })
    }

    /// The value, unless the field is absent or `null`.
    pub(super) fn into_value(self) -> Option<Value> {
        match self.0? {
            Scalar::Str(s) => Some(Value::String(s.into_owned())),
            Scalar::Num(n) => Some(Value::Number(n)),
            Scalar::Bool(b) => Some(Value::Bool(b)),
            Scalar::Null | Scalar::Compound(None) => None,
            Scalar::Compound(Some(v)) => Some(v),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Scalar::read::<D, true>(deserializer).map(|s| Loose(Some(s)))
    }
}

/// An object field read as `T`: `None` when absent or not an object.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Obj<T>(pub(super) Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<T> Obj<T> {
    pub(super) fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AsT<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Shape<'de> for AsT<T> {
            type Out = Obj<T>;
            fn other(self) -> Obj<T> {
                Obj(None)
            }
            fn map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
            }
        }
        by_shape(deserializer, AsT(PhantomData))
    }
}

/// An array field, its items read as `T`. `present` says the key was
/// there at all, whatever its value.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct List<T> {
    pub(super) present: bool,
    /// The items; `None` when the field is absent or not an array.
    pub(super) items: Option<Vec<T>>,
}

impl<T> Default for List<T> {
    fn default() -> Self {
        List { present: false, items: None }
    }
}

impl<T> List<T> {
    /// The items; none when the field is not an array.
    pub(super) fn items(&self) -> &[T] {
        self.items.as_deref().unwrap_or(&[])
    }

    /// Hands each item of an array to `each`, in order; says whether the
    /// value was an array (anything else is skipped).
    fn each<'de, D: Deserializer<'de>>(deserializer: D, each: impl FnMut(T)) -> Result<bool, D::Error>
    where
        T: Deserialize<'de>,
    {
        struct Each<T, F>(F, PhantomData<T>);
        impl<'de, T: Deserialize<'de>, F: FnMut(T)> Shape<'de> for Each<T, F> {
            type Out = bool;
            fn other(self) -> bool {
                false
            }
            fn seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<bool, A::Error> {
                while let Some(item) = seq.next_element::<T>()? {
                    (self.0)(item);
                }
                Ok(true)
            }
        }
        by_shape(deserializer, Each(each, PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut items = Vec::new();
        let array = List::each(deserializer, |item| items.push(item))?;
        Ok(List { present: true, items: array.then_some(items) })
    }
}

/// Any item of an array, read as `T` when it is an object (`None`
/// otherwise).
pub(super) type Item<T> = Obj<T>;

/// An object's `type`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Typed<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Text<'a>,
}

/// The Responses API's `text` option: `{"format": {"type": …}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TextOption<'a> {
    #[serde(borrow)]
    pub(super) format: Obj<Typed<'a>>,
}

/// What a request says about the call, besides its content.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RequestView<'a> {
    #[serde(borrow)]
    pub(super) model: Text<'a>,
    pub(super) stream: Flag,
    pub(super) temperature: Num,
    pub(super) top_p: Num,
    pub(super) top_k: Num,
    pub(super) max_completion_tokens: Num,
    pub(super) max_tokens: Num,
    pub(super) max_output_tokens: Num,
    pub(super) frequency_penalty: Num,
    pub(super) presence_penalty: Num,
    pub(super) seed: Num,
    #[serde(borrow)]
    pub(super) stop: Loose<'a>,
    pub(super) n: Num,
    #[serde(borrow)]
    pub(super) encoding_format: Text<'a>,
    pub(super) dimensions: Num,
    #[serde(borrow)]
    pub(super) tool_choice: Loose<'a>,
    #[serde(borrow)]
    pub(super) service_tier: Text<'a>,
    #[serde(borrow)]
    pub(super) size: Text<'a>,
    #[serde(borrow)]
    pub(super) quality: Text<'a>,
    #[serde(borrow)]
    pub(super) user: Text<'a>,
    #[serde(borrow)]
    pub(super) response_format: Obj<Typed<'a>>,
    #[serde(borrow)]
    pub(super) text: Obj<TextOption<'a>>,
}

/// `prompt_tokens_details` / `input_tokens_details`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct InputDetails {
    pub(super) cached_tokens: Num,
    pub(super) cache_creation_tokens: Num,
    pub(super) cache_write_tokens: Num,
}

/// `completion_tokens_details` / `output_tokens_details`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct OutputDetails {
    pub(super) reasoning_tokens: Num,
}

/// Token usage, in any of the OpenAI shapes (and Anthropic's).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Usage {
    pub(super) prompt_tokens: Num,
    pub(super) input_tokens: Num,
    pub(super) cache_read_input_tokens: Num,
    pub(super) cache_creation_input_tokens: Num,
    pub(super) completion_tokens: Num,
    pub(super) output_tokens: Num,
    pub(super) total_tokens: Num,
    pub(super) prompt_tokens_details: Obj<InputDetails>,
    pub(super) input_tokens_details: Obj<InputDetails>,
    pub(super) completion_tokens_details: Obj<OutputDetails>,
    pub(super) output_tokens_details: Obj<OutputDetails>,
}

/// A choice of a chat or text completion.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Choice<'a> {
    #[serde(borrow)]
    pub(super) finish_reason: Loose<'a>,
}

/// A response's `choices`, read for their finish reasons only: each one
/// that is not `null`, in order, as it is written.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Choices {
    /// Whether the key was there at all, whatever its value.
    pub(super) present: bool,
    pub(super) finish_reasons: Vec<Value>,
}

impl<'de> Deserialize<'de> for Choices {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut finish_reasons = Vec::new();
        List::<Item<Choice<'de>>>::each(deserializer, |choice| {
            if let Some(reason) = choice.0.and_then(|c| c.finish_reason.into_value()) {
                finish_reasons.push(reason);
            }
        })?;
        Ok(Choices { present: true, finish_reasons })
    }
}

/// How many numbers an embedding has, as a list of numbers or as base64
/// text (`encoding_format: "base64"`, what the official clients ask for
/// unless told otherwise: little-endian 32-bit floats); `None` for anything
/// else.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct EmbeddingSize(pub(super) Option<usize>);

impl EmbeddingSize {
    /// The numbers in an embedding already parsed.
    pub(super) fn of_value(value: &Value) -> Option<usize> {
        match value {
            Value::Array(items) => Some(items.len()),
            Value::String(text) => EmbeddingSize::of_base64(text),
            _ => None,
        }
    }

    /// The numbers in base64 text of 32-bit floats (its length alone: the
    /// text is not decoded); `None` when it is not base64 of whole floats.
    fn of_base64(text: &str) -> Option<usize> {
        let body = text.trim_end_matches('=');
        let padding = text.len() - body.len();
        let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        if padding > 2 || !body.bytes().all(alphabet) || (padding > 0 && !text.len().is_multiple_of(4)) || body.len() % 4 == 1 {
            return None;
        }
        let bytes = body.len() / 4 * 3 + (body.len() % 4).saturating_sub(1);
        bytes.is_multiple_of(4).then_some(bytes / 4)
    }
}

impl<'de> Deserialize<'de> for EmbeddingSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Size;
        impl<'de> Shape<'de> for Size {
            type Out = EmbeddingSize;
            fn other(self) -> EmbeddingSize {
                EmbeddingSize(None)
            }
            fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbeddingSize, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(EmbeddingSize(Some(n)))
            }
            fn str(self, text: &str) -> EmbeddingSize {
                EmbeddingSize(EmbeddingSize::of_base64(text))
            }
        }
        by_shape(deserializer, Size)
    }
}

/// An item of `data` (embeddings, images).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct DataItem<'a> {
    /// How many numbers an embedding has.
    pub(super) embedding: EmbeddingSize,
    #[serde(borrow)]
    pub(super) url: Text<'a>,
    #[serde(borrow)]
    pub(super) b64_json: Text<'a>,
    #[serde(borrow)]
    pub(super) revised_prompt: Loose<'a>,
}

/// `incomplete_details` of a Responses API response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Incomplete<'a> {
    #[serde(borrow)]
    pub(super) reason: Text<'a>,
}

/// What a successful response says about the call, besides its content.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ResponseView<'a> {
    #[serde(borrow)]
    pub(super) id: Text<'a>,
    #[serde(borrow)]
    pub(super) model: Text<'a>,
    #[serde(borrow)]
    pub(super) system_fingerprint: Text<'a>,
    #[serde(borrow)]
    pub(super) service_tier: Text<'a>,
    pub(super) choices: Choices,
    pub(super) usage: Obj<Usage>,
    /// Whether the body has an `error` object.
    pub(super) error: Obj<IgnoredAny>,
    #[serde(borrow)]
    pub(super) status: Text<'a>,
    #[serde(borrow)]
    pub(super) incomplete_details: Obj<Incomplete<'a>>,
    #[serde(borrow)]
    pub(super) output: List<Item<Typed<'a>>>,
    #[serde(borrow)]
    pub(super) data: List<Item<DataItem<'a>>>,
}

impl ResponseView<'_> {
    /// Whether the body is an API error (`{"error": {…}}` and no choices),
    /// whatever its HTTP status.
    pub(super) fn is_api_error(&self) -> bool {
        self.error.get().is_some() && !self.choices.present
    }
}

/// Reads a view of `value` (never fails on a parsed value: every field is
/// lenient; an unexpected failure reads as an empty view).
pub(super) fn of_value<'a, T: Deserialize<'a> + Default>(value: &'a Value) -> T {
    T::deserialize(value).unwrap_or_default()
}

/// Reads a view straight from JSON bytes; `None` when they are not one
/// JSON value or repeat a key (read a parsed `Value` then).
pub(super) fn of_bytes<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// Parses JSON bytes into a `Value` as serde_json does, except that a `\u`
/// escape of a lone surrogate (half of a UTF-16 pair without the other)
/// reads as U+FFFD. JavaScript's `JSON.stringify` and Python's
/// `json.dumps` write such an escape for a string holding one, and
/// serde_json refuses it: without this, the whole body would be lost to
/// the record for one character.
pub(super) fn parse_value(bytes: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice(bytes).or_else(|e| match crate::json::lone_surrogates_replaced(bytes) {
        // (Its other errors, if any, at the same places: an escape is
        // replaced by one as long.)
        Some(repaired) => serde_json::from_slice(&repaired),
        None => Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_surrogate_escape_reads_as_the_replacement_character() {
        let parsed = |text: &str| parse_value(text.as_bytes()).ok();
        // Lone high, lone low, a high at the end of the text's string.
        assert_eq!(parsed(r#"{"a": "x\ud800y"}"#), Some(serde_json::json!({"a": "x\u{fffd}y"})));
        assert_eq!(parsed(r#"{"a": "x\uDC00"}"#), Some(serde_json::json!({"a": "x\u{fffd}"})));
        assert_eq!(parsed(r#"["\ud83d", "\ud83d\u0041"]"#), Some(serde_json::json!(["\u{fffd}", "\u{fffd}A"])));
        // Two highs in a row: both lone.
        assert_eq!(parsed(r#""\ud800\ud800""#), Some(serde_json::json!("\u{fffd}\u{fffd}")));
        // A pair is kept, as is an escaped backslash before a `u`.
        assert_eq!(parsed(r#"["\ud83c\udf89", "\\ud800", "\\\ud800"]"#), Some(serde_json::json!(["🎉", "\\ud800", "\\\u{fffd}"])));
        // Other errors stay errors, with serde_json's message.
        let err = parse_value(br#"{"a": "\ud800", }"#).unwrap_err();
        assert!(err.to_string().contains("trailing comma"), "{err}");
        assert!(parse_value(b"{\"a\": \"\\ud8").is_err());
        assert!(parse_value(b"\"\\ud800\\").is_err());
        assert!(parse_value(b"\\").is_err());
        assert_eq!(crate::json::lone_surrogates_replaced(br#"{"a": "\u0041\n"}"#), None);
    }
    use serde_json::json;

    /// Whatever a response view reads from bytes is one well-formed JSON
    /// value once it is UTF-8: every mutation of a pretty-printed answer (a byte deleted, or
    /// replaced by one that matters to JSON) that the view still reads is
    /// JSON to `serde_json`'s own check, and compacts to the text that
    /// check gives.
    /// Whatever a view reads from bytes is one well-formed JSON value once
    /// it is UTF-8: every mutation of `body` (a byte deleted, or replaced
    /// by one that matters to JSON) that `reads` still reads is JSON to
    /// `serde_json`'s own check, and compacts to the text that check gives.
    fn bytes_read_are_json(body: &[u8], reads: fn(&[u8]) -> bool) {
        let swaps: &[u8] = b"\"{}[],:\\ 0e-.+tnfx\x7f\x80\xff\x01";
        let mut read = 0;
        for at in 0..body.len() {
            let deleted = [&body[..at], &body[at + 1..]].concat();
            let replaced = swaps.iter().map(|&b| {
                let mut body = body.to_vec();
                body[at] = b;
                body
            });
            for body in std::iter::once(deleted).chain(replaced) {
                if !reads(&body) {
                    continue;
                }
                read += 1;
                let checked = crate::record::JsonText::compact(&body);
                let Some(unchecked) = crate::record::JsonText::compact_read(&body) else {
                    // serde_json skips a string without looking at its bytes.
                    assert!(std::str::from_utf8(&body).is_err() && checked.is_err());
                    continue;
                };
                let checked = checked.unwrap_or_else(|e| panic!("read but not JSON ({e}): {}", String::from_utf8_lossy(&body)));
                assert_eq!(unchecked.as_str(), checked.as_str());
            }
        }
        assert!(read > body.len(), "most whitespace and letter changes still read ({read})");
    }

    #[test]
    fn bytes_a_response_view_reads_are_json() {
        let answer = br#"{
  "id": "chatcmpl-1",
  "choices": [{"index": 0, "message": {"role": "assistant", "content": "a \"quoted\" \u00e9 word",
    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]},
    "logprobs": null, "finish_reason": "tool_calls"}],
  "usage": {"prompt_tokens": 75, "completion_tokens": 5.0e1, "total_tokens": -126, "details": [true, false, {}]},
  "extra": {"nested": [[1, 2], {"k": "v"}], "t": true}, "status": "completed"
}"#;
        bytes_read_are_json(answer, |body| of_bytes::<ResponseView>(body).is_some());
    }

    #[test]
    fn bytes_a_request_view_reads_are_json() {
        let request = br#"{"model": "gpt-4o", "messages": [{"role": "system", "content": "Be \"brief\" \u00e9"},
  {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "u"}}]}],
  "temperature": 0.5e0, "max_tokens": 10, "stop": ["\n"], "stream": false, "tool_choice": {"type": "auto"},
  "response_format": {"type": "json_object"}, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
  "user": "u1", "seed": -1, "extra": [null, true, {"k": [1.5]}]}"#;
        bytes_read_are_json(request, |body| of_bytes::<RequestView>(body).is_some());
    }

    #[test]
    fn strings_are_borrowed_from_bytes_without_escapes() {
        let body = br#"{"id": "chatcmpl-1", "model": "gpt-\u0034o", "choices": [{"finish_reason": "stop"}]}"#;
        let view: ResponseView = of_bytes(body).unwrap();
        assert!(matches!(view.id.0, Some(Cow::Borrowed("chatcmpl-1"))));
        assert!(matches!(view.model.0, Some(Cow::Owned(ref m)) if m == "gpt-4o"), "an escape makes a copy");
        assert_eq!(view.choices.finish_reasons, vec![json!("stop")]);
    }

    #[test]
    fn a_field_of_another_type_reads_as_absent() {
        let body = br#"{"model": ["x"], "stream": "yes", "temperature": {"a": [1, {"b": 2}]}, "n": true,
            "response_format": [{"type": "json_object"}], "text": {"format": "json"}, "stop": null}"#;
        let view: RequestView = of_bytes(body).unwrap();
        assert_eq!(view.model.get(), None);
        assert_eq!(view.stream.0, None);
        assert_eq!((view.temperature.present, view.temperature.value), (true, None));
        assert_eq!(view.n.as_u64(), None);
        assert!(view.response_format.get().is_none());
        assert!(view.text.get().is_some_and(|t| t.format.get().is_none()));
        assert_eq!(view.stop.get(), Some(Value::Null), "null is there");
        assert_eq!(view.tool_choice.get(), None, "absent is not");
        assert!(!view.seed.present);
    }

    #[test]
    fn bytes_that_repeat_a_key_or_are_no_json_give_no_view() {
        assert!(of_bytes::<ResponseView>(br#"{"model": "a", "model": "b"}"#).is_none());
        assert!(of_bytes::<ResponseView>(b"{").is_none());
        assert!(of_bytes::<ResponseView>(br#"{"model": "a"} trailing"#).is_none());
        // A parsed value keeps the last of a repeated key; its view reads it.
        let parsed: Value = serde_json::from_slice(br#"{"model": "a", "model": "b"}"#).unwrap();
        assert_eq!(of_value::<ResponseView>(&parsed).model.get(), Some("b"));
    }

    #[test]
    fn an_embedding_is_sized_as_numbers_or_as_base64_floats() {
        let size = |body: &str| of_bytes::<DataItem>(body.as_bytes()).unwrap().embedding.0;
        assert_eq!(size(r#"{"embedding": [0.5, 1, -2]}"#), Some(3));
        assert_eq!(size(r#"{"embedding": []}"#), Some(0));
        // Three floats are 12 bytes, 16 characters; two are 8 bytes, "…=".
        let three: Vec<u8> = [0.5f32, 1.0, -2.0].iter().flat_map(|f| f.to_le_bytes()).collect();
        assert_eq!(three.len(), 12);
        for (text, n) in [("AAAAPwAAgD8AAADA", Some(3)), ("AAAAPwAAgD8=", Some(2)), ("AAAAPwAAgD8", Some(2)), ("", Some(0))] {
            assert_eq!(size(&format!(r#"{{"embedding": "{text}"}}"#)), n, "{text}");
            assert_eq!(EmbeddingSize::of_value(&Value::String(text.into())), n, "{text}");
        }
        // Not whole floats, not base64, not an embedding.
        for text in ["AAAAPwA=", "AAAAPwAAgD8==", "AAA$PwAAgD8A", "A", "AAAAP==="] {
            assert_eq!(size(&format!(r#"{{"embedding": "{text}"}}"#)), None, "{text}");
        }
        for other in ["7", "null", "{}", "true"] {
            assert_eq!(size(&format!(r#"{{"embedding": {other}}}"#)), None, "{other}");
        }
        assert_eq!(size("{}"), None);
    }

    #[test]
    fn a_view_reads_the_same_from_bytes_and_from_a_value() {
        let body = br#"{"id": "r", "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "reasoning"}, 7, {"type": "function_call"}], "error": null,
            "data": [{"embedding": [0.1, 0.2, 0.3], "url": "u", "b64_json": "QUJD", "revised_prompt": null}, "x"],
            "usage": {"input_tokens": 3, "output_tokens_details": {"reasoning_tokens": 2}}}"#;
        let parsed: Value = serde_json::from_slice(body).unwrap();
        for view in [of_bytes::<ResponseView>(body).unwrap(), of_value::<ResponseView>(&parsed)] {
            assert_eq!(view.status.get(), Some("incomplete"));
            assert_eq!(view.incomplete_details.get().and_then(|d| d.reason.get()), Some("max_output_tokens"));
            let kinds: Vec<_> = view.output.items().iter().map(|i| i.get().and_then(|i| i.kind.get())).collect();
            assert_eq!(kinds, [Some("reasoning"), None, Some("function_call")]);
            assert!(view.error.get().is_none() && !view.is_api_error());
            let data = view.data.items();
            assert_eq!(data.len(), 2);
            let first = data[0].get().unwrap();
            assert_eq!(first.embedding, EmbeddingSize(Some(3)));
            assert_eq!((first.url.get(), first.b64_json.get()), (Some("u"), Some("QUJD")));
            assert_eq!(first.revised_prompt.get(), Some(Value::Null));
            assert!(data[1].get().is_none());
            let usage = view.usage.get().unwrap();
            assert_eq!(usage.input_tokens.as_u64(), Some(3));
            assert!(!usage.prompt_tokens.present);
            assert_eq!(usage.output_tokens_details.get().unwrap().reasoning_tokens.as_u64(), Some(2));
            assert!(!view.choices.present);
        }
    }
}
