//! The durable outbox: records a remote sink (AnoSys, OTLP) could not
//! deliver now, kept on disk in the embedded SQLite store until the
//! destination answers again.
//!
//! Each [`Destination`](crate::sinks::Destination) has its own table (`outbox_<n>`), listed in
//! `outbox_destinations` with its row and byte counts. A batch is written in
//! one transaction (WAL, so a `kill -9` loses at most the transaction being
//! written, never what was committed). Rows are sent oldest first by
//! whichever process holding a sink for that destination gets to them:
//! [`claim`](Outbox::claim) leases rows to one process for a while, so two
//! processes never send the same row at the same time, and a process that
//! dies mid-send lets its lease run out for another to pick up. Delivery is
//! at least once: a row whose earlier attempt may have arrived (no answer
//! in time) is marked `uncertain`, and delivering it again is counted as a
//! possible duplicate.
//!
//! The outbox is bounded in bytes across all destinations: when a write
//! would go over, the oldest rows not leased are dropped (and counted).
//!
//! A row holds either a record (its JSON, the format of every row before
//! this one existed, and of sinks with no form of their own) or, for a
//! sink with a [`WireEncoder`] (AnoSys), the request body itself, ready to
//! send again without decoding and encoding the record: its `head` in the
//! row, its `tail` (the mapping, the same for many rows) once in
//! `outbox_tails`. Each row says which (`format`), so rows written by an
//! earlier version still drain.

#[cfg(feature = "sqlite")]
mod store;

use std::sync::Arc;
use std::time::Duration;

use crate::record::Record;
use crate::sinks::{ExportContext, ExportReport, Sink};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use store::{list, Outbox, OutboxError, CLAIM_MAX_BYTES};

/// One record to keep.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The record.
    pub record: &'a Record,
    /// Whether an attempt may already have delivered it.
    pub uncertain: bool,
}

/// What a [`put`](Outbox::put) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Put {
    /// Rows written.
    pub written: usize,
    /// Oldest rows dropped to stay under the byte bound (of any destination).
    pub dropped_oldest: usize,
    /// Rows written that could not be serialised (never expected).
    pub unserialisable: usize,
}

/// A record as a sink sends it, kept in the outbox in two parts: the
/// body is `head` followed by `tail`. `tail` is shared by many records
/// (kept once); `head` is the record's own.
#[derive(Debug, Clone)]
pub struct Wire {
    /// The record's own part of the body.
    pub head: Vec<u8>,
    /// The rest of the body, the same `Arc` for every record that shares it.
    pub tail: Arc<str>,
}

/// How a sink keeps records in the outbox in its own form, ready to send
/// again ([`Sink::export_wire`]), instead of as records.
pub trait WireEncoder: Send + Sync {
    /// The body `record` is sent as; `None` keeps the record itself.
    fn encode(&self, record: &Record) -> Option<Wire>;
}

/// What a row holds.
#[derive(Debug)]
pub enum Payload {
    /// A record, to export.
    Record(Box<Record>),
    /// A body kept in its sink's own form, to send as it is
    /// ([`Sink::export_wire`]).
    Wire(bytes::Bytes),
}

/// A row leased for sending.
#[derive(Debug)]
pub struct Claimed {
    /// The row's id (its place in the order of arrival).
    pub id: i64,
    /// Whether an earlier attempt may already have delivered it.
    pub uncertain: bool,
    /// What it holds, or why its row could not be read back.
    pub payload: Result<Payload, String>,
}

/// Claimed rows, ready for one attempt: rows holding records and rows
/// holding bodies are sent apart (records first), and
/// [`ids`](Self::ids) lists the rows in the order the report of
/// [`export`](Self::export) counts them.
#[derive(Debug, Default, Clone)]
pub struct Sending {
    /// The rows to send, records first.
    pub ids: Vec<i64>,
    /// For each of `ids`, whether an earlier attempt may have delivered it.
    pub uncertain: Vec<bool>,
    /// Rows that could not be read back (to settle as failed), and why.
    pub unreadable: Vec<(i64, String)>,
    records: Arc<[Record]>,
    wires: Arc<[bytes::Bytes]>,
}

impl Sending {
    /// Sorts claimed rows into what to send.
    pub fn new(rows: Vec<Claimed>) -> Sending {
        let (mut records, mut wires) = (Vec::new(), Vec::new());
        let (mut record_rows, mut wire_rows) = (Vec::new(), Vec::new());
        let mut unreadable = Vec::new();
        for row in rows {
            match row.payload {
                Ok(Payload::Record(r)) => {
                    record_rows.push((row.id, row.uncertain));
                    records.push(*r);
                }
                Ok(Payload::Wire(body)) => {
                    wire_rows.push((row.id, row.uncertain));
                    wires.push(body);
                }
                Err(reason) => unreadable.push((row.id, reason)),
            }
        }
        let (ids, uncertain) = record_rows.into_iter().chain(wire_rows).unzip();
        Sending { ids, uncertain, unreadable, records: records.into(), wires: wires.into() }
    }

    /// Rows to send.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// One attempt at every row with `sink`: a report by position in
    /// [`ids`](Self::ids).
    pub async fn export(&self, sink: &dyn Sink, cx: ExportContext) -> ExportReport {
        let mut report = ExportReport::default();
        if !self.records.is_empty() {
            report = sink.export_shared(self.records.clone(), cx.clone()).await;
        }
        if !self.wires.is_empty() {
            // Once the destination asked for another try, the bodies wait too.
            let wires = if report.retry.is_empty() {
                sink.export_wire(self.wires.clone(), cx).await
            } else {
                ExportReport::retry_all(self.wires.len())
            };
            let at = self.records.len();
            report.failed += wires.failed;
            report.retry.extend(wires.retry.iter().map(|i| i + at));
            report.uncertain.extend(wires.uncertain.iter().map(|i| i + at));
            report.retry_after = report.retry_after.max(wires.retry_after);
        }
        report
    }
}

/// What became of claimed rows after an attempt.
#[derive(Debug, Default)]
pub struct Settle {
    /// Delivered: removed.
    pub delivered: Vec<i64>,
    /// Refused for good, or unreadable: removed.
    pub failed: Vec<i64>,
    /// Worth another try, with whether the attempt may have arrived.
    pub retry: Vec<(i64, bool)>,
    /// When the rows to retry may be tried again.
    pub next_try: Duration,
    /// What went wrong, for `anosys status`.
    pub error: Option<String>,
}

/// What an attempt at claimed rows achieved, in records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempted {
    /// Delivered.
    pub delivered: usize,
    /// Refused for good.
    pub failed: usize,
    /// Delivered again after an earlier attempt that may have arrived.
    pub duplicates: usize,
    /// Left for another try.
    pub retry: usize,
}

impl Settle {
    /// What to do with rows `ids` (in the order they were sent, with
    /// whether an earlier attempt may have delivered each) after an
    /// export of them answered `report`, and what that achieved.
    ///
    /// ```
    /// use anosys::sinks::ExportReport;
    /// use anosys::sinks::outbox::Settle;
    /// let report = ExportReport { retry: vec![1], ..Default::default() };
    /// let (settle, done) = Settle::after(&[10, 11, 12], &[true, false, false], &report);
    /// assert_eq!(settle.delivered, vec![10, 12]);
    /// assert_eq!(settle.retry, vec![(11, false)]);
    /// assert_eq!((done.delivered, done.duplicates, done.retry), (2, 1, 1));
    /// ```
    pub fn after(ids: &[i64], uncertain: &[bool], report: &crate::sinks::ExportReport) -> (Settle, Attempted) {
        let mut settle = Settle::default();
        let mut retry = vec![false; ids.len()];
        for &i in &report.retry {
            if let Some(slot) = retry.get_mut(i) {
                *slot = true;
            }
        }
        let mut duplicates = 0;
        for (i, &id) in ids.iter().enumerate() {
            if retry[i] {
                settle.retry.push((id, report.uncertain.binary_search(&i).is_ok()));
            } else {
                settle.delivered.push(id);
                duplicates += usize::from(uncertain.get(i).copied().unwrap_or(false));
            }
        }
        // A refusal is not told by position: among those not to retry.
        let failed = report.failed.min(settle.delivered.len());
        let delivered = settle.delivered.len() - failed;
        let done = Attempted { delivered, failed, duplicates: duplicates.min(delivered), retry: settle.retry.len() };
        (settle, done)
    }
}

/// What one destination's outbox holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxStats {
    /// The destination's key.
    pub key: String,
    /// Where it sends (no secrets).
    pub label: String,
    /// Records waiting.
    pub records: u64,
    /// Their bytes (as stored).
    pub bytes: u64,
    /// When the oldest waiting record was kept (Unix milliseconds).
    pub oldest_ms: Option<u64>,
    /// The last delivery error seen, and when (Unix milliseconds).
    pub last_error: Option<(String, u64)>,
}

/// A row's record (a row of the record format), read back.
///
/// ```
/// let record = anosys::Record::new(anosys::RecordKind::Raw, "r");
/// let text = serde_json::to_vec(&record).unwrap();
/// assert_eq!(anosys::sinks::outbox::decode(&text).unwrap().span_id, record.span_id);
/// assert!(anosys::sinks::outbox::decode(b"{\"not\": \"a record\"").is_err());
/// ```
///
/// Floats read back exactly as written (serde_json's `float_roundtrip`), so a
/// row rewritten from its decoded record is the same row.
pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}


#[cfg(test)]
mod decode_tests {
    use super::decode;

    /// Found by the `outbox_row` fuzz target: a huge integer in a record's
    /// raw response (a float once parsed) was read back one ulp off, so the
    /// row changed on its second rewrite (`1.731456777777778e112` read back
    /// and written as `1.7314567777777781e112`).
    #[test]
    fn floats_survive_rewrites() {
        let mut record = crate::Record::new(crate::RecordKind::Raw, "r");
        record.raw = Some(serde_json::Value::String("X".into()));
        let created = format!("1731456{}249", "7".repeat(103));
        let raw = format!("{{\"created\":{created},\"f\":[1.731456777777778e112,5e-324,0.1,1.7976931348623157e308,-2.2250738585072014e-308]}}");
        let row = serde_json::to_string(&record).unwrap().replace("\"raw\":\"X\"", &format!("\"raw\":{raw}"));
        assert!(row.contains("\"created\""), "{row}");
        let first = decode(row.as_bytes()).unwrap();
        let written = serde_json::to_string(&first).unwrap();
        let again = decode(written.as_bytes()).unwrap();
        assert_eq!(serde_json::to_string(&again).unwrap(), written, "the row changes on a second rewrite");
        assert!(written.contains("1.731456777777778e+112"), "{written}");
    }
}
