//! The audit chain in the report: verified against the tenant's anchor, with the records
//! of the period.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use serde_json::{Value, json};

use super::{Collector, Sources};
use crate::audit::store::AuditStore;

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
    let signers = match signers(sources).await {
        Ok(s) => s,
        Err(e) => {
            found.add("audit.chain", false, format!("{e:#}"));
            return json!({"bucket": bucket});
        }
    };
    let anchor = status
        .last_audit_record
        .as_ref()
        .map(|a| crate::audit::Head {
            seq: a.seq as u64,
            hash: a.hash.clone(),
        });
    let store = AuditStore::new(sources.cloud.s3.clone(), bucket);
    let checked = match crate::audit::check::gather(&store, tenant).await {
        Ok(gathered) => crate::audit::check::judge(tenant, &gathered, &signers, anchor.as_ref())
            .map_err(anyhow::Error::from),
        Err(e) => Err(anyhow::Error::from(e)),
    };
    let report = match checked {
        Ok(report) => report,
        Err(e) => {
            found.add("audit.chain", false, format!("{e:#}"));
            return json!({"bucket": bucket, "verified": false, "error": format!("{e:#}")});
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
    let encryption_changes = in_period
        .iter()
        .filter(|r| r.actions.contains("key") || r.actions.contains("Key"))
        .count();
    json!({
        "bucket": bucket,
        "verified": true,
        "chains": report.chains.iter().map(|c| json!({"name": c.name, "objects": c.objects, "records": c.head.seq, "lastHash": c.head.hash})).collect::<Vec<_>>(),
        "anchor": anchor.as_ref().map(|a| json!({"seq": a.seq, "hash": a.hash})),
        "recordsInPeriod": in_period.len(),
        "firstInPeriod": in_period.first().map(|r| json!({"seq": r.seq, "time": r.time, "hash": r.hash})),
        "lastInPeriod": in_period.last().map(|r| json!({"seq": r.seq, "time": r.time, "hash": r.hash})),
        "keyChangesInPeriod": encryption_changes,
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
