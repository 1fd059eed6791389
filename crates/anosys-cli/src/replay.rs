//! A local OpenAI-compatible server that answers with recorded OpenAI
//! replies (`src/demo/replies.json`, taken from the recorded exchanges in
//! `crates/anosys/tests/fixtures/openai-cassettes` by
//! `src/demo/extract_replies.py`).
//!
//! It serves `POST /v1/chat/completions` (plain, streamed, with tools),
//! `/v1/embeddings` and `/v1/responses`; unknown models get OpenAI's 404
//! answer, unknown paths an OpenAI-style 404. Like the real API, an answer
//! starts after a moment's "thinking", and streams arrive one event at a
//! time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// One recorded reply.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    /// The recording it comes from.
    pub cassette: String,
    /// The request that was recorded with it.
    pub request: Option<Value>,
    /// HTTP status.
    pub status: u16,
    /// Content type (`text/event-stream` for streams).
    pub content_type: String,
    /// The body as recorded.
    pub body: String,
}

/// Every recorded reply, by role (`chat`, `chat_stream_tools`, …).
pub fn replies() -> &'static HashMap<String, Reply> {
    static REPLIES: OnceLock<HashMap<String, Reply>> = OnceLock::new();
    REPLIES.get_or_init(|| {
        serde_json::from_str(include_str!("demo/replies.json")).expect("replies.json is checked by the tests")
    })
}

/// The recorded reply for `role` (see `replies.json`).
pub fn reply(role: &str) -> &'static Reply {
    &replies()[role]
}

fn is_chat_model(m: &str) -> bool {
    m.starts_with("gpt-") || m.starts_with("o1") || m.starts_with("o3") || m.starts_with("o4") || m.starts_with("chatgpt")
}

/// Which recorded reply answers this request, and the model it asked
/// for when that model is unknown.
pub fn choose(method: &Method, path: &str, body: &Value) -> Option<(&'static Reply, Option<String>)> {
    if method != Method::POST {
        return None;
    }
    let model = body["model"].as_str().unwrap_or("");
    let stream = body["stream"].as_bool().unwrap_or(false);
    let tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
    let path = path.trim_end_matches('/');
    let role = if path.ends_with("/chat/completions") {
        if !is_chat_model(model) {
            return Some((reply("chat_not_found"), Some(model.to_owned())));
        }
        match (stream, tools) {
            (true, true) => "chat_stream_tools",
            (true, false) => "chat_stream",
            (false, true) => "chat_tools",
            (false, false) => "chat",
        }
    } else if path.ends_with("/embeddings") {
        if !model.starts_with("text-embedding-") {
            return Some((reply("embeddings_not_found"), Some(model.to_owned())));
        }
        // As OpenAI does: base64 of the floats when asked (the official
        // clients ask unless told otherwise), a list of numbers otherwise.
        if body["encoding_format"] == "base64" { "embeddings_base64" } else { "embeddings" }
    } else if path.ends_with("/responses") {
        if !is_chat_model(model) {
            return Some((reply("responses_not_found"), Some(model.to_owned())));
        }
        if stream { "responses_stream" } else { "responses" }
    } else {
        return None;
    };
    Some((reply(role), None))
}

fn not_served(method: &Method, path: &str) -> Response {
    let body = json!({"error": {
        "message": format!("The anosys demo server does not serve {method} {path}; it answers chat completions, embeddings and responses."),
        "type": "invalid_request_error",
        "param": null,
        "code": "unknown_url",
    }});
    json_response(StatusCode::NOT_FOUND, body.to_string())
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    r
}

/// How fast the server answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pacing {
    /// Before the first byte of every answer.
    pub first_byte: Duration,
    /// Between the events of a stream.
    pub between_events: Duration,
}

async fn answer(State(pacing): State<Pacing>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = axum::body::to_bytes(request.into_body(), 32 << 20).await.unwrap_or_default();
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        let e = json!({"error": {"message": "We could not parse the JSON body of your request.", "type": "invalid_request_error", "param": null, "code": null}});
        return json_response(StatusCode::BAD_REQUEST, e.to_string());
    };
    let Some((reply, unknown_model)) = choose(&method, &path, &body) else {
        return not_served(&method, &path);
    };
    if !pacing.first_byte.is_zero() {
        tokio::time::sleep(pacing.first_byte).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut text = reply.body.clone();
    if let Some(model) = unknown_model {
        // The recorded "model does not exist" message, naming the model asked for.
        let recorded = reply.request.as_ref().and_then(|r| r["model"].as_str()).unwrap_or_default();
        if !recorded.is_empty() {
            let asked = serde_json::to_string(&model).unwrap_or_default();
            let asked = asked.trim_matches('"');
            text = text.replace(recorded, asked);
        }
    }
    let mut response = Response::builder().status(status).header(header::CONTENT_TYPE, &reply.content_type);
    if !reply.content_type.starts_with("text/event-stream") {
        return response.body(Body::from(text)).unwrap_or_else(|_| json_response(status, String::new()));
    }
    response = response.header(header::CACHE_CONTROL, "no-cache");
    let events: Vec<Bytes> = text.split_inclusive("\n\n").map(|e| Bytes::from(e.to_owned())).collect();
    let pause = pacing.between_events;
    let stream = futures_util::stream::unfold((events.into_iter(), true), move |(mut it, first)| async move {
        let next = it.next()?;
        if !first && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Some((Ok::<_, std::io::Error>(next), (it, false)))
    });
    response.body(Body::from_stream(stream)).unwrap_or_else(|_| json_response(status, String::new()))
}

/// The replay server's routes, for serving it on a listener of your own.
pub fn router(pacing: Pacing) -> Router {
    Router::new().fallback(answer).with_state(pacing)
}

/// The replay server, running on the current tokio runtime until dropped.
#[derive(Debug)]
pub struct ReplayServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl ReplayServer {
    /// Starts on `127.0.0.1` (a free port), answering at `pacing`.
    ///
    /// ```
    /// use anosys_cli::replay::{Pacing, ReplayServer};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let server = ReplayServer::start(Pacing::default()).await?;
    /// assert!(server.base_url().starts_with("http://127.0.0.1:"));
    /// # Ok::<(), std::io::Error>(()) }).unwrap();
    /// ```
    pub async fn start(pacing: Pacing) -> std::io::Result<ReplayServer> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(pacing);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(ReplayServer { addr, stop: Some(stop) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL for OpenAI clients: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_answers_its_recorded_request() {
        for (role, reply) in replies() {
            let request = reply.request.clone().unwrap_or(Value::Null);
            let path = if role.starts_with("chat") {
                "/v1/chat/completions"
            } else if role.starts_with("embeddings") {
                "/v1/embeddings"
            } else {
                "/v1/responses"
            };
            let (chosen, _) = choose(&Method::POST, path, &request).unwrap();
            assert_eq!(chosen.cassette, reply.cassette, "{role}");
        }
        assert!(choose(&Method::GET, "/v1/models", &Value::Null).is_none());
        assert!(choose(&Method::POST, "/v1/audio/speech", &json!({"model": "tts-1"})).is_none());
    }
}
