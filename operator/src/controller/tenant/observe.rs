//! What a reconcile observed of the cluster: each region's Deployment, the newest
//! finished backup and restore-drill Jobs and their pods' results. Pure functions of objects already read;
//! `status.rs` turns an [`Observed`] into the status to publish.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use sanctum_api::RegionStatus;

use super::build::TenantKeyRef;

/// What a successful reconcile observed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// Per-region media-node counts, in spec order.
    pub regions: Vec<RegionStatus>,
    /// Regions whose Deployment has not finished rolling out.
    pub rolling_out: Vec<String>,
    /// Regions waiting for the cluster to assign their exposure Service's ports or address.
    pub unexposed: Vec<String>,
    /// NetworkPolicies in force.
    pub network_policies: usize,
    /// The tenant key, once it exists.
    pub key: Option<TenantKeyRef>,
    /// The recordings bucket, once it is provisioned.
    pub bucket: Option<String>,
    /// The newest finished run of the backup CronJob, when `spec.backup` is set.
    pub last_backup: Option<BackupRun>,
    /// Whether `spec.backup.restoreDrill` is set (its CronJob applied).
    pub drills_scheduled: bool,
    /// The newest finished run of the restore-drill CronJob.
    pub last_drill: Option<BackupRun>,
    /// When the newest drill succeeded, or the drill CronJob was made if none has.
    pub drill_baseline: Option<Time>,
}

/// A finished backup or restore-drill Job, as the tenant's status reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupRun {
    /// The Job's name.
    pub job: String,
    /// When it completed or failed.
    pub finished: Time,
    /// Whether it completed.
    pub succeeded: bool,
    /// Recording objects in the backup (or restored and checked by the drill), from the
    /// pod's termination message.
    pub objects: Option<i64>,
    /// The failure reported by the pod or the Job, if it failed.
    pub error: Option<String>,
}

impl BackupRun {
    /// `Succeeded` or `Failed`, as `status.lastBackupOutcome` spells it.
    pub fn outcome(&self) -> &'static str {
        if self.succeeded {
            "Succeeded"
        } else {
            "Failed"
        }
    }

    /// Whether the status does not report this run yet (so its Event is still due):
    /// `reported` is when the last run it reports finished.
    pub fn is_new(&self, reported: Option<&Time>) -> bool {
        reported.is_none_or(|t| t.0 < self.finished.0)
    }
}

/// Counts of one region, read from its live Deployment; `media` is where its clients
/// send media, when it is exposed.
pub fn observe_region(
    region: &str,
    deployment: &Deployment,
    media: Option<String>,
) -> (RegionStatus, bool) {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let rolled_out = status.observed_generation == deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) == desired
        && status.replicas.unwrap_or(0) == desired
        && ready == desired;
    (
        RegionStatus {
            name: region.to_string(),
            desired,
            ready,
            media,
        },
        rolled_out,
    )
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

/// Since when the tenant has gone without a successful run of `cron_job`: when its newest
/// successful Job finished, or when the CronJob was made if none has succeeded yet, so
/// that a schedule that never runs is overdue too. (The newest successful Job stays in
/// the history however many runs fail after it.)
pub fn last_success_or_start(cron_job: &CronJob, jobs: &[Job]) -> Option<Time> {
    let uid = cron_job.metadata.uid.as_deref()?;
    jobs.iter()
        .filter(|job| job.owner_references().iter().any(|o| o.uid == uid))
        .filter_map(|job| {
            let conditions = job.status.as_ref()?.conditions.as_ref()?;
            conditions
                .iter()
                .find(|c| c.type_ == "Complete" && c.status == "True")?
                .last_transition_time
                .clone()
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .or_else(|| cron_job.metadata.creation_timestamp.clone())
}

/// Most of a failure message worth putting in an Event.
const ERROR_CHARS: usize = 400;

/// Fills in the object count (or the error) from the termination message of the run's
/// last finished pod's `container`: one line of JSON written by `sanctum backup` or
/// `sanctum restore-drill` with `--result-file`, or the log tail when the process died
/// before writing it.
pub fn read_result(run: &mut BackupRun, pods: &[Pod], container: &str) {
    let last = pods
        .iter()
        .filter_map(|pod| {
            let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
            let terminated = statuses
                .iter()
                .find(|s| s.name == container)?
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn drills_are_overdue_from_the_newest_success_or_the_schedules_start() {
        let mut cron_job = cron("cron-uid");
        cron_job.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).expect("valid"),
        ));
        let jobs = [
            job("drill-1", "cron-uid", Some(("Complete", 1_800_000_000))),
            job("drill-2", "cron-uid", Some(("Failed", 1_800_086_400))),
            job("other", "someone-else", Some(("Complete", 1_900_000_000))),
        ];
        let at = |t: Option<Time>| t.map(|t| t.0.as_second());
        assert_eq!(
            at(last_success_or_start(&cron_job, &jobs)),
            Some(1_800_000_000),
            "a later failure does not move it; another CronJob's success does not either"
        );
        assert_eq!(
            at(last_success_or_start(&cron_job, &jobs[1..])),
            Some(1_700_000_000),
            "no success yet: counted from the schedule's start"
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
        read_result(&mut run, &pods, "backup");
        assert_eq!(run.objects, Some(42), "the last pod's message");

        let jobs = [job("backup-2", "u", Some(("Failed", 1_800_000_000)))];
        let mut failed = newest_finished(&cron("u"), &jobs).expect("finished");
        read_result(
            &mut failed,
            &[pod(Some(r#"{"error":"bucket dr-backups not found"}"#), 1)],
            "backup",
        );
        assert_eq!(failed.error.as_deref(), Some("bucket dr-backups not found"));
        let mut from_logs = newest_finished(&cron("u"), &jobs).expect("finished");
        read_result(
            &mut from_logs,
            &[pod(Some(&"panic ".repeat(200)), 1)],
            "backup",
        );
        assert_eq!(
            from_logs.error.expect("log tail").chars().count(),
            ERROR_CHARS,
            "a log tail is cut for the Event"
        );
        let mut silent = newest_finished(&cron("u"), &jobs).expect("finished");
        read_result(&mut silent, &[pod(None, 1)], "backup");
        assert_eq!(silent.error.as_deref(), Some("BackoffLimitExceeded"));
    }
}
