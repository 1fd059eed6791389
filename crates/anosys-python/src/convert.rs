//! Python objects ↔ JSON values, without a round trip through `json.dumps`.
//!
//! Arbitrary user values (a decorated function's arguments and return
//! value, raw-logger data) become JSON the way a user of Langfuse or
//! OpenLLMetry would expect: containers and scalars as themselves,
//! pydantic models and dataclasses as their fields, dates as ISO text, and
//! anything else as its `repr()`. Conversion never raises and never runs
//! away: depth and size are bounded, and a value that fails to convert is
//! kept as a description of the failure.

use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple, PyType,
};
use serde_json::{Map, Number, Value};

/// Nesting deeper than this is cut (also what stops reference cycles).
const MAX_DEPTH: usize = 24;
/// At most this many values are converted per call; the rest are cut.
const MAX_NODES: usize = 100_000;

/// Converts `obj` to JSON.
pub fn to_value(obj: &Bound<'_, PyAny>) -> Value {
    let mut budget = MAX_NODES;
    convert(obj, 0, &mut budget)
}

fn convert(obj: &Bound<'_, PyAny>, depth: usize, budget: &mut usize) -> Value {
    if *budget == 0 {
        return Value::String("<truncated>".into());
    }
    *budget -= 1;
    if obj.is_none() {
        return Value::Null;
    }
    // Exact types first: the common case, and the cheapest checks.
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return Value::String(s.to_string_lossy().into_owned());
    }
    if obj.is_exact_instance_of::<PyBool>() {
        return Value::Bool(obj.is_truthy().unwrap_or(false));
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        return int(obj);
    }
    if obj.is_instance_of::<PyBool>() {
        return Value::Bool(obj.is_truthy().unwrap_or(false));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return float(f.value());
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Value::String(s.to_string_lossy().into_owned());
    }
    if depth >= MAX_DEPTH {
        return Value::String("<max depth>".into());
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            map.insert(key(&k), convert(&v, depth + 1, budget));
        }
        return Value::Object(map);
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return Value::Array(l.iter().map(|v| convert(&v, depth + 1, budget)).collect());
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return Value::Array(t.iter().map(|v| convert(&v, depth + 1, budget)).collect());
    }
    if let Ok(s) = obj.cast::<PySet>() {
        return Value::Array(s.iter().map(|v| convert(&v, depth + 1, budget)).collect());
    }
    if let Ok(s) = obj.cast::<PyFrozenSet>() {
        return Value::Array(s.iter().map(|v| convert(&v, depth + 1, budget)).collect());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return bytes(b.as_bytes());
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return bytes(&b.to_vec());
    }
    other(obj, depth, budget)
}

/// Pydantic models, dataclasses, enums, dates; else `repr()`.
fn other(obj: &Bound<'_, PyAny>, depth: usize, budget: &mut usize) -> Value {
    let py = obj.py();
    let is_class = obj.is_instance_of::<PyType>();
    // pydantic v2 (and the openai package's models)
    if !is_class
        && obj.hasattr("model_dump_json").unwrap_or(false)
        && let Some(v) = obj
            .call_method0("model_dump_json")
            .ok()
            .and_then(|s| s.extract::<String>().ok())
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
    {
        return v;
    }
    // dataclass instances
    if !is_class
        && let Ok(fields) = obj.getattr("__dataclass_fields__")
        && let Ok(fields) = fields.cast::<PyDict>()
    {
        let mut map = Map::new();
        for name in fields.keys() {
            let name = key(&name);
            if let Ok(v) = obj.getattr(name.as_str()) {
                map.insert(name, convert(&v, depth + 1, budget));
            }
        }
        return Value::Object(map);
    }
    // enum members
    if let Ok(enum_type) = py.import("enum").and_then(|m| m.getattr("Enum"))
        && obj.is_instance(&enum_type).unwrap_or(false)
        && let Ok(v) = obj.getattr("value")
    {
        return convert(&v, depth + 1, budget);
    }
    // datetime, date, time
    if !is_class
        && let Ok(iso) = obj.call_method0("isoformat")
        && let Ok(s) = iso.extract::<String>()
    {
        return Value::String(s);
    }
    match obj.repr() {
        Ok(r) => Value::String(r.to_string_lossy().into_owned()),
        Err(_) => Value::String(format!("<{}>", type_name(obj))),
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

fn key(k: &Bound<'_, PyAny>) -> String {
    match k.cast::<PyString>() {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => k.str().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|_| type_name(k)),
    }
}

fn int(obj: &Bound<'_, PyAny>) -> Value {
    if let Ok(i) = obj.extract::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = obj.extract::<u64>() {
        return Value::Number(u.into());
    }
    // Beyond 64 bits: exact as text rather than rounded.
    Value::String(obj.str().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
}

fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        // NaN and the infinities have no JSON number.
        None => Value::String(if f.is_nan() { "NaN".into() } else if f > 0.0 { "Infinity".into() } else { "-Infinity".into() }),
    }
}

fn bytes(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => Value::String(format!("<{} bytes>", b.len())),
    }
}

/// JSON → Python (for counters and reports).
pub fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for v in a {
                list.append(to_python(py, v)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            let dict = PyDict::new(py);
            for (k, v) in m {
                dict.set_item(k, to_python(py, v)?)?;
            }
            dict.into_any()
        }
    })
}
