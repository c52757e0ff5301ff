//! The audit trail against the S3 emulator: reconciles append to the tenant's hash chain
//! in an Object Lock bucket; `sanctum audit verify` fails at a record that was edited,
//! deleted or reordered in the bucket, and keeps failing once the object is put back (an
//! audit object is written once, so a second version is an overwrite); the store refuses
//! to delete a locked object version.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectLockMode;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use sanctum_api::VideoTenant;
use sanctum_e2e::{
    Cluster, Operator, audit_public_keys, cloud, example_tenant, unique, wait_condition,
    wait_event, wait_for, with_logs, workspace_binary,
};
use sanctum_operator::audit::store::AuditStore;
use sanctum_operator::audit::{Chain, Record, chain_prefix, parse};

/// Runs `sanctum audit ARGS... --public-keys KEYS` and returns (success, stdout, stderr).
fn sanctum_audit(keys: &Path, args: &[&str]) -> Result<(bool, String, String)> {
    let out = std::process::Command::new(workspace_binary("sanctum")?)
        .arg("audit")
        .args(args)
        .arg("--public-keys")
        .arg(keys)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `audit verify` of `tenant`: Ok(stdout) when intact, Err(stderr) when broken.
fn verify(keys: &Path, bucket: &str, tenant: &str) -> Result<std::result::Result<String, String>> {
    let (ok, stdout, stderr) =
        sanctum_audit(keys, &["verify", "--tenant", tenant, "--bucket", bucket])?;
    Ok(if ok { Ok(stdout) } else { Err(stderr) })
}

/// Puts a new current version of `key`, as anyone with write access to the bucket could.
async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: String) -> Result<()> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(body.into_bytes()))
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn reconciles_are_chained_into_a_locked_bucket_and_tampering_is_found() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("audit");
    let bucket = format!("sanctum-audit-{run}");
    let op = Operator::start_with(
        &run,
        "",
        &[
            "--audit-bucket",
            &bucket,
            "--audit-flush-ms",
            "4000",
            "--audit-lag-event-seconds",
            "3",
        ],
    )
    .await?;
    let cloud = cloud().await?;
    let store = AuditStore::new(cloud.s3.clone(), &bucket);
    let chain = chain_prefix(&run, Chain::Reconciles);
    let s3 = &cloud.s3;
    with_logs(&op, || async {
        let tenants = Api::<VideoTenant>::all(cluster.client.clone());
        tenants
            .create(&PostParams::default(), &example_tenant(&run, &run)?)
            .await?;
        let tenant = wait_condition(&tenants, &run, "Ready", "True", Duration::from_secs(90)).await?;

        // Three spec changes 1.5 s apart, each a reconcile that applies the Deployment:
        // with a 4 s flush at least two of them share a batch object.
        for replicas in [2, 3, 1] {
            let change = serde_json::json!({"spec": {"media": {"regions": [{"name": "us-east", "replicas": replicas}]}}});
            tenants
                .patch(&run, &PatchParams::default(), &Patch::Merge(&change))
                .await?;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        wait_for("the reconciles' audit records", Duration::from_secs(60), || async {
            let batches = store.chain(&chain).await?;
            let records = parse(&batches).map_err(anyhow::Error::msg)?;
            // Creation and the three changes: four reconciles that applied something.
            Ok(records.len() >= 4
                && records
                    .iter()
                    .any(|(_, r)| r.actions.contains("applied Deployment/media-us-east")))
        })
        .await?;
        // One more change after those are written, so the chain spans two objects.
        let written = store.keys(&chain).await?.len();
        let change = serde_json::json!({"spec": {"media": {"regions": [{"name": "us-east", "replicas": 2}]}}});
        tenants
            .patch(&run, &PatchParams::default(), &Patch::Merge(&change))
            .await?;
        wait_for("a second audit object", Duration::from_secs(60), || async {
            Ok(store.keys(&chain).await?.len() > written)
        })
        .await?;
        let batches = store.chain(&chain).await?;
        let records: Vec<(String, Record)> = parse(&batches).map_err(anyhow::Error::msg)?;
        let first = &records[0].1;
        ensure!(first.seq == 1 && first.prev.chars().all(|c| c == '0'), "{first:?}");
        ensure!(
            first.kind == "VideoTenant"
                && first.name == run
                && first.uid.as_deref() == tenant.metadata.uid.as_deref()
                && first.controller == "videotenant"
                && first.outcome == "Applied",
            "{first:?}"
        );
        let keys = audit_public_keys(&cluster.client).await?;
        let stdout = verify(keys.path(), &bucket, &run)?.map_err(anyhow::Error::msg)?;
        ensure!(stdout.contains("intact and signed"), "{stdout}");
        println!("{}", stdout.trim());

        // The anchor: the tenant's status names the chain's last record, outside the bucket.
        let head = store.head(&chain).await?;
        let anchored = wait_for("status.lastAuditRecord at the chain's end", Duration::from_secs(30), || async {
            let anchor = tenants.get(&run).await?.status.and_then(|s| s.last_audit_record);
            Ok(anchor.is_some_and(|a| a.seq as u64 >= head.seq))
        })
        .await;
        anchored?;
        let anchor = tenants.get(&run).await?.status.and_then(|s| s.last_audit_record).context("anchor")?;
        let at = format!("{}:{}", anchor.seq, anchor.hash);
        let (ok, out, err) = sanctum_audit(keys.path(), &["verify", "--tenant", &run, "--bucket", &bucket, "--anchor", &at])?;
        ensure!(ok && out.contains(&format!("anchor {at} held")), "{out}{err}");
        // A chain that no longer reaches its anchor (cut short, or rewritten so the hash
        // differs) is found, whatever the bucket says.
        let beyond = format!("{}:{}", anchor.seq + 5, anchor.hash);
        let (ok, _, err) = sanctum_audit(keys.path(), &["verify", "--tenant", &run, "--bucket", &bucket, "--anchor", &beyond])?;
        ensure!(!ok && err.contains(&format!("does not hold record {}", anchor.seq + 5)), "{err}");
        let rewritten = format!("{}:{}", anchor.seq, "0".repeat(64));
        let (ok, _, err) = sanctum_audit(keys.path(), &["verify", "--tenant", &run, "--bucket", &bucket, "--anchor", &rewritten])?;
        ensure!(!ok && err.contains("truncated or rewritten"), "{err}");

        // Export (of a trail that verifies): the chain's records as JSON lines, filtered
        // by time.
        let (ok, out, err) = sanctum_audit(keys.path(), &["export", "--tenant", &run, "--bucket", &bucket])?;
        ensure!(ok, "{err}");
        let exported: Vec<Record> = out.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
        ensure!(exported.len() >= records.len(), "{} of {} records exported", exported.len(), records.len());
        ensure!(exported.first() == Some(first), "export starts with record 1");
        let (ok, out, err) = sanctum_audit(keys.path(), &[
            "export", "--tenant", &run, "--bucket", &bucket, "--until", "2000-01-01T00:00:00Z",
        ])?;
        ensure!(ok && out.is_empty(), "nothing before 2000: {out}{err}");


        // No key material in the trail: not the wrapped data key, not a private key.
        let namespace = tenant.status.as_ref().and_then(|s| s.namespace.clone()).context("namespace")?;
        let wrapped = Api::<Secret>::namespaced(cluster.client.clone(), &namespace)
            .get("tenant-data-key")
            .await?
            .data
            .context("data")?;
        let text: String = batches.iter().map(|b| b.body.as_str()).collect();
        for value in wrapped.values() {
            // A ByteString serializes as its base64 text.
            let b64 = serde_json::to_string(value)?;
            ensure!(!text.contains(b64.trim_matches('"')), "a wrapped key is in the audit trail");
        }
        ensure!(!text.contains("PRIVATE KEY"), "a private key is in the audit trail");

        // Locked: compliance mode, six years by default; deleting the version is refused.
        let key = batches[0].key.clone();
        let (mode, until) = store.retention(&key).await?;
        ensure!(mode == Some(ObjectLockMode::Compliance), "lock mode {mode:?}");
        println!("{key} locked ({mode:?}) until {until:?}");
        let versions = s3
            .list_object_versions()
            .bucket(&bucket)
            .prefix(&key)
            .send()
            .await?;
        let version = versions
            .versions()
            .first()
            .and_then(|v| v.version_id())
            .context("object version")?
            .to_string();
        let refused = s3
            .delete_object()
            .bucket(&bucket)
            .key(&key)
            .version_id(&version)
            .send()
            .await;
        let Err(refused) = refused else {
            anyhow::bail!("deleting a locked audit object version was allowed");
        };
        println!(
            "deleting {key} version {version}: {}",
            aws_sdk_s3::error::ProvideErrorMetadata::code(&refused).unwrap_or("no code")
        );

        // Written once: the bucket policy refuses a PutObject without If-None-Match, so not
        // even the writers' own credentials replace a batch; with it, S3 refuses (412).
        let original = batches[0].body.clone();
        let status = |r: &Result<_, aws_sdk_s3::error::SdkError<_>>| {
            r.as_ref().err().and_then(|e| e.raw_response()).map(|r| r.status().as_u16())
        };
        let plain = s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .body(ByteStream::from(original.clone().into_bytes()))
            .send()
            .await;
        ensure!(status(&plain) == Some(403), "an overwrite without If-None-Match: {plain:?}");
        let conditional = s3
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .if_none_match("*")
            .body(ByteStream::from(original.clone().into_bytes()))
            .send()
            .await;
        ensure!(status(&conditional) == Some(412), "a conditional overwrite: {conditional:?}");
        ensure!(store.overwritten(&chain).await?.is_empty(), "no second version was made");
        // Without the policy (an account administrator can remove it) an overwrite is
        // still found by `verify`: the tampering below runs with the policy removed.
        let write_once = s3.get_bucket_policy().bucket(&bucket).send().await?;
        let write_once = write_once.policy().context("the audit bucket's policy")?.to_string();
        ensure!(write_once.contains("s3:if-none-match"), "{write_once}");
        s3.delete_bucket_policy().bucket(&bucket).send().await?;

        // Edited: change what record 1 says.
        let edited = original.replacen("\"outcome\":\"Applied\"", "\"outcome\":\"Nothing\"", 1);
        ensure!(edited != original, "record 1 has an outcome to edit");
        put(s3, &bucket, &key, edited).await?;
        let broken = verify(keys.path(), &bucket, &run)?.expect_err("edited chain verifies");
        ensure!(broken.contains(&format!("record 1 in {key} does not match its hash")), "{broken}");
        println!("after editing record 1: {}", broken.trim());
        // Put back as it was: the content verifies again, but the object now has three
        // versions, and an audit object is written once. A rewritten tail is found even
        // when its hashes were recomputed.
        put(s3, &bucket, &key, original).await?;
        let broken = verify(keys.path(), &bucket, &run)?.expect_err("an overwritten chain verifies");
        ensure!(broken.contains(&format!("{key} has 3 versions")), "{broken}");
        println!("after putting record 1 back: {}", broken.trim());

        // Reordered: swap the first two records of a batch that has two.
        let batch = batches
            .iter()
            .find(|b| b.body.lines().count() >= 2)
            .context("a batch with two records")?
            .clone();
        let mut lines: Vec<&str> = batch.body.lines().collect();
        lines.swap(0, 1);
        put(s3, &bucket, &batch.key, format!("{}\n", lines.join("\n"))).await?;
        let broken = verify(keys.path(), &bucket, &run)?.expect_err("reordered chain verifies");
        let (a, b) = (batch.first_seq, batch.first_seq + 1);
        ensure!(
            broken.contains(&format!("record {b} in {} stands where record {a} belongs", batch.key)),
            "{broken}"
        );
        println!("after swapping records {a} and {b}: {}", broken.trim());
        put(s3, &bucket, &batch.key, batch.body.clone()).await?;
        // In order again: what is left is the overwrite (checked after the chain content).
        let broken = verify(keys.path(), &bucket, &run)?.expect_err("an overwritten chain verifies");
        ensure!(broken.contains("was overwritten"), "after the order was put back: {broken}");

        // Deleted: the first object disappears behind a delete marker.
        let marker = s3.delete_object().bucket(&bucket).key(&key).send().await?;
        let broken = verify(keys.path(), &bucket, &run)?.expect_err("chain without its first object verifies");
        let next = batches[1].first_seq;
        ensure!(
            broken.contains(&format!("records 1..={} are missing", next - 1)),
            "{broken}"
        );
        println!("after deleting {key}: {}", broken.trim());
        s3.delete_object()
            .bucket(&bucket)
            .key(&key)
            .version_id(marker.version_id().context("delete marker version")?)
            .send()
            .await?;
        let broken = verify(keys.path(), &bucket, &run)?.expect_err("an overwritten chain verifies");
        ensure!(broken.contains("was overwritten"), "after the delete marker was removed: {broken}");

        // The bucket refuses writes for a while: the tenant gets a Warning Event, the
        // records wait, and once the bucket takes them again the chain is complete.
        s3.put_bucket_policy().bucket(&bucket).policy(&write_once).send().await?;
        let policy = s3.get_bucket_policy().bucket(&bucket).send().await?;
        let policy = policy.policy().context("the audit bucket's policy")?.to_string();
        let deny = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "RefuseWrites", "Effect": "Deny", "Principal": "*",
                "Action": "s3:PutObject", "Resource": format!("arn:aws:s3:::{bucket}/*")
            }]
        });
        s3.put_bucket_policy().bucket(&bucket).policy(deny.to_string()).send().await?;
        let before = parse(&store.chain(&chain).await?).map_err(anyhow::Error::msg)?.len();
        let change = serde_json::json!({"spec": {"media": {"regions": [{"name": "us-east", "replicas": 3}]}}});
        tenants
            .patch(&run, &PatchParams::default(), &Patch::Merge(&change))
            .await?;
        let shipping = |reason: &'static str| {
            let what = format!("a {reason} Event");
            let client = cluster.client.clone();
            let run = run.clone();
            async move {
                wait_event(&client, None, &run, &what, |e| e.reason.as_deref() == Some(reason)).await
            }
        };
        shipping("AuditShippingDelayed").await?;
        ensure!(
            op.counter("sanctum_audit_ship_failures_total", "").await? > 0,
            "refused writes are counted"
        );
        s3.put_bucket_policy().bucket(&bucket).policy(policy).send().await?;
        shipping("AuditShippingRecovered").await?;
        let after = parse(&store.chain(&chain).await?).map_err(anyhow::Error::msg)?.len();
        ensure!(after > before, "the delayed records were written ({before} -> {after})");
        // The chain content and the delete markers are checked before the versions, so an
        // error about the earlier overwrites alone means the delayed records were chained.
        let broken = verify(keys.path(), &bucket, &run)?.expect_err("an overwritten chain verifies");
        ensure!(
            broken.contains(&format!("{key} has ")) && broken.contains("was overwritten"),
            "after the delay: {broken}"
        );

        // Appended with bucket access alone: a batch that links perfectly after the last
        // record and is written the way the writers write (If-None-Match, so the policy
        // lets it through), but without the operator's key. Verify names it.
        let head = store.head(&chain).await?;
        let (records, _) = sanctum_operator::audit::link(
            &[sanctum_operator::audit::Entry {
                tenant: run.clone(),
                time: "2026-12-01T00:00:00Z".into(),
                controller: "videotenant".into(),
                kind: "VideoTenant".into(),
                namespace: None,
                name: run.clone(),
                uid: None,
                generation: None,
                actions: "deleted nothing".into(),
                outcome: "Applied".into(),
            }],
            &head,
        );
        let forged = sanctum_operator::audit::batch_key(&chain, head.seq + 1);
        let sent = s3
            .put_object()
            .bucket(&bucket)
            .key(&forged)
            .if_none_match("*")
            .body(ByteStream::from(sanctum_operator::audit::to_json_lines(&records).into_bytes()))
            .send()
            .await;
        ensure!(sent.is_ok(), "a conditional create of a new key is allowed: {sent:?}");
        let broken = verify(keys.path(), &bucket, &run)?.expect_err("an unsigned batch verifies");
        ensure!(broken.contains(&format!("{forged} is not signed")), "{broken}");
        println!("after appending an unsigned batch: {}", broken.trim());

        tenants.delete(&run, &Default::default()).await?;
        Ok(())
    })
    .await?;
    let shipped = op
        .counter("sanctum_audit_records_shipped_total", "")
        .await?;
    ensure!(shipped >= 4, "{shipped} records shipped");
    Ok(())
}
