//! The audit chain in the report: verified against the tenant's anchor, with the records
//! of the period.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use serde_json::{Value, json};

use super::{Collector, Sources};
use crate::audit::store::AuditStore;
use crate::controller::tenant::build::tenant_key;

/// The tenant's anchor, `status.lastAuditRecord`, as the chain check takes it.
pub fn anchor(status: &sanctum_api::VideoTenantStatus) -> Option<crate::audit::Head> {
    status
        .last_audit_record
        .as_ref()
        .map(|a| crate::audit::Head {
            seq: a.seq as u64,
            hash: a.hash.clone(),
        })
}

/// Reads `tenant`'s chains from `bucket` and judges them against the operator's published
/// signers and `anchor`: `Err` when they cannot be read, `Ok(Err)` when they are broken.
pub async fn verify(
    sources: &Sources<'_>,
    bucket: &str,
    tenant: &str,
    anchor: Option<&crate::audit::Head>,
) -> anyhow::Result<Result<crate::audit::check::TrailReport, crate::audit::check::TrailError>> {
    let signers = signers(sources).await?;
    let store = AuditStore::new(sources.cloud.s3.clone(), bucket);
    let gathered = crate::audit::check::gather(&store, tenant).await?;
    Ok(crate::audit::check::judge(
        tenant, &gathered, &signers, anchor,
    ))
}

/// Verifies `tenant`'s chains in `bucket` and summarizes the period.
pub(super) async fn section(
    sources: &Sources<'_>,
    bucket: &str,
    tenant: &str,
    status: &sanctum_api::VideoTenantStatus,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    found: &mut Collector,
) -> Value {
    let anchor = anchor(status);
    let report = match verify(sources, bucket, tenant, anchor.as_ref()).await {
        Ok(Ok(report)) => report,
        Ok(Err(broken)) => {
            found.add("audit.chain", false, broken.to_string());
            return json!({"bucket": bucket, "verified": false, "error": broken.to_string()});
        }
        Err(e) => {
            found.add("audit.chain", false, format!("{e:#}"));
            return json!({"bucket": bucket});
        }
    };
    found.add(
        "audit.chain",
        true,
        format!("{} chain(s) intact and signed", report.chains.len()),
    );
    match &anchor {
        Some(a) => found.add(
            "audit.anchor",
            true,
            format!("status.lastAuditRecord {}:{} held", a.seq, a.hash),
        ),
        None => found.add(
            "audit.anchor",
            false,
            "the tenant has no status.lastAuditRecord to anchor the chain",
        ),
    }
    let in_period: Vec<_> = report
        .records
        .iter()
        .filter(|r| {
            let t = r.time.parse::<Timestamp>().ok();
            t.is_some_and(|t| since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u))
        })
        .collect();
    // The reconciles that made or rotated the data key, in the operator's own words.
    let made = format!("Secret/{}", tenant_key::SECRET_NAME);
    let key_changes: Vec<Value> = in_period
        .iter()
        .filter(|r| r.actions.contains(&made) || r.actions.contains(tenant_key::ROTATED))
        .map(|r| json!({"seq": r.seq, "time": r.time, "actions": r.actions}))
        .collect();
    json!({
        "bucket": bucket,
        "verified": true,
        "chains": report.chains.iter().map(|c| json!({"name": c.name, "objects": c.objects, "records": c.head.seq, "lastHash": c.head.hash})).collect::<Vec<_>>(),
        "anchor": anchor.as_ref().map(|a| json!({"seq": a.seq, "hash": a.hash})),
        "recordsInPeriod": in_period.len(),
        "firstInPeriod": in_period.first().map(|r| json!({"seq": r.seq, "time": r.time, "hash": r.hash})),
        "lastInPeriod": in_period.last().map(|r| json!({"seq": r.seq, "time": r.time, "hash": r.hash})),
        "keyChangesInPeriod": key_changes,
    })
}

/// The operator's audit signing keys from the ConfigMap it publishes.
pub async fn signers(sources: &Sources<'_>) -> anyhow::Result<crate::audit::Trust> {
    let map = Api::<ConfigMap>::namespaced(sources.client.clone(), sources.operator_namespace)
        .get(crate::audit::SIGNERS_CONFIG_MAP)
        .await
        .with_context(|| {
            format!(
                "reading ConfigMap {}/{}",
                sources.operator_namespace,
                crate::audit::SIGNERS_CONFIG_MAP
            )
        })?;
    let pem = map
        .data
        .and_then(|d| d.get(crate::audit::SIGNERS_KEY).cloned())
        .context("the audit signers ConfigMap has no signers.pem")?;
    crate::audit::Trust::from_pems(&pem)
        .context("the audit signers ConfigMap holds no Ed25519 public key")
}
