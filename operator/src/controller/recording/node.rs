//! The operator's side of the media node control API: discovery of the tenant's nodes and
//! signed requests over mutual TLS ([`sanctum_api::control`], tokens from
//! [`sanctum_control`]).

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::EncodingKey;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};
use reqwest::StatusCode;
use sanctum_api::control::{self, RecordingReport, StartRecording};
use sanctum_api::labels;

/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Name of the control port on media-node Services and their EndpointSlices.
pub const PORT_NAME: &str = "control";

/// A media node's control endpoint.
#[derive(Clone, Debug, Eq)]
pub struct NodeEndpoint {
    /// `ip:port` (or `host:port` for FQDN endpoints).
    pub address: String,
    /// The node's pod name, which its control tokens name (empty when parsed from status).
    pub pod: String,
}

impl PartialEq for NodeEndpoint {
    /// The same node: status records the address only.
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address
    }
}

impl std::hash::Hash for NodeEndpoint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.address.hash(state);
    }
}

impl NodeEndpoint {
    /// Parses what `status.mediaNode` holds (`https://ip:port`).
    pub fn parse(s: &str) -> Option<Self> {
        let address = s.strip_prefix("https://")?;
        Some(NodeEndpoint {
            address: address.to_string(),
            pod: String::new(),
        })
    }
}

impl std::fmt::Display for NodeEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://{}", self.address)
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

/// Ready control endpoints of the tenant's media nodes: the EndpointSlices of the media
/// Services in `namespace` that the tenant owns (controller owner reference with
/// `tenant_uid`), endpoints that name their pod. A Service or EndpointSlice anyone else
/// made, whatever its labels, is never contacted.
pub async fn endpoints(
    client: &Client,
    namespace: &str,
    tenant_uid: &str,
) -> Result<Vec<NodeEndpoint>, NodeError> {
    let services = Api::<Service>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("{}=media-node", labels::COMPONENT)))
        .await
        .map_err(NodeError::Discovery)?;
    let owned: Vec<String> = services
        .items
        .iter()
        .filter(|s| {
            s.metadata.owner_references.iter().flatten().any(|o| {
                o.controller == Some(true) && o.kind == "VideoTenant" && o.uid == tenant_uid
            })
        })
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let mut out = Vec::new();
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), namespace);
    for service in owned {
        let listed = slices
            .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
            .await
            .map_err(NodeError::Discovery)?;
        out.extend(listed.items.iter().flat_map(slice_endpoints));
    }
    out.sort_by(|a, b| a.address.cmp(&b.address));
    out.dedup();
    Ok(out)
}

/// The ready control endpoints of one slice (IPv4, IPv6, or FQDN) that name their pod.
fn slice_endpoints(slice: &EndpointSlice) -> Vec<NodeEndpoint> {
    let Some(port) = slice
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(PORT_NAME))
    else {
        return vec![];
    };
    let Some(number) = port.port else {
        return vec![];
    };
    let mut out = Vec::new();
    for endpoint in &slice.endpoints {
        let ready = endpoint
            .conditions
            .as_ref()
            .and_then(|c| c.ready)
            .unwrap_or(true);
        let pod = endpoint
            .target_ref
            .as_ref()
            .filter(|t| t.kind.as_deref() == Some("Pod"))
            .and_then(|t| t.name.clone());
        let (true, Some(pod)) = (ready, pod) else {
            continue;
        };
        for address in &endpoint.addresses {
            let host = if address.contains(':') {
                format!("[{address}]:{number}")
            } else {
                format!("{address}:{number}")
            };
            out.push(NodeEndpoint {
                address: host,
                pod: pod.clone(),
            });
        }
    }
    out
}

/// Signs and sends control requests for one tenant, over mutual TLS with the tenant's
/// control CA: the operator presents its client certificate, and accepts a node only with
/// a certificate of that CA for [`control::server_name`].
pub struct ControlClient {
    http: reqwest::Client,
    key: EncodingKey,
    tenant: String,
}

impl ControlClient {
    /// A client signing with `private_pem` (the tenant's control key) and speaking mutual
    /// TLS with `identity` (from the tenant's control CA Secret).
    pub fn new(
        private_pem: &[u8],
        tenant: &str,
        identity: &crate::controller::tenant::build::control_tls::ClientIdentity,
        resolve: &[(String, std::net::IpAddr)],
    ) -> Result<Self, NodeError> {
        let key =
            EncodingKey::from_ed_pem(private_pem).map_err(|e| NodeError::Setup(e.to_string()))?;
        let tls = tls_config(tenant, identity)?;
        let mut builder = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("sanctum-operator/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls);
        for (host, ip) in resolve {
            builder = builder.resolve(host, std::net::SocketAddr::new(*ip, 0));
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

    async fn call(
        &self,
        node: &NodeEndpoint,
        method: reqwest::Method,
        path: &str,
        body: Option<&StartRecording>,
    ) -> Result<(StatusCode, RecordingReport), NodeError> {
        if node.pod.is_empty() {
            return Err(NodeError::Setup(format!(
                "{node} names no pod; control tokens are bound to one"
            )));
        }
        let bytes = match body {
            Some(body) => serde_json::to_vec(body).map_err(|e| NodeError::Setup(e.to_string()))?,
            None => Vec::new(),
        };
        let now = jiff::Timestamp::now().as_second().max(0) as u64;
        let token = sanctum_control::mint_with(
            &self.key,
            &self.tenant,
            &node.pod,
            method.as_str(),
            path,
            &bytes,
            now,
            sanctum_control::TOKEN_TTL,
        )
        .map_err(|e| NodeError::Setup(e.to_string()))?;
        let mut req = self
            .http
            .request(method, format!("{node}{path}"))
            .bearer_auth(token);
        if body.is_some() {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let resp = req.send().await.map_err(|e| {
            NodeError::Unreachable(node.to_string(), sanctum_cloud::error_chain(&e))
        })?;
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

/// TLS of the control connections: the operator's client certificate, and trust in the
/// tenant's control CA only, for the control name whatever address is dialled.
fn tls_config(
    tenant: &str,
    identity: &crate::controller::tenant::build::control_tls::ClientIdentity,
) -> Result<rustls::ClientConfig, NodeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: &dyn std::fmt::Display| NodeError::Setup(format!("control TLS: {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&identity.ca) {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    let chain = CertificateDer::pem_slice_iter(&identity.identity)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_slice(&identity.identity).map_err(|e| bad(&e))?;
    let webpki = rustls::client::WebPkiServerVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| bad(&e))?;
    let name = rustls::pki_types::ServerName::try_from(control::server_name(tenant))
        .map_err(|e| bad(&e))?;
    let mut config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ControlName {
            inner: webpki,
            name,
        }))
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies the node's chain against the tenant's control CA for the control name, not
/// for the pod address the connection went to (no certificate names pod addresses).
#[derive(Debug)]
struct ControlName {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: rustls::pki_types::ServerName<'static>,
}

impl rustls::client::danger::ServerCertVerifier for ControlName {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
