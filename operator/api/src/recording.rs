//! The `Recording` resource: one recording of a room, from consent to disposal.
//!
//! The spec names a room by an opaque id and never carries PHI; the status carries
//! identifiers and checksums, never key material.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request to record a room, and its lifecycle.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sanctum.dev",
    version = "v1alpha1",
    kind = "Recording",
    plural = "recordings",
    shortname = "rec",
    category = "sanctum",
    namespaced,
    status = "RecordingStatus",
    derive = "PartialEq",
    doc = "One recording of a room: consent, encryption, integrity, retention and legal hold.",
    printcolumn(name = "Room", type_ = "string", json_path = ".spec.room"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Hold", type_ = "boolean", json_path = ".spec.legalHold"),
    printcolumn(name = "Expires", type_ = "date", json_path = ".status.expiresAt"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.room == oldSelf.room").message("spec.room is immutable").field_path(".room"),
    validation = Rule::new("!has(oldSelf.consent) || (has(self.consent) && self.consent == oldSelf.consent)").message("spec.consent cannot be changed or removed once given").field_path(".consent"),
    validation = Rule::new("oldSelf.stop == false || self.stop == true").message("a stopped recording cannot be restarted: create a new Recording").field_path(".stop")
)]
pub struct RecordingSpec {
    /// Opaque room id (letters, digits, '-' and '_'). Never a patient name.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub room: String,

    /// Who consented to the recording, how and when. Required when the tenant requires consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<Consent>,

    /// Days to keep this recording, overriding the tenant's retention (1 to 36500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub retention_days: Option<i32>,

    /// While true, the recording is never deleted: not by retention, not by deleting this resource.
    #[serde(default)]
    pub legal_hold: bool,

    /// Set to true to stop recording and seal the object.
    #[serde(default)]
    pub stop: bool,
}

/// Record of consent. Identifies people by opaque user id only.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Consent {
    /// Opaque user id of the person who collected consent.
    #[schemars(length(min = 1, max = 128))]
    pub recorded_by: String,
    /// How consent was given.
    pub method: ConsentMethod,
    /// When consent was given (RFC 3339).
    pub given_at: Time,
}

/// How consent was given.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentMethod {
    /// Said aloud and noted by the host.
    Verbal,
    /// A signed form.
    Written,
    /// Accepted in an application.
    Electronic,
}

/// Lifecycle phase of a recording.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingPhase {
    /// Accepted, not yet started.
    Pending,
    /// Media is being written.
    Recording,
    /// Stopped; the upload is being completed.
    Finalizing,
    /// Complete and checksummed.
    Sealed,
    /// Retention has passed; deletion is due.
    Expired,
    /// The object and its key are gone.
    Deleted,
    /// Could not record; see conditions.
    Failed,
}

/// Observed state of a recording.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordingStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RecordingPhase>,
    /// Conditions, `Ready`/`Reconciling`/`Stalled` as kstatus expects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Bucket holding the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Object key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Object version id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Size of the ciphertext in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// Hex SHA-256 of the stored ciphertext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Version of the tenant key that wrapped this recording's data key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<i32>,
    /// When recording started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When recording ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,
    /// When retention ends and the recording is deleted (unless on legal hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Media node (address:port of its control API) that records or recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_node: Option<String>,
    /// When the stored object's SHA-256 was last verified against `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_checked_at: Option<Time>,
}
