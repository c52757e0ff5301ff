//! `kubectl sanctum` against a converged tenant: `status`, and an `evidence` report read
//! live from the API server and the AWS emulator that passes every safeguard; then, with
//! reconciles stopped, public access opened on the bucket and an audit object replaced by
//! hand, the report fails naming the safeguard each breaks. `restore-drill` restores a
//! backup into a scratch bucket, checks its SHA-256s, removes it, and fails on a corrupted
//! backup object; `verify-audit` checks the chain against the tenant's anchor.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::PublicAccessBlockConfiguration;
use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use sanctum_api::{Recording, VideoTenant};
use sanctum_e2e::{
    Cluster, Operator, cloud, example_tenant, put_sealed_recording, unique, wait_condition,
    wait_for, with_logs, workspace_binary,
};
use sanctum_operator::audit::{Chain, chain_prefix};
use serde_json::Value;

/// The kubeconfig every plugin call uses: the auditor's identity (set by the test).
static AUDITOR_KUBECONFIG: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Runs `kubectl-sanctum ARGS...` as the auditor and returns (exit code, stdout, stderr).
fn plugin(audit_bucket: &str, args: &[&str]) -> Result<(i32, String, String)> {
    let kubeconfig = AUDITOR_KUBECONFIG
        .get()
        .context("the auditor's kubeconfig")?;
    let out = std::process::Command::new(workspace_binary("kubectl-sanctum")?)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("SANCTUM_AUDIT_BUCKET", audit_bucket)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn evidence_json(audit_bucket: &str, run: &str) -> Result<(i32, Value, String)> {
    let (code, out, err) = plugin(audit_bucket, &["evidence", run, "--format", "json"])?;
    let report: Value = serde_json::from_str(&out).with_context(|| format!("{out}{err}"))?;
    Ok((code, report, err))
}

/// The report's finding `id`.
fn finding<'a>(report: &'a Value, id: &str) -> Result<&'a Value> {
    report["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["id"] == id))
        .with_context(|| format!("no finding {id} in the report"))
}

fn control<'a>(report: &'a Value, id: &str) -> Result<&'a Value> {
    report["controls"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["id"] == id)
        .with_context(|| format!("no control {id}"))
}

/// The chart's auditor ClusterRole, bound to a group of its own, and a kubeconfig that
/// acts as a member of it: the plugin runs with exactly what the chart grants auditors.
async fn auditor(cluster: &Cluster, run: &str, dir: &Path) -> Result<kube::Client> {
    let chart = sanctum_e2e::repo_root().join("charts/sanctum");
    let rendered = std::process::Command::new("helm")
        .args(["template", "sanctum"])
        .arg(&chart)
        .args([
            "--kube-version",
            "1.33.0",
            "--show-only",
            "templates/auditor-clusterrole.yaml",
        ])
        .output()?;
    ensure!(
        rendered.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let mut role: ClusterRole = serde_yaml::from_slice(&rendered.stdout)?;
    let name = format!("sanctum-auditor-{run}");
    role.metadata.name = Some(name.clone());
    let post = PostParams::default();
    Api::<ClusterRole>::all(cluster.client.clone())
        .create(&post, &role)
        .await?;
    let group = format!("auditors-{run}");
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
    }))?;
    Api::<ClusterRoleBinding>::all(cluster.client.clone())
        .create(&post, &binding)
        .await?;
    let user = format!("auditor-{run}");
    let path = std::env::var("KUBECONFIG").context("KUBECONFIG")?;
    let mut config: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path)?)?;
    for entry in config["users"].as_sequence_mut().into_iter().flatten() {
        entry["user"]["as"] = user.clone().into();
        entry["user"]["as-groups"] =
            serde_yaml::Value::Sequence(vec![group.clone().into(), "system:authenticated".into()]);
    }
    let file = dir.join("auditor.kubeconfig");
    std::fs::write(&file, serde_yaml::to_string(&config)?)?;
    AUDITOR_KUBECONFIG.set(file).ok();
    let mut impersonated = kube::Config::infer().await?;
    impersonated.auth_info.impersonate = Some(user);
    impersonated.auth_info.impersonate_groups = Some(vec![group, "system:authenticated".into()]);
    Ok(kube::Client::try_from(impersonated)?)
}

#[tokio::test]
async fn evidence_of_a_converged_tenant_passes_and_names_what_fails() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("evidence");
    let dir = tempfile::tempdir()?;
    let as_auditor = auditor(&cluster, &run, dir.path()).await?;
    let audit_bucket = format!("sanctum-audit-{run}");
    let mut op = Operator::start_with(
        &run,
        "",
        &["--audit-bucket", &audit_bucket, "--audit-flush-ms", "1000"],
    )
    .await?;
    let cloud = cloud().await?;
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let scratch = format!("sanctum-drill-{run}");
    let outcome = with_logs(&op, || async {
        let mut tenant = example_tenant(&run, &run)?;
        tenant.spec.encryption.provider = sanctum_api::KeyProvider::Aws;
        tenants.create(&PostParams::default(), &tenant).await?;
        wait_condition(&tenants, &run, "Ready", "True", Duration::from_secs(120)).await?;
        wait_for("status.lastAuditRecord", Duration::from_secs(60), || async {
            Ok(tenants.get(&run).await?.status.and_then(|s| s.last_audit_record).is_some())
        })
        .await?;

        // status: one line for the tenant, Ready, no colour when not on a terminal.
        let (code, out, err) = plugin(&audit_bucket, &["status", &run])?;
        ensure!(code == 0, "status exited {code}: {out}{err}");
        let line = out.lines().find(|l| l.starts_with(&run)).context("a line for the tenant")?;
        let regions = line.split_whitespace().nth(2).context("regions column")?;
        let (ready, desired) = regions.split_once('/').context("ready/desired")?;
        ensure!(line.contains("True") && ready == desired && line.contains("v1"), "{out}");
        ensure!(!out.contains('\u{1b}'), "colour on a pipe: {out:?}");
        // kubectl finds the plugin by its name on the PATH, as after the README's install.
        let binary = workspace_binary("kubectl-sanctum")?;
        let dir = binary.parent().context("the plugin's directory")?;
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
        let kubectl = std::env::var("SANCTUM_E2E_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let via = std::process::Command::new(kubectl)
            .args(["sanctum", "status", &run])
            .env("PATH", path)
            .env("KUBECONFIG", AUDITOR_KUBECONFIG.get().context("kubeconfig")?)
            .output()?;
        ensure!(via.status.success() && String::from_utf8_lossy(&via.stdout)
                    .lines()
                    .any(|l| l.starts_with(&run) && l.contains("True")), "kubectl sanctum: {}", String::from_utf8_lossy(&via.stderr));

        // evidence: every section read, every safeguard passes (backups not configured).
        let (code, report, err) = evidence_json(&audit_bucket, &run)?;
        ensure!(code == 0, "evidence exited {code}: {err}\n{report:#}");
        for section in ["tenant", "bucket", "keys", "network", "sessions", "recordings", "backup", "audit"] {
            ensure!(!report[section].is_null(), "section {section} is empty: {report:#}");
        }
        let settings = report["bucket"]["settings"].as_array().context("bucket settings")?;
        ensure!(settings.len() >= 6 && settings.iter().all(|s| s["ok"] == true), "{settings:#?}");
        let access = settings.iter().find(|s| s["setting"] == "public access block").context("BPA")?;
        for flag in ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"] {
            ensure!(access["observed"][flag] == true, "{access}");
        }
        ensure!(report["keys"]["kms"]["automaticRotation"] == true, "{:#}", report["keys"]);
        ensure!(report["keys"]["dataKeyVersions"].as_array().is_some_and(|v| v.len() == 1), "{:#}", report["keys"]);
        let connections = report["network"]["connections"].as_array().context("connections")?;
        ensure!(
            connections.iter().any(|c| c["policy"] == "allow-signaling-ingress"
                && c["peers"].as_array().is_some_and(|p| p.iter().any(|p| p.as_str().is_some_and(|p| p.contains("ingress-nginx"))))),
            "{connections:#?}"
        );
        ensure!(report["audit"]["verified"] == true && report["audit"]["recordsInPeriod"].as_u64() > Some(0), "{:#}", report["audit"]);
        for c in report["controls"].as_array().context("controls")? {
            ensure!(c["status"] == "pass" || c["status"] == "not configured", "{c}");
        }
        ensure!(control(&report, "164.308(a)(7)")?["status"] == "not configured", "no spec.backup");
        ensure!(control(&report, "164.312(a)(1)")?["status"] == "pass", "access control");
        println!("evidence passes: {} findings, {} controls", report["findings"].as_array().map_or(0, Vec::len), report["controls"].as_array().map_or(0, Vec::len));

        // The same report as Markdown and as one HTML page.
        let (code, md, _) = plugin(&audit_bucket, &["evidence", &run])?;
        ensure!(code == 0 && md.contains("| 164.312(a)(1) Access control | **pass** |"), "{md}");
        let html_path = std::env::temp_dir().join(format!("{run}-evidence.html"));
        let html_arg = html_path.to_string_lossy().into_owned();
        let (code, _, err) = plugin(&audit_bucket, &["evidence", &run, "--format", "html", "-o", &html_arg])?;
        let html = std::fs::read_to_string(&html_path)?;
        ensure!(code == 0 && html.starts_with("<!doctype html>") && html.trim_end().ends_with("</html>"), "{err}");
        ensure!(!html.contains("<script"), "the page runs no script");

        let (code, out, err) = plugin(&audit_bucket, &["verify-audit", &run])?;
        ensure!(code == 0 && out.contains("intact and signed") && out.contains("held"), "{out}{err}");

        // A Recording of the tenant is listed (not sealed: no media node runs here).
        let namespace = tenants.get(&run).await?.status.and_then(|s| s.namespace).context("namespace")?;
        let visit: Recording = serde_json::from_value(serde_json::json!({
            "apiVersion": "sanctum.dev/v1alpha1", "kind": "Recording",
            "metadata": {"name": "visit-1"},
            "spec": {"room": "room-1", "consent": {"recordedBy": "host-1", "method": "Verbal", "givenAt": "2026-12-07T10:00:00Z"}},
        }))?;
        Api::<Recording>::namespaced(cluster.client.clone(), &namespace).create(&PostParams::default(), &visit).await?;
        let (code, report, err) = evidence_json(&audit_bucket, &run)?;
        ensure!(code == 0 && report["recordings"]["count"] == 1, "{err} {:#}", report["recordings"]);

        // The auditor reads all of that and no key: the signing key's Secret is refused.
        match Api::<Secret>::namespaced(as_auditor.clone(), &namespace).get("join-token-signing-key").await {
            Err(kube::Error::Api(e)) if e.code == 403 => {}
            other => anyhow::bail!("the auditor read the join-token signing key: {:?}", other.map(|_| ())),
        }

        // A backup and its drill: restored into a scratch bucket, checked, removed.
        let status = tenants.get(&run).await?.status.context("status")?;
        let bucket = status.bucket.clone().context("bucket")?;
        let namespace = status.namespace.clone().context("namespace")?;
        let dest = format!("sanctum-backup-{run}");
        sanctum_e2e::aws::create_backup_bucket(&cloud.s3, &dest, None).await?;
        let plain = b"a recording's bytes, sealed as a media node seals them".repeat(100);
        put_sealed_recording(&cluster.client, &cloud, &tenants.get(&run).await?, "visit-1", &plain).await?;
        let backup = tokio::process::Command::new(workspace_binary("sanctum")?)
            .args(["backup", "--tenant", &run, "--namespace", &namespace])
            .args(["--source-bucket", &bucket, "--destination-bucket", &dest])
            .output()
            .await?;
        ensure!(backup.status.success(), "backup: {}", String::from_utf8_lossy(&backup.stderr));
        let change = serde_json::json!({"spec": {"backup": {"schedule": "0 3 * * *", "destination": {"bucket": dest}}}});
        tenants.patch(&run, &PatchParams::default(), &Patch::Merge(&change)).await?;
        let (code, out, err) = plugin(&audit_bucket, &["restore-drill", &run, "--scratch-bucket", &scratch])?;
        ensure!(code == 0, "drill exited {code}: {out}{err}");
        let drill: Value = serde_json::from_str(&out)?;
        ensure!(
            drill["outcome"] == "Succeeded" && drill["objects"] == 1 && drill["sample"]["bytes"] == plain.len(),
            "the backup restored and its recording opened whole through KMS: {drill:#}"
        );
        ensure!(cloud.s3.head_bucket().bucket(&scratch).send().await.is_err(), "the scratch bucket is removed");
        // A drill never restores into, or empties, a bucket that already exists.
        let taken = format!("sanctum-taken-{run}");
        cloud.s3.create_bucket().bucket(&taken).send().await?;
        cloud.s3.put_object().bucket(&taken).key("keep-me").body(ByteStream::from_static(b"data")).send().await?;
        let (code, out, err) = plugin(&audit_bucket, &["restore-drill", &run, "--scratch-bucket", &taken])?;
        ensure!(code == 2 && err.contains("exists"), "a drill into an existing bucket exited {code}: {out}{err}");
        ensure!(cloud.s3.head_object().bucket(&taken).key("keep-me").send().await.is_ok(), "the existing bucket's object is gone");
        // A corrupted object in the backup: the drill fails and names it.
        let copies = cloud.s3.list_objects_v2().bucket(&dest).prefix(format!("{run}/objects/")).send().await?;
        let copy = copies.contents().first().and_then(|o| o.key()).context("the backup's copy")?.to_string();
        cloud.s3.put_object().bucket(&dest).key(&copy).body(ByteStream::from_static(b"tampered")).send().await?;
        let (code, out, err) = plugin(&audit_bucket, &["restore-drill", &run, "--scratch-bucket", &scratch])?;
        ensure!(code == 1, "a corrupted backup's drill exited {code}: {out}{err}");
        let drill: Value = serde_json::from_str(&out)?;
        ensure!(drill["outcome"] == "Failed" && drill["mismatched"].as_array().is_some_and(|m| m.len() == 1), "{drill:#}");
        // Backups configured but no run seen by the operator: the contingency safeguard fails.
        let (code, report, err) = evidence_json(&audit_bucket, &run)?;
        ensure!(code == 1 && err.contains("164.308(a)(7)"), "{code} {err}");
        ensure!(control(&report, "164.308(a)(7)")?["status"] == "fail", "{report:#}");
        // The backup bucket's Object Lock, read from S3: the bucket keeps what it holds.
        let lock = finding(&report, "backup.bucket lock")?;
        ensure!(lock["ok"] == true && report["backup"]["objectLock"]["mode"] == "COMPLIANCE", "{lock} {:#}", report["backup"]);
        // A backup bucket without Object Lock would let the backup role destroy backups.
        let unlocked = format!("sanctum-unlocked-{run}");
        cloud.s3.create_bucket().bucket(&unlocked).send().await?;
        let change = serde_json::json!({"spec": {"backup": {"destination": {"bucket": unlocked}}}});
        tenants.patch(&run, &PatchParams::default(), &Patch::Merge(&change)).await?;
        let (code, report, err) = evidence_json(&audit_bucket, &run)?;
        let lock = finding(&report, "backup.bucket lock")?;
        ensure!(
            code == 1 && err.contains("backup.bucket lock") && lock["ok"] == false
                && lock["detail"].as_str().is_some_and(|d| d.contains("no Object Lock")),
            "evidence of a backup bucket without Object Lock exited {code}: {err} {lock}"
        );
        Ok(())
    })
    .await;
    outcome?;

    // Reconciles stopped, so nothing repairs what is changed next.
    op.kill().await?;
    let status = tenants.get(&run).await?.status.context("status")?;
    let bucket = status.bucket.context("bucket")?;
    let namespace = status.namespace.context("namespace")?;
    cloud
        .s3
        .put_public_access_block()
        .bucket(&bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(false)
                .restrict_public_buckets(false)
                .build(),
        )
        .send()
        .await?;
    let (code, report, err) = evidence_json(&audit_bucket, &run)?;
    ensure!(code == 1, "evidence with public access open exited {code}");
    ensure!(
        err.contains("FAIL 164.312(a)(1) Access control: bucket.public access block"),
        "{err}"
    );
    let access = control(&report, "164.312(a)(1)")?;
    ensure!(access["status"] == "fail", "{access}");
    ensure!(
        control(&report, "164.312(b)")?["status"] == "pass",
        "the audit trail is untouched yet"
    );

    // A sealed recording whose stored object no longer matches its SHA-256: integrity fails.
    let recordings = Api::<Recording>::namespaced(cluster.client.clone(), &namespace);
    let status = serde_json::json!({"status": {
        "phase": "Sealed", "keyVersion": 1, "sha256": "ab".repeat(32), "expiresAt": "2032-12-07T00:00:00Z",
        "conditions": [{"type": "IntegrityVerified", "status": "False", "reason": "ChecksumMismatch",
                        "message": "the stored object does not match its SHA-256", "lastTransitionTime": "2026-12-07T00:00:00Z"}],
    }});
    recordings
        .patch_status("visit-1", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let (code, report, err) = evidence_json(&audit_bucket, &run)?;
    ensure!(
        code == 1 && err.contains("FAIL 164.312(c)(1) Integrity: recordings.integrity"),
        "{code} {err}"
    );
    let listed = &report["recordings"]["recordings"][0];
    ensure!(
        listed["name"] == "visit-1" && listed["integrityVerified"] == "False",
        "{:#}",
        report["recordings"]
    );

    // An audit object replaced: the audit safeguard fails, verify-audit too.
    let first = cloud
        .s3
        .list_objects_v2()
        .bucket(&audit_bucket)
        .prefix(chain_prefix(&run, Chain::Reconciles))
        .send()
        .await?
        .contents()
        .first()
        .and_then(|o| o.key())
        .context("an audit object")?
        .to_string();
    tamper(&cloud.s3, &audit_bucket, &first).await?;
    let (code, _, err) = evidence_json(&audit_bucket, &run)?;
    ensure!(
        code == 1 && err.contains("FAIL 164.312(b) Audit controls: audit.chain"),
        "{code} {err}"
    );
    let (code, out, err) = plugin(&audit_bucket, &["verify-audit", &run])?;
    ensure!(code == 1 && err.contains("broken"), "{code} {out}{err}");
    let html_path = std::env::temp_dir().join(format!("{run}-failing.html"));
    let html_arg = html_path.to_string_lossy().into_owned();
    plugin(
        &audit_bucket,
        &["evidence", &run, "--format", "html", "-o", &html_arg],
    )?;
    println!("failing report: {}", html_path.display());
    delete_tenant(&cluster, &run).await
}

/// Replaces `key` with an edited copy, as an account administrator could: the bucket's
/// write-once policy removed first (the operator, stopped, does not put it back).
async fn tamper(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<()> {
    s3.delete_bucket_policy().bucket(bucket).send().await?;
    let body = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await?
        .body
        .collect()
        .await?;
    let edited = String::from_utf8(body.to_vec())?.replacen("Applied", "Skipped", 1);
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(edited.into_bytes()))
        .send()
        .await?;
    Ok(())
}

/// Deletes the tenant with a fresh operator (the finalizer needs one).
async fn delete_tenant(cluster: &Cluster, run: &str) -> Result<()> {
    let op = Operator::start(run).await?;
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    tenants.delete(run, &Default::default()).await?;
    sanctum_e2e::wait_gone(&tenants, run, Duration::from_secs(90)).await?;
    drop(op);
    Ok(())
}
