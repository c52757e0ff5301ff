//! Room placement across a region's media nodes. A region's Service balances signaling
//! requests over its nodes, but a room must live on one node, or its participants would
//! never meet. A node that receives a WHIP/WHEP request for a room asks the region's nodes
//! (found through the region's headless Service in DNS) which one hosts it, and forwards
//! the request there; a room no node hosts is created on the first node of the room's
//! rendezvous order that takes new rooms ([`rank`]). The media itself then flows straight
//! between the client and the host node (its own ICE candidate).
//!
//! Nodes talk HTTPS to each other on the signaling port with the client's own join token
//! (a node learns nothing it could not learn from the client), and trust only the
//! certificate they serve themselves: every node of a tenant mounts the same one.
//! Forwarding rather than a redirect: a browser drops the `Authorization` header on a
//! cross-origin redirect, and a region's nodes sit behind one ingress hostname.

pub mod rank;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use rank::{Answer, Target};

/// Header marking a request another node of the region forwarded: it is handled where it
/// arrives, never forwarded again.
pub const FORWARDED: HeaderName = HeaderName::from_static("x-sanctum-forwarded");
/// How long a node waits for another's answer about a room.
const ASK_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long a forwarded request may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the region's other nodes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peers {
    /// The A records of a headless Service (every pod, ready or not), on `port`.
    Dns {
        /// DNS name of the Service.
        name: String,
        /// Signaling port.
        port: u16,
    },
    /// A fixed list (tests, or a fixed set of hosts).
    Static(Vec<SocketAddr>),
}

/// How a node reaches the others.
#[derive(Clone, Debug)]
pub struct PlacementConfig {
    /// Where the other nodes are.
    pub peers: Peers,
    /// This node's address as the others see it (the pod IP); the signaling listener's
    /// address when unset.
    pub me: Option<IpAddr>,
}

/// Why placement could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("room placement: {0}")]
pub struct PlacementError(String);

/// A node's view of its region.
pub struct Placement {
    me: SocketAddr,
    peers: Peers,
    http: reqwest::Client,
    scheme: &'static str,
}

impl Placement {
    /// Placement for the node listening at `me`; `certificate` is the node's own serving
    /// certificate (the only one it trusts from another node), `None` over plain HTTP.
    pub fn new(
        me: SocketAddr,
        config: &PlacementConfig,
        certificate: Option<PathBuf>,
    ) -> Result<Self, PlacementError> {
        let me = SocketAddr::new(config.me.unwrap_or(me.ip()), me.port());
        let builder = reqwest::Client::builder()
            .timeout(FORWARD_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("sanctum-media-node/", env!("CARGO_PKG_VERSION")));
        let (http, scheme) = match certificate {
            Some(path) => (builder.tls_backend_preconfigured(pinned_tls(path)), "https"),
            None => (builder, "http"),
        };
        Ok(Self {
            me,
            peers: config.peers.clone(),
            http: http.build().map_err(|e| PlacementError(e.to_string()))?,
            scheme,
        })
    }

    /// This node, as the others see it.
    pub fn me(&self) -> SocketAddr {
        self.me
    }

    /// The region's nodes, this one included.
    pub async fn nodes(&self) -> Vec<SocketAddr> {
        let mut nodes = match &self.peers {
            Peers::Static(list) => list.clone(),
            Peers::Dns { name, port } => {
                match tokio::net::lookup_host((name.as_str(), *port)).await {
                    Ok(found) => found.collect(),
                    Err(error) => {
                        tracing::warn!(%error, "the region's nodes cannot be resolved; serving alone");
                        Vec::new()
                    }
                }
            }
        };
        nodes.push(self.me);
        nodes.sort();
        nodes.dedup();
        nodes
    }

    /// Where the request for `room` goes: asks every other node (with the client's token)
    /// whether it hosts the room, and decides with [`rank::decide`]. `local` is this
    /// node's own answer.
    pub async fn route(&self, room: &str, authorization: &HeaderValue, local: Answer) -> Target {
        if local == Answer::Hosting {
            return Target::Here;
        }
        let order = rank::rank(room, &self.nodes().await);
        let answers = futures::future::join_all(order.iter().map(|node| async move {
            if *node == self.me {
                (*node, local)
            } else {
                (*node, self.ask(*node, room, authorization).await)
            }
        }))
        .await;
        rank::decide(self.me, &answers)
    }

    async fn ask(&self, node: SocketAddr, room: &str, authorization: &HeaderValue) -> Answer {
        let url = format!("{}://{node}/rooms/{room}/placement", self.scheme);
        let asked = self
            .http
            .get(url)
            .header(header::AUTHORIZATION, authorization)
            .header(FORWARDED, "1")
            .timeout(ASK_TIMEOUT)
            .send()
            .await;
        let Ok(response) = asked else {
            return Answer::Unreachable;
        };
        match response.json::<PlacementReport>().await {
            Ok(r) if r.hosting => Answer::Hosting,
            Ok(r) if r.draining => Answer::Draining,
            Ok(_) => Answer::Free,
            Err(_) => Answer::Unreachable,
        }
    }

    /// Sends `request` (a body of at most `limit` bytes) to `node` as it came (method,
    /// path, query, headers that matter, body) and returns what the node answered.
    pub async fn forward(
        &self,
        node: SocketAddr,
        request: Request<Body>,
        limit: usize,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, limit).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
        };
        let path = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
        let mut out = self
            .http
            .request(
                parts.method.clone(),
                format!("{}://{node}{path}", self.scheme),
            )
            .header(FORWARDED, "1")
            .body(body);
        for name in [
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::ACCEPT,
            header::ORIGIN,
        ] {
            if let Some(value) = parts.headers.get(&name) {
                out = out.header(name, value);
            }
        }
        let response = match out.send().await {
            Ok(r) => r,
            Err(error) => {
                tracing::warn!(%error, %node, "forwarding to the room's node failed");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "2")],
                    "the node hosting this room did not answer; retry",
                )
                    .into_response();
            }
        };
        let status = response.status();
        let headers = passed_on(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        let mut reply = Response::new(Body::from(body));
        *reply.status_mut() = status;
        *reply.headers_mut() = headers;
        reply
    }
}

/// The headers of a node's answer that go back to the client.
fn passed_on(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let hop_by_hop = [
            header::CONNECTION,
            header::TRANSFER_ENCODING,
            header::CONTENT_LENGTH,
        ]
        .contains(name);
        if !hop_by_hop {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// What a node says about a room.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementReport {
    /// It has live sessions in the room.
    pub hosting: bool,
    /// It is draining (takes no new rooms).
    pub draining: bool,
}

/// TLS between nodes: the other node must present exactly the certificate this node
/// serves (read from its file at every new connection, so a renewal is followed).
fn pinned_tls(certificate: PathBuf) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(OwnCertificate {
            path: certificate,
            provider,
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Accepts the peer when its certificate is this node's own.
#[derive(Debug)]
struct OwnCertificate {
    path: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for OwnCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let own = std::fs::read(&self.path)
            .ok()
            .and_then(|pem| CertificateDer::pem_slice_iter(&pem).next()?.ok());
        match own {
            Some(own) if own.as_ref() == end_entity.as_ref() => {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            _ => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
