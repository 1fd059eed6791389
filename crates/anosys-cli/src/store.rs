//! Reading the local store that [`anosys::sinks::SqliteSink`] writes.
//!
//! The schema belongs to the sink (`anosys::sinks::sqlite::MIGRATIONS`);
//! this module only reads it, through
//! [`anosys::sinks::sqlite::open_read_only`]: reading never creates,
//! migrates or changes a store, and a store of an older schema version is
//! read as it is.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anosys::sinks::sqlite;
use anosys::Record;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, Connection};
use serde::Serialize;

/// Why the store could not be read.
#[derive(Debug)]
pub enum StoreError {
    /// There is no database at this path.
    Missing(PathBuf),
    /// The file exists but is not a store this version can read (another
    /// application's database, not a database, damaged); the error names
    /// the path.
    Open(sqlite::StoreError),
    /// A query failed.
    Query(rusqlite::Error),
    /// No record has this id.
    NotFound(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Missing(p) => write!(f, "no local store at {} (no records yet)", p.display()),
            StoreError::Open(e) => write!(f, "{e}"),
            StoreError::Query(e) => write!(f, "reading the local store failed: {e}"),
            StoreError::NotFound(id) => write!(f, "no record with id {id}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Open(e) => Some(e),
            StoreError::Query(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Query(e)
    }
}

/// Which records a command looks at. Empty means all.
///
/// `model` and `source` are globs (`gpt-4o*`), `trace` matches a trace id
/// or a prefix of one.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only records that started at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Model glob.
    pub model: Option<String>,
    /// `OK`, `ERROR` or `UNSET`.
    pub status: Option<String>,
    /// Source glob.
    pub source: Option<String>,
    /// Trace id or a prefix of one.
    pub trace: Option<String>,
    /// Record kind (`llm_call`, `function_call`, `raw`, `span`).
    pub kind: Option<String>,
    /// Only records that started before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only records older than this position in the newest-first order
    /// (a page's cursor).
    pub before: Option<Cursor>,
    /// Only records whose stored JSON contains this text (case ignored for
    /// ASCII letters): prompts, replies, tool arguments, errors.
    pub text: Option<String>,
    /// Only records of this user (see [`USER_SQL`]).
    pub user: Option<String>,
    /// Only records of this session (see [`SESSION_SQL`]).
    pub session: Option<String>,
}

/// A record's user, as SQL over its stored JSON (see [`USER_SQL`]).
macro_rules! user_sql {
    () => {
        "CAST(coalesce(json_extract(record, '$.user_context.user_id'), json_extract(record, '$.user_context.userId'), \
         json_extract(record, '$.user_context.user.id'), json_extract(record, '$.attributes.\"user.id\"'), \
         json_extract(record, '$.attributes.\"enduser.id\"')) AS TEXT)"
    };
}

/// A record's session, as SQL over its stored JSON (see [`SESSION_SQL`]).
macro_rules! session_sql {
    () => {
        "CAST(coalesce(json_extract(record, '$.user_context.session_id'), json_extract(record, '$.user_context.sessionId'), \
         json_extract(record, '$.user_context.session.id'), json_extract(record, '$.attributes.\"session.id\"'), \
         json_extract(record, '$.attributes.\"gen_ai.conversation.id\"')) AS TEXT)"
    };
}

/// A record's user, as SQL over its stored JSON: `user_id` (or `userId`,
/// or `user.id`) in the user context the application attached, else the
/// `user.id` attribute (the proxy's `x-anosys-user-id` header, an OpenAI
/// request's `user`) or OpenTelemetry's `enduser.id`. Numbers are compared
/// as text.
pub const USER_SQL: &str = user_sql!();

/// A record's session, as SQL over its stored JSON: `session_id` (or
/// `sessionId`, or `session.id`) in the user context, else the `session.id`
/// attribute or the GenAI `gen_ai.conversation.id`.
pub const SESSION_SQL: &str = session_sql!();

/// The user condition: from the viewer's index for the rows it covers
/// (`id <= ?`), from the JSON for newer ones (a set of row ids SQLite looks
/// up, rather than a test of every row in time order); and from the JSON
/// alone.
const USER_CLAUSES: [&str; 2] = [
    concat!(
        "id IN (SELECT id FROM search.who WHERE id <= ? AND user = ? UNION ALL SELECT id FROM records WHERE id > ? AND ",
        user_sql!(),
        " = ?)"
    ),
    concat!(user_sql!(), " = ?"),
];

/// [`USER_CLAUSES`] for sessions.
const SESSION_CLAUSES: [&str; 2] = [
    concat!(
        "id IN (SELECT id FROM search.who WHERE id <= ? AND session = ? UNION ALL SELECT id FROM records WHERE id > ? AND ",
        session_sql!(),
        " = ?)"
    ),
    concat!(session_sql!(), " = ?"),
];

/// A position in the newest-first order of records: the last one of a
/// page, where the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The record's start time, ms since the epoch.
    pub start_ms: i64,
    /// Its row id.
    pub id: i64,
}

impl Cursor {
    /// `START_MS.ID`, as the viewer's API passes it.
    pub fn parse(text: &str) -> Option<Cursor> {
        let (start, id) = text.split_once('.')?;
        Some(Cursor { start_ms: start.parse().ok()?, id: id.parse().ok()? })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.start_ms, self.id)
    }
}

/// A page of `limit` from `rows` (fetched with one more, to see whether
/// another page follows), and the next page's cursor.
fn cut_page(mut rows: Vec<Summary>, limit: usize) -> (Vec<Summary>, Option<Cursor>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = more.then(|| rows.last().map(|r| Cursor { start_ms: r.start_ms, id: r.id })).flatten();
    (rows, next)
}

/// `column GLOB ?`, or `column = ?` when the pattern has no wildcard (the
/// same rows, and the index on `(column, start_ms)` then gives them newest
/// first without a sort).
fn glob_or_equal(column: &'static str, pattern: &str) -> &'static str {
    let wild = pattern.contains(['*', '?', '[']);
    match (column, wild) {
        ("model", true) => "model GLOB ?",
        ("model", false) => "model = ?",
        (_, true) => "source GLOB ?",
        (_, false) => "source = ?",
    }
}

/// How long a search scans the newest records before it asks the index.
pub const SCAN_BUDGET: Duration = Duration::from_millis(25);

/// `text` as a LIKE pattern matching it anywhere, `\` escaping.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

impl Filter {
    /// The SQL condition and its values. `covered`: the rows (ids up to it)
    /// whose users and sessions the attached `search` index holds; newer
    /// ones are read from their JSON.
    fn where_clause(&self, covered: i64) -> (String, Vec<SqlValue>) {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        if let Some(s) = self.since_ms {
            clauses.push("start_ms >= ?");
            values.push(SqlValue::Integer(s));
        }
        if let Some(m) = &self.model {
            clauses.push(glob_or_equal("model", m));
            values.push(SqlValue::Text(m.clone()));
        }
        if let Some(s) = &self.status {
            clauses.push("status = ?");
            values.push(SqlValue::Text(s.to_ascii_uppercase()));
        }
        if let Some(s) = &self.source {
            clauses.push(glob_or_equal("source", s));
            values.push(SqlValue::Text(s.clone()));
        }
        if let Some(t) = &self.trace {
            // Found through the index that carries the trace id (the time
            // index, schema 4; the trace index before), not by reading
            // every row in time order.
            clauses.push("id IN (SELECT id FROM records WHERE trace_id GLOB ?)");
            values.push(SqlValue::Text(format!("{}*", t.to_ascii_lowercase())));
        }
        if let Some(k) = &self.kind {
            clauses.push("kind = ?");
            values.push(SqlValue::Text(k.clone()));
        }
        if let Some(u) = self.until_ms {
            clauses.push("start_ms < ?");
            values.push(SqlValue::Integer(u));
        }
        if let Some(c) = self.before {
            clauses.push("(start_ms, id) < (?, ?)");
            values.push(SqlValue::Integer(c.start_ms));
            values.push(SqlValue::Integer(c.id));
        }
        if let Some(t) = self.text.as_deref().filter(|t| !t.is_empty()) {
            // The record as stored: its JSON keeps non-ASCII text as it is
            // (CJK, Arabic, emoji), so any script matches.
            clauses.push("record LIKE ? ESCAPE '\\'");
            values.push(SqlValue::Text(like_pattern(t)));
        }
        for (wanted, [indexed, scanned]) in [(&self.user, USER_CLAUSES), (&self.session, SESSION_CLAUSES)] {
            let Some(wanted) = wanted else { continue };
            if covered > 0 {
                clauses.push(indexed);
                values.extend([SqlValue::Integer(covered), SqlValue::Text(wanted.clone()), SqlValue::Integer(covered)]);
            } else {
                clauses.push(scanned);
            }
            values.push(SqlValue::Text(wanted.clone()));
        }
        if clauses.is_empty() {
            (String::new(), values)
        } else {
            (format!(" WHERE {}", clauses.join(" AND ")), values)
        }
    }
}

/// One row of `anosys logs`: the indexed columns of a stored record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Row id, what `anosys show` takes.
    pub id: i64,
    /// Start time, ms since the epoch.
    pub start_ms: i64,
    /// Record kind (`llm_call`, …).
    pub kind: String,
    /// Span name.
    pub name: String,
    /// Source, when set.
    pub source: Option<String>,
    /// Model, for LLM calls.
    pub model: Option<String>,
    /// `OK`, `ERROR` or `UNSET`.
    pub status: String,
    /// Prompt tokens.
    pub input_tokens: Option<i64>,
    /// Completion tokens.
    pub output_tokens: Option<i64>,
    /// Duration in ms.
    pub duration_ms: f64,
    /// Time to first chunk in ms, for streams.
    pub time_to_first_chunk_ms: Option<f64>,
    /// W3C trace id.
    pub trace_id: String,
    /// Cost in US dollars, for priced LLM calls.
    pub cost_usd: Option<f64>,
}

/// A stored record: its row id and the record's JSON, its content written
/// out (see [`Stored::new`]).
#[derive(Debug, Clone)]
pub struct Stored {
    /// Row id.
    pub id: i64,
    /// The whole record as JSON.
    pub json: String,
}

impl Stored {
    /// A stored row. The store keeps an LLM call's request and response
    /// once, in `raw` (`input_in_raw`, `output_in_raw`); everything that
    /// shows or exports a record gets it with its `input`, `output` and
    /// content attributes written out ([`Record::expand_content`]), as the
    /// record had them when captured.
    pub fn new(id: i64, json: String) -> Stored {
        if !json.contains("\"input_in_raw\"") && !json.contains("\"output_in_raw\"") {
            return Stored { id, json };
        }
        let expanded = serde_json::from_str::<Record>(&json).ok().and_then(|record| {
            let mut text = Vec::with_capacity(json.len() * 2);
            record.write_json_expanded(&mut text).ok()?;
            String::from_utf8(text).ok()
        });
        Stored { id, json: expanded.unwrap_or(json) }
    }

    /// The record, parsed.
    pub fn record(&self) -> Result<Record, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

/// The local store, open for reading.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// `time_to_first_chunk_ms`, or `NULL` in a store of schema version 1.
    ttfc: &'static str,
    /// `cost_usd`, or `NULL` in a store of schema version 2 or older.
    cost: &'static str,
    /// The search index attached as `search`, if one is.
    search: Option<PathBuf>,
    /// The rows (ids up to this) the attached index covers; 0: none.
    covered: i64,
}

fn summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    Ok(Summary {
        id: row.get(0)?,
        start_ms: row.get(1)?,
        kind: row.get(2)?,
        name: row.get(3)?,
        source: row.get(4)?,
        model: row.get(5)?,
        status: row.get(6)?,
        input_tokens: row.get(7)?,
        output_tokens: row.get(8)?,
        duration_ms: row.get(9)?,
        time_to_first_chunk_ms: row.get(10)?,
        trace_id: row.get(11)?,
        cost_usd: row.get(12)?,
    })
}

impl Store {
    /// Opens the store at `path` read-only. A missing file is
    /// [`StoreError::Missing`]: reading never creates, migrates or changes
    /// a store; one of an older schema version is read as it is.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = sqlite::open_read_only(path).map_err(|e| match e {
            sqlite::StoreError::Missing { path } => StoreError::Missing(path),
            e => StoreError::Open(e),
        })?;
        let has = |column: &str| -> rusqlite::Result<bool> {
            conn.query_row("SELECT count(*) > 0 FROM pragma_table_info('records') WHERE name = ?", [column], |r| r.get(0))
        };
        let ttfc = if has("time_to_first_chunk_ms")? { "time_to_first_chunk_ms" } else { "NULL" };
        let cost = if has("cost_usd")? { "cost_usd" } else { "NULL" };
        Ok(Store { conn, path: path.to_owned(), ttfc, cost, search: None, covered: 0 })
    }

    fn summary_columns(&self) -> String {
        format!(
            "id, start_ms, kind, name, source, model, status, input_tokens, output_tokens, duration_ms, {}, trace_id, {}",
            self.ttfc, self.cost
        )
    }

    /// Uses the viewer's search index (its file, and the row it covers up
    /// to) for text, user and session filters from now on; `None`: read
    /// every row's JSON instead.
    pub fn use_index(&mut self, index: Option<(&Path, i64)>) -> Result<(), StoreError> {
        let Some((path, upto)) = index else {
            self.covered = 0;
            return Ok(());
        };
        if self.search.as_deref() != Some(path) {
            self.covered = 0;
            if self.search.take().is_some() {
                self.conn.execute("DETACH DATABASE search", [])?;
            }
            self.conn.execute("ATTACH DATABASE ?1 AS search", [path.to_string_lossy()])?;
            // Its pages are read once per query (index entries, then row
            // ids): a small cache is enough.
            self.conn.pragma_update(Some("search"), "cache_size", -512)?;
            self.search = Some(path.to_owned());
        }
        self.covered = upto;
        Ok(())
    }

    /// `filter` as SQL, with the index this store uses.
    fn clause(&self, filter: &Filter) -> (String, Vec<SqlValue>) {
        filter.where_clause(if self.search.is_some() { self.covered } else { 0 })
    }

    /// Keeps at most `kib` KiB of the store's pages in memory (SQLite's
    /// default is 2,000 KiB per connection); for a process that keeps
    /// several connections open.
    pub fn set_cache_kib(&self, kib: u32) -> Result<(), StoreError> {
        Ok(self.conn.pragma_update(None, "cache_size", -i64::from(kib))?)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records match.
    pub fn count(&self, filter: &Filter) -> Result<u64, StoreError> {
        let (clause, values) = self.clause(filter);
        let n: i64 =
            self.conn.query_row(&format!("SELECT count(*) FROM records{clause}"), params_from_iter(values), |r| r.get(0))?;
        Ok(n as u64)
    }

    /// What waits in the store's outboxes, per destination.
    pub fn outboxes(&self) -> Result<Vec<anosys::sinks::outbox::OutboxStats>, StoreError> {
        Ok(anosys::sinks::outbox::list(&self.conn)?)
    }

    /// The newest `limit` matching records, newest first.
    pub fn latest(&self, filter: &Filter, limit: usize) -> Result<Vec<Summary>, StoreError> {
        let (clause, mut values) = self.clause(filter);
        values.push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {} FROM records{clause} ORDER BY start_ms DESC, id DESC LIMIT ?", self.summary_columns()))?;
        let rows = stmt.query_map(params_from_iter(values), summary)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest `limit` matching records in full, newest first.
    pub fn latest_full(&self, filter: &Filter, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let (clause, mut values) = self.clause(filter);
        values.push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let mut stmt =
            self.conn.prepare_cached(&format!("SELECT id, record FROM records{clause} ORDER BY start_ms DESC, id DESC LIMIT ?"))?;
        let rows = stmt.query_map(params_from_iter(values), |r| Ok(Stored::new(r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Calls `each` for every matching record, oldest first, without
    /// loading them all at once. Stops at the first error `each` returns.
    pub fn for_each<E: From<StoreError>>(
        &self,
        filter: &Filter,
        mut each: impl FnMut(Stored) -> Result<(), E>,
    ) -> Result<(), E> {
        let (clause, values) = self.clause(filter);
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT id, record FROM records{clause} ORDER BY start_ms, id"))
            .map_err(StoreError::from)?;
        let mut rows = stmt.query(params_from_iter(values)).map_err(StoreError::from)?;
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            let stored = Stored::new(row.get(0).map_err(StoreError::from)?, row.get(1).map_err(StoreError::from)?);
            each(stored)?;
        }
        Ok(())
    }

    /// One record, by row id or by span id (or a unique prefix of one).
    pub fn get(&self, id: &str) -> Result<Stored, StoreError> {
        let id = id.trim();
        let by_row = id.parse::<i64>().ok().map(|n| {
            self.conn.query_row("SELECT id, record FROM records WHERE id = ?", [n], |r| {
                Ok(Stored::new(r.get(0)?, r.get(1)?))
            })
        });
        match by_row {
            Some(Ok(s)) => return Ok(s),
            Some(Err(rusqlite::Error::QueryReturnedNoRows)) | None => {}
            Some(Err(e)) => return Err(e.into()),
        }
        if id.len() >= 4 && id.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut stmt = self.conn.prepare_cached("SELECT id, record FROM records WHERE span_id GLOB ? LIMIT 2")?;
            let found: Vec<Stored> = stmt
                .query_map([format!("{}*", id.to_ascii_lowercase())], |r| Ok(Stored::new(r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            if found.len() == 1 {
                return Ok(found.into_iter().next().expect("one row"));
            }
        }
        Err(StoreError::NotFound(id.to_owned()))
    }

    /// One page of matching records, newest first, and the cursor of the
    /// next page (`None`: this was the last).
    pub fn page(&self, filter: &Filter, limit: usize) -> Result<(Vec<Summary>, Option<Cursor>), StoreError> {
        let limit = limit.max(1);
        Ok(cut_page(self.latest(filter, limit + 1)?, limit))
    }

    /// [`page`](Self::page) for a filter with text, helped by the viewer's
    /// search index (`index`: its file, and the row it covers up to). A
    /// scan newest first answers at once when matches are common; when it
    /// has read for a while without filling the page, the index answers for
    /// the rows it covers and a scan for the newer ones: the same records,
    /// in the same order.
    pub fn page_searching(
        &mut self,
        filter: &Filter,
        limit: usize,
        index: Option<(&Path, i64)>,
        scan_budget: Duration,
    ) -> Result<(Vec<Summary>, Option<Cursor>), StoreError> {
        self.use_index(index)?;
        let text = filter.text.as_deref().filter(|t| !t.is_empty());
        let (Some(text), Some((_, upto))) = (text, index) else {
            return self.page(filter, limit);
        };
        let Some(phrase) = crate::ui::search::match_query(text) else {
            return self.page(filter, limit);
        };
        // The scan, on a budget of SQLite steps (tens of milliseconds; with
        // none, the index answers at once).
        if !scan_budget.is_zero() {
            let started = std::time::Instant::now();
            self.conn.progress_handler(1_000, Some(move || started.elapsed() > scan_budget))?;
            let scanned = self.page(filter, limit);
            self.conn.progress_handler(0, None::<fn() -> bool>)?;
            match scanned {
                Err(StoreError::Query(rusqlite::Error::SqliteFailure(e, _)))
                    if e.code == rusqlite::ErrorCode::OperationInterrupted => {}
                done => return done,
            }
        }
        let limit = limit.max(1);
        let base = Filter { text: None, ..filter.clone() };
        let (clause, values) = self.clause(&base);
        let and = if clause.is_empty() { " WHERE ".to_owned() } else { format!("{clause} AND ") };
        let columns = self.summary_columns();
        let sql = format!(
            "SELECT * FROM (
                SELECT {columns} FROM records{and}id IN (SELECT rowid FROM search.text WHERE text MATCH ?)
                    AND id <= ? AND record LIKE ? ESCAPE '\\'
                UNION ALL
                SELECT {columns} FROM records{and}id > ? AND record LIKE ? ESCAPE '\\'
             ) ORDER BY start_ms DESC, id DESC LIMIT ?"
        );
        let mut params = values.clone();
        params.push(SqlValue::Text(phrase));
        // The index may already hold rows past `upto` (the scan half has
        // those): each row comes from one half only.
        params.push(SqlValue::Integer(upto));
        params.push(SqlValue::Text(like_pattern(text)));
        params.extend(values);
        params.push(SqlValue::Integer(upto));
        params.push(SqlValue::Text(like_pattern(text)));
        params.push(SqlValue::Integer(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows: Vec<Summary> = stmt.query_map(params_from_iter(params), summary)?.collect::<Result<_, _>>()?;
        Ok(cut_page(rows, limit))
    }

    /// Records written after row `after` (oldest first, at most `limit`):
    /// what a live tail has not seen yet.
    pub fn newer_than(&self, after: i64, limit: usize) -> Result<Vec<Summary>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached(&format!("SELECT {} FROM records WHERE id > ? ORDER BY id LIMIT ?", self.summary_columns()))?;
        let rows = stmt.query_map(rusqlite::params![after, i64::try_from(limit).unwrap_or(i64::MAX)], summary)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the oldest matching record started (`None`: none match).
    pub fn oldest_start(&self, filter: &Filter) -> Result<Option<i64>, StoreError> {
        let (clause, values) = self.clause(filter);
        Ok(self.conn.query_row(&format!("SELECT min(start_ms) FROM records{clause}"), params_from_iter(values), |r| r.get(0))?)
    }

    /// The newest row id (0 in an empty store).
    pub fn last_id(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("SELECT coalesce(max(id), 0) FROM records", [], |r| r.get(0))?)
    }

    /// The query of [`trace_each`](Self::trace_each): the trace's rows are
    /// found through the index that carries the trace id (the second time
    /// index since schema 4, scanned without reading the table; the trace
    /// index before), then read. Asked plainly, SQLite would walk the time
    /// index for the order and read every row.
    fn trace_query(&self) -> String {
        format!(
            "SELECT {}, span_id, json_extract(record, '$.parent_span_id') FROM records
             WHERE id IN (SELECT id FROM records WHERE trace_id = ?) ORDER BY start_ms, id LIMIT ?",
            self.summary_columns()
        )
    }

    /// Every record of one trace (by its full id), oldest first, with its
    /// span and parent ids, at most `limit`, handed to `f` one at a time (a
    /// trace can hold thousands: an answer can be written as the rows are
    /// read).
    pub fn trace_each<E: From<StoreError>>(
        &self,
        trace_id: &str,
        limit: usize,
        mut f: impl FnMut(TraceSpan) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut stmt = self.conn.prepare_cached(&self.trace_query()).map_err(StoreError::from)?;
        let mut rows = stmt
            .query(rusqlite::params![trace_id.to_ascii_lowercase(), i64::try_from(limit).unwrap_or(i64::MAX)])
            .map_err(StoreError::from)?;
        while let Some(row) = rows.next().map_err(StoreError::from)? {
            f(trace_span(row).map_err(StoreError::from)?)?;
        }
        Ok(())
    }

    /// The models and sources that occur (for a viewer's filters), in
    /// alphabetical order, at most `limit` of each; and the users and
    /// sessions of the newest records, from the viewer's index.
    pub fn facets(&self, limit: usize) -> Result<Facets, StoreError> {
        // Each distinct value by one seek in the column's index (not a
        // pass over every row: milliseconds at any store size).
        let column = |name: &str| -> Result<Vec<String>, StoreError> {
            let mut stmt = self.conn.prepare_cached(&format!(
                "WITH RECURSIVE seen(value) AS (
                    SELECT (SELECT min({name}) FROM records)
                    UNION ALL
                    SELECT (SELECT min({name}) FROM records WHERE {name} > value) FROM seen WHERE value IS NOT NULL
                 ) SELECT value FROM seen WHERE value IS NOT NULL LIMIT ?"
            ))?;
            let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let (mut users, mut sessions) = (Vec::new(), Vec::new());
        if self.search.is_some() && self.covered > 0 {
            let from_index = |sql: &str| -> Result<Vec<String>, StoreError> {
                let mut stmt = self.conn.prepare_cached(sql)?;
                let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            };
            // From the newest records the index holds (what a filter is
            // likely wanted for, in milliseconds at any store size).
            users = from_index(
                "SELECT user FROM (SELECT user FROM search.who WHERE user IS NOT NULL ORDER BY id DESC LIMIT 20000)
                 GROUP BY user ORDER BY count(*) DESC, user LIMIT ?",
            )?;
            sessions = from_index(
                "SELECT session FROM (SELECT id, session FROM search.who WHERE session IS NOT NULL ORDER BY id DESC LIMIT 20000)
                 GROUP BY session ORDER BY max(id) DESC LIMIT ?",
            )?;
        }
        Ok(Facets { models: column("model")?, sources: column("source")?, users, sessions })
    }

    /// The matching records' figures over time, in buckets of `bucket_ms`
    /// (oldest first; buckets without records are left out).
    pub fn series(&self, filter: &Filter, bucket_ms: i64) -> Result<Vec<Bucket>, StoreError> {
        let bucket_ms = bucket_ms.max(1);
        let (clause, values) = self.clause(filter);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT start_ms, status, duration_ms, {}, input_tokens, output_tokens, {}, kind
             FROM records{clause} ORDER BY start_ms",
            self.ttfc, self.cost
        ))?;
        let mut rows = stmt.query(params_from_iter(values))?;
        let mut out: Vec<Bucket> = Vec::new();
        let mut acc = Acc::default();
        let mut current: Option<i64> = None;
        let close = |start: i64, acc: &mut Acc, out: &mut Vec<Bucket>| {
            let mut a = std::mem::take(acc);
            out.push(Bucket {
                start_ms: start,
                calls: a.calls,
                errors: a.errors,
                input_tokens: a.input_tokens,
                output_tokens: a.output_tokens,
                cost_usd: a.cost_usd,
                latency_ms: a.latency.percentiles(),
                time_to_first_chunk_ms: a.ttfc.percentiles(),
            });
        };
        while let Some(row) = rows.next()? {
            let start: i64 = row.get(0)?;
            let b = start.div_euclid(bucket_ms) * bucket_ms;
            if current.is_some_and(|c| c != b) {
                close(current.unwrap_or(b), &mut acc, &mut out);
            }
            current = Some(b);
            let timed = row.get_ref(7)?.as_str().unwrap_or("") != "raw";
            acc.add(row, 1, timed)?;
        }
        if let Some(c) = current {
            close(c, &mut acc, &mut out);
        }
        Ok(out)
    }

    /// Calls, errors, tokens and latency percentiles: per model for LLM
    /// calls, per source for logged functions.
    pub fn stats(&self, filter: &Filter) -> Result<Stats, StoreError> {
        let (clause, values) = self.clause(filter);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT kind, model, source, status, duration_ms, {}, input_tokens, output_tokens, {}
             FROM records{clause}",
            self.ttfc, self.cost
        ))?;
        let mut rows = stmt.query(params_from_iter(values))?;
        let mut models: HashMap<String, Acc> = HashMap::new();
        let mut sources: HashMap<String, Acc> = HashMap::new();
        let mut total = 0u64;
        let mut raw = 0u64;
        while let Some(row) = rows.next()? {
            total += 1;
            let (map, key) = match row.get_ref(0)?.as_str().unwrap_or("") {
                "llm_call" => (&mut models, row.get_ref(1)?),
                "function_call" => (&mut sources, row.get_ref(2)?),
                _ => {
                    raw += 1;
                    continue;
                }
            };
            let key = match key {
                ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or(UNKNOWN),
                _ => UNKNOWN,
            };
            let acc = match map.get_mut(key) {
                Some(acc) => acc,
                None => map.entry(key.to_owned()).or_default(),
            };
            acc.add(row, 3, true)?;
        }
        let (models, sources) = (finish(models), finish(sources));
        let cost_usd = models.iter().map(|g| g.cost_usd).sum();
        Ok(Stats { records: total, other_records: raw, cost_usd, models, sources })
    }
}

fn trace_span(row: &rusqlite::Row<'_>) -> rusqlite::Result<TraceSpan> {
    Ok(TraceSpan { summary: summary(row)?, span_id: row.get(13)?, parent_span_id: row.get(14)? })
}

/// Group key for records without a model or source.
pub const UNKNOWN: &str = "(none)";

#[derive(Default)]
struct Acc {
    calls: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
    priced: u64,
    latency: Samples,
    ttfc: Samples,
}

impl Acc {
    /// Counts one record from `row`, whose columns from `at` on are status,
    /// duration_ms, time to first chunk, input tokens, output tokens and
    /// cost; its duration goes into the latency figures when `timed`.
    fn add(&mut self, row: &rusqlite::Row<'_>, at: usize, timed: bool) -> rusqlite::Result<()> {
        self.calls += 1;
        if row.get_ref(at)?.as_str().unwrap_or("") == "ERROR" {
            self.errors += 1;
        }
        if timed {
            self.latency.push(row.get(at + 1)?);
        }
        if let Some(t) = row.get::<_, Option<f64>>(at + 2)? {
            self.ttfc.push(t);
        }
        self.input_tokens += row.get::<_, Option<i64>>(at + 3)?.unwrap_or(0).max(0) as u64;
        self.output_tokens += row.get::<_, Option<i64>>(at + 4)?.unwrap_or(0).max(0) as u64;
        if let Some(c) = row.get::<_, Option<f64>>(at + 5)?.filter(|c| c.is_finite() && *c >= 0.0) {
            self.cost_usd += c;
            self.priced += 1;
        }
        Ok(())
    }
}

fn finish(map: HashMap<String, Acc>) -> Vec<GroupStats> {
    let mut groups: Vec<GroupStats> = map
        .into_iter()
        .map(|(key, mut a)| GroupStats {
            key,
            calls: a.calls,
            errors: a.errors,
            error_rate: if a.calls == 0 { 0.0 } else { a.errors as f64 / a.calls as f64 },
            input_tokens: a.input_tokens,
            output_tokens: a.output_tokens,
            cost_usd: a.cost_usd,
            priced_calls: a.priced,
            latency_ms: a.latency.percentiles(),
            time_to_first_chunk_ms: a.ttfc.percentiles(),
        })
        .collect();
    groups.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.key.cmp(&b.key)));
    groups
}

/// What `anosys stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Records that matched the filter.
    pub records: u64,
    /// Of those, records that are neither LLM calls nor function calls.
    pub other_records: u64,
    /// Cost of the LLM calls, in US dollars (those priced).
    pub cost_usd: f64,
    /// LLM calls per model, most called first.
    pub models: Vec<GroupStats>,
    /// Logged function calls per source, most called first.
    pub sources: Vec<GroupStats>,
}

/// Figures for one model or source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStats {
    /// The model or source ([`UNKNOWN`] when records had none).
    pub key: String,
    /// Calls.
    pub calls: u64,
    /// Calls with status `ERROR`.
    pub errors: u64,
    /// `errors / calls`.
    pub error_rate: f64,
    /// Prompt tokens, summed.
    pub input_tokens: u64,
    /// Completion tokens, summed.
    pub output_tokens: u64,
    /// Cost in US dollars, summed over the priced calls.
    pub cost_usd: f64,
    /// Calls with a cost (the others' models had no known price, or they
    /// had no usage).
    pub priced_calls: u64,
    /// Duration percentiles in ms.
    pub latency_ms: Option<Percentiles>,
    /// Time-to-first-chunk percentiles in ms (streams only).
    pub time_to_first_chunk_ms: Option<Percentiles>,
}

/// One record of a trace, with what places it in the tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceSpan {
    /// The record's indexed fields.
    #[serde(flatten)]
    pub summary: Summary,
    /// Its span id.
    pub span_id: String,
    /// Its parent's span id (`None` for a root).
    pub parent_span_id: Option<String>,
}

/// What values the store's records take, for filters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facets {
    /// Models, in alphabetical order.
    pub models: Vec<String>,
    /// Sources, in alphabetical order.
    pub sources: Vec<String>,
    /// Users of the newest 20,000 records that have one (from the viewer's
    /// index: empty without one), most frequent first.
    pub users: Vec<String>,
    /// Sessions of the newest 20,000 records that have one, newest first
    /// (from the viewer's index).
    pub sessions: Vec<String>,
}

/// Figures for one stretch of time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Where the stretch starts, ms since the epoch.
    pub start_ms: i64,
    /// Records in it.
    pub calls: u64,
    /// Of those, with status `ERROR`.
    pub errors: u64,
    /// Prompt tokens, summed.
    pub input_tokens: u64,
    /// Completion tokens, summed.
    pub output_tokens: u64,
    /// Cost in US dollars, summed over priced calls.
    pub cost_usd: f64,
    /// Duration percentiles in ms (raw events left out).
    pub latency_ms: Option<Percentiles>,
    /// Time-to-first-chunk percentiles in ms (streams only).
    pub time_to_first_chunk_ms: Option<Percentiles>,
}

/// p50, p95 and p99 by the nearest-rank method (the smallest value with at
/// least p% of the values at or below it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    /// The percentiles of `values` (reordered in place); `None` when empty.
    pub fn of(values: &mut [f64]) -> Option<Percentiles> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable_by(f64::total_cmp);
        let at = |p: f64| {
            let rank = (p * values.len() as f64).ceil() as usize;
            values[rank.clamp(1, values.len()) - 1]
        };
        Some(Percentiles { p50: at(0.50), p95: at(0.95), p99: at(0.99) })
    }
}

/// Values kept for percentiles: every one while there are few (exact
/// figures), then counts in logarithmic buckets 1% wide, so that a million
/// durations take a few kilobytes instead of megabytes and every figure
/// stays within 0.5% of the exact one.
#[derive(Debug, Default)]
struct Samples {
    exact: Vec<f64>,
    /// Bucket `i` holds values in (GAMMA^(i-1), GAMMA^i]; `None` while exact.
    buckets: Option<std::collections::BTreeMap<i32, u64>>,
}

/// How many values are kept as they are.
const EXACT_SAMPLES: usize = 16_384;

/// Ratio of one bucket's upper bound to its lower one.
const GAMMA: f64 = 1.01;

/// Values at or below this (ms) count as this.
const SMALLEST: f64 = 1e-3;

impl Samples {
    fn push(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        match &mut self.buckets {
            None if self.exact.len() < EXACT_SAMPLES => self.exact.push(value),
            None => {
                let mut buckets = std::collections::BTreeMap::new();
                for v in std::mem::take(&mut self.exact).into_iter().chain([value]) {
                    *buckets.entry(bucket_of(v)).or_insert(0) += 1;
                }
                self.buckets = Some(buckets);
            }
            Some(buckets) => *buckets.entry(bucket_of(value)).or_insert(0) += 1,
        }
    }

    fn percentiles(&mut self) -> Option<Percentiles> {
        let Some(buckets) = &self.buckets else { return Percentiles::of(&mut self.exact) };
        let total: u64 = buckets.values().sum();
        let at = |p: f64| {
            let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (&i, &n) in buckets {
                seen += n;
                if seen >= rank {
                    // The middle of the bucket, relatively: within half its
                    // width of every value in it.
                    return 2.0 * GAMMA.powi(i) / (GAMMA + 1.0);
                }
            }
            f64::NAN
        };
        (total > 0).then(|| Percentiles { p50: at(0.50), p95: at(0.95), p99: at(0.99) })
    }
}

fn bucket_of(value: f64) -> i32 {
    (value.max(SMALLEST).ln() / GAMMA.ln()).ceil() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_samples_stay_within_half_a_percent() {
        let values: Vec<f64> = (1..=200_000).map(|i| f64::from(i) * 0.37 + (f64::from(i % 97)) * 3.1).collect();
        let mut samples = Samples::default();
        for v in &values {
            samples.push(*v);
        }
        assert!(samples.buckets.as_ref().is_some_and(|b| b.len() < 2_000));
        let approx = samples.percentiles().unwrap();
        let exact = Percentiles::of(&mut values.clone()).unwrap();
        for (a, e) in [(approx.p50, exact.p50), (approx.p95, exact.p95), (approx.p99, exact.p99)] {
            assert!((a - e).abs() <= e * 0.005, "{a} vs {e}");
        }
        // Few values: exact.
        let mut few = Samples::default();
        for v in [3.0, 1.0, 2.0] {
            few.push(v);
        }
        assert_eq!(few.percentiles(), Percentiles::of(&mut [1.0, 2.0, 3.0]));
        assert_eq!(Samples::default().percentiles(), None);
    }

    use std::time::SystemTime;

    #[test]
    fn a_trace_is_found_through_the_time_index_not_by_reading_the_table() {
        let dir = std::env::temp_dir().join(format!("anosys-store-trace-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("anosys.db");
        let mut conn = anosys::sinks::sqlite::open(&path).unwrap();
        let records: Vec<anosys::Record> = (0..50)
            .map(|i| {
                let mut r = anosys::Record::new(anosys::RecordKind::Raw, format!("r{i}"));
                r.start_time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 50 - i);
                r
            })
            .collect();
        anosys::sinks::sqlite::insert(&mut conn, &records).unwrap();
        let store = Store::open(&path).unwrap();
        let plan: Vec<String> = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", store.trace_query()))
            .unwrap()
            .query_map(rusqlite::params![records[7].trace_id.to_string(), 10], |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(plan.iter().any(|step| step.contains("USING COVERING INDEX records_start_trace")), "{plan:?}");
        assert!(!plan.iter().any(|step| step.contains("SCAN records USING INDEX records_start")), "{plan:?}");
        // `--trace` in lists likewise.
        let filter = Filter { trace: Some(records[7].trace_id.to_string()[..8].to_owned()), ..Filter::default() };
        assert_eq!(store.count(&filter).unwrap(), 1);
        let mut found = Vec::new();
        store
            .trace_each::<StoreError>(&records[7].trace_id.to_string(), 10, |span| {
                found.push(span.summary.trace_id);
                Ok(())
            })
            .unwrap();
        assert_eq!(found, [records[7].trace_id.to_string()]);
        drop(store);
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = Percentiles::of(&mut v).unwrap();
        assert_eq!((p.p50, p.p95, p.p99), (50.0, 95.0, 99.0));
        let p = Percentiles::of(&mut [7.0]).unwrap();
        assert_eq!((p.p50, p.p95, p.p99), (7.0, 7.0, 7.0));
        assert_eq!(Percentiles::of(&mut []), None);
    }
}
