//! ResourceQuota and LimitRange: a tenant cannot starve the cluster or its neighbours.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use sanctum_api::ExposeMode;

use super::namespaced_meta;
use crate::controller::tenant::validate::Validated;

/// Pods beyond the media nodes: backup jobs and rollout surge headroom.
const EXTRA_PODS: i32 = 10;

/// Caps pods at twice the most media nodes the regions can reach (rolling updates surge),
/// plus headroom for jobs; forbids volumes, and allows exactly the node ports and load
/// balancers of the operator's own exposure Services (none unless a region asks for one),
/// so nobody else in the namespace can open a port to the outside.
pub fn build_resource_quota(v: &Validated) -> ResourceQuota {
    let max_nodes: i32 = v
        .spec
        .media
        .regions
        .iter()
        .map(|r| r.autoscaling.as_ref().map_or(r.replicas, |a| a.max))
        .sum();
    let hard = BTreeMap::from([
        (
            "pods".to_string(),
            Quantity((max_nodes * 2 + EXTRA_PODS).to_string()),
        ),
        ("persistentvolumeclaims".to_string(), Quantity("0".into())),
        (
            "services.nodeports".to_string(),
            Quantity(node_ports(v).to_string()),
        ),
        (
            "services.loadbalancers".to_string(),
            Quantity(
                v.spec
                    .media
                    .regions
                    .iter()
                    .filter(|r| r.expose.mode == ExposeMode::LoadBalancer)
                    .count()
                    .to_string(),
            ),
        ),
    ]);
    ResourceQuota {
        metadata: namespaced_meta(v, "tenant-quota"),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Node ports the exposure Services take: one per media port of each exposed region (a
/// LoadBalancer Service allocates them too).
fn node_ports(v: &Validated) -> usize {
    let per_region = if v.spec.media.ports.ice_tcp { 2 } else { 1 };
    v.spec
        .media
        .regions
        .iter()
        .filter(|r| r.expose.mode != ExposeMode::PodIP)
        .count()
        * per_region
}

/// Gives containers without resources sane defaults, and bounds any one container.
pub fn build_limit_range(v: &Validated) -> LimitRange {
    let q = |s: &str| Quantity(s.to_string());
    LimitRange {
        metadata: namespaced_meta(v, "tenant-limits"),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default_request: Some(BTreeMap::from([
                    ("cpu".into(), q("100m")),
                    ("memory".into(), q("128Mi")),
                ])),
                default: Some(BTreeMap::from([
                    ("cpu".into(), q("1")),
                    ("memory".into(), q("512Mi")),
                ])),
                max: Some(BTreeMap::from([
                    ("cpu".into(), q("8")),
                    ("memory".into(), q("16Gi")),
                ])),
                ..Default::default()
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    #[test]
    fn quota_scales_with_the_largest_region_sizes() {
        // fixture: one region of 2 replicas, one autoscaling to at most 5
        let quota = build_resource_quota(&fixtures::validated("clinic-a"));
        let hard = quota.spec.expect("spec").hard.expect("hard");
        assert_eq!(
            hard["pods"],
            Quantity(((2 + 5) * 2 + EXTRA_PODS).to_string())
        );
        assert_eq!(hard["persistentvolumeclaims"], Quantity("0".into()));
        assert_eq!(hard["services.nodeports"], Quantity("0".into()));
        assert_eq!(hard["services.loadbalancers"], Quantity("0".into()));
    }

    #[test]
    fn exposed_regions_get_exactly_their_ports() {
        let mut v = fixtures::validated("clinic-a");
        v.spec.media.regions[0].expose.mode = ExposeMode::NodePort;
        v.spec.media.regions[1].expose.mode = ExposeMode::LoadBalancer;
        let hard = build_resource_quota(&v)
            .spec
            .and_then(|s| s.hard)
            .expect("hard");
        assert_eq!(hard["services.nodeports"], Quantity("4".into()));
        assert_eq!(hard["services.loadbalancers"], Quantity("1".into()));
        v.spec.media.ports.ice_tcp = false;
        let hard = build_resource_quota(&v)
            .spec
            .and_then(|s| s.hard)
            .expect("hard");
        assert_eq!(hard["services.nodeports"], Quantity("2".into()));
    }

    #[test]
    fn limit_range_defaults_stay_below_the_maximum() {
        let lr = build_limit_range(&fixtures::validated("clinic-a"));
        let item = &lr.spec.expect("spec").limits[0];
        assert_eq!(item.type_, "Container");
        assert!(
            item.default
                .as_ref()
                .expect("default")
                .contains_key("memory")
        );
        assert!(item.max.as_ref().expect("max").contains_key("cpu"));
    }
}
