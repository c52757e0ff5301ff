//! Per-tenant keys and buckets against the S3/KMS emulator: both key providers, every
//! bucket protection, drift repair, and adoption of a key a crashed attempt left behind.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use aws_sdk_s3::types::PublicAccessBlockConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, PostParams};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use sanctum_api::{DeletionPolicy, KeyProvider, VideoTenant};
use sanctum_e2e::{
    Cluster, Operator, cloud, example_tenant, unique, wait_condition, wait_for, wait_gone,
    with_logs,
};
use sanctum_operator::cloud::buckets::{DesiredBucket, ensure_bucket};
use sanctum_operator::cloud::keys::{self, KeyContext, unwrap_local};
use sanctum_operator::cloud::{Cloud, CloudError};

/// Unwraps a KMS-wrapped tenant data key as a media node does (the operator never does).
async fn unwrap_kms(
    cloud: &Cloud,
    wrapped: &[u8],
    context: KeyContext<'_>,
) -> Result<impl std::ops::Deref<Target = Vec<u8>>, CloudError> {
    sanctum_operator::cloud::kms::unwrap(&cloud.kms, wrapped, context).await
}

/// Data of the escrow Secrets kept for `tenant` in the operator's namespace.
async fn escrowed(
    cluster: &Cluster,
    tenant: &str,
) -> Result<Vec<std::collections::BTreeMap<String, k8s_openapi::ByteString>>> {
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), "sanctum-system")
        .list(&ListParams::default().labels(&format!("sanctum.dev/tenant={tenant}")))
        .await?;
    Ok(secrets
        .items
        .into_iter()
        // The tenant's recording control key lives beside the escrow copies.
        .filter(|s| s.name_any().starts_with("tenant-key-escrow-"))
        .map(|s| s.data.unwrap_or_default())
        .collect())
}

async fn wrapped_key(cluster: &Cluster, namespace: &str) -> Result<Vec<u8>> {
    let secret = Api::<Secret>::namespaced(cluster.client.clone(), namespace)
        .get("tenant-data-key")
        .await?;
    Ok(secret
        .data
        .context("data")?
        .get("v1")
        .context("version 1")?
        .0
        .clone())
}

#[tokio::test]
async fn local_provider_wraps_a_key_and_protects_the_bucket() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("local");
    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        tenants
            .create(&PostParams::default(), &example_tenant(&run, &run)?)
            .await?;
        let t = wait_condition(&tenants, &run, "Ready", "True", Duration::from_secs(120)).await?;
        let status = t.status.clone().context("status")?;
        let namespace = status.namespace.clone().context("namespace")?;
        let bucket = status.bucket.clone().context("bucket in status")?;
        ensure!(status.key_arn.as_deref() == Some("local") && status.key_version == Some(1));

        // The tenant's own key-encryption key: kept in the operator's namespace under the
        // tenant's uid, copied for its media nodes. The wrapped key opens only with it and
        // this tenant's context.
        let uid = t.metadata.uid.clone().context("uid")?;
        let keks = Api::<Secret>::namespaced(cluster.client.clone(), "sanctum-system")
            .list(&ListParams::default().labels(&format!("sanctum.dev/tenant-uid={uid}")))
            .await?
            .items
            .into_iter()
            .filter(|s| s.name_any().starts_with("tenant-local-kek-"))
            .collect::<Vec<_>>();
        ensure!(
            keks.len() == 1,
            "one key-encryption key per tenant, found {}",
            keks.len()
        );
        let kek = keks[0].data.clone().context("kek data")?["key"].0.clone();
        let copy = Api::<Secret>::namespaced(cluster.client.clone(), &namespace)
            .get("tenant-local-key")
            .await?;
        ensure!(
            copy.data.clone().context("copy data")?["key"].0 == kek,
            "media nodes get the same key"
        );
        let wrapped = wrapped_key(&cluster, &namespace).await?;
        ensure!(unwrap_local(&kek, &wrapped, &run)?.len() == 32);
        ensure!(
            unwrap_local(&kek, &wrapped, "another-tenant").is_err(),
            "context binds the tenant"
        );

        // Every protection is in place: asking for the same bucket again repairs nothing.
        let cloud = cloud().await?;
        let want = DesiredBucket {
            name: bucket.clone(),
            region: "us-east-1".into(),
            tenant: run.clone(),
            tenant_uid: t.metadata.uid.clone().context("uid")?,
            reserved: vec![],
            configured: false,
            kms_key_arn: None,
            retention_days: t.spec.storage.retention_days,
            object_lock: None,
            write_once: false,
        };
        let report = ensure_bucket(&cloud, &want).await?;
        ensure!(
            !report.created && report.repaired.is_empty(),
            "bucket settings differ: {report:?}"
        );
        let lifecycle = cloud
            .s3
            .get_bucket_lifecycle_configuration()
            .bucket(&bucket)
            .send()
            .await?;
        ensure!(
            lifecycle.rules().iter().any(|r| {
                r.expiration().and_then(|e| e.days()) == Some(t.spec.storage.retention_days)
                    && r.abort_incomplete_multipart_upload()
                        .and_then(|a| a.days_after_initiation())
                        == Some(1)
            }),
            "no retention rule that also aborts stale uploads: {lifecycle:?}"
        );

        // Someone turns public access back on; the operator turns it off and says so.
        cloud
            .s3
            .put_public_access_block()
            .bucket(&bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(false)
                    .ignore_public_acls(false)
                    .block_public_policy(false)
                    .restrict_public_buckets(false)
                    .build(),
            )
            .send()
            .await?;
        let s3 = cloud.s3.clone();
        wait_for(
            "public access to be blocked again",
            Duration::from_secs(60),
            || async {
                let out = s3.get_public_access_block().bucket(&bucket).send().await?;
                Ok(out
                    .public_access_block_configuration()
                    .and_then(|c| c.block_public_acls())
                    == Some(true))
            },
        )
        .await?;
        let events = Api::<Event>::all(cluster.client.clone());
        wait_for(
            "a BucketDriftRepaired warning",
            Duration::from_secs(30),
            || async {
                let list = events
                    .list(&ListParams::default().fields(&format!("regarding.name={run}")))
                    .await?;
                Ok(list.items.iter().any(|e| {
                    e.reason.as_deref() == Some("BucketDriftRepaired")
                        && e.type_.as_deref() == Some("Warning")
                        && e.note
                            .as_deref()
                            .is_some_and(|n| n.contains("public access block"))
                }))
            },
        )
        .await?;
        // Retain (the default): after deletion the escrowed wrapped key is still there.
        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(120)).await?;
        let escrow = escrowed(&cluster, &run).await?;
        ensure!(
            escrow.len() == 1 && escrow[0].contains_key("v1"),
            "escrowed wrapped key kept: {escrow:?}"
        );
        Ok(())
    })
    .await
}

/// The key ARN `alias/sanctum/<tenant>` names.
async fn alias_target(
    cloud: &sanctum_operator::cloud::Cloud,
    tenant: &str,
) -> Result<Option<String>> {
    let described = cloud
        .kms
        .describe_key()
        .key_id(keys::alias(tenant))
        .send()
        .await?;
    Ok(described
        .key_metadata()
        .and_then(|m| m.arn())
        .map(str::to_string))
}

#[tokio::test]
async fn aws_provider_adopts_an_orphaned_key_and_encrypts_the_bucket_with_it() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("kms");
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let mut tenant = example_tenant(&run, &run)?;
    tenant.spec.encryption.provider = KeyProvider::Aws;
    // Created before any operator runs, so its uid is known...
    let created = tenants.create(&PostParams::default(), &tenant).await?;
    let uid = created.uid().context("uid")?;
    // ...and a key exists as if an earlier attempt died between CreateKey and CreateAlias.
    let cloud = cloud().await?;
    let orphan = cloud
        .kms
        .create_key()
        .description(format!("Sanctum tenant {run} ({uid})"))
        .send()
        .await?
        .key_metadata()
        .and_then(|m| m.arn())
        .context("orphan arn")?
        .to_string();

    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        let t = wait_condition(&tenants, &run, "Ready", "True", Duration::from_secs(120)).await?;
        let status = t.status.clone().context("status")?;
        ensure!(
            status.key_arn.as_deref() == Some(orphan.as_str()),
            "the orphaned key was adopted: {:?}",
            status.key_arn
        );
        ensure!(
            alias_target(&cloud, &run).await?.as_deref() == Some(orphan.as_str()),
            "alias points at it"
        );
        let rotation = cloud
            .kms
            .get_key_rotation_status()
            .key_id(&orphan)
            .send()
            .await?;
        ensure!(rotation.key_rotation_enabled(), "automatic rotation is on");

        // Exactly one key for the tenant.
        let mut matching = 0;
        let keys = cloud.kms.list_keys().limit(1000).send().await?;
        for key in keys.keys() {
            let described = cloud
                .kms
                .describe_key()
                .key_id(key.key_id().unwrap_or_default())
                .send()
                .await?;
            if described.key_metadata().and_then(|m| m.description())
                == Some(format!("Sanctum tenant {run} ({uid})").as_str())
            {
                matching += 1;
            }
        }
        ensure!(matching == 1, "{matching} keys for the tenant");

        // The data key unwraps through KMS only with the tenant's context.
        let namespace = status.namespace.clone().context("namespace")?;
        let wrapped = wrapped_key(&cluster, &namespace).await?;
        let context = KeyContext {
            tenant: &run,
            uid: &uid,
        };
        ensure!(unwrap_kms(&cloud, &wrapped, context).await?.len() == 32);
        ensure!(
            unwrap_kms(
                &cloud,
                &wrapped,
                KeyContext {
                    tenant: "another-tenant",
                    ..context
                }
            )
            .await
            .is_err(),
            "context binds the tenant"
        );
        ensure!(
            unwrap_kms(
                &cloud,
                &wrapped,
                KeyContext {
                    uid: "0e5e2c1a-uid-of-an-earlier-tenant",
                    ..context
                }
            )
            .await
            .is_err(),
            "context binds the tenant object: a re-created tenant of the same name cannot unwrap it"
        );
        let tags = cloud
            .kms
            .list_resource_tags()
            .key_id(&orphan)
            .send()
            .await?;
        ensure!(
            tags.tags()
                .iter()
                .any(|t| t.tag_key() == keys::TENANT_UID_TAG && t.tag_value() == uid),
            "the adopted key is tagged with the tenant's uid"
        );

        // The bucket defaults to SSE-KMS under the tenant key with bucket keys.
        let bucket = status.bucket.clone().context("bucket")?;
        let enc = cloud
            .s3
            .get_bucket_encryption()
            .bucket(&bucket)
            .send()
            .await?;
        let rule = enc
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first().cloned())
            .context("rule")?;
        let default = rule
            .apply_server_side_encryption_by_default()
            .context("default encryption")?;
        ensure!(
            default.kms_master_key_id() == Some(orphan.as_str()),
            "SSE-KMS with the tenant key"
        );
        ensure!(rule.bucket_key_enabled() == Some(true), "bucket keys on");

        // An upload that asks for another encryption is refused by the bucket policy: an
        // object under SSE-S3 or a foreign KMS key would escape the tenant's key, and with
        // it crypto-shredding. Without encryption headers, or naming the tenant's own key,
        // it is taken (and encrypted under the tenant's key by default).
        use aws_sdk_s3::types::ServerSideEncryption as Sse;
        let foreign_key = cloud.kms.create_key().send().await?;
        let foreign_key = foreign_key
            .key_metadata()
            .and_then(|m| m.arn())
            .context("arn")?;
        for (name, sse, key_id, taken) in [
            ("sse-s3", Some(Sse::Aes256), None, false),
            ("foreign-kms", Some(Sse::AwsKms), Some(foreign_key), false),
            ("tenant-kms", Some(Sse::AwsKms), Some(orphan.as_str()), true),
            ("default", None, None, true),
        ] {
            let sent = cloud
                .s3
                .put_object()
                .bucket(&bucket)
                .key(format!("probe/{name}"))
                .set_server_side_encryption(sse)
                .set_ssekms_key_id(key_id.map(str::to_string))
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"probe"))
                .send()
                .await;
            let code = sent
                .as_ref()
                .err()
                .and_then(|e| e.raw_response())
                .map(|r| r.status().as_u16());
            ensure!(
                if taken {
                    sent.is_ok()
                } else {
                    code == Some(403)
                },
                "{name}: taken {taken} expected, got {:?}",
                sent.map(|_| ()).map_err(|e| format!("{e:?}"))
            );
        }
        tenants.delete(&run, &Default::default()).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn data_keys_rotate_and_crypto_shredding_destroys_every_copy() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("shred");
    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        let mut tenant = example_tenant(&run, &run)?;
        tenant.spec.encryption.provider = KeyProvider::Aws;
        tenant.spec.encryption.deletion_policy = DeletionPolicy::CryptoShred;
        tenants.create(&PostParams::default(), &tenant).await?;
        let t = wait_condition(&tenants, &run, "Ready", "True", Duration::from_secs(120)).await?;
        let status = t.status.clone().context("status")?;
        let namespace = status.namespace.clone().context("namespace")?;
        let arn = status.key_arn.clone().context("key arn")?;
        let uid = t.uid().context("uid")?;
        let cloud = cloud().await?;
        ensure!(escrowed(&cluster, &run).await?.len() == 1, "v1 escrowed");

        let before = Api::<Deployment>::namespaced(cluster.client.clone(), &namespace)
            .get("media-us-east")
            .await?;
        // Ask for a rotation: version 2 becomes current, version 1 stays for old recordings.
        let poke = serde_json::json!({"metadata": {"annotations": {"sanctum.dev/rotate-data-key": "drill-1"}}});
        tenants.patch(&run, &PatchParams::default(), &Patch::Merge(&poke)).await?;
        wait_for("key version 2", Duration::from_secs(60), || async {
            Ok(tenants.get(&run).await?.status.and_then(|s| s.key_version) == Some(2))
        })
        .await?;
        let secret = Api::<Secret>::namespaced(cluster.client.clone(), &namespace).get("tenant-data-key").await?;
        let data = secret.data.context("data")?;
        for version in ["v1", "v2"] {
            let wrapped = &data.get(version).context("both versions kept")?.0;
            let context = KeyContext { tenant: &run, uid: &uid };
            ensure!(unwrap_kms(&cloud, wrapped, context).await?.len() == 32, "{version} unwraps");
        }
        ensure!(data["v1"].0 != data["v2"].0, "a new key, not a copy");
        wait_for("v2 escrowed", Duration::from_secs(30), || async {
            Ok(escrowed(&cluster, &run).await?.first().is_some_and(|d| d.contains_key("v1") && d.contains_key("v2")))
        })
        .await?;
        // The nodes pick v2 up from the mounted Secret: the Deployment, and so every running
        // pod and call, is left as it was.
        let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &namespace);
        let d = deployments.get("media-us-east").await?;
        ensure!(
            d.metadata.generation == before.metadata.generation,
            "a rotation changed the media Deployment (generation {:?} -> {:?})",
            before.metadata.generation,
            d.metadata.generation
        );
        let env = d.spec.and_then(|s| s.template.spec).map(|p| p.containers[0].env.clone().unwrap_or_default()).unwrap_or_default();
        ensure!(
            env.iter().any(|e| e.name == "SANCTUM_TENANT_KEY_DIR" && e.value.as_deref() == Some("/etc/sanctum/tenant-key")),
            "nodes read every version from the mounted Secret"
        );

        // Deletion shreds: the KMS key is scheduled for deletion, no escrowed copy survives.
        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(120)).await?;
        let state = cloud.kms.describe_key().key_id(&arn).send().await?;
        ensure!(
            state.key_metadata().and_then(|m| m.key_state()) == Some(&aws_sdk_kms::types::KeyState::PendingDeletion),
            "key state: {:?}",
            state.key_metadata().and_then(|m| m.key_state())
        );
        ensure!(escrowed(&cluster, &run).await?.is_empty(), "no escrowed key remains");
        Ok(())
    })
    .await
}

/// A tenant deleted with `deletionPolicy: Retain` leaves its KMS key and the alias
/// `alias/sanctum/<name>`. A later tenant of the same name is another object (another
/// uid): it must neither use that key nor, when it is deleted with `CryptoShred`, shred
/// it, even if its status were made to name it (threat-model.md, T7).
#[tokio::test]
async fn a_recreated_tenant_of_the_same_name_neither_uses_nor_shreds_the_old_key() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("rekey");
    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        let cloud = cloud().await?;
        let state = |arn: String| {
            let kms = cloud.kms.clone();
            async move {
                let out = kms.describe_key().key_id(arn).send().await?;
                Ok::<_, anyhow::Error>(out.key_metadata().and_then(|m| m.key_state()).cloned())
            }
        };
        let mut first = example_tenant(&run, &run)?;
        first.spec.encryption.provider = KeyProvider::Aws;
        tenants.create(&PostParams::default(), &first).await?;
        let t = wait_condition(&tenants, &run, "Ready", "True", Duration::from_secs(120)).await?;
        let old_key = t.status.and_then(|s| s.key_arn).context("key arn")?;
        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(120)).await?;
        ensure!(state(old_key.clone()).await? == Some(aws_sdk_kms::types::KeyState::Enabled));

        // The same name again, this time to be crypto-shredded.
        let mut second = example_tenant(&run, &run)?;
        second.spec.encryption.provider = KeyProvider::Aws;
        second.spec.encryption.deletion_policy = DeletionPolicy::CryptoShred;
        tenants.create(&PostParams::default(), &second).await?;
        let t = wait_condition(&tenants, &run, "Stalled", "True", Duration::from_secs(60)).await?;
        let stalled = sanctum_e2e::condition(&t, "Stalled")
            .cloned()
            .context("Stalled")?;
        ensure!(
            stalled.message.contains("KeyNotOwned") && stalled.message.contains(&old_key),
            "stalled on the old key: {}",
            stalled.message
        );
        ensure!(
            t.status
                .as_ref()
                .and_then(|s| s.key_arn.as_deref())
                .is_none(),
            "the old key was not taken"
        );

        // Even a status that names the old key (restored from elsewhere, or forged by
        // whoever may write status) does not get it shredded.
        let forged = serde_json::json!({"status": {"keyArn": old_key}});
        tenants
            .patch_status(&run, &PatchParams::default(), &Patch::Merge(&forged))
            .await?;
        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(120)).await?;
        ensure!(
            state(old_key.clone()).await? == Some(aws_sdk_kms::types::KeyState::Enabled),
            "the earlier tenant's key is not scheduled for deletion"
        );
        ensure!(
            alias_target(&cloud, &run).await?.as_deref() == Some(old_key.as_str()),
            "its alias stays"
        );
        Ok(())
    })
    .await
}

/// Crypto-shredding with the local provider destroys the tenant's key-encryption key with
/// the escrowed wrapped keys: nothing in the operator's namespace can open the tenant's
/// data keys any more (and the copy in the tenant namespace goes with the namespace).
#[tokio::test]
async fn local_crypto_shredding_destroys_the_key_encryption_key() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("lshred");
    let op = Operator::start(&run).await?;
    with_logs(&op, || async {
        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        let mut tenant = example_tenant(&run, &run)?;
        tenant.spec.encryption.deletion_policy = DeletionPolicy::CryptoShred;
        tenants.create(&PostParams::default(), &tenant).await?;
        let t = wait_condition(&tenants, &run, "Ready", "True", Duration::from_secs(120)).await?;
        let uid = t.uid().context("uid")?;
        let secrets = Api::<Secret>::namespaced(cluster.client.clone(), "sanctum-system");
        let keyed = || async {
            let list = secrets
                .list(&ListParams::default().labels(&format!("sanctum.dev/tenant-uid={uid}")))
                .await?;
            Ok::<_, anyhow::Error>(
                list.items
                    .into_iter()
                    .map(|s| s.name_any())
                    .collect::<Vec<_>>(),
            )
        };
        let before = keyed().await?;
        ensure!(
            before.iter().any(|n| n.starts_with("tenant-local-kek-"))
                && before.iter().any(|n| n.starts_with("tenant-key-escrow-")),
            "the key-encryption key and the escrow copy exist: {before:?}"
        );
        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(120)).await?;
        let after = keyed().await?;
        ensure!(
            !after
                .iter()
                .any(|n| n.starts_with("tenant-local-kek-") || n.starts_with("tenant-key-escrow-")),
            "no key-encryption key or escrowed key survives: {after:?}"
        );
        Ok(())
    })
    .await
}

/// Standard base64 (padded or not, URL-safe or not) decoded, through the API types' own
/// base64 (`ByteString`).
fn unbase64(text: &str) -> Result<Vec<u8>> {
    let mut b64: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !b64.len().is_multiple_of(4) {
        b64.push('=');
    }
    Ok(serde_json::from_value::<k8s_openapi::ByteString>(b64.into())?.0)
}

/// The public keys of a PEM bundle, each as the `kid` tokens signed with it carry (the
/// first 8 bytes of the SHA-256 of the raw Ed25519 key, the last 32 bytes of its SPKI).
fn kids(bundle: &str) -> Result<Vec<String>> {
    use sha2::Digest as _;
    bundle
        .split("-----END PUBLIC KEY-----")
        .filter_map(|b| b.split("-----BEGIN PUBLIC KEY-----").nth(1))
        .map(|body| {
            let der = unbase64(body)?;
            ensure!(der.len() == 44, "not an Ed25519 SPKI key");
            Ok(hex::encode(&sha2::Sha256::digest(&der[12..])[..8]))
        })
        .collect()
}

/// The `kid` of a token minted with `private_pem` as the tenant's application would.
fn kid_of_signer(private_pem: &[u8], tenant: &str) -> Result<String> {
    let token = sanctum_e2e::node::mint_token(private_pem, tenant, "room-1", "u-1", "participant")?;
    let header: serde_json::Value =
        serde_json::from_slice(&unbase64(token.split('.').next().context("header")?)?)?;
    Ok(header["kid"].as_str().context("kid")?.to_string())
}

#[tokio::test]
async fn join_token_keys_rotate_on_request_with_an_overlap_then_retire() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("jrot");
    // A short overlap and resync, so that the old key's retirement is seen here.
    let op = Operator::start_with(
        &run,
        &run,
        &["--join-key-overlap-seconds", "15", "--resync-seconds", "3"],
    )
    .await?;
    with_logs(&op, || async {
        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        tenants
            .create(&PostParams::default(), &example_tenant(&run, &run)?)
            .await?;
        wait_condition(&tenants, &run, "Ready", "True", Duration::from_secs(120)).await?;
        let ns = format!("vt-{run}");
        let secrets = Api::<Secret>::namespaced(cluster.client.clone(), &ns);
        let maps = Api::<ConfigMap>::namespaced(cluster.client.clone(), &ns);
        let private = || async {
            let s = secrets.get("join-token-signing-key").await?;
            anyhow::Ok(
                s.data
                    .and_then(|d| d.get("private.pem").cloned())
                    .context("private.pem")?
                    .0,
            )
        };
        let published = || async {
            let m = maps.get("join-token-public-key").await?;
            anyhow::Ok(
                m.data
                    .and_then(|d| d.get("public.pem").cloned())
                    .unwrap_or_default(),
            )
        };
        let old = private().await?;
        let old_kid = kid_of_signer(&old, &run)?;
        ensure!(
            kids(&published().await?)? == vec![old_kid.clone()],
            "one key before any rotation"
        );

        let ask = |value: &str| {
            Patch::Merge(serde_json::json!({
                "metadata": {"annotations": {"sanctum.dev/rotate-join-token-key": value}}
            }))
        };
        tenants
            .patch(&run, &PatchParams::default(), &ask("2026-12-07"))
            .await?;
        wait_for(
            "a new key, published beside the old one",
            Duration::from_secs(60),
            || async {
                let new = private().await?;
                Ok(new != old
                    && kids(&published().await?)?
                        == vec![kid_of_signer(&new, &run)?, old_kid.clone()])
            },
        )
        .await?;
        let new = private().await?;
        let new_kid = kid_of_signer(&new, &run)?;
        // The same request again is not a second rotation.
        tenants
            .patch(&run, &PatchParams::default(), &ask("2026-12-07"))
            .await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        ensure!(private().await? == new, "one request, one rotation");
        wait_for(
            "the old key to retire once its overlap is over",
            Duration::from_secs(60),
            || async { Ok(kids(&published().await?)? == vec![new_kid.clone()]) },
        )
        .await?;
        let secret = secrets.get("join-token-signing-key").await?;
        ensure!(
            !secret
                .data
                .unwrap_or_default()
                .contains_key("previous-public.pem"),
            "the retired key is dropped from the Secret"
        );
        tenants.delete(&run, &Default::default()).await?;
        wait_gone(&tenants, &run, Duration::from_secs(120)).await
    })
    .await
}
