//! The outbox's tables in the SQLite store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use super::{decode, Claimed, Entry, OutboxStats, Payload, Put, Settle, Wire, WireEncoder};
use crate::record::time::epoch_millis;
use crate::sinks::Destination;

type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why the outbox could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The store could not be opened (refused, unreadable, no permission).
    #[error("cannot open the outbox in {}", path.display())]
    Open {
        /// The store's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: Source,
    },
    /// A read or write failed (a full disk, a locked or damaged file).
    #[error("cannot use the outbox in {}", path.display())]
    Io {
        /// The store's path.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
}

impl OutboxError {
    /// Whether the disk (or the file size limit) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            OutboxError::Io { source, .. } => matches!(source.sqlite_error_code(), Some(rusqlite::ErrorCode::DiskFull)),
            OutboxError::Open { .. } => false,
        }
    }
}

/// One destination's outbox in a store. Blocking: use it off the async
/// threads.
///
/// ```
/// use anosys::sinks::{outbox::{Entry, Outbox, Settle}, Destination};
/// use std::time::Duration;
/// let path = std::env::temp_dir().join(format!("anosys-outbox-doc-{}.db", std::process::id()));
/// # let _ = std::fs::remove_file(&path);
/// let destination = Destination::new("anosys", "https://example.invalid/log", "AnoSys");
/// let mut outbox = Outbox::open(&path, &destination, 1 << 20)?;
/// let record = anosys::Record::new(anosys::RecordKind::Raw, "kept");
/// outbox.put(&[Entry { record: &record, uncertain: false }])?;
/// let claimed = outbox.claim(10, Duration::from_secs(30))?;
/// assert_eq!(claimed.len(), 1);
/// outbox.settle(&Settle { delivered: vec![claimed[0].id], ..Default::default() })?;
/// assert_eq!(outbox.stats()?.records, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Outbox {
    conn: Connection,
    path: PathBuf,
    destination_id: i64,
    table: String,
    owner: String,
    max_bytes: u64,
    /// Rows are written in the sink's own form when it has one.
    wire: Option<Arc<dyn WireEncoder>>,
    /// Tails read back, by id (a tail's text never changes: ids are not
    /// reused).
    tails: HashMap<i64, Arc<[u8]>>,
    /// This outbox's leases of runs of rows (see [`LEASES`]), by their
    /// first row: (first row, lease row id). Freed when that row is settled.
    leases: HashMap<i64, i64>,
    /// The context of the pipeline whose records it keeps: writing a
    /// batch gives way to the application's threads as the pipeline's
    /// other long stretches do (see `pipeline::pace`). Outside a pipeline
    /// (the default) it never gives way.
    cx: crate::sinks::ExportContext,
    /// How many times writing batches gave way.
    #[cfg(test)]
    given: u64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("path", &self.path).field("table", &self.table).finish_non_exhaustive()
    }
}

fn io_at(path: &Path, source: rusqlite::Error) -> OutboxError {
    OutboxError::Io { path: path.to_owned(), source }
}

/// Runs `f` in an immediate transaction (the write lock taken at once, so
/// two processes never interleave), committed when `f` succeeds and rolled
/// back when it fails.
fn in_transaction<T>(
    conn: &mut Connection,
    path: &Path,
    f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
) -> Result<T, OutboxError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| io_at(path, e))?;
    // Dropping `tx` on an error rolls it back.
    let value = f(&tx).map_err(|e| io_at(path, e))?;
    tx.commit().map_err(|e| io_at(path, e))?;
    Ok(value)
}

/// About how many bytes of rows one claim reads at most (rows of large
/// records are claimed fewer at a time): what drains hold in memory stays
/// small next to the queue's bound, whatever the batch size.
pub const CLAIM_MAX_BYTES: usize = 4 << 20;

/// What a row holds for `record`: the head of its request body and the
/// body's tail when the destination keeps bodies (`wire`), else the
/// record's JSON and no tail; `None` when it cannot be serialised.
fn row_text(wire: Option<&dyn WireEncoder>, record: &crate::Record) -> Option<(String, Option<Arc<str>>)> {
    if let Some(Wire { head, tail }) = wire.and_then(|w| w.encode(record))
        && let Ok(head) = String::from_utf8(head)
    {
        return Some((head, Some(tail)));
    }
    record.to_json().ok().map(|json| (json, None))
}

fn now_ms() -> i64 {
    epoch_millis(SystemTime::now()) as i64
}

const DESTINATIONS: &str = "CREATE TABLE IF NOT EXISTS outbox_destinations (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_error_ms INTEGER,
    created_ms INTEGER NOT NULL
)";

/// The shared parts of bodies kept in their sink's form ([`Wire::tail`]).
/// AUTOINCREMENT: an id is never reused, so a tail read back stays right.
const TAILS: &str = "CREATE TABLE IF NOT EXISTS outbox_tails (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL UNIQUE
)";

/// Leases of runs of rows: a claim leases the rows it takes, a run of
/// neighbours in the table, with one row here (`first_id` to `last_id`)
/// rather than by writing the lease into each row (which rewrote every row,
/// body and all, and its page in the WAL). A row is leased when its own
/// `lease_owner`/`lease_until` say so (rows kept while their send goes
/// on, and rows leased by earlier versions) or a lease here covers it.
const LEASES: &str = "CREATE TABLE IF NOT EXISTS outbox_leases (
    id INTEGER PRIMARY KEY,
    destination INTEGER NOT NULL,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    until INTEGER NOT NULL
)";

/// SQL true when row `{t}.id` of destination `?{d}` is under a lease of
/// [`LEASES`] at `?{now}`.
fn run_leased(t: &str, d: usize, now: usize) -> String {
    format!(
        "EXISTS (SELECT 1 FROM outbox_leases l WHERE l.destination = ?{d} AND l.until > ?{now}
            AND {t}.id BETWEEN l.first_id AND l.last_id)"
    )
}

/// Row formats (the `format` column).
const FORMAT_RECORD: i64 = 0;
const FORMAT_WIRE: i64 = 1;

fn table_of(id: i64) -> String {
    format!("outbox_{id}")
}

impl Outbox {
    /// Opens (creating if needed) the store at `path` and the outbox of
    /// `destination` in it, bounded to `max_bytes` across destinations.
    pub fn open(path: &Path, destination: &Destination, max_bytes: u64) -> Result<Outbox, OutboxError> {
        let mut conn = crate::sinks::sqlite::open(path)
            .map_err(|e| OutboxError::Open { path: path.to_owned(), source: e.into() })?;
        let id = in_transaction(&mut conn, path, |tx| {
            tx.execute_batch(DESTINATIONS)?;
            tx.execute_batch(TAILS)?;
            tx.execute_batch(LEASES)?;
            tx.execute(
                "INSERT INTO outbox_destinations (key, label, created_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(key) DO UPDATE SET label = excluded.label",
                params![destination.key(), destination.label(), now_ms()],
            )?;
            let id: i64 =
                tx.query_row("SELECT id FROM outbox_destinations WHERE key = ?1", [destination.key()], |r| r.get(0))?;
            tx.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    record_id TEXT NOT NULL,
                    created_ms INTEGER NOT NULL,
                    bytes INTEGER NOT NULL,
                    uncertain INTEGER NOT NULL DEFAULT 0,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    lease_owner TEXT,
                    lease_until INTEGER NOT NULL DEFAULT 0,
                    next_try_ms INTEGER NOT NULL DEFAULT 0,
                    record TEXT NOT NULL,
                    format INTEGER NOT NULL DEFAULT 0,
                    tail INTEGER
                )",
                table_of(id)
            ))?;
            // A table made by an earlier version: its rows are records.
            if tx.prepare(&format!("SELECT format, tail FROM {} LIMIT 0", table_of(id))).is_err() {
                tx.execute_batch(&format!(
                    "ALTER TABLE {t} ADD COLUMN format INTEGER NOT NULL DEFAULT 0;
                     ALTER TABLE {t} ADD COLUMN tail INTEGER;",
                    t = table_of(id)
                ))?;
            }
            forget_unused_tails(tx)?;
            Ok(id)
        })?;
        // Rows leased by a process that is gone (killed mid-send) need not
        // wait for their lease to run out.
        let _ = release_dead_leases(&conn, &table_of(id), id);
        Ok(Outbox {
            conn,
            path: path.to_owned(),
            destination_id: id,
            table: table_of(id),
            owner: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
            max_bytes,
            wire: None,
            tails: HashMap::new(),
            leases: HashMap::new(),
            cx: crate::sinks::ExportContext::default(),
            #[cfg(test)]
            given: 0,
        })
    }

    /// Writes rows from now on in the form `encoder` gives (the sink's
    /// own, ready to send: [`Payload::Wire`]) rather than as records; a
    /// record it cannot encode is kept as a record.
    pub fn set_wire(&mut self, encoder: Option<Arc<dyn WireEncoder>>) {
        self.wire = encoder;
    }

    /// Writes batches from now on as a sink of the pipeline of `cx` works:
    /// giving way to the application's threads between rows while the
    /// pipeline is not behind.
    pub(crate) fn set_context(&mut self, cx: crate::sinks::ExportContext) {
        self.cx = cx;
    }

    /// The store's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: rusqlite::Error) -> OutboxError {
        io_at(&self.path, source)
    }

    /// Keeps `entries`, in one transaction, dropping the oldest rows (of
    /// this destination first, then of others) if the outbox would go over
    /// its bound.
    pub fn put(&mut self, entries: &[Entry<'_>]) -> Result<Put, OutboxError> {
        self.insert(entries, None).map(|(put, _)| put)
    }

    /// Keeps `entries` like [`put`](Self::put), leased to this outbox for
    /// `lease` as if [claimed](Self::claim): for records whose send is
    /// still going on. Returns, besides, each row written as (position in
    /// `entries`, row id), for [`settle`](Self::settle).
    pub fn put_claimed(
        &mut self,
        entries: &[Entry<'_>],
        lease: Duration,
    ) -> Result<(Put, Vec<(usize, i64)>), OutboxError> {
        self.insert(entries, Some(lease))
    }

    fn insert(
        &mut self,
        entries: &[Entry<'_>],
        lease: Option<Duration>,
    ) -> Result<(Put, Vec<(usize, i64)>), OutboxError> {
        let (table, id, max) = (&self.table, self.destination_id, self.max_bytes);
        let owner = lease.map(|_| self.owner.as_str());
        let wire = self.wire.as_deref();
        let mut pace = self.cx.pace();
        let mut written = Vec::with_capacity(if lease.is_some() { entries.len() } else { 0 });
        let put = in_transaction(&mut self.conn, &self.path, |tx| {
            let mut put = Put::default();
            let now = now_ms();
            let until = lease.map_or(0, |l| now + l.as_millis() as i64);
            let (mut rows, mut bytes) = (0i64, 0i64);
            {
                let mut insert = tx.prepare_cached(&format!(
                    "INSERT INTO {table} (record_id, created_ms, bytes, uncertain, record, lease_owner, lease_until, format, tail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ))?;
                // The tail of the previous row, and its id.
                let mut last_tail: Option<(Arc<str>, i64)> = None;
                // Each row is encoded as it is written: a batch of large
                // records encoded all at once would hold a second copy of
                // the batch in memory.
                for (i, e) in entries.iter().enumerate() {
                    let Some((text, tail)) = row_text(wire, e.record) else {
                        put.unserialisable += 1;
                        continue;
                    };
                    let (format, tail_id) = match tail {
                        None => (FORMAT_RECORD, None),
                        Some(tail) => match &last_tail {
                            Some((last, id)) if Arc::ptr_eq(last, &tail) || **last == *tail => (FORMAT_WIRE, Some(*id)),
                            _ => {
                                let id = tail_id(tx, &tail)?;
                                last_tail = Some((tail, id));
                                (FORMAT_WIRE, Some(id))
                            }
                        },
                    };
                    let record_id = crate::sinks::anosys::encode::record_id(e.record);
                    let size = (text.len() + record_id.len() + 64) as i64;
                    insert.execute(params![record_id, now, size, e.uncertain, text, owner, until, format, tail_id])?;
                    rows += 1;
                    bytes += size;
                    if lease.is_some() {
                        written.push((i, tx.last_insert_rowid()));
                    }
                    pace.between();
                }
            }
            tx.execute(
                "UPDATE outbox_destinations SET rows = rows + ?1, bytes = bytes + ?2 WHERE id = ?3",
                params![rows, bytes, id],
            )?;
            put.written = rows as usize;
            put.dropped_oldest = enforce_bound(tx, id, max, now)?;
            Ok(put)
        })?;
        #[cfg(test)]
        {
            self.given += pace.given();
        }
        Ok((put, written))
    }

    /// Leases up to `limit` of the oldest rows that are due and not leased
    /// by another process, for `lease`: fewer once they hold
    /// [`CLAIM_MAX_BYTES`] (a claim's rows are read into memory; always at
    /// least one row).
    pub fn claim(&mut self, limit: usize, lease: Duration) -> Result<Vec<Claimed>, OutboxError> {
        self.lease_rows(limit, lease, true)
    }

    /// Leases up to `limit` of the oldest rows not leased by another
    /// process, due or not: for a send asked for by hand (`anosys send
    /// --outbox`), which does not wait out the backoff. Bounded by
    /// [`CLAIM_MAX_BYTES`] like [`claim`](Self::claim).
    pub fn claim_now(&mut self, limit: usize, lease: Duration) -> Result<Vec<Claimed>, OutboxError> {
        self.lease_rows(limit, lease, false)
    }

    fn lease_rows(&mut self, limit: usize, lease: Duration, due_only: bool) -> Result<Vec<Claimed>, OutboxError> {
        let now = now_ms();
        let until = now + lease.as_millis() as i64;
        // Read, not rewritten: the lease is one row of `outbox_leases` per
        // run of neighbouring rows taken.
        let select = format!(
            "SELECT id, uncertain, format, tail, record FROM {t}
             WHERE lease_until <= ?1 AND (next_try_ms <= ?1 OR NOT ?2) AND NOT {leased}
             ORDER BY id LIMIT ?4",
            t = self.table,
            leased = run_leased(&self.table, 3, 1)
        );
        let between = format!("SELECT EXISTS (SELECT 1 FROM {} WHERE id > ?1 AND id < ?2)", self.table);
        let (owner, tails, destination) = (&self.owner, &mut self.tails, self.destination_id);
        let (claimed, runs) = in_transaction(&mut self.conn, &self.path, |tx| {
            tx.prepare_cached("DELETE FROM outbox_leases WHERE destination = ?1 AND until <= ?2")?
                .execute(params![destination, now])?;
            let (mut claimed, mut read) = (Vec::new(), 0);
            {
                let mut stmt = tx.prepare_cached(&select)?;
                let mut rows = stmt.query(params![now, due_only, destination, limit as i64])?;
                while let Some(r) = rows.next()? {
                    let (id, uncertain, format, tail): (i64, bool, i64, Option<i64>) =
                        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                    let text = r.get_ref(4)?.as_bytes().map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
                    })?;
                    let payload = match (format, tail) {
                        (FORMAT_RECORD, _) => decode(text).map(|r| Payload::Record(Box::new(r))),
                        (FORMAT_WIRE, Some(tail)) => match tail_text(tx, tails, tail)? {
                            Some(tail) => {
                                let mut body = Vec::with_capacity(text.len() + tail.len());
                                body.extend_from_slice(text);
                                body.extend_from_slice(&tail);
                                Ok(Payload::Wire(body.into()))
                            }
                            None => Err(format!("the shared part of its body ({tail}) is missing")),
                        },
                        (format, _) => {
                            Err(format!("a row of an unknown format ({format}), written by a newer version"))
                        }
                    };
                    // What the claim holds: a whole body (with its shared
                    // part), or the record read back from its text.
                    read += match &payload {
                        Ok(Payload::Wire(body)) => body.len(),
                        _ => text.len(),
                    };
                    claimed.push(Claimed { id, uncertain, payload });
                    if read >= CLAIM_MAX_BYTES {
                        break;
                    }
                }
            }
            // Runs of rows with no other row between them (one not due, or
            // leased by another process, ends a run): each run one lease.
            let mut runs: Vec<(i64, i64)> = Vec::new();
            let mut gap = tx.prepare_cached(&between)?;
            for c in &claimed {
                match runs.last_mut() {
                    Some((_, last))
                        if c.id == *last + 1 || !gap.query_row([*last, c.id], |r| r.get::<_, bool>(0))? =>
                    {
                        *last = c.id
                    }
                    _ => runs.push((c.id, c.id)),
                }
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO outbox_leases (destination, first_id, last_id, owner, until) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut leased = Vec::with_capacity(runs.len());
            for (first, last) in runs {
                insert.execute(params![destination, first, last, owner, until])?;
                leased.push((first, tx.last_insert_rowid()));
            }
            Ok((claimed, leased))
        })?;
        self.leases.extend(runs);
        Ok(claimed)
    }

    /// Records what became of claimed rows, in one transaction.
    pub fn settle(&mut self, settle: &Settle) -> Result<(), OutboxError> {
        let (table, id, owner) = (&self.table, self.destination_id, &self.owner);
        // The leases of the runs these rows were claimed in: every row of a
        // claim is settled at once, so a run's first row settles the run.
        let retried = settle.retry.iter().map(|(row, _)| row);
        let freed: Vec<(i64, i64)> = (settle.delivered.iter().chain(&settle.failed).chain(retried))
            .filter_map(|row| self.leases.get(row).map(|&lease| (*row, lease)))
            .collect();
        in_transaction(&mut self.conn, &self.path, |tx| {
            let (mut rows, mut bytes) = (0i64, 0i64);
            {
                // One statement for the whole chunk: the ids as a JSON array.
                let mut ids = String::from("[");
                for row in settle.delivered.iter().chain(&settle.failed) {
                    if ids.len() > 1 {
                        ids.push(',');
                    }
                    ids.push_str(&row.to_string());
                }
                ids.push(']');
                if ids.len() > 2 {
                    let mut delete = tx.prepare_cached(&format!(
                        "DELETE FROM {table} WHERE id IN (SELECT value FROM json_each(?1)) RETURNING bytes"
                    ))?;
                    let mut deleted = delete.query([&ids])?;
                    while let Some(row) = deleted.next()? {
                        rows += 1;
                        bytes += row.get::<_, i64>(0)?;
                    }
                }
                let next = now_ms() + settle.next_try.as_millis() as i64;
                // Leased in the row (kept while sent) or by a run's lease
                // (claimed): never a row another process leased in it since.
                let mut release = tx.prepare_cached(&format!(
                    "UPDATE {table} SET lease_owner = NULL, lease_until = 0, next_try_ms = ?1,
                        uncertain = uncertain OR ?2, attempts = attempts + 1
                        WHERE id = ?3 AND (lease_owner = ?4 OR lease_owner IS NULL)"
                ))?;
                for (row, uncertain) in &settle.retry {
                    release.execute(params![next, uncertain, row, owner])?;
                }
                let mut free = tx.prepare_cached("DELETE FROM outbox_leases WHERE id = ?1")?;
                for (_, lease) in &freed {
                    free.execute([lease])?;
                }
            }
            tx.execute(
                "UPDATE outbox_destinations SET rows = MAX(rows - ?1, 0), bytes = MAX(bytes - ?2, 0) WHERE id = ?3",
                params![rows, bytes, id],
            )?;
            if let Some(error) = &settle.error {
                tx.execute(
                    "UPDATE outbox_destinations SET last_error = ?1, last_error_ms = ?2 WHERE id = ?3",
                    params![error, now_ms(), id],
                )?;
            }
            Ok(())
        })?;
        for (row, _) in freed {
            self.leases.remove(&row);
        }
        Ok(())
    }

    /// What this destination's outbox holds.
    pub fn stats(&self) -> Result<OutboxStats, OutboxError> {
        stats_of(&self.conn, self.destination_id).map_err(|e| self.io(e))
    }

    /// How many records this destination's outbox holds: what
    /// [`stats`](Self::stats) counts, without looking for the oldest.
    pub fn records(&self) -> Result<u64, OutboxError> {
        self.conn
            .query_row("SELECT rows FROM outbox_destinations WHERE id = ?1", [self.destination_id], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.io(e))
    }

    /// When the next row not leased by another process is due, if any.
    pub fn next_due(&self) -> Result<Option<SystemTime>, OutboxError> {
        let t = &self.table;
        let due: Option<i64> = self
            .conn
            .query_row(
                &format!(
                    "SELECT MIN(MAX(lease_until, next_try_ms, COALESCE((SELECT MAX(l.until) FROM outbox_leases l
                        WHERE l.destination = ?1 AND {t}.id BETWEEN l.first_id AND l.last_id), 0))) FROM {t}"
                ),
                [self.destination_id],
                |r| r.get(0),
            )
            .map_err(|e| self.io(e))?;
        Ok(due.map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)))
    }
}

/// The id of `tail` in `outbox_tails`, added if new.
fn tail_id(tx: &Connection, tail: &str) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT INTO outbox_tails (text) VALUES (?1) ON CONFLICT(text) DO NOTHING")?.execute([tail])?;
    tx.prepare_cached("SELECT id FROM outbox_tails WHERE text = ?1")?.query_row([tail], |r| r.get(0))
}

/// The text of tail `id`, from `cache` or the store; `None` if it is gone.
fn tail_text(conn: &Connection, cache: &mut HashMap<i64, Arc<[u8]>>, id: i64) -> rusqlite::Result<Option<Arc<[u8]>>> {
    if let Some(text) = cache.get(&id) {
        return Ok(Some(text.clone()));
    }
    let mut stmt = conn.prepare_cached("SELECT text FROM outbox_tails WHERE id = ?1")?;
    let mut rows = stmt.query([id])?;
    let Some(row) = rows.next()? else { return Ok(None) };
    let text: Arc<[u8]> = row
        .get_ref(0)?
        .as_bytes()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into()))?
        .into();
    cache.insert(id, text.clone());
    Ok(Some(text))
}

/// Removes the tails no row of any destination uses any more (in the
/// transaction that opens an outbox, so never one a write is adding).
fn forget_unused_tails(tx: &Connection) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare("SELECT id FROM outbox_destinations")?;
    let ids: Vec<i64> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    let mut used = Vec::new();
    for id in ids {
        let table = table_of(id);
        // Tables of earlier versions have no tails; one not made yet, no rows.
        if tx.prepare(&format!("SELECT tail FROM {table} LIMIT 0")).is_ok() {
            used.push(format!("SELECT tail FROM {table} WHERE tail IS NOT NULL"));
        }
    }
    let sql = if used.is_empty() {
        "DELETE FROM outbox_tails".to_owned()
    } else {
        format!("DELETE FROM outbox_tails WHERE id NOT IN ({})", used.join(" UNION "))
    };
    tx.execute(&sql, []).map(|_| ())
}

/// Frees the leases of owners (`<pid>-<random>`) whose process no longer
/// exists on this machine; their rows may have been on their way, so a
/// later delivery of them counts as a possible duplicate.
fn release_dead_leases(conn: &Connection, table: &str, destination: i64) -> rusqlite::Result<usize> {
    let mut freed = 0;
    let mut runs =
        conn.prepare("SELECT id, first_id, last_id, owner FROM outbox_leases WHERE destination = ?1 AND until > ?2")?;
    let leases: Vec<(i64, i64, i64, String)> = runs
        .query_map(params![destination, now_ms()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (lease, first, last, owner) in leases {
        let pid = owner.split('-').next().and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|pid| !process_alive(pid)) {
            // It may have been sending them when it died.
            freed += conn.execute(
                &format!("UPDATE {table} SET uncertain = 1 WHERE id BETWEEN ?1 AND ?2 AND lease_owner IS NULL"),
                [first, last],
            )?;
            conn.execute("DELETE FROM outbox_leases WHERE id = ?1", [lease])?;
        }
    }
    let mut stmt = conn.prepare(&format!("SELECT DISTINCT lease_owner FROM {table} WHERE lease_until > ?1"))?;
    let owners: Vec<String> =
        stmt.query_map([now_ms()], |r| r.get::<_, Option<String>>(0))?.filter_map(|o| o.ok().flatten()).collect();
    for owner in owners {
        let pid = owner.split('-').next().and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|pid| !process_alive(pid)) {
            freed += conn.execute(
                // It may have been sending them when it died.
                &format!(
                    "UPDATE {table} SET lease_owner = NULL, lease_until = 0, uncertain = 1 WHERE lease_owner = ?1"
                ),
                [&owner],
            )?;
        }
    }
    Ok(freed)
}

#[cfg(unix)]
fn process_alive(pid: i32) -> bool {
    if pid <= 0 {
        return true;
    }
    // Signal 0 checks for existence; EPERM means it exists (another user's).
    // SAFETY: kill with signal 0 sends nothing.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(not(unix))]
fn process_alive(_: i32) -> bool {
    true
}

/// Drops the oldest rows not leased until the outbox fits `max` bytes:
/// this destination's first, then the others'. Returns how many.
fn enforce_bound(conn: &Connection, own: i64, max: u64, now: i64) -> rusqlite::Result<usize> {
    let total = |conn: &Connection| -> rusqlite::Result<i64> {
        conn.query_row("SELECT COALESCE(SUM(bytes), 0) FROM outbox_destinations", [], |r| r.get(0))
    };
    let mut over = total(conn)? - max as i64;
    if over <= 0 {
        return Ok(0);
    }
    let mut ids: Vec<i64> = vec![own];
    let mut others = conn.prepare_cached("SELECT id FROM outbox_destinations WHERE id != ?1 ORDER BY id")?;
    ids.extend(others.query_map([own], |r| r.get::<_, i64>(0))?.collect::<rusqlite::Result<Vec<_>>>()?);
    let mut dropped = 0;
    for id in ids {
        let table = table_of(id);
        while over > 0 {
            let mut oldest = conn.prepare_cached(&format!(
                "SELECT id, bytes FROM {table} WHERE lease_until <= ?1 AND NOT {leased} ORDER BY id LIMIT 256",
                leased = run_leased(&table, 2, 1)
            ))?;
            let rows: Vec<(i64, i64)> =
                oldest.query_map([now, id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
            if rows.is_empty() {
                break;
            }
            // Just as many as it takes to fit.
            let (mut count, mut bytes) = (0i64, 0i64);
            let mut delete = conn.prepare_cached(&format!("DELETE FROM {table} WHERE id = ?1"))?;
            for (row, size) in rows {
                if over - bytes <= 0 {
                    break;
                }
                delete.execute([row])?;
                count += 1;
                bytes += size;
            }
            conn.execute(
                "UPDATE outbox_destinations SET rows = MAX(rows - ?1, 0), bytes = MAX(bytes - ?2, 0) WHERE id = ?3",
                params![count, bytes, id],
            )?;
            over -= bytes;
            dropped += count as usize;
        }
        if over <= 0 {
            break;
        }
    }
    Ok(dropped)
}

fn stats_of(conn: &Connection, id: i64) -> rusqlite::Result<OutboxStats> {
    let (key, label, records, bytes, error, error_ms): (String, String, i64, i64, Option<String>, Option<i64>) = conn
        .query_row(
        "SELECT key, label, rows, bytes, last_error, last_error_ms FROM outbox_destinations WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
    )?;
    let oldest: Option<i64> =
        conn.query_row(&format!("SELECT MIN(created_ms) FROM {}", table_of(id)), [], |r| r.get(0))?;
    Ok(OutboxStats {
        key,
        label,
        records: records.max(0) as u64,
        bytes: bytes.max(0) as u64,
        oldest_ms: oldest.map(|m| m.max(0) as u64),
        last_error: error.zip(error_ms.map(|m| m.max(0) as u64)),
    })
}

/// What every destination's outbox in a store holds (empty when the store
/// has none). Works on a read-only connection.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<OutboxStats>> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outbox_destinations')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare("SELECT id FROM outbox_destinations ORDER BY id")?;
    let ids: Vec<i64> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    ids.into_iter().map(|id| stats_of(conn, id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, RecordKind};

    fn temp(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "anosys-outbox-{name}-{}-{:x}.db",
            std::process::id(),
            fastrand::u64(..)
        ));
        let _ = std::fs::remove_file(&path);
        path
    }

    /// Keeps bodies as `<record name>|` and a tail shared by all.
    struct Named(Arc<str>);

    impl WireEncoder for Named {
        fn encode(&self, record: &Record) -> Option<Wire> {
            Some(Wire { head: format!("{}|", record.name).into_bytes(), tail: self.0.clone() })
        }
    }

    fn bodies(claimed: Vec<Claimed>) -> Vec<String> {
        claimed
            .into_iter()
            .map(|c| match c.payload {
                Ok(Payload::Wire(body)) => String::from_utf8(body.to_vec()).unwrap(),
                Ok(Payload::Record(r)) => format!("record {}", r.name),
                Err(e) => format!("unreadable: {e}"),
            })
            .collect()
    }

    #[test]
    fn rows_of_an_earlier_version_still_drain_beside_bodies() {
        let path = temp("old-rows");
        let destination = Destination::new("anosys", "http://127.0.0.1:9/log", "AnoSys");
        let old = Record::new(RecordKind::Raw, "old");
        {
            // The store as the previous version left it: a table with no
            // `format` nor `tail`, holding a record's JSON.
            let outbox = Outbox::open(&path, &destination, 1 << 20).unwrap();
            let table = outbox.table.clone();
            drop(outbox);
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "DROP TABLE {table};
                 CREATE TABLE {table} (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, record_id TEXT NOT NULL, created_ms INTEGER NOT NULL,
                    bytes INTEGER NOT NULL, uncertain INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
                    lease_owner TEXT, lease_until INTEGER NOT NULL DEFAULT 0, next_try_ms INTEGER NOT NULL DEFAULT 0,
                    record TEXT NOT NULL);
                 DROP TABLE outbox_tails;"
            ))
            .unwrap();
            conn.execute(
                &format!("INSERT INTO {table} (record_id, created_ms, bytes, record) VALUES ('x', 1, 100, ?1)"),
                [serde_json::to_string(&old).unwrap()],
            )
            .unwrap();
            conn.execute("UPDATE outbox_destinations SET rows = 1, bytes = 100", []).unwrap();
        }
        let mut outbox = Outbox::open(&path, &destination, 1 << 20).unwrap();
        outbox.set_wire(Some(Arc::new(Named("tail}".into()))));
        let new = Record::new(RecordKind::Raw, "new");
        outbox.put(&[Entry { record: &new, uncertain: false }, Entry { record: &new, uncertain: true }]).unwrap();
        let claimed = outbox.claim(10, Duration::from_secs(30)).unwrap();
        let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
        assert_eq!(bodies(claimed), ["record old", "new|tail}", "new|tail}"]);
        outbox.settle(&Settle { delivered: ids, ..Default::default() }).unwrap();
        assert_eq!(outbox.stats().unwrap().records, 0);
        drop(outbox);
        // No row uses the tail any more: it goes when a store is opened.
        Outbox::open(&path, &destination, 1 << 20).unwrap();
        let conn = Connection::open(&path).unwrap();
        assert_eq!(conn.query_row("SELECT COUNT(*) FROM outbox_tails", [], |r| r.get::<_, i64>(0)).unwrap(), 0);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn writing_a_batch_gives_way_in_a_pipeline_and_only_there() {
        let path = temp("pace");
        let destination = Destination::new("anosys", "http://127.0.0.1:9/log", "AnoSys");
        let records: Vec<Record> = (0..2_000)
            .map(|i| {
                let mut r = Record::new(RecordKind::Raw, format!("r{i}"));
                r.raw = Some(serde_json::Value::String("x".repeat(512)));
                r
            })
            .collect();
        let entries: Vec<Entry<'_>> = records.iter().map(|record| Entry { record, uncertain: false }).collect();
        let mut outside = Outbox::open(&path, &destination, 1 << 30).unwrap();
        assert_eq!(outside.put(&entries).unwrap().written, entries.len());
        assert_eq!(outside.given, 0, "outside a pipeline it never gives way");
        drop(outside);

        // 2,000 rows take well over the 50 µs stretch: the writing gives
        // way between rows, as the pipeline's other stretches do.
        let memory = Arc::new(crate::pipeline::Memory::new(1 << 30, 1_000));
        let mut inside = Outbox::open(&path, &destination, 1 << 30).unwrap();
        inside.set_context(crate::sinks::ExportContext::of_pipeline(memory.clone()));
        let started = std::time::Instant::now();
        assert_eq!(inside.put(&entries).unwrap().written, entries.len());
        let took = started.elapsed();
        assert!(inside.given > 0, "took {took:?}, never gave way");
        assert!(inside.given <= (took.as_micros() / 50 + 1) as u64, "at most once a stretch: {} in {took:?}", inside.given);

        // Behind (more than a quarter of what it may hold waits): it keeps
        // its share of the processor.
        for _ in 0..300 {
            assert!(memory.reserve(10));
        }
        let before = inside.given;
        assert_eq!(inside.put(&entries).unwrap().written, entries.len());
        assert_eq!(inside.given, before, "no giving way while the pipeline is behind");
        assert_eq!(inside.stats().unwrap().records, 3 * entries.len() as u64);
        drop(inside);
        let _ = std::fs::remove_file(&path);
    }

    fn put_n(outbox: &mut Outbox, n: usize) {
        let records: Vec<Record> = (0..n).map(|i| Record::new(RecordKind::Raw, format!("r{i}"))).collect();
        let entries: Vec<Entry<'_>> = records.iter().map(|record| Entry { record, uncertain: false }).collect();
        outbox.put(&entries).unwrap();
    }

    fn leases(path: &Path) -> Vec<(i64, i64)> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn.prepare("SELECT first_id, last_id FROM outbox_leases ORDER BY first_id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn a_claim_of_large_rows_stops_at_its_byte_bound_and_the_next_takes_the_rest() {
        let path = temp("claim-bytes");
        let destination = Destination::new("anosys", "http://127.0.0.1:9/log", "AnoSys");
        let mut outbox = Outbox::open(&path, &destination, 1 << 30).unwrap();
        // Ten rows of about a third of the bound each.
        let records: Vec<Record> = (0..10)
            .map(|i| {
                let mut r = Record::new(RecordKind::Raw, format!("r{i}"));
                r.raw = Some(serde_json::Value::String("x".repeat(CLAIM_MAX_BYTES / 3)));
                r
            })
            .collect();
        let entries: Vec<Entry<'_>> = records.iter().map(|record| Entry { record, uncertain: false }).collect();
        assert_eq!(outbox.put(&entries).unwrap().written, 10);
        let mut seen = Vec::new();
        loop {
            let claimed = outbox.claim(512, Duration::from_secs(30)).unwrap();
            if claimed.is_empty() {
                break;
            }
            // What the bound lets through, and the row that crosses it.
            assert!(claimed.len() <= 3, "{} rows in one claim", claimed.len());
            seen.extend(claimed.iter().map(|c| c.id));
        }
        assert_eq!(seen, (1..=10).collect::<Vec<i64>>(), "every row claimed once, in order");
        // A row larger than the bound is still claimed, alone.
        let mut big = Record::new(RecordKind::Raw, "big");
        big.raw = Some(serde_json::Value::String("y".repeat(CLAIM_MAX_BYTES + 1)));
        outbox.put(&[Entry { record: &big, uncertain: false }, Entry { record: &big, uncertain: false }]).unwrap();
        assert_eq!(outbox.claim_now(512, Duration::from_secs(30)).unwrap().len(), 1);
        assert_eq!(outbox.claim_now(512, Duration::from_secs(30)).unwrap().len(), 1);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_claim_leases_its_run_of_rows_with_one_lease_and_no_other_claim_takes_them() {
        let path = temp("runs");
        let destination = Destination::new("anosys", "http://127.0.0.1:9/log", "AnoSys");
        let mut a = Outbox::open(&path, &destination, 1 << 20).unwrap();
        let mut b = Outbox::open(&path, &destination, 1 << 20).unwrap();
        put_n(&mut a, 10);
        let ids = |c: &[Claimed]| c.iter().map(|c| c.id).collect::<Vec<_>>();
        let first = a.claim(4, Duration::from_secs(30)).unwrap();
        assert_eq!(ids(&first), [1, 2, 3, 4]);
        assert_eq!(leases(&path), [(1, 4)]);
        // The same outbox claiming again (a second drain), and another
        // process: neither gets a leased row.
        let second = a.claim(3, Duration::from_secs(30)).unwrap();
        assert_eq!(ids(&second), [5, 6, 7]);
        let third = b.claim(10, Duration::from_secs(30)).unwrap();
        assert_eq!(ids(&third), [8, 9, 10]);
        // Nothing left to claim: the next look is when a lease runs out.
        assert!(b.claim(10, Duration::from_secs(30)).unwrap().is_empty());
        assert!(b.next_due().unwrap().unwrap() > SystemTime::now());
        // Settled: delivered rows go, rows to retry come back (later), and
        // the run's lease is freed.
        a.settle(&Settle { delivered: vec![1, 2], retry: vec![(3, true), (4, false)], ..Default::default() }).unwrap();
        assert_eq!(leases(&path), [(5, 7), (8, 10)]);
        let again = b.claim(10, Duration::from_secs(30)).unwrap();
        assert_eq!(ids(&again), [3, 4]);
        assert!(again[0].uncertain && !again[1].uncertain);
        // A row not due splits a run: rows 5..7 and 9..10 come back, 8
        // waits an hour.
        a.settle(&Settle { retry: vec![(5, false), (6, false), (7, false)], ..Default::default() }).unwrap();
        b.settle(&Settle { retry: vec![(9, false), (10, false)], ..Default::default() }).unwrap();
        b.settle(&Settle { retry: vec![(8, false)], next_try: Duration::from_secs(3600), ..Default::default() })
            .unwrap();
        assert_eq!(leases(&path), [(3, 4)]);
        let split = a.claim(10, Duration::from_secs(30)).unwrap();
        assert_eq!(ids(&split), [5, 6, 7, 9, 10]);
        assert_eq!(leases(&path), [(3, 4), (5, 7), (9, 10)]);
        // A full outbox never drops a leased row: only row 8 may go.
        let conn = Connection::open(&path).unwrap();
        let dropped = enforce_bound(&conn, a.destination_id, 0, now_ms()).unwrap();
        assert_eq!(dropped, 1);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_run_leases_of_a_process_that_died_are_freed_and_their_rows_uncertain() {
        let path = temp("dead-runs");
        let destination = Destination::new("anosys", "http://127.0.0.1:9/log", "AnoSys");
        let mut outbox = Outbox::open(&path, &destination, 1 << 20).unwrap();
        put_n(&mut outbox, 3);
        assert_eq!(outbox.claim(2, Duration::from_secs(30)).unwrap().len(), 2);
        drop(outbox);
        // As if the claim were made by a process that is gone.
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE outbox_leases SET owner = '2147483646-0'", []).unwrap();
        drop(conn);
        let mut outbox = Outbox::open(&path, &destination, 1 << 20).unwrap();
        assert!(leases(&path).is_empty());
        let claimed = outbox.claim(10, Duration::from_secs(30)).unwrap();
        let seen: Vec<(i64, bool)> = claimed.iter().map(|c| (c.id, c.uncertain)).collect();
        assert_eq!(seen, [(1, true), (2, true), (3, false)]);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_tail_is_kept_once_and_changes_between_rows() {
        let path = temp("tails");
        let destination = Destination::new("anosys", "http://127.0.0.1:9/log", "AnoSys");
        let mut outbox = Outbox::open(&path, &destination, 1 << 20).unwrap();
        let record = Record::new(RecordKind::Raw, "r");
        for tail in ["a}", "b}", "a}"] {
            outbox.set_wire(Some(Arc::new(Named(tail.into()))));
            outbox.put(&[Entry { record: &record, uncertain: false }; 2]).unwrap();
        }
        // A record the sink keeps no body for is kept as a record.
        outbox.set_wire(None);
        outbox.put(&[Entry { record: &record, uncertain: false }]).unwrap();
        let conn = Connection::open(&path).unwrap();
        assert_eq!(conn.query_row("SELECT COUNT(*) FROM outbox_tails", [], |r| r.get::<_, i64>(0)).unwrap(), 2);
        let claimed = outbox.claim(10, Duration::from_secs(30)).unwrap();
        assert_eq!(bodies(claimed), ["r|a}", "r|a}", "r|b}", "r|b}", "r|a}", "r|a}", "record r"]);
        let _ = std::fs::remove_file(&path);
    }
}
