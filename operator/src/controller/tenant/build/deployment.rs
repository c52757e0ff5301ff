//! The media-node Deployment of one region: hardened, spread, and configured by the tenant.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    HTTPGetAction, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SecretVolumeSource,
    TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use sanctum_api::{KeyProvider, RegionSpec};

use super::AwsEnv;
use super::signing_key::PUBLIC_KEY_FILE;
use super::tenant_key::{LOCAL_KEY_FILE, LOCAL_KEY_SECRET};
use super::{
    MEDIA_SERVICE_ACCOUNT, MEDIA_UDP_PORT, METRICS_PORT, SIGNALING_PORT, TenantKeyRef, field_env,
    media_selector, media_selector_labels, region_meta, restricted_container_security,
    restricted_pod_security,
};
use crate::controller::tenant::validate::Validated;

/// Unprivileged uid/gid the media node runs as (the distroless `nonroot` user).
pub const MEDIA_UID: i64 = 65532;
/// Where the wrapped tenant data keys are mounted (one file per version).
pub const TENANT_KEY_DIR: &str = "/etc/sanctum/tenant-key";
/// Where the join-token public key is mounted.
pub const SIGNING_KEY_DIR: &str = "/etc/sanctum/join-token";
/// Where the signaling TLS certificate (`tls.crt`, `tls.key`) is mounted.
pub const TLS_DIR: &str = "/etc/sanctum/tls";
/// Where the `local` provider's key-encryption key of the tenant is mounted.
pub const LOCAL_KEY_DIR: &str = "/etc/sanctum/local-key";
/// Where the control API's certificates (`ca.crt`, `tls.crt`, `tls.key`) are mounted.
pub const CONTROL_TLS_DIR: &str = "/etc/sanctum/control-tls";

/// How media-node pods reach the cloud: operator settings, the same for every tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaNodes {
    /// Audit bucket the nodes write their session log to, as their own hash chains.
    pub audit_bucket: Option<String>,
    /// Where KMS and S3 are and who owns the buckets.
    pub aws: AwsEnv,
}

/// Builds the region's Deployment. Replicas are left to the HPA when the region autoscales.
pub fn build_deployment(
    v: &Validated,
    region: &RegionSpec,
    public_key: &ConfigMap,
    key: &TenantKeyRef,
    nodes: &MediaNodes,
) -> Deployment {
    let replicas = if region.autoscaling.is_some() {
        None
    } else {
        Some(region.replicas)
    };
    let mut pod_labels = super::common_labels(v);
    pod_labels.extend(media_selector_labels(v, region));
    Deployment {
        metadata: region_meta(v, region),
        spec: Some(DeploymentSpec {
            replicas,
            selector: media_selector(v, region),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(pod_spec(v, region, public_key, key, nodes)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_spec(
    v: &Validated,
    region: &RegionSpec,
    public_key: &ConfigMap,
    key: &TenantKeyRef,
    nodes: &MediaNodes,
) -> PodSpec {
    PodSpec {
        service_account_name: Some(MEDIA_SERVICE_ACCOUNT.into()),
        // The node never calls the Kubernetes API: a token in an internet-facing pod
        // would only serve whoever takes it over.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        node_selector: (!region.node_selector.is_empty()).then(|| region.node_selector.clone()),
        tolerations: (!region.tolerations.is_empty()).then(|| region.tolerations.clone()),
        security_context: Some(restricted_pod_security(MEDIA_UID)),
        topology_spread_constraints: Some(
            ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
                .into_iter()
                .map(|key| TopologySpreadConstraint {
                    max_skew: 1,
                    topology_key: key.into(),
                    when_unsatisfiable: "ScheduleAnyway".into(),
                    label_selector: Some(media_selector(v, region)),
                    ..Default::default()
                })
                .collect(),
        ),
        termination_grace_period_seconds: Some(60),
        containers: vec![container(v, region, key, nodes)],
        volumes: Some(volumes(v, public_key, key)),
        ..Default::default()
    }
}

fn volumes(v: &Validated, public_key: &ConfigMap, key: &TenantKeyRef) -> Vec<Volume> {
    let mut volumes = vec![
        Volume {
            name: "join-token-key".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: public_key.name_any(),
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tenant-key".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(key.secret.clone()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(v.spec.media.tls_secret_name.clone()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity("64Mi".into())),
            }),
            ..Default::default()
        },
        Volume {
            name: "control-tls".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(sanctum_api::control::NODE_TLS_SECRET.into()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if key.provider == KeyProvider::Local {
        volumes.push(Volume {
            name: "local-key".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(LOCAL_KEY_SECRET.into()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    volumes
}

fn container(
    v: &Validated,
    region: &RegionSpec,
    key: &TenantKeyRef,
    nodes: &MediaNodes,
) -> Container {
    let media = &v.spec.media;
    let env = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        ..Default::default()
    };
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("metrics".into()),
            scheme: Some("HTTP".into()),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    };
    let port = |name: &str, port: i32, protocol: &str| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some(protocol.into()),
        ..Default::default()
    };
    Container {
        name: "media-node".into(),
        image: Some(media.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec!["serve".into()]),
        env: Some(
            [
                field_env("POD_IP", "status.podIP"),
                // Names this node's session chain in the audit trail.
                field_env("POD_NAME", "metadata.name"),
                env("SANCTUM_TENANT", v.name.clone()),
                env("SANCTUM_TENANT_UID", v.owner.uid.clone()),
                env("SANCTUM_REGION", region.name.clone()),
                env(
                    "SANCTUM_MAX_SESSION_MINUTES",
                    media.max_session_minutes.to_string(),
                ),
                env(
                    "SANCTUM_IDLE_TIMEOUT_SECONDS",
                    media.idle_timeout_seconds.to_string(),
                ),
                env(
                    "SANCTUM_KEY_PROVIDER",
                    provider_name(key.provider).to_string(),
                ),
                env("SANCTUM_KMS_KEY_ARN", key.arn.clone()),
                env(
                    "SANCTUM_TENANT_KEY_FILE",
                    format!("{TENANT_KEY_DIR}/v{}", key.version),
                ),
                env(
                    "SANCTUM_JOIN_TOKEN_PUBLIC_KEY",
                    format!("{SIGNING_KEY_DIR}/{PUBLIC_KEY_FILE}"),
                ),
                env(
                    "SANCTUM_CONTROL_PUBLIC_KEY",
                    format!(
                        "{SIGNING_KEY_DIR}/{}",
                        sanctum_api::control::PUBLIC_KEY_FILE
                    ),
                ),
                env("SANCTUM_TENANT_KEY_VERSION", key.version.to_string()),
                env(
                    "SANCTUM_SIGNALING_ADDR",
                    format!("0.0.0.0:{SIGNALING_PORT}"),
                ),
                env(
                    "SANCTUM_MEDIA_UDP_ADDR",
                    format!("0.0.0.0:{MEDIA_UDP_PORT}"),
                ),
                env("SANCTUM_METRICS_ADDR", format!("0.0.0.0:{METRICS_PORT}")),
                env("SANCTUM_TLS_CERT_FILE", format!("{TLS_DIR}/tls.crt")),
                env("SANCTUM_TLS_KEY_FILE", format!("{TLS_DIR}/tls.key")),
                env(
                    "SANCTUM_CONTROL_ADDR",
                    format!("0.0.0.0:{}", sanctum_api::control::PORT),
                ),
                env("SANCTUM_CONTROL_TLS_DIR", CONTROL_TLS_DIR.to_string()),
            ]
            .into_iter()
            .chain(nodes.aws.env())
            .chain(
                nodes
                    .audit_bucket
                    .as_ref()
                    .map(|b| env("SANCTUM_AUDIT_BUCKET", b.clone())),
            )
            .chain(
                (!media.allowed_origins.is_empty())
                    .then(|| env("SANCTUM_CORS_ORIGINS", media.allowed_origins.join(","))),
            )
            .chain((key.provider == KeyProvider::Local).then(|| {
                env(
                    "SANCTUM_LOCAL_MASTER_KEY_FILE",
                    format!("{LOCAL_KEY_DIR}/{LOCAL_KEY_FILE}"),
                )
            }))
            .collect(),
        ),
        ports: Some(vec![
            port("https", SIGNALING_PORT, "TCP"),
            port("media", MEDIA_UDP_PORT, "UDP"),
            port("control", i32::from(sanctum_api::control::PORT), "TCP"),
            port("metrics", METRICS_PORT, "TCP"),
        ]),
        resources: Some(media.resources.clone().unwrap_or_else(default_resources)),
        readiness_probe: Some(probe("/readyz")),
        liveness_probe: Some(probe("/healthz")),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(
            [
                VolumeMount {
                    name: "join-token-key".into(),
                    mount_path: SIGNING_KEY_DIR.into(),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount {
                    name: "tenant-key".into(),
                    mount_path: TENANT_KEY_DIR.into(),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount {
                    name: "tls".into(),
                    mount_path: TLS_DIR.into(),
                    read_only: Some(true),
                    ..Default::default()
                },
                VolumeMount {
                    name: "tmp".into(),
                    mount_path: "/tmp".into(),
                    ..Default::default()
                },
                VolumeMount {
                    name: "control-tls".into(),
                    mount_path: CONTROL_TLS_DIR.into(),
                    read_only: Some(true),
                    ..Default::default()
                },
            ]
            .into_iter()
            .chain((key.provider == KeyProvider::Local).then(|| VolumeMount {
                name: "local-key".into(),
                mount_path: LOCAL_KEY_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            }))
            .collect(),
        ),
        ..Default::default()
    }
}

fn provider_name(provider: KeyProvider) -> &'static str {
    match provider {
        KeyProvider::Aws => "aws",
        KeyProvider::Local => "local",
    }
}

fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q("500m")),
            ("memory".into(), q("256Mi")),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), q("2")),
            ("memory".into(), q("1Gi")),
        ])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::build::signing_key::build_public_key_config_map;
    use crate::controller::tenant::fixtures;
    use sanctum_api::labels;

    fn deployment(region: usize) -> Deployment {
        let v = fixtures::validated("clinic-a");
        let cm = build_public_key_config_map(&v, "PEM", "CONTROL PEM");
        build_deployment(
            &v,
            &v.spec.media.regions[region],
            &cm,
            &fixtures::key(),
            &nodes(),
        )
    }

    fn nodes() -> MediaNodes {
        MediaNodes {
            audit_bucket: Some("sanctum-audit".into()),
            aws: AwsEnv {
                endpoint: Some("https://s3.example.internal".into()),
                region: "eu-west-1".into(),
                path_style: true,
                owners: Some(sanctum_cloud::BucketOwners::new("123456789012").expect("valid")),
            },
        }
    }

    fn env_of(d: &Deployment) -> BTreeMap<String, Option<String>> {
        let pod = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .expect("pod");
        pod.containers[0]
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect()
    }

    #[test]
    fn browsers_of_the_allowed_origins_may_call_signaling() {
        let mut v = fixtures::validated("clinic-a");
        let cm = build_public_key_config_map(&v, "PEM", "CONTROL PEM");
        let build = |v: &Validated| {
            env_of(&build_deployment(
                v,
                &v.spec.media.regions[0],
                &cm,
                &fixtures::key(),
                &nodes(),
            ))
        };
        assert!(
            !build(&v).contains_key("SANCTUM_CORS_ORIGINS"),
            "same origin only"
        );
        v.spec.media.allowed_origins = vec![
            "https://app.clinic.example".into(),
            "http://127.0.0.1:8080".into(),
        ];
        assert_eq!(
            build(&v)["SANCTUM_CORS_ORIGINS"].as_deref(),
            Some("https://app.clinic.example,http://127.0.0.1:8080")
        );
    }

    #[test]
    fn pods_carry_no_api_token() {
        // The node never calls the API; an automounted token would be a credential for
        // whoever compromises the internet-facing pod.
        let pod = deployment(0)
            .spec
            .expect("spec")
            .template
            .spec
            .expect("pod");
        assert_eq!(pod.automount_service_account_token, Some(false));
    }

    #[test]
    fn local_tenants_mount_their_key_encryption_key() {
        let d = deployment(0);
        let pod = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .expect("pod");
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "local-key")
            .expect("local key volume");
        assert_eq!(
            volume
                .secret
                .as_ref()
                .and_then(|s| s.secret_name.as_deref()),
            Some(LOCAL_KEY_SECRET)
        );
        let mount = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "local-key")
            .expect("mounted");
        assert_eq!(mount.read_only, Some(true));
        assert_eq!(
            env_of(&d)["SANCTUM_LOCAL_MASTER_KEY_FILE"].as_deref(),
            Some("/etc/sanctum/local-key/key")
        );
    }

    #[test]
    fn aws_tenants_mount_no_local_key_and_reach_the_configured_endpoint() {
        let v = fixtures::validated("clinic-a");
        let cm = build_public_key_config_map(&v, "PEM", "CONTROL PEM");
        let key = TenantKeyRef {
            provider: KeyProvider::Aws,
            arn: "arn:aws:kms:eu-west-1:111122223333:key/k".into(),
            ..fixtures::key()
        };
        let d = build_deployment(&v, &v.spec.media.regions[0], &cm, &key, &nodes());
        let pod = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .expect("pod");
        assert!(pod.volumes.iter().flatten().all(|v| v.name != "local-key"));
        let env = env_of(&d);
        assert!(!env.contains_key("SANCTUM_LOCAL_MASTER_KEY_FILE"));
        assert_eq!(env["AWS_REGION"].as_deref(), Some("eu-west-1"));
        assert_eq!(
            env["SANCTUM_AWS_ENDPOINT"].as_deref(),
            Some("https://s3.example.internal")
        );
        assert_eq!(env["SANCTUM_S3_PATH_STYLE"].as_deref(), Some("true"));
        assert_eq!(
            env["SANCTUM_AUDIT_BUCKET"].as_deref(),
            Some("sanctum-audit")
        );
        assert_eq!(
            env["SANCTUM_AWS_ACCOUNT_ID"].as_deref(),
            Some("123456789012"),
            "nodes check the owner of every bucket they write"
        );
        assert_eq!(
            env["SANCTUM_TENANT_UID"].as_deref(),
            Some(v.owner.uid.as_str()),
            "the KMS encryption context names the tenant's uid"
        );
        let on_aws = build_deployment(
            &v,
            &v.spec.media.regions[0],
            &cm,
            &key,
            &MediaNodes {
                aws: AwsEnv {
                    region: "us-east-1".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        assert!(
            !env_of(&on_aws).contains_key("SANCTUM_AWS_ENDPOINT"),
            "AWS needs none"
        );
    }

    #[test]
    fn regions_tolerate_the_taints_they_name() {
        let mut v = fixtures::validated("clinic-a");
        v.spec.media.regions[0].tolerations = vec![k8s_openapi::api::core::v1::Toleration {
            key: Some("dedicated".into()),
            value: Some("media".into()),
            effect: Some("NoSchedule".into()),
            operator: Some("Equal".into()),
            ..Default::default()
        }];
        let cm = build_public_key_config_map(&v, "PEM", "CONTROL PEM");
        let d = build_deployment(
            &v,
            &v.spec.media.regions[0],
            &cm,
            &fixtures::key(),
            &nodes(),
        );
        let pod = d.spec.expect("spec").template.spec.expect("pod");
        assert_eq!(
            pod.tolerations.expect("tolerations")[0].key.as_deref(),
            Some("dedicated")
        );
        let other = build_deployment(
            &v,
            &v.spec.media.regions[1],
            &cm,
            &fixtures::key(),
            &nodes(),
        );
        assert!(
            other
                .spec
                .expect("spec")
                .template
                .spec
                .expect("pod")
                .tolerations
                .is_none()
        );
    }

    #[test]
    fn pods_are_hardened_as_restricted_pod_security_requires() {
        let d = deployment(0);
        let pod = d.spec.expect("spec").template.spec.expect("pod");
        let psc = pod.security_context.expect("pod security context");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.run_as_user, Some(MEDIA_UID));
        assert_eq!(
            psc.seccomp_profile.expect("seccomp").type_,
            "RuntimeDefault"
        );
        for c in &pod.containers {
            let sc = c
                .security_context
                .as_ref()
                .expect("container security context");
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.privileged, Some(false));
            assert_eq!(
                sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
                Some(vec!["ALL".to_string()])
            );
            assert!(
                sc.capabilities
                    .as_ref()
                    .and_then(|c| c.add.clone())
                    .is_none()
            );
        }
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some(MEDIA_SERVICE_ACCOUNT)
        );
        assert!(pod.host_network.is_none() && pod.host_pid.is_none() && pod.host_ipc.is_none());
    }

    #[test]
    fn pods_spread_and_carry_tenant_settings() {
        let d = deployment(0);
        assert_eq!(d.metadata.name.as_deref(), Some("media-us-east"));
        let spec = d.spec.expect("spec");
        assert_eq!(spec.replicas, Some(2));
        let selector = spec.selector.match_labels.expect("labels");
        assert_eq!(selector[labels::REGION], "us-east");
        let pod = spec.template.spec.expect("pod");
        let spread = pod.topology_spread_constraints.expect("spread");
        assert_eq!(spread.len(), 2);
        assert!(spread.iter().all(|s| {
            s.label_selector
                .as_ref()
                .and_then(|l| l.match_labels.clone())
                == Some(selector.clone())
        }));
        let env = pod.containers[0].env.clone().expect("env");
        let get = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(get("SANCTUM_TENANT").as_deref(), Some("clinic-a"));
        assert_eq!(get("SANCTUM_MAX_SESSION_MINUTES").as_deref(), Some("240"));
        assert_eq!(get("SANCTUM_IDLE_TIMEOUT_SECONDS").as_deref(), Some("300"));
        let volumes = pod.volumes.expect("volumes");
        assert_eq!(
            volumes[0].config_map.as_ref().expect("cm").name,
            "join-token-public-key"
        );
        let template_labels = spec
            .template
            .metadata
            .expect("meta")
            .labels
            .expect("labels");
        for (k, val) in &selector {
            assert_eq!(
                template_labels.get(k),
                Some(val),
                "template matches selector"
            );
        }
    }

    #[test]
    fn autoscaled_regions_leave_replicas_to_the_hpa() {
        let d = deployment(1);
        assert_eq!(d.spec.expect("spec").replicas, None);
    }
}
