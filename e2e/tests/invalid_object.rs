//! A stored VideoTenant that does not match the operator's type (written under another
//! schema, for example before an upgrade) must not stop the controller: it gets a Warning
//! Event naming the problem, and every other tenant is reconciled as usual.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use sanctum_api::VideoTenant;
use sanctum_e2e::{
    Cluster, Operator, example_tenant, unique, wait_condition, wait_event, wait_gone, with_logs,
};

const CRD: &str = "videotenants.sanctum.dev";

#[tokio::test]
async fn a_tenant_that_does_not_deserialize_is_reported_and_the_others_still_reconcile()
-> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("invalid");
    let crds = Api::<CustomResourceDefinition>::all(cluster.client.clone());
    let original = crds.get(CRD).await?;

    // Store a tenant whose displayName is a number: the schema is widened for that one
    // create (as an older schema might have allowed), then put back as it was.
    let mut widened = original.clone();
    let display_name = widened
        .spec
        .versions
        .first_mut()
        .and_then(|v| v.schema.as_mut())
        .and_then(|s| s.open_api_v3_schema.as_mut())
        .and_then(|s| s.properties.as_mut())
        .and_then(|p| p.get_mut("spec"))
        .and_then(|s| s.properties.as_mut())
        .and_then(|p| p.get_mut("displayName"))
        .context("spec.displayName in the CRD schema")?;
    display_name.type_ = None;
    display_name.x_kubernetes_int_or_string = Some(true);
    crds.replace(CRD, &PostParams::default(), &widened).await?;
    let bad = format!("{run}-bad");
    let gvk = GroupVersionKind::gvk("sanctum.dev", "v1alpha1", "VideoTenant");
    let dynamic =
        Api::<DynamicObject>::all_with(cluster.client.clone(), &ApiResource::from_gvk(&gvk));
    let mut object: DynamicObject =
        serde_json::from_value(serde_json::to_value(example_tenant(&bad, &run)?)?)?;
    object.data["spec"]["displayName"] = serde_json::json!(20261205);
    // The API server may take a moment to serve the widened schema.
    let mut created = None;
    for _ in 0..50 {
        match dynamic.create(&PostParams::default(), &object).await {
            Ok(o) => {
                created = Some(o);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let restore = || async {
        let mut current = crds.get(CRD).await?;
        current.spec = original.spec.clone();
        crds.replace(CRD, &PostParams::default(), &current).await?;
        Ok::<_, anyhow::Error>(())
    };
    restore().await?;
    created.context("the tenant with a numeric displayName was never admitted")?;

    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        wait_event(&cluster.client, None, &bad, "an InvalidObject Event", |e| {
            e.reason.as_deref() == Some("InvalidObject")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("does not match the schema"))
        })
        .await?;
        // The watch goes on: a valid tenant of the same run converges.
        let good = format!("{run}-good");
        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        tenants
            .create(&PostParams::default(), &example_tenant(&good, &run)?)
            .await?;
        wait_condition(&tenants, &good, "Ready", "True", Duration::from_secs(120)).await?;
        ensure!(
            op.counter(
                "sanctum_reconcile_failures_total",
                "reason=\"InvalidObject\""
            )
            .await?
                >= 1,
            "the skipped object is counted"
        );
        tenants.delete(&good, &Default::default()).await?;
        wait_gone(&tenants, &good, Duration::from_secs(120)).await?;
        dynamic.delete(&bad, &Default::default()).await?;
        Ok(())
    })
    .await?;
    Ok(())
}
