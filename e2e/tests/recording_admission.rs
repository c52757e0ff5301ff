//! Recordings are checked against their tenant's policy at admission: only in tenant
//! namespaces, only when the tenant allows recording, and with consent when required.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use sanctum_api::{Recording, labels};
use sanctum_e2e::{Cluster, unique, wait_for};

fn recording(name: &str, consent: bool) -> Result<Recording> {
    let mut spec = serde_json::json!({"room": "room-7f3a"});
    if consent {
        spec["consent"] = serde_json::json!({"recordedBy": "user-123", "method": "Verbal", "givenAt": "2026-11-24T10:00:00Z"});
    }
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "sanctum.dev/v1alpha1", "kind": "Recording",
        "metadata": {"name": name}, "spec": spec,
    }))?)
}

async fn namespace(cluster: &Cluster, labels: &[(&str, &str)]) -> Result<String> {
    let name = unique("rec-adm");
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(cluster.client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(name)
}

/// Waits until creating `rec` in `ns` is refused with `message` (the policy may take a
/// moment to become active after installation); anything admitted meanwhile is removed.
async fn refused(cluster: &Cluster, ns: &str, rec: &Recording, message: &str) -> Result<()> {
    let api = Api::<Recording>::namespaced(cluster.client.clone(), ns);
    wait_for(
        &format!("refusal: {message}"),
        Duration::from_secs(30),
        || async {
            match api.create(&PostParams::default(), rec).await {
                Err(kube::Error::Api(status)) if status.message.contains(message) => Ok(true),
                Err(e) => bail!("unexpected error: {e}"),
                Ok(created) => {
                    api.delete(
                        created.metadata.name.as_deref().unwrap_or_default(),
                        &Default::default(),
                    )
                    .await?;
                    Ok(false)
                }
            }
        },
    )
    .await
}

#[tokio::test]
async fn recordings_follow_the_tenant_policy() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let tenant_ns = namespace(
        &cluster,
        &[
            (labels::TENANT, "rec-adm"),
            (labels::RECORDING, "enabled"),
            (labels::RECORDING_CONSENT, "required"),
        ],
    )
    .await?;
    refused(
        &cluster,
        &tenant_ns,
        &recording("no-consent", false)?,
        "this tenant requires consent",
    )
    .await?;
    Api::<Recording>::namespaced(cluster.client.clone(), &tenant_ns)
        .create(&PostParams::default(), &recording("with-consent", true)?)
        .await?;

    let disabled = namespace(
        &cluster,
        &[(labels::TENANT, "rec-adm"), (labels::RECORDING, "disabled")],
    )
    .await?;
    refused(
        &cluster,
        &disabled,
        &recording("off", true)?,
        "recording is disabled for this tenant",
    )
    .await?;

    let plain = namespace(&cluster, &[]).await?;
    refused(
        &cluster,
        &plain,
        &recording("stray", true)?,
        "only be created in a tenant namespace",
    )
    .await?;

    let namespaces = Api::<Namespace>::all(cluster.client.clone());
    for ns in [tenant_ns, disabled, plain] {
        namespaces.delete(&ns, &Default::default()).await?;
    }
    Ok(())
}
