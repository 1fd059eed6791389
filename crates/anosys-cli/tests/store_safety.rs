//! The `anosys` command never touches a file that is not an anosys store:
//! reading commands open the store read-only and never create it, another
//! application's database or a text file at `--db` is refused with a clear
//! error and left byte for byte as it was, and a damaged anosys store is
//! reported by readers and set aside by the next writer.

mod command;

use std::path::Path;

use command::anosys;
use predicates::prelude::*;
use rusqlite::Connection;


/// The reading commands, each as a user types it.
const READERS: &[&[&str]] = &[&["logs"], &["logs", "--json"], &["stats"], &["show", "1"], &["export"], &["export", "--format", "csv"]];

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// An application's own SQLite database, with a table it calls `records`.
fn app_database(path: &Path) -> Vec<u8> {
    {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
             CREATE TABLE records (id INTEGER PRIMARY KEY, user_id INTEGER, amount REAL);
             INSERT INTO users (email) VALUES ('ada@example.com');
             INSERT INTO records (user_id, amount) VALUES (1, 9.5);
             PRAGMA user_version = 7;",
        )
        .unwrap();
    }
    std::fs::read(path).unwrap()
}

#[test]
fn reading_commands_refuse_an_application_database_and_leave_it_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let bytes = app_database(&db);
    for args in READERS {
        anosys(&db).args(*args).assert().failure().stderr(
            predicate::str::contains(db.display().to_string())
                .and(predicate::str::contains("another application, not an anosys store"))
                .and(predicate::str::contains("hint:"))
                .and(predicate::str::contains("ANOSYS_DB")),
        );
        assert_eq!(std::fs::read(&db).unwrap(), bytes, "anosys {args:?} changed the file");
    }
    assert_eq!(files_in(dir.path()), ["app.db"]);
    let tables: i64 = Connection::open(&db).unwrap().query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).unwrap();
    assert_eq!(tables, 2, "no anosys table was added");
}

#[test]
fn reading_commands_refuse_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.txt");
    std::fs::write(&db, "shopping list\n- milk\n".repeat(20)).unwrap();
    let bytes = std::fs::read(&db).unwrap();
    for args in READERS {
        anosys(&db).args(*args).assert().failure().stderr(
            predicate::str::contains(db.display().to_string()).and(predicate::str::contains("not a SQLite database")),
        );
    }
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    assert_eq!(files_in(dir.path()), ["notes.txt"]);
}

#[test]
fn reading_commands_on_a_missing_store_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub").join("none.db");
    for args in READERS.iter().copied().chain([&["send"][..]]) {
        anosys(&db).args(args).assert().failure().stderr(
            predicate::str::contains(format!("no local store at {}", db.display()))
                .and(predicate::str::contains("no records yet"))
                .and(predicate::str::contains("anosys demo")),
        );
    }
    assert!(files_in(dir.path()).is_empty(), "{:?}", files_in(dir.path()));
    // An empty file is no store yet either, and stays empty.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    anosys(&empty).arg("logs").assert().failure().stderr(predicate::str::contains("no records yet"));
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}

#[test]
fn writing_to_an_application_database_fails_and_leaves_it_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let bytes = app_database(&db);
    anosys(&db)
        .arg("demo")
        .current_dir(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains(db.display().to_string()).and(predicate::str::contains("untouched")));
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    assert_eq!(files_in(dir.path()), ["app.db"]);
}

#[test]
fn reading_a_store_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    anosys(&db).arg("demo").current_dir(dir.path()).assert().success();
    let listed = files_in(dir.path());
    let bytes = std::fs::read(&db).unwrap();
    for args in READERS {
        anosys(&db).args(*args).assert().success();
    }
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    assert_eq!(files_in(dir.path()), listed);
}

#[test]
fn a_damaged_store_is_reported_by_readers_and_set_aside_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("store.db");
    anosys(&db).arg("demo").current_dir(dir.path()).assert().success();
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().skip(100) {
        *b = 0xEE;
    }
    std::fs::write(&db, &bytes).unwrap();

    anosys(&db).arg("logs").assert().failure().stderr(
        predicate::str::contains(format!("the anosys store {} is damaged", db.display()))
            .and(predicate::str::contains("corrupt")),
    );
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "readers never move or mend a store");

    anosys(&db).arg("demo").current_dir(dir.path()).assert().success().stderr(predicate::str::contains("moved aside to"));
    let aside: Vec<String> = files_in(dir.path()).into_iter().filter(|f| f.starts_with("store.db.corrupt-")).collect();
    assert_eq!(aside.len(), 1, "{:?}", files_in(dir.path()));
    assert_eq!(std::fs::read(dir.path().join(&aside[0])).unwrap(), bytes);
    let out = anosys(&db).args(["logs", "--json"]).assert().success().get_output().stdout.clone();
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 9, "the new store holds the second demo's records");
}
