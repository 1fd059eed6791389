// The `proxy_request` fuzz target's body, shared by the cargo-fuzz target
// (fuzz/fuzz_targets/proxy_request.rs) and the stable fuzz smoke test
// (crates/anosys-cli/tests/fuzz_smoke.rs), which both `include!` it: so
// no inner attributes or `//!` comments here.
//
// The proxy's request side on an arbitrary route spec, path and query,
// trace header and body: route parsing and selection, the upstream URL,
// and the record the request starts (the shared OpenAI extraction), the
// way `anosys proxy` does it; and `Route::target` of every route on
// every path. Never a panic.
//
// Input: one flags byte, then `spec \0 path?query \0 traceparent \0 body`.

use std::sync::OnceLock;

use anosys::record::context::parse_traceparent;
use anosys::sources::openai::{CaptureOptions, OpenAiCall};
use anosys_cli::proxy::{select_route, Route};
use serde_json::Value;

fn fixed_routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        vec![
            Route::new("/", "https://api.openai.com").unwrap(),
            Route::new("/ollama/v1/", "http://127.0.0.1:11434/v1").unwrap(),
            Route::parse("/groq=https://api.groq.com/openai/v1/").unwrap(),
            Route::parse("azure=https://x.openai.azure.com/openai/deployments/d").unwrap(),
        ]
    })
}

/// Runs one fuzz input; panics on a finding.
pub fn run(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else { return };
    let mut fields = data.splitn(4, |b| *b == 0);
    let spec = String::from_utf8_lossy(fields.next().unwrap_or_default());
    let uri = String::from_utf8_lossy(fields.next().unwrap_or_default());
    let traceparent = String::from_utf8_lossy(fields.next().unwrap_or_default());
    let body = fields.next().unwrap_or_default();

    // `--route PREFIX=URL`, when it parses, joins the fixed routes (or
    // replaces them, so a lone route is tried too).
    let mut routes: Vec<Route> = if flags & 1 == 0 { fixed_routes().to_vec() } else { Vec::new() };
    if let Ok(route) = Route::parse(&spec) {
        routes.push(route);
    }

    // The path and query as hyper hands them over, when the bytes make a
    // request target; the raw text split at `?` as well.
    let mut requests = vec![match uri.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (uri.to_string(), None),
    }];
    if let Ok(parsed) = uri.parse::<axum::http::Uri>() {
        requests.push((parsed.path().to_owned(), parsed.query().map(str::to_owned)));
    }

    let json: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(body).unwrap_or(Value::Null) };
    for (path, query) in requests {
        // `Route::target` is total: any route, matching or not, on any path.
        for route in &routes {
            let _ = route.target(&path, query.as_deref());
        }
        let Some(route) = select_route(&routes, &path) else { continue };
        let target = route.target(&path, query.as_deref());
        let options = CaptureOptions { capture_content: flags & 2 == 0, source: "proxy".into(), ..CaptureOptions::default() };
        let mut call = OpenAiCall::start(target.as_str(), json.clone(), &options);
        {
            let r = call.record_mut();
            if let Some((trace, parent, trace_flags)) = parse_traceparent(&traceparent) {
                r.set_parent(trace, parent);
                r.trace_flags = trace_flags;
            }
            r.set_attribute("http.request.method", "POST");
            r.set_attribute("url.path", path.as_str());
            if route.prefix != "/" {
                r.set_attribute("anosys.proxy.route", route.prefix.as_str());
            }
        }
        // How the request's record ends without a usable answer: the
        // client went away, or the upstream answered with nothing.
        let record = if flags & 4 == 0 { call.cancel() } else { call.finish(502, &b""[..]) };
        serde_json::to_string(&record).expect("a record serialises");
    }
}
