//! The Helm chart installs the operator from its image, and the operator pod, running on
//! the local cluster's real node with exactly the permissions the chart grants it,
//! brings the example tenant to Ready: its media nodes really run on the same node.
//!
//! The chart's values are the ones a platform team on an S3-compatible store would set:
//! an endpoint, path-style addressing, a credentials Secret and a private CA bundle (here
//! the AWS emulator's), the `local` key provider, and a node selector and toleration
//! (the real node is tainted).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use sanctum_api::VideoTenant;
use sanctum_e2e::node::{MEDIA_PODS, RealNode, create_tenant, pin_to_real_node, wait_running};
use sanctum_e2e::{
    Cluster, RUN_LABEL, example_tenant, kstatus, repo_root, unique, wait_condition, wait_gone,
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
async fn the_chart_runs_the_operator_image_which_brings_the_example_tenant_to_ready() -> Result<()>
{
    let cluster = Cluster::connect().await?;
    let node = RealNode::from_env()?;
    let release = unique("chart");
    let namespace = release.clone();
    let result = body(&cluster, &node, &release, &namespace).await;
    if result.is_err() {
        // What the operator said, read the way an SRE would (kubelet serves the logs).
        let kubectl = std::env::var("SANCTUM_E2E_KUBECTL").unwrap_or_else(|_| "kubectl".into());
        let logs = Command::new(kubectl)
            .args([
                "-n",
                &namespace,
                "logs",
                "-l",
                &format!("app.kubernetes.io/instance={release}"),
                "--tail",
                "60",
            ])
            .output()
            .await
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        return result.context(format!("operator pod log (last lines):\n{logs}"));
    }
    result
}

async fn body(cluster: &Cluster, node: &RealNode, release: &str, namespace: &str) -> Result<()> {
    let client = &cluster.client;
    let chart = repo_root().join("charts/sanctum");
    let chart = chart.to_str().context("chart path")?;
    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?,
        )
        .await?;
    // The emulator's credentials and CA bundle, as a platform team would provide theirs.
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "aws-credentials", "namespace": namespace},
        "stringData": {"credentials": "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n"}
    }))?;
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    let bundle_path =
        std::env::var("SSL_CERT_FILE").context("SSL_CERT_FILE names the emulator's CA bundle")?;
    let bundle = std::fs::read_to_string(&bundle_path)?;
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "trust-bundle", "namespace": namespace},
        "data": {"ca-certificates.crt": bundle}
    }))?;
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &cm)
        .await?;
    let endpoint = std::env::var("SANCTUM_AWS_ENDPOINT").context("SANCTUM_AWS_ENDPOINT")?;
    let values = serde_json::json!({
        "replicas": 1,
        "podDisruptionBudget": {"enabled": false},
        "keyProviders": ["local"],
        "tenantSelector": format!("{RUN_LABEL}={release}"),
        "resyncSeconds": 10,
        "leaderElection": {"enabled": true, "leaseName": format!("{release}-leader")},
        "aws": {
            "region": "us-east-1",
            "endpoint": endpoint,
            "s3PathStyle": true,
            "credentialsSecret": "aws-credentials",
            "trustBundle": {"configMap": "trust-bundle", "key": "ca-certificates.crt"}
        },
        "audit": {"bucket": format!("sanctum-audit-{release}")},
        "nodeSelector": sanctum_e2e::node::node_selector(),
        "tolerations": [sanctum_e2e::node::toleration()],
    });
    let dir = tempfile::tempdir()?;
    let values_file = dir.path().join("values.yaml");
    std::fs::write(&values_file, serde_yaml::to_string(&values)?)?;
    // The admission policy already exists (the harness installs crds/); the chart adopts it.
    run(
        "helm",
        &[
            "install",
            release,
            chart,
            "--namespace",
            namespace,
            "--take-ownership",
            "--wait",
            "--timeout",
            "180s",
            "-f",
            values_file.to_str().context("path")?,
        ],
    )
    .await?;

    let by_release = format!("app.kubernetes.io/instance={release}");
    let deployment = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&by_release))
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
    // The operator really runs from its image, on the real node.
    let pods = wait_running(client, namespace, &by_release, 1, Duration::from_secs(60)).await?;
    let pod: &Pod = &pods[0];
    ensure!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node.name.as_str()),
        "operator pod on the real node"
    );
    let image = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map(|c| c.image.clone());
    ensure!(
        image.as_deref() == Some("ghcr.io/sanctum-dev/sanctum-operator:0.1.0"),
        "operator image {image:?}"
    );

    let tenants = Api::<VideoTenant>::all(client.clone());
    let name = release.to_string();
    let mut tenant = example_tenant(&name, release)?;
    pin_to_real_node(&mut tenant);
    let tenant_ns = create_tenant(client, &tenant).await?;
    wait_condition(&tenants, &name, "Ready", "True", Duration::from_secs(240)).await?;
    let (status, message) = kstatus(&tenants.get(&name).await?).await?;
    ensure!(status == "Current", "kstatus says {status}: {message}");
    // Under the chart's RBAC and admission policy the operator made its audit signing key,
    // published its public half, and anchors the tenant's chain in its status.
    let signers = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get(sanctum_operator::audit::SIGNERS_CONFIG_MAP)
        .await?;
    ensure!(
        signers
            .data
            .as_ref()
            .and_then(|d| d.get(sanctum_operator::audit::SIGNERS_KEY))
            .is_some_and(|pem| pem.contains("BEGIN PUBLIC KEY")),
        "the audit signers are published"
    );
    sanctum_e2e::wait_for(
        "the tenant's audit anchor",
        Duration::from_secs(60),
        || async {
            Ok(tenants
                .get(&name)
                .await?
                .status
                .and_then(|s| s.last_audit_record)
                .is_some_and(|a| a.seq >= 1))
        },
    )
    .await?;
    // Ready means media nodes that run: two in us-east, one in eu-west.
    let media = wait_running(client, &tenant_ns, MEDIA_PODS, 3, Duration::from_secs(30)).await?;
    ensure!(media.len() == 3, "{} media pods", media.len());
    let account = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.service_account_name.clone())
        .context("the operator's ServiceAccount")?;
    a_stolen_operator_token_cannot_escalate(client, namespace, &account, &tenant_ns).await?;
    tenants.delete(&name, &DeleteParams::default()).await?;
    wait_gone(&tenants, &name, Duration::from_secs(120)).await?;

    run(
        "helm",
        &["uninstall", release, "--namespace", namespace, "--wait"],
    )
    .await?;
    namespaces
        .delete(namespace, &DeleteParams::default())
        .await?;
    Ok(())
}

/// What a stolen operator token can no longer do (docs/iam.md, docs/threat-model.md): each
/// request is sent as the operator's ServiceAccount (impersonated, as the built-in `edit`
/// role lets tenant users do), is refused with 403, and leaves nothing behind. That the
/// tenant above became Ready is the legitimate path under the same policy.
async fn a_stolen_operator_token_cannot_escalate(
    admin: &Client,
    namespace: &str,
    account: &str,
    tenant_ns: &str,
) -> Result<()> {
    let mut config = kube::Config::infer().await?;
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{account}"));
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".into(),
    ]);
    let operator = Client::try_from(config)?;
    let post = PostParams::default();
    let forbidden = |what: &str, result: std::result::Result<(), kube::Error>| match result {
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(()),
        Err(e) => bail!("{what}: refused, but not with 403: {e}"),
        Ok(()) => bail!("{what}: allowed to the operator's token"),
    };
    let token_secret = |ns: &str, name: &str| -> Result<Secret> {
        Ok(serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns,
                         "annotations": {"kubernetes.io/service-account.name": "default"}},
            "type": "kubernetes.io/service-account-token"
        }))?)
    };

    // A token for another account, in the tenant namespace where it may write Secrets.
    let secrets = Api::<Secret>::namespaced(operator.clone(), tenant_ns);
    forbidden(
        "a service-account token Secret in the tenant namespace",
        secrets
            .create(&post, &token_secret(tenant_ns, "stolen")?)
            .await
            .map(drop),
    )?;
    // Secrets anywhere else: neither read nor written.
    let system = Api::<Secret>::namespaced(operator.clone(), "kube-system");
    forbidden(
        "listing kube-system's Secrets",
        system.list(&ListParams::default()).await.map(drop),
    )?;
    forbidden(
        "a Secret in kube-system",
        system
            .create(&post, &token_secret("kube-system", "stolen")?)
            .await
            .map(drop),
    )?;
    // ConfigMaps of its own namespace other than its audit signers (someone else's
    // configuration, or a second list of signers a verifier might be pointed at).
    let config_map: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "sanctum-audit-signers-forged", "namespace": namespace},
        "data": {"signers.pem": "-----BEGIN PUBLIC KEY-----"}
    }))?;
    forbidden(
        "another ConfigMap in the operator's namespace",
        Api::<ConfigMap>::namespaced(operator.clone(), namespace)
            .create(&post, &config_map)
            .await
            .map(drop),
    )?;
    // Workloads outside the tenant namespaces (a pod under a privileged account).
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "stolen", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "stolen"}},
                 "template": {"metadata": {"labels": {"app": "stolen"}},
                              "spec": {"containers": [{"name": "c", "image": "stolen"}]}}}
    }))?;
    forbidden(
        "a Deployment in namespace default",
        Api::<Deployment>::namespaced(operator.clone(), "default")
            .create(&post, &deployment)
            .await
            .map(drop),
    )?;
    // A RoleBinding to anything but its own tenant-Secrets binding.
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "stolen", "namespace": tenant_ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": tenant_ns}]
    }))?;
    forbidden(
        "binding admin in the tenant namespace",
        Api::<RoleBinding>::namespaced(operator.clone(), tenant_ns)
            .create(&post, &binding)
            .await
            .map(drop),
    )?;
    // Namespaces: no label on one it did not make; no weaker Pod Security on its own.
    let namespaces = Api::<Namespace>::all(operator.clone());
    let label = |key: &str, value: &str| {
        Patch::Merge(serde_json::json!({"metadata": {"labels": {key: value}}}))
    };
    forbidden(
        "labelling namespace default as a tenant's",
        namespaces
            .patch(
                "default",
                &PatchParams::default(),
                &label("sanctum.dev/tenant", "x"),
            )
            .await
            .map(drop),
    )?;
    forbidden(
        "Pod Security privileged on the tenant namespace",
        namespaces
            .patch(
                tenant_ns,
                &PatchParams::default(),
                &label("pod-security.kubernetes.io/enforce", "privileged"),
            )
            .await
            .map(drop),
    )?;

    // Nothing of it landed.
    let admin_secrets = Api::<Secret>::namespaced(admin.clone(), tenant_ns);
    ensure!(
        admin_secrets.get_opt("stolen").await?.is_none(),
        "a token Secret was made"
    );
    ensure!(
        Api::<Secret>::namespaced(admin.clone(), "kube-system")
            .get_opt("stolen")
            .await?
            .is_none(),
        "a Secret was made in kube-system"
    );
    let ns = Api::<Namespace>::all(admin.clone()).get(tenant_ns).await?;
    let enforce = ns
        .metadata
        .labels
        .unwrap_or_default()
        .get("pod-security.kubernetes.io/enforce")
        .cloned();
    ensure!(
        enforce.as_deref() == Some("restricted"),
        "Pod Security is {enforce:?}"
    );
    Ok(())
}
