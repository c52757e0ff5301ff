//! The operator's side of the media node control API: discovery of the tenant's nodes and
//! signed requests ([`sanctum_api::control`]).

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};
use reqwest::StatusCode;
use sanctum_api::control::{self, ControlClaims, RecordingReport, StartRecording};
use sanctum_api::labels;

/// Lifetime of each control token (one request).
const TOKEN_TTL: u64 = 60;
/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A media node's control endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// `https` (or `http` when the endpoint says `appProtocol: http`, for local tests).
    pub scheme: String,
    /// `ip:port`.
    pub address: String,
}

impl NodeEndpoint {
    /// Parses what `status.mediaNode` holds (`scheme://ip:port`).
    pub fn parse(s: &str) -> Option<Self> {
        let (scheme, address) = s.split_once("://")?;
        Some(NodeEndpoint {
            scheme: scheme.to_string(),
            address: address.to_string(),
        })
    }
}

impl std::fmt::Display for NodeEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.address)
    }
}

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Discovery failed.
    #[error("cannot list media node endpoints: {0}")]
    Discovery(#[source] kube::Error),
    /// The control key or TLS trust could not be loaded.
    #[error("control client setup failed: {0}")]
    Setup(String),
    /// The node could not be reached.
    #[error("media node {0} unreachable: {1}")]
    Unreachable(String, String),
    /// The node answered with an error status.
    #[error("media node {node} answered {status}: {error}")]
    Status {
        /// Node.
        node: String,
        /// HTTP status.
        status: u16,
        /// The `error` field of the answer.
        error: String,
    },
}

impl NodeError {
    /// The node answered 404 (unknown recording, or the room is not on it).
    pub fn is_not_found(&self) -> bool {
        matches!(self, NodeError::Status { status: 404, .. })
    }
}

/// Ready control endpoints of the tenant's media nodes in `namespace`, from the
/// EndpointSlices of their Services (label `app.kubernetes.io/component=media-node`).
pub async fn endpoints(client: &Client, namespace: &str) -> Result<Vec<NodeEndpoint>, NodeError> {
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("{}=media-node", labels::COMPONENT)))
        .await
        .map_err(NodeError::Discovery)?;
    let mut out = Vec::new();
    for slice in slices.items {
        // IPv4, IPv6, or FQDN (host names, e.g. nodes outside the cluster).
        let Some(port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some("https"))
        else {
            continue;
        };
        let Some(number) = port.port else { continue };
        let scheme = match port.app_protocol.as_deref() {
            Some("http") => "http",
            _ => "https",
        };
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                let host = if address.contains(':') {
                    format!("[{address}]:{number}")
                } else {
                    format!("{address}:{number}")
                };
                out.push(NodeEndpoint {
                    scheme: scheme.to_string(),
                    address: host,
                });
            }
        }
    }
    out.sort_by(|a, b| a.address.cmp(&b.address));
    out.dedup();
    Ok(out)
}

/// Signs and sends control requests for one tenant.
pub struct ControlClient {
    http: reqwest::Client,
    key: EncodingKey,
    tenant: String,
}

impl ControlClient {
    /// A client signing with `private_pem` (the tenant's control key) and trusting the
    /// tenant's media TLS Secret: its `ca.crt`, or its `tls.crt` when self-signed. Nodes are
    /// addressed by pod IP, which certificates do not name, so the chain is verified and
    /// the host name is not.
    pub fn new(
        private_pem: &[u8],
        tenant: &str,
        tls: Option<&Secret>,
        resolve: &[(String, std::net::IpAddr)],
    ) -> Result<Self, NodeError> {
        let key =
            EncodingKey::from_ed_pem(private_pem).map_err(|e| NodeError::Setup(e.to_string()))?;
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("sanctum-operator/", env!("CARGO_PKG_VERSION")));
        for (host, ip) in resolve {
            builder = builder.resolve(host, std::net::SocketAddr::new(*ip, 0));
        }
        let data = tls.and_then(|s| s.data.as_ref());
        let root = data.and_then(|d| d.get("ca.crt").or_else(|| d.get("tls.crt")));
        if let Some(pem) = root {
            let certs = reqwest::Certificate::from_pem_bundle(&pem.0)
                .map_err(|e| NodeError::Setup(format!("media TLS Secret: {e}")))?;
            builder = builder
                .tls_certs_only(certs)
                .tls_danger_accept_invalid_hostnames(true);
        }
        let http = builder
            .build()
            .map_err(|e| NodeError::Setup(e.to_string()))?;
        Ok(ControlClient {
            http,
            key,
            tenant: tenant.to_string(),
        })
    }

    fn token(&self, method: &str, path: &str) -> Result<String, NodeError> {
        let now = jiff::Timestamp::now().as_second().max(0) as u64;
        let claims = ControlClaims {
            iss: control::ISSUER.to_string(),
            aud: control::audience(&self.tenant),
            iat: now,
            exp: now + TOKEN_TTL,
            htm: method.to_string(),
            htu: path.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key)
            .map_err(|e| NodeError::Setup(e.to_string()))
    }

    async fn call(
        &self,
        node: &NodeEndpoint,
        method: reqwest::Method,
        path: &str,
        body: Option<&StartRecording>,
    ) -> Result<(StatusCode, RecordingReport), NodeError> {
        let token = self.token(method.as_str(), path)?;
        let mut req = self
            .http
            .request(method, format!("{node}{path}"))
            .bearer_auth(token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| NodeError::Unreachable(node.to_string(), e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let error = resp
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_default();
            return Err(NodeError::Status {
                node: node.to_string(),
                status: status.as_u16(),
                error,
            });
        }
        let report = resp
            .json::<RecordingReport>()
            .await
            .map_err(|e| NodeError::Unreachable(node.to_string(), e.to_string()))?;
        Ok((status, report))
    }

    /// Starts (or confirms) recording `id` on `node`.
    pub async fn start(
        &self,
        node: &NodeEndpoint,
        id: &str,
        req: &StartRecording,
    ) -> Result<RecordingReport, NodeError> {
        let path = control::recording_path(id);
        Ok(self
            .call(node, reqwest::Method::PUT, &path, Some(req))
            .await?
            .1)
    }

    /// Reports recording `id`.
    pub async fn get(&self, node: &NodeEndpoint, id: &str) -> Result<RecordingReport, NodeError> {
        let path = control::recording_path(id);
        Ok(self.call(node, reqwest::Method::GET, &path, None).await?.1)
    }

    /// Asks the node to stop and seal recording `id`.
    pub async fn stop(&self, node: &NodeEndpoint, id: &str) -> Result<RecordingReport, NodeError> {
        let path = control::stop_path(id);
        Ok(self.call(node, reqwest::Method::POST, &path, None).await?.1)
    }
}
