//! Eight threads, each with its own pipeline (so eight workers encode at
//! once against the one process-wide slot registry), log records with
//! shared and new keys until every slot type runs out. Runs in its own
//! process: it uses up this process's registry.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anosys::{Config, LogLevel, Pipeline};
use serde_json::{json, Map, Value};
use support::{temp_dir, Backend};

const THREADS: usize = 8;
const PER_THREAD: usize = 60;

fn record_data(t: usize, i: usize) -> Map<String, Value> {
    let j = i % 10;
    let v = json!({
        "rec.id": format!("{t}-{i}"),
        format!("shared.s{j}"): format!("shared-{j}"),
        format!("shared.n{j}"): j,
        format!("shared.b{j}"): j.is_multiple_of(2),
        format!("t{t}.s{i}"): format!("v{t}-{i}"),
        format!("t{t}.l{i}"): [t, i],
        format!("t{t}.n{i}"): (t * 1000 + i) as f64 + 0.5,
        format!("t{t}.b{i}"): !i.is_multiple_of(2),
    });
    v.as_object().unwrap().clone()
}

#[test]
fn keys_never_share_or_move_slots_and_overflow_keeps_the_rest() {
    let backend = Backend::start();
    let dir = temp_dir("exhaust");
    let url = backend.url();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let url = url.clone();
            let dir = dir.clone();
            std::thread::spawn(move || {
                let config = Config::builder()
                    .api_url(url)
                    .batch_size(7)
                    .flush_interval(Duration::from_millis(5))
                    .jsonl_path(dir.join(format!("t{t}.jsonl")))
                    .log_level(LogLevel::Off)
                    .build()
                    .unwrap();
                let pipeline = Pipeline::new(config).unwrap();
                for i in 0..PER_THREAD {
                    assert!(pipeline.submit(anosys::sources::raw::raw_record(Value::Object(record_data(t, i)))));
                }
                let report = pipeline.shutdown(Some(Duration::from_secs(30)));
                assert_eq!(report.counters.delivered, PER_THREAD as u64, "{report:?}");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }

    let bodies = backend.accepted();
    assert_eq!(bodies.len(), THREADS * PER_THREAD);

    // One key, one slot, in every mapping that was sent; one slot, one key.
    let mut key_slot: HashMap<String, String> = HashMap::new();
    let mut slot_key: HashMap<String, String> = HashMap::new();
    for body in &bodies {
        let mapping: Map<String, Value> = serde_json::from_str(body["otel_schema_url"].as_str().unwrap()).unwrap();
        for (key, slot) in mapping {
            let slot = slot.as_str().unwrap().to_owned();
            if let Some(prev) = key_slot.insert(key.clone(), slot.clone()) {
                assert_eq!(prev, slot, "key {key} moved");
            }
            // The fixed table maps several keys to one column on purpose
            // (source/from_source, input/llm_input, ...); dynamic ones never.
            if anosys::sinks::anosys::mapping::fixed_column(&key).is_none() {
                if let Some(prev) = slot_key.insert(slot.clone(), key.clone()) {
                    assert_eq!(prev, key, "slot {slot} shared");
                }
                assert!(!anosys::sinks::anosys::mapping::is_reserved_slot(&slot), "{key} got reserved {slot}");
                let (prefix, n) = slot.split_at(3);
                let n: u32 = n.parse().unwrap();
                match prefix {
                    "cvs" => assert!((100..=198).contains(&n), "{slot}"),
                    "cvn" => assert!((4..=99).contains(&n), "{slot}"),
                    "cvb" => assert!((3..=99).contains(&n), "{slot}"),
                    _ => panic!("unexpected dynamic column {slot}"),
                }
            }
        }
    }
    let used = |p: &str| slot_key.keys().filter(|s| s.starts_with(p)).count();
    assert_eq!(used("cvs"), 99, "every string slot is used");
    assert_eq!(used("cvn"), 96, "every number slot is used");
    assert_eq!(used("cvb"), 97, "every bool slot is used");

    // Every value of every record arrived: in its slot, or in the overflow.
    let mut overflowed: BTreeMap<&str, usize> = BTreeMap::new();
    for body in &bodies {
        let overflow: Map<String, Value> = body
            .get("otel_attributes")
            .map(|v| serde_json::from_str(v.as_str().unwrap()).unwrap())
            .unwrap_or_default();
        let id = match body.get(key_slot["rec.id"].as_str()) {
            Some(v) => v.as_str().unwrap().to_owned(),
            None => overflow["rec.id"].as_str().unwrap().to_owned(),
        };
        let (t, i) = id.split_once('-').unwrap();
        let expected = record_data(t.parse().unwrap(), i.parse().unwrap());
        for (key, value) in &expected {
            let sent = key_slot.get(key).and_then(|slot| body.get(slot));
            match sent {
                Some(v) => {
                    let want = match value {
                        Value::Array(_) => Value::String(value.to_string()),
                        other => other.clone(),
                    };
                    assert_eq!(v, &want, "{key} in {id}");
                    assert!(!overflow.contains_key(key));
                }
                None => {
                    assert_eq!(overflow.get(key), Some(value), "{key} of {id} is lost");
                    let kind = match value {
                        Value::Bool(_) => "bool",
                        Value::Number(_) => "number",
                        _ => "string",
                    };
                    *overflowed.entry(kind).or_default() += 1;
                }
            }
        }
    }
    assert!(overflowed.get("string").copied().unwrap_or(0) > 0, "{overflowed:?}");
    assert!(overflowed.get("number").copied().unwrap_or(0) > 0, "{overflowed:?}");
    assert!(overflowed.get("bool").copied().unwrap_or(0) > 0, "{overflowed:?}");
}
