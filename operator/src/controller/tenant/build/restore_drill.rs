//! The tenant's restore-drill CronJob: runs `sanctum restore-drill` on
//! `spec.backup.restoreDrill.schedule`. Like backup pods, its pods get no API token, run
//! as non-root on a read-only root and reach only what the namespace's egress allows.
//! They carry no key of their own: the wrapped keys come from the backup, and only the
//! local provider's master key (what media nodes of that provider mount too) is mounted.

use k8s_openapi::api::core::v1::EnvVar;
use sanctum_api::{KeyProvider, env};

use super::TenantKeyRef;
use super::backup::{BackupJobs, BackupObjects, JobPod, RESULT_FILE, SecretMount, scheduled};
use super::deployment::LOCAL_KEY_DIR;
use super::tenant_key::{LOCAL_KEY_FILE, LOCAL_KEY_SECRET};
use crate::controller::tenant::validate::Validated;

/// Name of the CronJob, of the ServiceAccount its pods run as, and of their container.
pub const DRILL_NAME: &str = "restore-drill";

/// Builds the drill objects, or nothing when the tenant asks for no drills.
pub fn build_drill(v: &Validated, jobs: &BackupJobs, key: &TenantKeyRef) -> Option<BackupObjects> {
    let backup = v.spec.backup.as_ref()?;
    let spec = backup.restore_drill.as_ref()?;
    let local = key.provider == KeyProvider::Local;
    let mut args: Vec<String> = [
        "restore-drill",
        "--tenant",
        &v.name,
        "--backup-bucket",
        &backup.destination.bucket,
        "--scratch-bucket-prefix",
        &spec.scratch_bucket_prefix,
        "--result-file",
        RESULT_FILE,
        "--key-provider",
        if local { "local" } else { "aws" },
    ]
    .map(String::from)
    .to_vec();
    if !local {
        args.extend(["--tenant-uid".into(), v.owner.uid.clone()]);
    }
    if let Some(region) = &backup.destination.region {
        args.extend(["--backup-region".into(), region.clone()]);
    }
    let env = if local {
        vec![EnvVar {
            name: env::LOCAL_MASTER_KEY_FILE.into(),
            value: Some(format!("{LOCAL_KEY_DIR}/{LOCAL_KEY_FILE}")),
            ..Default::default()
        }]
    } else {
        Vec::new()
    };
    Some(scheduled(
        v,
        jobs,
        JobPod {
            name: DRILL_NAME,
            role: jobs.drill_role_arn.as_ref(),
            schedule: &spec.schedule,
            // A failed drill is a finding to report, not a flake to retry until it
            // passes: one attempt per schedule.
            backoff_limit: 0,
            args,
            env,
            mount: local.then_some(SecretMount {
                volume: "local-key",
                secret: LOCAL_KEY_SECRET,
                path: LOCAL_KEY_DIR,
            }),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use k8s_openapi::api::batch::v1::CronJob;
    use k8s_openapi::api::core::v1::PodSpec;

    use crate::controller::tenant::build::backup::tests::jobs;
    use crate::controller::tenant::build::irsa;
    use crate::controller::tenant::fixtures;

    fn key(provider: KeyProvider) -> TenantKeyRef {
        TenantKeyRef {
            provider,
            arn: "arn".into(),
            version: 1,
            secret: "tenant-data-key".into(),
        }
    }

    fn with_drill(drill: Option<serde_json::Value>) -> Validated {
        let mut v = fixtures::validated("clinic-a");
        v.spec.backup = Some(
            serde_json::from_value(serde_json::json!({
                "schedule": "15 3 * * *",
                "destination": {"bucket": "dr-backups", "region": "us-west-2"},
                "restoreDrill": drill,
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
    fn no_drill_without_restore_drill() {
        assert!(build_drill(&with_drill(None), &jobs(), &key(KeyProvider::Aws)).is_none());
        let v = fixtures::validated("clinic-a");
        assert!(build_drill(&v, &jobs(), &key(KeyProvider::Aws)).is_none());
    }

    #[test]
    fn the_drill_runs_once_per_schedule_on_the_backup_bucket_with_the_tenant_context() {
        let drill = serde_json::json!({"schedule": "0 4 * * 0", "scratchBucketPrefix": "drill-a"});
        let v = with_drill(Some(drill));
        let objects = build_drill(&v, &jobs(), &key(KeyProvider::Aws)).expect("built");
        let cron = objects.cron_job.spec.clone().expect("spec");
        assert_eq!(cron.schedule, "0 4 * * 0");
        assert_eq!(cron.concurrency_policy.as_deref(), Some("Forbid"));
        let job = cron.job_template.spec.clone().expect("job");
        assert_eq!(job.backoff_limit, Some(0), "a failed drill is not retried");
        let pod = pod_of(objects.cron_job);
        let args = pod.containers[0].args.clone().expect("args").join(" ");
        for expected in [
            "restore-drill --tenant clinic-a",
            "--backup-bucket dr-backups",
            "--backup-region us-west-2",
            "--scratch-bucket-prefix drill-a",
            "--key-provider aws",
            &format!("--tenant-uid {}", v.owner.uid),
            "--result-file /dev/termination-log",
        ] {
            assert!(args.contains(expected), "{expected} missing from {args}");
        }
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.service_account_name.as_deref(), Some(DRILL_NAME));
        assert!(pod.volumes.is_none(), "the aws provider mounts nothing");
        assert_eq!(
            objects
                .service_account
                .metadata
                .annotations
                .expect("annotations")[irsa::ROLE_ARN_ANNOTATION],
            "arn:aws:iam::111122223333:role/sanctum-drill-clinic-a",
            "a role of its own, not the backup's"
        );
        assert_eq!(
            objects.service_account.automount_service_account_token,
            Some(false)
        );
        let security = pod.containers[0]
            .security_context
            .clone()
            .expect("security");
        assert_eq!(security.read_only_root_filesystem, Some(true));
    }

    #[test]
    fn the_local_provider_mounts_only_its_master_key() {
        let drill = serde_json::json!({"schedule": "@weekly", "scratchBucketPrefix": "drill-a"});
        let objects = build_drill(&with_drill(Some(drill)), &jobs(), &key(KeyProvider::Local))
            .expect("built");
        let pod = pod_of(objects.cron_job);
        let volumes = pod.volumes.clone().expect("volumes");
        assert_eq!(volumes.len(), 1);
        assert_eq!(
            volumes[0]
                .secret
                .as_ref()
                .and_then(|s| s.secret_name.as_deref()),
            Some(LOCAL_KEY_SECRET)
        );
        let args = pod.containers[0].args.clone().expect("args").join(" ");
        assert!(args.contains("--key-provider local") && !args.contains("--tenant-uid"));
        let env: BTreeMap<_, _> = pod.containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.as_str(), e.value.clone()))
            .collect();
        assert_eq!(
            env[env::LOCAL_MASTER_KEY_FILE].as_deref(),
            Some("/etc/sanctum/local-key/key")
        );
    }
}
