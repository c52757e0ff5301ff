//! The tenant's Recordings as their status shows them: each sealed one encrypted under a
//! named data-key version, its SHA-256 re-checked against the stored object, and an
//! expiry set (or a legal hold).

use sanctum_api::conditions::recording::INTEGRITY_VERIFIED;
use sanctum_api::{Recording, RecordingPhase};
use serde_json::{Value, json};

use super::Collector;

/// The section, and its findings in `found`.
pub(super) fn section(recordings: &[Recording], found: &mut Collector) -> Value {
    let mut rows = Vec::new();
    let (mut unverified, mut unkeyed, mut unexpiring) = (Vec::new(), Vec::new(), Vec::new());
    let mut sealed = 0;
    for r in recordings {
        let name = kube::ResourceExt::name_any(r);
        let status = r.status.clone().unwrap_or_default();
        let integrity = status
            .conditions
            .iter()
            .find(|c| c.type_ == INTEGRITY_VERIFIED)
            .map(|c| c.status.clone());
        if status.phase == Some(RecordingPhase::Sealed) {
            sealed += 1;
            if integrity.as_deref() != Some("True") {
                unverified.push(name.clone());
            }
            if status.key_version.is_none() || status.sha256.is_none() {
                unkeyed.push(name.clone());
            }
            if status.expires_at.is_none() && !r.spec.legal_hold {
                unexpiring.push(name.clone());
            }
        }
        rows.push(json!({
            "name": name,
            "phase": status.phase,
            "keyVersion": status.key_version,
            "sha256": status.sha256,
            "integrityVerified": integrity,
            "integrityCheckedAt": status.integrity_checked_at.map(|t| t.0.to_string()),
            "expiresAt": status.expires_at.map(|t| t.0.to_string()),
            "legalHold": r.spec.legal_hold,
            "consent": r.spec.consent.as_ref().map(|c| json!({"method": c.method, "recordedBy": c.recorded_by})),
        }));
    }
    let verdict = |bad: &[String], what: &str| {
        if bad.is_empty() {
            format!("{sealed} sealed recording(s), every one {what}")
        } else {
            format!("not {what}: {}", bad.join(", "))
        }
    };
    found.add(
        "recordings.integrity",
        unverified.is_empty(),
        verdict(
            &unverified,
            "re-checked against its SHA-256 (IntegrityVerified=True)",
        ),
    );
    found.add(
        "recordings.encrypted",
        unkeyed.is_empty(),
        verdict(
            &unkeyed,
            "sealed under a named data-key version with its SHA-256",
        ),
    );
    found.add(
        "recordings.retention",
        unexpiring.is_empty(),
        verdict(&unexpiring, "given an expiry or held"),
    );
    json!({ "count": recordings.len(), "sealed": sealed, "recordings": rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(name: &str, integrity: &str) -> Recording {
        serde_json::from_value(json!({
            "apiVersion": "sanctum.dev/v1alpha1", "kind": "Recording",
            "metadata": {"name": name, "namespace": "vt-clinic-a"},
            "spec": {"room": "room-1"},
            "status": {
                "phase": "Sealed", "keyVersion": 1, "sha256": "ab".repeat(32),
                "expiresAt": "2032-01-01T00:00:00Z",
                "conditions": [{"type": INTEGRITY_VERIFIED, "status": integrity, "reason": "R",
                                "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}],
            },
        }))
        .expect("a Recording")
    }

    #[test]
    fn a_sealed_recording_whose_checksum_failed_is_named() {
        let mut found = Collector(Vec::new());
        let pending: Recording = serde_json::from_value(json!({
            "apiVersion": "sanctum.dev/v1alpha1", "kind": "Recording",
            "metadata": {"name": "later"}, "spec": {"room": "room-2"},
        }))
        .expect("a Recording");
        let section = section(
            &[sealed("good", "True"), sealed("bad", "False"), pending],
            &mut found,
        );
        assert_eq!(section["sealed"], 2);
        let integrity = found
            .0
            .iter()
            .find(|f| f.id == "recordings.integrity")
            .expect("finding");
        assert!(!integrity.ok);
        assert!(integrity.detail.ends_with(": bad"), "{}", integrity.detail);
        assert!(
            found
                .0
                .iter()
                .filter(|f| f.id != "recordings.integrity")
                .all(|f| f.ok)
        );
    }
}
