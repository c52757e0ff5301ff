//! The chart's Grafana dashboard and alert rules name only metrics that exist: every
//! `sanctum_*` series they query is one the operator or the media node registers (their
//! `/metrics` text, as `Metrics::default()` encodes it), so a renamed metric fails here
//! instead of leaving an empty panel or an alert that can never fire.

use std::collections::BTreeSet;

use anyhow::{Result, ensure};
use sanctum_e2e::repo_root;
use sanctum_media_node::metrics::{DirLabels, ReasonLabels};

/// Series names in `text`: `sanctum_` followed by lower-case letters, digits and `_`.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("sanctum_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        // Not part of a longer word (`x_sanctum_...`), and a metric rather than a label.
        let before = rest[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// Families declared in an exposition text (`# TYPE name kind`), with the sample names
/// each kind produces.
fn exported(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_count", "_sum"],
                _ => &[""],
            };
            for suffix in suffixes {
                out.insert(format!("{name}{suffix}"));
            }
        }
    }
    out
}

#[test]
fn the_dashboard_and_alerts_name_only_exported_metrics() -> Result<()> {
    let chart = repo_root().join("charts/sanctum");
    let dashboard = std::fs::read_to_string(chart.join("dashboards/sanctum.json"))?;
    let rules = std::fs::read_to_string(chart.join("templates/prometheusrule.yaml"))?;
    // A labelled family is exported once it has a series: one of each, through the same
    // calls the binaries make.
    let operator = sanctum_operator::metrics::Metrics::default();
    drop(operator.reconcile_started("videotenant"));
    operator.reconcile_failed("videotenant", "Apply");
    operator.api_request("GET");
    operator.backup_finished("clinic-a", false);
    operator.backup_succeeded_at("clinic-a", 1);
    operator.drill_finished("clinic-a", false);
    operator.drill_state("clinic-a", true, Some(1));
    operator.tenant_conditions("clinic-a", &[("Ready".into(), true)]);
    operator.data_key("clinic-a", 1, 90);
    let operator = operator.encode();
    let media = sanctum_media_node::metrics::Metrics::default();
    media
        .packets
        .get_or_create(&DirLabels { direction: "in" })
        .inc();
    media
        .bytes
        .get_or_create(&DirLabels { direction: "in" })
        .inc();
    media
        .auth_failures
        .get_or_create(&ReasonLabels { reason: "expired" })
        .inc();
    media
        .sessions_ended
        .get_or_create(&ReasonLabels { reason: "left" })
        .inc();
    let media = media.encode();
    let exported: BTreeSet<String> = exported(&operator)
        .union(&exported(&media))
        .cloned()
        .collect();
    ensure!(
        exported.len() > 20,
        "only {} series exported: {exported:?}",
        exported.len()
    );
    for (what, text) in [
        ("dashboards/sanctum.json", &dashboard),
        ("templates/prometheusrule.yaml", &rules),
    ] {
        let names = referenced(text);
        ensure!(names.len() > 8, "{what} names only {names:?}");
        let missing: Vec<_> = names.difference(&exported).collect();
        ensure!(
            missing.is_empty(),
            "{what} queries {missing:?}, which nothing exports"
        );
        println!("{what}: {} metrics, all exported", names.len());
    }
    Ok(())
}

#[test]
fn a_misspelt_metric_is_found() {
    let exported = exported("# TYPE sanctum_leader gauge\n# TYPE sanctum_backups counter\n");
    let names = referenced(
        r#"{"expr": "sum(sanctum_leader) + rate(sanctum_backups_total[5m]) + sanctum_backup_total"}"#,
    );
    let missing: Vec<_> = names.difference(&exported).cloned().collect();
    assert_eq!(missing, ["sanctum_backup_total"]);
}
