//! `desired()` of fixture tenants, as one value: compared whole with the committed YAML
//! beside the fixture (run with `SANCTUM_BLESS=1` to write it after an intended change,
//! then read the diff), and checked for what must hold of every object.

use std::path::PathBuf;

use serde::Serialize;

use super::*;
use crate::controller::tenant::build::backup::BackupJobs;
use crate::controller::tenant::build::expose::Exposed;
use crate::controller::tenant::build::{AwsEnv, MediaNodes, OperatorIdentity};
use crate::controller::tenant::{fixtures, validate::validate};
use sanctum_api::{KeyProvider, VideoTenant, labels};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/controller/tenant/build/desired")
}

fn settings_parts() -> (OperatorIdentity, MediaNodes, BackupJobs) {
    let aws = AwsEnv {
        endpoint: None,
        region: "eu-central-1".into(),
        path_style: false,
        owners: Some(sanctum_cloud::BucketOwners::new("123456789012").expect("valid")),
    };
    (
        OperatorIdentity {
            service_account: "sanctum".into(),
            secrets_role: "sanctum-tenant-secrets".into(),
        },
        MediaNodes {
            role_arn: None,
            audit_bucket: Some("sanctum-audit".into()),
            aws: aws.clone(),
        },
        BackupJobs {
            image: "ghcr.io/sanctum-dev/sanctum:0.1.0".into(),
            role_arn: Some(
                "arn:aws:iam::123456789012:role/sanctum-backup"
                    .parse()
                    .expect("role"),
            ),
            drill_role_arn: Some(
                "arn:aws:iam::123456789012:role/sanctum-drill-{tenant}"
                    .parse()
                    .expect("role"),
            ),
            audit_bucket: Some("sanctum-audit".into()),
            aws,
        },
    )
}

fn refs(provider: KeyProvider) -> Refs {
    Refs {
        join_token_public_pem: "-----BEGIN PUBLIC KEY-----\nJOIN\n-----END PUBLIC KEY-----\n"
            .into(),
        control_public_pem: "-----BEGIN PUBLIC KEY-----\nCONTROL\n-----END PUBLIC KEY-----\n"
            .into(),
        key: TenantKeyRef {
            provider,
            arn: match provider {
                KeyProvider::Aws => "arn:aws:kms:eu-central-1:123456789012:key/k-1".into(),
                KeyProvider::Local => "local".into(),
            },
            version: 2,
            secret: "tenant-data-key".into(),
        },
        bucket: "sanctum-tenant-0a1b2c3d".into(),
        // What the cluster gave clinic-b's NodePort region.
        exposed: [(
            "eu-west".to_string(),
            Exposed {
                address: None,
                udp_node_port: Some(31000),
                tcp_node_port: Some(31001),
            },
        )]
        .into(),
    }
}

/// Every object of `d`, in apply order, as one YAML stream.
fn render(d: &Desired) -> String {
    fn doc<T: Serialize>(out: &mut String, object: &T) {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(object).expect("objects serialize"));
    }
    let mut out = String::new();
    let f = &d.foundation;
    doc(&mut out, &f.namespace);
    for p in &f.network_policies {
        doc(&mut out, p);
    }
    doc(&mut out, &f.quota);
    doc(&mut out, &f.limit_range);
    doc(&mut out, &f.service_account);
    if let Some(b) = &f.operator_binding {
        doc(&mut out, b);
    }
    for s in &d.exposure {
        doc(&mut out, s);
    }
    let w = &d.workloads;
    doc(&mut out, &w.public_keys);
    for r in &w.regions {
        doc(&mut out, &r.deployment);
        doc(&mut out, &r.service);
        doc(&mut out, &r.peers);
        doc(&mut out, &r.pdb);
        if let Some(h) = &r.hpa {
            doc(&mut out, h);
        }
    }
    if let Some(b) = &w.backup {
        doc(&mut out, &b.service_account);
        doc(&mut out, &b.cron_job);
    }
    if let Some(drill) = &w.drill {
        doc(&mut out, &drill.service_account);
        doc(&mut out, &drill.cron_job);
    }
    out
}

fn golden(name: &str, d: &Desired) {
    let path = dir().join(format!("{name}.desired.yaml"));
    let rendered = render(d);
    if std::env::var_os("SANCTUM_BLESS").is_some() {
        std::fs::write(&path, &rendered).expect("writing the golden file");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "desired() of {name} differs from {}; if the change is intended, run the test with SANCTUM_BLESS=1 and review the diff",
        path.display()
    );
}

/// What every object the operator applies carries, whatever the tenant.
fn every_object_is_the_tenants(d: &Desired, v: &crate::controller::tenant::validate::Validated) {
    let rendered = render(d);
    for document in serde_yaml::Deserializer::from_str(&rendered) {
        let object =
            <serde_yaml::Value as serde::Deserialize>::deserialize(document).expect("yaml");
        let doc = serde_yaml::to_string(&object).expect("yaml");
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let meta = &object["metadata"];
        let label = |k: &str| meta["labels"][k].as_str().map(str::to_string);
        assert_eq!(
            label(labels::TENANT).as_deref(),
            Some(v.name.as_str()),
            "{kind} is labelled for the tenant"
        );
        assert_eq!(
            label(labels::MANAGED_BY).as_deref(),
            Some(labels::MANAGED_BY_VALUE),
            "{kind} is managed by sanctum"
        );
        let owners = meta["ownerReferences"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        assert!(
            owners
                .iter()
                .any(|o| o["uid"].as_str() == Some(v.owner.uid.as_str())
                    && o["controller"].as_bool() == Some(true)),
            "{kind} is owned by the tenant"
        );
        if kind != "Namespace" {
            assert_eq!(
                meta["namespace"].as_str(),
                Some(v.namespace.as_str()),
                "{kind} is in the tenant namespace"
            );
        }
        assert_ne!(kind, "Secret", "secrets are made once, never applied");
        assert!(!doc.contains("PRIVATE KEY"), "{kind} holds no private key");
    }
}

#[test]
fn the_example_tenant_desires_exactly_the_committed_objects() {
    let v = fixtures::validated("clinic-a");
    let (identity, media, backup) = settings_parts();
    let d = desired(
        &v,
        &refs(KeyProvider::Local),
        Settings {
            identity: Some(&identity),
            media: &media,
            backup: &backup,
        },
    );
    every_object_is_the_tenants(&d, &v);
    assert_eq!(d.workloads.regions.len(), 2);
    assert!(d.workloads.backup.is_none(), "no spec.backup, no CronJob");
    golden("clinic-a", &d);
}

#[test]
fn a_tenant_with_every_part_desires_exactly_the_committed_objects() {
    let text = std::fs::read_to_string(dir().join("clinic-b.yaml")).expect("fixture");
    let tenant: VideoTenant = serde_yaml::from_str(&text).expect("the fixture parses");
    let v = validate(&tenant, "sanctum-system", &[KeyProvider::Aws]).expect("valid");
    let (identity, media, backup) = settings_parts();
    let d = desired(
        &v,
        &refs(KeyProvider::Aws),
        Settings {
            identity: Some(&identity),
            media: &media,
            backup: &backup,
        },
    );
    every_object_is_the_tenants(&d, &v);
    assert!(d.workloads.backup.is_some() && d.workloads.regions[0].hpa.is_some());
    golden("clinic-b", &d);
    // Without the chart's identity the operator binds nothing.
    let bare = desired(
        &v,
        &refs(KeyProvider::Aws),
        Settings {
            identity: None,
            media: &media,
            backup: &backup,
        },
    );
    assert!(bare.foundation.operator_binding.is_none());
}
