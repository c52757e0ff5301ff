//! Operator convergence benchmark on the local control plane and the AWS emulator.
//!
//! For each N: create N tenants at once, time until all are Ready, and read the operator's
//! API requests, CPU seconds and peak RSS; then, with nothing changing, count its writes
//! per minute. Baseline, in the same run: a tight client that server-side applies the same
//! Kubernetes objects the operator made (read back, renamed into fresh namespaces) with
//! the same concurrency (one task per tenant, objects in order). The baseline does no KMS
//! or S3 calls: the ratio includes the cloud work the operator must do.
//!
//! `e2e/bench.sh` runs it (with a private cluster); alone:
//! `cargo bench -p sanctum-e2e --bench convergence -- 10,100 [STEADY_SECONDS]`
//! after `cargo build --release -p sanctum-operator` and `eval $(e2e/controlplane/cluster.sh up)`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, ResourceQuota, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::DynamicObject;
use kube::discovery::ApiResource;
use kube::{Api, Client, Resource, ResourceExt};
use sanctum_api::VideoTenant;
use sanctum_e2e::{Cluster, Operator, RUN_LABEL, condition, example_tenant, unique};

fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn requests(op: &Operator) -> Result<u64> {
    op.counter("sanctum_kube_api_requests_total", "").await
}

/// Retries what a loaded API server turns away (429, 5xx, dropped connections), as any
/// client does; the operator's own requests are retried by its error policy.
async fn retry<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        match call().await {
            Ok(v) => return Ok(v),
            Err(kube::Error::Api(e)) if attempt < 10 && (e.code == 429 || e.code >= 500) => {}
            Err(kube::Error::Service(_) | kube::Error::HyperError(_)) if attempt < 10 => {}
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
    }
}

async fn ready_count(tenants: &Api<VideoTenant>, run: &str) -> Result<usize> {
    let list = tenants
        .list(&ListParams::default().labels(&format!("{RUN_LABEL}={run}")))
        .await?;
    Ok(list
        .items
        .iter()
        .filter(|t| condition(t, "Ready").is_some_and(|c| c.status == "True"))
        .count())
}

/// The example tenant cut to one region of one media node: the operator's work per
/// tenant stays the same (every object kind, key, bucket), the fake cluster's pods fewer.
fn bench_tenant(name: &str, run: &str) -> Result<VideoTenant> {
    let mut t = example_tenant(name, run)?;
    t.spec.media.regions.truncate(1);
    for r in &mut t.spec.media.regions {
        r.replicas = 1;
        r.autoscaling = None;
    }
    Ok(t)
}

struct Row {
    n: usize,
    debounce: String,
    seconds: f64,
    requests_per_tenant: f64,
    reconciles_per_tenant: f64,
    cpu_seconds: f64,
    peak_rss_mib: f64,
    baseline_seconds: f64,
    steady_writes_per_minute: f64,
    steady_cpu_per_minute: f64,
}

/// The kinds the operator applies in a tenant namespace, in its order.
fn namespaced_kinds() -> Vec<ApiResource> {
    fn ar<K: Resource<DynamicType = ()>>() -> ApiResource {
        ApiResource::erase::<K>(&())
    }
    vec![
        ar::<NetworkPolicy>(),
        ar::<ResourceQuota>(),
        ar::<LimitRange>(),
        ar::<ServiceAccount>(),
        ar::<Role>(),
        ar::<RoleBinding>(),
        ar::<ConfigMap>(),
        ar::<Deployment>(),
        ar::<Service>(),
        ar::<PodDisruptionBudget>(),
        ar::<HorizontalPodAutoscaler>(),
    ]
}

/// What a fresh server-side apply of an object read back needs: identity and spec only.
fn clean(mut obj: DynamicObject, namespace: &str) -> DynamicObject {
    let meta = &mut obj.metadata;
    meta.namespace = Some(namespace.to_string());
    meta.uid = None;
    meta.resource_version = None;
    meta.managed_fields = None;
    meta.creation_timestamp = None;
    meta.generation = None;
    meta.owner_references = None;
    meta.finalizers = None;
    if let Some(map) = obj.data.as_object_mut() {
        map.remove("status");
        // Allocated by the API server for the original; the copy gets its own.
        if let Some(spec) = map.get_mut("spec").and_then(|s| s.as_object_mut()) {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    }
    obj
}

/// Server-side applies copies of every object of `tenants` into `bl-<namespace>`.
async fn baseline(client: &Client, tenant_namespaces: &[String]) -> Result<(f64, usize)> {
    // Read first, outside the timed part.
    let kinds = namespaced_kinds();
    let mut plans: Vec<(String, Vec<(ApiResource, DynamicObject)>)> = Vec::new();
    for ns in tenant_namespaces {
        let target = format!("bl-{ns}");
        let mut objects = Vec::new();
        for ar in &kinds {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
            for obj in api.list(&ListParams::default()).await?.items {
                if obj.name_any().starts_with("kube-root-ca") || obj.name_any() == "default" {
                    continue;
                }
                objects.push((ar.clone(), clean(obj, &target)));
            }
        }
        plans.push((target, objects));
    }
    let total: usize = plans.iter().map(|(_, o)| o.len() + 1).sum();
    let apply = PatchParams::apply("sanctum-bench-baseline").force();
    let start = Instant::now();
    let concurrency = plans.len().max(1);
    stream::iter(plans)
        .map(|(target, objects)| {
            let client = client.clone();
            let apply = apply.clone();
            async move {
                let namespaces: Api<Namespace> = Api::all(client.clone());
                let ns = Namespace {
                    metadata: kube::api::ObjectMeta {
                        name: Some(target.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let ns = Patch::Apply(&ns);
                retry(|| namespaces.patch(&target, &apply, &ns)).await?;
                for (ar, obj) in objects {
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(client.clone(), &target, &ar);
                    let mut obj = obj;
                    obj.types = Some(kube::core::TypeMeta {
                        api_version: ar.api_version.clone(),
                        kind: ar.kind.clone(),
                    });
                    let name = obj.name_any();
                    let patch = Patch::Apply(&obj);
                    retry(|| api.patch(&name, &apply, &patch)).await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    Ok((start.elapsed().as_secs_f64(), total))
}

async fn run(cluster: &Cluster, n: usize, steady: Duration, debounce: Option<&str>) -> Result<Row> {
    let run = unique("bench");
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());
    let mut args = vec!["--resync-seconds", "300"];
    if let Some(ms) = debounce {
        args.extend(["--reconcile-debounce-ms", ms]);
    }
    let op = Operator::start_with(&run, "", &args).await?;
    let pid = op.pid().context("operator pid")?;
    let requests_before = requests(&op).await?;
    let reconciles_before = op.reconciles().await?;
    let cpu_before = proc_cpu(pid);
    let start = Instant::now();
    let names: Vec<String> = (0..n).map(|i| format!("{run}-{i}")).collect();
    stream::iter(names.clone())
        .map(|name| {
            let tenants = tenants.clone();
            let run = run.clone();
            async move {
                let tenant = bench_tenant(&name, &run)?;
                for attempt in 1..=5 {
                    match tenants.create(&PostParams::default(), &tenant).await {
                        Ok(_) => break,
                        // An earlier attempt got through before its connection broke.
                        Err(kube::Error::Api(e)) if e.code == 409 => break,
                        Err(e) if attempt < 5 => {
                            eprintln!("  creating {name} failed, retrying: {e}");
                            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let deadline = Instant::now() + Duration::from_secs(60 + 2 * n as u64);
    let mut ready = 0;
    loop {
        // A poll the loaded API server drops is not the operator's failure: poll again.
        match ready_count(&tenants, &run).await {
            Ok(count) => ready = count,
            Err(e) => eprintln!("  polling tenants failed, retrying: {e:#}"),
        }
        if ready == n {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "only {ready}/{n} Ready");
        // Listing 1000 tenants is itself load on the API server: poll less often as N grows.
        tokio::time::sleep(Duration::from_millis((5 * n as u64).max(500))).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = proc_cpu(pid) - cpu_before;
    let reqs = requests(&op).await? - requests_before;
    let reconciles = op.reconciles().await? - reconciles_before;

    // Steady state: nothing changes; count writes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let writes_before = op.writes().await?;
    let steady_cpu_before = proc_cpu(pid);
    tokio::time::sleep(steady).await;
    let minutes = steady.as_secs_f64() / 60.0;
    let steady_writes = (op.writes().await? - writes_before) as f64 / minutes;
    let steady_cpu = (proc_cpu(pid) - steady_cpu_before) / minutes;
    let peak = peak_rss_mib(pid);

    let namespaces: Vec<String> = names.iter().map(|n| format!("vt-{n}")).collect();
    let (baseline_seconds, objects) = baseline(&cluster.client, &namespaces).await?;
    eprintln!("  baseline applied {objects} objects in {baseline_seconds:.2}s");
    drop(op);
    Ok(Row {
        n,
        debounce: debounce.map_or_else(|| "default".to_string(), |ms| format!("{ms} ms")),
        seconds,
        requests_per_tenant: reqs as f64 / n as f64,
        reconciles_per_tenant: reconciles as f64 / n as f64,
        cpu_seconds,
        peak_rss_mib: peak,
        baseline_seconds,
        steady_writes_per_minute: steady_writes,
        steady_cpu_per_minute: steady_cpu,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let ns: Vec<usize> = args
        .first()
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 100, 1000]);
    let steady = Duration::from_secs(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60));
    // BENCH_DEBOUNCE_MS=0,500 runs each N once per operator reconcile debounce, to
    // compare them in one run; unset, the operator's default.
    let debounces: Vec<Option<String>> = match std::env::var("BENCH_DEBOUNCE_MS") {
        Ok(list) if !list.is_empty() => list.split(',').map(|ms| Some(ms.to_string())).collect(),
        _ => vec![None],
    };
    let cluster = Cluster::connect().await?;
    let mut rows = Vec::new();
    for n in ns {
        for debounce in &debounces {
            eprintln!("converging {n} tenants (debounce {debounce:?})");
            rows.push(run(&cluster, n, steady, debounce.as_deref()).await?);
        }
    }
    println!(
        "| tenants | reconcile debounce | time to all Ready | tenants/s | baseline (SSA same objects) | operator/baseline | API requests per tenant | reconciles per tenant | operator CPU s | peak RSS | steady writes/min | steady CPU s/min |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut json = Vec::new();
    for r in &rows {
        let ratio = r.seconds / r.baseline_seconds.max(1e-9);
        println!(
            "| {} | {} | {:.1} s | {:.1} | {:.1} s | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} MiB | {:.1} | {:.2} |",
            r.n,
            r.debounce,
            r.seconds,
            r.n as f64 / r.seconds,
            r.baseline_seconds,
            ratio,
            r.requests_per_tenant,
            r.reconciles_per_tenant,
            r.cpu_seconds,
            r.peak_rss_mib,
            r.steady_writes_per_minute,
            r.steady_cpu_per_minute
        );
        json.push(serde_json::json!({
            "tenants": r.n,
            "reconcile_debounce": r.debounce,
            "seconds_to_ready": r.seconds,
            "tenants_per_second": r.n as f64 / r.seconds,
            "baseline_seconds": r.baseline_seconds,
            "operator_over_baseline": ratio,
            "api_requests_per_tenant": r.requests_per_tenant,
            "reconciles_per_tenant": r.reconciles_per_tenant,
            "operator_cpu_seconds": r.cpu_seconds,
            "peak_rss_mib": r.peak_rss_mib,
            "steady_writes_per_minute": r.steady_writes_per_minute,
            "steady_cpu_seconds_per_minute": r.steady_cpu_per_minute,
        }));
    }
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| Path::new(&t).join("bench"))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench"));
    std::fs::create_dir_all(&dir)?;
    let mut out = BTreeMap::new();
    out.insert("rows", json);
    std::fs::write(
        dir.join("operator-convergence.json"),
        serde_json::to_string_pretty(&out)?,
    )?;
    Ok(())
}
