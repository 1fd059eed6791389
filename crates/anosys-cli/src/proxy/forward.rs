//! One request: forward it, relay the answer, record the call.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anosys::record::context::parse_traceparent;
use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use anosys::{ErrorInfo, Record};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::access_log::Entry;
use super::metrics::Observation;
use super::relay::RelayedBody;
use super::Shared;

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers that go into the record and are not forwarded.
const SOURCE_HEADER: &str = "x-anosys-source";
const SESSION_HEADER: &str = "x-anosys-session-id";
const USER_HEADER: &str = "x-anosys-user-id";

fn error_json(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Whether a request header is forwarded upstream.
fn forwarded(name: &HeaderName, connection_listed: &[String]) -> bool {
    let n = name.as_str();
    !(HOP_BY_HOP.contains(&n)
        || n == "host"
        || n == "content-length"
        || n == "accept-encoding"
        || n.starts_with("x-anosys-")
        || connection_listed.iter().any(|c| c == n))
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    /// Longer than the proxy's limit (announced or counted).
    #[error("the request body is over the size limit")]
    TooLarge,
    /// The client's stream broke.
    #[error("the request body could not be read")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The whole body, or why not, read on a task of its own.
///
/// On HTTP/1.1 the body comes from the connection's task, the one this
/// handler runs in: each chunk it hands over, and the room it then waits
/// for, wakes that same task from within its own poll, which makes tokio
/// hand the task to another of its threads (a futex wake and two context
/// switches per request). Read from another task, the wakes go from task
/// to task on the same thread, as when the body is passed on unread.
async fn read_body_apart(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, BodyError> {
    /// The reading task, stopped if the request is (a client that leaves
    /// mid-body).
    struct Reading(tokio::task::JoinHandle<Result<bytes::Bytes, BodyError>>);
    impl Drop for Reading {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut reading = Reading(tokio::spawn(read_body(body, limit)));
    match (&mut reading.0).await {
        Ok(read) => read,
        Err(e) => Err(BodyError::Read(Box::new(e))),
    }
}

/// The whole body, or why not: over `limit` bytes is known by its error
/// type (http-body-util's `LengthLimitError`), not by its message.
async fn read_body(body: axum::body::Body, limit: usize) -> Result<bytes::Bytes, BodyError> {
    use http_body_util::BodyExt as _;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Read(e)),
    }
}

/// Header names the `Connection` header lists (also hop-by-hop).
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// What ends a request: metrics, the access log line, then the record.
pub(crate) struct Finisher {
    shared: Arc<Shared>,
    route: String,
    method: Method,
    path: String,
    status: u16,
    started: Instant,
}

impl Finisher {
    fn finish(self, record: Record) {
        self.finish_at(record, Instant::now());
    }

    /// Ends the request that ended `at` with `record`.
    pub(crate) fn finish_at(self, record: Record, at: Instant) {
        let seconds = at.saturating_duration_since(self.started).as_secs_f64();
        let attr_u64 = |k: &str| record.attribute(k).and_then(Value::as_u64);
        let model = record.model().map(str::to_owned);
        let error = record.error.as_ref().map(|e| e.error_type.clone());
        let ttfc = record.attribute("gen_ai.response.time_to_first_chunk").and_then(Value::as_f64);
        let tokens = (attr_u64("gen_ai.usage.input_tokens"), attr_u64("gen_ai.usage.output_tokens"));
        if self.shared.access_log.enabled() {
            self.shared.access_log.push(Entry {
                time: SystemTime::now(),
                method: self.method.clone(),
                path: self.path.clone(),
                route: self.route.clone(),
                status: self.status,
                duration_ms: seconds * 1000.0,
                model: model.clone(),
                input_tokens: tokens.0,
                output_tokens: tokens.1,
                error_type: error.clone(),
                outcome: record.attribute("anosys.outcome").and_then(Value::as_str).map(str::to_owned),
                trace_id: record.trace_id,
                span_id: record.span_id,
            });
        }
        self.shared.metrics.finished(Observation {
            route: self.route,
            method: self.method.to_string(),
            status: self.status,
            seconds,
            error,
            model,
            tokens,
            time_to_first_chunk: ttfc,
        });
        self.shared.pipeline.submit(record);
    }
}

/// What a call's record starts from, kept as the request came: the request
/// body is read and the record started only when the record is made (on
/// the capture thread for a plain answer, when the answer turns out to be a
/// stream for a stream), not on the request's path.
pub(crate) struct CallStart {
    target: String,
    body: bytes::Bytes,
    options: CaptureOptions,
    method: Method,
    path: String,
    route: Option<String>,
    session: Option<String>,
    user: Option<String>,
    parent: Option<(anosys::TraceId, anosys::SpanId, u8, Option<String>)>,
    start_time: SystemTime,
    /// When the request came: a stream's time to first chunk counts from it.
    arrived: Instant,
}

impl CallStart {
    /// The call, as if started when the request came.
    pub(crate) fn call(self) -> OpenAiCall {
        // Read straight from its bytes and kept as its text (no `Value`);
        // a body that is not JSON (or none) reads as `null`.
        let mut call = OpenAiCall::start(&self.target, &self.body[..], &self.options);
        call.set_sent_at(self.arrived);
        let r = call.record_mut();
        r.start_time = self.start_time;
        r.end_time = self.start_time;
        if let Some(v) = self.session {
            r.set_attribute("session.id", v);
        }
        if let Some(v) = self.user {
            r.set_attribute("user.id", v);
        }
        if let Some((trace, parent, flags, state)) = self.parent {
            r.set_parent(trace, parent);
            r.trace_flags = flags;
            r.trace_state = state;
        }
        r.set_attribute("http.request.method", self.method.as_str());
        r.set_attribute("url.path", self.path);
        if let Some(route) = self.route {
            r.set_attribute("anosys.proxy.route", route);
        }
        call
    }
}

/// A request until its record is handed to the response body. Dropped
/// before that (the client left before the answer started, or the handler
/// was cancelled), it still ends the record, as cancelled, with status 499
/// ("client closed request") in the metrics.
struct Pending {
    finisher: Option<Finisher>,
    start: Option<Box<CallStart>>,
    /// The target URL, for a request that ends before its start is kept
    /// (moved into the start then).
    target: String,
}

impl Pending {
    /// Ends the request now with `status` and the record `make` builds.
    fn end(&mut self, status: u16, make: impl FnOnce(OpenAiCall) -> Record) {
        if let Some(mut finisher) = self.finisher.take() {
            let call = match self.start.take() {
                Some(start) => start.call(),
                None => OpenAiCall::start(&self.target, Value::Null, &CaptureOptions::default()),
            };
            finisher.status = status;
            finisher.finish(make(call));
        }
    }

    /// The call's start and its finisher, for the response body to end.
    fn hand_off(mut self) -> Option<(Box<CallStart>, Finisher)> {
        Some((self.start.take()?, self.finisher.take()?))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.end(499, OpenAiCall::cancel);
    }
}

pub(super) async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if parts.method == Method::GET && path == "/healthz" {
        return text(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into());
    }
    if parts.method == Method::GET && path == "/metrics" {
        // Every request that ended before this one is counted: its end may
        // still wait for the capture thread.
        shared.capture.flush();
        let counters = shared.pipeline.counters();
        return text(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", shared.metrics.render(&counters));
    }
    let Some(route) = shared.route(&path).cloned() else {
        return error_json(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "no_route",
            &format!("the anosys proxy has no upstream for {path}; its routes are {}", {
                let prefixes: Vec<&str> = shared.config.routes.iter().map(|r| r.prefix.as_str()).collect();
                prefixes.join(", ")
            }),
        );
    };
    let target = route.target_text(&path, parts.uri.query());
    shared.metrics.started();
    let finisher = Finisher {
        shared: shared.clone(),
        route: route.prefix.clone(),
        method: parts.method.clone(),
        path: path.clone(),
        status: 0,
        started,
    };
    let mut pending = Pending { finisher: Some(finisher), start: None, target: target.clone() };

    // The body, within the size limit (announced or counted).
    let limit = shared.config.max_body_bytes;
    let announced = header_str(&parts.headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    let read = match announced {
        Some(n) if n > limit as u64 => Err(BodyError::TooLarge),
        _ => read_body_apart(body, limit).await,
    };
    let bytes = match read {
        Ok(b) => b,
        Err(e) => {
            let too_large = matches!(e, BodyError::TooLarge);
            let (status, code, message) = if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    format!("the request body is larger than the proxy's limit of {limit} bytes (anosys proxy --max-body-mb)"),
                )
            } else {
                (StatusCode::BAD_REQUEST, "request_body_error", format!("could not read the request body: {}", ErrorInfo::from_error(&e).one_line()))
            };
            pending.end(status.as_u16(), |call| call.fail(ErrorInfo::new(code, message.clone())));
            return error_json(status, "invalid_request_error", code, &message);
        }
    };

    // The record starts with the request (made into it later, off this path).
    let options = CaptureOptions {
        capture_content: shared.pipeline.capture_content(),
        source: header_str(&parts.headers, SOURCE_HEADER).unwrap_or("proxy").to_owned(),
        ..CaptureOptions::default()
    };
    let parent = header_str(&parts.headers, "traceparent")
        .and_then(parse_traceparent)
        .map(|(trace, parent, flags)| (trace, parent, flags, header_str(&parts.headers, "tracestate").map(str::to_owned)));
    pending.start = Some(Box::new(CallStart {
        // Pending needs the target only until its start is kept.
        target: std::mem::take(&mut pending.target),
        body: bytes.clone(),
        options,
        method: parts.method.clone(),
        path: path.clone(),
        route: (route.prefix != "/").then(|| route.prefix.clone()),
        session: header_str(&parts.headers, SESSION_HEADER).map(str::to_owned),
        user: header_str(&parts.headers, USER_HEADER).map(str::to_owned),
        parent,
        start_time: SystemTime::now(),
        arrived: started,
    }));

    // Forward.
    let listed = connection_listed(&parts.headers);
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in parts.headers.iter() {
        if forwarded(name, &listed) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    let sent = shared.client.send(parts.method.clone(), target.as_str(), headers, bytes);
    let response = match tokio::time::timeout(shared.config.upstream_timeout, sent).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let (status, kind) = if e.is_timeout() {
                (StatusCode::GATEWAY_TIMEOUT, "timeout")
            } else {
                (StatusCode::BAD_GATEWAY, "connection_error")
            };
            let message = format!("the anosys proxy could not reach {}: {e}", route.upstream);
            pending.end(status.as_u16(), |call| call.fail(ErrorInfo::new(kind, message.clone())));
            return error_json(status, "upstream_error", kind, &message);
        }
        Err(_) => {
            let message = format!(
                "{} did not answer within {} s",
                route.upstream,
                shared.config.upstream_timeout.as_secs()
            );
            pending.end(504, |call| call.fail(ErrorInfo::new("timeout", message.clone())));
            return error_json(StatusCode::GATEWAY_TIMEOUT, "upstream_error", "timeout", &message);
        }
    };

    // Relay the answer as it comes, recording along.
    let status = response.status();
    let Some((start, mut finisher)) = pending.hand_off() else {
        return error_json(StatusCode::INTERNAL_SERVER_ERROR, "proxy_error", "internal", "the request was already ended");
    };
    finisher.status = status.as_u16();
    // The answer's head is passed on as it came, less what belongs to the
    // upstream connection.
    let (mut head, stream) = response.into_parts();
    for name in connection_listed(&head.headers).iter().map(String::as_str).chain(HOP_BY_HOP.iter().copied()) {
        head.headers.remove(name);
    }
    head.version = Default::default();
    head.extensions = Default::default();
    let is_sse = header_str(&head.headers, "content-type").is_some_and(|v| v.starts_with("text/event-stream"));
    // No body follows a HEAD, a 204 or a 304, whatever the length says.
    let bodiless = parts.method == Method::HEAD || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let length = if bodiless { Some(0) } else { header_str(&head.headers, "content-length").and_then(|v| v.parse::<u64>().ok()) };
    // The record is made on the capture thread once the body has ended: a
    // stream's from its events and when each arrived.
    let events = is_sse && status.is_success();
    let body = Body::from_stream(RelayedBody::new(stream, start, finisher, (status.as_u16(), events), length, shared.clone()));
    Response::from_parts(head, body)
}
