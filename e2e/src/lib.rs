//! End-to-end harness: a real API server (from `KUBECONFIG`), the operator as a real
//! process, and helpers to wait on what the cluster reports.
//!
//! `e2e/test.sh` starts the local control plane and exports `KUBECONFIG`; with
//! `KUBECONFIG` already pointing at a cluster, that cluster is used instead. Each test
//! runs its own operator, restricted by label selector to the tenants the test made,
//! so tests run in parallel without seeing each other.

#![forbid(unsafe_code)]

pub mod aws;
pub mod host_kubelet;
pub mod node;
pub mod readme;

pub use aws::{audit_public_keys, cloud, put_sealed_recording, s3_of_account};

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use sanctum_api::VideoTenant;
use serde::Deserialize;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

/// Label every e2e tenant carries; each test's operator only watches its own value.
pub const RUN_LABEL: &str = "sanctum.dev/e2e-run";

/// The cluster under test.
pub struct Cluster {
    /// Admin client.
    pub client: Client,
    /// The API server's audit log, when the local control plane runs the tests.
    pub audit_log: Option<PathBuf>,
}

static CRDS: OnceCell<()> = OnceCell::const_new();

impl Cluster {
    /// Connects to the cluster named by `KUBECONFIG` and installs the CRDs from `crds/`.
    pub async fn connect() -> Result<Self> {
        if std::env::var_os("KUBECONFIG").is_none() {
            bail!("no cluster: run `e2e/test.sh` (starts a local control plane) or set KUBECONFIG");
        }
        let client = Client::try_default()
            .await
            .context("connecting to the cluster in KUBECONFIG")?;
        CRDS.get_or_try_init(|| install_crds(client.clone()))
            .await?;
        let audit_log = std::env::var_os("SANCTUM_E2E_AUDIT_LOG").map(PathBuf::from);
        Ok(Self { client, audit_log })
    }

    /// Writes the operator sent for `tenant` (or into `namespace`) after `since`, from the
    /// audit log; `None` when the cluster's audit log is not readable here.
    pub fn operator_writes_since(
        &self,
        since: Timestamp,
        tenant: &str,
        namespace: &str,
    ) -> Result<Option<Vec<String>>> {
        let Some(path) = &self.audit_log else {
            return Ok(None);
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut writes = Vec::new();
        for line in text.lines() {
            let event: serde_json::Value =
                serde_json::from_str(line).context("audit log line is JSON")?;
            let agent = event["userAgent"].as_str().unwrap_or_default();
            let verb = event["verb"].as_str().unwrap_or_default();
            let at = event["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| Timestamp::from_str(t).ok());
            let object = &event["objectRef"];
            let ours = object["name"].as_str() == Some(tenant)
                || object["namespace"].as_str() == Some(namespace);
            if agent.starts_with("sanctum-operator")
                && ["create", "update", "patch", "delete", "deletecollection"].contains(&verb)
                && at.is_some_and(|t| t > since)
                && ours
            {
                writes.push(format!(
                    "{verb} {}/{}",
                    object["resource"].as_str().unwrap_or_default(),
                    object["name"].as_str().unwrap_or_default()
                ));
            }
        }
        Ok(Some(writes))
    }
}

async fn install_crds(client: Client) -> Result<()> {
    // The operator's own namespace, where the local key provider keeps its master key.
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "sanctum-system"}}))?;
    apply_cluster(&client, namespace).await?;
    let dir = repo_root().join("crds");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)?;
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_json::Value::deserialize(document)
                .with_context(|| format!("parsing {}", path.display()))?;
            match value["kind"].as_str() {
                Some("CustomResourceDefinition") => {
                    apply_crd(&client, serde_json::from_value(value)?).await?
                }
                Some("ValidatingAdmissionPolicy") => {
                    apply_cluster::<ValidatingAdmissionPolicy>(
                        &client,
                        serde_json::from_value(value)?,
                    )
                    .await?;
                }
                Some("ValidatingAdmissionPolicyBinding") => {
                    apply_cluster::<ValidatingAdmissionPolicyBinding>(
                        &client,
                        serde_json::from_value(value)?,
                    )
                    .await?;
                }
                other => bail!("{}: unexpected kind {other:?}", path.display()),
            }
        }
    }
    Ok(())
}

async fn apply_crd(client: &Client, crd: CustomResourceDefinition) -> Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let name = apply_cluster(client, crd).await?;
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(api, &name, conditions::is_crd_established()),
    )
    .await
    .with_context(|| format!("CRD {name} not established"))??;
    Ok(())
}

async fn apply_cluster<K>(client: &Client, object: K) -> Result<String>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().context("object has a name")?;
    Api::<K>::all(client.clone())
        .patch(
            &name,
            &PatchParams::apply("sanctum-install").force(),
            &Patch::Apply(&object),
        )
        .await
        .with_context(|| format!("installing {name}"))?;
    Ok(name)
}

/// The repository root (parent of `e2e/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The documents a reader follows: README.md, the chart's README and `docs/` with its
/// runbooks, whose examples the tests hold to what the code accepts.
pub fn documentation_files(root: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut files = vec![
        root.join("README.md"),
        root.join("charts/sanctum/README.md"),
    ];
    for dir in ["docs", "docs/runbooks"] {
        for entry in std::fs::read_dir(root.join(dir))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A running operator process, killed when dropped.
pub struct Operator {
    child: Child,
    /// Where its health and metrics endpoint listens.
    pub http_addr: SocketAddr,
    /// Its log file.
    pub log: PathBuf,
    /// The run label value it watches.
    pub run: String,
}

impl Operator {
    /// Starts the operator binary, reconciling only tenants labelled `RUN_LABEL=run`.
    pub async fn start(run: &str) -> Result<Self> {
        Self::start_with(run, "", &[]).await
    }

    /// [`Operator::start`] with extra flags; `instance` (if not empty) names the replica
    /// and its log file.
    pub async fn start_with(run: &str, instance: &str, extra: &[&str]) -> Result<Self> {
        Self::start_env(run, instance, extra, &[]).await
    }

    /// [`Operator::start_with`] with extra environment (e.g. another `KUBECONFIG`).
    pub async fn start_env(
        run: &str,
        instance: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let binary = operator_binary()?;
        let http_addr = free_port()?;
        let logs = target_dir()?.join("e2e-logs");
        std::fs::create_dir_all(&logs)?;
        let log = if instance.is_empty() {
            logs.join(format!("{run}.log"))
        } else {
            logs.join(format!("{run}-{instance}.log"))
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(&binary)
            .args(["run", "--log-format", "json"])
            .args(if extra.contains(&"--namespace") {
                vec![]
            } else {
                vec!["--namespace", "sanctum-system"]
            })
            .arg("--http-addr")
            .arg(http_addr.to_string())
            .arg("--tenant-selector")
            .arg(format!("{RUN_LABEL}={run}"))
            .args(extra)
            .args(if instance.is_empty() {
                vec![]
            } else {
                vec!["--instance", instance]
            })
            .env("RUST_LOG", "info,sanctum_operator=debug,kube=warn")
            .env("RUST_BACKTRACE", "0")
            .env("SANCTUM_RESYNC_SECONDS", "3")
            .envs(env.iter().copied())
            .stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let op = Self {
            child,
            http_addr,
            log,
            run: run.to_string(),
        };
        wait_for("operator /readyz", Duration::from_secs(30), || async {
            Ok(op
                .get("/readyz")
                .await
                .map(|(status, _)| status == 200)
                .unwrap_or(false))
        })
        .await
        .map_err(|e| e.context(op.log_tail()))?;
        Ok(op)
    }

    /// The process id, for reading its CPU time and memory from /proc.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the process at once, as a crash would.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// The `/metrics` text, for a series whose presence matters, not only its value.
    pub async fn metrics(&self) -> Result<String> {
        Ok(self.get("/metrics").await?.1)
    }

    /// Value of a counter in `/metrics`, summed over label sets that contain `labels`.
    pub async fn counter(&self, name: &str, labels: &str) -> Result<u64> {
        let (_, body) = self.get("/metrics").await?;
        Ok(body
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64)
    }

    /// Requests that write: everything but GET.
    pub async fn writes(&self) -> Result<u64> {
        let mut total = 0;
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            total += self
                .counter(
                    "sanctum_kube_api_requests_total",
                    &format!("method=\"{method}\""),
                )
                .await?;
        }
        Ok(total)
    }

    /// Waits until no write was sent for `quiet`; returns the write count then.
    pub async fn settle(&self, quiet: Duration, timeout: Duration) -> Result<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = self.writes().await?;
        loop {
            tokio::time::sleep(quiet).await;
            let now = self.writes().await?;
            if now == last {
                return Ok(now);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("operator still writing after {timeout:?}");
            }
            last = now;
        }
    }

    /// Reconciles started so far.
    pub async fn reconciles(&self) -> Result<u64> {
        self.counter("sanctum_reconciles_total", "videotenant")
            .await
    }

    async fn get(&self, path: &str) -> Result<(u16, String)> {
        let client = HttpClient::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let uri: http::Uri = format!("http://{}{path}", self.http_addr).parse()?;
        let response = client.get(uri).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// The last lines of the operator's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(40);
        format!(
            "operator log {} (last lines):\n{}",
            self.log.display(),
            lines[start..].join("\n")
        )
    }
}

/// Runs a test body and attaches the operator's log to any failure.
pub async fn with_logs<F, Fut>(op: &Operator, body: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    body().await.map_err(|e| e.context(op.log_tail()))
}

fn operator_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("SANCTUM_OPERATOR_BIN") {
        return Ok(PathBuf::from(path));
    }
    let path = target_dir()?.join("sanctum");
    if !path.exists() {
        bail!(
            "{} not found: build it first with `cargo build -p sanctum-operator` (e2e/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// A binary of this workspace next to the running test (built by `e2e/test.sh`).
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let path = target_dir()?.join(name);
    if !path.exists() {
        bail!(
            "{} not found: build the workspace first (e2e/test.sh does)",
            path.display()
        );
    }
    Ok(path)
}

/// A free TCP port on loopback.
pub fn free_local_port() -> Result<u16> {
    Ok(free_port()?.port())
}

/// `target/<profile>` of the running test binary.
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test binary>
    Ok(exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test binary lives in target/<profile>/deps")?
        .to_path_buf())
}

fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// What kstatus (sigs.k8s.io/cli-utils, the library Flux waits with) computes for an
/// object: its status (`Current`, `InProgress`, `Failed`, `Terminating`, ...) and message.
/// Runs the real library through the small Go program in `e2e/controlplane/kstatus`.
pub async fn kstatus(object: &impl serde::Serialize) -> Result<(String, String)> {
    use tokio::io::AsyncWriteExt as _;
    let binary = std::env::var("SANCTUM_E2E_KSTATUS")
        .context("SANCTUM_E2E_KSTATUS is not set; run e2e/test.sh or `eval $(e2e/controlplane/cluster.sh env)`")?;
    let mut child = Command::new(&binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {binary}"))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    stdin.write_all(&serde_json::to_vec(object)?).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!("kstatus failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let line = String::from_utf8(out.stdout)?;
    let (status, message) = line
        .trim_end()
        .split_once('\t')
        .unwrap_or((line.trim(), ""));
    Ok((status.to_string(), message.to_string()))
}

/// A name unique to this run: `prefix-` and six hex digits.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 3];
    getrandom::fill(&mut bytes).expect("randomness is available");
    format!("{prefix}-{:02x}{:02x}{:02x}", bytes[0], bytes[1], bytes[2])
}

/// The documented example tenant, renamed and labelled for the operator of `run`.
pub fn example_tenant(name: &str, run: &str) -> Result<VideoTenant> {
    let text = std::fs::read_to_string(repo_root().join("docs/examples/videotenant.yaml"))?;
    let mut tenant: VideoTenant = serde_yaml::from_str(&text)?;
    tenant.metadata.name = Some(name.to_string());
    tenant.metadata.labels = Some(BTreeMap::from([(RUN_LABEL.to_string(), run.to_string())]));
    Ok(tenant)
}

/// Polls `check` every 250 ms until it returns true, failing after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() > deadline {
            let detail = last_error
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            bail!("timed out after {timeout:?} waiting for {what}{detail}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until an Event about the object named `name` (in `namespace`, or in any) satisfies
/// `check`; `what` names it in the timeout error.
pub async fn wait_event(
    client: &Client,
    namespace: Option<&str>,
    name: &str,
    what: &str,
    check: impl Fn(&Event) -> bool,
) -> Result<()> {
    let events = match namespace {
        Some(ns) => Api::<Event>::namespaced(client.clone(), ns),
        None => Api::<Event>::all(client.clone()),
    };
    let selector = format!("regarding.name={name}");
    wait_for(what, Duration::from_secs(60), || async {
        let list = events
            .list(&kube::api::ListParams::default().fields(&selector))
            .await?;
        Ok(list.items.iter().any(&check))
    })
    .await
}

/// Status of condition `type_` on a tenant, if present.
pub fn condition<'a>(
    tenant: &'a VideoTenant,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    tenant
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Waits until the tenant's condition `type_` has `status` for the current generation.
pub async fn wait_condition(
    api: &Api<VideoTenant>,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> Result<VideoTenant> {
    wait_for(&format!("{name} {type_}={status}"), timeout, || async {
        let t = api.get(name).await?;
        let current =
            t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation;
        Ok(current && condition(&t, type_).is_some_and(|c| c.status == status))
    })
    .await?;
    Ok(api.get(name).await?)
}

/// Waits until `name` no longer exists (finalizers done, object gone).
pub async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    wait_for(&format!("{name} to be deleted"), timeout, || async {
        Ok(api.get_opt(name).await?.is_none())
    })
    .await
}
