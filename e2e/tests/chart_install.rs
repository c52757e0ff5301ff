//! The Helm chart installs into the cluster, and the operator, running with exactly the
//! permissions the chart grants its ServiceAccount, brings a tenant to Ready.
//!
//! The local control plane has no container runtime (kwok simulates pods), so the
//! operator binary runs as a local process authenticated as the chart's ServiceAccount:
//! what is tested is the chart's objects, its RBAC and its Lease, not the image.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{AuthInfo, Kubeconfig, NamedAuthInfo};
use kube::{Api, ResourceExt};
use sanctum_api::VideoTenant;
use sanctum_e2e::{
    Cluster, Operator, example_tenant, kstatus, repo_root, unique, wait_condition, wait_gone,
    with_logs,
};
use tokio::process::Command;

async fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[tokio::test]
async fn the_chart_installs_and_its_service_account_runs_the_operator() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let release = unique("chart");
    let namespace = release.clone();
    let chart = repo_root().join("charts/sanctum");
    let chart = chart.to_str().context("chart path")?;
    let endpoint = std::env::var("SANCTUM_AWS_ENDPOINT").unwrap_or_default();
    let lease = format!("{release}-leader");
    // The admission policy already exists (the harness installs crds/); the chart adopts it.
    run(
        "helm",
        &[
            "install",
            &release,
            chart,
            "--namespace",
            &namespace,
            "--create-namespace",
            "--take-ownership",
            "--wait",
            "--timeout",
            "120s",
            "--set",
            &format!("aws.endpoint={endpoint}"),
            "--set",
            "aws.s3PathStyle=true",
            "--set",
            &format!("leaderElection.leaseName={lease}"),
        ],
    )
    .await?;

    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), &namespace);
    let by_release = ListParams::default().labels(&format!("app.kubernetes.io/instance={release}"));
    let deployment = deployments
        .list(&by_release)
        .await?
        .items
        .into_iter()
        .next()
        .context("the chart made a Deployment")?;
    let container = &deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .context("pod spec")?
        .containers[0];
    let security = container
        .security_context
        .as_ref()
        .context("securityContext")?;
    ensure!(security.read_only_root_filesystem == Some(true));
    ensure!(security.allow_privilege_escalation == Some(false));
    ensure!(security.run_as_non_root == Some(true));

    // Authenticate as the chart's ServiceAccount.
    let sa = Api::<ServiceAccount>::namespaced(cluster.client.clone(), &namespace)
        .list(&by_release)
        .await?
        .items
        .into_iter()
        .next()
        .context("the chart made a ServiceAccount")?
        .name_any();
    let kubectl = std::env::var("SANCTUM_E2E_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let token = run(
        &kubectl,
        &["-n", &namespace, "create", "token", &sa, "--duration", "1h"],
    )
    .await?
    .trim()
    .to_string();
    let mut config = Kubeconfig::read()?;
    let user = format!("{namespace}-{sa}");
    config.auth_infos = vec![NamedAuthInfo {
        name: user.clone(),
        auth_info: Some(AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        }),
        other: Default::default(),
    }];
    for context in &mut config.contexts {
        if let Some(c) = context.context.as_mut() {
            c.user = Some(user.clone());
        }
    }
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, serde_yaml::to_string(&config)?)?;

    let run_label = release.clone();
    let op = Operator::start_env(
        &run_label,
        "",
        &[
            "--namespace",
            &namespace,
            "--leader-election",
            "--lease-name",
            &lease,
        ],
        &[("KUBECONFIG", kubeconfig.to_str().context("path")?)],
    )
    .await?;
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let name = release.clone();
    tenants
        .create(&PostParams::default(), &example_tenant(&name, &run_label)?)
        .await?;
    with_logs(&op, || async {
        wait_condition(&tenants, &name, "Ready", "True", Duration::from_secs(120)).await?;
        let (status, message) = kstatus(&tenants.get(&name).await?).await?;
        ensure!(status == "Current", "kstatus says {status}: {message}");
        tenants.delete(&name, &DeleteParams::default()).await?;
        wait_gone(&tenants, &name, Duration::from_secs(120)).await
    })
    .await?;
    drop(op);

    run(
        "helm",
        &["uninstall", &release, "--namespace", &namespace, "--wait"],
    )
    .await?;
    Api::<Namespace>::all(cluster.client.clone())
        .delete(&namespace, &DeleteParams::default())
        .await?;
    Ok(())
}
