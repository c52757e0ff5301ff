//! NetworkPolicies: deny everything, then allow only what `spec.network` names.
//!
//! Nothing here ever allows traffic between tenants: peers are chosen by namespace name
//! (`kubernetes.io/metadata.name`, set by the API server and not forgeable) or by CIDR.

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

use super::{SIGNALING_PORT, all_media_selector, namespaced_meta};
use crate::controller::tenant::validate::Validated;

/// Name of the policy that denies all traffic not allowed by another policy.
pub const DEFAULT_DENY: &str = "default-deny";

/// Builds the tenant's policies, default-deny first.
pub fn build_network_policies(v: &Validated) -> Vec<NetworkPolicy> {
    let net = &v.spec.network;
    let mut policies = vec![policy(
        v,
        DEFAULT_DENY,
        LabelSelector::default(),
        // Empty rule lists are set, not omitted, so the operator owns them: a rule someone
        // adds by hand conflicts with this apply and is removed instead of kept beside it.
        NetworkPolicySpec {
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(Vec::new()),
            egress: Some(Vec::new()),
            ..Default::default()
        },
    )];
    policies.push(policy(
        v,
        "allow-dns-egress",
        LabelSelector::default(),
        NetworkPolicySpec {
            policy_types: Some(vec!["Egress".into()]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(namespace_names(&["kube-system".to_string()])),
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            "k8s-app".to_string(),
                            "kube-dns".to_string(),
                        )])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ports: Some(vec![port("UDP", 53), port("TCP", 53)]),
            }]),
            ..Default::default()
        },
    ));
    if !net.signaling_from.is_empty() {
        policies.push(policy(
            v,
            "allow-signaling-ingress",
            all_media_selector(v),
            NetworkPolicySpec {
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(namespace_names(&net.signaling_from)),
                        ..Default::default()
                    }]),
                    ports: Some(vec![port("TCP", SIGNALING_PORT)]),
                }]),
                ..Default::default()
            },
        ));
    }
    // The operator's control calls (recordings): from its namespace to the control port.
    policies.push(policy(
        v,
        "allow-control-ingress",
        all_media_selector(v),
        NetworkPolicySpec {
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(namespace_names(std::slice::from_ref(
                        &v.operator_namespace,
                    ))),
                    ..Default::default()
                }]),
                ports: Some(vec![port("TCP", i32::from(sanctum_api::control::PORT))]),
            }]),
            ..Default::default()
        },
    ));
    // Media nodes of the tenant ask each other where a room lives and forward signaling
    // to its node: signaling between them, both ways, and nothing else.
    let media_pods = NetworkPolicyPeer {
        pod_selector: Some(all_media_selector(v)),
        ..Default::default()
    };
    policies.push(policy(
        v,
        "allow-peer-signaling",
        all_media_selector(v),
        NetworkPolicySpec {
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![media_pods.clone()]),
                ports: Some(vec![port("TCP", SIGNALING_PORT)]),
            }]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![media_pods]),
                ports: Some(vec![port("TCP", SIGNALING_PORT)]),
            }]),
            ..Default::default()
        },
    ));
    if !net.media_cidrs.is_empty() {
        policies.push(policy(
            v,
            "allow-media-ingress",
            all_media_selector(v),
            NetworkPolicySpec {
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(ip_blocks(&net.media_cidrs)),
                    ports: Some(
                        [
                            Some(port("UDP", v.spec.media.ports.udp)),
                            v.spec
                                .media
                                .ports
                                .ice_tcp
                                .then(|| port("TCP", v.spec.media.ports.tcp)),
                        ]
                        .into_iter()
                        .flatten()
                        .collect(),
                    ),
                }]),
                ..Default::default()
            },
        ));
    }
    if !net.egress_cidrs.is_empty() {
        policies.push(policy(
            v,
            "allow-tls-egress",
            LabelSelector::default(),
            NetworkPolicySpec {
                policy_types: Some(vec!["Egress".into()]),
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(ip_blocks(&net.egress_cidrs)),
                    ports: Some(vec![port("TCP", 443)]),
                }]),
                ..Default::default()
            },
        ));
    }
    policies
}

fn policy(
    v: &Validated,
    name: &str,
    pod_selector: LabelSelector,
    spec: NetworkPolicySpec,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: namespaced_meta(v, name),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pod_selector),
            ..spec
        }),
    }
}

fn namespace_names(names: &[String]) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "kubernetes.io/metadata.name".into(),
            operator: "In".into(),
            values: Some(names.to_vec()),
        }]),
        ..Default::default()
    }
}

fn ip_blocks(cidrs: &[String]) -> Vec<NetworkPolicyPeer> {
    cidrs
        .iter()
        .map(|cidr| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.clone(),
                except: None,
            }),
            ..Default::default()
        })
        .collect()
}

fn port(protocol: &str, port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(port)),
        end_port: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::fixtures;

    fn by_name<'a>(policies: &'a [NetworkPolicy], name: &str) -> &'a NetworkPolicySpec {
        policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .and_then(|p| p.spec.as_ref())
            .unwrap_or_else(|| panic!("policy {name} missing"))
    }

    #[test]
    fn default_deny_selects_every_pod_in_both_directions() {
        let policies = build_network_policies(&fixtures::validated("clinic-a"));
        let deny = by_name(&policies, DEFAULT_DENY);
        assert_eq!(
            deny.pod_selector,
            Some(LabelSelector::default()),
            "empty selector = all pods"
        );
        assert_eq!(
            deny.policy_types.as_deref(),
            Some(&["Ingress".to_string(), "Egress".to_string()][..])
        );
        assert_eq!(deny.ingress, Some(vec![]), "deny has no ingress rule");
        assert_eq!(deny.egress, Some(vec![]), "deny has no egress rule");
        assert_eq!(
            policies[0].metadata.name.as_deref(),
            Some(DEFAULT_DENY),
            "deny is applied first"
        );
    }

    #[test]
    fn allowances_follow_the_spec_and_nothing_else() {
        let v = fixtures::validated("clinic-a");
        let policies = build_network_policies(&v);
        let names: Vec<_> = policies
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "default-deny",
                "allow-dns-egress",
                "allow-signaling-ingress",
                "allow-control-ingress",
                "allow-peer-signaling",
                "allow-media-ingress",
                "allow-tls-egress"
            ]
        );
        // The control port is reachable from the operator's namespace alone.
        let control = by_name(&policies, "allow-control-ingress");
        let rule = &control.ingress.as_ref().expect("ingress")[0];
        assert_eq!(
            rule.from.as_ref().expect("from")[0].namespace_selector,
            Some(namespace_names(std::slice::from_ref(&v.operator_namespace)))
        );
        assert_eq!(
            rule.ports.as_ref().expect("ports")[0].port,
            Some(IntOrString::Int(i32::from(sanctum_api::control::PORT)))
        );

        let signaling = by_name(&policies, "allow-signaling-ingress");
        let rule = &signaling.ingress.as_ref().expect("ingress")[0];
        let peer = &rule.from.as_ref().expect("from")[0];
        let expr = &peer
            .namespace_selector
            .as_ref()
            .expect("ns selector")
            .match_expressions
            .as_ref()
            .expect("exprs")[0];
        assert_eq!(expr.key, "kubernetes.io/metadata.name");
        assert_eq!(
            expr.values.as_deref(),
            Some(&["ingress-nginx".to_string()][..])
        );
        assert!(peer.pod_selector.is_none() && peer.ip_block.is_none());
        assert_eq!(
            rule.ports.as_ref().expect("ports")[0].port,
            Some(IntOrString::Int(SIGNALING_PORT))
        );

        let media = by_name(&policies, "allow-media-ingress");
        let rule = &media.ingress.as_ref().expect("ingress")[0];
        assert_eq!(
            rule.from.as_ref().expect("from")[0]
                .ip_block
                .as_ref()
                .expect("cidr")
                .cidr,
            "0.0.0.0/0"
        );
        assert_eq!(
            rule.ports.as_ref().expect("ports")[0].protocol.as_deref(),
            Some("UDP")
        );

        let egress = by_name(&policies, "allow-tls-egress");
        let rule = &egress.egress.as_ref().expect("egress")[0];
        assert_eq!(
            rule.ports.as_ref().expect("ports")[0].port,
            Some(IntOrString::Int(443))
        );
    }

    #[test]
    fn empty_network_spec_allows_only_dns_control_and_the_nodes_own_signaling() {
        let mut v = fixtures::validated("clinic-a");
        v.spec.network = Default::default();
        let policies = build_network_policies(&v);
        let names: Vec<_> = policies
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(
            names,
            [
                "default-deny",
                "allow-dns-egress",
                "allow-control-ingress",
                "allow-peer-signaling"
            ]
        );
    }

    #[test]
    fn media_nodes_reach_each_other_on_signaling_only() {
        let v = fixtures::validated("clinic-a");
        let policies = build_network_policies(&v);
        let peers = by_name(&policies, "allow-peer-signaling");
        assert_eq!(peers.pod_selector, Some(all_media_selector(&v)));
        let ingress = &peers.ingress.as_ref().expect("ingress")[0];
        let egress = &peers.egress.as_ref().expect("egress")[0];
        for (peers_of, ports) in [(&ingress.from, &ingress.ports), (&egress.to, &egress.ports)] {
            let peer = &peers_of.as_ref().expect("peers")[0];
            assert_eq!(
                peer.pod_selector,
                Some(all_media_selector(&v)),
                "the tenant's media nodes"
            );
            assert!(peer.namespace_selector.is_none(), "in this namespace only");
            assert_eq!(ports.as_deref(), Some(&[port("TCP", SIGNALING_PORT)][..]));
        }
    }
}
