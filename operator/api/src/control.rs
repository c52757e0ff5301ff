//! The media node's control API, spoken by the operator: recording start, state, stop.
//!
//! Every request carries `Authorization: Bearer <JWT>` signed with the tenant's control key
//! (Ed25519, `EdDSA`), which only the operator holds — not the join-token key the tenant's
//! application holds, so an application cannot start a recording behind the consent check.
//! The token is bound to one request by `htm` (method), `htu` (path), `bsh` (the body's
//! SHA-256) and `sub` (the node's pod name), carries a `jti` the node accepts once, lives
//! at most [`MAX_LIFETIME_SECONDS`], and names the tenant in `aud` as [`audience`] spells
//! it. The requests travel over mutual TLS on the node's control port (the operator's
//! client certificate and the node's server certificate both issued by the tenant's
//! control CA), which only the operator's namespace may reach. Minting and verifying:
//! the `sanctum-control` crate.

use serde::{Deserialize, Serialize};

/// Issuer of control tokens.
pub const ISSUER: &str = "sanctum-operator";
/// Longest accepted control-token lifetime.
pub const MAX_LIFETIME_SECONDS: u64 = 30;
/// Name the media nodes' control certificate is issued for and checked against (nodes are
/// reached by pod address, which no certificate names).
pub fn server_name(tenant: &str) -> String {
    format!("control.{tenant}.sanctum.internal")
}
/// Secret (in the tenant namespace) with the media nodes' control certificate: `ca.crt`,
/// `tls.crt`, `tls.key`.
pub const NODE_TLS_SECRET: &str = "media-control-tls";
/// Port of the control API on a media node (separate from signaling).
pub const PORT: u16 = 9443;
/// ConfigMap key (in the join-token public key ConfigMap) of the control public key.
pub const PUBLIC_KEY_FILE: &str = "control.pem";
/// Path prefix of the recording resources.
pub const RECORDINGS_PATH: &str = "/control/v1/recordings";

/// `aud` of a control token for `tenant`; distinct from join tokens' audience (the bare
/// tenant name), so neither kind of token is accepted as the other.
pub fn audience(tenant: &str) -> String {
    format!("sanctum-control:{tenant}")
}

/// Path of one recording resource.
pub fn recording_path(id: &str) -> String {
    format!("{RECORDINGS_PATH}/{id}")
}

/// Path that stops a recording.
pub fn stop_path(id: &str) -> String {
    format!("{RECORDINGS_PATH}/{id}/stop")
}

/// Claims of a control token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlClaims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// [`audience`] of the tenant.
    pub aud: String,
    /// The media node (pod name) the token is for.
    pub sub: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Unique id; a node accepts each once.
    pub jti: String,
    /// HTTP method the token is for.
    pub htm: String,
    /// Request path the token is for.
    pub htu: String,
    /// Hex SHA-256 of the request body (of the empty body when there is none).
    pub bsh: String,
}

/// Body of `PUT /control/v1/recordings/{id}`: record `room` into `bucket`/`key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRecording {
    /// Room to record (opaque id).
    pub room: String,
    /// Tenant bucket.
    pub bucket: String,
    /// Object key of the sealed recording.
    pub key: String,
    /// Record only once the room's host confirms the patient's consent on the visit page
    /// (the tenant's `spec.recording.hostConfirms`); until then the node reports
    /// [`NodePhase::AwaitingHost`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub await_host: bool,
}

/// The `reason` a node reports for a recording its room's host declined.
pub const HOST_DECLINED: &str = "host-declined";

/// Phase of a recording on the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodePhase {
    /// Asked for with `awaitHost`: nothing is recorded until the room's host confirms.
    AwaitingHost,
    /// Frames are being written.
    Recording,
    /// Stopped; the container is being closed and the upload completed.
    Finalizing,
    /// The object is complete.
    Sealed,
    /// The recording failed; the upload was aborted.
    Failed,
}

/// What the node reports about one recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingReport {
    /// Phase.
    pub phase: NodePhase,
    /// Room.
    pub room: String,
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Multipart upload id while uploading (to abort it if the node is lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// Version of the tenant key that wrapped the data key.
    pub key_version: i32,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// Frames recorded.
    pub frames: u64,
    /// Frames not recorded (late tracks, unsupported codecs, overflow).
    pub skipped: u64,
    /// Object version, once sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Bytes stored, once sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Hex SHA-256 of the stored bytes, once sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RecordingReport {
    /// The report of `req` as it begins in `phase`: nothing written yet.
    pub fn begun(
        phase: NodePhase,
        req: &StartRecording,
        key_version: i32,
        started_at: String,
    ) -> Self {
        Self {
            phase,
            room: req.room.clone(),
            bucket: req.bucket.clone(),
            key: req.key.clone(),
            upload_id: None,
            key_version,
            started_at,
            ended_at: None,
            frames: 0,
            skipped: 0,
            version_id: None,
            size_bytes: None,
            sha256: None,
            reason: None,
        }
    }
}
