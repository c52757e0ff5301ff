//! The manifests the documentation shows are ones the API server admits: every
//! VideoTenant and Recording in README.md and docs/ (YAML blocks, and here-documents in
//! shell blocks), and every tenant `spec:` fragment merged into the example tenant, is
//! created with a server-side dry run (schema, CEL rules, admission policies) and must be
//! admitted. Blocks that are not Sanctum manifests (Helm values, adapter rules) are left to
//! their own tools.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use sanctum_api::{Recording, VideoTenant, labels};
use sanctum_e2e::{Cluster, documentation_files, example_tenant, repo_root, unique};

/// Every YAML block of `text`: fenced ```yaml blocks, and `<<'YAML'` here-documents.
fn yaml_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let heredoc = line.contains("<<'YAML'") || line.contains("<<YAML");
        let end: fn(&str) -> bool = if line.trim_start().starts_with("```yaml") {
            |l| l.trim_start().starts_with("```")
        } else if heredoc {
            |l| l.trim() == "YAML"
        } else {
            continue;
        };
        let mut block = String::new();
        for (_, l) in lines.by_ref() {
            if end(l) {
                break;
            }
            block.push_str(l);
            block.push('\n');
        }
        out.push((n + 1, block));
    }
    out
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn every_manifest_the_documentation_shows_is_admitted() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let root = repo_root();
    // Recordings are admitted only in a tenant namespace whose tenant records (the
    // admission policy reads these labels).
    let ns = unique("docs");
    let namespaces = Api::<Namespace>::all(cluster.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.clone()),
                    labels: Some(BTreeMap::from([
                        (labels::TENANT.to_string(), "docs".to_string()),
                        (labels::RECORDING.to_string(), "enabled".to_string()),
                        (
                            labels::RECORDING_CONSENT.to_string(),
                            "required".to_string(),
                        ),
                    ])),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let recordings = Api::<Recording>::namespaced(cluster.client.clone(), &ns);
    let mut checked = BTreeMap::<&str, usize>::new();
    let mut failures = Vec::new();
    for file in documentation_files(&root)? {
        let text = std::fs::read_to_string(&file)?;
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (line, block) in yaml_blocks(&text) {
            let value: serde_yaml::Value = serde_yaml::from_str(&block)
                .with_context(|| format!("{shown}:{line}: the YAML block does not parse"))?;
            let api_version = value.get("apiVersion").and_then(|v| v.as_str());
            let kind = value.get("kind").and_then(|v| v.as_str());
            let result = match (api_version, kind) {
                (Some(v), Some("VideoTenant")) if v.starts_with("sanctum.dev/") => {
                    let mut tenant: VideoTenant =
                        serde_yaml::from_value(value).with_context(|| format!("{shown}:{line}"))?;
                    tenant.metadata.name = Some(unique("docs"));
                    *checked.entry("VideoTenant").or_default() += 1;
                    tenants.create(&dry_run(), &tenant).await.map(drop)
                }
                (Some(v), Some("Recording")) if v.starts_with("sanctum.dev/") => {
                    let rec: Recording =
                        serde_yaml::from_value(value).with_context(|| format!("{shown}:{line}"))?;
                    *checked.entry("Recording").or_default() += 1;
                    recordings.create(&dry_run(), &rec).await.map(drop)
                }
                (None, None) if value.get("spec").is_some() => {
                    // A fragment of a tenant's spec: merged into the example tenant.
                    let mut tenant =
                        serde_json::to_value(example_tenant(&unique("docs"), "docs")?)?;
                    merge(&mut tenant["spec"], &serde_json::to_value(&value["spec"])?);
                    let tenant: VideoTenant = serde_json::from_value(tenant)
                        .with_context(|| format!("{shown}:{line}: as a tenant spec"))?;
                    *checked.entry("tenant spec fragment").or_default() += 1;
                    tenants.create(&dry_run(), &tenant).await.map(drop)
                }
                _ => continue,
            };
            if let Err(e) = result {
                failures.push(format!("{shown}:{line}: {e}"));
            }
        }
    }
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    if !failures.is_empty() {
        bail!(
            "documented manifests the API server refuses:\n{}",
            failures.join("\n")
        );
    }
    println!("admitted: {checked:?}");
    for kind in ["VideoTenant", "Recording", "tenant spec fragment"] {
        ensure!(
            checked.contains_key(kind),
            "no documented {kind} was found to check: {checked:?}"
        );
    }
    Ok(())
}

/// `patch` merged into `into` as a JSON merge patch (RFC 7396) would.
fn merge(into: &mut serde_json::Value, patch: &serde_json::Value) {
    match (into, patch) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b.clone(),
    }
}
