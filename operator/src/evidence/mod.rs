//! The evidence report `kubectl sanctum evidence` prints: a tenant's protections read back
//! live from the API server, S3 and KMS (never from the spec alone), each judged against
//! what the spec promises, and mapped onto the HIPAA safeguards of [`controls::CONTROLS`].

mod backup;
pub mod controls;
mod kms;
pub mod network;
mod recordings;
pub mod render;
mod trail;

pub use trail::{anchor, signers, verify};

use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use sanctum_api::{KeyProvider, Recording, VideoTenant, conditions};
use serde::Serialize;
use serde_json::{Value, json};

use crate::cloud::Cloud;
use crate::cloud::buckets::{self, DesiredBucket};
use crate::controller::tenant::build::{self, signing_key, tenant_key};
use crate::controller::tenant::validate::validate;

/// A finding: one live fact, and whether it is what the spec promises.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// `section.name`, as [`controls::Control::findings`] refers to it.
    pub id: String,
    /// Passes.
    pub ok: bool,
    /// What was read, for a person.
    pub detail: String,
}

/// A control's live verdict.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlStatus {
    /// The safeguard.
    #[serde(flatten)]
    pub control: controls::Control,
    /// `pass`, `fail`, or `not configured` (the spec asks for nothing it covers).
    pub status: &'static str,
    /// Ids of the findings that failed.
    pub failing: Vec<String>,
}

/// The whole report, section by section.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// When it was read.
    pub generated: String,
    /// Period the audit section covers.
    pub period: Period,
    /// Tenant identity and conditions.
    pub tenant: Value,
    /// Bucket settings read back from S3.
    pub bucket: Value,
    /// KMS key and data-key versions.
    pub keys: Value,
    /// NetworkPolicies and the connections they allow.
    pub network: Value,
    /// Session and token settings the media nodes run with.
    pub sessions: Value,
    /// The tenant's Recordings: encryption, integrity, retention.
    pub recordings: Value,
    /// Backups and restore drills.
    pub backup: Value,
    /// The audit chain, verified.
    pub audit: Value,
    /// Every finding.
    pub findings: Vec<Finding>,
    /// The safeguards.
    pub controls: Vec<ControlStatus>,
}

/// The time range the report covers.
#[derive(Clone, Debug, Serialize)]
pub struct Period {
    /// From, inclusive.
    pub since: Option<String>,
    /// Until, exclusive.
    pub until: Option<String>,
}

impl Report {
    /// Any control fails.
    pub fn failing(&self) -> Vec<&ControlStatus> {
        self.controls
            .iter()
            .filter(|c| c.status == "fail")
            .collect()
    }
}

/// Where to read from.
pub struct Sources<'a> {
    /// The API server.
    pub client: Client,
    /// S3 and KMS.
    pub cloud: &'a Cloud,
    /// The operator's namespace (audit signers, escrow).
    pub operator_namespace: &'a str,
    /// The audit bucket, when the operator writes one.
    pub audit_bucket: Option<&'a str>,
}

struct Collector(Vec<Finding>);

impl Collector {
    fn add(&mut self, id: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.0.push(Finding {
            id: id.into(),
            ok,
            detail: detail.into(),
        });
    }
}

/// Reads everything and judges it. Errors only when the tenant itself cannot be read; a
/// part that cannot be read is a failing finding naming why.
pub async fn gather(
    sources: &Sources<'_>,
    name: &str,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> anyhow::Result<Report> {
    let tenants = Api::<VideoTenant>::all(sources.client.clone());
    let tenant = tenants
        .get(name)
        .await
        .with_context(|| format!("reading VideoTenant {name}"))?;
    let status = tenant.status.clone().unwrap_or_default();
    let spec = &tenant.spec;
    let namespace = status
        .namespace
        .clone()
        .unwrap_or_else(|| tenant.namespace_name());
    let uid = tenant.uid().unwrap_or_default();
    let mut found = Collector(Vec::new());
    let now = Timestamp::now();

    let ready = conditions_of(&tenant, conditions::READY);
    found.add(
        "tenant.ready",
        ready.as_deref() == Some("True"),
        format!("Ready={}", ready.as_deref().unwrap_or("unknown")),
    );
    let tenant_section = json!({
        "name": name,
        "uid": uid,
        "namespace": namespace,
        "generation": tenant.metadata.generation,
        "observedGeneration": status.observed_generation,
        "conditions": status.conditions.iter().map(|c| json!({
            "type": c.type_, "status": c.status, "reason": c.reason, "message": c.message,
        })).collect::<Vec<_>>(),
    });

    // Bucket, read back.
    let provider = spec.encryption.provider;
    let bucket_name = status.bucket.clone();
    let bucket = match &bucket_name {
        None => {
            found.add("bucket.exists", false, "status.bucket is not set yet");
            json!(null)
        }
        Some(bucket) => {
            let want = DesiredBucket {
                name: bucket.clone(),
                region: spec
                    .storage
                    .region
                    .clone()
                    .unwrap_or_else(|| sources.cloud.region.clone()),
                tenant: name.to_string(),
                tenant_uid: uid.clone(),
                reserved: Vec::new(),
                configured: false,
                kms_key_arn: (provider == KeyProvider::Aws)
                    .then(|| status.key_arn.clone())
                    .flatten(),
                retention_days: spec.storage.retention_days,
                object_lock: spec.storage.object_lock.clone(),
                write_once: false,
            };
            match buckets::inspect(sources.cloud, &want, true).await {
                Ok(posture) => {
                    let checks = posture.checks(&want);
                    for c in &checks {
                        found.add(
                            format!("bucket.{}", c.setting),
                            c.ok,
                            c.observed.to_string(),
                        );
                    }
                    json!({"name": bucket, "region": want.region, "settings": checks})
                }
                Err(e) => {
                    found.add("bucket.readable", false, format!("reading {bucket}: {e}"));
                    json!({"name": bucket, "error": e.to_string()})
                }
            }
        }
    };

    // Keys: the KMS key and the data-key versions.
    let secrets = Api::<Secret>::namespaced(sources.client.clone(), &namespace);
    // Metadata only: the versions and their times are annotations, and the auditor's role
    // needs no read of the wrapped keys themselves.
    let data_key = secrets.get_metadata_opt(tenant_key::SECRET_NAME).await;
    let mut versions = Vec::new();
    let mut current_age_days = None;
    match &data_key {
        Ok(Some(secret)) => {
            let annotations = secret.annotations();
            let current = tenant_key::announced_version(annotations);
            for (version, created) in tenant_key::created_versions(annotations) {
                if Some(version) == current {
                    current_age_days = created
                        .parse::<Timestamp>()
                        .ok()
                        .map(|c| now.duration_since(c).as_secs_f64() / 86_400.0);
                }
                versions.push(json!({"version": version, "created": created, "current": Some(version) == current}));
            }
            let rotation_days = f64::from(spec.encryption.rotation_days);
            match current_age_days {
                Some(age) => found.add(
                    "key.data-key rotation",
                    age <= rotation_days + 1.0,
                    format!(
                        "current version {} is {age:.1} days old (rotation every {rotation_days} days)",
                        current.unwrap_or_default()
                    ),
                ),
                None => found.add("key.data-key rotation", false, "no creation time for the current version"),
            }
        }
        Ok(None) => found.add(
            "key.data-key",
            false,
            format!("Secret {namespace}/{} is missing", tenant_key::SECRET_NAME),
        ),
        Err(e) => found.add(
            "key.data-key",
            false,
            format!("reading the wrapped data keys: {e}"),
        ),
    }
    let kms = match (provider, &status.key_arn) {
        (KeyProvider::Aws, Some(arn)) => {
            kms::posture(
                sources.cloud,
                arn,
                &uid,
                spec.encryption.key_arn.is_none(),
                &mut found,
            )
            .await
        }
        (KeyProvider::Aws, None) => {
            found.add("key.kms", false, "status.keyArn is not set yet");
            json!(null)
        }
        (KeyProvider::Local, _) => {
            json!({"provider": "local", "note": "AES-256-GCM key-encryption key in the operator's namespace; no KMS"})
        }
    };
    let keys = json!({
        "provider": provider.as_str(),
        "keyArn": status.key_arn,
        "keyVersion": status.key_version,
        "rotationDays": spec.encryption.rotation_days,
        "deletionPolicy": spec.encryption.deletion_policy,
        "kms": kms,
        "dataKeyVersions": versions,
    });
    let shred = match (provider, spec.encryption.key_arn.is_some()) {
        (KeyProvider::Local, _) => {
            "the tenant's key-encryption key and every escrowed wrapped data key are deleted"
        }
        (KeyProvider::Aws, false) => {
            "the escrowed wrapped keys are deleted, the alias removed and the KMS key scheduled for deletion (7 days, cancellable)"
        }
        (KeyProvider::Aws, true) => {
            "only the escrowed wrapped keys are deleted; the platform's key stays and can still open wrapped keys elsewhere"
        }
    };
    found.add(
        "disposal.deletion policy",
        true,
        format!(
            "{:?}: on deletion with CryptoShred, {shred}",
            spec.encryption.deletion_policy
        ),
    );

    // Network: the live policies, what they allow, and whether they are the spec's.
    let policies = Api::<NetworkPolicy>::namespaced(sources.client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .map(|l| l.items);
    let network = match (
        &policies,
        validate(
            &tenant,
            sources.operator_namespace,
            &[KeyProvider::Aws, KeyProvider::Local],
        ),
    ) {
        (Ok(live), Ok(v)) => {
            let wanted = build::build_network_policies(&v);
            let deny = live.iter().any(|p| {
                p.metadata.name.as_deref() == Some("default-deny")
                    && p.spec.as_ref().is_some_and(|s| {
                        s.pod_selector.as_ref().is_none_or(|ps| {
                            ps.match_labels.as_ref().is_none_or(|m| m.is_empty())
                                && ps.match_expressions.as_ref().is_none_or(|m| m.is_empty())
                        }) && s.policy_types.as_ref().is_some_and(|t| {
                            t.iter().any(|t| t == "Ingress") && t.iter().any(|t| t == "Egress")
                        }) && s.ingress.as_ref().is_none_or(|r| r.is_empty())
                            && s.egress.as_ref().is_none_or(|r| r.is_empty())
                    })
            });
            found.add(
                "network.default deny",
                deny,
                if deny {
                    "default-deny selects every pod, in and out, with no rule"
                } else {
                    "no default-deny policy selecting every pod in both directions"
                },
            );
            let diff = network::differences(live, &wanted);
            found.add(
                "network.as the spec builds",
                diff.is_empty(),
                if diff.is_empty() {
                    format!("{} policies, exactly the spec's", live.len())
                } else {
                    diff.join("; ")
                },
            );
            json!({"policies": live.iter().filter_map(|p| p.metadata.name.clone()).collect::<Vec<_>>(), "connections": network::connections(live)})
        }
        (Err(e), _) => {
            found.add(
                "network.readable",
                false,
                format!("listing NetworkPolicies in {namespace}: {e}"),
            );
            json!(null)
        }
        (_, Err(e)) => {
            found.add("network.valid spec", false, e.to_string());
            json!(null)
        }
    };

    // Sessions: what every media Deployment runs with, and the join-token key.
    let deployments = Api::<Deployment>::namespaced(sources.client.clone(), &namespace);
    let media = &spec.media;
    let mut region_settings = Vec::new();
    for region in &media.regions {
        let deployment_name = build::region_object_name(region);
        let env = deployments
            .get_opt(&deployment_name)
            .await
            .ok()
            .flatten()
            .map(|d| container_env(&d));
        let idle = env
            .as_ref()
            .and_then(|e| e.get(sanctum_api::env::IDLE_TIMEOUT_SECONDS).cloned());
        let longest = env
            .as_ref()
            .and_then(|e| e.get(sanctum_api::env::MAX_SESSION_MINUTES).cloned());
        let ok = idle.as_deref() == Some(media.idle_timeout_seconds.to_string().as_str())
            && longest.as_deref() == Some(media.max_session_minutes.to_string().as_str());
        found.add(
            format!("sessions.logoff.{}", region.name),
            ok,
            format!("Deployment {deployment_name}: idle timeout {}s, longest session {} min (spec {}s, {} min)",
                idle.as_deref().unwrap_or("unset"), longest.as_deref().unwrap_or("unset"), media.idle_timeout_seconds, media.max_session_minutes),
        );
        region_settings.push(json!({"region": region.name, "deployment": deployment_name, "idleTimeoutSeconds": idle, "maxSessionMinutes": longest}));
    }
    let public_key = Api::<ConfigMap>::namespaced(sources.client.clone(), &namespace)
        .get_opt(signing_key::CONFIG_MAP_NAME)
        .await;
    let key_ok = matches!(&public_key, Ok(Some(map)) if map.data.as_ref().is_some_and(|d| d.get(signing_key::PUBLIC_KEY_FILE).is_some_and(|k| k.contains("PUBLIC KEY"))));
    // Two while a rotated key's tokens and sessions are still honoured (docs/join-tokens.md).
    let published = public_key
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .and_then(|m| m.data.as_ref()?.get(signing_key::PUBLIC_KEY_FILE).cloned())
        .map_or(0, |pem| pem.matches("BEGIN PUBLIC KEY").count());
    found.add(
        "sessions.join-token key",
        key_ok,
        if key_ok {
            "an Ed25519 public key is published to the media nodes".to_string()
        } else {
            format!(
                "ConfigMap {namespace}/{} has no public key",
                signing_key::CONFIG_MAP_NAME
            )
        },
    );
    let sessions = json!({
        "idleTimeoutSeconds": media.idle_timeout_seconds,
        "maxSessionMinutes": media.max_session_minutes,
        "regions": region_settings,
        "joinTokenKeyPublished": key_ok,
        "joinTokenKeysAccepted": published,
    });

    // Recordings.
    let recordings = match Api::<Recording>::namespaced(sources.client.clone(), &namespace)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => recordings::section(&list.items, &mut found),
        Err(e) => {
            found.add(
                "recordings.readable",
                false,
                format!("listing Recordings in {namespace}: {e}"),
            );
            json!(null)
        }
    };

    let backup = backup::section(sources.cloud, spec.backup.as_ref(), &status, &mut found).await;

    // Audit chain.
    let audit = match sources.audit_bucket {
        None => {
            found.add("audit.chain", false, "no audit bucket given (--audit-bucket or SANCTUM_AUDIT_BUCKET): the chain could not be verified");
            json!(null)
        }
        Some(bucket) => {
            trail::section(sources, bucket, name, &status, since, until, &mut found).await
        }
    };

    let findings = found.0;
    let controls = controls::CONTROLS
        .iter()
        .map(|control| {
            let mine: Vec<&Finding> = findings.iter().filter(|f| control.covers(&f.id)).collect();
            let failing: Vec<String> = mine
                .iter()
                .filter(|f| !f.ok)
                .map(|f| f.id.clone())
                .collect();
            let status = if mine.is_empty() {
                "not configured"
            } else if failing.is_empty() {
                "pass"
            } else {
                "fail"
            };
            ControlStatus {
                control: *control,
                status,
                failing,
            }
        })
        .collect();
    Ok(Report {
        generated: now.to_string(),
        period: Period {
            since: since.map(|s| s.to_string()),
            until: until.map(|u| u.to_string()),
        },
        tenant: tenant_section,
        bucket,
        keys,
        network,
        sessions,
        recordings,
        backup,
        audit,
        findings,
        controls,
    })
}

/// The status (`True`, `False`, `Unknown`) of the tenant's condition `kind`, if it has one.
pub fn conditions_of(tenant: &VideoTenant, kind: &str) -> Option<String> {
    tenant
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

fn container_env(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.env.as_ref())
        .map(|env| {
            env.iter()
                .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// How long ago `time` was, in words (`3d`, `5h`, `12m`).
pub fn age(time: Timestamp, now: Timestamp) -> String {
    let d: SignedDuration = now.duration_since(time);
    let s = d.as_secs().max(0);
    match s {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s => format!("{}m", s / 60),
    }
}
