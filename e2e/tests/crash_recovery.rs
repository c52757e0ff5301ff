//! Crash safety: an operator killed mid-reconcile and restarted converges with nothing
//! duplicated, and the join-token key made before the crash is kept.

use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use sanctum_api::VideoTenant;
use sanctum_e2e::{Cluster, Operator, example_tenant, unique, wait_condition, wait_for, with_logs};

#[tokio::test]
async fn restart_after_kill_converges_and_keeps_the_signing_key() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("crash");
    let name = run.clone();
    let namespace = format!("vt-{name}");
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), &namespace);

    let mut first = Operator::start(&run).await?;
    tenants
        .create(&PostParams::default(), &example_tenant(&name, &run)?)
        .await?;
    // Kill as soon as the first write landed: the reconcile is cut off part-way.
    with_logs(&first, || {
        wait_for(
            "the first status write",
            Duration::from_secs(60),
            || async {
                Ok(tenants
                    .get(&name)
                    .await?
                    .status
                    .and_then(|s| s.observed_generation)
                    .is_some())
            },
        )
    })
    .await?;
    first.kill().await?;

    let second = Operator::start(&run).await?;
    with_logs(&second, || async {
        wait_condition(
            &tenants,
            &name,
            "MediaReady",
            "True",
            Duration::from_secs(120),
        )
        .await?;
        let key = secrets.get("join-token-signing-key").await?;
        let all = secrets
            .list(&ListParams::default().labels(&format!("sanctum.dev/tenant={name}")))
            .await?;
        let mut names: Vec<String> = all.items.iter().map(|s| s.name_any()).collect();
        names.sort();
        ensure!(
            names
                == [
                    "join-token-signing-key",
                    "media-control-tls",
                    "tenant-data-key",
                    "tenant-local-key"
                ],
            "exactly one signing key, control certificate, data key and local key copy, found {names:?}"
        );
        // And one key-encryption key and one control CA of this tenant in the operator's
        // namespace.
        let uid = tenants.get(&name).await?.metadata.uid.unwrap_or_default();
        let own = Api::<Secret>::namespaced(cluster.client.clone(), "sanctum-system")
            .list(&ListParams::default().labels(&format!("sanctum.dev/tenant-uid={uid}")))
            .await?
            .items;
        let count = |prefix: &str| own.iter().filter(|s| s.name_any().starts_with(prefix)).count();
        ensure!(
            count("tenant-local-kek-") == 1,
            "{} key-encryption keys for one tenant",
            count("tenant-local-kek-")
        );
        ensure!(
            count("recording-control-ca-") == 1,
            "{} control CAs for one tenant",
            count("recording-control-ca-")
        );

        // The key stays; the public half is re-published if someone deletes it.
        let configmaps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &namespace);
        let public = configmaps
            .get("join-token-public-key")
            .await?
            .data
            .unwrap_or_default();
        configmaps
            .delete("join-token-public-key", &Default::default())
            .await?;
        wait_for(
            "public key to be re-published",
            Duration::from_secs(60),
            || async {
                Ok(configmaps
                    .get_opt("join-token-public-key")
                    .await?
                    .and_then(|c| c.data)
                    == Some(public.clone()))
            },
        )
        .await?;
        let after = secrets.get("join-token-signing-key").await?;
        ensure!(
            after.uid() == key.uid() && after.data == key.data,
            "the signing key was never replaced"
        );
        tenants.delete(&name, &Default::default()).await?;
        Ok(())
    })
    .await
}
