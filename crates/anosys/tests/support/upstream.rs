//! A local OpenAI-compatible upstream on 127.0.0.1 that replays recorded
//! exchanges: status, content type and body as recorded; server-sent events
//! one event at a time, with an optional pause between them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

use super::cassette::Exchange;
use super::LocalServer;

#[derive(Default)]
pub struct Shared {
    pub queue: Mutex<VecDeque<Exchange>>,
    /// (path and query, JSON body) of every request received.
    pub seen: Mutex<Vec<(String, Value)>>,
    pub event_pause: Mutex<Duration>,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    _server: LocalServer,
}

async fn replay(State(s): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let body = axum::body::to_bytes(request.into_body(), 16 << 20).await.unwrap_or_default();
    s.seen.lock().unwrap().push((path, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    let Some(x) = s.queue.lock().unwrap().pop_front() else {
        return Response::builder()
            .status(500)
            .body(Body::from("{\"error\":{\"message\":\"no exchange queued\"}}"))
            .unwrap();
    };
    let builder = Response::builder()
        .status(StatusCode::from_u16(x.status).unwrap())
        .header(header::CONTENT_TYPE, if x.content_type.is_empty() { "application/json" } else { &x.content_type });
    if !x.is_sse() {
        return builder.body(Body::from(x.body)).unwrap();
    }
    let pause = *s.event_pause.lock().unwrap();
    let text = String::from_utf8(x.body).unwrap();
    let events: Vec<Bytes> = text.split_inclusive("\n\n").map(|e| Bytes::from(e.to_owned())).collect();
    let stream = futures_util::stream::unfold(events.into_iter(), move |mut it| async move {
        let next = it.next()?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        Some((Ok::<_, std::io::Error>(next), it))
    });
    builder.body(Body::from_stream(stream)).unwrap()
}

impl Upstream {
    pub fn start() -> Upstream {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(replay).with_state(shared.clone());
        let server = LocalServer::start(0, app);
        Upstream { addr: server.addr, shared, _server: server }
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:1234/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn serve(&self, x: Exchange) {
        self.shared.queue.lock().unwrap().push_back(x);
    }

    pub fn pause_between_events(&self, d: Duration) {
        *self.shared.event_pause.lock().unwrap() = d;
    }

    pub fn seen(&self) -> Vec<(String, Value)> {
        self.shared.seen.lock().unwrap().clone()
    }
}
