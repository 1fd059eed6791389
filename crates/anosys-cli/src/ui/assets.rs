//! The page and its assets, compiled into the binary: nothing is fetched
//! from anywhere else at run time.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { path: "/", content_type: "text/html; charset=utf-8", body: include_bytes!("assets/index.html") },
    Asset {
        path: "/assets/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset { path: "/assets/app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("assets/app.css") },
    // uPlot 1.6.32 (MIT), vendored unchanged: assets/vendor/uplot/README.
    Asset {
        path: "/assets/vendor/uplot/uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/vendor/uplot/uPlot.iife.min.js"),
    },
    Asset {
        path: "/assets/vendor/uplot/uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/vendor/uplot/uPlot.min.css"),
    },
];

/// Routes for every embedded file.
pub fn router() -> Router {
    let mut router = Router::new();
    for asset in ASSETS {
        router = router.route(asset.path, get(move || async move { serve(asset) }));
    }
    router
}

fn serve(asset: &'static Asset) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
}

/// The paths of the embedded files (for tests).
pub fn paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.path)
}
