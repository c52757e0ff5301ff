//! How clients outside the cluster reach a region's media ports
//! (`spec.media.regions[].expose`), and the ICE candidate addresses its nodes offer.
//!
//! `PodIP` needs no object. `NodePort` and `LoadBalancer` regions get a Service of that
//! type with `externalTrafficPolicy: Local` (client addresses stay visible to the
//! NetworkPolicy, and a node port only leads to media nodes on that Kubernetes node). The
//! Service is applied before the Deployment is built, since what the cluster assigns to
//! it (node ports, the balancer's address) is what the nodes must offer; until then the
//! region runs no media node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sanctum_api::{ExposeMode, RegionSpec, env};

use super::{media_selector_labels, region_meta, region_object_name};
use crate::controller::tenant::validate::Validated;

/// Name of a region's exposure Service.
pub fn exposure_service_name(region: &RegionSpec) -> String {
    format!("{}-media", region_object_name(region))
}

/// The exposure Services of every `NodePort` or `LoadBalancer` region.
pub fn build_exposure(v: &Validated) -> Vec<Service> {
    v.spec
        .media
        .regions
        .iter()
        .filter_map(|region| build_exposure_service(v, region))
        .collect()
}

/// The region's exposure Service, when its mode needs one.
pub fn build_exposure_service(v: &Validated, region: &RegionSpec) -> Option<Service> {
    let expose = &region.expose;
    let type_ = match expose.mode {
        ExposeMode::PodIP => return None,
        ExposeMode::NodePort => "NodePort",
        ExposeMode::LoadBalancer => "LoadBalancer",
    };
    let ports = &v.spec.media.ports;
    let node_port = |pick: fn(&sanctum_api::NodePorts) -> i32| expose.node_ports.as_ref().map(pick);
    let mut service_ports = vec![ServicePort {
        name: Some("media".into()),
        port: ports.udp,
        target_port: Some(IntOrString::String("media".into())),
        protocol: Some("UDP".into()),
        node_port: node_port(|p| p.udp),
        ..Default::default()
    }];
    if ports.ice_tcp {
        service_ports.push(ServicePort {
            name: Some("media-tcp".into()),
            port: ports.tcp,
            target_port: Some(IntOrString::String("media-tcp".into())),
            protocol: Some("TCP".into()),
            node_port: node_port(|p| p.tcp),
            ..Default::default()
        });
    }
    let mut metadata = region_meta(v, region);
    metadata.name = Some(exposure_service_name(region));
    metadata.annotations = expose.annotations.clone();
    Some(Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            external_traffic_policy: Some("Local".into()),
            selector: Some(media_selector_labels(v, region)),
            ports: Some(service_ports),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// What the cluster assigned to a region's exposure Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exposed {
    /// The balancer's IP address (`LoadBalancer`), once assigned.
    pub address: Option<String>,
    /// Node port of UDP media (`NodePort`).
    pub udp_node_port: Option<i32>,
    /// Node port of ICE-TCP (`NodePort`).
    pub tcp_node_port: Option<i32>,
}

/// The node ports the cluster gave a Service.
pub fn node_ports(service: &Service) -> (Option<i32>, Option<i32>) {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_ref());
    let find = |name: &str| {
        ports
            .into_iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| p.node_port)
    };
    (find("media"), find("media-tcp"))
}

/// The balancer's address as the Service status gives it: an IP, or a DNS name (AWS)
/// the caller resolves.
pub fn balancer_ingress(service: &Service) -> Option<BalancerIngress> {
    let ingress = service
        .status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?;
    match (&ingress.ip, &ingress.hostname) {
        (Some(ip), _) => Some(BalancerIngress::Ip(ip.clone())),
        (None, Some(host)) => Some(BalancerIngress::Hostname(host.clone())),
        (None, None) => None,
    }
}

/// A balancer's published address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BalancerIngress {
    /// An IP address.
    Ip(String),
    /// A DNS name to resolve.
    Hostname(String),
}

/// The ICE candidate addresses a region's nodes offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Advertise {
    /// The pod IP with the media ports (the node's default).
    PodIp,
    /// These `address:port` values for UDP and TCP; `$(HOST_IP)` is the Kubernetes
    /// node's address, filled in by the kubelet from the environment.
    Addresses {
        /// The UDP candidate.
        udp: String,
        /// The ICE-TCP candidate.
        tcp: String,
    },
}

impl Advertise {
    /// Whether the addresses name the Kubernetes node's (`$(HOST_IP)`).
    pub fn uses_host_ip(&self) -> bool {
        matches!(self, Advertise::Addresses { udp, .. } if udp.contains(&format!("$({HOST_IP_ENV})")))
    }
}

/// Environment variable holding the Kubernetes node's address, for `$(HOST_IP)`.
pub const HOST_IP_ENV: &str = "HOST_IP";

/// What a region's nodes offer; `None` while the cluster has not assigned what they need
/// (the region then runs no media node).
pub fn advertise(
    v: &Validated,
    region: &RegionSpec,
    exposed: &BTreeMap<String, Exposed>,
) -> Option<Advertise> {
    let ports = &v.spec.media.ports;
    let given = region.expose.address.clone();
    let at = |host: &str, udp: i32, tcp: i32| Advertise::Addresses {
        udp: format!("{host}:{udp}"),
        tcp: format!("{host}:{tcp}"),
    };
    let found = exposed.get(&region.name);
    match region.expose.mode {
        ExposeMode::PodIP => Some(match given {
            Some(address) => at(&address, ports.udp, ports.tcp),
            None => Advertise::PodIp,
        }),
        ExposeMode::NodePort => {
            let found = found?;
            let udp = found.udp_node_port?;
            let tcp = if ports.ice_tcp {
                found.tcp_node_port?
            } else {
                ports.tcp
            };
            let host = given.unwrap_or_else(|| format!("$({HOST_IP_ENV})"));
            Some(at(&host, udp, tcp))
        }
        ExposeMode::LoadBalancer => {
            let host = given.or_else(|| found.and_then(|f| f.address.clone()))?;
            Some(at(&host, ports.udp, ports.tcp))
        }
    }
}

/// `status.regions[].media` for a region whose nodes offer `advertise`.
pub fn describe(v: &Validated, advertise: &Advertise) -> Option<String> {
    let Advertise::Addresses { udp, tcp } = advertise else {
        return None;
    };
    let split = |a: &str| {
        a.rsplit_once(':')
            .map(|(h, p)| (h.to_string(), p.to_string()))
            .unwrap_or_default()
    };
    let ((host, udp_port), (_, tcp_port)) = (split(udp), split(tcp));
    let host = if host == format!("$({HOST_IP_ENV})") {
        "<node address>".to_string()
    } else {
        host
    };
    Some(if v.spec.media.ports.ice_tcp {
        format!("{host} udp/{udp_port} tcp/{tcp_port}")
    } else {
        format!("{host} udp/{udp_port}")
    })
}

/// The advertise environment of a media-node container.
pub fn advertise_env(advertise: &Advertise) -> Vec<(&'static str, String)> {
    match advertise {
        Advertise::PodIp => Vec::new(),
        Advertise::Addresses { udp, tcp } => vec![
            (env::MEDIA_ADVERTISE_ADDR, udp.clone()),
            (env::MEDIA_TCP_ADVERTISE_ADDR, tcp.clone()),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;
    use sanctum_api::NodePorts;

    fn with_mode(mode: ExposeMode) -> Validated {
        let mut v = fixtures::validated("clinic-a");
        v.spec.media.regions[0].expose.mode = mode;
        v
    }

    #[test]
    fn pod_ip_regions_need_no_service_and_offer_the_pod() {
        let v = fixtures::validated("clinic-a");
        assert!(build_exposure(&v).is_empty());
        assert_eq!(
            advertise(&v, &v.spec.media.regions[0], &BTreeMap::new()),
            Some(Advertise::PodIp)
        );
    }

    #[test]
    fn node_port_regions_wait_for_their_ports_then_offer_the_node_address() {
        let mut v = with_mode(ExposeMode::NodePort);
        v.spec.media.regions[0].expose.node_ports = Some(NodePorts {
            udp: 31000,
            tcp: 31001,
        });
        let region = v.spec.media.regions[0].clone();
        let services = build_exposure(&v);
        assert_eq!(services.len(), 1);
        let spec = services[0].spec.clone().expect("spec");
        assert_eq!(spec.type_.as_deref(), Some("NodePort"));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
        let ports = spec.ports.expect("ports");
        assert_eq!(
            ports
                .iter()
                .map(|p| (p.protocol.clone().unwrap_or_default(), p.node_port))
                .collect::<Vec<_>>(),
            vec![("UDP".into(), Some(31000)), ("TCP".into(), Some(31001))]
        );
        assert_eq!(advertise(&v, &region, &BTreeMap::new()), None, "waits");
        let exposed = BTreeMap::from([(
            region.name.clone(),
            Exposed {
                address: None,
                udp_node_port: Some(31000),
                tcp_node_port: Some(31001),
            },
        )]);
        let offered = advertise(&v, &region, &exposed).expect("known");
        assert_eq!(
            offered,
            Advertise::Addresses {
                udp: "$(HOST_IP):31000".into(),
                tcp: "$(HOST_IP):31001".into()
            }
        );
        assert_eq!(
            describe(&v, &offered).as_deref(),
            Some("<node address> udp/31000 tcp/31001")
        );
    }

    #[test]
    fn load_balancer_regions_offer_the_balancer_or_the_given_address() {
        let mut v = with_mode(ExposeMode::LoadBalancer);
        v.spec.media.regions[0].expose.annotations = Some(BTreeMap::from([(
            "service.beta.kubernetes.io/aws-load-balancer-type".into(),
            "nlb".into(),
        )]));
        let region = v.spec.media.regions[0].clone();
        let service = &build_exposure(&v)[0];
        assert_eq!(
            service.metadata.name.as_deref(),
            Some("media-us-east-media")
        );
        assert!(
            service.metadata.annotations.is_some(),
            "annotations pass on"
        );
        assert_eq!(
            service.spec.as_ref().and_then(|s| s.type_.as_deref()),
            Some("LoadBalancer")
        );
        assert_eq!(advertise(&v, &region, &BTreeMap::new()), None, "waits");
        let exposed = BTreeMap::from([(
            region.name.clone(),
            Exposed {
                address: Some("203.0.113.10".into()),
                ..Default::default()
            },
        )]);
        assert_eq!(
            advertise(&v, &region, &exposed),
            Some(Advertise::Addresses {
                udp: "203.0.113.10:10000".into(),
                tcp: "203.0.113.10:10000".into()
            })
        );
        v.spec.media.regions[0].expose.address = Some("198.51.100.7".into());
        let region = v.spec.media.regions[0].clone();
        assert_eq!(
            advertise(&v, &region, &BTreeMap::new()),
            Some(Advertise::Addresses {
                udp: "198.51.100.7:10000".into(),
                tcp: "198.51.100.7:10000".into()
            }),
            "a given address needs nothing from the cluster"
        );
    }

    #[test]
    fn without_ice_tcp_no_tcp_port_is_exposed() {
        let mut v = with_mode(ExposeMode::NodePort);
        v.spec.media.ports.ice_tcp = false;
        let ports = build_exposure(&v)[0]
            .spec
            .clone()
            .and_then(|s| s.ports)
            .expect("ports");
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].protocol.as_deref(), Some("UDP"));
    }
}
