//! One WebRTC session of the SFU: who it is, what it publishes or receives, its timers.

use std::fmt;
use std::time::Instant;

use str0m::Rtc;
use str0m::media::{MediaKind, Mid, Rid};

/// Identifies a session for the life of the process; also the resource id of its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a join token lets its holder do in a room; recorded in every session log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Runs the room: may publish and may end other sessions of the room.
    Host,
    /// May publish and subscribe.
    Participant,
    /// May only subscribe.
    Observer,
}

impl Role {
    /// Whether this role may send media into a room.
    pub fn may_publish(self) -> bool {
        !matches!(self, Role::Observer)
    }

    /// The name used in tokens and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Host => "host",
            Role::Participant => "participant",
            Role::Observer => "observer",
        }
    }
}

/// Whether a session sends media into its room (WHIP) or receives from it (WHEP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// WHIP: the peer sends, the SFU receives.
    Publish,
    /// WHEP: the SFU sends, the peer receives.
    Subscribe,
}

/// Who a session belongs to, as the join token said; ids are opaque, never names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// Room the session is in.
    pub room: String,
    /// Opaque user id from the token's subject.
    pub user: String,
    /// Role from the token.
    pub role: Role,
    /// Publish (WHIP) or subscribe (WHEP).
    pub direction: Direction,
    /// Simulcast layer a subscriber prefers (`h`, `m`, `l` or any rid); highest when unset.
    pub layer: Option<String>,
}

/// Why a session ended; told to the client through its session resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The client deleted its session resource.
    ClientLeft,
    /// A host ended the session.
    Kicked,
    /// No media and no signaling for the idle timeout.
    IdleTimeout,
    /// The session reached the tenant's maximum session length.
    MaxSessionLength,
    /// ICE or DTLS lost the peer.
    Disconnected,
    /// The media node is shutting down.
    Shutdown,
    /// The WebRTC stack failed for this session.
    Failed,
}

impl EndReason {
    /// Stable name for logs, metrics and the session resource.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ClientLeft => "client-left",
            EndReason::Kicked => "ended-by-host",
            EndReason::IdleTimeout => "idle-timeout",
            EndReason::MaxSessionLength => "max-session-length",
            EndReason::Disconnected => "disconnected",
            EndReason::Shutdown => "shutdown",
            EndReason::Failed => "failed",
        }
    }
}

/// Identifies a published track across the SFU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TrackId(pub u64);

/// A track a publisher sends into its room.
#[derive(Debug)]
pub(crate) struct Track {
    pub owner: PeerId,
    pub mid: Mid,
    pub kind: MediaKind,
    /// Simulcast layers the publisher sends, empty without simulcast.
    pub rids: Vec<Rid>,
    pub last_keyframe_request: Option<Instant>,
}

/// One m-line of a subscriber, and the track it currently carries.
#[derive(Debug)]
pub(crate) struct Slot {
    pub mid: Mid,
    pub kind: MediaKind,
    pub source: Option<TrackId>,
    pub rid: Option<Rid>,
}

#[derive(Debug)]
pub(crate) struct Peer {
    pub info: PeerInfo,
    pub rtc: Rtc,
    pub created: Instant,
    /// Last media or signaling; drives the idle timeout.
    pub last_activity: Instant,
    /// When str0m next wants `Input::Timeout`.
    pub rtc_timeout: Instant,
    pub connected: bool,
    /// Tracks this peer publishes, by its m-line.
    pub tracks: Vec<(Mid, TrackId)>,
    /// M-lines this peer receives on.
    pub slots: Vec<Slot>,
}
