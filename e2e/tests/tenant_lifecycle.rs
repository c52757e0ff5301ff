//! A tenant from creation to deletion: keys, bucket and media nodes become ready, a
//! converged reconcile writes nothing, and deletion removes the namespace.

use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use sanctum_api::VideoTenant;
use sanctum_e2e::{Cluster, Operator, example_tenant, unique, wait_condition, wait_for, with_logs};

#[tokio::test]
async fn tenant_runs_converges_without_writes_and_is_deleted() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("life");
    let op = Operator::start(&run).await?;
    with_logs(&op, || body(&cluster, &op, &run)).await
}

async fn body(cluster: &Cluster, op: &Operator, run: &str) -> Result<()> {
    let name = run.to_string();
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let created_at = Timestamp::now();
    tenants
        .create(&PostParams::default(), &example_tenant(&name, run)?)
        .await?;

    // Media nodes run: 2 in us-east, 1 in eu-west (HPA-managed, starts at 1).
    let tenant = wait_condition(&tenants, &name, "Ready", "True", Duration::from_secs(120)).await?;
    let status = tenant.status.clone().unwrap_or_default();
    let namespace = status.namespace.clone().unwrap_or_default();
    ensure!(
        namespace == format!("vt-{name}"),
        "namespace in status: {namespace}"
    );
    ensure!(
        status.media_nodes.as_deref() == Some("3/3"),
        "media nodes: {:?}",
        status.media_nodes
    );
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), &namespace)
        .list(&ListParams::default())
        .await?;
    ensure!(
        pods.items.len() == 3,
        "expected 3 media pods, found {}",
        pods.items.len()
    );
    let nodes = Api::<Node>::all(cluster.client.clone());
    for pod in &pods.items {
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        ensure!(
            phase.as_deref() == Some("Running"),
            "pod {} is {phase:?}",
            pod.name_any()
        );
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        ensure!(
            nodes.get_opt(&node).await?.is_some(),
            "pod {} is on unknown node {node:?}",
            pod.name_any()
        );
    }
    // kstatus view: generation observed, every part ready, nothing stalled or in progress.
    ensure!(status.observed_generation == tenant.metadata.generation);
    for (type_, want) in [
        ("KeyReady", "True"),
        ("BucketReady", "True"),
        ("NetworkIsolated", "True"),
        ("MediaReady", "True"),
        ("Stalled", "False"),
        ("Reconciling", "False"),
    ] {
        let got = sanctum_e2e::condition(&tenant, type_).map(|c| c.status.clone());
        ensure!(
            got.as_deref() == Some(want),
            "{type_} is {got:?}, expected {want}"
        );
    }
    let policies = Api::<NetworkPolicy>::namespaced(cluster.client.clone(), &namespace)
        .list(&ListParams::default())
        .await?;
    ensure!(
        policies
            .items
            .iter()
            .any(|p| p.name_any() == "default-deny"),
        "default-deny policy exists"
    );

    if let Some(writes) = cluster.operator_writes_since(created_at, &name, &namespace)? {
        ensure!(
            writes.iter().any(|w| w.starts_with("patch deployments/")),
            "audit log sees the operator: {writes:?}"
        );
    }

    // Converged: let in-flight reconciles finish, then make the operator reconcile again.
    let before_writes = op
        .settle(Duration::from_secs(2), Duration::from_secs(30))
        .await?;
    let before_reconciles = op.reconciles().await?;
    let since = Timestamp::now();
    let poke = serde_json::json!({"metadata": {"annotations": {"e2e.sanctum.dev/poke": since.to_string()}}});
    tenants
        .patch(&name, &PatchParams::default(), &Patch::Merge(&poke))
        .await?;
    wait_for(
        "a reconcile after the poke",
        Duration::from_secs(30),
        || async { Ok(op.reconciles().await? > before_reconciles) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_writes = op.writes().await?;
    ensure!(
        after_writes == before_writes,
        "a converged reconcile wrote {} times",
        after_writes - before_writes
    );
    if let Some(writes) = cluster.operator_writes_since(since, &name, &namespace)? {
        ensure!(
            writes.is_empty(),
            "the API server's audit log shows operator writes: {writes:?}"
        );
    }

    // Deletion removes the namespace, then the tenant.
    tenants.delete(&name, &Default::default()).await?;
    let namespaces = Api::<Namespace>::all(cluster.client.clone());
    wait_for(
        "namespace and tenant to be gone",
        Duration::from_secs(120),
        || async {
            Ok(namespaces.get_opt(&namespace).await?.is_none()
                && tenants.get_opt(&name).await?.is_none())
        },
    )
    .await?;
    Ok(())
}
