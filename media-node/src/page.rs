//! The pages the node serves: the visit page at `/visit/` (a clinician and patients in one
//! room) and the test page at `/call/` (one-way publish or subscribe). Static files
//! compiled into the binary (no CDN, nothing fetched at run time) under a
//! Content-Security-Policy that lets a page talk to this origin only. The join token is in
//! the URL fragment, never in a request line.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const HTML: &str = "text/html; charset=utf-8";
const SCRIPT: &str = "text/javascript; charset=utf-8";
const STYLE: &str = "text/css; charset=utf-8";
const WHIP: &str = include_str!("../web/whip.js");

/// Every file, by path: what the pages load and nothing else.
const FILES: &[(&str, &str, &str)] = &[
    ("/visit/", HTML, include_str!("../web/visit.html")),
    ("/visit/visit.js", SCRIPT, include_str!("../web/visit.js")),
    ("/visit/visit.css", STYLE, include_str!("../web/visit.css")),
    ("/visit/whip.js", SCRIPT, WHIP),
    ("/call/", HTML, include_str!("../web/index.html")),
    ("/call/call.js", SCRIPT, include_str!("../web/call.js")),
    ("/call/whip.js", SCRIPT, WHIP),
];

/// Scripts, styles and connections from this origin only; camera streams as blobs; no
/// framing, no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; media-src 'self' blob: mediastream:; img-src 'self'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Camera and microphone for this origin only; nothing else a page could ask for.
const PERMISSIONS_POLICY: &str =
    "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()";

/// The pages' routes (no authentication: the files hold nothing secret).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    FILES
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(path, get(move || async move { file(content_type, body) }))
        })
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                HeaderName::from_static("permissions-policy"),
                HeaderValue::from_static(PERMISSIONS_POLICY),
            ),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}
