//! The HIPAA safeguards the evidence report judges, each with the live findings that show
//! it and the tests that demonstrate it. `docs/hipaa-safeguards.md` is checked against
//! this table (a unit test below), so the document cannot name a safeguard or a test the
//! code does not have.

use serde::Serialize;

/// One safeguard.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    /// Its citation, as the document's table names it (`164.312(a)(1)`).
    pub id: &'static str,
    /// Its title.
    pub title: &'static str,
    /// Findings (see `Finding::id`) that must all pass; a prefix ending in `.` takes every
    /// finding under it.
    pub findings: &'static [&'static str],
    /// Tests that demonstrate it, as `path::function` from the repository root.
    pub tests: &'static [&'static str],
}

/// The table.
pub const CONTROLS: &[Control] = &[
    Control {
        id: "164.312(a)(1)",
        title: "Access control",
        findings: &[
            "network.",
            "bucket.public access block",
            "bucket.bucket policy",
        ],
        tests: &[
            "operator/src/controller/tenant/build/network_policy.rs::default_deny_selects_every_pod_in_both_directions",
            "operator/src/evidence/network.rs::a_policy_added_or_widened_by_hand_is_a_difference",
            "e2e/tests/regions.rs::regions_follow_the_spec_and_drift_is_repaired",
            "e2e/tests/namespace_conflict.rs::foreign_namespace_stalls_the_tenant_and_stays_untouched",
        ],
    },
    Control {
        id: "164.312(a)(2)(iii)",
        title: "Automatic logoff",
        findings: &["sessions.logoff."],
        tests: &[
            "media-node/tests/sessions.rs::an_idle_session_is_closed_and_told_why",
            "media-node/core/tests/forwarding.rs::idle_and_overlong_sessions_end",
        ],
    },
    Control {
        id: "164.312(a)(2)(iv)",
        title: "Encryption and decryption",
        findings: &["bucket.default encryption", "key.", "recordings.encrypted"],
        tests: &[
            "e2e/tests/keys_and_buckets.rs::aws_provider_adopts_an_orphaned_key_and_encrypts_the_bucket_with_it",
            "e2e/tests/keys_and_buckets.rs::data_keys_rotate_and_crypto_shredding_destroys_every_copy",
            "e2e/tests/recording.rs::recordings_are_sealed_decryptable_retained_and_held",
        ],
    },
    Control {
        id: "164.312(b)",
        title: "Audit controls",
        findings: &["audit."],
        tests: &[
            "e2e/tests/audit.rs::reconciles_are_chained_into_a_locked_bucket_and_tampering_is_found",
            "e2e/tests/evidence.rs::evidence_of_a_converged_tenant_passes_and_names_what_fails",
        ],
    },
    Control {
        id: "164.312(c)(1)",
        title: "Integrity",
        findings: &[
            "bucket.versioning",
            "bucket.retention lifecycle",
            "bucket.object ownership",
            "bucket.object lock",
            "bucket.exists",
            "bucket.readable",
            "recordings.",
        ],
        tests: &[
            "e2e/tests/keys_and_buckets.rs::local_provider_wraps_a_key_and_protects_the_bucket",
            "e2e/tests/recording.rs::recordings_are_sealed_decryptable_retained_and_held",
        ],
    },
    Control {
        id: "164.312(d)",
        title: "Person or entity authentication",
        findings: &["sessions.join-token key"],
        tests: &[
            "media-node/tests/sessions.rs::forged_expired_and_cross_tenant_tokens_are_refused",
            "media-node/tests/control.rs::unsigned_forged_misdirected_and_replayed_requests_are_refused_with_their_status",
        ],
    },
    Control {
        id: "164.312(e)(1)",
        title: "Transmission security",
        findings: &["bucket.bucket policy"],
        tests: &[
            "operator/src/cloud/buckets/policy.rs::policy_denies_plain_http_on_bucket_and_objects",
            "media-node/tests/sessions.rs::signaling_over_tls_and_a_graceful_drain",
        ],
    },
    Control {
        id: "164.308(a)(7)",
        title: "Contingency plan",
        findings: &["backup."],
        tests: &[
            "e2e/tests/backup_schedule.rs::scheduled_backups_run_with_least_privilege_and_report_their_result",
            "e2e/tests/backup_schedule.rs::scheduled_restore_drills_restore_check_and_open_a_backup",
            "e2e/tests/recording.rs::recordings_are_sealed_decryptable_retained_and_held",
            "e2e/tests/evidence.rs::evidence_of_a_converged_tenant_passes_and_names_what_fails",
        ],
    },
    Control {
        id: "164.310(d)(2)(i)",
        title: "Disposal",
        findings: &["disposal."],
        tests: &[
            "e2e/tests/keys_and_buckets.rs::data_keys_rotate_and_crypto_shredding_destroys_every_copy",
            "e2e/tests/keys_and_buckets.rs::local_crypto_shredding_destroys_the_key_encryption_key",
        ],
    },
];

impl Control {
    /// Whether the finding `id` belongs to this control.
    pub fn covers(&self, id: &str) -> bool {
        self.findings.iter().any(|f| {
            if f.ends_with('.') {
                id.starts_with(f)
            } else {
                id == *f
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(path: &str) -> String {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn every_test_the_table_names_exists() {
        for control in CONTROLS {
            for test in control.tests {
                let (file, function) = test.split_once("::").expect("path::function");
                let source = repo(file);
                assert!(
                    source.contains(&format!("fn {function}(")),
                    "{}: {file} has no test {function}",
                    control.id
                );
            }
        }
    }

    #[test]
    fn the_safeguards_document_matches_the_table() {
        let doc = repo("docs/hipaa-safeguards.md");
        for control in CONTROLS {
            let row = doc
                .lines()
                .find(|l| l.starts_with('|') && l.contains(control.id))
                .unwrap_or_else(|| {
                    panic!("docs/hipaa-safeguards.md has no row for {}", control.id)
                });
            assert!(
                row.contains(control.title),
                "the row of {} does not name {:?}",
                control.id,
                control.title
            );
        }
        // Every test the document cites exists: `file.rs::function` and its `::function`
        // continuations name a function somewhere in the repository's sources.
        let sources = ["operator", "media-node", "e2e"]
            .iter()
            .flat_map(|dir| rust_files(&format!("{}/../{dir}", env!("CARGO_MANIFEST_DIR"))))
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let mut cited = 0;
        for span in doc.split('`').skip(1).step_by(2) {
            let Some((_, function)) = span.rsplit_once("::") else {
                continue;
            };
            // The document's own explanation of the notation names no test.
            if span == "file::function"
                || function.is_empty()
                || !function
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                continue;
            }
            cited += 1;
            assert!(
                sources.contains(&format!("fn {function}(")),
                "docs/hipaa-safeguards.md cites {span}, which no source defines"
            );
        }
        assert!(cited > 20, "only {cited} tests cited");
    }

    fn rust_files(dir: &str) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("target") && !path.ends_with("node_modules") {
                out.extend(rust_files(&path.to_string_lossy()));
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
        out
    }
}
