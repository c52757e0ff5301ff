//! Environment variables the operator sets on the pods it makes and the media node (or
//! `sanctum backup`) reads: one spelling for both sides. The AWS settings are
//! `sanctum_cloud::args`'s.

/// Tenant the node serves (join-token audience, KMS encryption context).
pub const TENANT: &str = "SANCTUM_TENANT";
/// The tenant's `metadata.uid` (KMS encryption context).
pub const TENANT_UID: &str = "SANCTUM_TENANT_UID";
/// Region label of the node.
pub const REGION: &str = "SANCTUM_REGION";
/// DNS name of the region's headless Service (room placement).
pub const PEERS_DNS: &str = "SANCTUM_PEERS_DNS";
/// Pod name (the node's control identity and audit chain name).
pub const POD_NAME: &str = "POD_NAME";
/// Pod IP (the advertised media address when none is given).
pub const POD_IP: &str = "POD_IP";
/// WHIP/WHEP listen address.
pub const SIGNALING_ADDR: &str = "SANCTUM_SIGNALING_ADDR";
/// UDP media address.
pub const MEDIA_UDP_ADDR: &str = "SANCTUM_MEDIA_UDP_ADDR";
/// Address offered as the UDP ICE candidate (default: the pod IP and the UDP port).
pub const MEDIA_ADVERTISE_ADDR: &str = "SANCTUM_MEDIA_ADVERTISE_ADDR";
/// Address offered as the ICE-TCP candidate.
pub const MEDIA_TCP_ADVERTISE_ADDR: &str = "SANCTUM_MEDIA_TCP_ADVERTISE_ADDR";
/// ICE-TCP listen address (the passive candidate).
pub const MEDIA_TCP_ADDR: &str = "SANCTUM_MEDIA_TCP_ADDR";
/// TURN URIs handed to clients (comma-separated).
pub const TURN_URLS: &str = "SANCTUM_TURN_URLS";
/// File with the secret shared with the TURN service.
pub const TURN_SECRET_FILE: &str = "SANCTUM_TURN_SECRET_FILE";
/// Health and metrics address.
pub const METRICS_ADDR: &str = "SANCTUM_METRICS_ADDR";
/// Signaling TLS certificate file.
pub const TLS_CERT_FILE: &str = "SANCTUM_TLS_CERT_FILE";
/// Signaling TLS key file.
pub const TLS_KEY_FILE: &str = "SANCTUM_TLS_KEY_FILE";
/// Control API listen address.
pub const CONTROL_ADDR: &str = "SANCTUM_CONTROL_ADDR";
/// Directory of the control API's certificates.
pub const CONTROL_TLS_DIR: &str = "SANCTUM_CONTROL_TLS_DIR";
/// The operator's control public key file.
pub const CONTROL_PUBLIC_KEY: &str = "SANCTUM_CONTROL_PUBLIC_KEY";
/// The join-token public key file.
pub const JOIN_TOKEN_PUBLIC_KEY: &str = "SANCTUM_JOIN_TOKEN_PUBLIC_KEY";
/// Key provider (`aws` or `local`).
pub const KEY_PROVIDER: &str = "SANCTUM_KEY_PROVIDER";
/// The wrapped tenant data key file.
pub const TENANT_KEY_FILE: &str = "SANCTUM_TENANT_KEY_FILE";
/// Directory of the wrapped tenant data key's versions (`v1`, `v2`, ...).
pub const TENANT_KEY_DIR: &str = "SANCTUM_TENANT_KEY_DIR";
/// Version of the key in `TENANT_KEY_FILE`.
pub const TENANT_KEY_VERSION: &str = "SANCTUM_TENANT_KEY_VERSION";
/// KMS key ARN (SSE-KMS of recording objects).
pub const KMS_KEY_ARN: &str = "SANCTUM_KMS_KEY_ARN";
/// The local provider's key-encryption key file.
pub const LOCAL_MASTER_KEY_FILE: &str = "SANCTUM_LOCAL_MASTER_KEY_FILE";
/// Idle timeout of a session, seconds.
pub const IDLE_TIMEOUT_SECONDS: &str = "SANCTUM_IDLE_TIMEOUT_SECONDS";
/// Longest session, minutes.
pub const MAX_SESSION_MINUTES: &str = "SANCTUM_MAX_SESSION_MINUTES";
/// Web origins allowed to call signaling.
pub const CORS_ORIGINS: &str = "SANCTUM_CORS_ORIGINS";
/// The audit bucket.
pub const AUDIT_BUCKET: &str = "SANCTUM_AUDIT_BUCKET";
