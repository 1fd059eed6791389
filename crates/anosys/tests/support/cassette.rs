//! The recorded OpenAI exchanges in tests/fixtures/openai-cassettes
//! (vcrpy YAML; see its NOTICE.md).

use std::path::PathBuf;

use serde_json::Value;

/// One recorded request and its response.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub name: String,
    pub method: String,
    pub uri: String,
    pub request: Value,
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Exchange {
    pub fn is_sse(&self) -> bool {
        self.content_type.starts_with("text/event-stream")
    }
}

pub fn dir() -> PathBuf {
    // From this crate or from a sibling one (the CLI's tests use them too).
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../anosys/tests/fixtures/openai-cassettes")
}

/// Every cassette file name (without `.yaml`).
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".yaml").map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn header(headers: &serde_yaml::Value, name: &str) -> Option<String> {
    let map = headers.as_mapping()?;
    for (k, v) in map {
        if k.as_str()?.eq_ignore_ascii_case(name) {
            return match v {
                serde_yaml::Value::Sequence(s) => s.first()?.as_str().map(str::to_owned),
                other => other.as_str().map(str::to_owned),
            };
        }
    }
    None
}

/// The exchanges of one cassette.
pub fn load(name: &str) -> Vec<Exchange> {
    let text = std::fs::read_to_string(dir().join(format!("{name}.yaml"))).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    doc["interactions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|i| {
            let req = &i["request"];
            let resp = &i["response"];
            let request = req["body"].as_str().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
            Exchange {
                name: name.to_owned(),
                method: req["method"].as_str().unwrap_or("POST").to_owned(),
                uri: req["uri"].as_str().unwrap().to_owned(),
                request,
                status: resp["status"]["code"].as_u64().unwrap() as u16,
                content_type: header(&resp["headers"], "content-type").unwrap_or_default(),
                body: resp["body"]["string"].as_str().unwrap_or("").as_bytes().to_vec(),
            }
        })
        .collect()
}

/// The first exchange of a cassette.
pub fn first(name: &str) -> Exchange {
    load(name).remove(0)
}
