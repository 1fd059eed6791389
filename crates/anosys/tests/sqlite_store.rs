//! The embedded SQLite store: indexed columns, migration of an older
//! schema, two processes writing one file at once, and never touching a
//! file anosys did not make (foreign databases and other files refused,
//! damaged anosys stores set aside).

mod support;

use std::process::Command;
use std::time::Duration;

use anosys::sinks::sqlite::{self, StoreError, APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION};
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
    // The whole record, as the pipeline prepared it (priced).
    let mut priced = llm.clone();
    anosys::cost::price_record(anosys::cost::PriceTable::builtin(), &mut priced);
    assert!(priced.attribute("gen_ai.usage.cost").is_some());
    assert_eq!(stored[0].attributes, priced.attributes);
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
    let id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).unwrap();
    assert_eq!(id, APPLICATION_ID, "an earlier anosys store is adopted");
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
    // Version 4: the time index carries the trace id; none is keyed by it alone.
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(indexes.contains(&"records_start_trace".to_owned()), "{indexes:?}");
    assert!(indexes.contains(&"records_start".to_owned()), "{indexes:?}");
    assert!(!indexes.iter().any(|i| i == "records_trace"), "{indexes:?}");
}

/// A page size and the checkpoint interval (in pages) of the store at `db`,
/// as the store's own connection sets them.
fn pages_of(db: &std::path::Path) -> (i64, i64) {
    let conn = sqlite::open(db).unwrap();
    let size = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    let checkpoint = conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
    (size, checkpoint)
}

#[test]
fn a_new_store_has_16_kib_pages_and_an_older_one_keeps_its_own() {
    let dir = temp_dir("sqlite-pages-size");
    // New: 16 KiB pages, a checkpoint every 40 MiB of WAL.
    let new = dir.join("new.db");
    let p = pipeline(&new);
    for i in 0..400 {
        p.submit(anosys::sources::raw::raw_record(json!({"i": i, "text": "x".repeat(900)})));
    }
    assert_eq!(p.shutdown(Some(Duration::from_secs(10))).counters.delivered, 400);
    assert_eq!(pages_of(&new), (16 * 1024, 2560));
    let header = std::fs::read(&new).unwrap();
    assert_eq!(u16::from_be_bytes([header[16], header[17]]), 16 * 1024, "the file itself has 16 KiB pages");
    // Rows of about 2.3 KB: several to a page, where a 4 KiB page held
    // one (4.2 KB of file a record).
    let conn = rusqlite::Connection::open(&new).unwrap();
    let (pages, row_bytes): (i64, i64) = (
        conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap(),
        conn.query_row("SELECT sum(length(record)) FROM records", [], |r| r.get(0)).unwrap(),
    );
    assert!(pages * 16 * 1024 < row_bytes * 3 / 2, "{pages} pages of 16 KiB for {row_bytes} bytes of records");
    assert_eq!(support::stored(&new).len(), 400);
    // Made with 4 KiB pages by an earlier version: it keeps them, and
    // still checkpoints every 40 MiB of WAL.
    let old = dir.join("old.db");
    {
        let conn = rusqlite::Connection::open(&old).unwrap();
        conn.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;").unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
    }
    let p = pipeline(&old);
    p.submit(anosys::sources::raw::raw_record(json!({"event": "into a 4 KiB store"})));
    assert_eq!(p.shutdown(Some(Duration::from_secs(10))).counters.delivered, 1);
    assert_eq!(pages_of(&old), (4096, 10_240));
    assert_eq!(support::stored(&old).len(), 1);
}

/// Bytes of page cache `conn` holds (`SQLITE_DBSTATUS_CACHE_USED`).
fn cache_used(conn: &rusqlite::Connection) -> i32 {
    let (mut current, mut highwater) = (0, 0);
    // SAFETY: the handle is the open connection's, used on this thread
    // while `conn` is borrowed; the two out-pointers are valid ints.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_db_status(conn.handle(), rusqlite::ffi::SQLITE_DBSTATUS_CACHE_USED, &mut current, &mut highwater, 0)
    };
    assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
    current
}

#[test]
fn the_connection_that_makes_a_store_keeps_its_page_cache_within_2000_kib() {
    // The cache's bound in pages is worked out when it is set: set before
    // the page size, it would allow 2,000 KiB of 4 KiB pages, in 16 KiB
    // pages (about 7.8 MiB).
    let dir = temp_dir("sqlite-cache-bound");
    let mut conn = sqlite::open(&dir.join("new.db")).unwrap();
    let text = "a long message ".repeat(3000);
    for _ in 0..10 {
        let records: Vec<_> = (0..50).map(|i| anosys::sources::raw::raw_record(json!({"i": i, "text": text}))).collect();
        sqlite::insert(&mut conn, &records).unwrap();
    }
    let used = cache_used(&conn);
    assert!(used > 1024 * 1024, "the cache filled: {used} bytes");
    assert!(used <= 2200 * 1024, "{used} bytes of page cache");
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

fn application_id(db: &std::path::Path) -> i32 {
    rusqlite::Connection::open(db).unwrap().query_row("PRAGMA application_id", [], |r| r.get(0)).unwrap()
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_new_store_carries_the_anosys_mark() {
    let dir = temp_dir("sqlite-mark");
    for db in [dir.join("missing/anosys.db"), dir.join("empty.db")] {
        if db.ends_with("empty.db") {
            std::fs::write(&db, b"").unwrap();
        }
        drop(sqlite::open(&db).unwrap());
        assert_eq!(application_id(&db), APPLICATION_ID, "{}", db.display());
        // The header carries the mark once the WAL is checkpointed (at close).
        assert_eq!(&std::fs::read(&db).unwrap()[68..72], &APPLICATION_ID.to_be_bytes());
    }
}

/// An application's own database: its application id (0 when `None`) and
/// a table of its own named `records`, with data.
fn foreign_db(path: &std::path::Path, application_id: Option<i32>) -> Vec<u8> {
    {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE records (id INTEGER PRIMARY KEY, title TEXT);
             INSERT INTO records (title) VALUES ('mine');
             PRAGMA user_version = 3;",
        )
        .unwrap();
        if let Some(id) = application_id {
            conn.execute_batch(&format!("PRAGMA application_id = {id}")).unwrap();
        }
    }
    std::fs::read(path).unwrap()
}

#[test]
fn a_foreign_database_or_other_file_is_refused_and_left_as_it_is() {
    let dir = temp_dir("sqlite-foreign");
    let zero = dir.join("app.db");
    let other = dir.join("other.db");
    let text = dir.join("notes.txt");
    let before = [
        (zero.clone(), foreign_db(&zero, None)),
        (other.clone(), foreign_db(&other, Some(0x0F00_0001))),
        (text.clone(), {
            std::fs::write(&text, "a text file, not a database\n".repeat(10)).unwrap();
            std::fs::read(&text).unwrap()
        }),
    ];
    let listed = files_in(&dir);
    for (path, bytes) in &before {
        let err = sqlite::open(path).unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        assert_eq!(err.path(), path);
        match err {
            StoreError::Foreign { application_id, .. } => {
                assert_ne!(path, &text);
                assert_eq!(application_id, if path == &other { 0x0F00_0001 } else { 0 });
            }
            StoreError::NotADatabase { .. } => assert_eq!(path, &text),
            e => panic!("{e:?}"),
        }
        let err = sqlite::open_read_only(path).unwrap_err();
        assert!(matches!(err, StoreError::Foreign { .. } | StoreError::NotADatabase { .. }), "{err:?}");
        assert_eq!(&std::fs::read(path).unwrap(), bytes, "{} changed", path.display());
    }
    assert_eq!(files_in(&dir), listed, "no file was added, renamed or removed");
}

/// Child entry point: a pipeline into a refused SQLite store and a JSON
/// lines file, logging errors.
#[test]
fn child_writes_past_a_refused_store() {
    let (Some(db), Some(jsonl)) = (std::env::var_os("ANOSYS_TEST_REFUSED_DB"), std::env::var_os("ANOSYS_TEST_JSONL")) else {
        return;
    };
    let config = Config::builder()
        .sinks([anosys::SinkKind::Sqlite, anosys::SinkKind::Jsonl])
        .db_path(&db)
        .jsonl_path(&jsonl)
        .batch_size(7)
        .flush_interval(Duration::from_millis(10))
        .log_level(LogLevel::Error)
        .build()
        .unwrap();
    let p = Pipeline::new(config).unwrap();
    for i in 0..50 {
        assert!(p.submit(anosys::sources::raw::raw_record(json!({"i": i}))));
        if i % 10 == 0 {
            p.flush(Some(Duration::from_secs(10)));
        }
    }
    let report = p.shutdown(Some(Duration::from_secs(10)));
    assert_eq!(report.counters.failed, 50, "{report:?}");
}

#[test]
fn records_bound_for_a_refused_store_fail_and_other_sinks_go_on() {
    if std::env::var_os("ANOSYS_TEST_REFUSED_DB").is_some() {
        return;
    }
    let dir = temp_dir("sqlite-refused");
    let app = dir.join("app.db");
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "not a database").unwrap();
    for (db, bytes) in [(app.clone(), foreign_db(&app, None)), (notes.clone(), std::fs::read(&notes).unwrap())] {
        let jsonl = dir.join(format!("{}.jsonl", db.file_name().unwrap().to_string_lossy()));
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["child_writes_past_a_refused_store", "--exact", "--test-threads=1", "--nocapture"])
            .env("ANOSYS_TEST_REFUSED_DB", &db)
            .env("ANOSYS_TEST_JSONL", &jsonl)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(&db.display().to_string())).collect();
        assert_eq!(lines.len(), 1, "one error naming the path: {stderr}");
        assert!(lines[0].contains("anosys error:") && lines[0].contains("untouched"), "{}", lines[0]);
        assert_eq!(std::fs::read(&db).unwrap(), bytes, "{} changed", db.display());
        let written = std::fs::read_to_string(&jsonl).unwrap();
        assert_eq!(written.lines().count(), 50, "the JSON lines sink got every record");
    }
    assert!(!files_in(&dir).iter().any(|f| f.contains("corrupt") || f.ends_with("-wal") || f.ends_with("-journal")));
}

#[test]
fn an_anosys_store_of_version_2_without_the_mark_is_adopted_and_readable() {
    let dir = temp_dir("sqlite-v2");
    let db = dir.join("v2.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.execute_batch("PRAGMA user_version = 2").unwrap();
        conn.execute(
            "INSERT INTO records (start_ms, end_ms, duration_ms, kind, name, status, trace_id, span_id, record)
             VALUES (1, 2, 1.0, 'raw', 'from v2', 'OK', 't', 's', '{}')",
            [],
        )
        .unwrap();
    }
    let bytes = std::fs::read(&db).unwrap();
    // Reading changes nothing.
    let conn = sqlite::open_read_only(&db).unwrap();
    let name: String = conn.query_row("SELECT name FROM records", [], |r| r.get(0)).unwrap();
    assert_eq!(name, "from v2");
    drop(conn);
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    // Writing adopts it.
    drop(sqlite::open(&db).unwrap());
    assert_eq!(application_id(&db), APPLICATION_ID);
    let conn = sqlite::open_read_only(&db).unwrap();
    let n: i64 = conn.query_row("SELECT count(*) FROM records", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn reading_a_missing_store_creates_nothing() {
    let dir = temp_dir("sqlite-read-missing");
    let db = dir.join("sub/none.db");
    let err = sqlite::open_read_only(&db).unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains(&db.display().to_string()));
    assert!(!dir.join("sub").exists());
    std::fs::write(dir.join("empty.db"), b"").unwrap();
    assert!(matches!(sqlite::open_read_only(&dir.join("empty.db")), Err(StoreError::Missing { .. })));
    assert_eq!(std::fs::metadata(dir.join("empty.db")).unwrap().len(), 0);
}

/// A store with `n` records, closed (its WAL checkpointed into the file).
fn real_store(db: &std::path::Path, n: usize) {
    let mut conn = sqlite::open(db).unwrap();
    let records: Vec<_> = (0..n).map(|i| anosys::sources::raw::raw_record(json!({"old": i}))).collect();
    sqlite::insert(&mut conn, &records).unwrap();
}

fn set_aside_files(dir: &std::path::Path) -> Vec<String> {
    files_in(dir).into_iter().filter(|f| f.contains(".corrupt-")).collect()
}

/// Writes to a damaged store through the pipeline: every record lands in a
/// new store, the damaged one is beside it.
fn write_past_damage(dir: &std::path::Path, db: &std::path::Path, damaged: &[u8]) {
    let p = pipeline(db);
    for i in 0..20 {
        p.submit(anosys::sources::raw::raw_record(json!({"new": i})));
    }
    let report = p.shutdown(Some(Duration::from_secs(10)));
    assert_eq!((report.counters.delivered, report.counters.failed), (20, 0), "{report:?}");
    let aside = set_aside_files(dir);
    assert_eq!(aside.len(), 1, "{aside:?}");
    let name = db.file_name().unwrap().to_string_lossy().into_owned();
    let stamp = aside[0].strip_prefix(&format!("{name}.corrupt-")).unwrap();
    assert_eq!(stamp.len(), "20261202T013000Z".len(), "{stamp}");
    assert!(stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T', "{stamp}");
    assert_eq!(std::fs::read(dir.join(&aside[0])).unwrap(), damaged, "set aside as it was");
    let records = support::stored(db);
    assert_eq!(records.len(), 20);
    assert_eq!(application_id(db), APPLICATION_ID);
}

#[test]
fn a_store_with_the_anosys_header_and_garbage_pages_is_set_aside() {
    let dir = temp_dir("sqlite-garbage");
    let db = dir.join("anosys.db");
    real_store(&db, 3);
    let mut bytes = std::fs::read(&db).unwrap();
    // Keep the 100-byte header, garble everything after it.
    for (i, b) in bytes.iter_mut().enumerate().skip(100) {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&db, &bytes).unwrap();
    assert!(matches!(sqlite::open_read_only(&db), Err(StoreError::Damaged { .. })));
    assert!(set_aside_files(&dir).is_empty(), "reading never renames");
    write_past_damage(&dir, &db, &bytes);
}

#[test]
fn a_store_with_a_damaged_anosys_header_is_set_aside() {
    let dir = temp_dir("sqlite-header");
    let db = dir.join("anosys.db");
    real_store(&db, 3);
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..16].copy_from_slice(b"garbage garbage!");
    std::fs::write(&db, &bytes).unwrap();
    write_past_damage(&dir, &db, &bytes);
}

#[test]
fn a_store_whose_table_pages_are_overwritten_is_set_aside_when_written() {
    let dir = temp_dir("sqlite-pages");
    let db = dir.join("anosys.db");
    real_store(&db, 200);
    let mut bytes = std::fs::read(&db).unwrap();
    let page: usize = u16::from_be_bytes([bytes[16], bytes[17]]).into();
    // Page 2 onwards (the records table's pages), overwritten.
    for b in &mut bytes[page..] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    // Opening does not notice (the schema page is intact): writing does.
    drop(sqlite::open(&db).unwrap());
    assert!(set_aside_files(&dir).is_empty());
    let bytes = std::fs::read(&db).unwrap();
    write_past_damage(&dir, &db, &bytes);
}

#[test]
fn a_damaged_foreign_database_is_never_set_aside() {
    let dir = temp_dir("sqlite-damaged-foreign");
    let db = dir.join("app.db");
    let mut bytes = foreign_db(&db, None);
    for b in bytes.iter_mut().skip(100) {
        *b = 0x5A;
    }
    std::fs::write(&db, &bytes).unwrap();
    let p = pipeline(&db);
    p.submit(anosys::sources::raw::raw_record(json!({"n": 1})));
    assert_eq!(p.shutdown(Some(Duration::from_secs(10))).counters.failed, 1);
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    assert_eq!(files_in(&dir), ["app.db"]);
}

#[test]
fn threads_opening_a_new_store_at_once_all_succeed() {
    let dir = temp_dir("sqlite-threads");
    let db = dir.join("new.db");
    let start = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (db, start) = (db.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut conn = sqlite::open(&db).unwrap();
                sqlite::insert(&mut conn, &[anosys::sources::raw::raw_record(json!({"thread": i}))]).unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(support::stored(&db).len(), 8);
    assert_eq!(application_id(&db), APPLICATION_ID);
    assert!(set_aside_files(&dir).is_empty());
}

#[test]
fn a_new_store_is_readable_while_its_writer_still_has_it_open() {
    let dir = temp_dir("sqlite-live");
    let db = dir.join("live.db");
    let mut conn = sqlite::open(&db).unwrap();
    sqlite::insert(&mut conn, &[anosys::sources::raw::raw_record(json!({"n": 1}))]).unwrap();
    // Its records are still in the WAL, not yet in the main file.
    let reader = sqlite::open_read_only(&db).unwrap();
    let n: i64 = reader.query_row("SELECT count(*) FROM records", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
    drop(sqlite::open(&db).unwrap());
}
