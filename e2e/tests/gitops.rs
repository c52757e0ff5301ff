//! What GitOps tools see: the status kstatus (Flux's library) computes for a tenant through
//! its life, and clean field ownership when two tools apply the same manifest.

use std::time::Duration;

use anyhow::{Result, ensure};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use sanctum_api::VideoTenant;
use sanctum_e2e::{
    Cluster, Operator, example_tenant, kstatus, unique, wait_condition, wait_for, wait_gone,
    with_logs,
};

async fn status_of(tenants: &Api<VideoTenant>, name: &str) -> Result<String> {
    Ok(kstatus(&tenants.get(name).await?).await?.0)
}

#[tokio::test]
async fn kstatus_follows_the_tenant_through_its_life() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("kstatus");
    let name = run.clone();
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let apply = PatchParams::apply("gitops-e2e");

    let mut op = Operator::start(&run).await?;
    let tenant = example_tenant(&name, &run)?;
    tenants.patch(&name, &apply, &Patch::Apply(&tenant)).await?;
    with_logs(&op, || async {
        wait_condition(&tenants, &name, "Ready", "True", Duration::from_secs(120)).await?;
        ensure!(
            status_of(&tenants, &name).await? == "Current",
            "Ready is Current"
        );
        Ok(())
    })
    .await?;

    // A spec change nobody has reconciled yet: InProgress (generation not observed).
    op.kill().await?;
    let mut changed = tenant.clone();
    changed.spec.media.max_session_minutes += 1;
    tenants
        .patch(&name, &apply, &Patch::Apply(&changed))
        .await?;
    let (status, message) = kstatus(&tenants.get(&name).await?).await?;
    ensure!(
        status == "InProgress",
        "unobserved generation: {status} ({message})"
    );

    // Asking for what this installation does not allow (the tenant's key provider, once the
    // operator is restarted with `--key-providers aws`): Stalled=True, which kstatus
    // reports as Failed.
    let op = Operator::start_with(&run, "", &["--key-providers", "aws"]).await?;
    with_logs(&op, || async {
        wait_condition(&tenants, &name, "Stalled", "True", Duration::from_secs(120)).await?;
        let (status, message) = kstatus(&tenants.get(&name).await?).await?;
        ensure!(status == "Failed", "stalled tenant: {status} ({message})");
        Ok(())
    })
    .await?;
    drop(op);

    // Allowed again: Current again.
    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        wait_for("kstatus Current", Duration::from_secs(120), || async {
            Ok(status_of(&tenants, &name).await? == "Current")
        })
        .await?;

        tenants.delete(&name, &DeleteParams::default()).await?;
        wait_gone(&tenants, &name, Duration::from_secs(120)).await
    })
    .await
}

#[tokio::test]
async fn two_tools_applying_the_same_manifest_do_not_fight() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("owners");
    let name = run.clone();
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let op = Operator::start(&run).await?;
    let tenant = example_tenant(&name, &run)?;

    // Argo CD and Flux both server-side apply, each as its own field manager, no force.
    let argo = PatchParams::apply("argocd-controller");
    let flux = PatchParams::apply("kustomize-controller");
    tenants.patch(&name, &argo, &Patch::Apply(&tenant)).await?;
    with_logs(&op, || async {
        wait_condition(&tenants, &name, "Ready", "True", Duration::from_secs(120)).await?;
        let before = tenants.get(&name).await?;
        tenants.patch(&name, &flux, &Patch::Apply(&tenant)).await?;
        tenants.patch(&name, &argo, &Patch::Apply(&tenant)).await?;
        let after = tenants.get(&name).await?;
        ensure!(
            after.metadata.generation == before.metadata.generation,
            "re-applying the same manifest changes nothing"
        );
        // The operator owns status and its finalizer, never spec fields.
        for entry in after.managed_fields() {
            let manager = entry.manager.as_deref().unwrap_or_default();
            if !manager.starts_with("sanctum") {
                continue;
            }
            let fields = entry
                .fields_v1
                .as_ref()
                .map(|f| f.0.to_string())
                .unwrap_or_default();
            ensure!(
                entry.subresource.as_deref() == Some("status") || !fields.contains("\"f:spec\""),
                "{manager} owns spec fields: {fields}"
            );
        }
        tenants.delete(&name, &DeleteParams::default()).await?;
        wait_gone(&tenants, &name, Duration::from_secs(120)).await
    })
    .await
}
