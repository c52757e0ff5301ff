//! The call page the node serves at `/call/`: static files compiled into the binary (no
//! CDN, nothing fetched at run time) under a Content-Security-Policy that lets the page
//! talk to this origin only. The join token is in the URL fragment, never in a request.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../web/index.html");
const SCRIPT: &str = include_str!("../web/call.js");

/// Scripts and connections from this origin only; camera streams as blobs; no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; media-src 'self' blob: mediastream:; img-src 'self'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's routes (no authentication: the files hold nothing secret).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/call/",
            get(|| async { file("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/call/call.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}
