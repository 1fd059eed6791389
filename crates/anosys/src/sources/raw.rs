//! The raw logger: any JSON becomes a record (the seed's
//! `anosys_raw_logger`).

use serde::Serialize;
use serde_json::Value;

use crate::record::{Record, RecordKind, Status};

/// The record for raw `data`: every top-level key of an object becomes an
/// attribute (so AnoSys maps it to a column), and the whole value is kept
/// in `raw`. Anything that is not an object is kept under the key `value`.
///
/// ```
/// use serde_json::json;
/// let r = anosys::sources::raw::raw_record(json!({"event": "signup", "plan": "pro"}));
/// assert_eq!(r.attribute("event"), Some(&json!("signup")));
/// assert_eq!(r.raw, Some(json!({"event": "signup", "plan": "pro"})));
/// ```
pub fn raw_record(data: Value) -> Record {
    let mut record = Record::new(RecordKind::Raw, "raw");
    match &data {
        Value::Object(map) => {
            for (k, v) in map {
                record.attributes.insert(k.clone().into(), v.clone());
            }
        }
        other => {
            record.attributes.insert("value".into(), other.clone());
        }
    }
    if let Some(Value::String(name)) = data.get("event").or_else(|| data.get("name")) {
        record.name = name.clone();
    }
    record.raw = Some(data);
    record.status = Status::ok();
    record
}

/// Like [`raw_record`] for any `Serialize` value; a value that fails to
/// serialise is logged as its error text rather than lost silently.
pub fn raw_record_from<T: Serialize + ?Sized>(data: &T) -> Record {
    match serde_json::to_value(data) {
        Ok(v) => raw_record(v),
        Err(e) => {
            let mut r = raw_record(Value::Null);
            r.attributes.clear();
            r.set_attribute("serialization_error", e.to_string());
            r
        }
    }
}
