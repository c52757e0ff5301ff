//! The Services of one region: the balanced one (HTTPS signaling, the multiplexed media
//! UDP port, the control port), and a headless one through which the region's media nodes
//! find each other to place rooms.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sanctum_api::RegionSpec;

use super::{SIGNALING_PORT, media_selector_labels, region_meta};
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
    let media = &v.spec.media.ports;
    Service {
        metadata: region_meta(v, region),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(media_selector_labels(v, region)),
            ports: Some(vec![
                port("https", 443, "https", "TCP"),
                port("media", media.udp, "media", "UDP"),
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

/// Name of a region's headless Service.
pub fn peers_service_name(region: &RegionSpec) -> String {
    format!("{}-peers", super::region_object_name(region))
}

/// The DNS name a region's media nodes resolve to find each other.
pub fn peers_dns_name(v: &Validated, region: &RegionSpec) -> String {
    format!("{}.{}.svc", peers_service_name(region), v.namespace)
}

/// Builds the region's headless Service: one A record per media node, ready or not (a
/// draining node still hosts its rooms), on the signaling port.
pub fn build_peers_service(v: &Validated, region: &RegionSpec) -> Service {
    let mut metadata = region_meta(v, region);
    metadata.name = Some(peers_service_name(region));
    Service {
        metadata,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(media_selector_labels(v, region)),
            ports: Some(vec![ServicePort {
                name: Some("https".into()),
                port: SIGNALING_PORT,
                target_port: Some(IntOrString::String("https".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
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

    #[test]
    fn the_peers_service_lists_every_node_of_the_region_on_signaling() {
        let v = fixtures::validated("clinic-a");
        let region = &v.spec.media.regions[0];
        let s = build_peers_service(&v, region);
        assert_eq!(s.metadata.name.as_deref(), Some("media-us-east-peers"));
        let spec = s.spec.expect("spec");
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"), "headless");
        assert_eq!(
            spec.publish_not_ready_addresses,
            Some(true),
            "draining nodes too"
        );
        assert_eq!(
            spec.selector.expect("selector")["sanctum.dev/region"],
            "us-east"
        );
        let ports = spec.ports.expect("ports");
        assert_eq!(
            (ports.len(), ports[0].port),
            (1, SIGNALING_PORT),
            "signaling only"
        );
        assert_eq!(
            peers_dns_name(&v, region),
            "media-us-east-peers.vt-clinic-a.svc"
        );
    }
}
