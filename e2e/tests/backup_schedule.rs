//! The tenant's backup and restore-drill CronJobs end to end: `spec.backup` becomes a
//! least-privilege CronJob; a Job made from it runs the real `sanctum backup` against the
//! emulator; its result (object count, or the error) reaches the tenant's status, an Event
//! and the metrics; removing `spec.backup` removes the CronJob. `spec.backup.restoreDrill`
//! adds a second CronJob whose Job runs the real `sanctum restore-drill`: it restores the
//! newest backup into a scratch bucket, checks every SHA-256, opens a sealed recording
//! through KMS, removes the bucket, and reports `RestoreDrillSucceeded`.
//!
//! kwok's nodes run no containers: `sanctum_e2e::host_kubelet` runs the pod's container
//! as a process on this machine instead. Everything else, Job to pod to Job condition, is
//! the real controller manager's work.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Tag, Tagging};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use sanctum_api::{KeyProvider, VideoTenant};
use sanctum_e2e::host_kubelet::{HostKubelet, create_job_from, remove_bucket};
use sanctum_e2e::{
    Cluster, Operator, cloud, condition, example_tenant, put_sealed_recording, unique,
    wait_condition, wait_event, wait_for, wait_gone, with_logs,
};
use sanctum_operator::cloud::Cloud;
use sanctum_operator::cloud::objects::list_keys;

#[tokio::test]
async fn scheduled_backups_run_with_least_privilege_and_report_their_result() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("bkp");
    let op = Operator::start(&run).await?;
    let cloud = cloud().await?;
    let dest = format!("dr-{run}");
    sanctum_e2e::aws::create_backup_bucket(&cloud.s3, &dest, None).await?;
    // A backup bucket keeps what it holds (Object Lock): it is left to the emulator.
    with_logs(&op, || scenario(&cluster, &op, &cloud, &run, &dest)).await
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

    // A run that fails (its new destination has no Object Lock, so it would not keep the
    // backups) is reported as failed, with its error, and nothing is written there.
    let unlocked = format!("{dest}-unlocked");
    cloud.s3.create_bucket().bucket(&unlocked).send().await?;
    let change = serde_json::json!({"spec": {"backup": {"destination": {"bucket": unlocked}}}});
    tenants
        .patch(run, &PatchParams::default(), &Patch::Merge(&change))
        .await?;
    wait_for(
        "the CronJob naming the new bucket",
        Duration::from_secs(60),
        || async {
            let args = cron_jobs.get("backup").await?.spec.and_then(|s| {
                s.job_template
                    .spec?
                    .template
                    .spec?
                    .containers
                    .first()?
                    .args
                    .clone()
            });
            Ok(args.is_some_and(|a| a.contains(&unlocked)))
        },
    )
    .await?;
    let cron = cron_jobs.get("backup").await?;
    // One attempt instead of the template's retries, to keep the test short.
    let job = create_job_from(cluster, &cron, "backup-manual-2", Some(0)).await?;
    let (code, message) = kubelet.run_job(&job).await?;
    ensure!(
        code != 0 && message.contains(&format!("{unlocked} has no Object Lock")),
        "a backup to a bucket without Object Lock must fail, naming why: {message}"
    );
    ensure!(
        list_keys(&cloud.s3, &unlocked, "").await?.is_empty(),
        "the refused backup wrote into the bucket"
    );
    let failed = wait_for_outcome(&tenants, run, "Failed").await?;
    let scheduled = condition(&failed, "BackupScheduled").context("BackupScheduled")?;
    ensure!(scheduled.reason == "LastBackupFailed", "{scheduled:?}");
    ensure!(
        condition(&failed, "Ready").is_some_and(|c| c.status == "True"),
        "a failed backup is alerted on, the tenant stays Ready"
    );
    wait_tenant_event(cluster, run, "BackupFailed", &unlocked).await?;
    ensure!(
        op.counter(
            "sanctum_backups_total",
            &format!("tenant=\"{run}\",outcome=\"Failed\"")
        )
        .await?
            == 1
    );
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

#[tokio::test]
async fn scheduled_restore_drills_restore_check_and_open_a_backup() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("drl");
    let op = Operator::start(&run).await?;
    let cloud = cloud().await?;
    let dest = format!("dr-{run}");
    sanctum_e2e::aws::create_backup_bucket(&cloud.s3, &dest, None).await?;
    let prefix = format!("scratch-{run}");
    let result = with_logs(&op, || {
        drill_scenario(&cluster, &op, &cloud, &run, &dest, &prefix)
    })
    .await;
    for bucket in buckets_under(&cloud, &prefix).await.unwrap_or_default() {
        remove_bucket(&cloud, &bucket).await.ok();
    }
    result
}

async fn drill_scenario(
    cluster: &Cluster,
    op: &Operator,
    cloud: &Cloud,
    run: &str,
    dest: &str,
    prefix: &str,
) -> Result<()> {
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let mut tenant = example_tenant(run, run)?;
    tenant.spec.encryption.provider = KeyProvider::Aws;
    tenant.spec.backup = Some(serde_json::from_value(serde_json::json!({
        "schedule": "0 3 1 1 *",
        "destination": {"bucket": dest},
        "restoreDrill": {"schedule": "0 4 1 1 *", "scratchBucketPrefix": prefix},
    }))?);
    tenants.create(&PostParams::default(), &tenant).await?;
    let ready = wait_condition(&tenants, run, "Ready", "True", Duration::from_secs(120)).await?;
    let pending = condition(&ready, "RestoreDrillSucceeded").context("RestoreDrillSucceeded")?;
    ensure!(
        pending.status == "Unknown" && pending.reason == "NoDrillYet",
        "{pending:?}"
    );
    let status = ready.status.clone().unwrap_or_default();
    let ns = status.namespace.context("status.namespace")?;
    let cron_jobs = Api::<CronJob>::namespaced(cluster.client.clone(), &ns);
    let drill_cron = cron_jobs.get("restore-drill").await?;
    let sa = Api::<ServiceAccount>::namespaced(cluster.client.clone(), &ns)
        .get("restore-drill")
        .await?;
    ensure!(sa.automount_service_account_token == Some(false));
    // Before any drill, the overdue clock runs from the schedule's start.
    let scheduled = drill_cron
        .metadata
        .creation_timestamp
        .as_ref()
        .context("creationTimestamp")?
        .0
        .as_second();
    let since = format!("tenant=\"{run}\"");
    wait_for("the drill gauges", Duration::from_secs(60), || async {
        Ok(op
            .counter(
                "sanctum_restore_drill_last_success_timestamp_seconds",
                &since,
            )
            .await?
            == scheduled as u64
            && op
                .metrics()
                .await?
                .contains(&format!("sanctum_restore_drill_failing{{{since}}} 0")))
    })
    .await?;

    // A recording sealed as a media node seals it.
    let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    put_sealed_recording(&cluster.client, cloud, &ready, "rec-1", &plain).await?;
    let kubelet = HostKubelet::new(cluster, &ns).await?;
    let backup_cron = cron_jobs.get("backup").await?;
    let job = create_job_from(cluster, &backup_cron, "backup-manual-1", Some(0)).await?;
    let (code, message) = kubelet.run_job(&job).await?;
    ensure!(code == 0, "backup exited {code}: {message}");

    // What a crashed drill left (tagged as this tenant's), and a bucket under the same
    // prefix that is not a drill's: the first is removed, the second never touched.
    let leftover = format!("{prefix}-leftover");
    let foreign = format!("{prefix}-foreign");
    for name in [&leftover, &foreign] {
        cloud.s3.create_bucket().bucket(name).send().await?;
    }
    cloud
        .s3
        .put_bucket_tagging()
        .bucket(&leftover)
        .tagging(
            Tagging::builder()
                .tag_set(
                    Tag::builder()
                        .key("sanctum:restore-drill")
                        .value(run)
                        .build()?,
                )
                .build()?,
        )
        .send()
        .await?;
    cloud
        .s3
        .put_object()
        .bucket(&foreign)
        .key("keep-me")
        .body(ByteStream::from_static(b"not the drill's"))
        .send()
        .await?;

    let job = create_job_from(cluster, &drill_cron, "restore-drill-manual-1", None).await?;
    let (code, message) = kubelet.run_job(&job).await?;
    ensure!(code == 0, "restore drill exited {code}: {message}");
    let result: serde_json::Value = serde_json::from_str(message.trim())
        .with_context(|| format!("the drill's result: {message}"))?;
    ensure!(result["objects"] == 1, "{result}");
    ensure!(
        result["sample"]["bytes"] == plain.len() && result["sample"]["keyVersion"] == 1,
        "the sealed recording was opened whole: {result}"
    );
    ensure!(
        result["leftoversRemoved"] == serde_json::json!([leftover]),
        "{result}"
    );
    let after = wait_for_drill(&tenants, run, "Succeeded").await?;
    let succeeded = condition(&after, "RestoreDrillSucceeded").context("condition")?;
    ensure!(
        succeeded.status == "True" && succeeded.reason == "DrillSucceeded",
        "{succeeded:?}"
    );
    ensure!(
        after
            .status
            .as_ref()
            .and_then(|s| s.last_restore_drill_objects)
            == Some(1)
    );
    wait_tenant_event(cluster, run, "RestoreDrillSucceeded", "restored 1 objects").await?;
    ensure!(
        op.counter(
            "sanctum_restore_drill_last_success_timestamp_seconds",
            &format!("tenant=\"{run}\"")
        )
        .await?
            > 0
    );
    let left = buckets_under(cloud, prefix).await?;
    ensure!(
        left == vec![foreign.clone()],
        "only the foreign bucket is left: {left:?}"
    );
    ensure!(list_keys(&cloud.s3, &foreign, "").await? == vec!["keep-me".to_string()]);
    remove_bucket(cloud, &foreign).await?;

    // A corrupted backup copy fails the drill, with the reason, an Event and the metric.
    let copies = list_keys(&cloud.s3, dest, &format!("{run}/objects/")).await?;
    ensure!(copies.len() == 1, "{copies:?}");
    cloud
        .s3
        .put_object()
        .bucket(dest)
        .key(&copies[0])
        .body(ByteStream::from_static(b"corrupted"))
        .send()
        .await?;
    let job = create_job_from(cluster, &drill_cron, "restore-drill-manual-2", None).await?;
    let (code, message) = kubelet.run_job(&job).await?;
    ensure!(
        code != 0,
        "a drill of a corrupted backup must fail: {message}"
    );
    let failed = wait_for_drill(&tenants, run, "Failed").await?;
    let condition_failed = condition(&failed, "RestoreDrillSucceeded").context("condition")?;
    ensure!(
        condition_failed.status == "False"
            && condition_failed.reason == "DrillFailed"
            && condition_failed.message.contains("SHA-256"),
        "{condition_failed:?}"
    );
    ensure!(
        condition(&failed, "Ready").is_some_and(|c| c.status == "True"),
        "a failed drill is alerted on, the tenant stays Ready"
    );
    wait_tenant_event(cluster, run, "RestoreDrillFailed", "SHA-256").await?;
    ensure!(
        op.counter(
            "sanctum_restore_drill_failing",
            &format!("tenant=\"{run}\"")
        )
        .await?
            == 1
    );
    ensure!(
        op.counter(
            "sanctum_restore_drills_total",
            &format!("tenant=\"{run}\",outcome=\"Failed\"")
        )
        .await?
            == 1
    );
    ensure!(
        buckets_under(cloud, prefix).await?.is_empty(),
        "a failed drill removes its scratch bucket too"
    );

    // No restoreDrill, no drill CronJob, identity, condition or alerting series.
    tenants
        .patch(
            run,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"backup": {"restoreDrill": null}}})),
        )
        .await?;
    wait_gone(&cron_jobs, "restore-drill", Duration::from_secs(60)).await?;
    wait_for(
        "RestoreDrillSucceeded removed",
        Duration::from_secs(60),
        || async {
            let t = tenants.get(run).await?;
            Ok(condition(&t, "RestoreDrillSucceeded").is_none())
        },
    )
    .await?;
    ensure!(
        op.counter(
            "sanctum_restore_drill_failing",
            &format!("tenant=\"{run}\"")
        )
        .await?
            == 0
    );
    tenants.delete(run, &Default::default()).await?;
    wait_gone(&tenants, run, Duration::from_secs(120)).await?;
    Ok(())
}

async fn buckets_under(cloud: &Cloud, prefix: &str) -> Result<Vec<String>> {
    let listed = cloud.s3.list_buckets().send().await?;
    let mut names: Vec<String> = listed
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect();
    names.sort();
    Ok(names)
}

async fn wait_for_drill(
    tenants: &Api<VideoTenant>,
    name: &str,
    outcome: &str,
) -> Result<VideoTenant> {
    wait_for(
        &format!("lastRestoreDrillOutcome={outcome}"),
        Duration::from_secs(60),
        || async {
            let t = tenants.get(name).await?;
            Ok(t.status
                .and_then(|s| s.last_restore_drill_outcome)
                .as_deref()
                == Some(outcome))
        },
    )
    .await?;
    Ok(tenants.get(name).await?)
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
