//! A tenant must never take over a namespace it does not own: neither one that belongs to
//! someone else, nor one made in advance under the tenant's name (threat-model.md, T2).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
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

/// Namespace squatting: someone who may create namespaces makes `vt-<name>` before the
/// platform creates tenant `<name>`, labels it as the tenant's and binds themselves admin
/// in it. The tenant must not adopt it: no signing key, wrapped key or workload is written
/// there, the squatter's objects stay as they were, and the namespace survives the tenant.
#[tokio::test]
async fn a_namespace_made_in_advance_with_the_tenants_labels_is_not_adopted() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("squat");
    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        let squatted = format!("vt-{run}");
        let namespaces = Api::<Namespace>::all(cluster.client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": squatted, "labels": {
                "sanctum.dev/tenant": run,
                "app.kubernetes.io/managed-by": "sanctum"
            }}
        }))?;
        namespaces.create(&PostParams::default(), &ns).await?;
        let binding: RoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "squatter-admin", "namespace": squatted},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "squatter"}]
        }))?;
        Api::<RoleBinding>::namespaced(cluster.client.clone(), &squatted)
            .create(&PostParams::default(), &binding)
            .await?;

        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        tenants
            .create(&PostParams::default(), &example_tenant(&run, &run)?)
            .await?;
        let t = wait_condition(&tenants, &run, "Stalled", "True", Duration::from_secs(60)).await?;
        let stalled = condition(&t, "Stalled").cloned().context("Stalled")?;
        ensure!(stalled.reason == "NamespaceConflict", "reason: {}", stalled.reason);
        // Give a wrong adoption time to show itself, then look at what is in the namespace.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let secrets = Api::<Secret>::namespaced(cluster.client.clone(), &squatted)
            .list(&ListParams::default())
            .await?;
        ensure!(
            secrets.items.is_empty(),
            "no key reached the squatted namespace: {:?}",
            secrets.items.iter().map(|s| s.metadata.name.clone()).collect::<Vec<_>>()
        );
        let policies = Api::<NetworkPolicy>::namespaced(cluster.client.clone(), &squatted)
            .list(&ListParams::default())
            .await?;
        ensure!(policies.items.is_empty(), "nothing was applied into it");
        let after = namespaces.get(&squatted).await?;
        ensure!(after.metadata.owner_references.is_none(), "no owner reference was added");
        ensure!(
            Api::<RoleBinding>::namespaced(cluster.client.clone(), &squatted)
                .get_opt("squatter-admin")
                .await?
                .is_some(),
            "the squatter's binding is untouched (and still grants nothing of the tenant's)"
        );

        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(60)).await?;
        ensure!(
            namespaces
                .get_opt(&squatted)
                .await?
                .is_some_and(|n| n.metadata.deletion_timestamp.is_none()),
            "the tenant's deletion does not delete a namespace it never owned"
        );
        namespaces.delete(&squatted, &Default::default()).await?;
        Ok(())
    })
    .await
}
