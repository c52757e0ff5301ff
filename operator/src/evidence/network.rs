//! A tenant's NetworkPolicies read back: the connections they allow, spelled out for an
//! auditor, and whether the live set is exactly what the spec builds (a policy added or
//! widened by hand is a failure, since any allow policy widens what default-deny leaves).

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde_json::Value;

/// One allowed connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Policy that allows it.
    pub policy: String,
    /// `in` or `out`, seen from the selected pods.
    pub direction: &'static str,
    /// The tenant's pods it applies to.
    pub pods: String,
    /// Who is on the other end: namespaces, CIDRs or pods.
    pub peers: Vec<String>,
    /// `PROTOCOL/PORT`, or `any port`.
    pub ports: Vec<String>,
}

/// The connections each policy allows, in the order of the policies.
pub fn connections(policies: &[NetworkPolicy]) -> Vec<Connection> {
    let mut out = Vec::new();
    for policy in policies {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let Some(spec) = &policy.spec else { continue };
        let pods = selector(spec.pod_selector.as_ref(), "every pod");
        for rule in spec.ingress.iter().flatten() {
            out.push(Connection {
                policy: name.clone(),
                direction: "in",
                pods: pods.clone(),
                peers: peers(rule.from.as_deref()),
                ports: ports(rule.ports.as_deref()),
            });
        }
        for rule in spec.egress.iter().flatten() {
            out.push(Connection {
                policy: name.clone(),
                direction: "out",
                pods: pods.clone(),
                peers: peers(rule.to.as_deref()),
                ports: ports(rule.ports.as_deref()),
            });
        }
    }
    out
}

fn peers(peers: Option<&[NetworkPolicyPeer]>) -> Vec<String> {
    match peers {
        None | Some([]) => vec!["anyone".into()],
        Some(peers) => peers
            .iter()
            .map(|p| {
                if let Some(block) = &p.ip_block {
                    let except = block.except.clone().unwrap_or_default();
                    return if except.is_empty() {
                        format!("CIDR {}", block.cidr)
                    } else {
                        format!("CIDR {} except {}", block.cidr, except.join(", "))
                    };
                }
                let namespaces = p
                    .namespace_selector
                    .as_ref()
                    .map(|s| selector(Some(s), "every namespace"));
                let pods = p
                    .pod_selector
                    .as_ref()
                    .map(|s| selector(Some(s), "every pod"));
                match (namespaces, pods) {
                    (Some(ns), Some(pods)) => format!("{pods} in {ns}"),
                    (Some(ns), None) => ns,
                    (None, Some(pods)) => format!("{pods} of this namespace"),
                    (None, None) => "anyone".into(),
                }
            })
            .collect(),
    }
}

fn ports(ports: Option<&[NetworkPolicyPort]>) -> Vec<String> {
    match ports {
        None | Some([]) => vec!["any port".into()],
        Some(ports) => ports
            .iter()
            .map(|p| {
                let protocol = p.protocol.as_deref().unwrap_or("TCP");
                match &p.port {
                    Some(port) => {
                        let port = match port {
                            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => {
                                n.to_string()
                            }
                            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                                s,
                            ) => s.clone(),
                        };
                        match p.end_port {
                            Some(end) => format!("{protocol}/{port}-{end}"),
                            None => format!("{protocol}/{port}"),
                        }
                    }
                    None => format!("{protocol}/any"),
                }
            })
            .collect(),
    }
}

/// A selector in words: `namespace X`, `pods a=b`, or `everything` for an empty one.
fn selector(selector: Option<&LabelSelector>, everything: &str) -> String {
    let Some(s) = selector else {
        return everything.into();
    };
    let mut terms: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        if e.key == "kubernetes.io/metadata.name" && e.operator == "In" {
            terms.push(format!("namespace {values}"));
        } else {
            terms.push(format!("{} {} ({values})", e.key, e.operator));
        }
    }
    if terms.is_empty() {
        everything.into()
    } else {
        terms.join(" and ")
    }
}

/// How the live policies differ from the wanted ones: missing, extra or changed, by name.
/// Empty lists and absent fields are the same (the API server drops empty lists).
pub fn differences(live: &[NetworkPolicy], wanted: &[NetworkPolicy]) -> Vec<String> {
    let name = |p: &NetworkPolicy| p.metadata.name.clone().unwrap_or_default();
    let spec = |p: &NetworkPolicy| normalized(serde_json::to_value(&p.spec).unwrap_or_default());
    let mut out = Vec::new();
    for want in wanted {
        match live.iter().find(|l| name(l) == name(want)) {
            None => out.push(format!("{} is missing", name(want))),
            Some(l) if spec(l) != spec(want) => {
                out.push(format!("{} differs from what the spec builds", name(want)))
            }
            Some(_) => {}
        }
    }
    for l in live {
        if !wanted.iter().any(|w| name(w) == name(l)) {
            out.push(format!(
                "{} was not made by Sanctum and allows more",
                name(l)
            ));
        }
    }
    out
}

/// `value` without nulls, empty lists and empty objects, recursively.
fn normalized(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, normalized(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        other => other,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::build::build_network_policies;
    use crate::controller::tenant::fixtures;

    #[test]
    fn the_built_policies_read_as_their_connections() {
        let policies = build_network_policies(&fixtures::validated("clinic-a"));
        let all = connections(&policies);
        let dns = all
            .iter()
            .find(|c| c.policy == "allow-dns-egress")
            .expect("dns");
        assert_eq!(dns.direction, "out");
        assert!(dns.peers[0].contains("namespace kube-system"), "{dns:?}");
        assert!(dns.ports.contains(&"UDP/53".to_string()), "{dns:?}");
        // Default-deny has no rule, so it allows nothing.
        assert!(all.iter().all(|c| c.policy != "default-deny"));
        assert!(all.iter().all(|c| !c.peers.contains(&"anyone".to_string())));
    }

    #[test]
    fn a_policy_added_or_widened_by_hand_is_a_difference() {
        let wanted = build_network_policies(&fixtures::validated("clinic-a"));
        // As the API server returns them: empty rule lists dropped.
        let mut live: Vec<NetworkPolicy> = wanted.clone();
        if let Some(spec) = live[0].spec.as_mut() {
            spec.ingress = None;
            spec.egress = None;
        }
        assert!(differences(&live, &wanted).is_empty());
        let mut open = wanted[0].clone();
        open.metadata.name = Some("allow-all".into());
        if let Some(spec) = open.spec.as_mut() {
            spec.ingress = Some(vec![Default::default()]);
        }
        live.push(open);
        if let Some(spec) = live[1].spec.as_mut() {
            spec.egress = Some(vec![Default::default()]);
        }
        let found = differences(&live, &wanted);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("allow-dns-egress differs"), "{found:?}");
        assert!(
            found[1].contains("allow-all was not made by Sanctum"),
            "{found:?}"
        );
        let any = connections(&live[live.len() - 1..]);
        assert_eq!(any[0].peers, ["anyone"]);
        assert_eq!(any[0].ports, ["any port"]);
    }
}
