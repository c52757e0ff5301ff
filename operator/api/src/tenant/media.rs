//! The media part of a tenant: its media nodes, their ports, TURN, and each region's size,
//! placement and exposure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DEFAULT_MEDIA_IMAGE, default_true};

/// Media nodes: the WebRTC SFU pods.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MediaSpec {
    /// Media-node container image.
    #[serde(default = "default_media_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// CPU and memory for each media node. Defaults suit a few dozen participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Longest a session may last, in minutes (5 to 1440); then the participant is logged off.
    #[serde(default = "default_max_session_minutes")]
    #[schemars(range(min = 5, max = 1440))]
    pub max_session_minutes: i32,

    /// Seconds without media or signaling before a session is ended (30 to 3600).
    #[serde(default = "default_idle_timeout_seconds")]
    #[schemars(range(min = 30, max = 3600))]
    pub idle_timeout_seconds: i32,

    /// `kubernetes.io/tls` Secret in the tenant namespace with the certificate media nodes
    /// serve WHIP/WHEP with (for example issued by cert-manager). Media nodes do not start
    /// without it; a renewed certificate is picked up without a restart.
    #[serde(default = "default_tls_secret_name")]
    #[schemars(length(min = 1, max = 253))]
    pub tls_secret_name: String,

    /// Web origins (`https://app.clinic.example`) whose pages may call WHIP/WHEP from a
    /// browser (CORS). Empty: only pages served from the signaling origin itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 253, "pattern": "^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$"}))]
    pub allowed_origins: Vec<String>,

    /// Ports media nodes receive media on. Each node uses one UDP port for every session
    /// and, for clients whose networks refuse UDP, one TCP port (ICE-TCP, RFC 6544).
    #[serde(default)]
    pub ports: MediaPorts,

    /// A TURN service for clients that reach neither port (outbound UDP blocked and only
    /// a proxy's ports open). Each WHIP/WHEP answer carries a TURN credential of its own
    /// that the TURN service checks with a secret it shares with the media nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<TurnSpec>,

    /// Regions the tenant serves. Each becomes its own Deployment, Service,
    /// PodDisruptionBudget and (with autoscaling) HorizontalPodAutoscaler.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub regions: Vec<RegionSpec>,
}

/// The media ports of every node of a tenant.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MediaPorts {
    /// UDP port of all WebRTC media (1024 to 65535).
    #[serde(default = "default_media_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub udp: i32,

    /// TCP port of the ICE-TCP candidate (1024 to 65535), offered next to UDP.
    #[serde(default = "default_media_port")]
    #[schemars(range(min = 1024, max = 65535))]
    pub tcp: i32,

    /// Offer the ICE-TCP candidate. Off, clients that cannot send UDP need TURN.
    #[serde(default = "default_true")]
    pub ice_tcp: bool,
}

impl Default for MediaPorts {
    fn default() -> Self {
        MediaPorts {
            udp: default_media_port(),
            tcp: default_media_port(),
            ice_tcp: true,
        }
    }
}

fn default_media_port() -> i32 {
    10000
}

/// The tenant's TURN service (for example coturn with `use-auth-secret`).
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TurnSpec {
    /// TURN URIs handed to clients, as RFC 7065 writes them: for example
    /// `turns:turn.clinic.example:443?transport=tcp` or `turn:turn.clinic.example:3478`.
    #[schemars(length(min = 1, max = 8))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 253, "pattern": "^(turns?|stun):[A-Za-z0-9.:\\[\\]-]+(\\?transport=(udp|tcp))?$"}))]
    pub urls: Vec<String>,

    /// Secret in the tenant namespace holding the shared secret (the TURN service's
    /// `static-auth-secret`) under `secretKey`. Media nodes wait for it.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,

    /// Key of the shared secret in that Secret.
    #[serde(default = "default_turn_secret_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub secret_key: String,
}

fn default_turn_secret_key() -> String {
    "secret".to_string()
}

fn default_media_image() -> String {
    DEFAULT_MEDIA_IMAGE.to_string()
}
fn default_tls_secret_name() -> String {
    "media-node-tls".to_string()
}
fn default_max_session_minutes() -> i32 {
    240
}
fn default_idle_timeout_seconds() -> i32 {
    300
}

/// One region of media nodes.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.autoscaling) || self.autoscaling.min <= self.autoscaling.max").message("autoscaling.min must be less than or equal to autoscaling.max").field_path(".autoscaling.min"),
    validation = Rule::new("!has(self.expose) || (self.expose.mode != 'LoadBalancer' && !has(self.expose.address)) || (self.replicas <= 1 && !has(self.autoscaling))").message("expose.mode LoadBalancer and expose.address serve one media node: set replicas to 0 or 1 and no autoscaling (use HostPort for more)").field_path(".expose")
)]
pub struct RegionSpec {
    /// Region name, a DNS label of at most 20 characters (for example `us-east` or `eu-west-1`).
    #[schemars(
        length(min = 1, max = 20),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Media nodes in this region when autoscaling is off (0 to 100).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,

    /// Scale between `min` and `max` on CPU. When set, `replicas` is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    /// Node labels media nodes of this region must run on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub node_selector: BTreeMap<String, String>,

    /// Taints media nodes of this region tolerate, for node pools kept for media (for
    /// example `{key: dedicated, value: media, effect: NoSchedule}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tolerations: Vec<Toleration>,

    /// How clients outside the cluster reach this region's media ports; the address each
    /// node offers as its ICE candidate follows from it.
    #[serde(default)]
    pub expose: ExposeSpec,
}

/// Reachability of one region's media ports.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.mode == 'LoadBalancer' || !has(self.annotations)").message("expose.annotations only apply to mode LoadBalancer").field_path(".annotations"),
    validation = Rule::new("self.mode == 'NodePort' || !has(self.nodePorts)").message("expose.nodePorts only apply to mode NodePort").field_path(".nodePorts")
)]
pub struct ExposeSpec {
    /// `PodIP` (default): each node offers its pod address, for clients routed into the
    /// pod network (VPC-native pod addresses, a VPN). `NodePort`: a NodePort Service with
    /// `externalTrafficPolicy: Local` carries the media ports and each node offers its
    /// Kubernetes node's address (`status.hostIP`) with the node port; at most one media
    /// node of the region runs per Kubernetes node, so address and port name one media
    /// node. `LoadBalancer`: a LoadBalancer Service carries the media ports and the node
    /// offers the balancer's address; one media node only, since a balancer cannot tell
    /// which node a client's session lives on.
    #[serde(default)]
    pub mode: ExposeMode,

    /// The IP address to offer instead of the one the mode finds, for a 1:1 NAT or an
    /// elastic address in front of it. One media node only, like `LoadBalancer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 45))]
    #[x_kube(validation = Rule::new("isIP(self)").message("expose.address must be an IP address such as 203.0.113.10"))]
    pub address: Option<String>,

    /// Node ports to ask for (`NodePort` only), so firewalls can name them; unset, the
    /// cluster picks them and `status.regions[].media` shows them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ports: Option<NodePorts>,

    /// Annotations of the LoadBalancer Service, for the cloud's balancer (for example
    /// `service.beta.kubernetes.io/aws-load-balancer-type: nlb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 16))]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Fixed node ports of a region (within the cluster's node port range).
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePorts {
    /// Node port of the UDP media port.
    #[schemars(range(min = 1, max = 65535))]
    pub udp: i32,
    /// Node port of the ICE-TCP port.
    #[schemars(range(min = 1, max = 65535))]
    pub tcp: i32,
}

/// How a region's media ports are reached.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExposeMode {
    /// The pod's own address.
    #[default]
    PodIP,
    /// A node port on each Kubernetes node running a media node, offered with the node's address.
    NodePort,
    /// A LoadBalancer Service, offered with its address.
    LoadBalancer,
}

fn default_replicas() -> i32 {
    2
}

/// Horizontal autoscaling of one region.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingSpec {
    /// Fewest media nodes (at least 1).
    #[schemars(range(min = 1, max = 100))]
    pub min: i32,
    /// Most media nodes (at most 100).
    #[schemars(range(min = 1, max = 100))]
    pub max: i32,
    /// Average CPU utilisation to aim for, in percent of the request.
    #[serde(default = "default_target_cpu", rename = "targetCPU")]
    #[schemars(range(min = 10, max = 95))]
    pub target_cpu: i32,
    /// Average live sessions per media node to aim for as well (the nodes' metric
    /// `sanctum_media_peers`, read through the custom metrics API, which a metrics adapter
    /// such as prometheus-adapter must serve); the region scales to whichever of CPU and
    /// sessions asks for more nodes. Unset: CPU only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub target_sessions: Option<i32>,
}

fn default_target_cpu() -> i32 {
    70
}
