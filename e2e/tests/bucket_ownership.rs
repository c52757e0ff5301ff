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
    Cluster, Operator, cloud, condition, example_tenant, s3_of_account, unique, wait_condition,
    wait_gone, with_logs,
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

/// Bucket names are global: someone who guesses a tenant's bucket name (it is in the
/// GitOps repository) can create it first in an account of their own, even let everyone
/// write to it. The operator names the account that must own every bucket it touches
/// (`ExpectedBucketOwner`), so S3 refuses it: the tenant stalls, and the sniped bucket
/// receives no tag, no setting and no object.
#[tokio::test]
async fn a_bucket_made_first_in_another_account_receives_nothing() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("snipe");
    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        let cloud = cloud().await?;
        let ours = cloud.owners.clone().context("the emulator has accounts")?;
        let attacker = s3_of_account("999999999999").await?;
        ensure!(ours.default_account() != "999999999999", "two accounts");
        let sniped = format!("{run}-recordings");
        attacker.create_bucket().bucket(&sniped).send().await?;
        attacker
            .put_bucket_policy()
            .bucket(&sniped)
            .policy(
                serde_json::json!({"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": "*", "Action": "s3:*",
                    "Resource": [format!("arn:aws:s3:::{sniped}"), format!("arn:aws:s3:::{sniped}/*")]
                }]})
                .to_string(),
            )
            .send()
            .await?;

        let mut tenant = example_tenant(&run, &run)?;
        tenant.spec.storage.bucket = Some(sniped.clone());
        tenants.create(&PostParams::default(), &tenant).await?;
        let t = wait_condition(&tenants, &run, "Stalled", "True", Duration::from_secs(60)).await?;
        let stalled = condition(&t, "Stalled").cloned().context("Stalled")?;
        ensure!(
            stalled.message.contains("BucketNotOwned")
                && stalled.message.contains(&format!("is not owned by account {}", ours.default_account())),
            "stalled on the owner check: {}",
            stalled.message
        );
        ensure!(
            condition(&t, "BucketReady").is_none_or(|c| c.status != "True"),
            "no bucket is ready"
        );
        // Nothing reached the attacker's bucket, read back with the attacker's credentials.
        let tags = attacker.get_bucket_tagging().bucket(&sniped).send().await;
        ensure!(
            tags.as_ref().map_or(true, |t| t.tag_set().is_empty()),
            "no tag was put: {tags:?}"
        );
        ensure!(
            attacker
                .get_bucket_lifecycle_configuration()
                .bucket(&sniped)
                .send()
                .await
                .is_err(),
            "no lifecycle was put"
        );
        let objects = attacker.list_objects_v2().bucket(&sniped).send().await?;
        ensure!(objects.contents().is_empty(), "no object was written");

        // The same request without the expected owner would have been served: the refusal
        // is the owner check's, not a missing permission.
        let unchecked = s3_of_account(ours.default_account()).await?;
        ensure!(
            unchecked.head_bucket().bucket(&sniped).send().await.is_ok(),
            "the bucket itself is reachable from our account"
        );
        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(120)).await?;
        Ok(())
    })
    .await
}
