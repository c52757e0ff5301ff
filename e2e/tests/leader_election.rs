//! Two replicas with leader election: only the Lease holder reconciles, and when it dies
//! the standby takes over within the Lease duration.

use std::time::Duration;

use anyhow::{Result, ensure};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use sanctum_api::VideoTenant;
use sanctum_e2e::{Cluster, Operator, example_tenant, unique, wait_condition, wait_for};

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over() -> Result<()> {
    let cluster = Cluster::connect().await?;
    let run = unique("lease");
    let lease_name = format!("sanctum-{run}");
    let flags = [
        "--leader-election",
        "--lease-name",
        lease_name.as_str(),
        "--lease-duration-seconds",
        "4",
    ];
    let a = Operator::start_with(&run, "a", &flags).await?;
    let b = Operator::start_with(&run, "b", &flags).await?;
    let leases = Api::<Lease>::namespaced(cluster.client.clone(), "sanctum-system");
    let tenants = Api::<VideoTenant>::all(cluster.client.clone());

    let first = format!("{run}-1");
    tenants
        .create(&PostParams::default(), &example_tenant(&first, &run)?)
        .await?;
    wait_condition(&tenants, &first, "Ready", "True", Duration::from_secs(120)).await?;
    let holder = leases
        .get(&lease_name)
        .await?
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    let (mut leader, standby) = if holder == "a" { (a, b) } else { (b, a) };
    ensure!(holder == "a" || holder == "b", "lease held by {holder:?}");
    ensure!(leader.reconciles().await? > 0, "the leader reconciled");
    ensure!(
        standby.reconciles().await? == 0,
        "the standby did nothing while not leading"
    );

    leader.kill().await?;
    let second = format!("{run}-2");
    tenants
        .create(&PostParams::default(), &example_tenant(&second, &run)?)
        .await?;
    wait_condition(&tenants, &second, "Ready", "True", Duration::from_secs(120)).await?;
    ensure!(standby.reconciles().await? > 0, "the standby took over");
    wait_for(
        "the Lease to name the new leader",
        Duration::from_secs(30),
        || async {
            Ok(leases
                .get(&lease_name)
                .await?
                .spec
                .and_then(|s| s.holder_identity)
                .is_some_and(|h| h != holder))
        },
    )
    .await?;

    for name in [&first, &second] {
        tenants.delete(name, &DeleteParams::default()).await?;
    }
    for name in [&first, &second] {
        sanctum_e2e::wait_gone(&tenants, name, Duration::from_secs(120)).await?;
    }
    Ok(())
}
