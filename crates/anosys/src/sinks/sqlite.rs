//! The embedded local store: a SQLite file (WAL mode), the default sink
//! when no AnoSys key or URL is set.
//!
//! Each row keeps the whole record as JSON next to indexed columns for
//! time, kind, source, model, status, tokens, duration, time to first chunk
//! and trace id. Batches are inserted in one transaction; several
//! processes can write the same file at once (SQLite's locking, with a busy
//! timeout). The schema is versioned (`PRAGMA user_version`) and migrated
//! on open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags};
use serde_json::Value;

use super::local::LocalFile;
use super::{BoxFuture, ExportContext, ExportReport, Sink};
use crate::record::time::epoch_millis;
use crate::record::Record;

/// Schema migrations, in order; `PRAGMA user_version` counts those applied.
pub const MIGRATIONS: &[&str] = &[
    // 1: the records table.
    "CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        start_ms INTEGER NOT NULL,
        end_ms INTEGER NOT NULL,
        duration_ms REAL NOT NULL,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        source TEXT,
        model TEXT,
        status TEXT NOT NULL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX records_start ON records(start_ms);
    CREATE INDEX records_trace ON records(trace_id);",
    // 2: time to first chunk, and indexes for the usual filters.
    "ALTER TABLE records ADD COLUMN time_to_first_chunk_ms REAL;
    CREATE INDEX records_model ON records(model, start_ms);
    CREATE INDEX records_source ON records(source, start_ms);
    CREATE INDEX records_status ON records(status, start_ms);
    CREATE INDEX records_kind ON records(kind, start_ms);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Opens (creating it and its folder if needed) and migrates the store.
///
/// ```
/// let path = std::env::temp_dir().join(format!("anosys-open-doc-{}.db", std::process::id()));
/// let conn = anosys::sinks::sqlite::open(&path)?;
/// let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
/// assert_eq!(version as usize, anosys::sinks::sqlite::SCHEMA_VERSION);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    // Switching a new file to WAL needs an exclusive lock, for which SQLite
    // does not wait: when another process opens the same new file at the
    // same moment, try again shortly.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match open_once(path) {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5 + fastrand::u64(0..25)));
            }
            result => return result,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

fn open_once(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&conn)?;
    Ok(conn)
}

/// Applies the migrations this file lacks, each in its own transaction
/// (safe when several processes open a new file at once).
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    loop {
        // BEGIN IMMEDIATE takes the write lock before reading the version.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(0);
        if version >= MIGRATIONS.len() {
            conn.execute_batch("COMMIT")?;
            return Ok(());
        }
        let applied = conn
            .execute_batch(MIGRATIONS[version])
            .and_then(|_| conn.execute_batch(&format!("PRAGMA user_version = {}", version + 1)));
        match applied {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}

/// The indexed columns of a record.
struct Row<'a> {
    model: Option<&'a str>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    ttfc_ms: Option<f64>,
}

fn row_of(r: &Record) -> Row<'_> {
    Row {
        model: r.model(),
        input_tokens: r.attribute("gen_ai.usage.input_tokens").and_then(Value::as_i64),
        output_tokens: r.attribute("gen_ai.usage.output_tokens").and_then(Value::as_i64),
        ttfc_ms: r.attribute("gen_ai.response.time_to_first_chunk").and_then(Value::as_f64).map(|s| s * 1000.0),
    }
}

/// Inserts `records` in one transaction.
pub fn insert(conn: &mut Connection, records: &[Record]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO records (start_ms, end_ms, duration_ms, kind, name, source, model, status,
                input_tokens, output_tokens, time_to_first_chunk_ms, trace_id, span_id, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for r in records {
            let json = serde_json::to_string(r).unwrap_or_else(|e| format!("{{\"serialization_error\":{:?}}}", e.to_string()));
            let row = row_of(r);
            stmt.execute(params![
                epoch_millis(r.start_time) as i64,
                epoch_millis(r.end_time) as i64,
                r.duration().as_secs_f64() * 1000.0,
                r.kind.as_str(),
                r.name,
                r.source,
                row.model,
                r.status.code.as_str(),
                row.input_tokens,
                row.output_tokens,
                row.ttfc_ms,
                r.trace_id.to_string(),
                r.span_id.to_string(),
                json,
            ])?;
        }
    }
    tx.commit()
}

/// The SQLite store as a [`Sink`].
///
/// ```
/// use anosys::sinks::SqliteSink;
/// let sink = SqliteSink::new(std::env::temp_dir().join("anosys-doc.db"));
/// assert!(sink.path().ends_with("anosys-doc.db"));
/// ```
#[derive(Debug, Clone)]
pub struct SqliteSink {
    db: LocalFile<Connection>,
}

impl SqliteSink {
    /// A store at `path`, opened on first use.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteSink { db: LocalFile::new(path) }
    }

    /// The database file (absolute).
    pub fn path(&self) -> &Path {
        self.db.path()
    }
}

impl Sink for SqliteSink {
    fn name(&self) -> &str {
        "sqlite"
    }

    fn describe(&self) -> String {
        format!("records are stored in {}", self.path().display())
    }

    fn export<'a>(&'a self, batch: &'a [Record], _cx: ExportContext) -> BoxFuture<'a, ExportReport> {
        Box::pin(async move {
            let records = batch.to_vec();
            let written = self.db.write(open, move |conn| insert(conn, &records)).await;
            ExportReport { failed: if written { 0 } else { batch.len() }, ..Default::default() }
        })
    }
}
