//! Invalid tenants are rejected by the API server itself (schema + CEL), with a message
//! a person can act on, and nothing is stored.

use anyhow::{Context, Result, bail, ensure};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use sanctum_api::{AutoscalingSpec, VideoTenant};
use sanctum_e2e::{Cluster, example_tenant, unique};

async fn rejected(api: &Api<VideoTenant>, tenant: &VideoTenant) -> Result<String> {
    match api.create(&PostParams::default(), tenant).await {
        Ok(_) => bail!("tenant {:?} was admitted", tenant.metadata.name),
        Err(kube::Error::Api(status)) => {
            ensure!(
                status.code == 422,
                "expected 422 Invalid, got {}: {}",
                status.code,
                status.message
            );
            Ok(status.message)
        }
        Err(e) => Err(e.into()),
    }
}

/// The example tenant with a daily backup on `schedule`.
fn with_schedule(run: &str, schedule: &str) -> Result<VideoTenant> {
    let mut t = example_tenant(&unique("adm-cron"), run)?;
    t.spec.backup = Some(serde_json::from_value(serde_json::json!({
        "schedule": schedule, "destination": {"bucket": "backups-a"}
    }))?);
    Ok(t)
}

#[tokio::test]
async fn invalid_tenants_are_rejected_with_cel_messages() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let api = Api::<VideoTenant>::all(cluster.client.clone());
    let run = unique("adm");

    let mut t = example_tenant(&unique("adm-minmax"), &run)?;
    t.spec.media.regions[1].autoscaling = Some(AutoscalingSpec {
        min: 5,
        max: 2,
        target_cpu: 70,
        target_sessions: None,
    });
    let msg = rejected(&api, &t).await?;
    ensure!(
        msg.contains("autoscaling.min must be less than or equal to autoscaling.max"),
        "{msg}"
    );

    let msg = rejected(&api, &with_schedule(&run, "every day at noon")?).await?;
    ensure!(msg.contains("schedule must be a cron expression"), "{msg}");
    // Five fields, but out of range: refused now, not by the CronJob later.
    for schedule in [
        "61 * * * *",
        "0 24 * * *",
        "0 0 32 * *",
        "0 0 * 13 *",
        "0 0 * * 8",
    ] {
        let msg = rejected(&api, &with_schedule(&run, schedule)?).await?;
        ensure!(msg.contains("minute 0-59, hour 0-23"), "{schedule}: {msg}");
    }

    // What stays valid: steps, ranges, lists, names, macros, 7 for Sunday.
    for schedule in [
        "*/15 0-6 1,15 JAN-MAR MON-FRI",
        "@daily",
        "59 23 31 12 7",
        "0 3 1 1 *",
    ] {
        let t = with_schedule(&run, schedule)?;
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        api.create(&dry_run, &t)
            .await
            .with_context(|| format!("{schedule} was refused"))?;
    }

    // Reserved namespaces: no tenant may take over default or kube-*.
    for namespace in ["default", "kube-system", "kube-public"] {
        let mut t = example_tenant(&unique("adm-ns"), &run)?;
        t.spec.namespace = Some(namespace.into());
        let msg = rejected(&api, &t).await?;
        ensure!(
            msg.contains("spec.namespace must not be default or a kube-* namespace"),
            "{namespace}: {msg}"
        );
    }

    let mut t = example_tenant(&unique("adm-cidr"), &run)?;
    t.spec.network.media_cidrs = vec!["10.0.0.0/33".into()];
    let msg = rejected(&api, &t).await?;
    ensure!(msg.contains("mediaCIDRs entries must be CIDRs"), "{msg}");

    let mut t = example_tenant(&unique("adm-retention"), &run)?;
    t.spec.storage.retention_days = 0;
    let msg = rejected(&api, &t).await?;
    ensure!(msg.contains("retentionDays"), "{msg}");

    let mut t = example_tenant(&unique("adm-region"), &run)?;
    t.spec.media.regions[0].name = "US_East".into();
    let msg = rejected(&api, &t).await?;
    ensure!(msg.contains("regions[0].name"), "{msg}");

    let mut t = example_tenant(&unique("adm-dup"), &run)?;
    let duplicate = t.spec.media.regions[0].clone();
    t.spec.media.regions.push(duplicate);
    let msg = rejected(&api, &t).await?;
    ensure!(msg.contains("Duplicate value"), "{msg}");

    // Exposure: a balancer or a fixed address serves one media node; node ports and
    // annotations only where they apply; addresses are IPs; TURN URIs are TURN URIs.
    let expose = |region: serde_json::Value, name: &str| -> Result<VideoTenant> {
        let mut t = example_tenant(&unique(name), &run)?;
        let mut value = serde_json::to_value(&t.spec.media.regions[0])?;
        if let (Some(target), Some(extra)) = (value.as_object_mut(), region.as_object()) {
            target.extend(extra.clone());
        }
        t.spec.media.regions[0] = serde_json::from_value(value)?;
        Ok(t)
    };
    for (region, want) in [
        (
            serde_json::json!({"replicas": 2, "expose": {"mode": "LoadBalancer"}}),
            "expose.mode LoadBalancer and expose.address serve one media node",
        ),
        (
            serde_json::json!({"replicas": 1, "expose": {"address": "203.0.113.10"}, "autoscaling": {"min": 1, "max": 3}}),
            "expose.mode LoadBalancer and expose.address serve one media node",
        ),
        (
            serde_json::json!({"replicas": 1, "expose": {"mode": "LoadBalancer", "address": "not-an-ip"}}),
            "expose.address must be an IP address",
        ),
        (
            serde_json::json!({"expose": {"mode": "PodIP", "nodePorts": {"udp": 31000, "tcp": 31001}}}),
            "expose.nodePorts only apply to mode NodePort",
        ),
        (
            serde_json::json!({"expose": {"mode": "NodePort", "annotations": {"a": "b"}}}),
            "expose.annotations only apply to mode LoadBalancer",
        ),
    ] {
        let msg = rejected(&api, &expose(region.clone(), "adm-expose")?).await?;
        ensure!(msg.contains(want), "{region}: {msg}");
    }
    let accepted = [
        serde_json::json!({"replicas": 3, "expose": {"mode": "NodePort", "nodePorts": {"udp": 31000, "tcp": 31001}}}),
        serde_json::json!({"replicas": 1, "expose": {"mode": "LoadBalancer", "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}}}),
        serde_json::json!({"replicas": 1, "expose": {"address": "2001:db8::10"}}),
    ];
    for region in accepted {
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        api.create(&dry_run, &expose(region.clone(), "adm-expose-ok")?)
            .await
            .with_context(|| format!("{region} was refused"))?;
    }
    let mut t = example_tenant(&unique("adm-turn"), &run)?;
    t.spec.media.turn = Some(serde_json::from_value(serde_json::json!({
        "urls": ["https://turn.example"], "secretName": "turn"
    }))?);
    let msg = rejected(&api, &t).await?;
    ensure!(msg.contains("spec.media.turn.urls[0]"), "{msg}");
    let mut t = example_tenant(&unique("adm-port"), &run)?;
    t.spec.media.ports.udp = 80;
    let msg = rejected(&api, &t).await?;
    ensure!(msg.contains("spec.media.ports.udp"), "{msg}");

    let t = example_tenant(&format!("adm-{}", "x".repeat(45)), &run)?;
    let msg = rejected(&api, &t).await?;
    ensure!(msg.contains("at most 40 characters"), "{msg}");

    let mut t = example_tenant(&unique("adm-keyarn"), &run)?;
    t.spec.encryption.key_arn = Some("arn:aws:kms:us-east-1:123456789012:key/abc".into());
    let msg = rejected(&api, &t).await?;
    ensure!(
        msg.contains("keyArn can only be used with provider 'aws'"),
        "{msg}"
    );

    // Immutable namespace: accepted on create, refused on change. No operator runs for
    // this run label, so nothing reconciles the tenant.
    let name = unique("adm-immutable");
    api.create(&PostParams::default(), &example_tenant(&name, &run)?)
        .await?;
    let change = serde_json::json!({"spec": {"namespace": "elsewhere"}});
    let result = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&change))
        .await;
    let stored = api.get(&name).await.context("tenant was stored")?;
    api.delete(&name, &Default::default()).await?;
    match result {
        Err(kube::Error::Api(status)) => ensure!(
            status.message.contains("spec.namespace is immutable"),
            "{}",
            status.message
        ),
        other => bail!("namespace change was not refused: {other:?}"),
    }
    ensure!(
        stored.spec.namespace.is_none(),
        "nothing of the refused change was stored"
    );
    Ok(())
}
