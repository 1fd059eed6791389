//! The AnoSys HTTP sink: each record is encoded to one flat JSON object
//! ([`Encoder`]) and POSTed on its own, over keep-alive connections with a
//! bounded number of requests in flight.
//!
//! One attempt per export: 5xx, 408, 429, timeouts and connection errors
//! are reported for another try (with the `Retry-After` asked for), and the
//! pipeline keeps those records in the durable outbox and sends them again
//! with backoff; other 4xx are refused for good (counted as failed). Until
//! a key is resolved nothing is posted anywhere, never to a guessed
//! address. Each body carries `anosys_record_id` (trace and span id), so
//! the backend can drop a duplicate of a record sent twice.

pub mod encode;
pub mod encrypt;
pub mod mapping;
mod resolve;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::StatusCode as HttpStatus;
use http_body_util::BodyExt as _;
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

pub use encode::{Encoder, SlotRegistry, SlotType};
pub use resolve::resolve_log_url;

use super::{BoxFuture, Destination, ExportContext, ExportReport, Sink, SinkError};
use crate::config::{ApiKey, Config};
use crate::diag::{self, LogLevel};
use crate::net::{ClientOptions, HttpClient};
use crate::record::{Record, Resource};

/// Where the sink posts.
#[derive(Debug, Clone)]
enum Target {
    /// A configured URL.
    Url(String),
    /// A key to resolve first.
    Key { key: ApiKey, resolver: String },
}

/// The AnoSys HTTP API as a [`Sink`].
///
/// ```no_run
/// use anosys::{Config, sinks::AnosysSink};
/// let config = Config::builder().api_url("https://example.invalid/log").build()?;
/// let sink = AnosysSink::new(&config)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AnosysSink {
    client: HttpClient,
    target: Target,
    /// The URL posted to, parsed once.
    endpoint: OnceCell<Result<http::Uri, String>>,
    registry: Arc<SlotRegistry>,
    /// Column encryption (`ANOSYS_ENCRYPTION_KEY`), when asked for.
    encryption: Option<Arc<encrypt::Encryption>>,
    /// Where undelivered records wait, for messages.
    kept_in: String,
    max_in_flight: usize,
    request_timeout: Duration,
}

impl std::fmt::Debug for AnosysSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnosysSink").field("target", &self.target).finish_non_exhaustive()
    }
}

/// Outcome of one POST.
enum Attempt {
    Delivered,
    /// Worth another try; `uncertain` when the request may have arrived.
    Retry {
        after: Option<Duration>,
        uncertain: bool,
    },
    Rejected(HttpStatus),
}

const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

impl AnosysSink {
    /// A sink for the URL or key in `config` (URL wins). Resolution of a key
    /// starts with [`Sink::start`] and never blocks the caller.
    pub fn new(config: &Config) -> Result<Self, SinkError> {
        let target = match (&config.api_url, &config.api_key) {
            (Some(url), _) => Target::Url(url.clone()),
            (None, Some(key)) => Target::Key { key: key.clone(), resolver: config.resolver_url.clone() },
            (None, None) => return Err(SinkError::MissingCredentials),
        };
        let options = ClientOptions::default()
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            // Every connection the lane's exports at once use stays open:
            // a pool smaller than the requests in flight closed one after
            // nearly every request and opened another for the next (with 4
            // exports of 8 requests, the delivery rate halved).
            .max_idle_per_host(config.max_in_flight.saturating_mul(crate::pipeline::EXPORTS_AT_ONCE))
            .pool_idle_timeout(Duration::from_secs(60));
        let client = HttpClient::new(&options).map_err(SinkError::HttpClient)?;
        Ok(AnosysSink {
            client,
            target,
            endpoint: OnceCell::new(),
            registry: SlotRegistry::shared(config.starting_indices),
            encryption: encrypt::Encryption::from_config(config).map(Arc::new),
            kept_in: if cfg!(feature = "sqlite") && config.outbox_max_bytes > 0 {
                format!("records wait in the outbox in {} for a process that can", config.db_path.display())
            } else {
                "records are retried in memory, then dropped and counted".into()
            },
            max_in_flight: config.max_in_flight,
            request_timeout: config.request_timeout,
        })
    }

    async fn endpoint(&self) -> &Result<http::Uri, String> {
        self.endpoint
            .get_or_init(|| async {
                let found = match &self.target {
                    Target::Url(url) => Ok(url.clone()),
                    Target::Key { key, resolver } => {
                        let result = resolve::resolve(&self.client, resolver, key, self.request_timeout).await;
                        if let Err(reason) = &result {
                            diag::log(
                                LogLevel::Error,
                                &format!(
                                    "could not resolve ANOSYS_API_KEY ({reason}); nothing is sent to AnoSys in this process: {}",
                                    self.kept_in
                                ),
                            );
                        }
                        result
                    }
                };
                // Parsed once here rather than for every request. (The
                // error never shows the URL: it may hold a key.)
                found.and_then(|url| {
                    parse_url(&url).map_err(|e| {
                        let reason = format!("the AnoSys URL is not a valid URL ({e})");
                        diag::log(LogLevel::Error, &format!("{reason}; nothing is sent to AnoSys in this process: {}", self.kept_in));
                        reason
                    })
                })
            })
            .await
    }

    async fn post(client: HttpClient, url: http::Uri, body: bytes::Bytes, timeout: Duration) -> Attempt {
        let mut headers = http::HeaderMap::with_capacity(2);
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        headers.insert(http::header::USER_AGENT, http::HeaderValue::from_static(USER_AGENT));
        // The whole exchange, within `timeout`: 307 and 308 redirects
        // followed with the record (other redirects are the answer), and
        // the answer's body read to its end, so the connection goes back to
        // the pool.
        let exchange = async {
            let response = client.send_following_redirects(http::Method::POST, url, headers, body).await?;
            let (head, body) = response.into_parts();
            let _ = body.collect().await;
            Ok::<_, crate::net::SendError>(head)
        };
        let head = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => {
                // A refused connection certainly did not deliver; a
                // connection lost after sending may have.
                diag::log(LogLevel::Debug, &format!("POST to AnoSys failed: {e}"));
                return Attempt::Retry { after: None, uncertain: !e.is_connect() };
            }
            Err(_) => {
                diag::log(LogLevel::Debug, &format!("POST to AnoSys got no answer within {} s", timeout.as_secs_f64()));
                return Attempt::Retry { after: None, uncertain: true };
            }
        };
        let status = head.status;
        if status.is_success() {
            return Attempt::Delivered;
        }
        let after = head.headers.get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        if status == HttpStatus::TOO_MANY_REQUESTS {
            Attempt::Retry { after: Some(after.unwrap_or(Duration::from_secs(1))), uncertain: false }
        } else if status.is_server_error() || status == HttpStatus::REQUEST_TIMEOUT {
            // A 502/504 from a gateway may hide a backend that did
            // store the record.
            let uncertain = matches!(status, HttpStatus::BAD_GATEWAY | HttpStatus::GATEWAY_TIMEOUT);
            Attempt::Retry { after, uncertain }
        } else {
            Attempt::Rejected(status)
        }
    }
}

/// The `User-Agent` of every request to AnoSys.
const USER_AGENT: &str = concat!("anosys-rust/", env!("CARGO_PKG_VERSION"));

/// An absolute `http` or `https` URL, as the client takes it: read as a
/// WHATWG URL first (an international host becomes its ASCII form, as a
/// browser would send it).
fn parse_url(url: &str) -> Result<http::Uri, String> {
    let url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("it is not an http or https URL".into());
    }
    url.as_str().parse::<http::Uri>().map_err(|e| e.to_string())
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(RETRY_AFTER_MAX));
    }
    let when = httpdate_parse(v)?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).min(RETRY_AFTER_MAX))
}

fn httpdate_parse(v: &str) -> Option<SystemTime> {
    // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == parts[2])?
        + 1;
    let iso = format!("{}-{:02}-{:02}T{}Z", parts[3], month, parts[1].parse::<u32>().ok()?, parts[4]);
    crate::record::time::from_iso(&iso)
}

/// Batches of at least this many records are encoded on the blocking pool
/// while the first requests are already in flight; smaller ones on the
/// sink's own task (a thread hand-off would cost more than it saves).
const ENCODE_OFF_THREAD_FROM: usize = 16;

/// Bodies the encoding thread hands over at a time, at most.
const ENCODE_CHUNK: usize = 32;

/// A chunk also ends once its bodies hold this many bytes: the encoding
/// runs a few chunks ahead of the requests, and with large records 32
/// bodies a chunk would hold megabytes outside the queue's memory bound
/// (`ANOSYS_QUEUE_MAX_BYTES`) for every export in flight.
const ENCODE_CHUNK_BYTES: usize = 256 * 1024;

/// Chunks the encoding thread may have ready before the requests take
/// them.
const ENCODE_AHEAD: usize = 4;

/// Where an export's request bodies come from, in record order.
enum Bodies<'a> {
    /// Encoded on the sink's task, one when it is needed.
    Inline { encoder: Encoder<'a>, batch: &'a [Record], observed: SystemTime, empty: Resource },
    /// Encoded already (kept in the outbox in this form).
    Encoded { bodies: Arc<[bytes::Bytes]> },
    /// Encoded on the blocking pool, in chunks: `ready` holds those
    /// received and not yet sent; `encoding` is the encoding task, until
    /// it has ended.
    Elsewhere {
        rx: tokio::sync::mpsc::Receiver<Vec<bytes::Bytes>>,
        ready: std::collections::VecDeque<bytes::Bytes>,
        encoding: Option<tokio::task::JoinHandle<()>>,
    },
}

impl Bodies<'_> {
    /// Starts encoding `batch` on the blocking pool. The encoding stops
    /// early when the export is dropped (its receiver gone).
    fn encoded_elsewhere(
        batch: Arc<[Record]>,
        registry: Arc<SlotRegistry>,
        encryption: Option<Arc<encrypt::Encryption>>,
        observed: SystemTime,
        mut pace: crate::pipeline::Pace,
    ) -> Bodies<'static> {
        // A few chunks ahead of the requests, no more.
        let (tx, rx) = tokio::sync::mpsc::channel(ENCODE_AHEAD);
        let encoding = tokio::task::spawn_blocking(move || {
            let encoder = Encoder::with_registry(&registry).encrypting(encryption.as_deref());
            let empty = Resource::default();
            let mut chunk = Vec::with_capacity(ENCODE_CHUNK);
            let mut bytes = 0;
            for (i, record) in batch.iter().enumerate() {
                pace.between();
                let body = encoder.encode_to_vec(record, &empty, observed);
                bytes += body.len();
                chunk.push(bytes::Bytes::from(body));
                let last = i + 1 == batch.len();
                if chunk.len() == ENCODE_CHUNK || bytes >= ENCODE_CHUNK_BYTES || last {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(ENCODE_CHUNK));
                    bytes = 0;
                    if tx.blocking_send(full).is_err() {
                        return;
                    }
                }
            }
        });
        Bodies::Elsewhere { rx, ready: std::collections::VecDeque::new(), encoding: Some(encoding) }
    }

    /// The body of record `i` (the next one) if it is ready now.
    fn ready(&mut self, i: usize) -> Option<bytes::Bytes> {
        match self {
            Bodies::Inline { encoder, batch, observed, empty } => {
                let record = batch.get(i)?;
                Some(bytes::Bytes::from(encoder.encode_to_vec(record, empty, *observed)))
            }
            Bodies::Encoded { bodies } => bodies.get(i).cloned(),
            Bodies::Elsewhere { ready, .. } => ready.pop_front(),
        }
    }

    /// Waits for more bodies; `false` when no more will come (every body
    /// was handed over). A panic while encoding goes on here, on the
    /// export's task, as if the record had been encoded there (the lane
    /// counts the batch as failed rather than trying it again).
    async fn more(&mut self) -> bool {
        match self {
            // Inline bodies are always ready.
            Bodies::Inline { .. } | Bodies::Encoded { .. } => std::future::pending().await,
            Bodies::Elsewhere { rx, ready, encoding } => match rx.recv().await {
                Some(chunk) => {
                    ready.extend(chunk);
                    true
                }
                None => {
                    if let Some(task) = encoding.take()
                        && let Err(e) = task.await
                        && e.is_panic()
                    {
                        std::panic::resume_unwind(e.into_panic());
                    }
                    false
                }
            },
        }
    }
}

impl AnosysSink {
    /// The encoder of this sink's bodies: its slots, its encryption.
    fn encoder(&self) -> Encoder<'_> {
        Encoder::with_registry(&self.registry).encrypting(self.encryption.as_deref())
    }

    /// Where an export of `n` records posts and each request's timeout;
    /// `Err` (every record to try again) when there is nowhere to post yet
    /// or no time left before the shutdown deadline.
    async fn prepare(&self, n: usize, cx: &ExportContext) -> Result<(http::Uri, Duration), ExportReport> {
        // Key resolution may still be running: wait for it, but not past
        // a shutdown deadline.
        let endpoint = tokio::select! {
            e = self.endpoint() => e.clone().ok(),
            _ = cx.deadline_passed() => None,
        };
        let Some(url) = endpoint else {
            return Err(ExportReport::retry_all(n));
        };
        // A request never outlives the shutdown deadline.
        let timeout = match cx.deadline() {
            Some(d) => d.saturating_duration_since(Instant::now()).mul_f32(0.8).min(self.request_timeout),
            None => self.request_timeout,
        };
        if timeout < Duration::from_millis(10) {
            return Err(ExportReport::retry_all(n));
        }
        Ok((url, timeout))
    }

    /// Posts the `n` bodies of an export to `url`, at most `max_in_flight`
    /// at once, and reports what became of each record.
    async fn send(
        &self,
        n: usize,
        mut bodies: Bodies<'_>,
        (url, timeout): (http::Uri, Duration),
        cx: ExportContext,
    ) -> ExportReport {
        let mut report = ExportReport::default();
        let mut set: JoinSet<(usize, Attempt)> = JoinSet::new();
        let max_in_flight = self.max_in_flight.max(1);
        // Bodies started, and whether more will come.
        let (mut next, mut coming) = (0, true);
        let mut answered = vec![false; n];
        // Once the destination asks for another try (down, refusing,
        // overloaded), the rest of the batch is not sent now: it is reported
        // for another try.
        let mut stopped = false;
        loop {
            while !stopped && next < n && set.len() < max_in_flight {
                let Some(body) = bodies.ready(next) else { break };
                let (client, url) = (self.client.clone(), url.clone());
                let i = next;
                set.spawn(async move { (i, Self::post(client, url, body, timeout).await) });
                next += 1;
            }
            let waiting_for_bodies = !stopped && coming && next < n && set.len() < max_in_flight;
            if set.is_empty() && !waiting_for_bodies {
                break;
            }
            let joined = tokio::select! {
                joined = set.join_next(), if !set.is_empty() => match joined {
                    Some(joined) => joined,
                    None => continue,
                },
                more = bodies.more(), if waiting_for_bodies => {
                    coming = more;
                    continue;
                }
                _ = cx.deadline_passed() => {
                    // Past the deadline: what has not answered is tried again later.
                    set.abort_all();
                    break;
                }
            };
            // A panicked task counts as unanswered.
            let Ok((i, outcome)) = joined else { continue };
            answered[i] = true;
            stopped |= matches!(outcome, Attempt::Retry { .. });
            match outcome {
                Attempt::Delivered => {}
                Attempt::Retry { after, uncertain } => {
                    report.retry.push(i);
                    if uncertain {
                        report.uncertain.push(i);
                    }
                    if let Some(a) = after {
                        report.retry_after = Some(report.retry_after.map_or(a, |w| w.max(a)));
                    }
                }
                Attempt::Rejected(status) => {
                    report.failed += 1;
                    diag::once(&format!("anosys-rejected-{}", status.as_u16()), LogLevel::Error, || {
                        format!("AnoSys rejected a record with HTTP {status}; such records are not retried and are counted as failed")
                    });
                }
            }
        }
        // Requests cut off by the deadline may have arrived; those never
        // started did not.
        for (i, &done) in answered.iter().enumerate() {
            if !done {
                report.retry.push(i);
                if i < next {
                    report.uncertain.push(i);
                }
            }
        }
        report.retry.sort_unstable();
        report.uncertain.sort_unstable();
        report
    }
}

impl Sink for AnosysSink {
    fn name(&self) -> &str {
        "anosys"
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Url(url) => match reqwest::Url::parse(url) {
                Ok(u) => format!("records are sent to AnoSys at {}://{}", u.scheme(), u.host_str().unwrap_or("?")),
                Err(_) => "records are sent to AnoSys".into(),
            },
            Target::Key { .. } => "records are sent to AnoSys (URL resolved from ANOSYS_API_KEY)".into(),
        }
    }

    fn destination(&self) -> Option<Destination> {
        Some(match &self.target {
            Target::Url(url) => Destination::new("anosys", url, self.describe()),
            Target::Key { key, resolver } => {
                Destination::new("anosys", &format!("{}\n{resolver}", key.expose()), self.describe())
            }
        })
    }

    fn export<'a>(&'a self, batch: &'a [Record], cx: ExportContext) -> BoxFuture<'a, ExportReport> {
        Box::pin(async move {
            let target = match self.prepare(batch.len(), &cx).await {
                Ok(target) => target,
                Err(report) => return report,
            };
            let observed = SystemTime::now();
            let encoder = self.encoder();
            let bodies = Bodies::Inline { encoder, batch, observed, empty: Resource::default() };
            self.send(batch.len(), bodies, target, cx).await
        })
    }

    fn export_shared(&self, batch: Arc<[Record]>, cx: ExportContext) -> BoxFuture<'_, ExportReport> {
        Box::pin(async move {
            let n = batch.len();
            // Nothing is encoded before there is somewhere to send it.
            let target = match self.prepare(n, &cx).await {
                Ok(target) => target,
                Err(report) => return report,
            };
            let observed = SystemTime::now();
            if n < ENCODE_OFF_THREAD_FROM {
                let encoder = self.encoder();
                let bodies = Bodies::Inline { encoder, batch: &batch, observed, empty: Resource::default() };
                return self.send(n, bodies, target, cx).await;
            }
            let bodies = Bodies::encoded_elsewhere(batch, self.registry.clone(), self.encryption.clone(), observed, cx.pace());
            self.send(n, bodies, target, cx).await
        })
    }

    fn wire_encoder(&self) -> Option<Arc<dyn super::outbox::WireEncoder>> {
        Some(Arc::new(WireBodies { registry: self.registry.clone(), encryption: self.encryption.clone() }))
    }

    fn export_wire(&self, bodies: Arc<[bytes::Bytes]>, cx: ExportContext) -> BoxFuture<'_, ExportReport> {
        Box::pin(async move {
            let n = bodies.len();
            let target = match self.prepare(n, &cx).await {
                Ok(target) => target,
                Err(report) => return report,
            };
            self.send(n, Bodies::Encoded { bodies }, target, cx).await
        })
    }

    fn start(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.endpoint().await;
        })
    }
}

/// The AnoSys sink's outbox form: each record's request body, as it would
/// be sent now (the mapping it carries is the tail shared by many rows).
/// Such a body stays valid in any later process: it carries its mapping.
struct WireBodies {
    registry: Arc<SlotRegistry>,
    encryption: Option<Arc<encrypt::Encryption>>,
}

impl super::outbox::WireEncoder for WireBodies {
    fn encode(&self, record: &Record) -> Option<super::outbox::Wire> {
        let encoder = Encoder::with_registry(&self.registry).encrypting(self.encryption.as_deref());
        let (head, tail) = encoder.encode_wire(record, &Resource::default(), SystemTime::now());
        (!head.is_empty()).then_some(super::outbox::Wire { head, tail })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("999999"), Some(RETRY_AFTER_MAX));
    }
}
