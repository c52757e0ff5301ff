//! Room placement on the signaling path: a request for a room reaches the node hosting it.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::MAX_BODY;
use super::auth::{Need, authorize_with};
use crate::placement::rank::{Answer, Target};
use crate::placement::{FORWARDED, PlacementReport};
use crate::state::AppState;
use crate::token::is_opaque_id;

/// What this node says about `room` when asked where it lives.
pub(super) fn local_answer(state: &AppState, room: &str) -> Answer {
    if state.media.sessions.in_room(room) > 0 {
        Answer::Hosting
    } else if state.draining.load(Ordering::Relaxed) {
        Answer::Draining
    } else {
        Answer::Free
    }
}

/// The room a WHIP/WHEP path names.
fn room_of(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/whip/")
        .or_else(|| path.strip_prefix("/whep/"))?;
    let room = rest.split('/').next()?;
    is_opaque_id(room).then_some(room)
}

/// Sends a request for a room to the node hosting it (or the node that should create it).
/// A request another node forwarded, a preflight, and one without a valid token for the
/// room are handled here: the token is checked before any other node is asked, so a bad
/// request costs the region nothing.
pub(super) async fn place(
    State(state): State<AppState>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let Some(placement) = state.placement.clone() else {
        return next.run(request).await;
    };
    if request.method() == Method::OPTIONS || request.headers().contains_key(FORWARDED) {
        return next.run(request).await;
    }
    let Some(room) = room_of(request.uri().path()).map(str::to_string) else {
        return next.run(request).await;
    };
    // A request on an existing session (PATCH, GET, DELETE of its resource): its token may
    // have expired since; the node holding the session checks it against the session.
    let resource = request.uri().path().split('/').nth(3).map(str::to_string);
    if let Some(resource) = &resource
        && state.media.sessions.get(resource).is_some()
    {
        return next.run(request).await;
    }
    let need = if resource.is_some() {
        Need::Routing
    } else {
        Need::Valid
    };
    if let Err(refusal) = authorize_with(&state, request.headers(), &room, need) {
        return refusal.into_response();
    }
    let Some(token) = request.headers().get(header::AUTHORIZATION).cloned() else {
        return next.run(request).await;
    };
    match placement
        .route(&room, &token, local_answer(&state, &room))
        .await
    {
        Target::Here => next.run(request).await,
        Target::There(node) => placement.forward(node, request, MAX_BODY).await,
        Target::Nowhere => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "no media node of this region takes new rooms now; retry",
        )
            .into_response(),
    }
}

/// `GET /rooms/{room}/placement`: whether this node hosts `room`, for another node of the
/// region asking with the client's token.
pub(super) async fn placement_report(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !is_opaque_id(&room) {
        return (StatusCode::BAD_REQUEST, "room is 1-64 URL-safe characters").into_response();
    }
    // Whether a node hosts a room is asked for requests on sessions too, whose tokens may
    // have expired; it tells nothing else.
    if let Err(refusal) = authorize_with(&state, &headers, &room, Need::Routing) {
        return refusal.into_response();
    }
    let answer = local_answer(&state, &room);
    axum::Json(PlacementReport {
        hosting: answer == Answer::Hosting,
        draining: state.draining.load(Ordering::Relaxed),
    })
    .into_response()
}
