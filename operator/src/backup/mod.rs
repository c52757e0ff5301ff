//! Backups of a tenant to a second bucket (normally another region), and their restore.
//!
//! A backup copies, server-side, every current recording object and every audit batch of
//! the tenant into `<tenant>/objects/` and `<tenant>/audit/` of the destination, hashes
//! each copy, and writes `<tenant>/manifests/<id>.json`: every object with its source
//! version, size and SHA-256, the tenant's wrapped data-key versions (ciphertext stays
//! ciphertext; the keys stay wrapped), and when it ran. It is incremental (an object whose
//! source version is already in the destination is not copied again), resumable (a copy
//! made before a crash carries its source version and is found again), and one run at a
//! time per tenant holds a lock object created with `If-None-Match: *` and renewed while
//! it runs, so a concurrent run waits or gives up instead of interleaving. It runs only
//! into a bucket with Object Lock and a default retention (`retention.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, MetadataDirective};
use k8s_openapi::ByteString;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::cloud::objects;
use crate::cloud::{Cloud, CloudError};

pub mod drill;
mod lock;
mod restore;
mod retention;

use lock::Lock;
pub use restore::{Restored, restore};

/// Content-MD5 of an empty request body (base64 of MD5("")).
const EMPTY_BODY_MD5: &str = "1B2M2Y8AsgTpgAmY7PphCg==";
/// Object metadata naming the source version a copy was made from.
const SOURCE_VERSION: &str = "sanctum-source-version";
/// Metadata of a restored object: the version it was backed up from, which lets the
/// recording controller re-link a `Recording` that names that version (after checking
/// the SHA-256 itself).
pub use crate::cloud::objects::RESTORED_FROM_VERSION;
/// How long a lock lasts without renewal by default; a crashed run's lock frees itself
/// after this.
pub const LOCK_SECONDS: u64 = 60;

/// One copied object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Copied {
    /// Key in the source bucket.
    pub key: String,
    /// Source version copied (`null` in unversioned buckets).
    pub source_version: Option<String>,
    /// Key of the copy in the backup bucket.
    pub backup_key: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256 (hex) of the copy, equal to the source's.
    pub sha256: String,
}

/// What one backup holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Tenant backed up.
    pub tenant: String,
    /// Backup id: its start time, `YYYYMMDDTHHMMSS.mmmZ`.
    pub id: String,
    /// Start (RFC 3339).
    pub started: String,
    /// End (RFC 3339).
    pub finished: String,
    /// The tenant's recordings bucket.
    pub source_bucket: String,
    /// Recording objects.
    pub objects: Vec<Copied>,
    /// Audit batches (from the audit bucket), if one was given.
    pub audit: Vec<Copied>,
    /// The tenant's wrapped data-key versions (`v1`, `v2`, ...; base64 in JSON, as in a
    /// Secret), never plaintext.
    pub wrapped_keys: BTreeMap<String, ByteString>,
    /// Objects copied by this run (the rest were already in the destination).
    pub copied: usize,
}

/// Where a backup reads from and writes to.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Tenant.
    pub tenant: String,
    /// Recordings bucket.
    pub source_bucket: String,
    /// Audit bucket, whose `tenants/<tenant>/` batches are copied too.
    pub audit_bucket: Option<String>,
    /// Backup bucket.
    pub destination_bucket: String,
    /// Wrapped key versions to store in the manifest (the `tenant-data-key` Secret's data).
    pub wrapped_keys: BTreeMap<String, ByteString>,
    /// Backups to keep; older manifests and objects only they reference are deleted.
    pub keep: usize,
    /// How long to wait for another run's lock before giving up.
    pub wait: Duration,
    /// Name of this run in the lock.
    pub holder: String,
    /// How long the lock lasts without renewal (renewed every quarter of it).
    pub lock_for: Duration,
}

/// A backup that could not run or complete.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Another run holds the lock.
    #[error(
        "another backup of {tenant} is running ({holder}, lock valid until {until}); try again later"
    )]
    Busy {
        /// Tenant.
        tenant: String,
        /// Who holds it.
        holder: String,
        /// Until when.
        until: String,
    },
    /// A copy's checksum differs from its source's.
    #[error("copy of {key} does not match its source (source {source_sha256}, copy {copy_sha256})")]
    Mismatch {
        /// Source key.
        key: String,
        /// Source SHA-256.
        source_sha256: String,
        /// Copy SHA-256.
        copy_sha256: String,
    },
    /// The lock was lost while running (renewal refused).
    #[error("lost the backup lock of {0} while running; the next run resumes")]
    LockLost(String),
    /// A store call failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// A store call failed while backing up from `from` to `to` (names both buckets, so
    /// a missing or forbidden one is found from the message alone).
    #[error("backup from {from} to {to}: {source}")]
    Store {
        /// Recordings bucket.
        from: String,
        /// Backup bucket.
        to: String,
        /// What failed.
        source: CloudError,
    },
    /// The backup bucket would not keep what is written to it.
    #[error(
        "backup bucket {bucket} {reason}: anyone holding the backup role could delete the backups there; enable Object Lock with a default retention on it (COMPLIANCE mode keeps them even from the account's root user)"
    )]
    Unlocked {
        /// The bucket.
        bucket: String,
        /// What it lacks.
        reason: &'static str,
    },
    /// A manifest could not be read.
    #[error("manifest {key} is not readable: {reason}")]
    Manifest {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Reads the wrapped key versions from a mounted `tenant-data-key` Secret, so a backup pod
/// needs no API access: one file per Secret key, skipping the volume's `..data` bookkeeping.
pub fn read_key_dir(dir: &std::path::Path) -> std::io::Result<BTreeMap<String, ByteString>> {
    let mut keys = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !std::fs::metadata(entry.path())?.is_file() {
            continue;
        }
        keys.insert(name, ByteString(std::fs::read(entry.path())?));
    }
    if keys.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no wrapped key versions found",
        ));
    }
    Ok(keys)
}

/// The backup id of `at`: sortable, to the millisecond.
pub fn backup_id(at: jiff::Timestamp) -> String {
    at.strftime("%Y%m%dT%H%M%S%.3fZ").to_string()
}

fn prefix(tenant: &str) -> String {
    format!("{tenant}/")
}

fn manifest_key(tenant: &str, id: &str) -> String {
    format!("{tenant}/manifests/{id}.json")
}

fn lock_key(tenant: &str) -> String {
    format!("{tenant}/lock")
}

/// A current object version of a bucket.
struct Current {
    key: String,
    version: Option<String>,
    size: i64,
}

/// Current (latest, not deleted) object versions under `prefix`.
async fn current_objects(
    cloud: &Cloud,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<Current>, CloudError> {
    let mut out: Vec<Current> = objects::version_pages(&cloud.s3, bucket, prefix)
        .await?
        .iter()
        .flat_map(|page| page.versions())
        .filter(|v| v.is_latest() == Some(true))
        .filter_map(|v| {
            Some(Current {
                key: v.key()?.to_string(),
                version: v
                    .version_id()
                    .filter(|id| *id != "null")
                    .map(str::to_string),
                size: v.size().unwrap_or_default(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Reads every manifest of `tenant` in `bucket`, oldest first.
pub async fn manifests(
    cloud: &Cloud,
    bucket: &str,
    tenant: &str,
) -> Result<Vec<(String, Manifest)>, BackupError> {
    let keys = objects::list_keys(&cloud.s3, bucket, &format!("{tenant}/manifests/")).await?;
    let mut out = Vec::new();
    for key in keys {
        let body = objects::get_bytes(&cloud.s3, bucket, &key).await?;
        let manifest = serde_json::from_slice(&body).map_err(|e| BackupError::Manifest {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        out.push((key, manifest));
    }
    Ok(out)
}

/// The source version a backup copy was made from, if `key` exists in `bucket`.
async fn copy_source_version(
    cloud: &Cloud,
    bucket: &str,
    key: &str,
) -> Result<Option<String>, CloudError> {
    match cloud.s3.head_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok(Some(
            out.metadata()
                .and_then(|m| m.get(SOURCE_VERSION))
                .cloned()
                .unwrap_or_default(),
        )),
        Err(e) => {
            let error = CloudError::from_sdk("HeadObject", &e);
            if e.as_service_error().is_some_and(|s| s.is_not_found()) || error.is_not_found() {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}

/// Copies `source` into `backup_key` unless a copy of that version is already there;
/// returns the entry and whether it copied.
async fn copy_one(
    source_cloud: &Cloud,
    dest: &Cloud,
    source_bucket: &str,
    current: &Current,
    dest_bucket: &str,
    backup_key: String,
    known: Option<&Copied>,
) -> Result<(Copied, bool), BackupError> {
    let version = current.version.clone().unwrap_or_default();
    let present = copy_source_version(dest, dest_bucket, &backup_key).await?;
    let copied = present.as_deref() != Some(version.as_str());
    if let Some(known) = known
        && !copied
        && known.source_version == current.version
        && known.size == current.size
    {
        return Ok((known.clone(), false));
    }
    if copied {
        let mut source = format!("{source_bucket}/{}", current.key);
        if let Some(v) = &current.version {
            source.push_str(&format!("?versionId={v}"));
        }
        dest.s3
            .copy_object()
            .bucket(dest_bucket)
            .key(&backup_key)
            .copy_source(source)
            .metadata_directive(MetadataDirective::Replace)
            .metadata(SOURCE_VERSION, &version)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            // A write into a bucket with default retention must carry an integrity header
            // (moto demands one on copies too): the MD5 of this request's empty body.
            .customize()
            .mutate_request(|req| {
                req.headers_mut().insert("Content-MD5", EMPTY_BODY_MD5);
            })
            .send()
            .await
            .map_err(|e| CloudError::from_sdk("CopyObject", &e))?;
    }
    let (source_sha, source_size) = objects::sha256(
        &source_cloud.s3,
        source_bucket,
        &current.key,
        current.version.as_deref(),
    )
    .await?;
    let (copy_sha, copy_size) = objects::sha256(&dest.s3, dest_bucket, &backup_key, None).await?;
    if source_sha != copy_sha || source_size != copy_size {
        return Err(BackupError::Mismatch {
            key: current.key.clone(),
            source_sha256: source_sha,
            copy_sha256: copy_sha,
        });
    }
    Ok((
        Copied {
            key: current.key.clone(),
            source_version: current.version.clone(),
            backup_key,
            size: copy_size,
            sha256: copy_sha,
        },
        copied,
    ))
}

/// Runs one backup of `plan`; `source` reaches the tenant and audit buckets, `dest` the
/// backup bucket (which may be in another region).
pub async fn backup(source: &Cloud, dest: &Cloud, plan: &Plan) -> Result<Manifest, BackupError> {
    let with_buckets = |e| match e {
        BackupError::Cloud(source) => BackupError::Store {
            from: plan.source_bucket.clone(),
            to: plan.destination_bucket.clone(),
            source,
        },
        other => other,
    };
    retention::require_object_lock(dest, &plan.destination_bucket)
        .await
        .map_err(with_buckets)?;
    let lock = Lock::acquire(dest, plan).await.map_err(with_buckets)?;
    let result = run_backup(source, dest, plan, &lock).await;
    lock.release(dest, plan).await;
    result.map_err(with_buckets)
}

async fn run_backup(
    source: &Cloud,
    dest: &Cloud,
    plan: &Plan,
    lock: &Lock,
) -> Result<Manifest, BackupError> {
    let tenant = plan.tenant.as_str();
    let started = now();
    let previous = manifests(dest, &plan.destination_bucket, tenant).await?;
    let known: BTreeMap<&str, &Copied> = previous
        .last()
        .map(|(_, m)| {
            m.objects
                .iter()
                .chain(m.audit.iter())
                .map(|c| (c.backup_key.as_str(), c))
                .collect()
        })
        .unwrap_or_default();
    // Recordings into `objects/`, the audit batches into `audit/`: the same copy each.
    let mut sources = vec![(plan.source_bucket.as_str(), String::new(), "objects")];
    if let Some(audit_bucket) = &plan.audit_bucket {
        sources.push((
            audit_bucket,
            crate::audit::chain_prefix(tenant, crate::audit::Chain::Reconciles),
            "audit",
        ));
    }
    let mut copied = 0;
    let mut out: [Vec<Copied>; 2] = Default::default();
    for (i, (bucket, source_prefix, into)) in sources.iter().enumerate() {
        for current in current_objects(source, bucket, source_prefix).await? {
            lock.check(tenant)?;
            let name = current.key.trim_start_matches(source_prefix.as_str());
            let backup_key = format!("{}{into}/{name}", prefix(tenant));
            let (entry, did) = copy_one(
                source,
                dest,
                bucket,
                &current,
                &plan.destination_bucket,
                backup_key.clone(),
                known.get(backup_key.as_str()).copied(),
            )
            .await?;
            copied += usize::from(did);
            out[i].push(entry);
        }
    }
    let [objects_out, audit_out] = out;
    lock.check(tenant)?;
    let id = backup_id(started);
    let manifest = Manifest {
        tenant: tenant.to_string(),
        id: id.clone(),
        started: started.to_string(),
        finished: now().to_string(),
        source_bucket: plan.source_bucket.clone(),
        objects: objects_out,
        audit: audit_out,
        wrapped_keys: plan.wrapped_keys.clone(),
        copied,
    };
    dest.s3
        .put_object()
        .bucket(&plan.destination_bucket)
        .key(manifest_key(tenant, &id))
        .if_none_match("*")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .content_type("application/json")
        .body(ByteStream::from(
            serde_json::to_vec_pretty(&manifest).expect("manifest serializes"),
        ))
        .send()
        .await
        .map_err(|e| CloudError::from_sdk("PutObject", &e))?;
    info!(tenant, backup = %id, objects = manifest.objects.len(), audit = manifest.audit.len(), copied, "backup written");
    let mut all = previous;
    all.push((manifest_key(tenant, &id), manifest.clone()));
    prune(dest, &plan.destination_bucket, tenant, plan.keep, &all).await?;
    Ok(manifest)
}

/// Retires manifests beyond the newest `keep` of `all` (oldest first), and the copies no
/// kept manifest references: delete markers over versions the bucket keeps locked.
async fn prune(
    dest: &Cloud,
    bucket: &str,
    tenant: &str,
    keep: usize,
    all: &[(String, Manifest)],
) -> Result<(), BackupError> {
    if all.len() <= keep.max(1) {
        return Ok(());
    }
    let (old, kept) = all.split_at(all.len() - keep.max(1));
    let referenced: std::collections::BTreeSet<&str> = kept
        .iter()
        .flat_map(|(_, m)| m.objects.iter().chain(m.audit.iter()))
        .map(|c| c.backup_key.as_str())
        .collect();
    for (key, manifest) in old {
        for c in manifest.objects.iter().chain(manifest.audit.iter()) {
            if !referenced.contains(c.backup_key.as_str()) {
                retention::retire(dest, bucket, &c.backup_key).await?;
            }
        }
        retention::retire(dest, bucket, key).await?;
        info!(tenant, manifest = %key, "old backup retired (its locked versions stay until their retention ends)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_dir_reads_a_secret_volume_and_skips_its_bookkeeping() {
        // The layout kubelet gives a Secret volume: keys are links into `..data`.
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data = dir.path().join("..2026_11_25_02_00_00.1");
        std::fs::create_dir(&data).expect("the data directory");
        std::fs::write(data.join("v1"), b"wrapped-one").expect("v1");
        std::fs::write(data.join("v2"), b"wrapped-two").expect("v2");
        std::os::unix::fs::symlink(&data, dir.path().join("..data")).expect("..data");
        for v in ["v1", "v2"] {
            std::os::unix::fs::symlink(format!("..data/{v}"), dir.path().join(v)).expect("link");
        }
        let keys = read_key_dir(dir.path()).expect("the keys");
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["v1", "v2"]);
        assert_eq!(keys["v2"].0, b"wrapped-two");

        let empty = tempfile::tempdir().expect("a temporary directory");
        assert!(read_key_dir(empty.path()).is_err(), "no keys is an error");
    }

    #[test]
    fn backup_ids_sort_by_time() {
        let a: jiff::Timestamp = "2026-11-25T02:03:04Z".parse().expect("a timestamp");
        let b: jiff::Timestamp = "2026-11-25T10:00:00Z".parse().expect("a timestamp");
        assert_eq!(backup_id(a), "20261125T020304.000Z");
        assert!(backup_id(a) < backup_id(b));
    }

    #[test]
    fn wrapped_keys_round_trip_through_the_manifest_encoding() {
        let key = vec![0u8, 1, 2, 254, 255];
        let manifest = Manifest {
            tenant: "clinic-a".into(),
            id: "20261125T020304.000Z".into(),
            started: String::new(),
            finished: String::new(),
            source_bucket: "b".into(),
            objects: Vec::new(),
            audit: Vec::new(),
            wrapped_keys: BTreeMap::from([
                ("v1".to_string(), ByteString(key.clone())),
                ("v2".to_string(), ByteString(b"abc".to_vec())),
            ]),
            copied: 0,
        };
        let json = serde_json::to_value(&manifest).expect("serializes");
        assert_eq!(json["wrappedKeys"]["v2"], "YWJj");
        let back: Manifest = serde_json::from_value(json.clone()).expect("parses");
        assert_eq!(back.wrapped_keys["v1"].0, key);
        let mut bad = json;
        bad["wrappedKeys"]["v1"] = "not base64!".into();
        assert!(serde_json::from_value::<Manifest>(bad).is_err());
    }
}
