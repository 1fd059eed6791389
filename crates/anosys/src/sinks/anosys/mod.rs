//! The AnoSys HTTP sink: each record is encoded to one flat JSON object
//! ([`Encoder`]) and POSTed on its own, over keep-alive connections with a
//! bounded number of requests in flight.
//!
//! Retries: 5xx, 408, timeouts and connection errors with exponential
//! backoff and jitter; 429 waits at least its `Retry-After`; other 4xx are
//! not retried (counted as failed). What cannot be delivered before the
//! retry budget or the shutdown deadline runs out is kept in the fallback
//! sink (the embedded one), never posted to a guessed address.

pub mod encode;
pub mod mapping;
mod resolve;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode as HttpStatus;
use tokio::sync::OnceCell;
use tokio::task::JoinSet;

pub use encode::{Encoder, SlotRegistry, SlotType};

use super::{backoff, keep_in, BoxFuture, ExportContext, ExportReport, Sink, SinkError};
use crate::config::{ApiKey, Config};
use crate::diag::{self, LogLevel};
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
    client: reqwest::Client,
    target: Target,
    endpoint: OnceCell<Result<String, String>>,
    registry: Arc<SlotRegistry>,
    fallback: Option<Arc<dyn Sink>>,
    max_in_flight: usize,
    retry_max_elapsed: Duration,
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
    Retry { after: Option<Duration> },
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
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(config.max_in_flight)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("anosys-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SinkError::HttpClient(e.without_url()))?;
        Ok(AnosysSink {
            client,
            target,
            endpoint: OnceCell::new(),
            registry: SlotRegistry::shared(config.starting_indices),
            fallback: None,
            max_in_flight: config.max_in_flight,
            retry_max_elapsed: config.retry_max_elapsed,
            request_timeout: config.request_timeout,
        })
    }

    /// Keeps what cannot be delivered in `fallback` instead of dropping it.
    pub fn with_fallback(mut self, fallback: Arc<dyn Sink>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    async fn endpoint(&self) -> &Result<String, String> {
        self.endpoint
            .get_or_init(|| async {
                match &self.target {
                    Target::Url(url) => Ok(url.clone()),
                    Target::Key { key, resolver } => {
                        let result = resolve::resolve(&self.client, resolver, key, self.request_timeout).await;
                        if let Err(reason) = &result {
                            let kept = self
                                .fallback
                                .as_ref()
                                .map(|f| f.describe())
                                .unwrap_or_else(|| "nowhere: they are counted as failed".into());
                            diag::log(
                                LogLevel::Error,
                                &format!(
                                    "could not resolve ANOSYS_API_KEY ({reason}); nothing is sent to AnoSys in this process, {kept}"
                                ),
                            );
                        }
                        result
                    }
                }
            })
            .await
    }

    async fn post(client: reqwest::Client, url: String, body: bytes::Bytes, timeout: Duration) -> Attempt {
        let response = client
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => {
                // Drain the body so the connection goes back to the pool.
                let _ = r.bytes().await;
                Attempt::Delivered
            }
            Ok(r) => {
                let status = r.status();
                let after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let _ = r.bytes().await;
                if status == HttpStatus::TOO_MANY_REQUESTS {
                    Attempt::Retry { after: Some(after.unwrap_or(Duration::from_secs(1))) }
                } else if status.is_server_error() || status == HttpStatus::REQUEST_TIMEOUT {
                    Attempt::Retry { after }
                } else {
                    Attempt::Rejected(status)
                }
            }
            Err(e) => {
                diag::log(LogLevel::Debug, &format!("POST to AnoSys failed: {}", e.without_url()));
                Attempt::Retry { after: None }
            }
        }
    }

    async fn keep_in_fallback(&self, records: Vec<Record>, cx: ExportContext, report: &mut ExportReport) {
        keep_in(self.fallback.as_ref(), records, cx, report).await;
    }
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

/// Copies of the records at `indices`.
fn pick(batch: &[Record], indices: &[usize]) -> Vec<Record> {
    indices.iter().map(|&i| batch[i].clone()).collect()
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

    fn export<'a>(&'a self, batch: &'a [Record], cx: ExportContext) -> BoxFuture<'a, ExportReport> {
        Box::pin(async move {
            let mut report = ExportReport::default();
            // Key resolution may still be running: wait for it, but not past
            // a shutdown deadline.
            let endpoint = tokio::select! {
                e = self.endpoint() => e.clone().ok(),
                _ = cx.deadline_passed() => None,
            };
            let Some(url) = endpoint else {
                self.keep_in_fallback(batch.to_vec(), cx.clone(), &mut report).await;
                return report;
            };
            let encoder = Encoder::with_registry(&self.registry);
            let empty = Resource::default();
            let observed = SystemTime::now();
            let bodies: Vec<bytes::Bytes> = batch
                .iter()
                .map(|r| bytes::Bytes::from(encoder.encode_to_vec(r, &empty, observed)))
                .collect();

            let started = Instant::now();
            let mut pending: Vec<usize> = (0..batch.len()).collect();
            let mut attempt = 0u32;
            loop {
                // A request never outlives the shutdown deadline.
                let timeout = match cx.deadline() {
                    Some(d) => d.saturating_duration_since(Instant::now()).mul_f32(0.8).min(self.request_timeout),
                    None => self.request_timeout,
                };
                if timeout < Duration::from_millis(10) {
                    self.keep_in_fallback(pick(batch, &pending), cx.clone(), &mut report).await;
                    return report;
                }
                let mut retry: Vec<usize> = Vec::new();
                let mut wait_at_least: Option<Duration> = None;
                let mut set = JoinSet::new();
                let mut unfinished: std::collections::BTreeSet<usize> = pending.iter().copied().collect();
                let mut queue = pending.iter().copied();
                let mut spawn_next = |set: &mut JoinSet<(usize, Attempt)>| {
                    if let Some(i) = queue.next() {
                        let (client, url, body) = (self.client.clone(), url.clone(), bodies[i].clone());
                        set.spawn(async move { (i, Self::post(client, url, body, timeout).await) });
                    }
                };
                for _ in 0..self.max_in_flight {
                    spawn_next(&mut set);
                }
                loop {
                    let joined = tokio::select! {
                        joined = set.join_next() => match joined {
                            Some(joined) => joined,
                            None => break,
                        },
                        _ = cx.deadline_passed() => {
                            // Past the deadline: what has not answered is kept locally.
                            set.abort_all();
                            break;
                        }
                    };
                    spawn_next(&mut set);
                    // A panicked task stays in `unfinished` and is retried.
                    let Ok((i, outcome)) = joined else { continue };
                    unfinished.remove(&i);
                    match outcome {
                        Attempt::Delivered => {}
                        Attempt::Retry { after } => {
                            retry.push(i);
                            if let Some(a) = after {
                                wait_at_least = Some(wait_at_least.map_or(a, |w| w.max(a)));
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
                // Requests cut off by the deadline, or (never expected) a
                // panicked task: retried, or kept locally below.
                retry.extend(unfinished.iter().copied());
                if retry.is_empty() {
                    return report;
                }
                retry.sort_unstable();
                retry.dedup();
                let wait = backoff(attempt).max(wait_at_least.unwrap_or_default());
                let out_of_budget = started.elapsed() + wait > self.retry_max_elapsed;
                let past_deadline = cx.deadline().is_some_and(|d| Instant::now() + wait >= d);
                if out_of_budget || past_deadline {
                    diag::once("anosys-unreachable", LogLevel::Error, || {
                        let kept = self.fallback.as_ref().map(|f| f.describe()).unwrap_or_else(|| "they are counted as failed".into());
                        format!("AnoSys could not be reached in time; undelivered records are kept: {kept}")
                    });
                    self.keep_in_fallback(pick(batch, &retry), cx.clone(), &mut report).await;
                    return report;
                }
                report.retried += retry.len();
                let wake = Instant::now() + wait;
                if !cx.sleep(wait).await {
                    // A shutdown began: wait out the backoff only if its
                    // deadline leaves room for another try.
                    if cx.deadline().is_some_and(|d| wake >= d) {
                        self.keep_in_fallback(pick(batch, &retry), cx.clone(), &mut report).await;
                        return report;
                    }
                    tokio::time::sleep_until(wake.into()).await;
                }
                attempt += 1;
                pending = retry;
            }
        })
    }

    fn start(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let _ = self.endpoint().await;
        })
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
