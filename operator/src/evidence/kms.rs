//! The tenant's KMS key as KMS reports it: state, automatic rotation, rotations, and the
//! tenant-uid tag crypto-shredding finds it by.

use serde_json::{Value, json};

use super::Collector;
use crate::cloud::{Cloud, keys};

/// Reads the key `arn`; `made_by_sanctum` keys must carry the tenant's uid tag.
pub(super) async fn posture(
    cloud: &Cloud,
    arn: &str,
    uid: &str,
    made_by_sanctum: bool,
    found: &mut Collector,
) -> Value {
    let described = cloud.kms.describe_key().key_id(arn).send().await;
    let meta = match &described {
        Ok(out) => out.key_metadata().cloned(),
        Err(e) => {
            found.add(
                "key.kms",
                false,
                format!(
                    "DescribeKey {arn}: {}",
                    crate::cloud::CloudError::from_sdk("DescribeKey", e)
                ),
            );
            return json!({"arn": arn});
        }
    };
    let state = meta
        .as_ref()
        .and_then(|m| m.key_state())
        .map(|s| s.as_str().to_string());
    found.add(
        "key.kms enabled",
        state.as_deref() == Some("Enabled"),
        format!("key state {}", state.as_deref().unwrap_or("unknown")),
    );
    let rotation = cloud.kms.get_key_rotation_status().key_id(arn).send().await;
    let (enabled, period, next) = match &rotation {
        Ok(r) => (
            r.key_rotation_enabled(),
            r.rotation_period_in_days(),
            r.next_rotation_date().map(|d| d.to_string()),
        ),
        Err(_) => (false, None, None),
    };
    found.add(
        "key.kms automatic rotation",
        enabled,
        format!("automatic rotation {}", if enabled { "on" } else { "off" }),
    );
    let rotations: Vec<String> = match cloud.kms.list_key_rotations().key_id(arn).send().await {
        Ok(out) => out
            .rotations()
            .iter()
            .filter_map(|r| r.rotation_date().map(|d| d.to_string()))
            .collect(),
        Err(_) => Vec::new(),
    };
    if made_by_sanctum {
        let tag = keys::key_tag(cloud, arn, keys::TENANT_UID_TAG).await;
        let owned = matches!(&tag, Ok(Some(owner)) if owner == uid);
        found.add(
            "disposal.key tagged with the tenant uid",
            owned,
            if owned {
                "crypto-shredding finds this key by its tag"
            } else {
                "the key does not carry this tenant's uid tag"
            },
        );
    }
    json!({
        "arn": arn,
        "state": state,
        "created": meta.as_ref().and_then(|m| m.creation_date()).map(|d| d.to_string()),
        "manager": meta.as_ref().and_then(|m| m.key_manager()).map(|m| m.as_str().to_string()),
        "automaticRotation": enabled,
        "rotationPeriodDays": period,
        "nextRotation": next,
        "rotations": rotations,
    })
}
