//! The README runs as written: every fenced block of README.md is found here, and each is
//! either run against the local cluster, as a new user would run it after
//! `eval "$(e2e/controlplane/cluster.sh env)"`, or named with the test or step of
//! `e2e/test.sh` that runs it instead. A block this table does not know fails the test,
//! and so does a table entry no block matches.
//!
//! The user's shell: bash with `-euo pipefail`, a new home and working directory (with the
//! repository's `docs/` and `charts/` beside it), the built `sanctum` and
//! `sanctum-media-node` on the `PATH` (where `cargo build` would leave them), and the local
//! cluster's environment (`KUBECONFIG`, the AWS emulator's endpoint, CA bundle and
//! credentials). What a user sets for themselves is set too: `SANCTUM_AUDIT_BUCKET`, and for
//! the operator started by the "Running the operator" block a free `SANCTUM_HTTP_ADDR` and
//! `SANCTUM_TENANT_SELECTOR=!sanctum.dev/e2e-run` (the other tests' tenants are theirs).
//! Where a line cannot run here (a `cargo build` the suite has already done, the chart's
//! `helm install`, which needs a registry and a cloud: `chart_install.rs` installs it with
//! the local cluster's values) it is replaced by a substitution listed below, and a
//! substitution that no longer matches its block fails the test.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::batch::v1::CronJob;
use kube::Api;
use kube::api::DeleteParams;
use sanctum_api::VideoTenant;
use sanctum_e2e::host_kubelet::{HostKubelet, create_job_from};
use sanctum_e2e::readme::{Block, Shell, fenced_blocks, substitute};
use sanctum_e2e::{
    Cluster, cloud, free_local_port, put_sealed_recording, repo_root, unique, wait_condition,
    wait_for, wait_gone, workspace_binary,
};

/// What the walkthrough does with one README block, found by its first line.
enum Use {
    /// Run with bash, after these substitutions (each must match the block).
    Run(&'static [(&'static str, &'static str)]),
    /// Started with bash and left running (a server) until the walkthrough ends.
    Start(&'static [(&'static str, &'static str)]),
    /// A manifest: the example tenant (compared with `docs/examples/videotenant.yaml`), or
    /// a `spec:` fragment merged into the walkthrough's tenant.
    Manifest,
    /// `$ command` and the output it shows: run, and the output compared.
    Output,
    /// Run elsewhere, by what this names.
    Elsewhere(&'static str),
}

const SKIP_BUILD: (&str, &str) = ("cargo build -p sanctum-media-node", ":");

/// Every block of README.md, in the order they appear.
const BLOCKS: &[(&str, Use)] = &[
    (
        "e2e/demo.sh",
        Use::Elsewhere(
            "a cluster of its own, started and stopped by hand (not in CI); chart_install.rs installs the chart and brings the example tenant to Ready as it does",
        ),
    ),
    (
        "e2e/test.sh",
        Use::Elsewhere("the command running this test"),
    ),
    ("apiVersion: sanctum.dev/v1alpha1", Use::Manifest),
    ("$ kubectl get vt", Use::Output),
    (
        "helm install sanctum charts/sanctum",
        Use::Run(&[(
            "helm install sanctum charts/sanctum --namespace sanctum-system --create-namespace \\\n  --set serviceAccount.roleArn=arn:aws:iam::111122223333:role/sanctum-operator",
            ": the chart is installed by chart_install.rs, with the local cluster values",
        )]),
    ),
    (
        "helm upgrade sanctum charts/sanctum",
        Use::Elsewhere(
            "e2e/chart-check.sh renders the chart with these values on (helm lint, kubeconform, checkov) and promtool tests the rules; the local cluster has no Prometheus Operator CRDs",
        ),
    ),
    (
        "e2e/images.sh ",
        Use::Elsewhere("e2e/test.sh builds and tests the images (`e2e/images.sh --test`)"),
    ),
    (
        "cargo build -p sanctum-media-node",
        Use::Run(&[
            SKIP_BUILD,
            (
                "B=target/debug/sanctum-media-node",
                "B=$(command -v sanctum-media-node)",
            ),
        ]),
    ),
    (
        "kubectl -n vt-clinic-a apply -f - <<'YAML'",
        Use::Elsewhere(
            "recording.rs runs it on its own tenant, with a participant publishing into the room on a media node; the walkthrough's media nodes are kwok's, which run nothing",
        ),
    ),
    (
        "cargo run -p sanctum-operator -- crds",
        Use::Start(&[("cargo run -p sanctum-operator --", "sanctum")]),
    ),
    (
        "spec:\n  backup:\n    schedule: \"15 3 * * *\"",
        Use::Manifest,
    ),
    ("sanctum backup --tenant clinic-a", Use::Run(&[])),
    (
        "spec:\n  backup:\n    schedule: \"30 2 * * *\"",
        Use::Manifest,
    ),
    ("# The operator's public signing keys", Use::Run(&[])),
    (
        "cargo build --release -p sanctum-operator --bin kubectl-sanctum",
        Use::Run(&[
            (
                "cargo build --release -p sanctum-operator --bin kubectl-sanctum",
                ":",
            ),
            (
                "target/release/kubectl-sanctum",
                "\"$SANCTUM_PLUGIN_BUILT\"",
            ),
        ]),
    ),
    ("kubectl sanctum status", Use::Run(&[])),
    (
        "e2e/bench.sh",
        Use::Elsewhere("benchmarks print figures and are run by hand (docs/performance.md)"),
    ),
];

/// Each block with what to do with it; fails on a block the table lacks, on an entry no
/// block matches, and on one that matches two.
fn plan(readme: &str) -> Result<Vec<(Block, &'static Use)>> {
    let blocks = fenced_blocks(readme);
    let mut used = vec![0usize; BLOCKS.len()];
    let mut out = Vec::new();
    for block in blocks {
        let found: Vec<usize> = (0..BLOCKS.len())
            .filter(|&i| block.text.starts_with(BLOCKS[i].0))
            .collect();
        match found.as_slice() {
            [i] => {
                used[*i] += 1;
                out.push((block, &BLOCKS[*i].1));
            }
            [] => bail!(
                "README.md:{}: a block this test does not run; add it to BLOCKS (run it, or name what runs it):\n{}",
                block.line,
                block.text
            ),
            _ => bail!("README.md:{}: several BLOCKS entries match", block.line),
        }
    }
    for (i, n) in used.iter().enumerate() {
        ensure!(
            *n == 1,
            "BLOCKS entry {:?} matches {n} README blocks",
            BLOCKS[i].0
        );
    }
    Ok(out)
}

/// Compares `kubectl get vt`'s output with the README's, for the example tenant: the same
/// columns, and the same row but for its age.
fn compare_output(block: &Block, shell: &Shell) -> Result<()> {
    let mut lines = block.text.lines();
    let command = lines
        .next()
        .and_then(|l| l.strip_prefix("$ "))
        .context("the command")?;
    let shown: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let out = shell.run(block.line, command)?;
    let got: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(
        got.first() == shown.first(),
        "README.md:{}: the columns differ: {out}",
        block.line
    );
    for row in &shown[1..] {
        let found = got
            .iter()
            .find(|g| g.first() == row.first())
            .with_context(|| format!("no row {:?} in {out}", row.first()))?;
        ensure!(
            found[..found.len() - 1] == row[..row.len() - 1],
            "README.md:{}: the row differs (age aside): {found:?} against {row:?}",
            block.line
        );
    }
    Ok(())
}

/// The example tenant's name (README.md and docs/examples/videotenant.yaml).
const TENANT: &str = "clinic-a";

#[tokio::test]
async fn the_readme_runs_as_written() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    let steps = plan(&readme)?;
    let audit_bucket = unique("sanctum-audit-readme");
    let http_port = free_local_port()?;
    let mut shell = Shell::new(&[
        ("SANCTUM_AUDIT_BUCKET", audit_bucket.clone()),
        ("SANCTUM_HTTP_ADDR", format!("127.0.0.1:{http_port}")),
        ("SANCTUM_TENANT_SELECTOR", "!sanctum.dev/e2e-run".into()),
        ("SANCTUM_RESYNC_SECONDS", "5".into()),
        ("SANCTUM_LOG_FORMAT", "text".into()),
        (
            "SANCTUM_PLUGIN_BUILT",
            workspace_binary("kubectl-sanctum")?.display().to_string(),
        ),
    ])?;
    let log = shell.home.path().join("operator.log");
    let ran = RefCell::new(BTreeSet::new());
    let result = walk(&cluster, &steps, &mut shell, &log, http_port, &ran).await;
    let cleanup = remove_tenant(&cluster).await;
    result.with_context(|| {
        format!(
            "operator log (last lines):\n{}",
            tail(&std::fs::read_to_string(&log).unwrap_or_default(), 40)
        )
    })?;
    cleanup?;
    // Every block the table says is run here was run.
    for (block, how) in &steps {
        if let Use::Elsewhere(by) = how {
            println!("README.md:{}: run by {by}", block.line);
        }
        ensure!(
            matches!(how, Use::Elsewhere(_)) || ran.borrow().contains(&block.line),
            "README.md:{}: the walkthrough never ran this block",
            block.line
        );
    }
    Ok(())
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

async fn remove_tenant(cluster: &Cluster) -> Result<()> {
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    if tenants.get_opt(TENANT).await?.is_some() {
        tenants.delete(TENANT, &DeleteParams::default()).await?;
        wait_gone(&tenants, TENANT, Duration::from_secs(120)).await?;
    }
    Ok(())
}

async fn walk(
    cluster: &Cluster,
    steps: &[(Block, &Use)],
    shell: &mut Shell,
    log: &Path,
    http_port: u16,
    ran: &RefCell<BTreeSet<usize>>,
) -> Result<()> {
    let find = |first: &str| -> Result<&(Block, &Use)> {
        let step = steps
            .iter()
            .find(|(b, _)| b.text.starts_with(first))
            .with_context(|| format!("the block {first:?}"))?;
        ran.borrow_mut().insert(step.0.line);
        Ok(step)
    };
    let run = |shell: &Shell, first: &str| -> Result<String> {
        let (block, how) = find(first)?;
        let Use::Run(subs) = how else {
            bail!("{first:?} is not a block to run")
        };
        shell.run(block.line, &substitute(block, subs)?)
    };
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());

    // Running the operator: the CRDs, then `run`, which stays up.
    let (block, how) = find("cargo run -p sanctum-operator -- crds")?;
    let Use::Start(subs) = how else {
        bail!("the operator block is started")
    };
    shell.start(block.line, &substitute(block, subs)?, log)?;
    let http = reqwest::Client::new();
    wait_for("the operator's /readyz", Duration::from_secs(60), || {
        let http = http.clone();
        async move {
            Ok(http
                .get(format!("http://127.0.0.1:{http_port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()))
        }
    })
    .await?;
    // A tenant of that name left by an earlier run of this test on the same cluster.
    remove_tenant(cluster).await?;

    // The example tenant: the README shows docs/examples/videotenant.yaml.
    let (example, _) = find("apiVersion: sanctum.dev/v1alpha1")?;
    let file = std::fs::read_to_string(repo_root().join("docs/examples/videotenant.yaml"))?;
    let same = serde_yaml::from_str::<serde_json::Value>(&file)?
        == serde_yaml::from_str::<serde_json::Value>(&example.text)?;
    ensure!(
        same,
        "README.md:{}: the example tenant is not docs/examples/videotenant.yaml",
        example.line
    );
    // Install with Helm: apply the example, wait for Ready.
    run(shell, "helm install sanctum charts/sanctum")?;
    let (block, _) = find("$ kubectl get vt")?;
    compare_output(block, shell)?;

    // Backups: the destination bucket exists, with Object Lock (the operator creates none),
    // and so does the bucket the by-hand restore writes into; both fragments
    // merged into the tenant, as a platform team would edit its manifest.
    let cloud = cloud().await?;
    let west = cloud.in_region("us-west-2");
    sanctum_e2e::aws::create_backup_bucket(&west.s3, "clinic-a-backups", Some("us-west-2")).await?;
    sanctum_e2e::aws::create_bucket_in(&west.s3, "drill-bucket", Some("us-west-2"), false).await?;
    for first in [
        "spec:\n  backup:\n    schedule: \"15 3 * * *\"",
        "spec:\n  backup:\n    schedule: \"30 2 * * *\"",
    ] {
        let (block, _) = find(first)?;
        let fragment: serde_json::Value = serde_yaml::from_str(&block.text)?;
        let patch = serde_json::to_string(&fragment)?;
        shell.run(
            block.line,
            &format!("kubectl patch vt {TENANT} --type merge -p '{patch}'"),
        )?;
    }
    let crons = Api::<CronJob>::namespaced(cluster.client.clone(), "vt-clinic-a");
    wait_for(
        "CronJobs backup and restore-drill",
        Duration::from_secs(60),
        || async {
            Ok(crons.get_opt("backup").await?.is_some()
                && crons.get_opt("restore-drill").await?.is_some())
        },
    )
    .await?;
    wait_condition(&tenants, TENANT, "Ready", "True", Duration::from_secs(60)).await?;

    // A sealed recording in the tenant's bucket, as a media node leaves one.
    let plain = b"a visit's video, sealed as a media node seals it".repeat(50);
    let tenant = tenants.get(TENANT).await?;
    put_sealed_recording(&cluster.client, &cloud, &tenant, "visit-42", &plain).await?;

    // Backup and restore by hand.
    let out = run(shell, "sanctum backup --tenant clinic-a")?;
    let backup: serde_json::Value = serde_json::from_str(
        out.lines()
            .find(|l| l.starts_with('{'))
            .context("the backup's report")?,
    )?;
    ensure!(backup["objects"] == 1, "the recording backed up: {backup}");

    // A backup and a drill from the CronJobs (`kubectl create job --from=cronjob/...`), each
    // Job's pod run on this machine (kwok runs none).
    let kubelet = HostKubelet::new(cluster, "vt-clinic-a").await?;
    for (name, job) in [("backup", "backup-now"), ("restore-drill", "drill-now")] {
        let cron = crons.get(name).await?;
        let job = create_job_from(cluster, &cron, &unique(job), Some(0)).await?;
        let (code, message) = kubelet.run_job(&job).await?;
        ensure!(code == 0, "{name}: exit {code}: {message}");
        if name == "restore-drill" {
            let report: serde_json::Value = serde_json::from_str(&message)?;
            ensure!(
                report["sample"]["bytes"] == plain.len(),
                "the drill opened the recording whole with the tenant's local key: {report}"
            );
        }
    }
    wait_condition(
        &tenants,
        TENANT,
        "RestoreDrillSucceeded",
        "True",
        Duration::from_secs(60),
    )
    .await?;

    // The audit trail.
    run(shell, "# The operator's public signing keys")?;
    let year = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y")
        .to_string();
    let export = std::fs::read_to_string(shell.work.join(format!("clinic-a-{year}.jsonl")))?;
    ensure!(
        export.lines().count() > 0,
        "the export holds the tenant's records"
    );

    // The plugin: installed, then every command of its block.
    run(
        shell,
        "cargo build --release -p sanctum-operator --bin kubectl-sanctum",
    )?;
    let out = run(shell, "kubectl sanctum status")?;
    ensure!(out.contains(TENANT), "status names the tenant: {out}");
    let html = std::fs::read_to_string(shell.work.join("clinic-a.html"))?;
    ensure!(html.starts_with("<!doctype html>"), "the HTML report");

    // The media node on this machine, outside the cluster.
    for port in [8443, 10000, 9090] {
        ensure!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} of 127.0.0.1, which the README's media node uses, is taken"
        );
    }
    let out = run(shell, "cargo build -p sanctum-media-node")?;
    ensure!(out.contains("sanctum_media_"), "the node's metrics: {out}");
    Ok(())
}
