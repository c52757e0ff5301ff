//! What `decide` reads and returns: the inputs, the facts a pass observed, the actions
//! it asks for and the outcome it ends with.

use super::*;

/// Everything `decide` reads besides what IO established.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// The Recording's spec.
    pub spec: &'a RecordingSpec,
    /// Its `metadata.generation`.
    pub generation: Option<i64>,
    /// Its status as stored.
    pub status: &'a RecordingStatus,
    /// The tenant's recording policy.
    pub policy: &'a RecordingPolicy,
    /// The tenant's retention in days.
    pub tenant_retention_days: i32,
    /// The tenant's bucket (from the tenant's status): the only bucket the recording uses.
    pub bucket: Option<&'a str>,
    /// `recordings/<uid>.sealed`: the only key the recording uses.
    pub key: &'a str,
    /// The Recording is being deleted.
    pub deleting: bool,
    /// Its namespace is being deleted (the tenant's deletion policy decides about objects).
    pub namespace_terminating: bool,
    /// Now.
    pub now: Timestamp,
    /// How often a sealed object is re-hashed.
    pub integrity_interval: Duration,
    /// The periodic re-check.
    pub resync: Duration,
}

/// What a media node said when asked to record.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few values per reconcile, moved once each"
)]
pub enum Started {
    /// This node records the room.
    On {
        /// The node.
        node: NodeEndpoint,
        /// Its report.
        report: RecordingReport,
    },
    /// No node hosts a publisher in the room.
    NoHost,
    /// Nodes refused or failed (the last error).
    Refused(String),
}

/// What the recording's node said about it.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few values per reconcile, moved once each"
)]
pub enum Reported {
    /// Its report.
    Report(RecordingReport),
    /// It is unreachable, forgot the recording, or is not one of the tenant's nodes.
    Lost(String),
}

/// What the tenant bucket holds at the recording's key.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    /// The object, hashed.
    Object {
        /// Hex SHA-256.
        sha256: String,
        /// Bytes.
        size: i64,
    },
    /// No such object (version).
    Missing(String),
}

/// What IO established in this pass; empty at the start of each reconcile.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// Ready control endpoints of the tenant's own media Services.
    pub nodes: Option<Vec<NodeEndpoint>>,
    /// Outcome of asking nodes to record.
    pub started: Option<Started>,
    /// The recording's node's report.
    pub reported: Option<Reported>,
    /// The stored object.
    pub stored: Option<Stored>,
    /// After `sanctum restore`: the version restored from the sealed one, if any.
    pub restored: Option<Option<String>>,
    /// Incomplete uploads of the key were aborted.
    pub aborted: bool,
    /// Versions deleted.
    pub deleted: Option<u64>,
}

/// An observation or change that needs IO.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// List the tenant's media nodes.
    Discover,
    /// Ask the nodes, in turn, to record.
    Start(StartRecording),
    /// Ask the node for its report.
    Poll(NodeEndpoint),
    /// Ask the node to stop and seal.
    Stop(NodeEndpoint),
    /// Hash the object.
    Hash {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Version (the latest when `None`).
        version: Option<String>,
    },
    /// Find the version `sanctum restore` made from `lost` whose SHA-256 is `sha256`.
    FindRestored {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The version status names, which is gone.
        lost: String,
        /// The sealed SHA-256.
        sha256: String,
    },
    /// Abort incomplete uploads of the key.
    AbortUploads {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// Delete every version of the key.
    DeleteVersions {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
}

/// An Event (and audit record) to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub warning: bool,
    /// Reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

impl Note {
    /// The Event type.
    pub fn event_type(&self) -> EventType {
        if self.warning {
            EventType::Warning
        } else {
            EventType::Normal
        }
    }
}

/// What a pass ends with.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Status to write (written only if it differs from what is stored).
    pub status: RecordingStatus,
    /// Events to publish.
    pub notes: Vec<Note>,
    /// Look again after this long; `None` waits for a change.
    pub requeue: Option<Duration>,
    /// Deletion: keep the finalizer, and why (`None` releases it).
    pub hold: Option<Hold>,
}

/// Why deletion does not complete in this pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Under legal hold.
    LegalHold,
    /// The node is still sealing.
    Sealing,
}

/// The next step.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few values per reconcile, moved once each"
)]
pub enum Step {
    /// Do this, record its fact, and decide again.
    Act(Action),
    /// The pass is over.
    Done(Outcome),
}
