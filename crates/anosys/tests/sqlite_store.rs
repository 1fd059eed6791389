//! The embedded SQLite store: indexed columns, migration of an older
//! schema, and two processes writing one file at once.

mod support;

use std::process::Command;
use std::time::Duration;

use anosys::sinks::sqlite::{self, MIGRATIONS, SCHEMA_VERSION};
use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use anosys::{Config, LogLevel, Pipeline};
use serde_json::json;
use support::{cassette, temp_dir};

fn pipeline(db: &std::path::Path) -> Pipeline {
    let config = Config::builder()
        .db_path(db)
        .batch_size(7)
        .flush_interval(Duration::from_millis(10))
        .log_level(LogLevel::Off)
        .build()
        .unwrap();
    Pipeline::new(config).unwrap()
}

#[test]
fn rows_carry_the_indexed_columns_and_the_whole_record() {
    let dir = temp_dir("sqlite-columns");
    let db = dir.join("anosys.db");
    let p = pipeline(&db);
    let x = cassette::first("test_chat_completion_streaming");
    let mut stream = OpenAiCall::start(&x.uri, x.request.clone(), &CaptureOptions::default()).into_stream();
    stream.push_bytes(&x.body);
    let llm = stream.finish();
    p.submit(llm.clone());
    p.submit(anosys::sources::raw::raw_record(json!({"event": "signup"})));
    assert_eq!(p.shutdown(Some(Duration::from_secs(10))).counters.delivered, 2);

    let conn = sqlite::open(&db).unwrap();
    type Row = (String, Option<String>, Option<String>, String, Option<i64>, Option<i64>, Option<f64>, String, f64);
    let row: Row = conn
        .query_row(
            "SELECT kind, source, model, status, input_tokens, output_tokens, time_to_first_chunk_ms, trace_id, duration_ms
             FROM records WHERE kind = 'llm_call'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?)),
        )
        .unwrap();
    assert_eq!(row.0, "llm_call");
    assert_eq!(row.1.as_deref(), Some("openai"));
    assert_eq!(row.2.as_deref(), Some("gpt-4-0613"));
    assert_eq!(row.3, "OK");
    assert_eq!((row.4, row.5), (Some(12), Some(5)));
    assert!(row.6.unwrap() >= 0.0);
    assert_eq!(row.7, llm.trace_id.to_string());
    assert!(row.8 >= 0.0);
    let stored = support::stored(&db);
    assert_eq!(stored[0].attributes, llm.attributes);
    assert_eq!(stored[1].name, "signup");
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn an_older_schema_is_migrated_on_open() {
    let dir = temp_dir("sqlite-migrate");
    let db = dir.join("old.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        conn.execute(
            "INSERT INTO records (start_ms, end_ms, duration_ms, kind, name, status, trace_id, span_id, record)
             VALUES (1, 2, 1.0, 'raw', 'from v1', 'OK', 't', 's', '{}')",
            [],
        )
        .unwrap();
    }
    let p = pipeline(&db);
    p.submit(anosys::sources::raw::raw_record(json!({"event": "after migration"})));
    assert_eq!(p.shutdown(Some(Duration::from_secs(10))).counters.delivered, 1);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version as usize, SCHEMA_VERSION);
    let names: Vec<String> = conn
        .prepare("SELECT name FROM records ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(names, ["from v1", "after migration"]);
    let has_ttfc: i64 = conn
        .query_row("SELECT count(*) FROM pragma_table_info('records') WHERE name = 'time_to_first_chunk_ms'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(has_ttfc, 1);
}

const PER_CHILD: usize = 2000;

/// Child entry point: writes PER_CHILD records tagged with its name.
#[test]
fn child_writes_records() {
    let (Some(db), Some(tag)) = (std::env::var_os("ANOSYS_TEST_DB"), std::env::var("ANOSYS_TEST_TAG").ok()) else {
        return;
    };
    let p = pipeline(std::path::Path::new(&db));
    for i in 0..PER_CHILD {
        assert!(p.submit(anosys::sources::raw::raw_record(json!({"writer": tag, "i": i}))));
    }
    let report = p.shutdown(Some(Duration::from_secs(60)));
    assert_eq!(report.counters.delivered, PER_CHILD as u64, "{report:?}");
}

#[test]
fn two_processes_writing_at_once_lose_nothing() {
    if std::env::var_os("ANOSYS_TEST_DB").is_some() {
        return;
    }
    let dir = temp_dir("sqlite-two");
    let db = dir.join("shared.db");
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|tag| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_writes_records", "--exact", "--test-threads=1"])
                .env("ANOSYS_TEST_DB", &db)
                .env("ANOSYS_TEST_TAG", tag)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let conn = sqlite::open(&db).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let records = support::stored(&db);
    assert_eq!(records.len(), 2 * PER_CHILD);
    for tag in ["a", "b"] {
        let mut seen: Vec<i64> = records
            .iter()
            .filter(|r| r.attribute("writer") == Some(&json!(tag)))
            .map(|r| r.attribute("i").unwrap().as_i64().unwrap())
            .collect();
        seen.sort();
        assert_eq!(seen, (0..PER_CHILD as i64).collect::<Vec<_>>(), "writer {tag}");
    }
}
