//! The control API the operator calls: `PUT /control/v1/recordings/{id}` starts recording a
//! room, `GET` reports, `POST …/{id}/stop` stops and seals. Requests carry a control token
//! ([`sanctum_api::control`]) signed with the tenant's control key; join tokens are refused.
//!
//! Answers: 401 for a missing, forged, expired or wrong-audience token; 403 for a token made
//! for another method or path; 404 for an unknown recording or a room with no publisher on
//! this node; 409 when the id exists with other parameters; 503 before keys are loaded.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sanctum_api::control::{self, ControlClaims, StartRecording};
use serde_json::json;

use crate::recording::StartError;
use crate::signaling::AppState;
use crate::token::{LEEWAY_SECONDS, is_opaque_id, unix_now};

/// Checks control tokens for one tenant.
pub struct ControlVerifier {
    key: DecodingKey,
    audience: String,
}

/// Why a control request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlAuthError {
    /// No bearer token.
    #[error("no bearer token")]
    Missing,
    /// Not a valid control token for this tenant (signature, audience, times, lifetime).
    #[error("invalid control token")]
    Invalid,
    /// A valid token made for another request.
    #[error("the control token is for another request")]
    WrongRequest,
}

impl ControlAuthError {
    /// Label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            ControlAuthError::Missing => "control-missing",
            ControlAuthError::Invalid => "control-invalid",
            ControlAuthError::WrongRequest => "control-wrong-request",
        }
    }
}

impl ControlVerifier {
    /// A verifier from the control public key (SPKI PEM) the operator publishes.
    pub fn from_public_pem(pem: &[u8], tenant: &str) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(ControlVerifier {
            key: DecodingKey::from_ed_pem(pem)?,
            audience: control::audience(tenant),
        })
    }

    /// Verifies a token for `method` on `path`.
    pub fn verify(
        &self,
        token: &str,
        method: &Method,
        path: &str,
    ) -> Result<ControlClaims, ControlAuthError> {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[control::ISSUER]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = LEEWAY_SECONDS;
        let claims =
            jsonwebtoken::decode::<ControlClaims>(token.as_bytes(), &self.key, &validation)
                .map_err(|_| ControlAuthError::Invalid)?
                .claims;
        if claims.iat > unix_now() + LEEWAY_SECONDS
            || claims.exp.saturating_sub(claims.iat) > control::MAX_LIFETIME_SECONDS
        {
            return Err(ControlAuthError::Invalid);
        }
        if claims.htm != method.as_str() || claims.htu != path {
            return Err(ControlAuthError::WrongRequest);
        }
        Ok(claims)
    }
}

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

/// Checks the token and the id; `Err` is the response to send.
fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
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
        None => Err(ControlAuthError::Missing),
        Some(t) => verifier.verify(t, method, uri.path()),
    };
    if let Err(e) = result {
        state.metrics.auth_failure(e.reason());
        tracing::warn!(reason = e.reason(), "control request refused");
        let status = match e {
            ControlAuthError::WrongRequest => StatusCode::FORBIDDEN,
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
    if let Err(r) = authorize(&state, &headers, &method, &uri, &id) {
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
    let keys = state.keys.get().expect("checked in authorize");
    match state
        .recorders
        .start(&id, &req, keys.tenant_key.clone(), keys.key_version)
    {
        Ok((report, created)) => {
            state.media.record(&req.room).await;
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
    if let Err(r) = authorize(&state, &headers, &method, &uri, &id) {
        return *r;
    }
    match state.recorders.report(&id) {
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
    if let Err(r) = authorize(&state, &headers, &method, &uri, &id) {
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

/// Mints a control token (the operator's side, and tests).
pub fn mint(
    private_pem: &[u8],
    tenant: &str,
    method: &str,
    path: &str,
    ttl: Duration,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = unix_now();
    let claims = ControlClaims {
        iss: control::ISSUER.to_string(),
        aud: control::audience(tenant),
        iat: now,
        exp: now + ttl.as_secs(),
        htm: method.to_string(),
        htu: path.to_string(),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::EdDSA),
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_pem(private_pem)?,
    )
}
