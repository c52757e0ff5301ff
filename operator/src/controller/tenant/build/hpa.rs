//! HorizontalPodAutoscaler of one region, when the region asks for autoscaling.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
    MetricIdentifier, MetricSpec, MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use sanctum_api::RegionSpec;

use super::{region_meta, region_object_name};
use crate::controller::tenant::validate::Validated;

/// The media nodes' live-session gauge, as a metrics adapter serves it per pod.
pub const SESSIONS_METRIC: &str = "sanctum_media_peers";

/// Scales the region's Deployment on CPU (and, with `targetSessions`, on live sessions per
/// node) between `min` and `max`; `None` without autoscaling.
pub fn build_hpa(v: &Validated, region: &RegionSpec) -> Option<HorizontalPodAutoscaler> {
    let scaling = region.autoscaling.as_ref()?;
    let mut metrics = vec![MetricSpec {
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
    }];
    if let Some(sessions) = scaling.target_sessions {
        metrics.push(MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: SESSIONS_METRIC.into(),
                    selector: None,
                },
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(Quantity(sessions.to_string())),
                    ..Default::default()
                },
            }),
            ..Default::default()
        });
    }
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
            metrics: Some(metrics),
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
        assert_eq!(metrics.len(), 1, "CPU only unless sessions are asked for");
    }

    #[test]
    fn a_region_with_a_session_target_also_scales_on_live_sessions_per_node() {
        let mut v = fixtures::validated("clinic-a");
        let scaling = v.spec.media.regions[1]
            .autoscaling
            .as_mut()
            .expect("autoscaled");
        scaling.target_sessions = Some(40);
        let spec = build_hpa(&v, &v.spec.media.regions[1])
            .and_then(|h| h.spec)
            .expect("hpa");
        let metrics = spec.metrics.expect("metrics");
        assert_eq!(
            metrics.len(),
            2,
            "CPU and sessions; the HPA takes the larger"
        );
        let pods = metrics[1].pods.as_ref().expect("a Pods metric");
        assert_eq!(pods.metric.name, SESSIONS_METRIC);
        assert_eq!(pods.target.type_, "AverageValue");
        assert_eq!(pods.target.average_value, Some(Quantity("40".into())));
    }
}
