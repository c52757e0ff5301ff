//! What a kubelet does for a batch pod, done on this machine: kwok's nodes run no
//! containers, so a Job's pod (a tenant's backup or restore drill) is run as a process
//! here, with the pod's args and env, its mounted Secrets as files (paths under a mount
//! rewritten to them) and the same AWS credentials the node gives every pod, and its exit
//! code and termination message are reported in the pod's status, as a kubelet would.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use sanctum_operator::cloud::Cloud;
use sanctum_operator::cloud::objects::{delete_all_versions, list_keys};

use crate::{Cluster, workspace_binary};

/// kwok completes a Job's pod as soon as it runs; the local control plane's kwok leaves
/// pods with this annotation alone (e2e/controlplane/cluster.sh `kwok_stages`), so the
/// pod's status says what the process really did.
pub const RUN_ON_HOST: &str = "e2e.sanctum.dev/run-on-host";

/// A Job from the CronJob's template, owned by the CronJob: what
/// `kubectl create job --from=cronjob/backup` makes (plus the kwok annotation).
pub async fn create_job_from(
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
pub struct HostKubelet {
    pods: Api<Pod>,
    secrets: Api<Secret>,
    jobs: Api<Job>,
}

impl HostKubelet {
    pub async fn new(cluster: &Cluster, ns: &str) -> Result<Self> {
        Ok(Self {
            pods: Api::namespaced(cluster.client.clone(), ns),
            secrets: Api::namespaced(cluster.client.clone(), ns),
            jobs: Api::namespaced(cluster.client.clone(), ns),
        })
    }

    /// Runs every pod the Job controller starts for `job` until the Job has finished;
    /// returns the last exit code and termination message.
    pub async fn run_job(&self, job: &Job) -> Result<(i32, String)> {
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
        // A path under a mount, in an argument or an environment value, names the file here.
        let local = |value: &str| {
            paths
                .iter()
                .find(|(from, _)| value == from || value.starts_with(&format!("{from}/")))
                .map(|(from, to)| value.replacen(from.as_str(), to, 1))
                .unwrap_or_else(|| value.to_string())
        };
        let args: Vec<String> = container.args.iter().flatten().map(|a| local(a)).collect();
        let mut command = tokio::process::Command::new(workspace_binary("sanctum")?);
        command.env_clear().args(&args);
        for env in container.env.iter().flatten() {
            let value = match (&env.value, &env.value_from) {
                (Some(value), _) => local(value),
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

pub async fn remove_bucket(cloud: &Cloud, bucket: &str) -> Result<()> {
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
