//! The control API the operator calls: `PUT /control/v1/recordings/{id}` starts recording a
//! room, `GET` reports, `POST …/{id}/stop` stops and seals. Served on its own port over
//! mutual TLS (server.rs), never on the signaling port. Requests carry a control token
//! ([`sanctum_control`]) signed with the tenant's control key and bound to the request, its
//! body and this node; join tokens are refused.
//!
//! A start with `awaitHost` is held ([`crate::recording::consent`]) and answered `202`
//! with phase `awaitingHost` until the room's host confirms on the visit page.
//!
//! Answers: 401 for a missing, forged, expired, wrong-audience or replayed token; 403 for a
//! token made for another method, path, body or node; 404 for an unknown recording or a
//! room with no publisher on this node; 409 when the id exists with other parameters; 503
//! before keys are loaded.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use sanctum_api::control::{self, NodePhase, StartRecording};
use sanctum_control::AuthError;
use serde_json::json;

use crate::recording::StartError;
use crate::state::AppState;
use crate::token::is_opaque_id;

/// The control routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            &format!("{}/{{id}}", control::RECORDINGS_PATH),
            put(start).get(get_report),
        )
        .route(
            &format!("{}/{{id}}/stop", control::RECORDINGS_PATH),
            post(stop),
        )
        .layer(DefaultBodyLimit::max(16 * 1024))
        .with_state(state)
}

fn problem(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

/// Checks the token (for this request, its body and this node) and the id; `Err` is the
/// response to send.
fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &[u8],
    id: &str,
) -> Result<(), Box<Response>> {
    let Some(keys) = state.keys.get() else {
        return Err(Box::new(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "keys-not-loaded",
        )));
    };
    let Some(verifier) = keys.control.as_ref() else {
        return Err(Box::new(problem(
            StatusCode::NOT_FOUND,
            "control-api-not-configured",
        )));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let result = match token {
        None => Err(AuthError::Missing),
        Some(t) => verifier.verify(t, method.as_str(), uri.path(), body),
    };
    if let Err(e) = result {
        state.metrics.auth_failure(e.reason());
        tracing::warn!(reason = e.reason(), "control request refused");
        let status = match e {
            AuthError::WrongRequest => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        let mut response = problem(status, e.reason());
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"sanctum-control\""),
        );
        return Err(Box::new(response));
    }
    if !is_opaque_id(id) {
        return Err(Box::new(problem(
            StatusCode::BAD_REQUEST,
            "bad-recording-id",
        )));
    }
    Ok(())
}

async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &method, &uri, &body, &id) {
        return *r;
    }
    let Ok(req) = serde_json::from_slice::<StartRecording>(&body) else {
        return problem(StatusCode::BAD_REQUEST, "bad-body");
    };
    if !is_opaque_id(&req.room) || req.bucket.is_empty() || req.key.is_empty() {
        return problem(StatusCode::BAD_REQUEST, "bad-body");
    }
    if let Some(existing) = state.recorders.report(&id) {
        // Idempotent: the same request again reports; other parameters conflict.
        if existing.room == req.room && existing.bucket == req.bucket && existing.key == req.key {
            return (StatusCode::OK, Json(existing)).into_response();
        }
        return problem(StatusCode::CONFLICT, "recording-exists");
    }
    if !state.media.has_publisher(&req.room).await {
        return problem(StatusCode::NOT_FOUND, "room-not-here");
    }
    if req.await_host {
        // Held until the room's host confirms on the visit page (signaling.rs).
        let now = std::time::Instant::now();
        let at = jiff::Timestamp::now().to_string();
        return match state.consent.ask(&id, &req, now, &at) {
            Ok(report) if report.phase == NodePhase::AwaitingHost => {
                (StatusCode::ACCEPTED, Json(report)).into_response()
            }
            Ok(report) => (StatusCode::OK, Json(report)).into_response(),
            Err(_) => problem(StatusCode::CONFLICT, "recording-exists"),
        };
    }
    match state.start_recording(&id, &req).await {
        Ok((report, created)) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(report)).into_response()
        }
        Err(StartError::Conflict(_)) => problem(StatusCode::CONFLICT, "recording-exists"),
        Err(StartError::NotReady) => problem(StatusCode::SERVICE_UNAVAILABLE, "not-ready"),
    }
}

async fn get_report(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &method, &uri, b"", &id) {
        return *r;
    }
    let report = state
        .recorders
        .report(&id)
        .or_else(|| state.consent.report(&id, std::time::Instant::now()));
    match report {
        Some(report) => Json(report).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no-such-recording"),
    }
}

async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &method, &uri, b"", &id) {
        return *r;
    }
    let recorders = state.recorders.clone();
    let id2 = id.clone();
    // `stop` may block briefly on a full queue: keep it off the async workers.
    let stopped = tokio::task::spawn_blocking(move || recorders.stop(&id2))
        .await
        .ok()
        .flatten();
    match stopped {
        Some(report) => (StatusCode::ACCEPTED, Json(report)).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no-such-recording"),
    }
}
