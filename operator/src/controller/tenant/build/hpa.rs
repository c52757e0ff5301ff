//! HorizontalPodAutoscaler of one region, when the region asks for autoscaling.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use sanctum_api::RegionSpec;

use super::{region_meta, region_object_name};
use crate::controller::tenant::validate::Validated;

/// Scales the region's Deployment on CPU between `min` and `max`; `None` without autoscaling.
pub fn build_hpa(v: &Validated, region: &RegionSpec) -> Option<HorizontalPodAutoscaler> {
    let scaling = region.autoscaling.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: region_meta(v, region),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: region_object_name(region),
            },
            min_replicas: Some(scaling.min),
            max_replicas: scaling.max,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(scaling.target_cpu),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    #[test]
    fn hpa_only_for_autoscaled_regions() {
        let v = fixtures::validated("clinic-a");
        assert!(build_hpa(&v, &v.spec.media.regions[0]).is_none());
        let hpa = build_hpa(&v, &v.spec.media.regions[1]).expect("hpa");
        let spec = hpa.spec.expect("spec");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 5));
        assert_eq!(spec.scale_target_ref.name, "media-eu-west");
        let metrics = spec.metrics.expect("metrics");
        let target = &metrics[0].resource.as_ref().expect("resource").target;
        assert_eq!(target.average_utilization, Some(70));
    }
}
