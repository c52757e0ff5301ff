//! The tenant's backup CronJob: runs `sanctum backup` on `spec.backup.schedule` with the
//! least it needs. Its pods get no API token (the wrapped keys are mounted, not read
//! through the API), run as non-root on a read-only root, and reach only DNS and the TLS
//! endpoints `spec.network.egressCIDRs` allows, like every pod of the namespace.

use sanctum_api::env;
use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, PodSpec, PodTemplateSpec, ResourceRequirements, SecretVolumeSource,
    ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sanctum_api::labels;

use super::irsa::{self, RoleTemplate};
use super::{
    AwsEnv, TenantKeyRef, common_labels, field_env, namespaced_meta, restricted_container_security,
    restricted_pod_security, tenant_selector,
};
use crate::controller::tenant::validate::Validated;

/// Component label value of the backup CronJob, its Jobs and pods.
pub const BACKUP_COMPONENT: &str = "backup";
/// Name of the CronJob and of the ServiceAccount its pods run as.
pub const BACKUP_NAME: &str = "backup";
/// Where the `tenant-data-key` Secret is mounted in backup pods.
pub const KEYS_DIR: &str = "/var/run/sanctum/tenant-key";
/// Kubernetes' default termination message path, which the result is written to.
pub const RESULT_FILE: &str = "/dev/termination-log";
/// How long a run waits for another run of the same tenant (a manual one) to finish.
pub const WAIT_SECONDS: u32 = 600;
const UID: i64 = 65532;

/// How backup pods are run: operator settings, the same for every tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupJobs {
    /// Image holding the `sanctum` binary: the operator's own.
    pub image: String,
    /// IAM role for backup pods (IRSA), so they hold only the backup's S3 rights;
    /// `{tenant}` stands for the tenant's name.
    pub role_arn: Option<RoleTemplate>,
    /// IAM role for restore-drill pods (IRSA): read the backup bucket, make and remove
    /// scratch buckets, unwrap the tenant's keys; `{tenant}` stands for the tenant's name.
    pub drill_role_arn: Option<RoleTemplate>,
    /// Audit bucket whose chain of the tenant is backed up with its recordings.
    pub audit_bucket: Option<String>,
    /// Where S3 is (the region of the recordings bucket is the destination's default) and
    /// who owns the buckets.
    pub aws: AwsEnv,
}

/// A scheduled Job of the backup component (the backup, the restore drill) and the
/// identity its pods run as.
pub struct BackupObjects {
    /// Identity of the pods: no API token, optionally an IAM role.
    pub service_account: ServiceAccount,
    /// The schedule.
    pub cron_job: CronJob,
}

/// Label selector string matching the tenant's backup objects, for pruning.
pub fn backup_objects_selector(v: &Validated) -> String {
    format!(
        "{},{}={BACKUP_COMPONENT}",
        tenant_selector(v),
        labels::COMPONENT
    )
}

/// What differs between the backup component's scheduled Jobs.
pub struct JobPod<'a> {
    /// Name of the CronJob, of its ServiceAccount and of its container.
    pub name: &'a str,
    /// IAM role of the ServiceAccount (IRSA); `{tenant}` stands for the tenant's name.
    pub role: Option<&'a RoleTemplate>,
    /// Cron schedule.
    pub schedule: &'a str,
    /// Retries of a failed run.
    pub backoff_limit: i32,
    /// The `sanctum` subcommand and its arguments.
    pub args: Vec<String>,
    /// Environment beyond the pod's name and the AWS settings.
    pub env: Vec<EnvVar>,
    /// The one Secret the container mounts, read-only, if any.
    pub mount: Option<SecretMount<'a>>,
}

/// A Secret mounted read-only into a backup-component pod.
pub struct SecretMount<'a> {
    /// The volume's name.
    pub volume: &'a str,
    /// The Secret.
    pub secret: &'a str,
    /// Where it is mounted.
    pub path: &'a str,
}

/// Builds the backup objects, or nothing when the tenant asks for no backups.
pub fn build_backup(
    v: &Validated,
    jobs: &BackupJobs,
    bucket: &str,
    key: &TenantKeyRef,
) -> Option<BackupObjects> {
    let spec = v.spec.backup.as_ref()?;
    let mut args: Vec<String> = [
        "backup",
        "--tenant",
        &v.name,
        "--keys-dir",
        KEYS_DIR,
        "--source-bucket",
        bucket,
        "--destination-bucket",
        &spec.destination.bucket,
        "--keep",
        &spec.keep.to_string(),
        "--wait-seconds",
        &WAIT_SECONDS.to_string(),
        "--result-file",
        RESULT_FILE,
    ]
    .map(String::from)
    .to_vec();
    if let Some(region) = &spec.destination.region {
        args.extend(["--destination-region".into(), region.clone()]);
    }
    let env = jobs
        .audit_bucket
        .iter()
        .map(|audit| EnvVar {
            name: env::AUDIT_BUCKET.into(),
            value: Some(audit.clone()),
            ..Default::default()
        })
        .collect();
    Some(scheduled(
        v,
        jobs,
        JobPod {
            name: BACKUP_NAME,
            role: jobs.role_arn.as_ref(),
            schedule: &spec.schedule,
            // A run still copying when the next is due finishes first (Forbid); the next
            // copies what is left. A failed copy is retried twice.
            backoff_limit: 2,
            args,
            env,
            mount: Some(SecretMount {
                volume: "tenant-key",
                secret: &key.secret,
                path: KEYS_DIR,
            }),
        },
    ))
}

/// The CronJob and ServiceAccount of one of the backup component's Jobs: runs never
/// overlap, runs missed by more than an hour are skipped, pods get no API token and run
/// as non-root on a read-only root.
pub fn scheduled(v: &Validated, jobs: &BackupJobs, pod: JobPod<'_>) -> BackupObjects {
    let mut sa_meta = meta(v, pod.name);
    sa_meta.annotations = irsa::annotations(pod.role, &v.name);
    let pod_meta = || ObjectMeta {
        labels: Some(pod_labels(v)),
        ..Default::default()
    };
    BackupObjects {
        service_account: ServiceAccount {
            metadata: sa_meta,
            automount_service_account_token: Some(false),
            ..Default::default()
        },
        cron_job: CronJob {
            metadata: meta(v, pod.name),
            spec: Some(CronJobSpec {
                schedule: pod.schedule.to_string(),
                concurrency_policy: Some("Forbid".into()),
                starting_deadline_seconds: Some(3600),
                successful_jobs_history_limit: Some(3),
                failed_jobs_history_limit: Some(3),
                job_template: JobTemplateSpec {
                    metadata: Some(pod_meta()),
                    spec: Some(JobSpec {
                        backoff_limit: Some(pod.backoff_limit),
                        active_deadline_seconds: Some(6 * 3600),
                        template: PodTemplateSpec {
                            metadata: Some(pod_meta()),
                            spec: Some(pod_spec(jobs, pod)),
                        },
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

fn meta(v: &Validated, name: &str) -> ObjectMeta {
    let mut meta = namespaced_meta(v, name);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::COMPONENT.into(), BACKUP_COMPONENT.into());
    meta
}

/// Every pod of the component carries its label: the same egress (S3 and KMS through
/// `spec.network.egressCIDRs`) and the same pruning.
fn pod_labels(v: &Validated) -> BTreeMap<String, String> {
    let mut labels = common_labels(v);
    labels.insert(labels::COMPONENT.into(), BACKUP_COMPONENT.into());
    labels
}

fn pod_spec(jobs: &BackupJobs, pod: JobPod<'_>) -> PodSpec {
    let mut env = vec![field_env(env::POD_NAME, "metadata.name")];
    env.extend(jobs.aws.env());
    env.extend(pod.env);
    let q = |s: &str| Quantity(s.to_string());
    let container = Container {
        name: pod.name.into(),
        image: Some(jobs.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(pod.args),
        env: Some(env),
        termination_message_path: Some(RESULT_FILE.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), q("100m")),
                ("memory".into(), q("128Mi")),
            ])),
            limits: Some(BTreeMap::from([
                ("cpu".into(), q("1")),
                ("memory".into(), q("256Mi")),
            ])),
            ..Default::default()
        }),
        security_context: Some(restricted_container_security()),
        volume_mounts: pod.mount.as_ref().map(|m| {
            vec![VolumeMount {
                name: m.volume.into(),
                mount_path: m.path.into(),
                read_only: Some(true),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: Some(pod.name.into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(restricted_pod_security(UID)),
        containers: vec![container],
        volumes: pod.mount.as_ref().map(|m| {
            vec![Volume {
                name: m.volume.into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(m.secret.into()),
                    default_mode: Some(0o440),
                    ..Default::default()
                }),
                ..Default::default()
            }]
        }),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;
    use sanctum_api::KeyProvider;

    fn key() -> TenantKeyRef {
        TenantKeyRef {
            provider: KeyProvider::Local,
            arn: "local".into(),
            version: 1,
            secret: "tenant-data-key".into(),
        }
    }

    pub(crate) fn jobs() -> BackupJobs {
        BackupJobs {
            image: "ghcr.io/sanctum-dev/sanctum:0.1.0".into(),
            role_arn: Some(
                "arn:aws:iam::111122223333:role/sanctum-backup-{tenant}"
                    .parse()
                    .expect("role"),
            ),
            drill_role_arn: Some(
                "arn:aws:iam::111122223333:role/sanctum-drill-{tenant}"
                    .parse()
                    .expect("role"),
            ),
            audit_bucket: Some("sanctum-audit".into()),
            aws: AwsEnv {
                region: "us-east-1".into(),
                owners: Some(sanctum_cloud::BucketOwners::new("111122223333").expect("valid")),
                ..Default::default()
            },
        }
    }

    fn with_backup(region: Option<&str>) -> Validated {
        let mut v = fixtures::validated("clinic-a");
        v.spec.backup = Some(
            serde_json::from_value(serde_json::json!({
                "schedule": "15 3 * * *",
                "destination": {"bucket": "dr-backups", "region": region},
                "keep": 7
            }))
            .expect("backup spec"),
        );
        v
    }

    fn pod_of(cron: CronJob) -> PodSpec {
        let job = cron.spec.expect("spec").job_template.spec.expect("job");
        job.template.spec.expect("pod")
    }

    #[test]
    fn no_backup_spec_builds_nothing() {
        let v = fixtures::validated("clinic-a");
        assert!(build_backup(&v, &jobs(), "bucket", &key()).is_none());
    }

    #[test]
    fn the_job_runs_the_backup_of_this_tenant_from_the_spec() {
        let v = with_backup(Some("us-west-2"));
        let objects = build_backup(&v, &jobs(), "sanctum-clinic-a-1234", &key()).expect("built");
        let cron = objects.cron_job.spec.clone().expect("spec");
        assert_eq!(cron.schedule, "15 3 * * *");
        assert_eq!(cron.concurrency_policy.as_deref(), Some("Forbid"));
        let pod = pod_of(objects.cron_job);
        let c = &pod.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("ghcr.io/sanctum-dev/sanctum:0.1.0")
        );
        let args = c.args.clone().expect("args").join(" ");
        for expected in [
            "backup --tenant clinic-a",
            "--keys-dir /var/run/sanctum/tenant-key",
            "--source-bucket sanctum-clinic-a-1234",
            "--destination-bucket dr-backups",
            "--keep 7",
            "--result-file /dev/termination-log",
            "--destination-region us-west-2",
        ] {
            assert!(args.contains(expected), "{expected} missing from {args}");
        }
        let env: BTreeMap<_, _> = c
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.clone()))
            .collect();
        assert_eq!(
            env["SANCTUM_AUDIT_BUCKET"].as_deref(),
            Some("sanctum-audit")
        );
        assert_eq!(env["AWS_REGION"].as_deref(), Some("us-east-1"));
        assert!(!env.contains_key("SANCTUM_AWS_ENDPOINT"), "AWS needs none");
        assert_eq!(
            c.volume_mounts.as_ref().expect("mounts")[0].mount_path,
            KEYS_DIR
        );
        let without_region = build_backup(&with_backup(None), &jobs(), "b", &key())
            .expect("built")
            .cron_job;
        let args = pod_of(without_region).containers[0]
            .args
            .clone()
            .expect("args");
        assert!(!args.contains(&"--destination-region".to_string()));
    }

    #[test]
    fn backup_pods_are_least_privilege() {
        let v = with_backup(None);
        let objects = build_backup(&v, &jobs(), "b", &key()).expect("built");
        assert_eq!(
            objects.service_account.automount_service_account_token,
            Some(false)
        );
        assert_eq!(
            objects
                .service_account
                .metadata
                .annotations
                .expect("annotations")[irsa::ROLE_ARN_ANNOTATION],
            "arn:aws:iam::111122223333:role/sanctum-backup-clinic-a",
            "the tenant's own role"
        );
        let pod = pod_of(objects.cron_job);
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.service_account_name.as_deref(), Some(BACKUP_NAME));
        let security = pod.containers[0]
            .security_context
            .clone()
            .expect("security");
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".to_string()])
        );
        assert_eq!(
            pod.security_context.and_then(|s| s.run_as_non_root),
            Some(true)
        );
        let volumes = pod.volumes.expect("volumes");
        assert_eq!(volumes.len(), 1, "only the wrapped keys are mounted");
        assert!(
            pod.containers[0].volume_mounts.as_ref().expect("mounts")[0]
                .read_only
                .expect("set")
        );
    }
}
