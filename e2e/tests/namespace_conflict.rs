//! A tenant must never take over a namespace it does not own.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{ListParams, PostParams};
use sanctum_api::VideoTenant;
use sanctum_e2e::{
    Cluster, Operator, condition, example_tenant, unique, wait_condition, wait_gone, with_logs,
};

#[tokio::test]
async fn foreign_namespace_stalls_the_tenant_and_stays_untouched() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("conflict");
    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        let foreign = unique("someone-elses");
        let namespaces = Api::<Namespace>::all(cluster.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(foreign.clone()),
                labels: Some(BTreeMap::from([(
                    "owner".to_string(),
                    "another-team".to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces.create(&PostParams::default(), &ns).await?;

        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        let mut tenant = example_tenant(&run, &run)?;
        tenant.spec.namespace = Some(foreign.clone());
        tenants.create(&PostParams::default(), &tenant).await?;
        let t = wait_condition(&tenants, &run, "Stalled", "True", Duration::from_secs(60)).await?;
        let stalled = condition(&t, "Stalled")
            .cloned()
            .context("Stalled condition")?;
        ensure!(
            stalled.reason == "NamespaceConflict",
            "reason: {}",
            stalled.reason
        );
        ensure!(
            stalled.message.contains("is not managed by tenant"),
            "message: {}",
            stalled.message
        );

        let policies = Api::<NetworkPolicy>::namespaced(cluster.client.clone(), &foreign)
            .list(&ListParams::default())
            .await?;
        ensure!(
            policies.items.is_empty(),
            "nothing was applied into the foreign namespace"
        );
        let labels = namespaces
            .get(&foreign)
            .await?
            .metadata
            .labels
            .unwrap_or_default();
        ensure!(
            !labels.contains_key("sanctum.dev/tenant"),
            "the namespace was not adopted"
        );

        // Deleting the stalled tenant must not delete the foreign namespace.
        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(60)).await?;
        ensure!(
            namespaces
                .get_opt(&foreign)
                .await?
                .is_some_and(|n| n.metadata.deletion_timestamp.is_none())
        );
        namespaces.delete(&foreign, &Default::default()).await?;
        Ok(())
    })
    .await
}
