//! Join tokens on signaling requests: which validity a request needs, and the 401/403/503
//! it gets otherwise.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use crate::token::{Claims, TokenError};

/// How much of a token's validity a request needs.
#[derive(Clone, Copy)]
pub(super) enum Need<'a> {
    /// Everything, expiry included (new sessions, room state).
    Valid,
    /// The session opened with token `jti`: that token also after its expiry (a visit
    /// outlasts a token of minutes), any other checked as usual.
    Session(&'a str),
    /// Everything but expiry: routing a request on an existing session to its node,
    /// whose own check ([`Need::Session`]) decides.
    Routing,
}

/// Verifies the bearer token for `room`, or the refusal to send.
pub(super) fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
) -> Result<Claims, Refusal> {
    authorize_with(state, headers, room, Need::Valid)
}

/// As [`authorize`], for a request on the session opened with the token `jti`.
pub(super) fn authorize_session(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    jti: &str,
) -> Result<Claims, Refusal> {
    authorize_with(state, headers, room, Need::Session(jti))
}

pub(super) fn authorize_with(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    need: Need<'_>,
) -> Result<Claims, Refusal> {
    let Some(keys) = state.keys.get() else {
        return Err(Refusal::NotReady);
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(refuse(state, TokenError::Missing, room));
    };
    let verifier = keys.verifier();
    let result = match (verifier.verify(token, room), need) {
        (Err(TokenError::Expired), Need::Session(jti)) => {
            verifier.verify_for_session(token, room, jti)
        }
        (Err(TokenError::Expired), Need::Routing) => verifier.verify_ignoring_expiry(token, room),
        (result, _) => result,
    };
    result.map_err(|e| refuse(state, e, room))
}

/// Logs and counts a refused token (by reason, never the token) and makes the 401/403.
pub(super) fn refuse(state: &AppState, err: TokenError, room: &str) -> Refusal {
    state.metrics.auth_failure(err.reason());
    crate::session_log::refused(err.reason(), room);
    Refusal::Token(err)
}

/// Why a request on a session or endpoint was refused before it reached the SFU.
pub(super) enum Refusal {
    /// Keys are not loaded yet.
    NotReady,
    /// The token was refused (already logged and counted).
    Token(TokenError),
    /// No such session in this room.
    NoSession,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "keys are not loaded yet",
            )
                .into_response(),
            Refusal::NoSession => (StatusCode::NOT_FOUND, "no such session").into_response(),
            Refusal::Token(err) => {
                let (status, code) = if err.is_scope() {
                    (StatusCode::FORBIDDEN, "insufficient_scope")
                } else {
                    (StatusCode::UNAUTHORIZED, "invalid_token")
                };
                let challenge = if err == TokenError::Missing {
                    "Bearer realm=\"sanctum\"".to_string()
                } else {
                    format!(
                        "Bearer realm=\"sanctum\", error=\"{code}\", error_description=\"{err}\""
                    )
                };
                (
                    status,
                    [(header::WWW_AUTHENTICATE, challenge)],
                    err.to_string(),
                )
                    .into_response()
            }
        }
    }
}
