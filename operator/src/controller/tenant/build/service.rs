//! The Service of one region: HTTPS signaling and the multiplexed media UDP port.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sanctum_api::RegionSpec;

use super::{MEDIA_UDP_PORT, media_selector_labels, region_meta};
use crate::controller::tenant::validate::Validated;

/// Builds the region's ClusterIP Service; exposure to clients is the ingress's job.
pub fn build_service(v: &Validated, region: &RegionSpec) -> Service {
    let port = |name: &str, port: i32, target: &str, protocol: &str| ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(target.into())),
        protocol: Some(protocol.into()),
        ..Default::default()
    };
    Service {
        metadata: region_meta(v, region),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(media_selector_labels(v, region)),
            ports: Some(vec![
                port("https", 443, "https", "TCP"),
                port("media", MEDIA_UDP_PORT, "media", "UDP"),
                // Only for the EndpointSlices the operator finds its nodes' control port in;
                // the NetworkPolicy admits it from the operator's namespace alone.
                port(
                    "control",
                    i32::from(sanctum_api::control::PORT),
                    "control",
                    "TCP",
                ),
            ]),
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
    fn service_selects_only_its_region() {
        let v = fixtures::validated("clinic-a");
        let s = build_service(&v, &v.spec.media.regions[1]);
        let spec = s.spec.expect("spec");
        assert_eq!(
            spec.selector.expect("selector")["sanctum.dev/region"],
            "eu-west"
        );
        let ports = spec.ports.expect("ports");
        assert_eq!(ports[0].port, 443);
        assert_eq!(
            ports[0].target_port,
            Some(IntOrString::String("https".into()))
        );
        assert_eq!(ports[1].protocol.as_deref(), Some("UDP"));
        assert_eq!(
            ports[0].target_port,
            Some(IntOrString::String("https".into())),
            "TLS terminates in the pod"
        );
    }
}
