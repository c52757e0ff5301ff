//! The `VideoTenant` resource: one clinic or customer, isolated in its own namespace.
//!
//! Every rule a person can get wrong is checked here at admission, by the OpenAPI schema
//! and CEL rules, so nothing invalid reaches the reconciler. Field doc comments are what
//! `kubectl explain` shows: they are written for the people who write manifests.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod media;

pub use media::{
    AutoscalingSpec, ExposeMode, ExposeSpec, MediaPorts, MediaSpec, NodePorts, RegionSpec, TurnSpec,
};

/// Longest tenant name: `vt-<name>` and derived bucket names must stay within DNS limits.
pub const MAX_TENANT_NAME: usize = 40;
/// Default recording retention: six years, the HIPAA documentation retention period.
pub const DEFAULT_RETENTION_DAYS: i32 = 2190;
/// Image used when `spec.media.image` is not set.
pub const DEFAULT_MEDIA_IMAGE: &str = "ghcr.io/sanctum-dev/sanctum-media-node:0.1.0";

/// Desired state of a tenant: what the platform team asks for.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sanctum.dev",
    version = "v1alpha1",
    kind = "VideoTenant",
    plural = "videotenants",
    shortname = "vt",
    category = "sanctum",
    status = "VideoTenantStatus",
    derive = "PartialEq",
    doc = "A clinic or customer: an isolated namespace of media nodes, its keys, its bucket and its audit trail.",
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Status", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace"),
    printcolumn(name = "Media", type_ = "string", json_path = ".status.mediaNodes", description = "ready/desired media nodes over all regions"),
    printcolumn(name = "Last Backup", type_ = "string", json_path = ".status.lastBackupOutcome", priority = 1, description = "outcome of the last backup run (kubectl get -o wide)"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("tenant names are at most 40 characters, so the tenant namespace and bucket names fit DNS limits"),
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("tenant names must be DNS labels: lowercase letters, digits and '-'")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.__namespace__) == has(oldSelf.__namespace__) && (!has(self.__namespace__) || self.__namespace__ == oldSelf.__namespace__)").message("spec.namespace is immutable: create a new tenant to move it").field_path(".namespace")
)]
pub struct VideoTenantSpec {
    /// Human-readable name shown in dashboards. Never put patient information here.
    #[schemars(length(min = 1, max = 128))]
    pub display_name: String,

    /// Namespace that holds the tenant's workloads. Defaults to `vt-<tenant name>`.
    /// Immutable after creation.
    /// `default` and `kube-*` are refused (the operator's own namespace too, by the
    /// operator: its name is not known to the schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("self != 'default' && !self.startsWith('kube-')").message("spec.namespace must not be default or a kube-* namespace"))]
    pub namespace: Option<String>,

    /// How the tenant's encryption key is held.
    #[serde(default)]
    pub encryption: EncryptionSpec,

    /// Where recordings are stored and for how long.
    #[serde(default)]
    pub storage: StorageSpec,

    /// Media nodes (the WebRTC SFU) and the regions they run in.
    pub media: MediaSpec,

    /// Whether rooms may be recorded, and under which rules.
    #[serde(default)]
    pub recording: RecordingPolicy,

    /// Scheduled copies of recordings and audit records to a second location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,

    /// Who may reach the tenant over the network.
    #[serde(default)]
    pub network: NetworkSpec,
}

/// Key management for the tenant's recordings.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.keyArn) || self.provider == 'aws'").message("keyArn can only be used with provider 'aws'").field_path(".keyArn"),
    validation = Rule::new("self.provider == oldSelf.provider").message("encryption.provider is immutable: recordings are bound to the provider that wrapped their keys").field_path(".provider")
)]
pub struct EncryptionSpec {
    /// Key provider: `aws` (AWS KMS) or `local` (a key per tenant held in the operator's
    /// namespace and given to its media nodes, for clusters without a KMS). Immutable.
    #[serde(default)]
    pub provider: KeyProvider,

    /// Existing KMS key to use instead of creating one (`arn:aws:kms:<region>:<account>:key/<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 256),
        regex(pattern = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$")
    )]
    pub key_arn: Option<String>,

    /// Days between automatic key rotations (90 to 2560, as KMS allows). The tenant data
    /// key gets a new version on the same schedule, or when the tenant's
    /// `sanctum.dev/rotate-data-key` annotation changes.
    #[serde(default = "default_rotation_days")]
    #[schemars(range(min = 90, max = 2560))]
    pub rotation_days: i32,

    /// What happens to the keys when the tenant is deleted: `Retain` keeps them (recordings
    /// stay readable), `CryptoShred` destroys them (recordings become unreadable).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// Fate of a tenant's keys when the tenant is deleted.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the KMS key and an escrowed copy of the wrapped data keys in the bucket.
    #[default]
    Retain,
    /// Schedule the KMS key for deletion (7 days) and delete every escrowed wrapped data
    /// key: the recordings can never be decrypted again (HIPAA 164.310(d)(2)(i) disposal).
    CryptoShred,
}

impl Default for EncryptionSpec {
    fn default() -> Self {
        Self {
            provider: KeyProvider::default(),
            key_arn: None,
            rotation_days: default_rotation_days(),
            deletion_policy: DeletionPolicy::default(),
        }
    }
}

fn default_rotation_days() -> i32 {
    365
}

/// Which service wraps the tenant key.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyProvider {
    /// AWS KMS (or a KMS-compatible endpoint).
    #[default]
    Aws,
    /// A key per tenant in a Secret of the operator's namespace (copied for its media
    /// nodes), AES-256-GCM key wrap.
    Local,
}

impl KeyProvider {
    /// The provider as manifests, command-line flags and environment variables spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyProvider::Aws => "aws",
            KeyProvider::Local => "local",
        }
    }
}

impl std::fmt::Display for KeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KeyProvider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "aws" => Ok(KeyProvider::Aws),
            "local" => Ok(KeyProvider::Local),
            other => Err(format!("{other:?} is not a key provider (aws or local)")),
        }
    }
}

/// Recording storage.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.bucket) == has(oldSelf.bucket) && (!has(self.bucket) || self.bucket == oldSelf.bucket)").message("storage.bucket is immutable").field_path(".bucket"),
    validation = Rule::new("has(self.objectLock) == has(oldSelf.objectLock)").message("Object Lock can only be chosen when the tenant is created").field_path(".objectLock"),
    validation = Rule::new("!has(self.objectLock) || self.objectLock.days <= self.retentionDays").message("objectLock.days cannot exceed retentionDays: locked objects could never expire").field_path(".objectLock.days")
)]
pub struct StorageSpec {
    /// Bucket name. Defaults to a name derived from the tenant, unique and DNS-safe.
    /// Dots are not allowed so TLS certificates always match. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    )]
    #[x_kube(validation = Rule::new("!self.startsWith('xn--') && !self.endsWith('-s3alias') && !self.endsWith('--ol-s3')").message("bucket names cannot start with 'xn--' or end with '-s3alias' or '--ol-s3'"))]
    pub bucket: Option<String>,

    /// AWS region of the bucket, for example `us-east-1`. Defaults to the operator's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 32),
        regex(pattern = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$")
    )]
    pub region: Option<String>,

    /// Days a recording is kept before it is deleted (1 to 36500). Default 2190 (six years).
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 36500))]
    pub retention_days: i32,

    /// S3 Object Lock for recordings. Only settable at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockSpec>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            bucket: None,
            region: None,
            retention_days: DEFAULT_RETENTION_DAYS,
            object_lock: None,
        }
    }
}

fn default_retention_days() -> i32 {
    DEFAULT_RETENTION_DAYS
}

/// S3 Object Lock settings.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLockSpec {
    /// `Governance` (privileged users may shorten it) or `Compliance` (nobody can).
    pub mode: ObjectLockMode,
    /// Days each recording version stays locked.
    #[schemars(range(min = 1, max = 36500))]
    pub days: i32,
}

/// S3 Object Lock retention mode.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectLockMode {
    /// Users with special permission may remove the lock.
    Governance,
    /// Nobody, including the account root, can remove the lock before it ends.
    Compliance,
}

/// Recording rules of the tenant.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordingPolicy {
    /// Whether rooms may be recorded at all.
    #[serde(default)]
    pub enabled: bool,
    /// Whether every Recording must state who consented, how and when.
    #[serde(default = "default_true")]
    pub require_consent: bool,
    /// Whether the room's host must also confirm, on the media node's visit page, that
    /// the patient agrees before anything is recorded. A Recording then waits in
    /// `Pending` (reason `AwaitingHost`) until the host confirms, and fails (reason
    /// `HostDeclined`) if the host declines.
    #[serde(default)]
    pub host_confirms: bool,
}

impl Default for RecordingPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            require_consent: true,
            host_confirms: false,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Scheduled backups.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Cron schedule in the cluster's time zone: five fields (minute hour day-of-month month
    /// day-of-week) or a macro such as `@daily`.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new(cron_rule()).message("schedule must be a cron expression with five fields (minute 0-59, hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-7) or a macro such as @daily"))]
    pub schedule: String,
    /// Where backups are copied to; use another region for disaster recovery.
    pub destination: BackupDestination,
    /// How many backups to keep (1 to 3650).
    #[serde(default = "default_keep")]
    #[schemars(range(min = 1, max = 3650))]
    pub keep: i32,
    /// Scheduled restore drills of these backups: the proof, on a schedule, that they
    /// restore and open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_drill: Option<RestoreDrillSpec>,
}

/// A second CronJob that restores the newest backup into a scratch bucket it makes,
/// checks every SHA-256, opens one sealed recording with the wrapped keys the backup
/// carries, and removes the bucket.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreDrillSpec {
    /// Cron schedule of the drills, as `schedule` above.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new(cron_rule()).message("restoreDrill.schedule must be a cron expression with five fields (minute 0-59, hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-7) or a macro such as @weekly"))]
    pub schedule: String,
    /// Each drill makes the bucket `<scratchBucketPrefix>-<YYYYMMDD>t<HHMMSS>` in the
    /// operator's default region, tagged as this tenant's drill, and deletes it after;
    /// the drill pods' IAM role may create and delete only buckets under this prefix.
    #[schemars(length(min = 3, max = 47))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9][a-z0-9-]*[a-z0-9]$')").message("restoreDrill.scratchBucketPrefix must be lowercase letters, digits and hyphens, starting and ending with a letter or digit (3 to 47 characters)"))]
    pub scratch_bucket_prefix: String,
}

/// One cron field whose values match `values` (a regex alternation), or three-letter
/// names where `names` (months, days of the week): lists, ranges and steps of them.
fn cron_field(values: &str, names: bool) -> String {
    let value = if names {
        format!("({values}|[A-Za-z]{{3}})")
    } else {
        format!("({values})")
    };
    let item = format!("([*?]|{value}(-{value})?)(/[0-9]+)?");
    format!("{item}(,{item})*")
}

/// Five fields, each within its range (so an impossible schedule is refused at admission
/// rather than by the CronJob later), or a macro.
fn cron_rule() -> String {
    let fields = [
        cron_field("[0-5]?[0-9]", false),
        cron_field("[01]?[0-9]|2[0-3]", false),
        cron_field("0?[1-9]|[12][0-9]|3[01]", false),
        cron_field("0?[1-9]|1[0-2]", true),
        cron_field("[0-7]", true),
    ]
    .join("\\\\s+");
    format!("self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{fields})$')")
}

fn default_keep() -> i32 {
    30
}

/// Backup target bucket.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupDestination {
    /// Destination bucket name.
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    )]
    pub bucket: String,
    /// Destination region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 32),
        regex(pattern = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$")
    )]
    pub region: Option<String>,
}

/// Network isolation. Everything not listed here is denied.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkSpec {
    /// Namespaces whose pods may reach signaling (HTTPS): normally the ingress controller's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}))]
    pub signaling_from: Vec<String>,

    /// Client networks allowed to send media (UDP), as CIDRs such as `0.0.0.0/0` or `10.0.0.0/8`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 64, "x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "mediaCIDRs entries must be CIDRs such as 203.0.113.0/24"}]}))]
    #[serde(rename = "mediaCIDRs")]
    pub media_cidrs: Vec<String>,

    /// Extra destinations media nodes may reach over TLS (443), as CIDRs: normally the
    /// KMS and S3 endpoints of the tenant's region. DNS is always allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 64, "x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "egressCIDRs entries must be CIDRs such as 52.94.0.0/16"}]}))]
    #[serde(rename = "egressCIDRs")]
    pub egress_cidrs: Vec<String>,
}

/// Observed state of a tenant, written only by the operator.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VideoTenantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling`, `Stalled` (kstatus) and one condition per part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The tenant namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The recordings bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// ARN of the tenant's KMS key (an identifier, never key material).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_arn: Option<String>,
    /// Version of the wrapped tenant key currently used for new recordings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<i32>,
    /// Ready and desired media nodes per region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub regions: Vec<RegionStatus>,
    /// `ready/desired` media nodes over all regions, for `kubectl get vt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_nodes: Option<String>,
    /// When the last backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_time: Option<Time>,
    /// Outcome of the last backup (`Succeeded` or `Failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_outcome: Option<String>,
    /// Recording objects in the last backup run (absent when it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_objects: Option<i64>,
    /// When the last restore drill finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restore_drill_time: Option<Time>,
    /// Outcome of the last restore drill (`Succeeded` or `Failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restore_drill_outcome: Option<String>,
    /// Objects the last restore drill restored and checked (absent when it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restore_drill_objects: Option<i64>,
    /// The last record of this tenant's audit chain known to be in the audit bucket: its
    /// sequence number and hash, kept here, outside the bucket, so that a chain cut short
    /// or rewritten behind it is found (`sanctum audit verify --anchor SEQ:HASH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_audit_record: Option<AuditAnchor>,
}

/// A record of an audit chain, named by position and hash.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuditAnchor {
    /// Sequence number of the record in the tenant's chain (from 1).
    pub seq: i64,
    /// SHA-256 (hex) of the record.
    pub hash: String,
}

/// Media nodes of one region.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegionStatus {
    /// Region name.
    pub name: String,
    /// Media nodes the Deployment wants.
    pub desired: i32,
    /// Media nodes ready to take sessions.
    pub ready: i32,
    /// Where clients send this region's media (`NodePort` and `LoadBalancer` regions), for
    /// example `203.0.113.10 udp/10000 tcp/10000` or `<node address> udp/31000 tcp/31001`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
}

impl VideoTenant {
    /// The tenant namespace: `spec.namespace`, or `vt-<name>` when unset.
    pub fn namespace_name(&self) -> String {
        self.spec
            .namespace
            .clone()
            .unwrap_or_else(|| format!("vt-{}", kube::ResourceExt::name_any(self)))
    }
}
