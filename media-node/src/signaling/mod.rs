//! WHIP (RFC 9725) and WHEP signaling: offers in, answers out, session resources for
//! trickle ICE and teardown; every request carries a join token.
//!
//! `POST /whip/{room}` publishes, `POST /whep/{room}` subscribes (`?layer=` picks a
//! simulcast layer), and `/wh{i,e}p/{room}/{session}` takes `PATCH` (trickle ICE),
//! `DELETE` (leave) and `GET` (state, the room's recording state and, once ended, why).
//! `POST /whip/{room}/{session}/consent` is a host's answer, on the host's own publishing
//! session, to a recording of the room that waits for it ([`crate::recording::consent`]).

mod auth;
mod consent;
mod place;

use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use sanctum_media_core::str0m::Candidate;
use sanctum_media_core::{Direction, EndReason, PeerInfo, Role};
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::media::TokenRef;
use crate::media::{MediaError, SessionRecord};
use crate::placement::rank::Answer;
use crate::state::AppState;
use crate::token::{Claims, TokenError, is_opaque_id};
use auth::{Refusal, authorize, authorize_session, refuse};
use consent::{room_recording, whip_consent};
use place::{local_answer, place, placement_report};

const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
const ACCEPT_PATCH: HeaderName = HeaderName::from_static("accept-patch");
const ACCEPT_POST: HeaderName = HeaderName::from_static("accept-post");
/// Largest offer or candidate fragment accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The signaling routes; `cors_origins` lists web origins allowed to call them.
pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let router = Router::new()
        .route("/whip/{room}", post(whip_offer).options(endpoint_options))
        .route("/whep/{room}", post(whep_offer).options(endpoint_options))
        .route(
            "/whip/{room}/{session}",
            axum::routing::patch(whip_patch)
                .delete(whip_delete)
                .get(whip_get),
        )
        .route("/whip/{room}/{session}/consent", post(whip_consent))
        .route(
            "/whep/{room}/{session}",
            axum::routing::patch(whep_patch)
                .delete(whep_delete)
                .get(whep_get),
        )
        // Every request for a room reaches the node hosting the room (placement/).
        .layer(axum::middleware::from_fn_with_state(state.clone(), place))
        .route(
            "/rooms/{room}/placement",
            axum::routing::get(placement_report),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    if cors_origins.is_empty() {
        return router;
    }
    let origins: Vec<HeaderValue> = cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    router.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::POST,
                Method::PATCH,
                Method::DELETE,
                Method::GET,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
            ])
            .expose_headers([header::LOCATION, header::ETAG, ACCEPT_PATCH, header::LINK]),
    )
}

#[derive(Deserialize)]
struct OfferQuery {
    layer: Option<String>,
}

async fn whip_offer(
    state: State<AppState>,
    room: Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    offer(state, room, None, headers, body, Direction::Publish).await
}

async fn whep_offer(
    state: State<AppState>,
    room: Path<String>,
    Query(q): Query<OfferQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    offer(state, room, q.layer, headers, body, Direction::Subscribe).await
}

async fn endpoint_options() -> Response {
    (StatusCode::NO_CONTENT, [(ACCEPT_POST, SDP)]).into_response()
}

async fn offer(
    State(state): State<AppState>,
    Path(room): Path<String>,
    layer: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    direction: Direction,
) -> Response {
    // A draining node finishes its rooms: joiners of a room it hosts still get in.
    if state.draining.load(Ordering::Relaxed) && local_answer(&state, &room) != Answer::Hosting {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "this media node is draining; retry on another",
        )
            .into_response();
    }
    if !is_opaque_id(&room) || layer.as_deref().is_some_and(|l| !is_opaque_id(l)) {
        return (
            StatusCode::BAD_REQUEST,
            "room and layer are 1-64 URL-safe characters",
        )
            .into_response();
    }
    let claims = match authorize(&state, &headers, &room) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    // A revoked token opens no session; the sessions it had can still be read and left.
    if state.revoked.is_revoked(&claims.jti) {
        return refuse(&state, TokenError::Revoked, &room).into_response();
    }
    let role = Role::from(claims.role);
    if direction == Direction::Publish && !role.may_publish() {
        return refuse(&state, TokenError::Forbidden, &room).into_response();
    }
    if !content_type_is(&headers, SDP) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the offer as application/sdp",
        )
            .into_response();
    }
    let Ok(offer) = String::from_utf8(body.to_vec()) else {
        return (StatusCode::BAD_REQUEST, "the offer is not UTF-8").into_response();
    };
    if let Some(full) = over_limit(&state, &room, &claims.jti) {
        return full;
    }
    let token = TokenRef {
        jti: claims.jti,
        exp: claims.exp,
    };
    let info = PeerInfo {
        room: room.clone(),
        user: claims.sub,
        role,
        direction,
        layer,
    };
    match state.media.accept(info, token, offer).await {
        Ok((resource, record, answer)) => {
            let location = format!("/{}/{room}/{resource}", path_kind(direction));
            let mut response = (
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, SDP.to_string()),
                    (header::LOCATION, location),
                    (header::ETAG, record.etag),
                    (ACCEPT_PATCH, SDPFRAG.to_string()),
                ],
                answer,
            )
                .into_response();
            if let Some(turn) = &state.turn {
                // RFC 9725 §4.6: the ICE servers the client may use, with a credential of
                // its own. Without it the client still has UDP and ICE-TCP.
                match turn.link_headers(std::time::SystemTime::now()) {
                    Ok(links) => {
                        for link in links {
                            response.headers_mut().append(header::LINK, link);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "no TURN credential for a new session"),
                }
            }
            response
        }
        Err(MediaError::Offer(e)) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        Err(MediaError::Stopped) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the media engine is stopping",
        )
            .into_response(),
    }
}

/// The refusal when a new session would pass a cap: the node's (503, try another node),
/// the room's (503) or the token's (429).
fn over_limit(state: &AppState, room: &str, jti: &str) -> Option<Response> {
    let limits = state.limits;
    let node = state.media.sessions.live();
    let (in_room, with_token) = (
        state.media.sessions.in_room(room),
        state.media.sessions.with_token(jti),
    );
    let (status, reason, text) = if node >= limits.node {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "node-full",
            "this media node is full; retry on another",
        )
    } else if in_room >= limits.room {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "room-full",
            "the room is full",
        )
    } else if with_token >= limits.token {
        (
            StatusCode::TOO_MANY_REQUESTS,
            "token-sessions",
            "this token has opened as many sessions as it may",
        )
    } else {
        return None;
    };
    state.metrics.auth_failure(reason);
    crate::session_log::refused(reason, room);
    Some((status, [(header::RETRY_AFTER, "5")], text).into_response())
}

fn path_kind(direction: Direction) -> &'static str {
    match direction {
        Direction::Publish => "whip",
        Direction::Subscribe => "whep",
    }
}

type SessionPath = Path<(String, String)>;

async fn whip_patch(s: State<AppState>, p: SessionPath, h: HeaderMap, b: Bytes) -> Response {
    patch(s, p, h, b, Direction::Publish).await
}
async fn whep_patch(s: State<AppState>, p: SessionPath, h: HeaderMap, b: Bytes) -> Response {
    patch(s, p, h, b, Direction::Subscribe).await
}
async fn whip_delete(s: State<AppState>, p: SessionPath, h: HeaderMap) -> Response {
    delete(s, p, h, Direction::Publish).await
}
async fn whep_delete(s: State<AppState>, p: SessionPath, h: HeaderMap) -> Response {
    delete(s, p, h, Direction::Subscribe).await
}
async fn whip_get(s: State<AppState>, p: SessionPath, h: HeaderMap) -> Response {
    get(s, p, h, Direction::Publish).await
}
async fn whep_get(s: State<AppState>, p: SessionPath, h: HeaderMap) -> Response {
    get(s, p, h, Direction::Subscribe).await
}

/// Finds the session and checks the token belongs to its user (or, if `host_may`, a host
/// of its room).
fn session(
    state: &AppState,
    room: &str,
    resource: &str,
    headers: &HeaderMap,
    direction: Direction,
    host_may: bool,
) -> Result<(SessionRecord, Claims), Refusal> {
    if !is_opaque_id(room) {
        return Err(Refusal::NoSession);
    }
    let Some(record) = state.media.sessions.get(resource) else {
        // A bad token is refused as such even for a resource that does not exist.
        authorize(state, headers, room)?;
        return Err(Refusal::NoSession);
    };
    let claims = authorize_session(state, headers, room, &record.token.jti)?;
    if record.info.room != room || record.info.direction != direction {
        return Err(Refusal::NoSession);
    }
    let own = record.info.user == claims.sub;
    let host = host_may && Role::from(claims.role) == Role::Host;
    if !own && !host {
        return Err(refuse(state, TokenError::Forbidden, room));
    }
    Ok((record, claims))
}

async fn delete(
    State(state): State<AppState>,
    Path((room, resource)): SessionPath,
    headers: HeaderMap,
    direction: Direction,
) -> Response {
    let (record, claims) = match session(&state, &room, &resource, &headers, direction, true) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if record.ended.is_some() {
        return (StatusCode::NOT_FOUND, "the session has ended").into_response();
    }
    let reason = if claims.sub == record.info.user {
        EndReason::ClientLeft
    } else {
        // Removed by a host: the token it joined with cannot open a session again.
        state.revoked.revoke(&record.token.jti, record.token.exp);
        EndReason::Kicked
    };
    state.media.end(record.peer, reason).await;
    StatusCode::OK.into_response()
}

async fn get(
    State(state): State<AppState>,
    Path((room, resource)): SessionPath,
    headers: HeaderMap,
    direction: Direction,
) -> Response {
    let (record, _) = match session(&state, &room, &resource, &headers, direction, false) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    // Asking is not activity: a page that polls its state still idles out.
    let body = match record.ended {
        None => {
            // Everyone in a room may know it is being recorded, or asked to be.
            let recording = room_recording(&state, &room).as_str();
            serde_json::json!({ "state": "live", "recording": recording })
        }
        Some((reason, _)) => serde_json::json!({ "state": "ended", "reason": reason.as_str() }),
    };
    axum::Json(body).into_response()
}

async fn patch(
    State(state): State<AppState>,
    Path((room, resource)): SessionPath,
    headers: HeaderMap,
    body: Bytes,
    direction: Direction,
) -> Response {
    let (record, _) = match session(&state, &room, &resource, &headers, direction, false) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if record.ended.is_some() {
        return (StatusCode::NOT_FOUND, "the session has ended").into_response();
    }
    if !content_type_is(&headers, SDPFRAG) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/trickle-ice-sdpfrag",
        )
            .into_response();
    }
    let Some(if_match) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return (
            StatusCode::PRECONDITION_REQUIRED,
            "send If-Match with the session's ETag",
        )
            .into_response();
    };
    if if_match.trim() == "*" {
        // RFC 9725 §4.3.1: a session that trickles but cannot restart ICE answers 422.
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "ICE restarts are not supported; start a new session",
        )
            .into_response();
    }
    if if_match.trim() != record.etag {
        return (
            StatusCode::PRECONDITION_FAILED,
            "the ICE session has changed",
        )
            .into_response();
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return (StatusCode::BAD_REQUEST, "the fragment is not UTF-8").into_response();
    };
    let candidates = match parse_sdpfrag(text) {
        Ok(c) => c,
        Err(line) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("bad candidate on line {line}"),
            )
                .into_response();
        }
    };
    state.media.add_candidates(record.peer, candidates).await;
    StatusCode::NO_CONTENT.into_response()
}

/// The `a=candidate:` lines of a trickle-ice-sdpfrag (RFC 8840); other lines are ignored.
/// On error, the 1-based number of the offending line.
pub fn parse_sdpfrag(text: &str) -> Result<Vec<Candidate>, usize> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix("a=candidate:") {
            let candidate =
                Candidate::from_sdp_string(&format!("candidate:{c}")).map_err(|_| n + 1)?;
            out.push(candidate);
        }
    }
    Ok(out)
}

fn content_type_is(headers: &HeaderMap, want: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdpfrag_candidates_parse_and_bad_lines_are_located() {
        let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef01234567\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\na=end-of-candidates\r\n";
        let c = parse_sdpfrag(frag).expect("parses");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].addr().port(), 50000);
        assert_eq!(parse_sdpfrag("a=candidate:garbage\r\n").err(), Some(1));
    }
}
