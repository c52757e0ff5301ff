//! Pure builders: from a validated tenant to the typed objects it should own.
//!
//! This is where the tenant's security lives (security contexts, network rules, RBAC),
//! so every builder is a plain function, tested without a cluster.

mod aws_env;
pub mod backup;
pub mod control_tls;
mod deployment;
pub mod desired;
pub mod expose;
mod hpa;
pub mod irsa;
mod namespace;
mod network_policy;
mod pdb;
mod quota;
mod rbac;
pub mod restore_drill;
mod service;
pub mod signing_key;
pub mod tenant_key;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, EnvVar, EnvVarSource, LimitRange, Namespace, ObjectFieldSelector,
    PodSecurityContext, ResourceQuota, SeccompProfile, SecurityContext, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use sanctum_api::{KeyProvider, RegionSpec, labels};

pub use aws_env::AwsEnv;
pub use deployment::{MediaNodes, build_deployment};
pub use desired::{Desired, Refs, Settings, Workloads, desired, workloads};
pub use hpa::build_hpa;
pub use namespace::{build_namespace, is_owned_by};
pub use network_policy::build_network_policies;
pub use pdb::build_pdb;
pub use quota::{build_limit_range, build_resource_quota};
pub use rbac::{OPERATOR_BINDING, OperatorIdentity, build_operator_binding, build_service_account};
pub use service::{build_peers_service, build_service, peers_dns_name};

use super::validate::Validated;

/// Component label value of media nodes.
pub const MEDIA_COMPONENT: &str = "media-node";
/// Service account the media nodes run as.
pub const MEDIA_SERVICE_ACCOUNT: &str = "media-node";
/// HTTPS signaling port (WHIP/WHEP) inside the pod.
pub const SIGNALING_PORT: i32 = 8443;
/// Health and metrics port.
pub const METRICS_PORT: i32 = 9090;

/// Objects that make the namespace safe before any workload runs in it.
pub struct Foundation {
    /// The tenant namespace.
    pub namespace: Namespace,
    /// Default deny plus the allowances of `spec.network`.
    pub network_policies: Vec<NetworkPolicy>,
    /// Bounds on what the namespace may consume.
    pub quota: ResourceQuota,
    /// Default and maximum container resources.
    pub limit_range: LimitRange,
    /// Identity of the media nodes (no API rights, no token).
    pub service_account: ServiceAccount,
    /// The operator's binding of its tenant-Secrets role, when it runs from the chart.
    pub operator_binding: Option<RoleBinding>,
}

/// The media nodes of one region.
pub struct RegionObjects {
    /// Region name.
    pub region: String,
    /// The media-node Deployment.
    pub deployment: Deployment,
    /// Signaling and media Service.
    pub service: Service,
    /// Headless Service through which the region's nodes find each other.
    pub peers: Service,
    /// Keeps all but one node up during voluntary disruptions.
    pub pdb: PodDisruptionBudget,
    /// Present when the region autoscales.
    pub hpa: Option<HorizontalPodAutoscaler>,
    /// The ICE candidates its nodes offer; `None` while waiting for the cluster to assign
    /// the exposure Service's ports or address (the Deployment then has no replicas).
    pub advertise: Option<expose::Advertise>,
}

/// Builds the namespace-level objects; `identity` is the operator's own, when it binds
/// itself the tenant-Secrets role.
pub fn foundation(
    v: &Validated,
    identity: Option<&OperatorIdentity>,
    media: &MediaNodes,
) -> Foundation {
    Foundation {
        namespace: build_namespace(v),
        network_policies: build_network_policies(v),
        quota: build_resource_quota(v),
        limit_range: build_limit_range(v),
        service_account: build_service_account(v, media.role_arn.as_ref()),
        operator_binding: identity.map(|me| build_operator_binding(v, me)),
    }
}

/// Where the tenant's wrapped data key is and how media nodes unwrap it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantKeyRef {
    /// Key provider.
    pub provider: KeyProvider,
    /// KMS key ARN (`local` for the local provider).
    pub arn: String,
    /// Current data-key version.
    pub version: i32,
    /// Secret in the tenant namespace holding the wrapped versions.
    pub secret: String,
}

/// Builds the per-region media objects; `public_key` is the ConfigMap holding the join-token
/// key, `nodes` how media nodes reach the cloud.
pub fn regions(
    v: &Validated,
    public_key: &ConfigMap,
    key: &TenantKeyRef,
    nodes: &MediaNodes,
    exposed: &BTreeMap<String, expose::Exposed>,
) -> Vec<RegionObjects> {
    v.spec
        .media
        .regions
        .iter()
        .map(|region| {
            let advertise = expose::advertise(v, region, exposed);
            RegionObjects {
                region: region.name.clone(),
                deployment: build_deployment(v, region, public_key, key, nodes, advertise.as_ref()),
                service: build_service(v, region),
                peers: build_peers_service(v, region),
                pdb: build_pdb(v, region),
                hpa: build_hpa(v, region),
                advertise,
            }
        })
        .collect()
}

/// Name of a region's Deployment, Service, PDB and HPA.
pub fn region_object_name(region: &RegionSpec) -> String {
    format!("media-{}", region.name)
}

/// Pod security of every tenant workload (Pod Security `restricted`, enforced on the
/// namespace): non-root as `uid`, seccomp `RuntimeDefault`.
pub fn restricted_pod_security(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

/// Container security of every tenant workload: no privilege or escalation, read-only
/// root filesystem, every capability dropped.
pub fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..Default::default()
    }
}

/// An environment variable the kubelet fills from the pod's own fields (Downward API).
pub fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

/// Labels every object of the tenant carries.
pub fn common_labels(v: &Validated) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_string(), "sanctum".to_string()),
        (labels::INSTANCE.to_string(), v.name.clone()),
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
        (labels::TENANT.to_string(), v.name.clone()),
    ])
}

/// Labels selecting the media nodes of one region (stable: part of Deployment selectors).
pub fn media_selector_labels(v: &Validated, region: &RegionSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::TENANT.to_string(), v.name.clone()),
        (labels::COMPONENT.to_string(), MEDIA_COMPONENT.to_string()),
        (labels::REGION.to_string(), region.name.clone()),
    ])
}

/// Selector of one region's media nodes.
pub fn media_selector(v: &Validated, region: &RegionSpec) -> LabelSelector {
    LabelSelector {
        match_labels: Some(media_selector_labels(v, region)),
        ..Default::default()
    }
}

/// Selector of all media nodes of the tenant.
pub fn all_media_selector(v: &Validated) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([
            (labels::TENANT.to_string(), v.name.clone()),
            (labels::COMPONENT.to_string(), MEDIA_COMPONENT.to_string()),
        ])),
        ..Default::default()
    }
}

/// Metadata of an object in the tenant namespace, owned by the tenant.
pub fn namespaced_meta(v: &Validated, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(v.namespace.clone()),
        labels: Some(common_labels(v)),
        owner_references: Some(vec![v.owner.clone()]),
        ..Default::default()
    }
}

/// Like [`namespaced_meta`], for one region's objects.
pub fn region_meta(v: &Validated, region: &RegionSpec) -> ObjectMeta {
    let mut meta = namespaced_meta(v, &region_object_name(region));
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.extend(media_selector_labels(v, region));
    meta
}

/// Label selector string matching every object of the tenant, for pruning.
pub fn tenant_selector(v: &Validated) -> String {
    format!(
        "{}={},{}={}",
        labels::MANAGED_BY,
        labels::MANAGED_BY_VALUE,
        labels::TENANT,
        v.name
    )
}

/// Label selector string matching the tenant's per-region media objects, for pruning.
pub fn media_objects_selector(v: &Validated) -> String {
    format!(
        "{},{}={}",
        tenant_selector(v),
        labels::COMPONENT,
        MEDIA_COMPONENT
    )
}
