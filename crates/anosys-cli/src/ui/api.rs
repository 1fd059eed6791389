//! The viewer's JSON API, under `/api/`: what the page uses, and usable by
//! scripts (see the README, "anosys ui").
//!
//! | route | answers |
//! |---|---|
//! | `GET /api/info` | the store's path, how many records, the newest row id |
//! | `GET /api/records` | a page of records, newest first, and the next page's cursor |
//! | `GET /api/records/{id}` | one record in full (row id or span id) |
//! | `GET /api/traces/{trace_id}` | every record of a trace, oldest first, with parent ids |
//! | `GET /api/stats` | totals per model and source, and figures over time |
//! | `GET /api/facets` | models and sources seen (for filters) |
//! | `GET /api/stream?after=ID` | server-sent events: each record written after row `ID` |
//!
//! Filters (records, stats): `since`, `until` (ms since the epoch, a
//! duration back from now such as `2h`, or a UTC time), `model`, `source`
//! (globs), `kind`, `status`, `trace`, `q` (text anywhere in the record),
//! and for records `limit` (at most 1,000) and `cursor`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{json, Value};

use super::Viewer;
use crate::store::{Bucket, Cursor, Filter, Store, StoreError};

/// Most records one page holds.
pub const MAX_PAGE: usize = 1000;
/// Most records of one trace returned.
pub const MAX_TRACE: usize = 20_000;

/// The API's routes.
pub fn router(viewer: Arc<Viewer>) -> Router {
    Router::new()
        .route("/info", get(info))
        .route("/records", get(records))
        .route("/records/{id}", get(record))
        .route("/traces/{trace_id}", get(trace))
        .route("/stats", get(stats))
        .route("/facets", get(facets))
        .route("/stream", get(stream))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such API route").into_response() })
        .with_state(viewer)
}

/// An API error: its status and a JSON `{"error": ...}` body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::NotFound(_) | StoreError::Missing(_) => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({"error": self.message}))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// Runs `f` on the blocking pool with the store open; `None` when there is
/// no store yet (nothing captured).
async fn with_store<T: Send + 'static>(
    viewer: &Arc<Viewer>,
    f: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<Option<T>, ApiError> {
    let viewer = viewer.clone();
    let done = tokio::task::spawn_blocking(move || viewer.with_store(f))
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the query failed unexpectedly"))?;
    match done {
        Ok(Some(result)) => result.map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Filters of the records and stats routes.
#[derive(Debug, Default, Deserialize)]
pub struct FilterQuery {
    since: Option<String>,
    until: Option<String>,
    model: Option<String>,
    source: Option<String>,
    kind: Option<String>,
    status: Option<String>,
    trace: Option<String>,
    user: Option<String>,
    session: Option<String>,
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    buckets: Option<u32>,
}

/// A time as ms since the epoch, a duration back from now, or a UTC time.
fn when(name: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.trim().parse::<i64>() {
        return Ok(ms);
    }
    crate::commands::parse_since(text, SystemTime::now()).map_err(|e| ApiError::bad(format!("{name}: {}", e.message)))
}

impl FilterQuery {
    fn filter(&self) -> Result<Filter, ApiError> {
        let some = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let kind = match some(&self.kind).as_deref() {
            None => None,
            Some(k @ ("llm_call" | "function_call" | "raw" | "span")) => Some(k.to_owned()),
            Some(k) => return Err(ApiError::bad(format!("kind {k:?}: use llm_call, function_call, raw or span"))),
        };
        let status = match some(&self.status).map(|s| s.to_ascii_uppercase()).as_deref() {
            None => None,
            Some(s @ ("OK" | "ERROR" | "UNSET")) => Some(s.to_owned()),
            Some(s) => return Err(ApiError::bad(format!("status {s:?}: use ok, error or unset"))),
        };
        let trace = some(&self.trace);
        if trace.as_deref().is_some_and(|t| !t.chars().all(|c| c.is_ascii_hexdigit())) {
            return Err(ApiError::bad("trace: a trace id (hex digits) or a prefix of one"));
        }
        let before = match some(&self.cursor) {
            None => None,
            Some(c) => Some(Cursor::parse(&c).ok_or_else(|| ApiError::bad("cursor: use the next_cursor of a page"))?),
        };
        Ok(Filter {
            since_ms: some(&self.since).map(|s| when("since", &s)).transpose()?,
            until_ms: some(&self.until).map(|s| when("until", &s)).transpose()?,
            model: some(&self.model),
            source: some(&self.source),
            kind,
            status,
            trace,
            // As it appears in the stored JSON (quotes and backslashes
            // escaped; other scripts as they are).
            text: self.q.as_deref().filter(|q| !q.trim().is_empty()).map(json_escaped),
            before,
            user: some(&self.user),
            session: some(&self.session),
        })
    }
}

/// `text` as it is written inside a JSON string.
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or("").to_owned()
}

async fn info(State(viewer): State<Arc<Viewer>>) -> ApiResult {
    let db = viewer.db().display().to_string();
    let found = with_store(&viewer, |store| Ok((store.count(&Filter::default())?, store.last_id()?))).await?;
    Ok(Json(match found {
        Some((records, last_id)) => json!({
            "db": db, "exists": true, "records": records, "last_id": last_id,
            "search_indexed_upto": viewer.search_index().map_or(0, |(_, upto)| upto),
        }),
        None => json!({"db": db, "exists": false, "records": 0, "last_id": 0}),
    }))
}

async fn records(State(viewer): State<Arc<Viewer>>, Query(q): Query<FilterQuery>) -> ApiResult {
    let filter = q.filter()?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let index = viewer.search_index();
    let budget = viewer.scan_budget;
    let page = with_store(&viewer, move |store| {
        Ok(store.page_searching(&filter, limit, index.as_ref().map(|(p, upto)| (p.as_path(), *upto)), budget)?)
    })
    .await?;
    let (rows, next) = page.unwrap_or_default();
    Ok(Json(json!({"records": rows, "next_cursor": next.map(|c| c.to_string())})))
}

async fn record(State(viewer): State<Arc<Viewer>>, Path(id): Path<String>) -> ApiResult {
    let found = with_store(&viewer, move |store| {
        let stored = store.get(&id)?;
        let record: Value = serde_json::from_str(&stored.json).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("record {} is not valid JSON: {e}", stored.id))
        })?;
        Ok(json!({"id": stored.id, "record": record}))
    })
    .await?;
    found.map(Json).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no records yet"))
}

/// Every record of a trace: `{"trace_id", "records": [...], "truncated"}`,
/// written as the rows are read (a trace can hold thousands of records:
/// no list of them, and no JSON tree, is built in between).
async fn trace(State(viewer): State<Arc<Viewer>>, Path(trace_id): Path<String>) -> Result<Response, ApiError> {
    if trace_id.len() != 32 || !trace_id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::bad("a trace id is 32 hex digits"));
    }
    let id = trace_id.to_ascii_lowercase();
    let body = with_store(&viewer, move |store| {
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(format!("{{\"trace_id\":\"{id}\",\"records\":[").as_bytes());
        let mut written = 0;
        store.trace_each(&id, MAX_TRACE + 1, |span| -> Result<(), ApiError> {
            if written < MAX_TRACE {
                if written > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, &span)
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
            }
            written += 1;
            Ok(())
        })?;
        out.extend_from_slice(format!("],\"truncated\":{}}}", written > MAX_TRACE).as_bytes());
        Ok((written > 0).then_some(out))
    })
    .await?
    .flatten();
    match body {
        Some(body) => Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no records in trace {trace_id}"))),
    }
}

async fn stats(State(viewer): State<Arc<Viewer>>, Query(q): Query<FilterQuery>) -> ApiResult {
    let filter = q.filter()?;
    let buckets = i64::from(q.buckets.unwrap_or(60).clamp(1, 1000));
    let found = with_store(&viewer, move |store| {
        let totals = store.stats(&filter)?;
        // The range: as asked, else what the records span.
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
        let (first, last) = match (filter.since_ms, filter.until_ms) {
            (Some(s), Some(u)) => (s, u),
            (Some(s), None) => (s, now),
            _ => {
                let range = store.latest(&filter, 1)?.first().map(|r| r.start_ms);
                let oldest = store.oldest_start(&filter)?;
                (oldest.unwrap_or(now), filter.until_ms.or(range).unwrap_or(now))
            }
        };
        let bucket_ms = ((last - first).max(1000) + buckets - 1) / buckets;
        let bucket_ms = nice_bucket(bucket_ms);
        let series = dense(store.series(&filter, bucket_ms)?, first, last, bucket_ms);
        Ok(json!({"totals": totals, "bucket_ms": bucket_ms, "series": series}))
    })
    .await?;
    Ok(Json(found.unwrap_or_else(|| json!({"totals": null, "bucket_ms": 60_000, "series": []}))))
}

/// Every bucket from `first` to `last` (those without records empty, so a
/// chart shows the quiet stretches), as long as there are at most a few
/// thousand; else the buckets with records only.
fn dense(series: Vec<Bucket>, first: i64, last: i64, bucket_ms: i64) -> Vec<Bucket> {
    let start = first.div_euclid(bucket_ms) * bucket_ms;
    let end = series.last().map_or(last - 1, |b| b.start_ms.max(last - 1));
    if end < start || (end - start) / bucket_ms > 5000 {
        return series;
    }
    let mut have = series.into_iter().peekable();
    let mut out = Vec::new();
    let mut t = start;
    while t <= end {
        // Buckets before the range (records older than `first`) come first.
        while let Some(b) = have.next_if(|b| b.start_ms < t) {
            out.push(b);
        }
        match have.next_if(|b| b.start_ms == t) {
            Some(b) => out.push(b),
            None => out.push(Bucket {
                start_ms: t,
                calls: 0,
                errors: 0,
                input_tokens: 0,
                output_tokens: 0,
                cost_usd: 0.0,
                latency_ms: None,
                time_to_first_chunk_ms: None,
            }),
        }
        t += bucket_ms;
    }
    out.extend(have);
    out
}

/// The smallest of the usual bucket widths (1 s … 1 day) at least `ms`.
fn nice_bucket(ms: i64) -> i64 {
    const WIDTHS: [i64; 14] = [
        1_000,
        5_000,
        10_000,
        30_000,
        60_000,
        300_000,
        600_000,
        1_800_000,
        3_600_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        604_800_000,
    ];
    WIDTHS.into_iter().find(|&w| w >= ms).unwrap_or(ms)
}

async fn facets(State(viewer): State<Arc<Viewer>>) -> ApiResult {
    let found = with_store(&viewer, |store| Ok(store.facets(200)?)).await?;
    Ok(Json(match found {
        Some(f) => json!(f),
        None => json!({"models": [], "sources": [], "users": [], "sessions": []}),
    }))
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    after: Option<i64>,
}

/// How often the live stream looks for new records.
const POLL: Duration = Duration::from_millis(500);

async fn stream(
    State(viewer): State<Arc<Viewer>>,
    Query(q): Query<StreamQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = match q.after {
        Some(a) => a,
        None => with_store(&viewer, |store| Ok(store.last_id()?)).await.ok().flatten().unwrap_or(0),
    };
    let events =
        futures_util::stream::unfold((viewer, start, Vec::new()), |(viewer, mut after, mut ready)| async move {
            loop {
                if let Some(row) = ready.pop() {
                    let event = Event::default().event("record").json_data(&row).unwrap_or_else(|_| Event::default());
                    return Some((Ok(event), (viewer, after, ready)));
                }
                tokio::time::sleep(POLL).await;
                let from = after;
                let rows = with_store(&viewer, move |store| Ok(store.newer_than(from, 500)?))
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                if let Some(last) = rows.last() {
                    after = last.id;
                }
                // Popped from the end: oldest first.
                ready = rows.into_iter().rev().collect();
            }
        });
    Sse::new(events).keep_alive(KeepAlive::default())
}
