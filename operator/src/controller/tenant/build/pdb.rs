//! PodDisruptionBudget of one region: drains take media nodes down one at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sanctum_api::RegionSpec;

use super::{media_selector, region_meta};
use crate::controller::tenant::validate::Validated;

/// At most one media node of the region is voluntarily evicted at a time.
pub fn build_pdb(v: &Validated, region: &RegionSpec) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: region_meta(v, region),
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(media_selector(v, region)),
            max_unavailable: Some(IntOrString::Int(1)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    #[test]
    fn pdb_allows_one_disruption() {
        let v = fixtures::validated("clinic-a");
        let pdb = build_pdb(&v, &v.spec.media.regions[0]);
        let spec = pdb.spec.expect("spec");
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert!(spec.min_available.is_none());
    }
}
