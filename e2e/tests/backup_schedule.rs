//! The tenant's backup CronJob end to end: `spec.backup` becomes a least-privilege
//! CronJob; a Job made from it runs the real `sanctum backup` against the emulator; its
//! result (object count, or the error) reaches the tenant's status, an Event and the
//! metrics; removing `spec.backup` removes the CronJob.
//!
//! kwok's nodes run no containers, so this test does the one thing a kubelet would: it
//! runs the pod's container as a process on this machine (the pod's args and env, the
//! mounted Secret as files, the same AWS credentials the node gives every pod) and
//! reports the exit code and termination message in the pod's status. Everything else,
//! Job to pod to Job condition, is the real controller manager's work.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use aws_sdk_s3::primitives::ByteStream;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use sanctum_api::VideoTenant;
use sanctum_e2e::{
    Cluster, Operator, cloud, condition, example_tenant, unique, wait_condition, wait_event,
    wait_for, wait_gone, with_logs, workspace_binary,
};
use sanctum_operator::cloud::Cloud;
use sanctum_operator::cloud::objects::{delete_all_versions, list_keys};

/// kwok completes a Job's pod as soon as it runs; the local control plane's kwok leaves
/// pods with this annotation alone (e2e/controlplane/cluster.sh `kwok_stages`), so the
/// pod's status says what the process really did.
const RUN_ON_HOST: &str = "e2e.sanctum.dev/run-on-host";

#[tokio::test]
async fn scheduled_backups_run_with_least_privilege_and_report_their_result() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("bkp");
    let op = Operator::start(&run).await?;
    let cloud = cloud().await?;
    let dest = format!("dr-{run}");
    cloud.s3.create_bucket().bucket(&dest).send().await?;
    let result = with_logs(&op, || scenario(&cluster, &op, &cloud, &run, &dest)).await;
    // The destination is not the operator's: clean it up whatever happened.
    remove_bucket(&cloud, &dest).await.ok();
    result
}

async fn scenario(
    cluster: &Cluster,
    op: &Operator,
    cloud: &Cloud,
    run: &str,
    dest: &str,
) -> Result<()> {
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let mut tenant = example_tenant(run, run)?;
    // Once a year at 03:00 on 1 January: the schedule is real, and never fires during the
    // test; runs are made from the CronJob as `kubectl create job --from` does.
    tenant.spec.backup = Some(serde_json::from_value(serde_json::json!({
        "schedule": "0 3 1 1 *",
        "destination": {"bucket": dest},
        "keep": 5
    }))?);
    tenants.create(&PostParams::default(), &tenant).await?;
    let ready = wait_condition(&tenants, run, "Ready", "True", Duration::from_secs(120)).await?;
    let scheduled = condition(&ready, "BackupScheduled").context("BackupScheduled")?;
    ensure!(
        scheduled.status == "True" && scheduled.reason == "Scheduled",
        "{scheduled:?}"
    );
    let status = ready.status.clone().unwrap_or_default();
    let ns = status.namespace.context("status.namespace")?;
    let bucket = status.bucket.context("status.bucket")?;

    // What the operator made: a CronJob of the tenant with a pod that cannot reach the API.
    let cron_jobs = Api::<CronJob>::namespaced(cluster.client.clone(), &ns);
    let cron = cron_jobs.get("backup").await?;
    ensure!(
        cron.owner_references()
            .iter()
            .any(|o| o.kind == "VideoTenant" && o.name == run),
        "the CronJob is owned by the tenant"
    );
    let spec = cron.spec.clone().context("CronJob spec")?;
    ensure!(spec.schedule == "0 3 1 1 *" && spec.concurrency_policy.as_deref() == Some("Forbid"));
    let pod_spec = spec
        .job_template
        .spec
        .as_ref()
        .and_then(|j| j.template.spec.as_ref())
        .context("pod template")?;
    ensure!(pod_spec.automount_service_account_token == Some(false));
    let sa = Api::<ServiceAccount>::namespaced(cluster.client.clone(), &ns)
        .get("backup")
        .await?;
    ensure!(sa.automount_service_account_token == Some(false));
    // Backup pods get only the namespace-wide egress: DNS and TLS to egressCIDRs.
    let policies = Api::<NetworkPolicy>::namespaced(cluster.client.clone(), &ns);
    let tls = policies.get("allow-tls-egress").await?;
    ensure!(
        tls.spec
            .and_then(|s| s.pod_selector)
            .is_some_and(|s| s.match_labels.is_none() && s.match_expressions.is_none()),
        "the TLS egress allowance covers every pod of the namespace, backup pods included"
    );

    // Three recording objects to back up.
    for i in 0..3 {
        cloud
            .s3
            .put_object()
            .bucket(&bucket)
            .key(format!("recordings/visit-{i}.webm.enc"))
            .body(ByteStream::from(vec![i as u8; 4096]))
            .send()
            .await?;
    }

    let kubelet = HostKubelet::new(cluster, &ns).await?;
    let job = create_job_from(cluster, &cron, "backup-manual-1", None).await?;
    let (code, message) = kubelet.run_job(&job).await?;
    ensure!(code == 0, "backup exited {code}: {message}");
    let after = wait_for_outcome(&tenants, run, "Succeeded").await?;
    let status = after.status.clone().unwrap_or_default();
    ensure!(
        status.last_backup_objects == Some(3),
        "lastBackupObjects {:?}",
        status.last_backup_objects
    );
    ensure!(status.last_backup_time.is_some());
    let manifests = list_keys(&cloud.s3, dest, &format!("{run}/manifests/")).await?;
    ensure!(manifests.len() == 1, "one manifest: {manifests:?}");
    let copies = list_keys(&cloud.s3, dest, &format!("{run}/objects/")).await?;
    ensure!(copies.len() == 3, "three copies: {copies:?}");
    wait_tenant_event(cluster, run, "BackupSucceeded", "3 recording objects").await?;
    ensure!(
        op.counter(
            "sanctum_backups_total",
            &format!("tenant=\"{run}\",outcome=\"Succeeded\"")
        )
        .await?
            == 1
    );
    ensure!(
        op.counter(
            "sanctum_backup_last_success_timestamp_seconds",
            &format!("tenant=\"{run}\"")
        )
        .await?
            > 0
    );
    // Reported once: with nothing changing, the operator writes nothing more.
    let settled = op
        .settle(Duration::from_secs(8), Duration::from_secs(60))
        .await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    ensure!(
        op.writes().await? == settled,
        "writes after the backup was reported"
    );

    // A run that fails (its destination is gone) is reported as failed, with its error.
    remove_bucket(cloud, dest).await?;
    // One attempt instead of the template's retries, to keep the test short.
    let job = create_job_from(cluster, &cron, "backup-manual-2", Some(0)).await?;
    let (code, message) = kubelet.run_job(&job).await?;
    ensure!(
        code != 0,
        "a backup to a missing bucket must fail: {message}"
    );
    let failed = wait_for_outcome(&tenants, run, "Failed").await?;
    let scheduled = condition(&failed, "BackupScheduled").context("BackupScheduled")?;
    ensure!(scheduled.reason == "LastBackupFailed", "{scheduled:?}");
    ensure!(
        condition(&failed, "Ready").is_some_and(|c| c.status == "True"),
        "a failed backup is alerted on, the tenant stays Ready"
    );
    wait_tenant_event(cluster, run, "BackupFailed", dest).await?;
    ensure!(
        op.counter(
            "sanctum_backups_total",
            &format!("tenant=\"{run}\",outcome=\"Failed\"")
        )
        .await?
            == 1
    );
    cloud.s3.create_bucket().bucket(dest).send().await?;

    // No spec.backup, no CronJob and no backup identity.
    tenants
        .patch(
            run,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"backup": null}})),
        )
        .await?;
    wait_gone(&cron_jobs, "backup", Duration::from_secs(60)).await?;
    wait_gone(
        &Api::<ServiceAccount>::namespaced(cluster.client.clone(), &ns),
        "backup",
        Duration::from_secs(30),
    )
    .await?;
    let t = wait_condition(&tenants, run, "Ready", "True", Duration::from_secs(60)).await?;
    ensure!(condition(&t, "BackupScheduled").is_some_and(|c| c.reason == "NotConfigured"));

    tenants.delete(run, &Default::default()).await?;
    wait_gone(&tenants, run, Duration::from_secs(120)).await?;
    Ok(())
}

/// A Job from the CronJob's template, owned by the CronJob: what
/// `kubectl create job --from=cronjob/backup` makes (plus the kwok annotation).
async fn create_job_from(
    cluster: &Cluster,
    cron: &CronJob,
    name: &str,
    backoff_limit: Option<i32>,
) -> Result<Job> {
    let template = cron
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .context("CronJob spec")?;
    let mut spec = template.spec.context("job template spec")?;
    if backoff_limit.is_some() {
        spec.backoff_limit = backoff_limit;
    }
    spec.template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(RUN_ON_HOST.into(), "true".into());
    let job = Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: cron.namespace(),
            labels: template.metadata.and_then(|m| m.labels),
            annotations: Some(BTreeMap::from([(
                "cronjob.kubernetes.io/instantiate".into(),
                "manual".into(),
            )])),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cron.name_any(),
                uid: cron.uid().context("CronJob uid")?,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    };
    let ns = cron.namespace().context("namespace")?;
    Ok(Api::<Job>::namespaced(cluster.client.clone(), &ns)
        .create(&PostParams::default(), &job)
        .await?)
}

/// Runs the containers of pods scheduled onto kwok's nodes as local processes.
struct HostKubelet {
    pods: Api<Pod>,
    secrets: Api<Secret>,
    jobs: Api<Job>,
}

impl HostKubelet {
    async fn new(cluster: &Cluster, ns: &str) -> Result<Self> {
        Ok(Self {
            pods: Api::namespaced(cluster.client.clone(), ns),
            secrets: Api::namespaced(cluster.client.clone(), ns),
            jobs: Api::namespaced(cluster.client.clone(), ns),
        })
    }

    /// Runs every pod the Job controller starts for `job` until the Job has finished;
    /// returns the last exit code and termination message.
    async fn run_job(&self, job: &Job) -> Result<(i32, String)> {
        let name = job.name_any();
        let mut done = Vec::new();
        let mut last = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let current = self.jobs.get(&name).await?;
            let finished = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"
                    })
                });
            if finished {
                return last.context("the Job finished without a pod run here");
            }
            let pods = self
                .pods
                .list(&ListParams::default().labels(&format!("job-name={name}")))
                .await?;
            for pod in pods.items {
                let running =
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if running && !done.contains(&pod.name_any()) {
                    done.push(pod.name_any());
                    last = Some(self.run_pod(&pod).await?);
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("Job {name} did not finish; pods run: {done:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn run_pod(&self, pod: &Pod) -> Result<(i32, String)> {
        let spec = pod.spec.as_ref().context("pod spec")?;
        ensure!(spec.containers.len() == 1, "one container");
        let container = &spec.containers[0];
        let root = tempfile::tempdir()?;
        // Mounts: each volume's directory on this machine, in place of its mount path.
        let mut paths: Vec<(String, String)> = Vec::new();
        for mount in container.volume_mounts.iter().flatten() {
            let volume = spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .context("mounted volume")?;
            let dir = root.path().join(&volume.name);
            std::fs::create_dir(&dir)?;
            let secret = volume
                .secret
                .as_ref()
                .and_then(|s| s.secret_name.clone())
                .context("only Secret volumes are mounted by backup pods")?;
            let secret = self.secrets.get(&secret).await?;
            for (key, value) in secret.data.unwrap_or_default() {
                std::fs::write(dir.join(key), value.0)?;
            }
            paths.push((mount.mount_path.clone(), path(&dir)?));
        }
        let termination = root.path().join("termination-log");
        std::fs::write(&termination, "")?;
        let message_path = container
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        paths.push((message_path, path(&termination)?));
        let args: Vec<String> = container
            .args
            .iter()
            .flatten()
            .map(|arg| {
                paths
                    .iter()
                    .find(|(from, _)| arg == from || arg.starts_with(&format!("{from}/")))
                    .map(|(from, to)| arg.replacen(from.as_str(), to, 1))
                    .unwrap_or_else(|| arg.clone())
            })
            .collect();
        let mut command = tokio::process::Command::new(workspace_binary("sanctum")?);
        command.env_clear().args(&args);
        for env in container.env.iter().flatten() {
            let value = match (&env.value, &env.value_from) {
                (Some(value), _) => value.clone(),
                (None, Some(from))
                    if from
                        .field_ref
                        .as_ref()
                        .is_some_and(|f| f.field_path == "metadata.name") =>
                {
                    pod.name_any()
                }
                _ => bail!(
                    "env {} has a source this kubelet does not resolve",
                    env.name
                ),
            };
            command.env(&env.name, value);
        }
        // What the node gives every pod: its credentials and trust store.
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "SSL_CERT_FILE",
        ] {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        let started = Timestamp::now();
        let output = command.output().await?;
        let code = output.status.code().unwrap_or(137);
        let mut message = std::fs::read_to_string(&termination)?;
        if message.is_empty() && code != 0 {
            // FallbackToLogsOnError: the log tail.
            let logs = String::from_utf8_lossy(&output.stderr).into_owned();
            message = logs
                .chars()
                .rev()
                .take(2048)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
        }
        let status = serde_json::json!({
            "status": {
                "phase": if code == 0 { "Succeeded" } else { "Failed" },
                "containerStatuses": [{
                    "name": container.name,
                    "image": container.image,
                    "imageID": "",
                    "ready": false,
                    "restartCount": 0,
                    "started": false,
                    "state": {"terminated": {
                        "exitCode": code,
                        "reason": if code == 0 { "Completed" } else { "Error" },
                        "message": message,
                        "startedAt": started.to_string(),
                        "finishedAt": Timestamp::now().to_string(),
                    }}
                }]
            }
        });
        self.pods
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await?;
        Ok((code, message))
    }
}

async fn remove_bucket(cloud: &Cloud, bucket: &str) -> Result<()> {
    for key in list_keys(&cloud.s3, bucket, "").await? {
        delete_all_versions(&cloud.s3, bucket, &key).await?;
    }
    cloud.s3.delete_bucket().bucket(bucket).send().await?;
    Ok(())
}

fn path(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_string)
        .context("temporary paths are UTF-8")
}

async fn wait_for_outcome(
    tenants: &Api<VideoTenant>,
    name: &str,
    outcome: &str,
) -> Result<VideoTenant> {
    wait_for(
        &format!("lastBackupOutcome={outcome}"),
        Duration::from_secs(60),
        || async {
            let t = tenants.get(name).await?;
            Ok(t.status.and_then(|s| s.last_backup_outcome).as_deref() == Some(outcome))
        },
    )
    .await?;
    Ok(tenants.get(name).await?)
}

async fn wait_tenant_event(
    cluster: &Cluster,
    tenant: &str,
    reason: &str,
    note: &str,
) -> Result<()> {
    let what = format!("a {reason} Event");
    wait_event(&cluster.client, None, tenant, &what, |e| {
        e.reason.as_deref() == Some(reason)
            && e.note.as_deref().is_some_and(|n| n.contains(note))
            && e.regarding.as_ref().and_then(|r| r.kind.as_deref())
                == Some(VideoTenant::kind(&()).as_ref())
    })
    .await
}
