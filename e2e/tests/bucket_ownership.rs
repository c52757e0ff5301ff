//! A tenant's `spec.storage.bucket` cannot reach another tenant's recordings or the audit
//! trail (threat-model.md, T3): naming another tenant's bucket, the audit bucket, or an
//! existing bucket that holds objects and is not the tenant's stalls the tenant with
//! `BucketNotOwned` and changes nothing in that bucket; an empty bucket made for the
//! tenant is adopted and tagged.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use aws_sdk_s3::primitives::ByteStream;
use kube::Api;
use kube::api::PostParams;
use sanctum_api::VideoTenant;
use sanctum_e2e::{
    Cluster, Operator, cloud, condition, example_tenant, unique, wait_condition, wait_gone,
    with_logs,
};

#[tokio::test]
async fn foreign_buckets_are_refused_and_left_untouched() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("bucket");
    let audit = format!("sanctum-audit-{run}");
    let op = Operator::start_with(&run, "", &["--audit-bucket", &audit]).await?;
    with_logs(&op, || async {
        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        let cloud = cloud().await?;
        let lifecycle = |bucket: String| {
            let s3 = cloud.s3.clone();
            async move {
                let out = s3
                    .get_bucket_lifecycle_configuration()
                    .bucket(bucket)
                    .send()
                    .await?;
                Ok::<_, anyhow::Error>(format!("{:?}", out.rules()))
            }
        };
        let tags = |bucket: String| {
            let s3 = cloud.s3.clone();
            async move {
                let out = s3.get_bucket_tagging().bucket(bucket).send().await?;
                Ok::<_, anyhow::Error>(
                    out.tag_set()
                        .iter()
                        .map(|t| format!("{}={}", t.key(), t.value()))
                        .collect::<Vec<_>>(),
                )
            }
        };

        // The victim: a tenant with recordings kept six years.
        let victim = format!("{run}-victim");
        tenants
            .create(&PostParams::default(), &example_tenant(&victim, &run)?)
            .await?;
        let v =
            wait_condition(&tenants, &victim, "Ready", "True", Duration::from_secs(120)).await?;
        let victim_bucket = v
            .status
            .clone()
            .and_then(|s| s.bucket)
            .context("victim bucket")?;
        let before = (
            lifecycle(victim_bucket.clone()).await?,
            tags(victim_bucket.clone()).await?,
        );

        // An existing bucket with objects that nobody tagged, and an empty one.
        let stranger = format!("{run}-stranger");
        cloud.s3.create_bucket().bucket(&stranger).send().await?;
        cloud
            .s3
            .put_object()
            .bucket(&stranger)
            .key("someone-else.bin")
            .body(ByteStream::from_static(b"not yours"))
            .send()
            .await?;
        let empty = format!("{run}-empty");
        cloud.s3.create_bucket().bucket(&empty).send().await?;

        let mut stalled = Vec::new();
        for (suffix, bucket, why) in [
            (
                "a",
                victim_bucket.clone(),
                format!("is a bucket of tenant {victim}"),
            ),
            ("b", audit.clone(), "is the audit bucket".to_string()),
            (
                "c",
                stranger.clone(),
                "holds objects and is not tagged".to_string(),
            ),
        ] {
            let name = format!("{run}-{suffix}");
            let mut attacker = example_tenant(&name, &run)?;
            attacker.spec.storage.bucket = Some(bucket);
            attacker.spec.storage.retention_days = 1;
            tenants.create(&PostParams::default(), &attacker).await?;
            stalled.push((name, why));
        }
        for (name, why) in &stalled {
            let t =
                wait_condition(&tenants, name, "Stalled", "True", Duration::from_secs(60)).await?;
            let bucket_ready = condition(&t, "BucketReady").cloned();
            let stalled = condition(&t, "Stalled").cloned().context("Stalled")?;
            ensure!(
                stalled.message.contains("BucketNotOwned")
                    && stalled.message.contains(why.as_str()),
                "{name}: {}",
                stalled.message
            );
            ensure!(
                bucket_ready.is_none_or(|c| c.status != "True"),
                "{name}: no bucket is ready"
            );
        }
        let after = (
            lifecycle(victim_bucket.clone()).await?,
            tags(victim_bucket.clone()).await?,
        );
        ensure!(
            before == after,
            "the victim's bucket is unchanged: {before:?} vs {after:?}"
        );
        ensure!(
            cloud
                .s3
                .get_bucket_lifecycle_configuration()
                .bucket(&stranger)
                .send()
                .await
                .is_err(),
            "no lifecycle was put on the stranger's bucket"
        );
        let audit_rules = lifecycle(audit.clone()).await.unwrap_or_default();
        ensure!(
            !audit_rules.contains("Days: Some(1)"),
            "the audit bucket got no 1-day expiry"
        );

        // An empty, untagged bucket is one made for the tenant: adopted and tagged.
        let name = format!("{run}-d");
        let mut adopter = example_tenant(&name, &run)?;
        adopter.spec.storage.bucket = Some(empty.clone());
        tenants.create(&PostParams::default(), &adopter).await?;
        let t = wait_condition(&tenants, &name, "Ready", "True", Duration::from_secs(120)).await?;
        let uid = t.metadata.uid.clone().context("uid")?;
        ensure!(
            tags(empty.clone())
                .await?
                .contains(&format!("sanctum:tenant-uid={uid}"))
        );

        for t in [victim, name]
            .into_iter()
            .chain(stalled.into_iter().map(|(n, _)| n))
        {
            tenants.delete(&t, &Default::default()).await?;
            wait_gone(&tenants, &t, Duration::from_secs(120)).await?;
        }
        Ok(())
    })
    .await
}
