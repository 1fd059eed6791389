//! A bare pass-through HTTP proxy built from the parts `anosys proxy`
//! serves with, and nothing else: the floor of that stack, for
//! `bench/proxy_load.sh` (target `bare`) to measure beside nginx and the
//! logging proxy.
//!
//! Same parts as `anosys proxy`: tokio's multi-threaded runtime, hyper's
//! server (HTTP/1.1 and HTTP/2 detected per connection, upgrades allowed),
//! hyper's pooled client, mimalloc, an answer's chunks that come together
//! passed on together ([`Coalesced`]). Nothing else: no router, no capture,
//! no store, no watchdog, no access log. Request and answer bodies stream
//! through as they come. A request fails with 502 when the upstream cannot
//! be reached.
//!
//! ```text
//! cargo run --release -p anosys-cli --example bare_proxy -- 127.0.0.1:8081 http://127.0.0.1:8080
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use http::header::{CONNECTION, HOST};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use anosys_cli::proxy::Coalesced;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Body = UnsyncBoxBody<Bytes, hyper::Error>;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: bare_proxy LISTEN_ADDR UPSTREAM_URL (e.g. 127.0.0.1:8081 http://127.0.0.1:8080)");
        std::process::exit(2);
    };
    let listen: SocketAddr = listen.parse().unwrap_or_else(|e| fail(&format!("bad listen address {listen}: {e}")));
    let upstream: Uri = upstream.parse().unwrap_or_else(|e| fail(&format!("bad upstream URL {upstream}: {e}")));
    if upstream.scheme_str() != Some("http") || upstream.authority().is_none() {
        fail("the upstream must be an http:// URL with a host");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bare-serve")
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start the runtime: {e}")));
    runtime.block_on(serve(listen, upstream));
}

fn fail(message: &str) -> ! {
    eprintln!("bare_proxy: {message}");
    std::process::exit(1)
}

async fn serve(listen: SocketAddr, upstream: Uri) {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {listen}: {e}")));
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new()).build(connector);
    let base = upstream.to_string().trim_end_matches('/').to_owned();
    eprintln!("bare_proxy: {listen} -> {base}");
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| forward(client.clone(), base.clone(), request));
            let _ =
                Builder::new(TokioExecutor::new()).serve_connection_with_upgrades(TokioIo::new(stream), service).await;
        });
    }
}

/// Sends `request` on to the same path and query under `base`; the
/// upstream's answer comes back as it is.
async fn forward(
    client: Client<HttpConnector, Incoming>,
    base: String,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{base}{path}").parse::<Uri>() else { return Ok(status(StatusCode::BAD_REQUEST)) };
    parts.uri = uri;
    // The client writes the upstream's Host; hop-by-hop headers stay here.
    parts.headers.remove(HOST);
    parts.headers.remove(CONNECTION);
    match client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => Ok(answer.map(|body| Coalesced::new(body).boxed_unsync())),
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut answer = Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
    *answer.status_mut() = code;
    answer
}
