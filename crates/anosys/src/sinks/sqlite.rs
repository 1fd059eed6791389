//! The embedded local store: a SQLite file (WAL mode), the default sink
//! when no AnoSys key or URL is set.
//!
//! Each row keeps the whole record as JSON next to indexed columns for
//! time, kind, source, model, status, tokens, duration, time to first chunk
//! and trace id. Batches are inserted in one transaction; the sink's WAL is
//! copied into the file (checkpointed) by a thread of its own while the
//! writer goes on. Several processes can write the same file at once
//! (SQLite's locking, with a busy timeout). The schema is versioned (`PRAGMA user_version`) and migrated
//! on open.
//!
//! anosys only touches files it made: a store is marked with
//! [`APPLICATION_ID`] when it is created, and [`open`] refuses (with a
//! [`StoreError`] naming the path, leaving the file as it is) a SQLite
//! database of another application or a file that is not a database. A
//! store of an earlier version (no mark, but anosys's `records` table) is
//! adopted. A damaged store that carries the mark is renamed aside to
//! `<name>.corrupt-<UTC time>` and a new one is started. Readers use
//! [`open_read_only`], which never creates, migrates or renames anything.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags};
use serde_json::Value;

use super::local::LocalFile;
use super::{BoxFuture, ExportContext, ExportReport, Sink};
use crate::diag::{self, LogLevel};
use crate::pipeline::Pace;
use crate::record::time::epoch_millis;
use crate::record::Record;

/// The `PRAGMA application_id` that marks a SQLite file as an anosys store:
/// `0x414E_4F53`, "ANOS" in ASCII (bytes 68 to 71 of the file header).
///
/// ```
/// let path = std::env::temp_dir().join(format!("anosys-appid-doc-{}.db", std::process::id()));
/// let conn = anosys::sinks::sqlite::open(&path)?;
/// let id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
/// assert_eq!(id, anosys::sinks::sqlite::APPLICATION_ID);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const APPLICATION_ID: i32 = 0x414E_4F53;

/// Why a store could not be opened. Each variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// There is no store at the path (or an empty file): nothing recorded
    /// yet. Only [`open_read_only`] says so; [`open`] creates the store.
    #[error("no records yet at {}", .path.display())]
    Missing {
        /// The store path.
        path: PathBuf,
    },
    /// A SQLite database of another application (another
    /// `application_id`, or no anosys `records` table). anosys leaves it
    /// untouched.
    #[error(
        "{} is a SQLite database of another application, not an anosys store; anosys leaves it untouched",
        .path.display()
    )]
    Foreign {
        /// The database file.
        path: PathBuf,
        /// Its `PRAGMA application_id` (0 when unset).
        application_id: i32,
    },
    /// A file that is not a SQLite database at all. anosys leaves it
    /// untouched.
    #[error("{} is not a SQLite database, so not an anosys store; anosys leaves it untouched", .path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// An anosys store that is damaged. [`open`] renames such a store
    /// aside and starts a new one; [`open_read_only`] reports it.
    #[error("the anosys store {} is damaged{}", .path.display(), .source.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Damaged {
        /// The store file.
        path: PathBuf,
        /// What SQLite said, when it said something.
        source: Option<rusqlite::Error>,
    },
    /// A damaged anosys store could not be renamed aside.
    #[error("cannot move the damaged anosys store {} aside: {source}", .path.display())]
    SetAside {
        /// The store file.
        path: PathBuf,
        /// Why the rename failed.
        source: std::io::Error,
    },
    /// The file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The store path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// SQLite failed (locked for too long, disk full, read-only file, …).
    #[error("cannot use the anosys store {}: {source}", .path.display())]
    Sqlite {
        /// The store file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// The file the error is about.
    ///
    /// ```
    /// use anosys::sinks::sqlite::{open_read_only, StoreError};
    /// let path = std::env::temp_dir().join("anosys-no-such-store.db");
    /// let err = open_read_only(&path).unwrap_err();
    /// assert!(matches!(err, StoreError::Missing { .. }));
    /// assert_eq!(err.path(), path);
    /// ```
    pub fn path(&self) -> &Path {
        match self {
            StoreError::Missing { path }
            | StoreError::Foreign { path, .. }
            | StoreError::NotADatabase { path }
            | StoreError::Damaged { path, .. }
            | StoreError::SetAside { path, .. }
            | StoreError::Io { path, .. }
            | StoreError::Sqlite { path, .. } => path,
        }
    }

    /// The SQLite error underneath, if any.
    pub fn sqlite_error(&self) -> Option<&rusqlite::Error> {
        match self {
            StoreError::Sqlite { source, .. } => Some(source),
            StoreError::Damaged { source, .. } => source.as_ref(),
            _ => None,
        }
    }

    fn sqlite(path: &Path) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sqlite { path: path.to_owned(), source }
    }
}

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
    // 3: the cost of an LLM call in US dollars (`gen_ai.usage.cost`).
    "ALTER TABLE records ADD COLUMN cost_usd REAL;",
    // 4: no index keyed by the trace id alone. Trace ids are random, so
    // each new row took a random page of that index: past a few hundred
    // thousand rows nearly every row dirtied a page of its own, written to
    // the WAL and again at the checkpoint (36k rows/s in benches/store.rs
    // on a store growing to ~450k rows, against 112k without it). A second
    // time index carries the trace id instead, so it grows at its end, and
    // a trace is found by scanning it (covering: the table is not read),
    // about 55 ms per million rows. `records_start` stays: it is smaller
    // (counts) and its order is (start_ms, id), the lists' order.
    "DROP INDEX records_trace;
    CREATE INDEX records_start_trace ON records(start_ms, trace_id);",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Opens (creating it and its folder if needed) and migrates the store.
///
/// A missing or empty file (or a SQLite database with nothing in it)
/// becomes a new store, marked with [`APPLICATION_ID`]; a store of an earlier version is adopted (marked and
/// migrated). A SQLite database of another application
/// ([`StoreError::Foreign`]) or a file that is not a database
/// ([`StoreError::NotADatabase`]) is refused and left byte for byte as it
/// is. A damaged anosys store is renamed aside to
/// `<name>.corrupt-<UTC time>` (with its `-wal` and `-shm` files), once
/// logged, and a new store is started in its place.
///
/// ```
/// let path = std::env::temp_dir().join(format!("anosys-open-doc-{}.db", std::process::id()));
/// let conn = anosys::sinks::sqlite::open(&path)?;
/// let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
/// assert_eq!(version as usize, anosys::sinks::sqlite::SCHEMA_VERSION);
///
/// // Not a database: refused, and left as it was.
/// let text = std::env::temp_dir().join(format!("anosys-open-doc-{}.txt", std::process::id()));
/// std::fs::write(&text, "notes\n")?;
/// let err = anosys::sinks::sqlite::open(&text).unwrap_err();
/// assert!(err.to_string().contains("not a SQLite database"));
/// assert_eq!(std::fs::read(&text)?, b"notes\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    match open_retrying(path) {
        Err(Failure::Damaged { seen, error }) => {
            set_aside(path, seen, &error)?;
            open_retrying(path).map_err(Failure::into_error)
        }
        result => result.map_err(Failure::into_error),
    }
}

fn open_retrying(path: &Path) -> Result<Connection, Failure> {
    // Switching a new file to WAL needs an exclusive lock, for which SQLite
    // does not wait: when another process opens the same new file at the
    // same moment, try again shortly.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match open_once(path) {
            Err(Failure::Store(e)) if e.sqlite_error().is_some_and(is_busy) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5 + fastrand::u64(0..25)));
            }
            result => return result,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// SQLite found the file damaged.
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
}

/// A failed open: an error to report, or a damaged anosys store to set
/// aside (with the identity of the file found damaged).
enum Failure {
    Store(StoreError),
    Damaged { seen: Option<FileKey>, error: StoreError },
}

impl Failure {
    fn into_error(self) -> StoreError {
        match self {
            Failure::Store(e) | Failure::Damaged { error: e, .. } => e,
        }
    }
}

/// Which file a path named (device and inode), to never set aside a new
/// store another process has just started in place of a damaged one.
type FileKey = (u64, u64);

fn file_key(path: &Path) -> Option<FileKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// What the first 100 bytes of the file say.
enum Header {
    /// No file, or an empty one.
    New,
    /// A SQLite database with this application id in its header (the
    /// current one may still be in the WAL when this is 0).
    Sqlite { application_id: i32 },
    /// Not a SQLite header, but anosys's application id where SQLite keeps
    /// it: an anosys store whose header is damaged.
    DamagedAnosys,
    /// Anything else.
    NotADatabase,
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn read_header(path: &Path) -> Result<Header, StoreError> {
    let io = |source| StoreError::Io { path: path.to_owned(), source };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Header::New),
        Err(e) => return Err(io(e)),
    };
    let mut head = Vec::with_capacity(100);
    file.take(100).read_to_end(&mut head).map_err(io)?;
    let id = head.get(68..72).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    Ok(if head.is_empty() {
        Header::New
    } else if head.starts_with(SQLITE_MAGIC) {
        Header::Sqlite { application_id: id.unwrap_or(0) }
    } else if id == Some(APPLICATION_ID) {
        Header::DamagedAnosys
    } else {
        Header::NotADatabase
    })
}

/// Whose database an open connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// Marked with [`APPLICATION_ID`].
    Anosys,
    /// An anosys store from before the mark.
    EarlierAnosys,
    /// A database with nothing in it (a new store another process is
    /// creating, for one).
    Empty,
    /// Another application's, with its application id.
    Foreign(i32),
}

/// The columns of the first version of the `records` table.
const RECORDS_COLUMNS: &[&str] = &[
    "id", "start_ms", "end_ms", "duration_ms", "kind", "name", "source", "model", "status", "input_tokens",
    "output_tokens", "trace_id", "span_id", "record",
];

fn owner(conn: &Connection) -> rusqlite::Result<Owner> {
    let id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    if id != 0 && id != APPLICATION_ID {
        return Ok(Owner::Foreign(id));
    }
    // Reads the schema, which finds a damaged first page.
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    if id == APPLICATION_ID {
        return Ok(Owner::Anosys);
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 && objects == 0 {
        return Ok(Owner::Empty);
    }
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('records')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let anosys = version >= 1 && RECORDS_COLUMNS.iter().all(|c| columns.iter().any(|have| have == c));
    Ok(if anosys { Owner::EarlierAnosys } else { Owner::Foreign(0) })
}

/// The page size of a new store, in bytes: 16 KiB rather than SQLite's
/// 4 KiB. A record's row is its JSON (1-3 KB for an LLM call): at 4 KiB a
/// page holds one such row and leaves the rest of it empty (4.2 KB of file
/// per 2.1 KB record), and a long one spills into a chain of overflow
/// pages. At 16 KiB the store takes 41% less disk for those records and
/// writes them 1.25-1.6x as fast (WAL and checkpoint write whole pages; the
/// numbers in the README, *Benchmarks*). A store made with another page
/// size keeps it.
const PAGE_SIZE: i64 = 16 * 1024;

/// How much WAL is written between checkpoints.
const CHECKPOINT_BYTES: i64 = 40 * 1024 * 1024;

fn open_once(path: &Path) -> Result<Connection, Failure> {
    let seen = file_key(path);
    let refuse = |e| Err(Failure::Store(e));
    let marked = match read_header(path).map_err(Failure::Store)? {
        Header::New => false,
        Header::NotADatabase => return refuse(StoreError::NotADatabase { path: path.to_owned() }),
        Header::DamagedAnosys => {
            return Err(Failure::Damaged { seen, error: StoreError::Damaged { path: path.to_owned(), source: None } })
        }
        Header::Sqlite { application_id } if application_id != 0 && application_id != APPLICATION_ID => {
            return refuse(StoreError::Foreign { path: path.to_owned(), application_id })
        }
        Header::Sqlite { application_id } => application_id == APPLICATION_ID,
    };
    // An anosys store that SQLite finds damaged is set aside; any other
    // file is only reported.
    let fail = |source: rusqlite::Error| {
        if marked && is_damage(&source) {
            Failure::Damaged { seen, error: StoreError::Damaged { path: path.to_owned(), source: Some(source) } }
        } else {
            Failure::Store(StoreError::Sqlite { path: path.to_owned(), source })
        }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(fail)?;
    // Whose file this is, before anything (the WAL switch first) writes.
    if let Owner::Foreign(application_id) = owner(&conn).map_err(fail)? {
        return refuse(StoreError::Foreign { path: path.to_owned(), application_id });
    }
    // A new store's page size; it must be set before the WAL switch first
    // writes the file, and is ignored for a store that exists.
    conn.pragma_update(None, "page_size", PAGE_SIZE).map_err(fail)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(fail)?;
    // The page cache's bound, SQLite's default of 2,000 KiB, set again now
    // that the page size is the store's: SQLite works the bound out in
    // pages when it is set, so the connection that made a store would
    // otherwise keep 2,000 KiB's worth of 4 KiB pages in 16 KiB pages
    // (7.8 MiB; the proxy's peak RSS was 6-7 MiB higher).
    conn.pragma_update(None, "cache_size", -2000).map_err(fail)?;
    // Under WAL, NORMAL syncs at checkpoints only: a committed batch
    // survives a crash of the process (it is in the WAL, which the system
    // holds); a power cut can lose the batches since the last checkpoint,
    // never the store's consistency.
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(fail)?;
    // Checkpoint (copy the WAL into the file, and fsync) every 40 MiB of WAL
    // (10,240 pages of 4 KiB) rather than SQLite's 1,000 pages: an index
    // page changed by many batches is copied once, and a tenth of the
    // fsyncs (1.3-1.5x the records a second in `benches/store.rs`). Counted
    // in this store's pages, which are 4 KiB in a store made before 16 KiB
    // became the size. The WAL file is cut back to 64 MiB after a
    // checkpoint.
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(fail)?;
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_BYTES / page_size.max(512)).map_err(fail)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).map_err(fail)?;
    match migrate(&conn) {
        Ok(()) => Ok(conn),
        Err(StoreError::Sqlite { source, .. }) => Err(fail(source)),
        Err(e) => refuse(e),
    }
}

/// Renames a damaged store (and its `-wal`, `-shm` and `-journal` files)
/// to `<name>.corrupt-<UTC time>`, unless the path names another file by
/// now, and says so once.
fn set_aside(path: &Path, seen: Option<FileKey>, error: &StoreError) -> Result<(), StoreError> {
    if seen.is_some() && file_key(path) != seen {
        // Another process set it aside already (or nothing is left).
        return Ok(());
    }
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace(['-', ':'], "");
    let mut aside = with_suffix(path, &format!(".corrupt-{stamp}"));
    for n in 2.. {
        if !aside.exists() {
            break;
        }
        aside = with_suffix(path, &format!(".corrupt-{stamp}-{n}"));
    }
    std::fs::rename(path, &aside).map_err(|source| StoreError::SetAside { path: path.to_owned(), source })?;
    for suffix in ["-wal", "-shm", "-journal"] {
        let from = with_suffix(path, suffix);
        if from.exists() {
            let _ = std::fs::rename(&from, with_suffix(&aside, suffix));
        }
    }
    diag::log(
        LogLevel::Warn,
        &format!("{error}; it was moved aside to {} and a new store is started", aside.display()),
    );
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Opens an existing store for reading only: it never creates, migrates,
/// marks or renames anything, and sees a store of an earlier schema
/// version as it is (check `PRAGMA user_version` or the columns).
///
/// A missing or empty file (or an empty database) is
/// [`StoreError::Missing`]; another application's database, a file that
/// is not a database and a damaged store are refused as in [`open`].
///
/// ```
/// use anosys::sinks::sqlite::{self, StoreError};
/// let path = std::env::temp_dir().join(format!("anosys-read-doc-{}.db", std::process::id()));
/// assert!(matches!(sqlite::open_read_only(&path), Err(StoreError::Missing { .. })));
/// assert!(!path.exists());
///
/// drop(sqlite::open(&path)?);
/// let conn = sqlite::open_read_only(&path)?;
/// let n: i64 = conn.query_row("SELECT count(*) FROM records", [], |r| r.get(0))?;
/// assert_eq!(n, 0);
/// assert!(conn.execute_batch("DELETE FROM records").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let missing = || StoreError::Missing { path: path.to_owned() };
    let marked = match read_header(path)? {
        // An empty file whose first transactions are still in the WAL only.
        Header::New if std::fs::metadata(with_suffix(path, "-wal")).is_ok_and(|m| m.len() > 0) => false,
        Header::New => return Err(missing()),
        Header::NotADatabase => return Err(StoreError::NotADatabase { path: path.to_owned() }),
        Header::DamagedAnosys => return Err(StoreError::Damaged { path: path.to_owned(), source: None }),
        Header::Sqlite { application_id } if application_id != 0 && application_id != APPLICATION_ID => {
            return Err(StoreError::Foreign { path: path.to_owned(), application_id })
        }
        Header::Sqlite { application_id } => application_id == APPLICATION_ID,
    };
    let fail = |source: rusqlite::Error| {
        if marked && is_damage(&source) {
            StoreError::Damaged { path: path.to_owned(), source: Some(source) }
        } else {
            StoreError::Sqlite { path: path.to_owned(), source }
        }
    };
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(fail)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(fail)?;
    match owner(&conn).map_err(fail)? {
        Owner::Anosys | Owner::EarlierAnosys => Ok(conn),
        Owner::Empty => Err(missing()),
        Owner::Foreign(application_id) => Err(StoreError::Foreign { path: path.to_owned(), application_id }),
    }
}

/// Applies the migrations this file lacks, each in its own transaction
/// (safe when several processes open a new file at once). The first one
/// marks the file with [`APPLICATION_ID`]; a store of an earlier version
/// is marked when it is migrated; another application's database is
/// refused with [`StoreError::Foreign`] and left as it is.
pub fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let path = PathBuf::from(conn.path().unwrap_or_default());
    loop {
        // BEGIN IMMEDIATE takes the write lock before reading the version.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(StoreError::sqlite(&path))?;
        match migrate_step(conn, &path) {
            Ok(done) => {
                conn.execute_batch("COMMIT").map_err(StoreError::sqlite(&path))?;
                if done {
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}

/// One migration (or none when the file is current), in the open
/// transaction; `true` when nothing was left to do.
fn migrate_step(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    let sqlite = StoreError::sqlite;
    match owner(conn).map_err(sqlite(path))? {
        Owner::Foreign(application_id) => return Err(StoreError::Foreign { path: path.to_owned(), application_id }),
        Owner::Anosys => {}
        Owner::Empty | Owner::EarlierAnosys => {
            conn.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID}")).map_err(sqlite(path))?
        }
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sqlite(path))?;
    let version = usize::try_from(version).unwrap_or(0);
    if version >= MIGRATIONS.len() {
        return Ok(true);
    }
    conn.execute_batch(MIGRATIONS[version])
        .and_then(|_| conn.execute_batch(&format!("PRAGMA user_version = {}", version + 1)))
        .map_err(sqlite(path))?;
    Ok(false)
}

/// The indexed columns of a record.
struct Row<'a> {
    model: Option<&'a str>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    ttfc_ms: Option<f64>,
    cost_usd: Option<f64>,
}

fn row_of(r: &Record) -> Row<'_> {
    Row {
        model: r.model(),
        input_tokens: r.attribute("gen_ai.usage.input_tokens").and_then(Value::as_i64),
        output_tokens: r.attribute("gen_ai.usage.output_tokens").and_then(Value::as_i64),
        ttfc_ms: r.attribute("gen_ai.response.time_to_first_chunk").and_then(Value::as_f64).map(|s| s * 1000.0),
        cost_usd: r.attribute("gen_ai.usage.cost").and_then(Value::as_f64).filter(|c| c.is_finite()),
    }
}

/// Inserts `records` in one transaction.
pub fn insert(conn: &mut Connection, records: &[Record]) -> rusqlite::Result<()> {
    insert_paced(conn, records, &mut Pace::new(None))
}

/// [`insert`], giving way between records as `pace` says (the pipeline's
/// store writes a batch in one stretch of several milliseconds).
fn insert_paced(conn: &mut Connection, records: &[Record], pace: &mut Pace) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO records (start_ms, end_ms, duration_ms, kind, name, source, model, status,
                input_tokens, output_tokens, time_to_first_chunk_ms, trace_id, span_id, record, cost_usd)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        // One buffer for every row's JSON text, as SQLite copies what it
        // is given: no allocation and no sizing walk over the record a row.
        let mut json = Vec::with_capacity(4096);
        for r in records {
            pace.between();
            json.clear();
            if let Err(e) = r.write_json(&mut json) {
                json.clear();
                json.extend_from_slice(format!("{{\"serialization_error\":{:?}}}", e.to_string()).as_bytes());
            }
            let (trace_id, span_id) = (r.trace_id.hex_digits(), r.span_id.hex_digits());
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
                Utf8(&trace_id),
                Utf8(&span_id),
                Utf8(&json),
                row.cost_usd,
            ])?;
        }
    }
    tx.commit()
}

/// Text already known to be UTF-8 (JSON that serde_json wrote, hex
/// digits), bound as SQLite text without checking it again.
struct Utf8<'a>(&'a [u8]);

impl rusqlite::ToSql for Utf8<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(self.0)))
    }
}

/// How much WAL the writing connection leaves for its checkpointing thread:
/// past [`CHECKPOINT_BYTES`] of WAL the thread copies it into the file
/// (and syncs), while the writer goes on; past twice that, the writer
/// finishes the checkpoint itself (copying what the thread has not yet),
/// so that the WAL starts over. With the writer writing without a pause
/// the thread's checkpoint never catches up with the WAL's end, and SQLite
/// only starts a WAL over once all of it is in the file.
#[derive(Debug, Clone, Copy)]
struct Checkpoints {
    background_bytes: i64,
    inline_bytes: i64,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Checkpoints { background_bytes: CHECKPOINT_BYTES, inline_bytes: 2 * CHECKPOINT_BYTES }
    }
}

/// The store's writing connection, its WAL checkpointed on a thread of its
/// own (`anosys-checkpoint`, with a connection of its own): a checkpoint
/// copies tens of MiB and syncs the file, which took 14% of an insert's
/// time on the writer's thread (and stalled it for the sync).
///
/// Crash safety is SQLite's WAL's, as before: a committed batch is in the
/// WAL; a checkpoint only copies committed pages into the file. When the
/// thread cannot be started, SQLite's own checkpoints (every
/// [`CHECKPOINT_BYTES`] of WAL, on the writer's thread) stay.
struct Writer {
    conn: Connection,
    checkpointer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("checkpointer", &self.checkpointer.is_some()).finish_non_exhaustive()
    }
}

impl Writer {
    /// Opens the store at `path` ([`open`]) and starts its checkpointing thread.
    fn open(path: &Path) -> Result<Writer, StoreError> {
        Writer::open_with(path, Checkpoints::default(), |_| {})
    }

    /// [`Writer::open`], checkpointing as `checkpoints` says; `rounds` is
    /// called on the thread after each of its checkpoints with what SQLite
    /// answered (frames in the WAL, frames in the file).
    fn open_with(
        path: &Path,
        checkpoints: Checkpoints,
        rounds: impl Fn(rusqlite::Result<(i32, i32)>) + Send + 'static,
    ) -> Result<Writer, StoreError> {
        let mut conn = open(path)?;
        let checkpointer = match Writer::start_checkpointer(&mut conn, path, checkpoints, rounds) {
            Ok(thread) => Some(thread),
            Err(e) => {
                diag::once("sqlite-checkpointer", LogLevel::Debug, || {
                    format!("checkpoints of {} stay on the writing thread: {e}", path.display())
                });
                None
            }
        };
        Ok(Writer { conn, checkpointer })
    }

    fn start_checkpointer(
        conn: &mut Connection,
        path: &Path,
        checkpoints: Checkpoints,
        rounds: impl Fn(rusqlite::Result<(i32, i32)>) + Send + 'static,
    ) -> Result<std::thread::JoinHandle<()>, String> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let own = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .and_then(|c| c.pragma_update(None, "synchronous", "NORMAL").map(|()| c))
            .map_err(|e| e.to_string())?;
        let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(|e| e.to_string())?;
        let pages = |bytes: i64| bytes / page_size.max(512);
        let (background, inline) = (pages(checkpoints.background_bytes), pages(checkpoints.inline_bytes));
        // Set by the writer when it wakes the thread, cleared by the thread
        // when its checkpoint is done: the writer never checkpoints while
        // the thread does (SQLite would answer SQLITE_BUSY).
        let running = Arc::new(AtomicBool::new(false));
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = {
            let running = running.clone();
            std::thread::Builder::new()
                .name("anosys-checkpoint".into())
                .spawn(move || {
                    // Ends when the writer's hook (holding `wake`) is dropped.
                    while woken.recv().is_ok() {
                        rounds(own.wal_checkpoint_v2(Some(rusqlite::MAIN_DB), rusqlite::wal::CheckpointMode::PASSIVE));
                        running.store(false, Ordering::Release);
                    }
                })
                .map_err(|e| e.to_string())?
        };
        // Called by SQLite after each commit with the frames in the WAL; it
        // replaces SQLite's own checkpoints. Its errors are its own: the
        // commit has happened, and a checkpoint not made now is made later.
        let hook = move |wal: &mut rusqlite::hooks::Wal, frames: std::ffi::c_int| {
            let frames = i64::from(frames);
            if frames < background || running.load(Ordering::Acquire) {
                return Ok(());
            }
            if frames >= inline {
                let _ = wal.checkpoint();
            } else {
                running.store(true, Ordering::Release);
                if wake.try_send(()).is_err() {
                    running.store(false, Ordering::Release);
                }
            }
            Ok(())
        };
        if let Err(e) = conn.wal_hook(Some(hook)) {
            // The hook is not set: its `wake` is dropped, and the thread ends.
            let _ = thread.join();
            return Err(e.to_string());
        }
        Ok(thread)
    }

    /// A writer on no file, standing in while a damaged store is set aside.
    fn placeholder(path: &Path) -> Result<Writer, StoreError> {
        let conn = Connection::open_in_memory().map_err(StoreError::sqlite(path))?;
        Ok(Writer { conn, checkpointer: None })
    }
}

impl Drop for Writer {
    /// Stops the checkpointing thread (it ends its checkpoint first) before
    /// the writing connection closes: the last connection to close copies
    /// the WAL into the file and removes it, as SQLite does on close.
    fn drop(&mut self) {
        if let Some(thread) = self.checkpointer.take() {
            let _ = self.conn.wal_hook(None::<fn(&mut rusqlite::hooks::Wal, std::ffi::c_int) -> rusqlite::Result<()>>);
            let _ = thread.join();
        }
    }
}

/// Inserts `records`; when SQLite finds the store damaged, reopens it
/// (which sets a damaged anosys store aside) and tries again, so that the
/// batch lands in a working store rather than being lost.
fn insert_recovering(writer: &mut Writer, path: &Path, records: &[Record], pace: &mut Pace) -> Result<(), StoreError> {
    match insert_paced(&mut writer.conn, records, pace) {
        Err(e) if is_damage(&e) => {}
        result => return result.map_err(StoreError::sqlite(path)),
    }
    // Close (and stop the checkpointing thread) before anything is
    // renamed: closing deletes `<path>-wal`.
    drop(std::mem::replace(writer, Writer::placeholder(path)?));
    *writer = Writer::open(path)?;
    let seen = file_key(path);
    match insert(&mut writer.conn, records) {
        Err(e) if is_damage(&e) && matches!(read_header(path), Ok(Header::Sqlite { application_id: APPLICATION_ID })) => {
            drop(std::mem::replace(writer, Writer::placeholder(path)?));
            set_aside(path, seen, &StoreError::Damaged { path: path.to_owned(), source: Some(e) })?;
            *writer = Writer::open(path)?;
            insert(&mut writer.conn, records).map_err(StoreError::sqlite(path))
        }
        result => result.map_err(StoreError::sqlite(path)),
    }
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
    db: LocalFile<Writer>,
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

    fn export<'a>(&'a self, batch: &'a [Record], cx: ExportContext) -> BoxFuture<'a, ExportReport> {
        self.export_shared(batch.into(), cx)
    }

    /// The pipeline's batch is written from where it is, not copied.
    fn export_shared(&self, batch: Arc<[Record]>, cx: ExportContext) -> BoxFuture<'_, ExportReport> {
        Box::pin(async move {
            let n = batch.len();
            let path = self.path().to_owned();
            let mut pace = cx.pace();
            let written = self.db.write(Writer::open, move |writer| insert_recovering(writer, &path, &batch, &mut pace)).await.is_some();
            ExportReport { failed: if written { 0 } else { n }, ..Default::default() }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::{RecordKind, Status};

    /// A store in a folder of its own under the system's temporary folder.
    fn store(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("anosys-checkpoints-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("store.db")
    }

    /// `n` records of about 1.5 KB each.
    fn batch(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| {
                let mut r = Record::new(RecordKind::LlmCall, "chat gpt-4o-mini");
                r.set_attribute("gen_ai.request.model", "gpt-4o-mini");
                r.input = Some(serde_json::json!([{"role": "user", "content": format!("question {i} ").repeat(100)}]));
                r.finish(Status::ok());
                r
            })
            .collect()
    }

    #[test]
    fn each_row_holds_its_own_record_and_ids_as_text() {
        // Rows of very different sizes, a long one between short ones: the
        // buffer the rows' JSON is written into is reused, and no row may
        // keep any of the one before.
        let path = store("rows");
        let mut conn = open(&path).unwrap();
        let mut records = batch(3);
        records[0].input = None;
        records[2].input = Some(serde_json::json!("short"));
        insert(&mut conn, &records).unwrap();
        let mut stmt = conn
            .prepare("SELECT record, trace_id, span_id, typeof(record), typeof(trace_id), typeof(span_id) FROM records ORDER BY id")
            .unwrap();
        let rows: Vec<(String, String, String, String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 3);
        for (row, record) in rows.iter().zip(&records) {
            assert_eq!(row.0, record.to_json().unwrap());
            assert_eq!((row.1.as_str(), row.2.as_str()), (&*record.trace_id.to_string(), &*record.span_id.to_string()));
            assert_eq!((row.3.as_str(), row.4.as_str(), row.5.as_str()), ("text", "text", "text"));
        }
        drop(stmt);
        drop(conn);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    fn wal_bytes(path: &Path) -> u64 {
        std::fs::metadata(with_suffix(path, "-wal")).map_or(0, |m| m.len())
    }

    fn rows(path: &Path) -> i64 {
        let reader = open_read_only(path).unwrap();
        reader.query_row("SELECT count(*) FROM records", [], |r| r.get(0)).unwrap()
    }

    /// What the checkpointing thread answered after each of its rounds.
    type Rounds = Arc<Mutex<Vec<rusqlite::Result<(i32, i32)>>>>;

    fn writer(path: &Path, background_bytes: i64, inline_bytes: i64) -> (Writer, Rounds) {
        let rounds = Rounds::default();
        let seen = rounds.clone();
        let checkpoints = Checkpoints { background_bytes, inline_bytes };
        let writer = Writer::open_with(path, checkpoints, move |r| seen.lock().unwrap().push(r)).unwrap();
        assert!(writer.checkpointer.is_some(), "the checkpointing thread started");
        (writer, rounds)
    }

    #[test]
    fn the_wal_is_checkpointed_on_a_thread_of_its_own_and_starts_over() {
        let path = store("bounded");
        let (mut writer, rounds) = writer(&path, 256 << 10, 512 << 10);
        let mut written = 0;
        let mut largest_wal = 0;
        for _ in 0..120 {
            insert(&mut writer.conn, &batch(64)).unwrap();
            written += 64;
            largest_wal = largest_wal.max(wal_bytes(&path));
        }
        // 120 batches of about 100 KB of records (about 300 KB of pages
        // each with the indexes', 40 MB in all) went through the WAL; it
        // started over each time the checkpoints had copied it whole, so it
        // never held more than the inline threshold and the batches
        // committed while the thread's checkpoint ran (more on a busy
        // machine, hence the margin).
        assert!(largest_wal < 8 << 20, "the WAL grew to {largest_wal} bytes");
        let rounds = std::mem::take(&mut *rounds.lock().unwrap());
        assert!(!rounds.is_empty(), "the thread made checkpoints");
        assert!(rounds.iter().all(Result::is_ok), "{rounds:?}");
        assert_eq!(rows(&path), written);
        // Closed, the thread stopped first: the last connection copied the
        // WAL into the file and removed it.
        drop(writer);
        assert!(!with_suffix(&path, "-wal").exists());
        assert_eq!(rows(&path), written);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_reader_holding_the_wal_delays_checkpoints_and_loses_nothing() {
        let path = store("reader");
        let (mut writer, rounds) = writer(&path, 128 << 10, 256 << 10);
        insert(&mut writer.conn, &batch(64)).unwrap();
        // A reader in a transaction: no checkpoint can copy what was
        // committed after its snapshot, so the WAL cannot start over.
        let reader = open_read_only(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let seen: i64 = reader.query_row("SELECT count(*) FROM records", [], |r| r.get(0)).unwrap();
        assert_eq!(seen, 64);
        for _ in 0..20 {
            insert(&mut writer.conn, &batch(64)).unwrap();
        }
        let held = wal_bytes(&path);
        assert!(held > 1 << 20, "the WAL held {held} bytes behind the reader");
        reader.execute_batch("COMMIT").unwrap();
        drop(reader);
        // The reader gone, the checkpoints catch up and the WAL starts over
        // from its beginning (the file keeps its size, up to
        // `journal_size_limit`): the frames it holds fall back.
        rounds.lock().unwrap().clear();
        for _ in 0..20 {
            insert(&mut writer.conn, &batch(64)).unwrap();
        }
        let last = rounds.lock().unwrap().iter().rev().find_map(|r| r.as_ref().ok().copied());
        let (frames, _) = last.expect("the thread made checkpoints once the reader was gone");
        let page: i64 = writer.conn.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
        // Had the WAL not started over, it would hold more than it held
        // behind the reader (and the 20 batches since).
        assert!(i64::from(frames) * page < held as i64, "{frames} frames of {page} bytes, against {held} bytes held");
        assert_eq!(rows(&path), 64 * 41);
        drop(writer);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
