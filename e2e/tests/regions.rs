//! Changing regions: a removed region loses all its objects, a scaled region's
//! Deployment follows, and drift someone makes by hand is repaired.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use sanctum_api::VideoTenant;
use sanctum_e2e::{Cluster, Operator, example_tenant, unique, wait_condition, wait_for, with_logs};

#[tokio::test]
async fn regions_follow_the_spec_and_drift_is_repaired() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("reg");
    let op = Operator::start(&run).await?;
    with_logs(&op, || body(&cluster, &run)).await
}

async fn body(cluster: &Cluster, run: &str) -> Result<()> {
    let name = run.to_string();
    let namespace = format!("vt-{name}");
    let client = cluster.client.clone();
    let tenants = Api::<VideoTenant>::all(client.clone());
    let mut tenant = example_tenant(&name, run)?;
    // Sessions per node as a second target: the API server must accept the HPA's Pods
    // metric as the operator writes it (no metrics adapter runs here to serve it).
    tenant.spec.media.regions[1]
        .autoscaling
        .as_mut()
        .context("eu-west autoscales")?
        .target_sessions = Some(40);
    tenants.create(&PostParams::default(), &tenant).await?;
    wait_condition(
        &tenants,
        &name,
        "MediaReady",
        "True",
        Duration::from_secs(120),
    )
    .await?;

    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let services = Api::<Service>::namespaced(client.clone(), &namespace);
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), &namespace);
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &namespace);
    let hpa = hpas
        .get("media-eu-west")
        .await
        .context("eu-west autoscales")?;
    let metrics = hpa.spec.and_then(|s| s.metrics).unwrap_or_default();
    ensure!(
        metrics.iter().any(|m| m
            .pods
            .as_ref()
            .is_some_and(|p| p.metric.name == "sanctum_media_peers")),
        "the HPA scales on live sessions too: {metrics:?}"
    );

    // Drop eu-west, scale us-east to 3.
    let change =
        serde_json::json!({"spec": {"media": {"regions": [{"name": "us-east", "replicas": 3}]}}});
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(&change))
        .await?;
    wait_for(
        "eu-west objects to be deleted",
        Duration::from_secs(60),
        || async {
            Ok(deployments.get_opt("media-eu-west").await?.is_none()
                && services.get_opt("media-eu-west").await?.is_none()
                && pdbs.get_opt("media-eu-west").await?.is_none()
                && hpas.get_opt("media-eu-west").await?.is_none())
        },
    )
    .await?;
    let t = wait_condition(
        &tenants,
        &name,
        "MediaReady",
        "True",
        Duration::from_secs(120),
    )
    .await?;
    let status = t.status.unwrap_or_default();
    ensure!(
        status.media_nodes.as_deref() == Some("3/3"),
        "media nodes: {:?}",
        status.media_nodes
    );
    ensure!(
        status.regions.len() == 1 && status.regions[0].name == "us-east",
        "regions: {:?}",
        status.regions
    );

    // Someone opens the default-deny policy by hand; the operator closes it again.
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace);
    let open = serde_json::json!({"spec": {"ingress": [{}]}});
    policies
        .patch(
            "default-deny",
            &PatchParams::default(),
            &Patch::Merge(&open),
        )
        .await?;
    wait_for(
        "default-deny to be restored",
        Duration::from_secs(60),
        || async {
            let p = policies.get("default-deny").await?;
            Ok(p.spec.and_then(|s| s.ingress).is_none())
        },
    )
    .await?;

    // Someone scales the Deployment by hand; the spec wins.
    let scale = serde_json::json!({"spec": {"replicas": 1}});
    deployments
        .patch(
            "media-us-east",
            &PatchParams::default(),
            &Patch::Merge(&scale),
        )
        .await?;
    wait_for(
        "replicas to be restored",
        Duration::from_secs(60),
        || async {
            Ok(deployments
                .get("media-us-east")
                .await?
                .spec
                .and_then(|s| s.replicas)
                == Some(3))
        },
    )
    .await?;

    tenants.delete(&name, &Default::default()).await?;
    Ok(())
}
