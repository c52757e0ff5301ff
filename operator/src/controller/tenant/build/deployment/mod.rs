//! The media-node Deployment of one region: hardened, spread, and configured by the tenant.

use sanctum_api::env;
use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, HTTPGetAction, KeyToPath, PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SecretVolumeSource, TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use sanctum_api::{ExposeMode, KeyProvider, RegionSpec};

use super::AwsEnv;
use super::expose::{Advertise, HOST_IP_ENV, advertise_env};
use super::signing_key::PUBLIC_KEY_FILE;
use super::tenant_key::{LOCAL_KEY_FILE, LOCAL_KEY_SECRET};
use super::{
    MEDIA_SERVICE_ACCOUNT, METRICS_PORT, SIGNALING_PORT, TenantKeyRef, field_env, media_selector,
    media_selector_labels, region_meta, restricted_container_security, restricted_pod_security,
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
/// Where the secret shared with the tenant's TURN service is mounted (file `secret`).
pub const TURN_DIR: &str = "/etc/sanctum/turn";

/// How media-node pods reach the cloud: operator settings, the same for every tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaNodes {
    /// IAM role of the nodes (IRSA), `{tenant}` standing for the tenant's name.
    pub role_arn: Option<super::irsa::RoleTemplate>,
    /// Audit bucket the nodes write their session log to, as their own hash chains.
    pub audit_bucket: Option<String>,
    /// Where KMS and S3 are and who owns the buckets.
    pub aws: AwsEnv,
}

/// Builds the region's Deployment. Replicas are left to the HPA when the region autoscales;
/// a region whose candidate addresses are not known yet (`advertise` is `None`) has none.
pub fn build_deployment(
    v: &Validated,
    region: &RegionSpec,
    public_key: &ConfigMap,
    key: &TenantKeyRef,
    nodes: &MediaNodes,
    advertise: Option<&Advertise>,
) -> Deployment {
    let replicas = match advertise {
        None => Some(0),
        Some(_) if region.autoscaling.is_some() => None,
        Some(_) => Some(region.replicas),
    };
    let advertise = advertise.cloned().unwrap_or(Advertise::PodIp);
    let mut pod_labels = super::common_labels(v);
    pod_labels.extend(media_selector_labels(v, region));
    Deployment {
        metadata: region_meta(v, region),
        spec: Some(DeploymentSpec {
            replicas,
            selector: media_selector(v, region),
            strategy: Some(rollout(region)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(pod_spec(v, region, public_key, key, nodes, &advertise)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One node at a time, a new one up before an old one drains; with one media node per
/// Kubernetes node (`NodePort`) a surge node may have nowhere to go, so an old one drains
/// first.
fn rollout(region: &RegionSpec) -> DeploymentStrategy {
    let (surge, unavailable) = if region.expose.mode == ExposeMode::NodePort {
        (0, 1)
    } else {
        (1, 0)
    };
    DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(surge)),
            max_unavailable: Some(IntOrString::Int(unavailable)),
        }),
    }
}

fn pod_spec(
    v: &Validated,
    region: &RegionSpec,
    public_key: &ConfigMap,
    key: &TenantKeyRef,
    nodes: &MediaNodes,
    advertise: &Advertise,
) -> PodSpec {
    // A node port leads to the media nodes on that Kubernetes node only
    // (`externalTrafficPolicy: Local`): with one there, address and port name one node.
    let one_per_host = (region.expose.mode == ExposeMode::NodePort).then(|| Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(media_selector(v, region)),
                topology_key: "kubernetes.io/hostname".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    PodSpec {
        affinity: one_per_host,
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
        containers: vec![container(v, region, key, nodes, advertise)],
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
    if let Some(turn) = &v.spec.media.turn {
        volumes.push(Volume {
            name: "turn".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(turn.secret_name.clone()),
                items: Some(vec![KeyToPath {
                    key: turn.secret_key.clone(),
                    path: "secret".into(),
                    ..Default::default()
                }]),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
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
    advertise: &Advertise,
) -> Container {
    let media = &v.spec.media;
    let ports = &media.ports;
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
                field_env(env::POD_IP, "status.podIP"),
                // Names this node's session chain in the audit trail.
                field_env(env::POD_NAME, "metadata.name"),
                env(env::TENANT, v.name.clone()),
                env(env::TENANT_UID, v.owner.uid.clone()),
                env(env::REGION, region.name.clone()),
                // The region's nodes, to place each room on one of them.
                env(env::PEERS_DNS, super::peers_dns_name(v, region)),
                env(
                    env::MAX_SESSION_MINUTES,
                    media.max_session_minutes.to_string(),
                ),
                env(
                    env::IDLE_TIMEOUT_SECONDS,
                    media.idle_timeout_seconds.to_string(),
                ),
                env(env::KEY_PROVIDER, key.provider.as_str().to_string()),
                env(env::KMS_KEY_ARN, key.arn.clone()),
                // The whole Secret, not one version: a rotation adds a file the running
                // nodes pick up, so the pod template (and every call) stays as it is.
                env(env::TENANT_KEY_DIR, TENANT_KEY_DIR.to_string()),
                env(
                    env::JOIN_TOKEN_PUBLIC_KEY,
                    format!("{SIGNING_KEY_DIR}/{PUBLIC_KEY_FILE}"),
                ),
                env(
                    env::CONTROL_PUBLIC_KEY,
                    format!(
                        "{SIGNING_KEY_DIR}/{}",
                        sanctum_api::control::PUBLIC_KEY_FILE
                    ),
                ),
                env(env::SIGNALING_ADDR, format!("0.0.0.0:{SIGNALING_PORT}")),
                env(env::MEDIA_UDP_ADDR, format!("0.0.0.0:{}", ports.udp)),
                env(env::METRICS_ADDR, format!("0.0.0.0:{METRICS_PORT}")),
                env(env::TLS_CERT_FILE, format!("{TLS_DIR}/tls.crt")),
                env(env::TLS_KEY_FILE, format!("{TLS_DIR}/tls.key")),
                env(
                    env::CONTROL_ADDR,
                    format!("0.0.0.0:{}", sanctum_api::control::PORT),
                ),
                env(env::CONTROL_TLS_DIR, CONTROL_TLS_DIR.to_string()),
            ]
            .into_iter()
            // Before the advertised addresses, which name it as `$(HOST_IP)`.
            .chain(
                advertise
                    .uses_host_ip()
                    .then(|| field_env(HOST_IP_ENV, "status.hostIP")),
            )
            .chain(
                ports
                    .ice_tcp
                    .then(|| env(env::MEDIA_TCP_ADDR, format!("0.0.0.0:{}", ports.tcp))),
            )
            .chain(
                advertise_env(advertise)
                    .into_iter()
                    .filter(|(name, _)| ports.ice_tcp || *name != env::MEDIA_TCP_ADVERTISE_ADDR)
                    .map(|(name, value)| env(name, value)),
            )
            .chain(media.turn.iter().flat_map(|turn| {
                [
                    env(env::TURN_URLS, turn.urls.join(",")),
                    env(env::TURN_SECRET_FILE, format!("{TURN_DIR}/secret")),
                ]
            }))
            .chain(nodes.aws.env())
            .chain(
                nodes
                    .audit_bucket
                    .as_ref()
                    .map(|b| env(env::AUDIT_BUCKET, b.clone())),
            )
            .chain(
                (!media.allowed_origins.is_empty())
                    .then(|| env(env::CORS_ORIGINS, media.allowed_origins.join(","))),
            )
            .chain((key.provider == KeyProvider::Local).then(|| {
                env(
                    env::LOCAL_MASTER_KEY_FILE,
                    format!("{LOCAL_KEY_DIR}/{LOCAL_KEY_FILE}"),
                )
            }))
            .collect(),
        ),
        ports: Some(
            [
                Some(port("https", SIGNALING_PORT, "TCP")),
                Some(port("media", ports.udp, "UDP")),
                ports.ice_tcp.then(|| port("media-tcp", ports.tcp, "TCP")),
                Some(port(
                    "control",
                    i32::from(sanctum_api::control::PORT),
                    "TCP",
                )),
                Some(port("metrics", METRICS_PORT, "TCP")),
            ]
            .into_iter()
            .flatten()
            .collect(),
        ),
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
            .chain(media.turn.as_ref().map(|_| VolumeMount {
                name: "turn".into(),
                mount_path: TURN_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            }))
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
mod tests;
