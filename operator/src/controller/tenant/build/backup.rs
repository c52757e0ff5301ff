//! The tenant's backup CronJob: runs `sanctum backup` on `spec.backup.schedule` with the
//! least it needs. Its pods get no API token (the wrapped keys are mounted, not read
//! through the API), run as non-root on a read-only root, and reach only DNS and the TLS
//! endpoints `spec.network.egressCIDRs` allows, like every pod of the namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, Pod, PodSpec, PodTemplateSpec, ResourceRequirements, SecretVolumeSource,
    ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use sanctum_api::{BackupSpec, labels};

use super::{
    AwsEnv, TenantKeyRef, common_labels, field_env, namespaced_meta, restricted_container_security,
    restricted_pod_security, tenant_selector,
};
use crate::controller::tenant::status::BackupRun;
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
/// The annotation EKS reads to give a ServiceAccount's pods an IAM role (IRSA).
pub const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
const UID: i64 = 65532;

/// How backup pods are run: operator settings, the same for every tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupJobs {
    /// Image holding the `sanctum` binary: the operator's own.
    pub image: String,
    /// IAM role for backup pods (IRSA), so they hold only the backup's S3 rights.
    pub role_arn: Option<String>,
    /// Audit bucket whose chain of the tenant is backed up with its recordings.
    pub audit_bucket: Option<String>,
    /// Where S3 is (the region of the recordings bucket is the destination's default) and
    /// who owns the buckets.
    pub aws: AwsEnv,
}

/// The backup objects of a tenant with `spec.backup`.
pub struct BackupObjects {
    /// Identity of backup pods: no API token, optionally an IAM role.
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

/// Builds the backup objects, or nothing when the tenant asks for no backups.
pub fn build_backup(
    v: &Validated,
    jobs: &BackupJobs,
    bucket: &str,
    key: &TenantKeyRef,
) -> Option<BackupObjects> {
    let spec = v.spec.backup.as_ref()?;
    let mut sa_meta = meta(v);
    if let Some(arn) = &jobs.role_arn {
        sa_meta.annotations = Some(BTreeMap::from([(
            ROLE_ARN_ANNOTATION.to_string(),
            arn.clone(),
        )]));
    }
    Some(BackupObjects {
        service_account: ServiceAccount {
            metadata: sa_meta,
            automount_service_account_token: Some(false),
            ..Default::default()
        },
        cron_job: CronJob {
            metadata: meta(v),
            spec: Some(CronJobSpec {
                schedule: spec.schedule.clone(),
                // A run still copying when the next is due finishes first; the next
                // copies what is left. Runs missed by more than an hour are skipped.
                concurrency_policy: Some("Forbid".into()),
                starting_deadline_seconds: Some(3600),
                successful_jobs_history_limit: Some(3),
                failed_jobs_history_limit: Some(3),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(pod_labels(v)),
                        ..Default::default()
                    }),
                    spec: Some(JobSpec {
                        backoff_limit: Some(2),
                        active_deadline_seconds: Some(6 * 3600),
                        template: PodTemplateSpec {
                            metadata: Some(ObjectMeta {
                                labels: Some(pod_labels(v)),
                                ..Default::default()
                            }),
                            spec: Some(pod_spec(v, spec, jobs, bucket, key)),
                        },
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        },
    })
}

/// The newest Job of `cron_job` that completed or failed, as the status reports it; Jobs
/// of other owners (even with the same labels) are not this tenant's backups.
pub fn newest_finished(cron_job: &CronJob, jobs: &[Job]) -> Option<BackupRun> {
    let uid = cron_job.metadata.uid.as_deref()?;
    jobs.iter()
        .filter(|job| job.owner_references().iter().any(|o| o.uid == uid))
        .filter_map(|job| {
            let conditions = job.status.as_ref()?.conditions.as_ref()?;
            let done = conditions
                .iter()
                .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")?;
            let succeeded = done.type_ == "Complete";
            Some(BackupRun {
                job: job.name_any(),
                finished: done.last_transition_time.clone()?,
                succeeded,
                objects: None,
                error: (!succeeded).then(|| {
                    let reason = done.reason.as_deref().unwrap_or("Failed");
                    match &done.message {
                        Some(message) => format!("{reason}: {message}"),
                        None => reason.to_string(),
                    }
                }),
            })
        })
        .max_by(|a, b| a.finished.0.cmp(&b.finished.0))
}

/// Most of a failure message worth putting in an Event.
const ERROR_CHARS: usize = 400;

/// Fills in the object count (or the error) from the termination message of the run's
/// last finished pod: one line of JSON written by `sanctum backup --result-file`, or the
/// log tail when the process died before writing it.
pub fn read_result(run: &mut BackupRun, pods: &[Pod]) {
    let last = pods
        .iter()
        .filter_map(|pod| {
            let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
            let terminated = statuses
                .iter()
                .find(|s| s.name == BACKUP_NAME)?
                .state
                .as_ref()?
                .terminated
                .clone()?;
            Some(terminated)
        })
        .max_by(|a, b| {
            let at = |t: &k8s_openapi::api::core::v1::ContainerStateTerminated| {
                t.finished_at.as_ref().map(|f| f.0)
            };
            at(a).cmp(&at(b))
        });
    let Some(message) = last.and_then(|t| t.message) else {
        return;
    };
    let result: Option<serde_json::Value> = serde_json::from_str(message.trim()).ok();
    if run.succeeded {
        run.objects = result.as_ref().and_then(|r| r["objects"].as_i64());
    } else {
        let error = result
            .as_ref()
            .and_then(|r| r["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| message.trim().to_string());
        run.error = Some(error.chars().take(ERROR_CHARS).collect());
    }
}

fn meta(v: &Validated) -> ObjectMeta {
    let mut meta = namespaced_meta(v, BACKUP_NAME);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(labels::COMPONENT.into(), BACKUP_COMPONENT.into());
    meta
}

fn pod_labels(v: &Validated) -> BTreeMap<String, String> {
    let mut labels = common_labels(v);
    labels.insert(labels::COMPONENT.into(), BACKUP_COMPONENT.into());
    labels
}

fn pod_spec(
    v: &Validated,
    spec: &BackupSpec,
    jobs: &BackupJobs,
    bucket: &str,
    key: &TenantKeyRef,
) -> PodSpec {
    PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: Some(BACKUP_NAME.into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(restricted_pod_security(UID)),
        containers: vec![container(v, spec, jobs, bucket)],
        volumes: Some(vec![Volume {
            name: "tenant-key".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(key.secret.clone()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn container(v: &Validated, spec: &BackupSpec, jobs: &BackupJobs, bucket: &str) -> Container {
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
    let value = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    };
    let mut env = vec![field_env("POD_NAME", "metadata.name")];
    env.extend(jobs.aws.env());
    if let Some(audit) = &jobs.audit_bucket {
        env.push(value("SANCTUM_AUDIT_BUCKET", audit));
    }
    let q = |s: &str| Quantity(s.to_string());
    Container {
        name: BACKUP_NAME.into(),
        image: Some(jobs.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
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
        volume_mounts: Some(vec![VolumeMount {
            name: "tenant-key".into(),
            mount_path: KEYS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
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

    fn jobs() -> BackupJobs {
        BackupJobs {
            image: "ghcr.io/sanctum-dev/sanctum:0.1.0".into(),
            role_arn: Some("arn:aws:iam::111122223333:role/sanctum-backup".into()),
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

    fn job(name: &str, owner: &str, condition: Option<(&str, i64)>) -> Job {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name,
                "ownerReferences": [{
                    "apiVersion": "batch/v1", "kind": "CronJob", "name": "backup", "uid": owner
                }]
            },
            "status": {
                "conditions": condition.map(|(type_, at)| vec![serde_json::json!({
                    "type": type_,
                    "status": "True",
                    "reason": if type_ == "Failed" { "BackoffLimitExceeded" } else { "" },
                    "lastTransitionTime": k8s_openapi::jiff::Timestamp::from_second(at)
                        .expect("valid").to_string()
                })]).unwrap_or_default()
            }
        }))
        .expect("a job")
    }

    fn cron(uid: &str) -> CronJob {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "backup", "uid": uid}}))
            .expect("a cron job")
    }

    fn pod(message: Option<&str>, finished: i64) -> Pod {
        serde_json::from_value(serde_json::json!({
            "status": {"containerStatuses": [{
                "name": "backup", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {
                    "exitCode": 0, "message": message,
                    "finishedAt": k8s_openapi::jiff::Timestamp::from_second(finished)
                        .expect("valid").to_string()
                }}
            }]}
        }))
        .expect("a pod")
    }

    #[test]
    fn the_newest_finished_job_of_this_cron_job_is_the_last_backup() {
        let jobs = [
            job("backup-1", "cron-uid", Some(("Complete", 1_800_000_000))),
            job("backup-2", "cron-uid", Some(("Failed", 1_800_086_400))),
            job("backup-3", "cron-uid", None),
            job("other", "someone-else", Some(("Complete", 1_900_000_000))),
        ];
        let run = newest_finished(&cron("cron-uid"), &jobs).expect("a finished run");
        assert_eq!(run.job, "backup-2");
        assert!(!run.succeeded);
        assert_eq!(run.error.as_deref(), Some("BackoffLimitExceeded"));
        assert!(
            newest_finished(&cron("cron-uid"), &jobs[2..3]).is_none(),
            "running"
        );
        assert!(
            newest_finished(&cron("new-uid"), &jobs).is_none(),
            "Jobs of a deleted CronJob are not this one's"
        );
    }

    #[test]
    fn the_result_comes_from_the_termination_message() {
        let jobs = [job("backup-1", "u", Some(("Complete", 1_800_000_000)))];
        let mut run = newest_finished(&cron("u"), &jobs).expect("finished");
        let pods = [
            pod(Some(r#"{"objects":3}"#), 1_799_999_000),
            pod(
                Some(r#"{"backup":"x","objects":42,"copied":2}"#),
                1_799_999_990,
            ),
        ];
        read_result(&mut run, &pods);
        assert_eq!(run.objects, Some(42), "the last pod's message");

        let jobs = [job("backup-2", "u", Some(("Failed", 1_800_000_000)))];
        let mut failed = newest_finished(&cron("u"), &jobs).expect("finished");
        read_result(
            &mut failed,
            &[pod(Some(r#"{"error":"bucket dr-backups not found"}"#), 1)],
        );
        assert_eq!(failed.error.as_deref(), Some("bucket dr-backups not found"));
        let mut from_logs = newest_finished(&cron("u"), &jobs).expect("finished");
        read_result(&mut from_logs, &[pod(Some(&"panic ".repeat(200)), 1)]);
        assert_eq!(
            from_logs.error.expect("log tail").chars().count(),
            ERROR_CHARS,
            "a log tail is cut for the Event"
        );
        let mut silent = newest_finished(&cron("u"), &jobs).expect("finished");
        read_result(&mut silent, &[pod(None, 1)]);
        assert_eq!(silent.error.as_deref(), Some("BackoffLimitExceeded"));
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
                .expect("annotations")[ROLE_ARN_ANNOTATION],
            "arn:aws:iam::111122223333:role/sanctum-backup"
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
