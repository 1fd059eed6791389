//! The viewer's full-text index: SQLite FTS5 with the trigram tokenizer,
//! over each record as stored (its JSON: prompts, replies, tool arguments,
//! errors, in any script), in a file of its own next to the store
//! (`<store>.search`).
//!
//! The viewer builds and extends it in the background, from the rows the
//! store gained since, so applications writing the store never pay for it
//! and a store of any age becomes searchable. Rows not indexed yet are
//! searched by a plain scan, so answers are complete at any moment. If the
//! store is replaced (its row ids start again), the index starts again.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::store::{SESSION_SQL, USER_SQL};

/// The index beside `store`.
#[derive(Debug, Clone)]
pub struct SearchIndex {
    path: PathBuf,
    store: PathBuf,
}

/// How far the index has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Every row up to this id is indexed.
    pub indexed_upto: i64,
    /// The newest row of the store.
    pub last_id: i64,
}

/// The index's layout; an index of another layout is built again.
const FORMAT: &str = "trigram-detail-none-2";

/// Contentless (the text stays in the store) and without positions (about
/// half the store's size, where positions would make it three times): a
/// search asks for records holding all of its trigrams, and the store's own
/// `LIKE` keeps those that hold the text itself.
///
/// `who`: each record's user and session (see [`USER_SQL`]), for the
/// viewer's user and session filters; only rows that have either.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
    CREATE VIRTUAL TABLE IF NOT EXISTS text USING fts5(record, tokenize = 'trigram', content = '', detail = 'none');
    CREATE TABLE IF NOT EXISTS who (id INTEGER PRIMARY KEY, user TEXT, session TEXT);
    CREATE INDEX IF NOT EXISTS who_user ON who (user) WHERE user IS NOT NULL;
    CREATE INDEX IF NOT EXISTS who_session ON who (session) WHERE session IS NOT NULL;
";

/// Puts the index in WAL mode (it stays so). Switching a new file needs an
/// exclusive lock, for which SQLite does not wait: while another viewer is
/// switching the same new file, try again shortly, for up to 10 seconds,
/// as the store's own open does (`anosys::sinks::sqlite`).
fn wal(conn: &Connection) -> rusqlite::Result<()> {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

impl SearchIndex {
    /// The index of the store at `store`: `<store>.search`.
    pub fn for_store(store: &Path) -> SearchIndex {
        let mut name = store.as_os_str().to_owned();
        name.push(".search");
        SearchIndex { path: PathBuf::from(name), store: store.to_owned() }
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Indexes up to `max` rows the index lacks, oldest first, in one
    /// transaction. `Ok(None)` when there is no store yet.
    pub fn catch_up(&self, max: usize) -> rusqlite::Result<Option<Progress>> {
        if !self.store.exists() {
            return Ok(None);
        }
        let mut conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_URI,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        wal(&conn)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // A small page cache: the viewer stays light while it indexes.
        conn.pragma_update(None, "cache_size", -1024)?;
        // Looked at and made in one write transaction: two viewers of one
        // store (or two threads of one) starting together would otherwise
        // both find no index and both make it, the second failing.
        let setup = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let format: Option<String> =
            setup.query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| r.get(0)).optional().unwrap_or(None);
        if format.as_deref() != Some(FORMAT) {
            setup.execute_batch("DROP TABLE IF EXISTS text; DROP TABLE IF EXISTS who; DROP TABLE IF EXISTS meta;")?;
            setup.execute_batch(SCHEMA)?;
            setup.execute("INSERT INTO meta VALUES ('format', ?1)", [FORMAT])?;
        }
        setup.commit()?;
        conn.execute("ATTACH DATABASE ?1 AS store", [store_uri(&self.store)])?;
        // The store is read once, in order.
        conn.pragma_update(Some("store"), "cache_size", -256)?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let meta = |key: &str| -> rusqlite::Result<Option<rusqlite::types::Value>> {
            tx.query_row("SELECT value FROM meta WHERE key = ?", [key], |r| r.get(0)).optional()
        };
        let mut upto = match meta("indexed_upto")? {
            Some(rusqlite::types::Value::Integer(n)) => n,
            _ => 0,
        };
        // The same store? The row the index ended at must still be there,
        // with the same span id.
        if upto > 0 {
            let span: Option<String> =
                tx.query_row("SELECT span_id FROM store.records WHERE id = ?", [upto], |r| r.get(0)).optional()?;
            let known = match meta("last_span_id")? {
                Some(rusqlite::types::Value::Text(s)) => Some(s),
                _ => None,
            };
            if span.is_none() || span != known {
                tx.execute("INSERT INTO text(text) VALUES ('delete-all')", [])?;
                tx.execute("DELETE FROM who", [])?;
                upto = 0;
            }
        }
        let last_id: i64 = tx.query_row("SELECT coalesce(max(id), 0) FROM store.records", [], |r| r.get(0))?;
        let added = tx.execute(
            "INSERT INTO text(rowid, record) SELECT id, record FROM store.records WHERE id > ?1 ORDER BY id LIMIT ?2",
            rusqlite::params![upto, i64::try_from(max).unwrap_or(i64::MAX)],
        )?;
        if added > 0 || upto == 0 {
            let (new_upto, span): (i64, Option<String>) = tx
                .query_row(
                    "SELECT id, span_id FROM store.records WHERE id > ?1 ORDER BY id LIMIT 1 OFFSET ?2",
                    rusqlite::params![upto, added as i64 - 1],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .unwrap_or((upto, None));
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO who (id, user, session)
                     SELECT * FROM (SELECT id, {USER_SQL} AS user, {SESSION_SQL} AS session
                                    FROM store.records WHERE id > ?1 AND id <= ?2)
                     WHERE user IS NOT NULL OR session IS NOT NULL"
                ),
                [upto, new_upto],
            )?;
            tx.execute("INSERT OR REPLACE INTO meta VALUES ('indexed_upto', ?1)", [new_upto])?;
            tx.execute("INSERT OR REPLACE INTO meta VALUES ('last_span_id', ?1)", [span])?;
            upto = new_upto;
        }
        tx.commit()?;
        Ok(Some(Progress { indexed_upto: upto, last_id }))
    }

    /// How far the index has come, without changing it (`None`: no index
    /// yet, or not readable).
    pub fn indexed_upto(&self) -> Option<i64> {
        if !self.path.exists() {
            return None;
        }
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        // An index of another layout is built again before it is used.
        let format: String = conn.query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| r.get(0)).ok()?;
        if format != FORMAT {
            return None;
        }
        conn.query_row("SELECT value FROM meta WHERE key = 'indexed_upto'", [], |r| r.get(0)).ok()
    }
}

/// `store` as a read-only SQLite URI.
fn store_uri(store: &Path) -> String {
    let mut uri = String::from("file:");
    for b in store.to_string_lossy().bytes() {
        match b {
            b'?' | b'#' | b'%' | 0x80.. => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(b as char),
        }
    }
    uri.push_str("?mode=ro");
    uri
}

/// Most trigrams a query asks the index for (spread over the text; the
/// store's `LIKE` checks the rest).
const MAX_TRIGRAMS: usize = 12;

/// The index query for `text`: every record holding all of its trigrams
/// (a superset of those holding the text), or `None` when it is too short
/// for trigrams (under three characters).
pub fn match_query(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() < 3 {
        return None;
    }
    let mut grams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    grams.sort();
    grams.dedup();
    if grams.len() > MAX_TRIGRAMS {
        let step = grams.len() as f64 / MAX_TRIGRAMS as f64;
        grams = (0..MAX_TRIGRAMS).map(|i| grams[(i as f64 * step) as usize].clone()).collect();
    }
    Some(grams.iter().map(|g| format!("\"{}\"", g.replace('"', "\"\""))).collect::<Vec<_>>().join(" AND "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_and_uris() {
        assert_eq!(match_query("ab"), None);
        assert_eq!(match_query("東京の").as_deref(), Some("\"東京の\""));
        assert_eq!(match_query("abab").as_deref(), Some("\"aba\" AND \"bab\""));
        // Sorted: `"bc` before `a"b`.
        assert_eq!(match_query("a\"bc").as_deref(), Some("\"\"\"bc\" AND \"a\"\"b\""));
        assert_eq!(match_query("xxxabcdefghijklmnopqrstuvwxyz").unwrap().matches(" AND ").count(), 11);
        assert_eq!(store_uri(Path::new("/tmp/a?b#c%d.db")), "file:/tmp/a%3Fb%23c%25d.db?mode=ro");
        assert_eq!(store_uri(Path::new("/tmp/é.db")), "file:/tmp/%C3%A9.db?mode=ro");
    }
}
