//! A host's consent to the recordings of its room that wait for it, and what the room's
//! sessions are told about recording.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sanctum_media_core::{Direction, Role};
use serde::Deserialize;

use super::auth::refuse;
use super::{SessionPath, session};
use crate::recording::consent::{Decision, RoomRecording};
use crate::state::AppState;
use crate::token::TokenError;

/// Whether `room` is recorded, waits for its host, or neither.
pub(super) fn room_recording(state: &AppState, room: &str) -> RoomRecording {
    if state.recorders.rooms().iter().any(|r| r == room) {
        RoomRecording::On
    } else if state.consent.waits(room, std::time::Instant::now()) {
        RoomRecording::AwaitingHost
    } else {
        RoomRecording::Off
    }
}

#[derive(Deserialize)]
struct ConsentBody {
    decision: ConsentDecision,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ConsentDecision {
    Granted,
    Declined,
}

/// A host's answer to the recordings of the room that wait for it: granted starts them,
/// declined fails them. Only on the host's own live publishing session.
pub(super) async fn whip_consent(
    State(state): State<AppState>,
    Path((room, resource)): SessionPath,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (record, claims) = match session(
        &state,
        &room,
        &resource,
        &headers,
        Direction::Publish,
        false,
    ) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if Role::from(claims.role) != Role::Host {
        return refuse(&state, TokenError::Forbidden, &room).into_response();
    }
    if record.ended.is_some() {
        return (StatusCode::NOT_FOUND, "the session has ended").into_response();
    }
    let Ok(answer) = serde_json::from_slice::<ConsentBody>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            r#"send {"decision": "granted"} or {"decision": "declined"}"#,
        )
            .into_response();
    };
    let decision = match answer.decision {
        ConsentDecision::Granted => Decision::Granted,
        ConsentDecision::Declined => Decision::Declined,
    };
    let Some(start) = state
        .consent
        .decide(&room, decision, std::time::Instant::now())
    else {
        return (
            StatusCode::CONFLICT,
            "no recording of this room waits for a host",
        )
            .into_response();
    };
    let detail = match decision {
        Decision::Granted => "granted",
        Decision::Declined => "declined",
    };
    crate::session_log::session("record-consent", &resource, &record.info, Some(detail));
    for (id, req) in start {
        if let Err(e) = state.start_recording(&id, &req).await {
            tracing::warn!(error = %e, "a confirmed recording did not start");
        }
    }
    let recording = room_recording(&state, &room).as_str();
    axum::Json(serde_json::json!({ "recording": recording })).into_response()
}
