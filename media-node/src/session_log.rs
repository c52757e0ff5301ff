//! The session log: one structured line per join, publish, unpublish, subscribe, leave,
//! recording start and stop (target [`SESSION`]) and per refused request (target
//! [`AUTH`]). [`crate::audit`] turns these lines into the node's audit chain.
//!
//! Only opaque ids reach it (session, room, user, recording), never a token, an SDP, an
//! address or a key. A leaf: it imports nothing of this crate.

use sanctum_media_core::{Direction, PeerInfo};

/// Log target of the session events.
pub const SESSION: &str = "sanctum::session";
/// Log target of refused requests.
pub const AUTH: &str = "sanctum::auth";

/// One session event.
pub fn session(event: &'static str, session: &str, info: &PeerInfo, detail: Option<&str>) {
    tracing::info!(
        target: SESSION,
        event,
        session,
        room = %info.room,
        user = %info.user,
        role = info.role.as_str(),
        direction = match info.direction {
            Direction::Publish => "publish",
            Direction::Subscribe => "subscribe",
        },
        detail = detail.unwrap_or(""),
        "session"
    );
}

/// A recording start or stop.
pub fn recording(event: &'static str, recording: &str, room: &str) {
    tracing::info!(target: SESSION, event, recording, room, "session");
}

/// A request refused for `reason` (a stable label, never the token).
pub fn refused(reason: &'static str, room: &str) {
    tracing::warn!(target: AUTH, reason, room, "request refused");
}
